//! `cone notifications`: a person's preferences and test messages, and the administrators' list of what was sent.

use anyhow::{Result, bail};
use cone_api::{Channel, NotificationKind, NotificationSettings, Preferences};
use cone_client::Client;

use crate::output::{self, Output, View};
use crate::{NotificationsCommand, Toggle};

pub async fn run(api: Client, command: NotificationsCommand, out: Output) -> Result<()> {
    match command {
        NotificationsCommand::Show => {
            let settings = api.notification_settings().await?;
            out.show(&settings, || settings_view(&settings))
        }
        NotificationsCommand::Set { channels, mute, digest } => {
            let mut p = api.notification_settings().await?.preferences;
            if let Some(names) = channels {
                p.channels = if names == ["all"] { None } else { Some(parse(&names, Channel::parse, "channel")?) };
            }
            if let Some(names) = mute {
                p.muted = if names == ["none"] { Vec::new() } else { parse(&names, NotificationKind::parse, "kind")? };
            }
            if let Some(d) = digest {
                p.digest = matches!(d, Toggle::On);
            }
            let settings = api.set_notification_preferences(&p).await?;
            out.show(&settings, || settings_view(&settings))
        }
        NotificationsCommand::Test { user } => {
            let queued = api.test_notification(user.as_deref()).await?;
            out.show(&queued, || {
                View::Line(match queued.channels.as_slice() {
                    [] => format!(
                        "Nothing reaches {}: no channel is configured, or Cone knows no email address for them.",
                        queued.user
                    ),
                    channels => format!(
                        "A test message to {} is on its way by {}; `cone notifications list` shows how it went.",
                        queued.user,
                        names(channels)
                    ),
                })
            })
        }
        NotificationsCommand::List { state, page_token } => {
            let page = api.notifications(state.as_deref(), page_token.as_deref()).await?;
            out.show(&page, || {
                if page.notifications.is_empty() {
                    return View::Line("No notifications.".into());
                }
                View::Table {
                    headers: vec!["ID", "TO", "CHANNEL", "KIND", "TASK", "STATE", "ATTEMPTS", "DUE", "LAST ERROR"],
                    rows: page
                        .notifications
                        .iter()
                        .map(|n| {
                            vec![
                                n.id.to_string(),
                                n.user.clone(),
                                n.channel.as_str().into(),
                                n.kind.as_str().into(),
                                n.task_id.map(|t| t.to_string()).unwrap_or_default(),
                                n.state.clone(),
                                n.attempts.to_string(),
                                output::time(n.due_at),
                                n.last_error.clone().unwrap_or_default(),
                            ]
                        })
                        .collect(),
                    wide_from: 9,
                }
            })?;
            if let (Some(next), false) = (&page.next_page_token, out.json()) {
                eprintln!("More: cone notifications list --page-token {next}");
            }
            Ok(())
        }
    }
}

fn parse<T>(names: &[String], one: fn(&str) -> Option<T>, what: &str) -> Result<Vec<T>> {
    names
        .iter()
        .map(|n| match one(n.trim()) {
            Some(v) => Ok(v),
            None => bail!("Unknown {what} \"{n}\"; `cone notifications set --help` lists them."),
        })
        .collect()
}

fn names(channels: &[Channel]) -> String {
    channels.iter().map(|c| c.as_str()).collect::<Vec<_>>().join(" and ")
}

fn settings_view(s: &NotificationSettings) -> View {
    let Preferences { channels, muted, digest } = &s.preferences;
    let reach = if s.available.is_empty() {
        "nothing (no channel is configured, or Cone knows no email address for you)".to_string()
    } else {
        names(&s.available)
    };
    View::Fields(vec![
        ("Reachable by", reach, false),
        ("Email address", if s.email.is_empty() { "none known".into() } else { s.email.clone() }, false),
        ("Channels", channels.as_deref().map_or("all that reach you".into(), names), false),
        (
            "Muted",
            if muted.is_empty() {
                "nothing".into()
            } else {
                muted.iter().map(|k| k.as_str()).collect::<Vec<_>>().join(", ")
            },
            false,
        ),
        ("Digest", if *digest { "requests to approve, once an hour".into() } else { "off".into() }, false),
    ])
}
