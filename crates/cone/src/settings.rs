//! `~/.conductorone/config.yaml` (server and AWS settings) and `~/.conductorone/token.json` (the API token).

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::files;

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Settings {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aws: Option<AwsSettings>,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct AwsSettings {
    pub sso_start_url: String,
    pub sso_region: String,
    pub region: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Token {
    pub server: String,
    pub access_token: String,
}

impl Settings {
    pub fn load() -> Result<Settings> {
        let path = files::cone_dir()?.join("config.yaml");
        match files::read_optional(&path)? {
            None => Ok(Settings::default()),
            Some(text) => serde_yaml::from_str(&text).with_context(|| {
                format!("{} is not valid; fix it or delete it and run `cone login` again", path.display())
            }),
        }
    }

    pub fn save(&self) -> Result<()> {
        let text = serde_yaml::to_string(self).context("cannot encode settings")?;
        files::write_private(&files::cone_dir()?.join("config.yaml"), text.as_bytes())
    }

    /// The AWS settings; an error says how to create them.
    pub fn aws(&self) -> Result<&AwsSettings> {
        self.aws.as_ref().context("AWS settings are missing; run `cone aws setup --sso-url <start-url> --sso-region <region> --region <region>` first")
    }
}

impl Token {
    pub fn load() -> Result<Token> {
        let path = files::cone_dir()?.join("token.json");
        let text =
            files::read_optional(&path)?.context("You are not signed in to Cone; run `cone login <server-url>`.")?;
        serde_json::from_str(&text)
            .with_context(|| format!("{} is damaged; run `cone login <server-url>` again", path.display()))
    }

    pub fn save(&self) -> Result<()> {
        let text = serde_json::to_vec(self).context("cannot encode token")?;
        files::write_private(&files::cone_dir()?.join("token.json"), &text)
    }

    /// Forgets the token; false when there was none.
    pub fn remove() -> Result<bool> {
        files::remove(&files::cone_dir()?.join("token.json"))
    }
}
