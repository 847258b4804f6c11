//! User access reviews end to end on SQLite and on PostgreSQL, against moto: a campaign over Production snapshots a
//! standing assignment made by hand in Identity Center, a membership of a group assigned there and Cone grants;
//! nobody decides their own access; the revoked assignment, membership and grant are removed from moto while the
//! certified grant stays; an assignment removed by hand meanwhile is marked gone; the report lists every item with its outcome, and its hashes are the audit log's.
//! Templates in the access document open campaigns on their schedule, after a sync, and by hand.
//! With the IAM sync, IAM users, their group memberships and access keys are reviewed too: the connector removes a
//! membership and deactivates a key of a user under Cone's path; a key it may not touch is left to someone by hand,
//! and the sync that finds it inactive completes the revocation.

use std::collections::HashSet;
use std::time::Duration;

use aws_sdk_ssoadmin::types::PrincipalType;
use cone_api::{CreateTask, ReviewDecide, ReviewDecision, ReviewItem, ReviewItemKind, ReviewItemState, TaskState};
use cone_client::Failure;
use cone_testkit::console::Console;
use cone_testkit::{Sandbox, Store, moto_sdk_config, password};

use super::groups::{assign_to, group_with};
use super::iam::member_iam;
use super::people::sync;
use super::{assert_audit_intact, eventually};

cone_testkit::on_both_stores!(
    a_review_certifies_and_revokes_for_real_and_its_report_is_the_audit_logs,
    templates_open_campaigns_by_hand_and_on_their_schedule,
    iam_items_are_revoked_by_the_connector_or_by_hand_as_its_policy_allows,
);

/// carol manages alice and bob.
const SETTINGS: &str =
    "identities:\n  users:\n    - { name: alice, manager: carol }\n    - { name: bob, manager: carol }\n";

/// carol opens campaign `name` over Production, due in 7 days, reviewed by each person's manager with bob as the
/// fallback, narrowed by `more` arguments.
fn open_campaign(sb: &Sandbox, name: &str, more: &[&str]) -> cone_api::ReviewCampaign {
    let args = ["review", "campaign", "create", name, "--account", "production", "--due", "7d", "--reviewers"];
    let args = [&args[..], &["manager", "--fallback", "bob", "-o", "json"], more].concat();
    serde_json::from_str(&ok(&sb.cone("carol", &args).unwrap(), "campaign create")).unwrap()
}

