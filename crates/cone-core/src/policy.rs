//! Policies decide what happens to a request. The branch a policy chose gives the steps; an [`Instance`] is
//! those steps plus every decision recorded so far, and [`Instance::outcome`] says, at a given time, whether the
//! request is granted, denied, or waiting (and for whom). Nothing here looks at a clock or a database: the
//! server passes the time and the approver's groups in.

use serde::{Deserialize, Serialize};

/// One step of a policy, as a running request keeps it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Step {
    /// Approve without asking anyone.
    Accept,
    /// Deny.
    Reject,
    /// Hold the request for `secs` after the previous step completed, then go on.
    Wait { secs: i64 },
    /// Wait for `count` distinct people of `from` to approve.
    Approval { from: Approvers, count: u32 },
}

/// Who may approve a step. Owners and the manager are resolved when the request is filed, so a running request
/// keeps the people it was filed with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Approvers {
    Users(Vec<String>),
    Group(String),
    /// The app's owners.
    Owners(Vec<String>),
    /// The requester's manager, if they have one.
    Manager(Option<String>),
    /// The requester, acknowledging their own request: the only step a requester can satisfy.
    Requester,
}

/// One person's decision on one step.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Decision {
    pub step: usize,
    pub by: String,
    pub approve: bool,
    pub at: i64,
}

/// A request's run through its policy: what `outcome` needs and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Instance {
    pub requester: String,
    /// When the steps began (filing, or escalation to emergency steps); the first wait counts from here.
    pub started_at: i64,
    pub steps: Vec<Step>,
    #[serde(default)]
    pub decisions: Vec<Decision>,
}

