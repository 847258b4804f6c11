//! `cone review`: reviewers list, certify and revoke the access given to them; administrators create, follow and
//! close campaigns and download their reports.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, NaiveDate, Utc};
use clap::Subcommand;
use cone_api::{
    NewReviewCampaign, ReviewCampaign, ReviewDecide, ReviewDecision, ReviewItem, ReviewItemKind, ReviewScope,
    Reviewers, ReviewersFrom,
};
use cone_client::Client;

use crate::output::{self, Output, View};

#[derive(Subcommand)]
pub enum ReviewCommand {
    /// The items you review (undecided ones unless --state says otherwise); administrators may list --all.
    List {
        #[arg(long)]
        campaign: Option<i64>,
        /// Only items about this person.
        #[arg(long)]
        user: Option<String>,
        /// pending, certified, revoking, revoked, gone, or any.
        #[arg(long, default_value = "pending")]
        state: String,
        /// Words to find in the person, account, permission set or group.
        #[arg(long, short = 'q')]
        query: Option<String>,
        /// Order by entitlement rather than by person.
        #[arg(long)]
        by_entitlement: bool,
        /// Every item, not only yours to decide (administrators).
        #[arg(long)]
        all: bool,
    },
    /// Show one item: whose access, what it gives, who decided and how its removal went.
    Show { id: i64 },
    /// Say the access may stay.
    Certify {
        #[arg(required = true)]
        items: Vec<i64>,
        #[arg(long, short = 'c')]
        comment: Option<String>,
    },
    /// Say the access must go; it is removed from AWS at once. A comment is required.
    Revoke {
        #[arg(required = true)]
        items: Vec<i64>,
        #[arg(long, short = 'c')]
        comment: String,
    },
    /// Give an undecided item to another reviewer (administrators).
    Reassign {
        id: i64,
        #[arg(long)]
        to: String,
    },
    /// Campaigns (administrators).
    Campaign {
        #[command(subcommand)]
        command: CampaignCommand,
    },
}

