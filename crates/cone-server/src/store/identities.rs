//! People, service accounts and groups: who signs in, what Identity Center says about them, and what a person who
//! leaves loses.

use std::collections::{HashMap, HashSet};

use anyhow::Result;
use cone_core::account::AccountKind;
use cone_core::grant::GrantState;
use cone_core::identity::{Change, Departure, Known, Seen};
use cone_core::task::TaskState;
use sqlx::FromRow;

use super::audit::record;
use super::grants::{Ending, end_early};
use super::pool::{Db, Tx};
use super::rows::{USER_COLUMNS, USER_SERVICE, UserRow};
use super::sessions::{SignedOut, sign_out_everywhere};
use super::tasks::close_undecided;

/// Who stores a sync and offboards its leavers, in the audit log.
const SYNC_ACTOR: &str = "connector:aws";

/// What one sync did to the people Cone knows.
#[derive(Debug, Default)]
pub struct PeopleSynced {
    /// The tasks whose state changed (leavers' requests and grants), for the long-polling clients.
    pub tasks: Vec<i64>,
    pub offboarded: usize,
    /// People who would have left, kept because there were too many at once ([`cone_core::identity::offboarding_allowed`]).
    pub held: usize,
}

/// What offboarding took away from one person, and why, as its audit entry says.
#[derive(serde::Serialize)]
struct Taken {
    why: &'static str,
    #[serde(flatten)]
    signed_out: SignedOut,
    cancelled_tasks: Vec<i64>,
    /// The tasks of the grants that end (just after, see [`Db::end_leavers_grants`]).
    ended_grants: Vec<i64>,
}

#[derive(FromRow)]
struct KnownRow {
    id: i64,
    username: String,
    display_name: String,
    email: String,
    idc_user_id: Option<String>,
    kind: String,
    left_at: Option<i64>,
}

/// Where a renamed row waits for its new name within the transaction: a control character, which no Identity Center
/// user name and no name Cone gives holds.
fn placeholder(row: i64) -> String {
    format!("\u{1}{row}")
}

impl Db {
    /// Sets a person's password (creating the user); a service account never gets one.
    pub async fn set_password(&self, username: &str, hash: &str) -> Result<()> {
        let done = sqlx::query(
            "INSERT INTO users (username, password_hash) VALUES ($1, $2)
             ON CONFLICT (username) DO UPDATE SET password_hash = excluded.password_hash
             WHERE users.kind = 'person' AND users.left_at IS NULL",
        )
        .bind(username)
        .bind(hash)
        .execute(&self.pool)
        .await?;
        if done.rows_affected() == 0 {
            let left = self.user_by_name(username).await?.is_some_and(|u| u.left_at.is_some());
            if left {
                anyhow::bail!(
                    "{username} left (deleted or disabled in Identity Center) and cannot sign in again; a person who \
                     returns under a new Identity Center user is someone new"
                );
            }
            anyhow::bail!(
                "{username} is a service account, which signs in only with its API tokens; give a person the password"
            );
        }
        self.data_changed();
        Ok(())
    }

    /// The person (or service account) this user name names now; people who left keep the name until someone else
    /// is given it, and are returned too.
    pub async fn user_by_name(&self, username: &str) -> Result<Option<UserRow>> {
        Ok(sqlx::query_as(&format!("SELECT {USER_COLUMNS} FROM users u WHERE u.username = $1"))
            .bind(username)
            .fetch_optional(&self.pool)
            .await?)
    }

    /// People (not service accounts, nor people who left) whose email is `email`, ignoring case; at most two, enough to tell that an
    /// email names more than one.
    pub async fn people_by_email(&self, email: &str) -> Result<Vec<UserRow>> {
        Ok(sqlx::query_as(&format!(
            "SELECT {USER_COLUMNS} FROM users u
             WHERE lower(u.email) = lower($1) AND u.email <> '' AND u.kind <> $2 AND u.left_at IS NULL
             ORDER BY u.id LIMIT 2"
        ))
        .bind(email)
        .bind(USER_SERVICE)
        .fetch_all(&self.pool)
        .await?)
    }

    pub async fn user_groups(&self, user_id: i64) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT g.name FROM groups g JOIN group_members m ON m.group_id = g.id WHERE m.user_id = $1 ORDER BY g.name",
        )
        .bind(user_id)
        .fetch_all(&self.pool)
        .await?)
    }
}

