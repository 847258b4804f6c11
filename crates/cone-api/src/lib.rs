//! The JSON that crosses the wire between `cone` and `cone-server`. Nothing else is serialised to the network.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub use cone_core::form::{FieldError, FieldType, FormField};
pub use cone_core::notify::{Channel, Kind as NotificationKind, Preferences};
pub use cone_core::review::{ItemKind as ReviewItemKind, ItemState as ReviewItemState};
pub use cone_core::task::{TaskKind, TaskState};

/// Entitlement kind of an Identity Center permission set in one account.
pub const KIND_AWS_PERMISSION_SET: &str = "aws_permission_set";
/// Membership of an Identity Center group, which gives every permission set the group is assigned.
pub const KIND_AWS_IDC_GROUP_MEMBERSHIP: &str = "aws_idc_group_membership";
/// Membership of an IAM group in one account, through an IAM user Cone creates for the person if need be.
pub const KIND_AWS_IAM_GROUP_MEMBERSHIP: &str = "aws_iam_group_membership";

/// A kind of entitlement in words, for people.
pub fn kind_words(kind: &str) -> &str {
    match kind {
        KIND_AWS_PERMISSION_SET => "permission set",
        KIND_AWS_IDC_GROUP_MEMBERSHIP => "Identity Center group membership",
        KIND_AWS_IAM_GROUP_MEMBERSHIP => "IAM group membership",
        other => other,
    }
}

/// The OAuth client id the CLI uses for device authorization.
pub const CLI_CLIENT_ID: &str = "cone-cli";

/// Stable error codes in [`ApiError::code`].
pub mod codes {
    pub const PENDING_REQUEST_EXISTS: &str = "pending_request_exists";
    pub const FORM_REQUIRED: &str = "form_required";
    /// The request form has invalid fields; [`super::ApiError::fields`] says which and why.
    pub const INVALID_FORM: &str = "invalid_form";
    pub const INVALID_REQUEST: &str = "invalid_request";
    pub const NOT_FOUND: &str = "not_found";
    pub const FORBIDDEN: &str = "forbidden";
    pub const UNAUTHENTICATED: &str = "unauthenticated";
    /// Too many of something at once (device sign-ins in progress, say); try again later.
    pub const TOO_MANY: &str = "too_many";
    pub const INTERNAL: &str = "internal";
    /// The task is not in a state where the action applies (for example cancelling a granted request).
    pub const WRONG_STATE: &str = "wrong_state";
    pub const EXTENSION_REFUSED: &str = "extension_refused";
    pub const NO_EMERGENCY_ACCESS: &str = "no_emergency_access";
    /// The access document does not parse or does not check; the message says where and why.
    pub const INVALID_CONFIG: &str = "invalid_config";
    /// Another version of the access document was applied after the one the change started from.
    pub const STALE_VERSION: &str = "stale_version";
    /// The requester holds the entitlement through an Identity Center group already, so no request is needed.
    pub const HELD_THROUGH_GROUP: &str = "held_through_group";
    /// A name the caller chose belongs to something else (a service account named like a person).
    pub const NAME_TAKEN: &str = "name_taken";
}

