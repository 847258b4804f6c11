//! The server's YAML configuration: where it listens, where it stores, the access document (`policy`) and the
//! settings that name secrets (`secrets`).

mod notifications;
mod policy;
pub mod reference;
mod reviews;
mod secrets;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, anyhow, bail};
use cone_core::catalog::{AccessProfile, Catalog, ManagementRule, Target};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_yaml_ng::Value;

use notifications::NotificationsConfig;
pub use notifications::{Email, Notifications, Slack, Tls};
use policy::PolicyConfig;
pub use policy::{Branches, Policy};
pub use reviews::ReviewTemplate;
pub use secrets::{Oidc, UserField, Webhook};
use secrets::{OidcConfig, WebhookConfig};

/// The settings of the file's top level; each section below is a key of it.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// The address and port the API, the sign-in page and the console listen on.
    #[serde(default = "default_listen")]
    pub listen: String,
    /// A SQLite database file, or a `postgres://` URL.
    pub database: Database,
    /// The PostgreSQL password, kept out of the URL: the environment variable that holds it.
    #[serde(default)]
    database_password_env: Option<String>,
    /// The PostgreSQL password, kept out of the URL: the file that holds it (such as a mounted Kubernetes Secret).
    #[serde(default)]
    database_password_file: Option<PathBuf>,
    /// The URL people reach the server at (for the device sign-in page); defaults to the listening address.
    #[serde(default)]
    pub public_url: Option<String>,
    /// Where to serve `/metrics` to scrapers without a token (a private address); without it, `/metrics` is on
    /// `listen` for administrators' tokens only.
    #[serde(default)]
    pub metrics_listen: Option<String>,
    /// Rate limits per client on the sign-in endpoints, and the proxies trusted to name the client.
    #[serde(default)]
    pub clients: crate::clients::ClientsConfig,
    /// Identity Center, the connector, and what is synced from and written to AWS.
    pub aws: AwsConfig,
    /// Duration of a grant when the request names none, capped by the policy's maximum.
    #[serde(default = "default_duration", with = "duration")]
    #[schemars(with = "Duration")]
    pub default_duration: i64,
    /// Requests nobody decides within this time are closed as timed out.
    #[serde(default = "default_pending_timeout", with = "duration")]
    #[schemars(with = "Duration")]
    pub pending_timeout: i64,
    /// Comparing what AWS holds with what Cone granted.
    #[serde(default)]
    pub drift: DriftConfig,
    /// How long a worker holds a job it claimed before another worker (or replica) may take it over: the time a
    /// crashed worker's provisioning or revocation waits. It must exceed the longest AWS call of a job.
    #[serde(default = "default_job_lease", with = "duration")]
    #[schemars(with = "Duration")]
    pub job_lease: i64,
    /// How long a server asked to stop (SIGTERM, Ctrl-C) lets its jobs in flight finish. Jobs still running then are
    /// given back for the next server or another replica to take at once. Keep it under the grace period of what
    /// stops the server (Kubernetes gives 30 s, systemd 90 s).
    #[serde(default = "default_stop_grace", with = "duration")]
    #[schemars(with = "Duration")]
    pub stop_grace: i64,
    /// People data Identity Center lacks, for policies, and how many people one sync may offboard.
    #[serde(default)]
    pub identities: Identities,
    /// Who administers Cone: the drift report and every task. Nobody, unless listed.
    #[serde(default)]
    pub admins: Admins,
    // The access sections ([`ACCESS_SECTIONS`]), read as they are written to become the file's access document;
    // [`Config::parse`] checks them typed.
    /// Who sees and may request which entitlements (docs/policies.md). Part of the access document, which
    /// administrators may also change while servers run.
    #[serde(default)]
    #[schemars(with = "Option<Vec<serde_json::Value>>")]
    access_profiles: Option<Value>,
    /// Which entitlements may be requested at all, and the access profile offering them (docs/policies.md).
    #[serde(default)]
    #[schemars(with = "Option<Vec<serde_json::Value>>")]
    entitlement_management: Option<Value>,
    /// How requests are decided: approvals, durations, forms (docs/policies.md).
    #[serde(default)]
    #[schemars(with = "Option<Vec<serde_json::Value>>")]
    policies: Option<Value>,
    /// Access review templates, started by name or on a schedule (docs/reviews.md).
    #[serde(default)]
    #[schemars(with = "Option<Vec<serde_json::Value>>")]
    access_reviews: Option<Value>,
    /// The file's access sections as a document of their own, as the database keeps it ("" when the file has none).
    #[serde(skip)]
    pub access_document: String,
    /// What the file's access document says, compiled.
    #[serde(skip)]
    pub access: Access,
    /// Outgoing webhooks for task, grant and review events (docs/webhooks.md), one entry each.
    #[serde(default, rename = "webhooks")]
    webhook_configs: Vec<WebhookConfig>,
    #[serde(skip)]
    pub webhooks: Vec<Webhook>,
    /// Console sign-in through an OpenID Connect provider, beside local passwords.
    #[serde(default, rename = "oidc")]
    oidc_config: Option<OidcConfig>,
    #[serde(skip)]
    pub oidc: Option<Oidc>,
    /// Telling people about their requests, grants and reviews, by email and Slack (docs/notifications.md).
    #[serde(default, rename = "notifications")]
    notifications_config: NotificationsConfig,
    #[serde(skip)]
    pub notifications: Notifications,
}

