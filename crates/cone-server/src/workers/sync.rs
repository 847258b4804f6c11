//! The catalog from AWS on a schedule and when an administrator asks, then the drift sweep, then the IAM
//! inventory.

use std::time::Duration;

use anyhow::Context;
use cone_aws::{Part, PermissionSet, SqlSpool};
use cone_core::review::ItemKind;
use futures_util::StreamExt;

use super::announce;
use super::aws::Aws;
use crate::drift;
use crate::state::AppState;
use crate::store::DriftRecord;

/// The least time between the starts of two syncs.
const MIN_SYNC_GAP: Duration = Duration::from_secs(10);

/// Syncs the catalog from AWS, then sweeps for drift when the last sweep (at `last_sweep`, the start of its sync)
/// is `drift.interval` old, then syncs IAM as `aws.sync_iam` and `aws.sync_secrets` ask. A failed sweep is logged
/// and tried again after the next sync.
pub async fn sync_once(s: &AppState, connector: &Aws, last_sweep: &mut Option<i64>) -> anyhow::Result<()> {
    let started = s.clock.utc();
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

async fn sync_and_sweep(s: &AppState, connector: &Aws, last_sweep: &mut Option<i64>) -> anyhow::Result<()> {
    if let Err(e) = s.db.forget_calls(s.now()).await {
        tracing::warn!("cannot remove connector calls nobody came back for; the next sync tries again: {e:#}");
    }
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
    connector: &Aws,
    spool: &SqlSpool,
    last_sweep: &mut Option<i64>,
) -> anyhow::Result<()> {
    let mut synced_at = s.now();
    let synced = connector.sync_into(s, spool).await?;
    if let Some(r) = synced.resumed {
        tracing::info!(units = r.units, read = r.read, "resumed the sync an earlier one left unfinished");
        metrics::counter!("cone_sync_resumed_units_total").increment(r.units as u64);
        // What the journal gave was read then: the sweep must not take it for newer.
        synced_at = synced_at.min(r.oldest);
    }
    let max_offboard = s.config.identities.max_offboard_percent;
    let stored =
        s.db.apply_sync(&s.config.aws.app_id, &synced.instance_arn, spool.parts(None), max_offboard, s.now()).await?;
    let permission_sets = stored.permission_sets;
    if stored.people.offboarded > 0 {
        tracing::info!(people = stored.people.offboarded, "offboarded the people who left Identity Center");
        announce(s, Ok(stored.people.tasks), "offboard");
    }
    // After every sync, so that grants an interrupted one left to end do end.
    let ended = s.db.end_leavers_grants(s.now()).await;
    if ended.as_ref().is_ok_and(|tasks| !tasks.is_empty()) {
        s.wake.notify_one();
    }
    announce(s, ended, "end the grants of people who left");
    let identity_center: Vec<ItemKind> = ItemKind::ALL.into_iter().filter(|k| !k.is_iam()).collect();
    review_items_gone(s, &identity_center).await;
    // After the catalog is stored, so that a scheduled campaign snapshots this sync.
    match crate::services::reviews::open_scheduled(s).await {
        Ok(opened) if !opened.is_empty() => tracing::info!(campaigns = ?opened, "opened the scheduled access reviews"),
        Ok(_) => {}
        Err(e) => tracing::error!("cannot open the scheduled access reviews; the next sync tries again: {e}"),
    }
    let sweeping = last_sweep.is_none_or(|t| synced_at - t >= s.config.drift.interval);
    if sweeping {
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
    s.db.apply_iam(&s.config.aws.app_id, spool.parts(Some(Part::IAM)), s.now()).await?;
    // Only the kinds the features read: turning one off forgets its rows, not the access.
    let aws = &s.config.aws;
    let read = [
        (ItemKind::IamUser, aws.sync_iam || aws.sync_secrets),
        (ItemKind::IamGroupMembership, aws.sync_iam),
        (ItemKind::AccessKey, aws.sync_secrets),
    ];
    let iam: Vec<ItemKind> = read.into_iter().filter_map(|(kind, on)| on.then_some(kind)).collect();
    if !iam.is_empty() {
        review_items_gone(s, &iam).await;
    }
    // Memberships after IAM, which holds the IAM groups' members.
    if sweeping {
        let findings = s.db.missing_memberships(synced_at, s.now(), s.config.aws.sync_iam).await?;
        let record = s.db.record_drift(&synced.instance_arn, &findings, true, s.now()).await?;
        report(s, &record);
    }
    Ok(())
}

/// Marks the review items of `kinds` whose access the sync that ended no longer found.
async fn review_items_gone(s: &AppState, kinds: &[ItemKind]) {
    match s.db.review_items_gone(kinds, s.now()).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(items = n, "access under review is gone from AWS; its items say so"),
        Err(e) => {
            tracing::error!("cannot mark the review items whose access is gone; the next sync tries again: {e:#}")
        }
    }
}

/// Syncs every `aws.sync_interval_secs`, or every `drift.interval` when that is shorter, and never more often
/// than every 10 s (each sync reads all of Identity Center, within its API rate limits); and when an administrator
/// asks (`AppState::sync_now`), at once or 10 s after the last ended. Asking again meanwhile asks for that one sync.
/// With `now`, the first sync starts at once.
pub async fn sync_periodically(s: AppState, connector: Aws, mut last_sweep: Option<i64>, now: bool) {
    let mut every = s.config.aws.sync_interval_secs;
    if s.config.drift.interval > 0 {
        every = every.min(s.config.drift.interval.unsigned_abs());
    }
    let every = Duration::from_secs(every.max(10));
    let mut first = now;
    loop {
        let gap = tokio::time::sleep(MIN_SYNC_GAP);
        if !std::mem::take(&mut first) {
            tokio::select! {
                () = tokio::time::sleep(every) => {}
                () = async { s.sync_now.notified().await; gap.await } => {}
            }
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
    let mut comparison = drift::Comparison::new(instance_arn, permission_sets, &grants, remove, synced_at, s.now());
    let mut parts = spool.parts(Some(Part::ASSIGNMENTS));
    while let Some(part) = parts.next().await {
        if let Part::Assignments(list) = part? {
            list.iter().for_each(|a| comparison.see(a));
        }
    }
    let findings = comparison.findings();
    let record = s.db.record_drift(instance_arn, &findings, false, s.now()).await?;
    report(s, &record);
    Ok(())
}

/// Logs what a sweep found and resolved, and wakes the workers for the repairs it queued.
fn report(s: &AppState, record: &DriftRecord) {
    for f in &record.opened {
        tracing::warn!(
            finding = f.id,
            kind = f.kind,
            account = f.account_name.as_deref().unwrap_or(&f.account_id),
            permission_set = f.permission_set_name.as_deref().unwrap_or(&f.permission_set_arn),
            group = f.group_name.as_deref().unwrap_or(""),
            user = f.username.as_deref().unwrap_or(&f.principal_id),
            remedy = f.remedy.as_deref().unwrap_or("none (reported only)"),
            "drift between AWS and Cone's grants"
        );
    }
    if record.resolved > 0 {
        tracing::info!("{} drift finding(s) resolved", record.resolved);
    }
    if record.queued > 0 {
        s.wake.notify_one();
    }
}
