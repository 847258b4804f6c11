//! End to end over raw HTTP: moto and the emulator run as child processes on free loopback ports, moto holds
//! the seeded sandbox organisation, and the tests speak the wire protocol with reqwest (redirects off) to
//! check what no AWS CLI v1 command can reach: the PKCE sign-in, paging details, throttling and the control
//! API.

use std::collections::HashMap;
use std::process::{Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, ensure};
use aws_sdk_ssoadmin::types::{PrincipalType, TargetType};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use cone_testkit::{Child, Moto, SandboxOrg, moto_sdk_config, seed_sandbox};
use rand::Rng;
use reqwest::Url;
use reqwest::redirect::Policy;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

const START_URL: &str = "https://d-1234567890.awsapps.com/start";
const REGISTERED_REDIRECT: &str = "http://127.0.0.1/oauth/callback";
/// The CLI's callback server would listen here; nothing does, and the redirect is never followed.
const CALLBACK: &str = "http://127.0.0.1:35987/oauth/callback";
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
const BEARER: &str = "x-amz-sso_bearer_token";

/// moto with the sandbox organisation, alice holding AdministratorAccess and ReadOnlyAccess in all three
/// member accounts, and an emulator started with `extra_args`.
struct World {
    _emulator: Child,
    moto: Moto,
    org: SandboxOrg,
    emu: Emu,
}

impl World {
    async fn start(extra_args: &[&str]) -> Result<World> {
        let moto = Moto::start()?;
        let org = seed_sandbox(&moto.endpoint).await?;
        let sso = aws_sdk_ssoadmin::Client::new(&moto_sdk_config(&moto.endpoint));
        let alice = org.user_id("alice").context("alice")?;
        for (_, account) in &org.accounts {
            for ps in ["AdministratorAccess", "ReadOnlyAccess"] {
                sso.create_account_assignment()
                    .instance_arn(&org.instance_arn)
                    .target_id(account)
                    .target_type(TargetType::AwsAccount)
                    .permission_set_arn(org.permission_set_arn(ps).context("permission set")?)
                    .principal_type(PrincipalType::User)
                    .principal_id(alice)
                    .send()
                    .await?;
            }
        }
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_idc-emulator"));
        cmd.args(["--port", "0", "--region", "us-east-1"])
            .args(extra_args)
            .envs(moto.aws_env())
            .env("RUST_LOG", "info")
            .stderr(Stdio::inherit());
        let (emulator, url) = Child::spawn_ready("idc-emulator", cmd, Duration::from_secs(30))?;
        let http = reqwest::Client::builder().redirect(Policy::none()).build()?;
        Ok(World { _emulator: emulator, moto, org, emu: Emu { url, http } })
    }

    fn account(&self, name: &str) -> Result<String> {
        Ok(self.org.account_id(name).with_context(|| format!("account {name}"))?.to_string())
    }
}

/// An HTTP answer: status, `x-amzn-ErrorType`, `Location`, and the body as JSON (Null when empty or not JSON)
/// and as text.
struct Reply {
    status: u16,
    request_id: Option<String>,
    error_type: Option<String>,
    location: Option<String>,
    json: Value,
    text: String,
}

