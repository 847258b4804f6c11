//! `~/.conductorone/config.yaml`: the server and AWS settings of each cone profile.

use std::collections::BTreeMap;

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};

use crate::files;

pub const DEFAULT_PROFILE: &str = "default";

/// Profile names go into file names and command lines, so they are restricted to letters, digits, `-` and `_`.
pub fn valid_profile_name(name: &str) -> bool {
    !name.is_empty() && name.len() <= 64 && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
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
    fn parse(text: &str) -> serde_yaml_ng::Result<SettingsFile> {
        let mut file: SettingsFile = serde_yaml_ng::from_str(text)?;
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
    pub fn load(profile: &str) -> Result<Settings> {
        Ok(SettingsFile::load()?.profiles.remove(profile).unwrap_or_default())
    }

    /// Saves `profile`'s settings, keeping the other profiles as they are.
    pub fn save(&self, profile: &str) -> Result<()> {
        let mut file = SettingsFile::load()?;
        file.profiles.insert(profile.to_string(), self.clone());
        let text = serde_yaml_ng::to_string(&file).context("cannot encode settings")?;
        files::write_private(&files::cone_dir()?.join("config.yaml"), text.as_bytes())
    }

    /// The AWS settings; an error says how to create them.
    pub fn aws(&self) -> Result<&AwsSettings> {
        self.aws.as_ref().context("AWS settings are missing; run `cone aws setup --sso-url <start-url> --sso-region <region> --region <region>` first")
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
        let written = serde_yaml_ng::to_string(&file).unwrap();
        assert!(written.starts_with("profiles:") && !written.contains("\nserver:"), "{written}");
        let again = SettingsFile::parse(&written).unwrap();
        assert_eq!(again.profiles[DEFAULT_PROFILE].server.as_deref(), Some("https://cone.example.com"));
    }

    #[test]
    fn profile_names_are_restricted() {
        assert!(valid_profile_name("work_2-b"));
        assert!(
            !valid_profile_name("../x")
                && !valid_profile_name("a b")
                && !valid_profile_name("")
                && !valid_profile_name(&"x".repeat(65))
        );
    }
}
