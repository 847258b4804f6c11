//! End to end for revocation that is never lost: the drift sweep between Identity Center and Cone's grants, the
//! revocation of grants that expired while cone-server was down, cone-server killed while AWS provisions or revokes,
//! webhooks (signed, retried, each delivered once) and the audit log's export, on SQLite and on PostgreSQL. Needs
//! `cargo build --workspace` and the .venv that `cargo xtask test` prepares.

use std::collections::BTreeMap;
use std::process::Output;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_ssoadmin::types::{PrincipalType, TargetType};
use axum::extract::State;
use cone_api::{AuditPage, CreateTask, DriftFinding, DriftPage, Task, TaskState};
use cone_client::Client;
use cone_testkit::faults::{Failure, FaultProxy};
use cone_testkit::{Sandbox, Store, moto_sdk_config};

use crate::{assert_audit_intact, eventually};
use serde_json::Value;

fn assert_ok(o: &Output, what: &str) {
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert!(o.status.success(), "{what} failed\nstdout: {out}\nstderr: {err}");
}

fn sso(sb: &Sandbox) -> aws_sdk_ssoadmin::Client {
    aws_sdk_ssoadmin::Client::new(&moto_sdk_config(&sb.moto.endpoint))
}

/// The principal ids assigned the permission set in the account, in moto.
async fn principals(sb: &Sandbox, account: &str, permission_set: &str) -> Vec<String> {
    sb.assigned_principals(account, permission_set).await.unwrap()
}

/// Creates (`create`) or deletes an assignment behind Cone's back, as someone in the AWS console would.
async fn change_assignment(
    sb: &Sandbox,
    create: bool,
    account: &str,
    permission_set: &str,
    principal: (PrincipalType, &str),
) {
    let (account, ps) = (sb.org.account_id(account).unwrap(), sb.org.permission_set_arn(permission_set).unwrap());
    let (kind, id) = principal;
    let sso = sso(sb);
    if create {
        sso.create_account_assignment()
            .instance_arn(&sb.org.instance_arn)
            .target_id(account)
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(ps)
            .principal_type(kind)
            .principal_id(id)
            .send()
            .await
            .unwrap();
    } else {
        sso.delete_account_assignment()
            .instance_arn(&sb.org.instance_arn)
            .target_id(account)
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(ps)
            .principal_type(kind)
            .principal_id(id)
            .send()
            .await
            .unwrap();
    }
}

/// The open drift findings, as `GET /api/v1/drift` returns them.
async fn open_drift(client: &Client) -> Vec<DriftFinding> {
    client.get::<DriftPage>("/api/v1/drift").await.unwrap().findings
}

/// `(kind, account, permission set, user)` of a finding.
fn finding_key(f: &DriftFinding) -> (String, String, String, String) {
    let field = |value: &Option<String>| value.clone().unwrap_or_default();
    (f.kind.clone(), field(&f.account_name), field(&f.permission_set_name), field(&f.username))
}

fn key(kind: &str, account: &str, permission_set: &str, user: &str) -> (String, String, String, String) {
    (kind.into(), account.into(), permission_set.into(), user.into())
}

cone_testkit::on_both_stores!(
    the_grant_check_follows_a_release_and_a_sign_out_on_another_replica,
    drift_is_reported_removed_when_opted_in_and_restored_for_active_grants,
    a_grant_that_expired_while_the_server_was_down_is_revoked_at_start,
    webhooks_carry_each_task_and_grant_event_once_signed_and_retried,
    a_server_killed_while_aws_provisions_grants_once_after_restart,
    a_server_killed_while_aws_revokes_ends_the_grant_after_restart,
    sigterm_during_provisioning_gives_the_job_back_and_the_restart_grants_once,
    the_audit_log_exports_as_json_lines_that_recompute_its_chain,
);

