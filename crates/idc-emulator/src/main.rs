//! A local stand-in for the AWS SSO OIDC and SSO portal APIs, backed by moto's Identity Center state.
//! Prints `READY http://127.0.0.1:<port>` on stdout once it accepts connections. Point clients at it with
//! `AWS_ENDPOINT_URL_SSO_OIDC` and `AWS_ENDPOINT_URL_SSO` (both the same URL); the wire behaviour follows
//! `aws-sso-protocol.md` (§1 OIDC, §2 portal, §7 checklist).
//!
//! Users, groups, permission sets, account assignments and account names are read live from moto (SSO Admin,
//! Identity Store, Organizations) on every call; role credentials come from moto `sts:AssumeRole` on the
//! permission set's reserved role, so they are scoped to the assigned account.
//!
//! # SSO OIDC (rest-json, unsigned)
//!
//! * `POST /client/register`: RegisterClient. `clientType` must be `public`; `grantTypes` may hold
//!   `authorization_code`, `refresh_token` and the device-code grant; `redirectUris` (required with
//!   `authorization_code`) must be absolute URIs; `issuerUrl` and `scopes` are kept for the sign-in page and
//!   the `/authorize` scope check. Times in epoch seconds; the secret lives 90 days.
//! * `POST /device_authorization`: StartDeviceAuthorization. `expiresIn` 600, `interval` 1.
//! * `POST /token`: CreateToken with
//!   * `urn:ietf:params:oauth:grant-type:device_code`: AuthorizationPending until approved, SlowDown when
//!     polled faster than the interval, ExpiredToken after `expiresIn`, AccessDenied when denied, InvalidGrant
//!     once redeemed;
//!   * `authorization_code`: the code from `/authorize`, single use, 5 minutes (ExpiredToken afterwards);
//!     `redirectUri` must equal the one given to `/authorize` and `codeVerifier` must satisfy S256, else
//!     InvalidGrant;
//!   * `refresh_token`: rotates the refresh token; unknown, spent, revoked or another client's token is
//!     InvalidGrant.
//!
//!   Refresh tokens are issued by every grant to clients registered with the `sso:account:access` scope
//!   (as AWS documents: the AWS CLI's sso-session registers with it, a legacy profile without), unless disabled. Any client may use the device-code and
//!   refresh grants: the real service was not observed to refuse them, and AWS CLI 2.9.19 reuses a PKCE
//!   registration for the device flow.
//! * `GET /authorize`: the authorization-code + PKCE (S256) sign-in. An unknown client or a redirect URI
//!   that is not registered gets an HTML error page (no redirect); a loopback `http` redirect URI
//!   (`127.0.0.1`, `localhost`, `[::1]`) matches a registered one on any port. Other errors go back as
//!   `302 <redirect_uri>?error=…&error_description=…&state=…`. A valid request then follows the sign-in mode:
//!   *interactive* (default) shows an HTML page listing the identity-store users; *approve* (flag
//!   `--authorize-as`, or `/_emu/authorize/mode`) answers `302 <redirect_uri>?code=…&state=…` at once;
//!   *deny* answers `302 …?error=access_denied…`.
//! * `POST /authorize`: the sign-in page's form (`request`, `decision` = `approve` | `deny`, `user_name`);
//!   answers the same 302s.
//!
//! Errors: status, `x-amzn-ErrorType: <Exception>` and `{"error", "error_description", "message"}`.
//!
//! # SSO portal (rest-json, token in `x-amz-sso_bearer_token`)
//!
//! * `GET /federation/credentials?role_name=&account_id=`: GetRoleCredentials; `expiration` in epoch
//!   milliseconds, lifetime `--credential-ttl-secs`.
//! * `GET /assignment/accounts?max_result=&next_token=`: ListAccounts.
//! * `GET /assignment/roles?account_id=&max_result=&next_token=`: ListAccountRoles.
//! * `POST /logout`: Logout; ends the sign-in session, so its access and refresh tokens stop working.
//!
//! `max_result` is 1..=100 (default 100); `nextToken` is absent on the last page. Unknown, expired or
//! logged-out tokens get 401 UnauthorizedException "Session token not found or invalid"; a role not assigned
//! to the user gets 403 ForbiddenException "No access". Errors carry `x-amzn-ErrorType` and
//! `{"message", "__type"}`.
//!
//! # Console federation (`signin.aws.amazon.com`)
//!
//! * `GET /federation?Action=getSigninToken&Session=<json>`: `{"SigninToken"}` for role credentials this
//!   emulator issued; `GET /federation?Action=login&Issuer=&Destination=&SigninToken=`: 302 to `Destination`.
//!
//! # Control API (`/_emu/`, plain JSON, failures as `{"error": "..."}`)
//!
//! * `POST /_emu/device/approve` `{"user_code", "user_name"}`: approve a pending device authorization as that
//!   identity-store user.
//! * `POST /_emu/device/deny` `{"user_code"}`: deny it (the next poll gets AccessDenied).
//! * `POST /_emu/device/expire` `{"user_code"}`: let it run out now (the next poll gets ExpiredToken).
//! * `GET`/`POST /_emu/authorize/mode`: read or set how `/authorize` answers: `{"mode": "interactive"}`,
//!   `{"mode": "approve", "user_name": "alice"}` or `{"mode": "deny"}`.
//! * `POST /_emu/tokens/expire-all`: every live access token expires now (refresh tokens keep working);
//!   answers `{"expired": n}`.
//! * `POST /_emu/refresh-tokens/revoke` with one of `{"user_name"}`, `{"refresh_token"}`, `{"all": true}`:
//!   revoke refresh tokens (refreshing with one then gets InvalidGrant; access tokens live on); answers
//!   `{"revoked": n}`.
//! * `GET`/`POST /_emu/settings` `{"token_ttl_secs", "credential_ttl_secs", "issue_refresh_tokens"}` (any
//!   subset): read or change the settings the flags set, for tokens and credentials issued afterwards.
//! * `GET`/`POST /_emu/throttle` `{"api": "oidc" | "portal", "count": n}`: the next n calls to that API's
//!   operations answer 429 TooManyRequestsException ("Rate exceeded"); 0 stops it. Answers the remaining
//!   counts `{"oidc": n, "portal": n}`.
//! * `GET /_emu/requests`: the AWS API and sign-in requests received so far (method, path, query, status,
//!   error type), oldest first; `DELETE /_emu/requests` forgets them.

