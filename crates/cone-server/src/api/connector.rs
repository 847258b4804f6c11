//! The connector in service mode (`cone-aws serve`): the routes its hosts call, authenticated by the connector's
//! credentials (HTTP Basic, client id and secret) and named by `Cone-Connector-Host` and `Cone-Connector-Version`;
//! and the administrators' routes that issue and revoke those credentials. The hosts' routes are a protocol between
//! cone-aws and cone-server of one version: their bodies are `cone_aws::remote`'s types, described as objects.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::{ConnectInfo, FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use cone_aws::remote::{Claimed, JournalPost, PartPost};

use super::doc::{Conflict, Forbidden, Internal, NotFound, Unauthenticated};
use super::extract::Admin;
use crate::error::Error;
use crate::services::connector;
use crate::state::AppState;

/// A connector host whose credentials were accepted: its host id and client id.
pub struct ConnectorHost(String, String);

fn header_str<'a>(headers: &'a HeaderMap, name: &str) -> &'a str {
    headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default()
}

impl FromRequestParts<AppState> for ConnectorHost {
    type Rejection = Error;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Error> {
        let basic = header_str(&parts.headers, header::AUTHORIZATION.as_str())
            .strip_prefix("Basic ")
            .and_then(|b| base64::engine::general_purpose::STANDARD.decode(b).ok())
            .and_then(|b| String::from_utf8(b).ok());
        let Some((client_id, secret)) = basic.as_deref().and_then(|b| b.split_once(':')) else {
            return Err(Error::Unauthenticated(
                "A connector authenticates with HTTP Basic: its BATON_CLIENT_ID and BATON_CLIENT_SECRET.".into(),
            ));
        };
        let host = header_str(&parts.headers, "cone-connector-host");
        let version = header_str(&parts.headers, "cone-connector-version");
        let peer = parts.extensions.get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let forwarded = parts.headers.get_all("x-forwarded-for").into_iter().filter_map(|v| v.to_str().ok());
        let client = s.clients.client(peer, forwarded);
        let limited = || s.clients.check(client).is_some();
        connector::authenticate(s, client_id, secret, host, version, limited).await?;
        Ok(ConnectorHost(host.to_string(), client_id.to_string()))
    }
}

/// The next call for this host, after at most 20 s: 200 with the call (`cone_aws::remote::Claimed`), 204 with none
/// (ask again), or 503 with `Retry-After` while the server stops.
#[utoipa::path(
    post,
    path = "/api/v1/connector/calls/next",
    tag = "connector",
    security(("connector" = [])),
    responses(
        (status = 200, description = "A call to run", body = Object),
        (status = 204, description = "None within 20 s; ask again"),
        (status = 503, description = "The server is stopping; ask again after Retry-After"),
        Unauthenticated, Internal
    )
)]
pub async fn next(State(s): State<AppState>, ConnectorHost(host, client_id): ConnectorHost) -> Result<Response, Error> {
    match connector::next(&s, &host, &client_id).await? {
        Some(c) => {
            let call =
                serde_json::from_str(&c.call).map_err(|e| anyhow::anyhow!("call {} is unreadable: {e}", c.id))?;
            let lease_secs = connector::call_lease(&s);
            Ok(Json(Claimed { id: c.id, call, lease_secs }).into_response())
        }
        None if *s.stopping.borrow() => Ok((
            StatusCode::SERVICE_UNAVAILABLE,
            [(header::RETRY_AFTER, "1")],
            "This server is stopping; ask another replica, or this one again once it is back.",
        )
            .into_response()),
        None => Ok(StatusCode::NO_CONTENT.into_response()),
    }
}