/// Every non-2xx API answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiError {
    pub code: String,
    pub message: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub task_id: Option<i64>,
    /// With `invalid_form`: what is wrong with each field.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<FieldError>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Entitlement {
    pub app_id: String,
    /// `<accountId>|<permissionSetArn>` for AWS permission sets, `group|<groupId>` for Identity Center group
    /// memberships, `iam-group|<accountId>|<groupName>` for IAM group memberships.
    pub id: String,
    /// [`KIND_AWS_PERMISSION_SET`], [`KIND_AWS_IDC_GROUP_MEMBERSHIP`] or [`KIND_AWS_IAM_GROUP_MEMBERSHIP`].
    pub kind: String,
    /// A short unique name: `<account>-<role>`, which is also the AWS CLI profile name, `group-<group>`, or
    /// `<account>-iam-<group>`.
    pub alias: String,
    /// The permission set name, or the group name.
    pub display_name: String,
    /// The account name, or `Identity Center` for an Identity Center group.
    pub resource_name: String,
    /// Empty for an Identity Center group.
    pub account_id: String,
    pub role_name: String,
    pub max_duration_secs: i64,
    #[serde(default)]
    pub form: Vec<FormField>,
    /// End of the caller's active grant, if any.
    #[serde(default)]
    pub granted_until: Option<DateTime<Utc>>,
    /// The Identity Center groups through which the caller holds this entitlement (an account assignment to the
    /// group, managed in Identity Center, without an end); empty if none.
    #[serde(default)]
    pub held_through_groups: Vec<String>,
    /// Its policy has emergency (break-glass) steps: `emergency: true` on a request follows them.
    #[serde(default)]
    pub emergency_access: bool,
    /// Whether the caller may request it. A permission set outside the caller's catalog is shown anyway when a
    /// group membership they may request gives it (`through_groups`).
    #[serde(default = "yes")]
    pub requestable: bool,
    /// For a permission set: the group memberships the caller may request that would give it.
    #[serde(default)]
    pub through_groups: Vec<GroupRoute>,
}

/// A group membership entitlement that gives a permission set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GroupRoute {
    pub app_id: String,
    pub id: String,
    pub alias: String,
    /// The group's name.
    pub display_name: String,
}

impl Entitlement {
    /// Whether every word of `query` appears, ignoring case, in its alias, name, account (name or id) or role.
    pub fn matches(&self, query: &str) -> bool {
        let fields = [&self.alias, &self.display_name, &self.resource_name, &self.account_id, &self.role_name];
        cone_core::catalog::words_match(query, &fields.map(String::as_str))
    }

    /// Whether the caller holds it at `now`: through an unexpired grant, or through a group.
    pub fn held_at(&self, now: DateTime<Utc>) -> bool {
        self.granted_until.is_some_and(|t| t > now) || !self.held_through_groups.is_empty()
    }
}

/// Where a holder's access comes from: a grant Cone gave, or an account assignment to one of their groups.
pub const SOURCE_GRANT: &str = "grant";
pub const SOURCE_GROUP: &str = "group";

/// Someone who holds an entitlement (`GET /api/v1/entitlement/holders`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Holder {
    pub username: String,
    pub display_name: String,
    /// `grant` or `group`.
    pub source: String,
    /// With `grant`: the request that gave it.
    #[serde(default)]
    pub task_id: Option<i64>,
    /// With `grant`: when it ends.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// With `group`: the Identity Center group's name.
    #[serde(default)]
    pub group: Option<String>,
}

