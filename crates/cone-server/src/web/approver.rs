//! The approver's inbox: the requests a step of their policy asks the viewer to decide, approved or denied with a
//! comment.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{Nav, page};
use super::requester::{details, state};
use super::session::{Posted, Viewer};
use super::{WebError, when};
use crate::app;
use crate::http::AppState;

#[derive(Deserialize)]
pub struct Decided {
    #[serde(default)]
    approved: Option<i64>,
    #[serde(default)]
    denied: Option<i64>,
}

pub async fn inbox(State(s): State<AppState>, v: Viewer, Query(done): Query<Decided>) -> Result<Response, WebError> {
    let tasks = app::search_tasks(&s, &v.user, "approvable", Some("open"), 0, 100).await?.tasks;
    let waiting: Vec<_> = tasks.into_iter().filter(|t| t.state == "pending_approval").collect();
    let content = html! {
        @if let Some(id) = done.approved { p.notice role="status" { "You approved request " (id) "." } }
        @if let Some(id) = done.denied { p.notice role="status" { "You denied request " (id) "." } }
        @if waiting.is_empty() {
            p { "No request waits for your decision." }
        }
        @for t in &waiting {
            article.task aria-labelledby=(format!("task-{}-title", t.id)) {
                h2 #(format!("task-{}-title", t.id)) { "Request " (t.id) ": " (t.entitlement_name) }
                dl {
                    dt { "Requested by" } dd { (t.requester) }
                    dt { "For" } dd { (cone_core::duration::format(t.duration_secs)) @if t.kind == cone_api::TASK_KIND_EXTEND { " more (an extension)" } }
                    dt { "Why" } dd { @if t.justification.is_empty() { span.muted { "(no justification given)" } } @else { (t.justification) } }
                    dt { "Requested" } dd { (when(t.created_at)) }
                    dt { "State" } dd { (state(&t.state)) " " (details(t)) }
                }
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
    };
    Ok(page("Approvals", &v, Nav::Inbox, content).into_response())
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
    app::decide(&s, &posted.viewer.user, id, approve, posted.get("comment").trim()).await?;
    let done = if approve { "approved" } else { "denied" };
    Ok(Redirect::to(&format!("/console/inbox?{done}={id}")).into_response())
}