/// The audit log as `cone-server export-audit` writes it.
fn exported_audit(sb: &Sandbox) -> Vec<serde_json::Value> {
    let export = std::process::Command::new(cone_testkit::target_bin("cone-server").unwrap())
        .args(["export-audit", "--config"])
        .arg(sb.dir.join("cone-server.yaml"))
        .output()
        .unwrap();
    ok(&export, "export-audit").lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

fn ok(o: &std::process::Output, what: &str) -> String {
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{what} failed\nstdout: {out}\nstderr: {err}");
    out.into_owned()
}

async fn a_review_certifies_and_revokes_for_real_and_its_report_is_the_audit_logs(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::start_on(store, dir.path(), SETTINGS, "").await.unwrap();
    let (alice, bob) = (sb.org.user_id("alice").unwrap().to_string(), sb.org.user_id("bob").unwrap().to_string());
    // By hand in Identity Center: alice's standing ReadOnlyAccess, and her membership of a group assigned
    // DatabaseAdministrator, both on Production.
    assign_to(&sb, "Production", "ReadOnlyAccess", PrincipalType::User, &alice).await;
    // And AdministratorAccess, which someone removes by hand while the review is open.
    assign_to(&sb, "Production", "AdministratorAccess", PrincipalType::User, &alice).await;
    let dba = group_with(&sb, "dba-prod", &["alice"]).await;
    assign_to(&sb, "Production", "DatabaseAdministrator", PrincipalType::Group, &dba).await;
    // A restarted server syncs before it reports ready.
    sb.start_server().unwrap();
    for user in ["alice", "bob", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let client = |user: &str| sb.client(user).unwrap();

    // bob's two grants on Production, each accepted by its policy.
    let production = sb.org.account_id("Production").unwrap();
    let request = |set: &str| CreateTask {
        app_id: "aws".into(),
        entitlement_id: format!("{production}|{}", sb.org.permission_set_arn(set).unwrap()),
        duration_secs: Some(3600),
        form_data: match set {
            "DatabaseAdministrator" => [("ticket".to_string(), serde_json::json!("OPS-1"))].into(),
            _ => Default::default(),
        },
        ..CreateTask::default()
    };
    let readonly = client("bob").create_task(&request("ReadOnlyAccess")).await.unwrap().id;
    let database = client("bob").create_task(&request("DatabaseAdministrator")).await.unwrap().id;
    eventually(Duration::from_secs(60), "bob's grants are active", async || {
        let mut granted = true;
        for id in [readonly, database] {
            granted &= client("bob").task(id, None, Duration::ZERO).await.unwrap().state == TaskState::Granted;
        }
        granted
    })
    .await;

    // carol (an administrator) opens a campaign over Production, reviewed by each person's manager.
    let campaign = open_campaign(&sb, "Production, Q4", &[]);
    assert_eq!((campaign.items, campaign.pending, campaign.state.as_str()), (5, 5, "open"), "{campaign:?}");
    let items = client("carol").review_items(&[("campaign", &campaign.id.to_string())]).await.unwrap();
    let seen: Vec<(&str, ReviewItemKind, &str)> =
        items.iter().map(|i| (i.user.as_str(), i.kind, i.reaches.as_str())).collect();
    assert_eq!(
        seen,
        [
            ("alice", ReviewItemKind::Assignment, "AdministratorAccess on Production"),
            ("alice", ReviewItemKind::Assignment, "ReadOnlyAccess on Production"),
            ("alice", ReviewItemKind::GroupMembership, "membership of dba-prod: DatabaseAdministrator on Production"),
            ("bob", ReviewItemKind::Grant, "DatabaseAdministrator on Production"),
            ("bob", ReviewItemKind::Grant, "ReadOnlyAccess on Production"),
        ]
    );
    assert!(items.iter().all(|i| i.reviewers == ["carol"] && i.state == ReviewItemState::Pending), "{items:?}");
    let item = |user: &str, reaches: &str| -> ReviewItem {
        items.iter().find(|i| i.user == user && i.reaches.starts_with(reaches)).unwrap().clone()
    };
    let (standing, membership) = (item("alice", "ReadOnly"), item("alice", "membership"));
    // Words find an item among all (`_` is no wildcard), and by entitlement orders by account and permission set.
    let found = client("carol").review_items(&[("q", "DBA-prod anders"), ("state", "pending")]).await.unwrap();
    assert_eq!(found.iter().map(|i| i.id).collect::<Vec<_>>(), [membership.id]);
    assert!(client("carol").review_items(&[("q", "alice_")]).await.unwrap().is_empty());
    let by_entitlement = client("carol").review_items(&[("by", "entitlement")]).await.unwrap();
    let sets: Vec<&str> = by_entitlement.iter().map(|i| i.permission_set.as_str()).collect();
    assert_eq!(sets, ["", "AdministratorAccess", "DatabaseAdministrator", "ReadOnlyAccess", "ReadOnlyAccess"]);
    let (bob_readonly, bob_database) = (item("bob", "ReadOnly"), item("bob", "Database"));
    assert_eq!(bob_readonly.task_id, Some(readonly));

    // Nobody reviews their own access: not even when an administrator tries to give it to them.
    let reassign = client("carol").reassign_review(standing.id, "alice").await;
    assert!(
        matches!(&reassign, Err(Failure::Api { status: 400, error }) if error.message.contains("alice's own access")),
        "{reassign:?}"
    );
    client("carol").reassign_review(bob_readonly.id, "alice").await.unwrap();
    let decide = |items: Vec<i64>, decision, comment: Option<&str>| ReviewDecide {
        items,
        decision,
        comment: comment.map(str::to_string),
    };
    let own = client("alice").decide_review(&decide(vec![standing.id], ReviewDecision::Certify, None)).await.unwrap();
    assert!(own.decided.is_empty() && own.refused[0].message.contains("your own access"), "{own:?}");
    let stranger =
        client("bob").decide_review(&decide(vec![membership.id], ReviewDecision::Certify, None)).await.unwrap();
    assert!(stranger.refused[0].message.contains("not a reviewer"), "{stranger:?}");
    let mine = ok(&sb.cone("alice", &["review", "list"]).unwrap(), "alice's review list");
    assert!(
        mine.contains("bob") && mine.contains("ReadOnlyAccess on Production") && !mine.contains("dba-prod"),
        "{mine}"
    );
    ok(&sb.cone("alice", &["review", "certify", &bob_readonly.id.to_string()]).unwrap(), "alice certifies");

    // A revocation needs a reason; with one, carol revokes three items at once.
    let bare = client("carol").decide_review(&decide(vec![standing.id], ReviewDecision::Revoke, None)).await;
    assert!(matches!(&bare, Err(Failure::Api { status: 400, .. })), "{bare:?}");
    let ids = [standing.id, membership.id, bob_database.id].map(|i| i.to_string());
    let args = ["review", "revoke", &ids[0], &ids[1], &ids[2], "-c", "no longer needed"];
    let said = ok(&sb.cone("carol", &args).unwrap(), "carol revokes");
    assert_eq!(said.matches("Revoked (removal under way)").count(), 3, "{said}");
    eventually(Duration::from_secs(60), "the revoked access is removed", async || {
        let all = client("carol").review_items(&[("campaign", &campaign.id.to_string()), ("all", "true")]).await;
        all.unwrap().iter().filter(|i| i.state == ReviewItemState::Revoked).count() == 3
    })
    .await;

    // Gone from moto: alice's assignment and membership, bob's DatabaseAdministrator; the group keeps its
    // assignment, and bob's certified grant stays.
    assert!(!sb.assigned_principals("Production", "ReadOnlyAccess").await.unwrap().contains(&alice));
    assert!(sb.assigned_principals("Production", "ReadOnlyAccess").await.unwrap().contains(&bob));
    assert_eq!(sb.assigned_principals("Production", "DatabaseAdministrator").await.unwrap(), [dba.as_str()]);
    let ids_client = aws_sdk_identitystore::Client::new(&moto_sdk_config(&sb.moto.endpoint));
    let members =
        ids_client.list_group_memberships().identity_store_id(&sb.org.identity_store_id).group_id(&dba).send().await;
    assert!(members.unwrap().group_memberships.is_empty(), "alice's membership of dba-prod is removed");
    assert_eq!(client("bob").task(database, None, Duration::ZERO).await.unwrap().state, TaskState::Released);
    let revoked = client("carol").review_item(standing.id).await.unwrap();
    let removal = revoked.removal.unwrap();
    assert_eq!(removal.state, "done");
    assert!(removal.request_id.is_some_and(|r| !r.is_empty()), "the assignment's deletion request is named");
    let again = client("carol").decide_review(&decide(vec![standing.id], ReviewDecision::Certify, None)).await.unwrap();
    assert!(again.refused[0].message.contains("revoked already"), "{again:?}");

    // Access removed outside the review while it is open is marked as such at the next sync.
    let admin = item("alice", "AdministratorAccess");
    aws_sdk_ssoadmin::Client::new(&moto_sdk_config(&sb.moto.endpoint))
        .delete_account_assignment()
        .instance_arn(&sb.org.instance_arn)
        .target_id(production)
        .target_type(aws_sdk_ssoadmin::types::TargetType::AwsAccount)
        .permission_set_arn(sb.org.permission_set_arn("AdministratorAccess").unwrap())
        .principal_type(PrincipalType::User)
        .principal_id(&alice)
        .send()
        .await
        .unwrap();
    let carol = client("carol");
    let sync = carol.call::<serde_json::Value>(reqwest::Method::POST, "/api/v1/connectors/sync", None::<&()>);
    sync.await.unwrap();
    eventually(Duration::from_secs(60), "the item of the assignment removed by hand is gone", async || {
        client("carol").review_item(admin.id).await.unwrap().state == ReviewItemState::Gone
    })
    .await;

    // Closed, the report lists every item with its outcome; its hashes are those of the audit log.
    ok(&sb.cone("carol", &["review", "campaign", "close", &campaign.id.to_string()]).unwrap(), "close");
    let report_file = dir.path().join("report.jsonl");
    let args = ["review", "campaign", "report", &campaign.id.to_string(), "--format", "jsonl", "--file"];
    ok(&sb.cone("carol", &[&args[..], &[report_file.to_str().unwrap()]].concat()).unwrap(), "report");
    let lines: Vec<ReviewItem> =
        std::fs::read_to_string(&report_file).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let outcomes: HashSet<(&str, ReviewItemState, Option<&str>)> =
        lines.iter().map(|i| (i.user.as_str(), i.state, i.decided_by.as_deref())).collect();
    assert_eq!(
        outcomes,
        HashSet::from([
            ("alice", ReviewItemState::Revoked, Some("carol")),
            ("bob", ReviewItemState::Revoked, Some("carol")),
            ("bob", ReviewItemState::Certified, Some("alice")),
            ("alice", ReviewItemState::Gone, None),
        ])
    );
    assert_eq!(lines.len(), 5);
    let audit = exported_audit(&sb);
    let hashes: HashSet<&str> = audit.iter().map(|e| e["hash"].as_str().unwrap()).collect();
    for line in lines.iter().filter(|l| l.state != ReviewItemState::Gone) {
        assert!(hashes.contains(line.decision_audit_hash.as_deref().unwrap()), "{line:?}");
        if line.state == ReviewItemState::Revoked {
            assert!(hashes.contains(line.removal_audit_hash.as_deref().unwrap()), "{line:?}");
        }
    }
    let actions: HashSet<&str> = audit.iter().map(|e| e["action"].as_str().unwrap()).collect();
    let review_actions = [
        "review.campaign_create",
        "review.certify",
        "review.revoke",
        "review.removed",
        "review.gone",
        "review.campaign_close",
    ];
    for action in review_actions {
        assert!(actions.contains(action), "{action} in {actions:?}");
    }
    let csv = ok(&sb.cone("carol", &["review", "campaign", "report", &campaign.id.to_string()]).unwrap(), "csv");
    assert_eq!(csv.lines().count(), 6, "a header and five items: {csv}");
    assert!(csv.starts_with("campaign,campaign_state,item,kind,user,") && csv.contains("no longer needed"), "{csv}");
    assert_audit_intact(&sb);
}

/// Two templates: one every 90 days, one by hand. The sync after the server starts opens the scheduled one as the
/// schedule's service account; later syncs open no other until it is due; carol opens the other by name.
async fn templates_open_campaigns_by_hand_and_on_their_schedule(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let templates = "access_reviews:\n  - name: quarterly-production\n    scope: { accounts: [Production] }\n    \
                     reviewers: { from: manager, fallback: [bob] }\n    due_in: 14d\n    every: 90d\n  \
                     - name: owners-check\n    reviewers: { from: users, users: [carol], fallback: [bob] }\n    \
                     due_in: 7d\n";
    let mut sb = Sandbox::start_on(store, dir.path(), &format!("{SETTINGS}{templates}"), "").await.unwrap();
    let alice = sb.org.user_id("alice").unwrap().to_string();
    assign_to(&sb, "Production", "ReadOnlyAccess", PrincipalType::User, &alice).await;
    // A restarted server syncs before it reports ready: the scheduled review opens then.
    sb.start_server().unwrap();
    sb.cone_login("carol", &[], "carol").await.unwrap();
    let carol = sb.client("carol").unwrap();
    let scheduled = |list: &[cone_api::ReviewCampaign]| -> Vec<(String, Option<String>, String, i64)> {
        list.iter().map(|c| (c.name.clone(), c.template.clone(), c.created_by.clone(), c.items)).collect()
    };
    let today = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let opened = vec![(
        format!("quarterly-production {today}"),
        Some("quarterly-production".to_string()),
        "service:review-schedule".to_string(),
        1,
    )];
    eventually(Duration::from_secs(30), "the scheduled campaign opens", async || {
        scheduled(&carol.review_campaigns().await.unwrap()) == opened
    })
    .await;
    sync(&carol).await;
    assert_eq!(scheduled(&carol.review_campaigns().await.unwrap()), opened, "not due again for 90 days");

    let args = ["review", "campaign", "create", "--template", "owners-check", "-o", "json"];
    let by_hand: cone_api::ReviewCampaign =
        serde_json::from_str(&ok(&sb.cone("carol", &args).unwrap(), "campaign create --template")).unwrap();
    assert_eq!(
        (by_hand.template.as_deref(), by_hand.created_by.as_str(), by_hand.name),
        (Some("owners-check"), "carol", format!("owners-check {today}"))
    );
    let due = by_hand.due - by_hand.created_at;
    assert_eq!(due.num_days(), 7);
    let o = sb.cone("carol", &["review", "campaign", "create", "--template", "yearly"]).unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && said.contains("has quarterly-production, owners-check"), "{said}");

    // The API and the console list them with their schedules; the console opens one now.
    let listed: cone_api::ReviewTemplateList = carol.get("/api/v1/reviews/templates").await.unwrap();
    let [quarterly, owners] = &listed.templates[..] else { panic!("{listed:?}") };
    let last = quarterly.last_opened_at.expect("opened on schedule");
    assert_eq!(quarterly.next_at, Some(last + chrono::Duration::days(90)));
    assert_eq!((owners.every_secs, owners.next_at, owners.due_in_secs), (None, None, 7 * 86_400));
    let mut console = Console::sign_in(&sb.server_url, "carol", &password("carol")).await.unwrap();
    let (_, page) = console.open("/console/reviews/campaigns").await.unwrap();
    assert!(page.contains("quarterly-production") && page.contains("by hand"), "{page}");
    let pages = "/console/reviews/campaigns";
    console.submit(pages, "/console/reviews/templates/quarterly-production", &[]).await.unwrap();
    let all = carol.review_campaigns().await.unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!((all[0].template.as_deref(), all[0].created_by.as_str()), (Some("quarterly-production"), "carol"));
    assert_audit_intact(&sb);
}

/// In Production, by hand: IAM user alice (alice's, by name) in IAM group admins, with a key; ci-bot (nobody's) with a
/// key; deploy under Cone's path /cone/ (but not made by Cone) with a key.
async fn iam_items_are_revoked_by_the_connector_or_by_hand_as_its_policy_allows(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let settings = format!("  sync_iam: true\n  sync_secrets: true\n{SETTINGS}");
    let mut sb = Sandbox::start_on(store, dir.path(), &settings, "").await.unwrap();
    let iam = member_iam(&sb.moto.endpoint, sb.org.account_id("Production").unwrap()).await;
    iam.create_group().group_name("admins").send().await.unwrap();
    let mut keys = std::collections::HashMap::new();
    for (name, path) in [("alice", "/"), ("ci-bot", "/"), ("deploy", "/cone/")] {
        iam.create_user().user_name(name).path(path).send().await.unwrap();
        let key = iam.create_access_key().user_name(name).send().await.unwrap().access_key.unwrap();
        keys.insert(name, key.access_key_id);
    }
    iam.add_user_to_group().group_name("admins").user_name("alice").send().await.unwrap();
    sb.start_server().unwrap();
    for user in ["alice", "bob", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let client = |user: &str| sb.client(user).unwrap();

    let kinds = ["--kind", "iam_user,iam_group_membership,access_key"];
    let campaign = open_campaign(&sb, "IAM in Production", &kinds);
    let items = client("carol").review_items(&[("campaign", &campaign.id.to_string()), ("all", "true")]).await.unwrap();
    let seen: HashSet<(&str, &str, ReviewItemKind, &[String])> =
        items.iter().map(|i| (i.user.as_str(), i.iam_user.as_str(), i.kind, i.reviewers.as_slice())).collect();
    let (carol, bob) = (&["carol".to_string()][..], &["bob".to_string()][..]);
    assert_eq!(
        seen,
        HashSet::from([
            ("alice", "alice", ReviewItemKind::IamUser, carol),
            ("alice", "alice", ReviewItemKind::IamGroupMembership, carol),
            ("alice", "alice", ReviewItemKind::AccessKey, carol),
            ("", "ci-bot", ReviewItemKind::IamUser, bob),
            ("", "ci-bot", ReviewItemKind::AccessKey, bob),
            ("", "deploy", ReviewItemKind::IamUser, bob),
            ("", "deploy", ReviewItemKind::AccessKey, bob),
        ]),
        "{items:?}"
    );
    let item = |iam_user: &str, kind: ReviewItemKind| -> ReviewItem {
        items.iter().find(|i| i.iam_user == iam_user && i.kind == kind).unwrap().clone()
    };
    let (membership, bot_key, deploy_key) = (
        item("alice", ReviewItemKind::IamGroupMembership),
        item("ci-bot", ReviewItemKind::AccessKey),
        item("deploy", ReviewItemKind::AccessKey),
    );
    assert_eq!(bot_key.access_key_id, keys["ci-bot"]);
    assert_eq!(bot_key.reaches, format!("access key {} of IAM user ci-bot in Production", keys["ci-bot"]));

    // alice may not decide her own IAM items; carol revokes her membership, bob both keys.
    let decide = |items: Vec<i64>, decision| ReviewDecide { items, decision, comment: Some("not needed".into()) };
    let own = client("alice").decide_review(&decide(vec![membership.id], ReviewDecision::Certify)).await.unwrap();
    assert!(own.refused[0].message.contains("your own access"), "{own:?}");
    let alices_user = item("alice", ReviewItemKind::IamUser);
    ok(&sb.cone("carol", &["review", "certify", &alices_user.id.to_string()]).unwrap(), "carol certifies");
    let ids = [membership.id.to_string()];
    ok(&sb.cone("carol", &["review", "revoke", &ids[0], "-c", "left the team"]).unwrap(), "carol revokes");
    client("bob").decide_review(&decide(vec![bot_key.id, deploy_key.id], ReviewDecision::Revoke)).await.unwrap();

    // The connector removes the membership and deactivates deploy's key; ci-bot's key waits for someone by hand.
    eventually(Duration::from_secs(60), "the connector's removals are done", async || {
        let mut done = true;
        for id in [membership.id, deploy_key.id] {
            done &= client("carol").review_item(id).await.unwrap().state == ReviewItemState::Revoked;
        }
        done
    })
    .await;
    let groups = iam.list_groups_for_user().user_name("alice").send().await.unwrap();
    assert!(groups.groups().is_empty(), "alice is out of admins");
    let status = async |user: &str| {
        let listed = iam.list_access_keys().user_name(user).send().await.unwrap();
        listed.access_key_metadata()[0].status().unwrap().as_str().to_string()
    };
    assert_eq!(status("deploy").await, "Inactive");
    eventually(Duration::from_secs(30), "ci-bot's key is handed over", async || {
        client("bob").review_item(bot_key.id).await.unwrap().removal.is_some_and(|r| r.state == "by_hand")
    })
    .await;
    let waiting = client("bob").review_item(bot_key.id).await.unwrap();
    assert_eq!(waiting.state, ReviewItemState::Revoking);
    let what = waiting.removal.unwrap().by_hand.unwrap();
    let command = format!("aws iam update-access-key --user-name ci-bot --access-key-id {}", keys["ci-bot"]);
    assert!(what.contains(&command), "{what}");
    assert_eq!(status("ci-bot").await, "Active", "Cone did not touch it");
    let mut console = Console::sign_in(&sb.server_url, "bob", &password("bob")).await.unwrap();
    let (_, inbox) = console.open("/console/reviews?state=any").await.unwrap();
    assert!(inbox.contains("IAM user ci-bot") && inbox.contains("nobody in Cone"), "{inbox}");
    assert!(inbox.contains("to do by hand: In account"), "{inbox}");
    let shown = ok(&sb.cone("bob", &["review", "show", &bot_key.id.to_string()]).unwrap(), "review show");
    assert!(shown.contains("By hand") && shown.contains(&command), "{shown}");

    // Someone deactivates it; the next sync finds it so and completes the revocation.
    iam.update_access_key()
        .user_name("ci-bot")
        .access_key_id(&keys["ci-bot"])
        .status(aws_sdk_iam::types::StatusType::Inactive)
        .send()
        .await
        .unwrap();
    sync(&client("carol")).await;
    assert_eq!(client("bob").review_item(bot_key.id).await.unwrap().state, ReviewItemState::Revoked);

    // The report lists the removal by hand; its hashes are the audit log's.
    ok(&sb.cone("carol", &["review", "campaign", "close", &campaign.id.to_string()]).unwrap(), "close");
    let args = ["review", "campaign", "report", &campaign.id.to_string(), "--format", "jsonl"];
    let report = ok(&sb.cone("carol", &args).unwrap(), "report");
    let lines: Vec<ReviewItem> = report.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 7);
    let by_hand = lines.iter().find(|l| l.id == bot_key.id).unwrap();
    let removal = by_hand.removal.as_ref().unwrap();
    assert_eq!((removal.state.as_str(), by_hand.state), ("done", ReviewItemState::Revoked));
    assert!(removal.by_hand.as_ref().is_some_and(|w| w.contains(&command)), "{by_hand:?}");
    let audit = exported_audit(&sb);
    let hashes: HashSet<&str> = audit.iter().map(|e| e["hash"].as_str().unwrap()).collect();
    for line in lines.iter().filter(|l| l.state == ReviewItemState::Revoked) {
        assert!(hashes.contains(line.decision_audit_hash.as_deref().unwrap()), "{line:?}");
        assert!(hashes.contains(line.removal_audit_hash.as_deref().unwrap()), "{line:?}");
    }
    assert!(audit.iter().any(|e| e["action"] == "review.by_hand"), "the handover is audited");
    assert_audit_intact(&sb);
}
