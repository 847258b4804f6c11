//! Role sessions to deny (`aws.revoke_sessions`): each early end of a grant, kept until the sessions it denies
//! have run out, and which version of the deny policy AWS holds, taken by one replica at a time to change it.

use anyhow::Result;
use sqlx::FromRow;

use super::pool::{Db, Tx};

/// One early end: the sessions of a permission set in an account that one Identity Center user started before
/// `issued_before`.
#[derive(Debug, Clone, FromRow)]
pub struct DenialRow {
    pub principal_id: String,
    pub account_id: String,
    pub permission_set_name: String,
    pub issued_before: i64,
}

/// Records that the sessions of the grant's role issued before `now` are to be denied until the longest of them has
/// run out (the permission set's session duration), when the store was opened to.
pub(super) async fn deny_sessions(tx: &mut Tx, grant_id: i64, now: i64) -> Result<()> {
    if !tx.denials.on {
        return Ok(());
    }
    sqlx::query(
        "INSERT INTO session_denials (task_id, principal_id, account_id, permission_set_name, issued_before, until_at)
         SELECT g.task_id, g.principal_id, g.account_id, e.permission_set_name, $1, $1 + e.session_secs
         FROM grants g JOIN entitlements e ON e.app_id = g.app_id AND e.id = g.entitlement_id
         WHERE g.id = $2 AND g.group_id = ''
         UNION ALL
         SELECT g.task_id, g.principal_id, e.resource_id, e.permission_set_name, $1, $1 + e.session_secs
         FROM grants g JOIN groups gr ON gr.idc_group_id = g.group_id JOIN group_assignments a ON a.group_id = gr.id
         JOIN entitlements e ON e.app_id = a.app_id AND e.id = a.entitlement_id WHERE g.id = $2",
    )
    .bind(now)
    .bind(grant_id)
    .execute(&mut **tx)
    .await?;
    tx.denied = true;
    Ok(())
}

/// The grant's assignment is gone (or, `kept`, still needed by an overlapping grant): sessions of its role made
/// after the early end and before the removal are denied too, counted from now; when the assignment stays, the
/// person still holds the role and nothing of theirs is denied.
pub(super) async fn sessions_removed(tx: &mut Tx, task_id: i64, kept: bool, now: i64) -> Result<()> {
    if !tx.denials.on {
        return Ok(());
    }
    let changed = if kept {
        sqlx::query("DELETE FROM session_denials WHERE task_id = $1").bind(task_id).execute(&mut **tx).await?
    } else {
        sqlx::query(
            "UPDATE session_denials SET until_at = $1 + (until_at - issued_before), issued_before = $1
             WHERE task_id = $2 AND issued_before < $1",
        )
        .bind(now)
        .bind(task_id)
        .execute(&mut **tx)
        .await?
    };
    tx.denied |= changed.rows_affected() > 0;
    Ok(())
}

impl Db {
    /// The sessions to deny at `now`: those whose longest session may still run.
    pub async fn session_denials(&self, now: i64) -> Result<Vec<DenialRow>> {
        Ok(sqlx::query_as(
            "SELECT principal_id, account_id, permission_set_name, issued_before FROM session_denials
             WHERE until_at > $1 ORDER BY id",
        )
        .bind(now)
        .fetch_all(&self.pool)
        .await?)
    }

    /// The hash of the policy AWS was last made to hold.
    pub async fn applied_denial(&self) -> Result<String> {
        Ok(sqlx::query_scalar("SELECT applied_hash FROM session_policy WHERE id = 1").fetch_one(&self.pool).await?)
    }

    /// Takes the deny policy for `lease_secs`, so that one replica at a time changes it; false when another holds
    /// it.
    pub async fn lease_denial(&self, now: i64, lease_secs: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let taken = sqlx::query("UPDATE session_policy SET locked_until = $1 WHERE id = 1 AND locked_until <= $2")
            .bind(now + lease_secs)
            .bind(now)
            .execute(&mut *tx)
            .await?
            .rows_affected();
        tx.commit().await?;
        Ok(taken == 1)
    }

    /// AWS holds the policy of `hash` (made from the denials live at `now`): recorded, the lease given back, and the
    /// denials that have run out forgotten.
    pub async fn denial_applied(&self, hash: &str, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE session_policy SET applied_hash = $1, locked_until = 0 WHERE id = 1")
            .bind(hash)
            .execute(&mut *tx)
            .await?;
        sqlx::query("DELETE FROM session_denials WHERE until_at <= $1").bind(now).execute(&mut *tx).await?;
        tx.commit().await
    }

    /// Gives the lease back after a failure, for the next attempt.
    pub async fn release_denial(&self) -> Result<()> {
        let mut tx = self.begin().await?;
        sqlx::query("UPDATE session_policy SET locked_until = 0 WHERE id = 1").execute(&mut *tx).await?;
        tx.commit().await
    }

    /// When the next denial runs out, so that the policy loses it then.
    pub async fn next_denial_end(&self, now: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar("SELECT MIN(until_at) FROM session_denials WHERE until_at > $1")
            .bind(now)
            .fetch_one(&self.pool)
            .await?)
    }
}
