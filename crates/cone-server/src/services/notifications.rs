//! Notifications as people and administrators handle them: each person's preferences, the list of what was sent
//! or failed, and a test message. What is sent, and when, is `workers::notify`'s.

use cone_api::{
    Channel, Notification, NotificationList, NotificationSettings, Preferences, TestNotificationQueued,
};

use super::auth::{Caller, require_admin};
use super::{Page, time};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{Audiences, UserRow};

/// Who may be told, and on what, as the configuration says.
pub fn audiences(s: &AppState) -> Audiences {
    Audiences {
        channels: s.config.notifications.email.iter().map(|_| Channel::Email).collect(),
        admin_users: s.config.admins.users.clone(),
        admin_groups: s.config.admins.groups.clone(),
    }
}

pub async fn settings(s: &AppState, u: &UserRow) -> Result<NotificationSettings> {
    let available = if u.email.is_empty() { Vec::new() } else { audiences(s).channels };
    Ok(NotificationSettings { preferences: s.db.preferences(u.id).await?, available, email: u.email.clone() })
}

pub async fn set_preferences(s: &AppState, u: &UserRow, p: Preferences) -> Result<NotificationSettings> {
    if p.channels.as_ref().is_some_and(|c| c.len() > Channel::ALL.len())
        || p.muted.len() > cone_api::NotificationKind::ALL.len()
    {
        return Err(Error::invalid("Name each channel and each muted kind once."));
    }
    s.db.set_preferences(u.id, &p, s.now()).await?;
    settings(s, u).await
}

/// Notifications, newest first, in `state` (`pending`, `sent`, `failed`) when given. Administrators only.
pub async fn list(s: &AppState, caller: &Caller, state: Option<&str>, page: Page) -> Result<NotificationList> {
    require_admin(s, &caller.user).await?;
    if let Some(st) = state.filter(|st| !["pending", "sent", "failed"].contains(st)) {
        return Err(Error::invalid(format!("Unknown state \"{st}\"; use pending, sent or failed.")));
    }
    let rows = s.db.notifications(state, page.offset, page.limit()).await?;
    let (rows, next_page_token) = page.cut(rows);
    let notifications = rows
        .into_iter()
        .map(|n| Notification {
            id: n.id,
            user: n.username,
            channel: n.channel.0,
            kind: n.kind.0,
            task_id: n.task_id,
            state: n.state,
            attempts: n.attempts,
            last_error: n.last_error,
            due_at: time(n.run_after),
            created_at: time(n.created_at),
            updated_at: time(n.updated_at),
        })
        .collect();
    Ok(NotificationList { notifications, next_page_token })
}

/// Queues a test message to `user` (the caller when `None`) on every channel that reaches them. Administrators may
/// test anyone; others only themselves.
pub async fn test(s: &AppState, caller: &Caller, user: Option<&str>) -> Result<TestNotificationQueued> {
    let to = match user.filter(|name| *name != caller.user.username) {
        None => caller.user.clone(),
        Some(name) => {
            require_admin(s, &caller.user).await?;
            s.db.user_by_name(name)
                .await?
                .ok_or_else(|| Error::NotFound(format!("No user is named \"{name}\"; check the spelling.")))?
        }
    };
    let channels = s.db.test_notification(&audiences(s), caller.user.id, to.id, s.now()).await?;
    Ok(TestNotificationQueued { user: to.username, channels })
}
