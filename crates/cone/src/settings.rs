//! `~/.conductorone/config.yaml` (server and AWS settings per cone profile) and the API token of each profile
//! (`token.json` for `default`, `token-<profile>.json` for the others).
//!
//! A cone profile is one Cone server (a tenant) with its own AWS settings; `-p NAME` or `CONE_PROFILE` picks it.

use std::collections::BTreeMap;
use std::sync::OnceLock;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use crate::files;

pub const DEFAULT_PROFILE: &str = "default";

static PROFILE: OnceLock<String> = OnceLock::new();

/// Chooses the cone profile for the rest of the process. Names go into file names and command lines, so they are
/// restricted to letters, digits, `-` and `_`.
pub fn select(name: &str) -> Result<()> {
    if !valid_name(name) {
        bail!("\"{name}\" is not a valid cone profile name; use up to 64 letters, digits, - and _");
    }
    let _ = PROFILE.set(name.to_string());
    Ok(())
}

fn valid_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
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

/// The whole file. Files from before profiles existed hold one profile's keys at the top level; they are read
/// as the default profile and written back in this form.
#[derive(Debug, Default, Serialize, Deserialize)]
struct SettingsFile {
    #[serde(default)]
    profiles: BTreeMap<String, Settings>,
    #[serde(default, skip_serializing)]
    server: Option<String>,
    #[serde(default, skip_serializing)]
    aws: Option<AwsSettings>,
}

impl SettingsFile {
    fn parse(text: &str) -> serde_yaml::Result<SettingsFile> {
        let mut file: SettingsFile = serde_yaml::from_str(text)?;
        if file.server.is_some() || file.aws.is_some() {
            let flat = Settings { server: file.server.take(), aws: file.aws.take() };
            file.profiles.entry(DEFAULT_PROFILE.to_string()).or_insert(flat);
        }
        Ok(file)
    }

    fn load() -> Result<SettingsFile> {
        let path = files::cone_dir()?.join("config.yaml");
        match files::read_optional(&path)? {
            None => Ok(SettingsFile::default()),
            Some(text) if text.trim().is_empty() => Ok(SettingsFile::default()),
            Some(text) => SettingsFile::parse(&text).with_context(|| {
                format!("{} is not valid; fix it or delete it and run `cone login` again", path.display())
            }),
        }
    }
}

impl Settings {
    pub fn load() -> Result<Settings> {
        Ok(SettingsFile::load()?.profiles.remove(profile()).unwrap_or_default())
    }

    /// Saves this profile's settings, keeping the other profiles as they are.
    pub fn save(&self) -> Result<()> {
        let mut file = SettingsFile::load()?;
        file.profiles.insert(profile().to_string(), self.clone());
        let text = serde_yaml::to_string(&file).context("cannot encode settings")?;
        files::write_private(&files::cone_dir()?.join("config.yaml"), text.as_bytes())
    }

    /// The AWS settings; an error says how to create them.
    pub fn aws(&self) -> Result<&AwsSettings> {
        self.aws.as_ref().context("AWS settings are missing; run `cone aws setup --sso-url <start-url> --sso-region <region> --region <region>` first")
    }
}

fn token_path() -> Result<std::path::PathBuf> {
    let name = match profile() {
        DEFAULT_PROFILE => "token.json".to_string(),
        p => format!("token-{p}.json"),
    };
    Ok(files::cone_dir()?.join(name))
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
    fn reads_files_from_before_profiles_as_the_default_profile() {
        let file = SettingsFile::parse(
            "server: https://cone.example.com\naws: {sso_start_url: 'https://x.awsapps.com/start', sso_region: us-east-1, region: eu-west-1}\n",
        )
        .unwrap();
        let default = &file.profiles[DEFAULT_PROFILE];
        assert_eq!(default.server.as_deref(), Some("https://cone.example.com"));
        assert_eq!(default.aws.as_ref().unwrap().region, "eu-west-1");
        let written = serde_yaml::to_string(&file).unwrap();
        assert!(written.starts_with("profiles:") && !written.contains("\nserver:"), "{written}");
        let again = SettingsFile::parse(&written).unwrap();
        assert_eq!(again.profiles[DEFAULT_PROFILE].server.as_deref(), Some("https://cone.example.com"));
    }

    #[test]
    fn advice_names_the_profile() {
        // The process-wide choice is made once; this test is the only one that makes it.
        select("work").unwrap();
        assert_eq!(
            with_profile("Run `cone aws login`.\nCheck status: cone task get 4\n  cone get --app-id aws"),
            "Run `cone -p work aws login`.\nCheck status: cone -p work task get 4\n  cone -p work get --app-id aws"
        );
    }

    #[test]
    fn profile_names_are_restricted() {
        assert!(valid_name("work_2-b"));
        assert!(!valid_name("../x") && !valid_name("a b") && !valid_name("") && !valid_name(&"x".repeat(65)));
    }
}
