//! The administrators' Apps page: the AWS app's connector and catalog, its entitlement management (which accounts'
//! entitlements may be requested and through which access profile) with a form for the default rule, the access
//! profiles and the policies' request forms. The form edits the access document's `entitlement_management`
//! section only and applies it as a new version through `services::access::apply`, like the Policies page.

use std::collections::BTreeMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use cone_api::{ApplyConfig, FieldType, FormField};
use cone_core::catalog::{Audience, Catalog, ManagementRule, Selector};
use maud::{Markup, html};

use super::admin::admins_only;
use super::layout::{Nav, Viewer, WebError, page, when};
use super::policies::Done;
use super::session::Posted;
use crate::config::Access;
use crate::error::Error;
use crate::services::{access, entitlements, operations};
use crate::state::AppState;
use crate::store::EntitlementRow;

const SECTION: &str = "entitlement_management";

pub async fn apps(State(s): State<AppState>, v: Viewer, Query(done): Query<Done>) -> Result<Response, WebError> {
    admins_only(&v)?;
    let notice = match (done.applied, done.unchanged) {
        (Some(n), _) => Some(format!("Version {n} of the access document applied; it is in force for new requests.")),
        (None, Some(n)) => {
            Some(format!("That is the rule in force already; version {n} stays, and nothing was recorded."))
        }
        (None, None) => None,
    };
    apps_page(&s, &v, notice.as_deref(), None, StatusCode::OK).await
}

async fn apps_page(
    s: &AppState,
    v: &Viewer,
    notice: Option<&str>,
    error: Option<&str>,
    status: StatusCode,
) -> Result<Response, WebError> {
    let current = access::in_force(s).await?;
    let access = s.access();
    let entitlements = entitlements::all(s).await?;
    let sync = operations::connector(s);
    let catalog = &access.catalog;
    let default = default_rule(catalog);
    let content = html! {
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        section aria-labelledby="app" {
            h2 #app { "AWS" }
            dl {
                dt { "App id" } dd { code { (sync.app_id) } }
                dt { "Connector" } dd { span class=(format!("state {}", sync.state)) { (sync.state) } " " a href="/console/connectors" { "details" } }
                dt { "Last sync" } dd { @match sync.last_success_at { Some(t) => { (when(t)) } None => { span.muted { "never" } } } }
                dt { "Catalog" } dd { (plural(accounts(&entitlements).len(), "account")) ", " (plural(entitlements.len(), "entitlement")) " (a permission set on an account each)" }
            }
        }
        section aria-labelledby="management" {
            h2 #management { "Entitlement management" }
            p {
                @if catalog.rules.is_empty() {
                    "No rules: every entitlement may be requested, by whoever sees it."
                } @else {
                    (plural(catalog.rules.len(), "rule")) ", in version " (current.version) " of the access document; the first that matches an entitlement decides, and what none matches cannot be requested."
                }
            }
            (account_table(catalog, &entitlements))
            h3 { "Default configuration rule" }
            p.hint { "Applies to every account no rule above it matches. Other rules are edited on the " a href="/console/policies" { "Policies" } " page." }
            form.stack method="post" action="/console/apps" {
                (v.token_field())
                input type="hidden" name="base_version" value=(current.version);
                label.check {
                    input type="checkbox" name="enabled" value="on" checked[default.as_ref().is_none_or(|r| r.requestable)];
                    " Enable requesting the accounts' entitlements"
                }
                label for="access_profile" { "Access profile " span.muted { "(who may request them)" } }
                select #access_profile name="access_profile" {
                    option value="" selected[default.as_ref().is_none_or(|r| r.access_profile.is_none())] { "None: each profile's own entitlements only" }
                    @for p in &catalog.profiles {
                        option value=(p.name) selected[default.as_ref().is_some_and(|r| r.access_profile.as_deref() == Some(&p.name))] {
                            (p.name) " — " (audience(&p.visible_to))
                        }
                    }
                }
                label.check {
                    input type="checkbox" name="confirm" value="on" required;
                    " I understand this changes who may request access to these accounts"
                }
                div.actions { button type="submit" { "Apply" } }
            }
        }
        section aria-labelledby="profiles" {
            h2 #profiles { "Access profiles" }
            @if catalog.profiles.is_empty() {
                p { "No access profiles: everyone sees every requestable entitlement." }
            } @else {
                table {
                    thead { tr { th scope="col" { "Profile" } th scope="col" { "Visible to" } th scope="col" { "Entitlements" } } }
                    tbody {
                        @for p in &catalog.profiles {
                            tr {
                                th scope="row" { (p.name) @if !p.description.is_empty() { br; span.muted { (p.description) } } }
                                td { (audience(&p.visible_to)) }
                                td { (offered(catalog, &p.name, &p.entitlements)) }
                            }
                        }
                    }
                }
            }
        }
        section aria-labelledby="forms" {
            h2 #forms { "Request forms" }
            (forms(&access))
        }
    };
    Ok((status, page("Apps", v, Nav::Apps, content)).into_response())
}

