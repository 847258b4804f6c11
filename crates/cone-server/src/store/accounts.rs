//! The IAM users Cone creates for people (`aws.account_provisioning`): one per person and account, recorded before
//! IAM is asked to create it, deleted by a `deprovision` job once no grant needs it.

use anyhow::Result;
use cone_core::account::{AccountEvent, AccountState, Need};
use cone_core::job::{JobKind, JobState};
use sqlx::{Executor, FromRow};

use super::audit::record;
use super::lifecycle::{enqueue_at, finish_job, move_account};
use super::pool::{Db, Tx};
use super::rows::{GrantRow, JobRow};

/// An IAM user Cone created, or is creating or deleting, for a person.
#[derive(Debug, Clone, FromRow)]
pub struct CreatedAccountRow {
    pub user_id: i64,
    pub username: String,
    pub account_id: String,
    /// The account's name in the catalog; absent for an account it no longer lists.
    pub account_name: Option<String>,
    pub user_name: String,
    pub path: String,
    /// The person's Identity Center user id, tagged on the IAM user (`cone_aws::OWNER_TAG`).
    pub owner: String,
    #[sqlx(try_from = "String")]
    pub state: AccountState,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
}

/// What a grant being provisioned does about the IAM user it needs.
pub enum AccountNeed {
    /// Ask IAM to create it (recorded as being created).
    Create(CreatedAccountRow),
    /// It exists, with this name.
    Use(String),
    /// Its deletion is under way; try again later.
    Wait,
    /// There is none, and `aws.account_provisioning.iam_users` is off.
    NotAllowed,
}

const ACCOUNT_SELECT: &str = "SELECT c.user_id, u.username, c.account_id, r.name AS account_name, c.user_name, c.path,
        c.owner, c.state, c.created_at, c.deleted_at
    FROM created_accounts c JOIN users u ON u.id = c.user_id LEFT JOIN resources r ON r.id = c.account_id";

/// IAM-group grants that need the user's account: being made, held, or being taken back.
const LIVE: &str = "('provisioning', 'active', 'revoking')";

/// The IAM user Cone made for user `user_id` in `account_id`, whatever its state.
async fn account_of<'e>(
    executor: impl Executor<'e, Database = sqlx::Any>,
    user_id: i64,
    account_id: &str,
) -> Result<Option<CreatedAccountRow>> {
    let sql = format!("{ACCOUNT_SELECT} WHERE c.user_id = $1 AND c.account_id = $2");
    Ok(sqlx::query_as(&sql).bind(user_id).bind(account_id).fetch_optional(executor).await?)
}

/// Whether a grant of user `user_id` other than `grant_id` needs their IAM user in `account_id`.
async fn needed_elsewhere(tx: &mut Tx, user_id: i64, account_id: &str, grant_id: i64) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM grants WHERE user_id = $1 AND account_id = $2 AND kind = $3 AND id <> $4
         AND state IN {LIVE}"
    ))
    .bind(user_id)
    .bind(account_id)
    .bind(cone_api::KIND_AWS_IAM_GROUP_MEMBERSHIP)
    .bind(grant_id)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n > 0)
}

/// In the transaction that ends IAM-group grant `g`: when no other grant needs the IAM user Cone created for it,
/// queues its deletion `after` seconds from now (at once for someone who has left; never for `None`).
pub(super) async fn unneeded_after(tx: &mut Tx, g: &GrantRow, after: Option<i64>, now: i64) -> Result<()> {
    let Some(account) = account_of(&mut **tx, g.user_id, &g.account_id).await? else { return Ok(()) };
    let left: Option<i64> =
        sqlx::query_scalar("SELECT left_at FROM users WHERE id = $1").bind(g.user_id).fetch_one(&mut **tx).await?;
    let after = if left.is_some() { Some(0) } else { after };
    let removable = matches!(account.state, AccountState::Creating | AccountState::Active);
    if let Some(after) = after
        && removable
        && !needed_elsewhere(tx, g.user_id, &g.account_id, g.id).await?
    {
        enqueue_at(tx, JobKind::Deprovision, Some(g.id), None, now + after, now).await?;
    }
    Ok(())
}

