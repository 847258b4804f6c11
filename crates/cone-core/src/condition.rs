//! The conditions of policy branches: CEL expressions over what is known about a request when it is filed.

use std::collections::BTreeMap;

use cel_interpreter::{Context, Program, Value};
use chrono::{DateTime, Utc};
use serde::Serialize;

/// What a condition can read. The field names are the CEL names (`requester.groups`, `request.duration`, …).
#[derive(Debug, Clone, Serialize)]
pub struct Facts {
    pub requester: Requester,
    pub entitlement: Entitlement,
    pub request: Request,
    pub now: cel_interpreter::Timestamp,
}

#[derive(Debug, Clone, Serialize)]
pub struct Requester {
    pub name: String,
    pub email: String,
    pub groups: Vec<String>,
    /// From the configuration's `identities`; Identity Center has no manager attribute.
    pub manager: Option<String>,
    pub attributes: BTreeMap<String, String>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Entitlement {
    pub app: String,
    pub account_id: String,
    pub account_name: String,
    /// Empty for a group membership.
    pub permission_set: String,
    /// The Identity Center group of a membership; empty for a permission set.
    pub group: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Request {
    /// `grant` or `extend`.
    pub kind: String,
    pub duration: cel_interpreter::Duration,
    pub emergency: bool,
    pub justification: String,
    /// Typed as the form's fields are: `request.form.hosts > 3`, `request.form.urgent`.
    pub form: crate::form::FormData,
}

impl Request {
    pub fn new(kind: &str, duration_secs: i64, emergency: bool, justification: &str) -> Request {
        Request {
            kind: kind.into(),
            // Saturates rather than panics: a duration beyond chrono's range is longer than any maximum anyway.
            duration: cel_interpreter::Duration(
                chrono::TimeDelta::try_seconds(duration_secs).unwrap_or(if duration_secs < 0 {
                    chrono::TimeDelta::MIN
                } else {
                    chrono::TimeDelta::MAX
                }),
            ),
            emergency,
            justification: justification.into(),
            form: crate::form::FormData::new(),
        }
    }
}

pub fn timestamp(t: DateTime<Utc>) -> cel_interpreter::Timestamp {
    cel_interpreter::Timestamp(t.fixed_offset())
}

/// The longest condition, and the deepest nesting of brackets in it, that are compiled.
pub const MAX_LENGTH: usize = 4000;
pub const MAX_NESTING: usize = 32;

/// How deep `(`, `[` and `{` nest in `source`, counting those in string literals too (a longer string is refused
/// for nothing worse than that).
fn nesting(source: &str) -> usize {
    let (mut depth, mut deepest) = (0usize, 0);
    for c in source.chars() {
        match c {
            '(' | '[' | '{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            ')' | ']' | '}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// A compiled `when` expression.
#[derive(Debug)]
pub struct Condition {
    pub source: String,
    program: Program,
}

impl Condition {
    /// Compiles `source` and evaluates it against `samples`, so that syntax errors, unknown names, fields no
    /// sample has and non-boolean results fail when the configuration loads. Parts a sample does not reach
    /// (the right of `||` after a true left, say) are only checked when a request reaches them.
    pub fn compile(source: &str, samples: &[Facts]) -> Result<Condition, String> {
        // The parser recurses once per bracket: nesting in the hundreds overflows the stack and takes the whole
        // server down, which no catch_unwind can stop (found by fuzzing).
        let depth = nesting(source);
        if source.chars().count() > MAX_LENGTH || depth > MAX_NESTING {
            return Err(format!(
                "a condition may have at most {MAX_LENGTH} characters and nest brackets at most {MAX_NESTING} deep; \
                 this one has {} and nests {depth} deep: split it into simpler conditions",
                source.chars().count()
            ));
        }
        // cel-parser 0.10 panics on some malformed input instead of returning an error; this runs at load only.
        let parsed = std::panic::catch_unwind(|| Program::compile(source));
        let invalid = |e: String| format!("`{source}` is not a valid CEL expression: {e}");
        let program = match parsed {
            Ok(result) => result.map_err(|e| invalid(e.to_string()))?,
            Err(_) => return Err(invalid("the parser could not read it".into())),
        };
        let condition = Condition { source: source.to_string(), program };
        for facts in samples {
            condition.evaluate(facts).map_err(|e| format!("`{source}` {e}"))?;
        }
        Ok(condition)
    }

    /// Whether the condition holds, or why it cannot be told (a field the request left out, say): the caller stops
    /// there rather than take the error for false, which would let a request steer to a later branch.
    pub fn holds(&self, facts: &Facts) -> Result<bool, String> {
        self.evaluate(facts).map_err(|e| format!("`{}` {e}", self.source))
    }

    fn evaluate(&self, facts: &Facts) -> Result<bool, String> {
        let mut context = Context::default();
        let serialized = [
            ("requester", context.add_variable("requester", &facts.requester)),
            ("entitlement", context.add_variable("entitlement", &facts.entitlement)),
            ("request", context.add_variable("request", &facts.request)),
            ("now", context.add_variable("now", &facts.now)),
        ];
        for (name, result) in serialized {
            result.map_err(|e| format!("cannot be given `{name}`: {e}"))?;
        }
        match self.program.execute(&context) {
            Ok(Value::Bool(b)) => Ok(b),
            Ok(other) => Err(format!("must be true or false, but gives {:?}", other.type_of())),
            Err(e) => Err(format!("fails: {e}")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub fn facts(groups: &[&str], duration_secs: i64, emergency: bool) -> Facts {
        Facts {
            requester: Requester {
                name: "alice".into(),
                email: "alice@example.com".into(),
                groups: groups.iter().map(|g| g.to_string()).collect(),
                manager: Some("carol".into()),
                attributes: BTreeMap::from([("department".to_string(), "data".to_string())]),
            },
            entitlement: Entitlement {
                app: "aws".into(),
                account_id: "123456789012".into(),
                account_name: "Production".into(),
                permission_set: "AdministratorAccess".into(),
                group: String::new(),
            },
            request: Request::new("grant", duration_secs, emergency, "incident 7"),
            now: timestamp(DateTime::from_timestamp(1_700_000_000, 0).unwrap_or_default()),
        }
    }

    #[test]
    fn evaluates_over_the_request() {
        let sample = [facts(&[], 3600, false)];
        let long = Condition::compile("request.duration > duration('1h')", &sample).unwrap();
        assert!(!long.holds(&facts(&[], 3600, false)).unwrap());
        assert!(long.holds(&facts(&[], 7200, false)).unwrap());
        let oncall = Condition::compile(
            "'oncall' in requester.groups && entitlement.account_name == 'Production' && !request.emergency",
            &sample,
        )
        .unwrap();
        assert!(oncall.holds(&facts(&["oncall"], 60, false)).unwrap());
        assert!(!oncall.holds(&facts(&["oncall"], 60, true)).unwrap());
        let manager = Condition::compile(
            "requester.manager == 'carol' && requester.attributes.department == 'data' && now.getFullYear() > 2000",
            &sample,
        )
        .unwrap();
        assert!(manager.holds(&facts(&[], 60, false)).unwrap());
        let present = Condition::compile(
            "has(requester.attributes.department) && 'department' in requester.attributes && !has(request.form.x)",
            &sample,
        )
        .unwrap();
        assert!(present.holds(&facts(&[], 60, false)).unwrap());
        let membership = Condition::compile("entitlement.group == 'dba-prod'", &sample).unwrap();
        assert!(!membership.holds(&facts(&[], 60, false)).unwrap(), "a permission set has no group");
        let mut dba = facts(&[], 60, false);
        dba.entitlement = Entitlement { permission_set: String::new(), group: "dba-prod".into(), ..dba.entitlement };
        assert!(membership.holds(&dba).unwrap());
    }

    #[test]
    fn form_values_arrive_typed() {
        use crate::form::FormValue;
        let mut f = facts(&[], 60, false);
        f.request.form = [
            ("urgent", FormValue::Bool(true)),
            ("hosts", FormValue::Integer(4)),
            ("regions", FormValue::List(vec!["eu-west-1".into()])),
            ("ticket", FormValue::Text("INC-1".into())),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect();
        let typed = Condition::compile(
            "request.form.urgent && request.form.hosts > 3 && 'eu-west-1' in request.form.regions \
             && request.form.ticket.startsWith('INC-')",
            std::slice::from_ref(&f),
        )
        .unwrap();
        assert!(typed.holds(&f).unwrap());
    }

    #[test]
    fn mistakes_fail_at_compile_time_and_errors_at_request_time_are_errors() {
        let sample = [facts(&[], 3600, false)];
        let error = |source: &str| Condition::compile(source, &sample).unwrap_err();
        assert!(error("request.duration >").contains("not a valid CEL expression"), "{}", error("request.duration >"));
        assert!(error("requestor.groups.size() > 0").contains("fails"));
        assert!(error("request.duraton > duration('1h')").contains("fails"));
        assert!(error("request.duration").contains("must be true or false"));
        let attribute = Condition::compile("requester.attributes.department == 'data'", &sample).unwrap();
        let mut without = facts(&[], 60, false);
        without.requester.attributes.clear();
        let e = attribute.holds(&without).unwrap_err();
        assert!(e.starts_with("`requester.attributes.department == 'data'` fails"), "{e}");
    }

    #[test]
    fn deep_nesting_is_refused_before_the_parser_sees_it() {
        let sample = [facts(&[], 60, false)];
        let deep = format!("{}true{}", "(".repeat(1000), ")".repeat(1000));
        let e = Condition::compile(&deep, &sample).unwrap_err();
        assert!(e.contains("nest brackets at most 32 deep") && e.contains("nests 1000 deep"), "{e}");
        let fine = format!("{}true{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
        assert!(Condition::compile(&fine, &sample).is_ok());
    }

    #[test]
    fn durations_beyond_chronos_range_saturate() {
        // Found by fuzzing: `chrono::Duration::seconds` panics past ±i64::MAX / 1000.
        let long = Condition::compile("request.duration > duration('1h')", &[facts(&[], 60, false)]).unwrap();
        assert!(long.holds(&facts(&[], i64::MAX, false)).unwrap());
        assert!(!long.holds(&facts(&[], i64::MIN, false)).unwrap());
    }
}
