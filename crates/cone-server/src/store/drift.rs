//! Drift between Identity Center and the grants: the findings of each sweep, audited once when seen and when
//! resolved, and the repair jobs they queue.

use anyhow::{Context, Result};
use cone_core::grant::GrantEvent;
use cone_core::job::{JobKind, JobState};
use sqlx::{Executor, FromRow};

use super::audit::record;
use super::lifecycle::{enqueue, finish_job, grant_state, holding_states, set_grant_state};
use super::pool::Db;
use super::rows::JobRow;

/// A drift finding with the names Cone knows for its account, permission set and user.
#[derive(Debug, Clone, FromRow)]
pub struct DriftRow {
    pub id: i64,
    pub kind: String,
    pub instance_arn: String,
    pub account_id: String,
    pub account_name: Option<String>,
    pub permission_set_arn: String,
    pub permission_set_name: Option<String>,
    pub principal_id: String,
    pub username: Option<String>,
    /// A membership's group, by name; `None` for an assignment.
    pub group_name: Option<String>,
    pub task_id: Option<i64>,
    pub remedy: Option<String>,
    pub first_seen: i64,
    pub last_seen: i64,
    pub resolved_at: Option<i64>,
}

impl DriftRow {
    /// The audit entry's detail: what drifted, by id and by name.
    fn audit_detail(&self) -> String {
        serde_json::json!({
            "account_id": self.account_id, "account": self.account_name,
            "permission_set_arn": self.permission_set_arn, "permission_set": self.permission_set_name,
            "principal_id": self.principal_id, "user": self.username, "group": self.group_name,
            "task_id": self.task_id, "remedy": self.remedy,
        })
        .to_string()
    }
}

const DRIFT_SELECT: &str = "SELECT f.id, f.kind, f.instance_arn, f.account_id,
        (SELECT name FROM resources WHERE id = f.account_id LIMIT 1) AS account_name, f.permission_set_arn,
        (SELECT permission_set_name FROM entitlements WHERE permission_set_arn = f.permission_set_arn LIMIT 1)
            AS permission_set_name,
        f.principal_id, (SELECT username FROM users WHERE idc_user_id = f.principal_id) AS username,
        (SELECT group_name FROM entitlements WHERE f.group_id <> '' AND group_id = f.group_id
             AND resource_id = f.account_id LIMIT 1) AS group_name,
        g.task_id, f.remedy, f.first_seen, f.last_seen, f.resolved_at
    FROM drift_findings f LEFT JOIN grants g ON g.id = f.grant_id";

/// Which open findings to list; empty fields match any.
#[derive(Debug, Clone, Default)]
pub struct DriftFilter {
    /// `unexplained` or `missing`.
    pub kind: String,
    /// The Cone user name of the person.
    pub user: String,
    /// An account id, or its name in the catalog.
    pub account: String,
    /// A permission set's or a group's name.
    pub target: String,
}

/// What recording a sweep changed.
#[derive(Default)]
pub struct DriftRecord {
    /// Findings seen for the first time.
    pub opened: Vec<DriftRow>,
    pub resolved: usize,
    /// Repair jobs queued.
    pub queued: usize,
}

/// How a drift repair job ended.
pub enum Repair {
    /// Nothing to do any more (see the job).
    Skipped,
    /// The unexplained assignment was removed.
    Removed,
    /// The job's grant has its assignment again.
    Restored,
}

