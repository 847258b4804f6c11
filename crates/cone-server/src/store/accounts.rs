//! The users Cone creates for people (`aws.account_provisioning`): an IAM user per person and account, and an
//! Identity Center user for a person who signs in with a password. Each is recorded before AWS is asked to create it,
//! and deleted by a job (`deprovision`, `deprovision_idc_user`) once no grant needs it.

use anyhow::Result;
use cone_core::account::{AccountEvent, AccountKind, AccountState, Need};
use cone_core::job::{JobKind, JobState};
use sqlx::{Executor, FromRow};

use super::audit::record;
use super::lifecycle::{enqueue_at, finish_job, move_account};
use super::pool::{Db, Tx};
use super::rows::{GrantRow, JobRow};

/// A user Cone created, or is creating or deleting, for a person.
#[derive(Debug, Clone, FromRow)]
pub struct CreatedAccountRow {
    pub user_id: i64,
    pub username: String,
    #[sqlx(try_from = "String")]
    pub kind: AccountKind,
    /// The IAM user's account; [`IDENTITY_CENTER`] for an Identity Center user.
    pub account_id: String,
    /// The account's name in the catalog; absent for an account it no longer lists.
    pub account_name: Option<String>,
    pub user_name: String,
    pub path: String,
    /// The person's Identity Center user id: tagged on an IAM user (`cone_aws::OWNER_TAG`); for an Identity Center
    /// user, its own id once AWS made it (empty before).
    pub owner: String,
    #[sqlx(try_from = "String")]
    pub state: AccountState,
    pub created_at: i64,
    pub deleted_at: Option<i64>,
}

/// What a grant being provisioned does about the user it needs.
pub enum AccountNeed {
    /// Ask AWS to create it (recorded as being created).
    Create(CreatedAccountRow),
    /// It exists: an IAM user with this name, an Identity Center user with this id.
    Use(String),
    /// Its deletion is under way; try again later.
    Wait,
    /// There is none, and `aws.account_provisioning` does not let Cone create it.
    NotAllowed,
}

/// The account id of an Identity Center user's row, which no AWS account has.
pub const IDENTITY_CENTER: &str = "";

const ACCOUNT_SELECT: &str = "SELECT c.user_id, u.username, c.kind, c.account_id, r.name AS account_name, c.user_name,
        c.path, c.owner, c.state, c.created_at, c.deleted_at
    FROM created_accounts c JOIN users u ON u.id = c.user_id LEFT JOIN resources r ON r.id = c.account_id";

/// Grants that need the person's created users: being made, held, or being taken back.
const LIVE: &str = "('provisioning', 'active', 'revoking')";

/// Where grant `g`'s user of `kind` is recorded: its account, or Identity Center.
fn place(kind: AccountKind, g: &GrantRow) -> &str {
    match kind {
        AccountKind::IamUser => &g.account_id,
        AccountKind::IdcUser => IDENTITY_CENTER,
    }
}

/// The job that deletes a user of `kind`.
fn deprovision_job(kind: AccountKind) -> JobKind {
    match kind {
        AccountKind::IamUser => JobKind::Deprovision,
        AccountKind::IdcUser => JobKind::DeprovisionIdcUser,
    }
}

/// The user Cone made for user `user_id` in `account_id` (or Identity Center), whatever its state.
async fn account_of<'e>(
    executor: impl Executor<'e, Database = sqlx::Any>,
    user_id: i64,
    account_id: &str,
) -> Result<Option<CreatedAccountRow>> {
    let sql = format!("{ACCOUNT_SELECT} WHERE c.user_id = $1 AND c.account_id = $2");
    Ok(sqlx::query_as(&sql).bind(user_id).bind(account_id).fetch_optional(executor).await?)
}

/// Whether a grant of `a`'s person other than `grant_id` needs `a`: an IAM user, a grant of an IAM group in its
/// account; an Identity Center user, any grant.
async fn needed_elsewhere(tx: &mut Tx, a: &CreatedAccountRow, grant_id: i64) -> Result<bool> {
    let n: i64 = sqlx::query_scalar(&format!(
        "SELECT COUNT(*) FROM grants WHERE user_id = $1 AND id <> $2 AND state IN {LIVE}
         AND ($3 = '' OR (account_id = $3 AND kind = $4))"
    ))
    .bind(a.user_id)
    .bind(grant_id)
    .bind(&a.account_id)
    .bind(cone_api::KIND_AWS_IAM_GROUP_MEMBERSHIP)
    .fetch_one(&mut **tx)
    .await?;
    Ok(n > 0)
}

