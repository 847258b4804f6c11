//! The approver's inbox (the requests a step of their policy asks the viewer to decide, approved or denied with a
//! comment), and the page of one request with its history, which its requester, its approvers and administrators
//! may open.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cone_api::{Task, TaskEvent, TaskKind, TaskState};
use maud::{Markup, html};
use serde::Deserialize;

use super::filters::Who;
use super::layout::{Nav, Viewer, WebError, next_page, page, when};
use super::requester::{details, state};
use super::session::Posted;
use crate::services::Page;
use crate::services::tasks::{self, Scope, States};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct Decided {
    #[serde(default)]
    approved: Option<i64>,
    #[serde(default)]
    denied: Option<i64>,
    #[serde(flatten)]
    who: Who,
    #[serde(default)]
    page_token: Option<String>,
}

pub async fn inbox(State(s): State<AppState>, v: Viewer, Query(done): Query<Decided>) -> Result<Response, WebError> {
    let page_of = tasks::search(
        &s,
        &v.user,
        Scope::Approvable,
        done.who.narrow(Some(States::Open)),
        Page::new(done.page_token.as_deref(), Some(100), 100, 100)?,
    )
    .await?;
    let next = page_of.next_page_token;
    let filtered = done.who.pairs().iter().any(|(_, value)| !value.trim().is_empty());
    let waiting: Vec<_> = page_of.tasks.into_iter().filter(|t| t.state == TaskState::PendingApproval).collect();
    let content = html! {
        @if let Some(id) = done.approved { p.notice role="status" { "You approved request " (id) "." } }
        @if let Some(id) = done.denied { p.notice role="status" { "You denied request " (id) "." } }
        form.filters method="get" action="/console/inbox" {
            (done.who.fields())
            button type="submit" { "Filter" }
        }
        @if waiting.is_empty() && next.is_none() {
            p { @if filtered { "No request that matches waits for your decision." } @else { "No request waits for your decision." } }
        }
        @for t in &waiting {
            article.task aria-labelledby=(format!("task-{}-title", t.id)) {
                h2 #(format!("task-{}-title", t.id)) { a href=(format!("/console/tasks/{}", t.id)) { "Request " (t.id) ": " (t.entitlement_name) } }
                (summary(t))
                (decision_form(&v, t))
            }
        }
        (next_page("/console/inbox", &done.who.pairs(), next.as_deref(), "More requests"))
    };
    Ok(page("Approvals", &v, Nav::Inbox, content).into_response())
}

/// Who asks for what, why, and for how long.
fn summary(t: &Task) -> Markup {
    html! {
        dl {
            dt { "Requested by" } dd { (t.requester) }
            dt { "For" } dd { (cone_core::duration::format(t.duration_secs)) @if t.kind == TaskKind::Extend { " more (an extension)" } }
            dt { "Why" } dd { @if t.justification.is_empty() { span.muted { "(no justification given)" } } @else { (t.justification) } }
            dt { "Requested" } dd { (when(t.created_at)) }
            dt { "State" } dd { (state(t.state)) " " (details(t)) }
        }
    }
}

fn decision_form(v: &Viewer, t: &Task) -> Markup {
    html! {
        form.stack method="post" action=(format!("/console/tasks/{}/decide", t.id)) {
            (v.token_field())
            label for=(format!("comment-{}", t.id)) { "Comment " span.muted { "(optional; the requester sees it)" } }
            textarea #(format!("comment-{}", t.id)) name="comment" rows="2" {}
            div.actions {
                button type="submit" name="decision" value="approve" { "Approve" }
                button.danger type="submit" name="decision" value="deny" { "Deny" }
            }
        }
    }
}

pub async fn decide(State(s): State<AppState>, Path(id): Path<i64>, posted: Posted) -> Result<Response, WebError> {
    let approve = match posted.get("decision") {
        "approve" => true,
        "deny" => false,
        _ => {
            return Err(WebError::new(
                StatusCode::BAD_REQUEST,
                "No decision",
                "Choose Approve or Deny on the request; nothing was decided.",
            ));
        }
    };
    tasks::decide(&s, &posted.viewer.user, id, approve, posted.get("comment").trim()).await?;
    let done = if approve { "approved" } else { "denied" };
    Ok(Redirect::to(&format!("/console/inbox?{done}={id}")).into_response())
}

/// One request with its history; the approvers it waits for may decide it here, anyone who sees it may comment.
pub async fn task_page(State(s): State<AppState>, v: Viewer, Path(id): Path<i64>) -> Result<Response, WebError> {
    let t = tasks::get(&s, &v.user, id).await?;
    let decides = tasks::asks_caller(&s, &v.user, id).await?;
    let content = html! {
        p { strong { (t.entitlement_name) } }
        (summary(&t))
        @if decides { (decision_form(&v, &t)) }
        section aria-labelledby="history" {
            h2 #history { "History" }
            @if t.earlier_events > 0 {
                p { (t.earlier_events) " earlier events are not shown. "
                    a href=(format!("/console/tasks/{id}/history")) { "See the whole history" } }
            }
            (events_table(&t.events))
        }
        form.stack method="post" action=(format!("/console/tasks/{}/comment", t.id)) {
            (v.token_field())
            label for="comment" { "Add a comment" }
            textarea #comment name="comment" rows="2" required {}
            button type="submit" { "Comment" }
        }
    };
    let nav = if t.requester == v.user.username { Nav::Requests } else { Nav::Inbox };
    Ok(page(&format!("Request {id}"), &v, nav, content).into_response())
}

fn events_table(events: &[TaskEvent]) -> Markup {
    html! {
        table {
            thead { tr { th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "What" } th scope="col" { "Comment" } } }
            tbody {
                @for e in events {
                    tr { td { (when(e.at)) } td { (e.actor) } td { code { (e.action) } } td { (e.comment.as_deref().unwrap_or("")) } }
                }
            }
        }
    }
}

#[derive(Deserialize)]
pub struct HistoryPage {
    #[serde(default)]
    page_token: Option<String>,
}

/// The whole history of a request, oldest first, 100 events a page.
pub async fn history_page(
    State(s): State<AppState>,
    v: Viewer,
    Path(id): Path<i64>,
    Query(q): Query<HistoryPage>,
) -> Result<Response, WebError> {
    let events = tasks::history(&s, &v.user, id, Page::new(q.page_token.as_deref(), Some(100), 100, 100)?).await?;
    let content = html! {
        p { a href=(format!("/console/tasks/{id}")) { "Back to request " (id) } }
        (events_table(&events.events))
        (next_page(&format!("/console/tasks/{id}/history"), &[], events.next_page_token.as_deref(), "Later events"))
    };
    Ok(page(&format!("History of request {id}"), &v, Nav::Elsewhere, content).into_response())
}

pub async fn comment(State(s): State<AppState>, Path(id): Path<i64>, posted: Posted) -> Result<Response, WebError> {
    if posted.get("comment").trim().is_empty() {
        let empty = "The comment was empty, so nothing was added. Go back, write one and send it again.";
        return Err(WebError::new(StatusCode::BAD_REQUEST, "Empty comment", empty));
    }
    tasks::comment(&s, &posted.viewer.user, id, posted.get("comment")).await?;
    Ok(Redirect::to(&format!("/console/tasks/{id}#history")).into_response())
}
