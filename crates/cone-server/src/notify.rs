//! What notifications say: the facts one carries, and its message for each kind (a subject, plain text and HTML),
//! alone or gathered in an approver's digest. No I/O. Every value from elsewhere is made printable (no control
//! characters); HTML escapes it.

use cone_core::naming::printable;
use cone_core::notify::Kind;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

/// What a message tells, fixed when the notification is made so that every attempt says the same.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Facts {
    /// The audit action, or `grant.ending` for a warning.
    pub event: String,
    pub task_id: Option<i64>,
    /// The requester's user name.
    pub requester: String,
    /// Who caused the event (a user name), or `cone`.
    pub actor: String,
    /// The access, as people say it: `AdministratorAccess on Production`.
    pub access: String,
    /// The entitlement's alias, for `cone get`.
    pub alias: String,
    pub justification: String,
    pub duration_secs: i64,
    /// The grant's end, if it has one.
    pub ends_at: Option<i64>,
    /// A reason or error the event carries.
    pub reason: String,
    /// An access review's campaign: its id (its name is `access`, its due time `ends_at`) and the items the
    /// recipient has left to decide in it.
    #[serde(default)]
    pub campaign_id: Option<i64>,
    #[serde(default)]
    pub items: i64,
}

/// One message, ready for a channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    pub subject: String,
    pub text: String,
    pub html: String,
}

/// The message telling `recipient` of `kind`; links point into the console at `console` (no trailing slash).
pub fn message(kind: Kind, f: &Facts, recipient: &str, console: &str) -> Message {
    let lines = Lines::of(kind, f, recipient, console);
    let html = page(
        &lines.subject,
        html! {
            @for line in &lines.body { p { (line) } }
            @if let Some(command) = &lines.command { p { code { (command) } } }
            @if let Some((label, url)) = &lines.link { p { a href=(url) { (label) } } }
        },
    );
    Message { text: lines.text(), subject: lines.subject, html }
}

/// The same message for Slack: its fallback text and Block Kit blocks. A request to approve carries Approve and
/// Deny buttons, whose value is the task's id; Slack posts the click to the interactivity endpoint.
pub fn slack(kind: Kind, f: &Facts, recipient: &str, console: &str) -> (String, serde_json::Value) {
    let lines = Lines::of(kind, f, recipient, console);
    let mut text = format!("*{}*\n{}", mrkdwn(&lines.subject), mrkdwn(&lines.body.join("\n")));
    if let Some(command) = &lines.command {
        text.push_str(&format!("\n`{}`", mrkdwn(command)));
    }
    let mut blocks = vec![serde_json::json!({ "type": "section", "text": { "type": "mrkdwn", "text": text } })];
    let mut buttons = Vec::new();
    if let (Kind::ApprovalNeeded, Some(id)) = (kind, f.task_id) {
        for (action, label, style) in [("approve", "Approve", "primary"), ("deny", "Deny", "danger")] {
            buttons.push(serde_json::json!({
                "type": "button", "action_id": action, "value": id.to_string(), "style": style,
                "text": { "type": "plain_text", "text": label },
            }));
        }
    }
    if let Some((label, url)) = &lines.link {
        buttons.push(serde_json::json!({
            "type": "button", "action_id": "open", "url": url, "text": { "type": "plain_text", "text": label },
        }));
    }
    if !buttons.is_empty() {
        blocks.push(serde_json::json!({ "type": "actions", "block_id": "cone", "elements": buttons }));
    }
    (lines.subject, serde_json::Value::Array(blocks))
}

/// Plain text as Slack blocks: what a decided request's message becomes (the news in place of the buttons), and a
/// digest.
pub fn slack_section(text: &str) -> serde_json::Value {
    serde_json::json!([{ "type": "section", "text": { "type": "mrkdwn", "text": mrkdwn(text) } }])
}

/// Text for Slack's mrkdwn: `&`, `<` and `>` escaped as Slack asks, so that nobody's words become a link or a
/// mention.
fn mrkdwn(text: &str) -> String {
    text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;")
}