/// The sections of the configuration that say who may request what and how it is decided. They form the access
/// document, which changes while servers run (`PUT /api/v1/config`) and is kept with its history in the database.
pub const ACCESS_SECTIONS: [&str; 4] = ["access_profiles", "entitlement_management", "policies", "access_reviews"];

/// The access sections, typed. Unknown top-level keys are ignored here: in the server's file they are its settings,
/// and [`Config::access`] refuses them in a document of its own.
#[derive(Default, Deserialize)]
struct AccessSections {
    /// Who sees and may request which entitlements; none means everyone sees everything.
    #[serde(default)]
    access_profiles: Vec<AccessProfile>,
    /// Which entitlements may be requested at all, and the access profile offering them.
    #[serde(default)]
    entitlement_management: Vec<ManagementRule>,
    #[serde(default)]
    policies: Vec<PolicyConfig>,
    #[serde(default)]
    access_reviews: Vec<ReviewTemplate>,
}

/// An access document, compiled: the catalog and the policies, and the version of the document they come from.
#[derive(Debug)]
pub struct Access {
    /// The document's version in the database; 0 until the start-up has recorded it.
    pub version: i64,
    pub catalog: Catalog,
    policies: Vec<Policy>,
    no_policy: Policy,
    pub reviews: Vec<ReviewTemplate>,
}

impl Default for Access {
    fn default() -> Access {
        Access {
            version: 0,
            catalog: Catalog::default(),
            policies: vec![],
            no_policy: Policy::none_matches(),
            reviews: vec![],
        }
    }
}

impl Access {
    /// The first policy whose match covers the entitlement, or one that denies.
    pub fn policy_for(&self, target: &Target) -> &Policy {
        self.policies.iter().find(|p| p.matches.matches(target)).unwrap_or(&self.no_policy)
    }

    /// The policies in the order they are matched.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }
}

/// Where the server stores: SQLite (embedded, one server) or PostgreSQL (one or more replicas).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, JsonSchema)]
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

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AwsConfig {
    /// The region of the IAM Identity Center instance.
    pub sso_region: String,
    /// Where the connector, which calls AWS, runs (docs/aws-connector.md).
    #[serde(default)]
    pub connector: ConnectorMode,
    /// The app's id in Cone's catalog, which policies and access profiles name.
    #[serde(default = "default_app_id")]
    pub app_id: String,
    /// Seconds between two syncs of the catalog and the people from AWS.
    #[serde(default = "default_sync_interval")]
    pub sync_interval_secs: u64,
    /// The app's owners (usernames), for approvals `from: owners`.
    #[serde(default)]
    pub owners: Vec<String>,
    /// Also sync IAM of the connector's account: users, groups and members, roles and whom they trust (cone-aws's
    /// `--sync-iam`; `CONE_AWS_SYNC_IAM=true` turns it on too).
    #[serde(default)]
    pub sync_iam: bool,
    /// Also sync the access-key inventory, metadata only (cone-aws's `--sync-secrets`; `BATON_SYNC_SECRETS=true`
    /// turns it on too).
    #[serde(default)]
    pub sync_secrets: bool,
    /// Write to AWS: make and remove account assignments (and, with `revoke_sessions`, keep the deny policy).
    /// Without it the server syncs and decides only (sync-only mode); `BATON_PROVISIONING`, when set, decides.
    #[serde(default = "default_true")]
    pub provisioning: bool,
    /// An early end (release, withdrawal, offboarding) also denies the role sessions issued before it, through a
    /// service control policy Cone keeps in AWS Organizations, until they have run out.
    #[serde(default)]
    pub revoke_sessions: bool,
    /// The users Cone creates for people: IAM users for IAM groups' grants, Identity Center users for people who
    /// sign in with a password.
    #[serde(default)]
    pub account_provisioning: AccountProvisioning,
    /// Account-assignment writes outstanding at once, per server (IAM Identity Center allows 10 per instance;
    /// with several replicas, divide it among them).
    #[serde(default = "default_assignment_writes")]
    pub max_assignment_writes: usize,
    /// Whether the connector reads AWS Organizations (`BATON_GLOBAL_AWS_ORGS_ENABLED`, not in the file): then IAM is
    /// read in each member account too.
    #[serde(skip)]
    pub organizations: bool,
}

