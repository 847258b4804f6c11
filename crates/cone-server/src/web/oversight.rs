//! Administrators act on people's access: every request and grant with filters, withdrawing a grant with a
//! reason, signing someone out everywhere, and every API token.

use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use cone_api::{Task, TaskState};
use maud::{Markup, html};
use serde::Deserialize;

use super::admin::admins_only;
use super::filters::Who;
use super::layout::{Nav, Viewer, WebError, link, next_page, page, when};
use super::requester::{details, state};
use super::session::Posted;
use crate::services::tasks::{self, Scope, States};
use crate::services::{Page, auth, tokens};
use crate::state::AppState;

/// The page's filters, as its form and links send them; empty means any.
#[derive(Deserialize)]
pub struct GrantsQuery {
    #[serde(flatten)]
    who: Who,
    /// `live` (the default: open requests and active grants), `all`, or one state.
    #[serde(default)]
    state: String,
    #[serde(default)]
    page_token: Option<String>,
    /// After a withdrawal or a sign-out, what was done.
    #[serde(default)]
    withdrawn: Option<i64>,
    #[serde(default)]
    signed_out: Option<String>,
}

/// The state filters the page offers: its value, its label, and the tasks it selects.
const STATE_CHOICES: [(&str, &str); 4] = [
    ("live", "Open requests and active grants"),
    ("granted", "Active grants"),
    ("open", "Open requests"),
    ("all", "All"),
];

fn states(choice: &str) -> Option<States> {
    match choice {
        "granted" => Some(States::Is(TaskState::Granted)),
        "open" => Some(States::Open),
        "all" => None,
        _ => Some(States::Live),
    }
}

pub async fn grants(State(s): State<AppState>, v: Viewer, Query(q): Query<GrantsQuery>) -> Result<Response, WebError> {
    admins_only(&v)?;
    let narrow = q.who.narrow(states(&q.state));
    let page_of =
        tasks::search(&s, &v.user, Scope::All, narrow, Page::new(q.page_token.as_deref(), Some(100), 100, 100)?)
            .await?;
    let filters = [q.who.pairs(), vec![("state", q.state.as_str())]].concat();
    let content = html! {
        @if let Some(id) = q.withdrawn { p.notice role="status" { "The grant of request " (id) " was withdrawn; its assignment is being removed." } }
        @if let Some(who) = &q.signed_out { p.notice role="status" { (who) " was signed out everywhere." } }
        p { "Everyone's requests and grants. Withdrawing a grant ends it now; its requester is shown who withdrew it and why." }
        form.filters method="get" action="/console/grants" {
            (q.who.fields())
            div.field {
                label for="state" { "Showing" }
                select #state name="state" {
                    @for (value, label) in STATE_CHOICES { option value=(value) selected[q.state == value] { (label) } }
                }
            }
            button type="submit" { "Filter" }
        }
        @if page_of.tasks.is_empty() { p { "No request or grant matches." } }
        @for t in &page_of.tasks { (row(&v, t)) }
        (next_page("/console/grants", &filters, page_of.next_page_token.as_deref(), "Next page"))
        section aria-labelledby="sign-out" {
            h2 #sign-out { "Sign someone out everywhere" }
            p { "Their " code { "cone login" } " sessions, console sessions and API tokens stop working at once; their grants stay." }
            form.stack method="post" action="/console/sign-out" {
                (v.token_field())
                label for="sign-out-user" { "User name" }
                input #sign-out-user name="username" required;
                button.danger type="submit" { "Sign out everywhere" }
            }
        }
    };
    Ok(page("Grants", &v, Nav::Grants, content).into_response())
}

fn row(v: &Viewer, t: &Task) -> Markup {
    let live = matches!(t.state, TaskState::Granted | TaskState::Provisioning);
    html! {
        article.task aria-labelledby=(format!("task-{}-title", t.id)) {
            h2 #(format!("task-{}-title", t.id)) { a href=(format!("/console/tasks/{}", t.id)) { "Request " (t.id) ": " (t.entitlement_name) } }
            p { (t.requester) " · " (state(t.state)) " " (details(t)) " Requested " (when(t.created_at)) "." }
            @if live {
                form.stack method="post" action=(format!("/console/tasks/{}/withdraw-grant", t.id)) {
                    (v.token_field())
                    label for=(format!("reason-{}", t.id)) { "Why withdraw it " span.muted { "(the requester sees this)" } }
                    input #(format!("reason-{}", t.id)) name="reason" required maxlength="1000";
                    button.danger type="submit" { "Withdraw grant" }
                }
            }
        }
    }
}

pub async fn withdraw(State(s): State<AppState>, Path(id): Path<i64>, posted: Posted) -> Result<Response, WebError> {
    let t = tasks::withdraw(&s, &posted.viewer.user, id, posted.get("reason")).await?;
    Ok(Redirect::to(&format!("/console/grants?withdrawn={}", t.id)).into_response())
}

pub async fn sign_out(State(s): State<AppState>, posted: Posted) -> Result<Response, WebError> {
    let done = auth::sign_out_user(&s, &posted.viewer.user, posted.get("username").trim()).await?;
    Ok(Redirect::to(&link("/console/grants", &[("signed_out", &done.username)])).into_response())
}

/// Every unrevoked API token, personal and service, with its owner.
pub async fn api_tokens(State(s): State<AppState>, v: Viewer) -> Result<Response, WebError> {
    admins_only(&v)?;
    let caller = auth::Caller { user: v.user.clone(), api_token: None };
    let list = tokens::list(&s, &caller, true).await?;
    let content = html! {
        p { "Every API token that still works. Revoke one with " code { "cone token revoke ID" } "." }
        @if list.tokens.is_empty() { p { "No API token works." } } @else {
            table {
                thead { tr { th scope="col" { "#" } th scope="col" { "Owner" } th scope="col" { "Kind" } th scope="col" { "Name" } th scope="col" { "Created" } th scope="col" { "Ends" } th scope="col" { "Last used" } } }
                tbody {
                    @for t in &list.tokens {
                        tr {
                            td { (t.id) } td { (t.owner) } td { (t.kind) } td { (t.name) } td { (when(t.created_at)) }
                            td { @match t.expires_at { Some(end) => (when(end)), None => span.muted { "when revoked" } } }
                            td { @match t.last_used_at { Some(at) => (when(at)), None => span.muted { "never" } } }
                        }
                    }
                }
            }
        }
    };
    Ok(page("API tokens", &v, Nav::Tokens, content).into_response())
}
