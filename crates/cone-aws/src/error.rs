//! The connector's error type and the mapping from AWS SDK errors onto it.

use std::time::Duration;

use aws_sdk_ssoadmin::config::http::HttpResponse;
use aws_sdk_ssoadmin::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};

use crate::ratelimit::ApiFamily;

/// What went wrong talking to AWS. [`ConnectorError::is_retryable`] tells the caller whether trying
/// the same call again later can help.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConnectorError {
    /// What the sync read could not be stored (see [`crate::spool`]).
    #[error(
        "cannot store what the sync read: {0}. Check the database or disk the sync writes to, then sync again \
         (it resumes from its journal)"
    )]
    Store(#[source] crate::spool::SinkError),

    /// No credentials could be found or resolved.
    #[error(
        "no usable AWS credentials: {message}. Provide them the usual way \
         (AWS_PROFILE, AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, an instance or task role, or `aws sso login`)"
    )]
    NoCredentials { message: String },

    /// The connector's settings (flags or `BATON_*` environment variables) are unusable.
    #[error("invalid AWS connector settings (flags or BATON_* environment variables): {message}")]
    InvalidSettings { message: String },

    /// The ambient credentials could not assume the configured role.
    #[error(
        "could not assume {role_arn}{external}: {message}. Check that the role's trust policy names the identity          Cone runs as (`cone-aws trust-policy` prints one){external_hint}",
        external = if *.with_external_id { " with the configured External ID" } else { "" },
        external_hint = if *.with_external_id {
            " and requires this same External ID"
        } else {
            ", and set BATON_EXTERNAL_ID if the trust policy requires an External ID"
        }
    )]
    AssumeRoleFailed { role_arn: String, with_external_id: bool, message: String },

    /// AWS rejected the credentials themselves (unknown key, bad signature, expired token).
    #[error(
        "AWS rejected the credentials used for {operation} ({code}): {message}. \
         Refresh or replace the credentials Cone runs with"
    )]
    InvalidCredentials { operation: &'static str, code: String, message: String },

    /// The credentials are valid but lack an IAM permission.
    #[error(
        "{operation} was denied ({code}): the identity Cone runs as needs the IAM action `{action}` \
         ({where_}). AWS said: {message}",
        where_ = where_allowed(action)
    )]
    AccessDenied { operation: &'static str, action: String, code: String, message: String },

    /// AWS throttled the call. Retryable.
    #[error("{operation} was throttled by AWS ({code}); retry later with backoff. AWS said: {message}")]
    Throttled { operation: &'static str, code: String, message: String },

    /// Another change to the same resource is in progress (ConflictException, ConcurrentModificationException,
    /// IAM's ConcurrentModification). Retryable.
    #[error(
        "{operation} conflicted with another change in progress ({code}); retry shortly. \
         If it keeps happening, the target account may be suspended. AWS said: {message}"
    )]
    Conflict { operation: &'static str, code: String, message: String },

    /// AWS failed on its side (HTTP 5xx). Retryable.
    #[error("AWS failed to handle {operation} (HTTP {status}, {code}); retry later. AWS said: {message}")]
    ServerError { operation: &'static str, status: u16, code: String, message: String },

    /// The request did not get an answer (connection, DNS, timeout). Retryable.
    #[error(
        "could not get an answer from AWS for {operation}: {message}. \
         Check network access and the endpoint (AWS_ENDPOINT_URL, if set)"
    )]
    Transport { operation: &'static str, message: String },

    /// A named resource does not exist.
    #[error("{operation}: not found ({code}). AWS said: {message}")]
    NotFound { operation: &'static str, code: String, message: String },

    /// A provisioning request names a user or group that does not exist.
    #[error(
        "{operation}: {what} does not exist. Check the name or id (`cone-aws sync` and `cone-aws list` show what \
         exists) and run it again. AWS said: {message}"
    )]
    NoSuchPrincipal { operation: &'static str, what: String, message: String },

    /// A user of the name Cone would give a person (in IAM, or in Identity Center) exists and Cone did not create
    /// it. `user` says which ("IAM user `carol`"), `mark` what it lacks, `next` what to do.
    #[error(
        "{user} exists and Cone did not create it (it lacks {mark}); Cone never uses or removes a user it did not \
         create. {next}"
    )]
    NotCreatedByCone { user: String, mark: String, next: &'static str },

    /// The account does not belong to an AWS Organization (or is not its management account).
    #[error(
        "{operation}: this account is not part of an AWS Organization ({code}). Cone needs the credentials \
         of the organization's management account (or a delegated administrator). AWS said: {message}"
    )]
    NoOrganization { operation: &'static str, code: String, message: String },

    /// Any other refusal (validation errors and the like). Not retryable as is.
    #[error("AWS rejected {operation} ({code}{http}): {message}", http = fmt_status(.status))]
    Rejected { operation: &'static str, status: Option<u16>, code: String, message: String },

    /// No IAM Identity Center instance is visible in the configured region.
    #[error(
        "no IAM Identity Center instance found in region {region}: enable IAM Identity Center, or configure \
         Cone with the region where it is enabled (and check that `sso:ListInstances` is allowed)"
    )]
    NoInstance { region: String },

    /// IAM Identity Center reported the asynchronous request as FAILED.
    #[error("IAM Identity Center reports {operation} (request {request_id}) as FAILED: {reason}")]
    OperationFailed { operation: &'static str, request_id: String, reason: String },

    /// The asynchronous request was still in progress when Cone stopped waiting. Retryable.
    #[error(
        "{operation} (request {request_id}) was still in progress after {waited:?}; it may still finish. \
         Check the assignment later or retry (the connector skips work that is already done)"
    )]
    Timeout { operation: &'static str, request_id: String, waited: Duration },

    /// A transient failure (throttling, a conflict, 5xx, no answer) lasted through every retry. Retryable
    /// later, not at once: the connector has just spent its backoff on it.
    #[error(
        "{operation} failed {attempts} times in {waited:.1?} and the connector stopped retrying. {advice} \
         The last answer: {last}",
        advice = give_up_advice(last, rate_setting)
    )]
    GaveUp {
        operation: &'static str,
        attempts: u32,
        waited: Duration,
        /// The flag and variable that set the pace of the call's API family.
        rate_setting: &'static str,
        last: Box<ConnectorError>,
    },

    /// A list call handed back a NextToken it had already handed back, which would page forever. The listing is
    /// incomplete, so nothing built from it may pass for complete.
    #[error(
        "{operation} returned the page token {token:?} a second time; stopped paging rather than loop forever or \
         report a partial listing as complete. Run it again; if it keeps happening, the service is serving a \
         broken listing (moto does this when it holds duplicate records)"
    )]
    PaginationLoop { operation: &'static str, token: String },

    /// A call run by a connector in service mode (`cone-aws serve`) failed there, or did not reach one; the message
    /// is the connector's own.
    #[error("{message}")]
    Remote { message: String, retryable: bool, not_created_by_cone: bool },

    /// A response lacked a field the connector relies on.
    #[error("{operation} returned a response without {field}; the API may have changed or the endpoint is not AWS")]
    MalformedResponse { operation: &'static str, field: &'static str },
}

