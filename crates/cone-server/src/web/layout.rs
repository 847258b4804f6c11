//! The frame of every console page: document head, the navigation landmark, and the main landmark with the
//! page's one `h1`.

use axum::response::Html;
use maud::{DOCTYPE, Markup, html};

use super::session::Viewer;

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
    Apps,
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
    ];
    if viewer.admin {
        items.extend([
            (Nav::Apps, "/console/apps", "Apps"),
            (Nav::Policies, "/console/policies", "Policies"),
            (Nav::Connectors, "/console/connectors", "Connectors"),
            (Nav::Audit, "/console/audit", "Audit log"),
            (Nav::Drift, "/console/drift", "Drift"),
            (Nav::AccessKeys, "/console/access-keys", "Access keys"),
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
