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
