//! The catalog a sync stores (apps, accounts, entitlements, users, groups and memberships, group assignments) and
//! what people hold: active grants and access through groups, the hot path's cached reads.

use std::collections::HashSet;
use std::sync::Arc;

use anyhow::Result;
use cone_aws::{Part, PartStream, PermissionSet};
use futures_util::StreamExt;
use sqlx::FromRow;

use super::audit::record;
use super::identities::{PeopleSynced, apply_groups, apply_users};
use super::pool::{Db, Tx};
use super::rows::{EntitlementRow, GroupRouteRow};

/// What [`Db::apply_sync`] stored beside the catalog.
pub struct Synced {
    pub permission_sets: Vec<PermissionSet>,
    pub people: PeopleSynced,
}

/// Someone who holds an entitlement: `source` is `grant` (with the task and the end) or `group` (with its name).
#[derive(Debug, Clone, FromRow)]
pub struct HolderRow {
    pub username: String,
    pub display_name: String,
    pub source: String,
    pub task_id: Option<i64>,
    pub expires_at: Option<i64>,
    pub group_name: Option<String>,
}

/// A group membership has no account (`resource_id` is empty).
const ENTITLEMENT_SELECT: &str = "SELECT e.app_id, e.id, e.alias, e.resource_id AS account_id,
        COALESCE(r.name, '') AS account_name, e.permission_set_arn, e.permission_set_name, a.instance_arn, e.kind,
        e.group_id, e.group_name
    FROM entitlements e LEFT JOIN resources r ON r.app_id = e.app_id AND r.id = e.resource_id
    JOIN apps a ON a.id = e.app_id
    WHERE e.present = 1";

/// Derives every present entitlement's alias afresh: aliases depend on the whole catalog (a clash changes both
/// names), so they are derived once per sync. IAM groups are named `<account>-iam-<group>`.
pub(super) async fn refresh_aliases(tx: &mut Tx) -> Result<()> {
    let rows: Vec<EntitlementRow> = sqlx::query_as(ENTITLEMENT_SELECT).fetch_all(&mut **tx).await?;
    let roles: Vec<String> = rows
        .iter()
        .map(|r| match (r.is_group(), r.is_idc_group()) {
            (true, true) => r.group_name.clone(),
            (true, false) => format!("iam-{}", r.group_name),
            (false, _) => r.permission_set_name.clone(),
        })
        .collect();
    let keys: Vec<(&str, &str, &str)> = rows
        .iter()
        .zip(&roles)
        .map(|(r, role)| match r.is_idc_group() {
            true => ("group", role.as_str(), r.group_id.as_str()),
            false => (r.account_name.as_str(), role.as_str(), r.account_id.as_str()),
        })
        .collect();
    for (row, alias) in rows.iter().zip(cone_core::naming::aliases(&keys)) {
        if row.alias != alias {
            sqlx::query("UPDATE entitlements SET alias = $1 WHERE app_id = $2 AND id = $3")
                .bind(&alias)
                .bind(&row.app_id)
                .bind(&row.id)
                .execute(&mut **tx)
                .await?;
        }
    }
    Ok(())
}

