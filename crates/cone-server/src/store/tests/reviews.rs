//! Access reviews in the store, on both backends: the access in force leaves out what a grant explains, a campaign's
//! items and reviewers are written at once, nobody decides their own item, an item whose access a sync no longer
//! finds is gone, reviewers are told of a new campaign (and of an item given to them) and reminded once before it
//! is due, a revoked grant that is already ending is finished by its own revocation, and a revoked assignment waits
//! while a grant gives the same.

use cone_core::notify::{Channel, Kind};
use cone_core::review::{ItemEvent, ItemKind, ItemState};

use super::{file_task, production_admin, user};
use crate::store::testing;
use crate::store::*;

testing::on_both_backends!(
    a_campaign_snapshots_is_decided_goes_stale_and_reminds_its_reviewers,
    a_revoked_grant_already_ending_is_removed_by_its_own_revocation,
    a_revoked_assignment_waits_while_a_grant_gives_the_same_access,
    a_reviewers_words_find_items_by_any_of_their_names_in_any_case,
    iam_items_are_anyones_and_a_removal_by_hand_is_done_when_a_sync_no_longer_finds_it,
);

const ADMIN: &str = "111|ps-admin";

/// alice (with AdministratorAccess on Production assigned to her directly, when `assigned`) and bob, both with an
/// address.
async fn synced(db: &Db, assigned: bool, now: i64) {
    let mut snap = production_admin(users(["alice", "bob", "carol"]).into_iter().map(with_email).collect());
    if assigned {
        snap.assignments = vec![cone_aws::AssignmentRecord {
            account_id: "111".into(),
            permission_set_arn: "ps-admin".into(),
            principal: cone_aws::Principal::User("u-alice".into()),
        }];
    }
    db.apply_snapshot("aws", &snap, now).await.unwrap();
}

fn users<const N: usize>(names: [&str; N]) -> Vec<cone_aws::User> {
    names.iter().map(|n| user(&format!("u-{n}"), n)).collect()
}

fn with_email(mut u: cone_aws::User) -> cone_aws::User {
    u.email = Some(format!("{}@example.com", u.user_name));
    u
}

