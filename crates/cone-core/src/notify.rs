//! Who is told what: the kinds of notification, which audit events cause them and for whom, and what a person's
//! preferences make of them (channels, muted kinds, the approvers' hourly digest).

use serde::{Deserialize, Serialize};

use crate::policy::{Approvers, Instance, Outcome, Pending};

/// What a notification is about. People mute kinds, not events.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    /// A request waits at a step this person may decide.
    ApprovalNeeded,
    /// The person's request was approved, denied, cancelled by someone else, or timed out.
    Decided,
    /// The person's access was made, or extended.
    Granted,
    /// Provisioning gave up (the requester, and administrators).
    Failed,
    /// The person's grant ends soon.
    Expiring,
    /// The person's grant ended, not by their own hand.
    Ended,
    /// Cone repaired drift in AWS (administrators).
    Drift,
    /// Access waits for this person's review: a new campaign gave them items, or its due time nears.
    ReviewNeeded,
    /// Access revoked in a review waits for someone to remove it by hand (administrators).
    RemovalByHand,
    /// An administrator's test message.
    Test,
}

impl Kind {
    pub const ALL: [Kind; 10] = [
        Kind::ApprovalNeeded,
        Kind::Decided,
        Kind::Granted,
        Kind::Failed,
        Kind::Expiring,
        Kind::Ended,
        Kind::Drift,
        Kind::ReviewNeeded,
        Kind::RemovalByHand,
        Kind::Test,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Kind::ApprovalNeeded => "approval_needed",
            Kind::Decided => "decided",
            Kind::Granted => "granted",
            Kind::Failed => "failed",
            Kind::Expiring => "expiring",
            Kind::Ended => "ended",
            Kind::Drift => "drift",
            Kind::ReviewNeeded => "review_needed",
            Kind::RemovalByHand => "removal_by_hand",
            Kind::Test => "test",
        }
    }

    pub fn parse(s: &str) -> Option<Kind> {
        Kind::ALL.into_iter().find(|k| k.as_str() == s)
    }
}

/// The text stored for a kind; anything else is refused when read back.
impl TryFrom<String> for Kind {
    type Error = String;
    fn try_from(s: String) -> Result<Kind, String> {
        Kind::parse(&s).ok_or_else(|| format!("unknown notification kind \"{s}\""))
    }
}

/// Where a notification goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum Channel {
    Email,
    Slack,
}

impl Channel {
    pub const ALL: [Channel; 2] = [Channel::Email, Channel::Slack];

    pub fn as_str(self) -> &'static str {
        match self {
            Channel::Email => "email",
            Channel::Slack => "slack",
        }
    }

    pub fn parse(s: &str) -> Option<Channel> {
        Channel::ALL.into_iter().find(|c| c.as_str() == s)
    }
}

impl TryFrom<String> for Channel {
    type Error = String;
    fn try_from(s: String) -> Result<Channel, String> {
        Channel::parse(&s).ok_or_else(|| format!("unknown notification channel \"{s}\""))
    }
}

/// Whom an event concerns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Audience {
    /// Those the task's current step asks to decide (never the requester).
    Approvers,
    /// The task's requester.
    Requester,
    /// Cone's administrators.
    Admins,
    /// Those an access review campaign (or a reassignment, of one item) gives items to decide.
    Reviewers,
}

/// The key of the reminder that campaign `campaign_id` is due soon, made once per reviewer.
pub fn review_reminder_key(campaign_id: i64) -> String {
    format!("review:{campaign_id}:reminder")
}

