//! `cone get`, `cone drop` and `cone has`: request, give back and check access to one entitlement.

use std::collections::BTreeMap;
use std::io::BufRead;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use cone_api::{CreateTask, Entitlement, FieldType, FormField, Task};
use cone_core::task::TaskState;
use serde::Serialize;
use serde_json::Value;

use crate::output::{self, Output, View};
use crate::select::{self, Selector};
use crate::settings::{self, Settings, client};
use crate::ui::Ui;
use cone::{cache, files};

pub struct GetArgs {
    pub selector: Selector,
    pub justification: Option<String>,
    pub duration: Option<String>,
    pub form_data: Option<String>,
    pub wait: bool,
    pub extend: bool,
    pub emergency: bool,
}

/// What `cone get` did, in full for `-o json`.
#[derive(Serialize)]
pub struct GetResult {
    /// `requested`, or `already_granted` when nothing was asked because access is held.
    pub outcome: &'static str,
    pub entitlement: Entitlement,
    pub task: Option<Task>,
}

pub async fn get(args: GetArgs, out: Output, interactive: bool) -> Result<bool> {
    let api = client()?;
    let e = select::resolve(&api, &args.selector, interactive).await?;
    if let Some(until) = e.granted_until.filter(|t| *t > Utc::now() && !args.extend) {
        let alias = e.alias.clone();
        let result = GetResult { outcome: "already_granted", entitlement: e, task: None };
        out.show(&result, || {
            View::Line(format!(
                "You already have access to {alias} until {}. To ask for more time, run `cone get {alias} --extend`.",
                output::time(until)
            ))
        })?;
        return Ok(true);
    }
    let duration_secs =
        args.duration.as_deref().map(cone_core::duration::parse).transpose().map_err(anyhow::Error::msg)?;
    let mut ui = Ui::new();
    let prompt = interactive && ui.has_terminal();
    let justification = match args.justification {
        Some(j) => j,
        None if prompt => ask(&mut ui, "Why do you need this access? (justification)")?,
        None => String::new(),
    };
    let form_data = form(&e, args.form_data, prompt, &mut ui, e.granted_until.is_some())?;
    let req = CreateTask {
        app_id: e.app_id.clone(),
        entitlement_id: e.id.clone(),
        justification,
        duration_secs,
        form_data,
        emergency: args.emergency,
    };
    let mut task = api.create_task(&req).await?;
    if args.wait {
        let mut shown = None;
        while task.state.is_open() {
            if shown != Some(task.state) {
                ui.progress(&format!("Task {} is {}", task.id, task.state.words()));
                shown = Some(task.state);
            }
            task = api.task(task.id, Some(task.state), Duration::from_secs(50)).await?;
        }
    }
    let granted = task.state == TaskState::Granted;
    let settled = !args.wait || granted;
    let result = GetResult { outcome: "requested", entitlement: e, task: Some(task) };
    out.show(&result, || result.task.as_ref().map(output::task_view).unwrap_or(View::Line(String::new())))?;
    Ok(settled)
}

fn ask(ui: &mut Ui, question: &str) -> Result<String> {
    ui.say(question);
    let line = std::io::stdin().lock().lines().next().context("no answer; pass the value as a flag instead")??;
    Ok(line.trim().to_string())
}

/// The request form: from `--form-data`, else asked for field by field when a person is there. Extensions of a
/// grant need no form; the grant had one. The server checks the values.
fn form(
    e: &Entitlement,
    json: Option<String>,
    prompt: bool,
    ui: &mut Ui,
    extending: bool,
) -> Result<BTreeMap<String, Value>> {
    if let Some(json) = json {
        return serde_json::from_str(&json).context(
            "--form-data must be a JSON object, like '{\"ticket\": \"OPS-42\", \"hosts\": 2, \"urgent\": true}'",
        );
    }
    if e.form.is_empty() || extending {
        return Ok(BTreeMap::new());
    }
    if !prompt {
        let fields: Vec<&str> = e.form.iter().map(|f| f.name.as_str()).collect();
        bail!(
            "This entitlement has a request form (fields: {}); pass it with --form-data '{{\"{}\": \"...\"}}'.",
            fields.join(", "),
            fields[0]
        );
    }
    let mut data = BTreeMap::new();
    for field in &e.form {
        if let Some(value) = ask_field(ui, field)? {
            data.insert(field.name.clone(), value);
        }
    }
    Ok(data)
}

