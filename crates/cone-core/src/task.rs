//! The life of a grant request (a task): its kinds, its states and the events that move it.

use serde::{Deserialize, Serialize};

/// What a task asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// New access: the task has a grant of its own.
    Grant,
    /// More time on an active grant.
    Extend,
}

impl TaskKind {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Grant => "grant",
            TaskKind::Extend => "extend",
        }
    }

    pub fn parse(s: &str) -> Option<TaskKind> {
        [TaskKind::Grant, TaskKind::Extend].into_iter().find(|k| k.as_str() == s)
    }
}

/// States of a task. `PendingApproval` and `Provisioning` are open: at most one open task exists per requester and
/// entitlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TaskState {
    PendingApproval,
    Provisioning,
    Granted,
    Denied,
    Failed,
    /// The grant ended and its access was removed (or is being removed).
    Expired,
    /// The requester withdrew the request before it was decided.
    Cancelled,
    /// The requester gave the access back before the grant ended.
    Released,
    /// Nobody decided the request in time.
    TimedOut,
}

/// What can happen to a task.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    Approved,
    Denied,
    /// The access exists: the assignment was made, or the extension moved the grant's end.
    Provisioned,
    ProvisioningFailed,
    Ended,
    Cancelled,
    Released,
    TimedOut,
}

pub const ALL: [TaskState; 9] = [
    TaskState::PendingApproval,
    TaskState::Provisioning,
    TaskState::Granted,
    TaskState::Denied,
    TaskState::Failed,
    TaskState::Expired,
    TaskState::Cancelled,
    TaskState::Released,
    TaskState::TimedOut,
];

impl TaskState {
    pub fn as_str(self) -> &'static str {
        match self {
            TaskState::PendingApproval => "pending_approval",
            TaskState::Provisioning => "provisioning",
            TaskState::Granted => "granted",
            TaskState::Denied => "denied",
            TaskState::Failed => "failed",
            TaskState::Expired => "expired",
            TaskState::Cancelled => "cancelled",
            TaskState::Released => "released",
            TaskState::TimedOut => "timed_out",
        }
    }

    /// The state for people: `pending approval`, `timed out`.
    pub fn words(self) -> String {
        self.as_str().replace('_', " ")
    }

    pub fn parse(s: &str) -> Option<TaskState> {
        ALL.into_iter().find(|t| t.as_str() == s)
    }

    pub fn is_open(self) -> bool {
        matches!(self, TaskState::PendingApproval | TaskState::Provisioning)
    }

    /// The state after `event`, or `None` when the event makes no sense in this state (for example approving a
    /// request that was already denied).
    pub fn on(self, event: Event) -> Option<TaskState> {
        use {Event as E, TaskState as S};
        match (self, event) {
            (S::PendingApproval, E::Approved) => Some(S::Provisioning),
            (S::PendingApproval, E::Denied) => Some(S::Denied),
            (S::Provisioning, E::Provisioned) => Some(S::Granted),
            // Released while AWS was still provisioning, which then failed: the reason is worth more than the release.
            (S::Provisioning | S::Released, E::ProvisioningFailed) => Some(S::Failed),
            (S::Granted, E::Ended) => Some(S::Expired),
            (S::PendingApproval, E::Cancelled) => Some(S::Cancelled),
            (S::PendingApproval, E::TimedOut) => Some(S::TimedOut),
            // Releasing while AWS is still provisioning is allowed: the revocation follows the assignment.
            (S::Provisioning | S::Granted, E::Released) => Some(S::Released),
            _ => None,
        }
    }
}

/// The text stored and sent for a state; anything else is refused when read back.
impl TryFrom<String> for TaskState {
    type Error = String;
    fn try_from(s: String) -> Result<TaskState, String> {
        TaskState::parse(&s).ok_or_else(|| format!("unknown task state \"{s}\""))
    }
}

impl TryFrom<String> for TaskKind {
    type Error = String;
    fn try_from(s: String) -> Result<TaskKind, String> {
        TaskKind::parse(&s).ok_or_else(|| format!("unknown task kind \"{s}\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_names() {
        for s in ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str(), "the wire says what the store says");
        }
        assert_eq!(TaskState::parse("nope"), None);
        for k in [TaskKind::Grant, TaskKind::Extend] {
            assert_eq!(TaskKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(TaskState::TimedOut.words(), "timed out");
    }

    #[test]
    fn transitions() {
        use {Event as E, TaskState as S};
        assert_eq!(S::PendingApproval.on(E::Approved), Some(S::Provisioning));
        assert_eq!(S::Provisioning.on(E::Provisioned), Some(S::Granted));
        assert_eq!(S::Granted.on(E::Ended), Some(S::Expired));
        assert_eq!(S::Denied.on(E::Approved), None);
        assert_eq!(S::Granted.on(E::Approved), None);
        assert_eq!(S::PendingApproval.on(E::Cancelled), Some(S::Cancelled));
        assert_eq!(S::Granted.on(E::Cancelled), None);
        assert_eq!(S::Provisioning.on(E::Released), Some(S::Released));
        assert_eq!(S::PendingApproval.on(E::Released), None);
        assert_eq!(S::PendingApproval.on(E::TimedOut), Some(S::TimedOut));
        assert!(S::PendingApproval.is_open() && S::Provisioning.is_open() && !S::Granted.is_open());
    }
}
