//! The store on both backends: chains, claims, drift, device codes, the access document, syncs.

mod accounts;
mod connector;
mod denials;
mod people;
mod reviews;

use std::time::Duration;

use super::*;
use crate::store::DeliveryState::{Delivered, Failed, Pending};

testing::on_both_backends!(
    audit_log_is_chained_and_append_only,
    drift_is_audited_once_repaired_until_it_sticks_and_resolved,
    open_drift_narrows_by_kind_person_account_and_permission_set_and_pages,
    device_codes_are_single_use_and_rate_limited,
    concurrent_writers_keep_one_chain_and_claim_each_job_once,
    webhook_deliveries_are_queued_with_their_event_and_claimed_once,
    audit_entries_page_by_id_time_and_action,
    a_tasks_events_page_oldest_first_and_the_latest_are_counted,
    a_sync_never_turns_a_service_account_into_a_person,
    the_file_applies_when_it_changes_and_the_api_in_between,
    group_assignments_are_replaced_per_sync_and_reach_the_members,
    an_assignment_made_after_its_grant_ended_is_revoked,
    a_membership_cone_made_that_aws_lost_is_drift_until_it_is_back,
);

pub(super) use crate::store::testing::{production_admin, user};

/// Files an hour's request of `user` for `entitlement`, placed at `placement`; returns the task id.
pub(super) async fn file_task(db: &Db, user: &UserRow, entitlement: &str, placement: Placement<'_>, now: i64) -> i64 {
    let e = db.entitlement("aws", entitlement).await.unwrap().unwrap();
    // A person Identity Center does not know files with none (Cone may create theirs).
    let principal = user.idc_user_id.clone().unwrap_or_default();
    let task = NewTask {
        requester_id: user.id,
        entitlement: &e,
        principal_id: &principal,
        extends_grant_id: None,
        max_duration_secs: 3600,
        emergency: false,
        justification: "",
        duration_secs: 3600,
        form_json: "{}".into(),
        policy_name: "p",
        steps_json: "[]".into(),
    };
    db.insert_task(&task, placement, now).await.unwrap().unwrap()
}

/// A provisioning that AWS answers after its grant has ended (its lease ran out while AWS was slow, and the grant
/// was released, provisioned by the second run and revoked meanwhile) leaves no assignment behind.
async fn an_assignment_made_after_its_grant_ended_is_revoked(db: Db) {
    db.apply_snapshot("aws", &production_admin(vec![user("u-alice", "alice")]), 1).await.unwrap();
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    let e = db.entitlement("aws", "111|ps-admin").await.unwrap().unwrap();
    file_task(&db, &alice, &e.id, Placement::Provision, 10).await;
    let state =
        async || -> String { sqlx::query_scalar("SELECT state FROM grants").fetch_one(&db.pool).await.unwrap() };
    let slow = db.claim_job(10, 60).await.unwrap().unwrap();
    let g = db.grant(slow.grant_id.unwrap()).await.unwrap();
    db.drop_access(alice.id, "aws", &e.id, 11).await.unwrap();
    assert_eq!(state().await, "released");
    // The lease runs out; a second run provisions, sees the release and revokes.
    let again = db.claim_job(80, 60).await.unwrap().unwrap();
    assert_eq!((again.id, again.kind), (slow.id, cone_core::job::JobKind::Provision));
    db.provisioned(&again, &g, 81).await.unwrap();
    let revoke = db.claim_job(81, 60).await.unwrap().unwrap();
    db.revoked(&revoke, &g, false, None, 82).await.unwrap();
    assert_eq!(state().await, "ended");
    // Then the first run's answer comes: the assignment it made must go too.
    db.provisioned(&slow, &g, 83).await.unwrap();
    assert_eq!(state().await, "revoking");
    let late = db.claim_job(83, 60).await.unwrap().expect("a revocation of the late assignment");
    assert_eq!((late.kind, late.grant_id), (cone_core::job::JobKind::Revoke, Some(g.id)));
}

