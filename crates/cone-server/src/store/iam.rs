//! The IAM inventory of each account a sync read (`aws.sync_iam`, `aws.sync_secrets`): users, groups and their
//! members, roles and whom they trust, access-key metadata, and the accounts skipped.

use anyhow::{Context, Result};
use cone_aws::{Part, PartStream};
use futures_util::StreamExt;
use sqlx::FromRow;

use super::audit::record;
use super::pool::{Cell, Db, Tx, insert_rows};

/// An access key with its user's name, as stored (times are Unix seconds).
#[derive(Debug, Clone, FromRow)]
pub struct AccessKeyRow {
    pub account_id: String,
    /// The account's name in the catalog; absent for an account the catalog does not know.
    pub account_name: Option<String>,
    pub id: String,
    pub user_arn: String,
    pub user_name: String,
    pub status: String,
    pub created_at: i64,
    pub last_used_at: Option<i64>,
    pub last_used_service: Option<String>,
    pub last_used_region: Option<String>,
}

/// Which access keys to list: empty strings match every account, user and status.
#[derive(Debug, Clone, Default)]
pub struct AccessKeyFilter {
    /// An account id, or its name in the catalog.
    pub account: String,
    pub user_name: String,
    pub status: String,
}

#[derive(Debug, Clone, FromRow)]
pub struct IamUserRow {
    pub account_id: String,
    pub account_name: Option<String>,
    pub arn: String,
    pub id: String,
    pub name: String,
    pub created_at: i64,
    pub password_last_used_at: Option<i64>,
    pub access_keys: i64,
}

/// An RFC 3339 time from AWS as Unix seconds.
fn unix(text: &str) -> Result<i64> {
    Ok(chrono::DateTime::parse_from_rfc3339(text)
        .with_context(|| format!("AWS gave the time \"{text}\", which is not RFC 3339; the IAM sync stored nothing"))?
        .timestamp())
}

fn unix_opt(text: &Option<String>) -> Result<Option<i64>> {
    text.as_deref().map(unix).transpose()
}

/// The IAM tables, children first, so that a delete never leaves a row naming a deleted one.
const IAM_TABLES: [&str; 7] = [
    "iam_access_keys",
    "iam_role_trusts",
    "iam_group_members",
    "iam_roles",
    "iam_groups",
    "iam_users",
    "iam_skipped_accounts",
];

/// The account an IAM row belongs to, from its ARN, as a cell.
fn account(arn: &str) -> Cell<'_> {
    Cell::Text(Some(cone_aws::arn_account(arn)))
}

/// Inserts one account's IAM (see [`Db::apply_iam`]).
async fn insert_iam(tx: &mut Tx, iam: &cone_aws::IamSnapshot) -> Result<()> {
    use Cell::{Int, Text};
    let mut rows = Vec::new();
    for u in &iam.users {
        let (created, used) = (unix(&u.created)?, unix_opt(&u.password_last_used)?);
        rows.push(vec![
            account(&u.arn),
            Text(Some(&u.arn)),
            Text(Some(&u.id)),
            Text(Some(&u.name)),
            Int(Some(created)),
            Int(used),
        ]);
    }
    let columns = ["account_id", "arn", "id", "name", "created_at", "password_last_used_at"];
    insert_rows(tx, "iam_users", &columns, rows).await?;
    let mut rows = Vec::new();
    for g in &iam.groups {
        let created = Int(Some(unix(&g.created)?));
        rows.push(vec![account(&g.arn), Text(Some(&g.arn)), Text(Some(&g.id)), Text(Some(&g.name)), created]);
    }
    insert_rows(tx, "iam_groups", &["account_id", "arn", "id", "name", "created_at"], rows).await?;
    let rows = iam.group_members.iter().map(|(g, u)| vec![account(g), Text(Some(g)), Text(Some(u))]).collect();
    insert_rows(tx, "iam_group_members", &["account_id", "group_arn", "user_arn"], rows).await?;
    let mut rows = Vec::new();
    for r in &iam.roles {
        let (created, used) = (unix(&r.created)?, unix_opt(&r.last_used)?);
        rows.push(vec![
            account(&r.arn),
            Text(Some(&r.arn)),
            Text(Some(&r.id)),
            Text(Some(&r.name)),
            Int(Some(created)),
            Int(used),
        ]);
    }
    let columns = ["account_id", "arn", "id", "name", "created_at", "last_used_at"];
    insert_rows(tx, "iam_roles", &columns, rows).await?;
    let rows = iam
        .trusted
        .iter()
        .map(|t| vec![account(&t.role_arn), Text(Some(&t.role_arn)), Text(Some(&t.kind)), Text(Some(&t.value))])
        .collect();
    let columns = ["account_id", "role_arn", "principal_kind", "principal"];
    insert_rows(tx, "iam_role_trusts", &columns, rows).await?;
    let mut rows = Vec::new();
    for k in &iam.access_keys {
        rows.push(vec![
            account(&k.user_arn),
            Text(Some(&k.id)),
            Text(Some(&k.user_arn)),
            Text(Some(&k.status)),
            Int(Some(unix(&k.created)?)),
            Int(unix_opt(&k.last_used)?),
            Text(k.last_used_service.as_deref()),
            Text(k.last_used_region.as_deref()),
        ]);
    }
    let columns = [
        "account_id",
        "id",
        "user_arn",
        "status",
        "created_at",
        "last_used_at",
        "last_used_service",
        "last_used_region",
    ];
    insert_rows(tx, "iam_access_keys", &columns, rows).await?;
    let rows = iam.skipped.iter().map(|s| vec![Text(Some(&s.account_id)), Text(Some(&s.reason))]).collect();
    insert_rows(tx, "iam_skipped_accounts", &["account_id", "reason"], rows).await?;
    Ok(())
}