async fn a_campaign_snapshots_is_decided_goes_stale_and_reminds_its_reviewers(db: Db) {
    synced(&db, true, 10).await;
    let (access, _) = db.access_in_force(20).await.unwrap();
    let seen: Vec<(ItemKind, &str, &str)> =
        access.iter().map(|a| (a.kind, a.username.as_str(), a.entitlement_id.as_str())).collect();
    assert_eq!(seen, [(ItemKind::Assignment, "alice", ADMIN)]);
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    let bob = db.user_by_name("bob").await.unwrap().unwrap();
    let day = 86_400;
    let campaign = NewCampaign {
        name: "Q4",
        scope: "{}",
        reviewers: "{}",
        due_at: 20 + 7 * day,
        created_by: alice.id,
        template: Some(("quarterly", None)),
    };
    let items = access.into_iter().map(|a| NewItem { access: a, reaches: "x".into(), reviewers: vec![bob.id] });
    let id = db.create_campaign(&campaign, items.collect(), 20).await.unwrap().unwrap();
    assert_eq!(db.campaign(id).await.unwrap().unwrap().template.as_deref(), Some("quarterly"));
    let item = db.review_items(&ItemFilter::default(), 0, 10).await.unwrap().remove(0);

    // bob hears of it; alice, who opened it (and whose access it is), does not.
    let to = Audiences { channels: vec![Channel::Email], admin_users: vec![], admin_groups: vec![] };
    db.make_notifications(&to, 30).await.unwrap();
    let told = |all: Vec<crate::store::notifications::NotificationEntry>| -> Vec<(String, Kind)> {
        all.into_iter().map(|n| (n.username, n.kind)).collect()
    };
    assert_eq!(told(db.notifications(None, 0, 10).await.unwrap()), [("bob".to_string(), Kind::ReviewNeeded)]);

    // Nobody decides their own item; a reviewer's certification is audited and kept.
    assert_eq!(db.decide_item(item.id, alice.id, ItemEvent::Certify, None, 40).await.unwrap(), Err(Refusal::OwnAccess));
    assert_eq!(db.decide_item(item.id, bob.id, ItemEvent::Certify, None, 40).await.unwrap(), Ok(ItemState::Certified));
    let again = db.decide_item(item.id, bob.id, ItemEvent::Certify, None, 41).await.unwrap();
    assert_eq!(again, Err(Refusal::State(ItemState::Certified)));
    let decided = db.review_item(item.id).await.unwrap().unwrap();
    assert_eq!((decided.decided_by.as_deref(), decided.decision_hash.is_some()), (Some("bob"), true));

    // A day before it is due bob is reminded, once; with nothing left to decide, nobody is.
    let remind = day;
    assert_eq!(db.next_warning_due(60, remind, 50).await.unwrap(), Some(20 + 6 * day));
    synced(&db, true, 60).await;
    let first = ItemFilter { campaign: Some(id), ..ItemFilter::default() };
    assert_eq!(db.remind_reviewers(&to, remind, 20 + 6 * day).await.unwrap(), 0, "bob decided everything");
    let second = NewItem {
        access: db.access_in_force(70).await.unwrap().0.remove(0),
        reaches: "x".into(),
        reviewers: vec![bob.id],
    };
    // A scheduled opening that finds its template's campaign opened after the time it names opens none.
    let other =
        NewCampaign { name: "Q4 again", due_at: 20 + 7 * day, template: Some(("quarterly", Some(19))), ..campaign };
    assert_eq!(db.create_campaign(&other, vec![], 70).await.unwrap(), None);
    let other = NewCampaign { template: Some(("quarterly", Some(20))), ..other };
    let other_id = db.create_campaign(&other, vec![second], 70).await.unwrap().unwrap();
    assert_eq!(db.template_opened("quarterly").await.unwrap(), Some(70));
    assert_eq!(db.remind_reviewers(&to, remind, 20 + 6 * day).await.unwrap(), 1);
    assert_eq!(db.remind_reviewers(&to, remind, 20 + 6 * day + 60).await.unwrap(), 0, "once");
    // Given to carol, the item waits for her, and she hears of it once; bob hears nothing more.
    let carol = db.user_by_name("carol").await.unwrap().unwrap();
    let again = ItemFilter { campaign: Some(other_id), ..ItemFilter::default() };
    let moved = db.review_items(&again, 0, 10).await.unwrap().remove(0);
    db.make_notifications(&to, 74).await.unwrap();
    let before = db.notifications(None, 0, 100).await.unwrap().len();
    assert_eq!(db.reassign_item(moved.id, carol.id, alice.id, 75).await.unwrap(), Ok(()));
    db.make_notifications(&to, 76).await.unwrap();
    db.make_notifications(&to, 77).await.unwrap();
    let all = told(db.notifications(None, 0, 100).await.unwrap());
    assert_eq!(all.len(), before + 1, "{all:?}");
    assert_eq!(all.iter().filter(|n| *n == &("carol".to_string(), Kind::ReviewNeeded)).count(), 1, "{all:?}");

    // Removed from AWS meanwhile: the certified item and the undecided one are gone at the next sync.
    synced(&db, false, 100).await;
    assert_eq!(db.review_items_gone(&ItemKind::ALL, 110).await.unwrap(), 2);
    let states: Vec<String> =
        db.review_items(&ItemFilter::default(), 0, 10).await.unwrap().into_iter().map(|i| i.state).collect();
    assert_eq!(states, ["gone", "gone"]);
    assert_eq!(db.review_items_gone(&ItemKind::ALL, 120).await.unwrap(), 0);
    assert_eq!(db.review_items(&first, 0, 10).await.unwrap().len(), 1);
    assert!(db.close_campaign(id, bob.id, 130).await.unwrap());
    assert!(!db.close_campaign(id, bob.id, 131).await.unwrap(), "closed once");
    let closed = db.decide_item(item.id, bob.id, ItemEvent::Revoke, Some("late"), 140).await.unwrap();
    assert_eq!(closed, Err(Refusal::Closed));
}

/// A campaign of everything in force at `now`, each item bob's to decide; returns its items.
async fn campaign_of_all(db: &Db, bob: &UserRow, now: i64) -> Vec<ItemRow> {
    let access = db.access_in_force(now).await.unwrap().0;
    let items = access.into_iter().map(|a| NewItem { access: a, reaches: "x".into(), reviewers: vec![bob.id] });
    let c = NewCampaign {
        name: "all",
        scope: "{}",
        reviewers: "{}",
        due_at: now + 86_400,
        created_by: bob.id,
        template: None,
    };
    let id = db.create_campaign(&c, items.collect(), now).await.unwrap().unwrap();
    db.review_items(&ItemFilter { campaign: Some(id), ..ItemFilter::default() }, 0, 10).await.unwrap()
}

