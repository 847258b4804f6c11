//! Administrators' read-only pages: the audit log with filters, the drift report, and how the connector's syncs
//! with AWS stand.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use maud::html;

use super::layout::{Nav, page};
use super::session::Viewer;
use super::{WebError, link, when};
use crate::app;
use crate::audit::PageQuery;
use crate::http::AppState;

/// The 403 page for anyone but an administrator.
pub(super) fn admins_only(v: &Viewer) -> Result<(), WebError> {
    if v.admin {
        return Ok(());
    }
    Err(WebError::new(
        StatusCode::FORBIDDEN,
        "Not allowed",
        "Only Cone administrators may see this page; ask to be listed under `admins` in the server's configuration.",
    ))
}

pub async fn audit(State(s): State<AppState>, v: Viewer, Query(q): Query<PageQuery>) -> Result<Response, WebError> {
    admins_only(&v)?;
    let (since, until, action) = (
        q.since.clone().unwrap_or_default(),
        q.until.clone().unwrap_or_default(),
        q.action.clone().unwrap_or_default(),
    );
    let page_of = crate::audit::page(&s.db, PageQuery { page_size: Some(100), ..q }).await?;
    let next = page_of.next_page_token.as_deref().map(|token| {
        link("/console/audit", &[("since", &since), ("until", &until), ("action", &action), ("page_token", token)])
    });
    let content = html! {
        p { "Every change Cone made, oldest first. Entries are hash-chained; " code { "cone-server verify-audit" } " checks the chain." }
        form.filters method="get" action="/console/audit" {
            div.field { label for="action" { "Action" } input #action name="action" value=(action) placeholder="grant.*"; }
            div.field { label for="since" { "Since" } input #since name="since" value=(since) placeholder="2025-01-31T00:00:00Z"; }
            div.field { label for="until" { "Until" } input #until name="until" value=(until) placeholder="2025-02-01T00:00:00Z"; }
            button type="submit" { "Filter" }
        }
        @if page_of.entries.is_empty() { p { "No entries match." } } @else {
            table {
                thead { tr { th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Actor" } th scope="col" { "Action" } th scope="col" { "Subject" } th scope="col" { "Detail" } } }
                tbody {
                    @for e in &page_of.entries {
                        tr { td { (e.id) } td { (when(e.at)) } td { (e.actor) } td { code { (e.action) } } td { (e.subject) } td.detail { code { (e.detail_text) } } }
                    }
                }
            }
        }
        @if let Some(href) = next { p { a href=(href) { "Next page" } } }
    };
    Ok(page("Audit log", &v, Nav::Audit, content).into_response())
}

pub async fn drift(State(s): State<AppState>, v: Viewer) -> Result<Response, WebError> {
    admins_only(&v)?;
    let findings = app::open_drift(&s).await?.findings;
    let content = html! {
        p { "Differences between the account assignments in IAM Identity Center and Cone's grants, found by the last sweep." }
        @if findings.is_empty() { p.notice { "No drift: every user assignment in AWS is explained by a grant." } } @else {
            table {
                thead { tr { th scope="col" { "Kind" } th scope="col" { "User" } th scope="col" { "Account" } th scope="col" { "Permission set" } th scope="col" { "Remedy" } th scope="col" { "Seen" } } }
                tbody {
                    @for f in &findings {
                        tr {
                            td { (f.kind) }
                            td { (f.username.as_deref().unwrap_or(&f.principal_id)) }
                            td { (f.account_name.as_deref().unwrap_or(&f.account_id)) }
                            td { (f.permission_set_name.as_deref().unwrap_or(&f.permission_set_arn)) }
                            td { (f.remedy.as_deref().unwrap_or("reported only")) }
                            td { (when(f.first_seen)) " – " (when(f.last_seen)) }
                        }
                    }
                }
            }
        }
    };
    Ok(page("Drift", &v, Nav::Drift, content).into_response())
}

/// The connector's state as its page names it: syncing until the first sync ends, then connected or error.
fn connector_state(state: &str) -> &'static str {
    match state {
        cone_api::CONNECTOR_CONNECTED => "Connected",
        cone_api::CONNECTOR_ERROR => "Error",
        _ => "Syncing",
    }
}

pub async fn connectors(State(s): State<AppState>, v: Viewer) -> Result<Response, WebError> {
    admins_only(&v)?;
    let c = s.sync_status.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone();
    let never = || html! { span.muted { "never" } };
    let content = html! {
        p { "How this server's syncs with AWS stand (each replica syncs, and reports, on its own). A sync reads the accounts, permission sets, users and groups of IAM Identity Center into the catalog." }
        table {
            thead { tr { th scope="col" { "App" } th scope="col" { "State" } th scope="col" { "Last success" } th scope="col" { "Last attempt" } th scope="col" { "Last error" } } }
            tbody {
                tr {
                    th scope="row" { (c.app_id) }
                    td { span class=(format!("state {}", c.state)) { (connector_state(&c.state)) } }
                    td { @match c.last_success_at { Some(t) => { (when(t)) } None => { (never()) } } }
                    td { @match c.last_attempt_at { Some(t) => { (when(t)) } None => { (never()) } } }
                    td { @match &c.last_error { Some(e) => { code { (e) } } None => { span.muted { "none" } } } }
                }
            }
        }
        @if c.state == cone_api::CONNECTOR_ERROR {
            p.error role="alert" {
                "The last sync failed, so the catalog may be out of date; the server tries again at its next interval. "
                "Check the AWS credentials and permissions the error names (" code { "cone-aws policy" } " prints the IAM policy the connector needs)."
            }
        }
    };
    Ok(page("Connectors", &v, Nav::Connectors, content).into_response())
}
