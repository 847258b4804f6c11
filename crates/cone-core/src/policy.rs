//! Policies decide what happens to a request: a list of steps walked in order.

/// One step of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Approve without asking anyone.
    Accept,
    /// Deny.
    Reject,
    /// Wait for one member of the group (other than the requester) to approve.
    Approval { group: String },
}

/// Where a request stands after walking the policy from some step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Granted,
    Denied,
    /// Waiting at step `index` for a member of `group`.
    NeedsApproval {
        index: usize,
        group: String,
    },
}

/// Walks `steps` from `index` until a step waits or decides; running off the end grants.
pub fn advance(steps: &[Step], index: usize) -> Outcome {
    for (i, step) in steps.iter().enumerate().skip(index) {
        match step {
            Step::Accept => continue,
            Step::Reject => return Outcome::Denied,
            Step::Approval { group } => {
                return Outcome::NeedsApproval { index: i, group: group.clone() };
            }
        }
    }
    Outcome::Granted
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalError {
    SelfApproval,
    NotAnApprover { group: String },
    NotWaiting,
}

/// Checks that `approver` may decide the step a request waits at. Requesters never decide their own requests.
pub fn check_approver(
    requester: &str,
    approver: &str,
    approver_groups: &[String],
    waiting_for: Option<&str>,
) -> Result<(), ApprovalError> {
    let group = waiting_for.ok_or(ApprovalError::NotWaiting)?;
    if requester == approver {
        return Err(ApprovalError::SelfApproval);
    }
    if !approver_groups.iter().any(|g| g == group) {
        return Err(ApprovalError::NotAnApprover { group: group.to_string() });
    }
    Ok(())
}

impl ApprovalError {
    pub fn message(&self) -> String {
        match self {
            ApprovalError::SelfApproval => {
                "You cannot approve or deny your own request; ask a member of the approving group.".into()
            }
            ApprovalError::NotAnApprover { group } => {
                format!("This request waits for a member of group \"{group}\", and you are not one.")
            }
            ApprovalError::NotWaiting => "This request is not waiting for an approval.".into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn approval(g: &str) -> Step {
        Step::Approval { group: g.into() }
    }

    #[test]
    fn walks_steps() {
        assert_eq!(advance(&[Step::Accept], 0), Outcome::Granted);
        assert_eq!(advance(&[], 0), Outcome::Granted);
        assert_eq!(advance(&[Step::Reject, Step::Accept], 0), Outcome::Denied);
        let steps = [Step::Accept, approval("approvers"), Step::Reject];
        assert_eq!(advance(&steps, 0), Outcome::NeedsApproval { index: 1, group: "approvers".into() });
        assert_eq!(advance(&steps, 2), Outcome::Denied);
    }

    #[test]
    fn no_self_approval() {
        let groups = vec!["approvers".to_string()];
        assert_eq!(check_approver("bob", "bob", &groups, Some("approvers")), Err(ApprovalError::SelfApproval));
        assert_eq!(check_approver("alice", "bob", &groups, Some("approvers")), Ok(()));
        assert_eq!(
            check_approver("alice", "carol", &[], Some("approvers")),
            Err(ApprovalError::NotAnApprover { group: "approvers".into() })
        );
        assert_eq!(check_approver("alice", "bob", &groups, None), Err(ApprovalError::NotWaiting));
    }
}
