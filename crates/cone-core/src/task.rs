//! The life of a grant request (a task) and of the grant it produces.

/// States of a grant task. `PendingApproval` and `Provisioning` are open: at most one open task exists per
/// requester and entitlement.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
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
    Provisioned,
    ProvisioningFailed,
    Ended,
    Cancelled,
    Released,
    TimedOut,
}

const ALL: [TaskState; 9] = [
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
            (S::Provisioning, E::ProvisioningFailed) => Some(S::Failed),
            (S::Granted, E::Ended) => Some(S::Expired),
            (S::PendingApproval, E::Cancelled) => Some(S::Cancelled),
            (S::PendingApproval, E::TimedOut) => Some(S::TimedOut),
            // Releasing while AWS is still provisioning is allowed: the revocation follows the assignment.
            (S::Provisioning | S::Granted, E::Released) => Some(S::Released),
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_names() {
        for s in ALL {
            assert_eq!(TaskState::parse(s.as_str()), Some(s));
        }
        assert_eq!(TaskState::parse("nope"), None);
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
