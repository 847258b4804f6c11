//! Console sign-in through an OpenID Connect provider (`oidc` in the server's configuration): the authorization-code
//! flow with PKCE, `state` and `nonce`, the provider found by discovery, and the ID token's signature checked against
//! the provider's published keys, all by the `openidconnect` crate.
//!
//! What the flow must remember between leaving for the provider and coming back (the `state`, the PKCE verifier, the
//! nonce and the page to go on to) travels in a short-lived `HttpOnly` cookie rather than in the database: it is
//! worthless without the browser that holds it, and every replica can finish a sign-in another one started. The
//! cookie's `state` must equal the one the provider sends back (compared in constant time), so a code obtained by
//! someone else cannot be fed to this browser; the nonce ties the ID token to this attempt; the verifier ties the
//! code to it. The provider's metadata and keys are read at each sign-in, so that a key rotation needs no restart.
//!
//! The person is the Cone user whose email (or user name) equals the configured claim; nobody else is signed in,
//! whatever the provider says.

use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::CookieJar;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreIdTokenClaims, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, EndpointMaybeSet, EndpointNotSet, EndpointSet, IssuerUrl,
    Nonce, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::layout::WebError;
use super::session::{cookie, destination, start_session, with_cookie};
use crate::config::{Oidc, UserField};
use crate::services::auth;
use crate::state::AppState;
use crate::store::{USER_SERVICE, UserRow};

/// The cookie that carries the flow from the redirect to the provider back to the callback.
const FLOW_COOKIE: &str = "cone_oidc";
/// How long a person has at the provider before the flow expires.
const FLOW_TTL: i64 = 10 * 60;
/// The provider gets this long to answer each call.
const TIMEOUT: Duration = Duration::from_secs(10);
pub const CALLBACK: &str = "/console/login/oidc/callback";

/// A client of a discovered provider: its authorization endpoint is known, the token and user-info endpoints may be.
type Client =
    CoreClient<EndpointSet, EndpointNotSet, EndpointNotSet, EndpointNotSet, EndpointMaybeSet, EndpointMaybeSet>;

/// What the callback needs from the start of the flow.
#[derive(Serialize, Deserialize)]
struct Flow {
    state: String,
    verifier: String,
    nonce: String,
    next: String,
}

fn configured(s: &AppState) -> Result<&Oidc, WebError> {
    s.config.oidc.as_ref().ok_or_else(|| {
        WebError::new(
            StatusCode::NOT_FOUND,
            "No identity provider",
            "This server signs people in with passwords only; use the sign-in form.",
        )
    })
}

/// The provider could not be used; people can still sign in with a password, and the log has the details.
fn unreachable(oidc: &Oidc, what: &str, e: impl std::fmt::Display) -> WebError {
    tracing::error!(issuer = %oidc.issuer, "OpenID Connect sign-in: {what}: {e}");
    WebError::new(
        StatusCode::BAD_GATEWAY,
        "Sign-in failed",
        format!(
            "Cone could not {what} with {} ({}). Try again shortly, or sign in with your Cone password; if it keeps \
             failing, an administrator finds the details in the server's log.",
            oidc.name, oidc.issuer
        ),
    )
}

/// An HTTP client that follows no redirects: a provider's answer is taken as it is, and a redirect cannot point
/// the server at another host (server-side request forgery).
fn http_client() -> anyhow::Result<reqwest::Client> {
    Ok(reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).timeout(TIMEOUT).build()?)
}

/// The provider's metadata (by discovery), and the client Cone is there, with its secret read now.
async fn provider(s: &AppState, oidc: &Oidc, http: &reqwest::Client) -> Result<Client, WebError> {
    let issuer = IssuerUrl::new(oidc.issuer.clone()).map_err(|e| unreachable(oidc, "read the issuer URL", e))?;
    let metadata = CoreProviderMetadata::discover_async(issuer, http)
        .await
        .map_err(|e| unreachable(oidc, "read the provider's OpenID configuration", error_chain(&e)))?;
    let secret = oidc
        .secret
        .read("oidc", |name| std::env::var(name).ok())
        .map_err(|e| unreachable(oidc, "read the client secret", format!("{e:#}")))?;
    let redirect = RedirectUrl::new(format!("{}{CALLBACK}", s.public_url))
        .map_err(|e| unreachable(oidc, "build the callback address from `public_url`", e))?;
    Ok(CoreClient::from_provider_metadata(
        metadata,
        ClientId::new(oidc.client_id.clone()),
        Some(ClientSecret::new(String::from_utf8_lossy(secret.reveal()).into_owned())),
    )
    .set_redirect_uri(redirect))
}

/// An error with its causes, which the crate's errors keep in `source()`.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        text.push_str(": ");
        text.push_str(&c.to_string());
        cause = c.source();
    }
    text
}

#[derive(Deserialize)]
pub struct Start {
    #[serde(default)]
    next: String,
}