/// In the transaction that ends leavers' grants: queues the deletion of every IAM user Cone created for someone
/// who has left that no grant is about to delete, such as one kept (`deprovision: keep`) after its last grant.
pub(super) async fn leavers_accounts(tx: &mut Tx, now: i64) -> Result<()> {
    let kept: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT c.grant_id FROM created_accounts c JOIN users u ON u.id = c.user_id
         WHERE u.left_at IS NOT NULL AND c.state IN ('creating', 'active')
         AND NOT EXISTS (SELECT 1 FROM grants g WHERE g.user_id = c.user_id AND g.account_id = c.account_id
             AND g.kind = $1 AND g.state IN {LIVE})
         AND NOT EXISTS (SELECT 1 FROM jobs j JOIN grants g ON g.id = j.grant_id
             WHERE j.kind = $2 AND j.state = 'pending' AND g.user_id = c.user_id AND g.account_id = c.account_id)"
    ))
    .bind(cone_api::KIND_AWS_IAM_GROUP_MEMBERSHIP)
    .bind(JobKind::Deprovision.as_str())
    .fetch_all(&mut **tx)
    .await?;
    for grant_id in kept {
        enqueue_at(tx, JobKind::Deprovision, Some(grant_id), None, now, now).await?;
    }
    Ok(())
}

impl Db {
    /// The IAM user grant `g` needs in its account, as it stands: one to create (recorded as being created,
    /// named after the person, under `path`) when Cone may (`allowed`), one to use, or a deletion to wait for.
    pub async fn account_needed(&self, g: &GrantRow, allowed: bool, path: &str, now: i64) -> Result<AccountNeed> {
        let mut tx = self.begin().await?;
        let account = account_of(&mut *tx, g.user_id, &g.account_id).await?;
        let need = match AccountState::need(account.as_ref().map(|a| a.state)) {
            Need::Use => AccountNeed::Use(account.map(|a| a.user_name).unwrap_or_default()),
            Need::Wait => AccountNeed::Wait,
            Need::Create if !allowed && account.as_ref().is_none_or(|a| a.state == AccountState::Deleted) => {
                AccountNeed::NotAllowed
            }
            Need::Create => {
                match account {
                    None => {
                        let username: String = sqlx::query_scalar("SELECT username FROM users WHERE id = $1")
                            .bind(g.user_id)
                            .fetch_one(&mut *tx)
                            .await?;
                        sqlx::query(
                            "INSERT INTO created_accounts
                                 (user_id, account_id, user_name, path, owner, state, grant_id, created_at)
                             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                        )
                        .bind(g.user_id)
                        .bind(&g.account_id)
                        .bind(cone_core::naming::iam_user_name(&username))
                        .bind(path)
                        .bind(&g.principal_id)
                        .bind(AccountState::Creating.as_str())
                        .bind(g.id)
                        .bind(now)
                        .execute(&mut *tx)
                        .await?;
                    }
                    Some(a) if a.state == AccountState::Deleted => {
                        move_account(&mut tx, g.user_id, &g.account_id, AccountEvent::Needed, now).await?;
                    }
                    // Being created when a crash interrupted: finish it.
                    Some(_) => {}
                }
                let created = account_of(&mut *tx, g.user_id, &g.account_id).await?;
                created.map(AccountNeed::Create).ok_or_else(|| anyhow::anyhow!("the created account vanished"))?
            }
        };
        if matches!(need, AccountNeed::Use(_) | AccountNeed::Create(_)) {
            sqlx::query("UPDATE created_accounts SET grant_id = $1 WHERE user_id = $2 AND account_id = $3")
                .bind(g.id)
                .bind(g.user_id)
                .bind(&g.account_id)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
        } else {
            tx.rollback().await?;
        }
        Ok(need)
    }