/// A sync stores the assignments whose principal is a group (and only those); their members hold the
/// entitlement through the group, and the next sync replaces them whole.
async fn group_assignments_are_replaced_per_sync_and_reach_the_members(db: Db) {
    use cone_aws::{AssignmentRecord, Group, Principal};
    let assignment =
        |principal| AssignmentRecord { account_id: "111".into(), permission_set_arn: "ps-admin".into(), principal };
    let snap = cone_aws::Snapshot {
        groups: vec![
            Group { id: "g-admins".into(), display_name: "Admins".into() },
            Group { id: "g-ops".into(), display_name: "Ops".into() },
        ],
        memberships: vec![("g-admins".into(), "u-alice".into()), ("g-ops".into(), "u-alice".into())],
        assignments: vec![
            assignment(Principal::Group("g-admins".into())),
            assignment(Principal::Group("g-ops".into())),
            assignment(Principal::User("u-bob".into())),
        ],
        ..production_admin(vec![user("u-alice", "alice"), user("u-bob", "bob")])
    };
    db.apply_snapshot("aws", &snap, 1).await.unwrap();
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    let bob = db.user_by_name("bob").await.unwrap().unwrap();
    let held = |group: &str| ("aws".to_string(), "111|ps-admin".to_string(), group.to_string());
    // Her memberships themselves too, as entitlements of their own.
    let member = |group: &str, id: &str| ("aws".to_string(), format!("group|{id}"), group.to_string());
    assert_eq!(
        db.held_through_groups(alice.id).await.unwrap(),
        [held("Admins"), member("Admins", "g-admins"), held("Ops"), member("Ops", "g-ops")]
    );
    assert_eq!(db.held_through_groups(bob.id).await.unwrap(), [], "a user assignment is no group's");
    let holders = db.holders("aws", "111|ps-admin", 5, 0, 10).await.unwrap();
    let seen: Vec<_> =
        holders.iter().map(|h| (h.username.as_str(), h.source.as_str(), h.group_name.as_deref())).collect();
    assert_eq!(seen, [("alice", "group", Some("Admins")), ("alice", "group", Some("Ops"))]);
    assert_eq!(db.holders("aws", "111|ps-admin", 5, 1, 10).await.unwrap().len(), 1, "paged by offset");

    // The next sync replaces them, and the cached read follows.
    let fewer = cone_aws::Snapshot { assignments: vec![assignment(Principal::Group("g-ops".into()))], ..snap };
    db.apply_snapshot("aws", &fewer, 2).await.unwrap();
    assert_eq!(
        db.held_through_groups(alice.id).await.unwrap(),
        [member("Admins", "g-admins"), held("Ops"), member("Ops", "g-ops")]
    );
}

