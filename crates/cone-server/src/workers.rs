//! Background work: provisioning and revocation jobs, grant expiry, the periodic catalog sync with the drift sweep
//! and the IAM sync after it. Every step is recorded in the database before and after it runs, so a crash or
//! restart picks up where it stopped.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use cone_aws::{Assignment, Connector, Part, PermissionSet, Principal, SqlSpool};
use futures_util::StreamExt;
use rand::Rng;

use crate::db::{Db, DeliveryRow, GrantRow, JobRow, Repair};
use crate::drift;
use crate::http::{AppState, now};
use crate::webhooks::{Attempt, Sender};

/// Provisioning gives up after this many attempts; revocation and drift repairs never do (a restoration stops when
/// its grant ends).
const MAX_PROVISION_ATTEMPTS: i64 = 8;
const IDLE_WAKEUP: Duration = Duration::from_secs(5);
/// Jobs one server runs at once. The connector's rate limits set the pace of the calls to AWS; several jobs in
/// flight keep that pace from being bound by each call's round trip. Jobs on one assignment never run side by side
/// (`Db::claim_job`).
const JOBS_IN_FLIGHT: usize = 16;

/// How many webhook deliveries one worker attempts at once.
const DELIVERY_BATCH: i64 = 8;
/// How long a claimed delivery stays this worker's: longer than a batch of attempts takes (each times out after
/// 10 s), so another replica only takes over from a worker that died.
const DELIVERY_LEASE: i64 = 60;
/// Delivered and failed deliveries are kept this long (the audit log keeps the events for good).
const DELIVERY_RETENTION: i64 = 30 * 24 * 3600;

pub fn spawn_reconciler(s: AppState, connector: Arc<Connector>) {
    tokio::spawn(reconcile(s, connector));
}

pub fn spawn_webhook_sender(s: AppState, sender: Arc<Sender>) {
    tokio::spawn(deliver_webhooks(s, sender));
}

/// The least time between the starts of two syncs.
const MIN_SYNC_GAP: Duration = Duration::from_secs(10);

/// Syncs the catalog from AWS, then sweeps for drift when the last sweep (at `last_sweep`, the start of its sync)
/// is `drift.interval` old, then syncs IAM as `aws.sync_iam` and `aws.sync_secrets` ask. A failed sweep is logged
/// and tried again after the next sync.
pub async fn sync_once(s: &AppState, connector: &Connector, last_sweep: &mut Option<i64>) -> anyhow::Result<()> {
    let started = chrono::Utc::now();
    let result = sync_and_sweep(s, connector, last_sweep).await;
    let mut status = s.sync_status.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
    status.last_attempt_at = Some(started);
    match &result {
        Ok(()) => {
            status.state = cone_api::CONNECTOR_CONNECTED.into();
            status.last_success_at = Some(started);
            status.last_error = None;
        }
        Err(e) => {
            status.state = cone_api::CONNECTOR_ERROR.into();
            status.last_error = Some(format!("{e:#}"));
        }
    }
    result
}

async fn sync_and_sweep(s: &AppState, connector: &Connector, last_sweep: &mut Option<i64>) -> anyhow::Result<()> {
    let spool = s.db.sync_spool().await?;
    let result = sync_through(s, connector, &spool, last_sweep).await;
    // Stored or not, this run's parts are of no further use: an interrupted sync resumes from the journal.
    if let Err(e) = spool.clear().await {
        tracing::warn!("cannot clear the sync's spool; a later sync clears it within a day: {e}");
    }
    result
}

