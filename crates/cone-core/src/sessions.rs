//! Ending role sessions already issued: the service control policy that denies the sessions of a revoked
//! permission set issued before its revocation, as AWS documents for Identity Center (`identitystore:userId` and
//! `aws:TokenIssueTime`), kept within the size AWS allows for one policy.

use std::collections::{BTreeMap, BTreeSet};

/// The most characters AWS accepts in one service control policy.
pub const SCP_MAX_CHARS: usize = 5120;

/// One early end: the Identity Center user's sessions of a permission set in an account, issued before `before`
/// (RFC 3339 in UTC, such as `2026-12-05T16:00:00Z`), are to be denied.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Revoked {
    pub user_id: String,
    pub account_id: String,
    pub permission_set: String,
    pub before: String,
}

/// How closely the policy follows the revocations; each step down is taken only when the one above is too large.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precision {
    /// Each revoked role, before its own time.
    Exact,
    /// Each person's revoked roles, before the latest of their times: a session of one of those roles started
    /// between two of them is denied too.
    PerPerson,
    /// Every session of each person, whatever the role and time, until the statement is pruned.
    Everything,
    /// Every session of the newest people that fit; `left_out` people's sessions are not denied.
    Truncated { left_out: usize },
}

/// The policy to keep in AWS: its JSON text and the accounts to attach it to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Denial {
    pub document: String,
    pub accounts: BTreeSet<String>,
    pub precision: Precision,
}

/// The role an Identity Center permission set makes in an account, as `aws:PrincipalArn` names it (the path holds
/// the Region for instances outside us-east-1, and the name a random suffix).
pub fn role_pattern(account_id: &str, permission_set: &str) -> String {
    format!("arn:aws:iam::{account_id}:role/aws-reserved/sso.amazonaws.com/*AWSReservedSSO_{permission_set}_*")
}

/// The deny policy for `revoked` within `max_chars`, as precise as fits; `None` when nothing is revoked.
pub fn denial(revoked: &[Revoked], max_chars: usize) -> Option<Denial> {
    if revoked.is_empty() {
        return None;
    }
    let accounts: BTreeSet<String> = revoked.iter().map(|r| r.account_id.clone()).collect();
    let exact = statements(revoked.iter().map(|r| ((r.user_id.as_str(), r.before.as_str()), r)));
    let latest: BTreeMap<&str, &str> = revoked.iter().fold(BTreeMap::new(), |mut m, r| {
        let t = m.entry(r.user_id.as_str()).or_insert(r.before.as_str());
        *t = (*t).max(r.before.as_str());
        m
    });
    let per_person = statements(revoked.iter().map(|r| ((r.user_id.as_str(), latest[r.user_id.as_str()]), r)));
    for (statements, precision) in [(exact, Precision::Exact), (per_person, Precision::PerPerson)] {
        let document = policy(statements);
        if document.len() <= max_chars {
            return Some(Denial { document, accounts, precision });
        }
    }
    // Newest first, so that what is left out, if anything, is what was revoked longest ago.
    let mut people: Vec<(&str, &str)> = latest.iter().map(|(u, t)| (*u, *t)).collect();
    people.sort_by(|a, b| b.1.cmp(a.1).then(a.0.cmp(b.0)));
    let mut kept = people.len();
    loop {
        let users: Vec<&str> = people[..kept].iter().map(|(u, _)| *u).collect();
        let document = policy(vec![everything(&users)]);
        if document.len() <= max_chars || kept == 0 {
            let precision = match people.len() - kept {
                0 => Precision::Everything,
                left_out => Precision::Truncated { left_out },
            };
            return Some(Denial { document, accounts, precision });
        }
        kept -= 1;
    }
}

/// One statement per (person, time), denying the roles revoked for it.
fn statements<'a>(keyed: impl Iterator<Item = ((&'a str, &'a str), &'a Revoked)>) -> Vec<serde_json::Value> {
    let mut grouped: BTreeMap<(&str, &str), BTreeSet<String>> = BTreeMap::new();
    for (key, r) in keyed {
        grouped.entry(key).or_default().insert(role_pattern(&r.account_id, &r.permission_set));
    }
    grouped
        .into_iter()
        .map(|((user, before), roles)| {
            serde_json::json!({
                "Effect": "Deny", "Action": "*", "Resource": "*",
                "Condition": {
                    "StringEquals": { "identitystore:userId": user },
                    "DateLessThan": { "aws:TokenIssueTime": before },
                    "ArnLike": { "aws:PrincipalArn": roles },
                }
            })
        })
        .collect()
}

fn everything(users: &[&str]) -> serde_json::Value {
    serde_json::json!({
        "Effect": "Deny", "Action": "*", "Resource": "*",
        "Condition": { "StringEquals": { "identitystore:userId": users } }
    })
}

/// The policy's text without spaces: AWS counts every character against the limit.
fn policy(statements: Vec<serde_json::Value>) -> String {
    let statements: Vec<serde_json::Value> = statements
        .into_iter()
        .enumerate()
        .map(|(n, mut s)| {
            s["Sid"] = serde_json::Value::String(format!("ConeRevokedSessions{n}"));
            s
        })
        .collect();
    serde_json::json!({ "Version": "2012-10-17", "Statement": statements }).to_string()
}