/// The file's access document is recorded when it says something new, and only then, so an API version
/// survives restarts with the same file; an API change is refused when it started from an older version; every
/// version is audited with its author.
async fn the_file_applies_when_it_changes_and_the_api_in_between(db: Db) {
    db.set_password("carol", "hash").await.unwrap();
    let carol = db.user_by_name("carol").await.unwrap().unwrap();
    let v1 = db.apply_file_access("policies: []\n", "start", 10).await.unwrap();
    assert_eq!((v1.source.as_str(), v1.author.as_deref()), ("file", None));
    // A restart with the same file records nothing.
    assert_eq!(db.apply_file_access("policies: []\n", "start", 11).await.unwrap().id, v1.id);
    let Applied::New(v2) = db.apply_access("policies: [] # api\n", carol.id, "why", Some(v1.id), 12).await.unwrap()
    else {
        panic!("not applied")
    };
    assert_eq!((v2.source.as_str(), v2.author.as_deref(), v2.comment.as_str()), ("api", Some("carol"), "why"));
    // The same document again is no new version; a change from a stale base is refused with the newest.
    assert!(matches!(db.apply_access("policies: [] # api\n", carol.id, "", None, 13).await.unwrap(),
            Applied::Unchanged(ref v) if v.id == v2.id));
    assert!(matches!(db.apply_access("x: 1\n", carol.id, "", Some(v1.id), 13).await.unwrap(),
            Applied::Stale(id) if id == v2.id));
    // The unchanged file leaves the API's version in force; a changed file wins.
    assert_eq!(db.apply_file_access("policies: []\n", "restart", 14).await.unwrap().id, v2.id);
    let v3 = db.apply_file_access("access_profiles: []\n", "restart", 15).await.unwrap();
    assert!(v3.id > v2.id && v3.source == "file");
    assert_eq!(db.current_access().await.unwrap().unwrap().id, v3.id);
    let history: Vec<i64> = db.access_versions(0, 10).await.unwrap().iter().map(|v| v.id).collect();
    assert_eq!(history, [v3.id, v2.id, v1.id]);
    assert_eq!(db.access_versions(1, 1).await.unwrap()[0].id, v2.id);
    let filter = AuditFilter { action: Some("config.apply".into()), ..Default::default() };
    let actors: Vec<String> = db.audit_entries(&filter, 10).await.unwrap().into_iter().map(|e| e.actor).collect();
    assert_eq!(actors, ["file", &format!("user:{}", carol.id), "file"]);
    assert_eq!(db.audit_chain_break().await.unwrap(), None);
}

/// Deliveries are written with the event (none for a rolled-back change), only for subscribed webhooks, and
/// claimed by one claimant at a time until their lease ends.
async fn webhook_deliveries_are_queued_with_their_event_and_claimed_once(db: Db) {
    let db =
        db.with_webhooks(vec![("all".into(), vec!["*".into()]), ("revocations".into(), vec!["grant.revoke".into()])]);
    db.set_password("alice", "hash").await.unwrap();
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    let record = async |action: &str, actor: &str, commit: bool| {
        let mut tx = db.begin().await.unwrap();
        record(&mut tx, 100, actor, action, "task:7", r#"{"comment":"hi"}"#).await.unwrap();
        if commit {
            tx.commit().await.unwrap();
        }
    };
    record("task.comment", &format!("user:{}", alice.id), true).await;
    tokio::time::timeout(Duration::from_secs(1), db.deliveries_queued().notified())
        .await
        .expect("a commit that queued deliveries wakes the sender");
    record("grant.revoke", "worker", false).await;
    record("login", "user:1", true).await;
    record("drift.unexplained", "worker", true).await;
    record("grant.revoke", "worker", true).await;

    let rows: Vec<(String, String, String, String)> =
        sqlx::query_as("SELECT webhook, event, state, body FROM webhook_deliveries ORDER BY id")
            .fetch_all(&db.pool)
            .await
            .unwrap();
    let routed: Vec<(&str, &str)> = rows.iter().map(|r| (r.0.as_str(), r.1.as_str())).collect();
    assert_eq!(routed, [("all", "task.comment"), ("all", "grant.revoke"), ("revocations", "grant.revoke")]);
    assert!(rows.iter().all(|r| r.2 == "pending"));
    let body: serde_json::Value = serde_json::from_str(&rows[0].3).unwrap();
    assert_eq!(body["event"], "task.comment");
    assert_eq!(body["actor"], "alice");
    assert_eq!(body["task_id"], 7);
    assert_eq!(body["at"], "1970-01-01T00:01:40Z");
    assert_eq!(body["detail"]["comment"], "hi");
    assert!(body["audit_id"].is_i64() && body["id"].as_str().is_some_and(|id| id.len() == 36), "{body}");
    let other: serde_json::Value = serde_json::from_str(&rows[1].3).unwrap();
    assert_eq!(other["actor"], "cone");
    assert_ne!(other["id"], serde_json::from_str::<serde_json::Value>(&rows[2].3).unwrap()["id"]);

    // Many claimants at once: each delivery goes to one of them; the lease keeps it theirs until it ends.
    let claimants: Vec<_> = (0..6)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move { db.claim_deliveries(100, 60, 1).await.unwrap() })
        })
        .collect();
    let mut claimed = vec![];
    for c in claimants {
        claimed.extend(c.await.unwrap().into_iter().map(|d| (d.id, d.attempts)));
    }
    claimed.sort();
    assert_eq!(claimed.len(), 3, "{claimed:?}");
    claimed.dedup_by_key(|c| c.0);
    assert_eq!(claimed.len(), 3, "each delivery claimed once");
    assert!(claimed.iter().all(|c| c.1 == 1));
    assert!(db.claim_deliveries(159, 60, 10).await.unwrap().is_empty(), "leased");
    assert_eq!(db.next_delivery_due().await.unwrap(), Some(160));

    // A claimant that died leaves them to the next after the lease; recorded outcomes stick.
    let again = db.claim_deliveries(160, 60, 10).await.unwrap();
    assert_eq!(again.iter().map(|d| d.attempts).collect::<Vec<_>>(), [2, 2, 2]);
    db.record_delivery(again[0].id, Delivered, Some(204), None, 161, 161).await.unwrap();
    db.record_delivery(again[1].id, Failed, Some(500), Some("the receiver answered 500"), 161, 161).await.unwrap();
    db.record_delivery(again[2].id, Pending, None, Some("cannot connect"), 170, 161).await.unwrap();
    db.record_delivery(again[0].id, Pending, None, None, 999, 162).await.unwrap();
    assert!(db.claim_deliveries(169, 60, 10).await.unwrap().is_empty());
    let last = db.claim_deliveries(170, 60, 10).await.unwrap();
    assert_eq!((last.len(), last[0].id, last[0].attempts), (1, again[2].id, 3));
    assert_eq!(db.prune_deliveries(162).await.unwrap(), 2, "the delivered and the failed one");
}

