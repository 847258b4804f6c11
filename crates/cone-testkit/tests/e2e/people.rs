//! People who leave and people who are renamed, end to end on SQLite and on PostgreSQL, with moto as Identity
//! Center and the real AWS CLI. moto 5.2.1 has no `UpdateUser`, `UpdateGroup` nor `UserStatus`: renames and
//! disabling are made by the fault proxy, which answers `identitystore:ListUsers` and `ListGroups` as Identity Center
//! does after those changes (`FaultProxy::edit`).

use std::time::Duration;

use cone_api::{AuditPage, ConnectorStatus, CreateTask, CreateToken, Task, TaskState};
use cone_client::{Client, Failure};
use cone_testkit::console::Console;
use cone_testkit::faults::FaultProxy;
use cone_testkit::{Sandbox, Store, moto_sdk_config, password};
use reqwest::Method;
use serde_json::json;

use crate::{attached_denial_policy, denial_policy, eventually};

cone_testkit::on_both_stores!(
    a_person_deleted_in_identity_center_loses_everything_after_one_sync,
    renames_keep_people_and_groups_and_a_disabled_user_leaves,
    administrators_withdraw_grants_and_sign_people_out,
    an_early_end_denies_the_sessions_issued_before_it_until_they_run_out,
    someone_deactivated_through_scim_leaves,
);

/// Asks for a sync as the administrator `admin` and waits until it has ended well.
pub(crate) async fn sync(admin: &Client) {
    let before = admin.connectors().await.unwrap()[0].last_success_at;
    admin.call::<ConnectorStatus>(Method::POST, "/api/v1/connectors/sync", None::<&()>).await.unwrap();
    eventually(Duration::from_secs(60), "the asked-for sync ended well", async || {
        let now = &admin.connectors().await.unwrap()[0];
        assert_eq!(now.last_error, None, "{now:?}");
        now.last_success_at != before
    })
    .await;
}

fn ask(sb: &Sandbox, account: &str, set: &str) -> CreateTask {
    let entitlement = format!("{}|{}", sb.org.account_id(account).unwrap(), sb.org.permission_set_arn(set).unwrap());
    CreateTask { app_id: "aws".into(), entitlement_id: entitlement, ..CreateTask::default() }
}

async fn granted(client: &Client, task: &Task) {
    eventually(Duration::from_secs(30), "the grant is active", async || {
        client.task(task.id, None, Duration::ZERO).await.unwrap().state == TaskState::Granted
    })
    .await;
}

async fn offboarded(admin: &Client) -> Vec<cone_api::AuditEntry> {
    admin.get::<AuditPage>("/api/v1/audit?action=identity.offboard").await.unwrap().entries
}

