//! User access reviews: administrators create campaigns over the access in force and close them; reviewers certify
//! or revoke the items given to them; the report is the evidence. Who reviews what, and which access a scope covers,
//! is `cone_core::review`'s; revocations are removed by the job workers.

use std::collections::HashMap;

use cone_api::{
    NewReviewCampaign, ReviewCampaign, ReviewCampaignList, ReviewDecide, ReviewDecided, ReviewDecision, ReviewItem,
    ReviewItemPage, ReviewRefused, ReviewRemoval, ReviewScope, ReviewTemplateList, ReviewerProgress, Reviewers,
    ReviewersFrom,
};
use cone_core::review::{ItemEvent, ItemKind, ItemState, Reach, Scope, iam_user_name, reviewers_for};

use super::auth::{Caller, is_admin, require_admin};
use super::{Page, time};
use crate::config::ReviewTemplate;
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{AccessRow, CampaignRow, ItemFilter, ItemRow, NewCampaign, NewItem, Refusal};

/// Items one campaign may hold: a whole organisation's access, with room to spare.
const MAX_ITEMS: usize = 200_000;
/// Entries in each of a scope's lists, and people named as reviewers.
const MAX_NAMES: usize = 500;
/// People who may decide one item: each is a row per item.
const MAX_REVIEWERS: usize = 100;
/// Items by reviewer in one campaign.
const MAX_ROWS: usize = 2_000_000;
/// Items one decision may cover.
pub const MAX_DECIDE: usize = 1000;
/// Characters in a comment or a campaign's name.
const MAX_COMMENT: usize = 2000;
const MAX_NAME: usize = 200;

/// Which items a reviewer or an administrator lists.
#[derive(Debug, Clone, Default)]
pub struct ItemQuery {
    pub campaign: Option<i64>,
    pub user: Option<String>,
    pub state: Option<ItemState>,
    /// Words to find in the person's name, the account, the permission set or the group.
    pub q: Option<String>,
    pub by_entitlement: bool,
    /// Every item rather than the caller's to decide (administrators only).
    pub all: bool,
}

pub async fn create(s: &AppState, caller: &Caller, req: NewReviewCampaign) -> Result<ReviewCampaign> {
    require_admin(s, &caller.user).await?;
    open_by_hand(s, caller, &req, None).await
}

/// Opens a campaign for an administrator, from `template` if any.
async fn open_by_hand(
    s: &AppState,
    caller: &Caller,
    req: &NewReviewCampaign,
    template: Option<&str>,
) -> Result<ReviewCampaign> {
    let id = open(s, req, caller.user.id, template.map(|t| (t, None))).await?;
    campaign(s, caller, id.ok_or_else(|| anyhow::anyhow!("a campaign opened by hand is always opened"))?).await
}

/// Opens a campaign from access review template `name` now (`access_reviews` in the access document).
pub async fn create_from_template(s: &AppState, caller: &Caller, name: &str) -> Result<ReviewCampaign> {
    require_admin(s, &caller.user).await?;
    let access = s.access();
    let t = access.reviews.iter().find(|t| t.name == name).ok_or_else(|| {
        let names: Vec<&str> = access.reviews.iter().map(|t| t.name.as_str()).collect();
        Error::NotFound(format!(
            "There is no access review template \"{name}\"; the access document's access_reviews has {}.",
            if names.is_empty() { "none".to_string() } else { names.join(", ") }
        ))
    })?;
    open_by_hand(s, caller, &from_template(s, t), Some(&t.name)).await
}

/// Opens the campaigns the templates' schedules make due: one `every` after the last from each template (the first
/// at once). Run after each sync, so that a campaign's snapshot is the newest; a template that cannot open (its
/// scope covers nothing, say) is logged and tried again after the next. Returns the campaigns opened.
pub async fn open_scheduled(s: &AppState) -> Result<Vec<i64>> {
    let access = s.access();
    let mut opened = Vec::new();
    for t in access.reviews.iter().filter(|t| t.every > 0) {
        let now = s.now();
        if s.db.template_opened(&t.name).await?.is_some_and(|at| at > now - t.every) {
            continue;
        }
        let by = s.db.schedule_account().await?;
        // Checked again under the writers' lock: another replica may have opened it meanwhile.
        match open(s, &from_template(s, t), by, Some((&t.name, Some(now - t.every)))).await {
            Ok(Some(id)) => opened.push(id),
            Ok(None) => {}
            Err(e) => tracing::warn!(
                template = t.name,
                "the scheduled access review could not open; it is tried again after the next sync: {e}"
            ),
        }
    }
    Ok(opened)
}

