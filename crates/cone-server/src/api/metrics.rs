//! Operations endpoints: `/metrics` (Prometheus text format) and `/readyz`. `/metrics` reads the database at each
//! scrape, so it is not for everyone: on the main listener it takes an administrator's token, and with
//! `metrics_listen` it is served there, without one, and not on the main listener.
//!
//! Request counts and latencies are recorded as requests pass; everything that lives in the database (jobs, grants,
//! tasks, webhook deliveries) is counted when scraped, so that every replica reports the same truth and a restart
//! loses nothing. Labels hold route templates, status codes, the fixed kinds and states of the schema and configured
//! webhook names: never user names, URLs or secrets.

use std::fmt::Write;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::extract::Admin;
use crate::error::Error;
use crate::services::operations;
use crate::state::AppState;

const REQUESTS: &str = "cone_http_requests_total";
const DURATION: &str = "cone_http_request_duration_seconds";
/// The grant check answers in about a millisecond; the upper buckets catch long-polls and database stalls.
const BUCKETS: &[f64] = &[0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0, 60.0];
/// `/readyz` gives the database this long to answer.
const READY_TIMEOUT: Duration = Duration::from_secs(2);

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Installs the process-wide recorder; call once, before serving.
pub fn install() -> Result<()> {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(DURATION.into()), BUCKETS)
        .context("configuring the latency histogram")?
        .install_recorder()
        .context("installing the metrics recorder")?;
    let _ = HANDLE.set(handle);
    Ok(())
}

pub fn routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics_for_admins)).route("/readyz", get(readyz))
}

/// The routes of the `metrics_listen` listener.
pub fn scrape_routes() -> Router<AppState> {
    Router::new().route("/metrics", get(metrics))
}

/// Middleware (as a route layer, so that the matched route template is known) counting, timing and logging requests
/// (target `request`: `CONE_LOG=info,request=off` silences them).
pub async fn track(path: MatchedPath, req: Request, next: Next) -> Response {
    let method = req.method().as_str().to_owned();
    let started = Instant::now();
    let resp = next.run(req).await;
    let labels =
        [("method", method), ("route", path.as_str().to_owned()), ("status", resp.status().as_u16().to_string())];
    metrics::counter!(REQUESTS, &labels).increment(1);
    metrics::histogram!(DURATION, &labels).record(started.elapsed().as_secs_f64());
    // The route's template, never the path or query (which may hold a code or a token).
    let [(_, method), (_, route), (_, status)] = &labels;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    tracing::info!(target: "request", method = %method, route = %route, status = %status, ms, "request");
    resp
}

async fn readyz(State(s): State<AppState>) -> (StatusCode, &'static str) {
    match operations::ready(&s, READY_TIMEOUT).await {
        Ok(()) => (StatusCode::OK, "ok"),
        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, why),
    }
}

async fn metrics_for_admins(State(s): State<AppState>, _: Admin) -> Result<Response, Error> {
    if let Some(addr) = &s.config.metrics_listen {
        return Err(Error::NotFound(format!("/metrics is served on {addr} (metrics_listen), not here.")));
    }
    Ok(metrics(State(s)).await)
}

async fn metrics(State(s): State<AppState>) -> Response {
    match render(&s).await {
        Ok(text) => ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text).into_response(),
        Err(e) => {
            tracing::error!("cannot gather metrics: {e:#}");
            (StatusCode::SERVICE_UNAVAILABLE, "cannot read the database").into_response()
        }
    }
}

async fn render(s: &AppState) -> Result<String> {
    let counts = operations::counts(s).await?;
    let sync = operations::connector(s);
    let (jobs, tasks, grants) = (counts.jobs, counts.tasks, counts.active_grants);
    let deliveries = counts.deliveries;

    let mut out = HANDLE.get().map(PrometheusHandle::render).unwrap_or_default();
    let mut gauge = |name: &str, help: &str, values: &[(String, i64)]| {
        let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} gauge");
        for (labels, v) in values {
            let _ = writeln!(out, "{name}{labels} {v}");
        }
    };
    let jobs: Vec<_> = jobs.into_iter().map(|(k, st, n)| (format!("{{kind=\"{k}\",state=\"{st}\"}}"), n)).collect();
    gauge("cone_jobs", "Provisioning, revocation and repair jobs waiting to run or given up.", &jobs);
    let tasks: Vec<_> = tasks.into_iter().map(|(st, n)| (format!("{{state=\"{st}\"}}"), n)).collect();
    gauge("cone_tasks", "Access requests by state.", &tasks);
    gauge("cone_grants_active", "Grants in force now.", &[(String::new(), grants)]);
    let deliveries: Vec<_> =
        deliveries.into_iter().map(|(w, st, n)| (format!("{{webhook=\"{w}\",state=\"{st}\"}}"), n)).collect();
    gauge("cone_webhook_deliveries", "Webhook deliveries waiting to be sent or given up, by webhook.", &deliveries);
    let notifications: Vec<_> =
        counts.notifications.into_iter().map(|(c, st, n)| (format!("{{channel=\"{c}\",state=\"{st}\"}}"), n)).collect();
    gauge("cone_notifications", "Notifications waiting to be sent or given up, by channel.", &notifications);
    let ok = i64::from(sync.state == cone_api::CONNECTOR_CONNECTED);
    gauge("cone_sync_ok", "1 when this process's last sync with AWS succeeded.", &[(String::new(), ok)]);
    let at = |t: Option<chrono::DateTime<chrono::Utc>>| t.map(|t| vec![(String::new(), t.timestamp())]);
    if let Some(v) = at(sync.last_attempt_at) {
        gauge("cone_sync_last_attempt_timestamp_seconds", "When this process's last sync with AWS started.", &v);
    }
    if let Some(v) = at(sync.last_success_at) {
        gauge("cone_sync_last_success_timestamp_seconds", "When this process's last successful sync started.", &v);
    }
    Ok(out)
}
