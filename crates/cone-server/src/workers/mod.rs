//! Background work, each part recorded in the store before and after it runs, so that a crash or restart picks up
//! where it stopped: `jobs` (provisioning, revocation, expiry, drift repairs), `sync` (the catalog from AWS, the
//! drift sweep, the IAM inventory), `delivery` (webhooks), `notify` (email to people) and `denials` (the policy that ends revoked role
//! sessions).

pub mod aws;
pub mod delivery;
pub mod denials;
pub mod jobs;
pub mod notify;
pub mod sync;

use std::time::Duration;

use rand::Rng;

use crate::state::AppState;

/// The longest a worker sleeps when nothing is due: it looks again this often anyway.
const IDLE_WAKEUP: Duration = Duration::from_secs(5);

/// How a retry's wait is drawn below its ceiling.
#[derive(Debug, Clone, Copy)]
pub enum Jitter {
    /// Anywhere from one second to the ceiling: many jobs throttled at once spread out the most, and a retry may
    /// come soon (revocations should).
    Full,
    /// Half fixed, half random: the wait keeps growing with each attempt (a webhook receiver that is down).
    Equal,
}

/// Seconds before the next attempt after `attempts` failed ones: exponential (2, 4, 8, … s) up to `cap`, drawn as
/// `jitter` says.
pub fn backoff(attempts: i64, cap: i64, jitter: Jitter) -> i64 {
    let ceiling = |least: i64| 2i64.saturating_pow(attempts.clamp(least, 20) as u32).min(cap);
    match jitter {
        Jitter::Full => rand::thread_rng().gen_range(1..=ceiling(0).max(1)),
        Jitter::Equal => ceiling(1) / 2 + rand::thread_rng().gen_range(0..=ceiling(1) / 2),
    }
}

/// How long to sleep until `next` (a Unix time), at most [`IDLE_WAKEUP`]; that long when nothing is due or the
/// time cannot be read.
fn until_due(s: &AppState, next: anyhow::Result<Option<i64>>, what: &str) -> Duration {
    match next {
        Ok(Some(at)) => {
            let ms = at * 1000 - s.clock.now_millis();
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

#[cfg(test)]
mod tests {
    use super::{Jitter, backoff};

    #[test]
    fn webhook_backoff_grows_with_jitter_up_to_an_hour() {
        for attempts in 1..40 {
            let ceiling = 2i64.pow(attempts.min(12) as u32).min(3600);
            let b = backoff(attempts, 3600, Jitter::Equal);
            assert!((ceiling / 2..=ceiling).contains(&b), "{attempts}: {b}");
        }
    }

    #[test]
    fn backoff_is_bounded() {
        for attempts in 0..40 {
            let b = backoff(attempts, 300, Jitter::Full);
            assert!((1..=300).contains(&b));
        }
    }
}
