//! The server's YAML configuration: where it listens, where it stores, and the policies.

use std::path::{Path, PathBuf};

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use cone_api::FormField;
use cone_core::catalog::{AccessProfile, Catalog, ManagementRule, Selector, Target};
use cone_core::policy::{Approvers, Step};
use serde::Deserialize;
use serde_yaml::Value;

use crate::rules::{Condition, Facts, Request, Requester};
use crate::webhooks::SecretSource;

#[derive(Debug, Deserialize)]
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
    pub identities: Identities,
    /// Who administers Cone: the drift report and every task. Nobody, unless listed.
    #[serde(default)]
    pub admins: Admins,
    /// The access sections ([`ACCESS_SECTIONS`]), read as they are written to become the file's access document;
    /// [`Config::parse`] checks them typed.
    #[serde(default)]
    access_profiles: Option<Value>,
    #[serde(default)]
    entitlement_management: Option<Value>,
    #[serde(default)]
    policies: Option<Value>,
    /// The file's access sections as a document of their own, as the database keeps it ("" when the file has none).
    #[serde(skip)]
    pub access_document: String,
    /// What the file's access document says, compiled.
    #[serde(skip)]
    pub access: Access,
    /// Outgoing webhooks for task and grant events (`docs/webhooks.md`).
    #[serde(default, rename = "webhooks")]
    webhook_configs: Vec<WebhookConfig>,
    #[serde(skip)]
    pub webhooks: Vec<Webhook>,
    /// Console sign-in through an OpenID Connect provider, beside local passwords.
    #[serde(default, rename = "oidc")]
    oidc_config: Option<OidcConfig>,
    #[serde(skip)]
    pub oidc: Option<Oidc>,
}

/// The sections of the configuration that say who may request what and how it is decided. They form the access
/// document, which changes while servers run (`PUT /api/v1/config`) and is kept with its history in the database.
pub const ACCESS_SECTIONS: [&str; 3] = ["access_profiles", "entitlement_management", "policies"];

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
}

/// An access document, compiled: the catalog and the policies, and the version of the document they come from.
#[derive(Debug)]
pub struct Access {
    /// The document's version in the database; 0 until the start-up has recorded it.
    pub version: i64,
    pub catalog: Catalog,
    policies: Vec<Policy>,
    no_policy: Policy,
}

impl Default for Access {
    fn default() -> Access {
        Access { version: 0, catalog: Catalog::default(), policies: vec![], no_policy: Policy::none_matches() }
    }
}

impl Access {
    /// The first policy whose match covers the entitlement, or one that denies.
    pub fn policy_for(&self, account_name: &str, permission_set: &str) -> &Policy {
        self.policies
            .iter()
            .find(|p| p.matches.matches(&Target { account: account_name, permission_set }))
            .unwrap_or(&self.no_policy)
    }

    /// The policies in the order they are matched.
    pub fn policies(&self) -> &[Policy] {
        &self.policies
    }
}

/// A webhook as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct WebhookConfig {
    name: String,
    url: String,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    /// Only to refuse it with a clear message: the secret stays out of the configuration file.
    #[serde(default)]
    secret: Option<Value>,
    events: Vec<String>,
    #[serde(default = "default_webhook_attempts")]
    max_attempts: i64,
}

/// A checked webhook. Its secret is read when the server starts (`webhooks::Sender`), so that the other commands
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
    fn compile(self) -> Result<Webhook> {
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

/// Where the secret of `owner` (as messages name it) comes from: exactly one of an environment variable and a file.
/// A secret written inline (`inline`) is refused, since configuration files often live in git; `file_stem` names
/// the example file.
fn secret_source(
    owner: &str,
    file_stem: &str,
    inline: bool,
    env: Option<String>,
    file: Option<PathBuf>,
) -> Result<SecretSource> {
    match (inline, env, file) {
        (true, _, _) => bail!(
            "{owner}: the secret may not be written in the configuration; put it in a file \
             (`secret_file: /etc/cone/{file_stem}.secret`, mode 0600) or an environment variable (`secret_env: NAME`)"
        ),
        (false, Some(var), None) if !var.is_empty() => Ok(SecretSource::Env(var)),
        (false, None, Some(path)) => Ok(SecretSource::File(path)),
        _ => bail!("{owner}: give exactly one of `secret_env` and `secret_file`"),
    }
}

/// An OpenID Connect provider as written.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct OidcConfig {
    name: String,
    issuer: String,
    client_id: String,
    #[serde(default)]
    secret_env: Option<String>,
    #[serde(default)]
    secret_file: Option<PathBuf>,
    /// Only to refuse them with a clear message: the secret stays out of the configuration file.
    #[serde(default)]
    client_secret: Option<Value>,
    #[serde(default)]
    secret: Option<Value>,
    #[serde(default = "default_oidc_claim")]
    claim: String,
    #[serde(default)]
    match_user_by: Option<UserField>,
}

