//! Who is who: the users a sync of Identity Center read, reconciled with the people Cone knows. A person is their
//! Identity Center user id; the user name, display name and email are attributes that a sync updates. A user name
//! moves with its person, and one who left gives theirs up to whoever Identity Center gives it to next.

use std::collections::{HashMap, HashSet};

/// A user row as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Known {
    pub row: i64,
    pub username: String,
    pub display_name: String,
    pub email: String,
    /// Set once the person is linked to Identity Center; local people (a password only) and service accounts have
    /// none.
    pub idc_id: Option<String>,
    pub service: bool,
    pub left: bool,
}

/// A user as a sync read them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Seen {
    pub idc_id: String,
    pub username: String,
    pub display_name: String,
    pub email: String,
    /// Identity Center's `UserStatus` (or SCIM's `active`); a user whose status is not reported is enabled.
    pub enabled: bool,
}

/// Why a person left.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// Identity Center no longer lists them.
    Deleted,
    /// Identity Center lists them as disabled.
    Disabled,
}

impl Departure {
    pub fn as_str(self) -> &'static str {
        match self {
            Departure::Deleted => "deleted in Identity Center",
            Departure::Disabled => "disabled in Identity Center",
        }
    }
}

/// What a sync changes about one person. `seen` indexes the users the sync read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Change {
    /// A user Cone did not know, enabled.
    Add { seen: usize },
    /// A known person whose attributes changed; `renamed_from` when their user name did.
    Update { row: i64, seen: usize, renamed_from: Option<String> },
    /// A local person of the same user name, who from now on is this Identity Center user.
    Link { row: i64, seen: usize },
    /// Someone who left gives up their user name, which Identity Center now gives to someone else.
    Displace { row: i64, to: String },
    /// Left Identity Center, or was disabled there.
    Leave { row: i64, why: Departure },
    /// Left earlier, and Identity Center lists the same id again, enabled: the same person, with nothing restored.
    Return { row: i64, seen: usize, renamed_from: Option<String> },
    /// Not stored: a service account or a local person who is someone else holds the user name.
    Clash { seen: usize, holder: String },
}

/// The changes one sync makes, in an order the store can write them in once it has moved every changing user name
/// out of the way ([`Plan::renamed`]).
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    pub changes: Vec<Change>,
}

impl Plan {
    /// Rows whose user name changes (renames, displacements, returns under a new name): the store gives them a
    /// placeholder first, so that swaps and chains of renames never meet the unique constraint half way.
    pub fn renamed(&self) -> Vec<i64> {
        self.changes
            .iter()
            .filter_map(|c| match c {
                Change::Update { row, renamed_from: Some(_), .. }
                | Change::Return { row, renamed_from: Some(_), .. }
                | Change::Displace { row, .. } => Some(*row),
                _ => None,
            })
            .collect()
    }

    /// The people who leave in this sync.
    pub fn leavers(&self) -> impl Iterator<Item = (i64, Departure)> + '_ {
        self.changes.iter().filter_map(|c| match c {
            Change::Leave { row, why } => Some((*row, *why)),
            _ => None,
        })
    }
}

