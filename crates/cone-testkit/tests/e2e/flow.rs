//! End to end: moto, the Identity Center emulator, cone-server and the `cone` CLI as separate processes, driven
//! through the real AWS CLI v1 (the tests that touch the most of the store on SQLite and on PostgreSQL). Needs
//! `cargo build --workspace` and the .venv that `cargo xtask test` prepares.

use std::process::Output;
use std::time::{Duration, Instant};

use cone_api::{DropResult, Entitlement, Me, Task, TaskKind, TaskState};
use cone_testkit::{Got, Sandbox, Store};
use serde::de::DeserializeOwned;
use serde_json::Value;

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn assert_ok(o: &Output, what: &str) -> String {
    let (out, err) = text(o);
    assert!(o.status.success(), "{what} failed\nstdout: {out}\nstderr: {err}");
    out
}

fn assert_fails_with(o: &Output, what: &str, needles: &[&str]) -> String {
    let (out, err) = text(o);
    assert!(!o.status.success(), "{what} should have failed\nstdout: {out}\nstderr: {err}");
    for n in needles {
        assert!(err.contains(n), "{what}: stderr lacks {n:?}\nstderr: {err}");
    }
    err
}

/// The task id in "cone task get N".
fn task_id(message: &str) -> String {
    let at = message.find("cone task get ").expect("message names a task") + "cone task get ".len();
    message[at..].chars().take_while(char::is_ascii_digit).collect()
}

/// How many assignments of the permission set exist in the account, in moto.
async fn assignments(sb: &Sandbox, account: &str, permission_set: &str) -> usize {
    sb.assigned_principals(account, permission_set).await.unwrap().len()
}

