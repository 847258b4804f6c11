//! Policies end to end: moto, the Identity Center emulator, cone-server and the `cone` CLI as separate processes.
//! A 2-of-M group approval, a CEL branch, a manager step and a self step. Needs `cargo build --workspace` and the
//! .venv that `cargo xtask test` prepares.

use std::process::Output;
use std::time::{Duration, Instant};

use aws_sdk_identitystore::types::MemberId;
use cone_api::{Task, TaskState};
use cone_testkit::{Got, Sandbox, moto_sdk_config};
use serde::de::DeserializeOwned;

fn output(o: &Output, what: &str, succeeds: bool) -> String {
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.success(), succeeds, "{what}\nstdout: {out}\nstderr: {err}");
    format!("{out}{err}")
}

/// What `cone … -o json` printed, read as `T`.
fn json<T: DeserializeOwned>(o: &Output, what: &str) -> T {
    let out = output(o, what, true);
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("{what}: not what was expected ({e}): {out}"))
}

async fn assignments(sb: &Sandbox, account: &str) -> usize {
    sb.assigned_principals(account, "AdministratorAccess").await.unwrap().len()
}

/// Waits until the worker has provisioned the grant and moto holds the assignment.
async fn assignment_appears(sb: &Sandbox, account: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while assignments(sb, account).await == 0 {
        assert!(Instant::now() < deadline, "no AdministratorAccess assignment in {account} after approval");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Adds carol to "approvers" in moto and waits for cone-server's next sync to see it.
async fn make_carol_an_approver(sb: &Sandbox) {
    let ids = aws_sdk_identitystore::Client::new(&moto_sdk_config(&sb.moto.endpoint));
    let carol = sb.org.users.iter().find(|(name, _)| name == "carol").map(|(_, id)| id.clone()).unwrap();
    ids.create_group_membership()
        .identity_store_id(&sb.org.identity_store_id)
        .group_id(&sb.org.approvers_group_id)
        .member_id(MemberId::UserId(carol))
        .send()
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !output(&sb.cone("carol", &["whoami"]).unwrap(), "carol whoami", true).contains("approvers") {
        assert!(Instant::now() < deadline, "cone-server never synced carol's membership");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

const SETTINGS: &str =
    "  sync_interval_secs: 10\n  owners: [carol]\nidentities:\n  users:\n    - { name: alice, manager: carol }\n";

// Requests longer than an hour need alice's manager and then alice's own acknowledgment; shorter ones two
// approvers. The entitlement says nothing about it: the branch is chosen by the requested duration.
const ADMIN: &str = r#"  - name: admin-by-duration
    match: { permission_set: AdministratorAccess }
    max_duration: 4h
    steps:
      - when: request.duration > duration('1h') && !request.emergency
        steps: [{ approval: { from: manager } }, { approval: { from: self } }]
      - otherwise: [{ approval: { group: approvers, count: 2 } }]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn group_quorum_branches_manager_and_self() {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start_with(dir.path(), SETTINGS, ADMIN).await.unwrap();
    for user in ["alice", "bob", "carol"] {
        sb.sign_in(user).await.unwrap();
    }
    make_carol_an_approver(&sb).await;

    // One hour: two distinct approvers from "approvers"; the same one twice does not count.
    let got: Got =
        json(&sb.cone("alice", &["get", "production-administratoraccess", "-d", "1h", "-o", "json"]).unwrap(), "get");
    assert_eq!(got.task().state, TaskState::PendingApproval);
    assert_eq!(got.task().waiting_for.as_deref(), Some("2 more approvals from group \"approvers\""));
    let id = got.task().id.to_string();
    let o = sb.cone("alice", &["task", "approve", &id]).unwrap();
    assert!(output(&o, "alice approving", false).contains("You cannot approve or deny your own request"));
    let once: Task = json(&sb.cone("bob", &["task", "approve", &id, "-o", "json"]).unwrap(), "bob approving");
    assert_eq!(once.state, TaskState::PendingApproval);
    assert_eq!(once.waiting_for.as_deref(), Some("1 more approval from group \"approvers\" (approved by bob)"));
    assert_eq!(once.decisions[0].by, "bob");
    let o = sb.cone("bob", &["task", "approve", &id]).unwrap();
    assert!(output(&o, "bob approving twice", false).contains(
        "This request waits for 1 more approval from group \"approvers\" (approved by bob); you already approved it."
    ));
    let inbox: Vec<Task> =
        json(&sb.cone("carol", &["task", "search", "--approvable", "-o", "json"]).unwrap(), "carol's inbox");
    assert!(inbox.iter().any(|t| t.id.to_string() == id), "{inbox:?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(assignments(&sb, "Production").await, 0, "granted before the second approval");
    output(&sb.cone("carol", &["task", "approve", &id]).unwrap(), "carol approving", true);
    assignment_appears(&sb, "Production").await;

    // Two hours: the condition picks the other branch, the manager (carol) and then alice herself.
    let got: Got =
        json(&sb.cone("alice", &["get", "staging-administratoraccess", "-d", "2h", "-o", "json"]).unwrap(), "get 2h");
    assert_eq!(got.task().waiting_for.as_deref(), Some("1 more approval from alice's manager (carol)"));
    let id = got.task().id.to_string();
    let o = sb.cone("alice", &["task", "approve", &id]).unwrap();
    assert!(output(&o, "alice before her manager", false).contains("You cannot approve or deny your own request"));
    let o = sb.cone("bob", &["task", "approve", &id]).unwrap();
    assert!(output(&o, "bob, who is not asked", false).contains("There is no task"));
    let managed: Task = json(&sb.cone("carol", &["task", "approve", &id, "-o", "json"]).unwrap(), "manager approving");
    assert_eq!(managed.waiting_for.as_deref(), Some("1 more approval from alice (acknowledging their own request)"));
    let o = sb.cone("carol", &["task", "approve", &id]).unwrap();
    assert!(output(&o, "carol at the self step", false).contains("waits for alice to acknowledge"));
    assert_eq!(assignments(&sb, "Staging").await, 0, "granted before the requester's acknowledgment");
    let table = output(&sb.cone("alice", &["task", "approve", &id]).unwrap(), "alice acknowledging", true);
    assert!(table.contains("step 1: approved by carol") && table.contains("step 2: approved by alice"), "{table}");
    assignment_appears(&sb, "Staging").await;
}