fn default_true() -> bool {
    true
}

/// `aws.connector`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ConnectorMode {
    /// In the server's process, with the AWS credentials of the server.
    #[default]
    Embedded,
    /// In `cone-aws serve` processes, which hold the AWS credentials and take their work from the server.
    External,
}

fn default_assignment_writes() -> usize {
    cone_aws::DEFAULT_OUTSTANDING_ASSIGNMENT_WRITES
}

/// `aws.account_provisioning`: the users Cone may create for people, and what becomes of them when no grant needs
/// them.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct AccountProvisioning {
    /// Create an IAM user for a person granted an IAM group in an account where Cone made them none. Off, such a
    /// grant fails with a message saying so.
    #[serde(default)]
    pub iam_users: bool,
    /// Create an Identity Center user (user type `cone`, no password) for a person who signs in to Cone with a
    /// password and whom Identity Center does not know, when a grant of theirs is first made; it is deleted like an
    /// IAM user. For the Identity Center directory as identity source; off, such a person cannot request access.
    #[serde(default)]
    pub identity_center_users: bool,
    /// The IAM path of the users Cone creates; Cone never touches a user outside it.
    #[serde(default = "default_iam_path")]
    pub path: String,
    /// Tags on every IAM user Cone creates, beside `cone:identity` (the person's Identity Center user id).
    #[serde(default)]
    pub tags: std::collections::BTreeMap<String, String>,
    /// What becomes of a user when the last grant needing it ends. At offboarding an IAM user is always deleted at
    /// once.
    #[serde(default)]
    pub deprovision: Deprovision,
    /// With `deprovision: delete`, how long after the last grant needing it a user is deleted; at once when absent.
    #[serde(default, with = "duration")]
    #[schemars(with = "Option<Duration>")]
    pub delete_after: i64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Deprovision {
    /// Delete the user, with its keys, password and memberships, after `delete_after`.
    #[default]
    Delete,
    /// Keep an IAM user but delete its console password and deactivate its access keys (Cone gives it neither;
    /// someone may have), so that it cannot act until a grant needs it again. An Identity Center user is kept as
    /// it is: AWS's API cannot disable one, and it holds nothing once its grants ended.
    Disable,
    /// Keep the user as it is (out of the groups its grants gave).
    Keep,
}

impl Default for AccountProvisioning {
    fn default() -> AccountProvisioning {
        AccountProvisioning {
            iam_users: false,
            identity_center_users: false,
            path: default_iam_path(),
            tags: Default::default(),
            deprovision: Deprovision::Delete,
            delete_after: 0,
        }
    }
}

fn default_iam_path() -> String {
    cone_aws::DEFAULT_IAM_USER_PATH.into()
}

impl AwsConfig {
    /// Applies `BATON_PROVISIONING` (`value`, when set) as cone-aws reads it, and refuses what sync-only mode
    /// cannot do.
    pub fn set_provisioning(&mut self, value: Option<&str>) -> Result<()> {
        if let Some(value) = value {
            self.provisioning = match value.trim().to_ascii_lowercase().as_str() {
                "true" | "1" | "yes" | "on" => true,
                "false" | "0" | "no" | "off" | "" => false,
                other => bail!("BATON_PROVISIONING is \"{other}\": set it to true (write to AWS) or false (sync only)"),
            };
        }
        if let Err(problem) = cone_aws::check_iam_path(&self.account_provisioning.path) {
            bail!("aws.account_provisioning.path: {problem}");
        }
        if self.revoke_sessions && !self.provisioning {
            bail!(
                "aws.revoke_sessions writes a policy to AWS, which sync-only mode (BATON_PROVISIONING=false or \
                 aws.provisioning: false) forbids: turn provisioning on or remove aws.revoke_sessions"
            );
        }
        Ok(())
    }

