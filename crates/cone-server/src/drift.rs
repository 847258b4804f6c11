//! The drift sweep's comparison between the account assignments Identity Center reports and Cone's grants. Pure:
//! the assignments, the grants and the clock come in as arguments; `workers` reads and `db` records.
//!
//! Only user assignments are compared: Cone grants to users, and group assignments belong to whoever manages the
//! groups. A sync reads AWS over a while, so a grant that changed during the sync must not look like drift: an
//! assignment is explained by any grant that holds it or is about to (provisioning, active, revoking, released),
//! and by one whose assignment was removed after the sync started; an assignment is expected only from an active,
//! unexpired grant that became active before the sync started.

use std::collections::{BTreeMap, BTreeSet, HashSet};

use cone_aws::{AssignmentRecord, PermissionSet, Principal};
use cone_core::grant::GrantState;
use cone_core::job::JobKind;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// A user's assignment that no grant explains.
    Unexplained,
    /// An active grant whose assignment is absent.
    Missing,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Unexplained => "unexplained",
            Kind::Missing => "missing",
        }
    }
}

/// What Cone does about a finding (nothing, when absent).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Remedy {
    /// Remove the unexplained assignment (its permission set is in `drift.remove_unexplained`).
    Remove,
    /// Assign again what an active grant says the user has.
    Reprovision,
}

impl Remedy {
    pub fn as_str(self) -> &'static str {
        match self {
            Remedy::Remove => "remove",
            Remedy::Reprovision => "reprovision",
        }
    }

    /// The kind of the job that carries the remedy out.
    pub fn job_kind(self) -> JobKind {
        match self {
            Remedy::Remove => JobKind::RemoveDrift,
            Remedy::Reprovision => JobKind::Reprovision,
        }
    }
}

/// A grant as the sweep sees it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct GrantView {
    pub id: i64,
    pub instance_arn: String,
    pub account_id: String,
    pub permission_set_arn: String,
    pub principal_id: String,
    #[sqlx(try_from = "String")]
    pub state: GrantState,
    pub starts_at: Option<i64>,
    pub expires_at: Option<i64>,
    pub ended_at: Option<i64>,
}

/// One difference between AWS and Cone.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Finding {
    pub kind: Kind,
    pub account_id: String,
    pub permission_set_arn: String,
    /// The identity-store user id.
    pub principal_id: String,
    /// A membership's group (see `grants.group_id`); empty for an assignment.
    pub group_id: String,
    /// Missing: the grant that expects the assignment (the one ending last, when several do).
    pub grant_id: Option<i64>,
    pub remedy: Option<Remedy>,
}

type Key<'a> = (&'a str, &'a str, &'a str);

fn key(g: &GrantView) -> Key<'_> {
    (&g.account_id, &g.permission_set_arn, &g.principal_id)
}

/// The grant accounts for an assignment AWS reported in a sync that started at `synced_at`.
fn explains(g: &GrantView, synced_at: i64) -> bool {
    match g.state {
        GrantState::Ended => g.ended_at.is_some_and(|t| t >= synced_at),
        state => state.holds_assignment(),
    }
}

/// The grant's assignment must be among those AWS reported in a sync that started at `synced_at`. A grant activated
/// in the same second as the sync started may have been assigned after AWS was read, hence the strict comparison.
fn expects(g: &GrantView, synced_at: i64, now: i64) -> bool {
    g.state == GrantState::Active && g.starts_at.is_some_and(|t| t < synced_at) && g.expires_at.is_some_and(|t| t > now)
}

/// The differences between the assignments of a sync that started at `synced_at` and `grants`, the assignments fed
/// one at a time ([`Comparison::see`]) so that they need not all be in memory. Unexplained assignments of permission
/// sets named in `remove_unexplained` are to be removed; missing ones are always to be assigned again, because a grant
/// that says active must give access.
pub struct Comparison<'a> {
    explained: HashSet<Key<'a>>,
    /// Expected and not seen yet: the grant expecting each (the one ending last). Owned keys, unlike `explained`'s,
    /// so that an assignment seen, which lives shorter, can take one out.
    expected: BTreeMap<(String, String, String), &'a GrantView>,
    removable: HashSet<&'a str>,
    unexplained: BTreeSet<Finding>,
}

