//! The users Cone creates, on both backends. IAM users for IAM-group grants: the IAM group is an entitlement of its
//! account, a user is recorded once and reused, its deletion waits until no grant needs it (or never, when kept),
//! and someone who leaves loses it at once, a kept one included. Identity Center users for people who sign in with
//! a password: made for their first grant, which is then made for it, left alone by syncs, deleted after the last.

use cone_core::account::{AccountKind, AccountState};
use cone_core::job::JobKind;

use super::{file_task, production_admin, user};
use crate::store::testing;
use crate::store::*;

testing::on_both_backends!(
    an_iam_user_is_made_once_and_deleted_after_the_last_grant_that_needs_it,
    a_kept_iam_user_is_deleted_at_once_when_its_person_leaves,
    a_disabled_iam_user_stays_and_is_deleted_when_its_person_leaves,
    a_password_persons_identity_center_user_is_made_for_their_grants_and_deleted_after_the_last,
);

const DEPLOYERS: &str = "iam-group|111|deployers";

/// alice, and the IAM group `deployers` in Production (111) as an entitlement.
async fn synced(db: &Db, users: Vec<cone_aws::User>, now: i64) {
    db.apply_snapshot("aws", &production_admin(users), now).await.unwrap();
    let group = cone_aws::IamGroup {
        arn: "arn:aws:iam::111:group/deployers".into(),
        id: "AGPADEPLOY".into(),
        name: "deployers".into(),
        created: rfc3339(0),
    };
    let iam = cone_aws::IamSnapshot { groups: vec![group], ..Default::default() };
    db.apply_iam_snapshot("aws", &iam, now).await.unwrap();
}

/// Provisions a new grant of `deployers` for `u` at `now` as the job would, creating the IAM user when asked to.
async fn granted(db: &Db, u: &UserRow, now: i64) -> GrantRow {
    file_task(db, u, DEPLOYERS, Placement::Provision, now).await;
    let job = db.claim_job(now, 60).await.unwrap().unwrap();
    let g = db.grant(job.grant_id.unwrap()).await.unwrap();
    match db.account_needed(&g, true, "/cone/", now).await.unwrap() {
        AccountNeed::Create(a) => db.account_created(&a, None, true, now).await.unwrap(),
        AccountNeed::Use(name) => assert_eq!(name, "alice"),
        AccountNeed::Wait | AccountNeed::NotAllowed => panic!("the account can be made"),
    }
    db.provisioned(&job, &g, now).await.unwrap();
    g
}

/// Ends grant `g` at `now` as its revoke job would, with `after` as the deletion delay.
async fn ended(db: &Db, g: &GrantRow, after: Option<i64>, now: i64) {
    let job = db.claim_job(now, 60).await.unwrap().unwrap();
    assert_eq!((job.kind, job.grant_id), (JobKind::Revoke, Some(g.id)));
    db.revoked(&job, g, false, after, now).await.unwrap();
}

async fn an_iam_user_is_made_once_and_deleted_after_the_last_grant_that_needs_it(db: Db) {
    synced(&db, vec![user("u-alice", "alice")], 1).await;
    let e = db.entitlement("aws", DEPLOYERS).await.unwrap().unwrap();
    assert_eq!(
        (e.alias.as_str(), e.account_name.as_str(), e.kind.as_str()),
        ("production-iam-deployers", "Production", cone_api::KIND_AWS_IAM_GROUP_MEMBERSHIP)
    );
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    let first = granted(&db, &alice, 2).await;
    assert_eq!(db.created_account(alice.id, "111").await.unwrap().unwrap().state, AccountState::Active);

    // The first grant's end queues the deletion 600 s later; a second grant meanwhile uses the same user, and the
    // deletion then finds it needed and does nothing.
    db.expire_due_grants(3602).await.unwrap();
    ended(&db, &first, Some(600), 3602).await;
    let second = granted(&db, &alice, 3603).await;
    let job = db.claim_job(4202, 60).await.unwrap().unwrap();
    assert_eq!((job.kind, job.grant_id), (JobKind::Deprovision, Some(first.id)));
    assert!(
        db.account_unneeded(&job, &first, AccountKind::IamUser, true, 4202).await.unwrap().is_none(),
        "the second grant needs it"
    );
    assert!(db.claim_job(4300, 60).await.unwrap().is_none(), "the job is done");
    assert_eq!(db.created_account(alice.id, "111").await.unwrap().unwrap().state, AccountState::Active);

    // The last grant's end queues the deletion 600 s later; it runs once.
    db.expire_due_grants(3603 + 3600).await.unwrap();
    ended(&db, &second, Some(600), 7203).await;
    assert!(db.claim_job(7203 + 599, 60).await.unwrap().is_none(), "not before its time");
    let job = db.claim_job(7203 + 600, 60).await.unwrap().unwrap();
    assert_eq!(job.kind, JobKind::Deprovision);
    let account = db
        .account_unneeded(&job, &second, AccountKind::IamUser, true, 7803)
        .await
        .unwrap()
        .expect("nothing needs the user");
    assert_eq!(account.user_name, "alice");
    // Meanwhile a new grant waits for the deletion.
    file_task(&db, &alice, DEPLOYERS, Placement::Provision, 7804).await;
    let newest: i64 = sqlx::query_scalar("SELECT MAX(id) FROM grants").fetch_one(&db.pool).await.unwrap();
    let g = db.grant(newest).await.unwrap();
    assert!(matches!(db.account_needed(&g, true, "/cone/", 7804).await.unwrap(), AccountNeed::Wait));
    db.account_removed(&job, &account, true, 7805).await.unwrap();
    // And then makes the user afresh.
    assert!(matches!(db.account_needed(&g, true, "/cone/", 7806).await.unwrap(), AccountNeed::Create(_)));
    let filter = AuditFilter { action: Some("account.*".into()), ..AuditFilter::default() };
    let audit = db.audit_entries(&filter, 100).await.unwrap();
    let actions: Vec<&str> = audit.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(actions, ["account.create", "account.delete"]);
}