/// Where an action must be allowed, and how to get the policy that allows it.
fn where_allowed(action: &str) -> &'static str {
    if action.starts_with("iam:") {
        "in the account whose IAM is read or changed; `cone-aws policy` with `--iam`, `--secrets` and \
         `--provisioning` as used prints what those need"
    } else {
        "for IAM Identity Center, in the management or delegated administrator account"
    }
}

/// What to do about a transient failure that outlasted the retries, by what it was.
fn give_up_advice(last: &ConnectorError, rate_setting: &str) -> String {
    match last {
        ConnectorError::Throttled { .. } => format!(
            "AWS kept throttling it: lower the connector's rate for this API ({rate_setting}) or find what else \
             uses the same AWS quota, then run it again."
        ),
        ConnectorError::Conflict { .. } => "Another change to the same resource kept it from going through: run \
             it again once that change is done (it never ends if the target account is suspended)."
            .into(),
        ConnectorError::ServerError { .. } => {
            "AWS kept failing on its side: run it again later, and check the AWS Health Dashboard if it persists."
                .into()
        }
        _ => "Run it again later.".into(),
    }
}

fn fmt_status(status: &Option<u16>) -> String {
    status.map(|s| format!(", HTTP {s}")).unwrap_or_default()
}

impl ConnectorError {
    /// True when the same call may succeed if tried again later (throttling, conflicts, 5xx, transport
    /// failures, retries that ran out on those, and waiting that timed out before AWS finished).
    pub fn is_retryable(&self) -> bool {
        self.is_transient()
            || matches!(
                self,
                ConnectorError::Timeout { .. }
                    | ConnectorError::GaveUp { .. }
                    | ConnectorError::Remote { retryable: true, .. }
            )
    }

