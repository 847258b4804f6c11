//! Other replicas' changes, heard on PostgreSQL's notification channels.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;

use super::pool::Db;
use crate::config::Database;

/// On PostgreSQL, other replicas' changes: a changed task is forwarded to this process's long-polling clients
/// (`cone_task`), a change behind the cached reads advances `db`'s generation (`cone_cache`), and a new version of
/// the access document notifies `access` (`cone_config`), and a connector call queued or answered wakes this
/// process's long-polling connectors or waiting workers (`cone_call`).
pub async fn forward_changes(
    db: Db,
    database: Database,
    changes: tokio::sync::broadcast::Sender<i64>,
    access: Arc<Notify>,
) {
    let Database::Postgres { url, name } = database else { return };
    let missed = || {
        db.data_changed();
        access.notify_one();
        db.calls_queued().notify_waiters();
        db.calls_answered().notify_waiters();
    };
    loop {
        let listening = async {
            let mut listener = sqlx::postgres::PgListener::connect(&url).await?;
            listener.listen_all(["cone_task", "cone_cache", "cone_config", "cone_call"]).await?;
            Ok::<_, sqlx::Error>(listener)
        };
        let mut listener = match listening.await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!("cannot listen for other replicas' changes on {name}, retrying: {e}");
                tokio::time::sleep(Duration::from_secs(1)).await;
                continue;
            }
        };
        // Whatever changed before the listener was up is unknown.
        missed();
        loop {
            match listener.recv().await {
                Ok(n) if n.channel() == "cone_cache" => db.data_changed(),
                Ok(n) if n.channel() == "cone_config" => access.notify_one(),
                Ok(n) if n.channel() == "cone_call" && n.payload() == "queued" => db.calls_queued().notify_waiters(),
                Ok(n) if n.channel() == "cone_call" => db.calls_answered().notify_waiters(),
                Ok(n) => {
                    if let Ok(id) = n.payload().parse() {
                        let _ = changes.send(id);
                    }
                }
                // The listener reconnects by itself on the next `recv`. Notifications sent while it was away are
                // lost: a waiting client loses at most its long-poll timeout, and the cached reads start afresh.
                Err(e) => {
                    tracing::warn!("lost the listener for other replicas' changes on {name}, reconnecting: {e}");
                    missed();
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
    }
}