/// Reconciles the people Cone knows with the users a sync read (Identity Center user names are unique, and so are
/// its ids; `seen` holds each once).
pub fn reconcile(known: &[Known], seen: &[Seen]) -> Plan {
    let by_id: HashMap<&str, &Known> = known.iter().filter_map(|k| Some((k.idc_id.as_deref()?, k))).collect();
    let seen_ids: HashSet<&str> = seen.iter().map(|s| s.idc_id.as_str()).collect();
    let mut changes = Vec::new();
    // Known Identity Center people whom the sync no longer lists.
    let mut leaving: HashSet<i64> = HashSet::new();
    for k in known {
        if let Some(id) = &k.idc_id
            && !k.left
            && !seen_ids.contains(id.as_str())
        {
            changes.push(Change::Leave { row: k.row, why: Departure::Deleted });
            leaving.insert(k.row);
        }
    }
    // A user name is free for a seen user when its holder is that user, moves to another name, or left (or leaves now).
    let renamed_away: HashSet<i64> = seen
        .iter()
        .filter_map(|s| by_id.get(s.idc_id.as_str()).filter(|k| k.username != s.username).map(|k| k.row))
        .collect();
    let by_name: HashMap<&str, &Known> = known.iter().map(|k| (k.username.as_str(), k)).collect();
    let taken: HashSet<&str> =
        known.iter().map(|k| k.username.as_str()).chain(seen.iter().map(|s| s.username.as_str())).collect();
    let mut displaced: HashSet<i64> = HashSet::new();
    for (i, s) in seen.iter().enumerate() {
        let holder = by_name.get(s.username.as_str()).copied();
        let own = by_id.get(s.idc_id.as_str()).copied();
        // The name's holder, when it is someone else: gone (then displaced) or still here (a clash).
        let other = holder.filter(|h| own.is_none_or(|o| o.row != h.row) && !renamed_away.contains(&h.row));
        if let Some(h) = other {
            let gone = h.idc_id.is_some() && (h.left || leaving.contains(&h.row));
            if gone {
                if displaced.insert(h.row) {
                    changes.push(Change::Displace { row: h.row, to: free_name(&h.username, h.row, &taken) });
                }
            } else if own.is_none() && h.idc_id.is_none() && !h.service {
                changes.push(Change::Link { row: h.row, seen: i });
                if !s.enabled {
                    changes.push(Change::Leave { row: h.row, why: Departure::Disabled });
                }
                continue;
            } else {
                changes.push(Change::Clash { seen: i, holder: h.username.clone() });
                continue;
            }
        }
        match own {
            None if s.enabled => changes.push(Change::Add { seen: i }),
            // A disabled user Cone never knew: nothing to take away, nobody to store.
            None => {}
            Some(k) => {
                let renamed_from = (k.username != s.username).then(|| k.username.clone());
                if k.left && s.enabled {
                    changes.push(Change::Return { row: k.row, seen: i, renamed_from });
                    continue;
                }
                if renamed_from.is_some() || k.display_name != s.display_name || k.email != s.email {
                    changes.push(Change::Update { row: k.row, seen: i, renamed_from });
                }
                if !k.left && !s.enabled {
                    changes.push(Change::Leave { row: k.row, why: Departure::Disabled });
                }
            }
        }
    }
    Plan { changes }
}

/// The user name a leaver gives up theirs for: `name#row`, which no Identity Center user holds (nor anyone Cone
/// knows), made longer until that is so.
fn free_name(name: &str, row: i64, taken: &HashSet<&str>) -> String {
    let mut to = format!("{name}#{row}");
    while taken.contains(to.as_str()) {
        to.push('#');
    }
    to
}

