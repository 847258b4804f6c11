//! Interop: cone and the Identity Center emulator with the real AWS clients, in both directions: AWS CLI v2
//! (Debian's 2.9.19), AWS CLI v1 / botocore, boto3, aws-sso-util and the AWS SDK for Rust. `docs/interop.md`
//! has the matrix. Needs `cargo build --workspace` and what `cargo xtask test` installs (`.venv`, /usr/bin/aws).
//!
//! Every test starts its own sandbox (moto, emulator, cone-server) and signs alice in with `cone`; "native"
//! profiles are the AWS clients' own SSO profiles, appended to her `~/.aws/config` next to cone's.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use aws_config::BehaviorVersion;
use cone_testkit::{START_URL, Sandbox, venv_bin, workspace_root};
use serde_json::{Value, json};
use tempfile::TempDir;

const USER: &str = "alice";
/// A cone profile whose policy approves at once.
const PROFILE: &str = "staging-readonlyaccess";
const ROLE: &str = "ReadOnlyAccess";
/// The AWS CLI v2 from the Debian package, and the data it resolves endpoints from.
const V2: &str = "/usr/bin/aws";
const V2_DATA: &str = "/usr/lib/python3/dist-packages/awscli/botocore/data";
const V2_VERSION: &str = "aws-cli/2.9.19 ";
/// What every client prints in front of the device code it asks the person to confirm.
const CODE_PROMPT: &str = "Then enter the code:";

fn text(o: &Output) -> (String, String) {
    (String::from_utf8_lossy(&o.stdout).into_owned(), String::from_utf8_lossy(&o.stderr).into_owned())
}

fn assert_ok(o: &Output, what: &str) -> String {
    let (out, err) = text(o);
    assert!(o.status.success(), "{what} failed ({})\nstdout: {out}\nstderr: {err}", o.status);
    out
}

fn assert_fails_with(o: &Output, what: &str, needles: &[&str]) -> String {
    let (out, err) = text(o);
    assert!(!o.status.success(), "{what} should have failed\nstdout: {out}\nstderr: {err}");
    for n in needles {
        assert!(err.contains(n), "{what}: stderr lacks {n:?}\nstdout: {out}\nstderr: {err}");
    }
    err
}

fn parse_json(s: &str, what: &str) -> Value {
    serde_json::from_str(s.trim()).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {s}"))
}

/// The JSON files of `dir`, each with its path.
fn json_files(dir: &Path) -> Vec<(PathBuf, Value)> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    entries
        .filter_map(|e| {
            let path = e.ok()?.path();
            let value = serde_json::from_str(&std::fs::read_to_string(&path).ok()?).ok()?;
            Some((path, value))
        })
        .collect()
}

/// The emulator's request log as "METHOD /path STATUS" lines, oldest first.
type Log = Vec<String>;

fn logged(log: &Log, entry: &str) -> bool {
    log.iter().any(|l| l == entry)
}

fn assert_no_sign_in(log: &Log, what: &str) {
    for path in ["/client/register", "/device_authorization", "/token"] {
        assert!(!log.iter().any(|l| l.contains(&format!(" {path} "))), "{what} called {path}: {log:#?}");
    }
}

/// One sandbox with alice signed in to Cone and Identity Center (`cone login`, `cone aws setup`, `cone aws
/// login`), and the AWS CLI v2 endpoint data pointing at it.
struct World {
    // Fields drop in declaration order: the processes stop before their directory goes.
    sb: Sandbox,
    v2_data: PathBuf,
    _dir: TempDir,
}

impl World {
    async fn new() -> World {
        World::with_config("").await
    }