/// Seconds of an ISO 8601 duration as Identity Center writes a permission set's session duration (`PT1H`,
/// `PT12H`, `PT1H30M`, `PT90S`); `None` for anything else.
pub fn iso_duration_secs(text: &str) -> Option<i64> {
    let mut rest = text.strip_prefix("PT")?;
    if rest.is_empty() {
        return None;
    }
    let mut total = 0i64;
    for (unit, secs) in [('H', 3600), ('M', 60), ('S', 1)] {
        if let Some(at) = rest.find(unit) {
            let n: i64 = rest[..at].parse().ok()?;
            total = total.checked_add(n.checked_mul(secs)?)?;
            rest = &rest[at + 1..];
        }
    }
    rest.is_empty().then_some(total)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn revoked(user: &str, account: &str, set: &str, before: &str) -> Revoked {
        Revoked { user_id: user.into(), account_id: account.into(), permission_set: set.into(), before: before.into() }
    }

    fn statements_of(d: &Denial) -> Vec<serde_json::Value> {
        let v: serde_json::Value = serde_json::from_str(&d.document).unwrap();
        v["Statement"].as_array().unwrap().clone()
    }

    #[test]
    fn nothing_revoked_needs_no_policy() {
        assert_eq!(denial(&[], SCP_MAX_CHARS), None);
    }

    #[test]
    fn each_revoked_role_is_denied_before_its_own_time() {
        let d = denial(
            &[
                revoked("u-1", "111111111111", "Admin", "2026-12-05T10:00:00Z"),
                revoked("u-1", "222222222222", "ReadOnly", "2026-12-05T10:00:00Z"),
                revoked("u-2", "111111111111", "Admin", "2026-12-05T11:00:00Z"),
            ],
            SCP_MAX_CHARS,
        )
        .unwrap();
        assert_eq!(d.precision, Precision::Exact);
        assert_eq!(d.accounts.iter().map(String::as_str).collect::<Vec<_>>(), ["111111111111", "222222222222"]);
        let s = statements_of(&d);
        assert_eq!(s.len(), 2, "{s:?}");
        assert_eq!(s[0]["Condition"]["StringEquals"]["identitystore:userId"], "u-1");
        assert_eq!(s[0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"], "2026-12-05T10:00:00Z");
        assert_eq!(
            s[0]["Condition"]["ArnLike"]["aws:PrincipalArn"],
            serde_json::json!([
                "arn:aws:iam::111111111111:role/aws-reserved/sso.amazonaws.com/*AWSReservedSSO_Admin_*",
                "arn:aws:iam::222222222222:role/aws-reserved/sso.amazonaws.com/*AWSReservedSSO_ReadOnly_*",
            ])
        );
        assert_eq!((s[1]["Effect"].as_str(), s[1]["Action"].as_str()), (Some("Deny"), Some("*")));
        assert!(!d.document.contains(' '), "{}", d.document);
    }

    #[test]
    fn a_policy_too_large_merges_per_person_then_denies_people_then_says_who_was_left_out() {
        let many: Vec<Revoked> = (0..40)
            .map(|n| {
                revoked(&format!("u-{}", n % 8), &format!("{:012}", n), "Admin", &format!("2026-12-05T10:{n:02}:00Z"))
            })
            .collect();
        let exact = denial(&many, usize::MAX).unwrap();
        assert_eq!(statements_of(&exact).len(), 40);
        let per_person = denial(&many, exact.document.len() - 1).unwrap();
        assert_eq!(per_person.precision, Precision::PerPerson);
        let s = statements_of(&per_person);
        assert_eq!(s.len(), 8);
        // u-0 was revoked at minutes 0, 8, …, 32: the latest time covers all five roles.
        assert_eq!(s[0]["Condition"]["DateLessThan"]["aws:TokenIssueTime"], "2026-12-05T10:32:00Z");
        assert_eq!(s[0]["Condition"]["ArnLike"]["aws:PrincipalArn"].as_array().unwrap().len(), 5);

        let everything = denial(&many, 400).unwrap();
        assert_eq!(everything.precision, Precision::Everything);
        assert_eq!(
            statements_of(&everything)[0]["Condition"]["StringEquals"]["identitystore:userId"]
                .as_array()
                .unwrap()
                .len(),
            8
        );
        assert!(everything.document.len() <= 400);

        let truncated = denial(&many, 200).unwrap();
        let Precision::Truncated { left_out } = truncated.precision else { panic!("{truncated:?}") };
        let kept = statements_of(&truncated)[0]["Condition"]["StringEquals"]["identitystore:userId"].clone();
        assert_eq!(kept.as_array().unwrap().len() + left_out, 8);
        // The newest revocation (u-7 at minute 39) is kept first.
        assert_eq!(kept[0], "u-7");
        assert!(truncated.document.len() <= 200);
    }

    #[test]
    fn session_durations_read_as_identity_center_writes_them() {
        assert_eq!(iso_duration_secs("PT1H"), Some(3600));
        assert_eq!(iso_duration_secs("PT12H"), Some(43_200));
        assert_eq!(iso_duration_secs("PT1H30M"), Some(5400));
        assert_eq!(iso_duration_secs("PT20S"), Some(20));
        for bad in ["", "PT", "P1D", "PT1X", "1H", "PTH", "PT1H1H"] {
            assert_eq!(iso_duration_secs(bad), None, "{bad}");
        }
    }
}
