//! Role sessions to deny on both backends: an early end records them, the removal of the assignment moves their
//! time to it, they run out after the permission set's session duration, and an administrator's withdrawal ends
//! the grant's extensions too but not a grant already past its end.

use cone_core::task::TaskState;

use super::{file_task, production_admin, user};
use crate::store::testing;
use crate::store::*;

testing::on_both_backends!(
    an_early_end_denies_sessions_until_the_removal_and_for_a_session_duration_after,
    a_grant_past_its_end_cannot_be_withdrawn,
);

async fn active_grant(db: &Db, alice: &UserRow, now: i64) -> (i64, JobRow) {
    let task = file_task(db, alice, "111|ps-admin", Placement::Provision, now).await;
    let job = db.claim_job(now, 60).await.unwrap().unwrap();
    let g = db.grant(job.grant_id.unwrap()).await.unwrap();
    db.provisioned(&job, &g, now).await.unwrap();
    (task, job)
}

async fn an_early_end_denies_sessions_until_the_removal_and_for_a_session_duration_after(db: Db) {
    let db = db.with_session_denials(true);
    let mut snap = production_admin(vec![user("u-alice", "alice"), user("u-carol", "carol")]);
    snap.permission_sets[0].session_duration = Some("PT2H".into());
    db.apply_snapshot("aws", &snap, 1).await.unwrap();
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    let carol = db.user_by_name("carol").await.unwrap().unwrap();
    let (task, _) = active_grant(&db, &alice, 2).await;

    assert_eq!(db.withdraw_grant(task, carol.id, "incident", 100).await.unwrap(), Some(task));
    let t = db.task(task).await.unwrap().unwrap();
    assert_eq!(
        (t.state, t.ended_by.as_deref(), t.reason.as_deref()),
        (TaskState::Released, Some("carol"), Some("incident"))
    );
    let denied = db.session_denials(101).await.unwrap();
    assert_eq!(denied.len(), 1);
    let d = &denied[0];
    assert_eq!((d.principal_id.as_str(), d.account_id.as_str()), ("u-alice", "111"));
    assert_eq!((d.permission_set_name.as_str(), d.issued_before), ("AdministratorAccess", 100));

    // The assignment goes at 150: a session started between 100 and 150 is denied too, for two hours from then.
    let job = db.claim_job(150, 60).await.unwrap().unwrap();
    let g = db.grant(job.grant_id.unwrap()).await.unwrap();
    db.revoked(&job, &g, false, None, 150).await.unwrap();
    assert_eq!(db.session_denials(151).await.unwrap()[0].issued_before, 150);
    assert_eq!(db.session_denials(150 + 7199).await.unwrap().len(), 1);
    assert!(db.session_denials(150 + 7200).await.unwrap().is_empty());
    assert_eq!(db.next_denial_end(151).await.unwrap(), Some(150 + 7200));
}

async fn a_grant_past_its_end_cannot_be_withdrawn(db: Db) {
    db.apply_snapshot("aws", &production_admin(vec![user("u-alice", "alice")]), 1).await.unwrap();
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    let (task, _) = active_grant(&db, &alice, 2).await;
    // An hour's grant from 2, not yet swept at 3602 + 10.
    assert_eq!(db.withdraw_grant(task, alice.id, "late", 3612).await.unwrap(), None);
    assert!(db.session_denials(0).await.unwrap().is_empty(), "the store was not opened to deny sessions");
}
