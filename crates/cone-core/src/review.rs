//! User access reviews: which access a campaign covers, who reviews each item, and the life of an item from
//! snapshot to decision and, for a revocation, to its removal in AWS.

use serde::{Deserialize, Serialize};

/// What a review item is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ItemKind {
    /// An account assignment made to the person directly, outside Cone (standing access).
    Assignment,
    /// A membership of an Identity Center group, reviewed for every assignment the group holds.
    GroupMembership,
    /// An active Cone grant.
    Grant,
    /// An IAM user Cone did not create (`aws.sync_iam`): revoking it means deleting it, by hand.
    IamUser,
    /// A membership of an IAM group that no Cone grant gave.
    IamGroupMembership,
    /// An active access key of an IAM user (`aws.sync_secrets`).
    AccessKey,
}

impl ItemKind {
    pub const ALL: [ItemKind; 6] = [
        ItemKind::Assignment,
        ItemKind::GroupMembership,
        ItemKind::Grant,
        ItemKind::IamUser,
        ItemKind::IamGroupMembership,
        ItemKind::AccessKey,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemKind::Assignment => "assignment",
            ItemKind::GroupMembership => "group_membership",
            ItemKind::Grant => "grant",
            ItemKind::IamUser => "iam_user",
            ItemKind::IamGroupMembership => "iam_group_membership",
            ItemKind::AccessKey => "access_key",
        }
    }

    /// Whether the item is about IAM, as the IAM sync reads it.
    pub fn is_iam(self) -> bool {
        matches!(self, ItemKind::IamUser | ItemKind::IamGroupMembership | ItemKind::AccessKey)
    }

    pub fn parse(s: &str) -> Option<ItemKind> {
        ItemKind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// Where an item stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ItemState {
    /// Not decided yet.
    Pending,
    /// A reviewer said the access may stay.
    Certified,
    /// A reviewer said it must go; its removal is under way.
    Revoking,
    /// Removed from AWS after a revocation.
    Revoked,
    /// Gone from AWS before anyone revoked it (removed by hand, or a grant that ended).
    Gone,
}

/// What happens to an item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemEvent {
    Certify,
    Revoke,
    /// The revocation's removal is done.
    Removed,
    /// A sync no longer sees the access.
    Vanished,
}

impl ItemState {
    pub const ALL: [ItemState; 5] =
        [ItemState::Pending, ItemState::Certified, ItemState::Revoking, ItemState::Revoked, ItemState::Gone];

    pub fn as_str(self) -> &'static str {
        match self {
            ItemState::Pending => "pending",
            ItemState::Certified => "certified",
            ItemState::Revoking => "revoking",
            ItemState::Revoked => "revoked",
            ItemState::Gone => "gone",
        }
    }

    pub fn parse(s: &str) -> Option<ItemState> {
        ItemState::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// Where `event` takes an item in this state. A certification may become a revocation while the campaign is
    /// open; a revocation is final, since its removal starts at once.
    pub fn on(self, event: ItemEvent) -> Option<ItemState> {
        use {ItemEvent as E, ItemState as S};
        match (self, event) {
            (S::Pending, E::Certify) => Some(S::Certified),
            (S::Pending | S::Certified, E::Revoke) => Some(S::Revoking),
            (S::Revoking, E::Removed) => Some(S::Revoked),
            (S::Pending | S::Certified, E::Vanished) => Some(S::Gone),
            _ => None,
        }
    }

    /// The states `event` applies to, for writes of many rows at once.
    pub fn before(event: ItemEvent) -> Vec<ItemState> {
        ItemState::ALL.into_iter().filter(|s| s.on(event).is_some()).collect()
    }

    /// Whether a reviewer still has something to do.
    pub fn is_open(self) -> bool {
        self == ItemState::Pending
    }
}

impl TryFrom<String> for ItemState {
    type Error = String;
    fn try_from(s: String) -> Result<ItemState, String> {
        ItemState::parse(&s)
            .ok_or_else(|| format!("unknown review item state \"{s}\"; is a newer cone-server sharing this database?"))
    }
}

