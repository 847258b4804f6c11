//! Sign-in: OAuth 2.0 device authorization (RFC 8628), approved on the web console's device page (`web::device`),
//! and bearer tokens for the API. Passwords are argon2 hashes; tokens and device codes are stored as SHA-256 hashes.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use axum::extract::{FromRequestParts, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use axum::{Form, Json};
use cone_api::{
    DeviceAuthorization, OAuthError, PERSONAL_TOKEN_PREFIX, SERVICE_TOKEN_PREFIX, SignedOut, TokenResponse, codes,
};
use rand::Rng;
use serde::Deserialize;
use sha2::{Digest, Sha256};

use crate::db::{DevicePoll, USER_SERVICE, UserRow};
use crate::http::{ApiFailure, AppState, now};

const DEVICE_CODE_TTL: i64 = 600;
const POLL_INTERVAL: i64 = 1;
const TOKEN_TTL: i64 = 30 * 86_400;
const DEVICE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// A hash that does not reveal the secret; lookups by it compare hashes, never secrets.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub(crate) fn random_token(bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill(&mut buf[..]);
    hex::encode(buf)
}

/// `WDJB-MJHT`: consonants only, so that no word is spelled by accident (RFC 8628 §6.1).
fn user_code() -> String {
    const ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
    let mut rng = rand::thread_rng();
    let mut code: String = (0..8).map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char).collect();
    code.insert(4, '-');
    code
}

#[derive(Deserialize)]
pub struct DeviceCodeRequest {
    pub client_id: String,
}

pub async fn device_authorization(
    State(s): State<AppState>,
    Form(req): Form<DeviceCodeRequest>,
) -> Result<Json<DeviceAuthorization>, ApiFailure> {
    if req.client_id != cone_api::CLI_CLIENT_ID {
        return Err(ApiFailure::new(
            StatusCode::BAD_REQUEST,
            codes::INVALID_REQUEST,
            "Unknown client_id; only the cone CLI may sign in here.",
        ));
    }
    let device_code = random_token(32);
    let user_code = user_code();
    s.db.create_device_code(&secret_hash(&device_code), &user_code, now() + DEVICE_CODE_TTL, POLL_INTERVAL).await?;
    let uri = format!("{}/device", s.public_url);
    Ok(Json(DeviceAuthorization {
        device_code,
        verification_uri_complete: format!("{uri}?user_code={user_code}"),
        user_code,
        verification_uri: uri,
        expires_in: DEVICE_CODE_TTL,
        interval: POLL_INTERVAL,
    }))
}

#[derive(Deserialize)]
pub struct TokenRequest {
    pub grant_type: String,
    #[serde(default)]
    pub device_code: String,
    #[serde(default)]
    pub client_id: String,
}

pub async fn token(State(s): State<AppState>, Form(req): Form<TokenRequest>) -> Response {
    let oauth_error = |error: &str, description: &str| {
        (StatusCode::BAD_REQUEST, Json(OAuthError { error: error.into(), error_description: description.into() }))
            .into_response()
    };
    if req.grant_type != DEVICE_GRANT {
        return oauth_error("unsupported_grant_type", "Only the device_code grant is supported.");
    }
    if req.client_id != cone_api::CLI_CLIENT_ID {
        return oauth_error("invalid_client", "Unknown client_id.");
    }
    let poll = match s.db.poll_device_code(&secret_hash(&req.device_code), now()).await {
        Ok(p) => p,
        Err(e) => return ApiFailure::from(e).into_response(),
    };
    match poll {
        DevicePoll::Unknown => {
            oauth_error("invalid_grant", "Unknown or already used device code; run `cone login` again.")
        }
        DevicePoll::Pending => oauth_error("authorization_pending", "Waiting for the user to approve the sign-in."),
        DevicePoll::SlowDown => oauth_error("slow_down", "Polling too fast."),
        DevicePoll::Expired => oauth_error("expired_token", "The sign-in code expired; run `cone login` again."),
        DevicePoll::Denied => oauth_error("access_denied", "The sign-in was refused."),
        DevicePoll::Approved(user_id) => {
            let access_token = random_token(32);
            let t = now();
            if let Err(e) = s.db.insert_access_token(&secret_hash(&access_token), user_id, t, t + TOKEN_TTL).await {
                return ApiFailure::from(e).into_response();
            }
            Json(TokenResponse { access_token, token_type: "Bearer".into(), expires_in: TOKEN_TTL }).into_response()
        }
    }
}