    /// The IAM user a person would get exists, and Cone did not create it.
    pub fn is_not_created_by_cone(&self) -> bool {
        matches!(
            self,
            ConnectorError::NotCreatedByCone { .. } | ConnectorError::Remote { not_created_by_cone: true, .. }
        )
    }

    /// Failures worth retrying at once with backoff inside the connector.
    pub(crate) fn is_transient(&self) -> bool {
        matches!(
            self,
            ConnectorError::Throttled { .. }
                | ConnectorError::Conflict { .. }
                | ConnectorError::ServerError { .. }
                | ConnectorError::Transport { .. }
        )
    }

    pub(crate) fn is_not_found(&self) -> bool {
        matches!(self, ConnectorError::NotFound { .. })
    }

    /// The endpoint does not implement the call. AWS answers an unknown action with `UnknownOperationException`
    /// (JSON protocols) or `InvalidAction` (IAM); moto 5.2.1 answers an HTTP 500 whose body is an HTML page,
    /// so no error code. AWS's own 5xx answers carry a code, and stay transient.
    pub(crate) fn is_not_implemented(&self) -> bool {
        match self {
            ConnectorError::ServerError { status: 500 | 501, code, .. } => code == "Unknown",
            ConnectorError::Rejected { code, .. } => {
                matches!(code.as_str(), "UnknownOperationException" | "InvalidAction" | "NotImplemented")
            }
            _ => false,
        }
    }

    /// IAM's answer to creating what exists (`EntityAlreadyExists`).
    pub(crate) fn is_already_exists(&self) -> bool {
        self.is_rejected_as("EntityAlreadyExists")
    }

    /// AWS refused the call with this error code.
    pub(crate) fn is_rejected_as(&self, wanted: &str) -> bool {
        matches!(self, ConnectorError::Rejected { code, .. } if code == wanted)
    }
}

/// One AWS API call: its name (for messages) and the IAM service prefix of the action that allows it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op {
    pub name: &'static str,
    pub service: &'static str,
}

impl Op {
    pub const fn sso(name: &'static str) -> Op {
        Op { name, service: "sso" }
    }
    pub const fn identitystore(name: &'static str) -> Op {
        Op { name, service: "identitystore" }
    }
    pub const fn organizations(name: &'static str) -> Op {
        Op { name, service: "organizations" }
    }
    pub const fn iam(name: &'static str) -> Op {
        Op { name, service: "iam" }
    }
    pub const fn sts(name: &'static str) -> Op {
        Op { name, service: "sts" }
    }
    /// The rate-limit bucket this call draws from.
    pub fn family(&self) -> ApiFamily {
        match self.service {
            "organizations" => ApiFamily::Organizations,
            "iam" => ApiFamily::Iam,
            "sts" => ApiFamily::Sts,
            _ => ApiFamily::IdentityCenter,
        }
    }

