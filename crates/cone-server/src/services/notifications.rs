//! Notifications as people and administrators handle them: each person's preferences, the list of what was sent
//! or failed, and a test message. What is sent, and when, is `workers::notify`'s.

use cone_api::{Channel, Notification, NotificationList, NotificationSettings, Preferences, TestNotificationQueued};

use super::auth::{Caller, require_admin};
use super::{Page, time};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{Audiences, UserRow};

/// Test messages a person may be sent an hour, so that nobody's inbox (or the SMTP server) is flooded by them.
const TESTS_PER_HOUR: i64 = 10;

/// Who may be told, and on what, as the configuration says.
pub fn audiences(s: &AppState) -> Audiences {
    Audiences {
        channels: [
            s.config.notifications.email.as_ref().map(|_| Channel::Email),
            s.config.notifications.slack.as_ref().map(|_| Channel::Slack),
        ]
        .into_iter()
        .flatten()
        .collect(),
        admin_users: s.config.admins.users.clone(),
        admin_groups: s.config.admins.groups.clone(),
    }
}

pub async fn settings(s: &AppState, u: &UserRow) -> Result<NotificationSettings> {
    let available = if u.email.is_empty() { Vec::new() } else { audiences(s).channels };
    Ok(NotificationSettings { preferences: s.db.preferences(u.id).await?, available, email: u.email.clone() })
}

pub async fn set_preferences(s: &AppState, u: &UserRow, p: Preferences) -> Result<NotificationSettings> {
    if p.channels.as_ref().is_some_and(|c| c.len() > Channel::ALL.len())
        || p.muted.len() > cone_api::NotificationKind::ALL.len()
    {
        return Err(Error::invalid("Name each channel and each muted kind once."));
    }
    s.db.set_preferences(u.id, &p, s.now()).await?;
    settings(s, u).await
}

/// Notifications, newest first, in `state` (`pending`, `sent`, `failed`) when given. Administrators only.
pub async fn list(s: &AppState, caller: &Caller, state: Option<&str>, page: Page) -> Result<NotificationList> {
    require_admin(s, &caller.user).await?;
    if let Some(st) = state.filter(|st| !["pending", "sent", "failed"].contains(st)) {
        return Err(Error::invalid(format!("Unknown state \"{st}\"; use pending, sent or failed.")));
    }
    let rows = s.db.notifications(state, page.offset, page.limit()).await?;
    let (rows, next_page_token) = page.cut(rows);
    let notifications = rows
        .into_iter()
        .map(|n| Notification {
            id: n.id,
            user: n.username,
            channel: n.channel,
            kind: n.kind,
            task_id: n.task_id,
            state: n.state,
            attempts: n.attempts,
            last_error: n.last_error,
            due_at: time(n.run_after),
            created_at: time(n.created_at),
            updated_at: time(n.updated_at),
        })
        .collect();
    Ok(NotificationList { notifications, next_page_token })
}

/// Queues a test message to `user` (the caller when `None`) on every channel that reaches them. Administrators may
/// test anyone; others only themselves.
pub async fn test(s: &AppState, caller: &Caller, user: Option<&str>) -> Result<TestNotificationQueued> {
    let to = match user.filter(|name| *name != caller.user.username) {
        None => caller.user.clone(),
        Some(name) => {
            require_admin(s, &caller.user).await?;
            s.db.user_by_name(name)
                .await?
                .ok_or_else(|| Error::NotFound(format!("No user is named \"{name}\"; check the spelling.")))?
        }
    };
    if s.db.tests_since(to.id, s.now() - 3600).await? >= TESTS_PER_HOUR {
        return Err(Error::TooMany(format!(
            "{} was sent {TESTS_PER_HOUR} test messages in the last hour; `cone notifications list` shows how they went.",
            to.username
        )));
    }
    let channels = s.db.test_notification(&audiences(s), caller.user.id, to.id, s.now()).await?;
    Ok(TestNotificationQueued { user: to.username, channels })
}

#[cfg(test)]
mod tests {
    use cone_api::{CreateTask, NotificationKind as Kind};

    use super::*;
    use crate::services::tasks;
    use crate::store::Db;

    crate::store::testing::on_both_backends!(each_person_is_told_what_concerns_them_once);

    const POLICY: &str = "notifications:\n  email: { from: cone@example.com, host: 127.0.0.1, tls: none }\n\
        admins: { users: [carol] }\npolicies:\n  - name: admin\n    match: { permission_set: AdministratorAccess }\n    \
        max_duration: 1h\n    steps: [{ approval: { group: approvers } }, { approval: { users: [carol] } }]\n";

    /// Production's AdministratorAccess; alice, bob and carol with addresses, dave without; all but carol approve.
    fn snapshot() -> cone_aws::Snapshot {
        let person = |name: &str, email: bool| cone_aws::User {
            email: email.then(|| format!("{name}@example.com")),
            ..crate::store::testing::user(&format!("idc-{name}"), name)
        };
        cone_aws::Snapshot {
            groups: vec![cone_aws::Group { id: "g-1".into(), display_name: "approvers".into() }],
            memberships: ["alice", "bob", "dave"].map(|u| ("g-1".into(), format!("idc-{u}"))).into(),
            ..crate::store::testing::production_admin(vec![
                person("alice", true),
                person("bob", true),
                person("carol", true),
                person("dave", false),
            ])
        }
    }

