//! Personal and service API tokens: long-lived bearer tokens for scripts and services, beside the 30-day sessions
//! of `cone login`. Each is stored as the SHA-256 hash of its secret, may expire, and is revoked rather than
//! deleted, so that using a revoked one is answered as such. A personal token acts as its creator; a service token
//! as a service account (user `service:<name>`), which has no password, no Identity Center user and so no access of
//! its own to request, and decides tasks only where a policy names it, by the same rules as a person. Tokens are
//! created from a `cone login` session, never with another API token, so that a leaked token cannot outlive its
//! revocation through tokens it made.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cone_api::{
    ApiToken, CreateServiceToken, CreateToken, NewToken, PERSONAL_TOKEN_PREFIX, SERVICE_ACCOUNT_PREFIX,
    SERVICE_TOKEN_PREFIX, TOKEN_KIND_PERSONAL, TOKEN_KIND_SERVICE, TokenList, codes,
};

use crate::app::time;
use crate::auth::{self, Admin, Caller, random_token, secret_hash};
use crate::db::{ApiTokenRow, NewApiToken, TokenOwner};
use crate::http::{
    ApiFailure, ApiJson, ApiPath, AppState, BadRequest, Conflict, Forbidden, Internal, NotFound, Unauthenticated,
    UnsupportedMediaType, now,
};

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

fn bad(message: String) -> ApiFailure {
    ApiFailure::new(StatusCode::BAD_REQUEST, codes::INVALID_REQUEST, message)
}

/// Tokens come from a sign-in session only.
fn from_session(caller: &Caller) -> Result<(), ApiFailure> {
    if caller.api_token.is_some() {
        return Err(ApiFailure::new(
            StatusCode::FORBIDDEN,
            codes::FORBIDDEN,
            "API tokens cannot create tokens; sign in with `cone login` and create it from that session.",
        ));
    }
    Ok(())
}

fn token_name(name: &str) -> Result<String, ApiFailure> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err(bad(format!(
            "The token name {name:?} is not usable; give 1 to 100 characters without control characters, such as \"ci deploys\"."
        )));
    }
    Ok(name.to_string())
}

fn expiry(days: Option<i64>, now: i64) -> Result<Option<i64>, ApiFailure> {
    match days {
        None => Ok(None),
        Some(d) if (1..=MAX_DAYS).contains(&d) => Ok(Some(now + d * 86_400)),
        Some(d) => Err(bad(format!(
            "expires_in_days is {d}; give 1 to {MAX_DAYS} days, or leave it out for a token that works until revoked."
        ))),
    }
}

fn service_name(name: &str) -> Result<&str, ApiFailure> {
    let valid = !name.is_empty()
        && name.len() <= 63
        && name.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'));
    if !valid {
        return Err(bad(format!(
            "The service name {name:?} is not usable; use lowercase letters, digits, '.', '_' and '-' (at most 63, \
             starting with a letter or digit), such as \"deploy-bot\"."
        )));
    }
    Ok(name)
}

/// Creates a personal API token for the caller. The secret is in this answer only.
#[utoipa::path(
    post,
    path = "/api/v1/tokens",
    tag = "tokens",
    request_body = CreateToken,
    responses(
        (status = 201, description = "The token and, this once, its secret", body = NewToken),
        BadRequest, Unauthenticated, Forbidden, UnsupportedMediaType, Internal
    )
)]
pub async fn create_token(
    State(s): State<AppState>,
    caller: Caller,
    ApiJson(req): ApiJson<CreateToken>,
) -> Result<(StatusCode, Json<NewToken>), ApiFailure> {
    from_session(&caller)?;
    let kind = (TOKEN_KIND_PERSONAL, PERSONAL_TOKEN_PREFIX);
    let made = issue(&s, &caller, kind, TokenOwner::Creator, &req.name, req.expires_in_days).await?;
    let new = made.ok_or_else(|| anyhow::anyhow!("a personal token has no owner"))?;
    Ok((StatusCode::CREATED, Json(new)))
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
) -> Result<Option<NewToken>, ApiFailure> {
    let t = now();
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

/// Creates a token for a service account, and the account (`service:<name>`) with its first token.
/// Administrators only.
#[utoipa::path(
    post,
    path = "/api/v1/service-tokens",
    tag = "tokens",
    request_body = CreateServiceToken,
    responses(
        (status = 201, description = "The token and, this once, its secret", body = NewToken),
        BadRequest, Unauthenticated, Forbidden, Conflict, UnsupportedMediaType, Internal
    )
)]
pub async fn create_service_token(
    State(s): State<AppState>,
    Admin(caller): Admin,
    ApiJson(req): ApiJson<CreateServiceToken>,
) -> Result<(StatusCode, Json<NewToken>), ApiFailure> {
    from_session(&caller)?;
    let username = format!("{SERVICE_ACCOUNT_PREFIX}{}", service_name(&req.service)?);
    let kind = (TOKEN_KIND_SERVICE, SERVICE_TOKEN_PREFIX);
    let owner = TokenOwner::Service(&username);
    let Some(new) = issue(&s, &caller, kind, owner, &req.name, req.expires_in_days).await? else {
        return Err(ApiFailure::new(
            StatusCode::CONFLICT,
            codes::INVALID_REQUEST,
            format!("{username} is a person's user name, not a service account; choose another service name."),
        ));
    };
    Ok((StatusCode::CREATED, Json(new)))
}