async fn assignment_disappears(sb: &Sandbox, account: &str, permission_set: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while assignments(sb, account, permission_set).await > 0 {
        assert!(Instant::now() < deadline, "the {permission_set} assignment in {account} outlived its grant");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// The value of `Key:` in cone's table output of one object.
fn field(out: &str, key: &str) -> String {
    let line = out.lines().find(|l| l.starts_with(&format!("{key}:"))).unwrap_or_else(|| panic!("no {key}: in {out}"));
    line[key.len() + 1..].trim().to_string()
}

/// What a command printed, read as `T`: an AWS format, or `cone -o json`'s API types.
fn json<T: DeserializeOwned>(o: &Output, what: &str) -> T {
    let out = assert_ok(o, what);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: not what was expected ({e}): {out}"))
}

#[tokio::test(flavor = "multi_thread")]
async fn auto_approved_request_then_cached_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::start(dir.path(), "").await.unwrap();
    let setup = sb.sign_in("alice").await.unwrap();
    assert!(setup.contains("staging-readonlyaccess") && setup.contains("production-databaseadministrator"), "{setup}");

    // Re-running setup skips what exists and warns when the AWS CLI is missing.
    let cone = cone_testkit::target_bin("cone").unwrap();
    let mut again = sb.detached("alice", cone.to_str().unwrap()).unwrap();
    let o = again.args(["aws", "setup"]).env("PATH", "/nonexistent").output().unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(out.contains("exists   staging-readonlyaccess") && !out.contains("added"), "{out}");
    assert!(err.contains("The AWS CLI is required but was not found on PATH"), "{err}");

    // Through the AWS CLI: the whole JIT flow, then the assumed Identity Center role.
    let o = sb.caller_identity("alice", "staging-readonlyaccess").unwrap();
    let out = assert_ok(&o, "aws sts get-caller-identity");
    let staging = sb.org.account_id("Staging").unwrap();
    assert!(out.contains(&format!("arn:aws:sts::{staging}:assumed-role/AWSReservedSSO_ReadOnlyAccess_")), "{out}");

    // Directly: the seed's messages on stderr, credential_process JSON on stdout.
    let o = sb.cone("alice", &["aws", "credentials", "production-readonlyaccess"]).unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(err.contains("No active grant for \"production-readonlyaccess\" — submitting access request..."), "{err}");
    assert!(err.contains("Access request submitted (task: ") && err.contains("Access granted!"), "{err}");
    let json: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(json["Version"], 1);
    assert_eq!(json["AccountId"], sb.org.account_id("Production").unwrap());
    assert!(json["AccessKeyId"].as_str().is_some_and(|k| !k.is_empty()));

    // Who am I, and every secret-bearing file private.
    let o = sb.cone("alice", &["whoami"]).unwrap();
    assert!(assert_ok(&o, "whoami").contains("alice@example.com"));
    let home = sb.home("alice");
    let mut private =
        vec![home.join(".conductorone/token.json"), home.join(".conductorone/config.yaml"), home.join(".aws/config")];
    for dir in [".aws/sso/cache", ".aws/cli/cache"] {
        private.extend(std::fs::read_dir(home.join(dir)).unwrap().map(|e| e.unwrap().path()));
    }
    assert!(private.len() >= 6, "{private:?}");
    for path in private {
        let mode = std::os::unix::fs::PermissionsExt::mode(&std::fs::metadata(&path).unwrap().permissions());
        assert_eq!(mode & 0o777, 0o600, "{}", path.display());
    }

    // The grant is 8 h and the role session 1 h: the cached credential serves the next calls with the server down.
    sb.stop_server();
    let o = sb.caller_identity("alice", "staging-readonlyaccess").unwrap();
    assert!(assert_ok(&o, "cached call").contains("AWSReservedSSO_ReadOnlyAccess_"));
    let o = sb.caller_identity("alice", "sandbox-readonlyaccess").unwrap();
    assert_fails_with(&o, "call with the server down", &["Cannot reach the Cone server"]);
}

// The two tests that touch the most of the server's store run on PostgreSQL too.
cone_testkit::on_both_stores!(approval_denial_pending_and_form, request_lifecycle_from_the_cli);

async fn approval_denial_pending_and_form(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let deny_sandbox_admin = "  - name: no-admin-in-sandbox\n    match: { account: Sandbox, permission_set: AdministratorAccess }\n    max_duration: 1h\n    steps: [reject]\n";
    let sb = Sandbox::start_on(store, dir.path(), "", deny_sandbox_admin).await.unwrap();
    sb.sign_in("alice").await.unwrap();
    sb.sign_in("bob").await.unwrap();
    let admin = "production-administratoraccess";

    let o = sb.caller_identity("alice", admin).unwrap();
    let err = assert_fails_with(
        &o,
        "admin request",
        &[
            "Request submitted for \"production-administratoraccess\" but requires approval.",
            "Check status: cone task get ",
            "Once approved, retry the command.",
        ],
    );
    let id = task_id(&err);

    let o = sb.caller_identity("alice", admin).unwrap();
    let err = assert_fails_with(
        &o,
        "second request",
        &["A pending request already exists for \"production-administratoraccess\"."],
    );
    assert_eq!(task_id(&err), id);

    // Requesters cannot approve their own requests, nor can people outside the approving group.
    let o = sb.cone("alice", &["task", "approve", &id]).unwrap();
    assert_fails_with(&o, "alice approving", &["You cannot approve or deny your own request"]);
    // carol administers Cone, so she sees the task, but that makes her no approver.
    sb.sign_in("carol").await.unwrap();
    let o = sb.cone("carol", &["task", "approve", &id]).unwrap();
    assert_fails_with(&o, "carol approving", &["This request waits for group \"approvers\", and you are not one"]);

    let o = sb.cone("bob", &["task", "approve", &id]).unwrap();
    assert_ok(&o, "bob approving");
    let o = sb.cone("alice", &["task", "get", &id]).unwrap();
    assert_eq!(field(&assert_ok(&o, "task get"), "Decided by"), "bob");

    // Approval came through: the retry succeeds (waiting for provisioning if it is still running).
    let o = sb.caller_identity("alice", admin).unwrap();
    assert!(assert_ok(&o, "retry after approval").contains("AWSReservedSSO_AdministratorAccess_"));

    // A policy that rejects.
    let o = sb.caller_identity("alice", "sandbox-administratoraccess").unwrap();
    assert_fails_with(&o, "denied request", &["Access request for \"sandbox-administratoraccess\" was denied"]);

    // An approver's denial.
    let o = sb.caller_identity("alice", "staging-administratoraccess").unwrap();
    let id = task_id(&assert_fails_with(&o, "staging admin", &["requires approval"]));
    let o = sb.cone("bob", &["task", "deny", &id, "--comment", "not today"]).unwrap();
    assert_eq!(field(&assert_ok(&o, "bob denying"), "State"), "denied");

    let o = sb.cone("bob", &["whoami"]).unwrap();
    assert!(assert_ok(&o, "bob whoami").contains("Groups: approvers"));

    // An entitlement with a request form.
    let o = sb.caller_identity("alice", "production-databaseadministrator").unwrap();
    let production = sb.org.account_id("Production").unwrap();
    let err = assert_fails_with(
        &o,
        "form-bound request",
        &[
            "No active grant for \"production-databaseadministrator\". This entitlement requires a request form — request access with:",
            &format!("cone get --app-id aws --entitlement-id '{production}|arn:aws:sso:::"),
        ],
    );
    let line = err.lines().find(|l| l.trim_start().starts_with("cone get")).unwrap();
    let entitlement = line.split('\'').nth(1).unwrap();
    let o = sb.cone("alice", &["get", "--app-id", "aws", "--entitlement-id", entitlement]).unwrap();
    assert_fails_with(&o, "cone get without the form", &["--form-data"]);
    let o = sb
        .cone("alice", &["get", "-a", "aws", "-e", entitlement, "--form-data", r#"{"ticket": "OPS-42"}"#, "-d", "30m"])
        .unwrap();
    assert_eq!(field(&assert_ok(&o, "cone get with the form"), "Duration"), "30m");
    let o = sb.caller_identity("alice", "production-databaseadministrator").unwrap();
    assert!(assert_ok(&o, "after the form request").contains("AWSReservedSSO_DatabaseAdministrator_"));

    // Every decision above left an intact audit chain.
    let o = std::process::Command::new(cone_testkit::target_bin("cone-server").unwrap())
        .args(["verify-audit", "--config"])
        .arg(sb.dir.join("cone-server.yaml"))
        .output()
        .unwrap();
    assert!(text(&o).1.contains("The audit log is intact."), "{:?}", text(&o));
}

#[tokio::test(flavor = "multi_thread")]
async fn expiry_removes_the_assignment() {
    let dir = tempfile::tempdir().unwrap();
    let short = "  - name: short-sandbox-readonly\n    match: { account: Sandbox, permission_set: ReadOnlyAccess }\n    max_duration: 20s\n    steps: [accept]\n";
    let sb = Sandbox::start(dir.path(), short).await.unwrap();
    sb.sign_in("alice").await.unwrap();
    let o = sb.caller_identity("alice", "sandbox-readonlyaccess").unwrap();
    assert!(assert_ok(&o, "short grant").contains("AWSReservedSSO_ReadOnlyAccess_"));

    assert_eq!(assignments(&sb, "Sandbox", "ReadOnlyAccess").await, 1);
    assignment_disappears(&sb, "Sandbox", "ReadOnlyAccess", Duration::from_secs(60)).await;

    // AWS (the emulator) now refuses the role, and cone knows the grant is over.
    let o = sb.role_credentials("alice", "Sandbox", "ReadOnlyAccess").unwrap();
    assert_fails_with(&o, "role credentials after expiry", &["ForbiddenException", "No access"]);
    let o = sb.cone("alice", &["aws", "credentials", "sandbox-readonlyaccess"]).unwrap();
    let (_, err) = text(&o);
    assert!(err.contains("No active grant for \"sandbox-readonlyaccess\""), "{err}");
}

/// `cargo xtask sandbox --demo`, minus the build: the README's first command keeps working.
#[test]
fn sandbox_demo() {
    let dir = tempfile::tempdir().unwrap();
    let o = std::process::Command::new(cone_testkit::target_bin("cone-sandbox").unwrap())
        .args(["--demo", "--dir"])
        .arg(dir.path().join("sandbox"))
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("Access granted!") && out.contains("assumed-role/AWSReservedSSO_ReadOnlyAccess_"), "{out}");
}

/// Terraform and IDEs start many `credential_process` calls at once. With an expired (but refreshable)
/// Identity Center token and no grant, 64 of them make one refresh, one request, and no broken file.
#[tokio::test(flavor = "multi_thread")]
async fn parallel_credential_processes_make_one_request() {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start(dir.path(), "").await.unwrap();
    sb.sign_in("alice").await.unwrap();
    let cache = sb.home("alice").join(".aws/sso/cache");
    let token_path = std::fs::read_dir(&cache)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| std::fs::read_to_string(p).unwrap().contains("accessToken"))
        .unwrap();
    let mut token: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&token_path).unwrap()).unwrap();
    token["expiresAt"] = "2020-01-01T00:00:00Z".into();
    std::fs::write(&token_path, token.to_string()).unwrap();

    let children: Vec<_> = (0..64)
        .map(|_| {
            let mut cmd = sb.detached("alice", "cone").unwrap();
            cmd.args(["aws", "credentials", "staging-readonlyaccess"])
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped());
            cmd.spawn().unwrap()
        })
        .collect();
    let mut keys = std::collections::BTreeSet::new();
    for child in children {
        let o = child.wait_with_output().unwrap();
        let out = assert_ok(&o, "parallel credential_process");
        let json: serde_json::Value = serde_json::from_str(&out).unwrap();
        keys.insert(json["AccessKeyId"].as_str().unwrap().to_string());
    }
    assert_eq!(keys.len(), 1, "every process got the one cached credential");

    // One request: task 1 exists, task 2 does not.
    assert_ok(&sb.cone("alice", &["task", "get", "1"]).unwrap(), "task 1");
    assert_fails_with(&sb.cone("alice", &["task", "get", "2"]).unwrap(), "task 2", &["There is no task 2"]);
    // The token was refreshed (once: the emulator rotates refresh tokens, so a second refresh would have failed
    // and, with no terminal to sign in from, failed its process) and every cache file is whole.
    let refreshed: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&token_path).unwrap()).unwrap();
    assert_ne!(refreshed["expiresAt"], "2020-01-01T00:00:00Z");
    for dir in [cache, sb.home("alice").join(".aws/cli/cache")] {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            serde_json::from_str::<serde_json::Value>(&std::fs::read_to_string(&path).unwrap())
                .unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
        }
    }
}

