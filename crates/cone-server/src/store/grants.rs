//! Grants and the jobs that make and remove their assignments: claiming a job, recording what AWS did, expiry,
//! extension and release.

use anyhow::Result;
use cone_core::grant::{GrantEvent, GrantState};
use cone_core::job::{JobKind, JobState};
use cone_core::task::Event;

use super::audit::record;
use super::denials::{deny_sessions, sessions_removed};
use super::lifecycle::{enqueue, finish_job, grant_state, move_task, next_grant_state, set_grant_state};
use super::pool::{Db, Tx, sql_list};
use super::rows::{GrantRow, JobRow};

/// The job kinds this server runs, as SQL text: a job of a kind it does not know (written by a newer replica
/// sharing the database) is left to a replica that knows it.
fn known_kinds() -> String {
    sql_list(JobKind::ALL.map(JobKind::as_str))
}

impl Db {
    /// Takes the next due job and leases it, so a crashed worker's job is retried once the lease runs out. On
    /// PostgreSQL replicas claim side by side: each skips the rows another is claiming, and the lease written here
    /// keeps the job theirs after the commit.
    pub async fn claim_job(&self, now: i64, lease_secs: i64) -> Result<Option<JobRow>> {
        // Not a job whose assignment (account, permission set, principal) another job holds a lease on: jobs on one
        // assignment run in order (a revocation never overtakes its provisioning), jobs on different ones at once.
        // On PostgreSQL two replicas claiming at once would not see each other's uncommitted lease, so claims take
        // turns (a claim is two short statements; the jobs themselves still run side by side).
        // The leased assignments are found once (a few rows, however many jobs wait): compared per waiting job, as a
        // correlated subquery, PostgreSQL took long enough with a thousand jobs waiting to fall short of AWS's rate.
        let (_turn, mut tx) = self.begin_claim(true).await?;
        let job: Option<JobRow> = sqlx::query_as(&format!(
            "WITH busy AS MATERIALIZED (
                 SELECT COALESCE(og.account_id, od.account_id, oi.account_id) AS account_id,
                        COALESCE(og.permission_set_arn, od.permission_set_arn, oi.permission_set_arn)
                            AS permission_set_arn,
                        COALESCE(og.principal_id, od.principal_id, oi.principal_id) AS principal_id,
                        COALESCE(og.group_id, oi.group_id, '') AS group_id
                 FROM jobs o
                 LEFT JOIN grants og ON og.id = o.grant_id LEFT JOIN drift_findings od ON od.id = o.finding_id
                 LEFT JOIN review_items oi ON oi.id = o.item_id
                 WHERE o.state = 'pending' AND o.locked_until > $1)
             SELECT j.id, j.kind, j.grant_id, j.finding_id, j.item_id, j.attempts FROM jobs j
             LEFT JOIN grants g ON g.id = j.grant_id LEFT JOIN drift_findings f ON f.id = j.finding_id
             LEFT JOIN review_items i ON i.id = j.item_id
             WHERE j.state = 'pending' AND j.kind IN {} AND j.run_after <= $1
               AND (j.locked_until IS NULL OR j.locked_until <= $1)
               AND NOT EXISTS (
                 SELECT 1 FROM busy b
                 WHERE b.account_id = COALESCE(g.account_id, f.account_id, i.account_id)
                   AND b.permission_set_arn = COALESCE(g.permission_set_arn, f.permission_set_arn, i.permission_set_arn)
                   AND b.principal_id = COALESCE(g.principal_id, f.principal_id, i.principal_id)
                   AND b.group_id = COALESCE(g.group_id, i.group_id, ''))
             ORDER BY j.run_after, j.id LIMIT 1{}",
            known_kinds(),
            self.backend.skip_locked("j")
        ))
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        if let Some(job) = &job {
            sqlx::query("UPDATE jobs SET locked_until = $1, attempts = attempts + 1, updated_at = $2 WHERE id = $3")
                .bind(now + lease_secs)
                .bind(now)
                .bind(job.id)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(job)
    }