#[derive(Subcommand)]
pub enum CampaignCommand {
    /// Snapshot the access in scope into a new campaign, each item given to its reviewers.
    Create {
        /// The campaign's name, such as "Production, Q4".
        name: Option<String>,
        /// A YAML file with the whole campaign (name, due, scope, reviewers) instead of the flags.
        #[arg(long, conflicts_with = "name")]
        file: Option<PathBuf>,
        /// Open it from this template of the access document's `access_reviews` (its scope, reviewers and due
        /// time) instead of the flags.
        #[arg(long, conflicts_with_all = ["name", "file"])]
        template: Option<String>,
        /// When decisions are due: a date (the end of that day, UTC), an RFC 3339 time, or a number of days
        /// such as 14d.
        #[arg(long, default_value = "14d")]
        due: String,
        /// Accounts (names or ids) in scope; repeat or separate with commas. All when absent.
        #[arg(long, value_delimiter = ',')]
        account: Vec<String>,
        #[arg(long, value_delimiter = ',')]
        permission_set: Vec<String>,
        /// Only memberships of these groups (Identity Center or IAM).
        #[arg(long, value_delimiter = ',')]
        group: Vec<String>,
        /// assignment, group_membership, grant, iam_user, iam_group_membership or access_key. All when absent.
        #[arg(long, value_delimiter = ',')]
        kind: Vec<String>,
        /// manager, owners, group:NAME, or users:NAME,NAME.
        #[arg(long, default_value = "manager")]
        reviewers: String,
        /// Who reviews an item nobody else may (the first who is not its person).
        #[arg(long, value_delimiter = ',')]
        fallback: Vec<String>,
    },
    List,
    /// A campaign with each reviewer's progress.
    Show {
        id: i64,
    },
    /// Close a campaign: its decisions become final.
    Close {
        id: i64,
    },
    /// Download the report (CSV, or JSON Lines with --format jsonl) to a file or standard output.
    Report {
        id: i64,
        #[arg(long, default_value = "csv", value_parser = ["csv", "jsonl"])]
        format: String,
        /// The file to write it to (0600); standard output when absent.
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

pub async fn run(api: Client, command: ReviewCommand, out: Output) -> Result<()> {
    match command {
        ReviewCommand::List { campaign, user, state, query, by_entitlement, all } => {
            let state = if state == "any" { String::new() } else { state };
            let campaign = campaign.map(|c| c.to_string()).unwrap_or_default();
            let filters = [
                ("campaign", campaign.as_str()),
                ("user", user.as_deref().unwrap_or_default()),
                ("state", state.as_str()),
                ("q", query.as_deref().unwrap_or_default()),
                ("by", if by_entitlement { "entitlement" } else { "" }),
                ("all", if all { "true" } else { "" }),
            ];
            let items = api.review_items(&filters).await?;
            out.show(&items, || items_view(&items))
        }
        ReviewCommand::Show { id } => {
            let item = api.review_item(id).await?;
            out.show(&item, || item_view(&item))
        }
        ReviewCommand::Certify { items, comment } => decide(&api, items, ReviewDecision::Certify, comment, out).await,
        ReviewCommand::Revoke { items, comment } => {
            decide(&api, items, ReviewDecision::Revoke, Some(comment), out).await
        }
        ReviewCommand::Reassign { id, to } => {
            let item = api.reassign_review(id, &to).await?;
            out.show(&item, || View::Line(format!("Item {id} is {to}'s to decide now.")))
        }
        ReviewCommand::Campaign { command } => campaign(&api, command, out).await,
    }
}

async fn decide(
    api: &Client,
    items: Vec<i64>,
    decision: ReviewDecision,
    comment: Option<String>,
    out: Output,
) -> Result<()> {
    let decided = api.decide_review(&ReviewDecide { items, decision, comment }).await?;
    out.show(&decided, || {
        let verb = if decision == ReviewDecision::Revoke { "Revoked (removal under way)" } else { "Certified" };
        let mut lines: Vec<String> = decided.decided.iter().map(|i| format!("{verb}: {}", summary(i))).collect();
        lines.extend(decided.refused.iter().map(|r| format!("Not decided: {}", r.message)));
        View::Line(lines.join("\n"))
    })?;
    if !decided.refused.is_empty() {
        bail!("{} of the items were not decided; see above", decided.refused.len());
    }
    Ok(())
}

async fn campaign(api: &Client, command: CampaignCommand, out: Output) -> Result<()> {
    match command {
        CampaignCommand::Create { template: Some(template), .. } => {
            let c = api.create_review_campaign_from(&template).await?;
            out.show(&c, || campaign_view(&c))
        }
        CampaignCommand::Create {
            name, file, due, account, permission_set, group, kind, reviewers, fallback, ..
        } => {
            let req = match (file, name) {
                (Some(file), _) => {
                    let text = std::fs::read_to_string(&file)
                        .with_context(|| format!("cannot read the campaign file {}", file.display()))?;
                    serde_yaml_ng::from_str::<NewReviewCampaign>(&text).with_context(|| {
                        format!("{} is not a campaign (name, due, scope, reviewers)", file.display())
                    })?
                }
                (None, Some(name)) => NewReviewCampaign {
                    name,
                    due: due_time(&due, Utc::now())?,
                    scope: ReviewScope {
                        accounts: account,
                        permission_sets: permission_set,
                        groups: group,
                        kinds: kind.iter().map(|k| parse_kind(k)).collect::<Result<_>>()?,
                    },
                    reviewers: parse_reviewers(&reviewers, fallback)?,
                },
                (None, None) => bail!("give the campaign a name, a --file that describes it, or a --template"),
            };
            let c = api.create_review_campaign(&req).await?;
            out.show(&c, || campaign_view(&c))
        }
        CampaignCommand::List => {
            let all = api.review_campaigns().await?;
            out.show(&all, || View::Table {
                headers: vec!["ID", "NAME", "STATE", "DUE", "ITEMS", "LEFT", "REMOVING"],
                rows: all
                    .iter()
                    .map(|c| {
                        vec![
                            c.id.to_string(),
                            c.name.clone(),
                            state(c),
                            output::time(c.due),
                            c.items.to_string(),
                            c.pending.to_string(),
                            c.revoking.to_string(),
                        ]
                    })
                    .collect(),
                wide_from: 7,
            })
        }
        CampaignCommand::Show { id } => {
            let c = api.review_campaign(id).await?;
            out.show(&c, || campaign_view(&c))
        }
        CampaignCommand::Close { id } => {
            let c = api.close_review_campaign(id).await?;
            out.show(&c, || campaign_view(&c))
        }
        CampaignCommand::Report { id, format, file } => {
            let report = api.review_report(id, &format).await?;
            match file {
                Some(path) => {
                    cone::files::write_private(&path, report.as_bytes())
                        .with_context(|| format!("cannot write the report to {}", path.display()))?;
                    eprintln!("Wrote the report of campaign {id} to {}.", path.display());
                }
                None => print!("{report}"),
            }
            Ok(())
        }
    }
}

/// `2026-12-31` (the end of that day, UTC), an RFC 3339 time, or `14d` from `now`.
fn due_time(text: &str, now: DateTime<Utc>) -> Result<DateTime<Utc>> {
    if let Some(days) = text.strip_suffix('d').and_then(|d| d.parse::<i64>().ok()).filter(|d| (1..=3650).contains(d)) {
        return Ok(now + chrono::Duration::days(days));
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Some(end) = NaiveDate::parse_from_str(text, "%Y-%m-%d").ok().and_then(|d| d.and_hms_opt(23, 59, 59)) {
        return Ok(end.and_utc());
    }
    bail!("--due {text:?} is not a date (2026-12-31), an RFC 3339 time, or a number of days such as 14d")
}

fn parse_kind(k: &str) -> Result<ReviewItemKind> {
    ReviewItemKind::parse(k).with_context(|| {
        let kinds: Vec<&str> = ReviewItemKind::ALL.iter().map(|k| k.as_str()).collect();
        format!("--kind {k:?} is none of {}", kinds.join(", "))
    })
}

fn parse_reviewers(text: &str, fallback: Vec<String>) -> Result<Reviewers> {
    let (from, group, users) = match text.split_once(':') {
        None if text == "manager" => (ReviewersFrom::Manager, None, Vec::new()),
        None if text == "owners" => (ReviewersFrom::Owners, None, Vec::new()),
        Some(("group", g)) if !g.is_empty() => (ReviewersFrom::Group, Some(g.to_string()), Vec::new()),
        Some(("users", u)) if !u.is_empty() => (ReviewersFrom::Users, None, u.split(',').map(str::to_string).collect()),
        _ => bail!("--reviewers {text:?} is not manager, owners, group:NAME or users:NAME,NAME"),
    };
    Ok(Reviewers { from, group, users, fallback })
}

fn state(c: &ReviewCampaign) -> String {
    if c.overdue { "overdue".into() } else { c.state.clone() }
}

fn campaign_view(c: &ReviewCampaign) -> View {
    let mut fields = vec![
        ("Campaign", format!("{} ({})", c.name, c.id), false),
        ("State", state(c), false),
        ("Due", output::time(c.due), false),
        ("Items", format!("{} ({} undecided, {} removals under way)", c.items, c.pending, c.revoking), false),
        ("Created", format!("{} by {}", output::time(c.created_at), c.created_by), false),
    ];
    if let Some(t) = &c.template {
        fields.push(("Template", t.clone(), false));
    }
    if let Some(closed) = c.closed_at {
        fields.push(("Closed", output::time(closed), false));
    }
    for p in &c.progress {
        fields.push(("Reviewer", format!("{}: {} of {} left", p.reviewer, p.left, p.items), false));
    }
    View::Fields(fields)
}

/// "alice: AdministratorAccess on Production (grant, task 12)".
fn summary(i: &ReviewItem) -> String {
    let how = match (i.kind, i.task_id) {
        (ReviewItemKind::Grant, Some(task)) => format!("Cone grant, task {task}"),
        (kind, _) => kind_words(kind).to_string(),
    };
    format!("item {}, {}: {} ({how})", i.id, holder(i), i.reaches)
}

fn kind_words(kind: ReviewItemKind) -> &'static str {
    match kind {
        ReviewItemKind::Assignment => "assigned directly",
        ReviewItemKind::GroupMembership => "group membership",
        ReviewItemKind::Grant => "Cone grant",
        ReviewItemKind::IamUser => "IAM user",
        ReviewItemKind::IamGroupMembership => "IAM group membership",
        ReviewItemKind::AccessKey => "access key",
    }
}

/// Whose access: the person, or for an IAM user nobody in Cone is known to hold, that user.
fn holder(i: &ReviewItem) -> String {
    match i.user.is_empty() {
        true => format!("(IAM user {})", i.iam_user),
        false => i.user.clone(),
    }
}

fn last_used(i: &ReviewItem) -> String {
    match (i.kind, i.last_used_at) {
        (_, Some(t)) => output::time(t),
        (ReviewItemKind::IamUser | ReviewItemKind::AccessKey, None) => "never".into(),
        _ => "-".into(),
    }
}

fn items_view(items: &[ReviewItem]) -> View {
    if items.is_empty() {
        return View::Line("Nothing to review.".into());
    }
    View::Table {
        headers: vec!["ID", "USER", "ACCESS", "HOW", "STATE", "LAST USED", "CAMPAIGN", "REVIEWERS"],
        rows: items
            .iter()
            .map(|i| {
                vec![
                    i.id.to_string(),
                    holder(i),
                    i.reaches.clone(),
                    kind_words(i.kind).to_string(),
                    i.state.as_str().to_string(),
                    last_used(i),
                    i.campaign.clone(),
                    i.reviewers.join(" "),
                ]
            })
            .collect(),
        wide_from: 6,
    }
}

fn item_view(i: &ReviewItem) -> View {
    let mut fields = vec![
        ("Item", i.id.to_string(), false),
        ("Campaign", format!("{} ({})", i.campaign, i.campaign_id), false),
        ("User", if i.user.is_empty() { holder(i) } else { format!("{} ({})", i.user, i.display_name) }, false),
        ("Access", i.reaches.clone(), false),
        ("How", kind_words(i.kind).to_string(), false),
        ("Last used", last_used(i), false),
        ("State", i.state.as_str().to_string(), false),
        ("Reviewers", i.reviewers.join(", "), false),
    ];
    if let Some(task) = i.task_id {
        fields.push(("Task", task.to_string(), false));
    }
    if let (Some(by), Some(at)) = (&i.decided_by, i.decided_at) {
        fields.push(("Decided", format!("{} by {by}", output::time(at)), false));
    }
    if let Some(c) = &i.comment {
        fields.push(("Comment", c.clone(), false));
    }
    if let Some(r) = &i.removal {
        let error = r.last_error.as_deref().map(|e| format!("; last error: {e}")).unwrap_or_default();
        fields.push(("Removal", format!("{} after {} attempt(s){error}", r.state, r.attempts), false));
        if let Some(id) = &r.request_id {
            fields.push(("AWS request", id.clone(), true));
        }
        if let Some(what) = &r.by_hand {
            fields.push(("By hand", what.clone(), false));
        }
    }
    if let Some(gone) = i.gone_at {
        fields.push(("Gone", format!("{} (removed outside this review)", output::time(gone)), false));
    }
    View::Fields(fields)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn due_times_are_dates_times_or_days() {
        let now = DateTime::parse_from_rfc3339("2026-12-06T10:00:00Z").unwrap().with_timezone(&Utc);
        assert_eq!(due_time("14d", now).unwrap().to_rfc3339(), "2026-12-20T10:00:00+00:00");
        assert_eq!(due_time("2026-12-31", now).unwrap().to_rfc3339(), "2026-12-31T23:59:59+00:00");
        assert_eq!(due_time("2027-01-02T09:00:00+01:00", now).unwrap().to_rfc3339(), "2027-01-02T08:00:00+00:00");
        assert!(due_time("soon", now).unwrap_err().to_string().contains("14d"));
        assert!(due_time("0d", now).is_err());
    }

    #[test]
    fn reviewers_are_a_rule_with_its_names() {
        let r = parse_reviewers("group:auditors", vec!["dave".into()]).unwrap();
        assert_eq!((r.from, r.group.as_deref(), r.fallback.len()), (ReviewersFrom::Group, Some("auditors"), 1));
        let r = parse_reviewers("users:carol,erin", Vec::new()).unwrap();
        assert_eq!(r.users, ["carol", "erin"]);
        assert!(parse_reviewers("boss", Vec::new()).is_err());
        assert!(parse_reviewers("group:", Vec::new()).is_err());
    }
}
