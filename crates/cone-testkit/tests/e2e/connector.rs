//! The connector as a service of its own (`cone-aws serve`, `aws.connector: external`): cone-server runs with no
//! AWS or `BATON_*` variable at all, and a separate connector process, set up with `BATON_*` settings only (and
//! moto's endpoint), syncs and runs the grants' AWS calls; credentials issued by an administrator, a wrong secret
//! refused and audited, revoked sessions denied through the connector, a connector killed mid-call replaced by
//! another that finishes the job once, and a sync left unfinished resumed by another connector.

use std::time::{Duration, Instant};

use cone_api::{AuditPage, ConnectorCredentials, ConnectorStatus, TaskState};
use cone_client::Client;
use cone_testkit::faults::{Failure, FaultProxy};
use cone_testkit::{Child, Sandbox, Store};

use crate::{assert_audit_intact, attached_denial_policy, eventually, value};

cone_testkit::on_both_stores!(
    an_external_connector_syncs_grants_and_revokes_for_a_server_without_aws_credentials,
    a_connector_killed_mid_call_leaves_it_to_another_which_finishes_it_once,
    a_sync_one_connector_left_unfinished_resumes_on_another,
);

/// A sandbox whose users alice and carol (an administrator) are signed in; carol issued connector credentials, and
/// the server was restarted on the same address with `aws.connector: external` and no AWS variables (`server`
/// adds settings).
async fn external(store: Store, dir: &std::path::Path, server: &str) -> (Sandbox, Child, ConnectorCredentials) {
    let mut sb = Sandbox::start_on(store, dir, server, "").await.unwrap();
    sb.sign_in("alice").await.unwrap();
    sb.cone_login("carol", &[], "carol").await.unwrap();
    let refused = sb.cone("alice", &["connector", "rotate"]).unwrap();
    assert!(!refused.status.success(), "administrators only");
    let issued = sb.cone("carol", &["connector", "rotate", "-o", "json"]).unwrap();
    assert!(issued.status.success(), "{}", String::from_utf8_lossy(&issued.stderr));
    let credentials: ConnectorCredentials = serde_json::from_slice(&issued.stdout).unwrap();

    // The same address, so that alice's cone keeps reaching it.
    let port = sb.server_url.rsplit(':').next().unwrap().to_string();
    sb.stop_server();
    let config = sb.dir.join("cone-server.yaml");
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace("listen: 127.0.0.1:0\n", &format!("listen: 127.0.0.1:{port}\n"));
    let text =
        text.replace("aws:\n  sso_region: us-east-1\n", "aws:\n  sso_region: us-east-1\n  connector: external\n");
    std::fs::write(&config, text).unwrap();
    let (server, url) = sb.spawn_replica_without_aws().unwrap();
    assert_eq!(url, sb.server_url);
    (sb, server, credentials)
}

/// How the connectors stand, as carol sees them.
async fn connector_status(sb: &Sandbox) -> ConnectorStatus {
    sb.client("carol").unwrap().connectors().await.unwrap().remove(0)
}

/// alice's ReadOnlyAccess on Staging, through the real `aws` CLI and cone: the call's output.
fn staging_identity(sb: &Sandbox) -> std::process::Output {
    sb.caller_identity("alice", "staging-readonlyaccess").unwrap()
}

