//! Wire shapes of the three error families the emulator answers with: SSO OIDC, SSO portal, and the
//! emulator's own control endpoints.

use axum::Json;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

/// Clients (botocore, smithy-rs) take the error code from this header before looking at the body.
pub const ERROR_TYPE_HEADER: &str = "x-amzn-ErrorType";

/// The SSO OIDC exceptions the emulator can raise.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OidcErrorKind {
    AccessDenied,
    AuthorizationPending,
    ExpiredToken,
    InvalidClient,
    InvalidClientMetadata,
    InvalidGrant,
    InvalidRedirectUri,
    InvalidRequest,
    SlowDown,
    /// Not in the SSO OIDC model; injected through `/_emu/throttle` so clients' retries can be tested.
    TooManyRequests,
    UnsupportedGrantType,
}

impl OidcErrorKind {
    pub fn exception(self) -> &'static str {
        match self {
            Self::AccessDenied => "AccessDeniedException",
            Self::AuthorizationPending => "AuthorizationPendingException",
            Self::ExpiredToken => "ExpiredTokenException",
            Self::InvalidClient => "InvalidClientException",
            Self::InvalidClientMetadata => "InvalidClientMetadataException",
            Self::InvalidGrant => "InvalidGrantException",
            Self::InvalidRedirectUri => "InvalidRedirectUriException",
            Self::InvalidRequest => "InvalidRequestException",
            Self::SlowDown => "SlowDownException",
            Self::TooManyRequests => "TooManyRequestsException",
            Self::UnsupportedGrantType => "UnsupportedGrantTypeException",
        }
    }

    /// The OAuth `error` string of RFC 6749 / RFC 8628 that the service puts in the body.
    pub fn oauth_error(self) -> &'static str {
        match self {
            Self::AccessDenied => "access_denied",
            Self::AuthorizationPending => "authorization_pending",
            Self::ExpiredToken => "expired_token",
            Self::InvalidClient => "invalid_client",
            Self::InvalidClientMetadata => "invalid_client_metadata",
            Self::InvalidGrant => "invalid_grant",
            Self::InvalidRedirectUri => "invalid_redirect_uri",
            Self::InvalidRequest => "invalid_request",
            Self::SlowDown => "slow_down",
            // No OAuth error code exists for throttling; clients go by the status and `x-amzn-ErrorType`.
            Self::TooManyRequests => "too_many_requests",
            Self::UnsupportedGrantType => "unsupported_grant_type",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidClient => StatusCode::UNAUTHORIZED,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            _ => StatusCode::BAD_REQUEST,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OidcError {
    pub kind: OidcErrorKind,
    pub description: String,
}

impl OidcError {
    pub fn new(kind: OidcErrorKind, description: impl Into<String>) -> Self {
        Self { kind, description: description.into() }
    }
}

impl IntoResponse for OidcError {
    fn into_response(self) -> Response {
        // The real service sends no `message`; adding it makes botocore print the description instead of
        // an empty string after the exception name.
        let body = json!({
            "error": self.kind.oauth_error(),
            "error_description": self.description,
            "message": self.description,
        });
        with_error_type(self.kind.status(), self.kind.exception(), body)
    }
}

/// The SSO portal errors the emulator can raise (`Forbidden` is not in the service model, but the real
/// service answers it for unassigned roles).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortalErrorKind {
    InvalidRequest,
    Unauthorized,
    Forbidden,
    TooManyRequests,
    InternalServer,
}

impl PortalErrorKind {
    pub fn exception(self) -> &'static str {
        match self {
            Self::InvalidRequest => "InvalidRequestException",
            Self::Unauthorized => "UnauthorizedException",
            Self::Forbidden => "ForbiddenException",
            Self::TooManyRequests => "TooManyRequestsException",
            Self::InternalServer => "InternalServerException",
        }
    }

    pub fn status(self) -> StatusCode {
        match self {
            Self::InvalidRequest => StatusCode::BAD_REQUEST,
            Self::Unauthorized => StatusCode::UNAUTHORIZED,
            Self::Forbidden => StatusCode::FORBIDDEN,
            Self::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            Self::InternalServer => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortalError {
    pub kind: PortalErrorKind,
    pub message: String,
}

impl PortalError {
    pub fn new(kind: PortalErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into() }
    }

    /// The exact text the real service uses for an unknown, expired or logged-out access token.
    pub fn invalid_session() -> Self {
        Self::new(PortalErrorKind::Unauthorized, "Session token not found or invalid")
    }

    /// The exact text the real service uses when the role is not assigned to the user.
    pub fn no_access() -> Self {
        Self::new(PortalErrorKind::Forbidden, "No access")
    }

    /// moto could not be read; the message carries the cause so a failing test shows it.
    pub fn backend(err: anyhow::Error) -> Self {
        Self::new(
            PortalErrorKind::InternalServer,
            format!("the emulator could not read Identity Center state from moto: {err:#}"),
        )
    }
}

impl IntoResponse for PortalError {
    fn into_response(self) -> Response {
        let body = json!({
            "message": self.message,
            "__type": format!("com.amazonaws.switchboard.portal#{}", self.kind.exception()),
        });
        with_error_type(self.kind.status(), self.kind.exception(), body)
    }
}

/// A failed call to a `/_emu/` control endpoint: plain JSON, meant for test authors.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ControlError {
    pub status: StatusCode,
    pub message: String,
}