/// `GET /api/v1/entitlement/holders`: by user name, then source; someone in two groups with the entitlement shows
/// once per group.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct HolderPage {
    pub holders: Vec<Holder>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EntitlementPage {
    pub entitlements: Vec<Entitlement>,
    #[serde(default)]
    pub next_page_token: Option<String>,
    /// With `facets=true`: how many entitlements matching the other filters each account and each kind has.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facets: Option<Facets>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Facets {
    /// By account (`value` its id, empty for Identity Center groups), most entitlements first.
    pub accounts: Vec<Facet>,
    /// By kind (`aws_permission_set`, …), most entitlements first.
    pub kinds: Vec<Facet>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Facet {
    /// What to filter by.
    pub value: String,
    /// For people: an account's name, a kind's words.
    pub label: String,
    pub count: usize,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateTask {
    pub app_id: String,
    pub entitlement_id: String,
    #[serde(default)]
    pub justification: String,
    #[serde(default)]
    pub duration_secs: Option<i64>,
    /// Values by field name: strings, booleans, integers or lists of strings, as the field's type says.
    #[serde(default)]
    pub form_data: BTreeMap<String, serde_json::Value>,
    /// Follow the policy's emergency steps (break-glass); needs a justification.
    #[serde(default)]
    pub emergency: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    pub id: i64,
    /// `grant` asks for new access; `extend` asks for more time on an active grant.
    pub kind: TaskKind,
    /// The task follows its policy's emergency steps.
    #[serde(default)]
    pub emergency: bool,
    pub requester: String,
    pub app_id: String,
    pub entitlement_id: String,
    pub entitlement_name: String,
    pub state: TaskState,
    pub justification: String,
    pub duration_secs: i64,
    /// The group whose approval the task waits for, when it waits for a group.
    #[serde(default)]
    pub waiting_for_group: Option<String>,
    /// What a pending task waits for, for people: approvals still needed and from whom, or a waiting period.
    #[serde(default)]
    pub waiting_for: Option<String>,
    /// Approvals and denials so far, oldest first.
    #[serde(default)]
    pub decisions: Vec<TaskDecision>,
    #[serde(default)]
    pub decided_by: Option<String>,
    /// Who ended the grant before its time: the requester who gave it back, or the administrator who withdrew it
    /// (`reason` says why). Absent when Cone ended it (its holder left Identity Center).
    #[serde(default)]
    pub ended_by: Option<String>,
    #[serde(default)]
    pub reason: Option<String>,
    #[serde(default)]
    pub grant_expires_at: Option<DateTime<Utc>>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
    /// What happened to the task lately, oldest first (from the audit log): its last
    /// [`TASK_EVENTS_SHOWN`] events.
    #[serde(default)]
    pub events: Vec<TaskEvent>,
    /// How many older events `events` leaves out; `GET /api/v1/tasks/{id}/events` pages through them all.
    #[serde(default)]
    pub earlier_events: i64,
}

/// How many of a task's latest events its answer carries.
pub const TASK_EVENTS_SHOWN: i64 = 50;

impl Task {
    /// Who withdrew the task's grant and why, when someone other than its requester ended it early.
    pub fn withdrawal(&self) -> Option<(&str, &str)> {
        let by = self.ended_by.as_deref().filter(|by| *by != self.requester)?;
        Some((by, self.reason.as_deref().unwrap_or("no reason given")))
    }
}

/// One person's decision on one step (numbered from 1) of a task's policy.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskDecision {
    pub step: usize,
    pub by: String,
    pub approve: bool,
    pub at: DateTime<Utc>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskEvent {
    pub at: DateTime<Utc>,
    /// A username, or `cone` for the server's own work.
    pub actor: String,
    /// Such as `task.create`, `task.approve`, `task.comment`, `grant.activate`, `grant.expire`.
    pub action: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

/// `GET /api/v1/tasks/{id}/events`: one page of a task's history, oldest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskEventPage {
    pub events: Vec<TaskEvent>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskPage {
    pub tasks: Vec<Task>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// `POST /api/v1/drop`: give back access to an entitlement and withdraw open requests for it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DropRequest {
    pub app_id: String,
    pub entitlement_id: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DropResult {
    /// The tasks whose grant was released or whose request was cancelled; empty when there was nothing to drop.
    pub tasks: Vec<Task>,
}

/// `POST /api/v1/tasks/{id}/withdraw`: why an administrator ends the grant now.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Withdrawal {
    /// Shown to the requester (1 to 1000 characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 1000))]
    pub reason: String,
}

/// A comment, or the comment on an approval or denial.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decision {
    #[serde(default)]
    pub comment: String,
}

/// `POST /api/v1/logout`: the token of the request no longer works.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedOut {
    pub signed_out: bool,
}

/// How the server's syncs with an app stand. Each server process keeps its own; a client sees the one it reached.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectorStatus {
    pub app_id: String,
    /// `syncing` until the first sync ends, then `connected` when the last sync succeeded or `error` when it failed.
    pub state: String,
    #[serde(default)]
    pub last_success_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub last_attempt_at: Option<DateTime<Utc>>,
    /// Why the last sync failed.
    #[serde(default)]
    pub last_error: Option<String>,
    /// Whether this server writes to AWS. Without it (sync-only mode: `BATON_PROVISIONING=false` or
    /// `aws.provisioning: false`), it syncs and decides, and approved requests wait as `provisioning`.
    #[serde(default = "yes")]
    pub provisioning: bool,
    /// `embedded` (the connector runs in the server) or `external` (`cone-aws serve` processes take the work).
    #[serde(default)]
    pub mode: String,
    /// External connector processes heard from in the last 10 minutes, the latest first.
    #[serde(default)]
    pub hosts: Vec<ConnectorHost>,
}

