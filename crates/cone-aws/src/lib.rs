//! Cone's connector to AWS: reads the organisation, IAM Identity Center and its identity store (and, on
//! request, IAM and its access keys), creates and removes account assignments, and provisions identity-store and
//! IAM users and group memberships. The only crate of the workspace that sees AWS SDK types.
//!
//! Endpoints and credentials come from the standard AWS configuration (environment, profiles, roles), so
//! the same code talks to AWS or to moto (`AWS_ENDPOINT_URL`); [`AwsSettings`] adds baton-aws's settings
//! (an assumed role with External ID, the features) and [`Rates`] paces every call per API family.
//! [`permissions_policy`] and [`trust_policy`] print the IAM policies the integration role needs.

mod connector;
pub mod denial;
mod error;
mod iam;
pub mod journal;
mod paging;
mod policy;
mod provision;
mod ratelimit;
pub mod remote;
mod retry;
mod scim;
mod settings;
pub mod spool;
mod writes;

pub use connector::Connector;
pub use error::ConnectorError;
pub use policy::{
    DEFAULT_IAM_USER_PATH, Features, check_iam_path, permissions_policy, permissions_policy_for, trust_policy,
};
pub use provision::{Change, NewIamUser, NewIdcUser, OWNER_TAG, OWNER_USER_TYPE};
pub use ratelimit::{ApiFamily, RateLimits, Rates};
pub use settings::{AwsSettings, DEFAULT_MEMBER_ROLE};
pub use spool::{Part, PartStream, Sink, SqlSpool, Synced};
pub use writes::DEFAULT_OUTSTANDING as DEFAULT_OUTSTANDING_ASSIGNMENT_WRITES;

use serde::{Deserialize, Serialize};

/// A principal of the Identity Center identity store, by identity-store id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Principal {
    User(String),
    Group(String),
}

/// "This principal may use this permission set in this account."
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Assignment {
    pub instance_arn: String,
    pub account_id: String,
    pub permission_set_arn: String,
    pub principal: Principal,
}

/// An account assignment as found in AWS (the instance is the snapshot's).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct AssignmentRecord {
    pub account_id: String,
    pub permission_set_arn: String,
    pub principal: Principal,
}

/// An ACTIVE member account of the organisation (the management account included); or, when Organizations
/// is not read, an account IAM Identity Center has a permission set provisioned to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    pub id: String,
    pub name: String,
    pub email: String,
    /// The account state as Organizations reports it: always `ACTIVE` in a [`Snapshot`], or `UNKNOWN` when
    /// Organizations is not read (then `name` is the id and `email` is empty).
    pub status: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PermissionSet {
    pub arn: String,
    pub name: String,
    pub description: Option<String>,
    /// ISO 8601 duration as AWS gives it, e.g. `PT1H`.
    pub session_duration: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct User {
    pub id: String,
    pub user_name: String,
    /// The display name; the user name when the identity store has none.
    pub display_name: String,
    /// The primary email, else the first one listed, else none.
    pub email: Option<String>,
    /// False when Identity Center's `UserStatus` says `DISABLED`; a store that reports no status (moto, older
    /// journals) means enabled.
    #[serde(default = "enabled")]
    pub enabled: bool,
}

fn enabled() -> bool {
    true
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    pub id: String,
    /// The display name; the group id when the identity store has none.
    pub display_name: String,
}

/// Everything Cone reads from AWS in one pass. Lists are sorted (accounts by id, permission sets by name,
/// users by user name, groups by display name, pairs and assignments lexicographically), and every
/// account id in `provisioned` and `assignments` is one of `accounts`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    /// Set when the sync resumed from a journal: some of what it reports was read by an earlier, interrupted sync.
    pub resumed: Option<journal::Resumed>,
    pub instance_arn: String,
    pub identity_store_id: String,
    pub accounts: Vec<Account>,
    pub permission_sets: Vec<PermissionSet>,
    /// `(account id, permission set arn)`: where each permission set is provisioned.
    pub provisioned: Vec<(String, String)>,
    pub users: Vec<User>,
    pub groups: Vec<Group>,
    /// `(group id, user id)`.
    pub memberships: Vec<(String, String)>,
    pub assignments: Vec<AssignmentRecord>,
}

/// An IAM user. Times are RFC 3339 as AWS gives them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamUser {
    pub arn: String,
    pub id: String,
    pub name: String,
    pub created: String,
    /// When the user last signed in to the console with their password; none if never (or unknown to AWS).
    pub password_last_used: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamGroup {
    pub arn: String,
    pub id: String,
    pub name: String,
    pub created: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamRole {
    pub arn: String,
    pub id: String,
    pub name: String,
    pub created: String,
    /// When the role was last assumed, as far as AWS tracks it (the last 400 days).
    pub last_used: Option<String>,
}

/// "The trust policy of this role allows this principal to assume it": one principal of an `Allow`
/// statement. Conditions (an External ID, say) are not recorded.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct TrustedPrincipal {
    pub role_arn: String,
    /// The principal's kind as the policy names it: `AWS`, `Service`, `Federated` or `CanonicalUser`.
    /// `"Principal": "*"` is recorded as `AWS` `*`, which IAM treats it as.
    pub kind: String,
    /// An ARN, account id, service name, identity provider, or `*`.
    pub value: String,
}

/// An IAM user's access key, metadata only: the secret key is never read (no API returns it after creation).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccessKey {
    pub id: String,
    pub user_arn: String,
    /// `Active` or `Inactive`.
    pub status: String,
    pub created: String,
    /// When the key last signed a request, the service and the region; none if never used.
    pub last_used: Option<String>,
    pub last_used_service: Option<String>,
    pub last_used_region: Option<String>,
}

/// IAM of the account the connector's credentials are in and, with Organizations, of each ACTIVE member account
/// whose role could be assumed, as [`Connector::sync_iam`] reads it. Sorted: users, groups and roles by ARN, pairs
/// and trusted principals lexicographically, access keys by id. Every row's account is the one its ARN names
/// ([`arn_account`]). Every ARN in `group_members`, `trusted` and `access_keys` is one of the users, groups or
/// roles. What a feature did not ask for is empty.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct IamSnapshot {
    /// `(account id, alias)`: each account's alias (IAM allows one), with IAM.
    pub account_aliases: Vec<(String, String)>,
    /// With IAM or secrets (the access keys' owners).
    pub users: Vec<IamUser>,
    /// With IAM.
    pub groups: Vec<IamGroup>,
    /// `(group arn, user arn)`, with IAM.
    pub group_members: Vec<(String, String)>,
    /// With IAM.
    pub roles: Vec<IamRole>,
    /// With IAM.
    pub trusted: Vec<TrustedPrincipal>,
    /// With secrets.
    pub access_keys: Vec<AccessKey>,
    /// Member accounts whose IAM was not read, by account id.
    pub skipped: Vec<SkippedAccount>,
}

/// A member account whose IAM could not be read: its role could not be assumed, or denied a read.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct SkippedAccount {
    pub account_id: String,
    /// What went wrong and what to fix.
    pub reason: String,
}

/// The account id an IAM ARN (`arn:aws:iam::111122223333:user/alice`) names; empty if it names none.
pub fn arn_account(arn: &str) -> &str {
    arn.split(':').nth(4).unwrap_or_default()
}
