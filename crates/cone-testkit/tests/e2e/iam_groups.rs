//! IAM group memberships as entitlements, end to end on SQLite and on PostgreSQL, with the IAM user Cone creates
//! for the person (`aws.account_provisioning`): moto holds the IAM group `deployers` in the Production member
//! account, read through its role. alice's approved request creates `/cone/alice` there, tagged as Cone's, and adds
//! it to the group; at the end both go. carol already has an IAM user of her name that Cone did not make: her grant
//! fails and the user is left alone. A server killed after IAM created the user, before it heard so, finishes the
//! grant after a restart with each change made once. With `deprovision: disable`, the user outlives its last grant
//! without the password and key someone gave it. Needs `cargo build --workspace` and the .venv that
//! `cargo xtask test` prepares.

use std::time::Duration;

use aws_sdk_iam::Client as Iam;
use cone_api::{AuditPage, CreateTask, CreatedIamUserPage, Task, TaskState};
use cone_client::Client;
use cone_testkit::console::Console;
use cone_testkit::faults::{Failure, FaultProxy};
use cone_testkit::{Sandbox, Store, password};

use crate::iam::member_iam;
use crate::{assert_audit_intact, eventually};

cone_testkit::on_both_stores!(
    an_iam_group_grant_creates_the_persons_iam_user_and_removes_both_at_its_end,
    a_server_killed_after_iam_created_the_user_finishes_the_grant_once,
    a_disabled_iam_user_outlives_its_last_grant_without_password_or_keys,
);

const SETTINGS: &str = "  sync_iam: true\n  account_provisioning: { iam_users: true, tags: { team: platform } }\n";
const POLICY: &str = "  - name: deployers\n    match: { group: deployers, account: Production }\n    max_duration: 20s\n    steps: [{ approval: { group: approvers } }]\n";

/// The IAM client of the Production account, where the group `deployers` is made.
async fn production(sb: &Sandbox) -> Iam {
    let iam = member_iam(&sb.moto.endpoint, sb.org.account_id("Production").unwrap()).await;
    iam.create_group().group_name("deployers").send().await.unwrap();
    iam
}

/// IAM user `name`'s path, tags and groups, or `None` when there is no such user.
async fn iam_user(iam: &Iam, name: &str) -> Option<(String, Vec<(String, String)>, Vec<String>)> {
    let user = iam.get_user().user_name(name).send().await.ok()?.user?;
    let tags = user.tags().iter().map(|t| (t.key().to_string(), t.value().to_string())).collect();
    // The user may be deleted between the two reads (the grant's end races the test): then it is gone.
    let groups = iam.list_groups_for_user().user_name(name).send().await.ok()?;
    let groups = groups.groups().iter().map(|g| g.group_name().to_string()).collect();
    Some((user.path, tags, groups))
}

fn ask(sb: &Sandbox) -> CreateTask {
    let entitlement = format!("iam-group|{}|deployers", sb.org.account_id("Production").unwrap());
    CreateTask { app_id: "aws".into(), entitlement_id: entitlement, ..CreateTask::default() }
}

async fn state(client: &Client, id: i64) -> Task {
    client.task(id, None, Duration::ZERO).await.unwrap()
}

