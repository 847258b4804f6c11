//! Administrators' pages for the access document (policies, access profiles, entitlement management): the version
//! in force with a form to check or apply a new one, the history of versions, and each version's text. They call
//! the same services (`services::access`) as `cone policy` does through the API, so a change made here is checked, recorded
//! and put in force the same way.

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cone_api::{ApplyConfig, ConfigVersion};
use maud::{Markup, html};
use serde::Deserialize;

use super::admin::admins_only;
use super::layout::{Nav, Viewer, WebError, next_page, page, when};
use super::session::Posted;
use crate::error::Error;
use crate::services::{Page, access};
use crate::state::AppState;

/// What the form shows besides the version in force: the text being edited and what became of it.
struct Draft {
    document: String,
    comment: String,
    base_version: i64,
    outcome: Option<Markup>,
}

/// What the last apply of the access document came to, for the page it returns to.
#[derive(Deserialize)]
pub struct Done {
    #[serde(default)]
    pub applied: Option<i64>,
    #[serde(default)]
    pub unchanged: Option<i64>,
}

pub async fn policies(State(s): State<AppState>, v: Viewer, Query(done): Query<Done>) -> Result<Response, WebError> {
    admins_only(&v)?;
    let current = access::in_force(&s).await?;
    let outcome = match (done.applied, done.unchanged) {
        (Some(n), _) => {
            Some(html! { p.notice role="status" { "Version " (n) " applied; it is in force for new requests." } })
        }
        (None, Some(n)) => Some(html! {
            p.notice role="status" { "The document is the same as version " (n) ", which stays in force; nothing was recorded." }
        }),
        (None, None) => None,
    };
    let draft =
        Draft { document: current.document.clone(), comment: String::new(), base_version: current.version, outcome };
    Ok(policies_page(&v, &current, &draft, StatusCode::OK))
}

fn policies_page(v: &Viewer, current: &ConfigVersion, draft: &Draft, status: StatusCode) -> Response {
    let content = html! {
        p {
            "Who may request what, and how requests are decided: the " code { "access_profiles" } ", "
            code { "entitlement_management" } " and " code { "policies" } " sections, as in the server's configuration file. "
            "A change applies to new requests; requests already filed keep their steps. "
            a href="/console/policies/history" { "History of versions" }
        }
        @if let Some(outcome) = &draft.outcome { (outcome) }
        section aria-labelledby="in-force" {
            h2 #in-force { "In force: version " (current.version) }
            (provenance(current))
            pre.document aria-label=(format!("Version {}", current.version)) { (current.document) }
        }
        section aria-labelledby="change" {
            h2 #change { "Change" }
            form.stack.wide method="post" action="/console/policies" {
                (v.token_field())
                input type="hidden" name="base_version" value=(draft.base_version);
                label for="document" { "Access document (YAML)" }
                textarea #document name="document" rows="24" spellcheck="false" aria-describedby="document-hint" { (draft.document) }
                p.hint #document-hint {
                    "Check shows what the document defines, or where it is wrong, and applies nothing. Apply records it as a new version "
                    "unless someone applied another since version " (draft.base_version) "."
                }
                label for="comment" { "Why " span.muted { "(kept with the version)" } }
                input #comment name="comment" value=(draft.comment);
                div.actions {
                    button type="submit" name="action" value="check" { "Check" }
                    button type="submit" name="action" value="apply" { "Apply" }
                }
            }
        }
    };
    (status, page("Policies", v, Nav::Policies, content)).into_response()
}

/// Who applied a version, when and why.
fn provenance(v: &ConfigVersion) -> Markup {
    html! {
        dl {
            dt { "Applied by" } dd { (author(v)) }
            dt { "When" } dd { (when(v.created_at)) }
            dt { "Why" } dd { @if v.comment.is_empty() { span.muted { "(no comment)" } } @else { (v.comment) } }
            dt { "Digest" } dd { code { (v.digest) } }
        }
    }
}

fn author(v: &ConfigVersion) -> String {
    match &v.author {
        Some(name) => name.clone(),
        None => "the configuration file, at start-up".to_string(),
    }
}