/// The access document's review templates, with when each last opened a campaign and opens the next.
pub async fn templates(s: &AppState, caller: &Caller) -> Result<ReviewTemplateList> {
    require_admin(s, &caller.user).await?;
    let mut templates = Vec::new();
    for t in &s.access().reviews {
        let last = s.db.template_opened(&t.name).await?;
        let every = (t.every > 0).then_some(t.every);
        templates.push(cone_api::ReviewTemplate {
            name: t.name.clone(),
            scope: t.scope.clone(),
            reviewers: t.reviewers.clone(),
            due_in_secs: t.due_in,
            every_secs: every,
            last_opened_at: last.map(time),
            next_at: every.map(|every| time(last.map_or(s.now(), |at| at + every))),
        });
    }
    Ok(ReviewTemplateList { templates })
}

/// A campaign as template `t` opens it now: named after it and the day.
fn from_template(s: &AppState, t: &ReviewTemplate) -> NewReviewCampaign {
    let now = s.now();
    NewReviewCampaign {
        name: format!("{} {}", t.name, time(now).format("%Y-%m-%d")),
        due: time(now + t.due_in),
        scope: t.scope.clone(),
        reviewers: t.reviewers.clone(),
    }
}

/// Snapshots the access `req` covers into a new campaign created by user `creator`, from `template` if any (see
/// `NewCampaign::template`); `None` when a scheduled opening found its campaign opened already.
async fn open(
    s: &AppState,
    req: &NewReviewCampaign,
    creator: i64,
    template: Option<(&str, Option<i64>)>,
) -> Result<Option<i64>> {
    let name = req.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME || name.chars().any(char::is_control) {
        return Err(Error::invalid(format!("Give the campaign a name of 1 to {MAX_NAME} characters on one line.")));
    }
    if req.due.timestamp() <= s.now() {
        return Err(Error::invalid("The due time has passed; give one in the future."));
    }
    let r = &req.reviewers;
    let lists = [&req.scope.accounts, &req.scope.permission_sets, &req.scope.groups, &r.users, &r.fallback];
    if lists.iter().any(|l| l.len() > MAX_NAMES) {
        return Err(Error::invalid(format!("Name at most {MAX_NAMES} entries in each list.")));
    }
    if r.users.len() > MAX_REVIEWERS {
        return Err(Error::invalid(format!("Name at most {MAX_REVIEWERS} reviewers.")));
    }
    let people = s.db.user_ids_by_name().await?;
    for who in r.users.iter().chain(&r.fallback) {
        if !people.contains_key(who) {
            return Err(Error::invalid(format!("There is no active Cone user \"{who}\" to review; check the name.")));
        }
    }
    let group_members = match (r.from, r.group.as_deref()) {
        (ReviewersFrom::Group, Some(g)) => {
            let members = s.db.group_member_names(g).await?;
            if members.is_empty() {
                return Err(Error::invalid(format!(
                    "The group \"{g}\" has no members Cone knows; check its name, or sync first (Sync now, on the \
                     console's Connectors page)."
                )));
            }
            if members.len() > MAX_REVIEWERS {
                return Err(Error::invalid(format!(
                    "The group \"{g}\" has over {MAX_REVIEWERS} members; name a smaller group of reviewers."
                )));
            }
            members
        }
        (ReviewersFrom::Group, None) => return Err(Error::invalid("Reviewers from a group: name the group.")),
        (ReviewersFrom::Users, _) if r.users.is_empty() => {
            return Err(Error::invalid("Reviewers from users: name at least one."));
        }
        _ => Vec::new(),
    };
    let candidates = |subject: &str| -> Vec<String> {
        match r.from {
            ReviewersFrom::Manager => {
                let identity = s.config.identities.users.iter().find(|u| u.name == subject);
                identity.and_then(|i| i.manager.clone()).into_iter().collect()
            }
            ReviewersFrom::Owners => s.config.aws.owners.clone(),
            ReviewersFrom::Group => group_members.clone(),
            ReviewersFrom::Users => r.users.clone(),
        }
    };
    let scope = scope(&req.scope);
    let (access, reaches) = s.db.access_in_force(s.now()).await?;
    let mut by_group: HashMap<&str, Vec<Reach>> = HashMap::new();
    for g in &reaches {
        by_group.entry(&g.group_id).or_default().push(Reach {
            account_id: g.account_id.clone(),
            account: g.account_name.clone(),
            permission_set: g.permission_set_name.clone(),
        });
    }
    let (mut items, mut rows) = (Vec::new(), 0);
    for a in access {
        let reach = match (a.group_id.is_empty(), by_group.get(a.group_id.as_str())) {
            (true, _) => vec![own_reach(&a)],
            (false, Some(group)) if a.account_id.is_empty() => group.clone(),
            // An IAM group's grant or membership reaches its account.
            (false, _) if !a.account_id.is_empty() => vec![own_reach(&a)],
            (false, _) => Vec::new(),
        };
        let group = (!a.group_name.is_empty()).then_some(a.group_name.as_str());
        if !scope.includes(a.kind, group, &reach) {
            continue;
        }
        // People the rule names but Cone does not know (a manager who left, say) cannot decide: the fallback does, as
        // for an IAM user that is nobody's.
        let known: Vec<String> = candidates(&a.username).into_iter().filter(|c| people.contains_key(c)).collect();
        let subject = match a.username.is_empty() {
            true => format!("IAM user {}", iam_user_name(&a.iam_user_arn)),
            false => a.username.clone(),
        };
        let reviewers = reviewers_for(&subject, &known, &r.fallback).map_err(Error::invalid)?;
        let reviewers: Vec<i64> = reviewers.iter().filter_map(|name| people.get(name).copied()).collect();
        rows += reviewers.len();
        items.push(NewItem { reaches: words(&a, &reach), access: a, reviewers });
        if items.len() > MAX_ITEMS || rows > MAX_ROWS {
            return Err(Error::invalid(format!(
                "The scope covers over {MAX_ITEMS} items, or over {MAX_ROWS} items by reviewer; narrow it, or name \
                 fewer reviewers."
            )));
        }
    }
    if items.is_empty() {
        return Err(Error::invalid(
            "The scope covers no access the last sync found; check the names, or sync first (Sync now, on the \
             console's Connectors page).",
        ));
    }
    let new = NewCampaign {
        name,
        scope: &serde_json::to_string(&req.scope).map_err(anyhow::Error::from)?,
        reviewers: &serde_json::to_string(&req.reviewers).map_err(anyhow::Error::from)?,
        due_at: req.due.timestamp(),
        created_by: creator,
        template,
    };
    Ok(s.db.create_campaign(&new, items, s.now()).await?)
}

