//! Request catalogs: which entitlements each person sees and may request. Access profiles say who sees which
//! entitlements; entitlement-management rules say which entitlements may be requested at all, and may attach them
//! to a profile. With neither configured, everyone sees everything.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

/// Entitlements by account and permission set name, or Identity Center group memberships by group name; an absent
/// field matches any. A selector without `group` matches permission sets only, and one with `group` that group's
/// membership only: a group is requestable only where a rule or policy names it, since membership of some groups
/// (approvers, administrators) carries rights in Cone itself.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Selector {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub permission_set: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
}

impl Selector {
    /// Whether it matches every permission set.
    pub fn is_any(&self) -> bool {
        self.account.is_none() && self.permission_set.is_none() && self.group.is_none()
    }

    pub fn matches(&self, e: &Target) -> bool {
        let kind = match (self.group.as_deref(), e.group) {
            (None, None) => true,
            (Some(wanted), Some(group)) => wanted == group,
            _ => false,
        };
        kind && self.account.as_deref().is_none_or(|a| a == e.account)
            && self.permission_set.as_deref().is_none_or(|p| p == e.permission_set)
    }
}

/// A set of entitlements made visible and requestable to some people.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AccessProfile {
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub visible_to: Audience,
    /// Entitlements the profile holds besides those rules attach to it.
    #[serde(default)]
    pub entitlements: Vec<Selector>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Audience {
    #[serde(default)]
    pub users: Vec<String>,
    #[serde(default)]
    pub groups: Vec<String>,
    #[serde(default)]
    pub everyone: bool,
}

/// Whether the entitlements (of the accounts) it matches may be requested, and the profile that offers them.
/// The first rule that matches an entitlement decides; one no rule matches cannot be requested.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ManagementRule {
    #[serde(default, rename = "match", skip_serializing_if = "Selector::is_any")]
    pub matches: Selector,
    pub requestable: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub access_profile: Option<String>,
}

/// An entitlement, by the names rules use.
pub struct Target<'a> {
    /// Empty for an Identity Center group, which belongs to no account.
    pub account: &'a str,
    /// Empty for a group membership.
    pub permission_set: &'a str,
    /// The group's name, for a group membership.
    pub group: Option<&'a str>,
}

impl<'a> Target<'a> {
    pub fn permission_set(account: &'a str, permission_set: &'a str) -> Target<'a> {
        Target { account, permission_set, group: None }
    }
}

/// Who is looking.
pub struct Viewer<'a> {
    pub name: &'a str,
    pub groups: &'a [String],
}

#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub profiles: Vec<AccessProfile>,
    pub rules: Vec<ManagementRule>,
}

impl Catalog {
    /// What is inconsistent: profiles named twice, or rules naming a profile that does not exist.
    pub fn check(&self) -> Result<(), String> {
        let mut names = HashSet::new();
        for p in &self.profiles {
            if !names.insert(p.name.as_str()) {
                return Err(format!("access_profiles lists \"{}\" twice; merge the two entries", p.name));
            }
        }
        for (i, rule) in self.rules.iter().enumerate() {
            match &rule.access_profile {
                Some(name) if !names.contains(name.as_str()) => {
                    return Err(format!(
                        "entitlement_management rule {} attaches access profile \"{name}\", which access_profiles \
                         does not define; define it or correct the name",
                        i + 1
                    ));
                }
                Some(_) if !rule.requestable => {
                    return Err(format!(
                        "entitlement_management rule {} is not requestable, so its access profile offers nothing; \
                         drop `access_profile` or set `requestable: true`",
                        i + 1
                    ));
                }
                _ => {}
            }
        }
        Ok(())
    }

    /// The rule that decides the entitlement, with its index: the first that matches.
    pub fn rule_for(&self, e: &Target) -> Option<(usize, &ManagementRule)> {
        self.rules.iter().enumerate().find(|(_, r)| r.matches.matches(e))
    }

    /// Whether `viewer` sees, and so may request, the entitlement.
    pub fn offers(&self, viewer: &Viewer, e: &Target) -> bool {
        let rule = self.rule_for(e).map(|(_, r)| r);
        if !self.rules.is_empty() && !rule.is_some_and(|r| r.requestable) {
            return false;
        }
        let attached = rule.and_then(|r| r.access_profile.as_deref());
        self.profiles.is_empty()
            || self.profiles.iter().any(|p| {
                p.visible_to.includes(viewer)
                    && (attached == Some(p.name.as_str()) || p.entitlements.iter().any(|s| s.matches(e)))
            })
    }
}

impl Audience {
    fn includes(&self, viewer: &Viewer) -> bool {
        self.everyone
            || self.users.iter().any(|u| u == viewer.name)
            || self.groups.iter().any(|g| viewer.groups.contains(g))
    }
}

/// Whether every word of `query` appears, ignoring case, within one of `fields`. An empty query matches all.
pub fn words_match(query: &str, fields: &[&str]) -> bool {
    query.split_whitespace().all(|word| {
        let word = word.to_lowercase();
        fields.iter().any(|f| contains_folded(f, &word))
    })
}

