//! The typed client of cone-server's API: every call the `cone` CLI makes, with the wire types of `cone-api`, and
//! the same client for the tests, so that they speak to the server as the CLI does rather than through raw JSON.

use std::time::Duration;

use anyhow::Context;
use cone_api::{
    ApiError, ConnectorStatus, CreateTask, Decision, DropRequest, DropResult, Entitlement, EntitlementPage, Me, Task,
    TaskPage, TaskState,
};
pub use reqwest::Method;
use reqwest::StatusCode;
use serde::Serialize;
use serde::de::DeserializeOwned;

#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The server answered `status` with a structured error. Shown as its message with the field errors after it,
    /// one per line; a refused session (401) as what to do about it.
    #[error("{}", shown(*.status, .error))]
    Api { status: u16, error: ApiError },
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

fn shown(status: u16, e: &ApiError) -> String {
    if status == StatusCode::UNAUTHORIZED.as_u16() {
        return "Your Cone session has expired or was revoked; run `cone login <server-url>` again.".into();
    }
    e.fields.iter().fold(e.message.clone(), |text, f| format!("{text}\n  {}: {}", f.field, f.message))
}

impl Failure {
    /// The server's error, when it answered with one.
    pub fn api(&self) -> Option<&ApiError> {
        match self {
            Failure::Api { error, .. } => Some(error),
            Failure::Other(_) => None,
        }
    }
}

/// A signed-in client of one Cone server.
pub struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

pub fn http_client() -> anyhow::Result<reqwest::Client> {
    reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(90))
        .user_agent(concat!("cone/", env!("CARGO_PKG_VERSION")))
        .build()
        .context("cannot set up HTTP")
}

impl Client {
    /// A client of the server at `server` (its base URL) presenting the bearer `token`.
    pub fn new(server: &str, token: &str) -> anyhow::Result<Client> {
        Ok(Client { http: http_client()?, base: server.trim_end_matches('/').to_string(), token: token.to_string() })
    }

