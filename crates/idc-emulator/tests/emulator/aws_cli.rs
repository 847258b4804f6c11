//! End to end: moto and the emulator run as child processes on free ports; Identity Center state is set
//! up in moto with the AWS SDK, and the emulator is driven with the real AWS CLI v1 from `.venv`.

use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use aws_config::SdkConfig;
use aws_sdk_identitystore::types::{MemberId, Name};
use aws_sdk_ssoadmin::types::{PrincipalType, TargetType};
use cone_testkit::{Child, Moto, venv_bin};
use serde_json::{Value, json};
use tempfile::TempDir;

const START_URL: &str = "https://d-1234567890.awsapps.com/start";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

/// Identity Center state created in moto for one test.
struct Org {
    sso: aws_sdk_ssoadmin::Client,
    ids: aws_sdk_identitystore::Client,
    instance_arn: String,
    identity_store_id: String,
}

/// An `Org` method calling sso-admin Create- or DeleteAccountAssignment: the same parameters, set on two SDK
/// builder types that share no trait.
macro_rules! account_assignment_method {
    ($(#[$doc:meta])* $name:ident => $operation:ident) => {
        $(#[$doc])*
        async fn $name(
            &self,
            account: &str,
            ps_arn: &str,
            kind: PrincipalType,
            principal: &str,
        ) -> Result<()> {
            self.sso
                .$operation()
                .instance_arn(&self.instance_arn)
                .target_id(account)
                .target_type(TargetType::AwsAccount)
                .permission_set_arn(ps_arn)
                .principal_type(kind)
                .principal_id(principal)
                .send()
                .await?;
            Ok(())
        }
    };
}

impl Org {
    async fn new(sdk: &SdkConfig) -> Result<Org> {
        let sso = aws_sdk_ssoadmin::Client::new(sdk);
        let ids = aws_sdk_identitystore::Client::new(sdk);
        let instances = sso.list_instances().send().await?;
        let instance = instances.instances().first().context("moto has no Identity Center instance")?;
        Ok(Org {
            instance_arn: instance.instance_arn().context("InstanceArn")?.to_string(),
            identity_store_id: instance.identity_store_id().context("IdentityStoreId")?.to_string(),
            sso,
            ids,
        })
    }

    async fn permission_set(&self, name: &str) -> Result<String> {
        let out = self
            .sso
            .create_permission_set()
            .instance_arn(&self.instance_arn)
            .name(name)
            .session_duration("PT1H")
            .send()
            .await?;
        Ok(out.permission_set().and_then(|p| p.permission_set_arn()).context("PermissionSetArn")?.to_string())
    }

    async fn user(&self, name: &str) -> Result<String> {
        let out = self
            .ids
            .create_user()
            .identity_store_id(&self.identity_store_id)
            .user_name(name)
            .display_name(name)
            .name(Name::builder().given_name(name).family_name("Tester").build())
            .send()
            .await?;
        Ok(out.user_id)
    }

    async fn group_with(&self, name: &str, user_id: &str) -> Result<String> {
        let group =
            self.ids.create_group().identity_store_id(&self.identity_store_id).display_name(name).send().await?;
        self.ids
            .create_group_membership()
            .identity_store_id(&self.identity_store_id)
            .group_id(&group.group_id)
            .member_id(MemberId::UserId(user_id.to_string()))
            .send()
            .await?;
        Ok(group.group_id)
    }

    account_assignment_method!(assign => create_account_assignment);
    account_assignment_method!(unassign => delete_account_assignment);
}

/// Creates an organization with member accounts; returns their ids in the order given.
async fn organization(sdk: &SdkConfig, accounts: &[&str]) -> Result<Vec<String>> {
    let org = aws_sdk_organizations::Client::new(sdk);
    org.create_organization().send().await?;
    let mut ids = Vec::new();
    for name in accounts {
        let out = org
            .create_account()
            .account_name(*name)
            .email(format!("{}@example.com", name.to_lowercase()))
            .send()
            .await?;
        let id = out.create_account_status().and_then(|s| s.account_id()).context("AccountId")?;
        ids.push(id.to_string());
    }
    Ok(ids)
}

fn start_emulator(moto: &Moto, extra_args: &[&str]) -> Result<(Child, String)> {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idc-emulator"));
    cmd.args(["--port", "0", "--region", "us-east-1"])
        .args(extra_args)
        .envs(moto.aws_env())
        .env("RUST_LOG", "info")
        .stderr(Stdio::inherit());
    Child::spawn_ready("idc-emulator", cmd, Duration::from_secs(30))
}

/// The AWS CLI v1 with a private HOME, dummy keys, SSO endpoints on the emulator and STS on moto.
struct Cli {
    aws: PathBuf,
    home: TempDir,
    emulator: String,
    moto: String,
}

struct Outcome {
    success: bool,
    stdout: String,
    stderr: String,
}

impl Cli {
    fn new(emulator: &str, moto: &Moto) -> Result<Cli> {
        let home = tempfile::tempdir()?;
        std::fs::create_dir_all(home.path().join(".aws"))?;
        // CLI v1 would otherwise fetch any parameter that looks like a URL (here --start-url) and send its content.
        std::fs::write(home.path().join(".aws/config"), "[default]\ncli_follow_urlparam = false\n")?;
        Ok(Cli { aws: venv_bin("aws")?, home, emulator: emulator.to_string(), moto: moto.endpoint.clone() })
    }

    fn run(&self, args: &[&str], keys: Option<&Value>) -> Result<Outcome> {
        self.run_with(args, keys, &[])
    }

    /// `run` with extra environment variables, which override the defaults.
    fn run_with(&self, args: &[&str], keys: Option<&Value>, env: &[(&str, &str)]) -> Result<Outcome> {
        let mut cmd = Command::new(&self.aws);
        cmd.args(args)
            .args(["--output", "json"])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", self.home.path())
            .env("AWS_DEFAULT_REGION", "us-east-1")
            .env("AWS_ENDPOINT_URL_SSO_OIDC", &self.emulator)
            .env("AWS_ENDPOINT_URL_SSO", &self.emulator)
            .env("AWS_ENDPOINT_URL_STS", &self.moto)
            .env("AWS_MAX_ATTEMPTS", "1")
            .envs(env.iter().copied())
            .stdin(Stdio::null());
        match keys {
            Some(creds) => {
                cmd.env("AWS_ACCESS_KEY_ID", str_at(creds, "/accessKeyId")?)
                    .env("AWS_SECRET_ACCESS_KEY", str_at(creds, "/secretAccessKey")?)
                    .env("AWS_SESSION_TOKEN", str_at(creds, "/sessionToken")?);
            }
            None => {
                cmd.env("AWS_ACCESS_KEY_ID", "dummy").env("AWS_SECRET_ACCESS_KEY", "dummy");
            }
        }
        let out = cmd.output().with_context(|| format!("running aws {}", args.join(" ")))?;
        Ok(Outcome {
            success: out.status.success(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        })
    }

    /// Runs a command that must succeed and returns its JSON output (Null for none).
    fn ok(&self, args: &[&str]) -> Result<Value> {
        self.ok_with(args, None)
    }

    fn ok_with(&self, args: &[&str], keys: Option<&Value>) -> Result<Value> {
        let out = self.run(args, keys)?;
        ensure!(out.success, "aws {} failed:\n{}", args.join(" "), out.stderr);
        if out.stdout.trim().is_empty() {
            return Ok(Value::Null);
        }
        serde_json::from_str(&out.stdout)
            .with_context(|| format!("aws {} printed no JSON: {}", args.join(" "), out.stdout))
    }

    /// Runs a command that must fail and returns its stderr.
    fn fails(&self, args: &[&str]) -> Result<String> {
        let out = self.run(args, None)?;
        ensure!(!out.success, "aws {} succeeded but should have failed:\n{}", args.join(" "), out.stdout);
        Ok(out.stderr)
    }

    /// The whole RegisterClient response, for a client with the scope that brings refresh tokens.
    fn register_client(&self) -> Result<Value> {
        let args = ["--client-name", "idc-test", "--client-type", "public", "--scopes", "sso:account:access"];
        self.ok(&[&["sso-oidc", "register-client"][..], &args[..]].concat())
    }

    /// Registers a client; returns its id and secret.
    fn register(&self) -> Result<(String, String)> {
        let reg = self.register_client()?;
        Ok((str_at(&reg, "/clientId")?, str_at(&reg, "/clientSecret")?))
    }

    fn start_device_args<'a>(client_id: &'a str, client_secret: &'a str) -> Vec<&'a str> {
        vec![
            "sso-oidc",
            "start-device-authorization",
            "--client-id",
            client_id,
            "--client-secret",
            client_secret,
            "--start-url",
            START_URL,
        ]
    }

    fn start_device(&self, client: &(String, String)) -> Result<Value> {
        self.ok(&Self::start_device_args(&client.0, &client.1))
    }

    /// CreateToken with `grant_type`, whose own parameter is `grant_flag` set to `grant_value`.
    fn create_token_args<'a>(
        client: &'a (String, String),
        grant_type: &'a str,
        grant_flag: &'a str,
        grant_value: &'a str,
    ) -> Vec<&'a str> {
        vec![
            "sso-oidc",
            "create-token",
            "--client-id",
            &client.0,
            "--client-secret",
            &client.1,
            "--grant-type",
            grant_type,
            grant_flag,
            grant_value,
        ]
    }

    fn device_token_args<'a>(client: &'a (String, String), device_code: &'a str) -> Vec<&'a str> {
        Self::create_token_args(client, DEVICE_GRANT, "--device-code", device_code)
    }

    fn refresh_args<'a>(client: &'a (String, String), refresh_token: &'a str) -> Vec<&'a str> {
        Self::create_token_args(client, "refresh_token", "--refresh-token", refresh_token)
    }

    fn role_credentials_args<'a>(token: &'a str, account: &'a str, role: &'a str) -> Vec<&'a str> {
        vec!["sso", "get-role-credentials", "--access-token", token, "--account-id", account, "--role-name", role]
    }

    /// Role credentials, checked to live about an hour, then used against moto STS; returns the caller ARN.
    fn caller_with_role(&self, token: &str, account: &str, role: &str) -> Result<String> {
        let out = self.ok(&Self::role_credentials_args(token, account, role))?;
        let creds = out.pointer("/roleCredentials").context("roleCredentials")?.clone();
        let expiration_ms = creds.pointer("/expiration").and_then(Value::as_i64).context("expiration")?;
        let now_ms = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?;
        ensure!(
            (now_ms + 3_500_000..=now_ms + 3_700_000).contains(&expiration_ms),
            "expiration {expiration_ms} is not epoch milliseconds about one hour from {now_ms}"
        );
        let identity = self.ok_with(&["sts", "get-caller-identity"], Some(&creds))?;
        ensure!(str_at(&identity, "/Account")? == account, "caller identity {identity} is not in account {account}");
        str_at(&identity, "/Arn")
    }
}

