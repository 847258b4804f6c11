//! The connector in service mode, seen from the server: the calls the workers hand it and wait on, the long poll
//! its hosts take them by, their reports, and its credentials (issued and revoked by administrators, checked on
//! every request in constant time).

use std::time::Duration;

use cone_aws::ConnectorError;
use cone_aws::journal::Journal;
use cone_aws::remote::{Answer, Call, JournalPost, PartPost};
use serde_json::Value;
use subtle::ConstantTimeEq;
use tokio::time::Instant;

use super::auth::{random_token, secret_hash};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{ClaimedCall, UserRow};

/// A queued call that no host claims within this time is withdrawn, and the job that needed it retried later. A
/// sync waits for a host however long it takes: there is nothing else to do without one.
const QUEUE_WAIT: Duration = Duration::from_secs(60);
/// A host's long poll for a call is answered at the latest after this long, empty.
const LONG_POLL: Duration = Duration::from_secs(20);
/// The longest host id and version a connector may give.
const MAX_NAME: usize = 200;
/// The longest name of a sync journal's unit (they name a kind and an AWS id or two).
const MAX_UNIT: usize = 1024;

/// How long a host holds a call before another may take it, unless it renews: a third of `job_lease`, so that a
/// call whose host died goes to another well before the job that waits on it loses its own lease.
pub fn call_lease(s: &AppState) -> i64 {
    (s.config.job_lease / 3).max(1)
}

fn unreachable(message: String) -> ConnectorError {
    ConnectorError::Remote { message, retryable: true, not_created_by_cone: false }
}

/// Runs `call` on a connector host and waits for its answer; a sync's parts go to the spool run `spool`.
pub async fn call(s: &AppState, call: &Call, spool: Option<&str>) -> Result<Value, ConnectorError> {
    let body = serde_json::to_string(call).map_err(|e| unreachable(format!("cannot write the call down: {e}")))?;
    let mut queued =
        s.db.queue_call(&body, spool, s.now())
            .await
            .map_err(|e| unreachable(format!("cannot queue the call for the connector: {e:#}")))?;
    let id = queued.id;
    // Handed over in memory when the host answers through this process; otherwise written down and announced.
    let mut handed_over = true;
    let deadline = (!call.is_sync()).then(|| Instant::now() + QUEUE_WAIT);
    let lease = Duration::from_secs(call_lease(s).unsigned_abs());
    loop {
        let answered = s.db.calls_answered().notified();
        tokio::pin!(answered);
        answered.as_mut().enable();
        match s.db.take_answer(id).await {
            Ok(Some(answer)) => return read_answer(&answer),
            Ok(None) => {}
            Err(e) => tracing::warn!(call = id, "cannot read the connector's answer; looking again: {e:#}"),
        }
        // Past the deadline, a call no host holds (never claimed, or its host's lease ran out) is given up.
        let late = deadline.is_some_and(|d| Instant::now() >= d);
        if late && s.db.withdraw_call(id, s.now()).await.unwrap_or(false) {
            return Err(unreachable(format!(
                "no connector took the call within {} s: check that `cone-aws serve` runs with this server's \
                 credentials (the Connectors page lists the connectors heard from)",
                QUEUE_WAIT.as_secs()
            )));
        }
        // Past the deadline, the holder's lease is looked at again once it may have run out.
        let wake = deadline.filter(|d| Instant::now() < *d).unwrap_or_else(|| Instant::now() + lease);
        tokio::select! {
            answer = &mut queued.answer, if handed_over => match answer {
                Ok(answer) => return read_answer(&answer),
                Err(_) => handed_over = false,
            },
            () = &mut answered => {}
            () = tokio::time::sleep_until(wake) => {}
        }
    }
}

fn read_answer(answer: &str) -> Result<Value, ConnectorError> {
    // Unreadable text decodes as nothing, which `decode` refuses in the same words as any unreadable answer.
    cone_aws::remote::decode::<Answer>(serde_json::from_str(answer).unwrap_or_default())?.map_err(ConnectorError::from)
}

