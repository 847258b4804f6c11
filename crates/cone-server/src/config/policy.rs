//! Policies: which entitlements each covers, its limits and form, and its steps or branches, compiled from the
//! access document and checked against sample requests at load.

use std::collections::BTreeMap;

use anyhow::{Context, Result, anyhow, bail};
use cone_api::FormField;
use cone_core::catalog::Selector;
use cone_core::policy::{Approvers, Step};
use serde::Deserialize;
use serde_yaml_ng::Value;

use super::{Config, duration};
use cone_core::condition::{Condition, Facts, Request, Requester};

/// A policy as written; `steps` and `emergency_steps` are compiled by `Config::parse`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PolicyConfig {
    name: String,
    #[serde(default, rename = "match")]
    matches: Selector,
    #[serde(with = "duration")]
    max_duration: i64,
    #[serde(default = "default_max_extensions")]
    max_extensions: i64,
    /// Checked by [`form`], which rejects misspelt keys that the wire type ignores.
    #[serde(default)]
    form: Vec<Value>,
    steps: Value,
    #[serde(default)]
    emergency_steps: Option<Value>,
}

#[derive(Debug)]
pub struct Policy {
    pub name: String,
    pub matches: Selector,
    pub max_duration: i64,
    /// How many times one grant may be extended.
    pub max_extensions: i64,
    pub form: Vec<FormField>,
    pub steps: Branches,
    /// The steps of emergency requests (`--emergency-access`, or escalated while pending); none means the
    /// policy has no emergency access.
    pub emergency_steps: Option<Branches>,
}

/// Branches tried in order; the last has no condition, so one always applies.
#[derive(Debug)]
pub struct Branches(Vec<Branch>);

#[derive(Debug)]
struct Branch {
    when: Option<Condition>,
    steps: Vec<StepConfig>,
}

/// A step as configured: owners and the manager become people when a request is filed.
#[derive(Debug, Clone, PartialEq)]
enum StepConfig {
    Accept,
    Reject,
    Wait(i64),
    Approval { from: From, count: u32 },
}

#[derive(Debug, Clone, PartialEq)]
enum From {
    Users(Vec<String>),
    Group(String),
    Owners,
    Manager,
    Requester,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ApprovalConfig {
    group: Option<String>,
    users: Option<Vec<String>>,
    from: Option<String>,
    #[serde(default = "one")]
    count: u32,
}

impl Policy {
    /// Policy for entitlements no policy covers: denied, so that forgetting a policy never grants access.
    pub(super) fn none_matches() -> Policy {
        Policy {
            name: "no matching policy".into(),
            matches: Selector::default(),
            max_duration: 3600,
            max_extensions: 0,
            form: vec![],
            steps: Branches(vec![Branch { when: None, steps: vec![StepConfig::Reject] }]),
            emergency_steps: None,
        }
    }
}

impl Branches {
    /// The steps of the first branch whose condition holds, with owners and the manager made people. A condition
    /// that cannot be evaluated stops the choice (fail closed), named by policy and branch, and is logged for the
    /// policy's author.
    pub fn choose(&self, facts: &Facts, policy: &str, owners: &[String]) -> Result<Vec<Step>, String> {
        let mut chosen = None;
        for (n, b) in self.0.iter().enumerate() {
            let holds = b.when.as_ref().map_or(Ok(true), |c| c.holds(facts));
            match holds {
                Ok(true) => {
                    chosen = Some(b);
                    break;
                }
                Ok(false) => {}
                Err(e) => {
                    let e = format!("policy \"{policy}\", branch {}: the condition {e}", n + 1);
                    tracing::warn!("a policy condition failed, so the request was stopped: {e}");
                    return Err(e);
                }
            }
        }
        // Unreachable while the last branch has no condition; denying keeps it safe if that ever changes.
        let Some(branch) = chosen else { return Ok(vec![Step::Reject]) };
        Ok(branch
            .steps
            .iter()
            .map(|s| match s {
                StepConfig::Accept => Step::Accept,
                StepConfig::Reject => Step::Reject,
                StepConfig::Wait(secs) => Step::Wait { secs: *secs },
                StepConfig::Approval { from, count } => {
                    let from = match from {
                        From::Users(names) => Approvers::Users(names.clone()),
                        From::Group(group) => Approvers::Group(group.clone()),
                        From::Owners => Approvers::Owners(owners.to_vec()),
                        From::Manager => Approvers::Manager(facts.requester.manager.clone()),
                        From::Requester => Approvers::Requester,
                    };
                    Step::Approval { from, count: *count }
                }
            })
            .collect())
    }
}

impl Config {
    pub(super) fn compile(&self, p: PolicyConfig) -> Result<Policy> {
        let form = form(&p.form).with_context(|| format!("policy \"{}\"", p.name))?;
        let samples = self.samples(&p, &form);
        let steps = self.branches(&p.steps, &samples).with_context(|| format!("policy \"{}\", steps", p.name))?;
        let emergency_steps = p
            .emergency_steps
            .as_ref()
            .map(|v| self.branches(v, &samples))
            .transpose()
            .with_context(|| format!("policy \"{}\", emergency_steps", p.name))?;
        Ok(Policy {
            name: p.name,
            matches: p.matches,
            max_duration: p.max_duration,
            max_extensions: p.max_extensions,
            form,
            steps,
            emergency_steps,
        })
    }