    pub fn action(&self) -> String {
        format!("{}:{}", self.service, self.name)
    }

    /// Maps an SDK error of this call onto a [`ConnectorError`].
    pub fn err<E>(&self, err: SdkError<E, HttpResponse>) -> ConnectorError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        let operation = self.name;
        match &err {
            SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => {
                let message = DisplayErrorContext(&err).to_string();
                if is_credentials_failure(&message) {
                    ConnectorError::NoCredentials { message }
                } else {
                    ConnectorError::Transport { operation, message }
                }
            }
            SdkError::ConstructionFailure(_) => {
                let message = DisplayErrorContext(&err).to_string();
                if is_credentials_failure(&message) {
                    ConnectorError::NoCredentials { message }
                } else {
                    ConnectorError::Rejected { operation, status: None, code: "ConstructionFailure".into(), message }
                }
            }
            _ => {
                let status = err.raw_response().map(|r| r.status().as_u16());
                let code = err.code().unwrap_or("Unknown").to_string();
                let message =
                    err.message().map(str::to_string).unwrap_or_else(|| DisplayErrorContext(&err).to_string());
                self.classify(status, code, message)
            }
        }
    }

    /// Maps an error code and HTTP status onto a [`ConnectorError`] (split out so it can be tested without AWS).
    pub(crate) fn classify(&self, status: Option<u16>, code: String, message: String) -> ConnectorError {
        let operation = self.name;
        let c = code.as_str();
        if matches!(
            c,
            "ThrottlingException"
                | "Throttling"
                | "TooManyRequestsException"
                | "TooManyRequests"
                | "RequestLimitExceeded"
                | "RequestThrottled"
                | "RequestThrottledException"
                | "SlowDown"
        ) || status == Some(429)
        {
            ConnectorError::Throttled { operation, code, message }
        } else if matches!(
            c,
            "UnrecognizedClientException"
                | "InvalidClientTokenId"
                | "ExpiredToken"
                | "ExpiredTokenException"
                | "InvalidSignatureException"
                | "SignatureDoesNotMatch"
                | "IncompleteSignature"
                | "MissingAuthenticationToken"
        ) {
            ConnectorError::InvalidCredentials { operation, code, message }
        } else if matches!(c, "AccessDeniedException" | "AccessDenied" | "UnauthorizedOperation")
            || (status == Some(403) && c == "Unknown")
        {
            ConnectorError::AccessDenied { operation, action: self.action(), code, message }
        } else if matches!(c, "ConflictException" | "ConcurrentModificationException" | "ConcurrentModification") {
            ConnectorError::Conflict { operation, code, message }
        } else if c == "AWSOrganizationsNotInUseException" {
            ConnectorError::NoOrganization { operation, code, message }
        } else if status.is_some_and(|s| s >= 500)
            || matches!(c, "InternalServerException" | "InternalFailure" | "ServiceUnavailable" | "ServiceException")
        {
            ConnectorError::ServerError { operation, status: status.unwrap_or(500), code, message }
        } else if c.ends_with("NotFoundException")
            || matches!(c, "ResourceNotFound" | "NoSuchEntity")
            || status == Some(404)
        {
            ConnectorError::NotFound { operation, code, message }
        } else {
            ConnectorError::Rejected { operation, status, code, message }
        }
    }
}

/// `e` and each error beneath it, as `a: b: c`. The SDK's `DisplayErrorContext` adds the debug form of the whole
/// error, raw HTTP response included, which does not belong in a reason shown to people.
pub(crate) fn causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut next = e.source();
    while let Some(cause) = next {
        let part = cause.to_string();
        // Layers often repeat what the one above said.
        if !text.ends_with(&part) {
            text = format!("{text}: {part}");
        }
        next = cause.source();
    }
    // Messages around it end their own sentence.
    text.trim_end_matches('.').to_string()
}

