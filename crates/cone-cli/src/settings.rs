//! The selected cone profile (`-p NAME` or `CONE_PROFILE`: one Cone server and its AWS settings) and its API token
//! (`token.json` for `default`, `token-<profile>.json` for the others).

use std::path::{Path, PathBuf};
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

fn token_path() -> Result<PathBuf> {
    let name = match profile() {
        DEFAULT_PROFILE => "token.json".to_string(),
        p => format!("token-{p}.json"),
    };
    Ok(files::cone_dir()?.join(name))
}

static TOKEN_FILE: OnceLock<PathBuf> = OnceLock::new();

/// Makes the API token in `path` (`--token-file`) the one this process presents.
pub fn use_token_file(path: PathBuf) {
    let _ = TOKEN_FILE.set(path);
}

/// The API token in `CONE_TOKEN`, when set.
fn env_token() -> Option<String> {
    std::env::var("CONE_TOKEN").ok().map(|t| t.trim().to_string()).filter(|t| !t.is_empty())
}

/// Where the API token comes from when it is not the saved session: `--token-file`, then `CONE_TOKEN`.
pub fn headless_source() -> Option<String> {
    match TOKEN_FILE.get() {
        Some(path) => Some(path.display().to_string()),
        None => env_token().map(|_| "CONE_TOKEN".into()),
    }
}

/// The API client of the server `cone login` signed in to, with its token; or, for scripts, with the API token of
/// `--token-file` or `CONE_TOKEN`, on `CONE_SERVER_URL` (else the saved session's server).
pub fn client() -> Result<cone_client::Client> {
    let secret = match TOKEN_FILE.get() {
        Some(path) => Some(read_token_file(path)?),
        None => env_token(),
    };
    let token = match secret {
        None => Token::load()?,
        Some(access_token) => {
            let server = match std::env::var("CONE_SERVER_URL") {
                Ok(url) if !url.trim().is_empty() => url.trim().to_string(),
                _ => Token::load().map(|t| t.server).map_err(|_| {
                    anyhow::anyhow!(
                        "An API token was given but no server; set CONE_SERVER_URL to the Cone server's URL."
                    )
                })?,
            };
            Token { server, access_token }
        }
    };
    cone_client::Client::new(&token.server, &token.access_token)
}

/// The token in `path`: private to its owner (like an SSH key), one line, at most 4 KiB.
fn read_token_file(path: &Path) -> Result<String> {
    use std::io::Read;
    use std::os::unix::fs::MetadataExt;
    let shown = path.display();
    let file = std::fs::File::open(path).with_context(|| format!("cannot open the token file {shown}"))?;
    let mode = file.metadata().with_context(|| format!("cannot read {shown}"))?.mode();
    if mode & 0o077 != 0 {
        bail!("The token file {shown} can be read by other users; run `chmod 600 {shown}` and try again.");
    }
    let mut text = String::new();
    file.take(4096).read_to_string(&mut text).with_context(|| format!("cannot read the token file {shown}"))?;
    match text.trim() {
        "" => bail!("The token file {shown} is empty; write an API token from `cone token create` into it."),
        token if token.contains(char::is_whitespace) => {
            bail!("The token file {shown} holds more than one token; keep only the API token in it.")
        }
        token => Ok(token.to_string()),
    }
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