/// Renews this host's lease on a call it runs.
#[utoipa::path(
    post,
    path = "/api/v1/connector/calls/{id}/lease",
    tag = "connector",
    security(("connector" = [])),
    params(("id" = i64, Path, description = "The call")),
    responses((status = 204, description = "Renewed"), Unauthenticated, Conflict, Internal)
)]
pub async fn lease(
    State(s): State<AppState>,
    ConnectorHost(host, _): ConnectorHost,
    Path(id): Path<i64>,
) -> Result<StatusCode, Error> {
    connector::renew(&s, &host, id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One part of a sync this host runs (`cone_aws::remote::PartPost`), numbered by the host; renews the lease.
#[utoipa::path(
    post,
    path = "/api/v1/connector/calls/{id}/parts",
    tag = "connector",
    security(("connector" = [])),
    params(("id" = i64, Path, description = "The sync's call")),
    request_body = Object,
    responses((status = 204, description = "Stored"), Unauthenticated, Conflict, Internal)
)]
pub async fn part(
    State(s): State<AppState>,
    ConnectorHost(host, _): ConnectorHost,
    Path(id): Path<i64>,
    Json(post): Json<PartPost>,
) -> Result<StatusCode, Error> {
    connector::part(&s, &host, id, &post).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Reads or writes the journal of a sync this host runs (`cone_aws::remote::JournalPost`), kept here so that a sync
/// left unfinished resumes on any connector: a recall answers `[body, recorded_at]` or null, a record null.
#[utoipa::path(
    post,
    path = "/api/v1/connector/calls/{id}/journal",
    tag = "connector",
    security(("connector" = [])),
    params(("id" = i64, Path, description = "The sync's call")),
    request_body = Object,
    responses((status = 200, description = "What was recorded for the unit, or null", body = Object), Unauthenticated, Conflict, Internal)
)]
pub async fn journal(
    State(s): State<AppState>,
    ConnectorHost(host, _): ConnectorHost,
    Path(id): Path<i64>,
    Json(post): Json<JournalPost>,
) -> Result<Json<Option<(String, i64)>>, Error> {
    Ok(Json(connector::journal(&s, &host, id, &post).await?))
}

/// The answer of a call this host ran (`cone_aws::remote::Answer`: `{"Ok": value}` or `{"Err": failure}`).
#[utoipa::path(
    post,
    path = "/api/v1/connector/calls/{id}/answer",
    tag = "connector",
    security(("connector" = [])),
    params(("id" = i64, Path, description = "The call")),
    request_body = Object,
    responses((status = 204, description = "Recorded"), Unauthenticated, Conflict, Internal)
)]
pub async fn answer(
    State(s): State<AppState>,
    ConnectorHost(host, _): ConnectorHost,
    Path(id): Path<i64>,
    Json(answer): Json<cone_aws::remote::Answer>,
) -> Result<StatusCode, Error> {
    connector::answer(&s, &host, id, &answer).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Issues new credentials for the connector in service mode and revokes those before (connectors using them are
/// refused from now on). The secret is in this answer only. Administrators only.
#[utoipa::path(
    post,
    path = "/api/v1/connectors/credentials",
    tag = "operations",
    responses((status = 201, description = "The new client id and secret", body = cone_api::ConnectorCredentials), Unauthenticated, Forbidden, Internal)
)]
pub async fn rotate_credentials(
    State(s): State<AppState>,
    Admin(caller): Admin,
) -> Result<(StatusCode, Json<cone_api::ConnectorCredentials>), Error> {
    Ok((StatusCode::CREATED, Json(connector::rotate(&s, &caller.user).await?)))
}

/// Revokes the connector's credentials: no connector may connect until new ones are issued. Administrators only.
#[utoipa::path(
    delete,
    path = "/api/v1/connectors/credentials",
    tag = "operations",
    responses((status = 204, description = "Revoked"), Unauthenticated, Forbidden, NotFound, Internal)
)]
pub async fn revoke_credentials(State(s): State<AppState>, Admin(caller): Admin) -> Result<StatusCode, Error> {
    connector::revoke(&s, &caller.user).await?;
    Ok(StatusCode::NO_CONTENT)
}