/// Whether a sync may offboard `leaving` of the `present` people it knew from Identity Center: a read that lists
/// nobody never offboards (it is an empty or broken read, not an empty company), and more than `max_percent` of
/// them at once (when that is more than ten people) waits for an administrator to raise the limit.
pub fn offboarding_allowed(seen: usize, present: usize, leaving: usize, max_percent: u8) -> bool {
    if leaving == 0 {
        return true;
    }
    seen > 0 && (leaving <= 10 || leaving * 100 <= present * usize::from(max_percent))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(row: i64, name: &str, idc: Option<&str>) -> Known {
        Known {
            row,
            username: name.into(),
            display_name: name.into(),
            email: String::new(),
            idc_id: idc.map(str::to_string),
            service: false,
            left: false,
        }
    }

    fn seen(id: &str, name: &str) -> Seen {
        Seen {
            idc_id: id.into(),
            username: name.into(),
            display_name: name.into(),
            email: String::new(),
            enabled: true,
        }
    }

    #[test]
    fn an_unchanged_directory_changes_nothing() {
        let k = [known(1, "alice", Some("u-a")), known(2, "bob", Some("u-b"))];
        assert_eq!(reconcile(&k, &[seen("u-a", "alice"), seen("u-b", "bob")]), Plan::default());
    }

    #[test]
    fn new_users_are_added_and_local_people_of_their_name_linked() {
        let k = [known(1, "alice", None)];
        let plan = reconcile(&k, &[seen("u-a", "alice"), seen("u-b", "bob")]);
        assert_eq!(plan.changes, [Change::Link { row: 1, seen: 0 }, Change::Add { seen: 1 }]);
    }

    #[test]
    fn a_rename_is_the_same_person() {
        let k = [known(1, "alice", Some("u-a"))];
        let plan = reconcile(&k, &[seen("u-a", "alice.smith")]);
        assert_eq!(plan.changes, [Change::Update { row: 1, seen: 0, renamed_from: Some("alice".into()) }]);
        assert_eq!(plan.renamed(), [1]);
    }

    #[test]
    fn two_people_may_swap_user_names() {
        let k = [known(1, "a", Some("u-1")), known(2, "b", Some("u-2"))];
        let plan = reconcile(&k, &[seen("u-1", "b"), seen("u-2", "a")]);
        assert_eq!(
            plan.changes,
            [
                Change::Update { row: 1, seen: 0, renamed_from: Some("a".into()) },
                Change::Update { row: 2, seen: 1, renamed_from: Some("b".into()) },
            ]
        );
    }

    #[test]
    fn someone_no_longer_listed_leaves_and_a_newcomer_of_their_name_is_someone_else() {
        let k = [known(1, "alice", Some("u-old")), known(2, "bob", Some("u-b"))];
        let plan = reconcile(&k, &[seen("u-new", "alice"), seen("u-b", "bob")]);
        assert_eq!(
            plan.changes,
            [
                Change::Leave { row: 1, why: Departure::Deleted },
                Change::Displace { row: 1, to: "alice#1".into() },
                Change::Add { seen: 0 },
            ]
        );
        assert_eq!(plan.leavers().collect::<Vec<_>>(), [(1, Departure::Deleted)]);
    }

    #[test]
    fn a_disabled_user_leaves_and_comes_back_under_the_same_id() {
        let mut alice = known(1, "alice", Some("u-a"));
        let disabled = Seen { enabled: false, ..seen("u-a", "alice") };
        assert_eq!(
            reconcile(std::slice::from_ref(&alice), std::slice::from_ref(&disabled)).changes,
            [Change::Leave { row: 1, why: Departure::Disabled }]
        );
        alice.left = true;
        assert_eq!(reconcile(std::slice::from_ref(&alice), &[disabled]), Plan::default(), "left once, not again");
        assert_eq!(
            reconcile(&[alice], &[seen("u-a", "alice")]).changes,
            [Change::Return { row: 1, seen: 0, renamed_from: None }]
        );
    }

    #[test]
    fn left_people_are_not_left_again_and_unknown_disabled_users_are_not_stored() {
        let mut gone = known(1, "carol", Some("u-c"));
        gone.left = true;
        let disabled = Seen { enabled: false, ..seen("u-d", "dave") };
        assert_eq!(reconcile(&[gone], &[disabled]), Plan::default());
    }

    #[test]
    fn a_service_account_keeps_its_name() {
        let mut svc = known(1, "deploy", None);
        svc.service = true;
        let plan = reconcile(&[svc], &[seen("u-d", "deploy")]);
        assert_eq!(plan.changes, [Change::Clash { seen: 0, holder: "deploy".into() }]);
    }

    #[test]
    fn a_displaced_name_never_meets_another() {
        let mut gone = known(1, "alice", Some("u-old"));
        gone.left = true;
        let plan = reconcile(&[gone], &[seen("u-new", "alice"), seen("u-x", "alice#1")]);
        assert_eq!(plan.changes[0], Change::Displace { row: 1, to: "alice#1#".into() });
    }

    #[test]
    fn mass_offboarding_waits() {
        assert!(offboarding_allowed(0, 100, 0, 10));
        assert!(!offboarding_allowed(0, 100, 100, 10), "a read that lists nobody offboards nobody");
        assert!(offboarding_allowed(2, 3, 1, 10), "a few people may always leave");
        assert!(offboarding_allowed(900, 1000, 100, 10));
        assert!(!offboarding_allowed(899, 1000, 101, 10));
        assert!(offboarding_allowed(1, 1000, 999, 100));
    }
}