/// Brings the people Cone knows in line with the users a sync read (`cone_core::identity::reconcile`): new people
/// are added, renames follow the Identity Center id, and people who are gone or disabled are offboarded
/// ([`offboard`]), unless more would leave at once than `max_offboard_percent` allows.
pub(super) async fn apply_users(
    tx: &mut Tx,
    users: &[cone_aws::User],
    max_offboard_percent: u8,
    now: i64,
) -> Result<PeopleSynced> {
    let rows: Vec<KnownRow> =
        sqlx::query_as("SELECT id, username, display_name, email, idc_user_id, kind, left_at FROM users")
            .fetch_all(&mut **tx)
            .await?;
    // Identity Center users Cone created for people who sign in with a password are Cone's to make and delete: the
    // sync neither links, renames nor offboards by them (a sync read before Cone made or deleted one would).
    let cone_made: HashSet<String> =
        sqlx::query_scalar("SELECT owner FROM created_accounts WHERE kind = $1 AND owner <> ''")
            .bind(AccountKind::IdcUser.as_str())
            .fetch_all(&mut **tx)
            .await?
            .into_iter()
            .collect();
    let known: Vec<Known> = rows
        .into_iter()
        .map(|r| Known {
            row: r.id,
            username: r.username,
            display_name: r.display_name,
            email: r.email,
            idc_id: r.idc_user_id.filter(|id| !cone_made.contains(id)),
            service: r.kind == USER_SERVICE,
            left: r.left_at.is_some(),
        })
        .collect();
    let seen: Vec<Seen> = users
        .iter()
        .filter(|u| !cone_made.contains(&u.id))
        .map(|u| Seen {
            idc_id: u.id.clone(),
            username: u.user_name.clone(),
            display_name: u.display_name.clone(),
            email: u.email.clone().unwrap_or_default(),
            enabled: u.enabled,
        })
        .collect();
    let plan = cone_core::identity::reconcile(&known, &seen);
    let present = known.iter().filter(|k| k.idc_id.is_some() && !k.left).count();
    let leaving: Vec<(i64, Departure)> = plan.leavers().collect();
    let mut synced = PeopleSynced::default();
    let allowed = cone_core::identity::offboarding_allowed(seen.len(), present, leaving.len(), max_offboard_percent);
    if !allowed {
        synced.held = leaving.len();
        tracing::error!(
            leaving = leaving.len(),
            known = present,
            listed = seen.len(),
            "the sync would offboard {} of the {present} people Cone knows from Identity Center at once, more than \
             identities.max_offboard_percent ({max_offboard_percent}%) allows; nobody was offboarded. If they did \
             leave, raise the limit for one sync; otherwise check the connector's read of Identity Center",
            leaving.len()
        );
        let detail = serde_json::json!({ "leaving": leaving.len(), "known": present, "listed": seen.len() });
        record(tx, now, SYNC_ACTOR, "identity.offboarding_held", "identities", &detail.to_string()).await?;
    }
    let by_row: HashMap<i64, &Known> = known.iter().map(|k| (k.row, k)).collect();
    // Names move in two steps, so that swaps and chains never meet the unique constraint half way.
    for row in plan.renamed() {
        sqlx::query("UPDATE users SET username = $1 WHERE id = $2")
            .bind(placeholder(row))
            .bind(row)
            .execute(&mut **tx)
            .await?;
    }
    let held: HashSet<i64> = if allowed { HashSet::new() } else { leaving.iter().map(|(r, _)| *r).collect() };
    let mut leavers = Vec::new();
    for change in &plan.changes {
        match change {
            Change::Add { seen: i } => {
                let u = &seen[*i];
                sqlx::query("INSERT INTO users (username, display_name, email, idc_user_id) VALUES ($1, $2, $3, $4)")
                    .bind(&u.username)
                    .bind(&u.display_name)
                    .bind(&u.email)
                    .bind(&u.idc_id)
                    .execute(&mut **tx)
                    .await?;
            }
            Change::Update { row, seen: i, renamed_from } | Change::Return { row, seen: i, renamed_from } => {
                let u = &seen[*i];
                set_attributes(tx, *row, u).await?;
                if let Some(from) = renamed_from {
                    let detail = serde_json::json!({ "from": from, "to": u.username });
                    record(tx, now, SYNC_ACTOR, "identity.rename", &format!("user:{row}"), &detail.to_string()).await?;
                }
                if matches!(change, Change::Return { .. }) {
                    sqlx::query("UPDATE users SET left_at = NULL, left_reason = NULL WHERE id = $1")
                        .bind(row)
                        .execute(&mut **tx)
                        .await?;
                    record(tx, now, SYNC_ACTOR, "identity.return", &format!("user:{row}"), "{}").await?;
                }
            }
            Change::Link { row, seen: i } => {
                let u = &seen[*i];
                sqlx::query("UPDATE users SET idc_user_id = $1 WHERE id = $2")
                    .bind(&u.idc_id)
                    .bind(row)
                    .execute(&mut **tx)
                    .await?;
                set_attributes(tx, *row, u).await?;
            }
            Change::Displace { row, to } => {
                sqlx::query("UPDATE users SET username = $1 WHERE id = $2")
                    .bind(to)
                    .bind(row)
                    .execute(&mut **tx)
                    .await?;
                let from = by_row.get(row).map_or("", |k| k.username.as_str());
                let detail = serde_json::json!({ "from": from, "to": to, "why": "Identity Center gave the name to someone else" });
                record(tx, now, SYNC_ACTOR, "identity.rename", &format!("user:{row}"), &detail.to_string()).await?;
            }
            Change::Leave { row, why } => {
                if !held.contains(row) {
                    leavers.push((*row, *why));
                }
            }
            Change::Clash { seen: i, holder } => {
                tracing::warn!(
                    user = seen[*i].username,
                    "Identity Center's user {} is not stored: Cone's {holder} (a service account, or a person who \
                     signs in with a password) holds the name; rename one of them",
                    seen[*i].idc_id
                );
            }
        }
    }
    synced.tasks = offboard(tx, &leavers, now).await?;
    synced.offboarded = leavers.len();
    Ok(synced)
}