/// alice has a `cone login` session, a console session, a personal API token, an active grant she uses through the
/// AWS CLI and a request waiting for approval. She is deleted in Identity Center; after one sync all of it is gone:
/// `cone whoami` and the console send her to sign in, her token is refused with why, her assignment is removed from
/// AWS, her request is cancelled, and the audit log says what was taken and why.
async fn a_person_deleted_in_identity_center_loses_everything_after_one_sync(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start_on(store, dir.path(), "", "").await.unwrap();
    sb.sign_in("alice").await.unwrap();
    sb.cone_login("carol", &[], "carol").await.unwrap();
    let (alice, carol) = (sb.client("alice").unwrap(), sb.client("carol").unwrap());
    let personal = alice.create_token(&CreateToken { name: "laptop".into(), expires_in_days: None }).await.unwrap();
    let mut console = Console::sign_in(&sb.server_url, "alice", &password("alice")).await.unwrap();
    assert!(console.open("/console").await.unwrap().0.is_success());

    let o = sb.caller_identity("alice", "staging-readonlyaccess").unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let grant = alice.tasks("mine", "all").await.unwrap().into_iter().find(|t| t.state == TaskState::Granted).unwrap();
    let pending = alice.create_task(&ask(&sb, "Production", "AdministratorAccess")).await.unwrap();
    assert_eq!(pending.state, TaskState::PendingApproval);
    let alice_id = sb.org.user_id("alice").unwrap().to_string();
    assert!(sb.assigned_principals("Staging", "ReadOnlyAccess").await.unwrap().contains(&alice_id));

    let ids = aws_sdk_identitystore::Client::new(&moto_sdk_config(&sb.moto.endpoint));
    ids.delete_user().identity_store_id(&sb.org.identity_store_id).user_id(&alice_id).send().await.unwrap();
    sync(&carol).await;

    let o = sb.cone("alice", &["whoami"]).unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && said.contains("cone login"), "{said}");
    let (status, _) = console.open("/console").await.unwrap();
    assert!(status.is_redirection(), "the console still serves alice: {status}");
    let token = Client::new(&sb.server_url, &personal.secret).unwrap();
    let Err(Failure::Api { status: 401, error }) = token.me().await else { panic!("alice's API token still works") };
    assert!(error.message.contains("belongs to alice, who left Identity Center"), "{error:?}");
    eventually(Duration::from_secs(30), "alice's assignment is removed from AWS", async || {
        !sb.assigned_principals("Staging", "ReadOnlyAccess").await.unwrap().contains(&alice_id)
    })
    .await;
    let cancelled = carol.task(pending.id, None, Duration::ZERO).await.unwrap();
    assert_eq!(cancelled.state, TaskState::Cancelled);
    assert!(cancelled.reason.as_deref().is_some_and(|r| r.contains("requester left")), "{cancelled:?}");
    assert_eq!(carol.task(grant.id, None, Duration::ZERO).await.unwrap().state, TaskState::Released);

    let entries = offboarded(&carol).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    let detail = &entries[0].detail;
    assert_eq!(detail["why"], "deleted in Identity Center");
    assert_eq!(detail["ended_grants"], json!([grant.id]));
    assert_eq!(detail["cancelled_tasks"], json!([pending.id]));
    assert_eq!((detail["sessions"].as_i64(), detail["api_tokens"].as_i64()), (Some(1), Some(1)));
    assert!(detail["console_sessions"].as_i64().is_some_and(|n| n >= 1), "{detail}");
}

/// Through a proxy that answers as Identity Center does after renames: alice renamed keeps her session and her
/// grant, and the approvers group renamed keeps its members, whose removal later still counts. Then alice is
/// disabled: her session ends and her assignment goes.
async fn renames_keep_people_and_groups_and_a_disabled_user_leaves(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::start_on(store, dir.path(), "", "").await.unwrap();
    for user in ["alice", "bob", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    sb.stop_server();
    let proxy = FaultProxy::start(&sb.moto.endpoint).await.unwrap();
    let (_server, url) = sb.spawn_replica(proxy.endpoint()).unwrap();
    let client = |user: &str| Client::new(&url, &sb.api_token(user).unwrap()).unwrap();
    let (alice, bob, carol) = (client("alice"), client("bob"), client("carol"));
    let task = alice.create_task(&ask(&sb, "Staging", "ReadOnlyAccess")).await.unwrap();
    granted(&alice, &task).await;

    let alice_id = sb.org.user_id("alice").unwrap().to_string();
    let users = ("identitystore:ListUsers", "Users", "UserId");
    proxy.edit(users.0, users.1, users.2, &alice_id, json!({ "UserName": "alice.anders" }));
    let group = &sb.org.approvers_group_id;
    proxy.edit("identitystore:ListGroups", "Groups", "GroupId", group, json!({ "DisplayName": "approvers-eu" }));
    sync(&carol).await;
    let me = alice.me().await.unwrap();
    assert_eq!(me.username, "alice.anders");
    assert_eq!(alice.task(task.id, None, Duration::ZERO).await.unwrap().state, TaskState::Granted);
    assert_eq!(bob.me().await.unwrap().groups, ["approvers-eu"]);
    let renames = carol.get::<AuditPage>("/api/v1/audit?action=identity.rename").await.unwrap().entries;
    assert_eq!(renames.len(), 1, "{renames:?}");
    assert_eq!(renames[0].detail, json!({ "from": "alice", "to": "alice.anders" }));

    let ids = aws_sdk_identitystore::Client::new(&moto_sdk_config(&sb.moto.endpoint));
    // bob is the group's only member.
    let listed =
        ids.list_group_memberships().identity_store_id(&sb.org.identity_store_id).group_id(group).send().await.unwrap();
    for m in listed.group_memberships() {
        let id = m.membership_id();
        ids.delete_group_membership()
            .identity_store_id(&sb.org.identity_store_id)
            .membership_id(id)
            .send()
            .await
            .unwrap();
    }
    sync(&carol).await;
    assert!(bob.me().await.unwrap().groups.is_empty(), "bob left the renamed group but is still counted in it");

    proxy.edit(users.0, users.1, users.2, &alice_id, json!({ "UserStatus": "DISABLED" }));
    sync(&carol).await;
    assert!(matches!(alice.me().await, Err(Failure::Api { status: 401, .. })), "a disabled user's session works");
    eventually(Duration::from_secs(30), "the disabled user's assignment is removed from AWS", async || {
        !sb.assigned_principals("Staging", "ReadOnlyAccess").await.unwrap().contains(&alice_id)
    })
    .await;
    let entries = offboarded(&carol).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].detail["why"], "disabled in Identity Center");
}