/// Asks for one field until the answer has the field's type; `None` when an optional field is left empty.
fn ask_field(ui: &mut Ui, f: &FormField) -> Result<Option<Value>> {
    let hint = match f.kind {
        FieldType::String => "",
        FieldType::Bool => " [y/n]",
        FieldType::Integer => " (a whole number)",
        FieldType::StringList => " (comma-separated)",
    };
    let about = if f.description.is_empty() { String::new() } else { format!(" — {}", f.description) };
    let optional = if f.required { "" } else { " (optional, Enter to skip)" };
    let question = format!("{}{about}{hint}{optional}:", f.name);
    loop {
        let answer = ask(ui, &question)?;
        if answer.is_empty() && (!f.required || f.kind == FieldType::String) {
            // An empty required string is left to the server, which says it is required.
            return Ok(None);
        }
        let value = match f.kind {
            FieldType::String => Some(Value::from(answer.as_str())),
            FieldType::Bool => match answer.to_lowercase().as_str() {
                "y" | "yes" | "true" => Some(Value::Bool(true)),
                "n" | "no" | "false" => Some(Value::Bool(false)),
                _ => None,
            },
            FieldType::Integer => answer.parse::<i64>().ok().map(Value::from),
            FieldType::StringList => {
                Some(answer.split(',').map(str::trim).filter(|s| !s.is_empty()).map(Value::from).collect())
            }
        };
        match value {
            Some(v) => return Ok(Some(v)),
            None => ui.say(&format!("\"{answer}\" is not{hint}; try again.")),
        }
    }
}

#[derive(Serialize)]
pub struct DropOutput {
    pub entitlement: Entitlement,
    /// Tasks whose grant was released or whose request was cancelled.
    pub tasks: Vec<Task>,
    /// The role credentials cone had cached for it were removed, so nothing here uses the access again.
    pub removed_cached_credentials: bool,
}

pub async fn drop(selector: Selector, out: Output, interactive: bool) -> Result<()> {
    let api = client()?;
    let e = select::resolve(&api, &selector, interactive).await?;
    let tasks = api.drop_access(&e.app_id, &e.id).await?.tasks;
    // The access is given back already: a cache that cannot be cleaned is said, not an error.
    let removed_cached_credentials = forget_credentials(&e).unwrap_or_else(|err| {
        eprintln!("warning: could not remove the credentials cached for {}: {err:#}", e.alias);
        false
    });
    let result = DropOutput { entitlement: e, tasks, removed_cached_credentials };
    out.show(&result, || {
        if result.tasks.is_empty() {
            return View::Line(format!(
                "You have no access to {} and no open request for it; nothing to drop.",
                result.entitlement.alias
            ));
        }
        let lines: Vec<String> = result
            .tasks
            .iter()
            .map(|t| match t.state {
                TaskState::Cancelled => format!("Cancelled request {} for {}.", t.id, result.entitlement.alias),
                _ => format!(
                    "Released access to {} (task {}); AWS access is being removed.",
                    result.entitlement.alias, t.id
                ),
            })
            .collect();
        let mut text = lines.join("\n");
        if result.removed_cached_credentials {
            text.push_str("\nRemoved the role credentials cached for it.");
        }
        View::Line(text)
    })
}

/// Removes the role credentials `cone aws credentials` cached for the entitlement; false when there were none (or
/// AWS was never set up here).
fn forget_credentials(e: &Entitlement) -> Result<bool> {
    let settings = Settings::load(settings::profile())?;
    let Ok(aws) = settings.aws() else { return Ok(false) };
    files::remove(&cache::role_path(&aws.sso_start_url, &e.account_id, &e.role_name)?)
}

#[derive(Serialize)]
pub struct HasOutput {
    pub has: bool,
    pub alias: String,
    pub app_id: String,
    pub entitlement_id: String,
    pub granted_until: Option<DateTime<Utc>>,
    /// The Identity Center groups through which the caller holds it.
    pub held_through_groups: Vec<String>,
}

/// Whether the caller holds the entitlement now.
pub async fn has(selector: Selector, out: Output, interactive: bool) -> Result<bool> {
    let api = client()?;
    let e = select::resolve(&api, &selector, interactive).await?;
    let until = e.granted_until.filter(|t| *t > Utc::now());
    let result = HasOutput {
        has: e.held_at(Utc::now()),
        alias: e.alias,
        app_id: e.app_id,
        entitlement_id: e.id,
        granted_until: until,
        held_through_groups: e.held_through_groups,
    };
    out.show(&result, || {
        View::Line(match (until, result.held_through_groups.first()) {
            (_, Some(group)) => format!("You have {} through the Identity Center group \"{group}\".", result.alias),
            (Some(t), None) => format!("You have {} until {}.", result.alias, output::time(t)),
            (None, None) => format!("You do not have {}; request it with `cone get {}`.", result.alias, result.alias),
        })
    })?;
    Ok(result.has)
}