async fn audit_entries_page_by_id_time_and_action(db: Db) {
    for (at, action) in [(10, "task.create"), (20, "task.wait_ended"), (30, "tasks.create"), (40, "grant.revoke")] {
        let mut tx = db.begin().await.unwrap();
        record(&mut tx, at, "worker", action, "task:1", "{}").await.unwrap();
        tx.commit().await.unwrap();
    }
    let ids = async |filter: AuditFilter, limit: i64| -> Vec<i64> {
        db.audit_entries(&filter, limit).await.unwrap().into_iter().map(|r| r.id).collect()
    };
    assert_eq!(ids(AuditFilter::default(), 10).await, [1, 2, 3, 4]);
    assert_eq!(ids(AuditFilter { after_id: 1, ..Default::default() }, 2).await, [2, 3]);
    assert_eq!(ids(AuditFilter { since: Some(20), until: Some(40), ..Default::default() }, 10).await, [2, 3]);
    let action = |a: &str| AuditFilter { action: Some(a.into()), ..Default::default() };
    assert_eq!(ids(action("grant.revoke"), 10).await, [4]);
    assert_eq!(ids(action("task.*"), 10).await, [1, 2]);
    // `_` in a family is not a wildcard.
    assert_eq!(ids(action("t_sk.*"), 10).await, Vec::<i64>::new());
    let newest = |after_id: i64| AuditFilter { after_id, newest_first: true, ..Default::default() };
    assert_eq!(ids(newest(0), 10).await, [4, 3, 2, 1]);
    assert_eq!(ids(newest(3), 1).await, [2], "the page after 3, newest first");
    let by = |actor: &str| AuditFilter { actor: Some(actor.into()), since: Some(20), ..Default::default() };
    assert_eq!(ids(by("worker"), 10).await, [2, 3, 4]);
    assert_eq!(ids(by("user:9"), 10).await, Vec::<i64>::new());
    db.set_password("alice", "hash").await.unwrap();
    let alice = db.user_by_name("alice").await.unwrap().unwrap().id;
    let names = db.usernames(&[alice, alice + 1000]).await.unwrap();
    assert_eq!(names.into_iter().collect::<Vec<_>>(), [(alice, "alice".to_string())]);
}