async fn a_kept_iam_user_is_deleted_at_once_when_its_person_leaves(db: Db) {
    synced(&db, vec![user("u-alice", "alice"), user("u-bob", "bob")], 1).await;
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    let g = granted(&db, &alice, 2).await;
    db.expire_due_grants(3602).await.unwrap();
    ended(&db, &g, None, 3602).await;
    assert!(db.claim_job(1_000_000, 60).await.unwrap().is_none(), "kept: no deletion");
    // Without a grant that could end now, the sync's pass after alice leaves queues the deletion.
    synced(&db, vec![user("u-bob", "bob")], 4000).await;
    let job = db.claim_job(4000, 60).await.unwrap().unwrap();
    assert_eq!((job.kind, job.grant_id), (JobKind::Deprovision, Some(g.id)));
    db.end_leavers_grants(4001).await.unwrap();
    let again: i64 =
        sqlx::query_scalar("SELECT COUNT(*) FROM jobs WHERE kind = 'deprovision'").fetch_one(&db.pool).await.unwrap();
    assert_eq!(again, 1, "queued once");
    // Without the setting, a person with no IAM user of Cone's gets none.
    let bob = db.user_by_name("bob").await.unwrap().unwrap();
    file_task(&db, &bob, DEPLOYERS, Placement::Provision, 4002).await;
    let job = db.claim_job(4002, 60).await.unwrap().unwrap();
    let g = db.grant(job.grant_id.unwrap()).await.unwrap();
    assert!(matches!(db.account_needed(&g, false, "/cone/", 4002).await.unwrap(), AccountNeed::NotAllowed));
    assert!(db.created_account(bob.id, "111").await.unwrap().is_none());
}

async fn a_disabled_iam_user_stays_and_is_deleted_when_its_person_leaves(db: Db) {
    synced(&db, vec![user("u-alice", "alice"), user("u-bob", "bob")], 1).await;
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    let g = granted(&db, &alice, 2).await;
    db.expire_due_grants(3602).await.unwrap();
    ended(&db, &g, Some(0), 3602).await;
    let job = db.claim_job(3602, 60).await.unwrap().unwrap();
    assert_eq!(job.kind, JobKind::Deprovision);
    let a = db.account_unneeded(&job, &g, AccountKind::IamUser, false, 3602).await.unwrap().expect("to disable");
    assert_eq!(a.state, AccountState::Active, "disabled, not deleted");
    db.account_kept(&job, &a, Some(true), 3603).await.unwrap();
    assert!(db.claim_job(1_000_000, 60).await.unwrap().is_none(), "the job is done");
    assert_eq!(db.created_account(alice.id, "111").await.unwrap().unwrap().state, AccountState::Active);
    // When alice leaves, her user is deleted whatever the setting.
    synced(&db, vec![user("u-bob", "bob")], 4000).await;
    let job = db.claim_job(4000, 60).await.unwrap().unwrap();
    let a = db.account_unneeded(&job, &g, AccountKind::IamUser, false, 4000).await.unwrap().expect("to delete");
    assert_eq!(a.state, AccountState::Deleting);
    let filter = AuditFilter { action: Some("account.*".into()), ..AuditFilter::default() };
    let actions: Vec<String> = db.audit_entries(&filter, 100).await.unwrap().into_iter().map(|e| e.action).collect();
    assert_eq!(actions, ["account.create", "account.disable"]);
}

