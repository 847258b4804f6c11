//! Background work: provisioning and revocation jobs, grant expiry, and the periodic catalog sync. Every step is
//! recorded in the database before and after it runs, so a crash or restart picks up where it stopped.

use std::sync::Arc;
use std::time::Duration;

use cone_aws::{Assignment, Connector, Principal};
use rand::Rng;

use crate::db::{GrantRow, JobRow};
use crate::http::{AppState, now};

/// How long a claimed job is reserved before another worker may take it over.
const LEASE_SECS: i64 = 300;
/// Provisioning gives up after this many attempts; revocation never does.
const MAX_PROVISION_ATTEMPTS: i64 = 8;
const IDLE_WAKEUP: Duration = Duration::from_secs(5);

pub fn spawn_reconciler(s: AppState, connector: Arc<Connector>) {
    tokio::spawn(reconcile(s, connector));
}

pub async fn sync_once(s: &AppState, connector: &Connector) -> anyhow::Result<()> {
    let snapshot = connector.sync().await?;
    s.db.apply_snapshot(&s.config.aws.app_id, &snapshot, now()).await
}

pub async fn sync_periodically(s: AppState, connector: Arc<Connector>) {
    let every = Duration::from_secs(s.config.aws.sync_interval_secs.max(10));
    loop {
        tokio::time::sleep(every).await;
        if let Err(e) = sync_once(&s, &connector).await {
            tracing::warn!("sync with AWS failed, will retry in {every:?}: {e:#}");
        }
    }
}

/// Expires due grants and runs due jobs, then sleeps until the next due moment or until woken.
async fn reconcile(s: AppState, connector: Arc<Connector>) {
    loop {
        announce(&s, s.db.expire_due_grants(now()).await, "expire grants");
        announce(&s, s.db.time_out_pending(now() - s.config.pending_timeout, now()).await, "time out requests");
        loop {
            match s.db.claim_job(now(), LEASE_SECS).await {
                Ok(Some(job)) => run_job(&s, &connector, job).await,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("cannot claim a job: {e:#}");
                    break;
                }
            }
        }
        let wait = match s.db.next_due(s.config.pending_timeout).await {
            Ok(Some(at)) => {
                let ms = at * 1000 - chrono::Utc::now().timestamp_millis();
                Duration::from_millis(ms.max(0) as u64).min(IDLE_WAKEUP)
            }
            Ok(None) => IDLE_WAKEUP,
            Err(e) => {
                tracing::error!("cannot read the next due time: {e:#}");
                IDLE_WAKEUP
            }
        };
        tokio::select! {
            _ = s.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Tells long-polling clients about the tasks a step changed.
fn announce(s: &AppState, changed: anyhow::Result<Vec<i64>>, what: &str) {
    match changed {
        Ok(tasks) => tasks.into_iter().for_each(|t| {
            let _ = s.task_changes.send(t);
        }),
        Err(e) => tracing::error!("cannot {what}: {e:#}"),
    }
}

fn assignment(g: &GrantRow) -> Assignment {
    Assignment {
        instance_arn: g.instance_arn.clone(),
        account_id: g.account_id.clone(),
        permission_set_arn: g.permission_set_arn.clone(),
        principal: Principal::User(g.principal_id.clone()),
    }
}

/// Exponential backoff with full jitter, capped at five minutes.
fn backoff(attempts: i64) -> i64 {
    let cap = 2i64.saturating_pow(attempts.clamp(0, 20) as u32).min(300);
    rand::thread_rng().gen_range(1..=cap.max(1))
}

async fn run_job(s: &AppState, connector: &Connector, job: JobRow) {
    let result = async {
        let g = s.db.grant(job.grant_id).await?;
        match job.kind.as_str() {
            "provision" => match connector.assign(&assignment(&g)).await {
                Ok(()) => s.db.provisioned(&job, &g, now()).await?,
                Err(e) if e.is_retryable() && job.attempts < MAX_PROVISION_ATTEMPTS => {
                    tracing::warn!(job = job.id, "provisioning will be retried: {e}");
                    s.db.retry_job(&job, &e.to_string(), now() + backoff(job.attempts), now()).await?
                }
                Err(e) => {
                    tracing::error!(job = job.id, "provisioning failed: {e}");
                    s.db.provisioning_failed(&job, &g, &e.to_string(), now()).await?
                }
            },
            "revoke" => {
                if s.db.covered_by_other_grant(&g, now()).await? {
                    s.db.revoked(&job, &g, true, now()).await?
                } else {
                    match connector.unassign(&assignment(&g)).await {
                        Ok(()) => s.db.revoked(&job, &g, false, now()).await?,
                        Err(e) => {
                            tracing::error!(job = job.id, "revocation failed and will be retried: {e}");
                            s.db.retry_job(&job, &e.to_string(), now() + backoff(job.attempts), now()).await?
                        }
                    }
                }
            }
            other => anyhow::bail!("unknown job kind {other}"),
        }
        anyhow::Ok(g.task_id)
    }
    .await;
    match result {
        Ok(task_id) => {
            let _ = s.task_changes.send(task_id);
        }
        Err(e) => tracing::error!(
            job = job.id,
            "job failed to record its result; it will run again when its lease ends: {e:#}"
        ),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn backoff_is_bounded() {
        for attempts in 0..40 {
            let b = super::backoff(attempts);
            assert!((1..=300).contains(&b));
        }
    }
}
