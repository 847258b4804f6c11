//! Cone end to end, in one test binary so that the AWS SDK is linked once: moto, the Identity Center emulator,
//! cone-server and the `cone` CLI as separate processes on free loopback ports, driven by the real AWS clients, a
//! browser and the typed API client. Needs `cargo build --workspace --bins` (the harness refuses binaries older than
//! their sources) and the `.venv` that `cargo xtask test` prepares.

mod authz;
mod config;
mod connector;
mod deploy;
mod flow;
mod forms;
mod groups;
mod iam;
mod iam_groups;
mod idc_users;
mod interop;
mod notify;
mod openapi;
mod ops;
mod people;
mod policy;
mod reviews;
mod server;
mod tokens;
mod web;

use std::time::{Duration, Instant};

use cone_testkit::Sandbox;

/// Polls `check` every half second until it holds, failing with `what` after `within`.
async fn eventually<F: AsyncFnMut() -> bool>(within: Duration, what: &str, mut check: F) {
    let deadline = Instant::now() + within;
    while !check().await {
        assert!(Instant::now() < deadline, "not within {within:?}: {what}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// `cone-server verify-audit` finds the audit chain whole.
fn assert_audit_intact(sb: &Sandbox) {
    let o = std::process::Command::new(cone_testkit::target_bin("cone-server").unwrap())
        .args(["verify-audit", "--config"])
        .arg(sb.dir.join("cone-server.yaml"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "cone-server verify-audit: {err}");
    assert!(err.contains("The audit log is intact."), "{err}");
}

/// Cone's service control policy in moto, if it exists: its text and the accounts it is attached to.
async fn denial_policy(org: &aws_sdk_organizations::Client) -> Option<(String, Vec<String>)> {
    use aws_sdk_organizations::types::PolicyType;
    let listed = org.list_policies().filter(PolicyType::ServiceControlPolicy).send().await.unwrap();
    let id = listed.policies().iter().find(|p| p.name() == Some("cone-revoked-sessions"))?.id()?.to_string();
    // The server may delete it between these calls: then it is gone.
    let policy = match org.describe_policy().policy_id(&id).send().await {
        Err(e) if e.as_service_error().is_some_and(|e| e.is_policy_not_found_exception()) => return None,
        other => other.unwrap(),
    };
    let content = policy.policy().and_then(|p| p.content()).unwrap_or_default().to_string();
    let targets = match org.list_targets_for_policy().policy_id(&id).send().await {
        Err(e) if e.as_service_error().is_some_and(|e| e.is_policy_not_found_exception()) => return None,
        other => other.unwrap(),
    };
    Some((content, targets.targets().iter().filter_map(|t| t.target_id().map(str::to_string)).collect()))
}

/// Cone's service control policy once it is made and attached (within 30 s): its text and its accounts.
async fn attached_denial_policy(org: &aws_sdk_organizations::Client) -> (String, Vec<String>) {
    let mut seen = None;
    eventually(Duration::from_secs(30), "the deny policy is in AWS Organizations, attached", async || {
        seen = denial_policy(org).await;
        seen.as_ref().is_some_and(|(_, targets)| !targets.is_empty())
    })
    .await;
    seen.unwrap_or_default()
}

/// The value of the `/metrics` series printed exactly as `series` (name and labels), if there is one.
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.trim().parse().ok())
}
