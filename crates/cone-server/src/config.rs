//! The server's YAML configuration: where it listens, where it stores, and the policies.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use cone_api::FormField;
use cone_core::policy::Step;
use serde::Deserialize;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default = "default_listen")]
    pub listen: String,
    /// A SQLite database file, or a `postgres://` URL.
    pub database: Database,
    /// The URL people reach the server at (for the device sign-in page); defaults to the listening address.
    #[serde(default)]
    pub public_url: Option<String>,
    pub aws: AwsConfig,
    /// Duration of a grant when the request names none, capped by the policy's maximum.
    #[serde(default = "default_duration", with = "duration")]
    pub default_duration: i64,
    /// Requests nobody decides within this time are closed as timed out.
    #[serde(default = "default_pending_timeout", with = "duration")]
    pub pending_timeout: i64,
    #[serde(default)]
    pub drift: DriftConfig,
    /// How long a worker holds a job it claimed before another worker (or replica) may take it over: the time a
    /// crashed worker's provisioning or revocation waits. It must exceed the longest AWS call of a job.
    #[serde(default = "default_job_lease", with = "duration")]
    pub job_lease: i64,
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
}

/// Where the server stores: SQLite (embedded, one server) or PostgreSQL (one or more replicas).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "String")]
pub enum Database {
    Sqlite(PathBuf),
    /// The URL, and what to call the database in messages (the URL without its password).
    Postgres {
        url: String,
        name: String,
    },
}

impl TryFrom<String> for Database {
    type Error = String;

    fn try_from(text: String) -> Result<Database, String> {
        if !(text.starts_with("postgres://") || text.starts_with("postgresql://")) {
            return Ok(Database::Sqlite(text.into()));
        }
        let options = text.parse::<sqlx::postgres::PgConnectOptions>().map_err(|e| {
            format!("`database` is not a valid PostgreSQL URL ({e}); write it as postgres://USER:PASSWORD@HOST:PORT/DATABASE")
        })?;
        let name = format!(
            "the PostgreSQL database {} on {}:{} as {}",
            options.get_database().unwrap_or(options.get_username()),
            options.get_host(),
            options.get_port(),
            options.get_username()
        );
        Ok(Database::Postgres { url: text, name })
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "the SQLite database {}", path.display()),
            Database::Postgres { name, .. } => f.write_str(name),
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    pub sso_region: String,
    #[serde(default = "default_app_id")]
    pub app_id: String,
    #[serde(default = "default_sync_interval")]
    pub sync_interval_secs: u64,
}

/// The drift sweep: after a catalog sync, the account assignments AWS reports are compared with the grants.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DriftConfig {
    /// The least time between two sweeps; when shorter than `aws.sync_interval_secs`, the catalog is synced this
    /// often instead. Absent: a sweep after every sync.
    #[serde(default, with = "duration")]
    pub interval: i64,
    /// Permission sets (by name) whose unexplained user assignments are removed; those of other permission sets
    /// are only reported. Opt-in, because an assignment made outside Cone may be on purpose.
    #[serde(default)]
    pub remove_unexplained: Vec<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub name: String,
    /// Which entitlements the policy covers; an absent field matches everything.
    #[serde(default, rename = "match")]
    pub matches: Match,
    #[serde(with = "duration")]
    pub max_duration: i64,
    /// How many times one grant may be extended.
    #[serde(default = "default_max_extensions")]
    pub max_extensions: i64,
    #[serde(default)]
    pub form: Vec<FormField>,
    pub steps: Vec<StepConfig>,
    /// The steps of emergency requests (`--emergency-access`, or escalated while pending); none means the
    /// policy has no emergency access.
    #[serde(default)]
    pub emergency_steps: Option<Vec<StepConfig>>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Match {
    pub account: Option<String>,
    pub permission_set: Option<String>,
}

/// `accept`, `reject`, or `{ approval: { group: NAME } }`.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum StepConfig {
    Named(NamedStep),
    Approval { approval: ApprovalConfig },
}

#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NamedStep {
    Accept,
    Reject,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ApprovalConfig {
    pub group: String,
}

