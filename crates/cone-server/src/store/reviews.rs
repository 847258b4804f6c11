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

/// A person's access as it stands: a direct assignment, a standing group membership, or an active grant.
#[derive(Debug, Clone, FromRow)]
pub struct AccessRow {
    #[sqlx(try_from = "String")]
    pub kind: ItemKind,
    pub user_id: i64,
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
    subject: i64,
    campaign_state: String,
    kind: String,
    grant_id: Option<i64>,
    /// 1 when the decider is among the item's reviewers.
    reviewer: i64,
    state: String,
}

/// An item's columns; `i` is the item, joined by [`ITEM_JOINS`].
const ITEM_COLUMNS: &str = "SELECT i.id, i.campaign_id, c.name AS campaign_name, i.kind, u.username,
        u.display_name, i.account_id, i.account_name, i.permission_set_name, i.group_name, i.reaches, g.task_id,
        i.state, d.username AS decided_by, i.decided_at, i.comment, j.state AS job_state,
        j.last_error AS job_error, j.attempts AS job_attempts, i.request_id, i.gone_at,
        ad.hash AS decision_hash, ar.hash AS removal_hash";

/// What an item's row joins: its campaign, people, grant, removal job and audit entries.
const ITEM_JOINS: &str = "JOIN review_campaigns c ON c.id = i.campaign_id JOIN users u ON u.id = i.user_id
    LEFT JOIN users d ON d.id = i.decided_by LEFT JOIN grants g ON g.id = i.grant_id
    LEFT JOIN jobs j ON j.id = COALESCE(i.job_id,
        (SELECT MAX(r.id) FROM jobs r WHERE i.grant_id IS NOT NULL AND r.grant_id = i.grant_id AND r.kind = 'revoke'))
    LEFT JOIN audit_log ad ON ad.id = i.decision_audit_id LEFT JOIN audit_log ar ON ar.id = i.removed_audit_id";

const CAMPAIGN_SELECT: &str = "SELECT c.id, c.name, c.scope, c.reviewers, c.due_at, c.state, u.username AS created_by,
        c.created_at, c.closed_at, c.template,
        (SELECT COUNT(*) FROM review_items i WHERE i.campaign_id = c.id) AS items,
        (SELECT COUNT(*) FROM review_items i WHERE i.campaign_id = c.id AND i.state = 'pending') AS pending,
        (SELECT COUNT(*) FROM review_items i WHERE i.campaign_id = c.id AND i.state = 'revoking') AS revoking
    FROM review_campaigns c JOIN users u ON u.id = c.created_by";

impl Db {
    /// Everything people hold in AWS as Cone knows it: direct assignments and standing memberships as the last sync
    /// read them (leaving out those a Cone grant made or explains, which are reviewed as that grant), and active
    /// grants; with what each Identity Center group is assigned.
    pub async fn access_in_force(&self, now: i64) -> Result<(Vec<AccessRow>, Vec<GroupReachRow>)> {
        let holding = holding_states();
        let access = sqlx::query_as(&format!(
            "SELECT 'assignment' AS kind, u.id AS user_id, u.username, u.idc_user_id AS principal_id, e.app_id,
                 e.id AS entitlement_id, a.instance_arn, e.resource_id AS account_id,
                 COALESCE(r.name, e.resource_id) AS account_name, e.permission_set_arn, e.permission_set_name,
                 '' AS group_id, '' AS group_name, CAST(NULL AS BIGINT) AS grant_id, u.display_name
             FROM user_assignments ua JOIN users u ON u.id = ua.user_id
             JOIN entitlements e ON e.app_id = ua.app_id AND e.id = ua.entitlement_id JOIN apps a ON a.id = e.app_id
             LEFT JOIN resources r ON r.app_id = e.app_id AND r.id = e.resource_id
             WHERE u.left_at IS NULL AND u.idc_user_id IS NOT NULL AND NOT EXISTS (
                 SELECT 1 FROM grants g WHERE g.user_id = u.id AND g.app_id = e.app_id AND g.entitlement_id = e.id
                 AND g.state IN {holding})
             UNION ALL
             SELECT 'group_membership', u.id, u.username, u.idc_user_id, e.app_id, e.id, a.instance_arn, '', '', '',
                 '', e.group_id, e.group_name, CAST(NULL AS BIGINT), u.display_name
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
                 g.group_id, COALESCE(e.group_name, g.group_id), g.id, u.display_name
             FROM grants g JOIN users u ON u.id = g.user_id
             LEFT JOIN entitlements e ON e.app_id = g.app_id AND e.id = g.entitlement_id
             LEFT JOIN resources r ON r.app_id = g.app_id AND r.id = g.account_id
             WHERE g.state = 'active' AND g.expires_at > $1
             ORDER BY 3, 1, 9, 11, 13, 6"
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
                let names = [&a.username, &a.display_name, &a.account_name, &a.account_id, &a.permission_set_name];
                let mut text = names.map(|n| n.as_str()).join(" ");
                text.push(' ');
                text.push_str(&a.group_name);
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
                Int(Some(a.user_id)),
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
        tx.commit().await?;
        // PostgreSQL plans by statistics its autovacuum brings up to date within minutes; a campaign can double the
        // tables at once, and reviewers open their pages at once.
        if self.backend == Backend::Postgres {
            sqlx::query("ANALYZE review_items, review_reviewers").execute(&self.pool).await?;
        }
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
        // The page's ids first, then their rows: an item's row joins six tables, which only the page's need. A
        // campaign's items are numbered by person, then by names (`access_in_force`'s order), so by person is by id, which a
        // reviewer's rows (`review_reviewers`, keyed by person and item) and a campaign's index give without a sort.
        // By entitlement, a campaign's index gives the order and each item's reviewer is looked up.
        // On SQLite a reviewer's words are looked up in the trigram index (migration 0027), which then leads the join
        // (SQLite keeps a CROSS JOIN's order), so that the items holding them are read rather than every item the
        // reviewer has. FTS5 uses its index for a GLOB, and for a LIKE only without an ESCAPE; the text is in lower
        // case. PostgreSQL reads the text.
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
            clauses.push(format!("u.username = {}", param(u.clone())));
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
            "{ITEM_COLUMNS} FROM (
                 SELECT i.id FROM {from} JOIN users u ON u.id = i.user_id WHERE {}
                 ORDER BY {inner_order} LIMIT {l} OFFSET {o}) page
             JOIN review_items i ON i.id = page.id {ITEM_JOINS}
             ORDER BY {order}",
            clauses.join(" AND ")
        );
        let mut query = sqlx::query_as(&sql);
        for a in args {
            query = query.bind(a);
        }
        Ok(query.fetch_all(&self.pool).await?)
    }

