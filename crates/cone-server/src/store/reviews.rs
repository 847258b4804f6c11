//! User access reviews: the access in force as the last sync read it, campaigns snapshotting it into items, the
//! reviewers' decisions, and revocations carried out by jobs (a grant's by its own revoke job). Every decision and
//! removal is audited, and an item keeps the id of its audit entries so that a report can be checked against the log.

use anyhow::Result;
use cone_core::grant::{GrantEvent, GrantState};
use cone_core::job::JobState;
use cone_core::review::{ItemEvent, ItemKind, ItemState};
use sqlx::FromRow;

use super::audit::record;
use super::grants::{Ending, end_early};
use super::lifecycle::{
    enqueue_review, finish_job, grant_state, holding_states, item, item_detail, move_item, removed,
};
use super::pool::{Backend, Cell, Db, Tx, insert_rows, like_literal, sql_list};
use super::rows::{JobRow, USER_SERVICE};

/// A person's access as it stands: a direct assignment, a standing group membership, an active grant, or an IAM
/// user, IAM group membership or access key (which may be nobody's Cone knows).
#[derive(Debug, Clone, FromRow)]
pub struct AccessRow {
    #[sqlx(try_from = "String")]
    pub kind: ItemKind,
    pub user_id: Option<i64>,
    /// '' for an IAM user nobody in Cone is known to hold.
    pub username: String,
    pub display_name: String,
    pub principal_id: String,
    pub app_id: String,
    pub entitlement_id: String,
    pub instance_arn: String,
    pub account_id: String,
    pub account_name: String,
    pub permission_set_arn: String,
    pub permission_set_name: String,
    pub group_id: String,
    pub group_name: String,
    pub grant_id: Option<i64>,
    /// An IAM item's user.
    pub iam_user_arn: String,
    pub access_key_id: String,
    /// The password's or access key's last use, as the IAM sync read it.
    pub last_used_at: Option<i64>,
}

/// What a review job removes: an assignment, an Identity Center group membership, or an IAM item.
#[derive(Debug, Clone, FromRow)]
pub struct ReviewTarget {
    #[sqlx(try_from = "String")]
    pub kind: ItemKind,
    pub instance_arn: String,
    pub account_id: String,
    pub permission_set_arn: String,
    pub principal_id: String,
    pub group_id: String,
    pub iam_user_arn: String,
    pub access_key_id: String,
}

/// An account and permission set an Identity Center group is assigned.
#[derive(Debug, Clone, FromRow)]
pub struct GroupReachRow {
    pub group_id: String,
    pub account_id: String,
    pub account_name: String,
    pub permission_set_name: String,
}

/// A campaign to create.
pub struct NewCampaign<'a> {
    pub name: &'a str,
    pub scope: &'a str,
    pub reviewers: &'a str,
    pub due_at: i64,
    pub created_by: i64,
    /// The template it is opened from, and for a scheduled opening the time before which a campaign from it
    /// makes this one unneeded (another replica opened it).
    pub template: Option<(&'a str, Option<i64>)>,
}

/// An item of a new campaign: the access, what it reaches in words, and who may decide it.
pub struct NewItem {
    pub access: AccessRow,
    pub reaches: String,
    pub reviewers: Vec<i64>,
}

#[derive(Debug, Clone, FromRow)]
pub struct CampaignRow {
    pub id: i64,
    pub name: String,
    pub scope: String,
    pub reviewers: String,
    pub due_at: i64,
    pub state: String,
    pub created_by: String,
    pub created_at: i64,
    pub closed_at: Option<i64>,
    pub template: Option<String>,
    pub items: i64,
    /// Items nobody decided yet.
    pub pending: i64,
    /// Revocations whose removal is not done yet.
    pub revoking: i64,
}

/// An item with the names of the people it involves, how its removal went, and its audit entries' hashes.
#[derive(Debug, Clone, FromRow)]
pub struct ItemRow {
    pub id: i64,
    pub campaign_id: i64,
    pub campaign_name: String,
    pub kind: String,
    pub username: String,
    pub display_name: String,
    pub account_id: String,
    pub account_name: String,
    pub permission_set_name: String,
    pub group_name: String,
    pub reaches: String,
    pub iam_user_arn: String,
    pub access_key_id: String,
    pub last_used_at: Option<i64>,
    pub by_hand: Option<String>,
    pub task_id: Option<i64>,
    pub state: String,
    pub decided_by: Option<String>,
    pub decided_at: Option<i64>,
    pub comment: Option<String>,
    pub job_state: Option<String>,
    pub job_error: Option<String>,
    pub job_attempts: Option<i64>,
    pub request_id: Option<String>,
    pub gone_at: Option<i64>,
    pub decision_hash: Option<String>,
    pub removal_hash: Option<String>,
    /// The user names of those who may decide it, by name, one per line.
    pub reviewers: Option<String>,
}

/// Which items to list.
#[derive(Debug, Clone, Default)]
pub struct ItemFilter {
    pub campaign: Option<i64>,
    /// Only items this person may decide.
    pub reviewer: Option<i64>,
    /// Only items about this person (user name).
    pub user: Option<String>,
    pub state: Option<ItemState>,
    /// Words each found in the person's name, the account, the permission set or the group.
    pub words: Vec<String>,
    /// Ordered by entitlement (account, permission set, group) rather than by person (by campaign, then as the
    /// snapshot numbered them: by person).
    pub by_entitlement: bool,
}