impl<'a> Comparison<'a> {
    pub fn new(
        instance_arn: &str,
        permission_sets: &'a [PermissionSet],
        grants: &'a [GrantView],
        remove_unexplained: &[String],
        synced_at: i64,
        now: i64,
    ) -> Comparison<'a> {
        let grants = grants.iter().filter(|g| g.instance_arn == instance_arn);
        let explained = grants.clone().filter(|g| explains(g, synced_at)).map(key).collect();
        let mut expected: BTreeMap<(String, String, String), &GrantView> = BTreeMap::new();
        for g in grants.filter(|g| expects(g, synced_at, now)) {
            let k = (g.account_id.clone(), g.permission_set_arn.clone(), g.principal_id.clone());
            let latest = expected.entry(k).or_insert(g);
            if g.expires_at > latest.expires_at {
                *latest = g;
            }
        }
        let removable = permission_sets
            .iter()
            .filter(|ps| remove_unexplained.contains(&ps.name))
            .map(|ps| ps.arn.as_str())
            .collect();
        Comparison { explained, expected, removable, unexplained: BTreeSet::new() }
    }

    /// One assignment AWS reported (group assignments are not compared).
    pub fn see(&mut self, a: &AssignmentRecord) {
        let Principal::User(user) = &a.principal else { return };
        if !self.expected.is_empty() {
            self.expected.remove(&(a.account_id.clone(), a.permission_set_arn.clone(), user.clone()));
        }
        if !self.explained.contains(&(a.account_id.as_str(), a.permission_set_arn.as_str(), user.as_str())) {
            self.unexplained.insert(Finding {
                kind: Kind::Unexplained,
                account_id: a.account_id.clone(),
                permission_set_arn: a.permission_set_arn.clone(),
                principal_id: user.clone(),
                group_id: String::new(),
                grant_id: None,
                remedy: self.removable.contains(a.permission_set_arn.as_str()).then_some(Remedy::Remove),
            });
        }
    }

    /// The differences, sorted.
    pub fn findings(self) -> Vec<Finding> {
        let missing = self.expected.into_iter().map(|((account_id, permission_set_arn, principal_id), g)| Finding {
            kind: Kind::Missing,
            account_id,
            permission_set_arn,
            principal_id,
            group_id: String::new(),
            grant_id: Some(g.id),
            remedy: Some(Remedy::Reprovision),
        });
        let mut findings: Vec<Finding> = self.unexplained.into_iter().chain(missing).collect();
        findings.sort();
        findings
    }
}

/// Names in `remove_unexplained` that match none of `permission_sets` (most likely typos).
pub fn unknown_permission_sets<'a>(
    permission_sets: &[PermissionSet],
    remove_unexplained: &'a [String],
) -> Vec<&'a str> {
    remove_unexplained
        .iter()
        .filter(|name| !permission_sets.iter().any(|ps| &ps.name == *name))
        .map(String::as_str)
        .collect()
}

#[cfg(test)]
mod tests {
    use cone_aws::Snapshot;

    use super::*;

    const INSTANCE: &str = "arn:aws:sso:::instance/ssoins-1";
    const SYNCED_AT: i64 = 1_000;
    const NOW: i64 = 1_010;

    fn snapshot(assignments: Vec<AssignmentRecord>) -> Snapshot {
        Snapshot {
            resumed: None,
            instance_arn: INSTANCE.into(),
            identity_store_id: "d-1".into(),
            accounts: vec![],
            permission_sets: ["Admin", "ReadOnly"]
                .map(|name| PermissionSet {
                    arn: format!("ps-{name}"),
                    name: name.into(),
                    description: None,
                    session_duration: None,
                })
                .into(),
            provisioned: vec![],
            users: vec![],
            groups: vec![],
            memberships: vec![],
            assignments,
        }
    }

    fn user(account: &str, ps: &str, user: &str) -> AssignmentRecord {
        AssignmentRecord {
            account_id: account.into(),
            permission_set_arn: ps.into(),
            principal: Principal::User(user.into()),
        }
    }

    fn grant(id: i64, state: &str, ps: &str, user: &str) -> GrantView {
        GrantView {
            id,
            instance_arn: INSTANCE.into(),
            account_id: "111".into(),
            permission_set_arn: ps.into(),
            principal_id: user.into(),
            state: GrantState::parse(state).unwrap(),
            starts_at: Some(SYNCED_AT - 100),
            expires_at: Some(NOW + 3_600),
            ended_at: None,
        }
    }

    fn finding(kind: Kind, ps: &str, user: &str, grant_id: Option<i64>, remedy: Option<Remedy>) -> Finding {
        Finding {
            group_id: String::new(),
            kind,
            account_id: "111".into(),
            permission_set_arn: ps.into(),
            principal_id: user.into(),
            grant_id,
            remedy,
        }
    }

    fn compare_with(snap: &Snapshot, grants: &[GrantView]) -> Vec<Finding> {
        let remove = ["Admin".to_string()];
        let mut c = Comparison::new(&snap.instance_arn, &snap.permission_sets, grants, &remove, SYNCED_AT, NOW);
        snap.assignments.iter().for_each(|a| c.see(a));
        c.findings()
    }

