//! `/console/reviews`: a reviewer's items, filtered and decided many at once; for administrators, the campaigns (a
//! form to create one, each one's progress, its items as a page that prints well, closing, the report).

use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::NaiveDate;
use cone_api::{
    NewReviewCampaign, ReviewCampaign, ReviewDecide, ReviewDecision, ReviewItem, ReviewItemKind, ReviewItemState,
    ReviewScope, Reviewers, ReviewersFrom,
};
use maud::{Markup, html};
use serde::Deserialize;

use super::admin::admins_only;
use super::layout::{Nav, Viewer, WebError, link, next_page, page, when};
use super::session::Posted;
use crate::services::Page;
use crate::services::auth::Caller;
use crate::services::reviews::{self, Format, ItemQuery};
use crate::state::AppState;

fn caller(v: &Viewer) -> Caller {
    Caller { user: v.user.clone(), api_token: None }
}

#[derive(Deserialize, Default)]
pub struct ItemsQuery {
    #[serde(default)]
    campaign: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    q: String,
    /// `pending` when absent; `any` for every state.
    #[serde(default)]
    state: String,
    /// `entitlement` to group by entitlement rather than by person.
    #[serde(default)]
    by: String,
    #[serde(default)]
    page_token: Option<String>,
    /// After a decision: how many were decided, and the items that were not (numbers, comma-separated).
    #[serde(default)]
    decided: Option<usize>,
    #[serde(default)]
    refused: String,
}

impl ItemsQuery {
    fn state(&self) -> &str {
        if self.state.is_empty() { "pending" } else { &self.state }
    }

    fn pairs(&self) -> Vec<(&str, &str)> {
        vec![
            ("campaign", &self.campaign),
            ("user", &self.user),
            ("q", &self.q),
            ("state", &self.state),
            ("by", &self.by),
        ]
    }

    fn query(&self, all: bool) -> Result<ItemQuery, WebError> {
        let bad = |what: &str| WebError::new(StatusCode::BAD_REQUEST, "Cannot filter", what.to_string());
        let state = match self.state() {
            "any" => None,
            s => Some(ReviewItemState::parse(s).ok_or_else(|| bad("Choose a state from the list."))?),
        };
        let campaign = match self.campaign.trim() {
            "" => None,
            c => Some(c.parse().map_err(|_| bad("A campaign is given by its number."))?),
        };
        Ok(ItemQuery {
            campaign,
            user: Some(self.user.trim().to_string()).filter(|u| !u.is_empty()),
            state,
            q: Some(self.q.clone()),
            by_entitlement: self.by == "entitlement",
            all,
        })
    }
}

fn how(i: &ReviewItem) -> Markup {
    html! {
        @match (i.kind, i.task_id) {
            (ReviewItemKind::Grant, Some(t)) => { "Cone grant (" a href=(format!("/console/tasks/{t}")) { "request " (t) } ")" },
            (ReviewItemKind::Grant, None) => "Cone grant",
            (ReviewItemKind::Assignment, _) => "assigned directly in Identity Center",
            (ReviewItemKind::GroupMembership, _) => "group membership",
            (ReviewItemKind::IamUser, _) => "IAM user",
            (ReviewItemKind::IamGroupMembership, _) => "IAM group membership",
            (ReviewItemKind::AccessKey, _) => "access key",
        }
        @match (i.last_used_at, i.kind) {
            (Some(t), _) => { br; span.muted { "last used " (when(t)) } },
            (None, ReviewItemKind::IamUser | ReviewItemKind::AccessKey) => { br; span.muted { "never used" } },
            _ => {},
        }
    }
}

fn outcome(i: &ReviewItem) -> Markup {
    html! {
        (i.state.as_str())
        @if let (Some(by), Some(at)) = (&i.decided_by, i.decided_at) { br; span.muted { "by " (by) ", " (when(at)) } }
        @if let Some(r) = &i.removal {
            br; span.muted { "removal " (r.state) @if r.attempts > 1 { " after " (r.attempts) " attempts" } }
            @if let Some(e) = &r.last_error { br; span.muted { "last error: " (e) } }
            @if let Some(what) = &r.by_hand { br; span.muted { "to do by hand: " (what) } }
        }
        @if let Some(gone) = i.gone_at { br; span.muted { "gone from AWS " (when(gone)) } }
    }
}