fn ok(o: &std::process::Output) -> String {
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// carol (an administrator) finds alice's grants, withdraws one from the CLI and one from the console, with
/// reasons; alice's next `aws` call through cone says who withdrew it and why, and does not ask for it again.
/// Then carol lists everyone's API tokens and signs alice out everywhere.
async fn administrators_withdraw_grants_and_sign_people_out(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start_on(store, dir.path(), "", "").await.unwrap();
    sb.sign_in("alice").await.unwrap();
    sb.cone_login("carol", &[], "carol").await.unwrap();
    let (alice, carol) = (sb.client("alice").unwrap(), sb.client("carol").unwrap());
    let production = alice.create_task(&ask(&sb, "Production", "ReadOnlyAccess")).await.unwrap();
    let staging = alice.create_task(&ask(&sb, "Staging", "ReadOnlyAccess")).await.unwrap();
    granted(&alice, &production).await;
    granted(&alice, &staging).await;
    let alice_id = sb.org.user_id("alice").unwrap().to_string();

    let refused = sb.cone("alice", &["task", "search", "--all"]).unwrap();
    assert!(String::from_utf8_lossy(&refused.stderr).contains("Only Cone administrators"), "{refused:?}");
    let search = ["task", "search", "--all", "--state", "granted", "--user", "alice", "--account", "Production"];
    let found: Vec<Task> =
        serde_json::from_str(&ok(&sb.cone("carol", &[&search[..], &["-o", "json"]].concat()).unwrap())).unwrap();
    assert_eq!(found.iter().map(|t| t.id).collect::<Vec<_>>(), [production.id]);

    let id = production.id.to_string();
    let reason = "incident 42: laptop stolen";
    let withdrawn: Task = serde_json::from_str(&ok(&sb
        .cone("carol", &["task", "withdraw", &id, "--reason", reason, "-o", "json"])
        .unwrap()))
    .unwrap();
    assert_eq!((withdrawn.state, withdrawn.ended_by.as_deref()), (TaskState::Released, Some("carol")));
    eventually(Duration::from_secs(30), "the withdrawn assignment is removed from AWS", async || {
        !sb.assigned_principals("Production", "ReadOnlyAccess").await.unwrap().contains(&alice_id)
    })
    .await;
    let o = sb.caller_identity("alice", "production-readonlyaccess").unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && said.contains(&format!("withdrawn by carol: {reason}")), "{said}");
    // Told, not asked again for her: no new request was filed.
    assert_eq!(
        alice.latest_task(&production.app_id, &production.entitlement_id).await.unwrap().unwrap().id,
        production.id
    );

    let mut console = Console::sign_in(&sb.server_url, "carol", &password("carol")).await.unwrap();
    let (_, listed) = console.open("/console/grants?user=alice&state=granted").await.unwrap();
    assert!(
        listed.contains(&format!("Request {}", staging.id)) && !listed.contains(&format!("Request {}", production.id)),
        "{listed}"
    );
    let answer = console
        .submit(
            "/console/grants?user=alice",
            &format!("/console/tasks/{}/withdraw-grant", staging.id),
            &[("reason", "moved team")],
        )
        .await
        .unwrap();
    assert!(answer.starts_with("303"), "{answer}");
    let (_, shown) = console.open(&format!("/console/tasks/{}", staging.id)).await.unwrap();
    assert!(shown.contains("Withdrawn by carol: “moved team”"), "{shown}");
    let o = sb.caller_identity("alice", "staging-readonlyaccess").unwrap();
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(!o.status.success() && said.contains("withdrawn by carol: moved team"), "{said}");
    let audited = carol.get::<AuditPage>("/api/v1/audit?action=grant.withdraw").await.unwrap().entries;
    let reasons: Vec<_> = audited.iter().map(|e| e.detail["reason"].as_str().unwrap_or_default()).collect();
    assert_eq!(reasons, [reason, "moved team"]);

    let personal = alice.create_token(&CreateToken { name: "laptop".into(), expires_in_days: None }).await.unwrap();
    let tokens: cone_api::TokenList =
        serde_json::from_str(&ok(&sb.cone("carol", &["token", "list", "--all", "-o", "json"]).unwrap())).unwrap();
    assert!(tokens.tokens.iter().any(|t| t.id == personal.token.id && t.owner == "alice"), "{tokens:?}");
    let mut alice_console = Console::sign_in(&sb.server_url, "alice", &password("alice")).await.unwrap();
    // Two console sessions: the one that approved her `cone login`, and the one opened above.
    let said = ok(&sb.cone("carol", &["token", "sign-out", "alice"]).unwrap());
    assert!(
        said.contains("Signed alice out everywhere: 1 cone login session(s), 2 console session(s), 1 API token(s)"),
        "{said}"
    );
    assert!(!sb.cone("alice", &["whoami"]).unwrap().status.success(), "alice's cone login still works");
    assert!(alice_console.open("/console").await.unwrap().0.is_redirection(), "alice's console session still works");
    let token = Client::new(&sb.server_url, &personal.secret).unwrap();
    assert!(matches!(token.me().await, Err(Failure::Api { status: 401, .. })), "alice's API token still works");
    let signed_out = carol.get::<AuditPage>("/api/v1/audit?action=identity.sign_out").await.unwrap().entries;
    assert_eq!(signed_out.len(), 1, "{signed_out:?}");
}