    /// A world whose `~/.aws/config` held `config` before cone wrote its profiles.
    async fn with_config(config: &str) -> World {
        let dir = tempfile::tempdir().unwrap();
        let sb = Sandbox::start(&dir.path().join("sandbox"), "").await.unwrap();
        if !config.is_empty() {
            let path = sb.home(USER).join(".aws/config");
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, config).unwrap();
        }
        sb.sign_in(USER).await.unwrap();
        let v2_data = dir.path().join("aws-cli-v2-data");
        redirect_v2(&v2_data, &sb.emulator_url, &sb.moto.endpoint);
        World { sb, v2_data, _dir: dir }
    }

    fn home(&self) -> PathBuf {
        self.sb.home(USER)
    }

    fn staging(&self) -> &str {
        self.sb.org.account_id("Staging").unwrap()
    }

    /// The start of the ARN of alice's ReadOnlyAccess session in Staging.
    fn staging_role_arn(&self) -> String {
        format!("arn:aws:sts::{}:assumed-role/AWSReservedSSO_ReadOnlyAccess_", self.staging())
    }

    fn append_config(&self, text: &str) {
        use std::io::Write;
        let path = self.home().join(".aws/config");
        let mut file = std::fs::OpenOptions::new().append(true).open(path).unwrap();
        file.write_all(text.as_bytes()).unwrap();
    }

    /// Appends a legacy native SSO profile (start URL and region in the profile) for Staging ReadOnlyAccess.
    fn add_legacy_profile(&self, name: &str) {
        self.append_config(&format!(
            "\n[profile {name}]\nsso_start_url = {START_URL}\nsso_region = us-east-1\nsso_account_id = {}\nsso_role_name = {ROLE}\nregion = us-east-1\n",
            self.staging()
        ));
    }

    /// Appends a native profile using sso-session `corp` (see [`sso_session`]) for Staging ReadOnlyAccess.
    fn add_session_profile(&self, name: &str) {
        self.append_config(&session_profile(name, self.staging()));
    }

    /// The Identity Center token files (`~/.aws/sso/cache` entries holding an access token).
    fn token_files(&self) -> Vec<(PathBuf, Value)> {
        json_files(&self.home().join(".aws/sso/cache"))
            .into_iter()
            .filter(|(_, v)| v["accessToken"].is_string())
            .collect()
    }

    /// The token file the AWS clients name by `key`: the start URL (legacy profiles) or the sso-session name.
    fn token(&self, key: &str) -> Value {
        use sha1::Digest;
        let name = format!("{}.json", hex::encode(sha1::Sha1::digest(key.as_bytes())));
        let path = self.home().join(".aws/sso/cache").join(name);
        let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("token file for {key:?}: {e}"));
        parse_json(&text, &path.display().to_string())
    }

    /// Makes every cached access token expired (refresh token and registration stay valid).
    fn expire_tokens(&self) {
        for (path, mut token) in self.token_files() {
            token["expiresAt"] = "2020-01-01T00:00:00Z".into();
            std::fs::write(path, token.to_string()).unwrap();
        }
    }

    /// The role-credential cache entries of the AWS CLI v2 format (`~/.aws/cli/cache`, provider `sso`).
    fn role_cache(&self) -> Vec<(PathBuf, Value)> {
        json_files(&self.home().join(".aws/cli/cache"))
            .into_iter()
            .filter(|(_, v)| v["ProviderType"] == "sso")
            .collect()
    }

    fn forget_role_cache(&self) {
        for (path, _) in self.role_cache() {
            std::fs::remove_file(path).unwrap();
        }
    }

    fn cone(&self, args: &[&str]) -> Output {
        self.sb.cone(USER, args).unwrap()
    }

    /// `cone aws credentials PROFILE`: requests the grant (approved at once) and prints credentials.
    fn cone_credentials(&self) -> Value {
        let o = self.cone(&["aws", "credentials", PROFILE]);
        let v = parse_json(&assert_ok(&o, "cone aws credentials"), "cone aws credentials");
        assert_eq!(v["Version"], 1);
        assert_eq!(v["AccountId"], self.staging());
        v
    }

    /// AWS CLI v1 (botocore) from `.venv`.
    fn v1(&self, args: &[&str]) -> Output {
        self.sb.aws(USER, args).unwrap()
    }

    fn v2_command(&self) -> Command {
        let mut cmd = self.sb.detached(USER, V2).unwrap();
        cmd.env("AWS_DATA_PATH", &self.v2_data);
        cmd
    }

    /// AWS CLI v2 2.9.19, endpoints redirected through `AWS_DATA_PATH`.
    fn v2(&self, args: &[&str]) -> Output {
        let mut cmd = self.v2_command();
        cmd.args(args);
        cmd.output().unwrap()
    }

    async fn emulator(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut req = reqwest::Client::new().request(method, format!("{}{path}", self.sb.emulator_url));
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert!(status.is_success(), "emulator {path}: {status} {body}");
        parse_json(&body, path)
    }

    async fn log(&self) -> Log {
        let v = self.emulator(reqwest::Method::GET, "/_emu/requests", None).await;
        v["requests"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| format!("{} {} {}", r["method"].as_str().unwrap(), r["path"].as_str().unwrap(), r["status"]))
            .collect()
    }

    async fn forget_log(&self) {
        self.emulator(reqwest::Method::DELETE, "/_emu/requests", None).await;
    }

    /// Runs a device-code sign-in command, approves the code it prints as alice through the emulator's control
    /// API, and returns its output once it exits.
    async fn approve_printed_code(&self, mut cmd: Command) -> Output {
        cmd.env("PYTHONUNBUFFERED", "1").stdout(Stdio::piped()).stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let (tx, rx) = mpsc::channel();
        let out = forward_lines(child.stdout.take().unwrap(), 0, tx.clone());
        let err = forward_lines(child.stderr.take().unwrap(), 1, tx);
        let mut after_prompt = [false, false];
        let mut seen = String::new();
        let code = loop {
            let Ok((stream, line)) = rx.recv_timeout(Duration::from_secs(60)) else {
                panic!("no device code after {CODE_PROMPT:?} within 60 s; output so far:\n{seen}")
            };
            seen += &format!("{line}\n");
            if after_prompt[stream] && !line.trim().is_empty() {
                break line.trim().to_string();
            }
            after_prompt[stream] |= line.contains(CODE_PROMPT);
        };
        drop(rx);
        let body = json!({ "user_code": code, "user_name": USER });
        self.emulator(reqwest::Method::POST, "/_emu/device/approve", Some(body)).await;
        let status = child.wait().unwrap();
        Output { status, stdout: out.join().unwrap().into_bytes(), stderr: err.join().unwrap().into_bytes() }
    }

    /// The AWS SDK for Rust in a child process with alice's environment (see `rust_sdk_child`).
    fn rust_sdk(&self, profiles: &[&str], identity: Option<&str>) -> Output {
        // The sandbox names a credentials file that does not exist; the SDK would warn about that, and the
        // callers look for warnings about the config file.
        let credentials = self.home().join(".aws/credentials");
        if !credentials.exists() {
            std::fs::write(credentials, "").unwrap();
        }
        let exe = std::env::current_exe().unwrap();
        let mut cmd = self.sb.detached(USER, exe.to_str().unwrap()).unwrap();
        cmd.args(["interop::rust_sdk_child", "--exact", "--ignored", "--nocapture", "--test-threads=1"])
            .env("CONE_INTEROP_RUST_PROFILES", profiles.join(","));
        if let Some(profile) = identity {
            cmd.env("CONE_INTEROP_RUST_IDENTITY", profile);
        }
        cmd.output().unwrap()
    }
}

