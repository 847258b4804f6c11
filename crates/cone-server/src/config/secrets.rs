//! The settings that name secrets (webhooks, the OpenID Connect provider) and where each secret comes from. A
//! secret itself is never written in the configuration, which often lives in git.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use schemars::JsonSchema;
use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::webhooks::SecretSource;

/// A webhook as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct WebhookConfig {
    /// Names the webhook in the database and in logs: letters, digits, `-`, `_` and `.`.
    name: String,
    /// The http:// or https:// URL events are posted to. It is never logged, so it may hold a token.
    url: String,
    /// The environment variable holding the secret that signs each delivery; this or `secret_file`.
    #[serde(default)]
    secret_env: Option<String>,
    /// The file holding the secret that signs each delivery.
    #[serde(default)]
    secret_file: Option<PathBuf>,
    /// Only to refuse it with a clear message: the secret stays out of the configuration file.
    #[serde(default)]
    #[schemars(skip)]
    secret: Option<Value>,
    /// The events to post: `*`, `task.*`, `grant.*`, `review.*` or event names.
    events: Vec<String>,
    /// Attempts before a delivery is given up (1 to 100); with backoff capped at an hour, 15 span about five hours.
    #[serde(default = "default_webhook_attempts")]
    max_attempts: i64,
}

/// A checked webhook. Its secret is read when the server starts (`workers::delivery::Sender`), so that the other commands
/// need not see it.
#[derive(Debug, Clone)]
pub struct Webhook {
    /// Names it in the database and in logs (the URL may hold a token, so it is never logged).
    pub name: String,
    pub url: reqwest::Url,
    pub secret: SecretSource,
    /// `*`, `task.*`, `grant.*` or event names.
    pub events: Vec<String>,
    /// Attempts before a delivery is given up.
    pub max_attempts: i64,
}

impl WebhookConfig {
    pub(super) fn compile(self) -> Result<Webhook> {
        let name = self.name;
        if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c)) {
            bail!("webhook \"{name}\": a name is letters, digits, `-`, `_` and `.`");
        }
        let url = reqwest::Url::parse(&self.url)
            .ok()
            .filter(|u| ["http", "https"].contains(&u.scheme()) && u.host().is_some())
            .with_context(|| format!("webhook \"{name}\": `url` must be an http:// or https:// URL"))?;
        let secret = secret_source(
            &format!("webhook \"{name}\""),
            "secret",
            name.as_str(),
            self.secret.is_some(),
            self.secret_env,
            self.secret_file,
        )?;
        if self.events.is_empty() {
            bail!("webhook \"{name}\": `events` lists nothing; use [\"*\"] for every task and grant event");
        }
        if let Some(bad) = self.events.iter().find(|e| !crate::webhooks::valid_pattern(e)) {
            bail!(
                "webhook \"{name}\": unknown event \"{bad}\"; use `*`, `task.*`, `grant.*` or one of {}",
                crate::webhooks::EVENTS.join(", ")
            );
        }
        if !(1..=100).contains(&self.max_attempts) {
            bail!("webhook \"{name}\": `max_attempts` must be between 1 and 100");
        }
        Ok(Webhook { name, url, secret, events: self.events, max_attempts: self.max_attempts })
    }
}

/// Where the secret of `owner` (as messages name it) comes from: exactly one of the environment variable
/// `{field}_env` names and the file `{field}_file` names. A secret written inline (`inline`) is refused, since
/// configuration files often live in git; `file_stem` names the example file.
pub(super) fn secret_source(
    owner: &str,
    field: &str,
    file_stem: &str,
    inline: bool,
    env: Option<String>,
    file: Option<PathBuf>,
) -> Result<SecretSource> {
    match (inline, env, file) {
        (true, _, _) => bail!(
            "{owner}: the {} may not be written in the configuration; put it in a file \
             (`{field}_file: /etc/cone/{file_stem}.secret`, mode 0600) or an environment variable (`{field}_env: NAME`)",
            field.replace('_', " ")
        ),
        (false, Some(var), None) if !var.is_empty() => Ok(SecretSource::Env(var)),
        (false, None, Some(path)) => Ok(SecretSource::File(path)),
        _ => bail!("{owner}: give exactly one of `{field}_env` and `{field}_file`"),
    }
}

