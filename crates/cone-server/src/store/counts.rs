//! What the operations endpoints read: aggregate counts, and whether the database answers at all.

use anyhow::Result;

use super::pool::Db;

/// Work waiting and work given up, requests by state and grants in force, as `/metrics` reports them.
pub struct Counts {
    /// (kind, state, count) of pending and failed jobs; done jobs only grow.
    pub jobs: Vec<(String, String, i64)>,
    /// (state, count) of every task.
    pub tasks: Vec<(String, i64)>,
    pub active_grants: i64,
    /// (webhook, state, count) of pending and failed deliveries.
    pub deliveries: Vec<(String, String, i64)>,
    /// (channel, state, count) of pending and failed notifications.
    pub notifications: Vec<(String, String, i64)>,
}

impl Db {
    /// Five small aggregate queries, read at each scrape so that every replica reports the same numbers.
    pub async fn counts(&self, now: i64) -> Result<Counts> {
        let jobs = sqlx::query_as(
            "SELECT kind, state, COUNT(*) FROM jobs WHERE state IN ('pending', 'failed') GROUP BY kind, state",
        )
        .fetch_all(&self.pool)
        .await?;
        let tasks = sqlx::query_as("SELECT state, COUNT(*) FROM tasks GROUP BY state").fetch_all(&self.pool).await?;
        let active_grants =
            sqlx::query_scalar("SELECT COUNT(*) FROM grants WHERE state = 'active' AND expires_at > $1")
                .bind(now)
                .fetch_one(&self.pool)
                .await?;
        let deliveries = sqlx::query_as(
            "SELECT webhook, state, COUNT(*) FROM webhook_deliveries WHERE state IN ('pending', 'failed')
             GROUP BY webhook, state",
        )
        .fetch_all(&self.pool)
        .await?;
        let notifications = sqlx::query_as(
            "SELECT channel, state, COUNT(*) FROM notifications WHERE state IN ('pending', 'failed')
             GROUP BY channel, state",
        )
        .fetch_all(&self.pool)
        .await?;
        Ok(Counts { jobs, tasks, active_grants, deliveries, notifications })
    }

    /// A trivial query: the database answers.
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }
}