async fn set_attributes(tx: &mut Tx, row: i64, u: &Seen) -> Result<()> {
    sqlx::query("UPDATE users SET username = $1, display_name = $2, email = $3 WHERE id = $4")
        .bind(&u.username)
        .bind(&u.display_name)
        .bind(&u.email)
        .bind(row)
        .execute(&mut **tx)
        .await?;
    Ok(())
}

/// Takes from the people who left, in the sync's transaction, every sign-in (`cone login` sessions, console
/// sessions, device codes, API tokens) and every undecided request. A handful of statements for all of them, so
/// that a thousand leavers are signed out within a second of the sync on PostgreSQL too (each statement is a round
/// trip there); their grants end just after, in transactions of their own ([`Db::end_leavers_grants`]). One
/// `identity.offboard` entry per person says what was taken; each cancelled task has its own entry too, so that
/// webhooks tell approvers. Returns the tasks that changed.
async fn offboard(tx: &mut Tx, leavers: &[(i64, Departure)], now: i64) -> Result<Vec<i64>> {
    if leavers.is_empty() {
        return Ok(Vec::new());
    }
    let rows: Vec<i64> = leavers.iter().map(|(row, _)| *row).collect();
    let ids = serde_json::to_string(&rows)?;
    let of_leavers = tx.backend.json_ids("$3");
    for why in [Departure::Deleted, Departure::Disabled] {
        let these: Vec<i64> = leavers.iter().filter(|(_, w)| *w == why).map(|(row, _)| *row).collect();
        if !these.is_empty() {
            sqlx::query(&format!("UPDATE users SET left_at = $1, left_reason = $2 WHERE id IN ({of_leavers})"))
                .bind(now)
                .bind(why.as_str())
                .bind(serde_json::to_string(&these)?)
                .execute(&mut **tx)
                .await?;
        }
    }
    let mut signed_out = sign_out_everywhere(tx, &rows, now).await?;
    let of_leavers = tx.backend.json_ids("$2");
    let pending: Vec<(i64, i64)> = sqlx::query_as(&format!(
        "SELECT id, requester_id FROM tasks WHERE state = $1 AND requester_id IN ({of_leavers})"
    ))
    .bind(TaskState::PendingApproval.as_str())
    .bind(&ids)
    .fetch_all(&mut **tx)
    .await?;
    let ending: Vec<(i64, i64)> = sqlx::query_as(&format!(
        "SELECT task_id, user_id FROM grants WHERE state IN ($1, $3) AND user_id IN ({of_leavers}) ORDER BY id"
    ))
    .bind(GrantState::Provisioning.as_str())
    .bind(&ids)
    .bind(GrantState::Active.as_str())
    .fetch_all(&mut **tx)
    .await?;
    let by_person = |pairs: &[(i64, i64)]| {
        let mut of: HashMap<i64, Vec<i64>> = HashMap::new();
        for (task, row) in pairs {
            of.entry(*row).or_default().push(*task);
        }
        of
    };
    let (mut pending_of, mut ending_of) = (by_person(&pending), by_person(&ending));
    for (row, why) in leavers {
        let reason = left_reason(why.as_str());
        let cancelled_tasks = pending_of.remove(row).unwrap_or_default();
        for id in &cancelled_tasks {
            close_undecided(tx, *id, cone_core::task::Event::Cancelled, Some(&reason), now).await?;
            let detail = serde_json::json!({ "reason": reason });
            record(tx, now, SYNC_ACTOR, "task.cancel", &format!("task:{id}"), &detail.to_string()).await?;
        }
        let ended_grants = ending_of.remove(row).unwrap_or_default();
        let signed_out = signed_out.remove(row).unwrap_or_default();
        let taken = Taken { why: why.as_str(), signed_out, cancelled_tasks, ended_grants };
        record(tx, now, SYNC_ACTOR, "identity.offboard", &format!("user:{row}"), &serde_json::to_string(&taken)?)
            .await?;
    }
    Ok(pending.into_iter().map(|(task, _)| task).collect())
}

