//! Administrators' read-only pages: the audit log with filters, the drift report, how the connector's syncs with
//! AWS stand, and the access-key inventory.

use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use serde::Deserialize;

use super::filters::Who;
use super::layout::{Nav, Viewer, WebError, link, next_page, page, when};
use super::session::Posted;
use crate::services::{Page, audit, iam, operations};
use crate::state::AppState;
use crate::store::{AccessKeyFilter, DriftFilter};

/// The audit page's filters, as its form and links send them.
#[derive(Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    since: String,
    #[serde(default)]
    until: String,
    #[serde(default)]
    action: String,
    #[serde(default)]
    user: String,
    /// `oldest` for the log's order; newest first otherwise.
    #[serde(default)]
    order: String,
    #[serde(default)]
    page_token: Option<String>,
}

impl AuditQuery {
    /// The filters as the page's links carry them.
    fn pairs(&self) -> [(&'static str, &str); 5] {
        [
            ("user", &self.user),
            ("action", &self.action),
            ("since", &self.since),
            ("until", &self.until),
            ("order", &self.order),
        ]
    }

    async fn filter(&self, s: &AppState, page_token: Option<&str>) -> Result<crate::store::AuditFilter, WebError> {
        let filter = audit::filter(Some(&self.since), Some(&self.until), Some(&self.action), page_token)?;
        Ok(audit::by_person(s, filter, &self.user).await?)
    }
}

/// Keys older than this, or unused for this long, are flagged: the rotation period AWS's security guidance and
/// the CIS benchmark recommend.
const STALE_DAYS: i64 = 90;

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

pub async fn audit(State(s): State<AppState>, v: Viewer, Query(q): Query<AuditQuery>) -> Result<Response, WebError> {
    admins_only(&v)?;
    let download = link("/console/audit/export", &q.pairs());
    let mut filter = q.filter(&s, q.page_token.as_deref()).await?;
    filter.newest_first = q.order != "oldest";
    let page_of = audit::page(&s, &filter, Some(100)).await?;
    let names = &page_of.names;
    // A person by name, with the id the log keeps one hover away; anything else as the log has it.
    let who = |raw: &str| -> Markup {
        match names.get(raw) {
            Some(name) => html! { span title=(raw) { (name) } },
            None => html! { (raw) },
        }
    };
    let subject = |raw: &str| -> Markup {
        match raw.strip_prefix("task:") {
            Some(id) => html! { a href=(format!("/console/tasks/{id}")) title=(raw) { "request " (id) } },
            None => who(raw),
        }
    };
    let content = html! {
        p { "Every change Cone made. Entries are hash-chained; " code { "cone-server verify-audit" } " checks the chain." }
        form.filters method="get" action="/console/audit" {
            div.field { label for="user" { "Person" } input #user name="user" value=(q.user) placeholder="alice"; }
            div.field { label for="action" { "Action" } input #action name="action" value=(q.action) placeholder="grant.*"; }
            div.field { label for="since" { "Since" } input #since name="since" value=(q.since) placeholder="2025-01-31"; }
            div.field { label for="until" { "Until" } input #until name="until" value=(q.until) placeholder="2025-02-01T00:00:00Z"; }
            div.field {
                label for="order" { "Order" }
                select #order name="order" {
                    option value="" { "Newest first" }
                    option value="oldest" selected[q.order == "oldest"] { "Oldest first" }
                }
            }
            button type="submit" { "Filter" }
        }
        p { a href=(download) download="cone-audit.jsonl" { "Download the matching entries as JSON Lines" } " (oldest first, as the log keeps them)" }
        @if page_of.entries.is_empty() { p { "No entries match." } } @else {
            table {
                thead { tr { th scope="col" { "#" } th scope="col" { "When" } th scope="col" { "Who" } th scope="col" { "Action" } th scope="col" { "Subject" } th scope="col" { "Details" } } }
                tbody {
                    @for e in &page_of.entries {
                        tr {
                            td { (e.id) } td { (when(e.at)) } td { (who(&e.actor)) } td { code { (e.action) } } td { (subject(&e.subject)) }
                            td.detail { (details(&e.detail)) }
                        }
                    }
                }
            }
        }
        (next_page("/console/audit", &q.pairs(), page_of.next_page_token.as_deref(), "Next page"))
    };
    Ok(page("Audit log", &v, Nav::Audit, content).into_response())
}

/// An entry's details as fields: a JSON object's keys with their values (text as it is, the rest as JSON).
fn details(detail: &serde_json::Value) -> Markup {
    match detail.as_object() {
        Some(fields) if !fields.is_empty() => html! {
            dl.fields {
                @for (key, value) in fields {
                    dt { (key) }
                    dd { @match value.as_str() { Some(text) => (text), None => code { (value.to_string()) } } }
                }
            }
        },
        Some(_) => html! {},
        None => html! { code { (detail.to_string()) } },
    }
}

/// The entries the audit page's filters select, all of them, as a JSON Lines file (the objects of
/// `cone-server export-audit`, which also checks the chain).
pub async fn audit_export(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<AuditQuery>,
) -> Result<Response, WebError> {
    admins_only(&v)?;
    let filter = q.filter(&s, None).await?;
    let headers = [
        (header::CONTENT_TYPE, "application/x-ndjson"),
        (header::CONTENT_DISPOSITION, "attachment; filename=\"cone-audit.jsonl\""),
    ];
    Ok((headers, Body::from_stream(audit::stream(&s, filter))).into_response())
}

#[derive(Deserialize)]
pub struct DriftQuery {
    #[serde(default)]
    kind: String,
    #[serde(flatten)]
    who: Who,
    #[serde(default)]
    page_token: Option<String>,
}

pub async fn drift(State(s): State<AppState>, v: Viewer, Query(q): Query<DriftQuery>) -> Result<Response, WebError> {
    admins_only(&v)?;
    let requested = Page::new(q.page_token.as_deref(), Some(100), 100, 100)?;
    let filter = DriftFilter {
        kind: q.kind.clone(),
        user: q.who.user.clone(),
        account: q.who.account.clone(),
        target: q.who.permission_set.clone(),
    };
    let drift = operations::open_drift(&s, &filter, requested).await?;
    let findings = drift.findings;
    let filtered = [&filter.kind, &filter.user, &filter.account, &filter.target].iter().any(|f| !f.trim().is_empty());
    let content = html! {
        p { "Differences between the account assignments in IAM Identity Center and Cone's grants, and between the group memberships Cone made and those AWS holds, found by the last sweep." }
        form.filters method="get" action="/console/drift" {
            div.field {
                label for="kind" { "Kind" }
                select #kind name="kind" {
                    @for (value, label) in [("", "Any"), ("unexplained", "Unexplained"), ("missing", "Missing")] {
                        option value=(value) selected[q.kind == value] { (label) }
                    }
                }
            }
            div.field { label for="user" { "User" } input #user name="user" value=(q.who.user) placeholder="alice"; }
            (q.who.target_fields())
            button type="submit" { "Filter" }
        }
        @if findings.is_empty() && filtered { p { "No open finding matches." } }
        @else if findings.is_empty() { p.notice { "No drift: every user assignment in AWS is explained by a grant." } } @else {
            table {
                thead { tr { th scope="col" { "Kind" } th scope="col" { "User" } th scope="col" { "Account" } th scope="col" { "Permission set or group" } th scope="col" { "Remedy" } th scope="col" { "Seen" } } }
                tbody {
                    @for f in &findings {
                        tr {
                            td { (f.kind) }
                            td { (f.username.as_deref().unwrap_or(&f.principal_id)) }
                            td { (f.account_name.as_deref().unwrap_or(&f.account_id)) }
                            td {
                                @match &f.group {
                                    Some(group) => { "group " (group) }
                                    None => { (f.permission_set_name.as_deref().unwrap_or(&f.permission_set_arn)) }
                                }
                            }
                            td { (f.remedy.as_deref().unwrap_or("reported only")) }
                            td { (when(f.first_seen)) " – " (when(f.last_seen)) }
                        }
                    }
                }
            }
        }
        (next_page("/console/drift", &[&[("kind", q.kind.as_str())], q.who.pairs().as_slice()].concat(), drift.next_page_token.as_deref(), "Next page"))
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

#[derive(Deserialize)]
pub struct Asked {
    #[serde(default)]
    asked: bool,
    #[serde(default)]
    revoked: bool,
}

pub async fn connectors(State(s): State<AppState>, v: Viewer, Query(q): Query<Asked>) -> Result<Response, WebError> {
    admins_only(&v)?;
    connectors_page(&s, &v, q.asked, q.revoked.then_some(CredentialsShown::Revoked)).await
}

/// What the Connectors page says of the connector's credentials after an administrator changed them.
enum CredentialsShown {
    Issued(cone_api::ConnectorCredentials),
    Revoked,
}

async fn connectors_page(
    s: &AppState,
    v: &Viewer,
    asked: bool,
    credentials: Option<CredentialsShown>,
) -> Result<Response, WebError> {
    let c = operations::connector(s);
    let hosts = operations::connector_hosts(s).await?;
    let external = s.config.aws.connector == crate::config::ConnectorMode::External;
    let never = || html! { span.muted { "never" } };
    let content = html! {
        p { "How this server's syncs with AWS stand (each replica syncs, and reports, on its own). A sync reads the accounts, permission sets, users and groups of IAM Identity Center into the catalog." }
        @if external {
            p { "The connector is external: " code { "cone-aws serve" } " processes hold the AWS credentials and take the syncs and AWS calls from here." }
        } @else {
            p { "The connector is embedded: this server calls AWS itself, with its own credentials." }
        }
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
        @if !c.provisioning {
            p.error role="alert" {
                "Sync-only mode: this server syncs and decides but never writes to AWS, so approved requests wait as provisioning. "
                "Set " code { "BATON_PROVISIONING=true" } " (or remove " code { "aws.provisioning: false" } ") and restart it to make their assignments."
            }
        }
        @if asked { p.notice role="status" { "A sync was asked for; it starts within 10 seconds of the last. Reload to see its outcome." } }
        form.inline method="post" action="/console/connectors/sync" {
            (v.token_field())
            button type="submit" { "Sync now" }
        }
        h2 { "Connector processes" }
        @if hosts.is_empty() {
            p.muted { "No " code { "cone-aws serve" } " has connected in the last 10 minutes." }
        } @else {
            table {
                thead { tr { th scope="col" { "Host" } th scope="col" { "Version" } th scope="col" { "Client id" } th scope="col" { "First seen" } th scope="col" { "Last contact" } } }
                tbody {
                    @for h in &hosts {
                        tr {
                            th scope="row" { code { (h.host_id) } }
                            td { (h.version) }
                            td { code { (h.client_id) } }
                            td { (when(h.first_seen_at)) }
                            td { (when(h.last_contact_at)) }
                        }
                    }
                }
            }
        }
        h2 { "Credentials of cone-aws serve" }
        @match &credentials {
            Some(CredentialsShown::Issued(c)) => {
                p.notice role="status" { "New credentials: copy the secret now, it cannot be shown again. Connectors using the credentials before are refused from now on." }
                pre { "BATON_CLIENT_ID=" (c.client_id) "\nBATON_CLIENT_SECRET=" (c.client_secret) }
            }
            Some(CredentialsShown::Revoked) => {
                p.notice role="status" { "Revoked: no connector may connect until new credentials are issued." }
            }
            None => {}
        }
        form.inline method="post" action="/console/connectors/credentials" {
            (v.token_field())
            button type="submit" { "Issue new credentials" }
        }
        form.inline method="post" action="/console/connectors/credentials/revoke" {
            (v.token_field())
            button type="submit" { "Revoke credentials" }
        }
        @if c.state == cone_api::CONNECTOR_ERROR {
            p.error role="alert" {
                "The last sync failed, so the catalog may be out of date; the server tries again at its next interval. "
                "Check the AWS credentials and permissions the error names (" code { "cone-aws policy" } " prints the IAM policy the connector needs)."
            }
        }
    };
    Ok(page("Connectors", v, Nav::Connectors, content).into_response())
}

/// The Connectors page's "Issue new credentials": the page again, with the secret shown this once.
pub async fn rotate_credentials(State(s): State<AppState>, posted: Posted) -> Result<Response, WebError> {
    admins_only(&posted.viewer)?;
    let issued = crate::services::connector::rotate(&s, &posted.viewer.user).await?;
    connectors_page(&s, &posted.viewer, false, Some(CredentialsShown::Issued(issued))).await
}

/// The Connectors page's "Revoke credentials".
pub async fn revoke_credentials(State(s): State<AppState>, posted: Posted) -> Result<Response, WebError> {
    admins_only(&posted.viewer)?;
    crate::services::connector::revoke(&s, &posted.viewer.user).await?;
    Ok(Redirect::to("/console/connectors?revoked=true").into_response())
}

/// The Connectors page's "Sync now".
pub async fn sync_now(State(s): State<AppState>, posted: Posted) -> Result<Response, WebError> {
    admins_only(&posted.viewer)?;
    operations::ask_for_sync(&s, &posted.viewer.user);
    Ok(Redirect::to("/console/connectors?asked=true").into_response())
}

fn days_ago(days: i64) -> String {
    match days {
        0 => "today".into(),
        1 => "yesterday".into(),
        n => format!("{n} days ago"),
    }
}

/// The access keys of the connector's account and the member accounts read (the secrets inventory): who holds which key, how old it is and when it
/// was last used, with old and unused keys flagged.
/// The Access keys page's filters, as its form and links send them.
#[derive(Deserialize)]
pub struct KeyQuery {
    #[serde(default)]
    account: String,
    #[serde(default)]
    user: String,
    #[serde(default)]
    status: String,
    #[serde(default)]
    page_token: Option<String>,
}

pub async fn access_keys(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<KeyQuery>,
) -> Result<Response, WebError> {
    admins_only(&v)?;
    let requested = Page::new(q.page_token.as_deref(), Some(100), 100, 100)?;
    let filter = AccessKeyFilter { account: q.account, user_name: q.user, status: q.status };
    let keys = iam::access_keys(&s, &filter, requested).await?;
    let (account, user, status) = (filter.account, filter.user_name, filter.status);
    let content = html! {
        p { "The IAM users' access keys in the connector's AWS account and, with Organizations, in each member account, as the last sync read them. Metadata only: AWS never returns a secret key after its creation, and Cone stores none." }
        @if !keys.synced {
            p.notice role="status" {
                "IAM sync is off; set " code { "aws.sync_secrets: true" } " in the server's configuration (or "
                code { "BATON_SYNC_SECRETS=true" } " in its environment) to see access keys. The role Cone uses needs "
                code { "iam:ListUsers" } ", " code { "iam:ListAccessKeys" } " and " code { "iam:GetAccessKeyLastUsed" } "."
            }
        } @else {
            form.filters method="get" action="/console/access-keys" {
                div.field { label for="account" { "Account" } input #account name="account" value=(account) placeholder="name or id"; }
                div.field { label for="user" { "IAM user" } input #user name="user" value=(user) placeholder="user name"; }
                div.field {
                    label for="status" { "Status" }
                    select #status name="status" {
                        @for (value, label) in [("", "Any"), ("Active", "Active"), ("Inactive", "Inactive")] {
                            option value=(value) selected[status == value] { (label) }
                        }
                    }
                }
                button type="submit" { "Filter" }
            }
            @if keys.access_keys.is_empty() { p { "No access keys match." } } @else {
                table {
                    caption { "Access keys by user; keys older than " (STALE_DAYS) " days, unused for as long, or never used are flagged." }
                    thead { tr { th scope="col" { "Access key" } th scope="col" { "Account" } th scope="col" { "User" } th scope="col" { "Status" } th scope="col" { "Created" } th scope="col" { "Last used" } th scope="col" { "Service" } th scope="col" { "Region" } th scope="col" { "Flags" } } }
                    tbody {
                        @for k in &keys.access_keys {
                            tr {
                                th scope="row" { code { (k.id) } }
                                td { span title=(k.account_id) { (k.account_name) } }
                                td { (k.user_name) }
                                td { span class=(format!("state {}", k.status.to_lowercase())) { (k.status) } }
                                td { (when(k.created_at)) br; span.muted { (days_ago(k.age_days)) } }
                                td {
                                    @match (k.last_used_at, k.days_since_last_use) {
                                        (Some(t), Some(d)) => { (when(t)) br; span.muted { (days_ago(d)) } }
                                        _ => { span.muted { "never" } }
                                    }
                                }
                                td { (k.last_used_service.as_deref().unwrap_or("")) }
                                td { (k.last_used_region.as_deref().unwrap_or("")) }
                                td {
                                    @if k.age_days > STALE_DAYS { span.flag { "Older than " (STALE_DAYS) " days" } " " }
                                    @if k.last_used_at.is_none() { span.flag { "Never used" } " " }
                                    @if k.days_since_last_use.is_some_and(|d| d > STALE_DAYS) { span.flag { "Unused for " (STALE_DAYS) "+ days" } }
                                }
                            }
                        }
                    }
                }
            }
            (next_page("/console/access-keys", &[("account", &account), ("user", &user), ("status", &status)], keys.next_page_token.as_deref(), "Next page"))
        }
    };
    Ok(page("Access keys", &v, Nav::AccessKeys, content).into_response())
}

#[derive(Deserialize)]
pub struct CreatedQuery {
    #[serde(default)]
    account: String,
    #[serde(default)]
    page_token: Option<String>,
}

/// The users Cone created for people (IAM users for IAM groups' grants, Identity Center users for people who sign in
/// with a password), newest first.
pub async fn created_users(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<CreatedQuery>,
) -> Result<Response, WebError> {
    admins_only(&v)?;
    let requested = Page::new(q.page_token.as_deref(), Some(100), 100, 100)?;
    let created = iam::created_users(&s, &q.account, requested).await?;
    let account = q.account;
    let settings = &s.config.aws.account_provisioning;
    let content = html! {
        p { "The IAM users Cone created for people granted an IAM group in an account where they had none. Each is named after its person, has no password and no access keys, carries the tag " code { (cone_aws::OWNER_TAG) } " with the person's Identity Center user id, and is deleted (with everything IAM holds for it) when no grant needs it any more and when its person leaves." }
        p { "The Identity Center users Cone created for people who sign in to Cone with a password, when a grant of theirs was first made. Each is named as its person, has the user type " code { (cone_aws::OWNER_USER_TYPE) } " and no password, and is deleted (with its group memberships) when no grant needs it any more. Cone never uses or removes a user it did not create." }
        @if !settings.iam_users {
            p.notice role="status" { "Creating IAM users is off; set " code { "aws.account_provisioning.iam_users: true" } " to let IAM-group grants create them." }
        }
        @if !settings.identity_center_users {
            p.notice role="status" { "Creating Identity Center users is off; set " code { "aws.account_provisioning.identity_center_users: true" } " to let people who sign in with a password request access." }
        }
        form.filters method="get" action="/console/created-users" {
            div.field { label for="account" { "Account" } input #account name="account" value=(account) placeholder="name or id"; }
            button type="submit" { "Filter" }
        }
        @if created.users.is_empty() { p { "Cone has created no users here." } } @else {
            table {
                caption { "Created users, newest first; deleted ones stay listed." }
                thead { tr { th scope="col" { "User" } th scope="col" { "Person" } th scope="col" { "Account" } th scope="col" { "State" } th scope="col" { "Created" } th scope="col" { "Deleted" } } }
                tbody {
                    @for u in &created.users {
                        tr {
                            th scope="row" { code { (u.path) (u.name) } }
                            td { (u.username) }
                            td { span title=(u.account_id) { (u.account_name) } }
                            td { span class=(format!("state {}", u.state)) { (u.state) } }
                            td { (when(u.created_at)) }
                            td { @if let Some(t) = u.deleted_at { (when(t)) } }
                        }
                    }
                }
            }
        }
        (next_page("/console/created-users", &[("account", &account)], created.next_page_token.as_deref(), "Next page"))
    };
    Ok(page("Created users", &v, Nav::CreatedUsers, content).into_response())
}