async fn an_external_connector_syncs_grants_and_revokes_for_a_server_without_aws_credentials(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let (sb, _server, credentials) = external(store, dir.path(), "  revoke_sessions: true\n").await;
    let id = credentials.client_id.as_str();
    let started = chrono::Utc::now();

    // A wrong secret: refused, audited with what it presented, and the connector stops saying why.
    let mut intruder = sb
        .spawn_connector(&sb.server_url, (id, "not-the-secret"), &sb.moto.endpoint, &[("BATON_HOST_ID", "intruder")])
        .unwrap();
    let status = loop {
        if let Some(status) = intruder.exited().unwrap() {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(!status.success());
    let audit: AuditPage = sb.client("carol").unwrap().get("/api/v1/audit?action=connector.auth_failed").await.unwrap();
    let refused = audit.entries.iter().find(|e| e.action == "connector.auth_failed").expect("the refusal is audited");
    let detail = refused.detail.to_string();
    assert!(detail.contains("wrong client secret") && detail.contains("intruder:"), "{detail}");
    assert!(!detail.contains("not-the-secret"), "{detail}");

    // The connector, with its own AWS credentials (the default chain, then the integration role by BATON_ROLE_ARN
    // and BATON_EXTERNAL_ID): it syncs, and the server lists it.
    let role = format!("arn:aws:iam::{}:role/cone-connector", sb.org.management_account_id);
    let settings = [("BATON_HOST_ID", "e2e"), ("BATON_ROLE_ARN", role.as_str()), ("BATON_EXTERNAL_ID", "cone-e2e")];
    let mut connector =
        sb.spawn_connector(&sb.server_url, (id, &credentials.client_secret), &sb.moto.endpoint, &settings).unwrap();
    eventually(Duration::from_secs(60), "the connector syncs and is listed", async || {
        let c = connector_status(&sb).await;
        c.mode == "external"
            && c.state == "connected"
            && c.last_success_at.is_some_and(|t| t >= started)
            && c.hosts.iter().any(|h| h.host_id.starts_with("e2e:") && h.client_id == id)
    })
    .await;
    let status = sb.cone("carol", &["connector", "status"]).unwrap();
    let said = String::from_utf8_lossy(&status.stdout);
    assert!(said.contains("aws connector (external): connected") && said.contains("Host e2e:"), "{said}");

    // The whole JIT flow through the real AWS CLI: the grant's assignment is made by the connector.
    let o = staging_identity(&sb);
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert!(out.contains("AWSReservedSSO_ReadOnlyAccess_"), "{out}");
    let alice = sb.org.user_id("alice").unwrap().to_string();
    assert_eq!(sb.assigned_principals("Staging", "ReadOnlyAccess").await.unwrap(), std::slice::from_ref(&alice));

    // Released: the connector removes the assignment, and (aws.revoke_sessions) puts the deny policy for the
    // sessions issued before into AWS Organizations, attached to the account.
    let o = sb.cone("alice", &["drop", "staging-readonlyaccess"]).unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    eventually(Duration::from_secs(30), "the connector removes the assignment", async || {
        sb.assigned_principals("Staging", "ReadOnlyAccess").await.unwrap().is_empty()
    })
    .await;
    let org = aws_sdk_organizations::Client::new(&cone_testkit::moto_sdk_config(&sb.moto.endpoint));
    let staging = sb.org.account_id("Staging").unwrap().to_string();
    let (content, targets) = attached_denial_policy(&org).await;
    assert_eq!(targets, [staging]);
    assert!(content.contains(&alice) && content.contains("AWSReservedSSO_ReadOnlyAccess_"), "{content}");

    // Revoked credentials: the connector is refused at its next request, and stops.
    let revoked = sb.cone("carol", &["connector", "revoke"]).unwrap();
    assert!(revoked.status.success(), "{}", String::from_utf8_lossy(&revoked.stderr));
    let deadline = Instant::now() + Duration::from_secs(40);
    while connector.exited().unwrap().is_none() {
        assert!(Instant::now() < deadline, "the connector still runs with revoked credentials");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_audit_intact(&sb);
}

/// Two connectors: the first is killed (SIGKILL) after AWS made the assignment but before it answered; its lease runs
/// out, the second takes the call, finds the assignment and answers, and the grant is active. AWS was asked to make
/// the assignment once.
async fn a_connector_killed_mid_call_leaves_it_to_another_which_finishes_it_once(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let (sb, _server, credentials) = external(store, dir.path(), "job_lease: 15s\n").await;
    let secret = (credentials.client_id.as_str(), credentials.client_secret.as_str());
    let proxy = FaultProxy::start(&sb.moto.endpoint).await.unwrap();
    proxy.fail_after_acting("sso:CreateAccountAssignment", 1, Failure::Silence);
    let first = sb.spawn_connector(&sb.server_url, secret, proxy.endpoint(), &[("BATON_HOST_ID", "first")]).unwrap();
    eventually(Duration::from_secs(60), "the first connector syncs", async || {
        connector_status(&sb).await.state == "connected"
    })
    .await;

    let alice = Client::new(&sb.server_url, &sb.api_token("alice").unwrap()).unwrap();
    let entitlement =
        format!("{}|{}", sb.org.account_id("Staging").unwrap(), sb.org.permission_set_arn("ReadOnlyAccess").unwrap());
    let request = cone_api::CreateTask {
        app_id: "aws".into(),
        entitlement_id: entitlement,
        justification: "connector killed".into(),
        ..cone_api::CreateTask::default()
    };
    let id = alice.create_task(&request).await.unwrap().id;
    let alice_id = sb.org.user_id("alice").unwrap().to_string();
    eventually(Duration::from_secs(30), "AWS made the assignment and its answer is held", async || {
        proxy.script_used() && sb.assigned_principals("Staging", "ReadOnlyAccess").await.unwrap() == [alice_id.clone()]
    })
    .await;
    drop(first);
    assert_eq!(alice.task(id, None, Duration::ZERO).await.unwrap().state, TaskState::Provisioning);

    let _second = sb.spawn_connector(&sb.server_url, secret, proxy.endpoint(), &[("BATON_HOST_ID", "second")]).unwrap();
    let started = Instant::now();
    eventually(Duration::from_secs(30), "the second connector finishes the call", async || {
        alice.task(id, None, Duration::ZERO).await.unwrap().state == TaskState::Granted
    })
    .await;
    eprintln!("granted {:?} after the second connector started", started.elapsed());
    assert_eq!(proxy.calls("sso:CreateAccountAssignment"), 1, "the assignment is made once");
    let task = alice.task(id, None, Duration::ZERO).await.unwrap();
    assert_eq!(task.events.iter().filter(|e| e.action == "grant.activate").count(), 1);
    assert_audit_intact(&sb);
}

/// Two replicas on one PostgreSQL and a connector polling each: requests filed on either replica are granted, each
/// call answered through whichever replica its connector polls (the answer reaching the waiting worker through
/// PostgreSQL's notifications when that is the other replica).
#[tokio::test(flavor = "multi_thread")]
async fn replicas_and_connectors_share_the_calls() {
    let Some(store) = Store::postgres("replicas_and_connectors_share_the_calls").unwrap() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (sb, _first, credentials) = external(store, dir.path(), "").await;
    // The second replica listens elsewhere: the configuration on a free port for its start only.
    let config = sb.dir.join("cone-server.yaml");
    let pinned = std::fs::read_to_string(&config).unwrap();
    let port = sb.server_url.rsplit(':').next().unwrap();
    std::fs::write(&config, pinned.replace(&format!("listen: 127.0.0.1:{port}"), "listen: 127.0.0.1:0")).unwrap();
    let (_second, second_url) = sb.spawn_replica_without_aws().unwrap();
    std::fs::write(&config, pinned).unwrap();

    let secret = (credentials.client_id.as_str(), credentials.client_secret.as_str());
    let _a = sb.spawn_connector(&sb.server_url, secret, &sb.moto.endpoint, &[("BATON_HOST_ID", "a")]).unwrap();
    let _b = sb.spawn_connector(&second_url, secret, &sb.moto.endpoint, &[("BATON_HOST_ID", "b")]).unwrap();
    eventually(Duration::from_secs(60), "both connectors are heard from and a sync is done", async || {
        let c = connector_status(&sb).await;
        c.state == "connected" && c.hosts.len() >= 2
    })
    .await;

    let token = sb.api_token("alice").unwrap();
    let replicas = [Client::new(&sb.server_url, &token).unwrap(), Client::new(&second_url, &token).unwrap()];
    let mut tasks = Vec::new();
    for (n, account) in ["Staging", "Production", "Sandbox"].into_iter().enumerate() {
        let entitlement =
            format!("{}|{}", sb.org.account_id(account).unwrap(), sb.org.permission_set_arn("ReadOnlyAccess").unwrap());
        let request = cone_api::CreateTask {
            app_id: "aws".into(),
            entitlement_id: entitlement,
            justification: "replicas".into(),
            ..cone_api::CreateTask::default()
        };
        tasks.push((account, replicas[n % 2].create_task(&request).await.unwrap().id));
    }
    let alice = sb.org.user_id("alice").unwrap().to_string();
    for (account, id) in tasks {
        eventually(Duration::from_secs(30), "each request is granted", async || {
            replicas[0].task(id, None, Duration::ZERO).await.unwrap().state == TaskState::Granted
        })
        .await;
        assert_eq!(
            sb.assigned_principals(account, "ReadOnlyAccess").await.unwrap(),
            std::slice::from_ref(&alice),
            "{account}"
        );
    }
    assert_audit_intact(&sb);
}

/// A connector whose sync stops part-way (reading alice's assignments always fails) leaves what it read in the
/// server's journal; the next connector's sync, asked for by an administrator, takes that from the journal instead
/// of asking AWS again.
async fn a_sync_one_connector_left_unfinished_resumes_on_another(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let (sb, _server, credentials) = external(store, dir.path(), "").await;
    let secret = (credentials.client_id.as_str(), credentials.client_secret.as_str());
    let carol = sb.api_token("carol").unwrap();
    let metric = async |series: &str| {
        let req = reqwest::Client::new().get(format!("{}/metrics", sb.server_url)).bearer_auth(&carol);
        value(&req.send().await.unwrap().text().await.unwrap(), series)
    };
    let failing = FaultProxy::start(&sb.moto.endpoint).await.unwrap();
    failing.fail_always(
        "sso:ListAccountAssignmentsForPrincipal",
        sb.org.user_id("alice").unwrap(),
        Failure::Server(500),
    );
    let first = sb.spawn_connector(&sb.server_url, secret, failing.endpoint(), &[("BATON_HOST_ID", "first")]).unwrap();
    eventually(Duration::from_secs(90), "the first connector's sync fails", async || {
        connector_status(&sb).await.last_error.is_some()
    })
    .await;
    assert_eq!(metric("cone_sync_ok").await, Some(0.0));
    assert!(failing.calls("identitystore:ListGroupMemberships") > 0);
    drop(first);

    let clean = FaultProxy::start(&sb.moto.endpoint).await.unwrap();
    let _second = sb.spawn_connector(&sb.server_url, secret, clean.endpoint(), &[("BATON_HOST_ID", "second")]).unwrap();
    let sync = "/api/v1/connectors/sync";
    sb.client("carol").unwrap().call::<serde_json::Value>(reqwest::Method::POST, sync, None::<&()>).await.unwrap();
    eventually(Duration::from_secs(60), "the second connector's sync succeeds", async || {
        metric("cone_sync_ok").await == Some(1.0)
    })
    .await;
    let taken = metric("cone_sync_resumed_units_total").await.unwrap_or_default();
    assert!(taken > 0.0, "the second connector's sync took nothing from the journal");
    assert_eq!(clean.calls("identitystore:ListGroupMemberships"), 0);
    assert_eq!(clean.calls("sso:DescribePermissionSet"), 0);
    assert!(clean.calls("sso:ListAccountAssignmentsForPrincipal") >= 1);
}