/// Sends each line of `stream` (tagged with `id`) to `tx` while collecting the whole text.
fn forward_lines(
    stream: impl Read + Send + 'static,
    id: usize,
    tx: mpsc::Sender<(usize, String)>,
) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut all = String::new();
        for line in BufReader::new(stream).lines().map_while(Result::ok) {
            all += &line;
            all.push('\n');
            // The reader stops listening once it has the code; the rest is only collected.
            let _ = tx.send((id, line));
        }
        all
    })
}

/// The sso-session `aws configure sso` writes, on cone's start URL.
fn sso_session() -> String {
    format!(
        "[sso-session corp]\nsso_start_url = {START_URL}\nsso_region = us-east-1\nsso_registration_scopes = sso:account:access\n"
    )
}

/// A profile in the shape `aws configure sso` writes, using [`sso_session`].
fn session_profile(profile: &str, account: &str) -> String {
    format!(
        "\n[profile {profile}]\nsso_session = corp\nsso_account_id = {account}\nsso_role_name = {ROLE}\nregion = us-east-1\n"
    )
}

/// AWS CLI 2.9.19 predates `AWS_ENDPOINT_URL_*`; it resolves endpoints only from `endpoint-rule-set-1.json`,
/// which `AWS_DATA_PATH` can replace (aws-sso-protocol.md §5.2). Writes rule sets that send SSO and SSO OIDC to
/// the emulator and STS to moto, keeping the installed parameter definitions the rule engine validates.
fn redirect_v2(dir: &Path, emulator: &str, sts: &str) {
    for (service, version, url) in
        [("sso", "2019-06-10", emulator), ("sso-oidc", "2019-06-10", emulator), ("sts", "2011-06-15", sts)]
    {
        let installed = format!("{V2_DATA}/{service}/{version}/endpoint-rule-set-1.json");
        let installed: Value = parse_json(
            &std::fs::read_to_string(&installed)
                .unwrap_or_else(|e| panic!("{installed}: {e}; `cargo xtask test` installs the Debian package awscli")),
            &installed,
        );
        let rules = json!({
            "version": "1.0",
            "parameters": installed["parameters"],
            "rules": [{"conditions": [], "type": "endpoint", "endpoint": {"url": url, "properties": {}, "headers": {}}}],
        });
        let target = dir.join(service).join(version);
        std::fs::create_dir_all(&target).unwrap();
        std::fs::write(target.join("endpoint-rule-set-1.json"), rules.to_string()).unwrap();
    }
}

fn assert_v2_version() {
    let o = Command::new(V2).arg("--version").output().expect("/usr/bin/aws; `cargo xtask test` installs it");
    let out = assert_ok(&o, "aws --version");
    assert!(out.starts_with(V2_VERSION), "{out}");
}

// ---- AWS CLI v2 ------------------------------------------------------------------------------------------