async fn sync_through(
    s: &AppState,
    connector: &Connector,
    spool: &SqlSpool,
    last_sweep: &mut Option<i64>,
) -> anyhow::Result<()> {
    let mut synced_at = now();
    let synced = connector.sync_into(&s.db.sync_journal(), spool).await?;
    if let Some(r) = synced.resumed {
        tracing::info!(units = r.units, read = r.read, "resumed the sync an earlier one left unfinished");
        metrics::counter!("cone_sync_resumed_units_total").increment(r.units as u64);
        // What the journal gave was read then: the sweep must not take it for newer.
        synced_at = synced_at.min(r.oldest);
    }
    let permission_sets = s.db.apply_sync(&s.config.aws.app_id, &synced.instance_arn, spool.parts(None), now()).await?;
    if last_sweep.is_none_or(|t| synced_at - t >= s.config.drift.interval) {
        match sweep(s, &synced.instance_arn, &permission_sets, spool, synced_at).await {
            Ok(()) => *last_sweep = Some(synced_at),
            Err(e) => tracing::error!("the drift sweep failed; it runs again after the next sync: {e:#}"),
        }
    }
    // After the catalog and the sweep, so that IAM failing (say, a role without `iam:ListAccessKeys`) holds neither
    // up. With both features off this reads nothing and forgets what an earlier sync stored.
    connector
        .sync_iam_into(&s.config.aws.iam_features(), spool)
        .await
        .context("the IAM sync (aws.sync_iam, aws.sync_secrets) failed; the Identity Center catalog is up to date")?;
    s.db.apply_iam(&s.config.aws.app_id, spool.parts(Some(Part::IAM)), now()).await?;
    Ok(())
}

/// Syncs every `aws.sync_interval_secs`, or every `drift.interval` when that is shorter, and never more often
/// than every 10 s (each sync reads all of Identity Center, within its API rate limits); and when an administrator
/// asks (`AppState::sync_now`), at once or 10 s after the last ended. Asking again meanwhile asks for that one sync.
pub async fn sync_periodically(s: AppState, connector: Arc<Connector>, mut last_sweep: Option<i64>) {
    let mut every = s.config.aws.sync_interval_secs;
    if s.config.drift.interval > 0 {
        every = every.min(s.config.drift.interval.unsigned_abs());
    }
    let every = Duration::from_secs(every.max(10));
    loop {
        let gap = tokio::time::sleep(MIN_SYNC_GAP);
        tokio::select! {
            () = tokio::time::sleep(every) => {}
            () = async { s.sync_now.notified().await; gap.await } => {}
        }
        if let Err(e) = sync_once(&s, &connector, &mut last_sweep).await {
            tracing::warn!("sync with AWS failed, will retry in {every:?}: {e:#}");
        }
    }
}

/// Compares the assignments of a sync that started at `synced_at` with the grants, records what differs, and
/// wakes the workers for the repairs it queued.
async fn sweep(
    s: &AppState,
    instance_arn: &str,
    permission_sets: &[PermissionSet],
    spool: &SqlSpool,
    synced_at: i64,
) -> anyhow::Result<()> {
    let remove = &s.config.drift.remove_unexplained;
    for name in drift::unknown_permission_sets(permission_sets, remove) {
        tracing::warn!(
            "drift.remove_unexplained names the permission set \"{name}\", which Identity Center does not have; \
             check the spelling in the configuration"
        );
    }
    let grants = s.db.drift_grants(synced_at).await?;
    let mut comparison = drift::Comparison::new(instance_arn, permission_sets, &grants, remove, synced_at, now());
    let mut parts = spool.parts(Some(Part::ASSIGNMENTS));
    while let Some(part) = parts.next().await {
        if let Part::Assignments(list) = part? {
            list.iter().for_each(|a| comparison.see(a));
        }
    }
    let findings = comparison.findings();
    let record = s.db.record_drift(instance_arn, &findings, now()).await?;
    for f in &record.opened {
        tracing::warn!(
            finding = f.id,
            kind = f.kind,
            account = f.account_name.as_deref().unwrap_or(&f.account_id),
            permission_set = f.permission_set_name.as_deref().unwrap_or(&f.permission_set_arn),
            user = f.username.as_deref().unwrap_or(&f.principal_id),
            remedy = f.remedy.as_deref().unwrap_or("none (reported only)"),
            "drift between Identity Center and Cone's grants"
        );
    }
    if record.resolved > 0 {
        tracing::info!("{} drift finding(s) resolved", record.resolved);
    }
    if record.queued > 0 {
        s.wake.notify_one();
    }
    Ok(())
}

