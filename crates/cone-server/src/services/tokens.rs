//! Personal and service API tokens: long-lived bearer tokens for scripts and services, beside the 30-day sessions
//! of `cone login`. Each is stored as the SHA-256 hash of its secret, may expire, and is revoked rather than
//! deleted, so that using a revoked one is answered as such. A personal token acts as its creator; a service token
//! as a service account (user `service:<name>`), which has no password, no Identity Center user and so no access of
//! its own to request, and decides tasks only where a policy names it, by the same rules as a person. Tokens are
//! created from a `cone login` session, never with another API token, so that a leaked token cannot outlive its
//! revocation through tokens it made.

use cone_api::{
    ApiToken, NewToken, PERSONAL_TOKEN_PREFIX, SERVICE_ACCOUNT_PREFIX, SERVICE_TOKEN_PREFIX, TOKEN_KIND_PERSONAL,
    TOKEN_KIND_SERVICE, TokenList,
};

use super::auth::{Caller, admins_only, is_admin, random_token, secret_hash};
use super::time;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{ApiTokenRow, NewApiToken, TokenOwner, TokensOf};

/// The longest expiry a token may be given, in days (ten years).
const MAX_DAYS: i64 = 3650;

fn to_api(r: ApiTokenRow) -> ApiToken {
    ApiToken {
        id: r.id,
        name: r.name,
        kind: r.kind,
        owner: r.owner,
        created_by: r.created_by,
        created_at: time(r.created_at),
        expires_at: r.expires_at.map(time),
        last_used_at: r.last_used_at.map(time),
        revoked_at: r.revoked_at.map(time),
    }
}

/// Tokens come from a sign-in session only.
fn from_session(caller: &Caller) -> Result<()> {
    if caller.api_token.is_some() {
        return Err(Error::Forbidden(
            "API tokens cannot create tokens; sign in with `cone login` and create it from that session.".into(),
        ));
    }
    Ok(())
}

fn token_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(Error::invalid(format!(
            "The token name {name:?} is not usable; give 1 to 100 characters without control characters, such as \"ci deploys\"."
        )));
    }
    Ok(name.to_string())
}

fn expiry(days: Option<i64>, now: i64) -> Result<Option<i64>> {
    match days {
        None => Ok(None),
        Some(d) if (1..=MAX_DAYS).contains(&d) => Ok(Some(now + d * 86_400)),
        Some(d) => Err(Error::invalid(format!(
            "expires_in_days is {d}; give 1 to {MAX_DAYS} days, or leave it out for a token that works until revoked."
        ))),
    }
}

fn service_name(name: &str) -> Result<&str> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !valid {
        return Err(Error::invalid(format!(
            "The service name {name:?} is not usable; use lowercase letters, digits, '.', '_' and '-' (at most 63, \
             starting with a letter or digit), such as \"deploy-bot\"."
        )));
    }
    if name == crate::store::REVIEW_SCHEDULE {
        return Err(Error::invalid(format!(
            "The service name {name:?} is Cone's own (scheduled access reviews are opened as it); choose another."
        )));
    }
    Ok(name)
}

/// A personal API token for the caller. The secret is in this answer only.
pub async fn create_personal(
    s: &AppState,
    caller: &Caller,
    name: &str,
    expires_in_days: Option<i64>,
) -> Result<NewToken> {
    from_session(caller)?;
    let kind = (TOKEN_KIND_PERSONAL, PERSONAL_TOKEN_PREFIX);
    let made = issue(s, caller, kind, TokenOwner::Creator, name, expires_in_days).await?;
    Ok(made.ok_or_else(|| anyhow::anyhow!("a personal token has no owner"))?)
}

/// A token for the service account `service:<service>`, created with its first token. The caller must be an
/// administrator (the API's extractor checks).
pub async fn create_service(
    s: &AppState,
    caller: &Caller,
    service: &str,
    name: &str,
    expires_in_days: Option<i64>,
) -> Result<NewToken> {
    from_session(caller)?;
    let username = format!("{SERVICE_ACCOUNT_PREFIX}{}", service_name(service)?);
    let kind = (TOKEN_KIND_SERVICE, SERVICE_TOKEN_PREFIX);
    let owner = TokenOwner::Service(&username);
    issue(s, caller, kind, owner, name, expires_in_days).await?.ok_or_else(|| {
        Error::NameTaken(format!(
            "{username} is a person's user name, not a service account; choose another service name."
        ))
    })
}

/// Makes a token of `kind` (its name and its secret's prefix) for a caller signed in with a session; `None` when
/// `owner` names a person's account as a service account.
async fn issue(
    s: &AppState,
    caller: &Caller,
    (kind, prefix): (&str, &str),
    owner: TokenOwner<'_>,
    name: &str,
    expires_in_days: Option<i64>,
) -> Result<Option<NewToken>> {
    let t = s.now();
    let name = token_name(name)?;
    let expires_at = expiry(expires_in_days, t)?;
    let secret = format!("{prefix}{}", random_token(32));
    let new = NewApiToken {
        token_hash: &secret_hash(&secret),
        kind,
        name: &name,
        owner,
        created_by: caller.user.id,
        expires_at,
    };
    Ok(s.db.create_api_token(&new, t).await?.map(|row| NewToken { secret, token: to_api(row) }))
}

/// The caller's unrevoked API tokens, and for administrators every service token (every token when `everyone`);
/// never their secrets.
pub async fn list(s: &AppState, caller: &Caller, everyone: bool) -> Result<TokenList> {
    let of = match (is_admin(s, &caller.user).await?, everyone) {
        (true, true) => TokensOf::Everyone,
        (true, false) => TokensOf::CallerAndServices,
        (false, false) => TokensOf::Caller,
        (false, true) => return Err(admins_only()),
    };
    let rows = s.db.api_tokens(caller.user.id, of).await?;
    Ok(TokenList { tokens: rows.into_iter().map(to_api).collect() })
}

/// Revokes one of the caller's API tokens, or any for administrators. It stops working at once; revoking it again
/// changes nothing.
pub async fn revoke(s: &AppState, caller: &Caller, id: i64) -> Result<ApiToken> {
    let admin = is_admin(s, &caller.user).await?;
    let row = s.db.revoke_api_token(id, caller.user.id, admin, s.now()).await?.ok_or_else(|| {
        Error::NotFound(format!("There is no API token {id} that you may revoke; `cone token list` shows yours."))
    })?;
    Ok(to_api(row))
}