    #[test]
    fn agreement_is_no_drift() {
        let snap = snapshot(vec![user("111", "ps-Admin", "u-alice")]);
        assert_eq!(compare_with(&snap, &[grant(1, "active", "ps-Admin", "u-alice")]), vec![]);
    }

    #[test]
    fn unexplained_user_assignments_are_removed_only_when_opted_in() {
        let snap = snapshot(vec![user("111", "ps-Admin", "u-bob"), user("111", "ps-ReadOnly", "u-bob")]);
        assert_eq!(
            compare_with(&snap, &[]),
            vec![
                finding(Kind::Unexplained, "ps-Admin", "u-bob", None, Some(Remedy::Remove)),
                finding(Kind::Unexplained, "ps-ReadOnly", "u-bob", None, None),
            ]
        );
    }

    #[test]
    fn group_assignments_are_never_drift() {
        let mut snap = snapshot(vec![]);
        snap.assignments.push(AssignmentRecord {
            account_id: "111".into(),
            permission_set_arn: "ps-Admin".into(),
            principal: Principal::Group("g-admins".into()),
        });
        assert_eq!(compare_with(&snap, &[]), vec![]);
    }

    #[test]
    fn grants_in_flight_explain_their_assignment() {
        let snap = snapshot(vec![user("111", "ps-Admin", "u-alice")]);
        for state in ["provisioning", "revoking", "released"] {
            assert_eq!(compare_with(&snap, &[grant(1, state, "ps-Admin", "u-alice")]), vec![], "{state}");
        }
        // Expired but not yet revoked: the revoke job will remove it, and nothing is missing.
        let mut due = grant(1, "active", "ps-Admin", "u-alice");
        due.expires_at = Some(NOW - 1);
        assert_eq!(compare_with(&snap, &[due.clone()]), vec![]);
        assert_eq!(compare_with(&snapshot(vec![]), &[due]), vec![]);
    }

    #[test]
    fn an_ended_grant_explains_only_what_a_sync_read_before_the_removal() {
        let snap = snapshot(vec![user("111", "ps-Admin", "u-alice")]);
        let mut ended = grant(1, "ended", "ps-Admin", "u-alice");
        ended.ended_at = Some(SYNCED_AT + 2);
        assert_eq!(compare_with(&snap, &[ended.clone()]), vec![]);
        ended.ended_at = Some(SYNCED_AT - 1);
        assert_eq!(
            compare_with(&snap, &[ended]),
            vec![finding(Kind::Unexplained, "ps-Admin", "u-alice", None, Some(Remedy::Remove))]
        );
        for state in ["requested", "cancelled", "denied", "failed"] {
            assert_eq!(compare_with(&snap, &[grant(1, state, "ps-Admin", "u-alice")]).len(), 1, "{state}");
        }
    }

    #[test]
    fn a_missing_assignment_of_an_active_grant_is_reprovisioned() {
        let snap = snapshot(vec![]);
        let mut older = grant(1, "active", "ps-ReadOnly", "u-alice");
        older.expires_at = Some(NOW + 60);
        let newer = grant(2, "active", "ps-ReadOnly", "u-alice");
        assert_eq!(
            compare_with(&snap, &[newer, older]),
            vec![finding(Kind::Missing, "ps-ReadOnly", "u-alice", Some(2), Some(Remedy::Reprovision))]
        );
    }

    #[test]
    fn a_grant_activated_during_the_sync_is_not_missing() {
        let mut fresh = grant(1, "active", "ps-ReadOnly", "u-alice");
        fresh.starts_at = Some(SYNCED_AT);
        assert_eq!(compare_with(&snapshot(vec![]), &[fresh]), vec![]);
    }

    #[test]
    fn other_instances_are_ignored() {
        let mut elsewhere = grant(1, "active", "ps-Admin", "u-alice");
        elsewhere.instance_arn = "arn:aws:sso:::instance/ssoins-2".into();
        assert_eq!(compare_with(&snapshot(vec![]), std::slice::from_ref(&elsewhere)), vec![]);
        assert_eq!(
            compare_with(&snapshot(vec![user("111", "ps-Admin", "u-alice")]), &[elsewhere]),
            vec![finding(Kind::Unexplained, "ps-Admin", "u-alice", None, Some(Remedy::Remove))]
        );
    }

    #[test]
    fn unknown_names_are_reported() {
        let names = ["Admin".to_string(), "Admn".to_string()];
        assert_eq!(unknown_permission_sets(&snapshot(vec![]).permission_sets, &names), vec!["Admn"]);
    }
}