/// What a password sign-in comes to.
pub enum SignIn {
    Accepted(UserRow),
    Refused,
    /// Too many recent failures for this user name; seconds until the next try may be made.
    Throttled(i64),
}

/// The person whose user name and local password these are (the web console's sign-in). After
/// [`Throttle::LIMIT`] failures for a user name in [`Throttle::WINDOW`] seconds, it refuses to look before the
/// oldest of them leaves the window, so that guessing a password takes years rather than hours.
pub async fn authenticate(s: &AppState, username: &str, password: &str) -> anyhow::Result<SignIn> {
    let username = username.trim();
    let t = now();
    if let Some(wait) = s.sign_in_failures.wait(username, t) {
        return Ok(SignIn::Throttled(wait));
    }
    let user = s.db.user_by_name(username).await?;
    // Verify against a dummy hash for unknown users too, so timing does not tell which user names exist.
    let hash = user.as_ref().and_then(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.to_string());
    // Service accounts have no password; the kind is checked too, so that one never signs in this way.
    let ok = verify_password(password, &hash)
        && user.as_ref().is_some_and(|u| u.password_hash.is_some() && u.kind != USER_SERVICE);
    match user.filter(|_| ok) {
        Some(user) => Ok(SignIn::Accepted(user)),
        None => {
            tracing::warn!(username, "failed password sign-in");
            s.sign_in_failures.fail(username, t);
            Ok(SignIn::Refused)
        }
    }
}

/// Recent failed password sign-ins by user name, in this process. Per user name rather than per address, since
/// behind a proxy every address is the proxy's; the cost is that someone who keeps guessing blocks the password
/// sign-in of that name (not OpenID Connect, nor sessions already open) for as long as they keep on.
#[derive(Default)]
pub struct Throttle {
    failures: std::sync::Mutex<std::collections::HashMap<String, Vec<i64>>>,
}

impl Throttle {
    pub const LIMIT: usize = 5;
    pub const WINDOW: i64 = 15 * 60;
    /// Names kept at most; beyond it the quietest are forgotten, so that made-up names cannot fill the memory.
    const NAMES: usize = 10_000;

    fn wait(&self, username: &str, now: i64) -> Option<i64> {
        let failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let recent: Vec<i64> =
            failures.get(&username.to_lowercase())?.iter().copied().filter(|t| now - t < Self::WINDOW).collect();
        (recent.len() >= Self::LIMIT).then(|| recent[recent.len() - Self::LIMIT] + Self::WINDOW - now)
    }

    fn fail(&self, username: &str, now: i64) {
        let mut failures = self.failures.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if failures.len() >= Self::NAMES {
            failures.retain(|_, times| times.iter().any(|t| now - t < Self::WINDOW));
            if failures.len() >= Self::NAMES {
                let quietest = failures.iter().min_by_key(|(_, times)| times.last().copied()).map(|(n, _)| n.clone());
                quietest.map(|n| failures.remove(&n));
            }
        }
        let times = failures.entry(username.to_lowercase()).or_default();
        times.retain(|t| now - t < Self::WINDOW);
        times.push(now);
    }
}

/// argon2 hash of a random password nobody knows.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Rm9I7g6kHeX8sQ2o0n7bUJ5aQvdNbAFKqkrdUzaRpsM";

/// The signed-in caller of an API request, and the API token it presented (none for a `cone login` session).
pub struct Caller {
    pub user: UserRow,
    pub api_token: Option<i64>,
}

fn unauthenticated(message: impl Into<String>) -> ApiFailure {
    ApiFailure::new(StatusCode::UNAUTHORIZED, codes::UNAUTHENTICATED, message)
}

