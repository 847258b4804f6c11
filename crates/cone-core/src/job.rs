//! Durable jobs: the work on AWS a grant or a drift finding needs, retried until it is done or given up.

/// What a job does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobKind {
    /// Make a grant's assignment.
    Provision,
    /// Remove a grant's assignment.
    Revoke,
    /// Make again the assignment an active grant says its user has (drift repair; the grant keeps its times).
    Reprovision,
    /// Remove an assignment no grant explains (drift repair).
    RemoveDrift,
    /// Delete the IAM user Cone created for a person once no grant needs it (the job names the last grant that did).
    Deprovision,
    /// Remove the access an access review revoked (the job names the review item).
    ReviewRevoke,
    /// Delete the Identity Center user Cone created for a person who signs in with a password, once no grant needs
    /// it (the job names the last grant that did).
    DeprovisionIdcUser,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobState {
    Pending,
    Done,
    /// Given up: only provisioning gives up.
    Failed,
}

impl JobKind {
    pub const ALL: [JobKind; 7] = [
        JobKind::Provision,
        JobKind::Revoke,
        JobKind::Reprovision,
        JobKind::RemoveDrift,
        JobKind::Deprovision,
        JobKind::ReviewRevoke,
        JobKind::DeprovisionIdcUser,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            JobKind::Provision => "provision",
            JobKind::Revoke => "revoke",
            JobKind::Reprovision => "reprovision",
            JobKind::RemoveDrift => "remove_drift",
            JobKind::Deprovision => "deprovision",
            JobKind::ReviewRevoke => "review_revoke",
            JobKind::DeprovisionIdcUser => "deprovision_idc_user",
        }
    }

    pub fn parse(s: &str) -> Option<JobKind> {
        JobKind::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Whether the job may give up after `attempts`: provisioning does after `max_provision`; removing access
    /// (a grant's or a review's) and accounts, and repairing drift, never do (a restoration stops by itself when its grant ends).
    pub fn gives_up(self, attempts: i64, max_provision: i64) -> bool {
        self == JobKind::Provision && attempts >= max_provision
    }
}

impl JobState {
    pub fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Done => "done",
            JobState::Failed => "failed",
        }
    }
}

impl TryFrom<String> for JobKind {
    type Error = String;
    fn try_from(s: String) -> Result<JobKind, String> {
        JobKind::parse(&s)
            .ok_or_else(|| format!("unknown job kind \"{s}\"; is a newer cone-server sharing this database?"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_round_trip_and_only_provisioning_gives_up() {
        for k in JobKind::ALL {
            assert_eq!(JobKind::parse(k.as_str()), Some(k));
            assert!(!k.gives_up(7, 8));
            assert_eq!(k.gives_up(8, 8), k == JobKind::Provision);
        }
        assert!(JobKind::try_from("frobnicate".to_string()).unwrap_err().contains("newer cone-server"));
    }
}
