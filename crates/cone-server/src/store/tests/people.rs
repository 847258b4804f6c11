//! People across syncs on both backends: leavers lose everything at once, renames keep the person, a newcomer
//! with a leaver's name is someone else, and a read that loses most people offboards nobody.

use cone_core::grant::GrantState;
use cone_core::task::TaskState;

use super::{file_task, production_admin, user};
use crate::store::testing;
use crate::store::*;

testing::on_both_backends!(
    a_person_who_leaves_loses_every_sign_in_request_and_grant_at_once,
    a_disabled_user_leaves_and_a_newcomer_with_their_name_is_someone_else,
    renamed_users_and_groups_keep_their_rows_grants_and_members,
    a_read_that_loses_most_people_offboards_nobody,
    leavers_offboarded_together_each_lose_their_own_and_an_interrupted_sync_ends_their_grants_later,
);

/// Production with two permission sets provisioned: AdministratorAccess (`ps-admin`) and ReadOnly (`ps-read`).
fn two_entitlements(users: Vec<cone_aws::User>) -> cone_aws::Snapshot {
    let mut snap = production_admin(users);
    snap.permission_sets.push(cone_aws::PermissionSet {
        arn: "ps-read".into(),
        name: "ReadOnly".into(),
        description: None,
        session_duration: None,
    });
    snap.provisioned.push(("111".into(), "ps-read".into()));
    snap
}

/// Files a request that is approved at once and provisions it: the grant is active.
async fn active_grant(db: &Db, user: &UserRow, entitlement: &str, now: i64) -> i64 {
    let task = file_task(db, user, entitlement, Placement::Provision, now).await;
    let job = db.claim_job(now, 60).await.unwrap().unwrap();
    let g = db.grant(job.grant_id.unwrap()).await.unwrap();
    db.provisioned(&job, &g, now).await.unwrap();
    task
}

async fn grant_state(db: &Db, task: i64) -> String {
    sqlx::query_scalar("SELECT state FROM grants WHERE task_id = $1").bind(task).fetch_one(&db.pool).await.unwrap()
}

async fn audited(db: &Db, action: &str) -> Vec<AuditRow> {
    db.audit_entries(&AuditFilter { action: Some(action.into()), ..Default::default() }, 100).await.unwrap()
}

/// alice is no longer listed: her `cone login` session, console session and API token stop working, her pending
/// request is cancelled (in the sync's transaction) and her active grant ends early with a revoke job (just after),
/// and one `identity.offboard` entry says what was taken. bob keeps everything.
async fn a_person_who_leaves_loses_every_sign_in_request_and_grant_at_once(db: Db) {
    let snap = two_entitlements(vec![user("u-alice", "alice"), user("u-bob", "bob")]);
    db.apply_snapshot("aws", &snap, 1).await.unwrap();
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    let bob = db.user_by_name("bob").await.unwrap().unwrap();
    for (who, n) in [(&alice, "a"), (&bob, "b")] {
        db.insert_access_token(&format!("cli-{n}"), who.id, 2, 10_000).await.unwrap();
        db.insert_web_session(&format!("web-{n}"), who.id, 2, 10_000, None).await.unwrap();
        let token = NewApiToken {
            token_hash: &format!("api-{n}"),
            kind: "personal",
            name: "laptop",
            owner: TokenOwner::Creator,
            created_by: who.id,
            expires_at: None,
        };
        db.create_api_token(&token, 2).await.unwrap().unwrap();
    }
    let granted = active_grant(&db, &alice, "111|ps-admin", 3).await;
    let pending = file_task(&db, &alice, "111|ps-read", Placement::Waiting { index: 0, group: None }, 4).await;
    let bobs = active_grant(&db, &bob, "111|ps-admin", 5).await;

    let without_alice = two_entitlements(vec![user("u-bob", "bob")]);
    db.apply_snapshot("aws", &without_alice, 10).await.unwrap();

    assert!(db.user_for_token("cli-a", 11).await.unwrap().is_none());
    assert!(db.web_session_user("web-a", 11).await.unwrap().is_none());
    let token = db.api_token_use("api-a").await.unwrap().unwrap();
    assert_eq!((token.revoked_at, token.user.left_at), (Some(10), Some(10)));
    let t = db.task(pending).await.unwrap().unwrap();
    assert_eq!(t.state, TaskState::Cancelled);
    assert_eq!(t.reason.as_deref(), Some("Ended because its requester left: deleted in Identity Center."));
    assert_eq!(db.task(granted).await.unwrap().unwrap().state, TaskState::Released);
    assert_eq!(grant_state(&db, granted).await, GrantState::Revoking.as_str());
    let job = db.claim_job(11, 60).await.unwrap().expect("a revoke job for alice's grant");
    assert_eq!(job.kind, cone_core::job::JobKind::Revoke);

    let offboarded = audited(&db, "identity.offboard").await;
    assert_eq!(offboarded.len(), 1);
    assert_eq!(offboarded[0].subject, format!("user:{}", alice.id));
    let detail: serde_json::Value = serde_json::from_str(&offboarded[0].detail).unwrap();
    assert_eq!(detail["why"], "deleted in Identity Center");
    assert_eq!((detail["sessions"].as_i64(), detail["console_sessions"].as_i64()), (Some(1), Some(1)));
    assert_eq!(detail["api_tokens"], 1);
    assert_eq!(detail["cancelled_tasks"], serde_json::json!([pending]));
    assert_eq!(detail["ended_grants"], serde_json::json!([granted]));
    assert_eq!(audited(&db, "grant.end_early").await.len(), 1);

    assert_eq!(db.user_for_token("cli-b", 11).await.unwrap().map(|u| u.id), Some(bob.id));
    assert!(db.web_session_user("web-b", 11).await.unwrap().is_some());
    assert_eq!(db.api_token_use("api-b").await.unwrap().unwrap().revoked_at, None);
    assert_eq!(grant_state(&db, bobs).await, GrantState::Active.as_str());

    // The next sync does not offboard her again.
    db.apply_snapshot("aws", &without_alice, 20).await.unwrap();
    assert_eq!(audited(&db, "identity.offboard").await.len(), 1);
    assert_eq!(db.audit_chain_break().await.unwrap(), None);
}

