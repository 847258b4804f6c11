//! API tokens end to end: `cone token` creates, lists and revokes them against the sandbox server, and the tokens
//! are used as bearer tokens: a personal one acts as its creator until revoked, a service token acts as its
//! service account, which decides a task where a policy names it. Needs `cargo build --workspace` and the .venv that `cargo xtask test` prepares.

use cone_api::{CreateTask, NewToken, TaskState, TokenList};
use cone_client::{Client, Failure};
use cone_testkit::Sandbox;
use serde::de::DeserializeOwned;

/// What `cone … -o json` printed, as `T`.
fn json<T: DeserializeOwned>(out: &std::process::Output) -> T {
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
    let with = |token: &str| Client::new(&sb.server_url, token).unwrap();

    let created: NewToken =
        json(&sb.cone("alice", &["token", "create", "laptop", "--expires-in-days", "7", "-o", "json"]).unwrap());
    let pat = created.secret.as_str();
    assert!(pat.starts_with("cone_pat_"), "{created:?}");
    assert_eq!(with(pat).me().await.unwrap().username, "alice");
    let out = sb.cone("alice", &["token", "list", "-o", "json"]).unwrap();
    assert!(!String::from_utf8_lossy(&out.stdout).contains(pat), "a listing showed the secret");
    let listed: TokenList = json(&out);
    assert_eq!(listed.tokens[0].name, "laptop");
    let table = sb.cone("alice", &["token", "list"]).unwrap();
    assert!(String::from_utf8_lossy(&table.stdout).contains("laptop"));

    let id = created.token.id.to_string();
    json::<serde_json::Value>(&sb.cone("alice", &["token", "revoke", &id, "-o", "json"]).unwrap());
    let Err(Failure::Api { status, error }) = with(pat).me().await else { panic!("a revoked token still works") };
    assert_eq!(status, 401);
    assert!(error.message.contains("was revoked"), "{error:?}");

    // Only administrators create service tokens.
    let refused = sb.cone("alice", &["token", "create", "ci", "--service", "deploy-bot"]).unwrap();
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("administrators"), "{refused:?}");
    let created: NewToken =
        json(&sb.cone("carol", &["token", "create", "ci", "--service", "deploy-bot", "-o", "json"]).unwrap());
    let svc = with(&created.secret);
    assert_eq!(svc.me().await.unwrap().username, "service:deploy-bot");
    assert!(!svc.entitlements(None).await.unwrap().is_empty());
    svc.tasks("approvable", "all").await.unwrap();
    let listed: TokenList = json(&sb.cone("carol", &["token", "list", "-o", "json"]).unwrap());
    assert_eq!(listed.tokens[0].owner, "service:deploy-bot");

    // The policy names the service account as the approver: it sees alice's request and approves it as itself.
    let entitlement = format!(
        "{}|{}",
        sb.org.account_id("Sandbox").unwrap(),
        sb.org.permission_set_arn("AdministratorAccess").unwrap()
    );
    let request = CreateTask {
        app_id: "aws".into(),
        entitlement_id: entitlement,
        justification: "deploy".into(),
        ..CreateTask::default()
    };
    let task = sb.client("alice").unwrap().create_task(&request).await.unwrap();
    assert_eq!(task.state, TaskState::PendingApproval, "{task:?}");
    let inbox = svc.tasks("approvable", "all").await.unwrap();
    assert_eq!(inbox[0].id, task.id);
    let decided = svc.act(task.id, "approve", "ok").await.unwrap();
    assert_eq!(decided.decisions[0].by, "service:deploy-bot", "{decided:?}");
}