/// A connector process in service mode, as it last reported itself.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectorHost {
    /// Its BATON_HOST_ID.
    pub host_id: String,
    pub version: String,
    /// The client id of the credentials it connected with.
    pub client_id: String,
    pub first_seen_at: DateTime<Utc>,
    pub last_contact_at: DateTime<Utc>,
}

/// New credentials for the connector in service mode (`BATON_CLIENT_ID`, `BATON_CLIENT_SECRET`). The secret is
/// shown only in this answer; the credentials before stop working at once.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConnectorCredentials {
    pub client_id: String,
    pub client_secret: String,
}

fn yes() -> bool {
    true
}

pub const CONNECTOR_SYNCING: &str = "syncing";
pub const CONNECTOR_CONNECTED: &str = "connected";
pub const CONNECTOR_ERROR: &str = "error";

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Me {
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub groups: Vec<String>,
    /// Listed under `admins` in the server's configuration.
    #[serde(default)]
    pub admin: bool,
}

/// RFC 8628 §3.2 device authorization response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceAuthorization {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

/// RFC 6749 §5.1 token response.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenResponse {
    pub access_token: String,
    pub token_type: String,
    pub expires_in: i64,
}

/// RFC 6749 §5.2 error response (with the RFC 8628 codes).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OAuthError {
    pub error: String,
    #[serde(default)]
    pub error_description: String,
}

/// `GET /api/v1/drift`: the open differences between Identity Center's account assignments and Cone's grants.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DriftPage {
    pub findings: Vec<DriftFinding>,
    /// Pass it back as `page_token` for the next page; absent on the last.
    #[serde(default)]
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DriftFinding {
    pub id: i64,
    /// `unexplained` (a user's assignment no grant explains) or `missing` (an active grant's assignment is absent).
    pub kind: String,
    pub account_id: String,
    #[serde(default)]
    pub account_name: Option<String>,
    pub permission_set_arn: String,
    #[serde(default)]
    pub permission_set_name: Option<String>,
    /// The Identity Center user id.
    pub principal_id: String,
    /// The Cone username of that user, when known.
    #[serde(default)]
    pub username: Option<String>,
    /// For a group membership Cone made (`missing`: the grant's membership is absent), the group's name; the
    /// permission set is then empty.
    #[serde(default)]
    pub group: Option<String>,
    /// `missing`: the task whose grant expects the assignment.
    #[serde(default)]
    pub task_id: Option<i64>,
    /// `remove` or `reprovision` when Cone repairs the difference; absent when it is only reported.
    #[serde(default)]
    pub remedy: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// One entry of the hash-chained audit log, as `GET /api/v1/audit` and `cone-server export-audit` give it
/// (`docs/audit.md`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditEntry {
    pub id: i64,
    pub at: DateTime<Utc>,
    /// `at` as the Unix time the hash covers.
    pub at_unix: i64,
    /// `user:<id>`, `worker`, `connector:aws`.
    pub actor: String,
    /// Such as `task.create`, `grant.revoke`, `drift.unexplained`, `login`, `sync`.
    pub action: String,
    /// What the entry is about: `task:<id>`, `drift:<id>`, `user:<id>` or an app id.
    pub subject: String,
    /// The details, parsed (a string when they are not JSON).
    pub detail: serde_json::Value,
    /// The details exactly as stored, which is what the hash covers.
    pub detail_text: String,
    /// The previous entry's hash; empty for the first entry.
    pub prev_hash: String,
    pub hash: String,
}

