//! The selected cone profile (`-p NAME` or `CONE_PROFILE`: one Cone server and its AWS settings) and its API token
//! (`token.json` for `default`, `token-<profile>.json` for the others).

use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use cone::files;
pub use cone::settings::{AwsSettings, DEFAULT_PROFILE, Settings};
use serde::{Deserialize, Serialize};

static PROFILE: OnceLock<String> = OnceLock::new();

/// Chooses the cone profile for the rest of the process.
pub fn select(name: &str) -> Result<()> {
    if !cone::settings::valid_profile_name(name) {
        bail!("\"{name}\" is not a valid cone profile name; use up to 64 letters, digits, - and _");
    }
    let _ = PROFILE.set(name.to_string());
    Ok(())
}

pub fn profile() -> &'static str {
    PROFILE.get().map(String::as_str).unwrap_or(DEFAULT_PROFILE)
}

/// Commands cone suggests in `text` (`` `cone …` ``, `: cone …`, or on a line of their own), made to name the
/// selected profile, so that following the advice acts on the same server.
pub fn with_profile(text: &str) -> String {
    match profile() {
        DEFAULT_PROFILE => text.to_string(),
        p => ["`cone ", ": cone ", "\n  cone "]
            .iter()
            .fold(text.to_string(), |t, lead| t.replace(lead, &format!("{lead}-p {p} "))),
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    pub server: String,
    pub access_token: String,
}

fn token_path() -> Result<std::path::PathBuf> {
    let name = match profile() {
        DEFAULT_PROFILE => "token.json".to_string(),
        p => format!("token-{p}.json"),
    };
    Ok(files::cone_dir()?.join(name))
}

/// The API client of the server `cone login` signed in to, with its token.
pub fn client() -> Result<cone_client::Client> {
    let token = Token::load()?;
    cone_client::Client::new(&token.server, &token.access_token)
}

impl Token {
    pub fn load() -> Result<Token> {
        let path = token_path()?;
        let text =
            files::read_optional(&path)?.context("You are not signed in to Cone; run `cone login <server-url>`.")?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged; run `cone login <server-url>` again", path.display()))
    }

    pub fn save(&self) -> Result<()> {
        let text = serde_json::to_vec(self).context("cannot encode token")?;
        files::write_private(&token_path()?, &text)
    }

    /// Forgets the token; false when there was none.
    pub fn remove() -> Result<bool> {
        files::remove(&token_path()?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advice_names_the_profile() {
        // The process-wide choice is made once; this test is the only one that makes it.
        select("work").unwrap();
        assert_eq!(
            with_profile("Run `cone aws login`.\nCheck status: cone task get 4\n  cone get --app-id aws"),
            "Run `cone -p work aws login`.\nCheck status: cone -p work task get 4\n  cone -p work get --app-id aws"
        );
    }
}