/// The ID token claims that may identify a person: the standard claims that name one.
pub const OIDC_CLAIMS: [&str; 3] = ["email", "preferred_username", "sub"];

/// What of a Cone user the provider's claim must equal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
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
    fn compile(self) -> Result<Oidc> {
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
        let secret = secret_source("oidc", "oidc", inline, self.secret_env, self.secret_file)?;
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
    /// Whether the connector reads AWS Organizations (`BATON_GLOBAL_AWS_ORGS_ENABLED`, not in the file): then IAM is
    /// read in each member account too.
    #[serde(skip)]
    pub organizations: bool,
}

impl AwsConfig {
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

/// People data Identity Center lacks, for policies: each user's manager and free-form attributes.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identities {
    #[serde(default)]
    pub users: Vec<Identity>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Admins {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
}

impl Admins {
    pub fn include(&self, username: &str, groups: &[String]) -> bool {
        self.users.iter().any(|u| u == username) || groups.iter().any(|g| self.groups.contains(g))
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Identity {
    pub name: String,
    #[serde(default)]
    pub manager: Option<String>,
    #[serde(default)]
    pub attributes: BTreeMap<String, String>,
}

/// A policy as written; `steps` and `emergency_steps` are compiled by `Config::parse`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
struct PolicyConfig {
    name: String,
    #[serde(default, rename = "match")]
    matches: Selector,
    #[serde(with = "duration")]
    max_duration: i64,
    #[serde(default = "default_max_extensions")]
    max_extensions: i64,
    /// Checked by [`form`], which rejects misspelt keys that the wire type ignores.
    #[serde(default)]
    form: Vec<Value>,
    steps: Value,
    #[serde(default)]
    emergency_steps: Option<Value>,
}

#[derive(Debug)]
pub struct Policy {
    pub name: String,
    pub matches: Selector,
    pub max_duration: i64,
    /// How many times one grant may be extended.
    pub max_extensions: i64,
    pub form: Vec<FormField>,
    pub steps: Branches,
    /// The steps of emergency requests (`--emergency-access`, or escalated while pending); none means the
    /// policy has no emergency access.
    pub emergency_steps: Option<Branches>,
}

/// Branches tried in order; the last has no condition, so one always applies.
#[derive(Debug)]
pub struct Branches(Vec<Branch>);

#[derive(Debug)]
struct Branch {
    when: Option<Condition>,
    steps: Vec<StepConfig>,
}

/// A step as configured: owners and the manager become people when a request is filed.
#[derive(Debug, Clone, PartialEq)]
enum StepConfig {
    Accept,
    Reject,
    Wait(i64),
    Approval { from: From, count: u32 },
}

#[derive(Debug, Clone, PartialEq)]
enum From {
    Users(Vec<String>),
    Group(String),
    Owners,
    Manager,
    Requester,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalConfig {
    group: Option<String>,
    users: Option<Vec<String>>,
    from: Option<String>,
    #[serde(default = "one")]
    count: u32,
}

impl Policy {
    /// Policy for entitlements no policy covers: denied, so that forgetting a policy never grants access.
    fn none_matches() -> Policy {
        Policy {
            name: "no matching policy".into(),
            matches: Selector::default(),
            max_duration: 3600,
            max_extensions: 0,
            form: vec![],
            steps: Branches(vec![Branch { when: None, steps: vec![StepConfig::Reject] }]),
            emergency_steps: None,
        }
    }
}

impl Branches {
    /// The steps of the first branch whose condition holds, with owners and the manager made people.
    pub fn choose(&self, facts: &Facts, policy: &str, owners: &[String]) -> Vec<Step> {
        let branch = self.0.iter().find(|b| b.when.as_ref().is_none_or(|c| c.holds(facts, policy)));
        // Unreachable while the last branch has no condition; denying keeps it safe if that ever changes.
        let Some(branch) = branch else { return vec![Step::Reject] };
        branch
            .steps
            .iter()
            .map(|s| match s {
                StepConfig::Accept => Step::Accept,
                StepConfig::Reject => Step::Reject,
                StepConfig::Wait(secs) => Step::Wait { secs: *secs },
                StepConfig::Approval { from, count } => {
                    let from = match from {
                        From::Users(names) => Approvers::Users(names.clone()),
                        From::Group(group) => Approvers::Group(group.clone()),
                        From::Owners => Approvers::Owners(owners.to_vec()),
                        From::Manager => Approvers::Manager(facts.requester.manager.clone()),
                        From::Requester => Approvers::Requester,
                    };
                    Step::Approval { from, count: *count }
                }
            })
            .collect()
    }
}

impl Config {
    pub fn load(path: &Path) -> Result<Config> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the configuration file {}", path.display()))?;
        Config::parse(&text).with_context(|| format!("{} is not a valid cone-server configuration", path.display()))
    }

    pub fn parse(text: &str) -> Result<Config> {
        let mut config: Config = serde_yaml::from_str(text)?;
        let mut names = std::collections::HashSet::new();
        for u in &config.identities.users {
            if !names.insert(u.name.as_str()) {
                bail!("identities.users lists \"{}\" twice; merge the two entries", u.name);
            }
        }
        let sections = [config.access_profiles.take(), config.entitlement_management.take(), config.policies.take()];
        let document: serde_yaml::Mapping =
            ACCESS_SECTIONS.iter().zip(sections).filter_map(|(key, value)| Some((Value::from(*key), value?))).collect();
        if !document.is_empty() {
            config.access_document = serde_yaml::to_string(&document)?;
            // Typed from the file's own text, so that mistakes are reported at their line there.
            config.access = config.compile_access(serde_yaml::from_str(text)?)?;
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
        Ok(config)
    }

    /// Compiles an access document (YAML with only [`ACCESS_SECTIONS`]) against these settings, which its
    /// policies refer to (owners, identities' attributes, the pending timeout).
    pub fn access(&self, document: &str) -> Result<Access> {
        let top: Option<serde_yaml::Mapping> = serde_yaml::from_str(document)?;
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
            Some(_) => self.compile_access(serde_yaml::from_str(document)?),
        }
    }

    fn compile_access(&self, sections: AccessSections) -> Result<Access> {
        let catalog = Catalog { profiles: sections.access_profiles, rules: sections.entitlement_management };
        catalog.check().map_err(|e| anyhow!(e))?;
        let policies = sections.policies.into_iter().map(|p| self.compile(p)).collect::<Result<_>>()?;
        Ok(Access { catalog, policies, ..Access::default() })
    }

    fn compile(&self, p: PolicyConfig) -> Result<Policy> {
        let form = form(&p.form).with_context(|| format!("policy \"{}\"", p.name))?;
        let samples = self.samples(&p, &form);
        let steps = self.branches(&p.steps, &samples).with_context(|| format!("policy \"{}\", steps", p.name))?;
        let emergency_steps = p
            .emergency_steps
            .as_ref()
            .map(|v| self.branches(v, &samples))
            .transpose()
            .with_context(|| format!("policy \"{}\", emergency_steps", p.name))?;
        Ok(Policy {
            name: p.name,
            matches: p.matches,
            max_duration: p.max_duration,
            max_extensions: p.max_extensions,
            form,
            steps,
            emergency_steps,
        })
    }

    /// Requests to try conditions on: ordinary and emergency, short and at the maximum, with every attribute some
    /// identity has and every field of the policy's form, so that a misspelt name fails at load.
    fn samples(&self, p: &PolicyConfig, form: &[FormField]) -> Vec<Facts> {
        let attributes: BTreeMap<String, String> = self
            .identities
            .users
            .iter()
            .flat_map(|u| u.attributes.keys())
            .map(|k| (k.clone(), String::new()))
            .collect();
        let form = cone_core::form::sample(form);
        [(false, 60, "grant"), (true, p.max_duration, "extend")]
            .into_iter()
            .map(|(emergency, secs, kind)| Facts {
                requester: Requester {
                    name: "sample".into(),
                    email: "sample@example.com".into(),
                    groups: vec!["sample".into()],
                    manager: emergency.then(|| "sample-manager".into()),
                    attributes: attributes.clone(),
                },
                entitlement: crate::rules::Entitlement {
                    app: self.aws.app_id.clone(),
                    account_id: "000000000000".into(),
                    account_name: p.matches.account.clone().unwrap_or_default(),
                    permission_set: p.matches.permission_set.clone().unwrap_or_default(),
                },
                request: Request { form: form.clone(), ..Request::new(kind, secs, emergency, "sample") },
                now: crate::rules::timestamp(chrono::Utc::now()),
            })
            .collect()
    }

    /// A list of steps, or a list of branches (`{ when: CEL, steps: [...] }`) ending in `{ otherwise: [...] }`.
    fn branches(&self, value: &Value, samples: &[Facts]) -> Result<Branches> {
        let Some(items) = value.as_sequence().filter(|items| !items.is_empty()) else {
            bail!("give a list of steps (`accept`, `reject`, a wait or an approval), or of branches");
        };
        let is_branch = |v: &Value| ["when", "otherwise"].iter().any(|k| v.get(k).is_some());
        if !items.iter().any(is_branch) {
            return Ok(Branches(vec![Branch { when: None, steps: self.steps(value)? }]));
        }
        let mut branches = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let n = i + 1;
            let last = n == items.len();
            let keys: Vec<&str> = item.as_mapping().into_iter().flatten().filter_map(|(k, _)| k.as_str()).collect();
            let branch = match (item.get("when"), item.get("otherwise")) {
                (Some(when), None) if keys.len() == 2 && item.get("steps").is_some() => {
                    let source = when.as_str().with_context(|| format!("branch {n}: `when` must be a string"))?;
                    let when = Condition::compile(source, samples).map_err(|e| anyhow!("branch {n}: {e}"))?;
                    let steps = self.steps(&item["steps"]).with_context(|| format!("branch {n} (when {source})"))?;
                    Branch { when: Some(when), steps }
                }
                (None, Some(steps)) if keys.len() == 1 && last => {
                    Branch { when: None, steps: self.steps(steps).context("otherwise")? }
                }
                (None, Some(_)) if keys.len() == 1 => bail!("branch {n}: `otherwise` must be the last branch"),
                _ => bail!("branch {n} must be `{{ when: CEL, steps: [...] }}` or a final `{{ otherwise: [...] }}`"),
            };
            branches.push(branch);
        }
        if branches.last().is_some_and(|b| b.when.is_some()) {
            bail!(
                "the branches need a final `otherwise: [...]` for requests no condition matches; use [reject] to deny them"
            );
        }
        Ok(Branches(branches))
    }

    fn steps(&self, value: &Value) -> Result<Vec<StepConfig>> {
        let Some(items) = value.as_sequence().filter(|items| !items.is_empty()) else {
            bail!("give a non-empty list of steps: `accept`, `reject`, `{{ wait: 1h }}` or `{{ approval: {{...}} }}`");
        };
        let steps = items
            .iter()
            .enumerate()
            .map(|(i, item)| self.step(item).with_context(|| format!("step {}", i + 1)))
            .collect::<Result<Vec<_>>>()?;
        // The manager and the requester are one person each, and one person's approval counts for one step.
        for (single, name) in [(From::Manager, "manager"), (From::Requester, "self")] {
            let n = steps.iter().filter(|s| matches!(s, StepConfig::Approval { from, .. } if *from == single)).count();
            if n > 1 {
                bail!("{n} steps ask approval from {name}, one person who can approve only one of them; keep one");
            }
        }
        Ok(steps)
    }

    fn step(&self, item: &Value) -> Result<StepConfig> {
        let unknown = "use `accept`, `reject`, `{ wait: 1h }` or `{ approval: { group | users | from, count } }`";
        if let Some(name) = item.as_str() {
            return match name {
                "accept" => Ok(StepConfig::Accept),
                "reject" => Ok(StepConfig::Reject),
                other => bail!("unknown step \"{other}\"; {unknown}"),
            };
        }
        if let Some(wait) = item.get("wait") {
            let text = wait.as_str().context("`wait` takes a duration such as 30m")?;
            let secs = cone_core::duration::parse(text).map_err(|e| anyhow!(e))?;
            if secs >= self.pending_timeout {
                bail!(
                    "wait {text} is not shorter than pending_timeout ({}), so requests would time out while waiting",
                    cone_core::duration::format(self.pending_timeout)
                );
            }
            return Ok(StepConfig::Wait(secs));
        }
        let Some(approval) = item.get("approval") else { bail!("unknown step; {unknown}") };
        let a: ApprovalConfig = serde_yaml::from_value(approval.clone()).context("approval")?;
        let from = match (a.group, a.users, a.from.as_deref()) {
            (Some(group), None, None) => From::Group(group),
            (None, Some(users), None) if a.count as usize <= users.len() => From::Users(users),
            (None, Some(users), None) => bail!("approval asks {} of {} users", a.count, users.len()),
            (None, None, Some("owners")) if self.aws.owners.is_empty() => {
                bail!("approval from owners, but `aws.owners` lists nobody; add the app's owners there")
            }
            (None, None, Some("owners")) => From::Owners,
            (None, None, Some("manager")) => From::Manager,
            (None, None, Some("self")) if a.count == 1 => From::Requester,
            (None, None, Some("self")) => bail!("a `self` approval is one acknowledgment; drop `count`"),
            (None, None, Some(other)) => bail!("approval from \"{other}\"; `from` is owners, manager or self"),
            _ => bail!("an approval needs exactly one of `group`, `users` or `from`"),
        };
        if a.count == 0 {
            bail!("approval `count` must be at least 1");
        }
        Ok(StepConfig::Approval { from, count: a.count })
    }

    /// The configured identity of a user, if any.
    pub fn identity(&self, name: &str) -> Option<&Identity> {
        self.identities.users.iter().find(|u| u.name == name)
    }
}

/// A policy's form fields, each with only known keys, and together consistent.
fn form(values: &[Value]) -> Result<Vec<FormField>> {
    const KEYS: [&str; 9] =
        ["name", "type", "description", "required", "min_length", "max_length", "min", "max", "max_items"];
    let fields = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let name = v.get("name").and_then(Value::as_str).map_or(format!("{}", i + 1), |n| format!("\"{n}\""));
            let keys = v.as_mapping().into_iter().flatten().map(|(k, _)| k.as_str().unwrap_or_default());
            if let Some(key) = keys.into_iter().find(|k| !KEYS.contains(k)) {
                bail!("form field {name}: unknown key `{key}`; the keys are {}", KEYS.join(", "));
            }
            serde_yaml::from_value(v.clone()).with_context(|| format!("form field {name}"))
        })
        .collect::<Result<Vec<FormField>>>()?;
    cone_core::form::check_definitions(&fields).map_err(|e| anyhow!(e))?;
    Ok(fields)
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
fn one() -> u32 {
    1
}
fn default_app_id() -> String {
    "aws".into()
}
fn default_sync_interval() -> u64 {
    300
}
/// With backoff capped at an hour, 15 attempts span about five hours.
fn default_oidc_claim() -> String {
    "email".into()
}
fn default_webhook_attempts() -> i64 {
    15
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

    const HEAD: &str = "database: /tmp/x.db\naws: { sso_region: us-east-1, owners: [carol] }\n";

    fn parse(body: &str) -> Result<Config> {
        Config::parse(&format!("{HEAD}{body}"))
    }

    fn error(body: &str) -> String {
        format!("{:#}", parse(body).unwrap_err())
    }

    fn facts(groups: &[&str], duration_secs: i64, manager: Option<&str>) -> Facts {
        Facts {
            requester: Requester {
                name: "alice".into(),
                email: String::new(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                manager: manager.map(String::from),
                attributes: BTreeMap::new(),
            },
            entitlement: crate::rules::Entitlement {
                app: "aws".into(),
                account_id: "1".into(),
                account_name: "Production".into(),
                permission_set: "AdministratorAccess".into(),
            },
            request: Request::new("grant", duration_secs, false, ""),
            now: crate::rules::timestamp(chrono::Utc::now()),
        }
    }

    fn group(g: &str, count: u32) -> Step {
        Step::Approval { from: Approvers::Group(g.into()), count }
    }

    #[test]
    fn parses_policies_and_resolves_first_match() {
        let config = parse(
            r#"
policies:
  - name: deny-sandbox-admin
    match: { account: Sandbox, permission_set: AdministratorAccess }
    max_duration: 1h
    steps: [reject]
  - name: admin
    match: { permission_set: AdministratorAccess }
    max_duration: 1h
    steps: [{ approval: { group: approvers } }]
    emergency_steps: [accept]
  - name: dba
    match: { permission_set: DatabaseAdministrator }
    max_duration: 1h
    form: [{ name: ticket, required: true }]
    steps: [accept]
"#,
        )
        .unwrap();
        let steps = |account, ps| config.access.policy_for(account, ps).steps.choose(&facts(&[], 60, None), "p", &[]);
        assert_eq!(steps("Sandbox", "AdministratorAccess"), vec![Step::Reject]);
        assert_eq!(steps("Production", "AdministratorAccess"), vec![group("approvers", 1)]);
        assert_eq!(config.access.policy_for("Production", "DatabaseAdministrator").form.len(), 1);
        assert_eq!(steps("Production", "Other"), vec![Step::Reject]);
        assert_eq!(config.access.policy_for("Production", "Other").name, "no matching policy");
        assert!(config.access.policy_for("Production", "AdministratorAccess").emergency_steps.is_some());
        assert_eq!(config.default_duration, 3600);
        assert_eq!(config.drift.interval, 0);
        assert!(config.drift.remove_unexplained.is_empty());
    }

    #[test]
    fn branches_choose_steps_by_condition() {
        let config = parse(
            r#"
identities:
  users:
    - { name: alice, manager: dave, attributes: { team: data } }
policies:
  - name: admin
    max_duration: 8h
    steps:
      - when: request.duration > duration('1h')
        steps: [{ approval: { group: approvers, count: 2 } }, { wait: 10m }]
      - when: "'oncall' in requester.groups && requester.attributes.team == 'data'"
        steps: [{ approval: { from: manager } }, { approval: { from: self } }]
      - otherwise: [{ approval: { users: [bob, carol] } }, { approval: { from: owners } }]
"#,
        )
        .unwrap();
        let p = config.access.policy_for("Production", "AdministratorAccess");
        let owners = &config.aws.owners;
        assert_eq!(
            p.steps.choose(&facts(&[], 7200, None), "admin", owners),
            vec![group("approvers", 2), Step::Wait { secs: 600 }]
        );
        let mut oncall = facts(&["oncall"], 600, Some("dave"));
        oncall.requester.attributes.insert("team".into(), "data".into());
        assert_eq!(
            p.steps.choose(&oncall, "admin", owners),
            vec![
                Step::Approval { from: Approvers::Manager(Some("dave".into())), count: 1 },
                Step::Approval { from: Approvers::Requester, count: 1 },
            ]
        );
        // Without the attribute the second condition fails to evaluate, counts as false, and `otherwise` applies.
        assert_eq!(
            p.steps.choose(&facts(&["oncall"], 600, None), "admin", owners),
            vec![
                Step::Approval { from: Approvers::Users(vec!["bob".into(), "carol".into()]), count: 1 },
                Step::Approval { from: Approvers::Owners(vec!["carol".into()]), count: 1 },
            ]
        );
        assert_eq!(config.identity("alice").and_then(|u| u.manager.as_deref()), Some("dave"));
    }

    #[test]
    fn mistakes_name_the_policy_and_the_branch() {
        let policy = |steps: &str| format!("policies:\n  - name: admin\n    max_duration: 1h\n    steps: {steps}\n");
        let cases = [
            ("[aprove]", "policy \"admin\", steps: step 1: unknown step \"aprove\""),
            ("[]", "policy \"admin\", steps: give a list of steps"),
            ("[{ approval: { group: a, users: [b] } }]", "exactly one of `group`, `users` or `from`"),
            ("[{ approval: { users: [b], count: 2 } }]", "approval asks 2 of 1 users"),
            ("[{ approval: { from: self, count: 2 } }]", "a `self` approval is one acknowledgment"),
            ("[{ approval: { from: boss } }]", "`from` is owners, manager or self"),
            ("[{ approval: { group: a, cuont: 2 } }]", "unknown field `cuont`"),
            ("[{ approval: { from: manager } }, { approval: { from: manager } }]", "2 steps ask approval from manager"),
            ("[{ wait: 2d }]", "wait 2d is not shorter than pending_timeout (24h)"),
            ("[{ when: 'true', steps: [accept] }]", "need a final `otherwise"),
            ("[{ otherwise: [accept] }, { when: 'true', steps: [accept] }]", "branch 1: `otherwise` must be the last"),
            (
                "[{ when: 'request.duration >', steps: [accept] }, { otherwise: [reject] }]",
                "branch 1: `request.duration >` is not a valid CEL",
            ),
            (
                "[{ when: 'requester.grups.size() > 0', steps: [accept] }, { otherwise: [reject] }]",
                "policy \"admin\", steps: branch 1: `requester.grups.size() > 0` fails",
            ),
            ("[{ when: 'request.duration', steps: [accept] }, { otherwise: [reject] }]", "must be true or false"),
            ("[{ when: 'requester.attributes.team == \"x\"', steps: [accept] }, { otherwise: [reject] }]", "fails"),
            (
                "[{ when: 'true', steps: [bogus] }, { otherwise: [reject] }]",
                "branch 1 (when true): step 1: unknown step",
            ),
        ];
        for (steps, expected) in cases {
            let message = error(&policy(steps));
            assert!(message.contains(expected), "{steps}: {message}");
        }
        let no_owners = Config::parse(
            "database: /tmp/x.db\naws: { sso_region: us-east-1 }\npolicies:\n  - name: p\n    max_duration: 1h\n    \
             steps: [{ approval: { from: owners } }]\n",
        );
        assert!(format!("{:#}", no_owners.unwrap_err()).contains("`aws.owners` lists nobody"));
        assert!(error("identities: { users: [{ name: a }, { name: a }] }\n").contains("lists \"a\" twice"));
    }

    #[test]
    fn conditions_may_read_form_fields_and_known_attributes() {
        let config = parse(
            r#"
identities: { users: [{ name: alice, attributes: { team: data } }] }
policies:
  - name: dba
    max_duration: 1h
    form: [{ name: ticket, required: true }]
    steps:
      - when: "request.form.ticket.startsWith('INC-') || requester.attributes.team == 'data'"
        steps: [accept]
      - otherwise: [{ approval: { group: dbas } }]
"#,
        );
        assert!(config.is_ok(), "{:#}", config.err().map(|e| e.to_string()).unwrap_or_default());
    }

    #[test]
    fn typed_form_fields_are_checked_at_load() {
        let policy = |form: &str| {
            format!(
                "policies:\n  - name: dba\n    max_duration: 1h\n    form: {form}\n    steps:\n      \
                 - when: request.form.hosts > 2\n        steps: [reject]\n      - otherwise: [accept]\n"
            )
        };
        let fields = "[{ name: ticket, required: true, max_length: 20, description: The incident }, \
                      { name: hosts, type: integer, min: 1, max: 9 }, { name: regions, type: string_list, max_items: 3 }]";
        let config = parse(&policy(fields)).unwrap();
        let form = &config.access.policy_for("Production", "DatabaseAdministrator").form;
        assert_eq!(form[1].kind, cone_api::FieldType::Integer);
        assert_eq!(form[0].max_length, Some(20));
        let cases = [
            (
                "[{ name: hosts, type: integer, min: 5, max: 1 }]",
                "policy \"dba\": form field \"hosts\": `min` is greater",
            ),
            ("[{ name: hosts, type: integer }, { name: hosts, type: bool }]", "\"hosts\" is defined twice"),
            ("[{ name: hosts, type: integer, max_length: 3 }]", "`max_length` applies to string and string_list"),
            ("[{ name: hosts, type: integer, maximum: 3 }]", "form field \"hosts\": unknown key `maximum`"),
            ("[{ name: hosts, type: number }]", "form field \"hosts\": unknown variant `number`"),
            // The condition compares with an integer, which a string field is not.
            ("[{ name: hosts }]", "request.form.hosts > 2"),
        ];
        for (form, expected) in cases {
            let message = error(&policy(form));
            assert!(message.contains(expected), "{form}: {message}");
        }
    }

    #[test]
    fn parses_the_catalog() {
        let config = parse(
            "access_profiles:\n  - { name: ro, visible_to: { everyone: true }, entitlements: [{ permission_set: R }] }\n\
             entitlement_management:\n  - { match: { account: Sandbox }, requestable: false }\n  \
             - { requestable: true, access_profile: ro }\n",
        )
        .unwrap();
        assert_eq!(config.access.catalog.profiles[0].entitlements[0].permission_set.as_deref(), Some("R"));
        assert!(!config.access.catalog.rules[0].requestable);
        assert!(error("entitlement_management: [{ requestable: true, access_profile: x }]\n").contains("\"x\""));
        assert!(
            error("access_profiles: [{ name: a, visible_to: { everyone: true }, entitlement: [] }]\n")
                .contains("entitlement")
        );
    }

    #[test]
    fn parses_the_drift_section() {
        let config = parse("drift: { interval: 5m, remove_unexplained: [AdministratorAccess] }\n").unwrap();
        assert_eq!(config.drift.interval, 300);
        assert_eq!(config.drift.remove_unexplained, vec!["AdministratorAccess".to_string()]);
        assert!(parse("drift: { interval: 5m, remove: [A] }\n").is_err());
    }

    #[test]
    fn parses_webhooks_and_keeps_their_secrets_out_of_the_file() {
        let config = parse(
            "webhooks:\n  - { name: chat, url: 'https://hooks.example.com/cone', secret_env: CHAT_SECRET, \
             events: [task.*, grant.revoke] }\n  - { name: siem, url: 'http://127.0.0.1:9000/in', \
             secret_file: /etc/cone/siem.secret, events: ['*'], max_attempts: 3 }\n",
        )
        .unwrap();
        let [chat, siem] = &config.webhooks[..] else { panic!("two webhooks: {:?}", config.webhooks) };
        assert_eq!(chat.secret, SecretSource::Env("CHAT_SECRET".into()));
        assert_eq!((chat.events.len(), chat.max_attempts), (2, 15));
        assert_eq!(siem.secret, SecretSource::File("/etc/cone/siem.secret".into()));
        assert_eq!((siem.url.as_str(), siem.max_attempts), ("http://127.0.0.1:9000/in", 3));

        let hook = |fields: &str| format!("webhooks: [{{ name: chat, url: 'https://h.example/x', {fields} }}]\n");
        let cases = [
            ("secret: hunter2hunter2hunter2, events: ['*']", "may not be written in the configuration"),
            ("events: ['*']", "exactly one of `secret_env` and `secret_file`"),
            ("secret_env: A, secret_file: /x, events: ['*']", "exactly one of"),
            ("secret_env: A, events: []", "`events` lists nothing"),
            ("secret_env: A, events: [drift.*]", "unknown event \"drift.*\""),
            ("secret_env: A, events: [grant.revoked]", "unknown event \"grant.revoked\""),
            ("secret_env: A, events: ['*'], max_attempts: 0", "between 1 and 100"),
            ("secret_env: A, events: ['*'], retries: 3", "unknown field `retries`"),
        ];
        for (fields, expected) in cases {
            let message = error(&hook(fields));
            assert!(message.contains(expected), "{fields}: {message}");
            assert!(!message.contains("hunter2"), "the secret is repeated: {message}");
        }
        let bad_url = "webhooks: [{ name: chat, url: 'ftp://h.example/x', secret_env: A, events: ['*'] }]\n";
        assert!(error(bad_url).contains("http:// or https://"));
        let twice = "webhooks: [{ name: a, url: 'https://h.example/1', secret_env: A, events: ['*'] }, \
                     { name: a, url: 'https://h.example/2', secret_env: B, events: ['*'] }]\n";
        assert!(error(twice).contains("two webhooks are named \"a\""));
    }

    #[test]
    fn parses_an_openid_connect_provider_whose_secret_stays_out_of_the_file() {
        let base = "oidc: { name: Okta, issuer: 'https://idp.example.com/', client_id: cone";
        let oidc = parse(&format!("{base}, secret_file: /etc/cone/oidc.secret }}\n")).unwrap().oidc.unwrap();
        assert_eq!(oidc.issuer, "https://idp.example.com");
        assert_eq!(oidc.secret, SecretSource::File("/etc/cone/oidc.secret".into()));
        assert_eq!((oidc.claim.as_str(), oidc.match_user_by), ("email", UserField::Email));
        let by_name = parse(&format!("{base}, secret_env: S, claim: preferred_username }}\n")).unwrap().oidc.unwrap();
        assert_eq!(by_name.match_user_by, UserField::Username);
        let cases = [
            (", client_secret: hunter2hunter2hunter2", "may not be written in the configuration"),
            ("", "exactly one of `secret_env` and `secret_file`"),
            (", secret_env: S, scope: x", "unknown field `scope`"),
            (", secret_env: S, match_user_by: phone", "unknown variant `phone`"),
            (", secret_env: S, claim: upn", "one of email, preferred_username, sub"),
        ];
        for (fields, expected) in cases {
            let message = error(&format!("{base}{fields} }}\n"));
            assert!(message.contains(expected), "{fields}: {message}");
            assert!(!message.contains("hunter2"), "the secret is repeated: {message}");
        }
        let bad_issuer = "oidc: { name: X, issuer: idp.example.com, client_id: c, secret_env: S }\n";
        assert!(error(bad_issuer).contains("`issuer` must be"), "{}", error(bad_issuer));
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