    pub async fn grant(&self, id: i64) -> Result<GrantRow> {
        Ok(sqlx::query_as(
            "SELECT id, task_id, user_id, kind, instance_arn, account_id, permission_set_arn, principal_id,
                 duration_secs, group_id, membership_found
             FROM grants WHERE id = $1",
        )
        .bind(id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Another active grant gives the same principal the same permission set in the same account.
    pub async fn covered_by_other_grant(&self, g: &GrantRow, now: i64) -> Result<bool> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM grants WHERE id != $1 AND state = 'active' AND expires_at > $2
             AND principal_id = $3 AND account_id = $4 AND permission_set_arn = $5 AND group_id = $6",
        )
        .bind(g.id)
        .bind(now)
        .bind(&g.principal_id)
        .bind(&g.account_id)
        .bind(&g.permission_set_arn)
        .bind(&g.group_id)
        .fetch_one(&self.pool)
        .await?;
        Ok(n > 0)
    }

    /// The assignment exists: the grant starts now and the task is granted. When the grant no longer holds it
    /// (released while AWS was still provisioning, or ended meanwhile), the assignment is queued for removal instead.
    pub async fn provisioned(&self, job: &JobRow, g: &GrantRow, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let from = grant_state(&mut tx, g.id).await?;
        finish_job(&mut tx, job.id, JobState::Done, None, now).await?;
        match next_grant_state(g.id, from, GrantEvent::Provisioned) {
            Some(GrantState::Active) => {
                sqlx::query("UPDATE grants SET state = $1, starts_at = $2, expires_at = $3 WHERE id = $4")
                    .bind(GrantState::Active.as_str())
                    .bind(now)
                    .bind(now + g.duration_secs)
                    .bind(g.id)
                    .execute(&mut *tx)
                    .await?;
                move_task(&mut tx, g.task_id, Event::Provisioned, None, now).await?;
                record(&mut tx, now, "worker", "grant.activate", &format!("task:{}", g.task_id), "{}").await?;
            }
            Some(to) => {
                set_grant_state(&mut tx, g.id, to).await?;
                enqueue(&mut tx, JobKind::Revoke, Some(g.id), None, now).await?;
            }
            None => {}
        }
        tx.commit().await?;
        Ok(())
    }

    /// The assignment is gone (or another grant still needs it): the grant has ended.
    /// An IAM group's grant that was the last to need the IAM user Cone created queues its deletion, due
    /// `deprovision_after` from now (`None`: the user is kept; someone who left loses it at once).
    pub async fn revoked(
        &self,
        job: &JobRow,
        g: &GrantRow,
        kept_for_other: bool,
        deprovision_after: Option<i64>,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        let from = grant_state(&mut tx, g.id).await?;
        finish_job(&mut tx, job.id, JobState::Done, None, now).await?;
        if let Some(to) = next_grant_state(g.id, from, GrantEvent::Revoked) {
            sqlx::query("UPDATE grants SET state = $1, ended_at = $2 WHERE id = $3")
                .bind(to.as_str())
                .bind(now)
                .bind(g.id)
                .execute(&mut *tx)
                .await?;
            // A membership is also kept when the person was a member before Cone's grant.
            let detail = match g.group_id.is_empty() {
                true => serde_json::json!({ "assignment_kept_for_overlapping_grant": kept_for_other }),
                false => serde_json::json!({ "membership_kept": kept_for_other }),
            };
            record(&mut tx, now, "worker", "grant.revoke", &format!("task:{}", g.task_id), &detail.to_string()).await?;
            sessions_removed(&mut tx, g.task_id, kept_for_other, now).await?;
            if g.is_idc_group() && !kept_for_other {
                // Cone removed the membership: the person is no member until a sync says otherwise.
                sqlx::query(
                    "DELETE FROM group_members WHERE user_id = (SELECT user_id FROM grants WHERE id = $1)
                     AND group_id IN (SELECT id FROM groups WHERE idc_group_id = $2)",
                )
                .bind(g.id)
                .bind(&g.group_id)
                .execute(&mut *tx)
                .await?;
            }
            super::accounts::unneeded_after(&mut tx, g, deprovision_after, now).await?;
            super::lifecycle::ended_with_grant(&mut tx, g.id, now).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// What provisioning a membership grant found before making it: whether the person was a member already.
    pub async fn membership_looked(&self, g: &GrantRow, found: bool) -> Result<()> {
        sqlx::query("UPDATE grants SET membership_found = $1 WHERE id = $2 AND membership_found IS NULL")
            .bind(i64::from(found))
            .bind(g.id)
            .execute(&self.pool)
            .await?;
        self.data_changed();
        Ok(())
    }

    /// Provisioning failed for good.
    pub async fn provisioning_failed(&self, job: &JobRow, g: &GrantRow, error: &str, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        super::lifecycle::move_grant(&mut tx, g.id, GrantEvent::ProvisioningFailed).await?;
        move_task(&mut tx, g.task_id, Event::ProvisioningFailed, Some(error), now).await?;
        finish_job(&mut tx, job.id, JobState::Failed, Some(error), now).await?;
        // A user made for this grant alone may exist (an answer lost before the retries ran out).
        super::accounts::unneeded_after(&mut tx, g, Some(0), now).await?;
        let detail = serde_json::json!({"error": error}).to_string();
        record(&mut tx, now, "worker", "grant.fail", &format!("task:{}", g.task_id), &detail).await?;
        tx.commit().await?;
        Ok(())
    }

    pub async fn retry_job(&self, job: &JobRow, error: &str, run_after: i64, now: i64) -> Result<()> {
        sqlx::query(
            "UPDATE jobs SET locked_until = NULL, run_after = $1, last_error = $2, updated_at = $3 WHERE id = $4",
        )
        .bind(run_after)
        .bind(error)
        .bind(now)
        .bind(job.id)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Gives back jobs a stopping server claimed but did not finish, so that the next server (or another replica)
    /// takes them at once rather than after their lease; the unfinished attempt is not counted.
    pub async fn release_jobs(&self, ids: &[i64]) -> Result<()> {
        if ids.is_empty() {
            return Ok(());
        }
        let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
        sqlx::query(&format!(
            "UPDATE jobs SET locked_until = NULL, attempts = attempts - 1 WHERE state = 'pending' AND id IN ({})",
            ids.join(", ")
        ))
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Ends every grant whose time is up and queues the removal of its assignment, in one transaction so that a
    /// crash between the two cannot lose the revocation. Returns the affected task ids.
    pub async fn expire_due_grants(&self, now: i64) -> Result<Vec<i64>> {
        let mut tx = self.begin().await?;
        let due: Vec<(i64, i64)> =
            sqlx::query_as("SELECT id, task_id FROM grants WHERE state = 'active' AND expires_at <= $1")
                .bind(now)
                .fetch_all(&mut *tx)
                .await?;
        // Nothing due (most ticks): no commit, so the cached reads keep answering.
        if due.is_empty() {
            return Ok(Vec::new());
        }
        for (grant_id, task_id) in &due {
            let Some(to) = next_grant_state(*grant_id, GrantState::Active, GrantEvent::Expired) else { continue };
            set_grant_state(&mut tx, *grant_id, to).await?;
            move_task(&mut tx, *task_id, Event::Ended, None, now).await?;
            for extension in extensions(&mut tx, *grant_id).await? {
                move_task(&mut tx, extension, Event::Ended, None, now).await?;
            }
            enqueue(&mut tx, JobKind::Revoke, Some(*grant_id), None, now).await?;
            record(&mut tx, now, "worker", "grant.expire", &format!("task:{task_id}"), "{}").await?;
        }
        tx.commit().await?;
        Ok(due.into_iter().map(|(_, t)| t).collect())
    }

    /// The earliest moment a worker has something to do: a job becomes due (unless it runs no jobs, `with_jobs`
    /// false), a grant ends, or an undecided request times out (`pending_timeout` after it was filed).
    pub async fn next_due(&self, pending_timeout: i64, with_jobs: bool) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(t) FROM (
                 SELECT MIN(CASE WHEN locked_until > run_after THEN locked_until ELSE run_after END) AS t
                     FROM jobs WHERE state = 'pending' AND $2 = 1
                 UNION ALL SELECT MIN(expires_at) FROM grants WHERE state = 'active'
                 UNION ALL SELECT MIN(created_at) + $1 FROM tasks WHERE state = 'pending_approval') AS due",
        )
        .bind(pending_timeout)
        .bind(i64::from(with_jobs))
        .fetch_one(&self.pool)
        .await?)
    }

    /// The caller's active grant on an entitlement with the latest end: (grant id, end, extensions so far).
    pub async fn active_grant(
        &self,
        user_id: i64,
        app_id: &str,
        entitlement_id: &str,
        now: i64,
    ) -> Result<Option<(i64, i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT id, expires_at, extensions FROM grants WHERE user_id = $1 AND app_id = $2 AND entitlement_id = $3
             AND state = 'active' AND expires_at > $4 ORDER BY expires_at DESC LIMIT 1",
        )
        .bind(user_id)
        .bind(app_id)
        .bind(entitlement_id)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// An administrator ends the grant a task gave (or, for an extension, the grant it extends) now, with a reason;
    /// returns the task of that grant, or `None` when it holds no live grant.
    pub async fn withdraw_grant(&self, task_id: i64, by: i64, reason: &str, now: i64) -> Result<Option<i64>> {
        let mut tx = self.begin().await?;
        let live: Option<(i64, i64)> = sqlx::query_as(
            "SELECT g.id, g.task_id FROM grants g
             WHERE g.id = COALESCE((SELECT extends_grant_id FROM tasks WHERE id = $1),
                                   (SELECT id FROM grants WHERE task_id = $1))
               AND (g.state = 'provisioning' OR (g.state = 'active' AND g.expires_at > $2))",
        )
        .bind(task_id)
        .bind(now)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((grant_id, grant_task)) = live else { return Ok(None) };
        let ending =
            Ending { actor: format!("user:{by}"), by: Some(by), action: "grant.withdraw", reason: Some(reason) };
        end_early(&mut tx, grant_id, grant_task, &ending, now).await?;
        tx.commit().await?;
        Ok(Some(grant_task))
    }

    /// The grant is active and not yet due to end.
    pub async fn grant_active(&self, grant_id: i64, now: i64) -> Result<bool> {
        let active: Option<i64> =
            sqlx::query_scalar("SELECT 1 FROM grants WHERE id = $1 AND state = 'active' AND expires_at > $2")
                .bind(grant_id)
                .bind(now)
                .fetch_optional(&self.pool)
                .await?;
        Ok(active.is_some())
    }
}

/// An approved extension moves the end of the grant where `cone_core::request::extended_end` says; the assignment
/// already exists, so there is nothing to provision. A grant that ended meanwhile fails the extension.
pub(super) async fn extend(tx: &mut Tx, task_id: i64, grant_id: i64, add: i64, max: i64, now: i64) -> Result<()> {
    let held: Option<i64> =
        sqlx::query_scalar("SELECT expires_at FROM grants WHERE id = $1 AND state = 'active' AND expires_at > $2")
            .bind(grant_id)
            .bind(now)
            .fetch_optional(&mut **tx)
            .await?;
    let Some(end) = held else {
        let reason = "The grant ended before the extension was approved; request access again.";
        move_task(tx, task_id, Event::ProvisioningFailed, Some(reason), now).await?;
        return Ok(());
    };
    sqlx::query("UPDATE grants SET expires_at = $1, extensions = extensions + 1 WHERE id = $2")
        .bind(cone_core::request::extended_end(end, now, add, max))
        .bind(grant_id)
        .execute(&mut **tx)
        .await?;
    move_task(tx, task_id, Event::Provisioned, None, now).await?;
    record(tx, now, "worker", "grant.extend", &format!("task:{task_id}"), "{}").await.map(drop)
}

/// Its holder gives a grant back: an active one's assignment is removed now, a provisioning one's once made.
pub(super) async fn release(tx: &mut Tx, grant_id: i64, task_id: i64, user_id: i64, now: i64) -> Result<()> {
    let ending = Ending { actor: format!("user:{user_id}"), by: Some(user_id), action: "grant.release", reason: None };
    end_early(tx, grant_id, task_id, &ending, now).await
}

/// The approved extensions of a grant that still read as granted.
async fn extensions(tx: &mut Tx, grant_id: i64) -> Result<Vec<i64>> {
    Ok(sqlx::query_scalar("SELECT id FROM tasks WHERE extends_grant_id = $1 AND state = 'granted'")
        .bind(grant_id)
        .fetch_all(&mut **tx)
        .await?)
}

/// Who ends a grant before its time, and why.
pub(super) struct Ending<'a> {
    /// The audit actor: `user:<id>` or the part of Cone that acts.
    pub actor: String,
    /// The person, kept on the task so that its requester is told who (none when Cone itself ends it).
    pub by: Option<i64>,
    pub action: &'a str,
    /// What the task and the audit entry say about why.
    pub reason: Option<&'a str>,
}

/// Ends a grant before its time: an active one's assignment is removed now, a provisioning one's once made.
pub(super) async fn end_early(tx: &mut Tx, grant_id: i64, task_id: i64, ending: &Ending<'_>, now: i64) -> Result<()> {
    let from = grant_state(tx, grant_id).await?;
    let Some(to) = next_grant_state(grant_id, from, GrantEvent::Released) else { return Ok(()) };
    sqlx::query("UPDATE grants SET state = $1, expires_at = $2 WHERE id = $3")
        .bind(to.as_str())
        .bind(now)
        .bind(grant_id)
        .execute(&mut **tx)
        .await?;
    // A provisioning grant keeps its provision job: `provisioned` sees the release and queues the removal.
    if to == GrantState::Revoking {
        enqueue(tx, JobKind::Revoke, Some(grant_id), None, now).await?;
    }
    // A provisioning grant may have had its assignment made already, and a session started with it.
    deny_sessions(tx, grant_id, now).await?;
    // Its approved extensions end with it, so that no task of an ended grant still reads as granted.
    for task in std::iter::once(task_id).chain(extensions(tx, grant_id).await?) {
        move_task(tx, task, Event::Released, ending.reason, now).await?;
        sqlx::query("UPDATE tasks SET ended_by = $1 WHERE id = $2")
            .bind(ending.by)
            .bind(task)
            .execute(&mut **tx)
            .await?;
    }
    let detail = match ending.reason {
        Some(reason) => serde_json::json!({ "reason": reason }).to_string(),
        None => "{}".to_string(),
    };
    record(tx, now, &ending.actor, ending.action, &format!("task:{task_id}"), &detail).await.map(drop)
}