fn filters(q: &ItemsQuery, action: &str) -> Markup {
    html! {
        form.filters method="get" action=(action) {
            div.field { label for="q" { "Search" } input #q type="search" name="q" value=(q.q) placeholder="alice production admin"; }
            div.field { label for="user" { "Person" } input #user name="user" value=(q.user) placeholder="alice"; }
            div.field {
                label for="state" { "State" }
                select #state name="state" {
                    @for s in ["pending", "certified", "revoking", "revoked", "gone", "any"] {
                        option value=(s) selected[q.state() == s] { (s) }
                    }
                }
            }
            div.field {
                label for="by" { "Group by" }
                select #by name="by" {
                    option value="person" selected[q.by != "entitlement"] { "person" }
                    option value="entitlement" selected[q.by == "entitlement"] { "entitlement" }
                }
            }
            @if !q.campaign.is_empty() { input type="hidden" name="campaign" value=(q.campaign); }
            button type="submit" { "Filter" }
        }
    }
}

/// The items the viewer reviews, with one form to decide the ticked ones.
pub async fn inbox(State(s): State<AppState>, v: Viewer, Query(q): Query<ItemsQuery>) -> Result<Response, WebError> {
    let page_of = Page::new(q.page_token.as_deref(), Some(100), 100, 100)?;
    let list = reviews::items(&s, &caller(&v), &q.query(false)?, page_of).await?;
    // Numbers only: the address cannot put words on the page.
    let refused: Vec<i64> = q.refused.split(',').filter_map(|n| n.trim().parse().ok()).take(20).collect();
    let refused: Vec<String> = refused.iter().map(i64::to_string).collect();
    let content = html! {
        @if let Some(n) = q.decided { p.notice role="status" { (n) " item(s) decided." } }
        @if !refused.is_empty() {
            p.notice role="alert" { "Not decided: item(s) " (refused.join(", ")) ". You may not decide them: your own access, not given to you, decided already, or in a closed campaign; open one to see." }
        }
        @if v.admin { p { a href="/console/reviews/campaigns" { "Campaigns" } } }
        p { "The access given to you to review. Certify what may stay; revoke what must go, with a reason: Cone removes it from AWS at once." }
        (filters(&q, "/console/reviews"))
        @if list.items.is_empty() { p { "Nothing to review." } } @else {
            form.stack method="post" action="/console/reviews/decide" {
                (v.token_field())
                input type="hidden" name="back" value=(link("/console/reviews", &q.pairs()));
                (items_table(&list.items, true))
                label for="comment" { "Comment " span.muted { "(required to revoke)" } }
                textarea #comment name="comment" rows="2" {}
                div.actions {
                    button type="submit" name="decision" value="certify" { "Certify selected" }
                    button.danger type="submit" name="decision" value="revoke" { "Revoke selected" }
                }
            }
        }
        (next_page("/console/reviews", &q.pairs(), list.next_page_token.as_deref(), "More items"))
    };
    Ok(page("Access reviews", &v, Nav::Reviews, content).into_response())
}

fn items_table(items: &[ReviewItem], choose: bool) -> Markup {
    html! {
        table {
            thead { tr {
                @if choose { th scope="col" { "Decide" } }
                th scope="col" { "#" } th scope="col" { "Person" } th scope="col" { "Access" } th scope="col" { "How" }
                th scope="col" { "Campaign" } th scope="col" { "Reviewers" } th scope="col" { "State" } th scope="col" { "Comment" }
            } }
            tbody {
                @for i in items {
                    tr {
                        @if choose {
                            td { input type="checkbox" id=(format!("item-{}", i.id)) name=(format!("item-{}", i.id)) value="on"
                                aria-label=(format!("Select {}: {}", i.user, i.reaches)); }
                        }
                        td { (i.id) }
                        td {
                            @if i.user.is_empty() { "IAM user " (i.iam_user) br; span.muted { "nobody in Cone" } }
                            @else { (i.user) @if !i.display_name.is_empty() { br; span.muted { (i.display_name) } } }
                        }
                        td { (i.reaches) }
                        td { (how(i)) }
                        td { (i.campaign) }
                        td { (i.reviewers.join(", ")) }
                        td { (outcome(i)) }
                        td { (i.comment.as_deref().unwrap_or_default()) }
                    }
                }
            }
        }
    }
}