/// The caller's unrevoked API tokens, and for administrators every service token; never their secrets.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    responses((status = 200, description = "The tokens, oldest first", body = TokenList), Unauthenticated, Internal)
)]
pub async fn list_tokens(State(s): State<AppState>, caller: Caller) -> Result<Json<TokenList>, ApiFailure> {
    let admin = auth::is_admin(&s, &caller.user).await?;
    let rows = s.db.api_tokens(caller.user.id, admin).await?;
    Ok(Json(TokenList { tokens: rows.into_iter().map(to_api).collect() }))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct TokenId {
    /// The token's id, from `GET /api/v1/tokens`.
    id: i64,
}

/// Revokes an API token: one of the caller's own, or any for administrators. It stops working at once; revoking
/// it again changes nothing.
#[utoipa::path(
    delete,
    path = "/api/v1/tokens/{id}",
    tag = "tokens",
    params(TokenId),
    responses(
        (status = 200, description = "The revoked token", body = ApiToken),
        BadRequest, Unauthenticated, NotFound, Internal
    )
)]
pub async fn revoke_token(
    State(s): State<AppState>,
    caller: Caller,
    ApiPath(TokenId { id }): ApiPath<TokenId>,
) -> Result<Json<ApiToken>, ApiFailure> {
    let admin = auth::is_admin(&s, &caller.user).await?;
    let row = s.db.revoke_api_token(id, caller.user.id, admin, now()).await?.ok_or_else(|| {
        ApiFailure::new(
            StatusCode::NOT_FOUND,
            codes::NOT_FOUND,
            format!("There is no API token {id} that you may revoke; `cone token list` shows yours."),
        )
    })?;
    Ok(Json(to_api(row)))
}

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use serde_json::{Value, json};

    use super::*;
    use crate::db::Db;
    use crate::http::testing::{call, person, state};

    crate::db::testing::on_both_backends!(
        personal_tokens_work_until_revoked_or_expired,
        service_tokens_act_as_their_account_and_administrators_manage_them,
    );

    fn message(v: &Value) -> &str {
        v["message"].as_str().unwrap_or_default()
    }

    async fn personal_tokens_work_until_revoked_or_expired(db: Db) {
        let s = state(db, "admins: { users: [carol] }\n");
        let alice = person(&s, "alice").await;
        let t0 = now();

        let (status, created) = call(
            &s,
            Method::POST,
            "/api/v1/tokens",
            Some(&alice),
            Some(json!({ "name": " laptop ", "expires_in_days": 30 })),
        )
        .await;
        assert_eq!(status, 201, "{created}");
        let pat = created["secret"].as_str().unwrap().to_string();
        assert!(pat.starts_with("cone_pat_") && pat.len() == 9 + 64, "{pat}");
        let id = created["token"]["id"].as_i64().unwrap();
        assert_eq!(
            (created["token"]["name"].as_str(), created["token"]["owner"].as_str()),
            (Some("laptop"), Some("alice"))
        );
        let expires = chrono::DateTime::parse_from_rfc3339(created["token"]["expires_at"].as_str().unwrap()).unwrap();
        assert!((expires.timestamp() - (t0 + 30 * 86_400)).abs() < 5);

        // The token acts as alice; listings never show a secret or a hash.
        let (status, me) = call(&s, Method::GET, "/api/v1/me", Some(&pat), None).await;
        assert_eq!((status, me["username"].as_str()), (200, Some("alice")));
        let (status, list) = call(&s, Method::GET, "/api/v1/tokens", Some(&pat), None).await;
        assert_eq!(status, 200);
        assert_eq!(list["tokens"].as_array().unwrap().len(), 1);
        assert!(list["tokens"][0]["last_used_at"].is_string(), "{list}");
        assert!(!list.to_string().contains(&pat[9..]) && !list.to_string().contains(&secret_hash(&pat)));

        // Tokens come from sessions, and names and expiries are checked.
        let (status, refused) =
            call(&s, Method::POST, "/api/v1/tokens", Some(&pat), Some(json!({ "name": "more" }))).await;
        assert!(status == 403 && message(&refused).contains("cone login"), "{refused}");
        for (body, needle) in [
            (json!({ "name": "  " }), "1 to 100 characters"),
            (json!({ "name": "x", "expires_in_days": 0 }), "1 to 3650"),
            (json!({ "name": "x", "expires_in_days": -5 }), "1 to 3650"),
        ] {
            let (status, err) = call(&s, Method::POST, "/api/v1/tokens", Some(&alice), Some(body)).await;
            assert!(status == 400 && message(&err).contains(needle), "{err}");
        }

        // Revoked: refused at once with what to do; revoking again changes nothing.
        let (status, revoked) = call(&s, Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(&alice), None).await;
        assert!(status == 200 && revoked["revoked_at"].is_string(), "{revoked}");
        let (status, again) = call(&s, Method::DELETE, &format!("/api/v1/tokens/{id}"), Some(&alice), None).await;
        assert_eq!((status, &again["revoked_at"]), (200, &revoked["revoked_at"]));
        let (status, err) = call(&s, Method::GET, "/api/v1/me", Some(&pat), None).await;
        assert_eq!(status, 401);
        assert!(
            message(&err).contains("\"laptop\" was revoked") && message(&err).contains("cone token create"),
            "{err}"
        );
        let (_, list) = call(&s, Method::GET, "/api/v1/tokens", Some(&alice), None).await;
        assert_eq!(list["tokens"], json!([]));

        // Expired, unknown, and signed out with a token.
        let alice_id = s.db.user_by_name("alice").await.unwrap().unwrap().id;
        let old = NewApiToken {
            token_hash: &secret_hash("cone_pat_old"),
            kind: TOKEN_KIND_PERSONAL,
            name: "old",
            owner: TokenOwner::Creator,
            created_by: alice_id,
            expires_at: Some(t0 - 10),
        };
        s.db.create_api_token(&old, t0 - 100).await.unwrap();
        let (status, err) = call(&s, Method::GET, "/api/v1/me", Some("cone_pat_old"), None).await;
        assert!(status == 401 && message(&err).contains("\"old\" expired on"), "{err}");
        let (status, err) = call(&s, Method::GET, "/api/v1/me", Some("cone_pat_nonsense"), None).await;
        assert!(status == 401 && message(&err).contains("Unknown API token"), "{err}");
        let (_, created) =
            call(&s, Method::POST, "/api/v1/tokens", Some(&alice), Some(json!({ "name": "script" }))).await;
        let script = created["secret"].as_str().unwrap();
        assert!(created["token"]["expires_at"].is_null());
        assert_eq!(call(&s, Method::POST, "/api/v1/logout", Some(script), None).await.0, 200);
        assert_eq!(call(&s, Method::GET, "/api/v1/me", Some(script), None).await.0, 401);
        assert_eq!(call(&s, Method::GET, "/api/v1/me", Some(&alice), None).await.0, 200);

        let actions: Vec<String> =
            sqlx::query_scalar("SELECT action FROM audit_log WHERE subject LIKE 'token:%' ORDER BY id")
                .fetch_all(s.db.pool())
                .await
                .unwrap();
        assert_eq!(actions, ["token.create", "token.revoke", "token.create", "token.create", "token.revoke"]);
        assert_eq!(s.db.audit_chain_break().await.unwrap(), None);
    }

    async fn service_tokens_act_as_their_account_and_administrators_manage_them(db: Db) {
        let s = state(db, "admins: { users: [carol] }\n");
        let (alice, carol) = (person(&s, "alice").await, person(&s, "carol").await);
        let create = json!({ "service": "deploy-bot", "name": "ci", "expires_in_days": 90 });

        let (status, _) = call(&s, Method::POST, "/api/v1/service-tokens", Some(&alice), Some(create.clone())).await;
        assert_eq!(status, 403);
        let (status, created) =
            call(&s, Method::POST, "/api/v1/service-tokens", Some(&carol), Some(create.clone())).await;
        assert_eq!(status, 201, "{created}");
        let svc = created["secret"].as_str().unwrap().to_string();
        assert!(svc.starts_with("cone_svc_"));
        assert_eq!(created["token"]["owner"], "service:deploy-bot");
        assert_eq!(
            (created["token"]["kind"].as_str(), created["token"]["created_by"].as_str()),
            (Some("service"), Some("carol"))
        );
        let id = created["token"]["id"].as_i64().unwrap();
        // A second token for the same account.
        let (status, second) = call(&s, Method::POST, "/api/v1/service-tokens", Some(&carol), Some(create)).await;
        assert_eq!((status, &second["token"]["owner"]), (201, &json!("service:deploy-bot")));
        let (status, err) = call(
            &s,
            Method::POST,
            "/api/v1/service-tokens",
            Some(&carol),
            Some(json!({ "service": "Deploy Bot", "name": "ci" })),
        )
        .await;
        assert!(status == 400 && message(&err).contains("deploy-bot"), "{err}");

        // The service calls the API as itself, but requests no access, makes no tokens and signs in no other way.
        let (status, me) = call(&s, Method::GET, "/api/v1/me", Some(&svc), None).await;
        assert_eq!(
            (status, me["username"].as_str(), me["admin"].as_bool()),
            (200, Some("service:deploy-bot"), Some(false))
        );
        assert_eq!(call(&s, Method::GET, "/api/v1/entitlements", Some(&svc), None).await.0, 200);
        let request = json!({ "app_id": "aws", "entitlement_id": "x" });
        let (status, err) = call(&s, Method::POST, "/api/v1/tasks", Some(&svc), Some(request)).await;
        assert!(status == 403 && message(&err).contains("service account"), "{err}");
        let (status, _) = call(&s, Method::POST, "/api/v1/tokens", Some(&svc), Some(json!({ "name": "x" }))).await;
        assert_eq!(status, 403);
        assert!(s.db.set_password("service:deploy-bot", "hash").await.is_err());
        let (status, list) = call(&s, Method::GET, "/api/v1/tokens", Some(&svc), None).await;
        assert_eq!((status, list["tokens"].as_array().map(Vec::len)), (200, Some(2)));

        // Administrators see and revoke service tokens; others see none and revoke none.
        let (_, list) = call(&s, Method::GET, "/api/v1/tokens", Some(&carol), None).await;
        assert_eq!(list["tokens"].as_array().map(Vec::len), Some(2));
        let (_, list) = call(&s, Method::GET, "/api/v1/tokens", Some(&alice), None).await;
        assert_eq!(list["tokens"], json!([]));
        let path = format!("/api/v1/tokens/{id}");
        let (status, err) = call(&s, Method::DELETE, &path, Some(&alice), None).await;
        assert!(status == 404 && message(&err).contains("no API token"), "{err}");
        assert_eq!(call(&s, Method::DELETE, &path, Some(&carol), None).await.0, 200);
        let (status, err) = call(&s, Method::GET, "/api/v1/me", Some(&svc), None).await;
        assert!(status == 401 && message(&err).contains("administrator"), "{err}");
        assert_eq!(call(&s, Method::GET, "/api/v1/me", Some(second["secret"].as_str().unwrap()), None).await.0, 200);

        // An administrator revokes a person's token too.
        let (_, pat) = call(&s, Method::POST, "/api/v1/tokens", Some(&alice), Some(json!({ "name": "x" }))).await;
        let path = format!("/api/v1/tokens/{}", pat["token"]["id"]);
        assert_eq!(call(&s, Method::DELETE, &path, Some(&carol), None).await.0, 200);
        assert_eq!(call(&s, Method::GET, "/api/v1/me", Some(pat["secret"].as_str().unwrap()), None).await.0, 401);

        let actions: Vec<String> =
            sqlx::query_scalar("SELECT action FROM audit_log WHERE action <> 'login' ORDER BY id")
                .fetch_all(s.db.pool())
                .await
                .unwrap();
        assert_eq!(
            actions,
            ["service_account.create", "token.create", "token.create", "token.revoke", "token.create", "token.revoke"]
        );
    }
}