/// `aws sso login` (device code) with a legacy profile on cone's start URL signs cone in too: cone finds the
/// token under sha1(start URL) and needs no sign-in of its own.
#[tokio::test(flavor = "multi_thread")]
async fn v2_sso_login_legacy_profile_signs_cone_in() {
    assert_v2_version();
    let w = World::new().await;
    assert_ok(&w.cone(&["aws", "logout"]), "cone aws logout");
    let o = w.cone(&["aws", "credentials", PROFILE]);
    assert_fails_with(&o, "cone without an Identity Center sign-in", &["cone aws login"]);

    w.add_legacy_profile("native-legacy");
    let mut login = w.v2_command();
    login.args(["sso", "login", "--no-browser", "--profile", "native-legacy"]);
    let o = w.approve_printed_code(login).await;
    assert!(assert_ok(&o, "aws sso login").contains(&format!("Successfully logged into Start URL: {START_URL}")));
    let token = w.token(START_URL);
    assert_eq!(token["startUrl"], START_URL);

    w.forget_log().await;
    w.cone_credentials();
    let log = w.log().await;
    assert!(logged(&log, "GET /federation/credentials 200"), "{log:#?}");
    assert_no_sign_in(&log, "cone after aws sso login");
    assert_eq!(w.token(START_URL)["accessToken"], token["accessToken"], "cone kept the AWS CLI's token");
    // And a cone profile through the same CLI.
    let o = w.v2(&["sts", "get-caller-identity", "--profile", PROFILE]);
    assert!(assert_ok(&o, "aws sts get-caller-identity").contains(&w.staging_role_arn()));
}

/// `aws sso login` with a profile in the `aws configure sso` shape (sso-session `corp` on cone's start URL):
/// the AWS CLI caches the token under sha1("corp"), and cone uses it.
#[tokio::test(flavor = "multi_thread")]
async fn v2_sso_login_sso_session_profile_signs_cone_in() {
    assert_v2_version();
    let w = World::with_config(&sso_session()).await;
    assert_ok(&w.cone(&["aws", "logout"]), "cone aws logout");
    assert!(w.token_files().is_empty(), "{:#?}", w.token_files());
    w.add_session_profile("native-session");
    let mut login = w.v2_command();
    login.args(["sso", "login", "--no-browser", "--profile", "native-session"]);
    let o = w.approve_printed_code(login).await;
    assert!(assert_ok(&o, "aws sso login").contains(&format!("Successfully logged into Start URL: {START_URL}")));
    let token = w.token("corp");

    w.forget_log().await;
    w.cone_credentials();
    let log = w.log().await;
    assert!(logged(&log, "GET /federation/credentials 200"), "{log:#?}");
    assert_no_sign_in(&log, "cone after aws sso login");
    assert_eq!(w.token("corp")["accessToken"], token["accessToken"], "cone kept the AWS CLI's token");
}

/// cone's sign-in serves a native legacy SSO profile and `aws sso list-accounts` without a new sign-in, and the
/// CLI shares cone's role-credential cache (same file names, same format).
#[tokio::test(flavor = "multi_thread")]
async fn v2_native_profile_uses_cone_sign_in() {
    assert_v2_version();
    let w = World::new().await;
    let creds = w.cone_credentials();
    w.add_legacy_profile("native-legacy");

    // First from cone's cached role credentials: no portal call at all.
    w.forget_log().await;
    let o = w.v2(&["sts", "get-caller-identity", "--profile", "native-legacy"]);
    assert!(assert_ok(&o, "native profile on cone's cache").contains(&w.staging_role_arn()));
    let log = w.log().await;
    assert!(log.is_empty(), "the CLI should have used cone's cached role credentials: {log:#?}");
    let cached = w.role_cache();
    assert_eq!(cached.len(), 1, "{cached:#?}");
    assert_eq!(cached[0].1["Credentials"]["AccessKeyId"], creds["AccessKeyId"]);

    // Then from cone's token: GetRoleCredentials, and still no sign-in.
    w.forget_role_cache();
    w.forget_log().await;
    let o = w.v2(&["sts", "get-caller-identity", "--profile", "native-legacy"]);
    assert!(assert_ok(&o, "native profile on cone's token").contains(&w.staging_role_arn()));
    let log = w.log().await;
    assert!(logged(&log, "GET /federation/credentials 200"), "{log:#?}");
    assert_no_sign_in(&log, "the native profile");

    let token = w.token(START_URL)["accessToken"].as_str().unwrap().to_string();
    let o = w.v2(&["sso", "list-accounts", "--access-token", &token, "--region", "us-east-1"]);
    let accounts = parse_json(&assert_ok(&o, "aws sso list-accounts"), "list-accounts");
    let ids: Vec<&str> =
        accounts["accountList"].as_array().unwrap().iter().filter_map(|a| a["accountId"].as_str()).collect();
    assert_eq!(ids, [w.staging()], "{accounts}");
}

/// `aws sso logout` ends cone's Identity Center session: the token file and cone's role-credential cache
/// entries go, the registration stays, the emulator refuses the old token, and cone needs a sign-in.
#[tokio::test(flavor = "multi_thread")]
async fn v2_sso_logout_clears_cone_state() {
    assert_v2_version();
    let w = World::new().await;
    w.cone_credentials();
    let token = w.token(START_URL)["accessToken"].as_str().unwrap().to_string();
    assert_eq!(w.role_cache().len(), 1);

    w.forget_log().await;
    assert_ok(&w.v2(&["sso", "logout"]), "aws sso logout");
    let log = w.log().await;
    assert!(logged(&log, "POST /logout 200"), "{log:#?}");
    assert!(w.token_files().is_empty(), "{:#?}", w.token_files());
    assert!(w.role_cache().is_empty(), "{:#?}", w.role_cache());
    let registrations = json_files(&w.home().join(".aws/sso/cache"));
    assert!(registrations.iter().any(|(_, v)| v["clientId"].is_string()), "the client registration stays");

    let o = w.v2(&["sso", "list-accounts", "--access-token", &token, "--region", "us-east-1"]);
    assert_fails_with(&o, "the logged-out token", &["UnauthorizedException"]);
    let o = w.cone(&["aws", "credentials", PROFILE]);
    assert_fails_with(&o, "cone after aws sso logout", &["run `cone aws login`"]);
}

