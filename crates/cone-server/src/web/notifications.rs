//! `/console/notifications`: everyone's preferences and a test message to themselves; for administrators, every
//! notification with its state and last error.

use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use cone_api::{Channel, NotificationKind, Preferences};
use maud::html;
use serde::Deserialize;

use super::layout::{Nav, Viewer, WebError, link, next_page, page, when};
use super::session::Posted;
use crate::services::auth::Caller;
use crate::services::{Page, notifications};
use crate::state::AppState;

#[derive(Deserialize)]
pub struct NotificationsQuery {
    /// The administrators' list: only this state.
    #[serde(default)]
    state: String,
    #[serde(default)]
    page_token: Option<String>,
    /// What was just done: `saved`, or the channels a test went out on (`none`).
    #[serde(default)]
    done: Option<String>,
}

/// What each kind means, for the mute boxes.
fn meaning(kind: NotificationKind) -> &'static str {
    match kind {
        NotificationKind::ApprovalNeeded => "A request waits for your decision",
        NotificationKind::Decided => "Your request was decided",
        NotificationKind::Granted => "Your access was granted or extended",
        NotificationKind::Failed => "Access could not be granted",
        NotificationKind::Expiring => "Your access ends soon",
        NotificationKind::Ended => "Your access ended before or at its time",
        NotificationKind::Drift => "Cone repaired drift in AWS (administrators)",
        NotificationKind::ReviewNeeded => "Access waits for your review, or a review you have items in is due soon",
        NotificationKind::RemovalByHand => "Access revoked in a review waits to be removed by hand (administrators)",
        NotificationKind::Test => "Test messages",
    }
}

pub async fn notifications_page(
    State(s): State<AppState>,
    v: Viewer,
    Query(q): Query<NotificationsQuery>,
) -> Result<Response, WebError> {
    let settings = notifications::settings(&s, &v.user).await?;
    let Preferences { channels, muted, digest } = &settings.preferences;
    let chosen = |c: Channel| channels.as_ref().is_none_or(|list| list.contains(&c));
    let list = if v.admin {
        let caller = Caller { user: v.user.clone(), api_token: None };
        let state = Some(q.state.as_str()).filter(|st| !st.is_empty());
        let page_of = Page::new(q.page_token.as_deref(), Some(100), 100, 100)?;
        Some(notifications::list(&s, &caller, state, page_of).await?)
    } else {
        None
    };
    let content = html! {
        @match q.done.as_deref() {
            Some("saved") => p.notice role="status" { "Your preferences are saved." },
            Some("none") => p.notice role="status" { "Nothing reaches you: no channel is configured, or Cone knows no email address for you." },
            Some(channels) => p.notice role="status" { "A test message is on its way by " (channels) "." },
            None => {}
        }
        p {
            "Cone tells you when a request waits for you, when yours is decided or granted, before your access ends, and when it ended. "
            @if settings.email.is_empty() { "Cone knows no email address for you." } @else { "Email goes to " strong { (settings.email) } "." }
        }
        form.stack method="post" action="/console/notifications" {
            (v.token_field())
            fieldset {
                legend { "Channels" }
                @if settings.available.is_empty() { p.muted { "No channel reaches you." } }
                @for c in Channel::ALL {
                    @let id = format!("channel-{}", c.as_str());
                    div.check {
                        input type="checkbox" #(id) name=(id) value="on" checked[chosen(c)] disabled[!settings.available.contains(&c)];
                        label for=(id) { (c.as_str()) }
                    }
                }
            }
            fieldset {
                legend { "Do not tell me when" }
                @for k in NotificationKind::ALL.into_iter().filter(|k| *k != NotificationKind::Test) {
                    @let id = format!("mute-{}", k.as_str());
                    div.check {
                        input type="checkbox" #(id) name=(id) value="on" checked[muted.contains(&k)];
                        label for=(id) { (meaning(k)) }
                    }
                }
            }
            div.check {
                input type="checkbox" #digest name="digest" value="on" checked[*digest];
                label for="digest" { "Gather requests waiting for my decision into one message an hour" }
            }
            button type="submit" { "Save" }
        }
        form method="post" action="/console/notifications/test" {
            (v.token_field())
            button type="submit" { "Send me a test message" }
        }
        @if let Some(list) = &list {
            section aria-labelledby="sent" {
                h2 #sent { "Every notification" }
                form.filters method="get" action="/console/notifications" {
                    div.field {
                        label for="state" { "State" }
                        select #state name="state" {
                            @for (value, label) in [("", "Any"), ("pending", "Pending"), ("sent", "Sent"), ("failed", "Failed")] {
                                option value=(value) selected[q.state == value] { (label) }
                            }
                        }
                    }
                    button type="submit" { "Filter" }
                }
                @if list.notifications.is_empty() { p { "No notification matches." } } @else {
                    table {
                        thead { tr { th scope="col" { "#" } th scope="col" { "To" } th scope="col" { "Channel" } th scope="col" { "Kind" } th scope="col" { "Request" } th scope="col" { "State" } th scope="col" { "Attempts" } th scope="col" { "Due" } th scope="col" { "Last error" } } }
                        tbody {
                            @for n in &list.notifications {
                                tr {
                                    td { (n.id) } td { (n.user) } td { (n.channel.as_str()) } td { (n.kind.as_str()) }
                                    td { @if let Some(t) = n.task_id { a href=(format!("/console/tasks/{t}")) { (t) } } }
                                    td { (n.state) } td { (n.attempts) } td { (when(n.due_at)) }
                                    td { (n.last_error.as_deref().unwrap_or_default()) }
                                }
                            }
                        }
                    }
                }
                (next_page("/console/notifications", &[("state", q.state.as_str())], list.next_page_token.as_deref(), "Next page"))
            }
        }
    };
    Ok(page("Notifications", &v, Nav::Notifications, content).into_response())
}

pub async fn save(State(s): State<AppState>, posted: Posted) -> Result<Response, WebError> {
    let ticked = |prefix: &str| {
        posted.prefixed(prefix).filter(|(_, v)| *v == "on").map(|(k, _)| k.to_string()).collect::<Vec<_>>()
    };
    let settings = notifications::settings(&s, &posted.viewer.user).await?;
    let channels: Vec<Channel> = ticked("channel-").iter().filter_map(|c| Channel::parse(c)).collect();
    // Every channel that reaches the person ticked is "all", so that a channel configured later is used too.
    let channels = (!settings.available.iter().all(|c| channels.contains(c))).then_some(channels);
    let muted = ticked("mute-").iter().filter_map(|k| NotificationKind::parse(k)).collect();
    let p = Preferences { channels, muted, digest: posted.get("digest") == "on" };
    notifications::set_preferences(&s, &posted.viewer.user, p).await?;
    Ok(Redirect::to("/console/notifications?done=saved").into_response())
}

pub async fn test(State(s): State<AppState>, posted: Posted) -> Result<Response, WebError> {
    let caller = Caller { user: posted.viewer.user.clone(), api_token: None };
    let queued = notifications::test(&s, &caller, None).await?;
    let channels = queued.channels.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" and ");
    let done = if channels.is_empty() { "none" } else { &channels };
    Ok(Redirect::to(&link("/console/notifications", &[("done", done)])).into_response())
}