impl ControlError {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self { status, message: message.into() }
    }
}

impl IntoResponse for ControlError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

fn with_error_type(status: StatusCode, exception: &'static str, body: serde_json::Value) -> Response {
    let mut response = (status, Json(body)).into_response();
    response.headers_mut().insert(ERROR_TYPE_HEADER, HeaderValue::from_static(exception));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks the status and the `x-amzn-ErrorType` header of an error response; returns its JSON body.
    async fn checked_body(response: Response, status: StatusCode, error_type: Option<&str>) -> serde_json::Value {
        assert_eq!(response.status(), status);
        assert_eq!(response.headers().get(ERROR_TYPE_HEADER).map(|v| v.to_str().expect("ascii header")), error_type);
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 20).await.expect("body");
        serde_json::from_slice(&bytes).expect("json body")
    }

    #[tokio::test]
    async fn oidc_pending_error_has_header_and_oauth_body() {
        let response =
            OidcError::new(OidcErrorKind::AuthorizationPending, "Authorization is still pending").into_response();
        let body = checked_body(response, StatusCode::BAD_REQUEST, Some("AuthorizationPendingException")).await;
        assert_eq!(
            body,
            json!({
                "error": "authorization_pending",
                "error_description": "Authorization is still pending",
                "message": "Authorization is still pending",
            })
        );
    }

    #[tokio::test]
    async fn oidc_invalid_client_is_401() {
        let body = checked_body(
            OidcError::new(OidcErrorKind::InvalidClient, "bad client").into_response(),
            StatusCode::UNAUTHORIZED,
            Some("InvalidClientException"),
        )
        .await;
        assert_eq!(body["error"], "invalid_client");
    }

    #[test]
    fn every_oidc_kind_except_invalid_client_is_400() {
        use OidcErrorKind::*;
        for kind in [
            AccessDenied,
            AuthorizationPending,
            ExpiredToken,
            InvalidClientMetadata,
            InvalidGrant,
            InvalidRedirectUri,
            InvalidRequest,
            SlowDown,
            UnsupportedGrantType,
        ] {
            assert_eq!(kind.status(), StatusCode::BAD_REQUEST, "{kind:?}");
            assert!(kind.exception().ends_with("Exception"));
        }
    }

    #[tokio::test]
    async fn portal_unauthorized_matches_the_real_service() {
        let body = checked_body(
            PortalError::invalid_session().into_response(),
            StatusCode::UNAUTHORIZED,
            Some("UnauthorizedException"),
        )
        .await;
        assert_eq!(
            body,
            json!({
                "message": "Session token not found or invalid",
                "__type": "com.amazonaws.switchboard.portal#UnauthorizedException",
            })
        );
    }

    #[tokio::test]
    async fn portal_forbidden_is_403_no_access() {
        let body =
            checked_body(PortalError::no_access().into_response(), StatusCode::FORBIDDEN, Some("ForbiddenException"))
                .await;
        assert_eq!(body["message"], "No access");
        assert_eq!(body["__type"], "com.amazonaws.switchboard.portal#ForbiddenException");
    }

    #[tokio::test]
    async fn throttling_is_429_in_both_families() {
        let body = checked_body(
            OidcError::new(OidcErrorKind::TooManyRequests, "Rate exceeded").into_response(),
            StatusCode::TOO_MANY_REQUESTS,
            Some("TooManyRequestsException"),
        )
        .await;
        assert_eq!(body["error_description"], "Rate exceeded");
        let body = checked_body(
            PortalError::new(PortalErrorKind::TooManyRequests, "Rate exceeded").into_response(),
            StatusCode::TOO_MANY_REQUESTS,
            Some("TooManyRequestsException"),
        )
        .await;
        assert_eq!(body["__type"], "com.amazonaws.switchboard.portal#TooManyRequestsException");
    }

    #[tokio::test]
    async fn control_error_is_plain_json() {
        let body = checked_body(
            ControlError::new(StatusCode::NOT_FOUND, "no such user").into_response(),
            StatusCode::NOT_FOUND,
            None,
        )
        .await;
        assert_eq!(body, json!({"error": "no such user"}));
    }
}
