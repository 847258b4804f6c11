//! Outgoing webhooks (`docs/webhooks.md`): which events a webhook receives, where secrets come from, and the
//! signature. Deliveries are queued with the audit entry of their event (`store::record`, an outbox) and sent,
//! retried and given up on by `workers::delivery`.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The events a webhook may subscribe to: every audit action about a task or its grant, and about access reviews.
pub const EVENTS: &[&str] = &[
    "task.create",
    "task.approve",
    "task.deny",
    "task.cancel",
    "task.escalate",
    "task.wait_ended",
    "task.time_out",
    "task.comment",
    "grant.activate",
    "grant.extend",
    "grant.expire",
    "grant.release",
    "grant.end_early",
    "grant.withdraw",
    "grant.revoke",
    "grant.fail",
    "review.campaign_create",
    "review.certify",
    "review.revoke",
    "review.reassign",
    "review.removed",
    "review.by_hand",
    "review.gone",
    "review.campaign_close",
];

/// The families `family.*` may name.
const FAMILIES: &[&str] = &["task", "grant", "review"];

pub const HEADER_ID: &str = "Cone-Webhook-Id";
pub const HEADER_EVENT: &str = "Cone-Webhook-Event";
pub const HEADER_TIMESTAMP: &str = "Cone-Webhook-Timestamp";
pub const HEADER_SIGNATURE: &str = "Cone-Webhook-Signature";
pub const HEADER_ATTEMPT: &str = "Cone-Webhook-Attempt";

/// Secrets shorter than this are refused: the signature is only as strong as the secret.
const MIN_SECRET_LEN: usize = 16;

/// Whether `pattern` is something a webhook's `events` may list: `*`, `task.*`, `grant.*`, `review.*` or one event.
pub fn valid_pattern(pattern: &str) -> bool {
    pattern == "*" || pattern.strip_suffix(".*").is_some_and(|f| FAMILIES.contains(&f)) || EVENTS.contains(&pattern)
}

/// Whether the audit action `event` is one that `pattern` subscribes to. Only task, grant and review events are ever
/// sent.
pub fn matches(pattern: &str, event: &str) -> bool {
    let family = event.split_once('.').map(|(f, _)| f);
    if !family.is_some_and(|f| FAMILIES.contains(&f)) {
        return false;
    }
    pattern == "*" || pattern == event || pattern.strip_suffix(".*") == family
}

/// Where a secret (a webhook's, the OpenID Connect client's) comes from. It is never written in the configuration
/// itself, which often lives in git.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    Env(String),
    File(PathBuf),
}

/// A secret: never printed (its `Debug` says so), compared or logged.
#[derive(Clone)]
pub struct Secret(Vec<u8>);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(redacted)")
    }
}

impl Secret {
    /// The secret itself, to sign or send with; never to log.
    pub fn reveal(&self) -> &[u8] {
        &self.0
    }
}

impl SecretSource {
    /// Reads the secret of `owner` (`webhook "chat"`, as messages name it); `env` looks up environment variables. A
    /// file's trailing newline is not part of it.
    pub fn read(&self, owner: &str, env: impl Fn(&str) -> Option<String>) -> Result<Secret> {
        self.read_at_least(owner, env, MIN_SECRET_LEN)
    }

    /// [`SecretSource::read`] with another minimum length: a password another system chose (SMTP's) need only be
    /// there.
    pub fn read_at_least(&self, owner: &str, env: impl Fn(&str) -> Option<String>, min: usize) -> Result<Secret> {
        let secret = match self {
            SecretSource::Env(name) => env(name).with_context(|| {
                format!(
                    "{owner}: the environment variable {name} is not set; set it to the secret \
                     before starting cone-server"
                )
            })?,
            SecretSource::File(path) => {
                warn_if_readable_by_others(owner, path);
                std::fs::read_to_string(path).with_context(|| {
                    format!(
                        "{owner}: cannot read its secret from {}; check that the file exists and that \
                         cone-server may read it",
                        path.display()
                    )
                })?
            }
        };
        let secret = secret.trim_end_matches(['\r', '\n']);
        if secret.len() < min {
            bail!(
                "{owner}: its secret has {} bytes; use at least {min} random ones (for example the output of \
                 `openssl rand -hex 32`)",
                secret.len()
            );
        }
        Ok(Secret(secret.as_bytes().to_vec()))
    }
}

