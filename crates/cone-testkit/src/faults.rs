//! A proxy in front of moto that injects the faults moto never produces: throttling, 5xx, conflicts and denied
//! permissions in each protocol's error shape, account-assignment requests that stay `IN_PROGRESS` before they succeed or fail, and
//! a listing that hands back the same `NextToken` forever. It also edits the items of a listing as Identity Center
//! would answer after changes moto cannot make (it has no `UpdateUser`, `UpdateGroup` nor `UserStatus`). It can
//! hold Identity Center to its real limits on account-assignment writes, which moto does not have
//! ([`FaultProxy::enforce_write_limits`]). A test scripts the faults per action; everything else is forwarded to
//! moto unchanged.
//!
//! Actions are named as IAM names them (`sso:ListInstances`, `identitystore:ListUsers`, `iam:ListUsers`): the
//! service from the request's SigV4 credential scope, the operation from the `X-Amz-Target` header for the JSON
//! protocols (IAM Identity Center, Identity Store, Organizations) or the `Action` form field for the query
//! protocols (IAM, STS), as the SDK sends them. Those are the names `cone_aws::Connector::calls` counts by.

use std::collections::{BTreeMap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::Response;
use serde_json::{Value, json};

/// The page token the proxy hands out for a listing scripted with [`FaultProxy::repeat_next_token`].
pub const REPEATED_TOKEN: &str = "cone-fault-repeated-token";

/// An error answered in place of forwarding a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Failure {
    /// HTTP 400 with the service's throttling code: `ThrottlingException` (IAM Identity Center, Identity Store),
    /// `TooManyRequestsException` (Organizations), `Throttling` (IAM).
    Throttling,
    /// HTTP 500 or 503 with the service's code for it.
    Server(u16),
    /// The service's "another change is in progress": `ConflictException`, Organizations'
    /// `ConcurrentModificationException`, IAM's `ConcurrentModification`.
    Conflict,
    /// No answer at all: the connection stays open and silent until the client gives up on it.
    Silence,
    /// The caller lacks the IAM permission: `AccessDeniedException` (HTTP 400) for the JSON protocols, IAM's
    /// `AccessDenied` (HTTP 403).
    AccessDenied,
}

/// How an account-assignment request scripted with [`FaultProxy::settle`] ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// Forwarded to moto (which makes the change), then reported `SUCCEEDED`.
    Succeeded,
    /// Not forwarded (nothing changes), then reported `FAILED` with this reason.
    Failed(String),
}

/// The proxy, serving on a free loopback port until the test's runtime ends. Cheap to clone.
#[derive(Clone)]
pub struct FaultProxy {
    endpoint: String,
    inner: Arc<Inner>,
}

struct Inner {
    upstream: String,
    http: reqwest::Client,
    script: Mutex<Script>,
}

#[derive(Default)]
struct Script {
    /// Requests seen, by action, faulted or not.
    calls: BTreeMap<String, u64>,
    /// What the next calls of an action meet, in order: a failure (and whether the call is forwarded first), or
    /// `None` to pass.
    failures: HashMap<String, VecDeque<Option<(Failure, bool)>>>,
    /// How the next Create-/DeleteAccountAssignment requests end: (polls answered IN_PROGRESS, outcome).
    settles: HashMap<String, VecDeque<(u32, Outcome)>>,
    /// Accepted requests whose status calls the proxy answers, by request id.
    pending: HashMap<String, Pending>,
    /// Listings whose every page ends with [`REPEATED_TOKEN`].
    repeating: HashSet<String>,
    /// `(action, text, failure)`: every call of the action whose request body holds the text meets the failure.
    always: Vec<(String, String, Failure)>,
    /// Page sizes (`MaxResults`) set on the requests of JSON listings.
    page_sizes: HashMap<String, u32>,
    /// `(action, list field, id field, id, fields)`: the listed item of that id gets those fields.
    edits: Vec<(String, String, String, String, Value)>,
    /// Request ids made up for requests that were not forwarded.
    made_up: u64,
    /// Identity Center's write limits, when enforced: (outstanding operations at most, how long each takes).
    limits: Option<(usize, Duration)>,
    /// Writes under those limits not yet done: (account id, permission set ARN, done at).
    in_flight: Vec<(String, String, Instant)>,
    /// Writes refused for each limit: (too many outstanding, the role busy).
    refused: (u64, u64),
}

