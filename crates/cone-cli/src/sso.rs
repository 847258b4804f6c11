//! IAM Identity Center sign-in (browser with PKCE, or device code) and role credentials, sharing the AWS CLI's caches in
//! `~/.aws/sso/cache`: the token file named by the start URL and the client-registration file named as the AWS
//! CLI names it, so that `aws sso login` and cone use each other's sign-in.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use aws_config::{BehaviorVersion, Region};
use aws_sdk_ssooidc::error::ProvideErrorMetadata;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::pkce::{self, Callback};
use crate::settings::AwsSettings;
use crate::ui::Ui;
use cone::cache::{
    Registration, TokenFile, aws_cache_file, format_time, parse_time, python_json_string, sha1_hex, token_path,
};
use cone::files;
use cone_core::awsconfig::ConfigFile;

/// Tokens and registrations with less than this left are renewed, as the AWS CLI does.
const RENEW_WINDOW: i64 = 15 * 60;

/// How a person signs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Authorization code with PKCE; the browser is started unless `open` is false (then the URL is shown).
    Browser {
        open: bool,
    },
    DeviceCode,
}

impl Flow {
    /// The browser where one can finish the sign-in on this machine, else the device code.
    pub fn default_here() -> Flow {
        if pkce::browser_available(|k| std::env::var(k).ok()) { Flow::Browser { open: true } } else { Flow::DeviceCode }
    }
}

/// Where the SSO OIDC API is, for the browser: the endpoint overrides the SDK honours, else AWS's.
fn oidc_base(region: &str) -> String {
    ["AWS_ENDPOINT_URL_SSO_OIDC", "AWS_ENDPOINT_URL"]
        .iter()
        .find_map(|k| std::env::var(k).ok().filter(|v| !v.is_empty()))
        .unwrap_or_else(|| format!("https://oidc.{region}.amazonaws.com"))
}

/// How long a browser sign-in may take, as the AWS CLI allows.
const BROWSER_WAIT: Duration = Duration::from_secs(600);

/// The scope that makes IAM Identity Center issue refresh tokens.
const ACCOUNT_ACCESS: &str = "sso:account:access";

/// The AWS CLI's registration key for a profile without sso-session and without registration scopes.
fn registration_key(start_url: &str, region: &str) -> String {
    format!(
        "{{\"region\": {}, \"scopes\": null, \"session_name\": null, \"startUrl\": {}, \"tool\": \"botocore\"}}",
        python_json_string(region),
        python_json_string(start_url)
    )
}

fn read_json<T: for<'de> Deserialize<'de>>(path: &std::path::Path) -> Option<T> {
    files::read_optional(path).ok().flatten().and_then(|t| serde_json::from_str(&t).ok())
}

fn remaining(expires_at: &str) -> i64 {
    parse_time(expires_at).map(|t| (t - Utc::now()).num_seconds()).unwrap_or(i64::MIN)
}

pub struct RoleCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration: DateTime<Utc>,
}

#[derive(Debug, thiserror::Error)]
pub enum PortalError {
    #[error("Session token not found or invalid")]
    Unauthorized,
    /// The account assignment does not exist (yet): AWS may still be provisioning it.
    #[error("No access")]
    NoAccess,
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

pub struct Sso {
    settings: AwsSettings,
    oidc: aws_sdk_ssooidc::Client,
    portal: aws_sdk_sso::Client,
}

impl Sso {
    pub async fn new(settings: &AwsSettings) -> Sso {
        // Endpoints follow the usual AWS variables (AWS_ENDPOINT_URL_SSO, AWS_ENDPOINT_URL_SSO_OIDC, …).
        let config = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(settings.sso_region.clone()))
            .no_credentials()
            .load()
            .await;
        Sso {
            settings: settings.clone(),
            oidc: aws_sdk_ssooidc::Client::new(&config),
            portal: aws_sdk_sso::Client::new(&config),
        }
    }

    pub fn sso_region(&self) -> &str {
        &self.settings.sso_region
    }