fn warn_if_readable_by_others(owner: &str, path: &std::path::Path) {
    use std::os::unix::fs::PermissionsExt;
    if let Ok(meta) = std::fs::metadata(path)
        && meta.permissions().mode() & 0o077 != 0
    {
        tracing::warn!(
            owner,
            "the secret file {} may be read by other users; `chmod 600` it (and let only cone-server's user own it)",
            path.display()
        );
    }
}

/// `HMAC-SHA256(secret, timestamp + "." + body)` in lower-case hex: what `Cone-Webhook-Signature` carries after
/// `sha256=`.
pub fn signature(secret: &[u8], timestamp: i64, body: &str) -> String {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).expect("HMAC takes keys of any length");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body.as_bytes());
    hex::encode(mac.finalize().into_bytes())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hmac_sha256_matches_rfc_4231() {
        // RFC 4231, test case 2: the HMAC underneath the signature.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(b"Jefe").unwrap();
        mac.update(b"what do ya want for nothing?");
        assert_eq!(
            hex::encode(mac.finalize().into_bytes()),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn signature_covers_timestamp_dot_body() {
        // Computed independently: printf '1700000000.{"id":"x"}' | openssl dgst -sha256 -hmac 'whsec-0123456789abcdef'
        let body = r#"{"id":"x"}"#;
        assert_eq!(
            signature(b"whsec-0123456789abcdef", 1_700_000_000, body),
            "ffcc3087b2ccc7bc8c7614f2a2500a2cb8605108d6b4bb72c037de4f60d0bd08"
        );
        assert_ne!(
            signature(b"whsec-0123456789abcdef", 1_700_000_001, body),
            signature(b"whsec-0123456789abcdef", 1_700_000_000, body)
        );
    }

    #[test]
    fn patterns_name_task_grant_and_review_events_only() {
        for ok in ["*", "task.*", "grant.*", "grant.revoke", "task.wait_ended", "review.*", "review.removed"] {
            assert!(valid_pattern(ok), "{ok}");
        }
        for bad in ["drift.*", "login", "grant.revoked", "task", "*.*", "grant.**", ""] {
            assert!(!valid_pattern(bad), "{bad}");
        }
        assert!(matches("*", "grant.activate") && matches("*", "task.create"));
        assert!(!matches("*", "drift.unexplained") && !matches("*", "login") && !matches("*", "sync"));
        assert!(matches("grant.*", "grant.revoke") && !matches("grant.*", "task.create"));
        assert!(matches("task.comment", "task.comment") && !matches("task.comment", "task.create"));
        assert!(!matches("task.*", "taskx.create"));
        assert!(matches("review.*", "review.revoke") && matches("*", "review.gone"));
    }

    #[test]
    fn secrets_come_from_the_environment_or_a_file_and_must_be_long_enough() {
        let env = |name: &str| (name == "HOOK_SECRET").then(|| "0123456789abcdef0123".to_string());
        let from_env = SecretSource::Env("HOOK_SECRET".into()).read("webhook \"chat\"", env).unwrap();
        assert_eq!(from_env.0, b"0123456789abcdef0123");
        assert_eq!(format!("{from_env:?}"), "Secret(redacted)");
        let missing = SecretSource::Env("NOPE".into()).read("webhook \"chat\"", env).unwrap_err().to_string();
        assert!(missing.contains("webhook \"chat\"") && missing.contains("NOPE"), "{missing}");

        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("secret");
        std::fs::write(&path, "fedcba9876543210fedc\n").unwrap();
        let from_file = SecretSource::File(path.clone()).read("webhook \"chat\"", env).unwrap();
        assert_eq!(from_file.0, b"fedcba9876543210fedc", "the newline is not part of the secret");
        std::fs::write(&path, "short\n").unwrap();
        let short = SecretSource::File(path).read("webhook \"chat\"", env).unwrap_err().to_string();
        assert!(short.contains("5 bytes") && !short.contains("short\n"), "{short}");
        let absent =
            SecretSource::File(dir.path().join("absent")).read("webhook \"chat\"", env).unwrap_err().to_string();
        assert!(absent.contains("cannot read its secret"), "{absent}");
    }
}