struct Pending {
    /// The request's status object as the write answered it.
    status: Value,
    in_progress: u32,
    /// Also `IN_PROGRESS` until then.
    until: Option<Instant>,
    outcome: Outcome,
}

/// An asynchronous account-assignment write and the status call that follows it.
struct Write {
    action: &'static str,
    /// The field holding the status object, in the write's and the status call's answers.
    status_field: &'static str,
    status_action: &'static str,
    /// The field of the status call naming the request.
    request_id_field: &'static str,
}

const WRITES: [Write; 2] = [
    Write {
        action: "sso:CreateAccountAssignment",
        status_field: "AccountAssignmentCreationStatus",
        status_action: "sso:DescribeAccountAssignmentCreationStatus",
        request_id_field: "AccountAssignmentCreationRequestId",
    },
    Write {
        action: "sso:DeleteAccountAssignment",
        status_field: "AccountAssignmentDeletionStatus",
        status_action: "sso:DescribeAccountAssignmentDeletionStatus",
        request_id_field: "AccountAssignmentDeletionRequestId",
    },
];

/// One request as the proxy reads it.
struct Call {
    /// As IAM names the action: `sso:CreateAccountAssignment`, `iam:ListUsers`.
    action: String,
    service: String,
    /// JSON protocol (`X-Amz-Target`), else query protocol (an `Action` form field).
    json: bool,
}

