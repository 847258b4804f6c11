//! How the server stands: the drift report, the connector's syncs, and the counts the metrics report.

use cone_api::{ConnectorStatus, DriftFinding, DriftPage};

use super::{Page, time};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{Counts, DriftFilter, UserRow};

/// The open drift findings `filter` selects, oldest first, a page at a time.
pub async fn open_drift(s: &AppState, filter: &DriftFilter, page: Page) -> Result<DriftPage> {
    if !matches!(filter.kind.trim(), "" | "unexplained" | "missing") {
        return Err(Error::invalid("kind must be unexplained or missing, or absent for both."));
    }
    let (rows, next_page_token) = page.cut(s.db.open_drift(filter, page.offset, page.limit()).await?);
    let findings = rows
        .into_iter()
        .map(|f| DriftFinding {
            id: f.id,
            kind: f.kind,
            account_id: f.account_id,
            account_name: f.account_name,
            permission_set_arn: f.permission_set_arn,
            permission_set_name: f.permission_set_name,
            principal_id: f.principal_id,
            username: f.username,
            group: f.group_name,
            task_id: f.task_id,
            remedy: f.remedy,
            first_seen: time(f.first_seen),
            last_seen: time(f.last_seen),
        })
        .collect();
    Ok(DriftPage { findings, next_page_token })
}

/// How this process's syncs with AWS stand.
pub fn connector(s: &AppState) -> ConnectorStatus {
    s.sync_status()
}

/// [`connector`] as `u` may see it: AWS's own words about a failure name accounts, roles and policies, so only
/// administrators read them.
pub async fn connector_seen_by(s: &AppState, u: &UserRow) -> anyhow::Result<ConnectorStatus> {
    let mut status = s.sync_status();
    if !super::auth::is_admin(s, u).await? {
        if status.last_error.is_some() {
            status.last_error =
                Some("The last sync with AWS failed; administrators see why on the Connectors page.".into());
        }
        return Ok(status);
    }
    status.hosts = connector_hosts(s).await?;
    Ok(status)
}

/// The external connector's processes heard from lately (an embedded connector has none).
pub async fn connector_hosts(s: &AppState) -> anyhow::Result<Vec<cone_api::ConnectorHost>> {
    let hosts = s.db.connector_hosts(s.now() - HOSTS_SHOWN_FOR).await?;
    Ok(hosts
        .into_iter()
        .map(|h| cone_api::ConnectorHost {
            host_id: h.host_id,
            version: h.version,
            client_id: h.client_id,
            first_seen_at: time(h.first_seen_at),
            last_contact_at: time(h.last_contact_at),
        })
        .collect())
}

/// How long a connector host stays listed after its last contact.
const HOSTS_SHOWN_FOR: i64 = 600;

/// Asks the sync loop for a sync now and returns how the connector stands.
pub fn ask_for_sync(s: &AppState, u: &UserRow) -> ConnectorStatus {
    tracing::info!(user = %u.username, "sync with AWS asked for");
    s.sync_now.notify_one();
    s.sync_status()
}

/// What `/metrics` reports from the database, read now.
pub async fn counts(s: &AppState) -> anyhow::Result<Counts> {
    s.db.counts(s.now()).await
}

/// Whether the database answers within `timeout`: an error that says why not.
pub async fn ready(s: &AppState, timeout: std::time::Duration) -> Result<(), &'static str> {
    match tokio::time::timeout(timeout, s.db.ping()).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => {
            tracing::warn!("not ready: the database failed a trivial query: {e:#}");
            Err("database unavailable")
        }
        Err(_) => Err("database not answering"),
    }
}