    /// A usable access token: cached, refreshed, or (when a person is there to sign in) from a new sign-in.
    pub async fn access_token(&self, ui: &mut Ui) -> Result<String> {
        // One refresh or sign-in at a time across processes; whoever waited reads the winner's token.
        let _lock = self.lock()?;
        let paths = self.token_paths()?;
        if let Some(token) = freshest(&paths) {
            let left = remaining(&token.expires_at);
            if left > RENEW_WINDOW {
                share_token(&token, &paths)?;
                return Ok(token.access_token);
            }
            match self.refresh(&token).await {
                Ok(fresh) => return Ok(fresh.access_token),
                Err(e) if left > 60 => {
                    ui.say(&format!(
                        "Could not refresh the IAM Identity Center session ({e:#}); using it while it lasts."
                    ));
                    return Ok(token.access_token);
                }
                Err(_) => {}
            }
        }
        if !ui.has_terminal() {
            bail!(
                "Your IAM Identity Center session has expired or does not exist, and there is no terminal to sign in from; run `cone aws login`, then retry."
            );
        }
        ui.say("SSO session expired. Logging in...");
        Ok(self.login(ui, Flow::default_here()).await?.access_token)
    }

    async fn refresh(&self, token: &TokenFile) -> Result<TokenFile> {
        let (Some(client_id), Some(secret), Some(refresh), Some(reg_exp)) =
            (&token.client_id, &token.client_secret, &token.refresh_token, &token.registration_expires_at)
        else {
            bail!("the cached session cannot be refreshed");
        };
        if remaining(reg_exp) <= 0 {
            bail!("the client registration expired");
        }
        let out = self
            .oidc
            .create_token()
            .client_id(client_id)
            .client_secret(secret)
            .grant_type("refresh_token")
            .refresh_token(refresh)
            .send()
            .await
            .map_err(|e| anyhow::anyhow!("{}", e.message().unwrap_or(e.code().unwrap_or("refresh failed"))))?;
        let fresh = TokenFile {
            access_token: out.access_token.context("IAM Identity Center returned no access token")?,
            expires_at: format_time(Utc::now() + chrono::Duration::seconds(out.expires_in as i64)),
            refresh_token: out.refresh_token.or_else(|| token.refresh_token.clone()),
            ..token.clone()
        };
        self.save_token(&fresh)?;
        Ok(fresh)
    }

    /// Where the Identity Center token lives: the AWS CLI's file for profiles without an sso-session (named by the
    /// start URL), and the file of every `[sso-session]` in the AWS config on the same start URL. So `aws sso login`
    /// of either kind signs cone in, and cone's sign-in serves native profiles of either kind.
    fn token_paths(&self) -> Result<Vec<std::path::PathBuf>> {
        let mut paths = vec![token_path(&self.settings.sso_start_url)?];
        let doc = ConfigFile::parse(&files::read_optional(&files::aws_config_path()?)?.unwrap_or_default());
        let ours = self.settings.sso_start_url.trim_end_matches('/');
        for name in doc.sso_session_names() {
            let url = doc.sso_session(&name).and_then(|keys| keys.get("sso_start_url").cloned()).unwrap_or_default();
            if url.trim_end_matches('/') == ours {
                paths.push(token_path(&name)?);
            }
        }
        Ok(paths)
    }

    fn save_token(&self, token: &TokenFile) -> Result<()> {
        write_token(token, &self.token_paths()?, |_| true)
    }

    /// The client registration shared with the AWS CLI (§3.3): reused while it has time left and was made for the
    /// same kind of sign-in, as the AWS CLI does, else replaced.
    async fn registration(&self, browser: bool) -> Result<Registration> {
        let path =
            aws_cache_file("sso/cache", &registration_key(&self.settings.sso_start_url, &self.settings.sso_region))?;
        // Registered with sso:account:access, for the flow at hand: without that scope IAM Identity Center issues
        // no refresh token, and a person signed in on a headless machine would sign in again every session.
        let fits = |r: &Registration| {
            let for_browser = r.grant_types.as_ref().is_some_and(|g| g.iter().any(|t| t == "authorization_code"));
            let scoped = r.scopes.as_ref().is_some_and(|s| s.iter().any(|s| s == ACCOUNT_ACCESS));
            remaining(&r.expires_at) > RENEW_WINDOW && for_browser == browser && scoped
        };
        if let Some(reg) = read_json::<Registration>(&path).filter(fits) {
            return Ok(reg);
        }
        let mut req = self
            .oidc
            .register_client()
            .client_name("botocore-client-cone")
            .client_type("public")
            .scopes(ACCOUNT_ACCESS);
        if browser {
            req = req
                .grant_types("authorization_code")
                .grant_types("refresh_token")
                .redirect_uris(pkce::REDIRECT_URI)
                .issuer_url(&self.settings.sso_start_url);
        }
        let out = req.send().await.map_err(|e| self.oidc_error("register a client with", e))?;
        let expires = DateTime::from_timestamp(out.client_secret_expires_at, 0).unwrap_or_else(Utc::now);
        let reg = Registration {
            client_id: out.client_id.context("IAM Identity Center returned no client id")?,
            client_secret: out.client_secret.context("IAM Identity Center returned no client secret")?,
            expires_at: format_time(expires),
            scopes: Some(vec![ACCOUNT_ACCESS.to_string()]),
            grant_types: browser.then(|| vec!["authorization_code".to_string(), "refresh_token".to_string()]),
        };
        files::write_private(&path, &serde_json::to_vec(&reg).context("cannot encode the registration")?)?;
        Ok(reg)
    }