pub async fn change(State(s): State<AppState>, posted: Posted) -> Result<Response, WebError> {
    let v = &posted.viewer;
    admins_only(v)?;
    // Browsers send a text area's lines with CRLF; the document is kept as its YAML is written elsewhere, with LF,
    // so that applying the same text again is recognised as no change.
    let document = posted.get("document").replace("\r\n", "\n");
    let comment = posted.get("comment").trim().to_string();
    let base_version = posted.get("base_version").parse::<i64>().map_err(|_| {
        WebError::new(
            StatusCode::BAD_REQUEST,
            "Cannot read the form",
            "The form lacks the version it was started from, so nothing was applied. Reload the page and make the change again.",
        )
    })?;
    let mut draft = Draft { document, comment, base_version, outcome: None };
    match posted.get("action") {
        "check" => {
            let status = match access::summarize(&s, &draft.document) {
                Ok(summary) => {
                    draft.outcome = Some(html! {
                        div.notice role="status" {
                            p { "The document checks; nothing was applied. It defines:" }
                            ul {
                                li { (summary.policies.len()) " policies" (names(&summary.policies)) }
                                li { (summary.access_profiles.len()) " access profiles" (names(&summary.access_profiles)) }
                                li { (summary.entitlement_management_rules) " entitlement-management rules" }
                            }
                        }
                    });
                    StatusCode::OK
                }
                Err(failure) => refused(&mut draft, failure)?,
            };
            Ok(policies_page(v, &access::in_force(&s).await?, &draft, status))
        }
        "apply" => {
            let req = ApplyConfig {
                document: draft.document.clone(),
                comment: draft.comment.clone(),
                base_version: Some(base_version),
            };
            match access::apply(&s, v.user.id, &req).await {
                Ok(applied) => {
                    let key = if applied.changed { "applied" } else { "unchanged" };
                    Ok(Redirect::to(&format!("/console/policies?{key}={}", applied.version.version)).into_response())
                }
                Err(failure) => {
                    let stale = matches!(failure, Error::StaleVersion(_));
                    let status = refused(&mut draft, failure)?;
                    let current = access::in_force(&s).await?;
                    // The newer version is on the page above the text being edited: the form now starts from it, so
                    // that once the change is redone on it, Apply records it.
                    if stale {
                        draft.base_version = current.version;
                    }
                    Ok(policies_page(v, &current, &draft, status))
                }
            }
        }
        _ => Err(WebError::new(
            StatusCode::BAD_REQUEST,
            "No action",
            "Choose Check or Apply under the document; nothing was done.",
        )),
    }
}

/// Shows why a document was refused above the text, which stays as it was typed; a server failure is an error page.
fn refused(draft: &mut Draft, failure: Error) -> Result<StatusCode, WebError> {
    if let Error::Internal(_) = failure {
        return Err(failure.into());
    }
    draft.outcome =
        Some(html! { div.error role="alert" { p { (failure.to_string()) } p { "Your text is kept below." } } });
    Ok(failure.status_and_code().0)
}

fn names(list: &[String]) -> Markup {
    html! { @if !list.is_empty() { ": " (list.join(", ")) } }
}

#[derive(Deserialize)]
pub struct HistoryQuery {
    #[serde(default)]
    page_token: Option<String>,
}

pub async fn history(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<HistoryQuery>,
) -> Result<Response, WebError> {
    admins_only(&v)?;
    let in_force = s.access().version;
    let page_of = access::versions(&s, Page::new(q.page_token.as_deref(), Some(50), 50, 50)?).await?;
    let content = html! {
        p { "Every version of the access document, newest first. " a href="/console/policies" { "The version in force" } }
        @if page_of.versions.is_empty() { p { "No versions on this page." } } @else {
            table {
                thead { tr { th scope="col" { "Version" } th scope="col" { "When" } th scope="col" { "By" } th scope="col" { "Why" } } }
                tbody {
                    @for ver in &page_of.versions {
                        tr {
                            th scope="row" {
                                a href=(format!("/console/policies/versions/{}", ver.version)) aria-label=(format!("Version {}", ver.version)) { (ver.version) }
                                @if ver.version == in_force { " " span.state.granted { "in force" } }
                            }
                            td { (when(ver.created_at)) }
                            td { (author(ver)) }
                            td { (ver.comment) }
                        }
                    }
                }
            }
        }
        (next_page("/console/policies/history", &[], page_of.next_page_token.as_deref(), "Older versions"))
    };
    Ok(page("Policy history", &v, Nav::Policies, content).into_response())
}

pub async fn version(State(s): State<AppState>, v: Viewer, Path(id): Path<i64>) -> Result<Response, WebError> {
    admins_only(&v)?;
    let ver = access::version(&s, id).await?;
    let content = html! {
        p { a href="/console/policies/history" { "History of versions" } " · " a href="/console/policies" { "The version in force" } }
        @if ver.version == s.access().version { p.notice { "This version is in force." } }
        (provenance(&ver))
        pre.document aria-label=(format!("Version {}", ver.version)) { (ver.document) }
    };
    Ok(page(&format!("Policy version {id}"), &v, Nav::Policies, content).into_response())
}