fn str_at(value: &Value, pointer: &str) -> Result<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("{pointer} missing in {value}"))
}

/// Approves a device authorization through the control endpoint; returns the status and JSON body.
async fn approve(emulator: &str, user_code: &str, user_name: &str) -> Result<(u16, Value)> {
    control(emulator, "/_emu/device/approve", json!({ "user_code": user_code, "user_name": user_name })).await
}

async fn control(emulator: &str, path: &str, body: Value) -> Result<(u16, Value)> {
    let response = reqwest::Client::new().post(format!("{emulator}{path}")).json(&body).send().await?;
    let status = response.status().as_u16();
    Ok((status, response.json().await?))
}

/// Logs `user` in through the device flow with the CLI; returns the token response.
async fn device_login(cli: &Cli, client: &(String, String), user: &str) -> Result<Value> {
    let device = cli.start_device(client)?;
    let (status, body) = approve(&cli.emulator, &str_at(&device, "/userCode")?, user).await?;
    if !(200..300).contains(&status) {
        bail!("approving {user} failed with {status}: {body}");
    }
    cli.ok(&Cli::device_token_args(client, &str_at(&device, "/deviceCode")?))
}

#[tokio::test]
async fn device_login_and_role_credentials_follow_live_assignments() -> Result<()> {
    let moto = Moto::start()?;
    let sdk = cone_testkit::moto_sdk_config(&moto.endpoint);
    let accounts = organization(&sdk, &["Dev"]).await?;
    let dev = accounts[0].as_str();
    let org = Org::new(&sdk).await?;
    let admin = org.permission_set("Admin").await?;
    let read_only = org.permission_set("ReadOnly").await?;
    let alice = org.user("alice").await?;
    let ops = org.group_with("ops", &alice).await?;
    let (_emulator, url) = start_emulator(&moto, &[])?;
    let cli = Cli::new(&url, &moto)?;

    // Registration and device authorization.
    let reg = cli.register_client()?;
    let issued = reg["clientIdIssuedAt"].as_i64().context("clientIdIssuedAt")?;
    let expires = reg["clientSecretExpiresAt"].as_i64().context("clientSecretExpiresAt")?;
    let now_s = i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs())?;
    assert!((issued - now_s).abs() < 60, "clientIdIssuedAt {issued} is not epoch seconds");
    assert_eq!(expires - issued, 90 * 24 * 3600);
    let client = (str_at(&reg, "/clientId")?, str_at(&reg, "/clientSecret")?);
    let device = cli.start_device(&client)?;
    let user_code = str_at(&device, "/userCode")?;
    let device_code = str_at(&device, "/deviceCode")?;
    assert_eq!(device["expiresIn"], 600);
    assert_eq!(device["interval"], 1);
    assert!(str_at(&device, "/verificationUriComplete")?.ends_with(&format!("user_code={user_code}")));

    // Pending until approved, then one token, then the code is spent.
    let pending = cli.fails(&Cli::device_token_args(&client, &device_code))?;
    assert!(pending.contains("AuthorizationPendingException"), "{pending}");
    let (status, _) = approve(&url, &user_code, "alice").await?;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let token = cli.ok(&Cli::device_token_args(&client, &device_code))?;
    assert_eq!(token["tokenType"], "Bearer");
    assert_eq!(token["expiresIn"], 28800);
    let access_token = str_at(&token, "/accessToken")?;
    let refresh_token = str_at(&token, "/refreshToken")?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let reused = cli.fails(&Cli::device_token_args(&client, &device_code))?;
    assert!(reused.contains("InvalidGrantException"), "{reused}");

    // No assignment yet: the portal refuses like the real one.
    let denied = cli.fails(&Cli::role_credentials_args(&access_token, dev, "Admin"))?;
    assert!(denied.contains("(ForbiddenException)") && denied.contains("No access"), "{denied}");

    // A direct assignment, made while the emulator runs, is honoured at once.
    org.assign(dev, &admin, PrincipalType::User, &alice).await?;
    let arn = cli.caller_with_role(&access_token, dev, "Admin")?;
    assert!(arn.starts_with(&format!("arn:aws:sts::{dev}:assumed-role/AWSReservedSSO_Admin_")), "{arn}");
    assert!(arn.ends_with("/alice"), "the session is named after the user: {arn}");

    // Access through a group membership.
    let denied = cli.fails(&Cli::role_credentials_args(&access_token, dev, "ReadOnly"))?;
    assert!(denied.contains("No access"), "{denied}");
    org.assign(dev, &read_only, PrincipalType::Group, &ops).await?;
    let arn = cli.caller_with_role(&access_token, dev, "ReadOnly")?;
    assert!(arn.contains(":assumed-role/AWSReservedSSO_ReadOnly_"), "{arn}");

    // Removing an assignment takes effect at once too.
    org.unassign(dev, &admin, PrincipalType::User, &alice).await?;
    let revoked = cli.fails(&Cli::role_credentials_args(&access_token, dev, "Admin"))?;
    assert!(revoked.contains("No access"), "{revoked}");

    let listed = cli.ok(&["sso", "list-accounts", "--access-token", &access_token])?;
    assert_eq!(
        listed["accountList"],
        json!([{"accountId": dev, "accountName": "Dev", "emailAddress": "dev@example.com"}])
    );
    let roles = cli.ok(&["sso", "list-account-roles", "--access-token", &access_token, "--account-id", dev])?;
    assert_eq!(roles["roleList"], json!([{"roleName": "ReadOnly", "accountId": dev}]));

    // Refresh: a new access token and a rotated refresh token; the old refresh token is spent.
    let refreshed = cli.ok(&Cli::refresh_args(&client, &refresh_token))?;
    let new_access = str_at(&refreshed, "/accessToken")?;
    let new_refresh = str_at(&refreshed, "/refreshToken")?;
    assert_ne!(new_access, access_token);
    assert_ne!(new_refresh, refresh_token);
    let arn = cli.caller_with_role(&new_access, dev, "ReadOnly")?;
    assert!(arn.contains("AWSReservedSSO_ReadOnly_"), "{arn}");
    let spent = cli.fails(&Cli::refresh_args(&client, &refresh_token))?;
    assert!(spent.contains("InvalidGrantException"), "{spent}");

    // Logout ends the session: both access tokens and the refresh token stop working.
    cli.ok(&["sso", "logout", "--access-token", &new_access])?;
    for token in [&new_access, &access_token] {
        let gone = cli.fails(&Cli::role_credentials_args(token, dev, "ReadOnly"))?;
        assert!(
            gone.contains("(UnauthorizedException)") && gone.contains("Session token not found or invalid"),
            "{gone}"
        );
    }
    let gone = cli.fails(&Cli::refresh_args(&client, &new_refresh))?;
    assert!(gone.contains("InvalidGrantException"), "{gone}");
    Ok(())
}

