//! The one error of the services, the API and the console: what went wrong, in words that say what to do next,
//! and its kind, which chooses the HTTP status and the stable code (`cone_api::codes`) in one place,
//! [`Error::status_and_code`].

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cone_api::{ApiError, FieldError, codes};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The request asks for something the server refuses; `fields` names the fields at fault, if any.
    #[error("{message}")]
    Invalid { message: String, fields: Vec<FieldError> },
    #[error("The request form has invalid fields; correct them and request again.")]
    InvalidForm(Vec<FieldError>),
    #[error("{0}")]
    FormRequired(String),
    #[error("{0}")]
    InvalidConfig(String),
    #[error("{0}")]
    Unauthenticated(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("{0}")]
    NoEmergencyAccess(String),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    MethodNotAllowed(String),
    /// The task (or other object) is not in a state where this applies, or changed a moment ago.
    #[error("{0}")]
    WrongState(String),
    #[error(
        "A pending request already exists for this entitlement (task {task_id}); check it with `cone task get {task_id}`."
    )]
    PendingRequestExists { task_id: i64 },
    #[error("{0}")]
    ExtensionRefused(String),
    #[error("{0}")]
    HeldThroughGroup(String),
    #[error("{0}")]
    StaleVersion(String),
    /// A name the caller chose belongs to something else.
    #[error("{0}")]
    NameTaken(String),
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// A limit on something many clients share was reached.
    #[error("{0}")]
    TooMany(String),
    /// Anything else: logged with its cause, answered without it.
    #[error("The server hit an internal error; its log has the details. Try again shortly.")]
    Internal(#[from] anyhow::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn invalid(message: impl Into<String>) -> Error {
        Error::Invalid { message: message.into(), fields: Vec::new() }
    }

    /// Every kind's status and code, chosen here and nowhere else.
    pub fn status_and_code(&self) -> (StatusCode, &'static str) {
        match self {
            Error::Invalid { .. } => (StatusCode::BAD_REQUEST, codes::INVALID_REQUEST),
            Error::InvalidForm(_) => (StatusCode::BAD_REQUEST, codes::INVALID_FORM),
            Error::FormRequired(_) => (StatusCode::BAD_REQUEST, codes::FORM_REQUIRED),
            Error::InvalidConfig(_) => (StatusCode::BAD_REQUEST, codes::INVALID_CONFIG),
            Error::Unauthenticated(_) => (StatusCode::UNAUTHORIZED, codes::UNAUTHENTICATED),
            Error::Forbidden(_) => (StatusCode::FORBIDDEN, codes::FORBIDDEN),
            Error::NoEmergencyAccess(_) => (StatusCode::FORBIDDEN, codes::NO_EMERGENCY_ACCESS),
            Error::NotFound(_) => (StatusCode::NOT_FOUND, codes::NOT_FOUND),
            Error::MethodNotAllowed(_) => (StatusCode::METHOD_NOT_ALLOWED, codes::INVALID_REQUEST),
            Error::WrongState(_) => (StatusCode::CONFLICT, codes::WRONG_STATE),
            Error::PendingRequestExists { .. } => (StatusCode::CONFLICT, codes::PENDING_REQUEST_EXISTS),
            Error::ExtensionRefused(_) => (StatusCode::CONFLICT, codes::EXTENSION_REFUSED),
            Error::HeldThroughGroup(_) => (StatusCode::CONFLICT, codes::HELD_THROUGH_GROUP),
            Error::StaleVersion(_) => (StatusCode::CONFLICT, codes::STALE_VERSION),
            Error::NameTaken(_) => (StatusCode::CONFLICT, codes::NAME_TAKEN),
            Error::UnsupportedMediaType(_) => (StatusCode::UNSUPPORTED_MEDIA_TYPE, codes::INVALID_REQUEST),
            Error::TooMany(_) => (StatusCode::TOO_MANY_REQUESTS, codes::TOO_MANY),
            Error::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, codes::INTERNAL),
        }
    }

    /// The body every client understands. An internal error's cause is logged here and never sent.
    pub fn to_api(&self) -> ApiError {
        if let Error::Internal(e) = self {
            tracing::error!("request failed: {e:#}");
        }
        let (_, code) = self.status_and_code();
        let fields = match self {
            Error::Invalid { fields, .. } | Error::InvalidForm(fields) => fields.clone(),
            _ => Vec::new(),
        };
        let task_id = match self {
            Error::PendingRequestExists { task_id } => Some(*task_id),
            _ => None,
        };
        ApiError { code: code.into(), message: self.to_string(), task_id, fields }
    }
}

impl From<sqlx::Error> for Error {
    fn from(e: sqlx::Error) -> Error {
        Error::Internal(e.into())
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        (self.status_and_code().0, Json(self.to_api())).into_response()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_has_one_status_and_code_and_internals_stay_inside() {
        let taken = Error::NameTaken("x".into());
        assert_eq!(taken.status_and_code(), (StatusCode::CONFLICT, codes::NAME_TAKEN));
        let wrong = Error::WrongState("Task 1 is denied.".into()).to_api();
        assert_eq!((wrong.code.as_str(), wrong.message.as_str()), (codes::WRONG_STATE, "Task 1 is denied."));
        let pending = Error::PendingRequestExists { task_id: 7 }.to_api();
        assert_eq!((pending.task_id, pending.code.as_str()), (Some(7), codes::PENDING_REQUEST_EXISTS));
        assert!(pending.message.contains("cone task get 7"));
        let internal = Error::from(anyhow::anyhow!("password=hunter2 at db.example"));
        assert_eq!(internal.status_and_code().0, StatusCode::INTERNAL_SERVER_ERROR);
        assert!(!internal.to_api().message.contains("hunter2"), "the cause is logged, never answered");
    }
}
