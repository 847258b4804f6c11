//! The authorization matrix: every API endpoint and the other routes as nobody, a requester, an approver, an
//! administrator, a signed-in person unrelated to the tasks, a personal API token, a service account's token, and
//! a revoked and an expired token; and every console page and form as each person.

use cone_api::{ConfigVersion, CreateServiceToken, CreateTask, CreateToken};
use cone_testkit::Sandbox;
use cone_testkit::console::Console;
use cone_testkit::password;
use reqwest::Method;
use serde_json::{Value, json};

/// Who calls, in the order of each row's statuses. The revoked and expired tokens come last and are not listed in
/// the rows: they must be refused (401) wherever nobody is.
const WHO: [&str; 9] = ["nobody", "alice", "bob", "carol", "dave", "alice's PAT", "deploy-bot", "revoked", "expired"];

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_for_every_role() {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start(dir.path(), "").await.unwrap();
    // alice requests, bob is in the approvers group, carol administers (the sandbox's `admins`), and dave is a
    // local user with a password and nothing else.
    sb.add_local_user("dave").unwrap();
    for user in ["alice", "bob", "carol", "dave"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let (alice, carol) = (sb.client("alice").unwrap(), sb.client("carol").unwrap());
    let pat = |name: &str| CreateToken { name: name.into(), expires_in_days: Some(30) };
    let alice_pat = alice.create_token(&pat("matrix")).await.unwrap().secret;
    let bot = CreateServiceToken { service: "deploy-bot".into(), name: "matrix".into(), expires_in_days: None };
    let bot = carol.create_service_token(&bot).await.unwrap().secret;
    let revoked = alice.create_token(&pat("revoked")).await.unwrap();
    alice.revoke_token(revoked.token.id).await.unwrap();
    let expired = alice.create_token(&pat("expired")).await.unwrap().secret;
    let db = sqlx::SqlitePool::connect(&format!("sqlite://{}", sb.dir.join("cone.db").display())).await.unwrap();
    sqlx::query("UPDATE api_tokens SET expires_at = 1 WHERE name = 'expired'").execute(&db).await.unwrap();
    let tokens = [
        None,
        Some(sb.api_token("alice").unwrap()),
        Some(sb.api_token("bob").unwrap()),
        Some(sb.api_token("carol").unwrap()),
        Some(sb.api_token("dave").unwrap()),
        Some(alice_pat),
        Some(bot),
        Some(revoked.secret),
        Some(expired),
    ];
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let call = async |method: Method, path: &str, body: Body, who: &Option<String>| {
        let mut req = http.request(method, format!("{}{path}", sb.server_url));
        if let Some(t) = who {
            req = req.bearer_auth(t);
        }
        req = match body {
            Body::None => req,
            Body::Json(b) => req.json(&b),
            Body::Form(f) => req.form(&f),
        };
        req.send().await.unwrap().status().as_u16()
    };

    let entitlement = |account: &str, set: &str| {
        format!("{}|{}", sb.org.account_id(account).unwrap(), sb.org.permission_set_arn(set).unwrap())
    };
    let request = |account: &str, set: &str| json!({ "app_id": "aws", "entitlement_id": entitlement(account, set), "justification": "matrix" });
    // Three of alice's requests wait for the approvers: one to approve, one to deny, one to cancel.
    let mut pending = Vec::new();
    for account in ["Staging", "Sandbox", "Production"] {
        let ask = CreateTask {
            app_id: "aws".into(),
            entitlement_id: entitlement(account, "AdministratorAccess"),
            justification: "matrix".into(),
            ..CreateTask::default()
        };
        pending.push(format!("/api/v1/tasks/{}", alice.create_task(&ask).await.unwrap().id));
    }
    let (approve, deny, cancel) = (&pending[0], &pending[1], &pending[2]);
    let one = format!(
        "/api/v1/entitlement?app_id=aws&entitlement_id={}",
        entitlement("Staging", "AdministratorAccess").replace('|', "%7C")
    );
    let holders = format!(
        "/api/v1/entitlement/holders?app_id=aws&entitlement_id={}",
        entitlement("Staging", "AdministratorAccess").replace('|', "%7C")
    );
    // An Identity Center group's membership, an entitlement like the permission sets.
    let membership = format!("/api/v1/entitlement?app_id=aws&entitlement_id=group%7C{}", sb.org.approvers_group_id);
    let comment = || Body::Json(json!({ "comment": "a note" }));
    // API tokens to revoke: one of alice's own, and a service account's.
    let laptop = CreateToken { name: "laptop".into(), expires_in_days: None };
    let laptop = format!("/api/v1/tokens/{}", alice.create_token(&laptop).await.unwrap().token.id);
    let ci = CreateServiceToken { service: "deploy-bot".into(), name: "ci".into(), expires_in_days: None };
    let service_token = format!("/api/v1/tokens/{}", carol.create_service_token(&ci).await.unwrap().token.id);
    let readonly = Body::Json(request("Sandbox", "ReadOnlyAccess"));
    // Applying the document in force again changes nothing, so the rows after it meet the same policies.
    let in_force: ConfigVersion = carol.config(None).await.unwrap();
    let same = || Body::Json(json!({ "document": in_force.document }));
    let release = Body::Json(json!({ "app_id": "aws", "entitlement_id": entitlement("Sandbox", "ReadOnlyAccess") }));
    // A grant of alice's for administrators to withdraw (read-only access is given at once).
    let ask = CreateTask {
        app_id: "aws".into(),
        entitlement_id: entitlement("Production", "ReadOnlyAccess"),
        justification: "matrix".into(),
        ..CreateTask::default()
    };
    let withdraw = format!("/api/v1/tasks/{}/withdraw", alice.create_task(&ask).await.unwrap().id);
    let reason = Body::Json(json!({ "reason": "matrix" }));
    // An access review of alice's grant on Staging (read-only access is given at once), which bob reviews.
    let ask = CreateTask {
        app_id: "aws".into(),
        entitlement_id: entitlement("Staging", "ReadOnlyAccess"),
        justification: "matrix".into(),
        ..CreateTask::default()
    };
    let staging = alice.create_task(&ask).await.unwrap().id;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while alice.task(staging, None, std::time::Duration::ZERO).await.unwrap().state != cone_api::TaskState::Granted {
        assert!(std::time::Instant::now() < deadline, "alice's grant on Staging was not given");
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let review = || {
        json!({ "name": "matrix", "due": "2099-01-01T00:00:00Z", "scope": { "accounts": ["Staging"] },
                "reviewers": { "from": "users", "users": ["bob"], "fallback": ["carol"] } })
    };
    let campaign: cone_api::ReviewCampaign =
        carol.call(Method::POST, "/api/v1/reviews/campaigns", Some(&review())).await.unwrap();
    let campaign = format!("/api/v1/reviews/campaigns/{}", campaign.id);
    let item = carol.review_items(&[("all", "true")]).await.unwrap()[0].id;
    let device = Body::Form(vec![("client_id", cone_api::CLI_CLIENT_ID.into())]);
    let poll = Body::Form(vec![
        ("grant_type", "urn:ietf:params:oauth:grant-type:device_code".into()),
        ("device_code", "no-such-code".into()),
        ("client_id", cone_api::CLI_CLIENT_ID.into()),
    ]);

    // (method, path, body, statuses as WHO lists them, the revoked and expired tokens aside). In each row the
    // refused calls run first, so they meet the state the allowed call then changes; 0 is a call not made, where
    // alice's PAT would only repeat what alice just did. 404 means "no task you can see".
    #[rustfmt::skip]
    let matrix: Vec<(Method, String, Body, [u16; 7])> = vec![
        (Method::GET, "/api/v1/openapi.json".into(), Body::None, [200, 200, 200, 200, 200, 200, 200]),
        (Method::GET, "/healthz".into(), Body::None, [200, 200, 200, 200, 200, 200, 200]),
        (Method::GET, "/readyz".into(), Body::None, [200, 200, 200, 200, 200, 200, 200]),
        (Method::GET, "/device".into(), Body::None, [303, 303, 303, 303, 303, 303, 303]),
        (Method::POST, "/oauth/device/code".into(), device, [200, 200, 200, 200, 200, 200, 200]),
        (Method::POST, "/oauth/token".into(), poll, [400, 400, 400, 400, 400, 400, 400]),
        (Method::GET, "/api/v1/me".into(), Body::None, [401, 200, 200, 200, 200, 200, 200]),
        (Method::GET, "/api/v1/entitlements".into(), Body::None, [401, 200, 200, 200, 200, 200, 200]),
        (Method::GET, one, Body::None, [401, 200, 200, 200, 200, 200, 200]),
        (Method::GET, holders, Body::None, [401, 403, 403, 200, 403, 403, 403]),
        (Method::GET, membership, Body::None, [401, 200, 200, 200, 200, 200, 200]),
        (Method::GET, "/api/v1/tasks?scope=mine".into(), Body::None, [401, 200, 200, 200, 200, 200, 200]),
        (Method::GET, "/api/v1/tasks?scope=approvable".into(), Body::None, [401, 200, 200, 200, 200, 200, 200]),
        (Method::GET, "/api/v1/tasks?scope=all&state=live&user=alice".into(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        (Method::POST, withdraw, reason, [401, 403, 403, 200, 403, 403, 403]),
        (Method::GET, approve.clone(), Body::None, [401, 200, 200, 200, 404, 200, 404]),
        (Method::GET, format!("{approve}/events"), Body::None, [401, 200, 200, 200, 404, 200, 404]),
        (Method::POST, format!("{approve}/comment"), comment(), [401, 200, 200, 200, 404, 200, 404]),
        // Nobody decides their own request, whatever credential they hold.
        (Method::POST, format!("{deny}/deny"), comment(), [401, 403, 200, 403, 404, 403, 404]),
        (Method::POST, format!("{approve}/approve"), comment(), [401, 403, 200, 403, 404, 403, 404]),
        // The sandbox's policies have no emergency steps; only alice may escalate, and she may not here.
        (Method::POST, format!("{cancel}/escalate"), Body::None, [401, 403, 403, 403, 404, 403, 404]),
        (Method::POST, format!("{cancel}/cancel"), Body::None, [401, 200, 403, 403, 404, 0, 404]),
        (Method::POST, "/api/v1/tasks".into(), readonly, [401, 201, 201, 201, 403, 0, 403]),
        (Method::POST, "/api/v1/drop".into(), release, [401, 200, 200, 200, 200, 0, 200]),
        (Method::GET, "/api/v1/drift".into(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        (Method::GET, "/api/v1/audit?action=task.*&page_size=5".into(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        (Method::GET, "/api/v1/connectors".into(), Body::None, [401, 200, 200, 200, 200, 200, 200]),
        (Method::GET, "/metrics".into(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        (Method::POST, "/api/v1/connectors/sync".into(), Body::None, [401, 403, 403, 202, 403, 403, 403]),
        (Method::POST, "/api/v1/connectors/credentials".into(), Body::None, [401, 403, 403, 201, 403, 403, 403]),
        (Method::DELETE, "/api/v1/connectors/credentials".into(), Body::None, [401, 403, 403, 204, 403, 403, 403]),
        // The connector's own routes take its credentials (HTTP Basic), never a person's token.
        (Method::POST, "/api/v1/connector/calls/next".into(), Body::None, [401, 401, 401, 401, 401, 401, 401]),
        (Method::POST, "/api/v1/connector/calls/1/answer".into(), Body::None, [401, 401, 401, 401, 401, 401, 401]),
        (Method::POST, "/api/v1/connector/calls/1/lease".into(), Body::None, [401, 401, 401, 401, 401, 401, 401]),
        (Method::POST, "/api/v1/connector/calls/1/parts".into(), Body::None, [401, 401, 401, 401, 401, 401, 401]),
        (Method::POST, "/api/v1/connector/calls/1/journal".into(), Body::None, [401, 401, 401, 401, 401, 401, 401]),
        (Method::GET, "/api/v1/iam/access-keys?status=Active".into(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        (Method::GET, "/api/v1/iam/users".into(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        (Method::GET, "/api/v1/iam/created-users".into(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        (Method::GET, "/api/v1/config".into(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        (Method::PUT, "/api/v1/config".into(), same(), [401, 403, 403, 200, 403, 403, 403]),
        (Method::POST, "/api/v1/config/check".into(), same(), [401, 403, 403, 200, 403, 403, 403]),
        (Method::GET, "/api/v1/config/versions".into(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        (Method::GET, format!("/api/v1/config/versions/{}", in_force.version), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        // Everyone keeps their own preferences and may test their own channels; administrators see every
        // notification and test anyone's.
        (Method::GET, "/api/v1/notifications/preferences".into(), Body::None, [401, 200, 200, 200, 200, 200, 200]),
        (Method::PUT, "/api/v1/notifications/preferences".into(), Body::Json(json!({ "digest": true })), [401, 200, 200, 200, 200, 200, 200]),
        (Method::GET, "/api/v1/notifications".into(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        (Method::POST, "/api/v1/notifications/test".into(), Body::Json(json!({})), [401, 202, 202, 202, 202, 202, 202]),
        (Method::POST, "/api/v1/notifications/test".into(), Body::Json(json!({ "user": "bob" })), [401, 403, 202, 202, 403, 403, 403]),
        // Administrators run campaigns; reviewers see and decide their items (a refusal, such as alice's of her own
        // item, is listed in the answer); an item is seen by its person, its reviewers and administrators.
        (Method::POST, "/api/v1/reviews/campaigns".into(), Body::Json(review()), [401, 403, 403, 201, 403, 403, 403]),
        (Method::GET, "/api/v1/reviews/campaigns".into(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        // The sandbox's access document has no review templates: an administrator is told there is none.
        (Method::GET, "/api/v1/reviews/templates".into(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        (Method::POST, "/api/v1/reviews/templates/quarterly/campaigns".into(), Body::None, [401, 403, 403, 404, 403, 403, 403]),
        (Method::GET, campaign.clone(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        (Method::GET, format!("{campaign}/report?format=jsonl"), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        (Method::GET, "/api/v1/reviews/items".into(), Body::None, [401, 200, 200, 200, 200, 200, 200]),
        (Method::GET, "/api/v1/reviews/items?all=true".into(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        (Method::GET, format!("/api/v1/reviews/items/{item}"), Body::None, [401, 200, 200, 200, 403, 200, 403]),
        (Method::POST, format!("/api/v1/reviews/items/{item}/reassign"), Body::Json(json!({ "reviewer": "bob" })), [401, 403, 403, 200, 403, 403, 403]),
        (Method::POST, "/api/v1/reviews/decisions".into(), Body::Json(json!({ "items": [item], "decision": "certify" })), [401, 200, 200, 200, 200, 200, 200]),
        (Method::POST, format!("{campaign}/close"), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        // Slack's endpoint answers only where Slack is configured, and only Slack's signature (never a token).
        (Method::POST, "/slack/interactivity".into(), Body::Json(json!({})), [404, 404, 404, 404, 404, 404, 404]),
        // Tokens are made from a `cone login` session only: not from another token.
        (Method::POST, "/api/v1/tokens".into(), Body::Json(json!({ "name": "matrix-2" })), [401, 201, 201, 201, 201, 403, 403]),
        (Method::GET, "/api/v1/tokens".into(), Body::None, [401, 200, 200, 200, 200, 200, 200]),
        (Method::GET, "/api/v1/tokens?all=true".into(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        // Owners and administrators revoke a personal token (a second revocation changes nothing); others cannot.
        (Method::DELETE, laptop, Body::None, [401, 200, 404, 200, 404, 200, 404]),
        (Method::POST, "/api/v1/service-tokens".into(), Body::Json(json!({ "service": "matrix-bot", "name": "ci" })), [401, 403, 403, 201, 403, 403, 403]),
        // A service account's token may revoke that account's other tokens, as a person revokes their own.
        (Method::DELETE, service_token, Body::None, [401, 404, 404, 200, 404, 404, 200]),
        (Method::POST, "/api/v1/users/service:deploy-bot/sign-out".into(), Body::None, [401, 403, 403, 200, 403, 403, 403]),
        // deploy-bot was signed out just above.
        (Method::POST, "/api/v1/logout".into(), Body::None, [401, 200, 200, 200, 200, 200, 401]),
    ];
    let expected: Vec<[u16; 9]> = matrix
        .iter()
        .map(|m| {
            let refused = if m.1 == "/api/v1/openapi.json" || !m.1.starts_with("/api/") && m.1 != "/metrics" {
                m.3[0]
            } else {
                401
            };
            let mut row = [refused; 9];
            row[..7].copy_from_slice(&m.3);
            row
        })
        .collect();
    let mut seen = Vec::new();
    for (n, (method, path, body, _)) in matrix.iter().enumerate() {
        let mut row = [0u16; 9];
        let mut order: Vec<usize> = (0..9).filter(|&i| expected[n][i] != 0).collect();
        order.sort_by_key(|&i| (200..300).contains(&expected[n][i]));
        for i in order {
            row[i] = call(method.clone(), path, body.clone(), &tokens[i]).await;
        }
        seen.push(row);
    }
    let table = |rows: &[[u16; 9]]| {
        matrix.iter().zip(rows).map(|(m, r)| format!("{} {} {r:?}", m.0, m.1)).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(seen, expected, "columns: {WHO:?}\nseen:\n{}\nexpected:\n{}", table(&seen), table(&expected));
}

/// A console form's fields.
type Fields = &'static [(&'static str, &'static str)];

#[derive(Clone)]
enum Body {
    None,
    Json(Value),
    Form(Vec<(&'static str, String)>),
}

/// Every console page and form as nobody, alice (who requested), bob (an approver), carol (an administrator) and
/// dave (signed in, nothing else). Pages answer 200, 303 (to the sign-in page, or on from it), 403 or 404;
/// forms are sent with the person's own form token, so a refusal is the console's authorization, not CSRF.
#[tokio::test(flavor = "multi_thread")]
async fn every_console_page_and_form_for_every_person() {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start(dir.path(), "").await.unwrap();
    sb.add_local_user("dave").unwrap();
    for user in ["alice", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let (alice, carol) = (sb.client("alice").unwrap(), sb.client("carol").unwrap());
    let entitlement = format!(
        "{}|{}",
        sb.org.account_id("Staging").unwrap(),
        sb.org.permission_set_arn("AdministratorAccess").unwrap()
    );
    let ask = CreateTask {
        app_id: "aws".into(),
        entitlement_id: entitlement.clone(),
        justification: "console matrix".into(),
        ..CreateTask::default()
    };
    let task = alice.create_task(&ask).await.unwrap().id;
    let version = carol.config(None).await.unwrap().version;
    let mut people = vec![Console::anonymous(&sb.server_url).unwrap()];
    for user in ["alice", "bob", "carol", "dave"] {
        people.push(Console::sign_in(&sb.server_url, user, &password(user)).await.unwrap());
    }
    let request_page = format!("/console/request?app_id=aws&entitlement_id={}", entitlement.replace('|', "%7C"));
    // [nobody, alice, bob, carol, dave]
    #[rustfmt::skip]
    let pages: Vec<(String, [u16; 5])> = vec![
        // Someone signed in is sent on to the console.
        ("/console/login".into(), [200, 303, 303, 303, 303]),
        ("/console".into(), [303, 200, 200, 200, 200]),
        (request_page, [303, 200, 200, 200, 200]),
        ("/console/requests".into(), [303, 200, 200, 200, 200]),
        ("/console/inbox".into(), [303, 200, 200, 200, 200]),
        (format!("/console/tasks/{task}"), [303, 200, 200, 200, 404]),
        (format!("/console/tasks/{task}/history"), [303, 200, 200, 200, 404]),
        ("/console/device".into(), [303, 200, 200, 200, 200]),
        ("/console/notifications".into(), [303, 200, 200, 200, 200]),
        ("/console/reviews".into(), [303, 200, 200, 200, 200]),
        ("/console/reviews/campaigns".into(), [303, 403, 403, 200, 403]),
        ("/console/reviews/campaigns/1".into(), [303, 403, 403, 404, 403]),
        ("/console/reviews/campaigns/1/report".into(), [303, 403, 403, 404, 403]),
        ("/console/grants".into(), [303, 403, 403, 200, 403]),
        ("/console/api-tokens".into(), [303, 403, 403, 200, 403]),
        ("/console/audit".into(), [303, 403, 403, 200, 403]),
        ("/console/audit/export".into(), [303, 403, 403, 200, 403]),
        ("/console/drift".into(), [303, 403, 403, 200, 403]),
        ("/console/connectors".into(), [303, 403, 403, 200, 403]),
        ("/console/access-keys".into(), [303, 403, 403, 200, 403]),
        ("/console/created-users".into(), [303, 403, 403, 200, 403]),
        ("/console/apps".into(), [303, 403, 403, 200, 403]),
        ("/console/policies".into(), [303, 403, 403, 200, 403]),
        ("/console/policies/history".into(), [303, 403, 403, 200, 403]),
        (format!("/console/policies/versions/{version}"), [303, 403, 403, 200, 403]),
        ("/console/no-such-page".into(), [404, 404, 404, 404, 404]),
    ];
    let mut seen = Vec::new();
    for (page, _) in &pages {
        let mut row = [0u16; 5];
        for (i, person) in people.iter_mut().enumerate() {
            row[i] = person.open(page).await.unwrap().0.as_u16();
        }
        seen.push(row);
    }
    let expected: Vec<[u16; 5]> = pages.iter().map(|p| p.1).collect();
    let table = |rows: &[[u16; 5]]| {
        pages.iter().zip(rows).map(|(p, r)| format!("{} {r:?}", p.0)).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(seen, expected, "seen:\n{}\nexpected:\n{}", table(&seen), table(&expected));

    // Forms the person may not use, each sent with their own form token (from their catalog page): refused.
    let decide = format!("/console/tasks/{task}/decide");
    #[rustfmt::skip]
    let refused: Vec<(usize, String, Fields, u16)> = vec![
        (1, decide.clone(), &[("decision", "approve")], 403),
        (4, decide.clone(), &[("decision", "approve")], 404),
        (4, format!("/console/tasks/{task}/comment"), &[("comment", "hi")], 404),
        (2, format!("/console/tasks/{task}/withdraw"), &[], 403),
        (2, format!("/console/tasks/{task}/withdraw-grant"), &[("reason", "x")], 403),
        (1, "/console/connectors/sync".into(), &[], 403),
        (2, "/console/connectors/credentials".into(), &[], 403),
        (1, "/console/connectors/credentials/revoke".into(), &[], 403),
        (2, "/console/sign-out".into(), &[("user", "alice")], 403),
        (1, "/console/apps".into(), &[("account", "Staging"), ("requestable", "false")], 403),
        (2, "/console/policies".into(), &[("document", "policies: []")], 403),
        (1, "/console/reviews/campaigns".into(), &[("name", "x"), ("due", "2099-01-01")], 403),
        (2, "/console/reviews/campaigns/1/close".into(), &[], 403),
        (1, "/console/reviews/templates/quarterly".into(), &[], 403),
        // A decision on items one does not review decides nothing and says why on the page it leads back to.
        (4, "/console/reviews/decide".into(), &[("decision", "certify"), ("item-1", "on")], 303),
    ];
    for (who, action, fields, status) in &refused {
        let (got, text) = people[*who].post("/console", action, fields).await.unwrap();
        assert_eq!(got.as_u16(), *status, "{action} as person {who}: {text}");
    }
    // Nothing of it happened: the task still waits.
    let still = alice.task(task, None, std::time::Duration::ZERO).await.unwrap();
    assert_eq!(still.state, cone_api::TaskState::PendingApproval, "{still:?}");
}