/// Where a request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Granted,
    Denied { reason: String },
    Waiting { index: usize, on: Pending },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Pending {
    /// `needed` more approvals from `from`; `approved_by` approved this step already.
    Approval { from: Approvers, needed: u32, approved_by: Vec<String> },
    /// A wait step, until this time.
    Until(i64),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DecisionError {
    NotWaiting,
    WaitingUntil(i64),
    SelfApproval { waiting_for: String },
    NotTheRequester { requester: String },
    NotAnApprover { waiting_for: String },
    AlreadyApproved { waiting_for: String },
    ApprovedEarlierStep,
}

impl Approvers {
    /// Whether `who` may decide a step of `requester`'s request, as far as names tell: group membership is
    /// checked when a decision is recorded.
    fn admits(&self, requester: &str, who: &str) -> bool {
        match self {
            Approvers::Requester => who == requester,
            _ if who == requester => false,
            Approvers::Group(_) => true,
            other => other.listed().is_some_and(|names| names.iter().any(|n| n == who)),
        }
    }

    /// The people who may approve, when the step names them.
    fn listed(&self) -> Option<&[String]> {
        match self {
            Approvers::Users(names) | Approvers::Owners(names) => Some(names),
            Approvers::Manager(manager) => Some(manager.as_slice()),
            Approvers::Group(_) | Approvers::Requester => None,
        }
    }

    /// The approvers for people, e.g. `group "approvers"`.
    pub fn describe(&self, requester: &str) -> String {
        match self {
            Approvers::Users(names) => format!("one of {}", names.join(", ")),
            Approvers::Group(group) => format!("group \"{group}\""),
            Approvers::Owners(names) => format!("the app's owners ({})", names.join(", ")),
            Approvers::Manager(Some(manager)) => format!("{requester}'s manager ({manager})"),
            Approvers::Manager(None) => format!("{requester}'s manager (none is configured)"),
            Approvers::Requester => format!("{requester} (acknowledging their own request)"),
        }
    }
}

impl Pending {
    /// What the request waits for, for people; `None` for a wait step (the caller formats the time).
    pub fn describe(&self, requester: &str) -> Option<String> {
        match self {
            Pending::Approval { from, needed, approved_by } => {
                let plural = if *needed == 1 { "" } else { "s" };
                let so_far = if approved_by.is_empty() {
                    String::new()
                } else {
                    format!(" (approved by {})", approved_by.join(", "))
                };
                Some(format!("{needed} more approval{plural} from {}{so_far}", from.describe(requester)))
            }
            Pending::Until(_) => None,
        }
    }
}

impl Instance {
    pub fn new(requester: &str, started_at: i64, steps: Vec<Step>) -> Instance {
        Instance { requester: requester.to_string(), started_at, steps, decisions: Vec::new() }
    }

    /// Walks the steps at time `now`. Decisions count only where they may: on their step, by someone the step
    /// admits, once per person, and an approval only by someone whose approval no earlier step used.
    pub fn outcome(&self, now: i64) -> Outcome {
        let mut since = self.started_at;
        let mut counted: Vec<&str> = Vec::new();
        for (index, step) in self.steps.iter().enumerate() {
            match step {
                Step::Accept => {}
                Step::Reject => return Outcome::Denied { reason: "The policy rejects this request.".into() },
                Step::Wait { secs } => {
                    let until = since.saturating_add(*secs);
                    if now < until {
                        return Outcome::Waiting { index, on: Pending::Until(until) };
                    }
                    since = until;
                }
                Step::Approval { from, count } => {
                    let mut approved_by: Vec<&str> = Vec::new();
                    for d in self.decisions.iter().filter(|d| d.step == index) {
                        if approved_by.len() >= *count as usize {
                            break;
                        }
                        if !from.admits(&self.requester, &d.by) {
                            continue;
                        }
                        if !d.approve {
                            return Outcome::Denied { reason: format!("{} denied it.", d.by) };
                        }
                        if !counted.contains(&d.by.as_str()) && !approved_by.contains(&d.by.as_str()) {
                            approved_by.push(&d.by);
                            since = d.at;
                        }
                    }
                    let have = approved_by.len() as u32;
                    if have < *count {
                        let names = match from {
                            Approvers::Requester => Some(std::slice::from_ref(&self.requester)),
                            other => other.listed(),
                        };
                        if let Some(names) = names {
                            let left = names
                                .iter()
                                .filter(|n| from.admits(&self.requester, n) && !counted.contains(&n.as_str()))
                                .filter(|n| !approved_by.contains(&n.as_str()))
                                .count() as u32;
                            if have + left < *count {
                                return Outcome::Denied {
                                    reason: format!(
                                        "Step {} needs {count} approval(s) from {}, and not enough people other than \
                                         the requester and earlier approvers can give them; ask an administrator to \
                                         fix the policy or the identities.",
                                        index + 1,
                                        from.describe(&self.requester)
                                    ),
                                };
                            }
                        }
                        let approved_by = approved_by.into_iter().map(String::from).collect();
                        return Outcome::Waiting {
                            index,
                            on: Pending::Approval { from: from.clone(), needed: count - have, approved_by },
                        };
                    }
                    counted.extend(approved_by);
                }
            }
        }
        Outcome::Granted
    }

    /// Records `who`'s decision on the step the request waits at, after checking that it may count:
    /// requesters decide only a step of their own (`self`), approvers only steps that admit them
    /// (`who_groups` are their groups), and nobody approves twice or at two steps.
    pub fn decide(&mut self, who: &str, who_groups: &[String], approve: bool, now: i64) -> Result<(), DecisionError> {
        let (index, from, approved_by) = match self.outcome(now) {
            Outcome::Waiting { index, on: Pending::Approval { from, approved_by, .. } } => (index, from, approved_by),
            Outcome::Waiting { on: Pending::Until(t), .. } => return Err(DecisionError::WaitingUntil(t)),
            Outcome::Granted | Outcome::Denied { .. } => return Err(DecisionError::NotWaiting),
        };
        let waiting_for = || from.describe(&self.requester);
        if from == Approvers::Requester && who != self.requester {
            return Err(DecisionError::NotTheRequester { requester: self.requester.clone() });
        }
        if from != Approvers::Requester && who == self.requester {
            return Err(DecisionError::SelfApproval { waiting_for: waiting_for() });
        }
        let member = match &from {
            Approvers::Group(group) => who_groups.contains(group),
            _ => from.admits(&self.requester, who),
        };
        if !member {
            return Err(DecisionError::NotAnApprover { waiting_for: waiting_for() });
        }
        if approve {
            if approved_by.iter().any(|a| a == who) {
                let needed = match self.outcome(now) {
                    Outcome::Waiting { on, .. } => on.describe(&self.requester),
                    _ => None,
                };
                return Err(DecisionError::AlreadyApproved { waiting_for: needed.unwrap_or_else(waiting_for) });
            }
            if self.decisions.iter().any(|d| d.approve && d.by == who && d.step < index) {
                return Err(DecisionError::ApprovedEarlierStep);
            }
        }
        self.decisions.push(Decision { step: index, by: who.to_string(), approve, at: now });
        Ok(())
    }
}

impl DecisionError {
    pub fn message(&self) -> String {
        match self {
            DecisionError::NotWaiting => "This request is not waiting for an approval.".into(),
            DecisionError::WaitingUntil(_) => {
                "This request is in a waiting period of its policy; nobody can decide it until that ends.".into()
            }
            DecisionError::SelfApproval { waiting_for } => format!(
                "You cannot approve or deny your own request; it waits for {waiting_for}. To withdraw it, cancel it."
            ),
            DecisionError::NotTheRequester { requester } => {
                format!("This step waits for {requester} to acknowledge their own request; nobody else can decide it.")
            }
            DecisionError::NotAnApprover { waiting_for } => {
                format!("This request waits for {waiting_for}, and you are not one of them.")
            }
            DecisionError::AlreadyApproved { waiting_for } => {
                format!("This request waits for {waiting_for}; you already approved it.")
            }
            DecisionError::ApprovedEarlierStep => "You approved an earlier step of this request, and one person's \
                 approval counts for one step only; another approver must approve this one."
                .into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn group(g: &str, count: u32) -> Step {
        Step::Approval { from: Approvers::Group(g.into()), count }
    }

    fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|n| n.to_string()).collect()
    }

    #[test]
    fn walks_steps_without_decisions() {
        let outcome = |steps: Vec<Step>| Instance::new("alice", 0, steps).outcome(0);
        assert_eq!(outcome(vec![Step::Accept]), Outcome::Granted);
        assert_eq!(outcome(vec![]), Outcome::Granted);
        assert!(matches!(outcome(vec![Step::Reject, Step::Accept]), Outcome::Denied { .. }));
        assert!(matches!(
            outcome(vec![Step::Accept, group("approvers", 1), Step::Reject]),
            Outcome::Waiting { index: 1, on: Pending::Approval { needed: 1, .. } }
        ));
    }

    #[test]
    fn two_of_a_group_need_two_distinct_approvers() {
        let approvers = strings(&["approvers"]);
        let mut i = Instance::new("alice", 0, vec![group("approvers", 2)]);
        i.decide("bob", &approvers, true, 10).unwrap();
        let again = i.decide("bob", &approvers, true, 11).unwrap_err();
        assert_eq!(
            again.message(),
            "This request waits for 1 more approval from group \"approvers\" (approved by bob); you already approved it."
        );
        assert_eq!(
            i.decide("alice", &approvers, true, 12).unwrap_err().message().split(';').next(),
            Some("You cannot approve or deny your own request")
        );
        assert!(matches!(i.decide("dave", &[], true, 12), Err(DecisionError::NotAnApprover { .. })));
        i.decide("carol", &approvers, true, 13).unwrap();
        assert_eq!(i.outcome(13), Outcome::Granted);
        assert_eq!(i.decide("erin", &approvers, true, 14), Err(DecisionError::NotWaiting));
    }

    #[test]
    fn one_approval_counts_for_one_step() {
        let groups = strings(&["approvers", "security"]);
        let mut i = Instance::new("alice", 0, vec![group("approvers", 1), group("security", 1)]);
        i.decide("bob", &groups, true, 1).unwrap();
        assert_eq!(i.decide("bob", &groups, true, 2), Err(DecisionError::ApprovedEarlierStep));
        i.decide("carol", &groups, true, 3).unwrap();
        assert_eq!(i.outcome(3), Outcome::Granted);
    }

    #[test]
    fn manager_then_self_then_wait() {
        let steps = vec![
            Step::Approval { from: Approvers::Manager(Some("dave".into())), count: 1 },
            Step::Approval { from: Approvers::Requester, count: 1 },
            Step::Wait { secs: 60 },
        ];
        let mut i = Instance::new("alice", 0, steps);
        assert_eq!(
            i.decide("alice", &[], true, 1),
            Err(DecisionError::SelfApproval { waiting_for: "alice's manager (dave)".into() })
        );
        i.decide("dave", &[], true, 5).unwrap();
        assert!(matches!(i.decide("dave", &[], true, 6), Err(DecisionError::NotTheRequester { .. })));
        i.decide("alice", &[], true, 10).unwrap();
        assert_eq!(i.outcome(69), Outcome::Waiting { index: 2, on: Pending::Until(70) });
        assert_eq!(i.decide("dave", &[], true, 69), Err(DecisionError::WaitingUntil(70)));
        assert_eq!(i.outcome(70), Outcome::Granted);
    }

    #[test]
    fn steps_nobody_can_satisfy_deny() {
        let no_manager = Instance::new("alice", 0, vec![Step::Approval { from: Approvers::Manager(None), count: 1 }]);
        assert!(matches!(no_manager.outcome(0), Outcome::Denied { .. }));
        // The requester is an owner, and does not count towards the owners' approvals.
        let owners = Approvers::Owners(strings(&["alice", "bob"]));
        let too_few = Instance::new("alice", 0, vec![Step::Approval { from: owners, count: 2 }]);
        assert!(matches!(too_few.outcome(0), Outcome::Denied { .. }));
    }

    #[test]
    fn a_deny_ends_it() {
        let groups = strings(&["approvers"]);
        let mut i = Instance::new("alice", 0, vec![group("approvers", 2)]);
        i.decide("bob", &groups, true, 1).unwrap();
        i.decide("carol", &groups, false, 2).unwrap();
        assert_eq!(i.outcome(2), Outcome::Denied { reason: "carol denied it.".into() });
    }

    #[test]
    fn instance_round_trips_as_json() {
        let mut i = Instance::new("alice", 7, vec![Step::Wait { secs: 5 }, group("g", 1), Step::Accept]);
        i.decisions.push(Decision { step: 1, by: "bob".into(), approve: true, at: 20 });
        let json = serde_json::to_string(&i).unwrap();
        assert_eq!(serde_json::from_str::<Instance>(&json).unwrap(), i);
    }

    const PEOPLE: [&str; 5] = ["alice", "bob", "carol", "dave", "erin"];
    const GROUPS: [&str; 2] = ["approvers", "security"];

    fn person() -> impl Strategy<Value = String> {
        prop::sample::select(&PEOPLE[..]).prop_map(String::from)
    }

    fn approvers() -> impl Strategy<Value = Approvers> {
        prop_oneof![
            prop::collection::vec(person(), 0..4).prop_map(Approvers::Users),
            prop::sample::select(&GROUPS[..]).prop_map(|g| Approvers::Group(g.into())),
            prop::collection::vec(person(), 0..4).prop_map(Approvers::Owners),
            prop::option::of(person()).prop_map(Approvers::Manager),
            Just(Approvers::Requester),
        ]
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Accept),
            1 => Just(Step::Reject),
            1 => (1i64..50).prop_map(|secs| Step::Wait { secs }),
            6 => (approvers(), 1u32..4).prop_map(|(from, count)| Step::Approval { from, count }),
        ]
    }

    /// Attempts: who, approve, seconds after the previous attempt.
    fn attempts() -> impl Strategy<Value = Vec<(String, bool, i64)>> {
        prop::collection::vec((person(), prop::bool::weighted(0.9), 0i64..30), 0..16)
    }

    /// Group memberships: each person's groups.
    fn memberships() -> impl Strategy<Value = Vec<Vec<String>>> {
        prop::collection::vec(prop::sample::subsequence(&GROUPS[..], 0..=2), PEOPLE.len())
            .prop_map(|m| m.into_iter().map(|gs| gs.into_iter().map(String::from).collect()).collect())
    }

    fn groups_of<'a>(memberships: &'a [Vec<String>], who: &str) -> &'a [String] {
        &memberships[PEOPLE.iter().position(|p| *p == who).unwrap_or(0)]
    }

    /// Runs the attempts through `decide`, returning the instance and the time of the last attempt.
    fn run(
        steps: Vec<Step>,
        requester: &str,
        memberships: &[Vec<String>],
        attempts: &[(String, bool, i64)],
    ) -> (Instance, i64) {
        let mut i = Instance::new(requester, 0, steps);
        let mut now = 0;
        for (who, approve, after) in attempts {
            now += after;
            let _ = i.decide(who, groups_of(memberships, who), *approve, now);
        }
        (i, now)
    }

    proptest! {
        #[test]
        fn grants_only_when_every_step_has_enough_distinct_eligible_approvers(
            steps in prop::collection::vec(step(), 0..5),
            requester in person(),
            memberships in memberships(),
            attempts in attempts(),
            later in 0i64..100,
        ) {
            let (i, now) = run(steps, &requester, &memberships, &attempts);
            if i.outcome(now + later) != Outcome::Granted {
                return Ok(());
            }
            let mut used: Vec<&str> = Vec::new();
            for (index, step) in i.steps.iter().enumerate() {
                prop_assert_ne!(step, &Step::Reject);
                prop_assert!(!i.decisions.iter().any(|d| d.step == index && !d.approve));
                if let Step::Approval { from, count } = step {
                    let mut by: Vec<&str> = i.decisions.iter().filter(|d| d.step == index).map(|d| d.by.as_str()).collect();
                    by.sort_unstable();
                    by.dedup();
                    prop_assert!(by.len() >= *count as usize);
                    for who in by {
                        prop_assert!(!used.contains(&who), "{} approved two steps", who);
                        prop_assert_eq!(who == requester, *from == Approvers::Requester);
                        let eligible = match from {
                            Approvers::Group(g) => groups_of(&memberships, who).contains(g),
                            other => other.admits(&requester, who),
                        };
                        prop_assert!(eligible, "{} is not eligible for step {}", who, index);
                        used.push(who);
                    }
                }
            }
        }

        /// Even decisions recorded without `decide` (a tampered or buggy store) never let the requester satisfy
        /// anything but a `self` step, nor one person satisfy two steps.
        #[test]
        fn raw_decisions_never_count_the_requester_or_a_person_twice(
            steps in prop::collection::vec(step(), 0..5),
            requester in person(),
            raw in prop::collection::vec((0usize..5, person(), any::<bool>(), 0i64..100), 0..16),
        ) {
            let decisions = raw.into_iter().map(|(step, by, approve, at)| Decision { step, by, approve, at }).collect();
            let i = Instance { requester: requester.clone(), started_at: 0, steps, decisions };
            if i.outcome(i64::MAX) != Outcome::Granted {
                return Ok(());
            }
            let mut used: Vec<&str> = Vec::new();
            for (index, step) in i.steps.iter().enumerate() {
                if let Step::Approval { from, count } = step {
                    let mut valid: Vec<&str> = Vec::new();
                    for d in i.decisions.iter().filter(|d| d.step == index && d.approve) {
                        if from.admits(&requester, &d.by) && !used.contains(&d.by.as_str()) && !valid.contains(&d.by.as_str()) {
                            valid.push(&d.by);
                        }
                    }
                    prop_assert!(valid.len() >= *count as usize);
                    valid.truncate(*count as usize);
                    prop_assert!(valid.iter().all(|who| (*who == requester) == (*from == Approvers::Requester)));
                    used.extend(valid);
                }
            }
        }

        #[test]
        fn an_accepted_deny_ends_denied(
            steps in prop::collection::vec(step(), 0..5),
            requester in person(),
            memberships in memberships(),
            attempts in attempts(),
            more in attempts(),
        ) {
            let (mut i, mut now) = run(steps, &requester, &memberships, &attempts);
            let mut denied = false;
            for (who, approve, after) in &more {
                now += after;
                denied |= i.decide(who, groups_of(&memberships, who), false, now).is_ok();
                let _ = i.decide(who, groups_of(&memberships, who), *approve, now);
            }
            if denied {
                let denied_now = matches!(i.outcome(now), Outcome::Denied { .. });
                let denied_later = matches!(i.outcome(i64::MAX), Outcome::Denied { .. });
                prop_assert!(denied_now && denied_later);
            }
        }

        #[test]
        fn outcome_is_deterministic_and_survives_storage(
            steps in prop::collection::vec(step(), 0..5),
            requester in person(),
            memberships in memberships(),
            attempts in attempts(),
            at in 0i64..500,
        ) {
            let (i, _) = run(steps, &requester, &memberships, &attempts);
            let stored: Instance = serde_json::from_str(&serde_json::to_string(&i).unwrap()).unwrap();
            prop_assert_eq!(i.outcome(at), i.outcome(at));
            prop_assert_eq!(stored.outcome(at), i.outcome(at));
        }
    }
}