    /// IAM has the user; `made` says whether this call created it (rather than finding an earlier attempt's).
    pub async fn account_created(&self, a: &CreatedAccountRow, made: bool, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        if move_account(&mut tx, a.user_id, &a.account_id, AccountEvent::Created, now).await?.is_some() {
            let detail = serde_json::json!({
                "account_id": a.account_id, "iam_user": a.user_name, "path": a.path, "found_existing": !made,
            });
            record(&mut tx, now, "worker", "account.create", &format!("user:{}", a.user_id), &detail.to_string())
                .await?;
        }
        tx.commit().await
    }

    /// For `deprovision` job `job` about grant `g`: the IAM user to delete, marked as being deleted, if no grant
    /// needs it now; otherwise the job is done and there is nothing to delete.
    pub async fn account_unneeded(&self, job: &JobRow, g: &GrantRow, now: i64) -> Result<Option<CreatedAccountRow>> {
        let mut tx = self.begin().await?;
        let account = account_of(&mut *tx, g.user_id, &g.account_id).await?;
        let delete = match account {
            Some(a) if a.state == AccountState::Deleting => Some(a),
            Some(a) if !needed_elsewhere(&mut tx, g.user_id, &g.account_id, g.id).await? => {
                move_account(&mut tx, g.user_id, &g.account_id, AccountEvent::Unneeded, now).await?.map(|_| a)
            }
            _ => None,
        };
        if delete.is_none() {
            finish_job(&mut tx, job.id, JobState::Done, None, now).await?;
        }
        tx.commit().await?;
        Ok(delete)
    }

    /// A user being created turned out to be someone else's (`NotCreatedByCone`): Cone made nothing to remember.
    pub async fn account_not_created(&self, a: &CreatedAccountRow) -> Result<()> {
        sqlx::query("DELETE FROM created_accounts WHERE user_id = $1 AND account_id = $2 AND state = $3")
            .bind(a.user_id)
            .bind(&a.account_id)
            .bind(AccountState::Creating.as_str())
            .execute(&self.pool)
            .await?;
        self.data_changed();
        Ok(())
    }

    /// IAM no longer has the user (`found`: this job deleted it, rather than finding it gone): the job is done.
    pub async fn account_removed(&self, job: &JobRow, a: &CreatedAccountRow, found: bool, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        finish_job(&mut tx, job.id, JobState::Done, None, now).await?;
        if move_account(&mut tx, a.user_id, &a.account_id, AccountEvent::Removed, now).await?.is_some() {
            let detail = serde_json::json!({ "account_id": a.account_id, "iam_user": a.user_name, "found": found });
            record(&mut tx, now, "worker", "account.delete", &format!("user:{}", a.user_id), &detail.to_string())
                .await?;
        }
        tx.commit().await
    }

    /// The IAM user Cone made for user `user_id` in `account_id`, whatever its state.
    pub async fn created_account(&self, user_id: i64, account_id: &str) -> Result<Option<CreatedAccountRow>> {
        account_of(&self.pool, user_id, account_id).await
    }

    /// Up to `limit` of the IAM users Cone created in `account` (an id or catalog name; empty for all), from
    /// `offset`, newest first (deleted ones included).
    pub async fn created_accounts(&self, account: &str, offset: i64, limit: i64) -> Result<Vec<CreatedAccountRow>> {
        let sql = format!(
            "{ACCOUNT_SELECT} WHERE ($1 = '' OR c.account_id = $1 OR r.name = $1)
             ORDER BY c.created_at DESC, c.user_id, c.account_id LIMIT $2 OFFSET $3"
        );
        Ok(sqlx::query_as(&sql).bind(account).bind(limit).bind(offset).fetch_all(&self.pool).await?)
    }
}