/// The `credential_process` profiles cone writes work with AWS CLI v2: the whole JIT flow on the first call.
#[tokio::test(flavor = "multi_thread")]
async fn v2_runs_cone_credential_process_profiles() {
    assert_v2_version();
    let w = World::new().await;
    runs_cone_profiles(&w, World::v2).await;
}

/// The first call through a cone profile files the request and gets the role; the second is served from cone's
/// cache without reaching the emulator.
async fn runs_cone_profiles(w: &World, aws: fn(&World, &[&str]) -> Output) {
    let o = aws(w, &["sts", "get-caller-identity", "--profile", PROFILE]);
    assert!(assert_ok(&o, "a cone profile").contains(&w.staging_role_arn()));
    let task = parse_json(&assert_ok(&w.cone(&["task", "get", "1", "-o", "json"]), "task get"), "task");
    assert_eq!(task["state"], "granted");
    assert_eq!(w.role_cache().len(), 1, "cone cached the role credentials");
    w.forget_log().await;
    let o = aws(w, &["sts", "get-caller-identity", "--profile", PROFILE]);
    assert!(assert_ok(&o, "second call").contains(&w.staging_role_arn()));
    assert!(w.log().await.is_empty());
}

// ---- AWS CLI v1 / botocore ----------------------------------------------------------------------------------

/// botocore uses cone's token for a legacy native profile. Legacy profiles are never refreshed by botocore:
/// with the token expired it refuses locally, and once cone has refreshed the token (through the emulator,
/// with the refresh token) the profile works again.
#[tokio::test(flavor = "multi_thread")]
async fn v1_native_legacy_profile_uses_cone_token() {
    let w = World::new().await;
    w.cone_credentials();
    w.add_legacy_profile("native-legacy");
    w.forget_log().await;
    let o = w.v1(&["sts", "get-caller-identity", "--profile", "native-legacy"]);
    assert!(assert_ok(&o, "v1 native profile").contains(&w.staging_role_arn()));
    let log = w.log().await;
    assert!(logged(&log, "GET /federation/credentials 200"), "{log:#?}");
    assert_no_sign_in(&log, "v1 native profile");

    let before = w.token(START_URL);
    w.expire_tokens();
    w.forget_log().await;
    let o = w.v1(&["sts", "get-caller-identity", "--profile", "native-legacy"]);
    assert_fails_with(&o, "v1 with an expired token", &["The SSO session associated with this profile has expired"]);
    assert!(w.log().await.is_empty(), "botocore checks a legacy token's expiry locally");

    // cone refreshes it (it needs role credentials, so its own cache goes first).
    w.forget_role_cache();
    w.cone_credentials();
    let log = w.log().await;
    assert!(logged(&log, "POST /token 200") && !log.iter().any(|l| l.contains("/device_authorization")), "{log:#?}");
    let after = w.token(START_URL);
    assert_ne!(after["accessToken"], before["accessToken"]);
    assert_ne!(after["refreshToken"], before["refreshToken"], "the emulator rotates refresh tokens");
    let o = w.v1(&["sts", "get-caller-identity", "--profile", "native-legacy"]);
    assert!(assert_ok(&o, "v1 after cone's refresh").contains(&w.staging_role_arn()));
}

/// botocore refreshes cone's expired token for an sso-session profile (the only form botocore refreshes), with
/// the refresh token through the emulator, and cone then uses the token botocore refreshed.
#[tokio::test(flavor = "multi_thread")]
async fn v1_native_sso_session_profile_refreshes_cone_token() {
    let w = World::with_config(&sso_session()).await;
    w.cone_credentials();
    w.add_session_profile("native-session");
    let before = w.token("corp");
    assert_eq!(before["accessToken"], w.token(START_URL)["accessToken"], "cone wrote the session's token file");
    w.expire_tokens();
    w.forget_log().await;
    let o = w.v1(&["sts", "get-caller-identity", "--profile", "native-session"]);
    assert!(assert_ok(&o, "v1 sso-session profile").contains(&w.staging_role_arn()));
    refreshed_and_shared(&w, &before, "botocore").await;
}

