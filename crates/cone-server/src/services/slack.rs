//! Decisions from Slack: a click on a request's Approve or Deny button is made as the Cone person whose email Slack
//! has confirmed for the one who clicked, through `tasks::decide` with every check the API makes. A refusal is
//! answered in the message's thread; a decision replaces the buttons with its outcome.

use cone_slack::Interaction;

use super::tasks;
use crate::notify::slack_section;
use crate::state::{AppState, SlackApp};
use crate::store::UserRow;

/// Acts on a click and answers in Slack. Errors are logged, never shown to the clicker with more than the API says.
pub async fn clicked(s: &AppState, app: &SlackApp, i: Interaction) {
    let Some(action) = i.actions.first() else { return };
    let approve = match action.action_id.as_str() {
        "approve" => true,
        "deny" => false,
        // "open" is a link; Slack tells the app of that click too.
        _ => return,
    };
    let (channel, ts) = (i.container.channel_id.as_str(), i.container.message_ts.as_str());
    let answered = match decide_as(s, app, &i.user.id, &action.value, approve).await {
        Ok(outcome) => app.bot.update(channel, ts, &outcome, &slack_section(&outcome)).await,
        Err(refusal) => app.bot.post(channel, Some(ts), &refusal, None).await.map(drop),
    };
    if let Err(e) = answered {
        tracing::warn!(slack_user = i.user.id, "cannot answer a click in Slack: {e}");
    }
}

/// The decision, as the person Slack says clicked; `Err` holds what to tell them.
async fn decide_as(
    s: &AppState,
    app: &SlackApp,
    slack_user: &str,
    value: &str,
    approve: bool,
) -> Result<String, String> {
    let id: i64 = value.parse().map_err(|_| "This button names no request; decide in Cone's console.".to_string())?;
    let person = person(s, app, slack_user).await?;
    let t = tasks::decide(s, &person, id, approve, "").await.map_err(|e| e.to_string())?;
    let verb = if approve { "approved" } else { "denied" };
    Ok(format!("{} {verb} request {id}: {} asks for {}.", person.username, t.requester, t.entitlement_name))
}

/// The one Cone person with the clicker's confirmed Slack email.
async fn person(s: &AppState, app: &SlackApp, slack_user: &str) -> Result<UserRow, String> {
    let who = app.bot.user(slack_user).await.map_err(|e| {
        tracing::warn!(slack_user, "cannot read a Slack user: {e}");
        "Cone cannot read who you are from Slack just now; decide in Cone's console.".to_string()
    })?;
    let Some(email) = who.email.filter(|_| who.email_confirmed) else {
        return Err("Slack has no confirmed email address for you, so Cone cannot tell who you are; decide in Cone's \
                    console."
            .into());
    };
    let found = s.db.people_by_email(&email).await.map_err(|e| {
        tracing::error!("cannot find the person of a Slack click: {e:#}");
        "Cone could not look you up just now; try again shortly.".to_string()
    })?;
    match <[UserRow; 1]>::try_from(found) {
        Ok([person]) => Ok(person),
        Err(found) if found.is_empty() => {
            Err(format!("No one in Cone has your Slack address {email}; decide in Cone's console."))
        }
        Err(_) => Err(format!("Several people in Cone have the address {email}; decide in Cone's console.")),
    }
}