/// alice's grant of AdministratorAccess, provisioned at `now`.
async fn granted(db: &Db, alice: &UserRow, now: i64) -> (i64, GrantRow) {
    let task = file_task(db, alice, ADMIN, Placement::Provision, now).await;
    let job = db.claim_job(now, 60).await.unwrap().unwrap();
    let g = db.grant(job.grant_id.unwrap()).await.unwrap();
    db.provisioned(&job, &g, now).await.unwrap();
    (task, g)
}

async fn a_revoked_grant_already_ending_is_removed_by_its_own_revocation(db: Db) {
    synced(&db, false, 10).await;
    let (alice, bob) =
        (db.user_by_name("alice").await.unwrap().unwrap(), db.user_by_name("bob").await.unwrap().unwrap());
    let (_, g) = granted(&db, &alice, 20).await;
    let item = campaign_of_all(&db, &bob, 30).await.remove(0);
    assert_eq!(item.kind, "grant");
    // alice gives it back; bob's revocation then waits for that removal rather than claiming it happened.
    db.drop_access(alice.id, "aws", ADMIN, 40).await.unwrap();
    assert_eq!(
        db.decide_item(item.id, bob.id, ItemEvent::Revoke, Some("gone"), 50).await.unwrap(),
        Ok(ItemState::Revoking)
    );
    assert_eq!(db.review_item(item.id).await.unwrap().unwrap().removal_hash, None);
    let revoke = db.claim_job(60, 60).await.unwrap().unwrap();
    db.revoked(&revoke, &g, false, None, 60).await.unwrap();
    let done = db.review_item(item.id).await.unwrap().unwrap();
    assert_eq!((done.state.as_str(), done.removal_hash.is_some()), ("revoked", true));
}

async fn a_revoked_assignment_waits_while_a_grant_gives_the_same_access(db: Db) {
    synced(&db, true, 10).await;
    let (alice, bob) =
        (db.user_by_name("alice").await.unwrap().unwrap(), db.user_by_name("bob").await.unwrap().unwrap());
    let item = campaign_of_all(&db, &bob, 20).await.remove(0);
    assert_eq!(item.kind, "assignment");
    // After the snapshot alice is granted the same permission set: her standing assignment now serves that grant.
    let (task, g) = granted(&db, &alice, 30).await;
    db.decide_item(item.id, bob.id, ItemEvent::Revoke, Some("standing"), 40).await.unwrap().unwrap();
    let removal = db.claim_job(50, 60).await.unwrap().unwrap();
    assert_eq!(removal.kind, cone_core::job::JobKind::ReviewRevoke);
    assert_eq!(db.review_access_granted(item.id).await.unwrap(), Some(task), "the removal waits");
    db.retry_job(&removal, "a grant gives it", 400, 50).await.unwrap();
    db.withdraw_grant(task, bob.id, "done", 60).await.unwrap();
    let revoke = db.claim_job(60, 60).await.unwrap().unwrap();
    assert_eq!(revoke.grant_id, Some(g.id));
    db.revoked(&revoke, &g, false, None, 61).await.unwrap();
    assert_eq!(db.review_access_granted(item.id).await.unwrap(), None, "the grant ended; the removal may go ahead");
    assert_eq!(db.claim_job(400, 60).await.unwrap().unwrap().id, removal.id);
}

