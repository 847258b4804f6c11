//! What a signed-in user may reach, decided from Identity Center account assignments, and how the portal
//! presents it (reserved role names, session names, pages). No I/O.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

use crate::errors::{PortalError, PortalErrorKind};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    User,
    Group,
}

/// One account assignment as Identity Center stores it: a permission set in an account for a principal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub account_id: String,
    pub permission_set_arn: String,
    pub principal_kind: PrincipalKind,
    pub principal_id: String,
}

/// A user together with the groups they belong to: every principal an assignment may name to reach them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principals {
    pub user_id: String,
    pub group_ids: Vec<String>,
}

impl Principals {
    pub fn covers(&self, assignment: &Assignment) -> bool {
        match assignment.principal_kind {
            PrincipalKind::User => assignment.principal_id == self.user_id,
            PrincipalKind::Group => self.group_ids.contains(&assignment.principal_id),
        }
    }
}

/// Whether the user holds `permission_set_arn` in `account_id`, directly or through a group.
pub fn grants(assignments: &[Assignment], who: &Principals, account_id: &str, permission_set_arn: &str) -> bool {
    assignments
        .iter()
        .any(|a| a.account_id == account_id && a.permission_set_arn == permission_set_arn && who.covers(a))
}

/// Accounts in which the user holds at least one permission set, sorted.
pub fn assigned_accounts(assignments: &[Assignment], who: &Principals) -> Vec<String> {
    let mut accounts: Vec<String> =
        assignments.iter().filter(|a| who.covers(a)).map(|a| a.account_id.clone()).collect();
    accounts.sort();
    accounts.dedup();
    accounts
}

/// Permission sets the user holds in `account_id`, sorted by ARN.
pub fn assigned_permission_sets(assignments: &[Assignment], who: &Principals, account_id: &str) -> Vec<String> {
    let mut arns: Vec<String> = assignments
        .iter()
        .filter(|a| a.account_id == account_id && who.covers(a))
        .map(|a| a.permission_set_arn.clone())
        .collect();
    arns.sort();
    arns.dedup();
    arns
}

/// The IAM role Identity Center provisions for a permission set in an account. The real suffix is opaque;
/// deriving it from the account and permission set keeps it stable across emulator restarts.
pub fn reserved_role_arn(account_id: &str, permission_set_name: &str, permission_set_arn: &str) -> String {
    let digest = Sha256::digest(format!("{account_id}:{permission_set_arn}"));
    let suffix = &hex::encode(digest)[..16];
    format!(
        "arn:aws:iam::{account_id}:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_{permission_set_name}_{suffix}"
    )
}

/// STS accepts session names of 2 to 64 characters from `[\w+=,.@-]`; identity-store user names may
/// contain anything, so the rest is replaced rather than letting AssumeRole fail.
pub fn role_session_name(user_name: &str) -> String {
    let mut name: String = user_name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() || "_+=,.@-".contains(c) { c } else { '-' })
        .take(64)
        .collect();
    while name.len() < 2 {
        name.push('-');
    }
    name
}

/// One page of a portal list.
#[derive(Debug, PartialEq, Eq)]
pub struct Page<T> {
    pub items: Vec<T>,
    pub next_token: Option<String>,
}

/// The model documents no default page size; the maximum keeps clients that do not page to one request.
const DEFAULT_PAGE_SIZE: usize = 100;

/// Cuts `items` into the page that `next_token` / `max_result` (raw query values) ask for. The list is
/// recomputed on every request, so the token is just an offset.
pub fn paginate<T>(items: Vec<T>, next_token: Option<&str>, max_result: Option<&str>) -> Result<Page<T>, PortalError> {
    let size = match max_result {
        None => DEFAULT_PAGE_SIZE,
        Some(raw) => match raw.parse::<usize>() {
            Ok(n) if (1..=100).contains(&n) => n,
            _ => {
                return Err(PortalError::new(
                    PortalErrorKind::InvalidRequest,
                    format!("max_result must be an integer from 1 to 100, got {raw:?}"),
                ));
            }
        },
    };
    let start = match next_token {
        None => 0,
        Some(token) => decode_offset(token).filter(|offset| *offset <= items.len()).ok_or_else(|| {
            PortalError::new(
                PortalErrorKind::InvalidRequest,
                "next_token is not one this emulator issued; start listing again without it",
            )
        })?,
    };
    let end = start.saturating_add(size).min(items.len());
    let next_token = (end < items.len()).then(|| URL_SAFE_NO_PAD.encode(format!("offset:{end}")));
    let items = items.into_iter().skip(start).take(end - start).collect();
    Ok(Page { items, next_token })
}

