//! The web console in a real browser: Debian's Chromium driven by playwright-core (`web-tests/console.mjs`)
//! against moto, the Identity Center emulator and cone-server as processes. Needs `cargo build --workspace`, the
//! .venv, `chromium` and `npm ci` in `web-tests/`, all of which `cargo xtask test` prepares. Screenshots of each
//! page land in `target/web-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use cone_testkit::{Sandbox, password, workspace_root};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Runs one phase of the browser script and returns what it printed.
fn browser(sb: &Sandbox, phase: &str, shots: &Path) -> String {
    let scripts = workspace_root().join("web-tests");
    assert!(
        scripts.join("node_modules/playwright-core").is_dir() && Path::new(CHROMIUM).exists(),
        "the browser test needs {CHROMIUM} and `npm ci` in {}; `cargo xtask test` installs both",
        scripts.display()
    );
    let mut node = Command::new("node");
    node.arg("console.mjs")
        .arg(phase)
        .current_dir(&scripts)
        .env("CONE_URL", &sb.server_url)
        .env("CONE_SCREENSHOTS", shots)
        .env("CONE_STATE", &sb.dir)
        .env("CHROMIUM", CHROMIUM);
    for user in ["alice", "bob", "carol"] {
        node.env(format!("CONE_PASSWORD_{}", user.to_uppercase()), password(user));
    }
    let out = node.output().expect("node runs (Debian's nodejs)");
    let (stdout, stderr) = (String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "the browser's {phase} phase failed\nstdout: {stdout}\nstderr: {stderr}");
    stdout.into_owned()
}

/// Whether alice holds Production's AdministratorAccess in moto.
async fn alice_assigned(sb: &Sandbox) -> bool {
    let alice = sb.org.user_id("alice").unwrap().to_string();
    sb.assigned_principals("Production", "AdministratorAccess").await.unwrap().contains(&alice)
}

#[tokio::test(flavor = "multi_thread")]
async fn a_request_approved_and_released_in_the_browser_changes_aws() {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start(dir.path(), "").await.unwrap();
    let shots: PathBuf = workspace_root().join("target/web-screenshots");

    // alice requests, bob approves with a comment, alice sees the grant active: the assignment exists in AWS.
    let out = browser(&sb, "request", &shots);
    assert!(out.contains("\"task\":"), "{out}");
    assert!(alice_assigned(&sb).await, "the browser saw the grant active, but AWS has no assignment");

    // alice releases it: the assignment goes.
    browser(&sb, "release", &shots);
    let deadline = Instant::now() + Duration::from_secs(60);
    while alice_assigned(&sb).await {
        assert!(Instant::now() < deadline, "the released grant's assignment is still in AWS");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    for page in ["sign-in", "catalog", "request-form", "approvals", "my-requests-granted", "audit-log", "drift"] {
        assert!(shots.join(format!("{page}.png")).is_file(), "no screenshot of {page}");
    }
}