async fn an_iam_group_grant_creates_the_persons_iam_user_and_removes_both_at_its_end(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::start_on(store, dir.path(), SETTINGS, POLICY).await.unwrap();
    let iam = production(&sb).await;
    iam.create_user().user_name("carol").send().await.unwrap();
    sb.start_server().unwrap();
    for user in ["alice", "bob", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let client = |user: &str| sb.client(user).unwrap();

    // In the catalog, named after its account; `cone search` finds it.
    let listed = client("alice").entitlements(Some(cone_api::KIND_AWS_IAM_GROUP_MEMBERSHIP)).await.unwrap();
    let seen: Vec<(&str, &str, &str)> =
        listed.iter().map(|e| (e.alias.as_str(), e.display_name.as_str(), e.resource_name.as_str())).collect();
    assert_eq!(seen, [("production-iam-deployers", "deployers", "Production")]);
    let o = sb.cone("alice", &["search", "-q", "deployers"]).unwrap();
    assert!(String::from_utf8_lossy(&o.stdout).contains("production-iam-deployers"), "{o:?}");

    let alice_task = client("alice").create_task(&ask(&sb)).await.unwrap();
    assert_eq!(alice_task.entitlement_name, "membership of IAM group deployers in Production");
    let carol_task = client("carol").create_task(&ask(&sb)).await.unwrap();
    for id in [alice_task.id, carol_task.id] {
        client("bob").act(id, "approve", "").await.unwrap();
    }
    eventually(Duration::from_secs(30), "alice's grant is provisioned", async || {
        state(&client("alice"), alice_task.id).await.state == TaskState::Granted
    })
    .await;
    let alice = sb.org.user_id("alice").unwrap().to_string();
    let (path, tags, groups) = iam_user(&iam, "alice").await.expect("Cone created alice's IAM user");
    assert_eq!((path.as_str(), groups), ("/cone/", vec!["deployers".to_string()]));
    assert!(
        tags.contains(&("cone:identity".into(), alice.clone())) && tags.contains(&("team".into(), "platform".into()))
    );
    assert!(iam.list_access_keys().user_name("alice").send().await.unwrap().access_key_metadata().is_empty());
    assert!(iam.get_login_profile().user_name("alice").send().await.is_err(), "no password");

    // carol's IAM user is not Cone's: her grant fails saying so, and the user is untouched.
    eventually(Duration::from_secs(30), "carol's grant fails", async || {
        state(&client("carol"), carol_task.id).await.state == TaskState::Failed
    })
    .await;
    let reason = state(&client("carol"), carol_task.id).await.reason.unwrap_or_default();
    assert!(reason.contains("IAM user `carol` exists and Cone did not create it"), "{reason}");
    assert_eq!(iam_user(&iam, "carol").await.map(|u| (u.1, u.2)), Some((vec![], vec![])));

    // Administrators see what Cone created; others may not look.
    let created: CreatedIamUserPage = client("carol").get("/api/v1/iam/created-users").await.unwrap();
    let rows: Vec<(&str, &str, &str, &str)> = created
        .users
        .iter()
        .map(|u| (u.username.as_str(), u.account_name.as_str(), u.name.as_str(), u.state.as_str()))
        .collect();
    assert_eq!(rows, [("alice", "Production", "alice", "active")]);
    assert!(client("alice").get::<CreatedIamUserPage>("/api/v1/iam/created-users").await.is_err());
    let mut console = Console::sign_in(&sb.server_url, "carol", &password("carol")).await.unwrap();
    let (_, page) = console.open("/console/created-users").await.unwrap();
    assert!(page.contains("<code>/cone/alice</code>") && page.contains("active"), "{page}");
    // The catalog lists the IAM group under its account, and Identity Center groups apart.
    let (_, catalog) = console.open("/console").await.unwrap();
    let production = catalog.find("Production <span").expect("a Production section");
    let idc = catalog.find("<h3>Identity Center groups</h3>").expect("an Identity Center groups section");
    let deployers =
        catalog.find("deployers <span class=\"muted\">(IAM group membership)</span>").expect("the IAM group");
    assert!(production < deployers && (idc < production || deployers < idc), "{catalog}");

    // At the end (20 s), the membership goes and then the user.
    eventually(Duration::from_secs(60), "alice's IAM user is deleted after her grant ends", async || {
        iam_user(&iam, "alice").await.is_none()
    })
    .await;
    assert_eq!(state(&client("alice"), alice_task.id).await.state, TaskState::Expired);
    eventually(Duration::from_secs(10), "the deletion is recorded", async || {
        let created: CreatedIamUserPage = client("carol").get("/api/v1/iam/created-users").await.unwrap();
        created.users[0].state == "deleted"
    })
    .await;
    let audit: AuditPage = client("carol").get("/api/v1/audit?action=account.*").await.unwrap();
    let mut actions: Vec<&str> = audit.entries.iter().map(|e| e.action.as_str()).collect();
    actions.sort();
    assert_eq!(actions, ["account.create", "account.delete"]);
    assert_audit_intact(&sb);
}

/// IAM creates alice's user, but the server is killed before it hears so (the proxy forwards CreateUser and never
/// answers). The restarted server takes the job over after its lease, finds the user it tagged, and adds the
/// membership: one user made, one membership added, and the audit chain holds.
async fn a_server_killed_after_iam_created_the_user_finishes_the_grant_once(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let settings = format!("{SETTINGS}job_lease: 5s\n");
    let mut sb = Sandbox::start_on(store, dir.path(), &settings, POLICY).await.unwrap();
    let iam = production(&sb).await;
    for user in ["alice", "bob", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let (alice, bob) = (sb.api_token("alice").unwrap(), sb.api_token("bob").unwrap());
    sb.stop_server();
    let proxy = FaultProxy::start(&sb.moto.endpoint).await.unwrap();
    proxy.fail_after_acting("iam:CreateUser", 1, Failure::Silence);
    let (server, url) = sb.spawn_replica(proxy.endpoint()).unwrap();

    let id = Client::new(&url, &alice).unwrap().create_task(&ask(&sb)).await.unwrap().id;
    Client::new(&url, &bob).unwrap().act(id, "approve", "").await.unwrap();
    eventually(Duration::from_secs(30), "IAM made the user and its answer is held", async || {
        proxy.script_used() && iam_user(&iam, "alice").await.is_some()
    })
    .await;
    assert_eq!(state(&Client::new(&url, &alice).unwrap(), id).await.state, TaskState::Provisioning);
    drop(server);

    let (_restarted, url) = sb.spawn_replica(proxy.endpoint()).unwrap();
    let client = Client::new(&url, &alice).unwrap();
    eventually(Duration::from_secs(30), "the restarted server grants once the lease ends", async || {
        state(&client, id).await.state == TaskState::Granted
    })
    .await;
    let (_, _, groups) = iam_user(&iam, "alice").await.unwrap();
    assert_eq!(groups, ["deployers"]);
    // The second CreateUser was refused (the user exists) and changed nothing.
    assert_eq!(proxy.calls("iam:CreateUser"), 2);
    assert_eq!(proxy.calls("iam:AddUserToGroup"), 1, "the membership is added once");
    let admin = Client::new(&url, &sb.api_token("carol").unwrap()).unwrap();
    let audit: AuditPage = admin.get("/api/v1/audit?action=account.create").await.unwrap();
    let created: Vec<&serde_json::Value> = audit.entries.iter().map(|e| &e.detail).collect();
    assert_eq!(created.len(), 1, "{created:?}");
    assert_eq!(created[0]["found_existing"], true, "{created:?}");
    assert_audit_intact(&sb);
}

/// With `deprovision: disable`, alice's IAM user outlives her grant: out of the group, its console password (which
/// someone added meanwhile) deleted and its access key deactivated.
async fn a_disabled_iam_user_outlives_its_last_grant_without_password_or_keys(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let settings = "  sync_iam: true\n  account_provisioning: { iam_users: true, deprovision: disable }\n";
    let mut sb = Sandbox::start_on(store, dir.path(), settings, POLICY).await.unwrap();
    let iam = production(&sb).await;
    sb.start_server().unwrap();
    for user in ["alice", "bob", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let (alice, bob) = (sb.client("alice").unwrap(), sb.client("bob").unwrap());
    let task = alice.create_task(&ask(&sb)).await.unwrap();
    bob.act(task.id, "approve", "").await.unwrap();
    eventually(Duration::from_secs(30), "alice's grant is provisioned", async || {
        state(&alice, task.id).await.state == TaskState::Granted
    })
    .await;
    iam.create_login_profile().user_name("alice").password("Un-guessable-42").send().await.unwrap();
    iam.create_access_key().user_name("alice").send().await.unwrap();

    let carol = sb.client("carol").unwrap();
    eventually(Duration::from_secs(60), "alice's IAM user is disabled after her grant ends", async || {
        let audit: AuditPage = carol.get("/api/v1/audit?action=account.disable").await.unwrap();
        !audit.entries.is_empty()
    })
    .await;
    let (_, _, groups) = iam_user(&iam, "alice").await.expect("the user is kept");
    assert!(groups.is_empty(), "{groups:?}");
    assert!(iam.get_login_profile().user_name("alice").send().await.is_err(), "no password");
    let keys = iam.list_access_keys().user_name("alice").send().await.unwrap().access_key_metadata;
    assert!(keys.iter().all(|k| k.status == Some(aws_sdk_iam::types::StatusType::Inactive)), "{keys:?}");
    let created: CreatedIamUserPage = carol.get("/api/v1/iam/created-users").await.unwrap();
    assert_eq!(created.users[0].state, "active");
    assert_audit_intact(&sb);
}