fn scope(s: &ReviewScope) -> Scope {
    Scope {
        accounts: s.accounts.clone(),
        permission_sets: s.permission_sets.clone(),
        groups: s.groups.clone(),
        kinds: s.kinds.clone(),
    }
}

fn own_reach(a: &AccessRow) -> Reach {
    Reach {
        account_id: a.account_id.clone(),
        account: a.account_name.clone(),
        permission_set: a.permission_set_name.clone(),
    }
}

/// What the access gives, in words: "AdministratorAccess on Production", a group's assignments, an IAM item.
fn words(a: &AccessRow, reach: &[Reach]) -> String {
    let (user, account) = (iam_user_name(&a.iam_user_arn), &a.account_name);
    match a.kind {
        ItemKind::IamUser => return format!("IAM user {user} in {account}"),
        ItemKind::IamGroupMembership => return format!("IAM group {} in {account}, as IAM user {user}", a.group_name),
        ItemKind::AccessKey => return format!("access key {} of IAM user {user} in {account}", a.access_key_id),
        _ => {}
    }
    let said: Vec<String> = reach
        .iter()
        .map(|r| match r.permission_set.is_empty() {
            true => format!("IAM group {} in {}", a.group_name, r.account),
            false => format!("{} on {}", r.permission_set, r.account),
        })
        .collect();
    // An Identity Center group belongs to no account: its membership gives what the group is assigned.
    match (a.group_id.is_empty() || !a.account_id.is_empty(), said.is_empty()) {
        (true, _) => said.join("; "),
        (false, true) => format!("membership of {} (assigned nothing)", a.group_name),
        (false, false) => format!("membership of {}: {}", a.group_name, said.join("; ")),
    }
}

