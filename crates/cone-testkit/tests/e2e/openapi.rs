//! schemathesis fuzzes the running API from its own OpenAPI document (`/api/v1/openapi.json`): every operation
//! with generated valid and invalid input, as an administrator (who may call every endpoint), on SQLite and on
//! PostgreSQL (which is stricter: it refuses NUL in text, for one). The test fails on any failure schemathesis
//! reports, a 5xx first of all. Needs `cargo build --workspace` and the `.venv` that
//! `cargo xtask test` prepares; without schemathesis there, it fails rather than skips.

use std::process::Command;
use std::time::{Duration, Instant};

use cone_testkit::{Sandbox, Store, venv_bin};

cone_testkit::on_both_stores!(schemathesis_finds_no_failure);

/// Examples per operation and phase; the whole run takes well under two minutes.
const EXAMPLES: &str = "100";

/// What each response is checked for. `negative_data_rejection` and `positive_data_acceptance` are left out: the
/// API clamps page sizes and long-poll waits rather than refusing them, and answers 404 for schema-valid ids of
/// nothing, both on purpose.
const CHECKS: &str = "not_a_server_error,status_code_conformance,content_type_conformance,\
response_headers_conformance,response_schema_conformance,unsupported_method,allow_header_conformance";

async fn schemathesis_finds_no_failure(store: Store) {
    let st = venv_bin("schemathesis").expect("schemathesis is part of the test tools");
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start_on(store, dir.path(), "", "").await.unwrap();
    // carol administers the sandbox, so no endpoint is closed to the run.
    sb.cone_login("carol", &[], "carol").await.unwrap();
    let token = sb.api_token("carol").unwrap();
    let work = dir.path().join("schemathesis");
    std::fs::create_dir_all(&work).unwrap();

    let mut cmd = Command::new(st);
    cmd.current_dir(&work)
        .args(["run", &format!("{}/api/v1/openapi.json", sb.server_url)])
        .args(["--header", &format!("Authorization: Bearer {token}")])
        .args(["--checks", CHECKS, "--max-examples", EXAMPLES, "--seed", "20260101", "--workers", "2"])
        .args(["--request-timeout", "20"])
        // Signing out would end the run's session; the sign-out itself is checked in authz.rs.
        .args(["--exclude-path", "/api/v1/logout"])
        // The connector's routes take its credentials (HTTP Basic), which the run has not: every call would be the
        // 401 that authz.rs checks, and connector.rs drives them with a real connector.
        .args(["--exclude-tag", "connector"])
        .env("NO_COLOR", "1");
    let started = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output()).await.unwrap().expect("running schemathesis");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    println!("{text}");
    assert!(out.status.success(), "schemathesis reported failures ({}):\n{text}", out.status);
    assert!(text.contains("passed"), "schemathesis ran no test:\n{text}");
    assert!(started.elapsed() < Duration::from_secs(120), "schemathesis took {:?}", started.elapsed());
}