#[tokio::test]
async fn denial_expiry_paging_and_wire_errors() -> Result<()> {
    let moto = Moto::start()?;
    let sdk = cone_testkit::moto_sdk_config(&moto.endpoint);
    let accounts = organization(&sdk, &["One", "Two", "Three"]).await?;
    let org = Org::new(&sdk).await?;
    let admin = org.permission_set("Admin").await?;
    let bob = org.user("bob").await?;
    for account in &accounts {
        org.assign(account, &admin, PrincipalType::User, &bob).await?;
    }
    let (_emulator, url) = start_emulator(&moto, &[])?;
    let cli = Cli::new(&url, &moto)?;
    let client = cli.register()?;

    // A wrong client secret is a 401 InvalidClientException.
    let bad = cli.fails(&Cli::start_device_args(&client.0, "nope"))?;
    assert!(bad.contains("InvalidClientException"), "{bad}");

    // Control endpoint errors, then a denial.
    let device = cli.start_device(&client)?;
    let user_code = str_at(&device, "/userCode")?;
    let (status, body) = approve(&url, &user_code, "mallory").await?;
    assert_eq!(status, 404);
    assert!(str_at(&body, "/error")?.contains("mallory"), "{body}");
    let (status, _) = approve(&url, "BBBB-BBBB", "bob").await?;
    assert_eq!(status, 404);
    let (status, _) = control(&url, "/_emu/device/deny", json!({"user_code": user_code})).await?;
    assert_eq!(status, 200);
    let denied = cli.fails(&Cli::device_token_args(&client, &str_at(&device, "/deviceCode")?))?;
    assert!(denied.contains("AccessDeniedException"), "{denied}");
    let (status, _) = approve(&url, &user_code, "bob").await?;
    assert_eq!(status, 409, "a denied authorization cannot be approved afterwards");

    // Polling faster than the interval, on the wire: status, error type header and OAuth body.
    let device = cli.start_device(&client)?;
    let http = reqwest::Client::new();
    let poll = json!({"clientId": client.0, "clientSecret": client.1, "grantType": DEVICE_GRANT, "deviceCode": device["deviceCode"]});
    let first = http.post(format!("{url}/token")).json(&poll).send().await?;
    assert_eq!(first.headers()["x-amzn-errortype"], "AuthorizationPendingException");
    let second = http.post(format!("{url}/token")).json(&poll).send().await?;
    assert_eq!(second.status().as_u16(), 400);
    assert_eq!(second.headers()["x-amzn-errortype"], "SlowDownException");
    let body: Value = second.json().await?;
    assert_eq!(body["error"], "slow_down");
    assert!(body["error_description"].is_string() && body["message"].is_string(), "{body}");

    // Paging: the CLI follows nextToken through one-account pages.
    let token = device_login(&cli, &client, "bob").await?;
    let access = str_at(&token, "/accessToken")?;
    let listed = cli.ok(&["sso", "list-accounts", "--access-token", &access, "--page-size", "1"])?;
    let mut ids: Vec<String> = listed["accountList"]
        .as_array()
        .context("accountList")?
        .iter()
        .map(|a| str_at(a, "/accountId"))
        .collect::<Result<_>>()?;
    ids.sort();
    let mut expected = accounts.clone();
    expected.sort();
    assert_eq!(ids, expected);
    let page = http
        .get(format!("{url}/assignment/accounts?max_result=1"))
        .header("x-amz-sso_bearer_token", &access)
        .send()
        .await?;
    let page: Value = page.json().await?;
    assert_eq!(page["accountList"].as_array().map(Vec::len), Some(1));
    assert!(page["nextToken"].is_string(), "{page}");

    // Expiring every access token: the portal says 401, the refresh token still works.
    let (status, body) = control(&url, "/_emu/tokens/expire-all", json!({})).await?;
    assert_eq!((status, body["expired"].as_u64()), (200, Some(1)));
    let expired = cli.fails(&Cli::role_credentials_args(&access, &accounts[0], "Admin"))?;
    assert!(expired.contains("Session token not found or invalid"), "{expired}");
    let wire = http
        .get(format!("{url}/assignment/roles?account_id={}", accounts[0]))
        .header("x-amz-sso_bearer_token", &access)
        .send()
        .await?;
    assert_eq!(wire.status().as_u16(), 401);
    assert_eq!(wire.headers()["x-amzn-errortype"], "UnauthorizedException");
    let body: Value = wire.json().await?;
    assert_eq!(body["__type"], "com.amazonaws.switchboard.portal#UnauthorizedException");
    let renewed = cli.ok(&Cli::refresh_args(&client, &str_at(&token, "/refreshToken")?))?;
    let arn = cli.caller_with_role(&str_at(&renewed, "/accessToken")?, &accounts[1], "Admin")?;
    assert!(arn.ends_with("/bob"), "{arn}");

    // A second emulator on the same moto, configured without refresh tokens and with short-lived tokens.
    let (_plain, plain_url) = start_emulator(&moto, &["--issue-refresh-tokens", "false", "--token-ttl-secs", "90"])?;
    let plain = Cli::new(&plain_url, &moto)?;
    let plain_client = plain.register()?;
    let token = device_login(&plain, &plain_client, "bob").await?;
    assert_eq!(token["expiresIn"], 90);
    assert!(token.get("refreshToken").is_none(), "{token}");
    Ok(())
}

