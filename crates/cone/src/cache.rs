//! The AWS CLI's caches as cone shares them: file names (`sha1` of the AWS CLI's keys), timestamps, and the
//! role-credential entries of `~/.aws/cli/cache` with the `credential_process` JSON printed from them.

use anyhow::{Context, Result};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use crate::files;

/// Cached credentials are reused while they have this much time left (the AWS CLI's own window).
pub const REUSE_WINDOW: i64 = 15 * 60;

/// Parses the timestamps every writer of these files produces: RFC 3339 with or without fraction or offset,
/// and the `…UTC` suffix of old AWS CLI versions.
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    let normalised = s.strip_suffix("UTC").map(|p| format!("{}Z", p.trim_end())).unwrap_or_else(|| s.to_string());
    DateTime::parse_from_rfc3339(&normalised).ok().map(|t| t.with_timezone(&Utc))
}

/// `YYYY-MM-DDTHH:MM:SSZ`, the form every AWS tool reads.
pub fn format_time(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

pub fn sha1_hex(s: &str) -> String {
    hex::encode(Sha1::digest(s.as_bytes()))
}

/// A JSON string as Python's `json.dumps` writes it (ASCII only), so that file names hash like the AWS CLI's.
pub fn python_json_string(s: &str) -> String {
    let mut out = String::new();
    for c in serde_json::Value::from(s).to_string().chars() {
        if c.is_ascii() {
            out.push(c);
        } else {
            let mut units = [0u16; 2];
            for unit in c.encode_utf16(&mut units) {
                out.push_str(&format!("\\u{unit:04x}"));
            }
        }
    }
    out
}

/// `~/.aws/<dir>/<sha1(key)>.json`: how the AWS CLI names its cache files.
pub fn aws_cache_file(dir: &str, key: &str) -> Result<std::path::PathBuf> {
    Ok(files::home()?.join(".aws").join(dir).join(format!("{}.json", sha1_hex(key))))
}

/// The token cache is keyed by the start URL exactly as configured (profiles without an sso-session).
pub fn token_path(start_url: &str) -> Result<std::path::PathBuf> {
    aws_cache_file("sso/cache", start_url)
}

/// A token in `~/.aws/sso/cache`, as the AWS CLI and botocore write it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct TokenFile {
    #[serde(default)]
    pub start_url: Option<String>,
    #[serde(default)]
    pub region: Option<String>,
    pub access_token: String,
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub registration_expires_at: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// A client registration in `~/.aws/sso/cache`, named as the AWS CLI names it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Registration {
    pub client_id: String,
    pub client_secret: String,
    pub expires_at: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Present for browser (authorization code) registrations only, as the AWS CLI writes them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_types: Option<Vec<String>>,
}

/// `credential_process` output (Version 1).
#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct ProcessOutput<'a> {
    version: u8,
    access_key_id: &'a str,
    secret_access_key: &'a str,
    session_token: &'a str,
    expiration: &'a str,
    account_id: &'a str,
}

/// The AWS CLI v2 credential-cache entry (`~/.aws/cli/cache`), so that `aws sso logout` clears ours too.
#[derive(Serialize, Deserialize)]
pub struct CacheEntry {
    #[serde(rename = "ProviderType")]
    pub provider_type: String,
    #[serde(rename = "Credentials")]
    pub credentials: CachedCredentials,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "PascalCase")]
pub struct CachedCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: String,
    #[serde(default)]
    pub account_id: String,
}

impl CachedCredentials {
    /// The `credential_process` JSON.
    pub fn process_json(&self) -> Result<String> {
        let out = ProcessOutput {
            version: 1,
            access_key_id: &self.access_key_id,
            secret_access_key: &self.secret_access_key,
            session_token: &self.session_token,
            expiration: &self.expiration,
            account_id: &self.account_id,
        };
        serde_json::to_string(&out).context("cannot encode credentials")
    }
}

/// The AWS CLI v2's key for SSO role credentials of a profile without sso-session.
fn role_key(start_url: &str, account_id: &str, role_name: &str) -> String {
    format!(
        "{{\"accountId\":{},\"roleName\":{},\"startUrl\":{}}}",
        python_json_string(account_id),
        python_json_string(role_name),
        python_json_string(start_url)
    )
}

pub fn role_path(start_url: &str, account_id: &str, role_name: &str) -> Result<std::path::PathBuf> {
    aws_cache_file("cli/cache", &role_key(start_url, account_id, role_name))
}

/// Cached role credentials with at least [`REUSE_WINDOW`] left.
pub fn fresh_role_credentials(start_url: &str, account_id: &str, role_name: &str) -> Result<Option<CachedCredentials>> {
    if role_name.is_empty() {
        return Ok(None);
    }
    let path = role_path(start_url, account_id, role_name)?;
    let Some(entry) = files::read_optional(&path)?.and_then(|t| serde_json::from_str::<CacheEntry>(&t).ok()) else {
        return Ok(None);
    };
    let fresh =
        parse_time(&entry.credentials.expiration).is_some_and(|t| (t - Utc::now()).num_seconds() >= REUSE_WINDOW);
    Ok(fresh.then_some(entry.credentials))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_cache_names_match_the_aws_cli() {
        let key = role_key("https://d-1234567890.awsapps.com/start", "111111111111", "Admin");
        assert_eq!(sha1_hex(&key), "286e93c3018b44f21e1f9bca8bfbca4be8834fc9");
        assert_eq!(sha1_hex("https://d-1234567890.awsapps.com/start"), "7487b5b67d5fa1132cf33fa93ae51ef38cc37752");
    }

    #[test]
    fn python_json_escapes_non_ascii() {
        assert_eq!(python_json_string("a\"é😀"), "\"a\\\"\\u00e9\\ud83d\\ude00\"");
    }

    #[test]
    fn reads_every_timestamp_dialect() {
        let want = parse_time("2026-11-23T04:48:44Z").unwrap();
        assert_eq!(parse_time("2026-11-23T04:48:44+00:00"), Some(want));
        assert_eq!(parse_time("2026-11-23T04:48:44UTC"), Some(want));
        assert!(parse_time("2026-11-23T04:48:44.418633Z").is_some());
        assert_eq!(format_time(want), "2026-11-23T04:48:44Z");
        assert_eq!(parse_time("soon"), None);
    }
}
