//! The authorization matrix: every API endpoint as nobody, a requester, an approver and an administrator.

use cone_api::{ConfigVersion, CreateServiceToken, CreateTask, CreateToken};
use cone_testkit::Sandbox;
use reqwest::Method;
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread")]
async fn every_endpoint_for_every_role() {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start(dir.path(), "").await.unwrap();
    // alice requests, bob is in the approvers group, carol administers (the sandbox's `admins`).
    for user in ["alice", "bob", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let tokens = [
        None,
        Some(sb.api_token("alice").unwrap()),
        Some(sb.api_token("bob").unwrap()),
        Some(sb.api_token("carol").unwrap()),
    ];
    let http = reqwest::Client::new();
    let call = async |method: Method, path: &str, body: Option<Value>, who: &Option<String>| {
        let mut req = http.request(method, format!("{}{path}", sb.server_url));
        if let Some(t) = who {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        req.send().await.unwrap().status().as_u16()
    };

    let entitlement = |account: &str, set: &str| {
        format!("{}|{}", sb.org.account_id(account).unwrap(), sb.org.permission_set_arn(set).unwrap())
    };
    let request = |account: &str, set: &str| json!({ "app_id": "aws", "entitlement_id": entitlement(account, set), "justification": "matrix" });
    let (alice, carol) = (sb.client("alice").unwrap(), sb.client("carol").unwrap());
    // Two of alice's requests wait for the approvers: one to approve, one to cancel.
    let mut pending = Vec::new();
    for account in ["Staging", "Production"] {
        let ask = CreateTask {
            app_id: "aws".into(),
            entitlement_id: entitlement(account, "AdministratorAccess"),
            justification: "matrix".into(),
            ..CreateTask::default()
        };
        pending.push(format!("/api/v1/tasks/{}", alice.create_task(&ask).await.unwrap().id));
    }
    let (approve, cancel) = (&pending[0], &pending[1]);
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
    let comment = Some(json!({ "comment": "a note" }));
    // API tokens to revoke: one of alice's own, and a service account's.
    let laptop = CreateToken { name: "laptop".into(), expires_in_days: None };
    let alice_pat = format!("/api/v1/tokens/{}", alice.create_token(&laptop).await.unwrap().token.id);
    let ci = CreateServiceToken { service: "deploy-bot".into(), name: "ci".into(), expires_in_days: None };
    let service_token = format!("/api/v1/tokens/{}", carol.create_service_token(&ci).await.unwrap().token.id);
    let readonly = request("Sandbox", "ReadOnlyAccess");
    // Applying the document in force again changes nothing, so the rows after it meet the same policies.
    let in_force: ConfigVersion = carol.config(None).await.unwrap();
    let same = Some(json!({ "document": in_force.document }));
    let release = json!({ "app_id": "aws", "entitlement_id": entitlement("Sandbox", "ReadOnlyAccess") });
    // A grant of alice's for administrators to withdraw (read-only access is given at once).
    let ask = CreateTask {
        app_id: "aws".into(),
        entitlement_id: entitlement("Production", "ReadOnlyAccess"),
        justification: "matrix".into(),
        ..CreateTask::default()
    };
    let withdraw = format!("/api/v1/tasks/{}/withdraw", alice.create_task(&ask).await.unwrap().id);
    let reason = Some(json!({ "reason": "matrix" }));

    // (method, path, body, [nobody, requester, approver, administrator]). In each row the refused calls run
    // first, so they meet the state the allowed call then changes. 404 would mean "no task you can see".
    let matrix: Vec<(Method, String, Option<Value>, [u16; 4])> = vec![
        (Method::GET, "/api/v1/openapi.json".into(), None, [200, 200, 200, 200]),
        (Method::GET, "/api/v1/me".into(), None, [401, 200, 200, 200]),
        (Method::GET, "/api/v1/entitlements".into(), None, [401, 200, 200, 200]),
        (Method::GET, one, None, [401, 200, 200, 200]),
        (Method::GET, holders, None, [401, 403, 403, 200]),
        (Method::GET, membership, None, [401, 200, 200, 200]),
        (Method::GET, "/api/v1/tasks?scope=mine".into(), None, [401, 200, 200, 200]),
        (Method::GET, "/api/v1/tasks?scope=approvable".into(), None, [401, 200, 200, 200]),
        (Method::GET, "/api/v1/tasks?scope=all&state=live&user=alice".into(), None, [401, 403, 403, 200]),
        (Method::POST, withdraw, reason, [401, 403, 403, 200]),
        (Method::GET, approve.clone(), None, [401, 200, 200, 200]),
        (Method::POST, format!("{approve}/comment"), comment.clone(), [401, 200, 200, 200]),
        (Method::POST, format!("{approve}/approve"), comment.clone(), [401, 403, 200, 403]),
        // The sandbox's policies have no emergency steps; only alice may escalate, and she may not here.
        (Method::POST, format!("{cancel}/escalate"), None, [401, 403, 403, 403]),
        (Method::POST, format!("{cancel}/cancel"), None, [401, 200, 403, 403]),
        (Method::POST, "/api/v1/tasks".into(), Some(readonly), [401, 201, 201, 201]),
        (Method::POST, "/api/v1/drop".into(), Some(release), [401, 200, 200, 200]),
        (Method::GET, "/api/v1/drift".into(), None, [401, 403, 403, 200]),
        (Method::GET, "/api/v1/audit?action=task.*&page_size=5".into(), None, [401, 403, 403, 200]),
        (Method::GET, "/api/v1/connectors".into(), None, [401, 200, 200, 200]),
        (Method::GET, "/metrics".into(), None, [401, 403, 403, 200]),
        (Method::POST, "/api/v1/connectors/sync".into(), None, [401, 403, 403, 202]),
        (Method::GET, "/api/v1/iam/access-keys?status=Active".into(), None, [401, 403, 403, 200]),
        (Method::GET, "/api/v1/iam/users".into(), None, [401, 403, 403, 200]),
        (Method::GET, "/api/v1/iam/created-users".into(), None, [401, 403, 403, 200]),
        (Method::GET, "/api/v1/config".into(), None, [401, 403, 403, 200]),
        (Method::PUT, "/api/v1/config".into(), same.clone(), [401, 403, 403, 200]),
        (Method::POST, "/api/v1/config/check".into(), same, [401, 403, 403, 200]),
        (Method::GET, "/api/v1/config/versions".into(), None, [401, 403, 403, 200]),
        (Method::GET, format!("/api/v1/config/versions/{}", in_force.version), None, [401, 403, 403, 200]),
        (Method::POST, "/api/v1/tokens".into(), Some(json!({ "name": "matrix" })), [401, 201, 201, 201]),
        (Method::GET, "/api/v1/tokens".into(), None, [401, 200, 200, 200]),
        (Method::GET, "/api/v1/tokens?all=true".into(), None, [401, 403, 403, 200]),
        // Owners and administrators revoke a personal token (a second revocation changes nothing); bob cannot.
        (Method::DELETE, alice_pat, None, [401, 200, 404, 200]),
        (
            Method::POST,
            "/api/v1/service-tokens".into(),
            Some(json!({ "service": "matrix-bot", "name": "ci" })),
            [401, 403, 403, 201],
        ),
        (Method::DELETE, service_token, None, [401, 404, 404, 200]),
        (Method::POST, "/api/v1/users/service:deploy-bot/sign-out".into(), None, [401, 403, 403, 200]),
        (Method::POST, "/api/v1/logout".into(), None, [401, 200, 200, 200]),
    ];
    let mut seen = Vec::new();
    for (method, path, body, _) in &matrix {
        let mut row = [0u16; 4];
        let mut order: Vec<usize> = (0..4).collect();
        order.sort_by_key(|&i| expected_ok(&matrix, seen.len(), i));
        for i in order {
            row[i] = call(method.clone(), path, body.clone(), &tokens[i]).await;
        }
        seen.push(row);
    }
    let expected: Vec<[u16; 4]> = matrix.iter().map(|m| m.3).collect();
    let table = |rows: &[[u16; 4]]| {
        matrix.iter().zip(rows).map(|(m, r)| format!("{} {} {r:?}", m.0, m.1)).collect::<Vec<_>>().join("\n")
    };
    assert_eq!(seen, expected, "seen:\n{}\nexpected:\n{}", table(&seen), table(&expected));
}

fn expected_ok(matrix: &[(Method, String, Option<Value>, [u16; 4])], row: usize, cell: usize) -> bool {
    (200..300).contains(&matrix[row].3[cell])
}