async fn drift_is_reported_removed_when_opted_in_and_restored_for_active_grants(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let settings = "drift: { interval: 10s, remove_unexplained: [DatabaseAdministrator] }\n";
    let sb = Sandbox::start_on(store, dir.path(), settings, "").await.unwrap();
    sb.sign_in("alice").await.unwrap();
    assert_ok(&sb.caller_identity("alice", "staging-readonlyaccess").unwrap(), "alice's request");
    let (alice, bob) = (sb.org.user_id("alice").unwrap(), sb.org.user_id("bob").unwrap());
    assert_eq!(principals(&sb, "Staging", "ReadOnlyAccess").await, vec![alice.to_string()]);

    // Behind Cone's back: two assignments for bob, one for a group, and alice's granted assignment deleted.
    change_assignment(&sb, true, "Production", "DatabaseAdministrator", (PrincipalType::User, bob)).await;
    change_assignment(&sb, true, "Staging", "AdministratorAccess", (PrincipalType::User, bob)).await;
    let group = (PrincipalType::Group, sb.org.approvers_group_id.as_str());
    change_assignment(&sb, true, "Sandbox", "ReadOnlyAccess", group).await;
    change_assignment(&sb, false, "Staging", "ReadOnlyAccess", (PrincipalType::User, alice)).await;

    // Every finding shows in the API while open (repaired ones are resolved by the sweep after their repair, so
    // collect across polls).
    sb.cone_login("carol", &[], "carol").await.unwrap();
    let carol = sb.client("carol").unwrap();
    let mut seen = BTreeMap::new();
    let expected = [
        key("unexplained", "Production", "DatabaseAdministrator", "bob"),
        key("unexplained", "Staging", "AdministratorAccess", "bob"),
        key("missing", "Staging", "ReadOnlyAccess", "alice"),
    ];
    eventually(Duration::from_secs(60), "the sweep reports all three differences", async || {
        seen.extend(open_drift(&carol).await.into_iter().map(|f| (finding_key(&f), f)));
        expected.iter().all(|k| seen.contains_key(k))
    })
    .await;
    assert_eq!(seen.len(), 3, "only the three differences are findings (not the group's): {seen:?}");
    assert_eq!(seen[&expected[0]].remedy.as_deref(), Some("remove"));
    assert_eq!(seen[&expected[0]].principal_id, bob);
    assert_eq!(seen[&expected[1]].remedy, None, "not opted in: reported only");
    assert_eq!(seen[&expected[2]].remedy.as_deref(), Some("reprovision"));
    assert!(seen[&expected[2]].task_id.is_some(), "{:?}", seen[&expected[2]]);

    // The opted-in assignment is removed, alice's is back, and everything else stays.
    eventually(Duration::from_secs(30), "bob's DatabaseAdministrator assignment is removed", async || {
        principals(&sb, "Production", "DatabaseAdministrator").await.is_empty()
    })
    .await;
    eventually(Duration::from_secs(30), "alice's granted assignment is restored", async || {
        principals(&sb, "Staging", "ReadOnlyAccess").await == [alice]
    })
    .await;
    assert_eq!(principals(&sb, "Staging", "AdministratorAccess").await, vec![bob.to_string()]);
    assert_eq!(principals(&sb, "Sandbox", "ReadOnlyAccess").await, vec![sb.org.approvers_group_id.clone()]);

    // The next sweeps resolve the repaired findings and keep the reported one open, as one finding.
    eventually(Duration::from_secs(40), "only the reported finding stays open", async || {
        let open = open_drift(&carol).await;
        open.len() == 1 && finding_key(&open[0]) == expected[1] && open[0].last_seen != open[0].first_seen
    })
    .await;
    // Narrowed as an administrator looking for one person, account or permission set would, names in any case.
    let narrowed = async |query: &str| -> Vec<(String, String, String, String)> {
        let page = carol.get::<DriftPage>(&format!("/api/v1/drift?{query}")).await.unwrap();
        page.findings.iter().map(finding_key).collect()
    };
    assert_eq!(narrowed("user=bob&account=staging&permission_set=administratoraccess").await, [expected[1].clone()]);
    assert!(narrowed("kind=missing").await.is_empty());
    assert!(narrowed("user=alice").await.is_empty());
    assert!(narrowed("account=production").await.is_empty());
    assert_audit_intact(&sb);
}

async fn a_grant_that_expired_while_the_server_was_down_is_revoked_at_start(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let short = concat!(
        "  - name: short-staging-readonly\n",
        "    match: { account: Staging, permission_set: ReadOnlyAccess }\n",
        "    max_duration: 15s\n",
        "    steps: [accept]\n",
    );
    let mut sb = Sandbox::start_on(store, dir.path(), "", short).await.unwrap();
    sb.sign_in("alice").await.unwrap();
    assert_ok(&sb.caller_identity("alice", "staging-readonlyaccess").unwrap(), "alice's 15 s grant");
    // The grant became active before the call returned, so it has ended 15 s from now at the latest.
    let ended_by = Instant::now() + Duration::from_secs(15);
    let alice = sb.org.user_id("alice").unwrap().to_string();
    assert_eq!(principals(&sb, "Staging", "ReadOnlyAccess").await, vec![alice.clone()]);

    sb.cone_login("carol", &[], "carol").await.unwrap();
    sb.stop_server();
    tokio::time::sleep_until((ended_by + Duration::from_secs(2)).into()).await;
    assert_eq!(
        principals(&sb, "Staging", "ReadOnlyAccess").await,
        vec![alice],
        "nothing revokes while the server is down"
    );

    sb.start_server().unwrap();
    let started = Instant::now();
    eventually(Duration::from_secs(10), "the expired grant's assignment is removed after the start", async || {
        principals(&sb, "Staging", "ReadOnlyAccess").await.is_empty()
    })
    .await;
    eprintln!("revoked {:?} after the restarted server was ready", started.elapsed());

    // The sweep at start did not take the expired grant's assignment for drift.
    let open = open_drift(&sb.client("carol").unwrap()).await;
    assert!(open.is_empty(), "{open:?}");
    assert_audit_intact(&sb);
}

/// Jobs leased for 5 s: a killed server's job is taken over soon.
const LEASE_5S: &str = "job_lease: 5s\n";