/// Certifies or revokes the ticked items.
pub async fn decide(State(s): State<AppState>, posted: Posted) -> Result<Response, WebError> {
    let decision = match posted.get("decision") {
        "certify" => ReviewDecision::Certify,
        "revoke" => ReviewDecision::Revoke,
        _ => {
            return Err(WebError::new(
                StatusCode::BAD_REQUEST,
                "No decision",
                "Choose Certify or Revoke; nothing was decided.",
            ));
        }
    };
    let items: Vec<i64> =
        posted.prefixed("item-").filter(|(_, v)| *v == "on").filter_map(|(id, _)| id.parse().ok()).collect();
    if items.is_empty() {
        return Err(WebError::new(
            StatusCode::BAD_REQUEST,
            "Nothing selected",
            "Tick the items to decide, then choose again.",
        ));
    }
    let comment = Some(posted.get("comment").to_string());
    let done = reviews::decide(&s, &caller(&posted.viewer), &ReviewDecide { items, decision, comment }).await?;
    // Back to the same filters, on the viewer's own console only, as an address a header can carry.
    let back = Some(posted.get("back"))
        .filter(|b| b.starts_with("/console/reviews") && b.chars().all(|c| c.is_ascii_graphic()))
        .unwrap_or("/console/reviews");
    let decided = done.decided.len().to_string();
    let refused: Vec<String> = done.refused.iter().map(|r| r.item.to_string()).collect();
    let sep = if back.contains('?') { "&" } else { "?" };
    let query = link("", &[("decided", &decided), ("refused", &refused.join(","))]);
    Ok(Redirect::to(&format!("{back}{sep}{}", query.trim_start_matches('?'))).into_response())
}

#[derive(Deserialize)]
pub struct CampaignsQuery {
    #[serde(default)]
    page_token: Option<String>,
}