#[tokio::test]
async fn the_cli_retries_injected_throttling() -> Result<()> {
    let moto = Moto::start()?;
    let sdk = cone_testkit::moto_sdk_config(&moto.endpoint);
    let accounts = organization(&sdk, &["Solo"]).await?;
    let org = Org::new(&sdk).await?;
    let admin = org.permission_set("Admin").await?;
    let carol = org.user("carol").await?;
    org.assign(&accounts[0], &admin, PrincipalType::User, &carol).await?;
    let (_emulator, url) = start_emulator(&moto, &[])?;
    let cli = Cli::new(&url, &moto)?;
    let client = cli.register()?;
    let token = device_login(&cli, &client, "carol").await?;
    let access = str_at(&token, "/accessToken")?;
    let list = ["sso", "list-accounts", "--access-token", access.as_str()];
    let retrying = [("AWS_MAX_ATTEMPTS", "3"), ("AWS_RETRY_MODE", "standard")];

    // Without retries the 429 reaches the user.
    let (status, _) = control(&url, "/_emu/throttle", json!({"api": "portal", "count": 1})).await?;
    assert_eq!(status, 200);
    let throttled = cli.fails(&list)?;
    assert!(throttled.contains("(TooManyRequestsException)") && throttled.contains("Rate exceeded"), "{throttled}");

    // With retries two 429s are absorbed, and the log shows the three attempts.
    reqwest::Client::new().delete(format!("{url}/_emu/requests")).send().await?.error_for_status()?;
    control(&url, "/_emu/throttle", json!({"api": "portal", "count": 2})).await?;
    let out = cli.run_with(&list, None, &retrying)?;
    ensure!(out.success, "list-accounts did not survive two 429s:\n{}", out.stderr);
    let listed: Value = serde_json::from_str(&out.stdout)?;
    assert_eq!(listed["accountList"][0]["accountId"], accounts[0].as_str());
    let log: Value = reqwest::Client::new().get(format!("{url}/_emu/requests")).send().await?.json().await?;
    let statuses: Vec<&Value> = log["requests"]
        .as_array()
        .context("requests")?
        .iter()
        .filter(|r| r["path"] == "/assignment/accounts")
        .map(|r| &r["status"])
        .collect();
    assert_eq!(statuses, [&json!(429), &json!(429), &json!(200)], "{log}");

    // OIDC calls are retried the same way.
    control(&url, "/_emu/throttle", json!({"api": "oidc", "count": 1})).await?;
    let register = ["sso-oidc", "register-client", "--client-name", "retry", "--client-type", "public"];
    let out = cli.run_with(&register, None, &retrying)?;
    ensure!(out.success, "register-client did not survive a 429:\n{}", out.stderr);
    Ok(())
}