    fn oidc_error<E: ProvideErrorMetadata>(&self, what: &str, e: E) -> anyhow::Error {
        anyhow::anyhow!(
            "Could not {what} IAM Identity Center in {} ({}); check `cone aws setup show` and your network.",
            self.settings.sso_region,
            e.code().unwrap_or("unknown error")
        )
    }

    fn lock(&self) -> Result<files::Lock> {
        files::lock(&format!("sso-{}", sha1_hex(&self.settings.sso_start_url)))
    }

    /// An explicit sign-in (`cone aws login`), excluding concurrent ones.
    pub async fn login_now(&self, ui: &mut Ui, flow: Flow) -> Result<TokenFile> {
        let _lock = self.lock()?;
        self.login(ui, flow).await
    }

    async fn login(&self, ui: &mut Ui, flow: Flow) -> Result<TokenFile> {
        match flow {
            Flow::Browser { open } => self.browser_login(ui, open).await,
            Flow::DeviceCode => self.device_login(ui).await,
        }
    }

    /// The token file for a fresh sign-in.
    fn signed_in(
        &self,
        reg: &Registration,
        out: aws_sdk_ssooidc::operation::create_token::CreateTokenOutput,
    ) -> Result<TokenFile> {
        let token = TokenFile {
            start_url: Some(self.settings.sso_start_url.clone()),
            region: Some(self.settings.sso_region.clone()),
            access_token: out.access_token.context("IAM Identity Center returned no access token")?,
            expires_at: format_time(Utc::now() + chrono::Duration::seconds(out.expires_in as i64)),
            client_id: Some(reg.client_id.clone()),
            client_secret: Some(reg.client_secret.clone()),
            registration_expires_at: Some(reg.expires_at.clone()),
            refresh_token: out.refresh_token,
        };
        self.save_token(&token)?;
        Ok(token)
    }