/// With `aws.revoke_sessions`, alice giving her access back (`cone drop`) removes the credentials cone cached and
/// puts a statement in Cone's service control policy, attached to the account, that denies her sessions of that
/// role issued before then. Once the permission set's session duration (20 s here) has passed, the statement goes,
/// and with it the policy: nothing is left behind in AWS Organizations.
async fn an_early_end_denies_the_sessions_issued_before_it_until_they_run_out(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start_on(store, dir.path(), "  revoke_sessions: true\n", "").await.unwrap();
    let sdk = moto_sdk_config(&sb.moto.endpoint);
    let readonly = sb.org.permission_set_arn("ReadOnlyAccess").unwrap();
    let sso = aws_sdk_ssoadmin::Client::new(&sdk);
    sso.update_permission_set()
        .instance_arn(&sb.org.instance_arn)
        .permission_set_arn(readonly)
        .session_duration("PT20S")
        .send()
        .await
        .unwrap();
    sb.sign_in("alice").await.unwrap();
    sb.cone_login("carol", &[], "carol").await.unwrap();
    sync(&sb.client("carol").unwrap()).await;
    let org = aws_sdk_organizations::Client::new(&sdk);
    assert!(denial_policy(&org).await.is_none(), "a policy exists before any revocation");

    let o = sb.caller_identity("alice", "staging-readonlyaccess").unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let cache = sb.home("alice").join(".aws/cli/cache");
    let cached = || std::fs::read_dir(&cache).map(|d| d.count()).unwrap_or(0);
    assert_eq!(cached(), 1);
    let before = chrono::Utc::now();
    let said = ok(&sb.cone("alice", &["drop", "staging-readonlyaccess"]).unwrap());
    assert!(said.contains("Removed the role credentials cached for it."), "{said}");
    assert_eq!(cached(), 0, "cone drop left the cached credentials");

    let alice_id = sb.org.user_id("alice").unwrap().to_string();
    let staging = sb.org.account_id("Staging").unwrap().to_string();
    let (content, targets) = attached_denial_policy(&org).await;
    assert_eq!(targets, std::slice::from_ref(&staging));
    let policy: serde_json::Value = serde_json::from_str(&content).unwrap();
    let statements = policy["Statement"].as_array().unwrap();
    assert_eq!(statements.len(), 1, "{policy}");
    let condition = &statements[0]["Condition"];
    assert_eq!(statements[0]["Effect"], "Deny");
    assert_eq!(condition["StringEquals"]["identitystore:userId"], alice_id.as_str());
    assert_eq!(
        condition["ArnLike"]["aws:PrincipalArn"],
        json!([format!("arn:aws:iam::{staging}:role/aws-reserved/sso.amazonaws.com/*AWSReservedSSO_ReadOnlyAccess_*")])
    );
    let issued_before = condition["DateLessThan"]["aws:TokenIssueTime"].as_str().unwrap();
    let issued_before = chrono::DateTime::parse_from_rfc3339(issued_before).unwrap();
    assert!((issued_before.timestamp() - before.timestamp()).abs() <= 5, "{issued_before} vs {before}");

    eventually(Duration::from_secs(60), "the policy is gone once the sessions have run out", async || {
        denial_policy(&org).await.is_none()
    })
    .await;
}