    /// What `Connector::sync_iam` reads, which looks at these features only.
    pub fn iam_features(&self) -> cone_aws::Features {
        cone_aws::Features {
            iam: self.sync_iam,
            secrets: self.sync_secrets,
            organizations: self.organizations,
            ..Default::default()
        }
    }
}

/// The drift sweep: after a catalog sync, the account assignments AWS reports are compared with the grants.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DriftConfig {
    /// The least time between two sweeps; when shorter than `aws.sync_interval_secs`, the catalog is synced this
    /// often instead. Absent: a sweep after every sync.
    #[serde(default, with = "duration")]
    #[schemars(with = "Option<Duration>")]
    pub interval: i64,
    /// Permission sets (by name) whose unexplained user assignments are removed; those of other permission sets
    /// are only reported. Opt-in, because an assignment made outside Cone may be on purpose.
    #[serde(default)]
    pub remove_unexplained: Vec<String>,
}

/// People data Identity Center lacks, for policies (each user's manager and free-form attributes), and how many
/// people one sync may offboard.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identities {
    /// The people who have a manager or attributes, one entry each.
    #[serde(default)]
    pub users: Vec<Identity>,
    /// A sync that would offboard more than this share of the people Cone knows from Identity Center (and more than
    /// ten) offboards nobody and says so: a broken read must not lock the company out.
    #[serde(default = "default_max_offboard_percent")]
    pub max_offboard_percent: u8,
}

impl Default for Identities {
    fn default() -> Self {
        Identities { users: Vec::new(), max_offboard_percent: default_max_offboard_percent() }
    }
}

