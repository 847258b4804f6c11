//! The life of a grant: the access a task gives, which exists in AWS (as an account assignment) exactly while the
//! grant holds it.

/// States of a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantState {
    /// Its task waits for a decision.
    Requested,
    /// Approved; the assignment is being made.
    Provisioning,
    Active,
    /// Ended or given back; the assignment is being removed.
    Revoking,
    /// Given back while the assignment was still being made; it is removed once made.
    Released,
    /// The assignment is gone (or another grant still needs it).
    Ended,
    Failed,
    Denied,
    /// Its request was withdrawn or timed out before a decision.
    Cancelled,
}

/// What can happen to a grant.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GrantEvent {
    Approved,
    Denied,
    /// Its request was cancelled or timed out.
    Withdrawn,
    /// AWS made the assignment.
    Provisioned,
    ProvisioningFailed,
    /// Its holder gave it back.
    Released,
    /// Its time is up.
    Expired,
    /// AWS removed the assignment.
    Revoked,
    /// A drift repair made the assignment again after the grant had ended.
    Restored,
}

const ALL: [GrantState; 9] = [
    GrantState::Requested,
    GrantState::Provisioning,
    GrantState::Active,
    GrantState::Revoking,
    GrantState::Released,
    GrantState::Ended,
    GrantState::Failed,
    GrantState::Denied,
    GrantState::Cancelled,
];

impl GrantState {
    /// The states in which the grant's assignment exists or may exist: being made, held, or being removed.
    pub const HOLDING: [GrantState; 4] =
        [GrantState::Provisioning, GrantState::Active, GrantState::Revoking, GrantState::Released];

    pub fn as_str(self) -> &'static str {
        match self {
            GrantState::Requested => "requested",
            GrantState::Provisioning => "provisioning",
            GrantState::Active => "active",
            GrantState::Revoking => "revoking",
            GrantState::Released => "released",
            GrantState::Ended => "ended",
            GrantState::Failed => "failed",
            GrantState::Denied => "denied",
            GrantState::Cancelled => "cancelled",
        }
    }

    pub fn parse(s: &str) -> Option<GrantState> {
        ALL.into_iter().find(|g| g.as_str() == s)
    }

    pub fn holds_assignment(self) -> bool {
        GrantState::HOLDING.contains(&self)
    }

    /// The state after `event`, or `None` when the event makes no sense in this state.
    pub fn on(self, event: GrantEvent) -> Option<GrantState> {
        use {GrantEvent as E, GrantState as S};
        match (self, event) {
            (S::Requested, E::Approved) => Some(S::Provisioning),
            (S::Requested, E::Denied) => Some(S::Denied),
            (S::Requested, E::Withdrawn) => Some(S::Cancelled),
            (S::Provisioning, E::Provisioned) => Some(S::Active),
            // A second run of the same provisioning (its lease ran out while AWS was slow): the grant has it.
            (S::Active, E::Provisioned) => None,
            // Made for a grant that no longer holds it (given back while being made, or ended while a late run of
            // its provisioning was under way): the assignment goes again.
            (_, E::Provisioned) => Some(S::Revoking),
            // Given back or not, an assignment that could not be made leaves nothing to remove.
            (S::Provisioning | S::Released, E::ProvisioningFailed) => Some(S::Failed),
            // The provision job still runs; it sees the release when AWS answers.
            (S::Provisioning, E::Released) => Some(S::Released),
            (S::Active, E::Released | E::Expired) => Some(S::Revoking),
            (S::Revoking, E::Revoked) => Some(S::Ended),
            (S::Ended, E::Restored) => Some(S::Revoking),
            _ => None,
        }
    }
}

impl TryFrom<String> for GrantState {
    type Error = String;
    fn try_from(s: String) -> Result<GrantState, String> {
        GrantState::parse(&s).ok_or_else(|| format!("unknown grant state \"{s}\""))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_names() {
        for s in ALL {
            assert_eq!(GrantState::parse(s.as_str()), Some(s));
        }
        assert_eq!(GrantState::parse("gone"), None);
    }

    #[test]
    fn an_assignment_made_or_held_always_has_a_way_out() {
        use {GrantEvent as E, GrantState as S};
        assert_eq!(S::Requested.on(E::Approved), Some(S::Provisioning));
        assert_eq!(S::Provisioning.on(E::Provisioned), Some(S::Active));
        assert_eq!(S::Provisioning.on(E::Released).and_then(|s| s.on(E::Provisioned)), Some(S::Revoking));
        assert_eq!(S::Active.on(E::Expired).and_then(|s| s.on(E::Revoked)), Some(S::Ended));
        assert_eq!(S::Ended.on(E::Restored), Some(S::Revoking));
        assert_eq!(S::Active.on(E::Approved), None);
        assert_eq!(S::Active.on(E::Provisioned), None, "a repeated provisioning leaves an active grant as it is");
        for made_too_late in [S::Released, S::Revoking, S::Ended, S::Failed] {
            assert_eq!(made_too_late.on(E::Provisioned), Some(S::Revoking), "{made_too_late:?}");
        }
        // Every state that may hold an assignment leads to Ended through revocation.
        for s in GrantState::HOLDING {
            let mut state = s;
            for event in [E::Provisioned, E::Expired, E::Revoked] {
                state = state.on(event).unwrap_or(state);
            }
            assert_eq!(state, S::Ended, "from {s:?}");
        }
        assert!(!S::Ended.holds_assignment() && S::Released.holds_assignment());
    }
}
