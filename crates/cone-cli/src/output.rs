//! How results are shown: aligned tables for people (`table`, `wide` with ids), or the complete object as JSON for
//! scripts. Every command's result goes through [`Output::show`], so `-o json` never prints a partial object.

use anyhow::{Context, Result};
use cone_api::{Entitlement, Task, TaskEvent};
use cone_core::naming::{printable, printable_lines};
use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Table,
    Wide,
    Json,
}

#[derive(Debug, Clone, Copy)]
pub struct Output {
    pub format: Format,
}

/// What a result looks like to a person.
pub enum View {
    /// One object: `Key: value` lines; the `wide` flag marks rows only `-o wide` shows.
    Fields(Vec<(&'static str, String, bool)>),
    /// A list: headers and rows; the columns from `wide_from` on appear only with `-o wide`.
    Table { headers: Vec<&'static str>, rows: Vec<Vec<String>>, wide_from: usize },
    /// A sentence.
    Line(String),
}

impl Output {
    pub fn json(self) -> bool {
        self.format == Format::Json
    }

    pub fn show<T: Serialize>(self, value: &T, view: impl FnOnce() -> View) -> Result<()> {
        let text = match self.format {
            Format::Json => serde_json::to_string_pretty(value).context("cannot encode the result as JSON")?,
            Format::Table | Format::Wide => render(view(), self.format == Format::Wide),
        };
        if !text.is_empty() {
            println!("{text}");
        }
        Ok(())
    }
}

fn render(view: View, wide: bool) -> String {
    match view {
        View::Line(line) => printable_lines(&line),
        View::Fields(fields) => {
            let fields: Vec<_> = fields.into_iter().filter(|(_, _, w)| wide || !w).collect();
            let width = fields.iter().map(|(k, _, _)| k.len()).max().unwrap_or(0) + 1;
            let line = |(k, v, _): &(&str, String, bool)| format!("{:<width$} {}", format!("{k}:"), printable(v));
            fields.iter().map(line).collect::<Vec<_>>().join("\n")
        }
        View::Table { headers, rows, wide_from } => {
            let n = if wide { headers.len() } else { wide_from.min(headers.len()) };
            let mut widths: Vec<usize> = headers[..n].iter().map(|h| h.len()).collect();
            for row in &rows {
                for (w, cell) in widths.iter_mut().zip(row) {
                    *w = (*w).max(cell.chars().count());
                }
            }
            let line = |cells: Vec<&str>| {
                let padded: Vec<String> =
                    cells.iter().zip(&widths).map(|(c, w)| format!("{:<w$}", printable(c))).collect();
                padded.join("  ").trim_end().to_string()
            };
            let mut out = vec![line(headers[..n].to_vec())];
            out.extend(rows.iter().map(|r| line(r.iter().take(n).map(String::as_str).collect())));
            out.join("\n")
        }
    }
}

pub fn time(t: chrono::DateTime<chrono::Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S UTC").to_string()
}

pub fn task_view(t: &Task) -> View {
    let mut f = vec![
        ("Task", t.id.to_string(), false),
        ("Kind", format!("{}{}", t.kind.as_str(), if t.emergency { " (emergency)" } else { "" }), false),
        ("Entitlement", t.entitlement_name.clone(), false),
        ("Requester", t.requester.clone(), false),
        ("State", t.state.words(), false),
    ];
    let group = t.waiting_for_group.as_ref().map(|g| format!("a member of group \"{g}\""));
    if let Some(w) = t.waiting_for.clone().or(group) {
        f.push(("Waiting for", w, false));
    }
    for d in &t.decisions {
        let what = if d.approve { "approved" } else { "denied" };
        f.push(("Decision", format!("step {}: {what} by {}", d.step, d.by), false));
    }
    if let Some(d) = &t.decided_by {
        f.push(("Decided by", d.clone(), false));
    }
    if let Some(by) = &t.ended_by {
        f.push(("Ended by", by.clone(), false));
    }
    if let Some(r) = &t.reason {
        f.push(("Reason", r.clone(), false));
    }
    f.push(("Duration", cone_core::duration::format(t.duration_secs), false));
    if let Some(until) = t.grant_expires_at {
        f.push(("Grant ends", time(until), false));
    }
    f.push(("Justification", t.justification.clone(), false));
    f.push(("App", t.app_id.clone(), true));
    f.push(("Entitlement id", t.entitlement_id.clone(), true));
    f.push(("Created", time(t.created_at), true));
    if t.earlier_events > 0 {
        f.push(("Earlier events", format!("{} (cone task history {})", t.earlier_events, t.id), false));
    }
    for e in &t.events {
        let comment = e.comment.as_deref().map(|c| format!(": {c}")).unwrap_or_default();
        f.push(("Event", format!("{} {} by {}{comment}", time(e.at), e.action, e.actor), false));
    }
    View::Fields(f)
}

pub fn events_view(events: &[TaskEvent]) -> View {
    View::Table {
        headers: vec!["WHEN", "ACTOR", "ACTION", "COMMENT"],
        rows: events
            .iter()
            .map(|e| vec![time(e.at), e.actor.clone(), e.action.clone(), e.comment.clone().unwrap_or_default()])
            .collect(),
        wide_from: 4,
    }
}

pub fn tasks_view(tasks: &[Task]) -> View {
    View::Table {
        headers: vec!["ID", "STATE", "KIND", "ENTITLEMENT", "REQUESTER", "CREATED", "APP", "ENTITLEMENT ID"],
        rows: tasks
            .iter()
            .map(|t| {
                vec![
                    t.id.to_string(),
                    t.state.words(),
                    t.kind.as_str().to_string(),
                    t.entitlement_name.clone(),
                    t.requester.clone(),
                    time(t.created_at),
                    t.app_id.clone(),
                    t.entitlement_id.clone(),
                ]
            })
            .collect(),
        wide_from: 6,
    }
}

pub fn entitlements_view(list: &[Entitlement]) -> View {
    View::Table {
        headers: vec!["GRANTED", "ALIAS", "ROLE", "ACCOUNT", "MAX", "ACCOUNT ID", "APP", "ENTITLEMENT ID"],
        rows: list
            .iter()
            .map(|e| {
                vec![
                    match (e.held_through_groups.first(), e.granted_until) {
                        (Some(group), _) => format!("group {group}"),
                        (None, Some(t)) => format!("until {}", t.format("%H:%M UTC")),
                        (None, None) => String::new(),
                    },
                    e.alias.clone(),
                    e.display_name.clone(),
                    e.resource_name.clone(),
                    cone_core::duration::format(e.max_duration_secs),
                    e.account_id.clone(),
                    e.app_id.clone(),
                    e.id.clone(),
                ]
            })
            .collect(),
        wide_from: 5,
    }
}

fn token_fields(t: &cone_api::ApiToken) -> Vec<(&'static str, String, bool)> {
    vec![
        ("Token", t.id.to_string(), false),
        ("Name", t.name.clone(), false),
        ("Kind", t.kind.clone(), false),
        ("Acts as", t.owner.clone(), false),
        ("Expires", t.expires_at.map(time).unwrap_or_else(|| "never (until revoked)".into()), false),
        ("Created", format!("{} by {}", time(t.created_at), t.created_by), true),
    ]
}

pub fn new_token_view(n: &cone_api::NewToken) -> View {
    let mut f = vec![("Secret", n.secret.clone(), false)];
    f.extend(token_fields(&n.token));
    View::Fields(f)
}

/// The connector's state, then (for administrators) its processes in service mode, one line each.
pub fn connectors_view(all: &[cone_api::ConnectorStatus]) -> View {
    let Some(c) = all.first() else { return View::Line("The server reports no connector.".into()) };
    let mut lines = vec![format!(
        "{} connector ({}): {}; last sync {}{}.",
        c.app_id,
        if c.mode.is_empty() { "embedded" } else { c.mode.as_str() },
        c.state,
        c.last_success_at.map(time).unwrap_or_else(|| "never".into()),
        if c.provisioning { "" } else { "; sync only (provisioning off)" },
    )];
    lines.extend(c.last_error.iter().map(|e| format!("Last error: {e}")));
    lines.extend(
        c.hosts.iter().map(|h| {
            format!("Host {} (cone-aws {}), last heard from {}.", h.host_id, h.version, time(h.last_contact_at))
        }),
    );
    View::Line(lines.join("\n"))
}

pub fn tokens_view(tokens: &[cone_api::ApiToken]) -> View {
    if tokens.is_empty() {
        return View::Line("No API tokens; create one with `cone token create NAME`.".into());
    }
    let or = |t: Option<chrono::DateTime<chrono::Utc>>, none: &str| t.map(time).unwrap_or_else(|| none.into());
    View::Table {
        headers: vec!["ID", "NAME", "KIND", "ACTS AS", "EXPIRES", "LAST USED", "CREATED", "CREATED BY"],
        rows: tokens
            .iter()
            .map(|t| {
                vec![
                    t.id.to_string(),
                    t.name.clone(),
                    t.kind.clone(),
                    t.owner.clone(),
                    or(t.expires_at, "never"),
                    or(t.last_used_at, "never"),
                    time(t.created_at),
                    t.created_by.clone(),
                ]
            })
            .collect(),
        wide_from: 6,
    }
}

/// "Version 3, applied through the API by carol at …: why"; for `cone policy show`, on standard error.
pub fn config_version_line(v: &cone_api::ConfigVersion) -> String {
    let by = match &v.author {
        Some(author) => format!("through the API by {author}"),
        None => "from the server's configuration file".into(),
    };
    let why = if v.comment.is_empty() { String::new() } else { format!(": {}", v.comment) };
    format!("Version {}, applied {by} at {}{why}", v.version, time(v.created_at))
}

pub fn config_versions_view(versions: &[cone_api::ConfigVersion]) -> View {
    View::Table {
        headers: vec!["VERSION", "APPLIED", "BY", "COMMENT", "DIGEST"],
        rows: versions
            .iter()
            .map(|v| {
                let by = v.author.clone().unwrap_or_else(|| format!("({})", v.source));
                vec![v.version.to_string(), time(v.created_at), by, v.comment.clone(), v.digest.clone()]
            })
            .collect(),
        wide_from: 4,
    }
}

pub fn config_summary_view(s: &cone_api::ConfigSummary) -> View {
    let list = |names: &[String]| if names.is_empty() { "none".to_string() } else { names.join(", ") };
    View::Fields(vec![
        ("Policies", list(&s.policies), false),
        ("Access profiles", list(&s.access_profiles), false),
        ("Entitlement-management rules", s.entitlement_management_rules.to_string(), false),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_and_hide_wide_columns() {
        let view = || View::Table {
            headers: vec!["A", "BB", "WIDE"],
            rows: vec![vec!["xyz".into(), "1".into(), "w".into()]],
            wide_from: 2,
        };
        assert_eq!(render(view(), false), "A    BB\nxyz  1");
        assert_eq!(render(view(), true), "A    BB  WIDE\nxyz  1   w");
    }

    #[test]
    fn nothing_from_elsewhere_moves_the_cursor() {
        let evil = "ok\x1b[1A\x1b[2K approved by carol\rX";
        let line = render(View::Line(format!("Requested.\n{evil}")), false);
        assert_eq!(line, "Requested.\nok [1A [2K approved by carol X");
        let field = render(View::Fields(vec![("Justification", format!("{evil}\nsecond line"), false)]), false);
        assert!(!field.contains(['\x1b', '\r']) && field.lines().count() == 1, "{field:?}");
    }

    #[test]
    fn fields_align() {
        let view =
            View::Fields(vec![("Id", "1".into(), false), ("State", "granted".into(), false), ("X", "w".into(), true)]);
        assert_eq!(render(view, false), "Id:    1\nState: granted");
    }
}