/// In the transaction that ends grant `g`: each user Cone created that it needed (the IAM user of an IAM group's
/// grant; the Identity Center user of a person who signs in with a password) and no other grant needs has its
/// deletion queued `after` seconds from now (at once for someone who has left; never for `None`).
pub(super) async fn unneeded_after(tx: &mut Tx, g: &GrantRow, after: Option<i64>, now: i64) -> Result<()> {
    let left: Option<i64> =
        sqlx::query_scalar("SELECT left_at FROM users WHERE id = $1").bind(g.user_id).fetch_one(&mut **tx).await?;
    let after = if left.is_some() { Some(0) } else { after };
    let Some(after) = after else { return Ok(()) };
    for kind in [AccountKind::IamUser, AccountKind::IdcUser] {
        if kind == AccountKind::IamUser && !g.is_iam_group() {
            continue;
        }
        let Some(account) = account_of(&mut **tx, g.user_id, place(kind, g)).await? else { continue };
        let removable = matches!(account.state, AccountState::Creating | AccountState::Active);
        if removable && !needed_elsewhere(tx, &account, g.id).await? {
            enqueue_at(tx, deprovision_job(kind), Some(g.id), None, now + after, now).await?;
        }
    }
    Ok(())
}

/// In the transaction that ends leavers' grants: queues the deletion of every IAM user Cone created for someone
/// who has left that no grant is about to delete, such as one kept (`deprovision: keep`) after its last grant.
pub(super) async fn leavers_accounts(tx: &mut Tx, now: i64) -> Result<()> {
    let kept: Vec<i64> = sqlx::query_scalar(&format!(
        "SELECT c.grant_id FROM created_accounts c JOIN users u ON u.id = c.user_id
         WHERE u.left_at IS NOT NULL AND c.kind = 'iam_user' AND c.state IN ('creating', 'active')
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

/// A user Cone would create for a person.
struct Wanted<'a> {
    kind: AccountKind,
    account_id: &'a str,
    user_name: String,
    path: &'a str,
    owner: &'a str,
}

/// The user `w` grant `g` needs, as it stands: one to create (recorded as being created) when Cone may
/// (`allowed`), one to use, or a deletion to wait for. Commits what it records.
async fn need(mut tx: Tx, g: &GrantRow, w: Wanted<'_>, allowed: bool, now: i64) -> Result<AccountNeed> {
    let account = account_of(&mut *tx, g.user_id, w.account_id).await?;
    let need = match AccountState::need(account.as_ref().map(|a| a.state)) {
        Need::Use => {
            let a = account.ok_or_else(|| anyhow::anyhow!("an account in use has a row"))?;
            AccountNeed::Use(if w.kind == AccountKind::IamUser { a.user_name } else { a.owner })
        }
        Need::Wait => AccountNeed::Wait,
        Need::Create if !allowed && account.as_ref().is_none_or(|a| a.state == AccountState::Deleted) => {
            AccountNeed::NotAllowed
        }
        Need::Create => {
            match account {
                None => {
                    sqlx::query(
                        "INSERT INTO created_accounts
                             (user_id, kind, account_id, user_name, path, owner, state, grant_id, created_at)
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
                    )
                    .bind(g.user_id)
                    .bind(w.kind.as_str())
                    .bind(w.account_id)
                    .bind(&w.user_name)
                    .bind(w.path)
                    .bind(w.owner)
                    .bind(AccountState::Creating.as_str())
                    .bind(g.id)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
                }
                Some(a) if a.state == AccountState::Deleted => {
                    move_account(&mut tx, g.user_id, w.account_id, AccountEvent::Needed, now).await?;
                    // The deleted user's id is no clue to the new one's.
                    set_owner(&mut tx, g.user_id, w.account_id, w.owner).await?;
                }
                // Being created when a crash interrupted: finish it.
                Some(_) => {}
            }
            let created = account_of(&mut *tx, g.user_id, w.account_id).await?;
            created.map(AccountNeed::Create).ok_or_else(|| anyhow::anyhow!("the created account vanished"))?
        }
    };
    if matches!(need, AccountNeed::Use(_) | AccountNeed::Create(_)) {
        sqlx::query("UPDATE created_accounts SET grant_id = $1 WHERE user_id = $2 AND account_id = $3")
            .bind(g.id)
            .bind(g.user_id)
            .bind(w.account_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
    } else {
        tx.rollback().await?;
    }
    Ok(need)
}

async fn set_owner(tx: &mut Tx, user_id: i64, account_id: &str, owner: &str) -> Result<()> {
    sqlx::query("UPDATE created_accounts SET owner = $1 WHERE user_id = $2 AND account_id = $3")
        .bind(owner)
        .bind(user_id)
        .bind(account_id)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// User `user_id`'s grants not yet made are made for their Identity Center user `id`.
async fn made_for<'e>(executor: impl Executor<'e, Database = sqlx::Any>, user_id: i64, id: &str) -> Result<()> {
    sqlx::query("UPDATE grants SET principal_id = $1 WHERE user_id = $2 AND state IN ('requested', 'provisioning')")
        .bind(id)
        .bind(user_id)
        .execute(executor)
        .await?;
    Ok(())
}

/// What the audit log says of created account `a`.
fn described(a: &CreatedAccountRow) -> serde_json::Value {
    match a.kind {
        AccountKind::IamUser => {
            serde_json::json!({ "account_id": a.account_id, "iam_user": a.user_name, "path": a.path })
        }
        AccountKind::IdcUser => serde_json::json!({ "identity_center_user": a.user_name, "user_id": a.owner }),
    }
}

impl Db {
    /// The IAM user grant `g` needs in its account, named after the person, under `path` (see [`need`]).
    pub async fn account_needed(&self, g: &GrantRow, allowed: bool, path: &str, now: i64) -> Result<AccountNeed> {
        let mut tx = self.begin().await?;
        let username: String =
            sqlx::query_scalar("SELECT username FROM users WHERE id = $1").bind(g.user_id).fetch_one(&mut *tx).await?;
        let user_name = cone_core::naming::iam_user_name(&username);
        let wanted =
            Wanted { kind: AccountKind::IamUser, account_id: &g.account_id, user_name, path, owner: &g.principal_id };
        need(tx, g, wanted, allowed, now).await
    }

    /// The Identity Center user grant `g` needs, named as the person, when Cone creates theirs (see [`need`]);
    /// `None` for a person whose Identity Center user is not Cone's (one a sync linked them to, even after Cone
    /// deleted its own). Either way the person's grants not yet made are made for the user in use.
    pub async fn identity_needed(&self, g: &GrantRow, allowed: bool, now: i64) -> Result<Option<AccountNeed>> {
        let mut tx = self.begin().await?;
        let (username, idc): (String, Option<String>) =
            sqlx::query_as("SELECT username, idc_user_id FROM users WHERE id = $1")
                .bind(g.user_id)
                .fetch_one(&mut *tx)
                .await?;
        let cone_made = account_of(&mut *tx, g.user_id, IDENTITY_CENTER).await?;
        // A creation a crash interrupted is finished even when a sync linked the person to its user meanwhile.
        let theirs =
            idc.filter(|id| cone_made.as_ref().is_none_or(|a| a.state != AccountState::Creating && a.owner != *id));
        if let Some(id) = theirs {
            tx.rollback().await?;
            if id != g.principal_id {
                made_for(&self.pool, g.user_id, &id).await?;
            }
            return Ok(None);
        }
        let wanted = Wanted {
            kind: AccountKind::IdcUser,
            account_id: IDENTITY_CENTER,
            user_name: username,
            path: "",
            owner: "",
        };
        let need = need(tx, g, wanted, allowed, now).await?;
        if let AccountNeed::Use(id) = &need
            && *id != g.principal_id
        {
            made_for(&self.pool, g.user_id, id).await?;
        }
        Ok(Some(need))
    }

    /// AWS has the user; `made` says whether this call created it (rather than finding an earlier attempt's). An
    /// Identity Center user's `id` becomes the person's, and their grants not yet made are made for it.
    pub async fn account_created(&self, a: &CreatedAccountRow, id: Option<&str>, made: bool, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let mut a = a.clone();
        if let Some(id) = id {
            set_owner(&mut tx, a.user_id, &a.account_id, id).await?;
            sqlx::query("UPDATE users SET idc_user_id = $1 WHERE id = $2")
                .bind(id)
                .bind(a.user_id)
                .execute(&mut *tx)
                .await?;
            made_for(&mut *tx, a.user_id, id).await?;
            a.owner = id.to_string();
        }
        if move_account(&mut tx, a.user_id, &a.account_id, AccountEvent::Created, now).await?.is_some() {
            let mut detail = described(&a);
            detail["found_existing"] = serde_json::json!(!made);
            record(&mut tx, now, "worker", "account.create", &format!("user:{}", a.user_id), &detail.to_string())
                .await?;
        }
        tx.commit().await
    }

    /// For deprovisioning job `job` about grant `g`: the user of `kind` to delete (marked as being deleted) or,
    /// unless `delete` or its person left, to keep disabled (left active), if no grant needs it now; otherwise the
    /// job is done and there is nothing to do.
    pub async fn account_unneeded(
        &self,
        job: &JobRow,
        g: &GrantRow,
        kind: AccountKind,
        delete: bool,
        now: i64,
    ) -> Result<Option<CreatedAccountRow>> {
        let mut tx = self.begin().await?;
        let account = account_of(&mut *tx, g.user_id, place(kind, g)).await?;
        let left: Option<i64> =
            sqlx::query_scalar("SELECT left_at FROM users WHERE id = $1").bind(g.user_id).fetch_one(&mut *tx).await?;
        let unneeded = match account {
            Some(a) if a.state == AccountState::Deleting => Some(a),
            Some(a) if !needed_elsewhere(&mut tx, &a, g.id).await? => match delete || left.is_some() {
                true => {
                    let to = move_account(&mut tx, g.user_id, &a.account_id, AccountEvent::Unneeded, now).await?;
                    to.map(|state| CreatedAccountRow { state, ..a })
                }
                false => (a.state == AccountState::Active).then_some(a),
            },
            _ => None,
        };
        if unneeded.is_none() {
            finish_job(&mut tx, job.id, JobState::Done, None, now).await?;
        }
        tx.commit().await?;
        Ok(unneeded)
    }

    /// A user no grant needs is kept: the job is done; `disabled` (whether AWS changed) when it was disabled.
    pub async fn account_kept(
        &self,
        job: &JobRow,
        a: &CreatedAccountRow,
        disabled: Option<bool>,
        now: i64,
    ) -> Result<()> {
        let mut tx = self.begin().await?;
        finish_job(&mut tx, job.id, JobState::Done, None, now).await?;
        if let Some(changed) = disabled {
            let mut detail = described(a);
            detail["changed"] = serde_json::json!(changed);
            record(&mut tx, now, "worker", "account.disable", &format!("user:{}", a.user_id), &detail.to_string())
                .await?;
        }
        tx.commit().await
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

    /// AWS no longer has the user (`found`: this job deleted it, rather than finding it gone): the job is done. A
    /// person whose Identity Center user it was is one who signs in with a password again.
    pub async fn account_removed(&self, job: &JobRow, a: &CreatedAccountRow, found: bool, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        finish_job(&mut tx, job.id, JobState::Done, None, now).await?;
        if move_account(&mut tx, a.user_id, &a.account_id, AccountEvent::Removed, now).await?.is_some() {
            if a.kind == AccountKind::IdcUser {
                sqlx::query("UPDATE users SET idc_user_id = NULL WHERE id = $1 AND idc_user_id = $2")
                    .bind(a.user_id)
                    .bind(&a.owner)
                    .execute(&mut *tx)
                    .await?;
            }
            let mut detail = described(a);
            detail["found"] = serde_json::json!(found);
            record(&mut tx, now, "worker", "account.delete", &format!("user:{}", a.user_id), &detail.to_string())
                .await?;
        }
        tx.commit().await
    }

    /// The user Cone made for user `user_id` in `account_id` ([`IDENTITY_CENTER`] for theirs there), whatever its
    /// state.
    pub async fn created_account(&self, user_id: i64, account_id: &str) -> Result<Option<CreatedAccountRow>> {
        account_of(&self.pool, user_id, account_id).await
    }

    /// Up to `limit` of the users Cone created in `account` (an id or catalog name; empty for all, Identity
    /// Center's included), from `offset`, newest first (deleted ones included).
    pub async fn created_accounts(&self, account: &str, offset: i64, limit: i64) -> Result<Vec<CreatedAccountRow>> {
        let sql = format!(
            "{ACCOUNT_SELECT} WHERE ($1 = '' OR c.account_id = $1 OR r.name = $1)
             ORDER BY c.created_at DESC, c.user_id, c.account_id LIMIT $2 OFFSET $3"
        );
        Ok(sqlx::query_as(&sql).bind(account).bind(limit).bind(offset).fetch_all(&self.pool).await?)
    }
}