mod access;
mod control;
mod errors;
mod federation;
mod http;
mod moto;
mod oidc;
mod portal;
mod sign_in;

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result};
use aws_config::{BehaviorVersion, Region};
use chrono::TimeDelta;
use clap::{ArgAction, Parser};
use tracing_subscriber::EnvFilter;

/// Emulates AWS IAM Identity Center sign-in (SSO OIDC) and the SSO portal for local tests.
///
/// moto is reached through the usual AWS SDK environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port on 127.0.0.1 to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Region of moto's Identity Center instance, also shown in verification URIs.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Lifetime of issued access tokens, in seconds. Below 900 the AWS CLI refreshes at once (15-minute
    /// window), below 300 the Rust SDK does too (5-minute window).
    #[arg(long, default_value_t = 28800, value_parser = clap::value_parser!(u32).range(1..))]
    token_ttl_secs: u32,
    /// Lifetime of role credentials from GetRoleCredentials, in seconds (at most 12 h). Real sessions
    /// default to 1 h; botocore renews credentials with less than 15 minutes left on every use.
    #[arg(long, default_value_t = 3600, value_parser = clap::value_parser!(i32).range(1..=i64::from(control::MAX_CREDENTIAL_TTL_SECS)))]
    credential_ttl_secs: i32,
    /// Whether CreateToken issues refresh tokens.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    issue_refresh_tokens: bool,
    /// Approve every valid /authorize request at once as this identity-store user, instead of showing the
    /// sign-in page (tests; `/_emu/authorize/mode` changes it at run time).
    #[arg(long, value_name = "USER_NAME")]
    authorize_as: Option<String>,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let args = Args::parse();

    let aws = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(args.region.clone())).load().await;
    let settings = oidc::Settings {
        token_ttl: TimeDelta::seconds(i64::from(args.token_ttl_secs)),
        issue_refresh_tokens: args.issue_refresh_tokens,
    };
    let sign_in = match args.authorize_as.clone() {
        Some(user_name) => http::SignInMode::Approve { user_name },
        None => http::SignInMode::Interactive,
    };
    let controls = http::Controls {
        credential_ttl_secs: args.credential_ttl_secs,
        sign_in,
        throttled_oidc: 0,
        throttled_portal: 0,
    };
    let state = http::AppState::new(oidc::Oidc::new(settings, &args.region), moto::Directory::new(&aws), controls);

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}; pick another --port or 0", args.port))?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!(
        %address,
        region = %args.region,
        ?settings,
        credential_ttl_secs = args.credential_ttl_secs,
        authorize_as = args.authorize_as.as_deref().unwrap_or("(sign-in page)"),
        "idc-emulator listening"
    );
    {
        // Test harnesses block on this line; it must leave the pipe buffer now.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "READY http://{address}").context("writing the READY line to stdout")?;
        stdout.flush().context("flushing the READY line")?;
    }

    axum::serve(listener, http::router(Arc::new(state)))
        .with_graceful_shutdown(async {
            if let Err(err) = tokio::signal::ctrl_c().await {
                tracing::error!("cannot listen for Ctrl-C ({err}); stop the emulator by killing it");
                std::future::pending::<()>().await;
            }
        })
        .await
        .context("serving HTTP")
}
