//! The rows the store's in-memory reads keep (`pool::Reads`), apart from the code that reads them, so that the pool
//! and the subjects that use it do not depend on each other.

use sqlx::FromRow;

#[derive(Debug, Clone, FromRow)]
pub struct UserRow {
    pub id: i64,
    pub username: String,
    pub display_name: String,
    pub email: String,
    pub idc_user_id: Option<String>,
    pub password_hash: Option<String>,
    /// `person`, or `service` for a service account (`identities::USER_SERVICE`).
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
}
