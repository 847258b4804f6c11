//! Notifications: audit events turned into messages per person and channel (the audit log is the outbox, read past
//! a cursor), grants' coming ends, and the sender's claims and outcomes. People's preferences live here too.

use std::collections::HashMap;

use anyhow::{Context, Result};
use cone_core::notify::{self, Audience, Channel, Due, Kind, Preferences};
use cone_core::policy::Instance;
use cone_core::task::TaskState;
use sqlx::FromRow;

use super::audit::record;
use super::pool::{Db, Tx};
use super::tasks::{TASK_SELECT, TaskRow};
use crate::notify::Facts;

/// How many audit entries one pass of the notifier turns into notifications.
const EVENTS_BATCH: i64 = 200;

/// Who the notifier may tell, and how: the channels configured, and the administrators (as the configuration names
/// them).
#[derive(Debug, Clone, Default)]
pub struct Audiences {
    pub channels: Vec<Channel>,
    pub admin_users: Vec<String>,
    pub admin_groups: Vec<String>,
}

/// A notification to send.
#[derive(Debug, Clone, FromRow)]
pub struct NotificationRow {
    pub id: i64,
    pub user_id: i64,
    pub username: String,
    pub email: String,
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    #[sqlx(try_from = "String")]
    pub kind: Kind,
    pub body: String,
    /// 1: one item of a digest.
    pub digest: i64,
    /// Attempts so far, this one included.
    pub attempts: i64,
}

impl NotificationRow {
    pub fn facts(&self) -> Facts {
        serde_json::from_str(&self.body).unwrap_or_default()
    }
}

/// A notification as administrators list them.
#[derive(Debug, Clone, FromRow)]
pub struct NotificationEntry {
    pub id: i64,
    pub username: String,
    #[sqlx(try_from = "String")]
    pub channel: Channel,
    #[sqlx(try_from = "String")]
    pub kind: Kind,
    pub task_id: Option<i64>,
    pub state: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub run_after: i64,
    pub created_at: i64,
    pub updated_at: i64,
}

/// An audit entry the notifier reads.
#[derive(FromRow)]
struct Entry {
    id: i64,
    actor: String,
    action: String,
    subject: String,
    detail: String,
}

/// A person who may be told.
#[derive(Debug, Clone, FromRow)]
struct Person {
    id: i64,
    username: String,
    email: String,
}