    /// Requests to try conditions on: ordinary and emergency, short and at the maximum, with every attribute some
    /// identity has and every field of the policy's form, so that a misspelt name fails at load.
    fn samples(&self, p: &PolicyConfig, form: &[FormField]) -> Vec<Facts> {
        let attributes: BTreeMap<String, String> = self
            .identities
            .users
            .iter()
            .flat_map(|u| u.attributes.keys())
            .map(|k| (k.clone(), String::new()))
            .collect();
        let form = cone_core::form::sample(form);
        [(false, 60, "grant"), (true, p.max_duration, "extend")]
            .into_iter()
            .map(|(emergency, secs, kind)| Facts {
                requester: Requester {
                    name: "sample".into(),
                    email: "sample@example.com".into(),
                    groups: vec!["sample".into()],
                    manager: emergency.then(|| "sample-manager".into()),
                    attributes: attributes.clone(),
                },
                entitlement: cone_core::condition::Entitlement {
                    app: self.aws.app_id.clone(),
                    account_id: "000000000000".into(),
                    account_name: p.matches.account.clone().unwrap_or_default(),
                    permission_set: p.matches.permission_set.clone().unwrap_or_default(),
                    group: p.matches.group.clone().unwrap_or_default(),
                },
                request: Request { form: form.clone(), ..Request::new(kind, secs, emergency, "sample") },
                // Any time does: samples check that conditions compile and give booleans.
                now: cone_core::condition::timestamp(chrono::DateTime::UNIX_EPOCH),
            })
            .collect()
    }

    /// A list of steps, or a list of branches (`{ when: CEL, steps: [...] }`) ending in `{ otherwise: [...] }`.
    fn branches(&self, value: &Value, samples: &[Facts]) -> Result<Branches> {
        let Some(items) = value.as_sequence().filter(|items| !items.is_empty()) else {
            bail!("give a list of steps (`accept`, `reject`, a wait or an approval), or of branches");
        };
        let is_branch = |v: &Value| ["when", "otherwise"].iter().any(|k| v.get(k).is_some());
        if !items.iter().any(is_branch) {
            return Ok(Branches(vec![Branch { when: None, steps: self.steps(value)? }]));
        }
        let mut branches = Vec::with_capacity(items.len());
        for (i, item) in items.iter().enumerate() {
            let n = i + 1;
            let last = n == items.len();
            let keys: Vec<&str> = item.as_mapping().into_iter().flatten().filter_map(|(k, _)| k.as_str()).collect();
            let branch = match (item.get("when"), item.get("otherwise")) {
                (Some(when), None) if keys.len() == 2 && item.get("steps").is_some() => {
                    let source = when.as_str().with_context(|| format!("branch {n}: `when` must be a string"))?;
                    let when = Condition::compile(source, samples).map_err(|e| anyhow!("branch {n}: {e}"))?;
                    let steps = self.steps(&item["steps"]).with_context(|| format!("branch {n} (when {source})"))?;
                    Branch { when: Some(when), steps }
                }
                (None, Some(steps)) if keys.len() == 1 && last => {
                    Branch { when: None, steps: self.steps(steps).context("otherwise")? }
                }
                (None, Some(_)) if keys.len() == 1 => bail!("branch {n}: `otherwise` must be the last branch"),
                _ => bail!("branch {n} must be `{{ when: CEL, steps: [...] }}` or a final `{{ otherwise: [...] }}`"),
            };
            branches.push(branch);
        }
        if branches.last().is_some_and(|b| b.when.is_some()) {
            bail!(
                "the branches need a final `otherwise: [...]` for requests no condition matches; use [reject] to deny them"
            );
        }
        Ok(Branches(branches))
    }