/// Why a decision was not written.
#[derive(Debug, PartialEq, Eq)]
pub enum Refusal {
    NoSuchItem,
    Closed,
    NotReviewer,
    OwnAccess,
    /// The item's state does not allow it (already revoked, gone, or certified twice).
    State(ItemState),
}

/// What a decision on an item checks.
#[derive(FromRow)]
struct Deciding {
    subject: Option<i64>,
    campaign_state: String,
    kind: String,
    grant_id: Option<i64>,
    /// 1 when the decider is among the item's reviewers.
    reviewer: i64,
    state: String,
}

/// An item's columns; `i` is the item, joined by [`ITEM_JOINS`]. The names, the grant's request and the audit
/// entries are looked up one by one rather than joined: PostgreSQL spent 5-6 ms planning each page's nine joins
/// (their order is its to choose), against 1 ms running it; with these lookups it plans in 2 ms.
const ITEM_COLUMNS: &str = "SELECT i.id, i.campaign_id,
        (SELECT c.name FROM review_campaigns c WHERE c.id = i.campaign_id) AS campaign_name, i.kind,
        COALESCE((SELECT u.username FROM users u WHERE u.id = i.user_id), '') AS username,
        COALESCE((SELECT u.display_name FROM users u WHERE u.id = i.user_id), '') AS display_name, i.account_id,
        i.account_name, i.permission_set_name, i.group_name, i.reaches, i.iam_user_arn, i.access_key_id,
        i.last_used_at, i.by_hand, (SELECT g.task_id FROM grants g WHERE g.id = i.grant_id) AS task_id, i.state,
        (SELECT d.username FROM users d WHERE d.id = i.decided_by) AS decided_by, i.decided_at, i.comment,
        j.state AS job_state, j.last_error AS job_error, j.attempts AS job_attempts, i.request_id, i.gone_at,
        (SELECT a.hash FROM audit_log a WHERE a.id = i.decision_audit_id) AS decision_hash,
        (SELECT a.hash FROM audit_log a WHERE a.id = i.removed_audit_id) AS removal_hash";

/// The user names of item `i`'s reviewers, by name, one per line: in the item's row rather than a query of their own,
/// which PostgreSQL answered by reading every reviewer row (its guess of a JSON list's length favours that).
fn reviewer_names(backend: Backend) -> &'static str {
    match backend {
        Backend::Sqlite => {
            "(SELECT group_concat(username, char(10)) FROM (SELECT u.username FROM review_reviewers r
                 JOIN users u ON u.id = r.user_id WHERE r.item_id = i.id ORDER BY u.username)) AS reviewers"
        }
        Backend::Postgres => {
            "(SELECT string_agg(u.username, chr(10) ORDER BY u.username) FROM review_reviewers r
                 JOIN users u ON u.id = r.user_id WHERE r.item_id = i.id) AS reviewers"
        }
    }
}

/// What an item's row joins: its removal's job (its own, or its grant's last revoke job).
const ITEM_JOINS: &str = "LEFT JOIN jobs j ON j.id = COALESCE(i.job_id,
        (SELECT MAX(r.id) FROM jobs r WHERE i.grant_id IS NOT NULL AND r.grant_id = i.grant_id AND r.kind = 'revoke'))";

const CAMPAIGN_SELECT: &str = "SELECT c.id, c.name, c.scope, c.reviewers, c.due_at, c.state, u.username AS created_by,
        c.created_at, c.closed_at, c.template,
        (SELECT COUNT(*) FROM review_items i WHERE i.campaign_id = c.id) AS items,
        (SELECT COUNT(*) FROM review_items i WHERE i.campaign_id = c.id AND i.state = 'pending') AS pending,
        (SELECT COUNT(*) FROM review_items i WHERE i.campaign_id = c.id AND i.state = 'revoking') AS revoking
    FROM review_campaigns c JOIN users u ON u.id = c.created_by";