fn default_max_offboard_percent() -> u8 {
    10
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Admins {
    /// Usernames of administrators.
    #[serde(default)]
    pub users: Vec<String>,
    /// Groups whose members are administrators.
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Admins {
    pub fn include(&self, username: &str, groups: &[String]) -> bool {
        self.users.iter().any(|u| u == username) || groups.iter().any(|g| self.groups.contains(g))
    }
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    /// The person's username.
    pub name: String,
    /// Their manager's username, for approvals `from: manager` and access reviews.
    #[serde(default)]
    pub manager: Option<String>,
    /// Free-form attributes policies match on (`requester.attributes.team`).
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        let mut config = Config::parse(&text)
            .with_context(|| format!("{} is not a valid cone-server configuration", path.display()))?;
        config.read_database_password(|name| std::env::var(name).ok())?;
        Ok(config)
    }

    /// Puts the password that `database_password_env` or `database_password_file` names into the PostgreSQL URL.
    fn read_database_password(&mut self, env: impl Fn(&str) -> Option<String>) -> Result<()> {
        let (var, file) = (self.database_password_env.take(), self.database_password_file.take());
        if var.is_none() && file.is_none() {
            return Ok(());
        }
        let Database::Postgres { url, .. } = &mut self.database else {
            bail!(
                "`database_password_env` and `database_password_file` are for PostgreSQL; a SQLite file has no password"
            );
        };
        let source = secrets::secret_source("database", "database_password", "database-password", false, var, file)?;
        let password = source.read_at_least("database", env, 1)?;
        let password = std::str::from_utf8(password.reveal())
            .map_err(|_| anyhow!("database: the password is not UTF-8 text; PostgreSQL passwords here must be"))?;
        let mut parsed = reqwest::Url::parse(url).context("`database` is not a valid PostgreSQL URL")?;
        if parsed.password().is_some() {
            bail!(
                "`database` has a password in its URL and `database_password_env` or `database_password_file` names                  another; remove the one in the URL"
            );
        }
        parsed
            .set_password(Some(password))
            .map_err(|()| anyhow!("`database` must name a user (postgres://USER@HOST/DATABASE) to take a password"))?;
        *url = parsed.into();
        Ok(())
    }

    pub fn parse(text: &str) -> Result<Config> {
        let mut config: Config = serde_yaml_ng::from_str(text)?;
        let mut names = std::collections::HashSet::new();
        for u in &config.identities.users {
            if !names.insert(u.name.as_str()) {
                bail!("identities.users lists \"{}\" twice; merge the two entries", u.name);
            }
        }
        if config.identities.max_offboard_percent > 100 {
            bail!("identities.max_offboard_percent is a share of the people Cone knows: give a number from 0 to 100");
        }
        let sections = [
            config.access_profiles.take(),
            config.entitlement_management.take(),
            config.policies.take(),
            config.access_reviews.take(),
        ];
        let document: serde_yaml_ng::Mapping =
            ACCESS_SECTIONS.iter().zip(sections).filter_map(|(key, value)| Some((Value::from(*key), value?))).collect();
        if !document.is_empty() {
            config.access_document = serde_yaml_ng::to_string(&document)?;
            // Typed from the file's own text, so that mistakes are reported at their line there.
            config.access = config.compile_access(serde_yaml_ng::from_str(text)?)?;
        }
        config.webhooks = std::mem::take(&mut config.webhook_configs)
            .into_iter()
            .map(WebhookConfig::compile)
            .collect::<Result<_>>()?;
        let mut names = std::collections::HashSet::new();
        if let Some(w) = config.webhooks.iter().find(|w| !names.insert(w.name.as_str())) {
            bail!("two webhooks are named \"{}\"; names must be unique", w.name);
        }
        config.oidc = config.oidc_config.take().map(OidcConfig::compile).transpose()?;
        config.notifications = std::mem::take(&mut config.notifications_config).compile()?;
        Ok(config)
    }

    /// Compiles an access document (YAML with only [`ACCESS_SECTIONS`]) against these settings, which its
    /// policies refer to (owners, identities' attributes, the pending timeout).
    pub fn access(&self, document: &str) -> Result<Access> {
        let top: Option<serde_yaml_ng::Mapping> = serde_yaml_ng::from_str(document)?;
        for key in top.iter().flat_map(|m| m.keys()) {
            let key = key.as_str().unwrap_or("?");
            if !ACCESS_SECTIONS.contains(&key) {
                bail!(
                    "unknown section `{key}`; an access document has only {}, and the server's other settings stay in \
                     its configuration file",
                    ACCESS_SECTIONS.join(", ")
                );
            }
        }
        match top {
            None => Ok(Access::default()),
            Some(_) => self.compile_access(serde_yaml_ng::from_str(document)?),
        }
    }

    fn compile_access(&self, sections: AccessSections) -> Result<Access> {
        let catalog = Catalog { profiles: sections.access_profiles, rules: sections.entitlement_management };
        catalog.check().map_err(|e| anyhow!(e))?;
        let policies = sections.policies.into_iter().map(|p| self.compile(p)).collect::<Result<_>>()?;
        reviews::check(&sections.access_reviews)?;
        Ok(Access { catalog, policies, reviews: sections.access_reviews, ..Access::default() })
    }

    /// The configured identity of a user, if any.
    pub fn identity(&self, name: &str) -> Option<&Identity> {
        self.identities.users.iter().find(|u| u.name == name)
    }
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
fn default_stop_grace() -> i64 {
    20
}
fn default_job_lease() -> i64 {
    300
}
fn default_app_id() -> String {
    "aws".into()
}
fn default_sync_interval() -> u64 {
    300
}

pub(super) mod duration {
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        let text = String::deserialize(d)?;
        cone_core::duration::parse(&text).map_err(serde::de::Error::custom)
    }

    /// For the defaults the configuration reference shows; 0 is "not set", which has no text.
    pub fn serialize<S: Serializer>(secs: &i64, s: S) -> Result<S::Ok, S::Error> {
        match secs {
            0 => s.serialize_none(),
            secs => s.serialize_str(&cone_core::duration::format(*secs)),
        }
    }
}

/// A duration as the configuration writes it, for the schema.
pub(super) struct Duration;

impl JsonSchema for Duration {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Duration".into()
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "type": "string",
            "pattern": "^([0-9]+[wdhms])+$",
            "description": "Numbers with units w, d, h, m or s: `90s`, `15m`, `8h`, `1h30m`, `7d`."
        })
    }
}