async fn a_password_persons_identity_center_user_is_made_for_their_grants_and_deleted_after_the_last(db: Db) {
    let people = || vec![user("u-alice", "alice")];
    synced(&db, people(), 1).await;
    db.set_password("dave", "hash").await.unwrap();
    let dave = || async { db.user_by_name("dave").await.unwrap().unwrap() };
    file_task(&db, &dave().await, "111|ps-admin", Placement::Provision, 2).await;
    let job = db.claim_job(2, 60).await.unwrap().unwrap();
    let g = db.grant(job.grant_id.unwrap()).await.unwrap();
    assert_eq!(g.principal_id, "", "filed before Identity Center knows dave");
    assert!(matches!(db.identity_needed(&g, false, 2).await.unwrap(), Some(AccountNeed::NotAllowed)));

    // Recorded before AWS is asked; AWS's id becomes dave's and the grant's.
    let Some(AccountNeed::Create(a)) = db.identity_needed(&g, true, 2).await.unwrap() else { panic!("to create") };
    assert_eq!((a.kind, a.account_id.as_str(), a.user_name.as_str()), (AccountKind::IdcUser, "", "dave"));
    db.account_created(&a, Some("u-dave"), true, 3).await.unwrap();
    let g = db.grant(g.id).await.unwrap();
    assert_eq!((g.principal_id.as_str(), dave().await.idc_user_id.as_deref()), ("u-dave", Some("u-dave")));
    assert!(matches!(db.identity_needed(&g, true, 3).await.unwrap(), Some(AccountNeed::Use(id)) if id == "u-dave"));
    db.provisioned(&job, &g, 3).await.unwrap();
    // A person Identity Center knows by itself needs nothing made.
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    file_task(&db, &alice, "111|ps-admin", Placement::Provision, 4).await;
    let job = db.claim_job(4, 60).await.unwrap().unwrap();
    let alices = db.grant(job.grant_id.unwrap()).await.unwrap();
    assert!(db.identity_needed(&alices, true, 4).await.unwrap().is_none());

    // Syncs that list dave's user, or no longer do, leave dave as Cone made him: linked, not offboarded.
    for listed in [true, false] {
        let mut users = people();
        if listed {
            users.push(user("u-dave", "dave"));
        }
        synced(&db, users, 5).await;
        let d = dave().await;
        assert_eq!((d.idc_user_id.as_deref(), d.left_at), (Some("u-dave"), None), "listed: {listed}");
    }

    // The grant's end queues the deletion 600 s on; a grant meanwhile waits for it, and is then made for a new user.
    db.expire_due_grants(3603).await.unwrap();
    let revoke = loop {
        let job = db.claim_job(3603, 60).await.unwrap().unwrap();
        if job.grant_id == Some(g.id) {
            break job;
        }
    };
    db.revoked(&revoke, &g, false, Some(600), 3603).await.unwrap();
    let job = loop {
        let job = db.claim_job(4203, 60).await.unwrap().unwrap();
        if job.kind == JobKind::DeprovisionIdcUser {
            break job;
        }
    };
    assert_eq!(job.grant_id, Some(g.id));
    let gone =
        db.account_unneeded(&job, &g, AccountKind::IdcUser, true, 4203).await.unwrap().expect("nothing needs it");
    assert_eq!((gone.owner.as_str(), gone.state), ("u-dave", AccountState::Deleting));
    file_task(&db, &dave().await, "111|ps-admin", Placement::Provision, 4204).await;
    let newest: i64 = sqlx::query_scalar("SELECT MAX(id) FROM grants").fetch_one(&db.pool).await.unwrap();
    let next = db.grant(newest).await.unwrap();
    assert!(matches!(db.identity_needed(&next, true, 4204).await.unwrap(), Some(AccountNeed::Wait)));
    db.account_removed(&job, &gone, true, 4205).await.unwrap();
    assert_eq!(dave().await.idc_user_id, None, "dave signs in with a password only again");
    // A sync read before the deletion still lists the user: dave is not linked to it again.
    synced(&db, vec![user("u-alice", "alice"), user("u-dave", "dave")], 4206).await;
    assert_eq!(dave().await.idc_user_id, None);
    let Some(AccountNeed::Create(again)) = db.identity_needed(&next, true, 4207).await.unwrap() else {
        panic!("to create anew")
    };
    assert_eq!((again.owner.as_str(), again.state), ("", AccountState::Creating));
    let filter = AuditFilter { action: Some("account.*".into()), ..AuditFilter::default() };
    let audit = db.audit_entries(&filter, 100).await.unwrap();
    let details: Vec<(&str, serde_json::Value)> = audit
        .iter()
        .map(|e| (e.action.as_str(), serde_json::from_str::<serde_json::Value>(&e.detail).unwrap()["user_id"].clone()))
        .collect();
    assert_eq!(details, [("account.create", "u-dave".into()), ("account.delete", "u-dave".into())]);

    // Meanwhile someone made dave a user by hand: Cone's creation finds it not Cone's and records nothing; a sync
    // links dave to it, and his grants are made for it.
    db.account_not_created(&again).await.unwrap();
    synced(&db, vec![user("u-alice", "alice"), user("u-dave-2", "dave")], 4208).await;
    assert_eq!(dave().await.idc_user_id.as_deref(), Some("u-dave-2"));
    assert!(db.identity_needed(&next, true, 4209).await.unwrap().is_none());
    assert_eq!(db.grant(next.id).await.unwrap().principal_id, "u-dave-2");
}