impl Db {
    /// Replaces the catalog and identities with what a sync read, from its `parts` in [`Part::kind`] order (as
    /// [`cone_aws::SqlSpool::parts`] gives them), offboards the people who left (`identities::apply_users`), and
    /// clears the sync journal (this sync is stored; the next one reads AWS afresh). Holds the accounts' ids and the
    /// permission sets, not the rest.
    pub async fn apply_sync(
        &self,
        app_id: &str,
        instance_arn: &str,
        mut parts: PartStream<'_>,
        max_offboard_percent: u8,
        now: i64,
    ) -> Result<Synced> {
        let mut tx = self.begin().await?;
        self.journal.clear(&mut tx).await.map_err(|e| anyhow::anyhow!("cannot clear the sync's journal: {e}"))?;
        sqlx::query("INSERT INTO apps (id, name, instance_arn) VALUES ($1, 'AWS', $2) ON CONFLICT (id) DO UPDATE SET instance_arn = excluded.instance_arn")
            .bind(app_id)
            .bind(instance_arn)
            .execute(&mut *tx)
            .await?;
        // IAM groups are the IAM sync's (`apply_iam`).
        sqlx::query("UPDATE entitlements SET present = 0 WHERE app_id = $1 AND kind <> $2")
            .bind(app_id)
            .bind(cone_api::KIND_AWS_IAM_GROUP_MEMBERSHIP)
            .execute(&mut *tx)
            .await?;
        for table in ["group_assignments", "user_assignments"] {
            sqlx::query(&format!("DELETE FROM {table} WHERE app_id = $1")).bind(app_id).execute(&mut *tx).await?;
        }
        let mut accounts = HashSet::new();
        let mut permission_sets = Vec::new();
        let (mut users, mut groups, mut group_assignments) = (0, 0, 0);
        let mut people = PeopleSynced::default();
        while let Some(part) = parts.next().await {
            match part? {
                Part::Accounts(list) => {
                    for a in list {
                        sqlx::query("INSERT INTO resources (app_id, id, name) VALUES ($1, $2, $3) ON CONFLICT (app_id, id) DO UPDATE SET name = excluded.name")
                            .bind(app_id)
                            .bind(&a.id)
                            .bind(&a.name)
                            .execute(&mut *tx)
                            .await?;
                        accounts.insert(a.id);
                    }
                }
                Part::PermissionSets(list) => permission_sets.extend(list),
                Part::Provisioned(pairs) => {
                    for (account_id, ps_arn) in &pairs {
                        let Some(ps) = permission_sets.iter().find(|p| &p.arn == ps_arn) else {
                            continue;
                        };
                        if !accounts.contains(account_id) {
                            continue;
                        }
                        // Identity Center's default when a permission set says none is one hour.
                        let session_secs = ps
                            .session_duration
                            .as_deref()
                            .and_then(cone_core::sessions::iso_duration_secs)
                            .unwrap_or(3600);
                        sqlx::query(
                            "INSERT INTO entitlements
                                 (app_id, id, resource_id, permission_set_arn, permission_set_name, session_secs, present)
                             VALUES ($1, $2, $3, $4, $5, $6, 1)
                             ON CONFLICT (app_id, id) DO UPDATE SET present = 1,
                                 permission_set_name = excluded.permission_set_name, session_secs = excluded.session_secs",
                        )
                        .bind(app_id)
                        .bind(format!("{account_id}|{ps_arn}"))
                        .bind(account_id)
                        .bind(ps_arn)
                        .bind(&ps.name)
                        .bind(session_secs)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                Part::Users(list) => {
                    users += list.len();
                    people = apply_users(&mut tx, &list, max_offboard_percent, now).await?;
                }
                Part::Groups(list) => {
                    groups += list.len();
                    apply_groups(&mut tx, &list, now).await?;
                    for g in &list {
                        sqlx::query(
                            "INSERT INTO entitlements (app_id, id, resource_id, permission_set_arn, permission_set_name,
                                 kind, group_id, group_name, present)
                             VALUES ($1, $2, '', '', '', $3, $4, $5, 1)
                             ON CONFLICT (app_id, id) DO UPDATE SET present = 1, group_name = excluded.group_name",
                        )
                        .bind(app_id)
                        .bind(format!("group|{}", g.id))
                        .bind(cone_api::KIND_AWS_IDC_GROUP_MEMBERSHIP)
                        .bind(&g.id)
                        .bind(&g.display_name)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                Part::Memberships(pairs) => {
                    for (group_id, user_id) in &pairs {
                        sqlx::query(
                            "INSERT INTO group_members (group_id, user_id)
                             SELECT g.id, u.id FROM groups g, users u
                             WHERE g.idc_group_id = $1 AND u.idc_user_id = $2 AND u.left_at IS NULL
                             ON CONFLICT DO NOTHING",
                        )
                        .bind(group_id)
                        .bind(user_id)
                        .execute(&mut *tx)
                        .await?;
                    }
                }
                Part::Assignments(list) => {
                    for a in &list {
                        // A user's own assignments are kept for access reviews.
                        let (sql, principal) = match &a.principal {
                            cone_aws::Principal::Group(id) => {
                                group_assignments += 1;
                                (
                                    "INSERT INTO group_assignments (app_id, entitlement_id, group_id)
                                  SELECT $1, $2, id FROM groups WHERE idc_group_id = $3 ON CONFLICT DO NOTHING",
                                    id,
                                )
                            }
                            cone_aws::Principal::User(id) => (
                                "INSERT INTO user_assignments (app_id, entitlement_id, user_id)
                                 SELECT $1, $2, id FROM users WHERE idc_user_id = $3 ON CONFLICT DO NOTHING",
                                id,
                            ),
                        };
                        sqlx::query(sql)
                            .bind(app_id)
                            .bind(format!("{}|{}", a.account_id, a.permission_set_arn))
                            .bind(principal)
                            .execute(&mut *tx)
                            .await?;
                    }
                }
                // Stored by `apply_iam`.
                Part::Iam(_) => {}
            }
        }
        refresh_aliases(&mut tx).await?;
        let detail = serde_json::json!({
            "accounts": accounts.len(), "permission_sets": permission_sets.len(),
            "users": users, "groups": groups, "group_assignments": group_assignments,
            "offboarded": people.offboarded, "offboarding_held": people.held,
        });
        record(&mut tx, now, "connector:aws", "sync", app_id, &detail.to_string()).await?;
        tx.commit().await?;
        Ok(Synced { permission_sets, people })
    }

    #[cfg(test)]
    pub async fn apply_snapshot(&self, app_id: &str, snap: &cone_aws::Snapshot, now: i64) -> Result<()> {
        let parts = futures_util::stream::iter(snap.parts().into_iter().map(Ok)).boxed();
        self.apply_sync(app_id, &snap.instance_arn, parts, 10, now).await?;
        // As the sync worker does next.
        self.end_leavers_grants(now).await.map(drop)
    }

    /// A new run of the sync's spool (see `cone_aws::spool`), in the database beside the data it feeds.
    pub async fn sync_spool(&self) -> Result<cone_aws::SqlSpool> {
        cone_aws::SqlSpool::start(self.pool.clone(), "sync_spool")
            .await
            .map_err(|e| anyhow::anyhow!("cannot prepare the sync's spool table: {e}"))
    }

    pub async fn entitlements(&self) -> Result<Arc<Vec<EntitlementRow>>> {
        let read = async {
            let sql =
                format!("{ENTITLEMENT_SELECT} ORDER BY e.group_id <> '', r.name, e.permission_set_name, e.group_name");
            Ok(Arc::new(sqlx::query_as(&sql).fetch_all(&self.pool).await?))
        };
        self.cached(&self.reads.catalog, (), read).await
    }

    pub async fn entitlement(&self, app_id: &str, id: &str) -> Result<Option<EntitlementRow>> {
        let read = async {
            let sql = format!("{ENTITLEMENT_SELECT} AND e.app_id = $1 AND e.id = $2");
            Ok(sqlx::query_as(&sql).bind(app_id).bind(id).fetch_optional(&self.pool).await?)
        };
        self.cached(&self.reads.entitlements, (app_id.to_string(), id.to_string()), read).await
    }

    /// The caller's active grants: (app id, entitlement id, latest end).
    pub async fn active_grants(&self, user_id: i64, now: i64) -> Result<Vec<(String, String, i64)>> {
        // Read with the time of the read; a grant active now was active then, and only a write makes one active.
        let read = async {
            Ok(sqlx::query_as(
                "SELECT app_id, entitlement_id, MAX(expires_at) FROM (
                     SELECT app_id, entitlement_id, expires_at FROM grants
                     WHERE user_id = $1 AND state = 'active' AND expires_at > $2
                     UNION ALL
                     SELECT a.app_id, a.entitlement_id, g.expires_at FROM grants g
                     JOIN groups gr ON gr.idc_group_id = g.group_id JOIN group_assignments a ON a.group_id = gr.id
                     WHERE g.user_id = $1 AND g.kind = 'aws_idc_group_membership' AND g.state = 'active'
                         AND g.expires_at > $2
                 ) held GROUP BY app_id, entitlement_id",
            )
            .bind(user_id)
            .bind(now)
            .fetch_all(&self.pool)
            .await?)
        };
        let mut grants = self.cached(&self.reads.grants, user_id, read).await?;
        grants.retain(|(_, _, end)| *end > now);
        Ok(grants)
    }

    /// What the user holds through their Identity Center groups: (app id, entitlement id, group name), by group
    /// name: the groups' permission sets, and the memberships themselves. A membership a Cone grant made counts as
    /// that grant (see `active_grants`), not as held through the group.
    pub async fn held_through_groups(&self, user_id: i64) -> Result<Vec<(String, String, String)>> {
        let read = async {
            Ok(sqlx::query_as(
                "WITH member_of AS (
                     SELECT g.id, g.name, g.idc_group_id FROM group_members m JOIN groups g ON g.id = m.group_id
                     WHERE m.user_id = $1 AND NOT EXISTS (
                         SELECT 1 FROM grants c WHERE c.user_id = m.user_id AND c.kind = 'aws_idc_group_membership'
                         AND c.group_id = g.idc_group_id
                         AND c.state IN ('provisioning', 'active', 'revoking') AND COALESCE(c.membership_found, 0) = 0))
                 SELECT a.app_id, a.entitlement_id, g.name FROM group_assignments a JOIN member_of g ON g.id = a.group_id
                 UNION ALL
                 SELECT e.app_id, e.id, g.name FROM entitlements e JOIN member_of g ON g.idc_group_id = e.group_id
                 WHERE e.kind = 'aws_idc_group_membership'
                 ORDER BY 3, 2",
            )
            .bind(user_id)
            .fetch_all(&self.pool)
            .await?)
        };
        self.cached(&self.reads.through_groups, user_id, read).await
    }

    /// Which group memberships give which permission sets, by the groups' assignments.
    pub async fn group_routes(&self) -> Result<Arc<Vec<GroupRouteRow>>> {
        let read = async {
            let routes = sqlx::query_as(
                "SELECT a.app_id, a.entitlement_id, e.id FROM group_assignments a JOIN groups g ON g.id = a.group_id
                 JOIN entitlements e ON e.app_id = a.app_id AND e.group_id = g.idc_group_id AND e.present = 1
                     AND e.kind = 'aws_idc_group_membership'
                 ORDER BY e.group_name",
            )
            .fetch_all(&self.pool)
            .await?;
            Ok(Arc::new(routes))
        };
        self.cached(&self.reads.group_routes, (), read).await
    }

    /// Up to `limit` of the people who hold an entitlement, from `offset`, by user name: through an active grant or
    /// through a group.
    pub async fn holders(
        &self,
        app_id: &str,
        entitlement_id: &str,
        now: i64,
        offset: i64,
        limit: i64,
    ) -> Result<Vec<HolderRow>> {
        Ok(sqlx::query_as(
            "SELECT u.username, u.display_name, 'grant' AS source, g.task_id, g.expires_at, NULL AS group_name
             FROM grants g JOIN users u ON u.id = g.user_id
             WHERE g.app_id = $1 AND g.entitlement_id = $2 AND g.state = 'active' AND g.expires_at > $3
             UNION ALL
             SELECT u.username, u.display_name, 'group', NULL, NULL, gr.name
             FROM group_assignments a JOIN groups gr ON gr.id = a.group_id
                 JOIN group_members m ON m.group_id = a.group_id JOIN users u ON u.id = m.user_id
             WHERE a.app_id = $1 AND a.entitlement_id = $2
             ORDER BY username, source, group_name, task_id LIMIT $4 OFFSET $5",
        )
        .bind(app_id)
        .bind(entitlement_id)
        .bind(now)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }
}