/// Who is told of the audit event `action`, and as what. `waiting` says whether the event's task now waits for an
/// approver's decision. The server leaves out whoever caused the event: nobody is told what they just did.
pub fn told(action: &str, waiting: bool) -> Vec<(Audience, Kind)> {
    use Audience::*;
    match action {
        "task.create" | "task.approve" | "task.escalate" | "task.wait_ended" if waiting => {
            vec![(Approvers, Kind::ApprovalNeeded)]
        }
        "task.approve" | "task.deny" | "task.time_out" | "task.cancel" => vec![(Requester, Kind::Decided)],
        "grant.activate" | "grant.extend" => vec![(Requester, Kind::Granted)],
        "grant.fail" => vec![(Requester, Kind::Failed), (Admins, Kind::Failed)],
        "grant.expire" | "grant.end_early" | "grant.withdraw" => vec![(Requester, Kind::Ended)],
        "drift.reprovision" | "drift.remove" => vec![(Admins, Kind::Drift)],
        "review.campaign_create" | "review.reassign" => vec![(Reviewers, Kind::ReviewNeeded)],
        "review.by_hand" => vec![(Admins, Kind::RemovalByHand)],
        _ => Vec::new(),
    }
}

/// What a person chose. The default: every channel Cone can reach them on, nothing muted, no digest.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Preferences {
    /// The channels to use; `None` for all that reach the person.
    #[serde(default)]
    pub channels: Option<Vec<Channel>>,
    /// Kinds never sent. A test message is sent anyway.
    #[serde(default)]
    pub muted: Vec<Kind>,
    /// Requests to approve arrive as one message an hour rather than one each.
    #[serde(default)]
    pub digest: bool,
}

impl Preferences {
    /// The channels a notification of `kind` goes to, among those that `reach` the person (configured, with an
    /// address for them).
    pub fn channels_for(&self, kind: Kind, reach: &[Channel]) -> Vec<Channel> {
        if kind != Kind::Test && self.muted.contains(&kind) {
            return Vec::new();
        }
        reach.iter().copied().filter(|c| self.channels.as_ref().is_none_or(|chosen| chosen.contains(c))).collect()
    }

    /// When a notification of `kind` made at `now` is due: at once, or at the next full hour for a digest.
    pub fn due(&self, kind: Kind, now: i64) -> Due {
        if self.digest && kind == Kind::ApprovalNeeded {
            Due::Digest(now.div_euclid(3600) * 3600 + 3600)
        } else {
            Due::Now
        }
    }
}

/// When a notification is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Due {
    Now,
    /// With the others of this person and channel due at this Unix time, in one message.
    Digest(i64),
}

/// Whom a waiting request asks to decide: the people its step names, or its group's members, less `except` (the
/// requester, and whoever decided already: nobody decides twice or at two steps).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asked {
    pub step: usize,
    pub names: Vec<String>,
    pub group: Option<String>,
    pub except: Vec<String>,
}

/// Whom `i` asks at `now`; `None` when it waits for nobody (decided, a timed wait, or the requester's own step).
pub fn asked(i: &Instance, now: i64) -> Option<Asked> {
    let Outcome::Waiting { index, on: Pending::Approval { from, .. } } = i.outcome(now) else { return None };
    let (names, group) = match from {
        Approvers::Users(names) | Approvers::Owners(names) => (names, None),
        Approvers::Manager(manager) => (manager.into_iter().collect(), None),
        Approvers::Group(g) => (Vec::new(), Some(g)),
        Approvers::Requester => return None,
    };
    let mut except: Vec<String> = i.decisions.iter().map(|d| d.by.clone()).collect();
    except.push(i.requester.clone());
    Some(Asked { step: index, names, group, except })
}

/// The notification `key` that stands for "the task waits at this step": each approver is told once per step,
/// however many events (a first approval of two, a comment) happen while it waits. An escalation restarts the steps
/// (`started_at`), so its steps are new.
pub fn step_key(task_id: i64, started_at: i64, step: i64) -> String {
    format!("task:{task_id}:{started_at}:step:{step}")
}