/// The policy in force for one entitlement.
#[derive(Debug, Clone)]
pub struct Resolved {
    pub name: String,
    pub max_duration: i64,
    pub max_extensions: i64,
    pub form: Vec<FormField>,
    pub steps: Vec<Step>,
    pub emergency_steps: Option<Vec<Step>>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        let config: Config = serde_yaml::from_str(&text)
            .with_context(|| format!("{} is not a valid cone-server configuration", path.display()))?;
        for p in &config.policies {
            if p.steps.is_empty() {
                bail!(
                    "policy \"{}\" in {} has no steps; add `accept`, `reject` or an approval",
                    p.name,
                    path.display()
                );
            }
        }
        Ok(config)
    }

    /// The first policy whose match covers the entitlement. Entitlements no policy covers are denied, so that
    /// forgetting a policy never grants access.
    pub fn policy_for(&self, account_name: &str, permission_set: &str) -> Resolved {
        let found = self.policies.iter().find(|p| {
            p.matches.account.as_deref().is_none_or(|a| a == account_name)
                && p.matches.permission_set.as_deref().is_none_or(|ps| ps == permission_set)
        });
        match found {
            Some(p) => Resolved {
                name: p.name.clone(),
                max_duration: p.max_duration,
                max_extensions: p.max_extensions,
                form: p.form.clone(),
                steps: steps(&p.steps),
                emergency_steps: p.emergency_steps.as_deref().map(steps),
            },
            None => Resolved {
                name: "no matching policy".into(),
                max_duration: 3600,
                max_extensions: 0,
                form: vec![],
                steps: vec![Step::Reject],
                emergency_steps: None,
            },
        }
    }
}

fn steps(configured: &[StepConfig]) -> Vec<Step> {
    configured
        .iter()
        .map(|s| match s {
            StepConfig::Named(NamedStep::Accept) => Step::Accept,
            StepConfig::Named(NamedStep::Reject) => Step::Reject,
            StepConfig::Approval { approval } => Step::Approval { group: approval.group.clone() },
        })
        .collect()
}

fn default_listen() -> String {
    "127.0.0.1:8480".into()
}
fn default_duration() -> i64 {
    3600
}
fn default_pending_timeout() -> i64 {
    24 * 3600
}
fn default_job_lease() -> i64 {
    300
}
fn default_max_extensions() -> i64 {
    2
}
fn default_app_id() -> String {
    "aws".into()
}
fn default_sync_interval() -> u64 {
    300
}

mod duration {
    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = String::deserialize(d)?;
        cone_core::duration::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_policies_and_resolves_first_match() {
        let config: Config = serde_yaml::from_str(
            r#"
database: /tmp/x.db
aws: { sso_region: us-east-1 }
policies:
  - name: deny-sandbox-admin
    match: { account: Sandbox, permission_set: AdministratorAccess }
    max_duration: 1h
    steps: [reject]
  - name: admin
    match: { permission_set: AdministratorAccess }
    max_duration: 1h
    steps: [{ approval: { group: approvers } }]
  - name: dba
    match: { permission_set: DatabaseAdministrator }
    max_duration: 1h
    form: [{ name: ticket, required: true }]
    steps: [accept]
"#,
        )
        .unwrap();
        assert_eq!(config.policy_for("Sandbox", "AdministratorAccess").steps, vec![Step::Reject]);
        assert_eq!(
            config.policy_for("Production", "AdministratorAccess").steps,
            vec![Step::Approval { group: "approvers".into() }]
        );
        assert_eq!(config.policy_for("Production", "DatabaseAdministrator").form.len(), 1);
        assert_eq!(config.policy_for("Production", "Other").steps, vec![Step::Reject]);
        assert_eq!(config.default_duration, 3600);
        assert_eq!(config.drift.interval, 0);
        assert!(config.drift.remove_unexplained.is_empty());
    }

    #[test]
    fn parses_the_drift_section() {
        let config: Config = serde_yaml::from_str(
            "database: /tmp/x.db\naws: { sso_region: us-east-1 }\n\
             drift: { interval: 5m, remove_unexplained: [AdministratorAccess] }\n",
        )
        .unwrap();
        assert_eq!(config.drift.interval, 300);
        assert_eq!(config.drift.remove_unexplained, vec!["AdministratorAccess".to_string()]);
        let typo = serde_yaml::from_str::<Config>(
            "database: /tmp/x.db\naws: { sso_region: us-east-1 }\ndrift: { interval: 5m, remove: [A] }\n",
        );
        assert!(typo.is_err());
    }

    #[test]
    fn database_is_a_sqlite_path_or_a_postgres_url() {
        let parse = |text: &str| Database::try_from(text.to_string());
        assert_eq!(parse("/var/lib/cone/cone.db"), Ok(Database::Sqlite("/var/lib/cone/cone.db".into())));
        let pg = parse("postgres://cone:secret@db.internal:6432/cone").unwrap();
        assert_eq!(pg.to_string(), "the PostgreSQL database cone on db.internal:6432 as cone");
        let bad = parse("postgres://cone@db.internal:notaport/cone").unwrap_err();
        assert!(bad.contains("not a valid PostgreSQL URL") && bad.contains("postgres://USER:PASSWORD@HOST"), "{bad}");
    }
}