/// With `BATON_SCIM_*` set, the sync reads SCIM's `active` flag (from a stand-in of IAM Identity Center's SCIM API:
/// moto has none): alice deactivated there, though still enabled in the identity store, is offboarded at the next
/// sync. A SCIM endpoint that refuses the token fails the sync, saying so, rather than counting everyone active.
async fn someone_deactivated_through_scim_leaves(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::start_on(store, dir.path(), "", "").await.unwrap();
    for user in ["alice", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    sb.stop_server();
    let scim = cone_testkit::scim::ScimStandIn::start(&sb.moto.endpoint, &sb.org.identity_store_id).await.unwrap();
    let env =
        [("BATON_SCIM_ENABLED", "true"), ("BATON_SCIM_ENDPOINT", &scim.endpoint), ("BATON_SCIM_TOKEN", &scim.token)];
    let (server, url) = sb.spawn_replica_with(&sb.moto.endpoint, &env).unwrap();
    let client = |user: &str| Client::new(&url, &sb.api_token(user).unwrap()).unwrap();
    let (alice, carol) = (client("alice"), client("carol"));
    assert_eq!(alice.me().await.unwrap().username, "alice", "everyone is active in SCIM at first");

    scim.deactivate(sb.org.user_id("alice").unwrap());
    sync(&carol).await;
    assert!(matches!(alice.me().await, Err(Failure::Api { status: 401, .. })), "a deactivated user's session works");
    let entries = offboarded(&carol).await;
    assert_eq!(entries.len(), 1, "{entries:?}");
    assert_eq!(entries[0].detail["why"], "disabled in Identity Center");
    drop(server);

    let wrong =
        [("BATON_SCIM_ENABLED", "true"), ("BATON_SCIM_ENDPOINT", &scim.endpoint), ("BATON_SCIM_TOKEN", "stale")];
    let (_server, url) = sb.spawn_replica_with(&sb.moto.endpoint, &wrong).unwrap();
    let carol = Client::new(&url, &sb.api_token("carol").unwrap()).unwrap();
    let status = &carol.connectors().await.unwrap()[0];
    let error = status.last_error.as_deref().unwrap_or_default();
    assert!(error.contains("refused BATON_SCIM_TOKEN"), "{status:?}");
}