async fn a_tasks_events_page_oldest_first_and_the_latest_are_counted(db: Db) {
    for n in 0..7 {
        let mut tx = db.begin().await.unwrap();
        record(&mut tx, n, "worker", "task.comment", "task:1", &format!(r#"{{"comment":"{n}"}}"#)).await.unwrap();
        record(&mut tx, n, "worker", "task.comment", "task:2", "{}").await.unwrap();
        tx.commit().await.unwrap();
    }
    let details = |rows: Vec<EventRow>| rows.into_iter().map(|r| (r.at, r.actor)).collect::<Vec<_>>();
    let page = db.task_events(1, 2, 3).await.unwrap();
    assert_eq!(details(page), [(2, "cone".into()), (3, "cone".into()), (4, "cone".into())]);
    assert!(db.task_events(1, 7, 3).await.unwrap().is_empty(), "past the end");
    let (latest, total) = db.latest_task_events(1, 3).await.unwrap();
    assert_eq!((latest.iter().map(|r| r.at).collect::<Vec<_>>(), total), (vec![4, 5, 6], 7));
    assert_eq!(db.latest_task_events(3, 3).await.unwrap().1, 0, "a task without events");
}

/// An Identity Center user of a service account's name is not linked to it: the account would gain that
/// person's groups and access.
async fn a_sync_never_turns_a_service_account_into_a_person(db: Db) {
    db.set_password("carol", "hash").await.unwrap();
    let carol = db.user_by_name("carol").await.unwrap().unwrap();
    let token = NewApiToken {
        token_hash: "h",
        kind: "service",
        name: "ci",
        owner: TokenOwner::Service("service:bot"),
        created_by: carol.id,
        expires_at: None,
    };
    db.create_api_token(&token, 1).await.unwrap().unwrap();
    let snap = cone_aws::Snapshot {
        resumed: None,
        instance_arn: "inst".into(),
        identity_store_id: "d-1".into(),
        accounts: vec![],
        permission_sets: vec![],
        provisioned: vec![],
        users: vec![user("u-1", "service:bot"), user("u-2", "carol")],
        groups: vec![],
        memberships: vec![],
        assignments: vec![],
    };
    db.apply_snapshot("aws", &snap, 2).await.unwrap();
    let bot = db.user_by_name("service:bot").await.unwrap().unwrap();
    assert_eq!((bot.kind.as_str(), bot.idc_user_id), ("service", None));
    let carol = db.user_by_name("carol").await.unwrap().unwrap();
    assert_eq!((carol.kind.as_str(), carol.idc_user_id.as_deref()), ("person", Some("u-2")));
    // Nor does a person's name become a service account.
    let clash = NewApiToken { owner: TokenOwner::Service("carol"), token_hash: "h2", ..token };
    assert!(db.create_api_token(&clash, 3).await.unwrap().is_none());
}

async fn audit_log_is_chained_and_append_only(db: Db) {
    for i in 0..3 {
        let mut tx = db.begin().await.unwrap();
        record(&mut tx, i, "user:1", "test", "task:1", "{}").await.unwrap();
        tx.commit().await.unwrap();
    }
    assert_eq!(db.audit_chain_break().await.unwrap(), None);
    assert!(sqlx::query("UPDATE audit_log SET actor = 'x'").execute(&db.pool).await.is_err());
    assert!(sqlx::query("DELETE FROM audit_log").execute(&db.pool).await.is_err());
    // Someone with raw database access who drops the guard still cannot edit unnoticed.
    let drop = match db.backend {
        Backend::Sqlite => "DROP TRIGGER audit_log_no_update",
        Backend::Postgres => "DROP TRIGGER audit_log_no_update ON audit_log",
    };
    sqlx::query(drop).execute(&db.pool).await.unwrap();
    sqlx::query("UPDATE audit_log SET actor = 'mallory' WHERE id = 2").execute(&db.pool).await.unwrap();
    assert_eq!(db.audit_chain_break().await.unwrap(), Some(2));
}

async fn open_drift_narrows_by_kind_person_account_and_permission_set_and_pages(db: Db) {
    use crate::drift::{Finding, Kind};
    let users = vec![testing::user("u-alice", "alice"), testing::user("u-bob", "bob")];
    db.apply_snapshot("aws", &testing::production_admin(users), 1).await.unwrap();
    let finding = |kind, account: &str, principal: &str| Finding {
        kind,
        account_id: account.into(),
        permission_set_arn: "ps-admin".into(),
        principal_id: principal.into(),
        group_id: String::new(),
        grant_id: None,
        remedy: None,
    };
    let findings = [
        finding(Kind::Unexplained, "111", "u-alice"),
        finding(Kind::Unexplained, "111", "u-bob"),
        finding(Kind::Unexplained, "222", "u-bob"),
    ];
    db.record_drift("inst", &findings, false, 10).await.unwrap();
    let listed = async |kind: &str, user: &str, account: &str, target: &str, offset, limit| -> Vec<(String, String)> {
        let filter =
            DriftFilter { kind: kind.into(), user: user.into(), account: account.into(), target: target.into() };
        let rows = db.open_drift(&filter, offset, limit).await.unwrap();
        rows.into_iter().map(|r| (r.account_id, r.username.unwrap_or_default())).collect()
    };
    let pair = |a: &str, u: &str| (a.to_string(), u.to_string());
    assert_eq!(listed("", "", "", "", 0, 10).await.len(), 3);
    assert_eq!(listed("", "bob", "", "", 0, 10).await, [pair("111", "bob"), pair("222", "bob")]);
    assert_eq!(listed("", "", "production", "", 0, 10).await, [pair("111", "alice"), pair("111", "bob")]);
    assert_eq!(listed("", "", "222", "administratoraccess", 0, 10).await, [pair("222", "bob")]);
    assert!(listed("missing", "", "", "", 0, 10).await.is_empty());
    assert!(listed("", "", "", "ReadOnlyAccess", 0, 10).await.is_empty());
    // Pages follow the findings' order.
    assert_eq!(listed("", "", "", "", 1, 1).await, [pair("111", "bob")]);
}

async fn drift_is_audited_once_repaired_until_it_sticks_and_resolved(db: Db) {
    use crate::drift::{Finding, Kind, Remedy};
    let f = Finding {
        kind: Kind::Unexplained,
        account_id: "111".into(),
        permission_set_arn: "ps-admin".into(),
        principal_id: "u-bob".into(),
        group_id: String::new(),
        grant_id: None,
        remedy: Some(Remedy::Remove),
    };
    let first = db.record_drift("inst", std::slice::from_ref(&f), false, 10).await.unwrap();
    assert_eq!((first.opened.len(), first.queued), (1, 1));
    let again = db.record_drift("inst", std::slice::from_ref(&f), false, 20).await.unwrap();
    assert_eq!((again.opened.len(), again.queued, again.resolved), (0, 0, 0));
    let open = db.open_drift(&DriftFilter::default(), 0, 100).await.unwrap();
    assert_eq!((open.len(), open[0].first_seen, open[0].last_seen), (1, 10, 20));

    // The removal ran, but someone assigned it again before the next sweep: one more removal, no new finding.
    let job = db.claim_job(20, 300).await.unwrap().unwrap();
    assert_eq!((job.kind.as_str(), job.grant_id, job.finding_id), ("remove_drift", None, Some(open[0].id)));
    db.drift_repaired(&job, Repair::Removed, 21).await.unwrap();
    let back = db.record_drift("inst", std::slice::from_ref(&f), false, 30).await.unwrap();
    assert_eq!((back.opened.len(), back.queued), (0, 1));

    let gone = db.record_drift("inst", &[], false, 40).await.unwrap();
    assert_eq!(gone.resolved, 1);
    assert!(db.open_drift(&DriftFilter::default(), 0, 100).await.unwrap().is_empty());
    let actions: Vec<String> =
        sqlx::query_scalar("SELECT action FROM audit_log ORDER BY id").fetch_all(&db.pool).await.unwrap();
    assert_eq!(actions, ["drift.unexplained", "drift.remove", "drift.resolved"]);
    assert_eq!(db.audit_chain_break().await.unwrap(), None);
}

async fn device_codes_are_single_use_and_rate_limited(db: Db) {
    db.set_password("alice", "hash").await.unwrap();
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    assert!(db.create_device_code("h", "ABCD-EFGH", 100, 5, 10, 0).await.unwrap());
    assert_eq!(db.poll_device_code("h", 10).await.unwrap(), DevicePoll::Pending);
    assert_eq!(db.poll_device_code("h", 11).await.unwrap(), DevicePoll::SlowDown);
    assert!(db.decide_device_code("ABCD-EFGH", alice.id, true, 12).await.unwrap());
    assert_eq!(db.poll_device_code("h", 20).await.unwrap(), DevicePoll::Approved(alice.id));
    assert_eq!(db.poll_device_code("h", 30).await.unwrap(), DevicePoll::Unknown);
    assert!(db.create_device_code("old", "WXYZ-WXYZ", 100, 5, 10, 30).await.unwrap());
    assert!(!db.decide_device_code("WXYZ-WXYZ", alice.id, true, 100).await.unwrap());
    assert_eq!(db.poll_device_code("old", 100).await.unwrap(), DevicePoll::Expired);
    // A denied code is told so once, and cannot be approved afterwards.
    assert!(db.create_device_code("no", "BCDF-BCDF", 100, 5, 10, 0).await.unwrap());
    assert!(db.decide_device_code("BCDF-BCDF", alice.id, false, 10).await.unwrap());
    assert!(!db.decide_device_code("BCDF-BCDF", alice.id, true, 11).await.unwrap());
    assert_eq!(db.poll_device_code("no", 12).await.unwrap(), DevicePoll::Denied);
    // At most `max` codes wait at once; expired ones, never polled, go when a new one is made.
    assert!(db.create_device_code("p1", "CCCC-CCCC", 50, 5, 2, 12).await.unwrap());
    assert!(db.create_device_code("p2", "DDDD-DDDD", 500, 5, 2, 12).await.unwrap());
    assert!(!db.create_device_code("p3", "FFFF-FFFF", 500, 5, 2, 12).await.unwrap(), "two wait already");
    assert!(db.create_device_code("p3", "FFFF-FFFF", 500, 5, 2, 60).await.unwrap(), "p1 expired and went");
    assert_eq!(db.poll_device_code("p1", 61).await.unwrap(), DevicePoll::Unknown);
}

/// Many connections at once (as several replicas would use): the audit log stays one chain, and each job is
/// claimed by exactly one claimant.
async fn concurrent_writers_keep_one_chain_and_claim_each_job_once(db: Db) {
    use crate::drift::{Finding, Kind, Remedy};
    let appenders: Vec<_> = (0..8)
        .map(|n| {
            let db = db.clone();
            tokio::spawn(async move {
                for i in 0..10 {
                    let mut tx = db.begin().await.unwrap();
                    record(&mut tx, i, &format!("user:{n}"), "test", "task:1", "{}").await.unwrap();
                    tx.commit().await.unwrap();
                }
            })
        })
        .collect();
    for a in appenders {
        a.await.unwrap();
    }
    let entries: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM audit_log").fetch_one(&db.pool).await.unwrap();
    assert_eq!((entries, db.audit_chain_break().await.unwrap()), (80, None));

    let findings: Vec<Finding> = (0..20)
        .map(|n| Finding {
            kind: Kind::Unexplained,
            account_id: "111".into(),
            permission_set_arn: "ps-admin".into(),
            principal_id: format!("u-{n}"),
            group_id: String::new(),
            grant_id: None,
            remedy: Some(Remedy::Remove),
        })
        .collect();
    assert_eq!(db.record_drift("inst", &findings, false, 10).await.unwrap().queued, 20);
    let claimants: Vec<_> = (0..8)
        .map(|_| {
            let db = db.clone();
            tokio::spawn(async move {
                let mut claimed = vec![];
                while let Some(job) = db.claim_job(10, 300).await.unwrap() {
                    claimed.push(job.id);
                }
                claimed
            })
        })
        .collect();
    let mut claimed = vec![];
    for c in claimants {
        claimed.extend(c.await.unwrap());
    }
    claimed.sort();
    let before = claimed.len();
    claimed.dedup();
    assert_eq!((before, claimed.len()), (20, 20), "every job claimed once");
}

/// The membership sweep: an active grant's membership (made by Cone) that a later sync does not find is a `missing`
/// finding naming the group, with a restoration queued; an assignment sweep leaves it open, and the membership
/// sweep that finds it again resolves it.
async fn a_membership_cone_made_that_aws_lost_is_drift_until_it_is_back(db: Db) {
    let group = cone_aws::Group { id: "g-dba".into(), display_name: "dba".into() };
    let with = |members: Vec<(String, String)>| cone_aws::Snapshot {
        groups: vec![group.clone()],
        memberships: members,
        ..production_admin(vec![user("u-alice", "alice")])
    };
    db.apply_snapshot("aws", &with(vec![]), 1).await.unwrap();
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    file_task(&db, &alice, "group|g-dba", Placement::Provision, 2).await;
    let job = db.claim_job(2, 60).await.unwrap().unwrap();
    let g = db.grant(job.grant_id.unwrap()).await.unwrap();
    db.membership_looked(&g, false).await.unwrap();
    db.provisioned(&job, &g, 2).await.unwrap();

    db.apply_snapshot("aws", &with(vec![("g-dba".into(), "u-alice".into())]), 10).await.unwrap();
    assert!(db.missing_memberships(10, 10, false).await.unwrap().is_empty(), "the sync found it");
    db.apply_snapshot("aws", &with(vec![]), 20).await.unwrap();
    let missing = db.missing_memberships(20, 20, false).await.unwrap();
    assert_eq!(missing.len(), 1, "{missing:?}");
    let record = db.record_drift("inst", &missing, true, 20).await.unwrap();
    assert_eq!((record.opened.len(), record.queued), (1, 1));
    let f = &record.opened[0];
    assert_eq!(
        (f.kind.as_str(), f.group_name.as_deref(), f.username.as_deref()),
        ("missing", Some("dba"), Some("alice"))
    );
    let repair = db.claim_job(20, 60).await.unwrap().unwrap();
    assert_eq!((repair.kind, repair.grant_id), (cone_core::job::JobKind::Reprovision, Some(g.id)));
    assert_eq!(db.record_drift("inst", &[], false, 21).await.unwrap().resolved, 0, "not an assignment sweep's");
    db.apply_snapshot("aws", &with(vec![("g-dba".into(), "u-alice".into())]), 30).await.unwrap();
    let back = db.missing_memberships(30, 30, false).await.unwrap();
    assert_eq!(db.record_drift("inst", &back, true, 30).await.unwrap().resolved, 1);
}

/// The SQLite database and the WAL and shared-memory files SQLite makes beside it are readable by their owner only,
/// whatever the umask, and a file left readable by others is made private at the next start.
#[tokio::test]
async fn the_sqlite_files_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cone.db");
    let mode = |suffix: &str| {
        let file = dir.path().join(format!("cone.db{suffix}"));
        std::fs::metadata(file).unwrap().permissions().mode() & 0o777
    };
    let db = Db::open(&crate::config::Database::Sqlite(path.clone())).await.unwrap();
    db.set_password("alice", "x").await.unwrap();
    assert_eq!((mode(""), mode("-wal"), mode("-shm")), (0o600, 0o600, 0o600));
    drop(db);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let _db = Db::open(&crate::config::Database::Sqlite(path)).await.unwrap();
    assert_eq!(mode(""), 0o600);
}