/// The request lifecycle from the command line: search, get (and wait), has, extend within limits, drop (and the
/// assignment goes), cancel, comment, the approver's inbox, pending requests timing out, and JSON for scripts.
async fn request_lifecycle_from_the_cli(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let break_glass = "  - name: admin-with-break-glass\n    match: { permission_set: AdministratorAccess }\n    max_duration: 1h\n    steps: [{ approval: { group: approvers } }]\n    emergency_steps: [accept]\n";
    let sb = Sandbox::start_on(store, dir.path(), "pending_timeout: 4s\n", break_glass).await.unwrap();
    sb.sign_in("alice").await.unwrap();
    sb.sign_in("bob").await.unwrap();
    let ro = "staging-readonlyaccess";

    // The catalog, all of it, with aliases that are the profile names.
    let all: Vec<Entitlement> = json(&sb.cone("alice", &["search", "-o", "json"]).unwrap(), "search");
    let aliases: Vec<&str> = all.iter().map(|e| e.alias.as_str()).collect();
    assert!(aliases.contains(&ro) && aliases.contains(&"production-administratoraccess"), "{aliases:?}");
    let table = assert_ok(&sb.cone("alice", &["search", "-q", "prod admin"]).unwrap(), "search -q");
    assert!(table.starts_with("GRANTED") && table.contains("production-administratoraccess"), "{table}");
    assert!(!table.contains(ro), "{table}");
    let args = ["search", "--account", "sandbox", "--kind", "aws_permission_set", "-o", "json"];
    let sandbox: Vec<Entitlement> = json(&sb.cone("alice", &args).unwrap(), "search --account");
    assert!(!sandbox.is_empty() && sandbox.iter().all(|e| e.resource_name == "Sandbox"), "{sandbox:?}");
    // The server searches and counts: the same words over the API, with the matches by account and kind.
    let path = "/api/v1/entitlements?q=admin&facets=true";
    let page: cone_api::EntitlementPage =
        sb.client("alice").unwrap().call(cone_client::Method::GET, path, None::<&()>).await.unwrap();
    assert!(page.entitlements.iter().all(|e| e.matches("admin")), "{page:?}");
    let facets = page.facets.unwrap();
    let production = facets.accounts.iter().find(|f| f.label == "Production").unwrap();
    let in_production = page.entitlements.iter().filter(|e| e.resource_name == "Production").count();
    assert_eq!(production.count, in_production, "{facets:?}");
    let granted: Vec<Entitlement> =
        json(&sb.cone("alice", &["search", "--granted", "-o", "json"]).unwrap(), "search --granted");
    assert_eq!(granted.len(), 0);

    // Get and wait: granted, and the assignment exists.
    let got: Got =
        json(&sb.cone("alice", &["get", ro, "-j", "on call", "--wait", "-o", "json"]).unwrap(), "get --wait");
    assert_eq!(got.outcome, "requested");
    assert_eq!(got.task().state, TaskState::Granted);
    assert_eq!(got.task().justification, "on call");
    let first_end = got.task().grant_expires_at.unwrap();
    assert_eq!(assignments(&sb, "Staging", "ReadOnlyAccess").await, 1);
    assert_ok(&sb.cone("alice", &["has", ro]).unwrap(), "has");
    let o = sb.cone("alice", &["has", "sandbox-readonlyaccess"]).unwrap();
    assert_eq!(o.status.code(), Some(2), "{:?}", text(&o));

    // A second `get` does not stack a grant; --extend moves its end, within the policy's limits.
    let o = sb.cone("alice", &["get", ro]).unwrap();
    assert!(assert_ok(&o, "get again").contains("You already have access to staging-readonlyaccess until"));
    let ext: Got = json(&sb.cone("alice", &["get", ro, "--extend", "-d", "1h", "-o", "json"]).unwrap(), "extend");
    assert_eq!(ext.task().kind, TaskKind::Extend);
    assert_eq!(ext.task().state, TaskState::Granted);
    assert_eq!((ext.task().grant_expires_at.unwrap() - first_end).num_seconds(), 3600);
    let o = sb.cone("alice", &["get", ro, "--extend", "-d", "7h"]).unwrap();
    assert_fails_with(&o, "extension past the maximum", &["would exceed this entitlement's maximum of 8h"]);
    assert_ok(&sb.cone("alice", &["get", ro, "--extend", "-d", "10m"]).unwrap(), "second extension");
    let o = sb.cone("alice", &["get", ro, "--extend", "-d", "10m"]).unwrap();
    assert_fails_with(&o, "third extension", &["already extended 2 time(s)"]);

    // Drop: released at once, and the assignment goes.
    let dropped: DropResult = json(&sb.cone("alice", &["drop", ro, "-o", "json"]).unwrap(), "drop");
    assert_eq!(dropped.tasks[0].state, TaskState::Released);
    assignment_disappears(&sb, "Staging", "ReadOnlyAccess", Duration::from_secs(30)).await;
    assert_eq!(sb.cone("alice", &["has", ro]).unwrap().status.code(), Some(2));
    let o = sb.cone("alice", &["drop", ro]).unwrap();
    assert!(assert_ok(&o, "drop again").contains("nothing to drop"));

    // A request that waits for an approver: in bob's inbox, not in alice's; discussed, then withdrawn.
    let admin = "production-administratoraccess";
    let req: Got = json(&sb.cone("alice", &["get", admin, "-j", "deploy", "-o", "json"]).unwrap(), "admin get");
    assert_eq!(req.task().state, TaskState::PendingApproval);
    let id = req.task().id.to_string();
    let inbox: Vec<Task> =
        json(&sb.cone("bob", &["task", "search", "--approvable", "-o", "json"]).unwrap(), "bob inbox");
    assert_eq!(inbox[0].id.to_string(), id);
    let mine: Vec<Task> =
        json(&sb.cone("alice", &["task", "search", "--approvable", "-o", "json"]).unwrap(), "alice inbox");
    assert_eq!(mine.len(), 0);
    assert_ok(&sb.cone("bob", &["task", "comment", &id, "which change?"]).unwrap(), "comment");
    let shown = assert_ok(&sb.cone("alice", &["task", "get", &id]).unwrap(), "task get");
    assert!(shown.contains("task.comment by bob: which change?"), "{shown}");
    let events: Vec<cone_api::TaskEvent> =
        json(&sb.cone("bob", &["task", "history", &id, "-o", "json"]).unwrap(), "task history");
    let actions: Vec<_> = events.iter().map(|e| (e.action.as_str(), e.comment.as_deref())).collect();
    assert_eq!(actions.first(), Some(&("task.create", None)), "oldest first: {actions:?}");
    assert_eq!(actions.last(), Some(&("task.comment", Some("which change?"))), "{actions:?}");
    let o = sb.cone("bob", &["task", "cancel", &id]).unwrap();
    assert_fails_with(&o, "bob cancelling", &["Only alice can cancel"]);
    let cancelled: Task = json(&sb.cone("alice", &["task", "cancel", &id, "-o", "json"]).unwrap(), "cancel");
    assert_eq!(cancelled.state, TaskState::Cancelled);
    let o = sb.cone("bob", &["task", "approve", &id]).unwrap();
    assert_fails_with(&o, "approving a cancelled task", &["no longer waits for a decision"]);
    let history: Vec<Task> =
        json(&sb.cone("alice", &["task", "search", "--state", "closed", "-o", "json"]).unwrap(), "mine");
    assert!(history.len() >= 4, "{history:?}");

    // Nobody decides: the request times out (pending_timeout 4s).
    let req: Got = json(&sb.cone("alice", &["get", admin, "-o", "json"]).unwrap(), "admin again");
    let id = req.task().id.to_string();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t: Task = json(&sb.cone("alice", &["task", "get", &id, "-o", "json"]).unwrap(), "task get");
        if t.state == TaskState::TimedOut {
            break;
        }
        assert!(Instant::now() < deadline, "the request never timed out: {t:?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // Break-glass: emergency access follows the policy's emergency steps, says why, and only where a policy has
    // them; a pending request can be escalated to them.
    let o = sb.cone("alice", &["get", "staging-administratoraccess", "--emergency-access"]).unwrap();
    assert_fails_with(&o, "emergency without a reason", &["Emergency access needs a justification"]);
    let o = sb.cone("alice", &["get", ro, "--emergency-access", "-j", "incident 42"]).unwrap();
    assert_fails_with(&o, "emergency without emergency steps", &["has no emergency access"]);
    let args =
        ["get", "staging-administratoraccess", "--emergency-access", "-j", "incident 42", "--wait", "-o", "json"];
    let got: Got = json(&sb.cone("alice", &args).unwrap(), "emergency get");
    assert_eq!((got.task().emergency, got.task().state), (true, TaskState::Granted));
    let pending: Got =
        json(&sb.cone("alice", &["get", "sandbox-administratoraccess", "-j", "deploy", "-o", "json"]).unwrap(), "get");
    assert_eq!(pending.task().state, TaskState::PendingApproval);
    let id = pending.task().id.to_string();
    let o = sb.cone("bob", &["task", "escalate", &id]).unwrap();
    assert_fails_with(&o, "bob escalating", &["Only alice can escalate"]);
    let escalated: Task = json(&sb.cone("alice", &["task", "escalate", &id, "-o", "json"]).unwrap(), "escalate");
    assert!(escalated.emergency);
    assert_ne!(escalated.state, TaskState::PendingApproval);

    // Errors are JSON too, with the server's code.
    let o = sb.cone("alice", &["task", "get", "999", "-o", "json"]).unwrap();
    let err: serde_json::Value = serde_json::from_str(&text(&o).1).unwrap();
    assert_eq!(err["error"]["code"], "not_found");
}

/// `aws env`, `aws exec` (which must not pass a cone `AWS_PROFILE` on), `aws logout`, `logout`, completions.
#[tokio::test(flavor = "multi_thread")]
async fn environment_exec_and_sign_out() {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start(dir.path(), "").await.unwrap();
    sb.sign_in("alice").await.unwrap();
    let ro = "staging-readonlyaccess";

    let env = assert_ok(&sb.cone("alice", &["aws", "env", ro]).unwrap(), "aws env");
    assert!(env.contains("unset AWS_PROFILE\n") && env.contains("export AWS_ACCESS_KEY_ID=ASIA"), "{env}");
    assert!(env.contains("export AWS_REGION=us-east-1"), "{env}");

    let mut exec = sb.detached("alice", "cone").unwrap();
    let o = exec
        .args(["aws", "exec", ro, "--", "sh", "-c", "echo profile=${AWS_PROFILE:-none}; aws sts get-caller-identity"])
        .env("AWS_PROFILE", ro)
        .output()
        .unwrap();
    let out = assert_ok(&o, "aws exec");
    assert!(out.contains("profile=none") && out.contains("AWSReservedSSO_ReadOnlyAccess_"), "{out}");

    // The console: a federated sign-in URL made from the role's credentials, which the sign-in service (here the
    // emulator) accepts and redirects to the destination.
    let mut console = sb.detached("alice", "cone").unwrap();
    let o = console
        .args(["aws", "console", ro, "--print", "-o", "json"])
        .env("CONE_SIGNIN_URL", &sb.emulator_url)
        .output()
        .unwrap();
    let url = json::<Value>(&o, "aws console")["url"].as_str().unwrap().to_string();
    assert!(url.starts_with(&format!("{}/federation?Action=login&Issuer=cone&Destination=", sb.emulator_url)), "{url}");
    let no_redirects = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap();
    let resp = no_redirects.get(&url).send().await.unwrap();
    assert_eq!(resp.status(), 302);
    assert_eq!(resp.headers()["location"], "https://us-east-1.console.aws.amazon.com/console/home?region=us-east-1");
    // Found by words instead of the profile's name: the same role's console.
    let mut console = sb.detached("alice", "cone").unwrap();
    let o = console
        .args(["aws", "console", "-q", "staging readonly", "--print", "-o", "json"])
        .env("CONE_SIGNIN_URL", &sb.emulator_url)
        .output()
        .unwrap();
    let found = json::<Value>(&o, "aws console -q")["url"].as_str().unwrap().to_string();
    assert!(found.starts_with(&format!("{}/federation?Action=login", sb.emulator_url)), "{found}");
    let mut console = sb.detached("alice", "cone").unwrap();
    let o = console.args(["aws", "console", "-q", "readonly", "--print"]).output().unwrap();
    assert_fails_with(&o, "aws console -q with several matches off a terminal", &["entitlements match \"readonly\""]);

    // Signing out of Identity Center removes its token and every cached role credential.
    let home = sb.home("alice");
    let count = |d: &str| std::fs::read_dir(home.join(d)).map(|r| r.count()).unwrap_or(0);
    assert!(count(".aws/cli/cache") >= 1);
    let o = sb.cone("alice", &["aws", "logout"]).unwrap();
    assert!(
        text(&o).1.contains("Signed out of IAM Identity Center; removed 1 cached role credential(s)."),
        "{:?}",
        text(&o)
    );
    assert_eq!(count(".aws/cli/cache"), 0);
    let o = sb.cone("alice", &["aws", "credentials", ro]).unwrap();
    assert_fails_with(&o, "credentials after aws logout", &["cone aws login"]);

    // Browser sign-in (authorization code with PKCE): the emulator approves as alice, and a stand-in browser that
    // does not wait (as real ones may not) follows the redirect back to cone's loopback listener.
    let browser = dir.path().join("browser.sh");
    std::fs::write(&browser, "#!/bin/sh\n(curl -s -L -o /dev/null \"$1\") >/dev/null 2>&1 &\n").unwrap();
    std::fs::set_permissions(&browser, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mode = serde_json::json!({ "mode": "approve", "user_name": "alice" });
    let resp = reqwest::Client::new()
        .post(format!("{}/_emu/authorize/mode", sb.emulator_url))
        .json(&mode)
        .send()
        .await
        .unwrap();
    assert!(resp.status().is_success());
    let mut login = sb.detached("alice", "cone").unwrap();
    let o = login.args(["aws", "login"]).env("BROWSER", &browser).output().unwrap();
    let (_, err) = text(&o);
    assert!(o.status.success(), "{err}");
    assert!(
        err.contains("/authorize?response_type=code&client_id=")
            && err.contains("Signed in to AWS IAM Identity Center."),
        "{err}"
    );
    let registrations: Vec<String> = std::fs::read_dir(home.join(".aws/sso/cache"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .filter(|t| t.contains("clientSecret") && !t.contains("accessToken"))
        .collect();
    assert!(registrations.len() == 1 && registrations[0].contains("authorization_code"), "{registrations:?}");
    let o = sb.cone("alice", &["aws", "credentials", ro]).unwrap();
    assert_ok(&o, "credentials after the browser sign-in");

    // The seed's "SSO session expired. Logging in...": Identity Center forgets the session (and its refresh
    // token); with a terminal, cone signs in again by itself in the middle of an `aws` call.
    let http = reqwest::Client::new();
    for (path, body) in
        [("tokens/expire-all", serde_json::json!({})), ("refresh-tokens/revoke", serde_json::json!({"all": true}))]
    {
        let resp = http.post(format!("{}/_emu/{path}", sb.emulator_url)).json(&body).send().await.unwrap();
        assert!(resp.status().is_success(), "{path}");
    }
    for entry in std::fs::read_dir(home.join(".aws/cli/cache")).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let mut tty = sb.detached("alice", "script").unwrap();
    let line = format!("aws sts get-caller-identity --profile {ro}");
    let o = tty.args(["-qefc", &line, "/dev/null"]).env("BROWSER", &browser).output().unwrap();
    let out = assert_ok(&o, "aws with an expired session on a terminal");
    assert!(
        out.contains("SSO session expired. Logging in...") && out.contains("AWSReservedSSO_ReadOnlyAccess_"),
        "{out}"
    );
    // A refused call on a terminal: cone's news appear once, live; the AWS CLI's error block holds the outcome only.
    let line = "aws sts get-caller-identity --profile production-administratoraccess";
    let o = sb.detached("alice", "script").unwrap().args(["-qefc", line, "/dev/null"]).output().unwrap();
    let (stdout, stderr) = text(&o);
    let out = stdout.replace('\r', "") + &stderr;
    assert!(!o.status.success(), "{out}");
    for once in ["No active grant for", "Access request submitted (task: ", "requires approval", "custom-process"] {
        assert_eq!(out.matches(once).count(), 1, "{once:?} once in:\n{out}");
    }
    let block = out.split("custom-process").nth(1).unwrap_or_default();
    assert!(block.contains("requires approval") && !block.contains("Access request submitted"), "{out}");

    // Several matches on a terminal: a fuzzy picker; typing narrows to one, Enter takes it. Without a terminal,
    // or with -i, the matches are listed in an error instead.
    let o = sb.cone("alice", &["get", "-q", "readonly", "-j", "read"]).unwrap();
    assert_fails_with(&o, "several matches without a terminal", &["entitlements match \"readonly\"", "by its alias"]);
    // The list starts with Production's (the catalog's order), so what is typed decides.
    let typed = "(sleep 2; printf 'sandb'; sleep 1; printf '\\r'; sleep 1) | script -qefc 'cone get -q readonly -j read --wait' /dev/null";
    let o = sb.detached("alice", "sh").unwrap().args(["-c", typed]).output().unwrap();
    let out = text(&o).0.replace('\r', "");
    assert!(o.status.success() && out.contains("entitlements match \"readonly\""), "{out}");
    assert_eq!(sb.cone("alice", &["has", "sandbox-readonlyaccess"]).unwrap().status.code(), Some(0), "{out}");
    assert_eq!(sb.cone("alice", &["has", "production-readonlyaccess"]).unwrap().status.code(), Some(2), "{out}");

    // The seed's "Missing cone_app_id or cone_entitlement_id", for a profile an older version wrote.
    let config = home.join(".aws/config");
    let old = std::fs::read_to_string(&config).unwrap()
        + "\n[profile legacy]\ncredential_process = cone aws credentials legacy\n";
    std::fs::write(&config, old).unwrap();
    let o = sb.cone("alice", &["aws", "credentials", "legacy"]).unwrap();
    assert_fails_with(
        &o,
        "a profile without cone keys",
        &[
            "Missing cone_app_id or cone_entitlement_id in profile \"legacy\". Delete the profile from",
            "and re-run `cone aws setup` to recreate it.",
        ],
    );

    // Signing out of Cone revokes the token at the server.
    let token = std::fs::read_to_string(home.join(".conductorone/token.json")).unwrap();
    assert_ok(&sb.cone("alice", &["logout"]).unwrap(), "logout");
    let o = sb.cone("alice", &["whoami"]).unwrap();
    assert_fails_with(&o, "whoami after logout", &["You are not signed in to Cone"]);
    std::fs::write(home.join(".conductorone/token.json"), token).unwrap();
    let o = sb.cone("alice", &["whoami"]).unwrap();
    assert_fails_with(&o, "whoami with the revoked token", &["Cone session has expired or was revoked"]);

    let o = sb.cone("alice", &["completions", "bash"]).unwrap();
    assert!(assert_ok(&o, "completions").contains("_cone()"));
}

/// Two cone profiles in one HOME (alice's own session and one signed in as bob), each with its own token and
/// AWS profiles, and `aws setup --prune` removing only its own stale sections.
#[tokio::test(flavor = "multi_thread")]
async fn cone_profiles_and_prune() {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start(dir.path(), "").await.unwrap();
    sb.sign_in("alice").await.unwrap();

    let o = sb.cone("alice", &["-p", "work", "whoami"]).unwrap();
    assert_fails_with(&o, "whoami of a new profile", &["run `cone -p work login <server-url>`"]);
    sb.cone_login("alice", &["-p", "work"], "bob").await.unwrap();
    let me: Me = json(&sb.cone("alice", &["-p", "work", "whoami", "-o", "json"]).unwrap(), "whoami -p work");
    assert_eq!(me.username, "bob");
    let me: Me = json(&sb.cone("alice", &["whoami", "-o", "json"]).unwrap(), "whoami");
    assert_eq!(me.username, "alice");

    let setup =
        ["-p", "work", "aws", "setup", "--sso-url", cone_testkit::START_URL, "--sso-region", "us-east-1", "-o", "json"];
    let result: Value = json(&sb.cone("alice", &setup).unwrap(), "setup -p work");
    let added: Vec<&str> = result["added"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert!(added.contains(&"work-staging-readonlyaccess"), "{added:?}");
    let config_path = sb.home("alice").join(".aws/config");
    let config = std::fs::read_to_string(&config_path).unwrap();
    assert!(config.contains(" -p work aws credentials work-staging-readonlyaccess\n"), "{config}");
    let shown: Value = json(&sb.cone("alice", &["-p", "work", "aws", "setup", "show", "-o", "json"]).unwrap(), "show");
    assert_eq!(shown["sso_start_url"], cone_testkit::START_URL);

    // Stale sections: one of the default profile (pruned), one of `work` (kept when pruning default), and the
    // person's own profile (never touched).
    let marker = "# Managed by cone; edit with `cone aws setup`.";
    let stale = format!(
        "{config}\n[profile mine]\nregion = eu-west-1\n\n{marker}\n[profile gone-role]\ncone_app_id = aws\ncone_entitlement_id = 1|arn:gone\n\n{marker}\n[profile work-gone]\ncone_profile = work\ncone_app_id = aws\ncone_entitlement_id = 2|arn:gone\n"
    );
    std::fs::write(&config_path, &stale).unwrap();
    let result: Value = json(&sb.cone("alice", &["aws", "setup", "--prune", "-o", "json"]).unwrap(), "prune");
    assert_eq!(result["removed"], serde_json::json!(["gone-role"]));
    let pruned = std::fs::read_to_string(&config_path).unwrap();
    assert!(pruned.starts_with(&format!("{config}\n[profile mine]\nregion = eu-west-1\n")), "{pruned}");
    assert!(!pruned.contains("gone-role") && pruned.contains("[profile work-gone]"), "{pruned}");
    let result: Value =
        json(&sb.cone("alice", &["-p", "work", "aws", "setup", "--prune", "-o", "json"]).unwrap(), "prune");
    assert_eq!(result["removed"], serde_json::json!(["work-gone"]));
    let pruned = std::fs::read_to_string(&config_path).unwrap();
    assert_eq!(pruned, format!("{config}\n[profile mine]\nregion = eu-west-1\n"));

    // Requests go to the profile's server session: this one is bob's.
    let got: Got =
        json(&sb.cone("alice", &["-p", "work", "get", "staging-readonlyaccess", "-o", "json"]).unwrap(), "get");
    assert_eq!(got.task().requester, "bob");
}

/// The seed's "Session token not found or invalid" (a wrong SSO region) and "Profiles not appearing after setup"
/// (the failed-sync variant of the latter is a unit test of `empty_catalog_hint`).
#[tokio::test(flavor = "multi_thread")]
async fn wrong_sso_region_and_profiles_not_appearing() {
    let dir = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::start(dir.path(), "").await.unwrap();
    sb.sign_in("alice").await.unwrap();
    let ro = "staging-readonlyaccess";

    // Setup pointed at another region, whose Identity Center (a second emulator, since every region has its own
    // endpoints) never saw alice's sign-in.
    let o = sb.cone("alice", &["aws", "setup", "--sso-region", "eu-west-1"]).unwrap();
    assert_ok(&o, "setup with the wrong region");
    let (_eu, eu_url) = sb.emulator_in("eu-west-1").unwrap();
    let mut wrong = sb.detached("alice", "cone").unwrap();
    let o = wrong
        .args(["aws", "credentials", ro])
        .env("AWS_ENDPOINT_URL_SSO", &eu_url)
        .env("AWS_ENDPOINT_URL_SSO_OIDC", &eu_url)
        .output()
        .unwrap();
    assert_fails_with(
        &o,
        "credentials in the wrong region",
        &[
            "Session token not found or invalid: IAM Identity Center in eu-west-1 does not accept your sign-in.",
            "check it with `cone aws setup show` and fix it with `cone aws setup --sso-region <region>`.",
        ],
    );
    let o = sb.cone("alice", &["aws", "setup", "show"]).unwrap();
    assert!(assert_ok(&o, "setup show").contains("eu-west-1"));
    assert_ok(&sb.cone("alice", &["aws", "setup", "--sso-region", "us-east-1"]).unwrap(), "setup, region fixed");
    let o = sb.cone("alice", &["aws", "credentials", ro]).unwrap();
    assert!(assert_ok(&o, "credentials, region fixed").contains("\"AccessKeyId\""));

    // A server whose Identity Center (in eu-west-2, where the sandbox has none of its permission sets) offers
    // nothing: setup says what the server's last sync found instead of silently writing nothing.
    sb.reconfigure_server(|c| c.replace("sso_region: us-east-1", "sso_region: eu-west-2").replace("cone.db", "new.db"))
        .unwrap();
    sb.cone_login("alice", &[], "alice").await.unwrap();
    let before = std::fs::read_to_string(sb.home("alice").join(".aws/config")).unwrap();
    let o = sb.cone("alice", &["aws", "setup"]).unwrap();
    assert_ok(&o, "setup with nothing synced");
    let out = text(&o).1;
    assert!(
        out.contains("No AWS permission sets are visible to you in Cone, so no profiles were written")
            && out.contains("The AWS integration last synced at ")
            && out.contains("found no permission set you can request; ask your Cone administrator"),
        "{out}"
    );
    assert_eq!(std::fs::read_to_string(sb.home("alice").join(".aws/config")).unwrap(), before);
}