/// An OpenID Connect provider as written.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct OidcConfig {
    /// Shown on the sign-in page: "Sign in with <name>".
    name: String,
    /// The provider's https:// URL; discovery reads `<issuer>/.well-known/openid-configuration`.
    issuer: String,
    /// The client id the provider gave Cone.
    client_id: String,
    /// The environment variable holding the client secret; this or `secret_file`.
    #[serde(default)]
    secret_env: Option<String>,
    /// The file holding the client secret, read at each sign-in so that a rotated one needs no restart.
    #[serde(default)]
    secret_file: Option<PathBuf>,
    /// Only to refuse them with a clear message: the secret stays out of the configuration file.
    #[serde(default)]
    #[schemars(skip)]
    client_secret: Option<Value>,
    #[serde(default)]
    #[schemars(skip)]
    secret: Option<Value>,
    /// The ID token claim that names the person: `email`, `preferred_username` or `sub`.
    #[serde(default = "default_oidc_claim")]
    claim: String,
    /// What of a Cone user the claim must equal; `email` when the claim is `email`, else `username`.
    #[serde(default)]
    match_user_by: Option<UserField>,
}

/// The ID token claims that may identify a person: the standard claims that name one.
pub const OIDC_CLAIMS: [&str; 3] = ["email", "preferred_username", "sub"];

/// What of a Cone user the provider's claim must equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum UserField {
    Email,
    Username,
}

/// The checked OpenID Connect provider. Its secret is read at each sign-in (so that a rotated one needs no restart)
/// and once when the server starts, so that a missing one stops the start.
#[derive(Debug, Clone)]
pub struct Oidc {
    /// Shown on the sign-in page: "Sign in with <name>".
    pub name: String,
    /// Without a trailing slash; discovery reads `<issuer>/.well-known/openid-configuration`.
    pub issuer: String,
    pub client_id: String,
    pub secret: SecretSource,
    /// The ID token claim that names the person: `email` unless configured.
    pub claim: String,
    pub match_user_by: UserField,
}

impl OidcConfig {
    pub(super) fn compile(self) -> Result<Oidc> {
        if self.name.trim().is_empty() {
            bail!("oidc: `name` is empty; it is shown as \"Sign in with <name>\", for example `name: Okta`");
        }
        let issuer = reqwest::Url::parse(&self.issuer)
            .ok()
            .filter(|u| ["http", "https"].contains(&u.scheme()) && u.host().is_some())
            .with_context(|| format!("oidc: `issuer` must be the provider's https:// URL, not {:?}", self.issuer))?;
        if self.client_id.is_empty() {
            bail!("oidc: `client_id` is empty; use the client id the provider gave Cone");
        }
        let inline = self.client_secret.is_some() || self.secret.is_some();
        let secret = secret_source("oidc", "secret", "oidc", inline, self.secret_env, self.secret_file)?;
        if !OIDC_CLAIMS.contains(&self.claim.as_str()) {
            bail!(
                "oidc: `claim: {}` is not one Cone reads; name the ID token claim that identifies people, one of {}",
                self.claim,
                OIDC_CLAIMS.join(", ")
            );
        }
        let match_user_by =
            self.match_user_by.unwrap_or(if self.claim == "email" { UserField::Email } else { UserField::Username });
        Ok(Oidc {
            name: self.name,
            issuer: issuer.as_str().trim_end_matches('/').to_string(),
            client_id: self.client_id,
            secret,
            claim: self.claim,
            match_user_by,
        })
    }
}

/// With backoff capped at an hour, 15 attempts span about five hours.
fn default_webhook_attempts() -> i64 {
    15
}
fn default_oidc_claim() -> String {
    "email".into()
}
