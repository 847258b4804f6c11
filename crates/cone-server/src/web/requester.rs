//! Requesters' pages: the catalog (app → account → permission set), the request form with the policy's fields,
//! and their requests and grants, with release and extend.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cone_api::{CreateTask, Entitlement, FieldType, FormField, Task, TaskKind, TaskState};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;

use super::filters::Who;
use super::layout::{Nav, Viewer, WebError, link, next_page, page, when};
use super::session::Posted;
use crate::error::Error;
use crate::services::Page;
use crate::services::entitlements::{self, group_names};
use crate::services::tasks::{self, Narrow, Scope, States};
use crate::state::AppState;

/// Where a form field's value travels: `form.<name>`, apart from the request's own fields.
const FORM_PREFIX: &str = "form.";

/// The catalog's search: its words, account and kind, kept in the page's address so that a search can be shared.
#[derive(Deserialize)]
pub struct CatalogQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    account: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    page_token: Option<String>,
}

/// Entitlements a catalog page lists.
const CATALOG_PAGE: i64 = 100;

pub async fn catalog(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<CatalogQuery>,
) -> Result<Response, WebError> {
    let (words, account, kind) = (q.q.trim(), q.account.trim(), q.kind.trim());
    let search = entitlements::Search {
        words: Some(words).filter(|w| !w.is_empty()),
        account: Some(account).filter(|a| !a.is_empty()),
        kind: Some(kind).filter(|k| !k.is_empty()),
    };
    let searching = search.words.is_some() || search.account.is_some() || search.kind.is_some();
    let found = entitlements::page(
        &s,
        &v.user,
        search,
        Page::new(q.page_token.as_deref(), Some(CATALOG_PAGE), CATALOG_PAGE, CATALOG_PAGE)?,
        true,
    )
    .await?;
    let facets = found.facets.unwrap_or_default();
    let matches: usize =
        facets.kinds.iter().filter(|f| search.kind.is_none_or(|k| k == f.value)).map(|f| f.count).sum();
    let mut apps: BTreeMap<&str, BTreeMap<(&str, &str), Vec<&Entitlement>>> = BTreeMap::new();
    for e in &found.entitlements {
        let accounts = apps.entry(e.app_id.as_str()).or_default();
        accounts.entry((e.resource_name.as_str(), e.account_id.as_str())).or_default().push(e);
    }
    let content = html! {
        p { "What you may request. Access is given for a limited time and removed when it ends." }
        form.filters role="search" method="get" action="/console" {
            div.field { label for="q" { "Search" } input #q type="search" name="q" value=(words) placeholder="prod admin"; }
            div.field {
                label for="account" { "Account" }
                select #account name="account" {
                    option value="" { "All accounts" }
                    // Identity Center groups belong to no account: the kind finds them.
                    @for f in facets.accounts.iter().filter(|f| !f.value.is_empty()) {
                        option value=(f.value) selected[f.value == account || f.label.eq_ignore_ascii_case(account)] { (f.label) " (" (f.count) ")" }
                    }
                }
            }
            div.field {
                label for="kind" { "Kind" }
                select #kind name="kind" {
                    option value="" { "All kinds" }
                    @for f in &facets.kinds {
                        option value=(f.value) selected[f.value == kind] { (f.label) " (" (f.count) ")" }
                    }
                }
            }
            button type="submit" { "Search" }
        }
        @if searching {
            p role="status" { (matches) @if matches == 1 { " entitlement matches." } @else { " entitlements match." } " " a href="/console" { "Show everything" } }
        }
        @if apps.is_empty() && !searching {
            p.notice { "Nothing is offered to you yet. Ask a Cone administrator which access profiles include you." }
        }
        @for (app_id, accounts) in &apps {
            section aria-labelledby=(format!("app-{app_id}")) {
                h2 #(format!("app-{app_id}")) { "App: " (app_id) }
                @for ((account, account_id), list) in accounts {
                    // Identity Center groups belong to no account; IAM groups are listed under theirs.
                    @if account_id.is_empty() {
                        h3 { "Identity Center groups" }
                    } @else {
                        h3 { (account) " " span.muted { "(account " (account_id) ")" } }
                    }
                    table {
                        thead { tr { th scope="col" { "Access" } th scope="col" { "Longest grant" } th scope="col" { "Your access" } th scope="col" { span.visually-hidden { "Action" } } } }
                        tbody {
                            @for e in list {
                                tr {
                                    th scope="row" {
                                        (e.display_name)
                                        @match e.kind.as_str() {
                                            cone_api::KIND_AWS_IDC_GROUP_MEMBERSHIP => { " " span.muted { "(group membership)" } }
                                            cone_api::KIND_AWS_IAM_GROUP_MEMBERSHIP => { " " span.muted { "(IAM group membership)" } }
                                            _ => {}
                                        }
                                    }
                                    td { (duration(e.max_duration_secs)) }
                                    td {
                                        @match (e.granted_until, e.held_through_groups.is_empty()) {
                                            (_, false) => { span.state.granted { "through " (group_names(&e.held_through_groups)) } }
                                            (Some(t), true) => { span.state.granted { "granted until " (when(t)) } }
                                            (None, true) => { "none" }
                                        }
                                    }
                                    td {
                                        // A request for access held through a group is refused: there is nothing to ask for.
                                        @if e.held_through_groups.is_empty() {
                                            @let verb = if e.granted_until.is_some() { "Extend" } else { "Request" };
                                            a.button href=(request_link(e)) aria-label=(format!("{verb} {} on {}", e.display_name, e.resource_name)) { (verb) }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        (next_page("/console", &[("q", words), ("account", account), ("kind", kind)], found.next_page_token.as_deref(), "More entitlements"))
    };
    Ok(page("Catalog", &v, Nav::Catalog, content).into_response())
}

fn request_link(e: &Entitlement) -> String {
    link("/console/request", &[("app_id", &e.app_id), ("entitlement_id", &e.id)])
}

fn duration(secs: i64) -> String {
    cone_core::duration::format(secs)
}

/// Absent ids read as empty, so that a bad link is answered as an entitlement not found, on a page.
#[derive(Deserialize)]
pub struct EntitlementQuery {
    #[serde(default)]
    app_id: String,
    #[serde(default)]
    entitlement_id: String,
}

/// What the requester typed, and what is wrong with it, to show the form again.
#[derive(Default)]
struct Filled {
    duration: String,
    justification: String,
    emergency: bool,
    values: HashMap<String, String>,
    errors: HashMap<String, String>,
    /// A problem with the request as a whole.
    problem: Option<Markup>,
}

pub async fn request_page(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<EntitlementQuery>,
) -> Result<Response, WebError> {
    let e = entitlements::entitlement_for(&s, &v.user, &q.app_id, &q.entitlement_id).await?;
    let filled = Filled { duration: duration(s.config.default_duration.min(e.max_duration_secs)), ..Filled::default() };
    Ok(request_form(&v, &e, &filled, StatusCode::OK))
}

fn request_form(v: &Viewer, e: &Entitlement, f: &Filled, status: StatusCode) -> Response {
    let extend = e.granted_until.is_some();
    let title = if extend { "Extend access" } else { "Request access" };
    let content = html! {
        p { strong { (e.display_name) } " on " strong { (e.resource_name) } " (account " (e.account_id) ", app " (e.app_id) ")" }
        @if let Some(until) = e.granted_until {
            p.notice { "You hold this access until " (when(until)) ". An extension adds time to the same grant, if the policy allows." }
        }
        @if let Some(problem) = &f.problem { div.error role="alert" { (problem) } }
        @if !f.errors.is_empty() {
            div.error role="alert" {
                p { "The request was not sent. Correct these fields and submit again:" }
                ul { @for (name, message) in in_form_order(e, &f.errors) { li { a href=(format!("#{}", field_id(name))) { (label_of(name)) } ": " (message) } } }
            }
        }
        form.stack method="post" action="/console/request" novalidate {
            (v.token_field())
            input type="hidden" name="app_id" value=(e.app_id);
            input type="hidden" name="entitlement_id" value=(e.id);
            (text_field(f, "duration", "Duration", &format!("Such as 30m, 1h or 1h30m; at most {}.", duration(e.max_duration_secs)), false, &f.duration))
            (field_wrap(f, "justification", "Justification", "Why you need this access; approvers read it.", false, |attrs| html! {
                textarea #(attrs.id) name="justification" rows="3" aria-describedby=(attrs.described) aria-invalid=[attrs.invalid] { (f.justification) }
            }))
            @if !extend && !e.form.is_empty() {
                fieldset {
                    legend { "Request form" }
                    @for field in &e.form { (form_field(f, field)) }
                }
            }
            @if !extend && e.emergency_access {
                fieldset {
                    legend { "Emergency" }
                    label.check {
                        input type="checkbox" name="emergency" value="on" checked[f.emergency] aria-describedby="emergency-hint";
                        " Break glass: follow the emergency policy"
                    }
                    p.hint #emergency-hint { "Only for an incident: it needs a justification, and every use is audited and reviewed." }
                }
            }
            button type="submit" { @if extend { "Request more time" } @else { "Submit request" } }
        }
    };
    (status, page(title, v, Nav::Catalog, content)).into_response()
}

/// The errors in the order of the fields on the page.
fn in_form_order<'a>(e: &Entitlement, errors: &'a HashMap<String, String>) -> Vec<(&'a String, &'a String)> {
    let rank = |name: &str| match name {
        "duration" => 0,
        "justification" => 1,
        _ => 2 + e.form.iter().position(|f| f.name == name).unwrap_or(e.form.len()),
    };
    let mut list: Vec<_> = errors.iter().collect();
    list.sort_by_key(|(name, _)| (rank(name), name.as_str()));
    list
}

fn label_of(name: &str) -> &str {
    match name {
        "duration" => "Duration",
        "justification" => "Justification",
        _ => name,
    }
}

fn field_id(name: &str) -> String {
    let safe: String =
        name.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' || c == '_' { c } else { '-' }).collect();
    format!("field-{safe}")
}

/// What a control needs to point at its hint and error.
struct Attrs {
    id: String,
    described: String,
    invalid: Option<&'static str>,
}

/// A labelled control with its hint and, after a failed submission, its error.
fn field_wrap(
    f: &Filled,
    name: &str,
    label: &str,
    hint: &str,
    required: bool,
    control: impl FnOnce(Attrs) -> Markup,
) -> Markup {
    let id = field_id(name);
    let error = f.errors.get(name);
    let (hint_id, error_id) = (format!("{id}-hint"), format!("{id}-error"));
    let described = if error.is_some() { format!("{hint_id} {error_id}") } else { hint_id.clone() };
    html! {
        div.field {
            label for=(id) { (label) @if required { " " span.required { "(required)" } } }
            @if let Some(message) = error { p.field-error #(error_id) { (message) } }
            (control(Attrs { id: id.clone(), described, invalid: error.map(|_| "true") }))
            @if !hint.is_empty() { p.hint #(hint_id) { (hint) } }
        }
    }
}

fn text_field(f: &Filled, name: &str, label: &str, hint: &str, required: bool, value: &str) -> Markup {
    field_wrap(f, name, label, hint, required, |a| {
        html! {
            input #(a.id) name=(name) value=(value) aria-describedby=(a.described) aria-invalid=[a.invalid];
        }
    })
}

/// One of the policy's typed fields, named `form.<name>`.
fn form_field(f: &Filled, field: &FormField) -> Markup {
    let name = format!("{FORM_PREFIX}{}", field.name);
    let value = f.values.get(&field.name).map_or("", String::as_str);
    let mut hint = field.description.clone();
    let limits = match field.kind {
        FieldType::Integer => match (field.min, field.max) {
            (Some(lo), Some(hi)) => format!("A whole number from {lo} to {hi}."),
            (Some(lo), None) => format!("A whole number, at least {lo}."),
            (None, Some(hi)) => format!("A whole number, at most {hi}."),
            (None, None) => "A whole number.".to_string(),
        },
        FieldType::StringList => match field.max_items {
            Some(n) => format!("One item a line, at most {n}."),
            None => "One item a line.".to_string(),
        },
        FieldType::String | FieldType::Bool => String::new(),
    };
    if !limits.is_empty() {
        hint = if hint.is_empty() { limits } else { format!("{hint} {limits}") };
    }
    // Errors are keyed by the form's own field names, as the server's check reports them.
    field_wrap(f, &field.name, &field.name, &hint, field.required, |a| match field.kind {
        FieldType::Bool => html! {
            input #(a.id) type="checkbox" name=(name) value="true" checked[value == "true"] aria-describedby=(a.described) aria-invalid=[a.invalid];
        },
        FieldType::StringList => html! {
            textarea #(a.id) name=(name) rows="3" aria-describedby=(a.described) aria-invalid=[a.invalid] { (value) }
        },
        FieldType::Integer => html! {
            input #(a.id) name=(name) value=(value) inputmode="numeric" aria-describedby=(a.described) aria-invalid=[a.invalid];
        },
        FieldType::String => html! {
            input #(a.id) name=(name) value=(value) aria-describedby=(a.described) aria-invalid=[a.invalid];
        },
    })
}

/// The typed values the server's form check takes, from the text a browser sends. A value that does not read as
/// its type is passed on as text, so that the check names the field and says what it must be.
fn form_data(fields: &[FormField], values: &HashMap<String, String>) -> BTreeMap<String, Value> {
    let mut data = BTreeMap::new();
    for field in fields {
        let raw = values.get(&field.name).map_or("", |v| v.trim());
        let value = match field.kind {
            FieldType::String => Value::String(raw.to_string()),
            // An unticked box sends nothing.
            FieldType::Bool => Value::Bool(raw == "true"),
            FieldType::Integer if raw.is_empty() => Value::Null,
            FieldType::Integer => raw.parse::<i64>().map_or_else(|_| Value::String(raw.to_string()), Value::from),
            FieldType::StringList => raw.lines().map(|l| Value::String(l.to_string())).collect(),
        };
        data.insert(field.name.clone(), value);
    }
    data
}

pub async fn submit(State(s): State<AppState>, posted: Posted) -> Result<Response, WebError> {
    let v = &posted.viewer;
    let e = entitlements::entitlement_for(&s, &v.user, posted.get("app_id"), posted.get("entitlement_id")).await?;
    let mut filled = Filled {
        duration: posted.get("duration").to_string(),
        justification: posted.get("justification").to_string(),
        emergency: posted.get("emergency") == "on",
        values: posted.prefixed(FORM_PREFIX).map(|(n, v)| (n.to_string(), v.to_string())).collect(),
        ..Filled::default()
    };
    let extend = e.granted_until.is_some();
    let data = if extend { BTreeMap::new() } else { form_data(&e.form, &filled.values) };
    let duration_secs = match filled.duration.trim() {
        "" => None,
        text => match cone_core::duration::parse(text) {
            Ok(secs) => Some(secs),
            Err(message) => {
                // Check the form too, so that every problem shows at once.
                filled.errors.insert("duration".into(), message);
                if let Err(problems) = cone_core::form::validate(&e.form, &data) {
                    filled.errors.extend(problems.into_iter().map(|p| (p.field, p.message)));
                }
                return Ok(request_form(v, &e, &filled, StatusCode::BAD_REQUEST));
            }
        },
    };
    let request = CreateTask {
        app_id: e.app_id.clone(),
        entitlement_id: e.id.clone(),
        justification: filled.justification.clone(),
        duration_secs,
        form_data: data,
        emergency: !extend && filled.emergency,
    };
    match tasks::create(&s, &v.user, request).await {
        Ok(task) => Ok(Redirect::to(&format!("/console/requests?submitted={}", task.id)).into_response()),
        Err(Error::Internal(e)) => Err(Error::Internal(e).into()),
        Err(refused) => {
            let status = refused.status_and_code().0;
            match refused {
                Error::Invalid { fields, .. } | Error::InvalidForm(fields) if !fields.is_empty() => {
                    filled.errors.extend(fields.into_iter().map(|f| (f.field, f.message)));
                }
                Error::PendingRequestExists { task_id } => {
                    filled.problem = Some(html! {
                        p { "You already have a pending request for this access (request " (task_id) "). "
                            a href="/console/requests" { "See your requests" } "." }
                    });
                }
                other => filled.problem = Some(html! { p { (other.to_string()) } }),
            }
            Ok(request_form(v, &e, &filled, status))
        }
    }
}

/// Moves one's own undecided request to its policy's emergency steps (break-glass).
pub async fn escalate(State(s): State<AppState>, Path(id): Path<i64>, posted: Posted) -> Result<Response, WebError> {
    let task = tasks::escalate(&s, &posted.viewer.user, id).await?;
    Ok(Redirect::to(&format!("/console/requests?escalated={}", task.id)).into_response())
}

#[derive(Deserialize)]
pub struct Done {
    /// The requests list's filters: account and permission set (the requester is the viewer), and `open` or
    /// `closed` (all when empty).
    #[serde(flatten)]
    who: Who,
    #[serde(default)]
    state: String,
    #[serde(default)]
    page_token: Option<String>,
    #[serde(default)]
    escalated: Option<i64>,
    #[serde(default)]
    submitted: Option<i64>,
    #[serde(default)]
    released: Option<usize>,
    #[serde(default)]
    withdrawn: Option<i64>,
}

pub async fn my_requests(State(s): State<AppState>, v: Viewer, Query(done): Query<Done>) -> Result<Response, WebError> {
    let entitlements = entitlements::held_by(&s, &v.user).await?;
    let held: Vec<&Entitlement> = entitlements.iter().filter(|e| e.granted_until.is_some()).collect();
    let through_groups: Vec<&Entitlement> = entitlements.iter().filter(|e| !e.held_through_groups.is_empty()).collect();
    let requested = Page::new(done.page_token.as_deref(), Some(50), 50, 50)?;
    let offset = requested.offset;
    let states = match done.state.as_str() {
        "open" => Some(States::Open),
        "closed" => Some(States::Closed),
        _ => None,
    };
    let narrow = Narrow { user: None, ..done.who.narrow(states) };
    let filtered = narrow.states.is_some() || narrow.account.is_some() || narrow.permission_set.is_some();
    let page_of = tasks::search(&s, &v.user, Scope::Mine, narrow, requested).await?;
    let (tasks, next) = (page_of.tasks, page_of.next_page_token);
    // Undecided requests whose policy has emergency steps may be escalated to them.
    let mut breakable = std::collections::HashSet::new();
    for t in tasks.iter().filter(|t| t.state == TaskState::PendingApproval && !t.emergency) {
        if entitlements::emergency_access(&s, &t.app_id, &t.entitlement_id).await? {
            breakable.insert(t.id);
        }
    }
    let content = html! {
        @if let Some(id) = done.submitted {
            p.notice role="status" { "Request " (id) " submitted. " (submitted_state(&tasks, id)) }
        }
        @if let Some(n) = done.released {
            p.notice role="status" { @if n == 0 { "There was nothing to release." } @else { "Access released; Cone is removing it from AWS." } }
        }
        @if let Some(id) = done.withdrawn { p.notice role="status" { "Request " (id) " withdrawn." } }
        @if let Some(id) = done.escalated {
            p.notice role="status" { "Request " (id) " follows the emergency policy now. " (submitted_state(&tasks, id)) }
        }
        section aria-labelledby="grants" {
            h2 #grants { "Active access" }
            @if held.is_empty() {
                p { "You hold no access now. " a href="/console" { "Request some in the catalog" } "." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Access" } th scope="col" { "Until" } th scope="col" { "Extend" } th scope="col" { "Release" } } }
                    tbody { @for (i, e) in held.iter().enumerate() { (grant_row(&v, e, i)) } }
                }
            }
        }
        @if !through_groups.is_empty() {
            section aria-labelledby="groups" {
                h2 #groups { "Access through your groups" }
                p { "Identity Center assigns these to groups you are in; they have no end here and are managed in IAM Identity Center, not through Cone." }
                table {
                    thead { tr { th scope="col" { "Access" } th scope="col" { "Through" } } }
                    tbody {
                        @for e in &through_groups {
                            tr { th scope="row" { (e.display_name) " on " (e.resource_name) } td { (group_names(&e.held_through_groups)) } }
                        }
                    }
                }
            }
        }
        section aria-labelledby="requests" {
            h2 #requests { "Requests" }
            form.filters method="get" action="/console/requests" {
                (done.who.target_fields())
                div.field {
                    label for="state" { "Showing" }
                    select #state name="state" {
                        option value="" { "All" }
                        option value="open" selected[done.state == "open"] { "Open requests" }
                        option value="closed" selected[done.state == "closed"] { "Decided and ended" }
                    }
                }
                button type="submit" { "Filter" }
            }
            @if tasks.is_empty() && offset == 0 {
                p { @if filtered { "None of your requests match." } @else { "You have made no requests yet." } }
            } @else {
                table {
                    thead { tr { th scope="col" { "#" } th scope="col" { "Access" } th scope="col" { "State" } th scope="col" { "Duration" } th scope="col" { "Requested" } th scope="col" { "Details" } } }
                    tbody {
                        @for t in &tasks {
                            tr #(format!("task-{}", t.id)) {
                                td { a href=(format!("/console/tasks/{}", t.id)) aria-label=(format!("Request {}", t.id)) { (t.id) } }
                                th scope="row" { (t.entitlement_name) @if t.kind == TaskKind::Extend { " " span.muted { "(extension)" } } }
                                td { (state(t.state)) }
                                td { (duration(t.duration_secs)) }
                                td { (when(t.created_at)) }
                                td {
                                    (details(t))
                                    @if !t.justification.is_empty() { span.muted { "Why: " (t.justification) } }
                                    @if t.state == TaskState::PendingApproval {
                                        form.inline method="post" action=(format!("/console/tasks/{}/withdraw", t.id)) {
                                            (v.token_field())
                                            button.danger type="submit" aria-label=(format!("Withdraw request {}", t.id)) { "Withdraw" }
                                        }
                                        @if breakable.contains(&t.id) {
                                            form.inline method="post" action=(format!("/console/tasks/{}/escalate", t.id)) {
                                                (v.token_field())
                                                button.danger type="submit" aria-label=(format!("Escalate request {} to emergency access", t.id)) { "Escalate" }
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
            (next_page("/console/requests", &[("account", &done.who.account), ("permission_set", &done.who.permission_set), ("state", &done.state)], next.as_deref(), "Older requests"))
        }
    };
    Ok(page("My requests and access", &v, Nav::Requests, content).into_response())
}

fn submitted_state(tasks: &[Task], id: i64) -> String {
    match tasks.iter().find(|t| t.id == id).map(|t| t.state) {
        Some(TaskState::PendingApproval) => "It waits for approval; it appears below with whom it waits for.".into(),
        Some(TaskState::Provisioning | TaskState::Granted) => {
            "It was approved; the access appears below once AWS has it.".into()
        }
        Some(other) => format!("It is {}.", other.words()),
        None => String::new(),
    }
}

fn grant_row(v: &Viewer, e: &Entitlement, i: usize) -> Markup {
    let extend_id = format!("extend-{i}");
    html! {
        tr {
            th scope="row" { (e.display_name) " on " (e.resource_name) }
            td { @if let Some(t) = e.granted_until { (when(t)) } }
            td {
                form.inline method="post" action="/console/request" {
                    (v.token_field())
                    input type="hidden" name="app_id" value=(e.app_id);
                    input type="hidden" name="entitlement_id" value=(e.id);
                    label.visually-hidden for=(extend_id) { "More time for " (e.display_name) " on " (e.resource_name) }
                    input #(extend_id) name="duration" value="1h" size="5";
                    button type="submit" { "Extend" }
                }
            }
            td {
                form.inline method="post" action="/console/release" {
                    (v.token_field())
                    input type="hidden" name="app_id" value=(e.app_id);
                    input type="hidden" name="entitlement_id" value=(e.id);
                    button.danger type="submit" aria-label=(format!("Release {} on {}", e.display_name, e.resource_name)) { "Release now" }
                }
            }
        }
    }
}

pub fn state(state: TaskState) -> Markup {
    html! { span class=(format!("state {}", state.as_str())) { (state.words()) } }
}

/// Whom a task waits for, why it ended, or when its grant ends.
pub fn details(t: &Task) -> Markup {
    html! {
        @if let Some(w) = &t.waiting_for { "Waiting for " (w) ". " }
        @if let Some((by, why)) = t.withdrawal() { "Withdrawn by " (by) ": “" (why) "”. " }
        @else if t.ended_by.as_deref() == Some(t.requester.as_str()) { "Given back. " }
        @else { @match (&t.decided_by, &t.reason) {
            (Some(by), Some(comment)) if !comment.is_empty() => { "Decided by " (by) ": “" (comment) "”. " }
            (Some(by), _) => { "Decided by " (by) ". " }
            (None, Some(reason)) => { (reason) ". " }
            (None, None) => {}
        } }
        @if let (Some(end), TaskState::Granted) = (t.grant_expires_at, t.state) { "Until " (when(end)) ". " }
    }
}

pub async fn release(State(s): State<AppState>, posted: Posted) -> Result<Response, WebError> {
    let result =
        tasks::drop_access(&s, &posted.viewer.user, posted.get("app_id"), posted.get("entitlement_id")).await?;
    Ok(Redirect::to(&format!("/console/requests?released={}", result.tasks.len())).into_response())
}

pub async fn withdraw(State(s): State<AppState>, Path(id): Path<i64>, posted: Posted) -> Result<Response, WebError> {
    tasks::cancel(&s, &posted.viewer.user, id).await?;
    Ok(Redirect::to(&format!("/console/requests?withdrawn={id}")).into_response())
}