pub async fn campaigns(s: &AppState, caller: &Caller, page: Page) -> Result<ReviewCampaignList> {
    require_admin(s, &caller.user).await?;
    let rows = s.db.campaigns(page.offset, page.limit()).await?;
    let (rows, next_page_token) = page.cut(rows);
    let campaigns = rows.into_iter().map(|c| campaign_view(s, c, Vec::new())).collect::<Result<_>>()?;
    Ok(ReviewCampaignList { campaigns, next_page_token })
}

pub async fn campaign(s: &AppState, caller: &Caller, id: i64) -> Result<ReviewCampaign> {
    require_admin(s, &caller.user).await?;
    let row = found_campaign(s, id).await?;
    let progress = s.db.campaign_progress(id).await?;
    campaign_view(s, row, progress)
}

async fn found_campaign(s: &AppState, id: i64) -> Result<CampaignRow> {
    s.db.campaign(id).await?.ok_or_else(|| {
        Error::NotFound(format!("There is no review campaign {id}; `cone review campaign list` lists them."))
    })
}

fn campaign_view(s: &AppState, c: CampaignRow, progress: Vec<(String, i64, i64)>) -> Result<ReviewCampaign> {
    let scope: ReviewScope = serde_json::from_str(&c.scope).map_err(anyhow::Error::from)?;
    let reviewers: Reviewers = serde_json::from_str(&c.reviewers).map_err(anyhow::Error::from)?;
    Ok(ReviewCampaign {
        id: c.id,
        overdue: c.state == "open" && c.pending > 0 && c.due_at < s.now(),
        name: c.name,
        state: c.state,
        due: time(c.due_at),
        scope,
        reviewers,
        created_by: c.created_by,
        created_at: time(c.created_at),
        closed_at: c.closed_at.map(time),
        template: c.template,
        items: c.items,
        pending: c.pending,
        revoking: c.revoking,
        progress: progress
            .into_iter()
            .map(|(reviewer, left, items)| ReviewerProgress { reviewer, left, items })
            .collect(),
    })
}

/// Closes a campaign: its decisions become final, and its report is the record of them.
pub async fn close(s: &AppState, caller: &Caller, id: i64) -> Result<ReviewCampaign> {
    require_admin(s, &caller.user).await?;
    found_campaign(s, id).await?;
    if !s.db.close_campaign(id, caller.user.id, s.now()).await? {
        return Err(Error::WrongState(format!("Review campaign {id} is closed already.")));
    }
    campaign(s, caller, id).await
}

/// The items the caller may decide (or, for an administrator asking for `all`, every item), by person or by
/// entitlement.
pub async fn items(s: &AppState, caller: &Caller, q: &ItemQuery, page: Page) -> Result<ReviewItemPage> {
    if q.all {
        require_admin(s, &caller.user).await?;
    }
    let filter = ItemFilter {
        campaign: q.campaign,
        reviewer: (!q.all).then_some(caller.user.id),
        user: q.user.clone(),
        state: q.state,
        words: q.q.as_deref().unwrap_or("").split_whitespace().take(8).map(str::to_string).collect(),
        by_entitlement: q.by_entitlement,
    };
    let rows = s.db.review_items(&filter, page.offset, page.limit()).await?;
    let (rows, next_page_token) = page.cut(rows);
    Ok(ReviewItemPage { items: rows.into_iter().map(view).collect::<Result<_>>()?, next_page_token })
}

/// One item, for its reviewers, its person and administrators.
pub async fn item(s: &AppState, caller: &Caller, id: i64) -> Result<ReviewItem> {
    let view = found_item(s, id).await?;
    let me = &caller.user.username;
    if view.user != *me && !view.reviewers.contains(me) && !is_admin(s, &caller.user).await? {
        return Err(Error::Forbidden(format!("You are not a reviewer of item {id}.")));
    }
    Ok(view)
}

async fn found_item(s: &AppState, id: i64) -> Result<ReviewItem> {
    view(s.db.review_item(id).await?.ok_or_else(|| Error::NotFound(format!("There is no review item {id}.")))?)
}