    /// Any call of the API: `path` (with its query) answered as `T`, or the server's error.
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&impl Serialize>,
    ) -> Result<T, Failure> {
        let bytes = self.send(method, path, body).await?;
        serde_json::from_slice(&bytes)
            .with_context(|| format!("the Cone server at {} sent an answer cone does not understand; are cone and the server the same version?", self.base))
            .map_err(Failure::Other)
    }

    /// `GET path`, answered as text (a report, say).
    pub async fn get_text(&self, path: &str) -> Result<String, Failure> {
        let bytes = self.send(Method::GET, path, None::<&()>).await?;
        String::from_utf8(bytes)
            .with_context(|| format!("the Cone server at {} sent text that is not UTF-8", self.base))
            .map_err(Failure::Other)
    }

    /// The body of a successful answer, or the server's error.
    async fn send(&self, method: Method, path: &str, body: Option<&impl Serialize>) -> Result<Vec<u8>, Failure> {
        let url = format!("{}{path}", self.base);
        let mut req = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.with_context(|| {
            format!("Cannot reach the Cone server at {}; check that it is running, or sign in to the right one with `cone login <server-url>`", self.base)
        })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .with_context(|| format!("the Cone server at {} closed the connection; try again", self.base))?;
        if status.is_success() {
            return Ok(Vec::from(bytes));
        }
        match serde_json::from_slice::<ApiError>(&bytes) {
            Ok(error) => Err(Failure::Api { status: status.as_u16(), error }),
            Err(_) => Err(Failure::Other(anyhow::anyhow!(
                "the Cone server at {} answered {status}; try again, or ask its administrator to check its log",
                self.base
            ))),
        }
    }

    /// `GET path`, answered as `T`.
    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.call(Method::GET, path, None::<&()>).await
    }

    pub async fn me(&self) -> Result<Me, Failure> {
        self.get("/api/v1/me").await
    }

    pub async fn connectors(&self) -> Result<Vec<ConnectorStatus>, Failure> {
        self.get("/api/v1/connectors").await
    }

    /// Every entitlement (of `kind`, when given), all pages.
    pub async fn entitlements(&self, kind: Option<&str>) -> Result<Vec<Entitlement>, Failure> {
        self.search_entitlements(&[("kind", kind.unwrap_or_default())]).await
    }

    /// Every entitlement matching the filters of `GET /api/v1/entitlements` (`q`, `account`, `kind`; empty values
    /// are left out), all pages.
    pub async fn search_entitlements(&self, filters: &[(&str, &str)]) -> Result<Vec<Entitlement>, Failure> {
        let query = query(filters);
        self.all_pages("/api/v1/entitlements", &query, |p: EntitlementPage| (p.entitlements, p.next_page_token)).await
    }

    /// Every task of `scope` (`mine` or `approvable`) in `state` (`open`, `closed` or `all`), newest first.
    pub async fn tasks(&self, scope: &str, state: &str) -> Result<Vec<Task>, Failure> {
        self.search_tasks(&[("scope", scope), ("state", state)]).await
    }

    /// Every task matching the filters of `GET /api/v1/tasks` (`scope`, `state`, `user`, `account`,
    /// `permission_set`, `app_id` and `entitlement_id`; empty values are left out), newest first.
    pub async fn search_tasks(&self, filters: &[(&str, &str)]) -> Result<Vec<Task>, Failure> {
        let query = query(filters);
        self.all_pages("/api/v1/tasks", &query, |p: TaskPage| (p.tasks, p.next_page_token)).await
    }

    /// The caller's latest task on an entitlement, if any.
    pub async fn latest_task(&self, app_id: &str, entitlement_id: &str) -> Result<Option<Task>, Failure> {
        let filters = [("app_id", app_id), ("entitlement_id", entitlement_id), ("page_size", "1")];
        let page: TaskPage = self.get(&format!("/api/v1/tasks?{}", query(&filters))).await?;
        Ok(page.tasks.into_iter().next())
    }

    /// An administrator ends the grant of task `id` now, saying why.
    pub async fn withdraw(&self, id: i64, reason: &str) -> Result<Task, Failure> {
        let body = cone_api::Withdrawal { reason: reason.into() };
        self.call(Method::POST, &format!("/api/v1/tasks/{id}/withdraw"), Some(&body)).await
    }

    /// An administrator signs `username` out everywhere.
    pub async fn sign_out_user(&self, username: &str) -> Result<cone_api::SignedOutUser, Failure> {
        self.call(Method::POST, &format!("/api/v1/users/{}/sign-out", encode(username)), None::<&()>).await
    }

    async fn all_pages<P: DeserializeOwned, T>(
        &self,
        path: &str,
        query: &str,
        split: impl Fn(P) -> (Vec<T>, Option<String>),
    ) -> Result<Vec<T>, Failure> {
        let mut all = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut url = format!("{path}?{query}");
            if let Some(t) = &token {
                url.push_str(&format!("&page_token={}", encode(t)));
            }
            let (items, next) = split(self.get(&url).await?);
            all.extend(items);
            match next {
                // A server that repeats a token would otherwise keep us here forever.
                Some(next) if !next.is_empty() && Some(&next) != token.as_ref() => token = Some(next),
                _ => return Ok(all),
            }
        }
    }

    pub async fn entitlement(&self, app_id: &str, entitlement_id: &str) -> Result<Entitlement, Failure> {
        let path = format!("/api/v1/entitlement?app_id={}&entitlement_id={}", encode(app_id), encode(entitlement_id));
        self.get(&path).await
    }

    pub async fn create_task(&self, req: &CreateTask) -> Result<Task, Failure> {
        self.call(Method::POST, "/api/v1/tasks", Some(req)).await
    }

    /// The task, once its state differs from `known_state` or after `wait` (server-side long poll).
    pub async fn task(&self, id: i64, known_state: Option<TaskState>, wait: Duration) -> Result<Task, Failure> {
        let mut path = format!("/api/v1/tasks/{id}?wait_secs={}", wait.as_secs());
        if let Some(state) = known_state {
            path.push_str(&format!("&known_state={}", state.as_str()));
        }
        self.get(&path).await
    }

    /// The whole history of task `id`, oldest first.
    pub async fn task_history(&self, id: i64) -> Result<Vec<cone_api::TaskEvent>, Failure> {
        let split = |p: cone_api::TaskEventPage| (p.events, p.next_page_token);
        self.all_pages(&format!("/api/v1/tasks/{id}/events"), "page_size=200", split).await
    }

    /// `approve`, `deny`, `comment` or `cancel` a task.
    pub async fn act(&self, id: i64, action: &str, comment: &str) -> Result<Task, Failure> {
        self.call(Method::POST, &format!("/api/v1/tasks/{id}/{action}"), Some(&Decision { comment: comment.into() }))
            .await
    }

    pub async fn drop_access(&self, app_id: &str, entitlement_id: &str) -> Result<DropResult, Failure> {
        let req = DropRequest { app_id: app_id.into(), entitlement_id: entitlement_id.into() };
        self.call(Method::POST, "/api/v1/drop", Some(&req)).await
    }

    pub async fn create_token(&self, req: &cone_api::CreateToken) -> Result<cone_api::NewToken, Failure> {
        self.call(Method::POST, "/api/v1/tokens", Some(req)).await
    }

    pub async fn create_service_token(
        &self,
        req: &cone_api::CreateServiceToken,
    ) -> Result<cone_api::NewToken, Failure> {
        self.call(Method::POST, "/api/v1/service-tokens", Some(req)).await
    }

    /// The caller's tokens (and every service token for administrators); with `all`, everyone's (administrators).
    pub async fn tokens(&self, all: bool) -> Result<cone_api::TokenList, Failure> {
        self.get(if all { "/api/v1/tokens?all=true" } else { "/api/v1/tokens" }).await
    }

    pub async fn notification_settings(&self) -> Result<cone_api::NotificationSettings, Failure> {
        self.get("/api/v1/notifications/preferences").await
    }

    pub async fn set_notification_preferences(
        &self,
        p: &cone_api::Preferences,
    ) -> Result<cone_api::NotificationSettings, Failure> {
        self.call(Method::PUT, "/api/v1/notifications/preferences", Some(p)).await
    }

    /// Notifications, newest first, in `state` when given (administrators).
    pub async fn notifications(
        &self,
        state: Option<&str>,
        page_token: Option<&str>,
    ) -> Result<cone_api::NotificationList, Failure> {
        let pairs = [("state", state.unwrap_or_default()), ("page_token", page_token.unwrap_or_default())];
        self.get(&format!("/api/v1/notifications?{}", query(&pairs))).await
    }

    pub async fn test_notification(&self, user: Option<&str>) -> Result<cone_api::TestNotificationQueued, Failure> {
        let req = cone_api::TestNotification { user: user.map(str::to_string) };
        self.call(Method::POST, "/api/v1/notifications/test", Some(&req)).await
    }

    pub async fn revoke_token(&self, id: i64) -> Result<cone_api::ApiToken, Failure> {
        self.call(Method::DELETE, &format!("/api/v1/tokens/{id}"), None::<&()>).await
    }

    /// The access document in force, or version `version`.
    pub async fn config(&self, version: Option<i64>) -> Result<cone_api::ConfigVersion, Failure> {
        let path = version.map_or("/api/v1/config".into(), |v| format!("/api/v1/config/versions/{v}"));
        self.get(&path).await
    }

    pub async fn apply_config(&self, req: &cone_api::ApplyConfig) -> Result<cone_api::AppliedConfig, Failure> {
        self.call(Method::PUT, "/api/v1/config", Some(req)).await
    }

    pub async fn check_config(&self, req: &cone_api::ApplyConfig) -> Result<cone_api::ConfigSummary, Failure> {
        self.call(Method::POST, "/api/v1/config/check", Some(req)).await
    }

    /// Every version of the access document, newest first.
    pub async fn config_versions(&self) -> Result<Vec<cone_api::ConfigVersion>, Failure> {
        let split = |p: cone_api::ConfigVersionPage| (p.versions, p.next_page_token);
        self.all_pages("/api/v1/config/versions", "page_size=100", split).await
    }

    pub async fn create_review_campaign(
        &self,
        req: &cone_api::NewReviewCampaign,
    ) -> Result<cone_api::ReviewCampaign, Failure> {
        self.call(Method::POST, "/api/v1/reviews/campaigns", Some(req)).await
    }

    /// Opens a campaign from the access document's review template `name` (letters, digits, `.`, `_`, `-`).
    pub async fn create_review_campaign_from(&self, template: &str) -> Result<cone_api::ReviewCampaign, Failure> {
        let path = format!("/api/v1/reviews/templates/{template}/campaigns");
        self.call(Method::POST, &path, None::<&()>).await
    }

    /// Every review campaign, newest first (administrators).
    pub async fn review_campaigns(&self) -> Result<Vec<cone_api::ReviewCampaign>, Failure> {
        let split = |p: cone_api::ReviewCampaignList| (p.campaigns, p.next_page_token);
        self.all_pages("/api/v1/reviews/campaigns", "page_size=100", split).await
    }

    pub async fn review_campaign(&self, id: i64) -> Result<cone_api::ReviewCampaign, Failure> {
        self.get(&format!("/api/v1/reviews/campaigns/{id}")).await
    }

    pub async fn close_review_campaign(&self, id: i64) -> Result<cone_api::ReviewCampaign, Failure> {
        self.call(Method::POST, &format!("/api/v1/reviews/campaigns/{id}/close"), None::<&()>).await
    }

    /// A campaign's report, `csv` or `jsonl` (administrators).
    pub async fn review_report(&self, id: i64, format: &str) -> Result<String, Failure> {
        self.get_text(&format!("/api/v1/reviews/campaigns/{id}/report?format={}", encode(format))).await
    }

    /// Every review item matching the filters of `GET /api/v1/reviews/items` (`campaign`, `user`, `state`, `q`,
    /// `by`, `all`; empty values are left out).
    pub async fn review_items(&self, filters: &[(&str, &str)]) -> Result<Vec<cone_api::ReviewItem>, Failure> {
        let query = query(filters);
        self.all_pages("/api/v1/reviews/items", &query, |p: cone_api::ReviewItemPage| (p.items, p.next_page_token))
            .await
    }

    pub async fn review_item(&self, id: i64) -> Result<cone_api::ReviewItem, Failure> {
        self.get(&format!("/api/v1/reviews/items/{id}")).await
    }

    pub async fn decide_review(&self, req: &cone_api::ReviewDecide) -> Result<cone_api::ReviewDecided, Failure> {
        self.call(Method::POST, "/api/v1/reviews/decisions", Some(req)).await
    }

    pub async fn reassign_review(&self, id: i64, reviewer: &str) -> Result<cone_api::ReviewItem, Failure> {
        let req = cone_api::ReviewReassign { reviewer: reviewer.to_string() };
        self.call(Method::POST, &format!("/api/v1/reviews/items/{id}/reassign"), Some(&req)).await
    }

    /// New credentials for the connector in service mode; those before stop working (administrators).
    pub async fn rotate_connector_credentials(&self) -> Result<cone_api::ConnectorCredentials, Failure> {
        self.call(Method::POST, "/api/v1/connectors/credentials", None::<&()>).await
    }

    /// Revokes the connector's credentials (administrators).
    pub async fn revoke_connector_credentials(&self) -> Result<(), Failure> {
        self.send(Method::DELETE, "/api/v1/connectors/credentials", None::<&()>).await.map(drop)
    }

    /// Makes the server forget this session's token.
    pub async fn logout(&self) -> Result<(), Failure> {
        self.call::<serde_json::Value>(Method::POST, "/api/v1/logout", None::<&()>).await.map(|_| ())
    }
}

/// Percent-encodes a query value (entitlement ids carry `|`, `:` and `/`).
/// `a=1&b=2` from pairs, leaving out empty values.
fn query(pairs: &[(&str, &str)]) -> String {
    let pairs = pairs.iter().filter(|(_, v)| !v.is_empty());
    pairs.map(|(k, v)| format!("{k}={}", encode(v))).collect::<Vec<_>>().join("&")
}

pub fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| {
            if b.is_ascii_alphanumeric() || b"-_.~".contains(&b) {
                (b as char).to_string()
            } else {
                format!("%{b:02X}")
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn encodes_entitlement_ids() {
        assert_eq!(super::encode("123|arn:aws:sso:::ps/x"), "123%7Carn%3Aaws%3Asso%3A%3A%3Aps%2Fx");
    }
}