    /// Browser sign-in: authorization code with PKCE, the browser sent back to a one-shot server on 127.0.0.1.
    async fn browser_login(&self, ui: &mut Ui, open: bool) -> Result<TokenFile> {
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", 0)).await.context(
            "cannot listen on 127.0.0.1 for the browser to return to; sign in with `cone aws login --device-code`",
        )?;
        let port = listener.local_addr().context("reading the sign-in listener's port")?.port();
        let reg = self.registration(true).await?;
        let (verifier, challenge) = pkce::verifier_and_challenge();
        let state = pkce::state();
        let redirect = pkce::redirect_uri(port);
        let url =
            pkce::authorize_url(&oidc_base(&self.settings.sso_region), &reg.client_id, &redirect, &state, &challenge)?;
        ui.say("To sign in to AWS IAM Identity Center, open this URL in your browser:");
        ui.say(&url);
        if open && !start_browser(&url) {
            ui.say("(cone could not start a browser; open the URL yourself, or use `cone aws login --device-code`.)");
        }
        let code = tokio::time::timeout(BROWSER_WAIT, wait_for_code(&listener, &state)).await.map_err(|_| {
            anyhow::anyhow!("The browser sign-in was not completed within 10 minutes; run `cone aws login` again.")
        })??;
        let out = self
            .oidc
            .create_token()
            .client_id(&reg.client_id)
            .client_secret(&reg.client_secret)
            .grant_type("authorization_code")
            .code(code)
            .redirect_uri(&redirect)
            .code_verifier(&verifier)
            .send()
            .await
            .map_err(|e| self.oidc_error("finish signing in to", e))?;
        let token = self.signed_in(&reg, out)?;
        ui.say("Signed in to AWS IAM Identity Center.");
        Ok(token)
    }

    /// Device-code sign-in. The code and URL go to the terminal (or stderr), then cone waits for approval.
    async fn device_login(&self, ui: &mut Ui) -> Result<TokenFile> {
        let reg = self.registration(false).await?;
        let auth = self
            .oidc
            .start_device_authorization()
            .client_id(&reg.client_id)
            .client_secret(&reg.client_secret)
            .start_url(&self.settings.sso_start_url)
            .send()
            .await
            .map_err(|e| self.oidc_error("start a sign-in with", e))?;
        let device_code = auth.device_code.context("IAM Identity Center returned no device code")?;
        let user_code = auth.user_code.unwrap_or_default();
        let url = auth.verification_uri_complete.or(auth.verification_uri).unwrap_or_default();
        ui.say(&format!("To sign in to AWS IAM Identity Center, open {url}"));
        ui.say(&format!("and confirm this code: {user_code}"));
        let mut interval = Duration::from_secs(auth.interval.max(1) as u64);
        let deadline = tokio::time::Instant::now() + Duration::from_secs(auth.expires_in.max(60) as u64);
        loop {
            tokio::time::sleep(interval).await;
            let result = self
                .oidc
                .create_token()
                .client_id(&reg.client_id)
                .client_secret(&reg.client_secret)
                .grant_type("urn:ietf:params:oauth:grant-type:device_code")
                .device_code(&device_code)
                .send()
                .await;
            match result {
                Ok(out) => {
                    let token = self.signed_in(&reg, out)?;
                    ui.say("Signed in to AWS IAM Identity Center.");
                    return Ok(token);
                }
                Err(e) => match e.code() {
                    Some("AuthorizationPendingException") if tokio::time::Instant::now() < deadline => {}
                    Some("SlowDownException") => interval += Duration::from_secs(5),
                    Some("ExpiredTokenException") | Some("AuthorizationPendingException") => {
                        bail!("The sign-in code expired before it was approved; run `cone aws login` again.")
                    }
                    Some("AccessDeniedException") => {
                        bail!("The sign-in was denied in the browser; run `cone aws login` to try again.")
                    }
                    _ => return Err(self.oidc_error("finish signing in to", e)),
                },
            }
        }
    }

    pub async fn role_credentials(
        &self,
        token: &str,
        account_id: &str,
        role_name: &str,
    ) -> Result<RoleCredentials, PortalError> {
        let out = self
            .portal
            .get_role_credentials()
            .access_token(token)
            .account_id(account_id)
            .role_name(role_name)
            .send()
            .await;
        let creds = match out {
            Ok(out) => {
                out.role_credentials.ok_or_else(|| anyhow::anyhow!("IAM Identity Center returned no credentials"))?
            }
            Err(e) => {
                return Err(match (e.code(), e.as_service_error()) {
                    (_, Some(aws_sdk_sso::operation::get_role_credentials::GetRoleCredentialsError::UnauthorizedException(_))) => {
                        PortalError::Unauthorized
                    }
                    (Some("ForbiddenException"), _) => PortalError::NoAccess,
                    (code, _) => PortalError::Other(anyhow::anyhow!(
                        "IAM Identity Center refused the credentials for role {role_name} in account {account_id} ({}); try again shortly",
                        code.unwrap_or("no connection")
                    )),
                });
            }
        };
        Ok(RoleCredentials {
            access_key_id: creds.access_key_id.unwrap_or_default(),
            secret_access_key: creds.secret_access_key.unwrap_or_default(),
            session_token: creds.session_token.unwrap_or_default(),
            expiration: DateTime::from_timestamp_millis(creds.expiration).unwrap_or_else(Utc::now),
        })
    }

    /// Ends the session at IAM Identity Center and forgets its token; false when there was no token.
    pub async fn logout(&self) -> Result<bool> {
        let Some(token) = freshest(&self.token_paths()?) else { return Ok(false) };
        // An expired or already revoked token needs no logout; the local copy goes either way.
        if let Err(e) = self.portal.logout().access_token(&token.access_token).send().await
            && !matches!(e.code(), Some("UnauthorizedException"))
        {
            return Err(anyhow::anyhow!(
                "IAM Identity Center did not confirm the sign-out ({}); check your connection and run `cone aws logout` again",
                e.code().unwrap_or("no connection")
            ));
        }
        self.forget_token()?;
        Ok(true)
    }

    /// Forgets a token that IAM Identity Center no longer accepts.
    pub fn forget_token(&self) -> Result<()> {
        self.token_paths()?.iter().try_for_each(|path| files::remove(path).map(|_| ()))
    }
}