impl Reply {
    async fn of(response: reqwest::Response) -> Result<Reply> {
        let header = |name: &str| response.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_string);
        let (status, request_id, error_type, location) =
            (response.status().as_u16(), header("x-amzn-requestid"), header("x-amzn-errortype"), header("location"));
        let text = response.text().await?;
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Ok(Reply { status, request_id, error_type, location, json, text })
    }

    /// Checks an OIDC error: status, header and OAuth body.
    fn oidc_error(&self, status: u16, exception: &str, error: &str) -> Result<()> {
        ensure!(self.status == status, "expected {status} {exception}, got {}: {}", self.status, self.text);
        ensure!(self.error_type.as_deref() == Some(exception), "x-amzn-ErrorType {:?}", self.error_type);
        ensure!(self.json["error"] == error, "error {error:?} expected in {}", self.text);
        ensure!(self.json["error_description"].is_string(), "no error_description in {}", self.text);
        ensure!(self.request_id.is_some(), "no x-amzn-RequestId");
        Ok(())
    }

    /// Checks a portal error: status, header, `message` and `__type`.
    fn portal_error(&self, status: u16, exception: &str, message: &str) -> Result<()> {
        ensure!(self.status == status, "expected {status} {exception}, got {}: {}", self.status, self.text);
        ensure!(self.error_type.as_deref() == Some(exception), "x-amzn-ErrorType {:?}", self.error_type);
        ensure!(self.json["message"] == message, "message {message:?} expected in {}", self.text);
        ensure!(
            self.json["__type"] == format!("com.amazonaws.switchboard.portal#{exception}"),
            "__type in {}",
            self.text
        );
        ensure!(self.request_id.is_some(), "no x-amzn-RequestId");
        Ok(())
    }

    fn ok(self) -> Result<Value> {
        ensure!(self.status == 200, "expected 200, got {}: {}", self.status, self.text);
        Ok(self.json)
    }

    /// The query parameters of a 302's `Location`.
    fn redirect_query(&self) -> Result<HashMap<String, String>> {
        ensure!(self.status == 302, "expected a 302, got {}: {}", self.status, self.text);
        let location = Url::parse(self.location.as_deref().context("302 without Location")?)?;
        ensure!(location.as_str().starts_with(&format!("{CALLBACK}?")), "redirected elsewhere: {location}");
        Ok(location.query_pairs().into_owned().collect())
    }
}

struct Emu {
    url: String,
    http: reqwest::Client,
}

impl Emu {
    async fn post(&self, path: &str, body: Value) -> Result<Reply> {
        Reply::of(self.http.post(format!("{}{path}", self.url)).json(&body).send().await?).await
    }

    async fn portal(&self, path_and_query: &str, token: &str) -> Result<Reply> {
        Reply::of(self.http.get(format!("{}{path_and_query}", self.url)).header(BEARER, token).send().await?).await
    }

    async fn control_get(&self, path: &str) -> Result<Value> {
        Reply::of(self.http.get(format!("{}{path}", self.url)).send().await?).await?.ok()
    }

    /// Registers a client the way AWS CLI v2 does for PKCE; returns its id and secret.
    async fn register_pkce(&self) -> Result<(String, String)> {
        let reg = self
            .post(
                "/client/register",
                json!({
                    "clientName": "botocore-client-corp",
                    "clientType": "public",
                    "grantTypes": ["authorization_code", "refresh_token"],
                    "redirectUris": [REGISTERED_REDIRECT],
                    "issuerUrl": START_URL,
                    "scopes": ["sso:account:access"],
                }),
            )
            .await?
            .ok()?;
        Ok((str_at(&reg, "/clientId")?, str_at(&reg, "/clientSecret")?))
    }

    /// `GET /authorize` with the CLI's parameters; `state` is fixed so tests can compare it.
    async fn authorize(&self, client_id: &str, redirect_uri: &str, challenge: &str) -> Result<Reply> {
        let request = self.http.get(format!("{}/authorize", self.url)).query(&[
            ("response_type", "code"),
            ("client_id", client_id),
            ("redirect_uri", redirect_uri),
            ("state", "3fd6b235-8d4d-453c-aec1-37570a68391a"),
            ("code_challenge_method", "S256"),
            ("scopes", "sso:account:access"),
            ("code_challenge", challenge),
        ]);
        Reply::of(request.send().await?).await
    }

    async fn code_token(
        &self,
        client: &(String, String),
        code: &str,
        redirect_uri: &str,
        verifier: &str,
    ) -> Result<Reply> {
        self.post(
            "/token",
            json!({
                "grantType": "authorization_code",
                "clientId": client.0,
                "clientSecret": client.1,
                "redirectUri": redirect_uri,
                "codeVerifier": verifier,
                "code": code,
            }),
        )
        .await
    }

    async fn refresh(&self, client: &(String, String), refresh_token: &str) -> Result<Reply> {
        self.post(
            "/token",
            json!({"grantType": "refresh_token", "clientId": client.0, "clientSecret": client.1, "refreshToken": refresh_token}),
        )
        .await
    }

    /// A device-flow login of `user` with a fresh client registered with the scope that brings refresh tokens (as
    /// the AWS CLI's sso-session registers); returns the client and the token response.
    async fn device_login(&self, user: &str) -> Result<((String, String), Value)> {
        self.device_login_with(user, json!(["sso:account:access"])).await
    }