/// An sso-session added to `~/.aws/config` after cone signed in (`aws configure sso` run later): once cone uses
/// its token again, the session's profiles find cone's live sign-in without a new one.
#[tokio::test(flavor = "multi_thread")]
async fn v1_sso_session_added_after_cone_sign_in() {
    let w = World::new().await;
    w.cone_credentials();
    w.append_config(&format!("\n{}", sso_session()));
    w.add_session_profile("native-session");
    // The next time cone uses its token (here for a role it holds no cached credentials of), it copies it to the
    // new session's file.
    assert_ok(&w.cone(&["aws", "credentials", "production-readonlyaccess"]), "cone aws credentials, another role");
    w.forget_log().await;
    let o = w.v1(&["sts", "get-caller-identity", "--profile", "native-session"]);
    assert!(assert_ok(&o, "v1 with a later sso-session").contains(&w.staging_role_arn()));
    assert_no_sign_in(&w.log().await, "v1 with a later sso-session");
}

/// The `credential_process` profiles cone writes work with AWS CLI v1.
#[tokio::test(flavor = "multi_thread")]
async fn v1_runs_cone_credential_process_profiles() {
    let w = World::new().await;
    runs_cone_profiles(&w, World::v1).await;
}

// ---- boto3 ----------------------------------------------------------------------------------------------------

/// `boto3.Session(profile_name=<cone profile>).client("sts").get_caller_identity()`.
#[tokio::test(flavor = "multi_thread")]
async fn boto3_session_with_cone_profile() {
    let w = World::new().await;
    let script = workspace_root().join("crates/cone-testkit/tests/e2e/boto3_caller_identity.py");
    let mut cmd = w.sb.detached(USER, venv_bin("python").unwrap().to_str().unwrap()).unwrap();
    let o = cmd.arg(script).arg(PROFILE).output().unwrap();
    let v = parse_json(&assert_ok(&o, "boto3"), "boto3");
    assert_eq!(v["boto3"], "1.43.11");
    assert_eq!(v["Account"], w.staging());
    assert!(v["Arn"].as_str().unwrap().starts_with(&w.staging_role_arn()), "{v}");
}

// ---- aws-sso-util -----------------------------------------------------------------------------------------------

/// `aws-sso-util credential-process` uses cone's token, and cone then serves the role credentials aws-sso-util
/// cached (both keep them in `~/.aws/cli/cache` under the AWS CLI's name).
#[tokio::test(flavor = "multi_thread")]
async fn aws_sso_util_credential_process_uses_cone_token() {
    let w = World::new().await;
    w.cone_credentials();
    w.add_legacy_profile("native-legacy");
    w.forget_role_cache();
    w.forget_log().await;
    let mut cmd = w.sb.detached(USER, venv_bin("aws-sso-util").unwrap().to_str().unwrap()).unwrap();
    let o = cmd.args(["credential-process", "--profile", "native-legacy"]).output().unwrap();
    let creds = parse_json(&assert_ok(&o, "aws-sso-util credential-process"), "aws-sso-util");
    assert_eq!(creds["Version"], 1);
    let log = w.log().await;
    assert!(logged(&log, "GET /federation/credentials 200"), "{log:#?}");
    assert_no_sign_in(&log, "aws-sso-util credential-process");

    w.forget_log().await;
    let mine = w.cone_credentials();
    assert_eq!(mine["AccessKeyId"], creds["AccessKeyId"], "cone reused aws-sso-util's cached credentials");
    assert!(w.log().await.is_empty());
}

/// cone's device-code sign-in (`cone aws login --device-code`, for SSH sessions) registers with
/// `sso:account:access`, so Identity Center gives it a refresh token: when the access token has expired, cone
/// refreshes it without a new sign-in.
#[tokio::test(flavor = "multi_thread")]
async fn cone_device_code_sign_in_refreshes_without_signing_in_again() {
    let w = World::new().await;
    let token = w.token(START_URL);
    assert!(token["refreshToken"].is_string(), "no refresh token after a device-code sign-in: {token}");
    w.emulator(reqwest::Method::POST, "/_emu/tokens/expire-all", None).await;
    // Role credentials cached by the sign-in would answer without the token; they go.
    let _ = std::fs::remove_dir_all(w.home().join(".aws/cli/cache"));
    // The cached token must look expired to cone too.
    let path = {
        use sha1::Digest;
        w.home().join(".aws/sso/cache").join(format!("{}.json", hex::encode(sha1::Sha1::digest(START_URL.as_bytes()))))
    };
    let mut expired = token.clone();
    expired["expiresAt"] = "2000-01-01T00:00:00Z".into();
    std::fs::write(&path, expired.to_string()).unwrap();
    w.forget_log().await;
    w.cone_credentials();
    let log = w.log().await;
    assert!(logged(&log, "POST /token 200"), "{log:#?}");
    assert!(!log.iter().any(|l| l.contains("/device_authorization")), "a new sign-in: {log:#?}");
}