/// A sandbox (with the server settings `server`) where alice is signed in, its server stopped, and a fault proxy in
/// front of moto that forwards the first `action` call (such as `sso:CreateAccountAssignment`) and never answers it:
/// servers spawned on the returned endpoint reach AWS through it.
async fn behind_proxy(
    store: Store,
    dir: &std::path::Path,
    server: &str,
    policies: &str,
    action: &str,
) -> (Sandbox, String, FaultProxy, String) {
    let mut sb = Sandbox::start_on(store, dir, server, policies).await.unwrap();
    // carol, an administrator, reads /metrics.
    for user in ["alice", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let token = sb.api_token("alice").unwrap();
    sb.stop_server();
    let proxy = FaultProxy::start(&sb.moto.endpoint).await.unwrap();
    proxy.fail_after_acting(action, 1, Failure::Silence);
    let endpoint = proxy.endpoint().to_string();
    (sb, token, proxy, endpoint)
}

/// A task as `GET /api/v1/tasks/N` returns it, from the server at `url`.
async fn task(url: &str, token: &str, id: i64) -> Task {
    let client = Client::new(url, token).unwrap();
    client.task(id, None, Duration::ZERO).await.unwrap_or_else(|e| panic!("GET task {id}: {e}"))
}

/// How many of the task's events are `action`.
fn events(task: &Task, action: &str) -> usize {
    task.events.iter().filter(|e| e.action == action).count()
}

/// A request of alice's for `set` on `account`.
fn ask(sb: &Sandbox, account: &str, set: &str, justification: &str) -> CreateTask {
    let entitlement = format!("{}|{}", sb.org.account_id(account).unwrap(), sb.org.permission_set_arn(set).unwrap());
    CreateTask {
        app_id: "aws".into(),
        entitlement_id: entitlement,
        justification: justification.into(),
        ..CreateTask::default()
    }
}

/// Several replicas on one PostgreSQL: the replica that claimed a provisioning job is killed (SIGKILL) after AWS
/// made the assignment but before the replica recorded it; another takes the job over once its lease ends, and
/// the grant's expiry, seen by two replicas, is revoked once. AWS is asked to create and to delete the assignment
/// exactly once each.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_share_the_jobs_and_take_over_a_killed_replicas_job_once() {
    let Some(store) = Store::postgres("replicas_share_the_jobs_and_take_over_a_killed_replicas_job_once").unwrap()
    else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let short = concat!(
        "  - name: short-staging-readonly\n",
        "    match: { account: Staging, permission_set: ReadOnlyAccess }\n",
        "    max_duration: 20s\n",
        "    steps: [accept]\n",
    );
    let (sb, token, proxy, aws) = behind_proxy(store, dir.path(), LEASE_5S, short, "sso:CreateAccountAssignment").await;
    let (first, first_url) = sb.spawn_replica(&aws).unwrap();
    let request = ask(&sb, "Staging", "ReadOnlyAccess", "replicas");
    let id = Client::new(&first_url, &token).unwrap().create_task(&request).await.unwrap().id;

    let alice = sb.org.user_id("alice").unwrap().to_string();
    eventually(Duration::from_secs(30), "AWS made the assignment and its answer is held", async || {
        proxy.script_used() && principals(&sb, "Staging", "ReadOnlyAccess").await == [alice.clone()]
    })
    .await;
    let (_second, second_url) = sb.spawn_replica(&aws).unwrap();
    drop(first);
    assert_eq!(task(&second_url, &token, id).await.state, TaskState::Provisioning);

    eventually(Duration::from_secs(30), "the second replica takes the job over after its lease", async || {
        task(&second_url, &token, id).await.state == TaskState::Granted
    })
    .await;
    let (_third, _) = sb.spawn_replica(&aws).unwrap();
    eventually(Duration::from_secs(60), "the expired grant's assignment is removed", async || {
        principals(&sb, "Staging", "ReadOnlyAccess").await.is_empty()
    })
    .await;
    eventually(Duration::from_secs(10), "the revocation is recorded", async || {
        events(&task(&second_url, &token, id).await, "grant.revoke") == 1
    })
    .await;

    let task = task(&second_url, &token, id).await;
    assert_eq!(task.state, TaskState::Expired);
    for action in ["grant.activate", "grant.expire", "grant.revoke"] {
        assert_eq!(events(&task, action), 1, "{action} in {task:?}");
    }
    assert_eq!(proxy.calls("sso:CreateAccountAssignment"), 1, "the assignment is created once");
    assert_eq!(proxy.calls("sso:DeleteAccountAssignment"), 1, "the assignment is deleted once");
    assert_audit_intact(&sb);
}

/// A client long-polling its task on one replica hears at once of the approval another replica recorded
/// (PostgreSQL NOTIFY), not only when its wait runs out.
#[tokio::test(flavor = "multi_thread")]
async fn a_long_poll_on_one_replica_hears_of_a_decision_on_another() {
    let Some(store) = Store::postgres("a_long_poll_on_one_replica_hears_of_a_decision_on_another").unwrap() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start_on(store, dir.path(), "", "").await.unwrap();
    sb.cone_login("alice", &[], "alice").await.unwrap();
    sb.cone_login("bob", &[], "bob").await.unwrap();
    let (_other, other_url) = sb.spawn_replica(&sb.moto.endpoint).unwrap();

    let request = ask(&sb, "Staging", "AdministratorAccess", "notify");
    let id = sb.client("alice").unwrap().create_task(&request).await.unwrap().id;

    let on_other = Client::new(&other_url, &sb.api_token("alice").unwrap()).unwrap();
    let started = std::time::Instant::now();
    let poll = async move { on_other.task(id, Some(TaskState::PendingApproval), Duration::from_secs(50)).await };
    let waiting = tokio::spawn(poll);
    tokio::time::sleep(Duration::from_secs(1)).await;
    sb.client("bob").unwrap().act(id, "approve", "ok").await.unwrap();
    let task = waiting.await.unwrap().unwrap();
    assert_ne!(task.state, TaskState::PendingApproval, "{task:?}");
    assert!(started.elapsed() < Duration::from_secs(20), "the long poll answered after {:?}", started.elapsed());
}

/// The grant check answers from memory (see cone-server's `cache`); a release and a sign-out on one replica must
/// still change what another answers. On SQLite the "other replica" is the same server, whose own writes must show.
async fn the_grant_check_follows_a_release_and_a_sign_out_on_another_replica(store: Store) {
    let postgres = matches!(store, Store::Postgres(_));
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start_on(store, dir.path(), "", "").await.unwrap();
    sb.cone_login("alice", &[], "alice").await.unwrap();
    let token = sb.api_token("alice").unwrap();
    let (_other, other_url) = match postgres {
        true => {
            let (child, url) = sb.spawn_replica(&sb.moto.endpoint).unwrap();
            (Some(child), url)
        }
        false => (None, sb.server_url.clone()),
    };
    let id = request(&sb, &sb.server_url, &token, "Staging").await;
    eventually(Duration::from_secs(30), "the request is granted", async || {
        task(&sb.server_url, &token, id).await.state == TaskState::Granted
    })
    .await;
    let entitlement = ask(&sb, "Staging", "ReadOnlyAccess", "").entitlement_id;
    let other = Client::new(&other_url, &token).unwrap();
    let check = async || other.entitlement("aws", &entitlement).await;
    // Twice, so that the second answer comes from memory.
    for _ in 0..2 {
        let e = check().await.unwrap();
        assert!(e.granted_until.is_some(), "{e:?}");
    }

    drop_access(&sb, &sb.server_url, &token, "Staging").await;
    eventually(Duration::from_secs(5), "the other replica sees the release", async || {
        check().await.is_ok_and(|e| e.granted_until.is_none())
    })
    .await;

    sb.client("alice").unwrap().logout().await.unwrap();
    eventually(Duration::from_secs(5), "the other replica refuses the signed-out token", async || {
        matches!(check().await, Err(cone_client::Failure::Api { status: 401, .. }))
    })
    .await;
}

