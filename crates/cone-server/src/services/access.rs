//! The access document: the access profiles, entitlement-management rules and policies, versioned in the
//! database so that they can change without a restart and every change is kept with who made it and when.
//!
//! The configuration file's access sections are applied at start-up when they differ from what the file said at
//! its last version, so a repository of policies deployed with the file stays the source of truth; between such
//! changes, administrators apply documents through the API (`cone policy apply`) or the console. Each server holds
//! the version in force compiled in memory ([`AppState::access`]); a server that records a version swaps it in at
//! once, and on PostgreSQL the others hear of it on channel `cone_config` and load it.

use std::sync::Arc;

use cone_api::{AppliedConfig, ApplyConfig, ConfigSummary, ConfigVersion, ConfigVersionPage};
use tokio::sync::Notify;

use super::{Page, time};
use crate::config::{Access, Config};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{Applied, ConfigVersionRow, Db};

/// Larger documents are refused: a policy set is a few kilobytes, and every replica compiles each version.
const MAX_DOCUMENT: usize = 1 << 20;

/// Records the file's access document if it changed, and compiles the version in force. A version applied through
/// the API that no longer fits the file's settings (an owner or attribute it names is gone) stops the start with
/// what to fix.
pub async fn load_at_start(db: &Db, config: &Config, file: &str, now: i64) -> anyhow::Result<Access> {
    let comment = format!("the access sections of {file}, at start-up");
    let current = db.apply_file_access(&config.access_document, &comment, now).await?;
    compile(config, &current).map_err(|e| {
        anyhow::anyhow!(
            "the access document in force (version {}, applied through the API by {}) does not fit this server's \
             configuration: {e:#}. Restore what it needs in {file}, or change the access sections of {file} so that \
             they are applied instead",
            current.id,
            current.author.as_deref().unwrap_or("?"),
        )
    })
}

fn compile(config: &Config, v: &ConfigVersionRow) -> anyhow::Result<Access> {
    let mut access = config.access(&v.document)?;
    access.version = v.id;
    Ok(access)
}

/// Swaps in each newer version another replica records; `changed` is notified for every one (and whenever
/// notifications may have been missed).
pub async fn follow(state: AppState, changed: Arc<Notify>) {
    loop {
        changed.notified().await;
        if let Err(e) = reload(&state).await {
            tracing::error!(
                "cannot load the newest access document; keeping version {}: {e:#}",
                state.access().version
            );
        }
    }
}

async fn reload(s: &AppState) -> anyhow::Result<()> {
    let Some(newest) = s.db.current_access().await? else { return Ok(()) };
    if newest.id > s.access().version {
        install(s, compile(&s.config, &newest)?);
    }
    Ok(())
}

/// Puts `access` in force unless a newer version already is: an apply here and a reload of another replica's
/// version may finish in either order.
fn install(s: &AppState, access: Access) {
    let version = access.version;
    let new = Arc::new(access);
    let old = s.access.rcu(|old| if old.version > version { old.clone() } else { new.clone() });
    if old.version < version {
        tracing::info!("access document version {version} in force");
    }
}

fn to_api(v: ConfigVersionRow) -> ConfigVersion {
    ConfigVersion {
        version: v.id,
        document: v.document,
        digest: v.digest,
        source: v.source,
        author: v.author,
        comment: v.comment,
        created_at: time(v.created_at),
    }
}

/// The document compiled against this server's settings, or why it cannot be.
fn check(s: &AppState, document: &str) -> Result<Access> {
    if document.len() > MAX_DOCUMENT {
        return Err(Error::InvalidConfig(format!(
            "The access document has {} bytes, more than the 1 MiB allowed.",
            document.len()
        )));
    }
    s.config.access(document).map_err(|e| {
        Error::InvalidConfig(format!(
            "The access document is not valid: {e:#}. Nothing was applied; fix it and try again."
        ))
    })
}

/// The version in force on this server.
pub async fn in_force(s: &AppState) -> Result<ConfigVersion> {
    version(s, s.access().version).await
}

/// One version of the access document.
pub async fn version(s: &AppState, id: i64) -> Result<ConfigVersion> {
    s.db.access_version(id).await?.map(to_api).ok_or_else(|| {
        Error::NotFound(format!("There is no version {id} of the access document; `cone policy history` lists them."))
    })
}

/// Checks a document and records it as the newest version, applied by `author_id`, and puts it in force here.
pub async fn apply(s: &AppState, author_id: i64, req: &ApplyConfig) -> Result<AppliedConfig> {
    let mut access = check(s, &req.document)?;
    let applied = s.db.apply_access(&req.document, author_id, &req.comment, req.base_version, s.now()).await?;
    match applied {
        Applied::New(row) => {
            access.version = row.id;
            install(s, access);
            Ok(AppliedConfig { changed: true, version: to_api(row) })
        }
        Applied::Unchanged(row) => Ok(AppliedConfig { changed: false, version: to_api(row) }),
        Applied::Stale(newest) => Err(Error::StaleVersion(format!(
            "Version {newest} of the access document was applied after version {}, which this change started \
             from; fetch it (`cone policy show`, or the console's Policies page), redo the change on it and apply \
             again.",
            req.base_version.unwrap_or_default()
        ))),
    }
}

/// What a document defines, or why it does not check; nothing is applied.
pub fn summarize(s: &AppState, document: &str) -> Result<ConfigSummary> {
    let access = check(s, document)?;
    Ok(ConfigSummary {
        policies: access.policies().iter().map(|p| p.name.clone()).collect(),
        access_profiles: access.catalog.profiles.iter().map(|p| p.name.clone()).collect(),
        entitlement_management_rules: access.catalog.rules.len(),
    })
}

/// A page of versions, newest first.
pub async fn versions(s: &AppState, page: Page) -> Result<ConfigVersionPage> {
    let (rows, next_page_token) = page.cut(s.db.access_versions(page.offset, page.limit()).await?);
    Ok(ConfigVersionPage { versions: rows.into_iter().map(to_api).collect(), next_page_token })
}