impl FaultProxy {
    /// Starts a proxy forwarding to `upstream` (moto's endpoint) with no faults scripted.
    pub async fn start(upstream: &str) -> Result<FaultProxy> {
        let inner = Arc::new(Inner {
            upstream: upstream.trim_end_matches('/').to_string(),
            http: reqwest::Client::new(),
            script: Mutex::default(),
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.context("binding the fault proxy")?;
        let endpoint = format!("http://{}", listener.local_addr()?);
        let app = axum::Router::new().fallback(handle).with_state(inner.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        Ok(FaultProxy { endpoint, inner })
    }

    /// Where AWS clients should send their requests.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Answers the next `times` calls of `action` with `failure` instead of forwarding them.
    pub fn fail(&self, action: &str, times: u32, failure: Failure) {
        self.script_failures(action, times, failure, false);
    }

    /// Forwards the next `times` calls of `action`, so moto acts on them, and answers `failure` instead of moto's
    /// answer: a change made whose caller hears it failed.
    pub fn fail_after_acting(&self, action: &str, times: u32, failure: Failure) {
        self.script_failures(action, times, failure, true);
    }

    /// Answers every call of `action` whose request body contains `text` (say, an account id in an
    /// `sts:AssumeRole`'s RoleArn) with `failure`, for as long as the proxy runs.
    pub fn fail_always(&self, action: &str, text: &str, failure: Failure) {
        self.inner.script().always.push((action.to_string(), text.to_string(), failure));
    }

    /// Lets the next `times` calls of `action` pass before the failures scripted after this.
    pub fn pass(&self, action: &str, times: u32) {
        self.script_calls(action, times, None);
    }

    fn script_failures(&self, action: &str, times: u32, failure: Failure, forwarded: bool) {
        self.script_calls(action, times, Some((failure, forwarded)));
    }

    fn script_calls(&self, action: &str, times: u32, meets: Option<(Failure, bool)>) {
        self.inner.script().failures.entry(action.to_string()).or_default().extend((0..times).map(|_| meets));
    }

    /// Asks moto for pages of at most `size` items of the JSON listing `action` (its `MaxResults`), so that a
    /// listing of a few items takes several pages.
    pub fn page_size(&self, action: &str, size: u32) {
        self.inner.script().page_sizes.insert(action.to_string(), size);
    }

    /// The next `action` (`sso:CreateAccountAssignment` or `sso:DeleteAccountAssignment`) is answered `IN_PROGRESS`; its
    /// status call then answers `IN_PROGRESS` `in_progress` times more, and then `outcome`.
    pub fn settle(&self, action: &str, in_progress: u32, outcome: Outcome) {
        assert!(WRITES.iter().any(|w| w.action == action), "{action} is not an asynchronous account-assignment write");
        self.inner.script().settles.entry(action.to_string()).or_default().push_back((in_progress, outcome));
    }

    /// Every page of the JSON listing `action` ends with the same [`REPEATED_TOKEN`] (the token is taken off
    /// the request before it reaches moto, which serves its first page again): a listing that never ends.
    pub fn repeat_next_token(&self, action: &str) {
        self.inner.script().repeating.insert(action.to_string());
    }

    /// From now on, the item of the JSON listing `action` (in its field `list`) whose `id_field` is `id` is answered
    /// with `fields` set: `edit("identitystore:ListUsers", "Users", "UserId", id, json!({"UserStatus": "DISABLED"}))`
    /// answers as Identity Center does for a disabled user.
    pub fn edit(&self, action: &str, list: &str, id_field: &str, id: &str, fields: Value) {
        let edit = (action.to_string(), list.to_string(), id_field.to_string(), id.to_string(), fields);
        self.inner.script().edits.push(edit);
    }

    /// How many requests for `action` reached the proxy, faulted or forwarded.
    pub fn calls(&self, action: &str) -> u64 {
        self.inner.script().calls.get(action).copied().unwrap_or(0)
    }

    /// From now on, Create- and DeleteAccountAssignment meet Identity Center's limits, which moto lacks: each
    /// takes `takes` (answered `IN_PROGRESS` until then), at most `outstanding` may be under way (past that: a
    /// `ThrottlingException`, "There are too many requests processing", as AWS answers), and one at a time per
    /// account and permission set, whose role each write updates (a second: a `ConflictException`).
    pub fn enforce_write_limits(&self, outstanding: usize, takes: Duration) {
        self.inner.script().limits = Some((outstanding, takes));
    }

    /// Writes refused under [`FaultProxy::enforce_write_limits`]: (too many outstanding, the role busy).
    pub fn write_limit_refusals(&self) -> (u64, u64) {
        self.inner.script().refused
    }

    /// Whether every scripted failure and settle has been used.
    pub fn script_used(&self) -> bool {
        let script = self.inner.script();
        script.failures.values().all(VecDeque::is_empty) && script.settles.values().all(VecDeque::is_empty)
    }
}

impl Inner {
    fn script(&self) -> MutexGuard<'_, Script> {
        self.script.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

async fn handle(State(p): State<Arc<Inner>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let body = match axum::body::to_bytes(body, usize::MAX).await {
        Ok(body) => body,
        Err(e) => return plain(StatusCode::BAD_REQUEST, format!("fault proxy: unreadable request body: {e}")),
    };
    let call = Call::read(&parts.headers, &body);
    let failure = {
        let mut script = p.script();
        *script.calls.entry(call.action.clone()).or_default() += 1;
        let scripted = script.failures.get_mut(&call.action).and_then(VecDeque::pop_front).flatten();
        let body_text = String::from_utf8_lossy(&body);
        scripted.or_else(|| {
            script
                .always
                .iter()
                .find(|(action, text, _)| *action == call.action && body_text.contains(text.as_str()))
                .map(|(_, _, failure)| (*failure, false))
        })
    };
    if let Some((failure, forwarded)) = failure {
        if forwarded && let Err(e) = forward(&p, &parts, body).await {
            return unanswered(e);
        }
        return match call.error_code(failure) {
            Some((status, code)) => call.error(status, code),
            None => std::future::pending().await,
        };
    }
    if let Some(write) = WRITES.iter().find(|w| w.action == call.action) {
        let settle = p.script().settles.get_mut(write.action).and_then(VecDeque::pop_front);
        if let Some((in_progress, outcome)) = settle {
            return accept(&p, write, &parts, body, (in_progress, None), outcome).await;
        }
        match within_limits(&p, &body) {
            Limits::Off => {}
            Limits::Refused(failure, message) => return call.error_with(failure, message),
            Limits::Until(until) => return accept(&p, write, &parts, body, (0, Some(until)), Outcome::Succeeded).await,
        }
    }
    let status_call = WRITES.iter().find(|w| w.status_action == call.action);
    if let Some(answer) = status_call.and_then(|write| status_answer(&p, write, &body)) {
        return answer;
    }
    let (repeating, page_size, edits) = {
        let script = p.script();
        let edits: Vec<_> = script.edits.iter().filter(|e| e.0 == call.action).cloned().collect();
        (script.repeating.contains(&call.action), script.page_sizes.get(&call.action).copied(), edits)
    };
    let body = if repeating || page_size.is_some() { listing_request(body, page_size) } else { body };
    let answer = match forward(&p, &parts, body).await {
        Ok(answer) => answer,
        Err(e) => return unanswered(e),
    };
    if (repeating || !edits.is_empty()) && answer.0.is_success() {
        let (status, headers, body) = answer;
        return match serde_json::from_slice::<Value>(&body) {
            Ok(mut page) => {
                if repeating {
                    page["NextToken"] = json!(REPEATED_TOKEN);
                }
                for (_, list, id_field, id, fields) in &edits {
                    let items = page.get_mut(list.as_str()).and_then(Value::as_array_mut).into_iter().flatten();
                    for item in items.filter(|item| item[id_field.as_str()] == id.as_str()) {
                        if let (Some(item), Some(fields)) = (item.as_object_mut(), fields.as_object()) {
                            item.extend(fields.clone());
                        }
                    }
                }
                respond(status, headers, Bytes::from(page.to_string()))
            }
            Err(e) => plain(StatusCode::BAD_GATEWAY, format!("fault proxy: {} answered no JSON: {e}", call.action)),
        };
    }
    respond(answer.0, answer.1, answer.2)
}

impl Call {
    fn read(headers: &HeaderMap, body: &[u8]) -> Call {
        // SigV4's credential scope names the service as IAM's actions do: `Credential=KEY/DATE/REGION/sso/aws4_request`.
        let authorization = headers.get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).unwrap_or_default();
        let scope = authorization.split("Credential=").nth(1).unwrap_or_default();
        let service = scope.split(['/', ',']).nth(3).unwrap_or_default().to_string();
        let (operation, json) = match headers.get("x-amz-target").and_then(|v| v.to_str().ok()) {
            Some(target) => (target.rsplit('.').next().unwrap_or_default().to_string(), true),
            None => {
                let form = String::from_utf8_lossy(body);
                let action = form.split('&').find_map(|pair| pair.strip_prefix("Action=")).unwrap_or_default();
                (action.to_string(), false)
            }
        };
        Call { action: format!("{service}:{operation}"), service, json }
    }

    /// The HTTP status and the code this call's service answers `failure` with; `None` for no answer.
    fn error_code(&self, failure: Failure) -> Option<(u16, &'static str)> {
        let organizations = self.service == "organizations";
        Some(match (failure, self.json) {
            (Failure::Silence, _) => return None,
            (Failure::AccessDenied, false) => (403, "AccessDenied"),
            (Failure::AccessDenied, true) => (400, "AccessDeniedException"),
            (Failure::Throttling, false) => (400, "Throttling"),
            (Failure::Throttling, true) if organizations => (400, "TooManyRequestsException"),
            (Failure::Throttling, true) => (400, "ThrottlingException"),
            (Failure::Conflict, false) => (409, "ConcurrentModification"),
            (Failure::Conflict, true) if organizations => (400, "ConcurrentModificationException"),
            (Failure::Conflict, true) => (400, "ConflictException"),
            (Failure::Server(503), _) => (503, "ServiceUnavailable"),
            (Failure::Server(status), false) => (status, "ServiceFailure"),
            (Failure::Server(status), true) if organizations => (status, "ServiceException"),
            (Failure::Server(status), true) => (status, "InternalServerException"),
        })
    }

    /// An error in the shape this call's protocol uses.
    fn error(&self, status: u16, code: &str) -> Response {
        self.respond_error(status, code, &format!("injected by the fault proxy: {code} for {}", self.action))
    }

    /// `failure` answered with AWS's own message.
    fn error_with(&self, failure: Failure, message: &str) -> Response {
        let (status, code) = self.error_code(failure).unwrap_or((500, "InternalServerException"));
        self.respond_error(status, code, message)
    }

    fn respond_error(&self, status: u16, code: &str, message: &str) -> Response {
        let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        match self.json {
            true => {
                let body = json!({ "__type": code, "message": message }).to_string();
                with_type(status, "application/x-amz-json-1.1", body)
            }
            false => {
                let body = format!(
                    "<ErrorResponse><Error><Type>Sender</Type><Code>{code}</Code><Message>{message}</Message>\
                     </Error><RequestId>cone-fault</RequestId></ErrorResponse>"
                );
                with_type(status, "text/xml", body)
            }
        }
    }
}

/// What Identity Center's write limits say about a write.
enum Limits {
    Off,
    Refused(Failure, &'static str),
    /// Accepted; under way until then.
    Until(Instant),
}

fn within_limits(p: &Inner, body: &[u8]) -> Limits {
    let mut script = p.script();
    let Some((outstanding, takes)) = script.limits else { return Limits::Off };
    let request: Value = serde_json::from_slice(body).unwrap_or_default();
    let role =
        (request["TargetId"].as_str().unwrap_or_default(), request["PermissionSetArn"].as_str().unwrap_or_default());
    let now = Instant::now();
    script.in_flight.retain(|(_, _, done)| *done > now);
    if script.in_flight.len() >= outstanding {
        script.refused.0 += 1;
        return Limits::Refused(Failure::Throttling, "There are too many requests processing. Please try again later.");
    }
    if script.in_flight.iter().any(|(account, ps, _)| (account.as_str(), ps.as_str()) == role) {
        script.refused.1 += 1;
        return Limits::Refused(
            Failure::Conflict,
            "Another account assignment operation on this permission set in this account is in progress.",
        );
    }
    let entry = (role.0.to_string(), role.1.to_string(), now + takes);
    script.in_flight.push(entry);
    Limits::Until(now + takes)
}

/// Answers a scripted write `IN_PROGRESS`, and records how its status calls go on. A write that is to succeed is
/// forwarded first, so moto makes the change (moto's own error, if any, is answered as it is); one that is to
/// fail is not, and its status is made up from the request.
async fn accept(
    p: &Inner,
    write: &Write,
    parts: &axum::http::request::Parts,
    body: Bytes,
    (in_progress, until): (u32, Option<Instant>),
    outcome: Outcome,
) -> Response {
    let request: Value = serde_json::from_slice(&body).unwrap_or_default();
    let mut status = if outcome == Outcome::Succeeded {
        let (code, headers, answer) = match forward(p, parts, body).await {
            Ok(answer) => answer,
            Err(e) => return unanswered(e),
        };
        let status = serde_json::from_slice::<Value>(&answer).ok().map(|mut a| a[write.status_field].take());
        match status {
            Some(status) if code.is_success() && status.is_object() => status,
            _ => return respond(code, headers, answer),
        }
    } else {
        let mut script = p.script();
        script.made_up += 1;
        let mut status = json!({
            "RequestId": format!("cone-fault-request-{}", script.made_up),
            "CreatedDate": SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        });
        for field in ["TargetId", "TargetType", "PermissionSetArn", "PrincipalType", "PrincipalId"] {
            status[field] = request[field].clone();
        }
        status
    };
    status["Status"] = json!("IN_PROGRESS");
    let request_id = status["RequestId"].as_str().unwrap_or_default().to_string();
    let answer = json!({ write.status_field: status.clone() }).to_string();
    p.script().pending.insert(request_id, Pending { status, in_progress, until, outcome });
    with_type(StatusCode::OK, "application/x-amz-json-1.1", answer)
}

/// The status call's answer for a request the proxy accepted: `IN_PROGRESS` while polls are left, then the
/// outcome. `None` for a request the proxy does not know, which goes on to moto.
fn status_answer(p: &Inner, write: &Write, body: &[u8]) -> Option<Response> {
    let request: Value = serde_json::from_slice(body).ok()?;
    let request_id = request[write.request_id_field].as_str()?;
    let mut script = p.script();
    let pending = script.pending.get_mut(request_id)?;
    let mut status = pending.status.clone();
    let under_way = pending.until.is_some_and(|until| Instant::now() < until);
    if pending.in_progress > 0 {
        pending.in_progress -= 1;
    } else if !under_way {
        match &pending.outcome {
            Outcome::Succeeded => status["Status"] = json!("SUCCEEDED"),
            Outcome::Failed(reason) => {
                status["Status"] = json!("FAILED");
                status["FailureReason"] = json!(reason);
            }
        }
    }
    let answer = json!({ write.status_field: status }).to_string();
    Some(with_type(StatusCode::OK, "application/x-amz-json-1.1", answer))
}

/// A listing's request without the proxy's own page token (which moto would not know), and with `page_size`.
fn listing_request(body: Bytes, page_size: Option<u32>) -> Bytes {
    let Ok(Value::Object(mut request)) = serde_json::from_slice::<Value>(&body) else {
        return body;
    };
    if request.get("NextToken") == Some(&json!(REPEATED_TOKEN)) {
        request.remove("NextToken");
    }
    if let Some(size) = page_size {
        request.insert("MaxResults".into(), json!(size));
    }
    Bytes::from(Value::Object(request).to_string())
}

/// Sends the request on to moto; its status, headers and body.
async fn forward(p: &Inner, parts: &axum::http::request::Parts, body: Bytes) -> Result<(StatusCode, HeaderMap, Bytes)> {
    let url = format!("{}{}", p.upstream, parts.uri.path_and_query().map_or("/", |pq| pq.as_str()));
    let mut headers = parts.headers.clone();
    for hop in [header::HOST, header::CONTENT_LENGTH, header::CONNECTION, header::TRANSFER_ENCODING] {
        headers.remove(hop);
    }
    let answer = p.http.request(parts.method.clone(), url).headers(headers).body(body).send().await?;
    let status = answer.status();
    let headers = answer.headers().clone();
    Ok((status, headers, answer.bytes().await?))
}

fn respond(status: StatusCode, mut headers: HeaderMap, body: Bytes) -> Response {
    // The body may have been rewritten, and axum sets the length of what it sends.
    for hop in [header::CONTENT_LENGTH, header::TRANSFER_ENCODING, header::CONNECTION] {
        headers.remove(hop);
    }
    let mut out = Response::new(Body::from(body));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    out
}

fn with_type(status: StatusCode, content_type: &'static str, body: String) -> Response {
    let mut headers = HeaderMap::new();
    headers.insert(header::CONTENT_TYPE, header::HeaderValue::from_static(content_type));
    headers.insert("x-amzn-requestid", header::HeaderValue::from_static("cone-fault"));
    respond(status, headers, Bytes::from(body))
}

fn unanswered(e: anyhow::Error) -> Response {
    plain(StatusCode::BAD_GATEWAY, format!("fault proxy: moto did not answer: {e:#}"))
}

fn plain(status: StatusCode, message: String) -> Response {
    with_type(status, "text/plain", message)
}
