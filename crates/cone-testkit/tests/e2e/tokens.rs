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

    // A script without `cone login` (its HOME has no session) approves as the service account with CONE_TOKEN.
    let script = |env: &[(&str, &str)], args: &[&str]| {
        let mut cmd = sb.detached("ci", "cone").unwrap();
        cmd.args(args).envs(env.iter().copied());
        cmd.output().unwrap()
    };
    let server = [("CONE_SERVER_URL", sb.server_url.as_str())];
    let o = script(&[("CONE_TOKEN", &created.secret)], &["whoami"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("set CONE_SERVER_URL"), "{o:?}");
    let headless = [server[0], ("CONE_TOKEN", &created.secret)];
    let id = task.id.to_string();
    let decided: cone_api::Task = json(&script(&headless, &["task", "approve", &id, "--comment", "ok", "-o", "json"]));
    assert_eq!(decided.decisions[0].by, "service:deploy-bot", "{decided:?}");
    let o = script(&headless, &["logout"]);
    assert!(!o.status.success() && String::from_utf8_lossy(&o.stderr).contains("cone token revoke"), "{o:?}");
    assert_eq!(svc.me().await.unwrap().username, "service:deploy-bot", "logout left the token alone");

    // --token-file: only a file of its owner's, holding one token; a refused token is named as such.
    let file = dir.path().join("token");
    std::fs::write(&file, format!("{}\n", created.secret)).unwrap();
    let path = file.to_str().unwrap();
    let chmod = |mode: u32| {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(mode)).unwrap();
    };
    chmod(0o644);
    let o = script(&server, &["--token-file", path, "whoami"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains(&format!("run `chmod 600 {path}`")), "{o:?}");
    chmod(0o600);
    let me: cone_api::Me = json(&script(&server, &["--token-file", path, "whoami", "-o", "json"]));
    assert_eq!(me.username, "service:deploy-bot");
    let o = script(&[server[0], ("CONE_TOKEN", pat)], &["whoami"]);
    let said = String::from_utf8_lossy(&o.stderr);
    assert!(said.contains("The API token from CONE_TOKEN was refused") && !said.contains("cone login"), "{said}");
}