impl TryFrom<String> for ItemKind {
    type Error = String;
    fn try_from(s: String) -> Result<ItemKind, String> {
        ItemKind::parse(&s)
            .ok_or_else(|| format!("unknown review item kind \"{s}\"; is a newer cone-server sharing this database?"))
    }
}

/// An account and permission set an item's access reaches: a membership reaches those its group is assigned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reach {
    pub account_id: String,
    pub account: String,
    pub permission_set: String,
}

/// Which access a campaign covers. Each list narrows it; an empty list does not.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    /// Accounts by name or id: the item reaches one of them.
    pub accounts: Vec<String>,
    /// Permission sets by name: the item reaches one of them.
    pub permission_sets: Vec<String>,
    /// Groups by name: only memberships of these (granted or standing; Identity Center or IAM).
    pub groups: Vec<String>,
    pub kinds: Vec<ItemKind>,
}

impl Scope {
    /// Whether an item of `kind`, a membership of `group` when it is one, reaching `reaches`, is in scope.
    pub fn includes(&self, kind: ItemKind, group: Option<&str>, reaches: &[Reach]) -> bool {
        let named = |list: &[String], name: &str| list.iter().any(|n| n.eq_ignore_ascii_case(name));
        let reached = self.accounts.is_empty() && self.permission_sets.is_empty()
            || reaches.iter().any(|r| {
                (self.accounts.is_empty() || named(&self.accounts, &r.account) || self.accounts.contains(&r.account_id))
                    && (self.permission_sets.is_empty() || named(&self.permission_sets, &r.permission_set))
            });
        (self.kinds.is_empty() || self.kinds.contains(&kind))
            && (self.groups.is_empty() || group.is_some_and(|g| named(&self.groups, g)))
            && reached
    }
}

/// An IAM item's revocation, as the connector's permissions allow it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// The connector removes it.
    Connector,
    /// Someone must, by hand, as the text says; a sync that no longer finds the access completes the revocation.
    ByHand(String),
}

/// The IAM item a revocation removes: the account, the IAM user's ARN, and the group or access key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IamTarget<'a> {
    pub account_id: &'a str,
    pub user_arn: &'a str,
    pub group: &'a str,
    pub access_key: &'a str,
}

/// The path of an IAM user's ARN (`arn:aws:iam::1:user/cone/alice` has `/cone/`).
pub fn iam_user_path(arn: &str) -> Option<&str> {
    let resource = &arn[arn.find(":user/")? + ":user".len()..];
    Some(&resource[..resource.rfind('/')? + 1])
}

/// The IAM user name in an IAM user's ARN.
pub fn iam_user_name(arn: &str) -> &str {
    arn.rsplit('/').next().unwrap_or(arn)
}

/// Who removes a revoked IAM item of `kind`. `iam_writes` says whether the connector may change IAM
/// (`aws.provisioning` with `aws.sync_iam`), and `cone_path` is the path of the users it may change
/// (`aws.account_provisioning.path`): its policy lets it remove any user from an IAM group, but deactivate the keys of
/// its own path's users only. An IAM user is deleted by hand whatever the connector may do: Cone deletes only users
/// it made.
pub fn iam_removal(kind: ItemKind, t: &IamTarget, iam_writes: bool, cone_path: &str) -> Removal {
    let user = iam_user_name(t.user_arn);
    let account = t.account_id;
    let ours = iam_user_path(t.user_arn) == Some(cone_path);
    match kind {
        ItemKind::IamGroupMembership if iam_writes => Removal::Connector,
        ItemKind::AccessKey if iam_writes && ours => Removal::Connector,
        ItemKind::IamGroupMembership => Removal::ByHand(format!(
            "In account {account}, remove IAM user {user} from IAM group {}: aws iam remove-user-from-group \
             --user-name {user} --group-name {}",
            t.group, t.group
        )),
        ItemKind::AccessKey => Removal::ByHand(format!(
            "In account {account}, deactivate access key {key} of IAM user {user}: aws iam update-access-key \
             --user-name {user} --access-key-id {key} --status Inactive",
            key = t.access_key
        )),
        _ => Removal::ByHand(format!(
            "In account {account}, delete IAM user {user} (the IAM console deletes its password, keys and memberships \
             with it)"
        )),
    }
}