/// One request a webhook receiver got.
#[derive(Debug, Clone)]
struct Hit {
    path: String,
    delivery_id: String,
    event: String,
    body: Value,
    /// The signature matched the path's secret and the timestamp was within five minutes.
    verified: bool,
    /// Answered 2xx.
    accepted: bool,
}

/// A webhook receiver on a free loopback port, as an integration would write one: it checks each request's
/// signature against the secret of its path, answers 503 to the first `fail_first` requests and 204 after that.
#[derive(Clone)]
struct Receiver {
    secrets: Arc<BTreeMap<String, String>>,
    fail_first: usize,
    hits: Arc<Mutex<Vec<Hit>>>,
}

impl Receiver {
    async fn start(secrets: &[(&str, &str)], fail_first: usize) -> (Receiver, String) {
        let receiver = Receiver {
            secrets: Arc::new(secrets.iter().map(|(p, s)| (p.to_string(), s.to_string())).collect()),
            fail_first,
            hits: Arc::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app =
            axum::Router::new().route("/{path}", axum::routing::post(receive_webhook)).with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        (receiver, url)
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    /// The events accepted on `path`, sorted.
    fn accepted(&self, path: &str) -> Vec<String> {
        let mut events: Vec<String> =
            self.hits().into_iter().filter(|h| h.path == path && h.accepted).map(|h| h.event).collect();
        events.sort();
        events
    }
}

async fn receive_webhook(
    State(r): State<Receiver>,
    axum::extract::Path(path): axum::extract::Path<String>,
    headers: axum::http::HeaderMap,
    body: String,
) -> axum::http::StatusCode {
    use hmac::Mac;
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let timestamp = header("cone-webhook-timestamp");
    let verified = r.secrets.get(&path).is_some_and(|secret| {
        let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(timestamp.as_bytes());
        mac.update(b".");
        mac.update(body.as_bytes());
        let fresh = timestamp.parse::<i64>().is_ok_and(|t| (t - chrono::Utc::now().timestamp()).abs() <= 300);
        let signature = header("cone-webhook-signature");
        fresh
            && signature
                .strip_prefix("sha256=")
                .and_then(|h| hex::decode(h).ok())
                .is_some_and(|sig| mac.verify_slice(&sig).is_ok())
    });
    let mut hits = r.hits.lock().unwrap();
    let accepted = verified && hits.len() >= r.fail_first;
    hits.push(Hit {
        path,
        delivery_id: header("cone-webhook-id"),
        event: header("cone-webhook-event"),
        body: serde_json::from_str(&body).unwrap_or(Value::Null),
        verified,
        accepted,
    });
    if accepted { axum::http::StatusCode::NO_CONTENT } else { axum::http::StatusCode::SERVICE_UNAVAILABLE }
}

/// Files alice's request for `account`'s ReadOnlyAccess through the API of the server at `url`; returns the task id.
async fn request(sb: &Sandbox, url: &str, token: &str, account: &str) -> i64 {
    let request = ask(sb, account, "ReadOnlyAccess", "webhooks");
    Client::new(url, token)
        .unwrap()
        .create_task(&request)
        .await
        .unwrap_or_else(|e| panic!("POST /api/v1/tasks: {e}"))
        .id
}

/// Releases alice's grant on `account`'s ReadOnlyAccess through the API of the server at `url`.
async fn drop_access(sb: &Sandbox, url: &str, token: &str, account: &str) {
    let entitlement = ask(sb, account, "ReadOnlyAccess", "").entitlement_id;
    let dropped = Client::new(url, token).unwrap().drop_access("aws", &entitlement).await;
    dropped.unwrap_or_else(|e| panic!("POST /api/v1/drop: {e}"));
}

/// A request that is granted and released, and one that is granted and expires: every task and grant event reaches
/// the webhook subscribed to all of them, and the revocations the one subscribed to `grant.revoke`, each signed with
/// its webhook's secret and accepted exactly once, though the receiver refuses the first attempts.
async fn webhooks_carry_each_task_and_grant_event_once_signed_and_retried(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let secrets = [("all", "all-secret-0123456789abcdef"), ("revocations", "revocations-secret-fedcba9876543210")];
    let (receiver, url) = Receiver::start(&secrets, 2).await;
    let secret_dir = tempfile::tempdir().unwrap();
    let mut settings = String::from("webhooks:\n");
    for (path, secret) in secrets {
        let file = secret_dir.path().join(path);
        std::fs::write(&file, format!("{secret}\n")).unwrap();
        let events = if path == "all" { "['task.*', 'grant.*']" } else { "[grant.revoke]" };
        settings += &format!(
            "  - {{ name: {path}, url: '{url}/{path}', secret_file: '{}', events: {events} }}\n",
            file.display()
        );
    }
    let short = concat!(
        "  - name: short-sandbox-readonly\n",
        "    match: { account: Sandbox, permission_set: ReadOnlyAccess }\n",
        "    max_duration: 5s\n",
        "    steps: [accept]\n",
    );
    let sb = Sandbox::start_on(store, dir.path(), &settings, short).await.unwrap();
    sb.cone_login("alice", &[], "alice").await.unwrap();
    let token = sb.api_token("alice").unwrap();

    let released = request(&sb, &sb.server_url, &token, "Staging").await;
    eventually(Duration::from_secs(30), "the Staging grant is active", async || {
        task(&sb.server_url, &token, released).await.state == TaskState::Granted
    })
    .await;
    drop_access(&sb, &sb.server_url, &token, "Staging").await;
    let expired = request(&sb, &sb.server_url, &token, "Sandbox").await;
    eventually(Duration::from_secs(60), "both grants are revoked", async || {
        let revoked = async |id| events(&task(&sb.server_url, &token, id).await, "grant.revoke") == 1;
        revoked(released).await && revoked(expired).await
    })
    .await;

    let all = [
        "grant.activate",
        "grant.activate",
        "grant.expire",
        "grant.release",
        "grant.revoke",
        "grant.revoke",
        "task.create",
        "task.create",
    ];
    eventually(Duration::from_secs(60), "every event is delivered", async || {
        receiver.accepted("all") == all && receiver.accepted("revocations") == ["grant.revoke", "grant.revoke"]
    })
    .await;
    // Nothing more arrives: a delivery the receiver accepted is not sent again.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let hits = receiver.hits();
    assert!(hits.iter().all(|h| h.verified), "every request is signed with its webhook's secret: {hits:#?}");
    assert_eq!(hits.iter().filter(|h| !h.accepted).count(), 2, "{hits:#?}");
    let mut accepted: Vec<&str> = hits.iter().filter(|h| h.accepted).map(|h| h.delivery_id.as_str()).collect();
    assert_eq!(accepted.len(), all.len() + 2);
    accepted.sort();
    accepted.dedup();
    assert_eq!(accepted.len(), all.len() + 2, "each delivery id accepted exactly once");
    for refused in hits.iter().filter(|h| !h.accepted) {
        assert!(accepted.contains(&refused.delivery_id.as_str()), "a refused delivery is retried under its id");
    }

    // The payloads say what happened to which task, and who did it.
    let delivered = |event: &str, task_id: i64| -> Value {
        let hit =
            hits.iter().find(|h| h.path == "all" && h.accepted && h.event == event && h.body["task_id"] == task_id);
        hit.unwrap_or_else(|| panic!("no {event} of task {task_id} in {hits:#?}")).body.clone()
    };
    let created = delivered("task.create", released);
    assert_eq!((created["actor"].as_str(), created["task"]["requester"].as_str()), (Some("alice"), Some("alice")));
    assert_eq!(created["task"]["account_name"], "Staging");
    assert_eq!(created["task"]["permission_set_name"], "ReadOnlyAccess");
    assert_eq!(created["detail"]["justification"], "webhooks");
    assert_eq!(created["id"], hits.iter().find(|h| h.body == created).unwrap().delivery_id);
    assert_eq!(delivered("grant.release", released)["actor"], "alice");
    assert_eq!(delivered("grant.expire", expired)["actor"], "cone");
    assert_eq!(delivered("grant.revoke", expired)["task"]["account_name"], "Sandbox");
    assert_audit_intact(&sb);
}

/// One server (no replica to take over): it is killed (SIGKILL) after AWS made the assignment but before the server
/// heard so; the restarted server takes the job over once its lease ends, finds the assignment and grants, without
/// asking AWS to create it again.
async fn a_server_killed_while_aws_provisions_grants_once_after_restart(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let (sb, token, proxy, aws) = behind_proxy(store, dir.path(), LEASE_5S, "", "sso:CreateAccountAssignment").await;
    let (server, url) = sb.spawn_replica(&aws).unwrap();

    let id = request(&sb, &url, &token, "Staging").await;
    let alice = sb.org.user_id("alice").unwrap().to_string();
    eventually(Duration::from_secs(30), "AWS made the assignment and its answer is held", async || {
        proxy.script_used() && principals(&sb, "Staging", "ReadOnlyAccess").await == [alice.clone()]
    })
    .await;
    assert_eq!(task(&url, &token, id).await.state, TaskState::Provisioning);
    drop(server);

    let (_restarted, url) = sb.spawn_replica(&aws).unwrap();
    eventually(Duration::from_secs(30), "the restarted server grants once the lease ends", async || {
        task(&url, &token, id).await.state == TaskState::Granted
    })
    .await;
    assert_eq!(principals(&sb, "Staging", "ReadOnlyAccess").await, [alice]);
    assert_eq!(proxy.calls("sso:CreateAccountAssignment"), 1, "the assignment is created once");
    assert_eq!(events(&task(&url, &token, id).await, "grant.activate"), 1);

    drop_access(&sb, &url, &token, "Staging").await;
    eventually(Duration::from_secs(30), "the released grant is revoked", async || {
        events(&task(&url, &token, id).await, "grant.revoke") == 1
    })
    .await;
    assert!(principals(&sb, "Staging", "ReadOnlyAccess").await.is_empty());
    assert_audit_intact(&sb);
}

/// SIGTERM while AWS makes a grant's assignment (its answer held): the server lets the job run for `stop_grace`,
/// gives it back and exits. The restarted server takes the job at once rather than after its 10-minute lease, finds
/// the assignment and grants, without asking AWS to create it again.
async fn sigterm_during_provisioning_gives_the_job_back_and_the_restart_grants_once(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let server = "job_lease: 10m\nstop_grace: 2s\n";
    let (sb, token, proxy, aws) = behind_proxy(store, dir.path(), server, "", "sso:CreateAccountAssignment").await;
    let (mut server, url) = sb.spawn_replica(&aws).unwrap();

    let id = request(&sb, &url, &token, "Staging").await;
    let alice = sb.org.user_id("alice").unwrap().to_string();
    eventually(Duration::from_secs(30), "AWS made the assignment and its answer is held", async || {
        proxy.script_used() && principals(&sb, "Staging", "ReadOnlyAccess").await == [alice.clone()]
    })
    .await;
    let stopped = Instant::now();
    let status = tokio::task::spawn_blocking(move || server.terminate(Duration::from_secs(20)).map(|s| (s, server)))
        .await
        .unwrap()
        .unwrap();
    assert!(status.0.success(), "exit after SIGTERM: {:?}", status.0);
    eprintln!("exited {:?} after SIGTERM with a job in flight (stop_grace 2 s)", stopped.elapsed());

    let (_restarted, url) = sb.spawn_replica(&aws).unwrap();
    let started = Instant::now();
    eventually(Duration::from_secs(30), "the restarted server takes the job at once and grants", async || {
        task(&url, &token, id).await.state == TaskState::Granted
    })
    .await;
    eprintln!("granted {:?} after the restarted server was ready", started.elapsed());
    assert_eq!(principals(&sb, "Staging", "ReadOnlyAccess").await, [alice]);
    assert_eq!(proxy.calls("sso:CreateAccountAssignment"), 1, "the assignment is created once");
    assert_eq!(events(&task(&url, &token, id).await, "grant.activate"), 1);
    assert_audit_intact(&sb);
}

/// A released grant's revocation: AWS deleted the assignment, but the server is killed (SIGKILL) before it hears
/// so, with the grant still `revoking`. The restarted server takes the revoke job over once its lease ends, is told
/// there is nothing left to delete, and ends the grant: nothing is lost, nothing is recorded twice, and the audit
/// chain holds.
async fn a_server_killed_while_aws_revokes_ends_the_grant_after_restart(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let (sb, token, proxy, aws) = behind_proxy(store, dir.path(), LEASE_5S, "", "sso:DeleteAccountAssignment").await;
    let (server, url) = sb.spawn_replica(&aws).unwrap();

    let id = request(&sb, &url, &token, "Staging").await;
    let alice = sb.org.user_id("alice").unwrap().to_string();
    eventually(Duration::from_secs(30), "the grant is active", async || {
        task(&url, &token, id).await.state == TaskState::Granted
    })
    .await;
    assert_eq!(principals(&sb, "Staging", "ReadOnlyAccess").await, [alice]);
    drop_access(&sb, &url, &token, "Staging").await;
    eventually(Duration::from_secs(30), "AWS removed the assignment and its answer is held", async || {
        proxy.script_used() && principals(&sb, "Staging", "ReadOnlyAccess").await.is_empty()
    })
    .await;
    let before = task(&url, &token, id).await;
    assert_eq!((before.state, events(&before, "grant.revoke")), (TaskState::Released, 0));
    drop(server);

    let (_restarted, url) = sb.spawn_replica(&aws).unwrap();
    let started = Instant::now();
    eventually(Duration::from_secs(30), "the restarted server ends the grant once the lease ends", async || {
        events(&task(&url, &token, id).await, "grant.revoke") == 1
    })
    .await;
    eprintln!("revoked {:?} after the restarted server was ready", started.elapsed());
    let after = task(&url, &token, id).await;
    assert_eq!(after.state, TaskState::Released);
    for action in ["task.create", "grant.activate", "grant.release", "grant.revoke"] {
        assert_eq!(events(&after, action), 1, "{action} in {after:?}");
    }
    assert!(principals(&sb, "Staging", "ReadOnlyAccess").await.is_empty());
    // The restarted server deletes again, and moto answers that there is nothing to delete.
    assert_eq!(proxy.calls("sso:DeleteAccountAssignment"), 2, "the restarted server deletes once more");
    // Nothing is left to do: no job waits, and alice holds nothing.
    let scrape = reqwest::Client::new().get(format!("{url}/metrics")).bearer_auth(sb.api_token("carol").unwrap());
    let resp = scrape.send().await.unwrap().text().await.unwrap();
    assert!(!resp.lines().any(|l| l.starts_with("cone_jobs{")), "jobs still pending or failed:\n{resp}");
    assert!(resp.lines().any(|l| l == "cone_grants_active 0"), "{resp}");
    assert_audit_intact(&sb);
}

/// `cone-server ARGS --config <the sandbox's>`.
fn cone_server(sb: &Sandbox, args: &[&str]) -> Output {
    std::process::Command::new(cone_testkit::target_bin("cone-server").unwrap())
        .args(args)
        .arg("--config")
        .arg(sb.dir.join("cone-server.yaml"))
        .output()
        .unwrap()
}

/// The audit hash as docs/audit.md defines it, written from the document rather than from the server's code:
/// SHA-256 over prev_hash, at (decimal), actor, action, subject and detail, each as an 8-byte big-endian length and
/// its UTF-8 bytes.
fn audit_hash(e: &Value) -> String {
    use sha2::Digest;
    let mut h = sha2::Sha256::new();
    let at = e["at_unix"].as_i64().unwrap().to_string();
    let field = |name: &str| e[name].as_str().unwrap_or_else(|| panic!("no {name} in {e}")).to_string();
    for part in [field("prev_hash"), at, field("actor"), field("action"), field("subject"), field("detail_text")] {
        h.update((part.len() as u64).to_be_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(h.finalize())
}

/// After some activity, `export-audit` writes one JSON object a line whose chain recomputes from the lines alone;
/// `--since` narrows it; `GET /api/v1/audit` pages through the same objects; `verify-audit` still passes.
async fn the_audit_log_exports_as_json_lines_that_recompute_its_chain(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start_on(store, dir.path(), "", "").await.unwrap();
    sb.cone_login("alice", &[], "alice").await.unwrap();
    sb.cone_login("carol", &[], "carol").await.unwrap();
    let (alice, carol) = (sb.api_token("alice").unwrap(), sb.api_token("carol").unwrap());
    let id = request(&sb, &sb.server_url, &alice, "Staging").await;
    eventually(Duration::from_secs(30), "the grant is active", async || {
        task(&sb.server_url, &alice, id).await.state == TaskState::Granted
    })
    .await;
    let text = "«quoted» \"text\"\nover two lines";
    sb.client("alice").unwrap().act(id, "comment", text).await.unwrap();
    let comment = serde_json::json!({ "comment": text });
    drop_access(&sb, &sb.server_url, &alice, "Staging").await;
    eventually(Duration::from_secs(30), "the grant is revoked", async || {
        events(&task(&sb.server_url, &alice, id).await, "grant.revoke") == 1
    })
    .await;

    let file = dir.path().join("audit.jsonl");
    let o = cone_server(&sb, &["export-audit", "--output", file.to_str().unwrap()]);
    assert_ok(&o, "cone-server export-audit --output");
    let text = std::fs::read_to_string(&file).unwrap();
    let lines: Vec<Value> = text.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let summary = String::from_utf8_lossy(&o.stderr);
    assert!(summary.contains(&format!("Exported {} audit entries (1 to", lines.len())), "{summary}");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&file).unwrap().permissions().mode() & 0o777, 0o600);

    let actions: Vec<&str> = lines.iter().map(|l| l["action"].as_str().unwrap()).collect();
    for action in ["sync", "login", "task.create", "grant.activate", "task.comment", "grant.release", "grant.revoke"] {
        assert!(actions.contains(&action), "{action} in {actions:?}");
    }
    let mut prev = String::new();
    for (i, line) in lines.iter().enumerate() {
        let keys: Vec<&str> = line.as_object().unwrap().keys().map(String::as_str).collect();
        let expected =
            ["action", "actor", "at", "at_unix", "detail", "detail_text", "hash", "id", "prev_hash", "subject"];
        assert_eq!(keys, expected, "line {i}");
        assert_eq!(line["id"], i as i64 + 1, "in id order, from the first");
        let at = chrono::DateTime::parse_from_rfc3339(line["at"].as_str().unwrap()).unwrap();
        assert_eq!(at.timestamp(), line["at_unix"].as_i64().unwrap());
        let detail: Value = serde_json::from_str(line["detail_text"].as_str().unwrap()).unwrap();
        assert_eq!(detail, line["detail"]);
        assert_eq!(line["prev_hash"], prev.as_str(), "line {i} names its predecessor");
        assert_eq!(line["hash"], audit_hash(line).as_str(), "line {i} recomputes");
        prev = audit_hash(line);
    }
    let commented = lines.iter().find(|l| l["action"] == "task.comment").unwrap();
    assert_eq!(commented["detail"], comment);

    // The same to standard output; and from a time on.
    let o = cone_server(&sb, &["export-audit"]);
    assert_ok(&o, "cone-server export-audit");
    assert!(String::from_utf8_lossy(&o.stdout).starts_with(&text));
    let since = lines.iter().find(|l| l["action"] == "grant.activate").unwrap();
    let o = cone_server(&sb, &["export-audit", "--since", since["at"].as_str().unwrap()]);
    assert_ok(&o, "cone-server export-audit --since");
    let later: Vec<Value> =
        String::from_utf8_lossy(&o.stdout).lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let from = since["at_unix"].as_i64().unwrap();
    let expected: Vec<Value> = lines.iter().filter(|l| l["at_unix"].as_i64().unwrap() >= from).cloned().collect();
    assert!(expected.len() < lines.len() && later[..expected.len()] == expected[..], "{later:?}");
    let bad = cone_server(&sb, &["export-audit", "--since", "yesterday"]);
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("is not a day or an RFC 3339 time"));

    // The API pages through the same objects, for administrators.
    // Compared as JSON values: the page's objects must be the export's, field for field.
    let carol = Client::new(&sb.server_url, &carol).unwrap();
    let mut paged = Vec::new();
    let mut token: Option<String> = None;
    loop {
        let mut path = "/api/v1/audit?page_size=4".to_string();
        if let Some(t) = &token {
            path += &format!("&page_token={t}");
        }
        let page: Value = carol.get(&path).await.unwrap();
        paged.extend(page["entries"].as_array().unwrap().iter().cloned());
        match page["next_page_token"].as_str() {
            Some(t) => token = Some(t.to_string()),
            None => break,
        }
    }
    assert_eq!(paged[..lines.len()], lines[..]);
    let grants: AuditPage = carol.get("/api/v1/audit?action=grant.*").await.unwrap();
    let grant_actions: Vec<&str> = grants.entries.iter().map(|e| e.action.as_str()).collect();
    assert_eq!(grant_actions, ["grant.activate", "grant.release", "grant.revoke"]);
    let refused = Client::new(&sb.server_url, &alice).unwrap().get::<AuditPage>("/api/v1/audit").await;
    assert!(matches!(refused, Err(cone_client::Failure::Api { status: 403, .. })), "{refused:?}");
    let bad = carol.get::<AuditPage>("/api/v1/audit?since=soon").await;
    assert!(matches!(bad, Err(cone_client::Failure::Api { status: 400, .. })), "{bad:?}");
    assert_audit_intact(&sb);
}

/// SIGTERM, as Kubernetes and systemd stop a process: a long poll in flight is answered at once, with the task as
/// it is, and the server exits cleanly well within a pod's 30-second grace period.
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_answers_long_polls_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start(dir.path(), "").await.unwrap();
    sb.cone_login("alice", &[], "alice").await.unwrap();
    let token = sb.api_token("alice").unwrap();
    let (mut replica, url) = sb.spawn_replica(&sb.moto.endpoint).unwrap();
    let client = Client::new(&url, &token).unwrap();
    let pending = client.create_task(&ask(&sb, "Production", "AdministratorAccess", "deploy")).await.unwrap();
    assert_eq!(pending.state, TaskState::PendingApproval);

