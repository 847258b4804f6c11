//! Who is calling: `cone login`'s device sign-in (OAuth 2.0 device authorization, RFC 8628) and its tokens, API
//! tokens, console sessions, and password sign-in. Passwords are argon2 hashes; tokens, device codes and session
//! secrets are stored as SHA-256 hashes.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng};
use cone_api::{DeviceAuthorization, Me, PERSONAL_TOKEN_PREFIX, SERVICE_TOKEN_PREFIX, SignedOutUser, TokenResponse};
use rand::Rng;
use sha2::{Digest, Sha256};

use crate::config::UserField;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{DevicePoll, USER_SERVICE, UserRow};

const DEVICE_CODE_TTL: i64 = 600;
const POLL_INTERVAL: i64 = 1;
const TOKEN_TTL: i64 = 30 * 86_400;
/// How long a console session lasts: a working day. It is not extended by use, so a stolen cookie ends too.
pub const WEB_SESSION_TTL: i64 = 8 * 3600;

pub fn hash_password(password: &str) -> anyhow::Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| anyhow::anyhow!("cannot hash the password: {e}"))
}

fn password_matches(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash).is_ok_and(|h| Argon2::default().verify_password(password.as_bytes(), &h).is_ok())
}

/// [`password_matches`] on one of the [`PASSWORD_THREADS`], at most [`PASSWORD_CHECKS`] at once.
async fn verify_password(password: &str, hash: String) -> anyhow::Result<bool> {
    let _permit = PASSWORD_CHECKS.acquire().await?;
    let (answer, answered) = tokio::sync::oneshot::channel();
    PASSWORD_THREADS
        .send((password.to_string(), hash, answer))
        .map_err(|_| anyhow::anyhow!("the password checks stopped"))?;
    Ok(answered.await?)
}

type Check = (String, String, tokio::sync::oneshot::Sender<bool>);

/// Where password checks run: threads of their own, one per [`PASSWORD_CHECKS`] permit. Each check takes 19 MiB
/// (argon2's memory cost); on tokio's blocking pool checks landed on ever new threads, and the allocator keeps freed
/// memory per thread, so a flood of wrong passwords left some 330 MB resident (`bench/flood.sh`). Two threads keep
/// two such blocks.
static PASSWORD_THREADS: std::sync::LazyLock<std::sync::mpsc::Sender<Check>> = std::sync::LazyLock::new(|| {
    let (send, receive) = std::sync::mpsc::channel::<Check>();
    let receive = std::sync::Arc::new(std::sync::Mutex::new(receive));
    for n in 0..CHECKS_AT_ONCE {
        let receive = receive.clone();
        let spawned = std::thread::Builder::new().name(format!("password-check-{n}")).spawn(move || {
            loop {
                let next = receive.lock().unwrap_or_else(std::sync::PoisonError::into_inner).recv();
                let Ok((password, hash, answer)) = next else { return };
                let _ = answer.send(password_matches(&password, &hash));
            }
        });
        if let Err(e) = spawned {
            tracing::error!("cannot start a password-check thread: {e}");
        }
    }
    send
});