/// The next call for `host`, connected with `client_id`'s credentials, waiting up to [`LONG_POLL`] for one; `None`
/// when there is none, the server is stopping, or the credentials were revoked meanwhile.
pub async fn next(s: &AppState, host: &str, client_id: &str) -> anyhow::Result<Option<ClaimedCall>> {
    let deadline = Instant::now() + LONG_POLL;
    loop {
        let queued = s.db.calls_queued().notified();
        tokio::pin!(queued);
        queued.as_mut().enable();
        if *s.stopping.borrow() {
            return Ok(None);
        }
        if let Some(call) = s.db.claim_call(host, client_id, s.now(), call_lease(s)).await? {
            return Ok(Some(call));
        }
        // A lease running out puts its call back without a notification: look again then.
        let lapse = s.db.next_lease_end().await?.map(|at| {
            let ms = (at * 1000 - s.clock.now_millis()).max(0).unsigned_abs();
            Instant::now() + Duration::from_millis(ms)
        });
        tokio::select! {
            () = &mut queued => {}
            () = tokio::time::sleep_until(lapse.map_or(deadline, |l| l.min(deadline))) => {}
            () = s.stopped() => return Ok(None),
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
    }
}

fn not_held(id: i64) -> Error {
    Error::WrongState(format!(
        "This connector no longer holds call {id}: its lease ran out and the call went to another, or it was \
         withdrawn. Drop it and take the next."
    ))
}

/// Renews `host`'s lease on call `id`.
pub async fn renew(s: &AppState, host: &str, id: i64) -> Result<()> {
    match s.db.renew_call(id, host, s.now(), call_lease(s)).await? {
        Some(_) => Ok(()),
        None => Err(not_held(id)),
    }
}

/// Stores a part of the sync `host` runs as call `id`, renewing its lease.
pub async fn part(s: &AppState, host: &str, id: i64, post: &PartPost) -> Result<()> {
    let Some(Some(run)) = s.db.renew_call(id, host, s.now(), call_lease(s)).await? else {
        return Err(not_held(id));
    };
    Ok(s.db.spool_part(&run, post.seq, &post.part).await?)
}

/// Reads or writes the journal of the sync `host` runs as call `id`: a recall answers what was recorded for the unit
/// within the times asked. The lease is only looked at: a sync reads and records thousands of units, and the host
/// renews its lease on its own.
pub async fn journal(s: &AppState, host: &str, id: i64, post: &JournalPost) -> Result<Option<(String, i64)>> {
    let unit = match post {
        JournalPost::Recall { unit, .. } | JournalPost::Record { unit, .. } => unit,
    };
    if unit.is_empty() || unit.len() > MAX_UNIT {
        return Err(Error::invalid(format!("A journal unit is named with 1 to {MAX_UNIT} characters.")));
    }
    match s.db.held_call(id, host, s.now()).await? {
        Some(Some(_)) => {}
        Some(None) => return Err(Error::invalid(format!("Call {id} is not a sync; only a sync has a journal."))),
        None => return Err(not_held(id)),
    }
    let journal = s.db.sync_journal();
    let failed = |e| anyhow::anyhow!("the sync's journal failed: {e}");
    match post {
        JournalPost::Recall { unit, since, until } => Ok(journal.recall(unit, *since, *until).await.map_err(failed)?),
        JournalPost::Record { unit, body, at } => {
            journal.record(unit, body, *at).await.map_err(failed)?;
            Ok(None)
        }
    }
}

/// Records the answer of the call `id` that `host` ran.
pub async fn answer(s: &AppState, host: &str, id: i64, answer: &Answer) -> Result<()> {
    let text = serde_json::to_string(answer).map_err(anyhow::Error::from)?;
    if s.db.answer_call(id, host, &text, s.now()).await? { Ok(()) } else { Err(not_held(id)) }
}

/// Checks a connector's credentials and records its contact. A refusal is audited, at most at the sign-in rate per
/// client address, so that a flood of wrong secrets cannot flood the audit log.
pub async fn authenticate(
    s: &AppState,
    client_id: &str,
    secret: &str,
    host_id: &str,
    version: &str,
    limited: impl FnOnce() -> bool,
) -> Result<()> {
    if host_id.is_empty() || host_id.len() > MAX_NAME || version.len() > MAX_NAME {
        return Err(Error::invalid(format!(
            "A connector names itself with a host id (BATON_HOST_ID) of 1 to {MAX_NAME} characters and its version."
        )));
    }
    let expected = s.db.connector_secret_hash(client_id).await?;
    let given = secret_hash(secret);
    let known = expected.as_deref().is_some_and(|e| bool::from(e.as_bytes().ct_eq(given.as_bytes())));
    if !known {
        let why = if expected.is_some() { "wrong client secret" } else { "unknown or revoked client id" };
        if !limited() {
            s.db.connector_refused(client_id, host_id, why, s.now()).await?;
        }
        return Err(Error::Unauthenticated(format!(
            "The connector's credentials were refused ({why}). An administrator issues new ones with `cone connector \
             rotate` (or on the Connectors page); set them as BATON_CLIENT_ID and BATON_CLIENT_SECRET."
        )));
    }
    s.db.connector_contact(host_id, client_id, version, s.now()).await?;
    Ok(())
}

/// New connector credentials, revoking those before: the client id and the secret, shown only now.
pub async fn rotate(s: &AppState, by: &UserRow) -> Result<cone_api::ConnectorCredentials> {
    let client_id = format!("cone-connector-{}", random_token(6));
    let client_secret = random_token(32);
    s.db.rotate_connector_credentials(&client_id, &secret_hash(&client_secret), by.id, s.now()).await?;
    tracing::info!(user = %by.username, client_id, "connector credentials rotated");
    Ok(cone_api::ConnectorCredentials { client_id, client_secret })
}

/// Revokes the connector credentials in force: no connector may connect until new ones are issued.
pub async fn revoke(s: &AppState, by: &UserRow) -> Result<()> {
    match s.db.revoke_connector_credentials(by.id, s.now()).await? {
        Some(client_id) => {
            tracing::info!(user = %by.username, client_id, "connector credentials revoked");
            Ok(())
        }
        None => Err(Error::NotFound("No connector credentials are in force; there is nothing to revoke.".into())),
    }
}