/// One message gathering the requests `recipient` is asked to decide (their hourly digest).
pub fn digest(items: &[Facts], console: &str) -> Message {
    let subject = match items.len() {
        1 => "1 request waits for your decision".to_string(),
        n => format!("{n} requests wait for your decision"),
    };
    let line = |f: &Facts| format!("{} asks for {} ({})", clean(&f.requester), clean(&f.access), reason_of(f));
    let link = |f: &Facts| f.task_id.map(|id| format!("{console}/console/tasks/{id}")).unwrap_or_default();
    let mut text = format!("{subject}:\n\n");
    for f in items {
        text.push_str(&format!("- {}\n  {}\n", line(f), link(f)));
    }
    text.push_str(&format!("\nAll of them: {console}/console/inbox\n"));
    let html = page(
        &subject,
        html! {
            ul { @for f in items { li { a href=(link(f)) { (line(f)) } } } }
            p { a href={ (console) "/console/inbox" } { "All requests waiting for you" } }
        },
    );
    Message { subject, text, html }
}

/// A message's parts before they become text and HTML.
struct Lines {
    subject: String,
    body: Vec<String>,
    /// A command to run, shown apart.
    command: Option<String>,
    link: Option<(String, String)>,
}

impl Lines {
    fn of(kind: Kind, f: &Facts, recipient: &str, console: &str) -> Lines {
        let (requester, actor, access) = (clean(&f.requester), clean(&f.actor), clean(&f.access));
        let task = f.task_id.map(|id| (format!("Request {id}"), format!("{console}/console/tasks/{id}")));
        let yours = recipient == f.requester;
        let whose = if yours { "your".to_string() } else { format!("{requester}'s") };
        let until = f.ends_at.map(|t| format!(" until {}", when(t))).unwrap_or_default();
        let mut command = None;
        let (subject, body) = match kind {
            Kind::ApprovalNeeded => {
                command = f.task_id.map(|id| format!("cone task approve {id}"));
                (
                    format!("{requester} asks for {access}"),
                    vec![
                        format!("{requester} asks for {access} for {}.", cone_core::duration::format(f.duration_secs)),
                        format!("Reason: {}", reason_of(f)),
                        "Approve it from the console or with:".into(),
                    ],
                )
            }
            Kind::Decided => {
                let (word, by) = match f.event.as_str() {
                    "task.approve" => ("approved", format!(" by {actor}")),
                    "task.deny" => ("denied", format!(" by {actor}")),
                    "task.cancel" => ("cancelled", format!(" by {actor}")),
                    _ => ("closed", ": nobody decided it in time".to_string()),
                };
                let mut body = vec![format!("Your request for {access} was {word}{by}.")];
                if !f.reason.is_empty() {
                    body.push(format!("They said: {}", clean(&f.reason)));
                }
                (format!("Request for {access} {word}"), body)
            }
            Kind::Granted => {
                command = Some(format!("cone get {} --extend", clean(&f.alias)));
                let verb = if f.event == "grant.extend" { "extended" } else { "granted" };
                (
                    format!("{access} {verb}{until}"),
                    vec![format!("You have {access}{until}."), "For more time later, run:".into()],
                )
            }
            Kind::Failed => (
                format!("Cone could not give {access}"),
                vec![
                    format!("Cone could not make {whose} access to {access}: {}", clean(&f.reason)),
                    "Administrators see why on the request's page; a new request tries again.".into(),
                ],
            ),
            Kind::Expiring => {
                command = Some(format!("cone get {} --extend", clean(&f.alias)));
                let at = f.ends_at.map(|t| format!(" at {}", when(t))).unwrap_or_default();
                (
                    format!("{access} ends{at}"),
                    vec![format!("Your access to {access} ends{at}."), "To keep it longer, run:".into()],
                )
            }
            Kind::Ended => {
                let how = match f.event.as_str() {
                    "grant.withdraw" => format!("was withdrawn by {actor}"),
                    "grant.end_early" => "ended early".to_string(),
                    _ => "ended at its time".to_string(),
                };
                let mut body = vec![format!("Your access to {access} {how}.")];
                if !f.reason.is_empty() {
                    body.push(format!("Reason: {}", clean(&f.reason)));
                }
                (format!("{access} ended"), body)
            }
            Kind::Drift => {
                let what = if f.event == "drift.remove" { "removed" } else { "restored" };
                (
                    format!("Cone {what} an assignment in AWS"),
                    vec![format!("Cone {what} {access}, which AWS and Cone's grants disagreed on.")],
                )
            }
            Kind::ReviewNeeded => {
                command = f.campaign_id.map(|id| format!("cone review list --campaign {id}"));
                let due = f.ends_at.map(when).unwrap_or_default();
                let items = match f.items {
                    1 => "1 item".to_string(),
                    n => format!("{n} items"),
                };
                let (subject, first) = match f.event.as_str() {
                    "review.reminder" => (
                        format!("The access review {access} is due {due}"),
                        format!("{items} of the access review {access} still wait for your decision; it is due {due}."),
                    ),
                    "review.reassign" => (
                        format!("Access review: {access}, an item for you"),
                        format!("{actor} gave you an item of the access review {access} to decide by {due}."),
                    ),
                    _ => (
                        format!("Access review: {access}"),
                        format!("{actor} opened the access review {access}: {items} wait for your decision by {due}."),
                    ),
                };
                (subject, vec![first, "Certify what may stay and revoke what must go, in the console or with:".into()])
            }
            Kind::RemovalByHand => (
                format!("Remove by hand: {access}"),
                vec![
                    format!("{actor} revoked {access} in an access review, and Cone may not remove it itself."),
                    clean(&f.reason),
                    "The review shows it done once a sync no longer finds it.".into(),
                ],
            ),
            Kind::Test => (
                "A test message from Cone".to_string(),
                vec![format!("{actor} sent this to check that Cone's messages reach you. Nothing else happened.")],
            ),
        };
        let link = match kind {
            Kind::Drift => Some(("The drift report".to_string(), format!("{console}/console/drift"))),
            Kind::ReviewNeeded => f
                .campaign_id
                .map(|id| ("Your items to review".to_string(), format!("{console}/console/reviews?campaign={id}"))),
            Kind::RemovalByHand => f
                .campaign_id
                .map(|id| ("The campaign".to_string(), format!("{console}/console/reviews/campaigns/{id}"))),
            Kind::Test => None,
            _ => task,
        };
        Lines { subject, body, command, link }
    }