    /// (person, kind, digest) of every notification made so far, in order.
    async fn made(db: &Db) -> Vec<(String, String, i64)> {
        sqlx::query_as(
            "SELECT u.username, n.kind, n.digest FROM notifications n JOIN users u ON u.id = n.user_id ORDER BY n.id",
        )
        .fetch_all(db.pool())
        .await
        .unwrap()
    }

    fn told(list: &[(&str, &str)]) -> Vec<(String, String, i64)> {
        list.iter().map(|(u, k)| (u.to_string(), k.to_string(), 0)).collect()
    }

    async fn each_person_is_told_what_concerns_them_once(db: Db) {
        let s = crate::server::testing::state(db, POLICY);
        s.db.apply_snapshot("aws", &snapshot(), 1).await.unwrap();
        let to = audiences(&s);
        let user = async |name: &str| s.db.user_by_name(name).await.unwrap().unwrap();
        let (alice, bob, carol) = (user("alice").await, user("bob").await, user("carol").await);
        let entitlement = s.db.entitlements().await.unwrap()[0].id.clone();
        let ask = || CreateTask {
            app_id: "aws".into(),
            entitlement_id: entitlement.clone(),
            justification: "INC-7".into(),
            duration_secs: None,
            form_data: Default::default(),
            emergency: false,
        };

        // alice asks: the approvers but herself (and dave, who has no address) are told; a second pass finds
        // nothing new.
        let t = tasks::create(&s, &alice, ask()).await.unwrap();
        s.db.make_notifications(&to, s.now()).await.unwrap();
        s.db.make_notifications(&to, s.now()).await.unwrap();
        assert_eq!(made(&s.db).await, told(&[("bob", "approval_needed")]));

        // bob approves the first step: carol, the second step's approver, is told; alice is not told yet.
        tasks::decide(&s, &bob, t.id, true, "").await.unwrap();
        tasks::comment(&s, &alice, t.id, "soon please").await.unwrap();
        s.db.make_notifications(&to, s.now()).await.unwrap();
        assert_eq!(made(&s.db).await, told(&[("bob", "approval_needed"), ("carol", "approval_needed")]));

        // carol approves: alice hears of it, carol does not; then provisioning fails: alice and carol are told.
        tasks::decide(&s, &carol, t.id, true, "ok").await.unwrap();
        let job = s.db.claim_job(s.now(), 60).await.unwrap().unwrap();
        let grant = s.db.grant(job.grant_id.unwrap()).await.unwrap();
        s.db.provisioning_failed(&job, &grant, "AccessDenied", s.now()).await.unwrap();
        s.db.make_notifications(&to, s.now()).await.unwrap();
        let expected = [
            ("bob", "approval_needed"),
            ("carol", "approval_needed"),
            ("alice", "decided"),
            ("alice", "failed"),
            ("carol", "failed"),
        ];
        assert_eq!(made(&s.db).await, told(&expected));
        let bodies: Vec<String> = sqlx::query_scalar("SELECT body FROM notifications WHERE kind = 'failed'")
            .fetch_all(s.db.pool())
            .await
            .unwrap();
        assert!(bodies.iter().all(|b| b.contains("AccessDenied")), "{bodies:?}");

        // bob wants a digest and mutes decisions; alice mutes failures.
        let digest = Preferences { digest: true, muted: vec![Kind::Decided], channels: None };
        set_preferences(&s, &bob, digest).await.unwrap();
        let quiet = Preferences { muted: vec![Kind::Failed], ..Preferences::default() };
        set_preferences(&s, &alice, quiet).await.unwrap();
        let again = tasks::create(&s, &alice, ask()).await.unwrap();
        s.db.make_notifications(&to, s.now()).await.unwrap();
        let last = made(&s.db).await.pop().unwrap();
        assert_eq!(last, ("bob".into(), "approval_needed".into(), 1), "a digest item");
        let due: i64 = sqlx::query_scalar("SELECT run_after FROM notifications ORDER BY id DESC LIMIT 1")
            .fetch_one(s.db.pool())
            .await
            .unwrap();
        assert_eq!(due, (s.now() / 3600 + 1) * 3600, "due at the next full hour");
        assert!(s.db.claim_notifications(s.now(), 60, 50).await.unwrap().iter().all(|n| n.digest == 0));
        tasks::cancel(&s, &alice, again.id).await.unwrap();
        s.db.make_notifications(&to, s.now()).await.unwrap();
        assert_eq!(made(&s.db).await.len(), expected.len() + 1, "her own cancellation tells nobody");

        // A test message reaches the person on every channel, muted or not.
        let caller = |user: &UserRow| Caller { user: user.clone(), api_token: None };
        let sent = test(&s, &caller(&carol), Some("alice")).await.unwrap();
        assert_eq!(sent.channels, [Channel::Email]);
        let refused = test(&s, &caller(&bob), Some("alice")).await;
        assert!(matches!(refused, Err(Error::Forbidden(_))), "only administrators test others");
        for _ in 1..TESTS_PER_HOUR {
            test(&s, &caller(&carol), Some("alice")).await.unwrap();
        }
        let flood = test(&s, &caller(&carol), Some("alice")).await;
        assert!(matches!(flood, Err(Error::TooMany(_))), "at most {TESTS_PER_HOUR} an hour: {flood:?}");
    }
}