/// `aws-sso-util login` (device code) signs cone in: its token file (without refresh token or client) is
/// enough for cone.
#[tokio::test(flavor = "multi_thread")]
async fn aws_sso_util_login_signs_cone_in() {
    let w = World::new().await;
    assert_ok(&w.cone(&["aws", "logout"]), "cone aws logout");
    let mut login = w.sb.detached(USER, venv_bin("aws-sso-util").unwrap().to_str().unwrap()).unwrap();
    login.args(["login", START_URL, "us-east-1", "--headless"]);
    let o = w.approve_printed_code(login).await;
    assert_ok(&o, "aws-sso-util login");
    assert_eq!(w.token(START_URL)["startUrl"], START_URL);

    w.forget_log().await;
    w.cone_credentials();
    let log = w.log().await;
    assert!(logged(&log, "GET /federation/credentials 200"), "{log:#?}");
    assert_no_sign_in(&log, "cone after aws-sso-util login");
}

// ---- AWS SDK for Rust -------------------------------------------------------------------------------------------

/// Not a cell: the Rust SDK cells run this in a child process, because the SDK reads HOME and the AWS variables
/// from the process environment, which tests sharing this process must not change. For each profile in
/// `CONE_INTEROP_RUST_PROFILES` it loads the configuration and prints `REGION <profile> <region>`; for
/// `CONE_INTEROP_RUST_IDENTITY` it calls STS and prints `ARN <arn>`. SDK warnings go to stderr.
#[tokio::test]
#[ignore = "helper, run in a child process by the rust_sdk_* tests"]
async fn rust_sdk_child() {
    let _ = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_max_level(tracing_subscriber::filter::LevelFilter::WARN)
        .try_init();
    let profiles = std::env::var("CONE_INTEROP_RUST_PROFILES").expect("run by the rust_sdk_* tests");
    for profile in profiles.split(',').filter(|p| !p.is_empty()) {
        let config = aws_config::defaults(BehaviorVersion::latest()).profile_name(profile).load().await;
        println!("REGION {profile} {}", config.region().map_or("none", |r| r.as_ref()));
    }
    if let Ok(profile) = std::env::var("CONE_INTEROP_RUST_IDENTITY") {
        let config = aws_config::defaults(BehaviorVersion::latest()).profile_name(&profile).load().await;
        match aws_sdk_sts::Client::new(&config).get_caller_identity().send().await {
            Ok(id) => println!("ARN {}", id.arn().unwrap_or_default()),
            Err(e) => {
                panic!("GetCallerIdentity with profile {profile}: {}", aws_sdk_sts::error::DisplayErrorContext(&e))
            }
        }
    }
}

/// The Rust SDK's legacy SSO credentials provider uses cone's token (it never refreshes legacy tokens).
#[tokio::test(flavor = "multi_thread")]
async fn rust_sdk_legacy_sso_profile_uses_cone_token() {
    let w = World::new().await;
    w.cone_credentials();
    w.add_legacy_profile("native-legacy");
    w.forget_log().await;
    let o = w.rust_sdk(&[], Some("native-legacy"));
    let out = assert_ok(&o, "Rust SDK");
    assert!(out.contains(&format!("ARN {}", w.staging_role_arn())), "{out}");
    let log = w.log().await;
    assert!(logged(&log, "GET /federation/credentials 200"), "{log:#?}");
    assert_no_sign_in(&log, "the Rust SDK");
}

/// The Rust SDK's SSO token provider (sso-session form) reads cone's token and, once it has expired, refreshes
/// it with the refresh token through the emulator; cone then uses the token the SDK refreshed.
#[tokio::test(flavor = "multi_thread")]
async fn rust_sdk_sso_session_profile_refreshes_cone_token() {
    let w = World::with_config(&sso_session()).await;
    w.cone_credentials();
    w.add_session_profile("native-session");
    let before = w.token("corp");
    w.expire_tokens();
    w.forget_log().await;
    let o = w.rust_sdk(&[], Some("native-session"));
    let out = assert_ok(&o, "Rust SDK with an sso-session profile");
    assert!(out.contains(&format!("ARN {}", w.staging_role_arn())), "{out}");
    refreshed_and_shared(&w, &before, "the Rust SDK").await;
}

/// `client` refreshed the sso-session token `before` through the emulator (no new sign-in), and cone then uses the
/// refreshed token: the refresh spent the refresh token cone also held, so cone must not refresh again.
async fn refreshed_and_shared(w: &World, before: &serde_json::Value, client: &str) {
    let log = w.log().await;
    assert!(logged(&log, "POST /token 200") && logged(&log, "GET /federation/credentials 200"), "{log:#?}");
    assert!(!log.iter().any(|l| l.contains("/device_authorization")), "{log:#?}");
    let after = w.token("corp");
    assert_ne!(after["accessToken"], before["accessToken"]);
    assert_ne!(after["refreshToken"], before["refreshToken"], "the emulator rotates refresh tokens");
    w.forget_role_cache();
    w.forget_log().await;
    w.cone_credentials();
    assert_no_sign_in(&w.log().await, &format!("cone after {client}'s refresh"));
}

// ---- Config files -------------------------------------------------------------------------------------------------

