//! Sign-in: OAuth 2.0 device authorization (RFC 8628) approved on a server web page with a local password, and
//! bearer tokens for the API. Passwords are argon2 hashes; tokens and device codes are stored as SHA-256 hashes.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use axum::extract::{FromRequestParts, Query, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{Html, IntoResponse, Response};
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

#[derive(Deserialize)]
pub struct DevicePageQuery {
    #[serde(default)]
    pub user_code: String,
}

pub async fn device_page(Query(q): Query<DevicePageQuery>) -> Html<String> {
    Html(page(
        "Sign in to Cone",
        &format!(
            r#"<p>Confirm that this code matches the one your terminal shows, then sign in.</p>
<form method="post" action="device">
<label>Code <input name="user_code" value="{}" autocomplete="off" required></label>
<label>User name <input name="username" autocomplete="username" required></label>
<label>Password <input name="password" type="password" autocomplete="current-password" required></label>
<button type="submit">Approve sign-in</button>
</form>"#,
            escape(&q.user_code)
        ),
    ))
}

/// The person whose user name and local password these are (the device page's and the web console's sign-in).
pub async fn authenticate(s: &AppState, username: &str, password: &str) -> anyhow::Result<Option<UserRow>> {
    let user = s.db.user_by_name(username.trim()).await?;
    // Verify against a dummy hash for unknown users too, so timing does not tell which user names exist.
    let hash = user.as_ref().and_then(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.to_string());
    // Service accounts have no password; the kind is checked too, so that one never signs in this way.
    let ok = verify_password(password, &hash)
        && user.as_ref().is_some_and(|u| u.password_hash.is_some() && u.kind != USER_SERVICE);
    Ok(user.filter(|_| ok))
}

#[derive(Deserialize)]
pub struct DeviceApproval {
    pub user_code: String,
    pub username: String,
    pub password: String,
}

pub async fn device_approve(
    State(s): State<AppState>,
    Form(f): Form<DeviceApproval>,
) -> Result<(StatusCode, Html<String>), ApiFailure> {
    let Some(user) = authenticate(&s, &f.username, &f.password).await? else {
        return Ok((
            StatusCode::UNAUTHORIZED,
            Html(page("Sign-in failed", "<p>Wrong user name or password. Go back and try again.</p>")),
        ));
    };
    let code = f.user_code.trim().to_uppercase();
    if !s.db.approve_device_code(&code, user.id, now()).await? {
        return Ok((
            StatusCode::BAD_REQUEST,
            Html(page(
                "Unknown code",
                "<p>That code is unknown or expired. Run <code>cone login</code> again for a new one.</p>",
            )),
        ));
    }
    tracing::info!(user = %user.username, "device sign-in approved");
    Ok((
        StatusCode::OK,
        Html(page(
            "Signed in",
            &format!(
                "<p>Signed in as {}. You can close this window and return to your terminal.</p>",
                escape(&user.username)
            ),
        )),
    ))
}

/// argon2 hash of a random password nobody knows.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Rm9I7g6kHeX8sQ2o0n7bUJ5aQvdNbAFKqkrdUzaRpsM";

fn page(title: &str, body: &str) -> String {
    format!(
        "<!doctype html><html><head><meta charset=\"utf-8\"><title>{title}</title>\
<style>body{{font-family:sans-serif;max-width:28rem;margin:4rem auto}}label{{display:block;margin:.6rem 0}}input{{display:block;width:100%}}</style>\
</head><body><h1>{title}</h1>{body}</body></html>"
    )
}

fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;").replace('\'', "&#39;")
}

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

    #[test]
    fn escapes_html() {
        assert_eq!(escape("<a href=\"x\">'&"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;");
    }
}