fn plural(n: usize, what: &str) -> String {
    if n == 1 { format!("1 {what}") } else { format!("{n} {what}s") }
}

/// The trailing rule that matches everything, which the form edits.
fn default_rule(catalog: &Catalog) -> Option<ManagementRule> {
    catalog.rules.last().filter(|r| r.matches.is_any()).cloned()
}

/// Account names with their entitlements, in name order.
fn accounts(entitlements: &[EntitlementRow]) -> BTreeMap<&str, Vec<&EntitlementRow>> {
    let mut by_account: BTreeMap<&str, Vec<&EntitlementRow>> = BTreeMap::new();
    for e in entitlements {
        by_account.entry(&e.account_name).or_default().push(e);
    }
    by_account
}

/// Per account: how many of its entitlements may be requested, through which profiles, by which rules.
fn account_table(catalog: &Catalog, entitlements: &[EntitlementRow]) -> Markup {
    let by_account = accounts(entitlements);
    html! {
        @if by_account.is_empty() {
            p.muted { "The catalog is empty until the first sync with AWS." }
        } @else {
            table {
                caption { "Accounts" }
                thead { tr { th scope="col" { "Account" } th scope="col" { "Requestable" } th scope="col" { "Offered through" } th scope="col" { "Decided by" } } }
                tbody {
                    @for (account, rows) in &by_account {
                        @let decided: Vec<_> = rows.iter().map(|e| catalog.rule_for(&e.target())).collect();
                        @let requestable = decided.iter().filter(|r| catalog.rules.is_empty() || r.is_some_and(|(_, r)| r.requestable)).count();
                        @let profiles: std::collections::BTreeSet<&str> = decided.iter().flatten().filter_map(|(_, r)| r.access_profile.as_deref()).collect();
                        @let rules: std::collections::BTreeSet<String> = decided.iter().map(|r| r.map_or("no rule".to_string(), |(i, _)| format!("rule {}", i + 1))).collect();
                        tr {
                            th scope="row" { (account) }
                            td { (requestable) " of " (rows.len()) }
                            td {
                                @if requestable == 0 { span.muted { "nobody" } }
                                @else if catalog.profiles.is_empty() { "everyone (there are no access profiles)" }
                                @else if profiles.is_empty() { span.muted { "the profiles' own entitlements" } }
                                @else { (profiles.into_iter().collect::<Vec<_>>().join(", ")) }
                            }
                            td { (rules.into_iter().collect::<Vec<_>>().join(", ")) }
                        }
                    }
                }
            }
        }
    }
}

fn audience(a: &Audience) -> String {
    if a.everyone {
        return "everyone".into();
    }
    let mut who: Vec<String> = a.users.iter().map(|u| format!("user {u}")).collect();
    who.extend(a.groups.iter().map(|g| format!("group {g}")));
    if who.is_empty() { "nobody".into() } else { who.join(", ") }
}

/// What a profile offers: its own selectors, and the rules that attach entitlements to it.
fn offered(catalog: &Catalog, profile: &str, own: &[Selector]) -> Markup {
    let attached: Vec<usize> = catalog
        .rules
        .iter()
        .enumerate()
        .filter(|(_, r)| r.access_profile.as_deref() == Some(profile))
        .map(|(i, _)| i + 1)
        .collect();
    html! {
        @for s in own { (selector(s)) br; }
        @for i in &attached { "what rule " (i) " matches" br; }
        @if own.is_empty() && attached.is_empty() { span.muted { "nothing" } }
    }
}

fn selector(s: &Selector) -> String {
    match (&s.account, &s.permission_set) {
        (None, None) => "every entitlement".into(),
        (Some(a), None) => format!("every permission set on {a}"),
        (None, Some(p)) => format!("{p} on every account"),
        (Some(a), Some(p)) => format!("{p} on {a}"),
    }
}