fn is_credentials_failure(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    m.contains("no credentials") || m.contains("credentials provider") || m.contains("failed to load credentials")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_failure_reads_as_its_causes_without_the_debug_dump() {
        // As the credential chain reports IMDS refusing a token: each layer's words once, and nothing else.
        let refused = std::io::Error::other("request forbidden: IMDS is disabled");
        let token = std::io::Error::other(format!("failed to load IMDS session token: {refused}"));
        let chained = aws_credential_types::provider::error::CredentialsError::provider_error(token);
        let said = causes(&chained);
        assert_eq!(
            said,
            "an error occurred while loading credentials: failed to load IMDS session token: request forbidden: IMDS \
             is disabled"
        );
        assert!(!said.contains("ProviderError {"), "{said}");
    }

    #[test]
    fn classifies_codes_and_statuses() {
        let op = Op::sso("CreateAccountAssignment");
        let e = |status: Option<u16>, code: &str| op.classify(status, code.into(), "m".into());

        macro_rules! assert_classified {
            ($status:expr, $code:expr => $kind:pat) => {
                let got = e($status, $code);
                assert!(matches!(got, $kind), "{:?} {}: {got:?}", $status, $code);
            };
        }
        assert_classified!(Some(400), "ThrottlingException" => ConnectorError::Throttled { .. });
        assert_classified!(Some(429), "Whatever" => ConnectorError::Throttled { .. });
        assert_classified!(Some(409), "ConflictException" => ConnectorError::Conflict { .. });
        // IAM's code for ConcurrentModificationException drops the suffix, as its NoSuchEntity does.
        assert_classified!(Some(409), "ConcurrentModification" => ConnectorError::Conflict { .. });
        assert_classified!(Some(503), "Unknown" => ConnectorError::ServerError { status: 503, .. });
        assert_classified!(Some(400), "ResourceNotFoundException" => ConnectorError::NotFound { .. });
        assert_classified!(Some(404), "NoSuchEntity" => ConnectorError::NotFound { .. });
        assert_classified!(Some(400), "ValidationException" => ConnectorError::Rejected { .. });
        for code in ["ThrottlingException", "ConflictException"] {
            assert!(e(Some(400), code).is_retryable(), "{code}");
        }
        assert!(e(Some(500), "InternalServerException").is_retryable());
        assert!(!e(Some(400), "ValidationException").is_retryable());

        let denied = e(Some(400), "AccessDeniedException");
        assert!(!denied.is_retryable());
        let text = denied.to_string();
        assert!(text.contains("`sso:CreateAccountAssignment`") && text.contains("management"), "{text}");
        let iam = Op::iam("GetAccountAuthorizationDetails").classify(Some(403), "AccessDenied".into(), "no".into());
        let text = iam.to_string();
        assert!(text.contains("`iam:GetAccountAuthorizationDetails`") && text.contains("cone-aws policy"), "{text}");
    }

    #[test]
    fn tells_unimplemented_calls_from_aws_failures() {
        let op = Op::identitystore("GetGroupMembershipId");
        let e = |status: Option<u16>, code: &str| op.classify(status, code.into(), "m".into());
        // moto: an HTML 500 page, no code.
        assert!(e(Some(500), "Unknown").is_not_implemented());
        assert!(e(Some(400), "UnknownOperationException").is_not_implemented());
        assert!(
            Op::iam("ListServiceSpecificCredentials")
                .classify(Some(400), "InvalidAction".into(), "m".into())
                .is_not_implemented()
        );
        // AWS failing on its side says so, and is retried.
        for (status, code) in [(500, "InternalServerException"), (503, "Unknown"), (500, "ServiceFailure")] {
            assert!(!e(Some(status), code).is_not_implemented() && e(Some(status), code).is_transient(), "{code}");
        }
        assert!(
            Op::iam("CreateUser").classify(Some(409), "EntityAlreadyExists".into(), "m".into()).is_already_exists()
        );
        assert!(!e(Some(409), "ConflictException").is_already_exists());
    }
}