    /// [`Emu::device_login`] with a client registered with `scopes` (`null` for none).
    async fn device_login_with(&self, user: &str, scopes: Value) -> Result<((String, String), Value)> {
        let registration = json!({"clientName": "t", "clientType": "public", "scopes": scopes});
        let reg = self.post("/client/register", registration).await?.ok()?;
        let client = (str_at(&reg, "/clientId")?, str_at(&reg, "/clientSecret")?);
        let device = self
            .post(
                "/device_authorization",
                json!({"clientId": client.0, "clientSecret": client.1, "startUrl": START_URL}),
            )
            .await?
            .ok()?;
        self.post("/_emu/device/approve", json!({"user_code": device["userCode"], "user_name": user})).await?.ok()?;
        let token = self
            .post(
                "/token",
                json!({"grantType": DEVICE_GRANT, "clientId": client.0, "clientSecret": client.1, "deviceCode": device["deviceCode"]}),
            )
            .await?
            .ok()?;
        Ok((client, token))
    }
}

fn str_at(value: &Value, pointer: &str) -> Result<String> {
    value
        .pointer(pointer)
        .and_then(Value::as_str)
        .map(str::to_string)
        .with_context(|| format!("{pointer} missing in {value}"))
}

/// A PKCE pair as AWS CLI v2 makes it: 64 characters from `[A-Za-z0-9-._~]`, and its S256 challenge.
fn pkce_pair() -> (String, String) {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";
    let mut rng = rand::thread_rng();
    let verifier: String = (0..64).map(|_| char::from(ALPHABET[rng.gen_range(0..ALPHABET.len())])).collect();
    let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
    (verifier, challenge)
}

fn now_millis() -> Result<i64> {
    Ok(i64::try_from(SystemTime::now().duration_since(UNIX_EPOCH)?.as_millis())?)
}

/// Checks that role credentials were issued and expire in about `ttl_secs`.
fn check_credentials(reply: Reply, ttl_secs: i64) -> Result<()> {
    ensure!(reply.request_id.is_some(), "no x-amzn-RequestId");
    let body = reply.ok()?;
    let creds = &body["roleCredentials"];
    for key in ["accessKeyId", "secretAccessKey", "sessionToken"] {
        ensure!(creds[key].as_str().is_some_and(|v| !v.is_empty()), "{key} missing in {body}");
    }
    let expiration = creds["expiration"].as_i64().context("expiration")?;
    let expected = now_millis()? + ttl_secs * 1000;
    ensure!(
        (expected - 120_000..=expected + 5_000).contains(&expiration),
        "expiration {expiration} is not epoch milliseconds about {ttl_secs} s ahead"
    );
    Ok(())
}