/// Whether `text` contains `word` (in lower case already), ignoring case. A catalog search runs this for every
/// field of thousands of entitlements, so ASCII text, the common case, is compared where it lies.
fn contains_folded(text: &str, word: &str) -> bool {
    if text.is_ascii() && word.is_ascii() {
        text.as_bytes().windows(word.len()).any(|w| w.eq_ignore_ascii_case(word.as_bytes()))
    } else {
        text.to_lowercase().contains(word)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn yaml<T: serde::de::DeserializeOwned>(text: &str) -> T {
        serde_json::from_value(serde_json::from_str::<serde_json::Value>(text).unwrap()).unwrap()
    }

    fn catalog() -> Catalog {
        Catalog {
            profiles: yaml(
                r#"[
                  {"name": "staging", "visible_to": {"users": ["alice"], "groups": ["approvers"]},
                   "entitlements": [{"account": "Staging"}]},
                  {"name": "readonly", "visible_to": {"everyone": true},
                   "entitlements": [{"permission_set": "ReadOnlyAccess"}]},
                  {"name": "admins", "visible_to": {"groups": ["approvers"]}}
                ]"#,
            ),
            rules: vec![],
        }
    }

    fn offered(c: &Catalog, name: &str, groups: &[&str]) -> Vec<String> {
        let groups: Vec<String> = groups.iter().map(|g| g.to_string()).collect();
        let viewer = Viewer { name, groups: &groups };
        let mut offered = vec![];
        for account in ["Production", "Staging"] {
            for permission_set in ["AdministratorAccess", "ReadOnlyAccess"] {
                if c.offers(&viewer, &Target::permission_set(account, permission_set)) {
                    offered.push(format!("{account}/{permission_set}"));
                }
            }
        }
        offered
    }

    #[test]
    fn without_profiles_everyone_sees_everything() {
        assert_eq!(offered(&Catalog::default(), "alice", &[]).len(), 4);
    }

    #[test]
    fn profiles_offer_their_entitlements_to_their_audience() {
        let c = catalog();
        assert_eq!(
            offered(&c, "alice", &[]),
            ["Production/ReadOnlyAccess", "Staging/AdministratorAccess", "Staging/ReadOnlyAccess"]
        );
        assert_eq!(offered(&c, "carol", &[]), ["Production/ReadOnlyAccess", "Staging/ReadOnlyAccess"]);
        assert_eq!(offered(&c, "bob", &["approvers"]).len(), 3);
    }

    #[test]
    fn management_rules_enable_requesting_and_attach_profiles() {
        let mut c = catalog();
        c.rules = yaml(
            r#"[
              {"match": {"account": "Production", "permission_set": "AdministratorAccess"}, "requestable": true,
               "access_profile": "admins"},
              {"match": {"account": "Staging"}, "requestable": false},
              {"requestable": true}
            ]"#,
        );
        assert_eq!(c.check(), Ok(()));
        // Staging is closed to requests whatever the profiles say; Production's admin role goes to the admins.
        assert_eq!(offered(&c, "alice", &[]), ["Production/ReadOnlyAccess"]);
        assert_eq!(offered(&c, "bob", &["approvers"]), ["Production/AdministratorAccess", "Production/ReadOnlyAccess"]);
        // Without a catch-all rule, what no rule matches is not requestable.
        c.rules.pop();
        assert_eq!(offered(&c, "alice", &[]), Vec::<String>::new());
    }

    #[test]
    fn inconsistencies_are_named() {
        let mut c = catalog();
        c.rules = yaml(r#"[{"requestable": true, "access_profile": "nobody"}]"#);
        assert!(c.check().unwrap_err().contains("rule 1 attaches access profile \"nobody\""));
        c.rules = yaml(r#"[{"requestable": false, "access_profile": "admins"}]"#);
        assert!(c.check().unwrap_err().contains("drop `access_profile`"));
        c.profiles.push(c.profiles[0].clone());
        assert!(c.check().unwrap_err().contains("lists \"staging\" twice"));
    }

    #[test]
    fn a_group_is_matched_only_by_a_selector_naming_it() {
        let dba = Target { account: "", permission_set: "", group: Some("dba-prod") };
        let admin = Target::permission_set("Production", "AdministratorAccess");
        let any: Selector = yaml("{}");
        let by_group: Selector = yaml(r#"{"group": "dba-prod"}"#);
        let other_group: Selector = yaml(r#"{"group": "approvers"}"#);
        let by_account: Selector = yaml(r#"{"account": "Production"}"#);
        assert!(any.matches(&admin) && !any.matches(&dba), "membership of a group is never requestable by accident");
        assert!(by_group.matches(&dba) && !by_group.matches(&admin));
        assert!(!other_group.matches(&dba));
        assert!(!by_account.matches(&dba));
        assert!(!by_group.is_any());
    }

    #[test]
    fn every_word_must_appear_within_one_field_whatever_its_case() {
        let fields = ["production-readonlyaccess", "ReadOnlyAccess", "Production", "111111111111"];
        assert!(words_match("", &fields), "no words, no filter");
        assert!(words_match("prod READ 1111", &fields));
        assert!(words_match("  read   prod ", &fields));
        assert!(!words_match("prod admin", &fields), "every word");
        assert!(words_match("111 production-read", &fields), "parts of ids and aliases");
        assert!(words_match("Ärger", &["ärger"]) && words_match("ärger", &["ÄRGER-prod"]), "beyond ASCII");
        assert!(!words_match("production-readonlyaccess-x", &fields), "a word longer than every field");
    }
}