/// A user disabled in Identity Center leaves as one deleted does. Someone new given the name later is a new
/// person: the leaver's row keeps its history under a name of its own, and nothing of theirs reaches the newcomer.
/// The same id enabled again is the same person come back, with nothing restored.
async fn a_disabled_user_leaves_and_a_newcomer_with_their_name_is_someone_else(db: Db) {
    db.apply_snapshot("aws", &production_admin(vec![user("u-alice", "alice")]), 1).await.unwrap();
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    db.insert_access_token("cli-a", alice.id, 2, 10_000).await.unwrap();
    let disabled = cone_aws::User { enabled: false, ..user("u-alice", "alice") };
    db.apply_snapshot("aws", &production_admin(vec![disabled]), 3).await.unwrap();
    assert!(db.user_for_token("cli-a", 4).await.unwrap().is_none());
    let detail = &audited(&db, "identity.offboard").await[0].detail;
    assert!(detail.contains("disabled in Identity Center"), "{detail}");

    db.apply_snapshot("aws", &production_admin(vec![user("u-alice-2", "alice")]), 5).await.unwrap();
    let newcomer = db.user_by_name("alice").await.unwrap().unwrap();
    assert_ne!(newcomer.id, alice.id);
    assert_eq!((newcomer.idc_user_id.as_deref(), newcomer.left_at), (Some("u-alice-2"), None));
    let old = db.user_by_name(&format!("alice#{}", alice.id)).await.unwrap().expect("the leaver keeps a row");
    assert_eq!((old.id, old.left_at), (alice.id, Some(3)));
    assert!(db.user_for_token("cli-a", 6).await.unwrap().is_none());

    // The first alice enabled again, renamed meanwhile: the same row, present again.
    let back = production_admin(vec![user("u-alice-2", "alice"), user("u-alice", "alice.old")]);
    db.apply_snapshot("aws", &back, 7).await.unwrap();
    let returned = db.user_by_name("alice.old").await.unwrap().unwrap();
    assert_eq!((returned.id, returned.left_at), (alice.id, None));
    assert_eq!(audited(&db, "identity.return").await.len(), 1);
}

/// Renames in Identity Center rename in Cone: the person keeps their row and active grant, a group keeps its row
/// and members, two people may swap names, and every later sync still works.
async fn renamed_users_and_groups_keep_their_rows_grants_and_members(db: Db) {
    let group = |name: &str| cone_aws::Group { id: "g-1".into(), display_name: name.into() };
    let snap = cone_aws::Snapshot {
        groups: vec![group("approvers")],
        memberships: vec![("g-1".into(), "u-alice".into())],
        ..production_admin(vec![user("u-alice", "alice"), user("u-bob", "bob")])
    };
    db.apply_snapshot("aws", &snap, 1).await.unwrap();
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    let bob = db.user_by_name("bob").await.unwrap().unwrap();
    let granted = active_grant(&db, &alice, "111|ps-admin", 2).await;

    let renamed = cone_aws::Snapshot {
        groups: vec![group("approvers-eu")],
        users: vec![user("u-alice", "bob"), user("u-bob", "alice")],
        ..snap.clone()
    };
    db.apply_snapshot("aws", &renamed, 3).await.unwrap();
    assert_eq!(db.user_by_name("bob").await.unwrap().unwrap().id, alice.id);
    assert_eq!(db.user_by_name("alice").await.unwrap().unwrap().id, bob.id);
    assert_eq!(db.user_groups(alice.id).await.unwrap(), ["approvers-eu"]);
    assert_eq!(grant_state(&db, granted).await, GrantState::Active.as_str());
    assert_eq!(audited(&db, "identity.rename").await.len(), 2);
    assert_eq!(audited(&db, "group.rename").await.len(), 1);
    assert!(audited(&db, "identity.offboard").await.is_empty());

    // Membership follows the directory under the new name.
    let removed = cone_aws::Snapshot { memberships: vec![], ..renamed };
    db.apply_snapshot("aws", &removed, 4).await.unwrap();
    assert!(db.user_groups(alice.id).await.unwrap().is_empty());
}