#[tokio::test]
async fn pkce_sign_in_automatic_and_denied() -> Result<()> {
    let world = World::start(&[]).await?;
    let emu = &world.emu;
    let production = world.account("Production")?;
    let mode = emu.post("/_emu/authorize/mode", json!({"mode": "approve", "user_name": "alice"})).await?.ok()?;
    assert_eq!(mode, json!({"mode": "approve", "user_name": "alice"}));
    let unknown = emu.post("/_emu/authorize/mode", json!({"mode": "approve", "user_name": "mallory"})).await?;
    assert_eq!(unknown.status, 404, "{}", unknown.text);
    assert_eq!(emu.control_get("/_emu/authorize/mode").await?["user_name"], "alice", "a refused change keeps the mode");

    // register → authorize (registered without a port, used with one) → 302 with code and state.
    let client = emu.register_pkce().await?;
    let (verifier, challenge) = pkce_pair();
    let redirect = emu.authorize(&client.0, CALLBACK, &challenge).await?;
    let query = redirect.redirect_query()?;
    assert_eq!(query["state"], "3fd6b235-8d4d-453c-aec1-37570a68391a");
    let code = query.get("code").context("no code in the redirect")?.clone();

    // Wrong verifier and another redirect URI are refused without spending the code.
    let (wrong_verifier, _) = pkce_pair();
    emu.code_token(&client, &code, CALLBACK, &wrong_verifier).await?.oidc_error(
        400,
        "InvalidGrantException",
        "invalid_grant",
    )?;
    let other_port = "http://127.0.0.1:40000/oauth/callback";
    emu.code_token(&client, &code, other_port, &verifier).await?.oidc_error(
        400,
        "InvalidGrantException",
        "invalid_grant",
    )?;

    let token = emu.code_token(&client, &code, CALLBACK, &verifier).await?.ok()?;
    assert_eq!(token["tokenType"], "Bearer");
    assert_eq!(token["expiresIn"], 28800);
    let access = str_at(&token, "/accessToken")?;
    let refresh = str_at(&token, "/refreshToken")?;
    let path = format!("/federation/credentials?role_name=AdministratorAccess&account_id={production}");
    check_credentials(emu.portal(&path, &access).await?, 3600)?;

    // The code is single use; the session refreshes like a device-flow one.
    emu.code_token(&client, &code, CALLBACK, &verifier).await?.oidc_error(
        400,
        "InvalidGrantException",
        "invalid_grant",
    )?;
    let renewed = emu.refresh(&client, &refresh).await?.ok()?;
    check_credentials(emu.portal(&path, &str_at(&renewed, "/accessToken")?).await?, 3600)?;

    // A redirect URI that was never registered gets a page, not a redirect.
    let stranger = emu.authorize(&client.0, "http://127.0.0.1:35987/elsewhere", &challenge).await?;
    assert_eq!(stranger.status, 400, "{}", stranger.text);
    assert!(stranger.location.is_none() && stranger.text.contains("registered redirect URIs"), "{}", stranger.text);
    // Other problems go back to the client.
    let plain = emu.authorize(&client.0, CALLBACK, "not-a-challenge").await?.redirect_query()?;
    assert_eq!(plain["error"], "invalid_request");

    // Denial: the client gets error=access_denied with its state.
    emu.post("/_emu/authorize/mode", json!({"mode": "deny"})).await?.ok()?;
    let denied = emu.authorize(&client.0, CALLBACK, &challenge).await?.redirect_query()?;
    assert_eq!(denied["error"], "access_denied");
    assert_eq!(denied["state"], "3fd6b235-8d4d-453c-aec1-37570a68391a");
    assert!(!denied.contains_key("code"));

    // A device-only registration cannot start an authorization-code sign-in.
    let (device_client, _) = emu.device_login("alice").await?;
    let refused = emu.authorize(&device_client.0, CALLBACK, &challenge).await?;
    assert_eq!(refused.status, 400, "a client without redirect URIs gets a page: {}", refused.text);
    Ok(())
}

