//! Access held through an Identity Center group, end to end on SQLite and on PostgreSQL: moto assigns
//! AdministratorAccess in Production to a group alice is in; after a sync alice's listing says so, administrators
//! see her among the holders with the group as the source, a request from her is refused with the group named, and
//! `aws --profile production-administratoraccess` works through cone without a request. A user grant of the same
//! assignment that expires leaves the group's assignment in place. A membership of a group is requested like a
//! permission set, and taken back at its end unless it was there before. Needs `cargo build --workspace` and the .venv
//! that `cargo xtask test` prepares.

use std::time::{Duration, Instant};

use aws_sdk_identitystore::types::MemberId;
use aws_sdk_ssoadmin::types::{PrincipalType, TargetType};
use cone_api::{AuditPage, CreateTask, HolderPage};
use cone_client::{Failure, encode};
use cone_testkit::{Sandbox, Store, moto_sdk_config};
use reqwest::Method;

cone_testkit::on_both_stores!(
    access_through_a_group_needs_no_request_and_survives_a_grant,
    a_group_membership_is_requested_through_its_permission_set_and_taken_back,
);

/// Assigns `permission_set` in `account` to the group.
async fn assign_to_group(sb: &Sandbox, account: &str, permission_set: &str, group: &str) {
    assign_to(sb, account, permission_set, PrincipalType::Group, group).await
}

/// Assigns `permission_set` in `account` to a principal, by hand in moto, as an administrator would outside Cone.
pub(crate) async fn assign_to(sb: &Sandbox, account: &str, permission_set: &str, kind: PrincipalType, id: &str) {
    let sso = aws_sdk_ssoadmin::Client::new(&moto_sdk_config(&sb.moto.endpoint));
    sso.create_account_assignment()
        .instance_arn(&sb.org.instance_arn)
        .target_id(sb.org.account_id(account).unwrap())
        .target_type(TargetType::AwsAccount)
        .permission_set_arn(sb.org.permission_set_arn(permission_set).unwrap())
        .principal_type(kind)
        .principal_id(id)
        .send()
        .await
        .unwrap();
}

/// Adds `user` to a new identity-store group `name`; returns the group id.
pub(crate) async fn group_with(sb: &Sandbox, name: &str, users: &[&str]) -> String {
    let ids = aws_sdk_identitystore::Client::new(&moto_sdk_config(&sb.moto.endpoint));
    let store = &sb.org.identity_store_id;
    let group = ids.create_group().identity_store_id(store).display_name(name).send().await.unwrap().group_id;
    for user in users {
        let member = MemberId::UserId(sb.org.user_id(user).unwrap().to_string());
        ids.create_group_membership().identity_store_id(store).group_id(&group).member_id(member).send().await.unwrap();
    }
    group
}