/// `GET /api/v1/audit`: entries in the order asked for, the names of the people they name, and the token of the
/// next page when there is one.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AuditPage {
    pub entries: Vec<AuditEntry>,
    /// The user name of each person the entries name as actor or subject, by that text (`"user:3": "alice"`); the
    /// entries keep the stable id, which is what the hash covers.
    #[serde(default)]
    pub names: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// An IAM user's access key as the inventory lists it (`GET /api/v1/iam/access-keys`): metadata only, never a
/// secret key.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessKey {
    /// The access key id (`AKIA…`).
    pub id: String,
    /// The AWS account the key's user is in.
    pub account_id: String,
    /// The account's name in the catalog; the id when the catalog does not know the account.
    pub account_name: String,
    pub user_name: String,
    pub user_arn: String,
    /// `Active` or `Inactive`.
    pub status: String,
    pub created_at: DateTime<Utc>,
    /// Whole days since `created_at`.
    pub age_days: i64,
    /// When the key last signed a request; absent if never.
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
    /// Whole days since `last_used_at`; absent if never used.
    #[serde(default)]
    pub days_since_last_use: Option<i64>,
    /// The service (`s3`, `iam`, …) and region of the last use.
    #[serde(default)]
    pub last_used_service: Option<String>,
    #[serde(default)]
    pub last_used_region: Option<String>,
}

/// `GET /api/v1/iam/access-keys`: access keys by user name, then key id.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AccessKeyPage {
    /// Whether the server syncs the access-key inventory (`aws.sync_secrets`); when false the list is empty.
    pub synced: bool,
    pub access_keys: Vec<AccessKey>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// An IAM user of the connector's account or of a member account (`GET /api/v1/iam/users`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IamUser {
    pub name: String,
    /// The AWS account the user is in.
    pub account_id: String,
    /// The account's name in the catalog; the id when the catalog does not know the account.
    pub account_name: String,
    pub arn: String,
    /// IAM's unique id (`AIDA…`).
    pub id: String,
    pub created_at: DateTime<Utc>,
    /// The last console sign-in with a password; absent if never (or unknown to AWS).
    #[serde(default)]
    pub password_last_used_at: Option<DateTime<Utc>>,
    /// Names of the IAM groups the user is in (with `aws.sync_iam`).
    pub groups: Vec<String>,
    /// How many access keys the user has (with `aws.sync_secrets`).
    pub access_keys: i64,
}

/// `GET /api/v1/iam/users`: users by name.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IamUserPage {
    /// Whether the server syncs IAM users (`aws.sync_iam` or `aws.sync_secrets`); when false the list is empty.
    pub synced: bool,
    pub users: Vec<IamUser>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// A user Cone created for a person (`aws.account_provisioning`): an IAM user to hold the IAM groups they were
