//! Keeps the service control policy that ends revoked role sessions (`aws.revoke_sessions`) as the store's
//! denials call for: after each early end, and when a denial has run out. One replica at a time changes it.

use std::time::Duration;

use cone_aws::denial::Wanted;
use cone_core::sessions::{self, Precision, Revoked, SCP_MAX_CHARS};
use sha2::{Digest, Sha256};

use super::aws::Aws;
use super::{Jitter, backoff, until_due};
use crate::state::AppState;
use crate::store::rfc3339;

/// How long one replica holds the policy while changing it; longer than the few calls a change makes, retries
/// included.
const LEASE_SECS: i64 = 120;
/// A failed change waits at most this long before the next attempt.
const BACKOFF_CAP: i64 = 60;

pub fn spawn(s: AppState, connector: Aws) {
    tokio::spawn(keep(s, connector));
}

async fn keep(s: AppState, connector: Aws) {
    let mut failures = 0;
    // How closely the last policy written followed the revocations.
    let mut said = None;
    loop {
        let wait = match apply(&s, &connector, &mut said).await {
            Ok(wait) => {
                failures = 0;
                wait
            }
            Err(e) => {
                failures += 1;
                tracing::error!("cannot make AWS deny the revoked role sessions; trying again: {e:#}");
                Duration::from_secs(backoff(failures, BACKOFF_CAP, Jitter::Full).unsigned_abs())
            }
        };
        tokio::select! {
            _ = s.db.denials_changed().notified() => {}
            _ = tokio::time::sleep(wait) => {}
        }
    }
}

/// Makes AWS hold the policy the live denials call for, unless it does already; answers how long to sleep. The
/// lease comes first, so that what is read and compared is not older than what another replica applied.
async fn apply(s: &AppState, connector: &Aws, said: &mut Option<Precision>) -> anyhow::Result<Duration> {
    let now = s.now();
    if !s.db.lease_denial(now, LEASE_SECS).await? {
        // Another replica is changing it; look again soon.
        return Ok(Duration::from_secs(1));
    }
    let applied = apply_leased(s, connector, now, said).await;
    if applied.is_err() {
        // Given back, so that the next attempt (here or on another replica) need not wait for the lease to end.
        s.db.release_denial().await?;
    }
    applied
}

async fn apply_leased(
    s: &AppState,
    connector: &Aws,
    now: i64,
    said: &mut Option<Precision>,
) -> anyhow::Result<Duration> {
    let revoked: Vec<Revoked> =
        s.db.session_denials(now)
            .await?
            .into_iter()
            .map(|r| Revoked {
                user_id: r.principal_id,
                account_id: r.account_id,
                permission_set: r.permission_set_name,
                before: rfc3339(r.issued_before),
            })
            .collect();
    let denial = sessions::denial(&revoked, SCP_MAX_CHARS);
    // No policy hashes as "", the state before the first denial.
    let hash = denial.as_ref().map_or(String::new(), |d| {
        let accounts: Vec<&str> = d.accounts.iter().map(String::as_str).collect();
        hex::encode(Sha256::digest(format!("{}\n{}", d.document, accounts.join(","))))
    });
    if hash == s.db.applied_denial().await? {
        s.db.release_denial().await?;
    } else {
        let precision = denial.as_ref().map(|d| d.precision);
        connector.keep_denial(denial.map(|d| Wanted { document: d.document, accounts: d.accounts })).await?;
        s.db.denial_applied(&hash, now).await?;
        // The policy is rewritten as removals happen: a warning is said once, not at each rewrite.
        let repeated = precision == *said && precision != Some(Precision::Exact);
        *said = precision;
        match precision {
            _ if repeated => {}
            None => tracing::info!("no revoked role session is left to deny; the policy is removed"),
            Some(Precision::Exact) => tracing::info!(revoked = revoked.len(), "revoked role sessions denied"),
            Some(Precision::PerPerson) => tracing::warn!(
                "too many revoked sessions for one policy: each person's revoked roles are denied before their latest revocation"
            ),
            Some(Precision::Everything) => tracing::warn!(
                "too many revoked sessions for one policy: every session of each revoked person is denied until their denials run out"
            ),
            Some(Precision::Truncated { left_out }) => tracing::error!(
                left_out,
                "too many people revoked at once for one policy: the sessions of the {left_out} revoked longest ago are NOT denied"
            ),
        }
    }
    Ok(until_due(s, s.db.next_denial_end(now).await, "when the next denial runs out"))
}