/// Sends the browser to the provider's sign-in page.
pub async fn start(State(s): State<AppState>, jar: CookieJar, Query(q): Query<Start>) -> Result<Response, WebError> {
    let oidc = configured(&s)?;
    let http = http_client()?;
    let client = provider(&s, oidc, &http).await?;
    let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
    let (url, state, nonce) = client
        .authorize_url(CoreAuthenticationFlow::AuthorizationCode, CsrfToken::new_random, Nonce::new_random)
        .add_scope(Scope::new("email".into()))
        .add_scope(Scope::new("profile".into()))
        .set_pkce_challenge(challenge)
        .url();
    let flow = Flow {
        state: state.secret().clone(),
        verifier: verifier.secret().clone(),
        nonce: nonce.secret().clone(),
        next: destination(&q.next).to_string(),
    };
    let value = serde_urlencoded::to_string(&flow).map_err(anyhow::Error::from)?;
    Ok((with_cookie(jar, &s, FLOW_COOKIE, value, FLOW_TTL), Redirect::to(url.as_str())).into_response())
}

#[derive(Deserialize)]
pub struct Callback {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

fn refused(status: StatusCode, message: String) -> WebError {
    WebError::new(status, "Sign-in failed", message)
}

/// The provider sends the browser back here with a code (or an error); the code becomes an ID token, the token a
/// Cone user, and the user a console session.
pub async fn callback(
    State(s): State<AppState>,
    jar: CookieJar,
    Query(q): Query<Callback>,
) -> Result<Response, WebError> {
    let oidc = configured(&s)?;
    let again = "Go back to the sign-in page and try again.";
    if let Some(error) = &q.error {
        let detail = q.error_description.as_deref().map(|d| format!(" ({d})")).unwrap_or_default();
        return Err(refused(
            StatusCode::UNAUTHORIZED,
            format!("{} did not sign you in: {error}{detail}. {again}", oidc.name),
        ));
    }
    let flow = cookie(&jar, &s, FLOW_COOKIE)
        .and_then(|value| serde_urlencoded::from_str::<Flow>(value).ok())
        .ok_or_else(|| {
            refused(
                StatusCode::BAD_REQUEST,
                format!("This sign-in was not started from this browser, or took longer than ten minutes. {again}"),
            )
        })?;
    let state_matches = q.state.as_deref().is_some_and(|st| bool::from(st.as_bytes().ct_eq(flow.state.as_bytes())));
    let Some(code) = q.code.filter(|_| state_matches) else {
        return Err(refused(
            StatusCode::BAD_REQUEST,
            format!("The answer from {} does not belong to the sign-in this browser started. {again}", oidc.name),
        ));
    };
    let http = http_client()?;
    let client = provider(&s, oidc, &http).await?;
    let exchange = client
        .exchange_code(AuthorizationCode::new(code))
        .map_err(|e| unreachable(oidc, "find the provider's token endpoint", e))?;
    let tokens = exchange
        .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier))
        .request_async(&http)
        .await
        .map_err(|e| unreachable(oidc, "exchange the sign-in code for an ID token", error_chain(&e)))?;
    let id_token =
        tokens.id_token().ok_or_else(|| unreachable(oidc, "get an ID token", "the token answer has none"))?;
    let claims = id_token
        .claims(&client.id_token_verifier(), &Nonce::new(flow.nonce))
        .map_err(|e| unreachable(oidc, "verify the ID token", error_chain(&e)))?;
    let user = person(&s, oidc, claims).await?;
    Ok(start_session(&s, jar, &user, Some(&oidc.issuer), FLOW_COOKIE, &flow.next).await)
}

/// The Cone user the verified claims name, or a page saying why there is none.
async fn person(s: &AppState, oidc: &Oidc, claims: &CoreIdTokenClaims) -> Result<UserRow, WebError> {
    let value = match oidc.claim.as_str() {
        "email" => claims.email().map(|e| e.as_str()),
        "preferred_username" => claims.preferred_username().map(|u| u.as_str()),
        _ => Some(claims.subject().as_str()),
    };
    let Some(value) = value.filter(|v| !v.is_empty()) else {
        return Err(refused(
            StatusCode::FORBIDDEN,
            format!(
                "{} did not tell Cone your `{}`, which Cone signs people in by. Ask an administrator to release that \
                 claim to Cone at the provider, or sign in with your Cone password.",
                oidc.name, oidc.claim
            ),
        ));
    };
    // An address the provider does not say it verified may belong to anyone who typed it in: absent counts as no.
    if oidc.claim == "email" && claims.email_verified() != Some(true) {
        return Err(refused(
            StatusCode::FORBIDDEN,
            format!("{} has not verified your email address {value}; verify it there and sign in again.", oidc.name),
        ));
    }
    let found = auth::people_named(s, oidc.match_user_by, value).await?;
    let field = match oidc.match_user_by {
        UserField::Email => "email",
        UserField::Username => "user name",
    };
    match <[UserRow; 1]>::try_from(found) {
        Ok([user]) if user.kind != USER_SERVICE => Ok(user),
        Ok(_) | Err(_) => {
            tracing::info!(issuer = %oidc.issuer, claim = %oidc.claim, "OpenID Connect sign-in of an unknown person refused");
            Err(refused(
                StatusCode::FORBIDDEN,
                format!(
                    "{} signed you in as {value}, but no single Cone user has that {field}, so Cone cannot sign you \
                     in. Cone's users come from IAM Identity Center: ask a Cone administrator to add you there (with \
                     that {field}), then sign in again.",
                    oidc.name
                ),
            ))
        }
    }
}