impl Db {
    /// Turns the audit entries past the notifier's cursor into notifications and moves the cursor past them, in one
    /// transaction: each event is read once, whichever replica reads it. Returns how many entries it read.
    pub async fn make_notifications(&self, to: &Audiences, now: i64) -> Result<usize> {
        let mut tx = self.begin().await?;
        let cursor: i64 = sqlx::query_scalar("SELECT audit_id FROM notify_cursor WHERE id = 1")
            .fetch_optional(&mut *tx)
            .await?
            .unwrap_or(0);
        let entries: Vec<Entry> = sqlx::query_as(
            "SELECT id, actor, action, subject, detail FROM audit_log WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(cursor)
        .bind(EVENTS_BATCH)
        .fetch_all(&mut *tx)
        .await?;
        let Some(last) = entries.last().map(|e| e.id) else {
            tx.rollback().await?;
            return Ok(0);
        };
        let mut prefs = HashMap::new();
        for e in &entries {
            notify_of(&mut tx, to, e, now, &mut prefs).await.with_context(|| format!("audit entry {}", e.id))?;
        }
        sqlx::query("UPDATE notify_cursor SET audit_id = $1 WHERE id = 1").bind(last).execute(&mut *tx).await?;
        tx.commit().await?;
        Ok(entries.len())
    }

    /// Warns the holders of active grants that end within `before` seconds, once per grant and end (an extension
    /// warns again). Returns how many warnings it made.
    pub async fn warn_of_ends(&self, to: &Audiences, before: i64, now: i64) -> Result<usize> {
        // Those warned already, and people without an address, are left out: this runs at every pass.
        let due: Vec<(i64, i64, i64)> = sqlx::query_as(
            "SELECT g.id, g.expires_at, g.task_id FROM grants g JOIN users u ON u.id = g.user_id
             WHERE g.state = 'active' AND g.expires_at > $1 AND g.expires_at <= $2 AND u.email <> ''
                 AND NOT EXISTS (SELECT 1 FROM notifications n
                     WHERE n.user_id = g.user_id AND n.key = 'grant:' || g.id || ':ends:' || g.expires_at)",
        )
        .bind(now)
        .bind(now + before)
        .fetch_all(&self.pool)
        .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let mut prefs = HashMap::new();
        let mut made = 0;
        for (grant_id, ends_at, task_id) in due {
            let Some(task) = task_row(&mut tx, task_id).await? else { continue };
            let mut facts = task_facts(&mut tx, &task, "grant.ending", "cone", "").await?;
            facts.ends_at = Some(ends_at);
            let holder = people_named(&mut tx, std::slice::from_ref(&task.requester)).await?;
            let key = notify::expiry_key(grant_id, ends_at);
            made += queue(&mut tx, to, &holder, Kind::Expiring, &key, Some(task_id), &facts, now, &mut prefs).await?;
        }
        tx.commit().await?;
        Ok(made)
    }

    /// Reminds the reviewers with items left in open campaigns due within `before` seconds, once per campaign.
    /// Returns how many reminders it made.
    pub async fn remind_reviewers(&self, to: &Audiences, before: i64, now: i64) -> Result<usize> {
        let due: Vec<i64> =
            sqlx::query_scalar("SELECT id FROM review_campaigns WHERE state = 'open' AND due_at > $1 AND due_at <= $2")
                .bind(now)
                .bind(now + before)
                .fetch_all(&self.pool)
                .await?;
        if due.is_empty() {
            return Ok(0);
        }
        let mut tx = self.begin().await?;
        let mut prefs = HashMap::new();
        let mut made = 0;
        for campaign in due {
            let key = notify::review_reminder_key(campaign);
            let reviews = Reviews { campaign, item: None };
            made += tell_reviewers(&mut tx, to, reviews, "review.reminder", "cone", &key, now, &mut prefs).await?;
        }
        tx.commit().await?;
        Ok(made)
    }

    /// When the next grant's warning or reviewers' reminder is due, if one is to come.
    pub async fn next_warning_due(&self, before: i64, remind: i64, now: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(t) FROM (
                 SELECT MIN(expires_at) - $1 AS t FROM grants WHERE state = 'active' AND expires_at - $1 > $3
                 UNION ALL
                 SELECT MIN(due_at) - $2 FROM review_campaigns WHERE state = 'open' AND due_at - $2 > $3) due",
        )
        .bind(before)
        .bind(remind)
        .bind(now)
        .fetch_one(&self.pool)
        .await?)
    }

    /// How many test messages were made for `user_id` since `since`.
    pub async fn tests_since(&self, user_id: i64, since: i64) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(DISTINCT key) FROM notifications WHERE user_id = $1 AND kind = 'test' AND created_at >= $2",
        )
        .bind(user_id)
        .bind(since)
        .fetch_one(&self.pool)
        .await?)
    }

    /// Queues a test message to `user_id` on every channel that reaches them, and audits it; returns the channels.
    pub async fn test_notification(&self, to: &Audiences, by: i64, user_id: i64, now: i64) -> Result<Vec<Channel>> {
        let mut tx = self.begin().await?;
        let person: Vec<Person> = sqlx::query_as("SELECT id, username, email FROM users WHERE id = $1")
            .bind(user_id)
            .fetch_all(&mut *tx)
            .await?;
        let actor = username(&mut tx, by).await?;
        let facts = Facts { event: "notification.test".into(), actor, ..Facts::default() };
        let key = format!("test:{}", uuid::Uuid::new_v4());
        let mut prefs = HashMap::new();
        queue(&mut tx, to, &person, Kind::Test, &key, None, &facts, now, &mut prefs).await?;
        let channels: Vec<String> =
            sqlx::query_scalar("SELECT channel FROM notifications WHERE key = $1 ORDER BY channel")
                .bind(&key)
                .fetch_all(&mut *tx)
                .await?;
        let detail = serde_json::json!({ "channels": channels }).to_string();
        record(&mut tx, now, &format!("user:{by}"), "notification.test", &format!("user:{user_id}"), &detail).await?;
        tx.commit().await?;
        Ok(channels.iter().filter_map(|c| Channel::parse(c)).collect())
    }

    /// Takes up to `limit` due notifications and leases them for `lease_secs`, as [`Db::claim_deliveries`] does.
    pub async fn claim_notifications(&self, now: i64, lease_secs: i64, limit: i64) -> Result<Vec<NotificationRow>> {
        let (_turn, mut tx) = self.begin_claim(false).await?;
        let mut due: Vec<NotificationRow> = sqlx::query_as(&format!(
            "SELECT n.id, n.user_id, u.username, u.email, n.channel, n.kind, n.body, n.digest, n.attempts
             FROM notifications n JOIN users u ON u.id = n.user_id
             WHERE n.state = 'pending' AND n.run_after <= $1 AND (n.locked_until IS NULL OR n.locked_until <= $1)
             ORDER BY n.run_after, n.id LIMIT $2{}",
            self.backend.skip_locked("n")
        ))
        .bind(now)
        .bind(limit)
        .fetch_all(&mut *tx)
        .await?;
        for n in &mut due {
            sqlx::query(
                "UPDATE notifications SET locked_until = $1, attempts = attempts + 1, updated_at = $2 WHERE id = $3",
            )
            .bind(now + lease_secs)
            .bind(now)
            .bind(n.id)
            .execute(&mut *tx)
            .await?;
            n.attempts += 1;
        }
        tx.commit().await?;
        Ok(due)
    }

    /// Records how sending `ids` (one message) went: sent (with the channel's name for the message), pending again
    /// from `run_after`, or failed for good; `error` says why it was not sent.
    pub async fn record_notification(
        &self,
        ids: &[i64],
        state: &str,
        error: Option<&str>,
        reference: Option<&str>,
        run_after: i64,
        now: i64,
    ) -> Result<()> {
        let sql = format!(
            "UPDATE notifications SET state = $1, last_error = $2, reference = COALESCE($3, reference),
                 run_after = $4, locked_until = NULL, updated_at = $5
             WHERE state = 'pending' AND id IN ({})",
            self.backend.json_ids("$6")
        );
        sqlx::query(&sql)
            .bind(state)
            .bind(error)
            .bind(reference)
            .bind(run_after)
            .bind(now)
            .bind(serde_json::to_string(ids)?)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// When the next pending notification becomes due (or its lease ends).
    pub async fn next_notification_due(&self) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT MIN(CASE WHEN locked_until > run_after THEN locked_until ELSE run_after END)
             FROM notifications WHERE state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// Notifications for administrators to watch, newest first, in `state` when given.
    pub async fn notifications(&self, state: Option<&str>, offset: i64, limit: i64) -> Result<Vec<NotificationEntry>> {
        Ok(sqlx::query_as(
            "SELECT n.id, u.username, n.channel, n.kind, n.task_id, n.state, n.attempts, n.last_error, n.run_after,
                 n.created_at, n.updated_at
             FROM notifications n JOIN users u ON u.id = n.user_id
             WHERE (CAST($1 AS TEXT) IS NULL OR n.state = $1)
             ORDER BY n.id DESC LIMIT $2 OFFSET $3",
        )
        .bind(state)
        .bind(limit)
        .bind(offset)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Forgets sent and failed notifications last touched before `before`.
    pub async fn prune_notifications(&self, before: i64) -> Result<u64> {
        let done = sqlx::query("DELETE FROM notifications WHERE state != 'pending' AND updated_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }

    /// What `user_id` chose (the defaults when they chose nothing).
    pub async fn preferences(&self, user_id: i64) -> Result<Preferences> {
        read_preferences(&self.pool, user_id).await
    }

    pub async fn set_preferences(&self, user_id: i64, p: &Preferences, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        let json = serde_json::to_string(p)?;
        sqlx::query(
            "INSERT INTO notification_preferences (user_id, preferences) VALUES ($1, $2)
             ON CONFLICT (user_id) DO UPDATE SET preferences = excluded.preferences",
        )
        .bind(user_id)
        .bind(&json)
        .execute(&mut *tx)
        .await?;
        let subject = format!("user:{user_id}");
        record(&mut tx, now, &subject, "notification.preferences", &subject, &json).await?;
        tx.commit().await
    }
}

/// The notifications one audit entry causes.
async fn notify_of(
    tx: &mut Tx,
    to: &Audiences,
    e: &Entry,
    now: i64,
    prefs: &mut HashMap<i64, Preferences>,
) -> Result<()> {
    if e.subject.starts_with("review_") {
        let told = notify::told(&e.action, false);
        if told.iter().any(|(a, _)| *a == Audience::Reviewers)
            && let Some(reviews) = reviews_of(tx, &e.subject).await?
        {
            let actor = actor_name(tx, &e.actor).await?;
            tell_reviewers(tx, to, reviews, &e.action, &actor, &format!("audit:{}", e.id), now, prefs).await?;
        }
        // A hand-over: administrators are told what to do, and by whose decision.
        if let Some((_, kind)) = told.iter().find(|(a, _)| *a == Audience::Admins) {
            let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
            let item = e.subject.strip_prefix("review_item:").and_then(|n| n.parse::<i64>().ok());
            let decider: Option<String> = sqlx::query_scalar(
                "SELECT d.username FROM review_items i JOIN users d ON d.id = i.decided_by WHERE i.id = $1",
            )
            .bind(item)
            .fetch_optional(&mut **tx)
            .await?;
            let facts = Facts {
                event: e.action.clone(),
                actor: decider.unwrap_or_else(|| "A reviewer".into()),
                access: detail["access"].as_str().unwrap_or_default().to_string(),
                reason: detail["by_hand"].as_str().unwrap_or_default().to_string(),
                campaign_id: detail["campaign_id"].as_i64(),
                ..Facts::default()
            };
            let admins = admins(tx, to).await?;
            queue(tx, to, &admins, *kind, &format!("audit:{}", e.id), None, &facts, now, prefs).await?;
        }
        return Ok(());
    }
    let Some(task_id) = e.subject.strip_prefix("task:").and_then(|n| n.parse::<i64>().ok()) else {
        // Drift repairs name their finding; only administrators hear of them.
        if !notify::told(&e.action, false).iter().any(|(a, _)| *a == Audience::Admins) {
            return Ok(());
        }
        let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
        let text = |k: &str| detail[k].as_str().unwrap_or_default().to_string();
        let facts = Facts {
            event: e.action.clone(),
            access: format!("{} on {} for {}", text("permission_set"), text("account"), text("user")),
            requester: text("user"),
            actor: "cone".into(),
            ..Facts::default()
        };
        let admins = admins(tx, to).await?;
        return queue(tx, to, &admins, Kind::Drift, &format!("audit:{}", e.id), None, &facts, now, prefs)
            .await
            .map(drop);
    };
    let Some(task) = task_row(tx, task_id).await? else { return Ok(()) };
    let instance: Option<Instance> = serde_json::from_str(&task.steps_json).ok();
    let asked =
        instance.as_ref().and_then(|i| notify::asked(i, now)).filter(|_| task.state == TaskState::PendingApproval);
    let actor = actor_name(tx, &e.actor).await?;
    let detail: serde_json::Value = serde_json::from_str(&e.detail).unwrap_or_default();
    let reason = ["reason", "error", "comment"].iter().find_map(|k| detail[k].as_str()).unwrap_or_default();
    let facts = task_facts(tx, &task, &e.action, &actor, reason).await?;
    for (audience, kind) in notify::told(&e.action, asked.is_some()) {
        let (mut people, key) = match audience {
            Audience::Requester => {
                (people_named(tx, std::slice::from_ref(&task.requester)).await?, format!("audit:{}", e.id))
            }
            Audience::Admins => (admins(tx, to).await?, format!("audit:{}", e.id)),
            Audience::Approvers => {
                let Some(asked) = &asked else { continue };
                let mut people = people_named(tx, &asked.names).await?;
                if let Some(group) = &asked.group {
                    people.extend(group_members(tx, std::slice::from_ref(group)).await?);
                }
                people.retain(|p| !asked.except.contains(&p.username));
                let started_at = instance.as_ref().map_or(0, |i| i.started_at);
                (people, notify::step_key(task_id, started_at, asked.step as i64))
            }
            // A task's events concern no campaign.
            Audience::Reviewers => continue,
        };
        // Nobody is told what they did themselves.
        people.retain(|p| p.username != actor);
        queue(tx, to, &people, kind, &key, Some(task_id), &facts, now, prefs).await?;
    }
    Ok(())
}

/// Who did what an audit entry records, as messages name them: a user's name, or `cone`.
async fn actor_name(tx: &mut Tx, actor: &str) -> Result<String> {
    match actor.strip_prefix("user:").and_then(|n| n.parse::<i64>().ok()) {
        Some(id) => username(tx, id).await,
        None => Ok("cone".to_string()),
    }
}

/// The review items a notification counts: a campaign's, or one of its items (given to a reviewer).
struct Reviews {
    campaign: i64,
    item: Option<i64>,
}

/// The review items an entry about `subject` (`review_campaign:N` or `review_item:N`) concerns.
async fn reviews_of(tx: &mut Tx, subject: &str) -> Result<Option<Reviews>> {
    let number = |prefix: &str| subject.strip_prefix(prefix).and_then(|n| n.parse::<i64>().ok());
    if let Some(campaign) = number("review_campaign:") {
        return Ok(Some(Reviews { campaign, item: None }));
    }
    let Some(item) = number("review_item:") else { return Ok(None) };
    let campaign: Option<i64> = sqlx::query_scalar("SELECT campaign_id FROM review_items WHERE id = $1")
        .bind(item)
        .fetch_optional(&mut **tx)
        .await?;
    Ok(campaign.map(|campaign| Reviews { campaign, item: Some(item) }))
}

/// Tells each reviewer with items of `reviews` left how many (event `review.campaign_create`, `review.reminder` or,
/// for one item, `review.reassign`), once per `key`; returns how many notifications it made.
#[allow(clippy::too_many_arguments)]
async fn tell_reviewers(
    tx: &mut Tx,
    to: &Audiences,
    Reviews { campaign, item }: Reviews,
    event: &str,
    actor: &str,
    key: &str,
    now: i64,
    prefs: &mut HashMap<i64, Preferences>,
) -> Result<usize> {
    let Some((name, due_at)): Option<(String, i64)> =
        sqlx::query_as("SELECT name, due_at FROM review_campaigns WHERE id = $1 AND state = 'open'")
            .bind(campaign)
            .fetch_optional(&mut **tx)
            .await?
    else {
        return Ok(0);
    };
    let left: Vec<(i64, String, String, i64)> = sqlx::query_as(
        "SELECT u.id, u.username, u.email, COUNT(*) FROM review_reviewers r
         JOIN review_items i ON i.id = r.item_id JOIN users u ON u.id = r.user_id
         WHERE i.campaign_id = $1 AND ($3 = 0 OR i.id = $3) AND i.state = 'pending' AND u.left_at IS NULL
             AND NOT EXISTS (SELECT 1 FROM notifications n WHERE n.key = $2 AND n.user_id = u.id)
         GROUP BY u.id, u.username, u.email ORDER BY u.username",
    )
    .bind(campaign)
    .bind(key)
    .bind(item.unwrap_or(0))
    .fetch_all(&mut **tx)
    .await?;
    let mut made = 0;
    for (id, username, email, items) in left {
        if username == actor {
            continue;
        }
        let facts = Facts {
            event: event.into(),
            actor: actor.into(),
            access: format!("\"{name}\""),
            ends_at: Some(due_at),
            campaign_id: Some(campaign),
            items,
            ..Facts::default()
        };
        let person = [Person { id, username, email }];
        made += queue(tx, to, &person, Kind::ReviewNeeded, key, None, &facts, now, prefs).await?;
    }
    Ok(made)
}

/// Queues `kind` for each of `people` on each channel their preferences and addresses allow; a notification with
/// the same key, person and channel is made once. Returns how many it made.
#[allow(clippy::too_many_arguments)]
async fn queue(
    tx: &mut Tx,
    to: &Audiences,
    people: &[Person],
    kind: Kind,
    key: &str,
    task_id: Option<i64>,
    facts: &Facts,
    now: i64,
    prefs: &mut HashMap<i64, Preferences>,
) -> Result<usize> {
    let body = serde_json::to_string(facts)?;
    let mut made = 0;
    let mut seen = std::collections::HashSet::new();
    for p in people.iter().filter(|p| seen.insert(p.id)) {
        if let std::collections::hash_map::Entry::Vacant(v) = prefs.entry(p.id) {
            v.insert(read_preferences(&mut **tx, p.id).await?);
        }
        let pref = &prefs[&p.id];
        // Both channels find people by their email address.
        let reach: Vec<Channel> = if p.email.is_empty() { Vec::new() } else { to.channels.clone() };
        let (digest, run_after) = match pref.due(kind, now) {
            Due::Now => (0, now),
            Due::Digest(at) => (1, at),
        };
        for channel in pref.channels_for(kind, &reach) {
            let inserted = sqlx::query(
                "INSERT INTO notifications (key, user_id, channel, kind, task_id, body, digest, state, run_after,
                     created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $9)
                 ON CONFLICT (key, user_id, channel) DO NOTHING",
            )
            .bind(key)
            .bind(p.id)
            .bind(channel.as_str())
            .bind(kind.as_str())
            .bind(task_id)
            .bind(&body)
            .bind(digest)
            .bind(run_after)
            .bind(now)
            .execute(&mut **tx)
            .await?;
            made += inserted.rows_affected() as usize;
        }
    }
    if made > 0 {
        tx.notified = true;
    }
    Ok(made)
}

/// What `user_id` chose; the defaults when nothing (or nothing readable) is stored.
async fn read_preferences<'e>(db: impl sqlx::Executor<'e, Database = sqlx::Any>, user_id: i64) -> Result<Preferences> {
    let stored: Option<String> =
        sqlx::query_scalar("SELECT preferences FROM notification_preferences WHERE user_id = $1")
            .bind(user_id)
            .fetch_optional(db)
            .await?;
    Ok(stored.and_then(|p| serde_json::from_str(&p).ok()).unwrap_or_default())
}

async fn task_facts(tx: &mut Tx, t: &TaskRow, event: &str, actor: &str, reason: &str) -> Result<Facts> {
    let alias: Option<String> = sqlx::query_scalar("SELECT alias FROM entitlements WHERE app_id = $1 AND id = $2")
        .bind(&t.app_id)
        .bind(&t.entitlement_id)
        .fetch_optional(&mut **tx)
        .await?;
    let on = t.account_name.as_deref().unwrap_or(&t.entitlement_id);
    let access = match (&t.group_name, &t.permission_set_name) {
        (Some(g), _) if !g.is_empty() => format!("membership of {g} ({on})"),
        (_, Some(ps)) => format!("{ps} on {on}"),
        _ => t.entitlement_id.clone(),
    };
    Ok(Facts {
        event: event.into(),
        task_id: Some(t.id),
        requester: t.requester.clone(),
        actor: actor.into(),
        access,
        alias: alias.unwrap_or_else(|| t.entitlement_id.clone()),
        justification: t.justification.clone(),
        duration_secs: t.duration_secs,
        ends_at: t.grant_expires_at,
        reason: reason.into(),
        ..Facts::default()
    })
}

async fn task_row(tx: &mut Tx, id: i64) -> Result<Option<TaskRow>> {
    Ok(sqlx::query_as(&format!("{TASK_SELECT} WHERE t.id = $1")).bind(id).fetch_optional(&mut **tx).await?)
}

/// The people of these user names who have not left.
async fn people_named(tx: &mut Tx, names: &[String]) -> Result<Vec<Person>> {
    let sql = format!(
        "SELECT id, username, email FROM users WHERE left_at IS NULL AND username IN (SELECT value FROM {})",
        tx.backend.json_values("$1")
    );
    Ok(sqlx::query_as(&sql).bind(serde_json::to_string(names)?).fetch_all(&mut **tx).await?)
}

/// The members of these groups who have not left.
async fn group_members(tx: &mut Tx, groups: &[String]) -> Result<Vec<Person>> {
    let sql = format!(
        "SELECT DISTINCT u.id, u.username, u.email FROM users u JOIN group_members m ON m.user_id = u.id
         JOIN groups g ON g.id = m.group_id
         WHERE u.left_at IS NULL AND g.name IN (SELECT value FROM {})",
        tx.backend.json_values("$1")
    );
    Ok(sqlx::query_as(&sql).bind(serde_json::to_string(groups)?).fetch_all(&mut **tx).await?)
}

async fn admins(tx: &mut Tx, to: &Audiences) -> Result<Vec<Person>> {
    let mut people = people_named(tx, &to.admin_users).await?;
    people.extend(group_members(tx, &to.admin_groups).await?);
    Ok(people)
}

async fn username(tx: &mut Tx, id: i64) -> Result<String> {
    let name: Option<String> =
        sqlx::query_scalar("SELECT username FROM users WHERE id = $1").bind(id).fetch_optional(&mut **tx).await?;
    Ok(name.unwrap_or_else(|| format!("user {id}")))
}
