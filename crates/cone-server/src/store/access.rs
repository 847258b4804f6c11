//! The access document's versions: what the configuration file and administrators applied, by whom and when.

use anyhow::{Context, Result};
use sha2::{Digest, Sha256};
use sqlx::FromRow;

use super::audit::record;
use super::pool::{Db, Tx};

/// A version of the access document, with the username of whoever applied it through the API.
#[derive(Debug, Clone, FromRow)]
pub struct ConfigVersionRow {
    pub id: i64,
    pub document: String,
    pub digest: String,
    /// `file` or `api`.
    pub source: String,
    pub author: Option<String>,
    pub comment: String,
    pub created_at: i64,
}

const CONFIG_SELECT: &str = "SELECT v.id, v.document, v.digest, v.source, u.username AS author, v.comment, v.created_at
    FROM config_versions v LEFT JOIN users u ON u.id = v.author_id";

/// What became of an access document applied through the API.
#[derive(Debug)]
pub enum Applied {
    New(ConfigVersionRow),
    /// The newest version says the same: nothing recorded.
    Unchanged(ConfigVersionRow),
    /// The version its author started from is no longer the newest, which is this one.
    Stale(i64),
}

impl Db {
    /// Records the configuration file's access document as a new version when the file says something else than
    /// at its last version, and returns the version in force. So a version applied through the API since then
    /// stays in force until the file itself changes, and servers restarting with the same file agree.
    pub async fn apply_file_access(&self, document: &str, comment: &str, now: i64) -> Result<ConfigVersionRow> {
        let mut tx = self.begin().await?;
        let digest = hex::encode(Sha256::digest(document.as_bytes()));
        let last: Option<String> =
            sqlx::query_scalar("SELECT digest FROM config_versions WHERE source = 'file' ORDER BY id DESC LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        if last.as_deref() != Some(digest.as_str()) {
            insert_config_version(&mut tx, document, &digest, None, comment, now).await?;
        }
        let current = newest_config(&mut tx).await?.context("the access document's version just recorded is gone")?;
        tx.commit().await?;
        Ok(current)
    }

    /// Records an access document applied through the API by `author_id`. `base`, when given, is the version its
    /// author started from: if another has been applied since, nothing is recorded.
    pub async fn apply_access(
        &self,
        document: &str,
        author_id: i64,
        comment: &str,
        base: Option<i64>,
        now: i64,
    ) -> Result<Applied> {
        let mut tx = self.begin().await?;
        let digest = hex::encode(Sha256::digest(document.as_bytes()));
        let newest = newest_config(&mut tx).await?;
        if let Some(base) = base
            && newest.as_ref().map_or(0, |v| v.id) != base
        {
            return Ok(Applied::Stale(newest.map_or(0, |v| v.id)));
        }
        if let Some(v) = newest.filter(|v| v.digest == digest) {
            return Ok(Applied::Unchanged(v));
        }
        insert_config_version(&mut tx, document, &digest, Some(author_id), comment, now).await?;
        let row = newest_config(&mut tx).await?.context("the access document's version just recorded is gone")?;
        tx.commit().await?;
        Ok(Applied::New(row))
    }

    /// The access document in force: the newest version.
    pub async fn current_access(&self) -> Result<Option<ConfigVersionRow>> {
        Ok(self.access_versions(0, 1).await?.pop())
    }

    pub async fn access_version(&self, id: i64) -> Result<Option<ConfigVersionRow>> {
        Ok(sqlx::query_as(&format!("{CONFIG_SELECT} WHERE v.id = $1")).bind(id).fetch_optional(&self.pool).await?)
    }

    /// Versions of the access document, newest first.
    pub async fn access_versions(&self, offset: i64, limit: i64) -> Result<Vec<ConfigVersionRow>> {
        Ok(sqlx::query_as(&format!("{CONFIG_SELECT} ORDER BY v.id DESC LIMIT $1 OFFSET $2"))
            .bind(limit)
            .bind(offset)
            .fetch_all(&self.pool)
            .await?)
    }
}

async fn newest_config(tx: &mut Tx) -> Result<Option<ConfigVersionRow>> {
    Ok(sqlx::query_as(&format!("{CONFIG_SELECT} ORDER BY v.id DESC LIMIT 1")).fetch_optional(&mut **tx).await?)
}

/// A new version of the access document, with its audit entry (`file` or the author as actor).
async fn insert_config_version(
    tx: &mut Tx,
    document: &str,
    digest: &str,
    author_id: Option<i64>,
    comment: &str,
    now: i64,
) -> Result<()> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO config_versions (document, digest, source, author_id, comment, created_at)
         VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
    )
    .bind(document)
    .bind(digest)
    .bind(if author_id.is_some() { "api" } else { "file" })
    .bind(author_id)
    .bind(comment)
    .bind(now)
    .fetch_one(&mut **tx)
    .await?;
    let actor = author_id.map_or("file".to_string(), |a| format!("user:{a}"));
    let detail = serde_json::json!({ "digest": digest, "comment": comment }).to_string();
    record(tx, now, &actor, "config.apply", &format!("config:{id}"), &detail).await.map(drop)
}
