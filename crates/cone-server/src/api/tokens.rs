//! Personal and service API tokens (see `services::tokens`), and signing someone out everywhere.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cone_api::{ApiToken, CreateServiceToken, CreateToken, NewToken, SignedOutUser, TokenList};

use super::doc::{BadRequest, Conflict, Forbidden, Internal, NotFound, Unauthenticated, UnsupportedMediaType};
use super::extract::{Admin, ApiJson, ApiPath, ApiQuery, CurrentUser};
use crate::error::Error;
use crate::services::auth::{self, Caller};
use crate::services::tokens;
use crate::state::AppState;

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
) -> Result<(StatusCode, Json<NewToken>), Error> {
    let new = tokens::create_personal(&s, &caller, &req.name, req.expires_in_days).await?;
    Ok((StatusCode::CREATED, Json(new)))
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
) -> Result<(StatusCode, Json<NewToken>), Error> {
    let new = tokens::create_service(&s, &caller, &req.service, &req.name, req.expires_in_days).await?;
    Ok((StatusCode::CREATED, Json(new)))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Every unrevoked token of everyone, personal ones too (administrators only).
    #[serde(default)]
    all: bool,
}

/// The caller's unrevoked API tokens, and for administrators every service token (every token with `all`); never
/// their secrets.
#[utoipa::path(
    get,
    path = "/api/v1/tokens",
    tag = "tokens",
    params(ListQuery),
    responses(
        (status = 200, description = "The tokens, oldest first", body = TokenList),
        BadRequest, Unauthenticated, Forbidden, Internal
    )
)]
pub async fn list_tokens(
    State(s): State<AppState>,
    caller: Caller,
    ApiQuery(q): ApiQuery<ListQuery>,
) -> Result<Json<TokenList>, Error> {
    Ok(Json(tokens::list(&s, &caller, q.all).await?))
}

#[derive(serde::Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Path)]
pub struct Username {
    /// The person's user name (or a service account's `service:<name>`).
    username: String,
}

/// Signs someone out everywhere (administrators): their `cone login` sessions, console sessions and API tokens
/// stop working at once; their grants are left as they are.
#[utoipa::path(
    post,
    path = "/api/v1/users/{username}/sign-out",
    tag = "tokens",
    params(Username),
    responses(
        (status = 200, description = "What was ended", body = SignedOutUser),
        BadRequest, Unauthenticated, Forbidden, NotFound, Internal
    )
)]
pub async fn sign_out_user(
    State(s): State<AppState>,
    CurrentUser(u): CurrentUser,
    ApiPath(Username { username }): ApiPath<Username>,
) -> Result<Json<SignedOutUser>, Error> {
    Ok(Json(auth::sign_out_user(&s, &u, &username).await?))
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
) -> Result<Json<ApiToken>, Error> {
    Ok(Json(tokens::revoke(&s, &caller, id).await?))
}

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use serde_json::{Value, json};

    use cone_api::TOKEN_KIND_PERSONAL;

    use crate::server::testing::{call, person, state};
    use crate::services::auth::secret_hash;
    use crate::store::{Db, NewApiToken, TokenOwner};

    crate::store::testing::on_both_backends!(
        a_token_stops_working_when_the_clock_passes_its_end,
        personal_tokens_work_until_revoked_or_expired,
        service_tokens_act_as_their_account_and_administrators_manage_them,
    );

    fn message(v: &Value) -> &str {
        v["message"].as_str().unwrap_or_default()
    }

    /// The server reads the time from its clock alone: moved past a token's end, the token is expired.
    async fn a_token_stops_working_when_the_clock_passes_its_end(db: Db) {
        let s = state(db, "");
        let alice = person(&s, "alice").await;
        let body = json!({ "name": "day", "expires_in_days": 1 });
        let (_, created) = call(&s, Method::POST, "/api/v1/tokens", Some(&alice), Some(body)).await;
        let pat = created["secret"].as_str().unwrap().to_string();
        assert_eq!(call(&s, Method::GET, "/api/v1/me", Some(&pat), None).await.0, 200);
        s.clock.advance(86_400 + 1);
        let (status, err) = call(&s, Method::GET, "/api/v1/me", Some(&pat), None).await;
        assert!(status == 401 && message(&err).contains("\"day\" expired on"), "{err}");
    }

    async fn personal_tokens_work_until_revoked_or_expired(db: Db) {
        let s = state(db, "admins: { users: [carol] }\n");
        let alice = person(&s, "alice").await;
        let t0 = s.now();

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
        let reserved = json!({ "service": "review-schedule", "name": "ci" });
        let (status, err) = call(&s, Method::POST, "/api/v1/service-tokens", Some(&carol), Some(reserved)).await;
        assert!(status == 400 && message(&err).contains("Cone's own"), "{err}");

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