    let poll = tokio::spawn(async move {
        let started = Instant::now();
        let task = client.task(pending.id, Some(TaskState::PendingApproval), Duration::from_secs(60)).await;
        (task, started.elapsed())
    });
    tokio::time::sleep(Duration::from_millis(500)).await;
    let stopped = Instant::now();
    let status = tokio::task::spawn_blocking(move || replica.terminate(Duration::from_secs(20)).map(|s| (s, replica)))
        .await
        .unwrap()
        .unwrap();
    assert!(status.0.success(), "exit after SIGTERM: {:?}", status.0);
    let (task, waited) = poll.await.unwrap();
    let task = task.expect("the long poll is answered, not cut off");
    assert_eq!(task.state, TaskState::PendingApproval);
    assert!(waited < Duration::from_secs(30), "the long poll waited {waited:?}");
    eprintln!("stopped {:?} after SIGTERM; the long poll had waited {waited:?}", stopped.elapsed());
    assert!(Client::new(&url, &token).unwrap().me().await.is_err(), "nothing listens after the exit");
}

/// The PostgreSQL password kept out of the URL, in a file or the environment: cone-server signs in with it, and
/// says what to fix when PostgreSQL refuses it.
#[test]
fn the_postgresql_password_comes_from_a_file_or_the_environment() {
    let Some(pg) = cone_testkit::Postgres::start().unwrap() else {
        eprintln!("SKIP the_postgresql_password_comes_from_a_file_or_the_environment: PostgreSQL is not installed");
        return;
    };
    let url = pg.password_user("cone", "a-long-password%/@").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("db-password");
    std::fs::write(&secret, "a-long-password%/@\n").unwrap();
    let verify = |source: &str, env: &str| {
        let file = dir.path().join("cone-server.yaml");
        std::fs::write(&file, format!("database: {url}\n{source}\naws: {{ sso_region: us-east-1 }}\n")).unwrap();
        std::process::Command::new(cone_testkit::target_bin("cone-server").unwrap())
            .args(["verify-audit", "--config"])
            .arg(&file)
            .env("CONE_DB_PASSWORD", env)
            .output()
            .unwrap()
    };
    let from_file = verify(&format!("database_password_file: {}", secret.display()), "");
    assert_ok(&from_file, "the password from a file");
    assert!(String::from_utf8_lossy(&from_file.stderr).contains("The audit log is intact."));
    assert_ok(&verify("database_password_env: CONE_DB_PASSWORD", "a-long-password%/@"), "the password from the env");

    let wrong = verify("database_password_env: CONE_DB_PASSWORD", "not-the-password");
    assert!(!wrong.status.success());
    let said = String::from_utf8_lossy(&wrong.stderr);
    assert!(said.contains("password authentication failed for user \"cone\""), "{said}");
    assert!(!said.contains("not-the-password"), "the password is never shown: {said}");
    let both = verify(&format!("database_password_env: X\ndatabase_password_file: {}", secret.display()), "");
    let said = String::from_utf8_lossy(&both.stderr);
    assert!(said.contains("give exactly one of `database_password_env` and `database_password_file`"), "{said}");
}