    fn text(&self) -> String {
        let mut text = self.body.join("\n");
        if let Some(command) = &self.command {
            text.push_str(&format!("\n\n    {command}\n"));
        }
        if let Some((label, url)) = &self.link {
            text.push_str(&format!("\n{label}: {url}\n"));
        }
        text
    }
}

/// Where people choose what Cone tells them.
pub fn preferences_url(console: &str) -> String {
    format!("{console}/console/notifications")
}

fn page(title: &str, body: Markup) -> String {
    html! {
        (maud::DOCTYPE)
        html { head { meta charset="utf-8"; title { (title) } } body { (body) } }
    }
    .into_string()
}

fn reason_of(f: &Facts) -> String {
    if f.justification.is_empty() { "none given".into() } else { clean(&f.justification) }
}

/// Text from elsewhere as one line of at most 500 characters.
fn clean(text: &str) -> String {
    let one = printable(text);
    match one.char_indices().nth(500) {
        Some((cut, _)) => format!("{}…", &one[..cut]),
        None => one,
    }
}

/// A Unix time for people: `2025-01-31 09:30 UTC`.
pub fn when(t: i64) -> String {
    chrono::DateTime::from_timestamp(t, 0).map(|d| d.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts() -> Facts {
        Facts {
            event: "task.create".into(),
            task_id: Some(7),
            requester: "alice".into(),
            actor: "alice".into(),
            access: "AdministratorAccess on Production".into(),
            alias: "production-admin".into(),
            justification: "INC-1\u{1b}[2J <b>now</b>".into(),
            duration_secs: 3600,
            ends_at: Some(1_767_260_400),
            reason: String::new(),
            ..Facts::default()
        }
    }

    #[test]
    fn a_reviewer_reads_how_many_items_wait_by_when_and_where() {
        let f = Facts {
            event: "review.campaign_create".into(),
            actor: "carol".into(),
            access: "\"Production, Q4\"".into(),
            ends_at: Some(1_767_225_599),
            campaign_id: Some(3),
            items: 12,
            ..Facts::default()
        };
        let m = message(Kind::ReviewNeeded, &f, "bob", "https://c");
        assert_eq!(m.subject, "Access review: \"Production, Q4\"");
        assert!(m.text.contains("carol opened the access review \"Production, Q4\": 12 items wait for your decision by 2025-12-31 23:59 UTC."), "{}", m.text);
        assert!(
            m.text.contains("cone review list --campaign 3") && m.text.contains("https://c/console/reviews?campaign=3")
        );
        let reminder = Facts { event: "review.reminder".into(), items: 1, ..f };
        let m = message(Kind::ReviewNeeded, &reminder, "bob", "https://c");
        assert_eq!(m.subject, "The access review \"Production, Q4\" is due 2025-12-31 23:59 UTC");
        assert!(m.text.starts_with("1 item of the access review"), "{}", m.text);
        let reassigned = Facts { event: "review.reassign".into(), ..reminder };
        let m = message(Kind::ReviewNeeded, &reassigned, "bob", "https://c");
        assert_eq!(m.subject, "Access review: \"Production, Q4\", an item for you");
        assert!(m.text.starts_with("carol gave you an item of the access review"), "{}", m.text);
    }

    #[test]
    fn an_administrator_reads_what_to_remove_by_hand_and_who_revoked_it() {
        let f = Facts {
            event: "review.by_hand".into(),
            actor: "bob".into(),
            access: "access key AKIA1 of IAM user ci-bot in Production".into(),
            reason: "In account 111, deactivate access key AKIA1 of IAM user ci-bot: aws iam update-access-key".into(),
            campaign_id: Some(3),
            ..Facts::default()
        };
        let m = message(Kind::RemovalByHand, &f, "carol", "https://c");
        assert_eq!(m.subject, "Remove by hand: access key AKIA1 of IAM user ci-bot in Production");
        assert!(m.text.starts_with("bob revoked access key AKIA1"), "{}", m.text);
        assert!(
            m.text.contains("aws iam update-access-key") && m.text.contains("https://c/console/reviews/campaigns/3")
        );
    }

    #[test]
    fn an_approver_reads_who_asks_for_what_why_and_how_to_approve() {
        let m = message(Kind::ApprovalNeeded, &facts(), "bob", "https://cone.example");
        assert_eq!(m.subject, "alice asks for AdministratorAccess on Production");
        assert!(m.text.contains("for 1h."), "{}", m.text);
        assert!(m.text.contains("cone task approve 7"));
        assert!(m.text.contains("https://cone.example/console/tasks/7"));
        assert!(!m.text.contains('\u{1b}'), "no escape sequences reach a mail reader's terminal");
        assert!(m.html.contains("&lt;b&gt;now&lt;/b&gt;"), "HTML escapes what people typed: {}", m.html);
    }

    #[test]
    fn requesters_read_their_news_and_the_next_command() {
        let mut f = facts();
        f.event = "grant.ending".into();
        let m = message(Kind::Expiring, &f, "alice", "https://c");
        assert_eq!(m.subject, "AdministratorAccess on Production ends at 2026-01-01 09:40 UTC");
        assert!(m.text.contains("cone get production-admin --extend"));
        f.event = "task.deny".into();
        f.actor = "bob".into();
        f.reason = "not during the freeze".into();
        let m = message(Kind::Decided, &f, "alice", "https://c");
        assert_eq!(m.subject, "Request for AdministratorAccess on Production denied");
        assert!(m.text.contains("denied by bob.\nThey said: not during the freeze"), "{}", m.text);
        f.event = "grant.fail".into();
        f.reason = "AccessDenied".into();
        assert!(message(Kind::Failed, &f, "carol", "https://c").text.contains("alice's access"));
        assert!(message(Kind::Failed, &f, "alice", "https://c").text.contains("your access"));
    }

    #[test]
    fn a_slack_request_carries_buttons_and_escapes_what_people_typed() {
        let mut f = facts();
        f.justification = "<!channel> & <https://evil|click>".into();
        let (text, blocks) = slack(Kind::ApprovalNeeded, &f, "bob", "https://c");
        assert_eq!(text, "alice asks for AdministratorAccess on Production");
        let section = blocks[0]["text"]["text"].as_str().unwrap();
        assert!(section.contains("&lt;!channel&gt; &amp; &lt;https://evil|click&gt;"), "{section}");
        let buttons = &blocks[1]["elements"];
        assert_eq!((buttons[0]["action_id"].as_str(), buttons[0]["value"].as_str()), (Some("approve"), Some("7")));
        assert_eq!((buttons[1]["action_id"].as_str(), buttons[1]["value"].as_str()), (Some("deny"), Some("7")));
        assert_eq!(buttons[2]["url"], "https://c/console/tasks/7");
        let (_, granted) = slack(Kind::Granted, &f, "alice", "https://c");
        assert_eq!(granted[1]["elements"].as_array().unwrap().len(), 1, "no decision to make: only the link");
    }

    #[test]
    fn a_digest_lists_every_request_with_its_link() {
        let mut second = facts();
        second.task_id = Some(8);
        second.requester = "dave".into();
        let m = digest(&[facts(), second], "https://c");
        assert_eq!(m.subject, "2 requests wait for your decision");
        assert!(m.text.contains("https://c/console/tasks/7") && m.text.contains("https://c/console/tasks/8"));
        assert!(m.text.contains("dave asks for"));
    }
}
