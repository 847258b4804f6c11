//! The web console in a real browser: Debian's Chromium driven by playwright-core (`web-tests/console.mjs`)
//! against moto, the Identity Center emulator and cone-server as processes, and an OpenID Connect provider
//! (`web-tests/oidc-provider.mjs`, the `oidc-provider` package). Needs `cargo build --workspace`, the .venv,
//! `chromium` and `npm ci` in `web-tests/`, all of which `cargo xtask test` prepares. Screenshots of each page land
//! in `target/web-screenshots/`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use aws_sdk_ssoadmin::types::PrincipalType;
use cone_api::{CreateTask, NewReviewCampaign, ReviewItem, ReviewScope, Reviewers, ReviewersFrom, TaskState};
use cone_testkit::{Child, Sandbox, moto_sdk_config, password, workspace_root};

const CHROMIUM: &str = "/usr/bin/chromium";

/// The sign-in button's name for the test's identity provider.
const PROVIDER: &str = "Test IdP";

fn scripts() -> PathBuf {
    let scripts = workspace_root().join("web-tests");
    assert!(
        scripts.join("node_modules/playwright-core").is_dir() && Path::new(CHROMIUM).exists(),
        "the browser test needs {CHROMIUM} and `npm ci` in {}; `cargo xtask test` installs both",
        scripts.display()
    );
    scripts
}

/// Runs one phase of the browser script and returns what it printed.
fn browser(sb: &Sandbox, phase: &str, shots: &Path) -> String {
    browser_with(sb, phase, shots, &[])
}