/// The token with the latest expiry among `paths`.
fn freshest(paths: &[std::path::PathBuf]) -> Option<TokenFile> {
    paths.iter().filter_map(|p| read_json::<TokenFile>(p)).max_by_key(|t| parse_time(&t.expires_at))
}

/// Copies a valid token to the paths that have none: an `[sso-session]` added to the config since cone last signed
/// in, so that its native profiles need no sign-in of their own.
fn share_token(token: &TokenFile, paths: &[std::path::PathBuf]) -> Result<()> {
    write_token(token, paths, |path| !path.exists())
}

fn write_token(token: &TokenFile, paths: &[std::path::PathBuf], to: impl Fn(&std::path::Path) -> bool) -> Result<()> {
    let bytes = serde_json::to_vec(token).context("cannot encode the token")?;
    paths.iter().filter(|p| to(p)).try_for_each(|path| files::write_private(path, &bytes))
}

/// Starts `$BROWSER` (or the desktop's opener) on `url` without waiting for it: a browser that stays in the
/// foreground must not keep cone from answering the redirect.
pub fn start_browser(url: &str) -> bool {
    let browser = std::env::var("BROWSER").ok().filter(|b| !b.trim().is_empty());
    let opener = if cfg!(target_os = "macos") { "open" } else { "xdg-open" };
    let command = browser.unwrap_or_else(|| opener.to_string());
    let mut words = command.split_whitespace();
    let Some(program) = words.next() else { return false };
    std::process::Command::new(program)
        .args(words)
        .arg(url)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .is_ok()
}

/// Answers requests on the loopback listener until one carries the authorization code (or an error).
///
/// A hand-written exchange rather than an HTTP server crate: it reads one request line per connection and
/// answers a fixed page, and the CLI binary stays small, which keeps every `credential_process` start fast.
async fn wait_for_code(listener: &tokio::net::TcpListener, state: &str) -> Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    loop {
        let (mut conn, _) = listener.accept().await.context("the sign-in listener stopped")?;
        let mut buf = Vec::with_capacity(1024);
        let mut chunk = [0u8; 1024];
        // The request line is all that matters; give up on a connection that sends nothing useful quickly.
        let read = tokio::time::timeout(Duration::from_secs(10), async {
            while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 8192 {
                match conn.read(&mut chunk).await {
                    Ok(0) | Err(_) => break,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
        })
        .await;
        let text = String::from_utf8_lossy(&buf);
        let outcome =
            if read.is_ok() { pkce::read_callback(text.lines().next().unwrap_or(""), state) } else { Callback::Ignore };
        let message = match &outcome {
            Callback::Code(_) => "Signed in. You can close this tab and return to the terminal.",
            Callback::Failed(_) => "The sign-in did not complete. Return to the terminal for details.",
            Callback::Ignore => "Waiting for the IAM Identity Center sign-in.",
        };
        let page =
            format!("<!doctype html><html lang=en><meta charset=utf-8><title>cone</title><p>{message}</p></html>");
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{page}",
            page.len()
        );
        let _ = conn.write_all(response.as_bytes()).await;
        let _ = conn.shutdown().await;
        match outcome {
            Callback::Code(code) => return Ok(code),
            Callback::Failed(why) => bail!("The browser sign-in failed: {why}. Run `cone aws login` to try again."),
            Callback::Ignore => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registration_file_name_matches_the_aws_cli() {
        let key = registration_key("https://d-1234567890.awsapps.com/start", "us-east-1");
        assert_eq!(sha1_hex(&key), "365414a68be7c9bfc776c660981dbdbd942acea4");
    }
}