/// The profile names cone wrote (each section right after cone's marker comment).
fn cone_profiles(w: &World) -> Vec<String> {
    let config = std::fs::read_to_string(w.home().join(".aws/config")).unwrap();
    let lines: Vec<&str> = config.lines().collect();
    let names: Vec<String> = lines
        .windows(2)
        .filter(|pair| pair[0].starts_with("# Managed by cone"))
        .filter_map(|pair| pair[1].strip_prefix("[profile ")?.strip_suffix(']').map(String::from))
        .collect();
    assert!(names.len() >= 9 && names.iter().any(|n| n == PROFILE), "{names:?}");
    names
}

/// botocore (CLI v1) and CLI v2 read cone's profiles without a warning: `configure get` finds cone's keys, and
/// `configure list` resolves the profile's credentials through `credential_process`.
#[tokio::test(flavor = "multi_thread")]
async fn cone_profiles_parse_in_botocore() {
    let w = World::new().await;
    for name in cone_profiles(&w) {
        let o = w.v1(&["configure", "get", "cone_app_id", "--profile", &name]);
        assert_eq!(assert_ok(&o, "v1 configure get").trim(), "aws", "{name}");
        assert!(text(&o).1.is_empty(), "{name}: {}", text(&o).1);
    }
    let expected_role = w.v1(&["configure", "get", "cone_role_name", "--profile", PROFILE]);
    assert_eq!(assert_ok(&expected_role, "cone_role_name").trim(), ROLE);
    for (client, o) in [
        ("v1", w.v1(&["configure", "list", "--profile", PROFILE])),
        ("v2", w.v2(&["configure", "list", "--profile", PROFILE])),
    ] {
        let out = assert_ok(&o, &format!("{client} configure list"));
        assert!(out.contains("custom-process") && out.contains("us-east-1"), "{client}: {out}");
        assert!(text(&o).1.is_empty(), "{client} warned: {}", text(&o).1);
    }
    let o = w.v2(&["configure", "get", "cone_entitlement_id", "--profile", PROFILE]);
    assert!(assert_ok(&o, "v2 configure get").starts_with(&format!("{}|", w.staging())));
}

/// The Rust SDK loads every cone profile (its region) without a warning, and resolves credentials through
/// `credential_process`.
#[tokio::test(flavor = "multi_thread")]
async fn cone_profiles_parse_in_rust_sdk() {
    let w = World::new().await;
    let names = cone_profiles(&w);
    let refs: Vec<&str> = names.iter().map(String::as_str).collect();
    let o = w.rust_sdk(&refs, Some(PROFILE));
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    for name in &names {
        assert!(out.contains(&format!("REGION {name} us-east-1")), "{name}: {out}");
    }
    assert!(out.contains(&format!("ARN {}", w.staging_role_arn())), "{out}");
    assert!(!err.contains("WARN") && !err.contains("ERROR"), "{err}");
}

/// A config in the shape `aws configure sso` writes (sso-session + profile using it) next to cone's profiles:
/// `cone aws setup` keeps it byte for byte, cone's profiles work, and botocore and the Rust SDK still read
/// both kinds of profile without a warning.
#[tokio::test(flavor = "multi_thread")]
async fn aws_configure_sso_config_coexists_with_cone() {
    // One of the user's profiles has the name one of cone's would have.
    let original = format!(
        "[default]\nregion = us-east-1\noutput = json\n\n{}{}{}",
        sso_session(),
        session_profile("corp-dev", "111111111111"),
        session_profile("production-readonlyaccess", "111111111111")
    );
    let w = World::with_config(&original).await;
    let config = std::fs::read_to_string(w.home().join(".aws/config")).unwrap();
    assert!(config.starts_with(&original), "cone changed what it did not write:\n{config}");
    assert!(cone_profiles(&w).iter().any(|n| n == PROFILE));
    let o = w.cone(&["aws", "setup", "-o", "json"]);
    let setup = parse_json(&assert_ok(&o, "cone aws setup"), "cone aws setup -o json");
    assert_eq!(setup["taken"], serde_json::json!(["production-readonlyaccess"]), "{setup}");
    assert!(!cone_profiles(&w).iter().any(|n| n == "production-readonlyaccess"));

    let o = w.v1(&["sts", "get-caller-identity", "--profile", PROFILE]);
    assert!(assert_ok(&o, "cone profile").contains(&w.staging_role_arn()));
    for (key, value) in [("sso_session", "corp"), ("sso_account_id", "111111111111")] {
        let o = w.v1(&["configure", "get", key, "--profile", "corp-dev"]);
        assert_eq!(assert_ok(&o, "configure get").trim(), value);
        assert!(text(&o).1.is_empty(), "{}", text(&o).1);
    }

    let o = w.rust_sdk(&["corp-dev", PROFILE], None);
    let (out, err) = text(&o);
    assert!(o.status.success(), "stdout: {out}\nstderr: {err}");
    assert!(out.contains("REGION corp-dev us-east-1") && out.contains(&format!("REGION {PROFILE} us-east-1")), "{out}");
    assert!(!err.contains("WARN") && !err.contains("ERROR"), "{err}");
}
