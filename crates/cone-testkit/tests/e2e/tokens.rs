//! API tokens end to end: `cone token` creates, lists and revokes them against the sandbox server, and the tokens
//! are used as bearer tokens: a personal one acts as its creator until revoked, a service token acts as its
//! service account, which decides a task where a policy names it. Needs `cargo build --workspace` and the .venv that `cargo xtask test` prepares.

use cone_testkit::Sandbox;
use serde_json::Value;

fn json(out: &std::process::Output) -> Value {
    assert!(
        out.status.success(),
        "cone failed: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn a_revoked_token_stops_working_and_a_service_token_works() {
    let dir = tempfile::tempdir().unwrap();
    let policy = "  - name: the-bot-approves\n    match: { account: Sandbox, permission_set: AdministratorAccess }\n    \
                  max_duration: 1h\n    steps: [{ approval: { users: [\"service:deploy-bot\"] } }]\n";
    let sb = Sandbox::start(dir.path(), policy).await.unwrap();
    for user in ["alice", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let http = reqwest::Client::new();
    let get = async |path: &str, token: &str| {
        let resp = http.get(format!("{}{path}", sb.server_url)).bearer_auth(token).send().await.unwrap();
        (resp.status().as_u16(), resp.json::<Value>().await.unwrap())
    };

    let created =
        json(&sb.cone("alice", &["token", "create", "laptop", "--expires-in-days", "7", "-o", "json"]).unwrap());
    let pat = created["secret"].as_str().unwrap();
    assert!(pat.starts_with("cone_pat_"), "{created}");
    let (status, me) = get("/api/v1/me", pat).await;
    assert_eq!((status, me["username"].as_str()), (200, Some("alice")));
    let listed = json(&sb.cone("alice", &["token", "list", "-o", "json"]).unwrap());
    assert_eq!(listed["tokens"][0]["name"], "laptop");
    assert!(!listed.to_string().contains(pat), "a listing showed the secret");
    let table = sb.cone("alice", &["token", "list"]).unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains("laptop"));

    let id = created["token"]["id"].to_string();
    json(&sb.cone("alice", &["token", "revoke", &id, "-o", "json"]).unwrap());
    let (status, err) = get("/api/v1/me", pat).await;
    assert_eq!(status, 401);
    assert!(err["message"].as_str().unwrap().contains("was revoked"), "{err}");

    // Only administrators create service tokens.
    let refused = sb.cone("alice", &["token", "create", "ci", "--service", "deploy-bot"]).unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("administrators"), "{refused:?}");
    let created = json(&sb.cone("carol", &["token", "create", "ci", "--service", "deploy-bot", "-o", "json"]).unwrap());
    let svc = created["secret"].as_str().unwrap();
    let (status, me) = get("/api/v1/me", svc).await;
    assert_eq!((status, me["username"].as_str()), (200, Some("service:deploy-bot")));
    let (status, page) = get("/api/v1/entitlements", svc).await;
    assert_eq!(status, 200);
    assert!(!page["entitlements"].as_array().unwrap().is_empty());
    let (status, _) = get("/api/v1/tasks?scope=approvable", svc).await;
    assert_eq!(status, 200);
    let listed = json(&sb.cone("carol", &["token", "list", "-o", "json"]).unwrap());
    assert_eq!(listed["tokens"][0]["owner"], "service:deploy-bot");

    // The policy names the service account as the approver: it sees alice's request and approves it as itself.
    let entitlement = format!(
        "{}|{}",
        sb.org.account_id("Sandbox").unwrap(),
        sb.org.permission_set_arn("AdministratorAccess").unwrap()
    );
    let alice = sb.api_token("alice").unwrap();
    let body = serde_json::json!({ "app_id": "aws", "entitlement_id": entitlement, "justification": "deploy" });
    let resp =
        http.post(format!("{}/api/v1/tasks", sb.server_url)).bearer_auth(&alice).json(&body).send().await.unwrap();
    let task: Value = resp.json().await.unwrap();
    assert_eq!(task["state"], "pending_approval", "{task}");
    let (status, inbox) = get("/api/v1/tasks?scope=approvable", svc).await;
    assert_eq!((status, &inbox["tasks"][0]["id"]), (200, &task["id"]));
    let approve = format!("{}/api/v1/tasks/{}/approve", sb.server_url, task["id"]);
    let resp = http.post(&approve).bearer_auth(svc).json(&serde_json::json!({ "comment": "ok" })).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let decided: Value = resp.json().await.unwrap();
    assert_eq!(decided["decisions"][0]["by"], "service:deploy-bot", "{decided}");
}