#[tokio::test]
async fn pkce_sign_in_page_and_authorize_as_flag() -> Result<()> {
    let world = World::start(&[]).await?;
    let emu = &world.emu;
    let client = emu.register_pkce().await?;
    let (verifier, challenge) = pkce_pair();

    // Interactive by default: a page listing every identity-store user.
    let page = emu.authorize(&client.0, CALLBACK, &challenge).await?;
    assert_eq!(page.status, 200, "{}", page.text);
    for user in ["alice", "bob", "carol"] {
        assert!(page.text.contains(&format!("value=\"{user}\"")), "{user} missing from {}", page.text);
    }
    assert!(page.text.contains("botocore-client-corp") && page.text.contains(START_URL), "{}", page.text);
    let request_id = page
        .text
        .split("name=\"request\" value=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .context("no request id in the form")?
        .to_string();

    // The person picks bob: 302 with a code that signs bob in.
    let form = [("request", request_id.as_str()), ("decision", "approve"), ("user_name", "bob")];
    let answer = Reply::of(emu.http.post(format!("{}/authorize", emu.url)).form(&form).send().await?).await?;
    let query = answer.redirect_query()?;
    assert_eq!(query["state"], "3fd6b235-8d4d-453c-aec1-37570a68391a");
    let token = emu.code_token(&client, &query["code"], CALLBACK, &verifier).await?.ok()?;
    let bob_access = str_at(&token, "/accessToken")?;
    let path =
        format!("/federation/credentials?role_name=AdministratorAccess&account_id={}", world.account("Production")?);
    emu.portal(&path, &bob_access).await?.portal_error(403, "ForbiddenException", "No access")?;
    let accounts = emu.portal("/assignment/accounts", &bob_access).await?.ok()?;
    assert_eq!(accounts, json!({"accountList": []}), "bob has no assignments");

    // The form's request is answered once.
    let again = Reply::of(emu.http.post(format!("{}/authorize", emu.url)).form(&form).send().await?).await?;
    assert_eq!(again.status, 400, "{}", again.text);

    // Deny from the page.
    let page = emu.authorize(&client.0, CALLBACK, &challenge).await?;
    let request_id = page.text.split("name=\"request\" value=\"").nth(1).and_then(|r| r.split('"').next());
    let form = [("request", request_id.context("request id")?), ("decision", "deny")];
    let answer = Reply::of(emu.http.post(format!("{}/authorize", emu.url)).form(&form).send().await?).await?;
    assert_eq!(answer.redirect_query()?["error"], "access_denied");

    // A second emulator on the same moto, started with --authorize-as, skips the page.
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_idc-emulator"));
    cmd.args(["--port", "0", "--authorize-as", "carol"]).envs(world.moto.aws_env()).stderr(Stdio::inherit());
    let (_second, url) = Child::spawn_ready("idc-emulator", cmd, Duration::from_secs(30))?;
    let second = Emu { url, http: emu.http.clone() };
    let client = second.register_pkce().await?;
    let query = second.authorize(&client.0, CALLBACK, &challenge).await?.redirect_query()?;
    second.code_token(&client, &query["code"], CALLBACK, &verifier).await?.ok()?;
    Ok(())
}

#[tokio::test]
async fn portal_paging_logout_and_throttling() -> Result<()> {
    let world = World::start(&[]).await?;
    let emu = &world.emu;
    let (client, token) = emu.device_login("alice").await?;
    let access = str_at(&token, "/accessToken")?;

    // ListAccounts one by one: every page has one account and a nextToken, the last none.
    let mut seen = Vec::new();
    let mut next: Option<String> = None;
    for page_number in 1..=3 {
        let mut path = "/assignment/accounts?max_result=1".to_string();
        if let Some(token) = &next {
            path.push_str(&format!("&next_token={token}"));
        }
        let page = emu.portal(&path, &access).await?.ok()?;
        let accounts = page["accountList"].as_array().context("accountList")?;
        assert_eq!(accounts.len(), 1, "page {page_number}: {page}");
        seen.push(str_at(&accounts[0], "/accountId")?);
        next = page.get("nextToken").and_then(Value::as_str).map(str::to_string);
        assert_eq!(next.is_some(), page_number < 3, "page {page_number}: {page}");
    }
    let mut expected: Vec<String> = world.org.accounts.iter().map(|(_, id)| id.clone()).collect();
    expected.sort();
    seen.sort();
    assert_eq!(seen, expected);
    let all = emu.portal("/assignment/accounts", &access).await?.ok()?;
    assert_eq!(all["accountList"].as_array().map(Vec::len), Some(3));
    assert!(all.get("nextToken").is_none(), "{all}");
    let production = all["accountList"]
        .as_array()
        .and_then(|list| list.iter().find(|a| a["accountName"] == "Production"))
        .context("Production listed by name")?;
    assert_eq!(production["emailAddress"].as_str().map(|e| e.contains('@')), Some(true), "{production}");

    // ListAccountRoles pages the same way.
    let account = world.account("Staging")?;
    let first = emu.portal(&format!("/assignment/roles?account_id={account}&max_result=1"), &access).await?.ok()?;
    assert_eq!(first["roleList"], json!([{"roleName": "AdministratorAccess", "accountId": account}]));
    let token_2 = str_at(&first, "/nextToken")?;
    let second = emu
        .portal(&format!("/assignment/roles?account_id={account}&max_result=1&next_token={token_2}"), &access)
        .await?
        .ok()?;
    assert_eq!(second["roleList"], json!([{"roleName": "ReadOnlyAccess", "accountId": account}]));
    assert!(second.get("nextToken").is_none(), "{second}");

    // max_result outside 1..=100 and foreign tokens are InvalidRequestException.
    for query in ["max_result=0", "max_result=101", "max_result=x", "next_token=forged"] {
        let reply = emu.portal(&format!("/assignment/accounts?{query}"), &access).await?;
        assert_eq!((reply.status, reply.error_type.as_deref()), (400, Some("InvalidRequestException")), "{query}");
    }
    emu.portal("/assignment/accounts?max_result=100", &access).await?.ok()?;

    // Throttling: the next two portal calls answer 429, then service resumes; OIDC is separate.
    let counts = emu.post("/_emu/throttle", json!({"api": "portal", "count": 2})).await?.ok()?;
    assert_eq!(counts, json!({"oidc": 0, "portal": 2}));
    for _ in 0..2 {
        emu.portal("/assignment/accounts", &access).await?.portal_error(
            429,
            "TooManyRequestsException",
            "Rate exceeded",
        )?;
    }
    emu.portal("/assignment/accounts", &access).await?.ok()?;
    emu.post("/_emu/throttle", json!({"api": "oidc", "count": 1})).await?.ok()?;
    let throttled = emu.refresh(&client, &str_at(&token, "/refreshToken")?).await?;
    throttled.oidc_error(429, "TooManyRequestsException", "too_many_requests")?;
    let renewed = emu.refresh(&client, &str_at(&token, "/refreshToken")?).await?.ok()?;
    assert_eq!(emu.control_get("/_emu/throttle").await?, json!({"oidc": 0, "portal": 0}));

    // Logout: the session's tokens get 401, a second logout too; another session is untouched.
    let (_, other) = emu.device_login("alice").await?;
    let renewed_access = str_at(&renewed, "/accessToken")?;
    let logout =
        Reply::of(emu.http.post(format!("{}/logout", emu.url)).header(BEARER, &renewed_access).send().await?).await?;
    assert_eq!((logout.status, logout.text.as_str()), (200, ""));
    for token in [&renewed_access, &access] {
        emu.portal("/assignment/accounts", token).await?.portal_error(
            401,
            "UnauthorizedException",
            "Session token not found or invalid",
        )?;
    }
    let again =
        Reply::of(emu.http.post(format!("{}/logout", emu.url)).header(BEARER, &renewed_access).send().await?).await?;
    again.portal_error(401, "UnauthorizedException", "Session token not found or invalid")?;
    emu.refresh(&client, &str_at(&renewed, "/refreshToken")?).await?.oidc_error(
        400,
        "InvalidGrantException",
        "invalid_grant",
    )?;
    emu.portal("/assignment/accounts", &str_at(&other, "/accessToken")?).await?.ok()?;
    emu.portal("/assignment/accounts", "at-never-issued").await?.portal_error(
        401,
        "UnauthorizedException",
        "Session token not found or invalid",
    )?;

    // The request log saw all of it, throttled calls included, and no control calls.
    let log = emu.control_get("/_emu/requests").await?;
    let requests = log["requests"].as_array().context("requests")?;
    assert!(requests.iter().all(|r| !r["path"].as_str().unwrap_or("").starts_with("/_emu")), "{log}");
    let throttled = requests.iter().filter(|r| r["status"] == 429).count();
    assert_eq!(throttled, 3, "{log}");
    assert!(requests.iter().any(|r| r["path"] == "/logout" && r["status"] == 200), "{log}");
    assert!(requests.iter().any(|r| r["query"] == "max_result=1" && r["path"] == "/assignment/accounts"), "{log}");
    emu.http.delete(format!("{}/_emu/requests", emu.url)).send().await?.error_for_status()?;
    assert_eq!(emu.control_get("/_emu/requests").await?, json!({"requests": []}));
    Ok(())
}

#[tokio::test]
async fn device_slow_down_expiry_revocation_and_lifetimes() -> Result<()> {
    let world = World::start(&["--credential-ttl-secs", "7200", "--token-ttl-secs", "1200"]).await?;
    let emu = &world.emu;
    let production = world.account("Production")?;
    let path = format!("/federation/credentials?role_name=ReadOnlyAccess&account_id={production}");

    // Lifetimes from the flags.
    let (client, token) = emu.device_login("alice").await?;
    assert_eq!(token["expiresIn"], 1200);
    assert!(token["refreshToken"].is_string(), "{token}");
    // A registration without sso:account:access (a legacy profile's) gets no refresh token, as from AWS.
    let (_, legacy) = emu.device_login_with("alice", Value::Null).await?;
    assert!(legacy["accessToken"].is_string() && legacy.get("refreshToken").is_none(), "{legacy}");
    check_credentials(emu.portal(&path, &str_at(&token, "/accessToken")?).await?, 7200)?;

    // Polling: pending, then slow_down when polled again at once, pending again after the interval.
    let device = emu
        .post("/device_authorization", json!({"clientId": client.0, "clientSecret": client.1, "startUrl": START_URL}))
        .await?
        .ok()?;
    let poll = json!({"grantType": DEVICE_GRANT, "clientId": client.0, "clientSecret": client.1, "deviceCode": device["deviceCode"]});
    emu.post("/token", poll.clone()).await?.oidc_error(
        400,
        "AuthorizationPendingException",
        "authorization_pending",
    )?;
    emu.post("/token", poll.clone()).await?.oidc_error(400, "SlowDownException", "slow_down")?;
    tokio::time::sleep(Duration::from_millis(1100)).await;
    emu.post("/token", poll.clone()).await?.oidc_error(
        400,
        "AuthorizationPendingException",
        "authorization_pending",
    )?;

    // Nobody approves in time: the control endpoint lets it run out, the poll says ExpiredToken.
    let expired = emu.post("/_emu/device/expire", json!({"user_code": device["userCode"]})).await?;
    assert_eq!(expired.status, 200, "{}", expired.text);
    tokio::time::sleep(Duration::from_millis(1100)).await;
    emu.post("/token", poll.clone()).await?.oidc_error(400, "ExpiredTokenException", "expired_token")?;
    let late = emu.post("/_emu/device/approve", json!({"user_code": device["userCode"], "user_name": "alice"})).await?;
    assert_eq!(late.status, 409, "{}", late.text);

    // Revocation by user: refresh is InvalidGrant, access tokens keep working until they expire.
    let (bob_client, bob) = emu.device_login("bob").await?;
    let (second_client, second) = emu.device_login("alice").await?;
    let revoked = emu.post("/_emu/refresh-tokens/revoke", json!({"user_name": "alice"})).await?.ok()?;
    assert_eq!(revoked, json!({"revoked": 2}));
    for (c, t) in [(&client, &token), (&second_client, &second)] {
        emu.refresh(c, &str_at(t, "/refreshToken")?).await?.oidc_error(
            400,
            "InvalidGrantException",
            "invalid_grant",
        )?;
    }
    check_credentials(emu.portal(&path, &str_at(&second, "/accessToken")?).await?, 7200)?;
    let bob_renewed = emu.refresh(&bob_client, &str_at(&bob, "/refreshToken")?).await?.ok()?;
    let bad = emu.post("/_emu/refresh-tokens/revoke", json!({"all": true, "user_name": "bob"})).await?;
    assert_eq!(bad.status, 400, "{}", bad.text);
    let all = emu.post("/_emu/refresh-tokens/revoke", json!({"all": true})).await?.ok()?;
    assert_eq!(all, json!({"revoked": 1}));
    emu.refresh(&bob_client, &str_at(&bob_renewed, "/refreshToken")?).await?.oidc_error(
        400,
        "InvalidGrantException",
        "invalid_grant",
    )?;

    // Settings at run time: tokens inside the Rust SDK's 5-minute window, short credentials, no refresh tokens.
    let settings = emu
        .post(
            "/_emu/settings",
            json!({"token_ttl_secs": 240, "credential_ttl_secs": 600, "issue_refresh_tokens": false}),
        )
        .await?
        .ok()?;
    assert_eq!(settings, json!({"token_ttl_secs": 240, "credential_ttl_secs": 600, "issue_refresh_tokens": false}));
    let (_, short) = emu.device_login("alice").await?;
    assert_eq!(short["expiresIn"], 240);
    assert!(short.get("refreshToken").is_none(), "{short}");
    check_credentials(emu.portal(&path, &str_at(&short, "/accessToken")?).await?, 600)?;
    let refused = emu.post("/_emu/settings", json!({"credential_ttl_secs": 50000})).await?;
    assert_eq!(refused.status, 400, "{}", refused.text);
    let typo = emu.post("/_emu/settings", json!({"token_ttl": 5})).await?;
    assert_eq!(typo.status, 400, "unknown fields are refused: {}", typo.text);
    assert_eq!(emu.control_get("/_emu/settings").await?, settings);
    Ok(())
}
