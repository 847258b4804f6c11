//! The `active` flag of IAM Identity Center's SCIM API, read when `BATON_SCIM_*` are set as seed 002's connector
//! reads them: someone an identity provider deactivated through SCIM leaves Cone as if disabled in Identity Center.
//! Listed with SCIM's cursor paging (`GET /Users?cursor=…&count=100`, as AWS documents it), one call per hundred
//! users rather than one per user.

use std::collections::HashSet;

use serde::Deserialize;

use crate::error::{ConnectorError, Op};
use crate::retry::{Timing, with_retries};

const LIST_USERS: Op = Op { name: "SCIM ListUsers", service: "scim" };
/// The largest page AWS's SCIM ListUsers gives.
const PAGE: &str = "100";

/// A secret setting: printing the settings never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(pub String);

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(secret)")
    }
}

/// A client of one SCIM endpoint (`https://scim.<region>.amazonaws.com/<tenant>/scim/v2`).
#[derive(Debug, Clone)]
pub struct Scim {
    http: reqwest::Client,
    endpoint: String,
    token: Secret,
    timing: Timing,
}

#[derive(Deserialize)]
struct Page {
    #[serde(rename = "Resources", default)]
    resources: Vec<ScimUser>,
    #[serde(rename = "nextCursor", default)]
    next_cursor: Option<String>,
}

#[derive(Deserialize)]
struct ScimUser {
    /// The identity store's user id.
    id: String,
    /// SCIM leaves it out for an active user.
    #[serde(default = "active")]
    active: bool,
}

fn active() -> bool {
    true
}

impl Scim {
    /// A client of `endpoint` presenting `token`; the token goes only to an `https` endpoint (or one on this host).
    pub fn new(endpoint: &str, token: &str) -> Result<Scim, ConnectorError> {
        let invalid = |message: String| ConnectorError::InvalidSettings { message };
        let url = reqwest::Url::parse(endpoint)
            .map_err(|e| invalid(format!("BATON_SCIM_ENDPOINT is not a URL ({e}); give IAM Identity Center's SCIM endpoint, such as https://scim.us-east-1.amazonaws.com/<tenant>/scim/v2")))?;
        let local = matches!(url.host_str(), Some("127.0.0.1" | "localhost" | "[::1]"));
        if url.scheme() != "https" && !local {
            return Err(invalid(format!(
                "BATON_SCIM_ENDPOINT {endpoint} is not https; the SCIM token is only sent over TLS"
            )));
        }
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(30))
            .build()
            .map_err(|e| invalid(format!("cannot make an HTTP client for SCIM: {e}")))?;
        let endpoint = endpoint.trim_end_matches('/').to_string();
        Ok(Scim { http, endpoint, token: Secret(token.to_string()), timing: Timing::default() })
    }

    /// The ids of the users SCIM reports inactive.
    pub async fn inactive(&self) -> Result<HashSet<String>, ConnectorError> {
        let (mut cursor, mut seen, mut inactive) = (String::new(), HashSet::new(), HashSet::new());
        loop {
            let page = with_retries(&self.timing, LIST_USERS, || self.page(&cursor)).await?;
            inactive.extend(page.resources.into_iter().filter(|u| !u.active).map(|u| u.id));
            match page.next_cursor.filter(|c| !c.is_empty()) {
                None => return Ok(inactive),
                Some(next) if !seen.insert(next.clone()) => {
                    return Err(ConnectorError::PaginationLoop { operation: LIST_USERS.name, token: next });
                }
                Some(next) => cursor = next,
            }
        }
    }

    async fn page(&self, cursor: &str) -> Result<Page, ConnectorError> {
        let request = self
            .http
            .get(format!("{}/Users", self.endpoint))
            .query(&[("cursor", cursor), ("count", PAGE)])
            .bearer_auth(&self.token.0);
        let answer = request
            .send()
            .await
            .map_err(|e| ConnectorError::Transport { operation: LIST_USERS.name, message: e.to_string() })?;
        let status = answer.status().as_u16();
        let body = answer
            .bytes()
            .await
            .map_err(|e| ConnectorError::Transport { operation: LIST_USERS.name, message: e.to_string() })?;
        if (200..300).contains(&status) {
            return serde_json::from_slice(&body)
                .map_err(|_| ConnectorError::MalformedResponse { operation: LIST_USERS.name, field: "Resources" });
        }
        // SCIM errors carry a `detail`; anything else is shown cut short.
        let detail = serde_json::from_slice::<serde_json::Value>(&body)
            .ok()
            .and_then(|v| v["detail"].as_str().map(str::to_string))
            .unwrap_or_else(|| String::from_utf8_lossy(&body).chars().take(200).collect());
        let code = match status {
            401 | 403 => {
                return Err(ConnectorError::InvalidSettings {
                    message: format!(
                        "IAM Identity Center's SCIM API refused BATON_SCIM_TOKEN (HTTP {status}: {detail}); generate \
                         a new access token (Settings, Automatic provisioning; they last a year) and set it"
                    ),
                });
            }
            429 => "ThrottlingException",
            500.. => "InternalServerException",
            _ => "ValidationException",
        };
        Err(LIST_USERS.classify(Some(status), code.into(), detail))
    }
}