async fn a_reviewers_words_find_items_by_any_of_their_names_in_any_case(db: Db) {
    synced(&db, true, 10).await;
    let bob = db.user_by_name("bob").await.unwrap().unwrap();
    let alices = db.access_in_force(20).await.unwrap().0.remove(0);
    let named = |account: &str, set: &str| {
        let access = AccessRow { account_name: account.into(), permission_set_name: set.into(), ..alices.clone() };
        NewItem { access, reaches: "x".into(), reviewers: vec![bob.id] }
    };
    let items = vec![
        named("acct-0150", "ps-07"),
        named("acct-0151", "ps-07"),
        named("50%_off*[x]", "Billing"),
        named("Other", "ps-17"),
    ];
    let c = NewCampaign { name: "words", scope: "{}", reviewers: "{}", due_at: 99, created_by: bob.id, template: None };
    let id = db.create_campaign(&c, items, 30).await.unwrap().unwrap();
    let found = async |q: &str| -> Vec<String> {
        let words = q.split_whitespace().map(str::to_string).collect();
        let filter = ItemFilter { campaign: Some(id), reviewer: Some(bob.id), words, ..ItemFilter::default() };
        let items = db.review_items(&filter, 0, 100).await.unwrap();
        items.into_iter().map(|i| format!("{} {}", i.account_name, i.permission_set_name)).collect()
    };
    assert_eq!(found("ACCT-0150").await, ["acct-0150 ps-07"]);
    assert_eq!(found("acct ps-07").await, ["acct-0150 ps-07", "acct-0151 ps-07"]);
    assert_eq!(found("0150 ALICE").await, ["acct-0150 ps-07"], "the person's name too");
    // Wildcards of either backend's patterns are plain characters in a word.
    assert_eq!(found("%_off*[x]").await, ["50%_off*[x] Billing"]);
    assert_eq!(found("0%").await, ["50%_off*[x] Billing"]);
    assert_eq!(found("*").await, ["50%_off*[x] Billing"]);
    // Words shorter than the index's trigrams are found too.
    assert_eq!(found("7").await, ["acct-0150 ps-07", "acct-0151 ps-07", "Other ps-17"]);
    assert!(found("nobody").await.is_empty());
    // An index query's own syntax is plain text too.
    assert!(found("\"acct OR ps\" NEAR(").await.is_empty());
}

/// IAM users `alice` (alice's, by name) and `ci-bot` (nobody's) in Production, both in IAM group `admins`, with
/// ci-bot's access key `AKIABOT` active (`bot_key`) or not, and alice's `AKIAOLD` inactive; `skipped`: Production's
/// IAM could not be read, and nothing of it is stored.
async fn iam(db: &Db, bot_key: &str, in_group: bool, skipped: bool, now: i64) {
    let arn = |kind: &str, name: &str| format!("arn:aws:iam::111:{kind}/{name}");
    let t = |at: i64| chrono::DateTime::from_timestamp(at, 0).unwrap().to_rfc3339();
    let user = |name: &str, used: Option<i64>| cone_aws::IamUser {
        arn: arn("user", name),
        id: format!("AIDA{name}"),
        name: name.into(),
        created: t(1),
        password_last_used: used.map(t),
    };
    let key = |id: &str, owner: &str, status: &str, used: Option<i64>| cone_aws::AccessKey {
        id: id.into(),
        user_arn: arn("user", owner),
        status: status.into(),
        created: t(1),
        last_used: used.map(t),
        last_used_service: None,
        last_used_region: None,
    };
    let group =
        cone_aws::IamGroup { arn: arn("group", "admins"), id: "AGPA".into(), name: "admins".into(), created: t(1) };
    let mut members = vec![(arn("group", "admins"), arn("user", "alice"))];
    if in_group {
        members.push((arn("group", "admins"), arn("user", "ci-bot")));
    }
    let snap = match skipped {
        true => cone_aws::IamSnapshot {
            skipped: vec![cone_aws::SkippedAccount { account_id: "111".into(), reason: "denied".into() }],
            ..Default::default()
        },
        false => cone_aws::IamSnapshot {
            users: vec![user("alice", None), user("ci-bot", Some(5))],
            groups: vec![group],
            group_members: members,
            access_keys: vec![key("AKIABOT", "ci-bot", bot_key, Some(7)), key("AKIAOLD", "alice", "Inactive", None)],
            ..Default::default()
        },
    };
    db.apply_iam_snapshot("aws", &snap, now).await.unwrap();
}

