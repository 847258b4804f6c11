//! Naming an entitlement on the command line: an alias, a search query, or app and entitlement ids.

use anyhow::{Context, Result, bail};
use cone_api::Entitlement;
use cone_core::naming::printable;

use crate::ui::Ui;
use cone_client::Client;

#[derive(Debug, Clone, Default, clap::Args)]
pub struct Selector {
    /// The entitlement's alias as `cone search` lists it (also its AWS profile name), like production-admin.
    pub alias: Option<String>,
    /// Words that all appear in the alias, role, account name or account id.
    #[arg(long, short = 'q', conflicts_with = "alias")]
    pub query: Option<String>,
    #[arg(long, short = 'a', requires = "entitlement_id", conflicts_with_all = ["alias", "query"])]
    pub app_id: Option<String>,
    #[arg(long, short = 'e', requires = "app_id")]
    pub entitlement_id: Option<String>,
}

/// The one entitlement the selector names. Several matches are offered as a choice when a person can answer,
/// and are an error listing them otherwise.
pub async fn resolve(api: &Client, sel: &Selector, interactive: bool) -> Result<Entitlement> {
    if let (Some(app), Some(id)) = (&sel.app_id, &sel.entitlement_id) {
        return Ok(api.entitlement(app, id).await?);
    }
    let (what, mut found): (String, Vec<Entitlement>) = match (&sel.alias, &sel.query) {
        (Some(alias), _) => {
            let all = api.entitlements(None).await?;
            (format!("alias \"{alias}\""), all.into_iter().filter(|e| e.alias.eq_ignore_ascii_case(alias)).collect())
        }
        (None, Some(q)) => {
            // The server searches; the words are checked here too, for servers that do not.
            let found = api.search_entitlements(&[("q", q)]).await?;
            (format!("\"{q}\""), found.into_iter().filter(|e| e.matches(q)).collect())
        }
        (None, None) => bail!(
            "Name the entitlement: an alias (`cone get production-admin`), a query (`-q prod admin`), or --app-id with --entitlement-id. `cone search` lists them."
        ),
    };
    match found.len() {
        0 => bail!("No entitlement matches {what}; list what you can request with `cone search`."),
        1 => Ok(found.remove(0)),
        n => {
            let ui = Ui::new();
            let Some(term) = ui.terminal().filter(|_| interactive) else {
                let names: Vec<&str> = found.iter().map(|e| e.alias.as_str()).take(10).collect();
                bail!(
                    "{n} entitlements match {what} ({}{}); name one by its alias.",
                    names.join(", "),
                    if n > 10 { ", …" } else { "" }
                );
            };
            let labels: Vec<String> = found
                .iter()
                .map(|e| printable(&format!("{}  ({} on {})", e.alias, e.display_name, e.resource_name)))
                .collect();
            let picked = dialoguer::FuzzySelect::new()
                .with_prompt(format!("{n} entitlements match {what}: type to narrow, Enter to choose, Esc to stop"))
                .items(&labels)
                .default(0)
                .interact_on_opt(&term)
                .context("cannot read your choice from the terminal; name the entitlement by its alias")?;
            match picked {
                Some(i) => Ok(found.remove(i)),
                None => bail!("Nothing was chosen; name the entitlement by its alias (`cone search` lists them)."),
            }
        }
    }
}