/// A hash that does not reveal the secret; lookups by it compare hashes, never secrets.
pub fn secret_hash(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

pub fn random_token(bytes: usize) -> String {
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

/// Device sign-ins in progress at once: far more than people sign in within a code's lifetime, few enough that a
/// flood of starts cannot grow the table without bound.
const MAX_DEVICE_CODES: i64 = 10_000;

/// A new device sign-in for `client_id`, which must be the cone CLI's.
pub async fn device_authorization(s: &AppState, client_id: &str) -> Result<DeviceAuthorization> {
    if client_id != cone_api::CLI_CLIENT_ID {
        return Err(Error::invalid("Unknown client_id; only the cone CLI may sign in here."));
    }
    let device_code = random_token(32);
    let user_code = user_code();
    let (now, hash) = (s.now(), secret_hash(&device_code));
    let stored =
        s.db.create_device_code(&hash, &user_code, now + DEVICE_CODE_TTL, POLL_INTERVAL, MAX_DEVICE_CODES, now);
    if !stored.await? {
        return Err(Error::TooMany(format!(
            "{MAX_DEVICE_CODES} device sign-ins are in progress, the most the server holds at once; try `cone login` \
             again in a few minutes."
        )));
    }
    let uri = format!("{}/device", s.public_url);
    Ok(DeviceAuthorization {
        device_code,
        verification_uri_complete: format!("{uri}?user_code={user_code}"),
        user_code,
        verification_uri: uri,
        expires_in: DEVICE_CODE_TTL,
        interval: POLL_INTERVAL,
    })
}

/// A device code polled for its token: the token once the person approved, otherwise where the sign-in stands.
pub async fn redeem_device_code(s: &AppState, device_code: &str) -> anyhow::Result<Result<TokenResponse, DevicePoll>> {
    let poll = s.db.poll_device_code(&secret_hash(device_code), s.now()).await?;
    let DevicePoll::Approved(user_id) = poll else { return Ok(Err(poll)) };
    let access_token = random_token(32);
    let t = s.now();
    s.db.insert_access_token(&secret_hash(&access_token), user_id, t, t + TOKEN_TTL).await?;
    Ok(Ok(TokenResponse { access_token, token_type: "Bearer".into(), expires_in: TOKEN_TTL }))
}

/// The signed-in person lets the terminal showing `user_code` act as them, or refuses it; false when there is no
/// such code waiting.
pub async fn decide_device_code(s: &AppState, u: &UserRow, user_code: &str, approve: bool) -> anyhow::Result<bool> {
    let decided = s.db.decide_device_code(&user_code.trim().to_uppercase(), u.id, approve, s.now()).await?;
    if decided {
        tracing::info!(user = %u.username, approve, "device sign-in decided");
    }
    Ok(decided)
}

/// What a password sign-in comes to.
pub enum SignIn {
    Accepted(UserRow),
    Refused,
    /// Too many recent failures for this user name; seconds until the next try may be made.
    Throttled(i64),
}

/// The person whose user name and local password these are (the web console's sign-in). After
/// [`Throttle::LIMIT`](crate::throttle::Throttle::LIMIT) failures for a user name in a window, it refuses to look
/// before the oldest of them leaves the window, so that guessing a password takes years rather than hours.
pub async fn authenticate(s: &AppState, username: &str, password: &str) -> anyhow::Result<SignIn> {
    let username = username.trim();
    let t = s.now();
    if let Some(wait) = s.sign_in_failures.wait(username, t) {
        return Ok(SignIn::Throttled(wait));
    }
    let user = s.db.user_by_name(username).await?;
    // Verify against a dummy hash for unknown users too, so timing does not tell which user names exist.
    let hash = user.as_ref().and_then(|u| u.password_hash.clone()).unwrap_or_else(|| DUMMY_HASH.to_string());
    // Service accounts have no password; the kind is checked too, so that one never signs in this way.
    let ok = verify_password(password, hash).await?
        && user.as_ref().is_some_and(|u| u.password_hash.is_some() && u.kind != USER_SERVICE && u.left_at.is_none());
    match (user, ok) {
        (Some(user), true) => Ok(SignIn::Accepted(user)),
        (user, _) => {
            // Only a Cone user's name is logged: a name nobody has may be a password typed in the wrong field.
            match &user {
                Some(u) => tracing::warn!(user = %u.username, "failed password sign-in"),
                None => tracing::warn!("failed password sign-in with a user name nobody has"),
            }
            s.sign_in_failures.fail(username, user.is_some(), t);
            Ok(SignIn::Refused)
        }
    }
}

/// Password checks running at once: argon2 takes tens of milliseconds of CPU each, so a flood of sign-ins queues
/// here for the [`PASSWORD_THREADS`] instead of taking the async workers from everything else.
static PASSWORD_CHECKS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(CHECKS_AT_ONCE);
const CHECKS_AT_ONCE: usize = 2;

/// argon2 hash of a random password nobody knows.
const DUMMY_HASH: &str =
    "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$Rm9I7g6kHeX8sQ2o0n7bUJ5aQvdNbAFKqkrdUzaRpsM";

/// The signed-in caller of an API request, and the API token it presented (none for a `cone login` session).
pub struct Caller {
    pub user: UserRow,
    pub api_token: Option<i64>,
}

fn day(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).unwrap_or_default().format("%Y-%m-%d %H:%M UTC").to_string()
}

/// The caller a bearer token stands for: a `cone login` session, or an API token that is neither revoked nor
/// expired. A refusal says which and what to do.
pub async fn caller(s: &AppState, token: Option<&str>) -> Result<Caller> {
    let signed_out =
        || Error::Unauthenticated("Not signed in or the session expired; run `cone login <server-url>`.".into());
    let token = token.ok_or_else(signed_out)?;
    if !(token.starts_with(PERSONAL_TOKEN_PREFIX) || token.starts_with(SERVICE_TOKEN_PREFIX)) {
        let user = s.db.user_for_token(&secret_hash(token), s.now()).await?.ok_or_else(signed_out)?;
        return Ok(Caller { user, api_token: None });
    }
    let renew = if token.starts_with(SERVICE_TOKEN_PREFIX) {
        "ask a Cone administrator for a new service token"
    } else {
        "create a new one with `cone token create`"
    };
    let Some(used) = s.db.api_token_use(&secret_hash(token)).await? else {
        return Err(Error::Unauthenticated(format!("Unknown API token; check that it was copied whole, or {renew}.")));
    };
    let t = s.now();
    if let Some(at) = used.user.left_at {
        return Err(Error::Unauthenticated(format!(
            "The API token \"{}\" belongs to {}, who left Identity Center on {}; Cone no longer accepts it.",
            used.token_name,
            used.user.username,
            day(at)
        )));
    }
    if let Some(at) = used.revoked_at {
        return Err(Error::Unauthenticated(format!(
            "The API token \"{}\" was revoked on {}; {renew}.",
            used.token_name,
            day(at)
        )));
    }
    if let Some(at) = used.expires_at.filter(|at| *at <= t) {
        return Err(Error::Unauthenticated(format!(
            "The API token \"{}\" expired on {}; {renew}.",
            used.token_name,
            day(at)
        )));
    }
    s.db.touch_api_token(&used, t).await?;
    Ok(Caller { user: used.user, api_token: Some(used.token_id) })
}

/// Who the user is, as `GET /api/v1/me` says: their groups and whether they administer Cone.
pub async fn me(s: &AppState, u: UserRow) -> anyhow::Result<Me> {
    let groups = s.db.user_groups(u.id).await?;
    let admin = s.config.admins.include(&u.username, &groups);
    Ok(Me { username: u.username, display_name: u.display_name, email: u.email, groups, admin })
}

/// Whether the user is a Cone administrator (`admins` in the configuration).
pub async fn is_admin(s: &AppState, user: &UserRow) -> anyhow::Result<bool> {
    Ok(s.config.admins.include(&user.username, &s.db.user_groups(user.id).await?))
}

/// The caller if they are an administrator; anyone else is refused.
pub async fn admin(s: &AppState, caller: Caller) -> Result<Caller> {
    require_admin(s, &caller.user).await?;
    Ok(caller)
}

/// Refuses anyone but an administrator.
pub async fn require_admin(s: &AppState, user: &UserRow) -> Result<()> {
    if is_admin(s, user).await? { Ok(()) } else { Err(admins_only()) }
}

pub fn admins_only() -> Error {
    Error::Forbidden(
        "Only Cone administrators may do this; ask one, or to be listed under `admins` in the server's configuration."
            .into(),
    )
}

/// An administrator signs someone out everywhere: their `cone login` sessions, console sessions and API tokens
/// stop working at once. Their grants are left as they are.
pub async fn sign_out_user(s: &AppState, admin: &UserRow, username: &str) -> Result<SignedOutUser> {
    require_admin(s, admin).await?;
    let user = s.db.user_by_name(username).await?.ok_or_else(|| {
        Error::NotFound(format!("There is no user \"{username}\"; user names are those of IAM Identity Center."))
    })?;
    let ended = s.db.sign_out_user(user.id, admin.id, s.now()).await?;
    tracing::info!(user = %user.username, by = %admin.username, "signed out everywhere by an administrator");
    Ok(SignedOutUser {
        username: user.username,
        sessions: ended.sessions,
        console_sessions: ended.console_sessions,
        api_tokens: ended.api_tokens,
    })
}

/// Signs out: the presented token stops working (an API token is revoked).
pub async fn sign_out(s: &AppState, caller: &Caller, token: &str) -> Result<()> {
    match caller.api_token {
        Some(id) => {
            s.db.revoke_api_token(id, caller.user.id, false, s.now()).await?;
        }
        None => s.db.revoke_access_token(&secret_hash(token), caller.user.id, s.now()).await?,
    }
    Ok(())
}

/// A console session for `user` (signed in through the identity provider `oidc_issuer`, if any): its secret, for
/// the cookie.
pub async fn start_web_session(s: &AppState, user: &UserRow, oidc_issuer: Option<&str>) -> anyhow::Result<String> {
    let secret = random_token(32);
    let t = s.now();
    s.db.insert_web_session(&secret_hash(&secret), user.id, t, t + WEB_SESSION_TTL, oidc_issuer).await?;
    tracing::info!(user = %user.username, oidc = oidc_issuer, "web console sign-in");
    Ok(secret)
}

/// The person of an unexpired console session.
pub async fn web_session_user(s: &AppState, secret: &str) -> anyhow::Result<Option<UserRow>> {
    s.db.web_session_user(&secret_hash(secret), s.now()).await
}

pub async fn end_web_session(s: &AppState, secret: &str, user: &UserRow) -> anyhow::Result<()> {
    s.db.delete_web_session(&secret_hash(secret), user.id, s.now()).await
}

/// The people an identity provider's claim names: by email (ignoring case, people only) or by user name; never
/// someone who left.
pub async fn people_named(s: &AppState, by: UserField, value: &str) -> anyhow::Result<Vec<UserRow>> {
    match by {
        UserField::Email => s.db.people_by_email(value).await,
        UserField::Username => {
            Ok(s.db.user_by_name(value).await?.into_iter().filter(|u| u.left_at.is_none()).collect())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_verify_only_themselves() {
        let h = hash_password("s3cret").unwrap();
        assert!(password_matches("s3cret", &h));
        assert!(!password_matches("s3cret ", &h));
        assert!(!password_matches("x", DUMMY_HASH));
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