/// Who reviews a person's access.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reviewers {
    /// The person's manager.
    Manager,
    /// The app's owners.
    Owners,
    /// Any member of a group.
    Group(String),
    /// Any of these people.
    Users(Vec<String>),
}

/// The people who may decide an item about `subject`'s access: those `rule` names, never the subject; when that
/// leaves nobody, the first fallback reviewer who is not the subject. `candidates` are the people the rule
/// names, as the caller resolved them (the manager, the owners, the group's members, the users).
pub fn reviewers_for(subject: &str, candidates: &[String], fallback: &[String]) -> Result<Vec<String>, String> {
    let mut seen = std::collections::HashSet::new();
    let mut chosen: Vec<String> =
        candidates.iter().filter(|c| *c != subject && seen.insert(c.as_str())).cloned().collect();
    if chosen.is_empty()
        && let Some(f) = fallback.iter().find(|f| *f != subject)
    {
        chosen.push(f.clone());
    }
    if chosen.is_empty() {
        return Err(format!(
            "Nobody but {subject} could review {subject}'s access; name a fallback reviewer other than {subject}."
        ));
    }
    Ok(chosen)
}

/// A value written into a CSV cell as text a spreadsheet will not run: a leading `=`, `+`, `-`, `@`, tab or
/// carriage return makes spreadsheets read a formula, so such a value is prefixed with a quote (OWASP's advice).
pub fn csv_safe(value: &str) -> String {
    if value.starts_with(['=', '+', '-', '@', '\t', '\r']) { format!("'{value}") } else { value.to_string() }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reach(account: &str, set: &str) -> Reach {
        Reach { account_id: format!("{account}-id"), account: account.into(), permission_set: set.into() }
    }

    #[test]
    fn a_revocation_is_final_and_a_certification_may_become_one() {
        use {ItemEvent as E, ItemState as S};
        assert_eq!(S::Pending.on(E::Certify), Some(S::Certified));
        assert_eq!(S::Certified.on(E::Revoke), Some(S::Revoking));
        assert_eq!(S::Revoking.on(E::Certify), None);
        assert_eq!(S::Revoking.on(E::Removed), Some(S::Revoked));
        assert_eq!(S::Certified.on(E::Certify), None);
        assert_eq!(S::Revoked.on(E::Vanished), None);
        assert_eq!(S::before(E::Vanished), [S::Pending, S::Certified]);
        for s in ItemState::ALL {
            assert_eq!(ItemState::try_from(s.as_str().to_string()), Ok(s));
        }
        for k in ItemKind::ALL {
            assert_eq!(ItemKind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_value(k).unwrap(), k.as_str());
        }
        assert_eq!(serde_json::to_value(S::Revoking).unwrap(), "revoking");
        assert!(ItemState::try_from("lost".to_string()).unwrap_err().contains("newer cone-server"));
    }

    #[test]
    fn each_list_of_a_scope_narrows_it() {
        let prod = [reach("Production", "AdministratorAccess")];
        let all = Scope::default();
        assert!(all.includes(ItemKind::Grant, None, &prod));
        assert!(all.includes(ItemKind::GroupMembership, Some("empty"), &[]));
        let production = Scope { accounts: vec!["production".into()], ..Scope::default() };
        assert!(production.includes(ItemKind::Assignment, None, &prod));
        assert!(!production.includes(ItemKind::GroupMembership, Some("empty"), &[]));
        let by_id = Scope { accounts: vec!["Production-id".into()], ..Scope::default() };
        assert!(by_id.includes(ItemKind::Assignment, None, &prod));
        // The account and the permission set must be reached together.
        let both =
            Scope { accounts: vec!["Production".into()], permission_sets: vec!["ReadOnly".into()], ..Scope::default() };
        assert!(!both.includes(ItemKind::Assignment, None, &[reach("Production", "Admin"), reach("Dev", "ReadOnly")]));
        assert!(both.includes(ItemKind::Assignment, None, &[reach("Production", "ReadOnly")]));
        let groups = Scope { groups: vec!["dba-prod".into()], ..Scope::default() };
        assert!(groups.includes(ItemKind::GroupMembership, Some("DBA-prod"), &[]));
        assert!(!groups.includes(ItemKind::Assignment, None, &prod));
        let kinds = Scope { kinds: vec![ItemKind::Grant], ..Scope::default() };
        assert!(!kinds.includes(ItemKind::Assignment, None, &prod));
    }

    #[test]
    fn nobody_reviews_their_own_access() {
        let v = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(reviewers_for("alice", &v(&["carol"]), &v(&["dave"])), Ok(v(&["carol"])));
        assert_eq!(reviewers_for("alice", &v(&["alice", "bob", "bob"]), &[]), Ok(v(&["bob"])));
        assert_eq!(reviewers_for("carol", &v(&["carol"]), &v(&["carol", "dave"])), Ok(v(&["dave"])));
        assert_eq!(reviewers_for("alice", &[], &v(&["dave"])), Ok(v(&["dave"])));
        let err = reviewers_for("dave", &v(&["dave"]), &v(&["dave"])).unwrap_err();
        assert!(err.contains("fallback reviewer other than dave"), "{err}");
    }

    #[test]
    fn the_connector_removes_only_what_its_policy_lets_it() {
        let key = IamTarget {
            account_id: "111122223333",
            user_arn: "arn:aws:iam::111122223333:user/cone/alice",
            group: "",
            access_key: "AKIAEXAMPLE",
        };
        assert_eq!(iam_user_path(key.user_arn), Some("/cone/"));
        assert_eq!(iam_user_path("arn:aws:iam::1:user/ci"), Some("/"));
        assert_eq!(iam_user_path("arn:aws:iam::1:user/a/b/ci"), Some("/a/b/"));
        assert_eq!(iam_user_path("arn:aws:iam::1:group/ci"), None);
        assert_eq!(iam_user_name(key.user_arn), "alice");
        assert_eq!(iam_removal(ItemKind::AccessKey, &key, true, "/cone/"), Removal::Connector);
        let Removal::ByHand(text) = iam_removal(ItemKind::AccessKey, &key, true, "/") else { panic!("by hand") };
        assert!(text.contains("--user-name alice --access-key-id AKIAEXAMPLE --status Inactive"), "{text}");
        assert!(matches!(iam_removal(ItemKind::AccessKey, &key, false, "/cone/"), Removal::ByHand(_)));
        let member = IamTarget { group: "admins", access_key: "", ..key.clone() };
        assert_eq!(iam_removal(ItemKind::IamGroupMembership, &member, true, "/"), Removal::Connector);
        let Removal::ByHand(text) = iam_removal(ItemKind::IamGroupMembership, &member, false, "/") else {
            panic!("by hand")
        };
        assert!(text.contains("--user-name alice --group-name admins"), "{text}");
        let Removal::ByHand(text) = iam_removal(ItemKind::IamUser, &key, true, "/cone/") else { panic!("by hand") };
        assert!(text.contains("delete IAM user alice"), "{text}");
    }

    #[test]
    fn spreadsheet_formulas_are_written_as_text() {
        assert_eq!(csv_safe("=HYPERLINK(\"x\")"), "'=HYPERLINK(\"x\")");
        assert_eq!(csv_safe("-1+2"), "'-1+2");
        assert_eq!(csv_safe("alice"), "alice");
    }
}
