//! The users Cone creates for people (seed 002's "automatic account provisioning and deprovisioning"): an IAM user
//! per person and account, and an Identity Center user for a person who signs in to Cone with a password, each made
//! when a grant first needs it and deleted when none does.

/// What Cone created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountKind {
    /// An IAM user in one account, for IAM-group grants there.
    IamUser,
    /// An Identity Center user, for every grant of a person Identity Center did not know.
    IdcUser,
}

impl AccountKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AccountKind::IamUser => "iam_user",
            AccountKind::IdcUser => "idc_user",
        }
    }
}

impl TryFrom<String> for AccountKind {
    type Error = String;
    fn try_from(s: String) -> Result<AccountKind, String> {
        [AccountKind::IamUser, AccountKind::IdcUser]
            .into_iter()
            .find(|k| k.as_str() == s)
            .ok_or_else(|| format!("unknown account kind `{s}`"))
    }
}

/// Where a created account stands. It is recorded as `Creating` before AWS is asked to create it, so that a crash
/// in between leaves a row that says to finish the work, never a user Cone does not know it made.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountState {
    Creating,
    Active,
    /// No grant needs it and its deletion has begun.
    Deleting,
    Deleted,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AccountEvent {
    /// A grant being provisioned needs the account.
    Needed,
    /// AWS has the user.
    Created,
    /// No grant needs it any more, and the deprovisioning policy says to delete it.
    Unneeded,
    /// AWS no longer has the user.
    Removed,
}

/// What a grant being provisioned does about the account it needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Need {
    /// Create it (again, after a crash, if it was being created).
    Create,
    /// It exists: use it.
    Use,
    /// It is being deleted: wait and try again.
    Wait,
}

impl AccountState {
    pub const ALL: [AccountState; 4] =
        [AccountState::Creating, AccountState::Active, AccountState::Deleting, AccountState::Deleted];

    pub fn as_str(self) -> &'static str {
        match self {
            AccountState::Creating => "creating",
            AccountState::Active => "active",
            AccountState::Deleting => "deleting",
            AccountState::Deleted => "deleted",
        }
    }

    pub fn parse(s: &str) -> Option<AccountState> {
        AccountState::ALL.into_iter().find(|a| a.as_str() == s)
    }

    /// The state after `event`, or `None` when the event changes nothing here.
    pub fn on(self, event: AccountEvent) -> Option<AccountState> {
        use {AccountEvent as E, AccountState as S};
        match (self, event) {
            (S::Deleted, E::Needed) => Some(S::Creating),
            (S::Creating, E::Created) => Some(S::Active),
            (S::Creating | S::Active, E::Unneeded) => Some(S::Deleting),
            (S::Deleting, E::Removed) => Some(S::Deleted),
            _ => None,
        }
    }

    /// What a grant that needs the account does in this state (`None`: there is no account yet).
    pub fn need(state: Option<AccountState>) -> Need {
        match state {
            None | Some(AccountState::Creating | AccountState::Deleted) => Need::Create,
            Some(AccountState::Active) => Need::Use,
            Some(AccountState::Deleting) => Need::Wait,
        }
    }
}

impl TryFrom<String> for AccountState {
    type Error = String;
    fn try_from(s: String) -> Result<AccountState, String> {
        AccountState::parse(&s).ok_or_else(|| format!("unknown account state `{s}`"))
    }
}

#[cfg(test)]
mod tests {
    use super::{AccountEvent as E, AccountState as S, Need};

    #[test]
    fn an_account_is_made_used_and_removed_once() {
        assert_eq!(S::need(None), Need::Create);
        assert_eq!(S::Creating.on(E::Created), Some(S::Active));
        assert_eq!(S::need(Some(S::Active)), Need::Use);
        assert_eq!(S::Active.on(E::Unneeded), Some(S::Deleting));
        assert_eq!(S::need(Some(S::Deleting)), Need::Wait, "a grant waits for a deletion under way");
        assert_eq!(S::Deleting.on(E::Removed), Some(S::Deleted));
        assert_eq!(S::Deleted.on(E::Needed), Some(S::Creating));
        assert_eq!(S::need(Some(S::Creating)), Need::Create, "creation interrupted by a crash is finished");
        // Nothing deletes what is gone, nor recreates what exists.
        assert_eq!(S::Deleted.on(E::Unneeded), None);
        assert_eq!(S::Active.on(E::Needed), None);
        for s in S::ALL {
            assert_eq!(S::parse(s.as_str()), Some(s));
        }
        for k in [super::AccountKind::IamUser, super::AccountKind::IdcUser] {
            assert_eq!(super::AccountKind::try_from(k.as_str().to_string()), Ok(k));
        }
    }
}
