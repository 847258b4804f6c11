//! The rows the store's in-memory reads keep (`pool::Reads`), and grants and jobs as their subjects share them, apart
//! from the code that reads them, so that the pool and the subjects that use it do not depend on each other.

use cone_core::job::JobKind;
use sqlx::FromRow;

/// The kind of a service account's user row.
pub const USER_SERVICE: &str = "service";

/// The columns of a [`UserRow`], for statements that join users under the alias `u`.
pub(super) const USER_COLUMNS: &str =
    "u.id, u.username, u.display_name, u.email, u.idc_user_id, u.password_hash, u.kind, u.left_at";

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub idc_user_id: Option<String>,
    pub password_hash: Option<String>,
    /// `person`, or `service` for a service account ([`USER_SERVICE`]).
    pub kind: String,
    /// When the person left (deleted or disabled in Identity Center); they can no longer sign in.
    pub left_at: Option<i64>,
}

#[derive(Debug, Clone, FromRow)]
pub struct EntitlementRow {
    pub app_id: String,
    pub id: String,
    pub alias: String,
    pub account_id: String,
    pub account_name: String,
    pub permission_set_arn: String,
    pub permission_set_name: String,
    pub instance_arn: String,
    /// `aws_permission_set`, `aws_idc_group_membership` or `aws_iam_group_membership` (`cone_api::KIND_*`).
    pub kind: String,
    /// The group of a membership: an Identity Center group's id, an IAM group's name; empty for a permission set.
    pub group_id: String,
    pub group_name: String,
}

impl EntitlementRow {
    /// A membership of a group, of either kind.
    pub fn is_group(&self) -> bool {
        !self.group_id.is_empty()
    }

    /// A membership of an Identity Center group, which belongs to no account.
    pub fn is_idc_group(&self) -> bool {
        self.kind == cone_api::KIND_AWS_IDC_GROUP_MEMBERSHIP
    }

    /// The names policies and catalog rules match it by: an IAM group by its account too.
    pub fn target(&self) -> cone_core::catalog::Target<'_> {
        match self.is_group() {
            true => cone_core::catalog::Target {
                account: &self.account_name,
                permission_set: "",
                group: Some(&self.group_name),
            },
            false => cone_core::catalog::Target::permission_set(&self.account_name, &self.permission_set_name),
        }
    }

    /// What people call it: the group, or the permission set.
    pub fn name(&self) -> &str {
        if self.is_group() { &self.group_name } else { &self.permission_set_name }
    }
}

#[derive(Debug, Clone, FromRow)]
pub struct JobRow {
    pub id: i64,
    #[sqlx(try_from = "String")]
    pub kind: JobKind,
    /// Every kind but `remove_drift` and `review_revoke` is about a grant.
    pub grant_id: Option<i64>,
    /// `reprovision` and `remove_drift` repair a drift finding.
    pub finding_id: Option<i64>,
    /// `review_revoke` removes what a review item revoked.
    pub item_id: Option<i64>,
    pub attempts: i64,
}

#[derive(Debug, Clone, FromRow)]
pub struct GrantRow {
    pub id: i64,
    pub task_id: i64,
    pub user_id: i64,
    /// The entitlement's kind (`cone_api::KIND_*`).
    pub kind: String,
    pub instance_arn: String,
    pub account_id: String,
    pub permission_set_arn: String,
    pub principal_id: String,
    pub duration_secs: i64,
    /// The group of a membership grant (an Identity Center group's id, an IAM group's name); empty for a permission
    /// set's.
    pub group_id: String,
    /// 1 when the person was a member already as provisioning looked (a membership Cone must not remove), 0 when
    /// not; `None` until it has looked.
    pub membership_found: Option<i64>,
}

impl GrantRow {
    pub fn is_idc_group(&self) -> bool {
        self.kind == cone_api::KIND_AWS_IDC_GROUP_MEMBERSHIP
    }

    pub fn is_iam_group(&self) -> bool {
        self.kind == cone_api::KIND_AWS_IAM_GROUP_MEMBERSHIP
    }
}

/// A group membership that gives a permission set: (app id, the permission set's entitlement id, the membership's).
pub type GroupRouteRow = (String, String, String);