async fn iam_items_are_anyones_and_a_removal_by_hand_is_done_when_a_sync_no_longer_finds_it(db: Db) {
    synced(&db, false, 10).await;
    iam(&db, "Active", true, false, 10).await;
    let (alice, bob) =
        (db.user_by_name("alice").await.unwrap().unwrap(), db.user_by_name("bob").await.unwrap().unwrap());
    let (access, _) = db.access_in_force(20).await.unwrap();
    let seen: Vec<(ItemKind, &str, &str, &str, Option<i64>)> = access
        .iter()
        .map(|a| (a.kind, a.username.as_str(), a.group_name.as_str(), a.access_key_id.as_str(), a.last_used_at))
        .collect();
    use ItemKind::*;
    assert_eq!(
        seen,
        [
            (AccessKey, "", "", "AKIABOT", Some(7)),
            (IamGroupMembership, "", "admins", "", None),
            (IamUser, "", "", "", Some(5)),
            (IamGroupMembership, "alice", "admins", "", None),
            (IamUser, "alice", "", "", None),
        ],
        "the inactive key is no access"
    );
    assert_eq!(access[0].user_id, None);
    assert_eq!(access[4].user_id, Some(alice.id));
    let items = campaign_of_all(&db, &bob, 30).await;
    let item = |kind: ItemKind, user: &str| {
        items.iter().find(|i| i.kind == kind.as_str() && i.username == user).map(|i| i.id).unwrap()
    };
    let (key, bot_member, bot, alices) =
        (item(AccessKey, ""), item(IamGroupMembership, ""), item(IamUser, ""), item(IamUser, "alice"));
    // Found by the IAM user's name and the key's id.
    let words = |w: &str| ItemFilter { words: vec![w.into()], ..ItemFilter::default() };
    assert_eq!(db.review_items(&words("ci-bot"), 0, 10).await.unwrap().len(), 3);
    assert_eq!(db.review_items(&words("akiabot"), 0, 10).await.unwrap().remove(0).id, key);

    // alice may not certify her IAM user; an IAM user that is nobody's can be decided by its reviewer.
    assert_eq!(db.decide_item(alices, alice.id, ItemEvent::Certify, None, 40).await.unwrap(), Err(Refusal::OwnAccess));
    assert_eq!(db.decide_item(bot, bob.id, ItemEvent::Certify, None, 40).await.unwrap(), Ok(ItemState::Certified));
    // The key's revocation is left to someone by hand: it stays revoking while the key is active.
    db.decide_item(key, bob.id, ItemEvent::Revoke, Some("unused"), 40).await.unwrap().unwrap();
    let job = db.claim_job(41, 60).await.unwrap().unwrap();
    let target = db.review_target(key).await.unwrap();
    assert_eq!((target.kind, target.access_key_id.as_str()), (AccessKey, "AKIABOT"));
    assert_eq!(target.iam_user_arn, "arn:aws:iam::111:user/ci-bot");
    db.review_by_hand(&job, key, "deactivate it", 42).await.unwrap();
    // Administrators are told what to remove; the reviewers and the key's holder are not.
    let to = Audiences { channels: vec![Channel::Email], admin_users: vec!["carol".into()], admin_groups: vec![] };
    db.make_notifications(&to, 43).await.unwrap();
    let by_hand: Vec<String> = db
        .notifications(None, 0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|n| n.kind == Kind::RemovalByHand)
        .map(|n| n.username)
        .collect();
    assert_eq!(by_hand, ["carol"]);
    assert_eq!(db.claim_job(43, 60).await.unwrap().map(|j| j.id), None, "the job is done");
    let all = [IamUser, IamGroupMembership, AccessKey];
    assert_eq!(db.review_items_gone(&all, 50).await.unwrap(), 0);
    let waiting = db.review_item(key).await.unwrap().unwrap();
    assert_eq!((waiting.state.as_str(), waiting.by_hand.as_deref()), ("revoking", Some("deactivate it")));

    // An account the IAM sync could not read keeps its items as they were.
    iam(&db, "Active", true, true, 55).await;
    assert_eq!(db.review_items_gone(&all, 56).await.unwrap(), 0);
    // Deactivated by hand, and ci-bot out of admins: the revocation is done, the membership gone.
    iam(&db, "Inactive", false, false, 60).await;
    assert_eq!(db.review_items_gone(&[IamUser], 61).await.unwrap(), 0, "only the kinds asked for");
    assert_eq!(db.review_items_gone(&all, 62).await.unwrap(), 2);
    let done = db.review_item(key).await.unwrap().unwrap();
    assert_eq!((done.state.as_str(), done.removal_hash.is_some()), ("revoked", true));
    assert_eq!(db.review_item(bot_member).await.unwrap().unwrap().state, "gone");
    assert_eq!(db.review_item(bot).await.unwrap().unwrap().state, "certified");
}
