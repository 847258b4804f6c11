//! The operations endpoints of a running cone-server: `/readyz` and a `/metrics` scrape after a few requests, a
//! sync resumed, and sync-only mode, on SQLite and on PostgreSQL. Needs `cargo build --workspace` and the .venv that `cargo xtask test` prepares.

use cone_api::ConnectorStatus;
use cone_client::{Client, Method};
use cone_testkit::faults::{Failure, FaultProxy};
use cone_testkit::{Sandbox, Store};

use crate::value;

cone_testkit::on_both_stores!(
    metrics_count_requests_by_route_template_and_report_the_database,
    a_restarted_server_resumes_the_sync_an_earlier_one_left_unfinished,
    without_provisioning_the_server_decides_but_never_writes_to_aws,
);

async fn metrics_count_requests_by_route_template_and_report_the_database(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::start_on(store, dir.path(), "", "").await.unwrap();
    for user in ["alice", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let (alice, carol) = (sb.api_token("alice").unwrap(), sb.api_token("carol").unwrap());
    let http = reqwest::Client::new();
    let get = async |path: &str| http.get(format!("{}{path}", sb.server_url)).send().await.unwrap();
    let scrape = async |base: &str, token: Option<&str>| {
        let req = http.get(format!("{base}/metrics"));
        let req = if let Some(t) = token { req.bearer_auth(t) } else { req };
        req.send().await.unwrap()
    };
    // /metrics reads the database: administrators only.
    assert_eq!(scrape(&sb.server_url, None).await.status(), 401);
    assert_eq!(scrape(&sb.server_url, Some(&alice)).await.status(), 403);

    let ready = get("/readyz").await;
    assert_eq!(ready.status(), 200);
    assert_eq!(ready.text().await.unwrap(), "ok");
    for id in [1, 2, 3] {
        // Unauthenticated: 401, under the route's template rather than each path.
        assert_eq!(get(&format!("/api/v1/tasks/{id}")).await.status(), 401);
    }
    assert_eq!(get("/healthz").await.status(), 200);

    let resp = scrape(&sb.server_url, Some(&carol)).await;
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let series = |s: &str| value(&text, s).unwrap_or_else(|| panic!("no series `{s}` in:\n{text}"));

    let labels = r#"method="GET",route="/api/v1/tasks/{id}",status="401""#;
    assert_eq!(series(&format!("cone_http_requests_total{{{labels}}}")), 3.0);
    assert_eq!(series(&format!("cone_http_request_duration_seconds_count{{{labels}}}")), 3.0);
    let slowest = series(&format!("cone_http_request_duration_seconds_sum{{{labels}}}"));
    assert!(slowest > 0.0 && slowest < 3.0, "3 rejected requests took {slowest} s in all");
    assert_eq!(series(r#"cone_http_requests_total{method="GET",route="/readyz",status="200"}"#), 1.0);
    assert!(!text.contains("/api/v1/tasks/1"), "a raw path became a label:\n{text}");

    assert_eq!(series("cone_grants_active"), 0.0);
    assert_eq!(series("cone_sync_ok"), 1.0);
    let synced = series("cone_sync_last_success_timestamp_seconds");
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs_f64();
    assert!((now - 120.0..=now).contains(&synced), "last sync at {synced}, now {now}");

    // With `metrics_listen`, scrapers read it there without a token, and the main listener no longer serves it.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    sb.reconfigure_server(|c| format!("{c}metrics_listen: 127.0.0.1:{port}\n")).unwrap();
    let open = scrape(&format!("http://127.0.0.1:{port}"), None).await;
    assert_eq!(open.status(), 200);
    assert!(open.text().await.unwrap().contains("cone_grants_active 0"));
    assert_eq!(scrape(&sb.server_url, Some(&carol)).await.status(), 404);
}

/// `CONE_LOG_FORMAT=json` (`--log-format json`): every log line is a JSON object, and each request is logged with
/// its method, route template, status and time, never its path, query or token.
#[tokio::test(flavor = "multi_thread")]
async fn json_logs_carry_a_request_log_without_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::start(dir.path(), "").await.unwrap();
    sb.cone_login("alice", &[], "alice").await.unwrap();
    let token = sb.api_token("alice").unwrap();
    sb.stop_server();
    let log_path = dir.path().join("server.log");
    let env = [("CONE_LOG_FORMAT", "json"), ("CONE_LOG", "info")];
    let (server, url) = sb.spawn_replica_logging(&env, std::fs::File::create(&log_path).unwrap()).unwrap();
    let http = reqwest::Client::new();
    let me = http.get(format!("{url}/api/v1/me?code=ABCD-EFGH")).bearer_auth(&token).send().await.unwrap();
    assert_eq!(me.status(), 200);
    assert_eq!(http.get(format!("{url}/api/v1/tasks/42")).send().await.unwrap().status(), 401);
    drop(server);

    let log = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> =
        log.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON line ({e}): {l}"))).collect();
    let requests: Vec<_> = lines.iter().filter(|l| l["target"] == "request").collect();
    let logged = |route: &str, status: &str| {
        requests.iter().find(|l| l["route"] == route && l["status"] == status && l["method"] == "GET")
    };
    let me = logged("/api/v1/me", "200").unwrap_or_else(|| panic!("no request line for /api/v1/me in:\n{log}"));
    assert!(me["ms"].as_f64().is_some_and(|ms| ms >= 0.0), "{me}");
    assert!(logged("/api/v1/tasks/{id}", "401").is_some(), "{log}");
    assert!(lines.iter().any(|l| l["level"] == "INFO" && l["message"].as_str().is_some()), "{log}");
    for secret in [token.as_str(), "ABCD-EFGH", "/api/v1/tasks/42"] {
        assert!(!log.contains(secret), "{secret} is in the log:\n{log}");
    }
}

/// An administrator's "sync now": a permission set made in AWS reaches the catalog without waiting for the
/// hourly schedule; the others may not ask.
#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_asks_for_a_sync_and_the_catalog_follows_aws() {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start_with(dir.path(), "  sync_interval_secs: 3600\n", "").await.unwrap();
    for user in ["alice", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let (alice, carol) = (sb.api_token("alice").unwrap(), sb.api_token("carol").unwrap());
    let sso = aws_sdk_ssoadmin::Client::new(&cone_testkit::moto_sdk_config(&sb.moto.endpoint));
    // moto answers CreatePermissionSet in a shape the SDK reads only with these three set.
    let made = sso
        .create_permission_set()
        .instance_arn(&sb.org.instance_arn)
        .name("Auditor")
        .description("Audits")
        .session_duration("PT1H")
        .relay_state("https://console.aws.amazon.com/")
        .send()
        .await
        .unwrap();
    let arn = made.permission_set.unwrap().permission_set_arn.unwrap();
    let staging = sb.org.account_id("Staging").unwrap();
    sso.provision_permission_set()
        .instance_arn(&sb.org.instance_arn)
        .permission_set_arn(&arn)
        .target_type(aws_sdk_ssoadmin::types::ProvisionTargetType::AwsAccount)
        .target_id(staging)
        .send()
        .await
        .unwrap();

    let (alice, carol) = (Client::new(&sb.server_url, &alice).unwrap(), Client::new(&sb.server_url, &carol).unwrap());
    let auditor = async || carol.entitlements(None).await.unwrap().iter().any(|e| e.display_name == "Auditor");
    assert!(!auditor().await, "the catalog synced before the permission set was made");
    let ask = async |client: &Client| {
        client.call::<ConnectorStatus>(Method::POST, "/api/v1/connectors/sync", None::<&()>).await
    };
    assert!(matches!(ask(&alice).await, Err(cone_client::Failure::Api { status: 403, .. })));
    let before = ask(&carol).await.unwrap();
    assert_eq!(before.state, "connected", "{before:?}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !auditor().await {
        assert!(std::time::Instant::now() < deadline, "the asked-for sync did not bring Auditor into the catalog");
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

/// A server whose sync from AWS stops part-way (a call that keeps failing: alice's assignments) is killed; the next
/// server's sync takes what the first had read from the journal in the database instead of asking AWS again.
async fn a_restarted_server_resumes_the_sync_an_earlier_one_left_unfinished(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::start_on(store, dir.path(), "", "").await.unwrap();
    sb.cone_login("carol", &[], "carol").await.unwrap();
    let carol = sb.api_token("carol").unwrap();
    sb.stop_server();
    let proxy = FaultProxy::start(&sb.moto.endpoint).await.unwrap();
    let alice = sb.org.user_id("alice").unwrap();
    proxy.fail_always("sso:ListAccountAssignmentsForPrincipal", alice, Failure::Server(500));
    let metric = async |url: &str, series: &str| {
        let req = reqwest::Client::new().get(format!("{url}/metrics")).bearer_auth(&carol);
        let text = req.send().await.unwrap().text().await.unwrap();
        value(&text, series)
    };

    // Ready once its first sync has ended, here failed.
    let (stopped, url) = sb.spawn_replica(proxy.endpoint()).unwrap();
    assert_eq!(metric(&url, "cone_sync_ok").await, Some(0.0), "reading alice's assignments always fails");
    assert!(proxy.calls("sso:ListAccountAssignmentsForPrincipal") > 0);
    drop(stopped);

    let clean = FaultProxy::start(&sb.moto.endpoint).await.unwrap();
    let (_resumed, url) = sb.spawn_replica(clean.endpoint()).unwrap();
    assert_eq!(metric(&url, "cone_sync_ok").await, Some(1.0));
    let taken = metric(&url, "cone_sync_resumed_units_total").await.unwrap_or_default();
    assert!(taken > 0.0, "the restarted server's sync took nothing from the journal");
    // Everything before the assignments had been read, and of the assignments, all but alice's (and any in flight).
    assert_eq!(clean.calls("identitystore:ListGroupMemberships"), 0);
    assert_eq!(clean.calls("sso:DescribePermissionSet"), 0);
    let principals = sb.org.users.len() + 1; // and the approvers group
    let listed = clean.calls("sso:ListAccountAssignmentsForPrincipal");
    assert!(listed >= 1 && (listed as usize) < principals, "{listed} of {principals} principals' assignments read");
}

/// With `BATON_PROVISIONING=false` the server syncs and decides, but writes nothing to AWS: an auto-approved request
/// waits as provisioning and says why, no assignment appears in moto, and `/api/v1/connectors` and the console's
/// Connectors page say that provisioning is off. The same database served with provisioning on then makes it.
async fn without_provisioning_the_server_decides_but_never_writes_to_aws(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::start_on(store, dir.path(), "", "").await.unwrap();
    sb.cone_login("alice", &[], "alice").await.unwrap();
    sb.cone_login("carol", &[], "carol").await.unwrap();
    sb.stop_server();
    let (server, url) = sb.spawn_replica_with(&sb.moto.endpoint, &[("BATON_PROVISIONING", "false")]).unwrap();
    let client = |user: &str| Client::new(&url, &sb.api_token(user).unwrap()).unwrap();
    let (alice, carol) = (client("alice"), client("carol"));
    assert!(!carol.connectors().await.unwrap()[0].provisioning);
    let mut console =
        cone_testkit::console::Console::sign_in(&url, "carol", &cone_testkit::password("carol")).await.unwrap();
    let (_, page) = console.open("/console/connectors").await.unwrap();
    assert!(page.contains("Sync-only mode"), "{page}");

    let entitlement =
        format!("{}|{}", sb.org.account_id("Staging").unwrap(), sb.org.permission_set_arn("ReadOnlyAccess").unwrap());
    let ask = cone_api::CreateTask { app_id: "aws".into(), entitlement_id: entitlement, ..Default::default() };
    let task = alice.create_task(&ask).await.unwrap();
    assert_eq!(task.state, cone_api::TaskState::Provisioning);
    assert!(task.waiting_for.as_deref().is_some_and(|w| w.contains("sync-only mode")), "{task:?}");
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let alice_id = sb.org.user_id("alice").unwrap().to_string();
    assert!(!sb.assigned_principals("Staging", "ReadOnlyAccess").await.unwrap().contains(&alice_id));
    let still = alice.task(task.id, None, std::time::Duration::ZERO).await.unwrap();
    assert_eq!(still.state, cone_api::TaskState::Provisioning);
    drop(server);

    let (_server, url) = sb.spawn_replica(&sb.moto.endpoint).unwrap();
    let alice = Client::new(&url, &sb.api_token("alice").unwrap()).unwrap();
    let granted = alice.task(task.id, Some(cone_api::TaskState::Provisioning), std::time::Duration::from_secs(30));
    assert_eq!(granted.await.unwrap().state, cone_api::TaskState::Granted);
    assert!(sb.assigned_principals("Staging", "ReadOnlyAccess").await.unwrap().contains(&alice_id));
}