impl Db {
    /// The grants a sweep of a sync that started at `synced_at` compares with: those that may hold an assignment,
    /// and those ended since (`drift::compare` decides which explain what). Group memberships hold no assignment
    /// of their own, and are not compared.
    pub async fn drift_grants(&self, synced_at: i64) -> Result<Vec<crate::drift::GrantView>> {
        Ok(sqlx::query_as(&format!(
            "SELECT id, instance_arn, account_id, permission_set_arn, principal_id, state, starts_at, expires_at,
                 ended_at
             FROM grants WHERE group_id = '' AND (state IN {} OR (state = 'ended' AND ended_at >= $1))",
            holding_states()
        ))
        .bind(synced_at)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Records a sweep of `instance_arn` in one transaction: new findings are audited once, seen ones get a new
    /// `last_seen`, open ones not seen are resolved (and audited), and each finding with a remedy gets a repair job
    /// unless one is waiting already, so a repair that ran but did not stick is tried again without piling up. A sweep
    /// of `memberships` resolves only membership findings; one of assignments, only assignment findings.
    pub async fn record_drift(
        &self,
        instance_arn: &str,
        findings: &[crate::drift::Finding],
        memberships: bool,
        now: i64,
    ) -> Result<DriftRecord> {
        let mut tx = self.begin().await?;
        let mut found = DriftRecord::default();
        let mut seen = Vec::with_capacity(findings.len());
        for f in findings {
            let remedy = f.remedy.map(|r| r.as_str());
            let open: Option<i64> = sqlx::query_scalar(
                "UPDATE drift_findings SET last_seen = $1, grant_id = $2, remedy = $3
                 WHERE resolved_at IS NULL AND kind = $4 AND instance_arn = $5 AND account_id = $6
                 AND permission_set_arn = $7 AND principal_id = $8 AND group_id = $9 RETURNING id",
            )
            .bind(now)
            .bind(f.grant_id)
            .bind(remedy)
            .bind(f.kind.as_str())
            .bind(instance_arn)
            .bind(&f.account_id)
            .bind(&f.permission_set_arn)
            .bind(&f.principal_id)
            .bind(&f.group_id)
            .fetch_optional(&mut *tx)
            .await?;
            let id = match open {
                Some(id) => id,
                None => {
                    let id: i64 = sqlx::query_scalar(
                        "INSERT INTO drift_findings (kind, instance_arn, account_id, permission_set_arn, principal_id,
                             grant_id, remedy, first_seen, last_seen, group_id)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) RETURNING id",
                    )
                    .bind(f.kind.as_str())
                    .bind(instance_arn)
                    .bind(&f.account_id)
                    .bind(&f.permission_set_arn)
                    .bind(&f.principal_id)
                    .bind(f.grant_id)
                    .bind(remedy)
                    .bind(now)
                    .bind(now)
                    .bind(&f.group_id)
                    .fetch_one(&mut *tx)
                    .await?;
                    let row = drift_row(&mut *tx, id).await?;
                    let action = format!("drift.{}", f.kind.as_str());
                    record(&mut tx, now, "worker", &action, &format!("drift:{id}"), &row.audit_detail()).await?;
                    found.opened.push(row);
                    id
                }
            };
            seen.push(id);
            if let Some(remedy) = f.remedy {
                let waiting: Option<i64> =
                    sqlx::query_scalar("SELECT 1 FROM jobs WHERE finding_id = $1 AND state = 'pending' LIMIT 1")
                        .bind(id)
                        .fetch_optional(&mut *tx)
                        .await?;
                if waiting.is_none() {
                    enqueue(&mut tx, remedy.job_kind(), f.grant_id, Some(id), now).await?;
                    found.queued += 1;
                }
            }
        }
        let resolved: Vec<i64> = sqlx::query_scalar(&format!(
            "UPDATE drift_findings SET resolved_at = $1
             WHERE resolved_at IS NULL AND instance_arn = $2 AND (CASE WHEN group_id = '' THEN 0 ELSE 1 END) = $4
             AND id NOT IN (SELECT CAST(value AS BIGINT) FROM {})
             RETURNING id",
            self.backend.json_values("$3")
        ))
        .bind(now)
        .bind(instance_arn)
        .bind(serde_json::to_string(&seen)?)
        .bind(i64::from(memberships))
        .fetch_all(&mut *tx)
        .await?;
        for id in &resolved {
            let detail = drift_row(&mut *tx, *id).await?.audit_detail();
            record(&mut tx, now, "worker", "drift.resolved", &format!("drift:{id}"), &detail).await?;
        }
        found.resolved = resolved.len();
        tx.commit().await?;
        Ok(found)
    }