/// Every campaign with its progress, and the form to create one.
pub async fn campaigns(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<CampaignsQuery>,
) -> Result<Response, WebError> {
    admins_only(&v)?;
    let list = reviews::campaigns(&s, &caller(&v), Page::new(q.page_token.as_deref(), Some(100), 100, 100)?).await?;
    let templates = reviews::templates(&s, &caller(&v)).await?.templates;
    let due = crate::services::time(s.now() + 14 * 86_400).format("%Y-%m-%d").to_string();
    let content = html! {
        @if list.campaigns.is_empty() { p { "No campaign yet." } } @else {
            table {
                thead { tr { th scope="col" { "#" } th scope="col" { "Name" } th scope="col" { "State" } th scope="col" { "Due" } th scope="col" { "Items" } th scope="col" { "Undecided" } th scope="col" { "Removals under way" } } }
                tbody {
                    @for c in &list.campaigns {
                        tr {
                            td { (c.id) }
                            td { a href=(format!("/console/reviews/campaigns/{}", c.id)) { (c.name) } }
                            td { (state(c)) } td { (when(c.due)) } td { (c.items) } td { (c.pending) } td { (c.revoking) }
                        }
                    }
                }
            }
        }
        (next_page("/console/reviews/campaigns", &[], list.next_page_token.as_deref(), "More campaigns"))
        section aria-labelledby="templates" {
            h2 #templates { "Templates" }
            @if templates.is_empty() {
                p { "The access document has no review templates; its " code { "access_reviews" } " section keeps them, with their schedules (Policies page)." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Template" } th scope="col" { "Due in" } th scope="col" { "Schedule" } th scope="col" { "Last opened" } th scope="col" { "Next" } th scope="col" { "" } } }
                    tbody {
                        @for t in &templates {
                            tr {
                                th scope="row" { (t.name) }
                                td { (cone_core::duration::format(t.due_in_secs)) }
                                td { @match t.every_secs { Some(every) => { "every " (cone_core::duration::format(every)) }, None => "by hand" } }
                                td { @if let Some(at) = t.last_opened_at { (when(at)) } @else { "never" } }
                                td { @if let Some(at) = t.next_at { "after the first sync from " (when(at)) } }
                                td {
                                    form method="post" action=(format!("/console/reviews/templates/{}", t.name)) {
                                        (v.token_field())
                                        button type="submit" { "Open now" }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="new" {
            h2 #new { "New campaign" }
            p { "Snapshots the access in scope as the last sync found it: assignments made directly in Identity Center, group memberships, Cone's active grants and, with the IAM sync, IAM users, IAM group memberships and access keys. Leave a list empty to cover everything." }
            form.stack method="post" action="/console/reviews/campaigns" {
                (v.token_field())
                label for="name" { "Name" } input #name name="name" required placeholder="Production, Q4";
                label for="due" { "Due" } input #due type="date" name="due" value=(due) required;
                label for="accounts" { "Accounts " span.muted { "(names or ids, separated by commas)" } } input #accounts name="accounts";
                label for="permission_sets" { "Permission sets" } input #permission_sets name="permission_sets";
                label for="groups" { "Groups " span.muted { "(Identity Center or IAM: only memberships of these)" } } input #groups name="groups";
                fieldset {
                    legend { "Kinds of access " span.muted { "(none ticked: all)" } }
                    @for k in ReviewItemKind::ALL {
                        div.check { input type="checkbox" id=(format!("kind-{}", k.as_str())) name=(format!("kind-{}", k.as_str())) value="on";
                            label for=(format!("kind-{}", k.as_str())) { (k.as_str()) } }
                    }
                }
                label for="reviewers" { "Reviewers" }
                select #reviewers name="reviewers" {
                    option value="manager" { "each person's manager" }
                    option value="owners" { "the app's owners" }
                    option value="group" { "members of a group" }
                    option value="users" { "named people" }
                }
                label for="names" { "The group, or the people " span.muted { "(for those two choices)" } } input #names name="names";
                label for="fallback" { "Fallback reviewers " span.muted { "(for items nobody else may review)" } } input #fallback name="fallback";
                button type="submit" { "Create campaign" }
            }
        }
    };
    Ok(page("Review campaigns", &v, Nav::Reviews, content).into_response())
}

fn list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

pub async fn create(State(s): State<AppState>, posted: Posted) -> Result<Response, WebError> {
    let bad = |what: String| WebError::new(StatusCode::BAD_REQUEST, "Cannot create the campaign", what);
    let due = NaiveDate::parse_from_str(posted.get("due"), "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .ok_or_else(|| bad("Give the due date as a date, such as 2026-12-31.".into()))?
        .and_utc();
    let names = list(posted.get("names"));
    let from = match posted.get("reviewers") {
        "owners" => ReviewersFrom::Owners,
        "group" => ReviewersFrom::Group,
        "users" => ReviewersFrom::Users,
        _ => ReviewersFrom::Manager,
    };
    let kinds =
        posted.prefixed("kind-").filter(|(_, v)| *v == "on").filter_map(|(k, _)| ReviewItemKind::parse(k)).collect();
    let req = NewReviewCampaign {
        name: posted.get("name").to_string(),
        due,
        scope: ReviewScope {
            accounts: list(posted.get("accounts")),
            permission_sets: list(posted.get("permission_sets")),
            groups: list(posted.get("groups")),
            kinds,
        },
        reviewers: Reviewers {
            from,
            group: (from == ReviewersFrom::Group).then(|| names.first().cloned()).flatten(),
            users: if from == ReviewersFrom::Users { names } else { Vec::new() },
            fallback: list(posted.get("fallback")),
        },
    };
    let c = reviews::create(&s, &caller(&posted.viewer), req).await?;
    Ok(Redirect::to(&format!("/console/reviews/campaigns/{}?created=1", c.id)).into_response())
}

/// Opens a campaign from a template of the access document now.
pub async fn open_template(
    State(s): State<AppState>,
    Path(name): Path<String>,
    posted: Posted,
) -> Result<Response, WebError> {
    let c = reviews::create_from_template(&s, &caller(&posted.viewer), &name).await?;
    Ok(Redirect::to(&format!("/console/reviews/campaigns/{}?created=1", c.id)).into_response())
}

fn state(c: &ReviewCampaign) -> &str {
    if c.overdue { "overdue" } else { &c.state }
}

#[derive(Deserialize)]
pub struct CampaignQuery {
    #[serde(default)]
    created: Option<u8>,
    #[serde(default)]
    page_token: Option<String>,
}

/// A campaign: its scope, each reviewer's progress and every item with its outcome. It prints as evidence.
pub async fn campaign(
    State(s): State<AppState>,
    v: Viewer,
    Path(id): Path<i64>,
    Query(q): Query<CampaignQuery>,
) -> Result<Response, WebError> {
    admins_only(&v)?;
    let c = reviews::campaign(&s, &caller(&v), id).await?;
    let query = ItemsQuery { campaign: id.to_string(), state: "any".into(), ..ItemsQuery::default() };
    let items =
        reviews::items(&s, &caller(&v), &query.query(true)?, Page::new(q.page_token.as_deref(), Some(100), 100, 100)?)
            .await?;
    let report = |format: &str| format!("/console/reviews/campaigns/{id}/report?format={format}");
    let scope = |list: &[String]| if list.is_empty() { "all".to_string() } else { list.join(", ") };
    let content = html! {
        @if q.created.is_some() { p.notice role="status" { "Campaign created with " (c.items) " items." } }
        dl {
            dt { "State" } dd { (state(&c)) @if let Some(closed) = c.closed_at { " on " (when(closed)) } }
            dt { "Due" } dd { (when(c.due)) }
            dt { "Items" } dd { (c.items) ", " (c.pending) " undecided, " (c.revoking) " removals under way" }
            dt { "Accounts" } dd { (scope(&c.scope.accounts)) }
            dt { "Permission sets" } dd { (scope(&c.scope.permission_sets)) }
            dt { "Groups" } dd { (scope(&c.scope.groups)) }
            dt { "Created" } dd { (when(c.created_at)) " by " (c.created_by) }
            @if let Some(t) = &c.template { dt { "Template" } dd { (t) } }
        }
        p { a href=(report("csv")) { "Download the report (CSV)" } " · " a href=(report("jsonl")) { "Download the report (JSON Lines)" } }
        @if c.state == "open" {
            form method="post" action=(format!("/console/reviews/campaigns/{id}/close")) {
                (v.token_field())
                button type="submit" { "Close the campaign" }
            }
        }
        section aria-labelledby="progress" {
            h2 #progress { "Reviewers" }
            table {
                thead { tr { th scope="col" { "Reviewer" } th scope="col" { "Left" } th scope="col" { "Items" } } }
                tbody { @for p in &c.progress { tr { td { (p.reviewer) } td { (p.left) } td { (p.items) } } } }
            }
        }
        section aria-labelledby="items" {
            h2 #items { "Items" }
            (items_table(&items.items, false))
            (next_page(&format!("/console/reviews/campaigns/{id}"), &[], items.next_page_token.as_deref(), "More items"))
        }
    };
    Ok(page(&format!("Review campaign: {}", c.name), &v, Nav::Reviews, content).into_response())
}

pub async fn close(State(s): State<AppState>, Path(id): Path<i64>, posted: Posted) -> Result<Response, WebError> {
    reviews::close(&s, &caller(&posted.viewer), id).await?;
    Ok(Redirect::to(&format!("/console/reviews/campaigns/{id}")).into_response())
}

#[derive(Deserialize)]
pub struct ReportQuery {
    #[serde(default)]
    format: String,
}

pub async fn report(
    State(s): State<AppState>,
    v: Viewer,
    Path(id): Path<i64>,
    Query(q): Query<ReportQuery>,
) -> Result<Response, WebError> {
    admins_only(&v)?;
    let format = Format::parse(Some(q.format.as_str()))?;
    let body = reviews::report(&s, &caller(&v), id, format).await?;
    let headers = [
        (header::CONTENT_TYPE, format.content_type().to_string()),
        (header::CONTENT_DISPOSITION, format.attachment(id)),
    ];
    Ok((headers, body).into_response())
}