/// [`browser`] with more of the environment the phase reads (or another `CONE_URL`).
fn browser_with(sb: &Sandbox, phase: &str, shots: &Path, env: &[(&str, &str)]) -> String {
    let mut node = Command::new("node");
    node.arg("console.mjs")
        .arg(phase)
        .current_dir(scripts())
        .env("OIDC_NAME", PROVIDER)
        .env("CONE_URL", &sb.server_url)
        .env("CONE_SCREENSHOTS", shots)
        .env("CONE_STATE", &sb.dir)
        .env("CHROMIUM", CHROMIUM);
    for user in ["alice", "bob", "carol"] {
        node.env(format!("CONE_PASSWORD_{}", user.to_uppercase()), password(user));
    }
    node.envs(env.iter().copied());
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

/// Waits up to a minute for alice's assignment to leave AWS (revocation is a job the workers run), else fails.
async fn assert_unassigned_soon(sb: &Sandbox, failure: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    while alice_assigned(sb).await {
        assert!(Instant::now() < deadline, "{failure}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn requests_approved_in_the_browser_are_made_released_and_expired_in_aws() {
    let dir = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::start_with(dir.path(), "  sync_iam: true\n  sync_secrets: true\n", "").await.unwrap();
    let shots: PathBuf = workspace_root().join("target/web-screenshots");
    // An IAM user with an access key for carol's Access keys page; a restarted server syncs it before it is ready.
    let iam = aws_sdk_iam::Client::new(&moto_sdk_config(&sb.moto.endpoint));
    iam.create_user().user_name("deployer").send().await.unwrap();
    iam.create_access_key().user_name("deployer").send().await.unwrap();
    sb.start_server().unwrap();

    // alice requests, bob approves with a comment, alice sees the grant active: the assignment exists in AWS.
    let out = browser(&sb, "request", &shots);
    assert!(out.contains("\"task\":"), "{out}");
    assert!(alice_assigned(&sb).await, "the browser saw the grant active, but AWS has no assignment");

    // alice releases it: the assignment goes.
    browser(&sb, "release", &shots);
    assert_unassigned_soon(&sb, "the released grant's assignment is still in AWS").await;

    // A grant of 40 seconds, approved in the browser, is made in AWS and ends there by itself.
    let out = browser(&sb, "expire", &shots);
    assert!(out.contains("\"task\":"), "{out}");
    assert!(alice_assigned(&sb).await, "the browser saw the short grant active, but AWS has no assignment");
    browser(&sb, "expired", &shots);
    assert_unassigned_soon(&sb, "the browser saw the grant expired, but its assignment is still in AWS").await;
    for page in [
        "sign-in",
        "catalog",
        "request-form",
        "approvals",
        "my-requests-granted",
        "audit-log",
        "drift",
        "access-keys",
        "my-requests-expired",
    ] {
        assert!(shots.join(format!("{page}.png")).is_file(), "no screenshot of {page}");
    }
}

/// At the size of a real organisation (`bench/seed_org.py`'s 200 accounts × 20 permission sets and 2,000 people,
/// added to the sandbox): alice finds one entitlement among 4,000 by three words in the catalog and requests it, and
/// moto holds the assignment; carol narrows the audit log to alice's actions this week and sees her by name.
#[tokio::test(flavor = "multi_thread")]
async fn at_the_size_of_an_organisation_three_words_find_one_entitlement_and_the_audit_log_one_person() {
    let dir = tempfile::tempdir().unwrap();
    let seeded =
        "  - name: seeded-ps-07\n    match: { permission_set: ps-07 }\n    max_duration: 1h\n    steps: [accept]\n";
    let mut sb = Sandbox::start_with(dir.path(), "", seeded).await.unwrap();
    sb.cone_login("alice", &[], "alice").await.unwrap();
    let (_server, url) = sb.seed_org().await.unwrap();
    let shots: PathBuf = workspace_root().join("target/web-screenshots");
    let out = browser_with(&sb, "org", &shots, &[("CONE_URL", &url)]);
    assert!(out.contains("\"task\":"), "{out}");

    let alice = cone_client::Client::new(&url, &sb.api_token("alice").unwrap()).unwrap();
    let found = alice.search_entitlements(&[("q", "acct 0150 ps-07")]).await.unwrap();
    assert_eq!(found.len(), 1, "{found:?}");
    let (account, permission_set) = found[0].id.split_once('|').unwrap();
    let sso = aws_sdk_ssoadmin::Client::new(&moto_sdk_config(&sb.moto.endpoint));
    let listed = sso
        .list_account_assignments()
        .instance_arn(&sb.org.instance_arn)
        .account_id(account)
        .permission_set_arn(permission_set)
        .send()
        .await
        .unwrap();
    let alice_id = sb.org.user_id("alice").unwrap();
    assert!(
        listed.account_assignments().iter().any(|a| a.principal_id() == Some(alice_id)),
        "the browser saw the grant active, but moto has no assignment: {listed:?}"
    );
    for page in ["org-catalog-search", "org-my-requests", "org-audit-log-person"] {
        assert!(shots.join(format!("{page}.png")).is_file(), "no screenshot of {page}");
    }
}

/// The OpenID Connect provider of `web-tests/oidc-provider.mjs` on `port`, with Cone's client (`cone`, `secret`)
/// calling back to the sandbox's server.
fn provider(sb: &Sandbox, port: u16, secret: &str) -> Child {
    let mut node = Command::new("node");
    node.arg("oidc-provider.mjs")
        .current_dir(scripts())
        .env("OIDC_PORT", port.to_string())
        .env("OIDC_CLIENT_SECRET", secret)
        .env("OIDC_REDIRECT_URI", format!("{}/console/login/oidc/callback", sb.server_url));
    let (child, issuer) = Child::spawn_ready("oidc-provider", node, Duration::from_secs(30)).unwrap();
    assert_eq!(issuer, format!("http://127.0.0.1:{port}"));
    child
}

#[tokio::test(flavor = "multi_thread")]
async fn an_administrator_changes_a_policy_and_people_sign_in_through_an_identity_provider() {
    let dir = tempfile::tempdir().unwrap();
    let shots: PathBuf = workspace_root().join("target/web-screenshots");
    // The server finds the provider by discovery at the first sign-in, so the provider may start after it, once the
    // server's callback address is known; its port is chosen now, for the server's configuration.
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let secret = "a-client-secret-for-the-browser-test";
    let secret_file = dir.path().join("oidc.secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
    std::fs::set_permissions(&secret_file, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    let settings = format!(
        "oidc:\n  name: {PROVIDER}\n  issuer: http://127.0.0.1:{port}\n  client_id: cone\n  secret_file: {}\n",
        secret_file.display()
    );
    let sb = Sandbox::start_with(&dir.path().join("sandbox"), &settings, "").await.unwrap();
    let _provider = provider(&sb, port, secret);

    browser(&sb, "policies", &shots);
    // alice, signed in through the provider (no password of hers is used), signs her terminal's `cone login` in.
    let (mut login, code) = sb.start_cone_login("alice", &[]).unwrap();
    browser_with(&sb, "oidc", &shots, &[("CONE_USER_CODE", &code)]);
    let status = login.wait().unwrap();
    assert!(status.success(), "cone login failed ({status}) after alice approved its code");
    assert!(sb.api_token("alice").is_ok(), "cone login saved no token");
    for page in [
        "policies",
        "policies-applied",
        "policy-history",
        "connectors",
        "apps",
        "request-form-shorter",
        "provider-signed-in",
        "device-approved",
    ] {
        assert!(shots.join(format!("{page}.png")).is_file(), "no screenshot of {page}");
    }
}

/// An access review in Chromium: carol, alice's and bob's manager, certifies bob's grant and revokes alice's standing
/// AdministratorAccess on Production (made by hand in Identity Center), which then leaves AWS; as an administrator she
/// closes the campaign and downloads its report.
#[tokio::test(flavor = "multi_thread")]
async fn a_reviewer_decides_in_the_browser_and_an_administrator_downloads_the_report() {
    let dir = tempfile::tempdir().unwrap();
    let settings =
        "identities:\n  users:\n    - { name: alice, manager: carol }\n    - { name: bob, manager: carol }\n";
    let mut sb = Sandbox::start_with(dir.path(), settings, "").await.unwrap();
    let shots: PathBuf = workspace_root().join("target/web-screenshots");
    let alice = sb.org.user_id("alice").unwrap().to_string();
    super::groups::assign_to(&sb, "Production", "AdministratorAccess", PrincipalType::User, &alice).await;
    sb.start_server().unwrap();
    for user in ["bob", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let (bob, carol) = (sb.client("bob").unwrap(), sb.client("carol").unwrap());
    let ask = CreateTask {
        app_id: "aws".into(),
        entitlement_id: format!(
            "{}|{}",
            sb.org.account_id("Production").unwrap(),
            sb.org.permission_set_arn("ReadOnlyAccess").unwrap()
        ),
        ..CreateTask::default()
    };
    let task = bob.create_task(&ask).await.unwrap().id;
    super::eventually(Duration::from_secs(30), "bob's grant is active", async || {
        bob.task(task, None, Duration::ZERO).await.unwrap().state == TaskState::Granted
    })
    .await;
    let campaign = NewReviewCampaign {
        name: "Production review".into(),
        due: chrono::Utc::now() + chrono::Duration::days(7),
        scope: ReviewScope { accounts: vec!["Production".into()], ..ReviewScope::default() },
        reviewers: Reviewers { from: ReviewersFrom::Manager, group: None, users: Vec::new(), fallback: Vec::new() },
    };
    let campaign = carol.create_review_campaign(&campaign).await.unwrap();
    assert_eq!(campaign.items, 2, "{campaign:?}");

    let out = browser_with(&sb, "review", &shots, &[("CONE_CAMPAIGN", &campaign.id.to_string())]);
    assert!(out.contains("\"report\":"), "{out}");
    assert_unassigned_soon(&sb, "the assignment revoked in the browser is still in AWS").await;
    let bob_id = sb.org.user_id("bob").unwrap().to_string();
    assert!(sb.assigned_principals("Production", "ReadOnlyAccess").await.unwrap().contains(&bob_id));
    let report = carol.review_report(campaign.id, "jsonl").await.unwrap();
    let states: Vec<String> = report
        .lines()
        .map(|l| serde_json::from_str::<ReviewItem>(l).unwrap())
        .map(|i| format!("{} {}", i.user, i.state.as_str()))
        .collect();
    assert_eq!(states, ["alice revoked", "bob certified"]);
    for page in ["reviews-inbox", "reviews-decided", "review-campaign-closed", "review-campaign-print"] {
        assert!(shots.join(format!("{page}.png")).is_file(), "no screenshot of {page}");
    }
}