fn view(r: ItemRow) -> Result<ReviewItem> {
    let reviewers = r.reviewers.as_deref().unwrap_or_default().lines().map(str::to_string).collect();
    let revoked = r.state == ItemState::Revoked.as_str();
    let removal = match (r.by_hand, r.job_state) {
        // The job only handed it over: the removal is whoever's it is now, until a sync finds it done.
        (Some(what), _) => Some(ReviewRemoval {
            state: if revoked { "done" } else { "by_hand" }.to_string(),
            attempts: 0,
            last_error: None,
            request_id: None,
            by_hand: Some(what),
        }),
        (None, state) => state.map(|state| ReviewRemoval {
            state,
            attempts: r.job_attempts.unwrap_or(0),
            last_error: r.job_error,
            request_id: r.request_id,
            by_hand: None,
        }),
    };
    Ok(ReviewItem {
        id: r.id,
        campaign_id: r.campaign_id,
        campaign: r.campaign_name,
        kind: ItemKind::try_from(r.kind).map_err(anyhow::Error::msg)?,
        user: r.username,
        display_name: r.display_name,
        iam_user: iam_user_name(&r.iam_user_arn).to_string(),
        access_key_id: r.access_key_id,
        last_used_at: r.last_used_at.map(time),
        account_id: r.account_id,
        account: r.account_name,
        permission_set: r.permission_set_name,
        group: r.group_name,
        reaches: r.reaches,
        task_id: r.task_id,
        state: ItemState::try_from(r.state).map_err(anyhow::Error::msg)?,
        reviewers,
        decided_by: r.decided_by,
        decided_at: r.decided_at.map(time),
        comment: r.comment,
        removal,
        gone_at: r.gone_at.map(time),
        decision_audit_hash: r.decision_hash,
        removal_audit_hash: r.removal_hash,
    })
}

/// Certifies or revokes items the caller may decide; each is decided on its own, and those that cannot be are
/// named with the reason. A revocation starts its removal at once.
pub async fn decide(s: &AppState, caller: &Caller, req: &ReviewDecide) -> Result<ReviewDecided> {
    if req.items.is_empty() || req.items.len() > MAX_DECIDE {
        return Err(Error::invalid(format!("Name 1 to {MAX_DECIDE} items to decide.")));
    }
    let comment = req.comment.as_deref().map(str::trim).filter(|c| !c.is_empty());
    if comment.is_some_and(|c| c.chars().count() > MAX_COMMENT) {
        return Err(Error::invalid(format!("A comment has at most {MAX_COMMENT} characters.")));
    }
    let event = match req.decision {
        ReviewDecision::Certify => ItemEvent::Certify,
        ReviewDecision::Revoke if comment.is_none() => {
            return Err(Error::invalid(
                "A revocation needs a comment saying why the access goes; add one and revoke again.",
            ));
        }
        ReviewDecision::Revoke => ItemEvent::Revoke,
    };
    let (mut decided, mut refused) = (Vec::new(), Vec::new());
    for &id in &req.items {
        match s.db.decide_item(id, caller.user.id, event, comment, s.now()).await? {
            Ok(_) => decided.push(found_item(s, id).await?),
            Err(why) => refused.push(ReviewRefused { item: id, message: refusal(id, &why) }),
        }
    }
    if event == ItemEvent::Revoke && !decided.is_empty() {
        s.wake.notify_one();
    }
    Ok(ReviewDecided { decided, refused })
}

fn refusal(id: i64, why: &Refusal) -> String {
    match why {
        Refusal::NoSuchItem => format!("There is no review item {id}."),
        Refusal::Closed => format!("Item {id}'s campaign is closed; its decisions are final."),
        Refusal::NotReviewer => {
            format!("You are not a reviewer of item {id}; an administrator can reassign it to you.")
        }
        Refusal::OwnAccess => format!("Item {id} is your own access, which someone else must review."),
        Refusal::State(ItemState::Revoking | ItemState::Revoked) => {
            format!("Item {id} was revoked already; a revocation is final.")
        }
        Refusal::State(ItemState::Gone) => format!("Item {id}'s access is gone from AWS already; nothing to decide."),
        Refusal::State(ItemState::Certified) => format!("Item {id} is certified already."),
        Refusal::State(ItemState::Pending) => format!("Item {id} cannot take that decision."),
    }
}

