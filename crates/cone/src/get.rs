//! `cone get`: request an entitlement, filling in its request form.

use std::collections::BTreeMap;
use std::io::BufRead;

use anyhow::{Context, Result, bail};
use cone_api::{CreateTask, Task};

use crate::client::Api;
use crate::ui::Ui;

pub struct GetArgs {
    pub app_id: String,
    pub entitlement_id: String,
    pub justification: String,
    pub duration: Option<String>,
    pub form_data: Option<String>,
}

pub async fn get(args: GetArgs) -> Result<Task> {
    let api = Api::from_saved()?;
    let entitlement = api.entitlement(&args.app_id, &args.entitlement_id).await?;
    let duration_secs =
        args.duration.as_deref().map(cone_core::duration::parse).transpose().map_err(anyhow::Error::msg)?;
    let form_data: BTreeMap<String, String> = match args.form_data {
        Some(json) => serde_json::from_str(&json)
            .context("--form-data must be a JSON object of strings, like '{\"ticket\": \"OPS-42\"}'")?,
        None if entitlement.form.is_empty() => BTreeMap::new(),
        None => {
            let mut ui = Ui::new();
            if !ui.has_terminal() {
                let fields: Vec<&str> = entitlement.form.iter().map(|f| f.name.as_str()).collect();
                bail!(
                    "This entitlement has a request form (fields: {}); pass it with --form-data '{{\"{}\": \"...\"}}'.",
                    fields.join(", "),
                    fields[0]
                );
            }
            let mut data = BTreeMap::new();
            let mut lines = std::io::stdin().lock().lines();
            for field in &entitlement.form {
                ui.say(&format!("{}{}:", field.name, if field.required { "" } else { " (optional)" }));
                let value = lines.next().context("no answer for the request form")??;
                if !value.trim().is_empty() {
                    data.insert(field.name.clone(), value.trim().to_string());
                }
            }
            data
        }
    };
    let req = CreateTask {
        app_id: args.app_id,
        entitlement_id: args.entitlement_id,
        justification: args.justification,
        duration_secs,
        form_data,
    };
    Ok(api.create_task(&req).await?)
}