/// granted, or the Identity Center user of a person who signs in with a password (`GET /api/v1/iam/created-users`).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedIamUser {
    /// The Cone user it was created for.
    pub username: String,
    /// `iam_user`, or `idc_user` for an Identity Center user made for a person who signs in with a password.
    pub kind: String,
    /// Empty for an Identity Center user.
    pub account_id: String,
    /// The account's name in the catalog (the id when the catalog does not know the account); `Identity Center`.
    pub account_name: String,
    /// The user's name, and an IAM user's path (empty for an Identity Center user).
    pub name: String,
    pub path: String,
    /// `creating`, `active`, `deleting` or `deleted`.
    pub state: String,
    pub created_at: DateTime<Utc>,
    #[serde(default)]
    pub deleted_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/iam/created-users`: newest first, deleted ones included.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreatedIamUserPage {
    pub users: Vec<CreatedIamUser>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// A personal API token acts as the person who created it; a service token as a service account.
pub const TOKEN_KIND_PERSONAL: &str = "personal";
pub const TOKEN_KIND_SERVICE: &str = "service";
/// How each kind of API token's secret begins, so that a leaked one is recognisable (and scannable).
pub const PERSONAL_TOKEN_PREFIX: &str = "cone_pat_";
pub const SERVICE_TOKEN_PREFIX: &str = "cone_svc_";
/// A service account's username is this prefix and its name, so it never passes for a person.
pub const SERVICE_ACCOUNT_PREFIX: &str = "service:";

/// `POST /api/v1/tokens`: a personal API token for the caller.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateToken {
    /// What the token is for, to recognise it in listings (1 to 100 characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub name: String,
    /// Days until the token stops working (1 to 3650); absent for a token that works until revoked.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3650))]
    pub expires_in_days: Option<i64>,
}

/// `POST /api/v1/service-tokens`: a token for a service account, created with its first token.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct CreateServiceToken {
    /// The service account's name (lowercase letters, digits, `.`, `_` and `-`, at most 63); it acts as the user
    /// `service:<name>`.
    #[cfg_attr(feature = "openapi", schema(pattern = "^[a-z0-9][a-z0-9._-]{0,62}$"))]
    pub service: String,
    /// What the token is for (1 to 100 characters).
    #[cfg_attr(feature = "openapi", schema(min_length = 1, max_length = 100))]
    pub name: String,
    /// Days until the token stops working (1 to 3650); absent for a token that works until revoked.
    #[serde(default)]
    #[cfg_attr(feature = "openapi", schema(minimum = 1, maximum = 3650))]
    pub expires_in_days: Option<i64>,
}

/// An API token as listed: never its secret.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApiToken {
    pub id: i64,
    pub name: String,
    /// `personal` or `service`.
    pub kind: String,
    /// The user the token acts as: its creator, or `service:<name>`.
    pub owner: String,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    /// Absent: the token works until revoked.
    #[serde(default)]
    pub expires_at: Option<DateTime<Utc>>,
    /// Updated at most once a minute.
    #[serde(default)]
    pub last_used_at: Option<DateTime<Utc>>,
    #[serde(default)]
    pub revoked_at: Option<DateTime<Utc>>,
}

/// `POST /api/v1/users/{username}/sign-out`: what an administrator ended.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedOutUser {
    pub username: String,
    /// `cone login` sessions ended.
    pub sessions: u64,
    pub console_sessions: u64,
    /// API tokens revoked.
    pub api_tokens: u64,
}

/// A token just created: the secret is shown this once and cannot be read again.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewToken {
    /// Send it as `Authorization: Bearer <secret>`.
    pub secret: String,
    pub token: ApiToken,
}

/// `GET /api/v1/tokens`: the caller's tokens, and every service token for administrators; revoked ones are left
/// out.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TokenList {
    pub tokens: Vec<ApiToken>,
}

/// A version of the access document: the access profiles, entitlement-management rules and policies, in YAML.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigVersion {
    pub version: i64,
    /// The document as it was applied (YAML).
    pub document: String,
    /// SHA-256 of the document, in hex.
    pub digest: String,
    /// `file`: the server's configuration file, at start-up; `api`: `PUT /api/v1/config`.
    pub source: String,
    /// Who applied it through the API; absent for the file.
    #[serde(default)]
    pub author: Option<String>,
    pub comment: String,
    pub created_at: DateTime<Utc>,
}

/// `GET /api/v1/config/versions`: versions of the access document, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigVersionPage {
    pub versions: Vec<ConfigVersion>,
    #[serde(default)]
    pub next_page_token: Option<String>,
}

/// `PUT /api/v1/config`: a new access document, and `POST /api/v1/config/check` (which reads only `document`).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ApplyConfig {
    /// YAML with only `access_profiles`, `entitlement_management` and `policies`, as in the server's file.
    pub document: String,
    /// Why it changes, kept with the version.
    #[serde(default)]
    pub comment: String,
    /// The version the change started from: if another was applied since, the change is refused (409) rather
    /// than undoing it unseen. Absent: applied whatever is in force.
    #[serde(default)]
    pub base_version: Option<i64>,
}

/// The answer to `PUT /api/v1/config`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct AppliedConfig {
    /// False when the document is the one in force already; then no version is recorded.
    pub changed: bool,
    /// The version in force now.
    pub version: ConfigVersion,
}

/// The answer to `POST /api/v1/config/check`: what the document defines.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ConfigSummary {
    /// The policies' names, in the order they are matched.
    pub policies: Vec<String>,
    pub access_profiles: Vec<String>,
    pub entitlement_management_rules: usize,
}

/// The caller's notification settings: what they chose, and what Cone can use to reach them.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationSettings {
    pub preferences: Preferences,
    /// The channels the server is configured with that can reach the caller (an email address is needed).
    pub available: Vec<Channel>,
    /// The address messages go to, from the identity provider ("" when none is known).
    pub email: String,
}

/// A notification as administrators see it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Notification {
    pub id: i64,
    /// Whom it is for (a user name).
    pub user: String,
    pub channel: Channel,
    pub kind: NotificationKind,
    pub task_id: Option<i64>,
    /// `pending`, `sent` or `failed` (given up).
    pub state: String,
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// When it is (or was) due: a digest item waits for its hour, a failed attempt for its retry.
    pub due_at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub updated_at: DateTime<Utc>,
}

/// A page of notifications, newest first.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NotificationList {
    pub notifications: Vec<Notification>,
    pub next_page_token: Option<String>,
}

/// A test message to send.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestNotification {
    /// Whom to send it to (a user name); the caller when absent.
    #[serde(default)]
    pub user: Option<String>,
}

/// What a test send queued.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TestNotificationQueued {
    pub user: String,
    /// The channels it goes out on; empty when none reaches the person.
    pub channels: Vec<Channel>,
}

/// Which access a review campaign covers. Each list narrows it; an empty list does not.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReviewScope {
    /// Accounts by name or id.
    #[serde(default)]
    pub accounts: Vec<String>,
    /// Permission sets by name.
    #[serde(default)]
    pub permission_sets: Vec<String>,
    /// Groups by name: only memberships of these (Identity Center groups, and IAM groups with `aws.sync_iam`).
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub kinds: Vec<ReviewItemKind>,
}

/// Who reviews each person's access.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReviewersFrom {
    /// The person's manager (`identities.users[].manager` in the configuration).
    Manager,
    /// The app's owners (`aws.owners`).
    Owners,
    /// Any member of `group`.
    Group,
    /// Any of `users`.
    Users,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Reviewers {
    pub from: ReviewersFrom,
    /// The group, for `from: group`.
    #[serde(default)]
    pub group: Option<String>,
    /// The people, for `from: users`.
    #[serde(default)]
    pub users: Vec<String>,
    /// Who reviews an item nobody else may: the first of them who is not its person.
    #[serde(default)]
    pub fallback: Vec<String>,
}

/// A campaign to create.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewReviewCampaign {
    pub name: String,
    /// When decisions are due.
    pub due: DateTime<Utc>,
    #[serde(default)]
    pub scope: ReviewScope,
    pub reviewers: Reviewers,
}

/// An access review template of the access document (`access_reviews`), and its schedule.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewTemplate {
    pub name: String,
    pub scope: ReviewScope,
    pub reviewers: Reviewers,
    /// Seconds reviewers have from a campaign's opening.
    pub due_in_secs: i64,
    /// Seconds between scheduled campaigns; absent for a template opened by hand only.
    #[serde(default)]
    pub every_secs: Option<i64>,
    /// When the last campaign from it was opened.
    #[serde(default)]
    pub last_opened_at: Option<DateTime<Utc>>,
    /// When the next scheduled campaign opens: after the first sync from then on.
    #[serde(default)]
    pub next_at: Option<DateTime<Utc>>,
}

/// `GET /api/v1/reviews/templates`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewTemplateList {
    pub templates: Vec<ReviewTemplate>,
}

/// A reviewer's share of a campaign.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewerProgress {
    pub reviewer: String,
    /// Items they may decide that nobody has.
    pub left: i64,
    pub items: i64,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewCampaign {
    pub id: i64,
    pub name: String,
    /// `open`, or `closed` (decisions are final).
    pub state: String,
    pub due: DateTime<Utc>,
    /// Open past its due time with items left.
    pub overdue: bool,
    pub scope: ReviewScope,
    pub reviewers: Reviewers,
    pub created_by: String,
    pub created_at: DateTime<Utc>,
    pub closed_at: Option<DateTime<Utc>>,
    /// The access review template it was opened from (by hand or on its schedule).
    #[serde(default)]
    pub template: Option<String>,
    pub items: i64,
    /// Items nobody decided yet.
    pub pending: i64,
    /// Revocations whose removal from AWS is not done yet.
    pub revoking: i64,
    /// Per reviewer, most left first (only in a single campaign's answer).
    #[serde(default)]
    pub progress: Vec<ReviewerProgress>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewCampaignList {
    pub campaigns: Vec<ReviewCampaign>,
    pub next_page_token: Option<String>,
}

/// How the removal of revoked access went.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewRemoval {
    /// `pending` (under way, retried until done), `by_hand` (someone must remove it, as `by_hand` says; a sync that
    /// no longer finds the access makes it done) or `done`.
    pub state: String,
    pub attempts: i64,
    /// Why the last attempt failed.
    pub last_error: Option<String>,
    /// AWS's id of the deletion request, where the API gives one (account assignments).
    pub request_id: Option<String>,
    /// What must be done by hand, for an IAM item the connector may not remove.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub by_hand: Option<String>,
}

/// One person's access under review, as the campaign found it.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewItem {
    pub id: i64,
    pub campaign_id: i64,
    pub campaign: String,
    pub kind: ReviewItemKind,
    /// Whose access (a user name); empty for an IAM user nobody in Cone is known to hold.
    pub user: String,
    pub display_name: String,
    /// The IAM user of an IAM item (`iam_user`, `iam_group_membership`, `access_key`).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub iam_user: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub access_key_id: String,
    /// The last use the sync read: an IAM user's console password's, an access key's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used_at: Option<DateTime<Utc>>,
    pub account_id: String,
    pub account: String,
    pub permission_set: String,
    /// The Identity Center or IAM group of a membership.
    pub group: String,
    /// What the access gives, in words.
    pub reaches: String,
    /// The request a grant came from.
    pub task_id: Option<i64>,
    pub state: ReviewItemState,
    /// Who may decide it.
    pub reviewers: Vec<String>,
    pub decided_by: Option<String>,
    pub decided_at: Option<DateTime<Utc>>,
    pub comment: Option<String>,
    pub removal: Option<ReviewRemoval>,
    /// When a sync found the access gone before anyone revoked it.
    pub gone_at: Option<DateTime<Utc>>,
    /// The hash of the decision's audit entry (`cone-server export-audit` has it).
    pub decision_audit_hash: Option<String>,
    /// The hash of the audit entry of the removal.
    pub removal_audit_hash: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewItemPage {
    pub items: Vec<ReviewItem>,
    pub next_page_token: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReviewDecision {
    /// The access may stay.
    Certify,
    /// The access goes: it is removed from AWS at once.
    Revoke,
}

/// A reviewer's decision on one or more items.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReviewDecide {
    pub items: Vec<i64>,
    pub decision: ReviewDecision,
    /// Why; required to revoke.
    #[serde(default)]
    pub comment: Option<String>,
}

/// An item a decision was not written to, and why.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewRefused {
    pub item: i64,
    pub message: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewDecided {
    pub decided: Vec<ReviewItem>,
    pub refused: Vec<ReviewRefused>,
}

/// Who decides an item from now on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ReviewReassign {
    pub reviewer: String,
}