/// Expires due grants and starts due jobs, then sleeps until a job finishes, the next due moment, or a wake-up.
async fn reconcile(s: AppState, connector: Arc<Connector>) {
    let mut running = tokio::task::JoinSet::new();
    loop {
        announce(&s, s.db.expire_due_grants(now()).await, "expire grants");
        announce(&s, s.db.time_out_pending(now() - s.config.pending_timeout, now()).await, "time out requests");
        announce(&s, crate::app::end_waits(&s).await, "end policy waits");
        while running.len() < JOBS_IN_FLIGHT {
            match s.db.claim_job(now(), s.config.job_lease).await {
                Ok(Some(job)) => {
                    let (s, connector) = (s.clone(), connector.clone());
                    running.spawn(async move { run_job(&s, &connector, job).await });
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("cannot claim a job: {e:#}");
                    break;
                }
            }
        }
        let wait = until_due(s.db.next_due(s.config.pending_timeout).await, "the next due time");
        tokio::select! {
            // A finished job frees a place, and may unblock a job on the same assignment.
            Some(done) = running.join_next(), if !running.is_empty() => {
                if let Err(e) = done {
                    tracing::error!("a job stopped abnormally; it will run again when its lease ends: {e}");
                }
            }
            _ = s.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// How long to sleep until `next` (a Unix time), at most `IDLE_WAKEUP`; `IDLE_WAKEUP` when nothing is due or the
/// time cannot be read.
fn until_due(next: anyhow::Result<Option<i64>>, what: &str) -> Duration {
    match next {
        Ok(Some(at)) => {
            let ms = at * 1000 - chrono::Utc::now().timestamp_millis();
            Duration::from_millis(ms.max(0) as u64).min(IDLE_WAKEUP)
        }
        Ok(None) => IDLE_WAKEUP,
        Err(e) => {
            tracing::error!("cannot read {what}: {e:#}");
            IDLE_WAKEUP
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

/// Sends due webhook deliveries, then sleeps until the next is due, or until a committed change queues one.
async fn deliver_webhooks(s: AppState, sender: Arc<Sender>) {
    let mut pruned_at = 0;
    loop {
        loop {
            match deliver_due(&s.db, &sender, now()).await {
                Ok(n) if n as i64 == DELIVERY_BATCH => continue,
                Ok(_) => break,
                Err(e) => {
                    tracing::error!("cannot send webhook deliveries, retrying shortly: {e:#}");
                    break;
                }
            }
        }
        if now() - pruned_at > 3600 {
            pruned_at = now();
            if let Err(e) = s.db.prune_deliveries(now() - DELIVERY_RETENTION).await {
                tracing::warn!("cannot forget old webhook deliveries: {e:#}");
            }
        }
        let wait = until_due(s.db.next_delivery_due().await, "when the next webhook delivery is due");
        tokio::select! {
            _ = s.db.deliveries_queued().notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Claims a batch of due deliveries, attempts them side by side, and records each outcome; returns how many it
/// claimed.
pub async fn deliver_due(db: &Db, sender: &Arc<Sender>, now: i64) -> anyhow::Result<usize> {
    let batch = db.claim_deliveries(now, DELIVERY_LEASE, DELIVERY_BATCH).await?;
    let claimed = batch.len();
    let mut attempts = tokio::task::JoinSet::new();
    for d in batch {
        let (db, sender) = (db.clone(), sender.clone());
        attempts.spawn(async move {
            let attempt = sender.send(&d, now).await;
            record_attempt(&db, &sender, &d, attempt, now).await
        });
    }
    while let Some(done) = attempts.join_next().await {
        match done {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!("cannot record a webhook attempt; it is retried after its lease: {e:#}"),
            Err(e) => tracing::error!("a webhook attempt stopped unexpectedly; it is retried after its lease: {e}"),
        }
    }
    Ok(claimed)
}

/// Marks the delivery delivered, or schedules it again with backoff, or gives up after the webhook's
/// `max_attempts`. Logs name the webhook and the delivery, never the URL or the secret.
async fn record_attempt(db: &Db, sender: &Sender, d: &DeliveryRow, attempt: Attempt, now: i64) -> anyhow::Result<()> {
    let (webhook, delivery, event) = (d.webhook.as_str(), d.delivery_id.as_str(), d.event.as_str());
    match attempt {
        Attempt::Delivered(status) => db.record_delivery(d.id, "delivered", Some(status), None, now, now).await,
        Attempt::Unconfigured => {
            tracing::error!(
                webhook,
                delivery,
                event,
                "webhook delivery dropped: no webhook of this name is configured any more"
            );
            let error = "the webhook is no longer configured";
            db.record_delivery(d.id, "failed", None, Some(error), now, now).await
        }
        Attempt::Failed { status, error } => {
            let max = sender.target(webhook).map_or(1, |t| t.max_attempts);
            if d.attempts >= max {
                tracing::error!(
                    webhook,
                    delivery,
                    event,
                    attempts = d.attempts,
                    "webhook delivery failed for good: {error}; the receiver can read the event from \
                     GET /api/v1/audit"
                );
                db.record_delivery(d.id, "failed", status, Some(&error), now, now).await
            } else {
                let delay = webhook_backoff(d.attempts);
                tracing::warn!(
                    webhook,
                    delivery,
                    event,
                    attempts = d.attempts,
                    "webhook delivery failed, retrying in {delay} s: {error}"
                );
                db.record_delivery(d.id, "pending", status, Some(&error), now + delay, now).await
            }
        }
    }
}

/// Seconds before the next attempt after `attempts` failed ones: exponential (2, 4, 8, … s), capped at an hour,
/// with "equal jitter" (half fixed, half random) so retries spread out yet still grow.
fn webhook_backoff(attempts: i64) -> i64 {
    let ceiling = 2i64.saturating_pow(attempts.clamp(1, 20) as u32).min(3600);
    ceiling / 2 + rand::thread_rng().gen_range(0..=ceiling / 2)
}

/// Exponential backoff with full jitter, capped at five minutes.
fn backoff(attempts: i64) -> i64 {
    let cap = 2i64.saturating_pow(attempts.clamp(0, 20) as u32).min(300);
    rand::thread_rng().gen_range(1..=cap.max(1))
}

async fn run_job(s: &AppState, connector: &Connector, job: JobRow) {
    let result = match job.kind.as_str() {
        "provision" | "revoke" => grant_job(s, connector, &job).await.map(Some),
        "reprovision" => reprovision(s, connector, &job).await.map(|()| None),
        "remove_drift" => remove_drift(s, connector, &job).await.map(|()| None),
        other => Err(anyhow::anyhow!("unknown job kind {other}; is a newer cone-server sharing this database?")),
    };
    match result {
        Ok(task_id) => {
            if let Some(task_id) = task_id {
                let _ = s.task_changes.send(task_id);
            }
        }
        Err(e) => tracing::error!(
            job = job.id,
            "job failed to record its result; it will run again when its lease ends: {e:#}"
        ),
    }
}

/// Runs a grant's provision or revoke job; returns the grant's task.
async fn grant_job(s: &AppState, connector: &Connector, job: &JobRow) -> anyhow::Result<i64> {
    let grant_id = job.grant_id.ok_or_else(|| anyhow::anyhow!("{} job {} names no grant", job.kind, job.id))?;
    let g = s.db.grant(grant_id).await?;
    if job.kind == "provision" {
        match connector.assign(&assignment(&g)).await {
            Ok(()) => s.db.provisioned(job, &g, now()).await?,
            Err(e) if e.is_retryable() && job.attempts < MAX_PROVISION_ATTEMPTS => {
                tracing::warn!(job = job.id, "provisioning will be retried: {e}");
                s.db.retry_job(job, &e.to_string(), now() + backoff(job.attempts), now()).await?
            }
            Err(e) => {
                tracing::error!(job = job.id, "provisioning failed: {e}");
                s.db.provisioning_failed(job, &g, &e.to_string(), now()).await?
            }
        }
    } else if s.db.covered_by_other_grant(&g, now()).await? {
        s.db.revoked(job, &g, true, now()).await?
    } else {
        match connector.unassign(&assignment(&g)).await {
            Ok(()) => s.db.revoked(job, &g, false, now()).await?,
            Err(e) => {
                tracing::error!(job = job.id, "revocation failed and will be retried: {e}");
                s.db.retry_job(job, &e.to_string(), now() + backoff(job.attempts), now()).await?
            }
        }
    }
    Ok(g.task_id)
}

/// Assigns again what an active grant says its user has. Unlike `provision`, the grant keeps its start and end;
/// the job stops once the grant is no longer active (its revocation takes over).
async fn reprovision(s: &AppState, connector: &Connector, job: &JobRow) -> anyhow::Result<()> {
    let grant_id = job.grant_id.ok_or_else(|| anyhow::anyhow!("reprovision job {} names no grant", job.id))?;
    if !s.db.grant_active(grant_id, now()).await? {
        tracing::info!(job = job.id, "the grant is no longer active; its missing assignment stays missing");
        return s.db.drift_repaired(job, Repair::Skipped, now()).await;
    }
    let g = s.db.grant(grant_id).await?;
    match connector.assign(&assignment(&g)).await {
        Ok(()) => s.db.drift_repaired(job, Repair::Restored, now()).await,
        Err(e) => {
            tracing::error!(job = job.id, "restoring a missing assignment failed and will be retried: {e}");
            s.db.retry_job(job, &e.to_string(), now() + backoff(job.attempts), now()).await
        }
    }
}

/// Removes an unexplained assignment, unless the finding was resolved or reported only meanwhile, or a grant now
/// explains the assignment.
async fn remove_drift(s: &AppState, connector: &Connector, job: &JobRow) -> anyhow::Result<()> {
    let finding_id = job.finding_id.ok_or_else(|| anyhow::anyhow!("remove_drift job {} names no finding", job.id))?;
    let f = s.db.drift_finding(finding_id).await?;
    if f.resolved_at.is_some() || f.remedy.as_deref() != Some(drift::Remedy::Remove.as_str()) {
        return s.db.drift_repaired(job, Repair::Skipped, now()).await;
    }
    if s.db.drift_explained(&f).await? {
        tracing::info!(job = job.id, "a grant now explains the assignment; it stays");
        return s.db.drift_repaired(job, Repair::Skipped, now()).await;
    }
    let unexplained = Assignment {
        instance_arn: f.instance_arn.clone(),
        account_id: f.account_id.clone(),
        permission_set_arn: f.permission_set_arn.clone(),
        principal: Principal::User(f.principal_id.clone()),
    };
    match connector.unassign(&unexplained).await {
        Ok(()) => s.db.drift_repaired(job, Repair::Removed, now()).await,
        Err(e) => {
            tracing::error!(job = job.id, "removing an unexplained assignment failed and will be retried: {e}");
            s.db.retry_job(job, &e.to_string(), now() + backoff(job.attempts), now()).await
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use hmac::{Hmac, Mac};

    use crate::config::Webhook;
    use crate::db::{Db, audit};
    use crate::webhooks::{SecretSource, Sender};

    crate::db::testing::on_both_backends!(webhooks_are_signed_retried_and_given_up);

    /// What a receiver got: (path, headers, body).
    type Received = Arc<Mutex<Vec<(String, HeaderMap, String)>>>;

    /// `/ok` fails its first two requests, then accepts; `/down` always fails.
    async fn receive(
        State(got): State<Received>,
        Path(path): Path<String>,
        headers: HeaderMap,
        body: String,
    ) -> StatusCode {
        let mut got = got.lock().unwrap();
        got.push((path.clone(), headers, body));
        let tries = got.iter().filter(|r| r.0 == path).count();
        if path == "ok" && tries > 2 { StatusCode::NO_CONTENT } else { StatusCode::SERVICE_UNAVAILABLE }
    }

    async fn webhooks_are_signed_retried_and_given_up(db: Db) {
        let got = Received::default();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().route("/{path}", axum::routing::post(receive)).with_state(got.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });

        let hook = |name: &str, events: &str, max_attempts| Webhook {
            name: name.into(),
            url: reqwest::Url::parse(&format!("http://{addr}/{name}")).unwrap(),
            secret: SecretSource::Env(format!("{name}_SECRET")),
            events: vec![events.into()],
            max_attempts,
        };
        let hooks = [hook("ok", "*", 5), hook("down", "grant.*", 3)];
        let secret = |name: &str| Some(format!("{name}-0123456789abcdef"));
        let sender = Arc::new(Sender::new(&hooks, secret).unwrap());
        let db = db.with_webhooks(hooks.iter().map(|w| (w.name.clone(), w.events.clone())).collect());
        let mut tx = db.begin().await.unwrap();
        audit(&mut tx, 1000, "worker", "grant.activate", "task:3", "{}").await.unwrap();
        tx.commit().await.unwrap();

        // Far enough apart for any backoff; each round attempts what is due.
        let mut now = 1000;
        for _ in 0..8 {
            super::deliver_due(&db, &sender, now).await.unwrap();
            now += 4000;
        }
        let got = got.lock().unwrap().clone();
        let tries = |path: &str| got.iter().filter(|r| r.0 == path).collect::<Vec<_>>();
        assert_eq!(tries("ok").len(), 3, "two failures, then delivered, then nothing more");
        assert_eq!(tries("down").len(), 3, "given up after max_attempts");

        for (path, headers, body) in &got {
            let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
            let timestamp = header("cone-webhook-timestamp");
            let mut mac =
                Hmac::<sha2::Sha256>::new_from_slice(format!("{path}_SECRET-0123456789abcdef").as_bytes()).unwrap();
            mac.update(format!("{timestamp}.{body}").as_bytes());
            let expected = format!("sha256={}", hex::encode(mac.finalize().into_bytes()));
            assert_eq!(header("cone-webhook-signature"), expected, "signed with {path}'s secret");
            assert_eq!(header("cone-webhook-event"), "grant.activate");
            assert_eq!(header("content-type"), "application/json");
            let payload: serde_json::Value = serde_json::from_str(body).unwrap();
            assert_eq!(payload["id"], header("cone-webhook-id"), "the body names the delivery");
            assert_eq!(payload["event"], "grant.activate");
        }
        // Every attempt of a delivery carries its id and the same body; attempts count up; timestamps are fresh.
        for path in ["ok", "down"] {
            let attempts = tries(path);
            let header = |i: usize, name: &str| attempts[i].1.get(name).unwrap().to_str().unwrap().to_string();
            assert!(attempts.iter().all(|a| a.2 == attempts[0].2));
            assert!((0..3).all(|i| header(i, "cone-webhook-id") == header(0, "cone-webhook-id")));
            assert_eq!((0..3).map(|i| header(i, "cone-webhook-attempt")).collect::<Vec<_>>(), ["1", "2", "3"]);
            assert_ne!(header(0, "cone-webhook-timestamp"), header(1, "cone-webhook-timestamp"));
        }
        assert_ne!(tries("ok")[0].1.get("cone-webhook-id"), tries("down")[0].1.get("cone-webhook-id"));
        let states: Vec<(String, String, i64, Option<i64>)> =
            sqlx::query_as("SELECT webhook, state, attempts, last_status FROM webhook_deliveries ORDER BY webhook")
                .fetch_all(db.pool())
                .await
                .unwrap();
        assert_eq!(
            states,
            [("down".into(), "failed".into(), 3, Some(503)), ("ok".into(), "delivered".into(), 3, Some(204))]
        );
    }

    #[test]
    fn webhook_backoff_grows_with_jitter_up_to_an_hour() {
        for attempts in 1..40 {
            let ceiling = 2i64.pow(attempts.min(12) as u32).min(3600);
            let b = super::webhook_backoff(attempts);
            assert!((ceiling / 2..=ceiling).contains(&b), "{attempts}: {b}");
        }
    }

    #[test]
    fn backoff_is_bounded() {
        for attempts in 0..40 {
            let b = super::backoff(attempts);
            assert!((1..=300).contains(&b));
        }
    }
}