/// Gives an undecided item to `reviewer` alone. Administrators only.
pub async fn reassign(s: &AppState, caller: &Caller, id: i64, reviewer: &str) -> Result<ReviewItem> {
    require_admin(s, &caller.user).await?;
    let to = s.db.user_ids_by_name().await?.get(reviewer).copied();
    let to =
        to.ok_or_else(|| Error::invalid(format!("There is no active Cone user \"{reviewer}\"; check the name.")))?;
    match s.db.reassign_item(id, to, caller.user.id, s.now()).await? {
        Ok(()) => found_item(s, id).await,
        Err(Refusal::NoSuchItem) => Err(Error::NotFound(refusal(id, &Refusal::NoSuchItem))),
        Err(Refusal::OwnAccess) => {
            Err(Error::invalid(format!("Item {id} is {reviewer}'s own access; choose someone else.")))
        }
        Err(why) => Err(Error::WrongState(refusal(id, &why))),
    }
}

/// A report's formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Csv,
    JsonLines,
}

impl Format {
    /// `csv` (also when absent) or `jsonl`.
    pub fn parse(name: Option<&str>) -> Result<Format> {
        match name {
            None | Some("" | "csv") => Ok(Format::Csv),
            Some("jsonl") => Ok(Format::JsonLines),
            Some(other) => Err(Error::invalid(format!("Unknown format \"{other}\"; use csv or jsonl."))),
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Format::Csv => "text/csv; charset=utf-8",
            Format::JsonLines => "application/jsonl",
        }
    }

    /// The `Content-Disposition` of campaign `id`'s report in this format.
    pub fn attachment(self, id: i64) -> String {
        let extension = if self == Format::Csv { "csv" } else { "jsonl" };
        format!("attachment; filename=\"cone-review-{id}.{extension}\"")
    }
}

/// Every item of a campaign with its decision, reviewer, comment, the removal's outcome and the hashes of its audit
/// entries, as CSV or JSON Lines. Administrators only.
pub async fn report(s: &AppState, caller: &Caller, id: i64, format: Format) -> Result<String> {
    require_admin(s, &caller.user).await?;
    let c = found_campaign(s, id).await?;
    let filter = ItemFilter { campaign: Some(id), ..ItemFilter::default() };
    let items: Vec<ReviewItem> =
        s.db.review_items(&filter, 0, i64::MAX).await?.into_iter().map(view).collect::<Result<_>>()?;
    match format {
        Format::JsonLines => {
            let mut out = String::new();
            for i in &items {
                out.push_str(&serde_json::to_string(i).map_err(anyhow::Error::from)?);
                out.push('\n');
            }
            Ok(out)
        }
        Format::Csv => csv(&c, &items),
    }
}

fn csv(c: &CampaignRow, items: &[ReviewItem]) -> Result<String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    let header = [
        "campaign",
        "campaign_state",
        "item",
        "kind",
        "user",
        "iam_user",
        "access_key_id",
        "last_used_at",
        "account_id",
        "account",
        "permission_set",
        "group",
        "reaches",
        "reviewers",
        "state",
        "decided_by",
        "decided_at",
        "comment",
        "removal",
        "removal_by_hand",
        "request_id",
        "gone_at",
        "decision_audit_hash",
        "removal_audit_hash",
    ];
    w.write_record(header).map_err(anyhow::Error::from)?;
    let at = |t: &Option<chrono::DateTime<chrono::Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
    for i in items {
        let record = [
            c.name.clone(),
            c.state.clone(),
            i.id.to_string(),
            i.kind.as_str().to_string(),
            i.user.clone(),
            i.iam_user.clone(),
            i.access_key_id.clone(),
            at(&i.last_used_at),
            i.account_id.clone(),
            i.account.clone(),
            i.permission_set.clone(),
            i.group.clone(),
            i.reaches.clone(),
            i.reviewers.join(" "),
            i.state.as_str().to_string(),
            i.decided_by.clone().unwrap_or_default(),
            at(&i.decided_at),
            i.comment.clone().unwrap_or_default(),
            i.removal.as_ref().map(|r| r.state.clone()).unwrap_or_default(),
            i.removal.as_ref().and_then(|r| r.by_hand.clone()).unwrap_or_default(),
            i.removal.as_ref().and_then(|r| r.request_id.clone()).unwrap_or_default(),
            at(&i.gone_at),
            i.decision_audit_hash.clone().unwrap_or_default(),
            i.removal_audit_hash.clone().unwrap_or_default(),
        ];
        w.write_record(record.iter().map(|v| cone_core::review::csv_safe(v))).map_err(anyhow::Error::from)?;
    }
    let bytes = w.into_inner().map_err(|e| anyhow::anyhow!("cannot write the report: {e}"))?;
    Ok(String::from_utf8(bytes).map_err(anyhow::Error::from)?)
}