    /// Active membership grants, active since before a sync that started at `synced_at`, whose membership Cone made
    /// and that sync did not find: an Identity Center group's among the groups' members, an IAM group's (with `iam`,
    /// in an account the IAM sync read) among its members. Each is a finding to restore.
    pub async fn missing_memberships(&self, synced_at: i64, now: i64, iam: bool) -> Result<Vec<crate::drift::Finding>> {
        let rows: Vec<(i64, String, String, String)> = sqlx::query_as(
            "SELECT g.id, g.account_id, g.principal_id, g.group_id FROM grants g
             WHERE g.state = 'active' AND g.starts_at < $1 AND g.expires_at > $2 AND g.membership_found = 0 AND (
                 (g.kind = $3 AND NOT EXISTS (
                     SELECT 1 FROM group_members m JOIN groups gr ON gr.id = m.group_id
                     WHERE m.user_id = g.user_id AND gr.idc_group_id = g.group_id))
                 OR (g.kind = $4 AND $5 = 1
                     AND g.account_id NOT IN (SELECT account_id FROM iam_skipped_accounts) AND NOT EXISTS (
                     SELECT 1 FROM created_accounts c
                     JOIN iam_users u ON u.account_id = c.account_id AND u.name = c.user_name
                     JOIN iam_group_members m ON m.account_id = u.account_id AND m.user_arn = u.arn
                     JOIN iam_groups ig ON ig.account_id = m.account_id AND ig.arn = m.group_arn
                     WHERE c.user_id = g.user_id AND c.account_id = g.account_id AND ig.name = g.group_id)))
             ORDER BY g.id",
        )
        .bind(synced_at)
        .bind(now)
        .bind(cone_api::KIND_AWS_IDC_GROUP_MEMBERSHIP)
        .bind(cone_api::KIND_AWS_IAM_GROUP_MEMBERSHIP)
        .bind(i64::from(iam))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .map(|(id, account_id, principal_id, group_id)| crate::drift::Finding {
                kind: crate::drift::Kind::Missing,
                account_id,
                permission_set_arn: String::new(),
                principal_id,
                group_id,
                grant_id: Some(id),
                remedy: Some(crate::drift::Remedy::Reprovision),
            })
            .collect())
    }

    pub async fn drift_finding(&self, id: i64) -> Result<DriftRow> {
        drift_row(&self.pool, id).await
    }

    /// Open findings, oldest first.
    pub async fn open_drift(&self, filter: &DriftFilter, offset: i64, limit: i64) -> Result<Vec<DriftRow>> {
        // Names as people type them, in any case; an empty filter matches everything.
        Ok(sqlx::query_as(&format!(
            "SELECT * FROM ({DRIFT_SELECT} WHERE f.resolved_at IS NULL) d
             WHERE ($1 = '' OR d.kind = $1) AND ($2 = '' OR d.username = $2)
                 AND ($3 = '' OR d.account_id = $3 OR LOWER(d.account_name) = LOWER($3))
                 AND ($4 = '' OR LOWER(d.permission_set_name) = LOWER($4) OR LOWER(d.group_name) = LOWER($4))
             ORDER BY d.id LIMIT $5 OFFSET $6"
        ))
        .bind(filter.kind.trim())
        .bind(filter.user.trim())
        .bind(filter.account.trim())
        .bind(filter.target.trim())
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// A grant now holds (or is making, or removing) the finding's assignment.
    pub async fn drift_explained(&self, f: &DriftRow) -> Result<bool> {
        let holder: Option<i64> = sqlx::query_scalar(&format!(
            "SELECT 1 FROM grants WHERE state IN {} AND instance_arn = $1
                 AND account_id = $2 AND permission_set_arn = $3 AND principal_id = $4 LIMIT 1",
            holding_states()
        ))
        .bind(&f.instance_arn)
        .bind(&f.account_id)
        .bind(&f.permission_set_arn)
        .bind(&f.principal_id)
        .fetch_optional(&self.pool)
        .await?;
        Ok(holder.is_some())
    }

    /// A drift repair job is done; what it did is audited on its finding.
    pub async fn drift_repaired(&self, job: &JobRow, repair: Repair, now: i64) -> Result<()> {
        let finding_id = job.finding_id.with_context(|| format!("drift job {} names no finding", job.id))?;
        let mut tx = self.begin().await?;
        finish_job(&mut tx, job.id, JobState::Done, None, now).await?;
        let action = match repair {
            Repair::Skipped => None,
            Repair::Removed => Some("drift.remove"),
            Repair::Restored => {
                // Restored while still active (the usual case), the grant stays. If it ended while its assignment
                // was being restored (another process revoked it), the restored assignment must go again.
                let grant_id = job.grant_id.with_context(|| format!("drift job {} names no grant", job.id))?;
                if let Some(to) = grant_state(&mut tx, grant_id).await?.on(GrantEvent::Restored) {
                    set_grant_state(&mut tx, grant_id, to).await?;
                    enqueue(&mut tx, JobKind::Revoke, Some(grant_id), None, now).await?;
                }
                Some("drift.reprovision")
            }
        };
        if let Some(action) = action {
            let detail = drift_row(&mut *tx, finding_id).await?.audit_detail();
            record(&mut tx, now, "worker", action, &format!("drift:{finding_id}"), &detail).await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

async fn drift_row<'e>(executor: impl Executor<'e, Database = sqlx::Any>, id: i64) -> Result<DriftRow> {
    Ok(sqlx::query_as(&format!("{DRIFT_SELECT} WHERE f.id = $1")).bind(id).fetch_one(executor).await?)
}