impl Db {
    /// Replaces the IAM tables with the [`Part::Iam`] parts (one per account) of an IAM sync, in one transaction. No
    /// parts (neither `aws.sync_iam` nor `aws.sync_secrets` on) forgets what an earlier sync stored. Audited when
    /// something is stored or forgotten.
    pub async fn apply_iam(&self, app_id: &str, mut parts: PartStream<'_>, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut forgotten = 0;
        for table in IAM_TABLES {
            forgotten += sqlx::query(&format!("DELETE FROM {table}")).execute(&mut *tx).await?.rows_affected();
        }
        let (mut users, mut groups, mut roles, mut access_keys, mut skipped) = (0, 0, 0, 0, Vec::new());
        while let Some(part) = parts.next().await {
            let Part::Iam(iam) = part? else { continue };
            insert_iam(&mut tx, &iam).await?;
            users += iam.users.len();
            groups += iam.groups.len();
            roles += iam.roles.len();
            access_keys += iam.access_keys.len();
            skipped.extend(iam.skipped.into_iter().map(|s| s.account_id));
        }
        skipped.sort();
        // Each IAM group of an account in the catalog is an entitlement; one no longer read is no longer offered.
        sqlx::query("UPDATE entitlements SET present = 0 WHERE app_id = $1 AND kind = $2")
            .bind(app_id)
            .bind(cone_api::KIND_AWS_IAM_GROUP_MEMBERSHIP)
            .execute(&mut *tx)
            .await?;
        sqlx::query(
            "INSERT INTO entitlements (app_id, id, resource_id, permission_set_arn, permission_set_name, kind, group_id,
                 group_name, present)
             SELECT $1, 'iam-group|' || g.account_id || '|' || g.name, g.account_id, '', '', $2, g.name, g.name, 1
             FROM iam_groups g WHERE g.account_id IN (SELECT id FROM resources WHERE app_id = $1)
             ON CONFLICT (app_id, id) DO UPDATE SET present = 1",
        )
        .bind(app_id)
        .bind(cone_api::KIND_AWS_IAM_GROUP_MEMBERSHIP)
        .execute(&mut *tx)
        .await?;
        super::catalog::refresh_aliases(&mut tx).await?;
        let detail = serde_json::json!({
            "users": users, "groups": groups, "roles": roles, "access_keys": access_keys, "skipped_accounts": skipped,
        });
        if users + groups + roles > 0 || forgotten > 0 {
            record(&mut tx, now, "connector:aws", "iam.sync", app_id, &detail.to_string()).await?;
        }
        tx.commit().await
    }

    #[cfg(test)]
    pub async fn apply_iam_snapshot(&self, app_id: &str, iam: &cone_aws::IamSnapshot, now: i64) -> Result<()> {
        let parts = futures_util::stream::iter([Ok(Part::Iam(iam.clone()))]).boxed();
        self.apply_iam(app_id, parts, now).await
    }

    /// Up to `limit` access keys `filter` selects, from `offset`, by user name, account and key id; account names
    /// from app `app_id`'s catalog.
    pub async fn access_keys(
        &self,
        app_id: &str,
        filter: &AccessKeyFilter,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<AccessKeyRow>> {
        Ok(sqlx::query_as(
            "SELECT k.account_id, r.name AS account_name, k.id, k.user_arn, u.name AS user_name, k.status,
                 k.created_at, k.last_used_at, k.last_used_service, k.last_used_region
             FROM iam_access_keys k JOIN iam_users u ON u.account_id = k.account_id AND u.arn = k.user_arn
             LEFT JOIN resources r ON r.app_id = $1 AND r.id = k.account_id
             WHERE ($2 = '' OR u.name = $2) AND ($3 = '' OR k.status = $3)
                 AND ($4 = '' OR k.account_id = $4 OR r.name = $4)
             ORDER BY u.name, k.account_id, k.id LIMIT $5 OFFSET $6",
        )
        .bind(app_id)
        .bind(&filter.user_name)
        .bind(&filter.status)
        .bind(&filter.account)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Up to `limit` IAM users from `offset` in `account` (an id or catalog name; empty for all), by name, with
    /// how many access keys each has; account names from app `app_id`'s catalog.
    pub async fn iam_users(&self, app_id: &str, account: &str, offset: i64, limit: i64) -> Result<Vec<IamUserRow>> {
        Ok(sqlx::query_as(
            "SELECT u.account_id, r.name AS account_name, u.arn, u.id, u.name, u.created_at, u.password_last_used_at,
                 (SELECT COUNT(*) FROM iam_access_keys k WHERE k.account_id = u.account_id AND k.user_arn = u.arn)
                     AS access_keys
             FROM iam_users u LEFT JOIN resources r ON r.app_id = $1 AND r.id = u.account_id
             WHERE ($2 = '' OR u.account_id = $2 OR r.name = $2)
             ORDER BY u.name, u.arn LIMIT $3 OFFSET $4",
        )
        .bind(app_id)
        .bind(account)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// `(user arn, group name)` for each group of the users `user_arns` names, by group name.
    pub async fn iam_groups_of(&self, user_arns: &[&str]) -> Result<Vec<(String, String)>> {
        let arns = self.backend.json_values("$1");
        Ok(sqlx::query_as(&format!(
            "SELECT m.user_arn, g.name FROM iam_group_members m
             JOIN iam_groups g ON g.account_id = m.account_id AND g.arn = m.group_arn
             WHERE m.user_arn IN (SELECT value FROM {arns}) ORDER BY g.name"
        ))
        .bind(serde_json::to_string(user_arns)?)
        .fetch_all(&self.pool)
        .await?)
    }
}