async fn access_through_a_group_needs_no_request_and_survives_a_grant(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::start_on(store, dir.path(), "", "").await.unwrap();
    let (account, set) = ("Production", "AdministratorAccess");
    let platform = group_with(&sb, "platform", &["alice"]).await;
    // carol joins the approvers, so that bob's request below has someone to approve it.
    let ids = aws_sdk_identitystore::Client::new(&moto_sdk_config(&sb.moto.endpoint));
    let carol = MemberId::UserId(sb.org.user_id("carol").unwrap().to_string());
    let approvers = &sb.org.approvers_group_id;
    ids.create_group_membership()
        .identity_store_id(&sb.org.identity_store_id)
        .group_id(approvers)
        .member_id(carol)
        .send()
        .await
        .unwrap();
    assign_to_group(&sb, account, set, &platform).await;
    // A restarted server syncs before it reports ready.
    sb.start_server().unwrap();
    for user in ["bob", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    sb.sign_in("alice").await.unwrap();
    let client = |user: &str| sb.client(user).unwrap();
    let entitlement = format!("{}|{}", sb.org.account_id(account).unwrap(), sb.org.permission_set_arn(set).unwrap());

    // alice's listing says she holds it through the group; bob's does not.
    let listed = async |user: &str| {
        let all = client(user).entitlements(None).await.unwrap();
        all.into_iter().find(|e| e.id == entitlement).unwrap()
    };
    assert_eq!(listed("alice").await.held_through_groups, ["platform"]);
    assert_eq!(listed("bob").await.held_through_groups, Vec::<String>::new());

    // A request from her is refused, naming the group.
    let request = |duration: i64| CreateTask {
        app_id: "aws".into(),
        entitlement_id: entitlement.clone(),
        duration_secs: Some(duration),
        ..CreateTask::default()
    };
    let Err(Failure::Api { status, error: refused }) = client("alice").create_task(&request(3600)).await else {
        panic!("alice's request for access she holds through a group was not refused")
    };
    assert_eq!((status, refused.code.as_str()), (409, "held_through_group"), "{refused:?}");
    assert!(refused.message.contains("group \"platform\", so no request is needed"), "{refused:?}");

    // Through the AWS CLI and cone, without a request: the assignment is the group's.
    let o = sb.caller_identity("alice", "production-administratoraccess").unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("AWSReservedSSO_AdministratorAccess_"), "{out}");
    let o = sb.cone("alice", &["has", "production-administratoraccess"]).unwrap();
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && said.contains("through the Identity Center group \"platform\""), "{said}");
    let mine = client("alice").tasks("mine", "all").await.unwrap();
    assert!(mine.is_empty(), "no request was filed: {mine:?}");

    // bob gets a short grant of the same assignment; administrators see both holders and where each comes from.
    let task = client("bob").create_task(&request(5)).await.unwrap();
    client("carol").act(task.id, "approve", "").await.unwrap();
    let bob = sb.org.user_id("bob").unwrap().to_string();
    let principals = async || sb.assigned_principals(account, set).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !principals().await.contains(&bob) {
        assert!(Instant::now() < deadline, "bob's grant was not provisioned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let holders = format!("/api/v1/entitlement/holders?app_id=aws&entitlement_id={}", encode(&entitlement));
    let page: HolderPage = client("carol").get(&holders).await.unwrap();
    let seen: Vec<(&str, &str, Option<&str>, Option<i64>)> =
        page.holders.iter().map(|h| (h.username.as_str(), h.source.as_str(), h.group.as_deref(), h.task_id)).collect();
    assert_eq!(seen, [("alice", "group", Some("platform"), None), ("bob", "grant", None, Some(task.id))]);
    let refused = client("alice").get::<HolderPage>(&holders).await;
    assert!(matches!(refused, Err(Failure::Api { status: 403, .. })), "holders are for administrators");

    // bob's grant ends and its assignment goes; the group's stays.
    let deadline = Instant::now() + Duration::from_secs(60);
    while principals().await.contains(&bob) {
        assert!(Instant::now() < deadline, "bob's assignment outlived his grant");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(principals().await, [platform], "the group's assignment survives a user grant ending");
}

/// The group `dba-prod` is assigned DatabaseAdministrator on Production; only its membership is requestable, for
/// 40 s, with an approver. alice asks the AWS CLI for the permission set: cone files a request for the membership
/// instead and says it needs approval; bob approves; her next call works; her membership removed by hand is put
/// back by the drift sweep; at the end the membership goes and AWS refuses the role. carol was made a member by hand
/// while her own request waited: her membership stays.
async fn a_group_membership_is_requested_through_its_permission_set_and_taken_back(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let settings = "entitlement_management:\n  - match: { group: dba-prod }\n    requestable: true\n  - match: { permission_set: DatabaseAdministrator }\n    requestable: false\n  - requestable: true\n";
    let policy = "  - name: dba-prod-members\n    match: { group: dba-prod }\n    max_duration: 40s\n    steps: [{ approval: { group: approvers } }]\n";
    let mut sb = Sandbox::start_on(store, dir.path(), settings, policy).await.unwrap();
    let (account, set) = ("Production", "DatabaseAdministrator");
    let dba = group_with(&sb, "dba-prod", &[]).await;
    assign_to_group(&sb, account, set, &dba).await;
    sb.start_server().unwrap();
    sb.sign_in("alice").await.unwrap();
    for user in ["bob", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let client = |user: &str| sb.client(user).unwrap();
    let ids = aws_sdk_identitystore::Client::new(&moto_sdk_config(&sb.moto.endpoint));
    let members = async || {
        let out = ids.list_group_memberships().identity_store_id(&sb.org.identity_store_id).group_id(&dba).send().await;
        let mut users: Vec<String> = out
            .unwrap()
            .group_memberships()
            .iter()
            .filter_map(|m| match m.member_id() {
                Some(MemberId::UserId(id)) => Some(id.clone()),
                _ => None,
            })
            .collect();
        users.sort();
        users
    };
    let (alice, carol) = (sb.org.user_id("alice").unwrap().to_string(), sb.org.user_id("carol").unwrap().to_string());

    // The group is in the catalog beside the permission sets; its permission set is not requestable by itself.
    let membership = format!("group|{dba}");
    let listed = client("alice").entitlements(Some(cone_api::KIND_AWS_IDC_GROUP_MEMBERSHIP)).await.unwrap();
    let names: Vec<(&str, &str)> = listed.iter().map(|e| (e.alias.as_str(), e.id.as_str())).collect();
    assert!(names.contains(&("group-dba-prod", membership.as_str())), "{names:?}");

    let profile = "production-databaseadministrator";
    let o = sb.caller_identity("alice", profile).unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success(), "no access yet: {err}");
    assert!(err.contains("comes with membership of the Identity Center group \"dba-prod\""), "{err}");
    assert!(err.contains("requires approval"), "{err}");
    let asked = client("alice").tasks("mine", "all").await.unwrap();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(
        (asked[0].entitlement_id.as_str(), asked[0].entitlement_name.as_str()),
        (membership.as_str(), "membership of group dba-prod")
    );

    // carol asks too, and is made a member by hand before bob approves.
    let request = CreateTask { app_id: "aws".into(), entitlement_id: membership.clone(), ..CreateTask::default() };
    let carols = client("carol").create_task(&request).await.unwrap();
    ids.create_group_membership()
        .identity_store_id(&sb.org.identity_store_id)
        .group_id(&dba)
        .member_id(MemberId::UserId(carol.clone()))
        .send()
        .await
        .unwrap();
    for task in [asked[0].id, carols.id] {
        client("bob").act(task, "approve", "").await.unwrap();
    }

    let o = sb.caller_identity("alice", profile).unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("AWSReservedSSO_DatabaseAdministrator_"), "{out}");
    let mut both = vec![alice.clone(), carol.clone()];
    both.sort();
    assert_eq!(members().await, both);

    // alice's membership removed by hand is drift: the next sync's sweep puts it back and reports it.
    let store = &sb.org.identity_store_id;
    let hers = ids.list_group_memberships().identity_store_id(store).group_id(&dba).send().await.unwrap();
    let hers = hers.group_memberships().iter().find(|m| m.member_id() == Some(&MemberId::UserId(alice.clone())));
    let id = hers.map(|m| m.membership_id()).unwrap().to_string();
    ids.delete_group_membership().identity_store_id(store).membership_id(id).send().await.unwrap();
    client("carol").call::<serde_json::Value>(Method::POST, "/api/v1/connectors/sync", None::<&()>).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while !members().await.contains(&alice) {
        assert!(Instant::now() < deadline, "alice's membership was not restored");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let audit = client("carol").get::<AuditPage>("/api/v1/audit?action=drift.*").await.unwrap();
    let drift: Vec<(&str, &serde_json::Value)> =
        audit.entries.iter().map(|e| (e.action.as_str(), &e.detail["group"])).collect();
    assert!(drift.contains(&("drift.missing", &serde_json::json!("dba-prod"))), "{drift:?}");
    assert!(drift.iter().any(|(action, _)| *action == "drift.reprovision"), "{drift:?}");

    // Both grants end: alice's membership, which Cone made, goes; carol's, made by hand, stays.
    let deadline = Instant::now() + Duration::from_secs(90);
    while members().await.contains(&alice) {
        assert!(Instant::now() < deadline, "alice's membership outlived her grant");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let revoked = async || {
        let page = client("carol").get::<AuditPage>("/api/v1/audit?action=grant.revoke").await.unwrap();
        page.entries.iter().any(|e| e.subject == format!("task:{}", carols.id))
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    while !revoked().await {
        assert!(Instant::now() < deadline, "carol's grant did not end");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(members().await, [carol], "a membership Cone did not make survives its grant ending");
    let o = sb.role_credentials("alice", account, set).unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && (err.contains("ForbiddenException") || err.contains("No access")), "{err}");
}