/// The key of the warning that grant `grant_id` ends at `ends_at`; an extension moves the end, and warns again. The
/// server's store spells it in SQL too, to skip grants warned already.
pub fn expiry_key(grant_id: i64, ends_at: i64) -> String {
    format!("grant:{grant_id}:ends:{ends_at}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn approvers_are_told_only_while_the_task_waits() {
        for action in ["task.create", "task.approve", "task.escalate", "task.wait_ended"] {
            assert_eq!(told(action, true), [(Audience::Approvers, Kind::ApprovalNeeded)], "{action}");
        }
        assert!(told("task.create", false).is_empty(), "approved at once: the grant's activation tells");
        assert_eq!(told("task.approve", false), [(Audience::Requester, Kind::Decided)], "the last approval");
        assert_eq!(told("grant.fail", false), [(Audience::Requester, Kind::Failed), (Audience::Admins, Kind::Failed)]);
        assert!(told("task.comment", true).is_empty());
        assert!(told("token.create", false).is_empty());
        assert_eq!(told("review.campaign_create", false), [(Audience::Reviewers, Kind::ReviewNeeded)]);
        assert_eq!(told("review.reassign", false), [(Audience::Reviewers, Kind::ReviewNeeded)], "the new reviewer");
        assert!(told("review.certify", false).is_empty(), "a decision tells nobody");
        assert_eq!(told("review.by_hand", false), [(Audience::Admins, Kind::RemovalByHand)]);
    }

    #[test]
    fn preferences_choose_channels_and_mute_kinds_but_not_tests() {
        let reach = [Channel::Email, Channel::Slack];
        let default = Preferences::default();
        assert_eq!(default.channels_for(Kind::Granted, &reach), reach);
        assert_eq!(default.channels_for(Kind::Granted, &[Channel::Email]), [Channel::Email]);
        let p = Preferences { channels: Some(vec![Channel::Slack]), muted: vec![Kind::Granted], digest: false };
        assert!(p.channels_for(Kind::Granted, &reach).is_empty());
        assert_eq!(p.channels_for(Kind::Test, &reach), [Channel::Slack]);
        assert_eq!(p.channels_for(Kind::Expiring, &reach), [Channel::Slack]);
        assert!(p.channels_for(Kind::Expiring, &[Channel::Email]).is_empty(), "Slack cannot reach them");
    }

    #[test]
    fn a_digest_gathers_requests_to_approve_at_the_next_full_hour() {
        let p = Preferences { digest: true, ..Preferences::default() };
        assert_eq!(p.due(Kind::ApprovalNeeded, 7200), Due::Digest(10_800));
        assert_eq!(p.due(Kind::ApprovalNeeded, 10_799), Due::Digest(10_800));
        assert_eq!(p.due(Kind::Granted, 7200), Due::Now, "only requests to approve wait for the digest");
        assert_eq!(Preferences::default().due(Kind::ApprovalNeeded, 7200), Due::Now);
    }

    #[test]
    fn approvers_asked_leave_out_the_requester_and_earlier_deciders() {
        use crate::policy::{Decision, Step};
        let approval = |from| Step::Approval { from, count: 1 };
        let mut i = Instance::new(
            "alice",
            0,
            vec![
                approval(Approvers::Users(vec!["bob".into(), "alice".into()])),
                approval(Approvers::Group("admins".into())),
            ],
        );
        let first = asked(&i, 10).unwrap();
        assert_eq!(
            (first.step, first.names.clone(), first.group.clone()),
            (0, vec!["bob".into(), "alice".into()], None)
        );
        assert_eq!(first.except, ["alice"]);
        i.decisions.push(Decision { step: 0, by: "bob".into(), approve: true, at: 5 });
        let second = asked(&i, 10).unwrap();
        assert_eq!((second.step, second.group.as_deref()), (1, Some("admins")));
        assert_eq!(second.except, ["bob", "alice"]);
        let own = Instance::new("alice", 0, vec![approval(Approvers::Requester)]);
        assert_eq!(asked(&own, 10), None, "the requester acknowledges their own request where they file it");
    }

    #[test]
    fn names_round_trip() {
        for k in Kind::ALL {
            assert_eq!(Kind::parse(k.as_str()), Some(k));
            assert_eq!(serde_json::to_string(&k).unwrap(), format!("\"{}\"", k.as_str()));
        }
        for c in Channel::ALL {
            assert_eq!(Channel::parse(c.as_str()), Some(c));
        }
    }
}