fn forms(access: &Access) -> Markup {
    let with_forms: Vec<_> = access.policies().iter().filter(|p| !p.form.is_empty()).collect();
    html! {
        @if with_forms.is_empty() {
            p { "No policy asks for more than a duration and a justification." }
        } @else {
            table {
                thead { tr { th scope="col" { "Policy" } th scope="col" { "Field" } th scope="col" { "Type" } th scope="col" { "Required" } th scope="col" { "Limits" } } }
                tbody {
                    @for p in &with_forms {
                        @for f in &p.form {
                            tr {
                                td { (p.name) }
                                th scope="row" { (f.name) @if !f.description.is_empty() { br; span.muted { (f.description) } } }
                                td { (field_type(f.kind)) }
                                td { @if f.required { "yes" } @else { "no" } }
                                td { (limits(f)) }
                            }
                        }
                    }
                }
            }
        }
    }
}

fn field_type(kind: FieldType) -> &'static str {
    match kind {
        FieldType::String => "text",
        FieldType::Bool => "yes or no",
        FieldType::Integer => "whole number",
        FieldType::StringList => "list of text",
    }
}

fn limits(f: &FormField) -> String {
    let limits = [
        f.min_length.map(|n| format!("at least {n} characters")),
        f.max_length.map(|n| format!("at most {n} characters")),
        f.min.map(|n| format!("at least {n}")),
        f.max.map(|n| format!("at most {n}")),
        f.max_items.map(|n| format!("at most {n} items")),
    ];
    let limits: Vec<String> = limits.into_iter().flatten().collect();
    if limits.is_empty() { "none".into() } else { limits.join(", ") }
}

/// Replaces the default rule with the one the form asks for and applies the document as a new version.
pub async fn change(State(s): State<AppState>, posted: Posted) -> Result<Response, WebError> {
    let v = &posted.viewer;
    admins_only(v)?;
    if posted.get("confirm") != "on" {
        let unconfirmed = "Tick the box that confirms the change; nothing was applied.";
        return apps_page(&s, v, None, Some(unconfirmed), StatusCode::BAD_REQUEST).await;
    }
    let base_version = posted.get("base_version").parse::<i64>().map_err(|_| {
        WebError::new(
            StatusCode::BAD_REQUEST,
            "Cannot read the form",
            "The form lacks the version it was started from, so nothing was applied. Reload the page and try again.",
        )
    })?;
    let current = access::version(&s, base_version).await?;
    let access = s.access();
    let mut rules = access.catalog.rules.clone();
    if default_rule(&access.catalog).is_some() {
        rules.pop();
    }
    let profile = Some(posted.get("access_profile")).filter(|p| !p.is_empty()).map(str::to_string);
    let enabled = posted.get("enabled") == "on";
    rules.push(ManagementRule {
        matches: Selector::default(),
        requestable: enabled,
        access_profile: profile.filter(|_| enabled),
    });
    let section = serde_yaml_ng::to_string(&BTreeMap::from([(SECTION, &rules)])).map_err(anyhow::Error::from)?;
    let Some(document) = cone_core::document::replace_section(&current.document, SECTION, &section) else {
        let flow = "The access document is not written in block style, so this form cannot edit one section of it; change it on the Policies page.";
        return apps_page(&s, v, None, Some(flow), StatusCode::CONFLICT).await;
    };
    let comment = match (enabled, rules.last().and_then(|r| r.access_profile.as_deref())) {
        (false, _) => "Apps page: default rule disables requesting".to_string(),
        (true, None) => "Apps page: default rule enables requesting".to_string(),
        (true, Some(p)) => format!("Apps page: default rule enables requesting through access profile {p}"),
    };
    let req = ApplyConfig { document, comment, base_version: Some(base_version) };
    match access::apply(&s, v.user.id, &req).await {
        Ok(applied) => {
            let key = if applied.changed { "applied" } else { "unchanged" };
            Ok(Redirect::to(&format!("/console/apps?{key}={}", applied.version.version)).into_response())
        }
        Err(Error::Internal(e)) => Err(Error::Internal(e).into()),
        Err(refused) => apps_page(&s, v, None, Some(&refused.to_string()), refused.status_and_code().0).await,
    }
}