fn day(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).unwrap_or_default().format("%Y-%m-%d %H:%M UTC").to_string()
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let signed_out = || unauthenticated("Not signed in or the session expired; run `cone login <server-url>`.");
        let token = bearer(&parts.headers).ok_or_else(signed_out)?;
        if !(token.starts_with(PERSONAL_TOKEN_PREFIX) || token.starts_with(SERVICE_TOKEN_PREFIX)) {
            let user = s.db.user_for_token(&secret_hash(token), now()).await?.ok_or_else(signed_out)?;
            return Ok(Caller { user, api_token: None });
        }
        let renew = if token.starts_with(SERVICE_TOKEN_PREFIX) {
            "ask a Cone administrator for a new service token"
        } else {
            "create a new one with `cone token create`"
        };
        let Some(used) = s.db.api_token_use(&secret_hash(token)).await? else {
            return Err(unauthenticated(format!("Unknown API token; check that it was copied whole, or {renew}.")));
        };
        let t = now();
        if let Some(at) = used.revoked_at {
            return Err(unauthenticated(format!(
                "The API token \"{}\" was revoked on {}; {renew}.",
                used.token_name,
                day(at)
            )));
        }
        if let Some(at) = used.expires_at.filter(|at| *at <= t) {
            return Err(unauthenticated(format!(
                "The API token \"{}\" expired on {}; {renew}.",
                used.token_name,
                day(at)
            )));
        }
        s.db.touch_api_token(&used, t).await?;
        Ok(Caller { user: used.user, api_token: Some(used.token_id) })
    }
}

/// The signed-in user of an API request: a person's session or API token, or a service account's token.
pub struct CurrentUser(pub UserRow);

impl FromRequestParts<AppState> for CurrentUser {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        Ok(CurrentUser(Caller::from_request_parts(parts, s).await?.user))
    }
}

/// Whether the user is a Cone administrator (`admins` in the configuration).
pub async fn is_admin(s: &AppState, user: &UserRow) -> anyhow::Result<bool> {
    Ok(s.config.admins.include(&user.username, &s.db.user_groups(user.id).await?))
}

/// A signed-in administrator (`admins` in the configuration); anyone else gets 403.
pub struct Admin(pub Caller);

impl FromRequestParts<AppState> for Admin {
    type Rejection = ApiFailure;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, s).await?;
        if !is_admin(s, &caller.user).await? {
            return Err(ApiFailure::new(
                StatusCode::FORBIDDEN,
                codes::FORBIDDEN,
                "Only Cone administrators may do this; ask one, or to be listed under `admins` in the server's configuration.",
            ));
        }
        Ok(Admin(caller))
    }
}

fn bearer(headers: &axum::http::HeaderMap) -> Option<&str> {
    let header = headers.get(axum::http::header::AUTHORIZATION)?.to_str().ok()?;
    Some(header.strip_prefix("Bearer ")?.trim())
}

/// Signs out: the token of the request stops working (an API token is revoked).
#[utoipa::path(
    post,
    path = "/api/v1/logout",
    tag = "session",
    responses(
        (status = 200, description = "Signed out", body = SignedOut),
        crate::http::Unauthenticated, crate::http::Internal
    )
)]
pub async fn logout(
    State(s): State<AppState>,
    caller: Caller,
    headers: axum::http::HeaderMap,
) -> Result<Json<SignedOut>, ApiFailure> {
    match (caller.api_token, bearer(&headers)) {
        (Some(id), _) => {
            s.db.revoke_api_token(id, caller.user.id, false, now()).await?;
        }
        (None, Some(token)) => s.db.revoke_access_token(&secret_hash(token), caller.user.id, now()).await?,
        (None, None) => {}
    }
    Ok(Json(SignedOut { signed_out: true }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("s3cret").unwrap();
        assert!(verify_password("s3cret", &h));
        assert!(!verify_password("s3cret ", &h));
        assert!(!verify_password("x", DUMMY_HASH));
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }

    #[test]
    fn user_codes_are_readable() {
        let c = user_code();
        assert_eq!(c.len(), 9);
        assert_eq!(&c[4..5], "-");
        assert!(c.chars().all(|ch| ch == '-' || "BCDFGHJKLMNPQRSTVWXZ".contains(ch)));
    }
}