impl Db {
    /// Everything people hold in AWS as Cone knows it: direct assignments and standing memberships as the last sync
    /// read them (leaving out those a Cone grant made or explains, which are reviewed as that grant), and active
    /// grants; with what each Identity Center group is assigned. With the IAM sync, also the IAM users Cone did not
    /// create, the IAM group memberships no grant gave, and the active access keys. An IAM user is a person's when Cone
    /// created it for them, or when its name is their user name or email address (in any case); else nobody's.
    pub async fn access_in_force(&self, now: i64) -> Result<(Vec<AccessRow>, Vec<GroupReachRow>)> {
        let holding = holding_states();
        let access = sqlx::query_as(&format!(
            "SELECT 'assignment' AS kind, u.id AS user_id, u.username, u.idc_user_id AS principal_id, e.app_id,
                 e.id AS entitlement_id, a.instance_arn, e.resource_id AS account_id,
                 COALESCE(r.name, e.resource_id) AS account_name, e.permission_set_arn, e.permission_set_name,
                 '' AS group_id, '' AS group_name, CAST(NULL AS BIGINT) AS grant_id, u.display_name,
                 '' AS iam_user_arn, '' AS access_key_id, CAST(NULL AS BIGINT) AS last_used_at
             FROM user_assignments ua JOIN users u ON u.id = ua.user_id
             JOIN entitlements e ON e.app_id = ua.app_id AND e.id = ua.entitlement_id JOIN apps a ON a.id = e.app_id
             LEFT JOIN resources r ON r.app_id = e.app_id AND r.id = e.resource_id
             WHERE u.left_at IS NULL AND u.idc_user_id IS NOT NULL AND NOT EXISTS (
                 SELECT 1 FROM grants g WHERE g.user_id = u.id AND g.app_id = e.app_id AND g.entitlement_id = e.id
                 AND g.state IN {holding})
             UNION ALL
             SELECT 'group_membership', u.id, u.username, u.idc_user_id, e.app_id, e.id, a.instance_arn, '', '', '',
                 '', e.group_id, e.group_name, CAST(NULL AS BIGINT), u.display_name, '', '', CAST(NULL AS BIGINT)
             FROM group_members m JOIN groups gr ON gr.id = m.group_id JOIN users u ON u.id = m.user_id
             JOIN entitlements e ON e.kind = 'aws_idc_group_membership' AND e.group_id = gr.idc_group_id
             JOIN apps a ON a.id = e.app_id
             WHERE u.left_at IS NULL AND u.idc_user_id IS NOT NULL AND NOT EXISTS (
                 SELECT 1 FROM grants c WHERE c.user_id = u.id AND c.kind = 'aws_idc_group_membership'
                 AND c.group_id = gr.idc_group_id AND c.state IN {holding}
                 AND COALESCE(c.membership_found, 0) = 0)
             UNION ALL
             SELECT 'grant', u.id, u.username, g.principal_id, g.app_id, g.entitlement_id, g.instance_arn,
                 g.account_id, COALESCE(r.name, g.account_id), g.permission_set_arn, COALESCE(e.permission_set_name, ''),
                 g.group_id, COALESCE(e.group_name, g.group_id), g.id, u.display_name, '', '', CAST(NULL AS BIGINT)
             FROM grants g JOIN users u ON u.id = g.user_id
             LEFT JOIN entitlements e ON e.app_id = g.app_id AND e.id = g.entitlement_id
             LEFT JOIN resources r ON r.app_id = g.app_id AND r.id = g.account_id
             WHERE g.state = 'active' AND g.expires_at > $1
             UNION ALL
             SELECT 'iam_user', p.id, COALESCE(p.username, ''), x.id, '', '', '', x.account_id, x.account_name, '', '',
                 '', '', CAST(NULL AS BIGINT), COALESCE(p.display_name, ''), x.arn, '', x.password_last_used_at
             FROM {IAM_USERS} LEFT JOIN users p ON p.id = x.person WHERE x.created = 0
             UNION ALL
             SELECT 'iam_group_membership', p.id, COALESCE(p.username, ''), x.id, '', '', '', x.account_id,
                 x.account_name, '', '', gr.name, gr.name, CAST(NULL AS BIGINT), COALESCE(p.display_name, ''), x.arn,
                 '', CAST(NULL AS BIGINT)
             FROM {IAM_USERS} LEFT JOIN users p ON p.id = x.person
             JOIN iam_group_members m ON m.account_id = x.account_id AND m.user_arn = x.arn
             JOIN iam_groups gr ON gr.account_id = m.account_id AND gr.arn = m.group_arn
             WHERE NOT EXISTS (SELECT 1 FROM grants c WHERE x.created = 1 AND c.user_id = x.person
                 AND c.kind = 'aws_iam_group_membership' AND c.account_id = x.account_id AND c.group_id = gr.name
                 AND c.state IN {holding})
             UNION ALL
             SELECT 'access_key', p.id, COALESCE(p.username, ''), x.id, '', '', '', x.account_id, x.account_name, '',
                 '', '', '', CAST(NULL AS BIGINT), COALESCE(p.display_name, ''), x.arn, k.id, k.last_used_at
             FROM {IAM_USERS} LEFT JOIN users p ON p.id = x.person
             JOIN iam_access_keys k ON k.account_id = x.account_id AND k.user_arn = x.arn
             WHERE k.status = 'Active'
             ORDER BY 3, 16, 1, 9, 11, 13, 6, 17"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?;
        let reaches = sqlx::query_as(
            "SELECT gr.idc_group_id AS group_id, e.resource_id AS account_id,
                 COALESCE(r.name, e.resource_id) AS account_name, e.permission_set_name
             FROM group_assignments a JOIN groups gr ON gr.id = a.group_id
             JOIN entitlements e ON e.app_id = a.app_id AND e.id = a.entitlement_id
             LEFT JOIN resources r ON r.app_id = e.app_id AND r.id = e.resource_id
             ORDER BY 1, 3, 4",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok((access, reaches))
    }

    /// Every person who has not left, by user name.
    pub async fn user_ids_by_name(&self) -> Result<std::collections::HashMap<String, i64>> {
        let rows: Vec<(String, i64)> =
            sqlx::query_as("SELECT username, id FROM users WHERE left_at IS NULL").fetch_all(&self.pool).await?;
        Ok(rows.into_iter().collect())
    }

    /// The user names of the members of the Cone group `name`.
    pub async fn group_member_names(&self, name: &str) -> Result<Vec<String>> {
        Ok(sqlx::query_scalar(
            "SELECT u.username FROM group_members m JOIN groups g ON g.id = m.group_id JOIN users u ON u.id = m.user_id
             WHERE g.name = $1 AND u.left_at IS NULL ORDER BY u.username",
        )
        .bind(name)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Creates a campaign with its items and their reviewers, in one transaction; returns its id.
    /// Writes a campaign, its items and their reviewers; `None` when a scheduled opening found its template's
    /// campaign opened already.
    pub async fn create_campaign(&self, c: &NewCampaign<'_>, items: Vec<NewItem>, now: i64) -> Result<Option<i64>> {
        let mut tx = self.begin().await?;
        if let Some((template, Some(since))) = c.template
            && last_opened(&mut *tx, template).await?.is_some_and(|at| at > since)
        {
            tx.rollback().await?;
            return Ok(None);
        }
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO review_campaigns (name, scope, reviewers, due_at, state, created_by, created_at, template)
             VALUES ($1, $2, $3, $4, 'open', $5, $6, $7) RETURNING id",
        )
        .bind(c.name)
        .bind(c.scope)
        .bind(c.reviewers)
        .bind(c.due_at)
        .bind(c.created_by)
        .bind(now)
        .bind(c.template.map(|(t, _)| t))
        .fetch_one(&mut *tx)
        .await?;
        // Ids are given here, under the writers' lock, so that the reviewers' rows can name their items without a
        // round trip per item.
        let first: i64 =
            sqlx::query_scalar("SELECT COALESCE(MAX(id), 0) + 1 FROM review_items").fetch_one(&mut *tx).await?;
        let count = items.len();
        // What a reviewer's words are looked for in, in lower case (ASCII, as SQLite's LOWER folds): one column to
        // scan rather than six.
        let search: Vec<String> = items
            .iter()
            .map(|i| {
                let a = &i.access;
                let iam_user = cone_core::review::iam_user_name(&a.iam_user_arn);
                let names = [&a.username, &a.display_name, &a.account_name, &a.account_id, &a.permission_set_name];
                let mut text = names.map(|n| n.as_str()).join(" ");
                for more in [a.group_name.as_str(), iam_user, &a.access_key_id] {
                    text.push(' ');
                    text.push_str(more);
                }
                text.to_ascii_lowercase()
            })
            .collect();
        let mut rows = Vec::with_capacity(count);
        let mut reviewers = Vec::with_capacity(count);
        for (n, item) in items.iter().enumerate() {
            let item_id = first + n as i64;
            let a = &item.access;
            use Cell::{Int, Text};
            rows.push(vec![
                Int(Some(item_id)),
                Int(Some(id)),
                Text(Some(a.kind.as_str())),
                Int(a.user_id),
                Text(Some(&a.principal_id)),
                Text(Some(&a.app_id)),
                Text(Some(&a.entitlement_id)),
                Text(Some(&a.instance_arn)),
                Text(Some(&a.account_id)),
                Text(Some(&a.account_name)),
                Text(Some(&a.permission_set_arn)),
                Text(Some(&a.permission_set_name)),
                Text(Some(&a.group_id)),
                Text(Some(&a.group_name)),
                Text(Some(&item.reaches)),
                Text(Some(&search[n])),
                Int(a.grant_id),
                Text(Some(ItemState::Pending.as_str())),
                Text(Some(&a.iam_user_arn)),
                Text(Some(&a.access_key_id)),
                Int(a.last_used_at),
            ]);
            reviewers.extend(item.reviewers.iter().map(|r| vec![Int(Some(item_id)), Int(Some(*r))]));
        }
        let columns = [
            "id",
            "campaign_id",
            "kind",
            "user_id",
            "principal_id",
            "app_id",
            "entitlement_id",
            "instance_arn",
            "account_id",
            "account_name",
            "permission_set_arn",
            "permission_set_name",
            "group_id",
            "group_name",
            "reaches",
            "search",
            "grant_id",
            "state",
            "iam_user_arn",
            "access_key_id",
            "last_used_at",
        ];
        insert_rows(&mut tx, "review_items", &columns, rows).await?;
        if self.backend == Backend::Sqlite {
            // An FTS5 table over another table's content is told of each row written there.
            sqlx::query("INSERT INTO review_items_fts (rowid, search) SELECT id, search FROM review_items WHERE campaign_id = $1")
                .bind(id)
                .execute(&mut *tx)
                .await?;
        }
        insert_rows(&mut tx, "review_reviewers", &["item_id", "user_id"], reviewers).await?;
        let detail = serde_json::json!({
            "name": c.name, "items": count, "due_at": c.due_at, "template": c.template.map(|(t, _)| t),
        });
        record(
            &mut tx,
            now,
            &format!("user:{}", c.created_by),
            "review.campaign_create",
            &campaign(id),
            &detail.to_string(),
        )
        .await?;
        // PostgreSQL plans by statistics its autovacuum brings up to date within minutes; a campaign can double the
        // tables at once, and the reviewers' notifications and pages read them at once. Analyzed before the commit
        // (ANALYZE counts this transaction's rows), since the notification worker reads the campaign as soon as it is
        // committed: with the empty tables' statistics its count of each reviewer's items took 28 s, holding the
        // writers' lock, and the next campaign waited that long.
        if self.backend == Backend::Postgres {
            sqlx::query("ANALYZE review_items, review_reviewers").execute(&mut *tx).await?;
        }
        tx.commit().await?;
        Ok(Some(id))
    }

    /// When the last campaign from `template` was opened.
    pub async fn template_opened(&self, template: &str) -> Result<Option<i64>> {
        last_opened(&self.pool, template).await
    }

    /// The account scheduled campaigns are opened as: a service account no token or password can act as.
    pub async fn schedule_account(&self) -> Result<i64> {
        let name = format!("{}{REVIEW_SCHEDULE}", cone_api::SERVICE_ACCOUNT_PREFIX);
        sqlx::query(
            "INSERT INTO users (username, display_name, kind) VALUES ($1, 'Access review schedule', $2)
             ON CONFLICT (username) DO NOTHING",
        )
        .bind(&name)
        .bind(USER_SERVICE)
        .execute(&self.pool)
        .await?;
        Ok(sqlx::query_scalar("SELECT id FROM users WHERE username = $1").bind(&name).fetch_one(&self.pool).await?)
    }

    /// Campaigns, newest first.
    pub async fn campaigns(&self, offset: i64, limit: i64) -> Result<Vec<CampaignRow>> {
        let sql = format!("{CAMPAIGN_SELECT} ORDER BY c.id DESC LIMIT $1 OFFSET $2");
        Ok(sqlx::query_as(&sql).bind(limit).bind(offset).fetch_all(&self.pool).await?)
    }

    pub async fn campaign(&self, id: i64) -> Result<Option<CampaignRow>> {
        let sql = format!("{CAMPAIGN_SELECT} WHERE c.id = $1");
        Ok(sqlx::query_as(&sql).bind(id).fetch_optional(&self.pool).await?)
    }

    /// Per reviewer of a campaign: (user name, items left, items in all), by most left.
    pub async fn campaign_progress(&self, id: i64) -> Result<Vec<(String, i64, i64)>> {
        Ok(sqlx::query_as(
            "SELECT u.username, SUM(CASE WHEN i.state = 'pending' THEN 1 ELSE 0 END), COUNT(*)
             FROM review_reviewers r JOIN review_items i ON i.id = r.item_id JOIN users u ON u.id = r.user_id
             WHERE i.campaign_id = $1 GROUP BY u.username ORDER BY 2 DESC, 1",
        )
        .bind(id)
        .fetch_all(&self.pool)
        .await?)
    }

    /// Up to `limit` items from `offset`, as `filter` says.
    pub async fn review_items(&self, filter: &ItemFilter, offset: i64, limit: i64) -> Result<Vec<ItemRow>> {
        let mut clauses = vec!["1 = 1".to_string()];
        let mut args: Vec<String> = Vec::new();
        let mut param = |value: String| {
            args.push(value);
            format!("${}", args.len())
        };
        let number = |p: String| format!("CAST({p} AS BIGINT)");
        // The page's ids first, then their rows: an item's row looks up seven others, which only the page's need. A
        // campaign's items are numbered by person, then by names (`access_in_force`'s order), so by person is by id, which a
        // reviewer's rows (`review_reviewers`, keyed by person and item) and a campaign's index give without a sort.
        // By entitlement, a campaign's index gives the order and each item's reviewer is looked up.
        // On SQLite a reviewer's words are looked up in the trigram index (migration 0027), which then leads the join
        // (SQLite keeps a CROSS JOIN's order), so that the items holding them are read rather than every item the
        // reviewer has. FTS5 uses its index for a GLOB, and for a LIKE only without an ESCAPE; the text is in lower
        // case. PostgreSQL's planner picks its pg_trgm index (migration 0029) for a LIKE by itself.
        let fts = self.backend == Backend::Sqlite && !filter.words.is_empty();
        let items = match fts {
            true => {
                let words = filter
                    .words
                    .iter()
                    .map(|w| format!("search GLOB {}", param(format!("*{}*", glob_literal(&w.to_ascii_lowercase())))));
                format!(
                    "(SELECT rowid AS id FROM review_items_fts WHERE {}) f CROSS JOIN review_items i ON i.id = f.id",
                    words.collect::<Vec<_>>().join(" AND ")
                )
            }
            false => "review_items i".to_string(),
        };
        let (from, key) = match (filter.reviewer, filter.by_entitlement) {
            (Some(r), false) => {
                clauses.push(format!("v.user_id = {}", number(param(r.to_string()))));
                let from = match fts {
                    true => format!("{items} JOIN review_reviewers v ON v.item_id = i.id"),
                    false => "review_reviewers v JOIN review_items i ON i.id = v.item_id".to_string(),
                };
                (from, "v.item_id")
            }
            (Some(r), true) => {
                let r = number(param(r.to_string()));
                clauses.push(format!(
                    "EXISTS (SELECT 1 FROM review_reviewers v WHERE v.user_id = {r} AND v.item_id = i.id)"
                ));
                (items, "i.id")
            }
            (None, _) => (items, "i.id"),
        };
        if let Some(c) = filter.campaign {
            clauses.push(format!("i.campaign_id = {}", number(param(c.to_string()))));
        }
        if let Some(u) = &filter.user {
            clauses.push(format!("i.user_id = (SELECT id FROM users WHERE username = {})", param(u.clone())));
        }
        if let Some(st) = filter.state {
            clauses.push(format!("i.state = {}", param(st.as_str().to_string())));
        }
        for w in filter.words.iter().filter(|_| !fts) {
            let p = param(format!("%{}%", like_literal(&w.to_ascii_lowercase())));
            clauses.push(format!("i.search LIKE {p} ESCAPE '\\'"));
        }
        let by_entitlement = "i.campaign_id, i.account_name, i.permission_set_name, i.group_name, i.id";
        let (inner_order, order) = match filter.by_entitlement {
            true => (by_entitlement, by_entitlement),
            false => (key, "i.id"),
        };
        let (l, o) = (number(param(limit.to_string())), number(param(offset.to_string())));
        // The page leads the join, so that the planner knows it is short (PostgreSQL otherwise joined every item).
        let sql = format!(
            "{ITEM_COLUMNS}, {} FROM (
                 SELECT i.id FROM {from} WHERE {}
                 ORDER BY {inner_order} LIMIT {l} OFFSET {o}) page
             JOIN review_items i ON i.id = page.id {ITEM_JOINS}
             ORDER BY {order}",
            reviewer_names(self.backend),
            clauses.join(" AND ")
        );
        let mut query = sqlx::query_as(&sql);
        for a in args {
            query = query.bind(a);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    pub async fn review_item(&self, id: i64) -> Result<Option<ItemRow>> {
        let sql = format!(
            "{ITEM_COLUMNS}, {} FROM review_items i {ITEM_JOINS} WHERE i.id = $1",
            reviewer_names(self.backend)
        );
        Ok(sqlx::query_as(&sql).bind(id).fetch_optional(&self.pool).await?)
    }

    /// Records `by`'s decision on an item: a certification, or a revocation, whose removal starts in the same
    /// transaction (a job; for a grant, the grant ends as an administrator's withdrawal does). Returns the
    /// item's new state.
    pub async fn decide_item(
        &self,
        item_id: i64,
        by: i64,
        event: ItemEvent,
        comment: Option<&str>,
        now: i64,
    ) -> Result<Result<ItemState, Refusal>> {
        let mut tx = self.begin().await?;
        let row: Option<Deciding> = sqlx::query_as(
            "SELECT i.user_id AS subject, c.state AS campaign_state, i.kind, i.grant_id,
                 (SELECT COUNT(*) FROM review_reviewers r WHERE r.item_id = i.id AND r.user_id = $2) AS reviewer,
                 i.state
             FROM review_items i JOIN review_campaigns c ON c.id = i.campaign_id WHERE i.id = $1",
        )
        .bind(item_id)
        .bind(by)
        .fetch_optional(&mut *tx)
        .await?;
        let Some(Deciding { subject, campaign_state, kind, grant_id, reviewer, state }) = row else {
            return Ok(Err(Refusal::NoSuchItem));
        };
        if subject == Some(by) {
            return Ok(Err(Refusal::OwnAccess));
        }
        if reviewer == 0 {
            return Ok(Err(Refusal::NotReviewer));
        }
        if campaign_state != "open" {
            return Ok(Err(Refusal::Closed));
        }
        // Asked first, so that a decision the item cannot take is an answer, not a disagreement between writers.
        let state = ItemState::try_from(state).map_err(anyhow::Error::msg)?;
        if state.on(event).is_none() {
            return Ok(Err(Refusal::State(state)));
        }
        let Some(to) = move_item(&mut tx, item_id, event).await? else { return Ok(Err(Refusal::State(state))) };
        let action = if event == ItemEvent::Revoke { "review.revoke" } else { "review.certify" };
        let detail = item_detail(&mut tx, item_id, serde_json::json!({ "comment": comment })).await?;
        let audit_id = record(&mut tx, now, &format!("user:{by}"), action, &item(item_id), &detail).await?;
        sqlx::query(
            "UPDATE review_items SET decided_by = $1, decided_at = $2, comment = $3, decision_audit_id = $4 WHERE id = $5",
        )
        .bind(by)
        .bind(now)
        .bind(comment)
        .bind(audit_id)
        .bind(item_id)
        .execute(&mut *tx)
        .await?;
        if event == ItemEvent::Revoke {
            match (ItemKind::try_from(kind).map_err(anyhow::Error::msg)?, grant_id) {
                (ItemKind::Grant, Some(grant_id)) => revoke_grant(&mut tx, item_id, grant_id, by, now).await?,
                _ => {
                    let job = enqueue_review(&mut tx, item_id, now).await?;
                    sqlx::query("UPDATE review_items SET job_id = $1 WHERE id = $2")
                        .bind(job)
                        .bind(item_id)
                        .execute(&mut *tx)
                        .await?;
                }
            }
        }
        tx.commit().await?;
        Ok(Ok(to))
    }

    /// Gives an item to `to` alone to decide.
    pub async fn reassign_item(&self, item_id: i64, to: i64, by: i64, now: i64) -> Result<Result<(), Refusal>> {
        let mut tx = self.begin().await?;
        let row: Option<(Option<i64>, String, String)> = sqlx::query_as(
            "SELECT i.user_id, c.state, i.state FROM review_items i JOIN review_campaigns c ON c.id = i.campaign_id
             WHERE i.id = $1",
        )
        .bind(item_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((subject, campaign_state, state)) = row else { return Ok(Err(Refusal::NoSuchItem)) };
        if subject == Some(to) {
            return Ok(Err(Refusal::OwnAccess));
        }
        if campaign_state != "open" {
            return Ok(Err(Refusal::Closed));
        }
        let state = ItemState::try_from(state).map_err(anyhow::Error::msg)?;
        if !state.is_open() {
            return Ok(Err(Refusal::State(state)));
        }
        sqlx::query("DELETE FROM review_reviewers WHERE item_id = $1").bind(item_id).execute(&mut *tx).await?;
        sqlx::query("INSERT INTO review_reviewers (item_id, user_id) VALUES ($1, $2)")
            .bind(item_id)
            .bind(to)
            .execute(&mut *tx)
            .await?;
        let reviewer: String =
            sqlx::query_scalar("SELECT username FROM users WHERE id = $1").bind(to).fetch_one(&mut *tx).await?;
        let detail = item_detail(&mut tx, item_id, serde_json::json!({ "reviewer": reviewer })).await?;
        record(&mut tx, now, &format!("user:{by}"), "review.reassign", &item(item_id), &detail).await?;
        tx.commit().await?;
        Ok(Ok(()))
    }

    /// Closes an open campaign: its decisions are final. `false` when it was not open.
    pub async fn close_campaign(&self, id: i64, by: i64, now: i64) -> Result<bool> {
        let mut tx = self.begin().await?;
        let closed = sqlx::query(
            "UPDATE review_campaigns SET state = 'closed', closed_at = $1 WHERE id = $2 AND state = 'open'",
        )
        .bind(now)
        .bind(id)
        .execute(&mut *tx)
        .await?
        .rows_affected()
            == 1;
        if closed {
            let counts: Vec<(String, i64)> = sqlx::query_as(
                "SELECT state, COUNT(*) FROM review_items WHERE campaign_id = $1 GROUP BY state ORDER BY state",
            )
            .bind(id)
            .fetch_all(&mut *tx)
            .await?;
            let detail = serde_json::Value::Object(counts.into_iter().map(|(s, n)| (s, n.into())).collect());
            record(&mut tx, now, &format!("user:{by}"), "review.campaign_close", &campaign(id), &detail.to_string())
                .await?;
        }
        tx.commit().await?;
        Ok(closed)
    }

    /// What a review job removes.
    pub async fn review_target(&self, item_id: i64) -> Result<ReviewTarget> {
        Ok(sqlx::query_as(
            "SELECT kind, instance_arn, account_id, permission_set_arn, principal_id, group_id, iam_user_arn,
                 access_key_id
             FROM review_items WHERE id = $1",
        )
        .bind(item_id)
        .fetch_one(&self.pool)
        .await?)
    }

    /// A review job's removal is someone's to do by hand, as `what` says: the job is done, and the item waits,
    /// revoking, for a sync that no longer finds the access (`review_items_gone`). Audited as `review.by_hand`, which
    /// webhooks carry to whoever tracks such tasks.
    pub async fn review_by_hand(&self, job: &JobRow, item_id: i64, what: &str, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        finish_job(&mut tx, job.id, JobState::Done, None, now).await?;
        sqlx::query("UPDATE review_items SET by_hand = $1 WHERE id = $2")
            .bind(what)
            .bind(item_id)
            .execute(&mut *tx)
            .await?;
        let detail = item_detail(&mut tx, item_id, serde_json::json!({ "by_hand": what })).await?;
        record(&mut tx, now, "connector:aws", "review.by_hand", &item(item_id), &detail).await?;
        tx.commit().await?;
        Ok(())
    }

    /// The request of a Cone grant that now also gives what review item `item_id` revoked, if one does: removing it
    /// would take that grant's access away, so the removal waits for the grant to end.
    pub async fn review_access_granted(&self, item_id: i64) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(&format!(
            "SELECT g.task_id FROM review_items i JOIN grants g ON g.user_id = i.user_id AND g.app_id = i.app_id
                 AND g.entitlement_id = i.entitlement_id
             WHERE i.id = $1 AND g.state IN {} ORDER BY g.id LIMIT 1",
            holding_states()
        ))
        .bind(item_id)
        .fetch_optional(&self.pool)
        .await?)
    }

    /// A review job's removal is done, with AWS's id of the request when it gave one.
    pub async fn review_removed(&self, job: &JobRow, item_id: i64, request_id: Option<&str>, now: i64) -> Result<()> {
        let mut tx = self.begin().await?;
        finish_job(&mut tx, job.id, JobState::Done, None, now).await?;
        sqlx::query("UPDATE review_items SET request_id = $1 WHERE id = $2")
            .bind(request_id)
            .bind(item_id)
            .execute(&mut *tx)
            .await?;
        removed(&mut tx, item_id, now).await?;
        tx.commit().await?;
        Ok(())
    }

    /// Marks the undecided and certified items of open campaigns whose access a sync no longer finds as gone, and
    /// the revocations left to be done by hand whose access it no longer finds as removed. Only items of `kinds` are
    /// looked at: those the sync that ended read (IAM items are left alone in accounts the IAM sync could not read).
    /// An access key made inactive counts as gone.
    pub async fn review_items_gone(&self, kinds: &[ItemKind], now: i64) -> Result<usize> {
        let mut tx = self.begin().await?;
        let iam = sql_list(ItemKind::ALL.into_iter().filter(|k| k.is_iam()).map(ItemKind::as_str));
        let vanished = "CASE i.kind
                 WHEN 'assignment' THEN NOT EXISTS (SELECT 1 FROM user_assignments a
                     WHERE a.app_id = i.app_id AND a.entitlement_id = i.entitlement_id AND a.user_id = i.user_id)
                 WHEN 'group_membership' THEN NOT EXISTS (SELECT 1 FROM group_members m
                     JOIN groups g ON g.id = m.group_id WHERE g.idc_group_id = i.group_id AND m.user_id = i.user_id)
                 WHEN 'grant' THEN NOT EXISTS (SELECT 1 FROM grants g WHERE g.id = i.grant_id AND g.state = 'active'
                     AND g.expires_at > $1)
                 WHEN 'iam_user' THEN NOT EXISTS (SELECT 1 FROM iam_users u WHERE u.account_id = i.account_id
                     AND u.arn = i.iam_user_arn)
                 WHEN 'iam_group_membership' THEN NOT EXISTS (SELECT 1 FROM iam_group_members m
                     JOIN iam_groups g ON g.account_id = m.account_id AND g.arn = m.group_arn
                     WHERE m.account_id = i.account_id AND m.user_arn = i.iam_user_arn AND g.name = i.group_name)
                 ELSE NOT EXISTS (SELECT 1 FROM iam_access_keys k WHERE k.account_id = i.account_id
                     AND k.id = i.access_key_id AND k.status = 'Active') END";
        let rows: Vec<(i64, String)> = sqlx::query_as(&format!(
            "SELECT i.id, i.state FROM review_items i JOIN review_campaigns c ON c.id = i.campaign_id
             WHERE c.state = 'open' AND i.kind IN {} AND (i.state IN {} OR i.state = 'revoking' AND i.by_hand IS NOT NULL)
                 AND NOT (i.kind IN {iam} AND i.account_id IN (SELECT account_id FROM iam_skipped_accounts))
                 AND {vanished}",
            sql_list(kinds.iter().map(|k| k.as_str())),
            sql_list(ItemState::before(ItemEvent::Vanished).into_iter().map(ItemState::as_str))
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for (id, state) in &rows {
            if state == ItemState::Revoking.as_str() {
                removed(&mut tx, *id, now).await?;
                continue;
            }
            move_item(&mut tx, *id, ItemEvent::Vanished).await?;
            sqlx::query("UPDATE review_items SET gone_at = $1 WHERE id = $2")
                .bind(now)
                .bind(id)
                .execute(&mut *tx)
                .await?;
            let detail = item_detail(&mut tx, *id, serde_json::json!({})).await?;
            record(&mut tx, now, "connector:aws", "review.gone", &item(*id), &detail).await?;
        }
        tx.commit().await?;
        Ok(rows.len())
    }
}

/// The IAM users with the person each is (`person`, NULL for nobody), whether Cone created it for them (`created`),
/// and their account's name.
const IAM_USERS: &str = "(SELECT iu.account_id, iu.arn, iu.id, iu.password_last_used_at,
        COALESCE((SELECT MIN(r.name) FROM resources r WHERE r.id = iu.account_id), iu.account_id) AS account_name,
        COALESCE(ca.user_id, (SELECT MIN(pu.id) FROM users pu WHERE LOWER(pu.username) = LOWER(iu.name)
            OR (pu.email <> '' AND LOWER(pu.email) = LOWER(iu.name)))) AS person,
        CASE WHEN ca.user_id IS NULL THEN 0 ELSE 1 END AS created
    FROM iam_users iu LEFT JOIN created_accounts ca ON ca.kind = 'iam_user' AND ca.account_id = iu.account_id
        AND ca.user_name = iu.name AND ca.state <> 'deleted') x";

/// The service account scheduled campaigns are opened as, which no service token may be made for.
pub const REVIEW_SCHEDULE: &str = "review-schedule";

/// `text` as a GLOB pattern that matches it literally: its wildcards in brackets.
fn glob_literal(text: &str) -> String {
    text.chars()
        .map(|c| match c {
            '*' | '?' | '[' => format!("[{c}]"),
            c => c.to_string(),
        })
        .collect()
}

/// When the last campaign from `template` was opened.
async fn last_opened<'e>(
    executor: impl sqlx::Executor<'e, Database = sqlx::Any>,
    template: &str,
) -> Result<Option<i64>> {
    Ok(sqlx::query_scalar("SELECT MAX(created_at) FROM review_campaigns WHERE template = $1")
        .bind(template)
        .fetch_one(executor)
        .await?)
}

fn campaign(id: i64) -> String {
    format!("review_campaign:{id}")
}

/// Ends a grant a reviewer revoked, as an administrator's withdrawal does. A grant already on its way out is left to
/// its revoke job, which finishes the item (`ended_with_grant`); one that holds nothing any more counts as removed.
async fn revoke_grant(tx: &mut Tx, item_id: i64, grant_id: i64, by: i64, now: i64) -> Result<()> {
    let state = grant_state(tx, grant_id).await?;
    if state.on(GrantEvent::Released).is_some() {
        let task_id: i64 =
            sqlx::query_scalar("SELECT task_id FROM grants WHERE id = $1").bind(grant_id).fetch_one(&mut **tx).await?;
        let reason = "revoked in an access review";
        let ending =
            Ending { actor: format!("user:{by}"), by: Some(by), action: "grant.withdraw", reason: Some(reason) };
        return end_early(tx, grant_id, task_id, &ending, now).await;
    }
    if GrantState::HOLDING.contains(&state) {
        return Ok(());
    }
    removed(tx, item_id, now).await
}