    fn steps(&self, value: &Value) -> Result<Vec<StepConfig>> {
        let Some(items) = value.as_sequence().filter(|items| !items.is_empty()) else {
            bail!("give a non-empty list of steps: `accept`, `reject`, `{{ wait: 1h }}` or `{{ approval: {{...}} }}`");
        };
        let steps = items
            .iter()
            .enumerate()
            .map(|(i, item)| self.step(item).with_context(|| format!("step {}", i + 1)))
            .collect::<Result<Vec<_>>>()?;
        // The manager and the requester are one person each, and one person's approval counts for one step.
        for (single, name) in [(From::Manager, "manager"), (From::Requester, "self")] {
            let n = steps.iter().filter(|s| matches!(s, StepConfig::Approval { from, .. } if *from == single)).count();
            if n > 1 {
                bail!("{n} steps ask approval from {name}, one person who can approve only one of them; keep one");
            }
        }
        Ok(steps)
    }

    fn step(&self, item: &Value) -> Result<StepConfig> {
        let unknown = "use `accept`, `reject`, `{ wait: 1h }` or `{ approval: { group | users | from, count } }`";
        if let Some(name) = item.as_str() {
            return match name {
                "accept" => Ok(StepConfig::Accept),
                "reject" => Ok(StepConfig::Reject),
                other => bail!("unknown step \"{other}\"; {unknown}"),
            };
        }
        if let Some(wait) = item.get("wait") {
            let text = wait.as_str().context("`wait` takes a duration such as 30m")?;
            let secs = cone_core::duration::parse(text).map_err(|e| anyhow!(e))?;
            if secs >= self.pending_timeout {
                bail!(
                    "wait {text} is not shorter than pending_timeout ({}), so requests would time out while waiting",
                    cone_core::duration::format(self.pending_timeout)
                );
            }
            return Ok(StepConfig::Wait(secs));
        }
        let Some(approval) = item.get("approval") else { bail!("unknown step; {unknown}") };
        let a: ApprovalConfig = serde_yaml_ng::from_value(approval.clone()).context("approval")?;
        let from = match (a.group, a.users, a.from.as_deref()) {
            (Some(group), None, None) => From::Group(group),
            (None, Some(users), None) if a.count as usize <= users.len() => From::Users(users),
            (None, Some(users), None) => bail!("approval asks {} of {} users", a.count, users.len()),
            (None, None, Some("owners")) if self.aws.owners.is_empty() => {
                bail!("approval from owners, but `aws.owners` lists nobody; add the app's owners there")
            }
            (None, None, Some("owners")) => From::Owners,
            (None, None, Some("manager")) => From::Manager,
            (None, None, Some("self")) if a.count == 1 => From::Requester,
            (None, None, Some("self")) => bail!("a `self` approval is one acknowledgment; drop `count`"),
            (None, None, Some(other)) => bail!("approval from \"{other}\"; `from` is owners, manager or self"),
            _ => bail!("an approval needs exactly one of `group`, `users` or `from`"),
        };
        if a.count == 0 {
            bail!("approval `count` must be at least 1");
        }
        Ok(StepConfig::Approval { from, count: a.count })
    }
}

/// A policy's form fields, each with only known keys, and together consistent.
fn form(values: &[Value]) -> Result<Vec<FormField>> {
    const KEYS: [&str; 9] =
        ["name", "type", "description", "required", "min_length", "max_length", "min", "max", "max_items"];
    let fields = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let name = v.get("name").and_then(Value::as_str).map_or(format!("{}", i + 1), |n| format!("\"{n}\""));
            let keys = v.as_mapping().into_iter().flatten().map(|(k, _)| k.as_str().unwrap_or_default());
            if let Some(key) = keys.into_iter().find(|k| !KEYS.contains(k)) {
                bail!("form field {name}: unknown key `{key}`; the keys are {}", KEYS.join(", "));
            }
            serde_yaml_ng::from_value(v.clone()).with_context(|| format!("form field {name}"))
        })
        .collect::<Result<Vec<FormField>>>()?;
    cone_core::form::check_definitions(&fields).map_err(|e| anyhow!(e))?;
    Ok(fields)
}

fn default_max_extensions() -> i64 {
    2
}
fn one() -> u32 {
    1
}
