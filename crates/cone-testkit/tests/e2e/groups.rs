//! Access held through an Identity Center group, end to end on SQLite and on PostgreSQL: moto assigns
//! AdministratorAccess in Production to a group alice is in; after a sync alice's listing says so, administrators
//! see her among the holders with the group as the source, a request from her is refused with the group named, and
//! `aws --profile production-administratoraccess` works through cone without a request. A user grant of the same
//! assignment that expires leaves the group's assignment in place. Needs `cargo build --workspace` and the .venv
//! that `cargo xtask test` prepares.

use std::time::{Duration, Instant};

use aws_sdk_identitystore::types::MemberId;
use aws_sdk_ssoadmin::types::{PrincipalType, TargetType};
use cone_testkit::{Sandbox, Store, moto_sdk_config};
use serde_json::{Value, json};

cone_testkit::on_both_stores!(access_through_a_group_needs_no_request_and_survives_a_grant);

/// Adds `user` to a new identity-store group `name`; returns the group id.
async fn group_with(sb: &Sandbox, name: &str, users: &[&str]) -> String {
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
    let sso = aws_sdk_ssoadmin::Client::new(&moto_sdk_config(&sb.moto.endpoint));
    sso.create_account_assignment()
        .instance_arn(&sb.org.instance_arn)
        .target_id(sb.org.account_id(account).unwrap())
        .target_type(TargetType::AwsAccount)
        .permission_set_arn(sb.org.permission_set_arn(set).unwrap())
        .principal_type(PrincipalType::Group)
        .principal_id(&platform)
        .send()
        .await
        .unwrap();
    // A restarted server syncs before it reports ready.
    sb.start_server().unwrap();
    for user in ["bob", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    sb.sign_in("alice").await.unwrap();
    let token = |user: &str| sb.api_token(user).unwrap();
    let http = reqwest::Client::new();
    let call = async |method: reqwest::Method, path: &str, user: &str, body: Option<Value>| {
        let mut req = http.request(method, format!("{}{path}", sb.server_url)).bearer_auth(token(user));
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };
    let get = async |path: &str, user: &str| call(reqwest::Method::GET, path, user, None).await;
    let entitlement = format!("{}|{}", sb.org.account_id(account).unwrap(), sb.org.permission_set_arn(set).unwrap());

    // alice's listing says she holds it through the group; bob's does not.
    let listed = async |user: &str| {
        let (_, page) = get("/api/v1/entitlements?page_size=1000", user).await;
        page["entitlements"].as_array().unwrap().iter().find(|e| e["id"] == entitlement.as_str()).unwrap().clone()
    };
    assert_eq!(listed("alice").await["held_through_groups"], json!(["platform"]));
    assert_eq!(listed("bob").await["held_through_groups"], json!([]));

    // A request from her is refused, naming the group.
    let request = |duration: i64| json!({ "app_id": "aws", "entitlement_id": entitlement, "duration_secs": duration });
    let (status, refused) = call(reqwest::Method::POST, "/api/v1/tasks", "alice", Some(request(3600))).await;
    assert_eq!((status, refused["code"].as_str()), (409, Some("held_through_group")), "{refused}");
    assert!(refused["message"].as_str().unwrap().contains("group \"platform\", so no request is needed"), "{refused}");

    // Through the AWS CLI and cone, without a request: the assignment is the group's.
    let o = sb.caller_identity("alice", "production-administratoraccess").unwrap();
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{out}{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("AWSReservedSSO_AdministratorAccess_"), "{out}");
    let o = sb.cone("alice", &["has", "production-administratoraccess"]).unwrap();
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && said.contains("through the Identity Center group \"platform\""), "{said}");
    let (_, mine) = get("/api/v1/tasks?scope=mine", "alice").await;
    assert_eq!(mine["tasks"], json!([]), "no request was filed");

    // bob gets a short grant of the same assignment; administrators see both holders and where each comes from.
    let (status, task) = call(reqwest::Method::POST, "/api/v1/tasks", "bob", Some(request(5))).await;
    assert_eq!(status, 201, "{task}");
    let path = format!("/api/v1/tasks/{}/approve", task["id"]);
    let (status, approved) = call(reqwest::Method::POST, &path, "carol", Some(json!({}))).await;
    assert_eq!(status, 200, "{approved}");
    let bob = sb.org.user_id("bob").unwrap().to_string();
    let principals = async || sb.assigned_principals(account, set).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !principals().await.contains(&bob) {
        assert!(Instant::now() < deadline, "bob's grant was not provisioned");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let holders = format!("/api/v1/entitlement/holders?app_id=aws&entitlement_id={}", entitlement.replace('|', "%7C"));
    let (status, page) = get(&holders, "carol").await;
    assert_eq!(status, 200, "{page}");
    let seen: Vec<(&str, &str, &Value, &Value)> = page["holders"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (h["username"].as_str().unwrap(), h["source"].as_str().unwrap(), &h["group"], &h["task_id"]))
        .collect();
    assert_eq!(
        seen,
        [("alice", "group", &json!("platform"), &Value::Null), ("bob", "grant", &Value::Null, &task["id"])]
    );
    assert_eq!(get(&holders, "alice").await.0, 403, "holders are for administrators");

    // bob's grant ends and its assignment goes; the group's stays.
    let deadline = Instant::now() + Duration::from_secs(60);
    while principals().await.contains(&bob) {
        assert!(Instant::now() < deadline, "bob's assignment outlived his grant");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    assert_eq!(principals().await, [platform], "the group's assignment survives a user grant ending");
}