    pub async fn review_item(&self, id: i64) -> Result<Option<ItemRow>> {
        let sql = format!("{ITEM_COLUMNS} FROM review_items i {ITEM_JOINS} WHERE i.id = $1");
        Ok(sqlx::query_as(&sql).bind(id).fetch_optional(&self.pool).await?)
    }

    /// The user names of those who may decide each of `ids`: (item id, user name).
    pub async fn item_reviewers(&self, ids: &[i64]) -> Result<Vec<(i64, String)>> {
        let sql = format!(
            "SELECT r.item_id, u.username FROM review_reviewers r JOIN users u ON u.id = r.user_id
             WHERE r.item_id IN ({}) ORDER BY r.item_id, u.username",
            self.backend.json_ids("$1")
        );
        Ok(sqlx::query_as(&sql).bind(serde_json::to_string(ids)?).fetch_all(&self.pool).await?)
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
        if subject == by {
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
        let row: Option<(i64, String, String)> = sqlx::query_as(
            "SELECT i.user_id, c.state, i.state FROM review_items i JOIN review_campaigns c ON c.id = i.campaign_id
             WHERE i.id = $1",
        )
        .bind(item_id)
        .fetch_optional(&mut *tx)
        .await?;
        let Some((subject, campaign_state, state)) = row else { return Ok(Err(Refusal::NoSuchItem)) };
        if subject == to {
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

    /// What a review job removes: (kind, instance, account, permission set, principal, group).
    pub async fn review_target(&self, item_id: i64) -> Result<(ItemKind, String, String, String, String, String)> {
        let (kind, instance, account, set, principal, group): (String, String, String, String, String, String) =
            sqlx::query_as(
                "SELECT kind, instance_arn, account_id, permission_set_arn, principal_id, group_id
                 FROM review_items WHERE id = $1",
            )
            .bind(item_id)
            .fetch_one(&self.pool)
            .await?;
        Ok((ItemKind::try_from(kind).map_err(anyhow::Error::msg)?, instance, account, set, principal, group))
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

    /// Marks the undecided and certified items of open campaigns whose access a sync no longer finds as gone.
    pub async fn review_items_gone(&self, now: i64) -> Result<usize> {
        let mut tx = self.begin().await?;
        let ids: Vec<i64> = sqlx::query_scalar(&format!(
            "SELECT i.id FROM review_items i JOIN review_campaigns c ON c.id = i.campaign_id
             WHERE c.state = 'open' AND i.state IN {} AND CASE i.kind
                 WHEN 'assignment' THEN NOT EXISTS (SELECT 1 FROM user_assignments a
                     WHERE a.app_id = i.app_id AND a.entitlement_id = i.entitlement_id AND a.user_id = i.user_id)
                 WHEN 'group_membership' THEN NOT EXISTS (SELECT 1 FROM group_members m
                     JOIN groups g ON g.id = m.group_id WHERE g.idc_group_id = i.group_id AND m.user_id = i.user_id)
                 ELSE NOT EXISTS (SELECT 1 FROM grants g WHERE g.id = i.grant_id AND g.state = 'active'
                     AND g.expires_at > $1) END",
            sql_list(ItemState::before(ItemEvent::Vanished).into_iter().map(ItemState::as_str))
        ))
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        for id in &ids {
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
        Ok(ids.len())
    }
}

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
