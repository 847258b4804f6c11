//! The frame of every console page (document head, the navigation landmark, and the main landmark with the page's
//! one `h1`), the signed-in viewer it is drawn for, the error page, and the small helpers every page uses.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};
use cone_api::codes;
use maud::{DOCTYPE, Markup, html};

use crate::error::Error;
use crate::store::UserRow;

/// The signed-in person of a console page (`session` signs them in), with what the pages need to know about them.
pub struct Viewer {
    pub user: UserRow,
    pub admin: bool,
    /// The token every form of the page carries.
    pub(super) token: String,
    pub(super) secret: String,
}

/// The name of the form token's field in every console form.
pub(super) const TOKEN_FIELD: &str = "csrf";

impl Viewer {
    /// The hidden field that carries the form token.
    pub fn token_field(&self) -> Markup {
        html! { input type="hidden" name=(TOKEN_FIELD) value=(self.token); }
    }
}

/// The pages of the navigation.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Catalog,
    Requests,
    Inbox,
    Audit,
    Drift,
    Policies,
    Connectors,
    AccessKeys,
    CreatedUsers,
    Apps,
    Grants,
    Tokens,
    Notifications,
    Reviews,
    /// A page outside the navigation, such as the device page.
    Elsewhere,
}

fn document(title: &str, header: Markup, content: Markup) -> Html<String> {
    Html(
        html! {
            (DOCTYPE)
            html lang="en" {
                head {
                    meta charset="utf-8";
                    meta name="viewport" content="width=device-width, initial-scale=1";
                    title { (title) " · Cone" }
                    link rel="stylesheet" href="/console/console.css";
                    link rel="icon" type="image/svg+xml" href="/console/favicon.svg";
                }
                body {
                    a.skip href="#main" { "Skip to the content" }
                    (header)
                    main #main {
                        h1 { (title) }
                        (content)
                    }
                }
            }
        }
        .into_string(),
    )
}

/// A page of the signed-in console.
pub fn page(title: &str, viewer: &Viewer, current: Nav, content: Markup) -> Html<String> {
    let mut items = vec![
        (Nav::Catalog, "/console", "Catalog"),
        (Nav::Requests, "/console/requests", "My requests"),
        (Nav::Inbox, "/console/inbox", "Approvals"),
        (Nav::Reviews, "/console/reviews", "Reviews"),
        (Nav::Notifications, "/console/notifications", "Notifications"),
    ];
    if viewer.admin {
        items.extend([
            (Nav::Grants, "/console/grants", "Grants"),
            (Nav::Apps, "/console/apps", "Apps"),
            (Nav::Policies, "/console/policies", "Policies"),
            (Nav::Connectors, "/console/connectors", "Connectors"),
            (Nav::Audit, "/console/audit", "Audit log"),
            (Nav::Drift, "/console/drift", "Drift"),
            (Nav::AccessKeys, "/console/access-keys", "Access keys"),
            (Nav::CreatedUsers, "/console/created-users", "Created users"),
            (Nav::Tokens, "/console/api-tokens", "API tokens"),
        ]);
    }
    let header = html! {
        header.top {
            a.brand href="/console" { "Cone" }
            nav aria-label="Console" {
                ul {
                    @for (nav, href, label) in items {
                        li {
                            @if nav == current {
                                a href=(href) aria-current="page" { (label) }
                            } @else {
                                a href=(href) { (label) }
                            }
                        }
                    }
                }
            }
            form.signout method="post" action="/console/logout" {
                (viewer.token_field())
                span { "Signed in as " strong { (viewer.user.username) } }
                button type="submit" { "Sign out" }
            }
        }
    };
    document(title, header, content)
}

/// A page outside the signed-in console: sign-in and errors.
pub fn bare(title: &str, content: Markup) -> Html<String> {
    document(title, html! { header.top { a.brand href="/console" { "Cone" } } }, content)
}

/// A page that says what went wrong and what to do next, with the status of the failure.
pub struct WebError {
    status: StatusCode,
    title: &'static str,
    message: String,
}

impl WebError {
    pub fn new(status: StatusCode, title: &'static str, message: impl Into<String>) -> WebError {
        WebError { status, title, message: message.into() }
    }
}

impl From<Error> for WebError {
    fn from(e: Error) -> WebError {
        let (status, code) = e.status_and_code();
        let title = match (status, code) {
            (_, codes::NOT_FOUND) => "Not found",
            (StatusCode::FORBIDDEN, _) => "Not allowed",
            (StatusCode::CONFLICT, _) => "Not possible now",
            (s, _) if s.is_server_error() => "Something went wrong",
            _ => "Cannot do that",
        };
        WebError::new(status, title, e.to_api().message)
    }
}

impl From<anyhow::Error> for WebError {
    fn from(e: anyhow::Error) -> WebError {
        Error::from(e).into()
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let content = html! {
            p role="alert" { (self.message) }
            p { a href="/console" { "Back to the catalog" } }
        };
        (self.status, bare(self.title, content)).into_response()
    }
}

/// `path?query` with the pairs encoded.
pub fn link(path: &str, pairs: &[(&str, &str)]) -> String {
    // An empty filter is no filter: left out, the address stays short enough to share.
    let pairs: Vec<_> = pairs.iter().filter(|(_, value)| !value.is_empty()).collect();
    match serde_urlencoded::to_string(pairs) {
        Ok(query) if !query.is_empty() => format!("{path}?{query}"),
        _ => path.to_string(),
    }
}

/// A link to the next page of a list at `path`, when there is one.
pub fn next_page(path: &str, filters: &[(&str, &str)], token: Option<&str>, label: &str) -> maud::Markup {
    let href = |token| link(path, &[filters, &[("page_token", token)]].concat());
    html! { @if let Some(token) = token { p { a href=(href(token)) { (label) } } } }
}

/// A time for people, in UTC.
pub fn when(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M UTC").to_string()
}