fn decode_offset(token: &str) -> Option<usize> {
    let bytes = URL_SAFE_NO_PAD.decode(token).ok()?;
    String::from_utf8(bytes).ok()?.strip_prefix("offset:")?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEV: &str = "111111111111";
    const PROD: &str = "222222222222";
    const ADMIN: &str = "arn:aws:sso:::permissionSet/ssoins-1/ps-admin";
    const READ: &str = "arn:aws:sso:::permissionSet/ssoins-1/ps-read";

    fn assignment(account: &str, ps: &str, kind: PrincipalKind, id: &str) -> Assignment {
        Assignment {
            account_id: account.into(),
            permission_set_arn: ps.into(),
            principal_kind: kind,
            principal_id: id.into(),
        }
    }

    fn alice() -> Principals {
        Principals { user_id: "u-alice".into(), group_ids: vec!["g-ops".into()] }
    }

    #[test]
    fn direct_and_group_assignments_grant_access() {
        let assignments = vec![
            assignment(DEV, ADMIN, PrincipalKind::User, "u-alice"),
            assignment(PROD, READ, PrincipalKind::Group, "g-ops"),
            assignment(PROD, ADMIN, PrincipalKind::User, "u-bob"),
            assignment(DEV, READ, PrincipalKind::Group, "g-other"),
        ];
        assert!(grants(&assignments, &alice(), DEV, ADMIN));
        assert!(grants(&assignments, &alice(), PROD, READ));
        assert!(!grants(&assignments, &alice(), PROD, ADMIN), "assigned to someone else");
        assert!(!grants(&assignments, &alice(), DEV, READ), "assigned to a group alice is not in");
        assert!(!grants(&[], &alice(), DEV, ADMIN));
    }

    #[test]
    fn a_group_id_equal_to_the_user_id_is_not_the_user() {
        let who = Principals { user_id: "same".into(), group_ids: vec![] };
        let assignments = vec![assignment(DEV, ADMIN, PrincipalKind::Group, "same")];
        assert!(!grants(&assignments, &who, DEV, ADMIN));
    }

    #[test]
    fn accounts_and_roles_are_sorted_and_unique() {
        let assignments = vec![
            assignment(PROD, READ, PrincipalKind::Group, "g-ops"),
            assignment(DEV, ADMIN, PrincipalKind::User, "u-alice"),
            assignment(DEV, READ, PrincipalKind::User, "u-alice"),
            assignment(DEV, ADMIN, PrincipalKind::Group, "g-ops"),
            assignment("333333333333", READ, PrincipalKind::User, "u-bob"),
        ];
        assert_eq!(assigned_accounts(&assignments, &alice()), vec![DEV, PROD]);
        assert_eq!(assigned_permission_sets(&assignments, &alice(), DEV), vec![ADMIN, READ]);
        assert_eq!(assigned_permission_sets(&assignments, &alice(), "333333333333"), Vec::<String>::new());
    }

    #[test]
    fn reserved_role_arn_is_stable_and_distinct() {
        let arn = reserved_role_arn(DEV, "Admin", ADMIN);
        let prefix = "arn:aws:iam::111111111111:role/aws-reserved/sso.amazonaws.com/AWSReservedSSO_Admin_";
        let suffix = arn.strip_prefix(prefix).expect("reserved role path and name");
        assert_eq!(suffix.len(), 16);
        assert!(suffix.chars().all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase()));
        assert_eq!(arn, reserved_role_arn(DEV, "Admin", ADMIN));
        assert_ne!(arn, reserved_role_arn(PROD, "Admin", ADMIN));
        assert_ne!(suffix, &reserved_role_arn(DEV, "Admin", READ)[prefix.len()..]);
    }

    #[test]
    fn session_names_fit_sts_rules() {
        assert_eq!(role_session_name("alice@example.com"), "alice@example.com");
        assert_eq!(role_session_name("Jane Doe/ü"), "Jane-Doe--");
        assert_eq!(role_session_name("x"), "x-");
        assert_eq!(role_session_name(&"a".repeat(80)).len(), 64);
    }

    #[test]
    fn pages_follow_tokens_to_the_end() {
        let items: Vec<u32> = (0..5).collect();
        let first = paginate(items.clone(), None, Some("2")).expect("page 1");
        assert_eq!(first.items, vec![0, 1]);
        let token = first.next_token.expect("more pages");
        let second = paginate(items.clone(), Some(&token), Some("2")).expect("page 2");
        assert_eq!(second.items, vec![2, 3]);
        let third = paginate(items.clone(), second.next_token.as_deref(), Some("2")).expect("page 3");
        assert_eq!(third.items, vec![4]);
        assert_eq!(third.next_token, None);
        let all = paginate(items, None, None).expect("default page");
        assert_eq!(all.items.len(), 5);
        assert_eq!(all.next_token, None);
    }

    #[test]
    fn bad_page_parameters_are_invalid_requests() {
        for max in ["0", "101", "ten", "-1"] {
            let err = paginate(vec![1], None, Some(max)).expect_err(max);
            assert_eq!(err.kind, PortalErrorKind::InvalidRequest);
        }
        let beyond = URL_SAFE_NO_PAD.encode("offset:9");
        for token in ["garbage!", "b2Zmc2V0OnRlbg", beyond.as_str()] {
            let err = paginate(vec![1, 2], Some(token), None).expect_err(token);
            assert_eq!(err.kind, PortalErrorKind::InvalidRequest);
        }
    }
}