/// A server older than its database (a downgrade) refuses it and says what to do, rather than running on tables it
/// does not know.
#[tokio::test(flavor = "multi_thread")]
async fn an_older_server_refuses_a_database_a_newer_one_upgraded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cone.db");
    let config = dir.path().join("cone-server.yaml");
    std::fs::write(&config, format!("database: {}\naws: {{ sso_region: us-east-1 }}\n", db.display())).unwrap();
    let verify = || {
        std::process::Command::new(cone_testkit::target_bin("cone-server").unwrap())
            .args(["verify-audit", "--config"])
            .arg(&config)
            .output()
            .unwrap()
    };
    assert_ok(&verify(), "a new database");
    let pool = sqlx::SqlitePool::connect(&format!("sqlite://{}", db.display())).await.unwrap();
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, installed_on, success, checksum, execution_time)
         VALUES (99999, 'from a later release', CURRENT_TIMESTAMP, 1, x'00', 0)",
    )
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;
    let o = verify();
    assert!(!o.status.success());
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(
        said.contains("was upgraded by a newer cone-server (its migration 99999 is unknown to this one)"),
        "{said}"
    );
}

/// `cone-server config check` reads a configuration and its secrets as `serve` would, and starts nothing.
#[test]
fn config_check_says_what_a_file_sets_up_or_its_first_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let check = |name: &str, text: &str| {
        let file = dir.path().join(name);
        std::fs::write(&file, text).unwrap();
        let o = std::process::Command::new(cone_testkit::target_bin("cone-server").unwrap())
            .args(["config", "check", "--config"])
            .arg(&file)
            .env_remove("SMTP_PASSWORD")
            .output()
            .unwrap();
        let (out, err) =
            (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned());
        (o.status.success(), out, err)
    };
    let db = dir.path().join("never-made.db");
    let base = format!(
        "database: {}\naws: {{ sso_region: eu-west-1 }}\npolicies:\n  - name: readonly\n    match: {{ permission_set: ReadOnlyAccess }}\n    max_duration: 1h\n    steps: [accept]\n",
        db.display()
    );
    let secret = dir.path().join("smtp.secret");
    // A short password, as a mail provider may give: only secrets Cone signs with need 16 bytes.
    std::fs::write(&secret, "pw").unwrap();
    std::fs::set_permissions(&secret, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let email = |password: &str| {
        format!(
            "notifications:\n  email: {{ from: cone@example.com, host: smtp.example.com, username: cone, {password} }}\n"
        )
    };

    let (ok, out, err) =
        check("good.yaml", &format!("{base}{}", email(&format!("password_file: {}", secret.display()))));
    assert!(ok, "{err}");
    for line in [
        "is valid, and every secret it names was read.",
        "Policies: readonly.",
        "Webhooks: none.",
        "Notifications: email through smtp.example.com:587.",
        "AWS: Identity Center in eu-west-1, called from this server; provisioning on.",
    ] {
        assert!(out.contains(line), "no {line:?} in {out}");
    }
    assert!(!db.exists(), "nothing is opened");

    let (ok, _, err) = check("missing.yaml", &format!("{base}{}", email("password_env: SMTP_PASSWORD")));
    assert!(!ok && err.contains("SMTP_PASSWORD") && err.contains("is not set"), "{err}");
    let (ok, _, err) = check("inline.yaml", &format!("{base}{}", email("password: hunter2")));
    assert!(!ok && err.contains("may not be written in the configuration"), "{err}");
    assert!(!err.contains("hunter2"), "the secret is never repeated: {err}");
    let (ok, _, err) = check("typo.yaml", &base.replace("max_duration", "max_durration"));
    assert!(!ok && err.contains("max_durration"), "{err}");
}