/// A read listing nobody, or one that loses most of the people at once, offboards nobody and says so; a few
/// leavers at a time leave.
async fn a_read_that_loses_most_people_offboards_nobody(db: Db) {
    let people: Vec<cone_aws::User> = (0..30).map(|i| user(&format!("u-{i}"), &format!("p{i}"))).collect();
    db.apply_snapshot("aws", &production_admin(people.clone()), 1).await.unwrap();
    db.apply_snapshot("aws", &production_admin(vec![]), 2).await.unwrap();
    db.apply_snapshot("aws", &production_admin(people[..15].to_vec()), 3).await.unwrap();
    let present: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM users WHERE left_at IS NULL").fetch_one(&db.pool).await.unwrap();
    assert_eq!(present, 30);
    let held = audited(&db, "identity.offboarding_held").await;
    assert_eq!(held.len(), 2, "{held:?}");
    db.apply_snapshot("aws", &production_admin(people[..27].to_vec()), 4).await.unwrap();
    assert_eq!(audited(&db, "identity.offboard").await.len(), 3);
}

/// Two people leave in one sync: each loses exactly their own sessions and tokens (the sign-outs are one statement
/// for all leavers), and each offboarding entry names only their own request and grant. A sync stopped after its
/// transaction, before the grants ended, leaves them active; the next sync's pass ends them.
async fn leavers_offboarded_together_each_lose_their_own_and_an_interrupted_sync_ends_their_grants_later(db: Db) {
    let everyone = vec![user("u-alice", "alice"), user("u-bob", "bob"), user("u-carol", "carol")];
    db.apply_snapshot("aws", &two_entitlements(everyone), 1).await.unwrap();
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    let bob = db.user_by_name("bob").await.unwrap().unwrap();
    let carol = db.user_by_name("carol").await.unwrap().unwrap();
    for n in 0..2 {
        db.insert_access_token(&format!("cli-a{n}"), alice.id, 2, 10_000).await.unwrap();
    }
    db.insert_web_session("web-b", bob.id, 2, 10_000, None).await.unwrap();
    db.insert_access_token("cli-c", carol.id, 2, 10_000).await.unwrap();
    let alices = active_grant(&db, &alice, "111|ps-admin", 3).await;
    let bobs = file_task(&db, &bob, "111|ps-read", Placement::Waiting { index: 0, group: None }, 4).await;

    // The sync's transaction alone, as if the server stopped right after it.
    let only_carol = two_entitlements(vec![user("u-carol", "carol")]);
    let parts = futures_util::stream::iter(only_carol.parts().into_iter().map(Ok));
    let synced = db.apply_sync("aws", &only_carol.instance_arn, Box::pin(parts), 10, 10).await.unwrap();
    assert_eq!((synced.people.offboarded, synced.people.tasks.clone()), (2, vec![bobs]));
    assert!(db.user_for_token("cli-a0", 11).await.unwrap().is_none());
    assert!(db.user_for_token("cli-a1", 11).await.unwrap().is_none());
    assert!(db.web_session_user("web-b", 11).await.unwrap().is_none());
    assert_eq!(db.user_for_token("cli-c", 11).await.unwrap().map(|u| u.id), Some(carol.id));
    assert_eq!(db.task(bobs).await.unwrap().unwrap().state, TaskState::Cancelled);
    assert_eq!(grant_state(&db, alices).await, GrantState::Active.as_str());

    let entries = audited(&db, "identity.offboard").await;
    let detail_of = |who: &UserRow| -> serde_json::Value {
        let entry = entries.iter().find(|e| e.subject == format!("user:{}", who.id)).expect("an offboarding entry");
        serde_json::from_str(&entry.detail).unwrap()
    };
    let (a, b) = (detail_of(&alice), detail_of(&bob));
    assert_eq!((a["sessions"].as_i64(), a["console_sessions"].as_i64()), (Some(2), Some(0)));
    assert_eq!(
        (a["cancelled_tasks"].clone(), a["ended_grants"].clone()),
        (serde_json::json!([]), serde_json::json!([alices]))
    );
    assert_eq!((b["sessions"].as_i64(), b["console_sessions"].as_i64()), (Some(0), Some(1)));
    assert_eq!(
        (b["cancelled_tasks"].clone(), b["ended_grants"].clone()),
        (serde_json::json!([bobs]), serde_json::json!([]))
    );

    // The next sync's pass (here, the one after it) ends what is left, once.
    assert_eq!(db.end_leavers_grants(20).await.unwrap(), vec![alices]);
    assert_eq!(grant_state(&db, alices).await, GrantState::Revoking.as_str());
    let reason = db.task(alices).await.unwrap().unwrap().reason;
    assert_eq!(reason.as_deref(), Some("Ended because its requester left: deleted in Identity Center."));
    assert_eq!(db.end_leavers_grants(21).await.unwrap(), Vec::<i64>::new());
    assert_eq!(db.audit_chain_break().await.unwrap(), None);
}