/// What a task ended by offboarding says about why.
fn left_reason(why: &str) -> String {
    format!("Ended because its requester left: {why}.")
}

/// Grants of people who left end in transactions of at most this many, so that other writers wait little.
const LEAVERS_GRANTS_PER_TRANSACTION: i64 = 100;

impl Db {
    /// Ends the grants of the people who left (see [`offboard`]) through the usual revocation (a `revoke` job each,
    /// and an audit entry each), and queues the deletion of the IAM users Cone created for them that no ending
    /// grant will delete (`accounts::leavers_accounts`). Called after every sync, so that one interrupted after offboarding is finished by
    /// the next. Returns the tasks that changed.
    pub async fn end_leavers_grants(&self, now: i64) -> Result<Vec<i64>> {
        let (mut tasks, mut after) = (Vec::new(), 0);
        let mut tx = self.begin().await?;
        super::accounts::leavers_accounts(&mut tx, now).await?;
        tx.commit().await?;
        loop {
            let mut tx = self.begin().await?;
            let held: Vec<(i64, i64, Option<String>)> = sqlx::query_as(
                "SELECT g.id, g.task_id, u.left_reason FROM grants g JOIN users u ON u.id = g.user_id
                 WHERE u.left_at IS NOT NULL AND g.state IN ($1, $2) AND g.id > $3 ORDER BY g.id LIMIT $4",
            )
            .bind(GrantState::Provisioning.as_str())
            .bind(GrantState::Active.as_str())
            .bind(after)
            .bind(LEAVERS_GRANTS_PER_TRANSACTION)
            .fetch_all(&mut *tx)
            .await?;
            let Some((last, _, _)) = held.last() else {
                tx.rollback().await?;
                return Ok(tasks);
            };
            after = *last;
            for (grant_id, task_id, why) in &held {
                let reason = left_reason(why.as_deref().unwrap_or("gone from Identity Center"));
                let ending =
                    Ending { actor: SYNC_ACTOR.into(), by: None, action: "grant.end_early", reason: Some(&reason) };
                end_early(&mut tx, *grant_id, *task_id, &ending, now).await?;
                tasks.push(*task_id);
            }
            tx.commit().await?;
        }
    }
}

/// Brings the groups in line with Identity Center's, keyed by its group id: a renamed group keeps its row (and is
/// audited), a group no longer listed goes with its members and assignments, and every Identity Center group's
/// members are read afresh (the memberships parts come next).
pub(super) async fn apply_groups(tx: &mut Tx, groups: &[cone_aws::Group], now: i64) -> Result<()> {
    let rows: Vec<(i64, String, Option<String>)> =
        sqlx::query_as("SELECT id, name, idc_group_id FROM groups").fetch_all(&mut **tx).await?;
    let listed: HashMap<&str, &str> = groups.iter().map(|g| (g.id.as_str(), g.display_name.as_str())).collect();
    let mut renamed = HashMap::new();
    for (row, name, idc) in &rows {
        let Some(idc) = idc else { continue };
        match listed.get(idc.as_str()) {
            None => {
                sqlx::query("DELETE FROM groups WHERE id = $1").bind(row).execute(&mut **tx).await?;
            }
            Some(to) if to != name => {
                sqlx::query("UPDATE groups SET name = $1 WHERE id = $2")
                    .bind(placeholder(*row))
                    .bind(row)
                    .execute(&mut **tx)
                    .await?;
                renamed.insert(idc.as_str(), (*row, name.as_str()));
            }
            Some(_) => {}
        }
    }
    for g in groups {
        if let Some((row, from)) = renamed.get(g.id.as_str()) {
            sqlx::query("UPDATE groups SET name = $1 WHERE id = $2")
                .bind(&g.display_name)
                .bind(row)
                .execute(&mut **tx)
                .await?;
            let detail = serde_json::json!({ "from": from, "to": g.display_name });
            record(tx, now, SYNC_ACTOR, "group.rename", &format!("group:{row}"), &detail.to_string()).await?;
            continue;
        }
        // A group Cone knew by name only takes the Identity Center id of the group of that name.
        sqlx::query(
            "INSERT INTO groups (name, idc_group_id) VALUES ($1, $2)
             ON CONFLICT (name) DO UPDATE SET idc_group_id = excluded.idc_group_id",
        )
        .bind(&g.display_name)
        .bind(&g.id)
        .execute(&mut **tx)
        .await?;
    }
    sqlx::query("DELETE FROM group_members WHERE group_id IN (SELECT id FROM groups WHERE idc_group_id IS NOT NULL)")
        .execute(&mut **tx)
        .await?;
    Ok(())
}
