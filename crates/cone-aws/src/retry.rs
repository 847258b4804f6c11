//! Backoff for transient failures and waiting for IAM Identity Center's asynchronous requests.

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;

use crate::error::{ConnectorError, Op};

/// How long and how often the connector retries and polls.
#[derive(Debug, Clone)]
pub(crate) struct Timing {
    /// Attempts in all (the first try included) for a step failing with a transient error.
    pub attempts: u32,
    pub backoff_base: Duration,
    pub backoff_cap: Duration,
    /// First wait before asking for the status of an asynchronous request; it doubles up to `poll_max`.
    pub poll_first: Duration,
    pub poll_max: Duration,
    /// Overall limit on waiting for one asynchronous request.
    pub poll_timeout: Duration,
    /// How long one attempt may wait for its answer. Without it, a request whose answer never comes (a dropped
    /// connection AWS never resets) would hang a sync or a provisioning job for good; with it, it is retried.
    pub attempt_timeout: Duration,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            attempts: 6,
            backoff_base: Duration::from_millis(250),
            backoff_cap: Duration::from_secs(10),
            poll_first: Duration::from_millis(500),
            poll_max: Duration::from_secs(5),
            poll_timeout: Duration::from_secs(300),
            // Far above any one call's answer time, pages of 1,000 IAM entities included.
            attempt_timeout: Duration::from_secs(30),
        }
    }
}

impl Timing {
    /// Exponential backoff with jitter: a random delay between half and all of `base * 2^retry` (capped).
    pub fn backoff(&self, retry: u32) -> Duration {
        let full = self.backoff_base.saturating_mul(1u32 << retry.min(16)).min(self.backoff_cap);
        let half = full / 2;
        half + rand::thread_rng().gen_range(Duration::ZERO..=full - half)
    }

    /// This timing with one attempt: for calls inside a step that [`with_retries`] retries as a whole, so that
    /// the retries do not multiply.
    pub fn once(&self) -> Timing {
        Timing { attempts: 1, ..self.clone() }
    }
}

/// Runs `step` (`op`, or a step built around it) until it succeeds, fails with a non-transient error, or
/// `attempts` are used up; then the transient error comes back as [`ConnectorError::GaveUp`], which says so.
/// With a single attempt the error comes back as it is: the caller retries.
pub(crate) async fn with_retries<T, F, Fut>(timing: &Timing, op: Op, mut step: F) -> Result<T, ConnectorError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, ConnectorError>>,
{
    let start = Instant::now();
    let mut retry = 0;
    loop {
        match step().await {
            Err(e) if e.is_transient() && retry + 1 < timing.attempts => {
                let delay = timing.backoff(retry);
                tracing::warn!(error = %e, ?delay, attempt = retry + 1, "{} failed; retrying", op.name);
                tokio::time::sleep(delay).await;
                retry += 1;
            }
            Err(e) if e.is_transient() && timing.attempts > 1 => {
                return Err(ConnectorError::GaveUp {
                    operation: op.name,
                    attempts: timing.attempts,
                    waited: start.elapsed(),
                    rate_setting: op.family().rate_setting(),
                    last: Box::new(e),
                });
            }
            other => return other,
        }
    }
}

/// Where an asynchronous IAM Identity Center request stands.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RequestState {
    InProgress,
    Succeeded,
    Failed(String),
}

/// Polls `check` (one call of `status`, the status call of `operation`'s request) with growing pauses until the
/// request succeeds, fails, or `poll_timeout` passes. Transient errors from `check` are logged and polled
/// through; if they last until the time is up, the connector never learnt where the request stands, and says
/// so with [`ConnectorError::GaveUp`] on `status` rather than call the request still in progress.
pub(crate) async fn wait_for<F, Fut>(
    timing: &Timing,
    operation: &'static str,
    status: Op,
    request_id: &str,
    mut check: F,
) -> Result<(), ConnectorError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<RequestState, ConnectorError>>,
{
    let start = Instant::now();
    let mut pause = timing.poll_first;
    // Transient failures of `check` since it last answered, and the latest.
    let mut failing: Option<(u32, ConnectorError)> = None;
    loop {
        let remaining = timing.poll_timeout.saturating_sub(start.elapsed());
        tokio::time::sleep(pause.min(remaining)).await;
        match check().await {
            Ok(RequestState::Succeeded) => return Ok(()),
            Ok(RequestState::Failed(reason)) => {
                return Err(ConnectorError::OperationFailed { operation, request_id: request_id.to_string(), reason });
            }
            Ok(RequestState::InProgress) => failing = None,
            Err(e) if e.is_transient() => {
                tracing::warn!(error = %e, request_id, "checking {operation} failed; will check again");
                failing = Some((failing.map_or(1, |(n, _)| n + 1), e));
            }
            Err(e) => return Err(e),
        }
        if start.elapsed() >= timing.poll_timeout {
            let waited = start.elapsed();
            return Err(match failing {
                Some((attempts, last)) => ConnectorError::GaveUp {
                    operation: status.name,
                    attempts,
                    waited,
                    rate_setting: status.family().rate_setting(),
                    last: Box::new(last),
                },
                None => ConnectorError::Timeout { operation, request_id: request_id.to_string(), waited },
            });
        }
        pause = (pause * 2).min(timing.poll_max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    fn fast() -> Timing {
        Timing {
            attempts: 4,
            backoff_base: Duration::from_millis(1),
            backoff_cap: Duration::from_millis(4),
            poll_first: Duration::from_millis(1),
            poll_max: Duration::from_millis(4),
            poll_timeout: Duration::from_millis(60),
            attempt_timeout: Duration::from_millis(100),
        }
    }

    fn conflict() -> ConnectorError {
        ConnectorError::Conflict {
            operation: "CreateAccountAssignment",
            code: "ConflictException".into(),
            message: "busy".into(),
        }
    }

    #[test]
    fn backoff_grows_with_jitter_and_is_capped() {
        let t = Timing::default();
        for retry in 0..40 {
            let full = t.backoff_base.saturating_mul(1u32 << retry.min(16)).min(t.backoff_cap);
            let d = t.backoff(retry);
            assert!(d >= full / 2 && d <= full, "retry {retry}: {d:?} not within [{:?}, {full:?}]", full / 2);
        }
        assert!(t.backoff(30) <= t.backoff_cap);
    }

    const CREATE: Op = Op::sso("CreateAccountAssignment");
    const CREATION_STATUS: Op = Op::sso("DescribeAccountAssignmentCreationStatus");

    #[tokio::test]
    async fn retries_transient_errors_then_succeeds() {
        let calls = Cell::new(0);
        let r = with_retries(&fast(), CREATE, || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { if n < 3 { Err(conflict()) } else { Ok(n) } }
        })
        .await;
        assert_eq!(r.expect("third try succeeds"), 3);
    }

    #[tokio::test]
    async fn gives_up_after_bounded_attempts_and_never_retries_permanent_errors() {
        let calls = Cell::new(0);
        let r: Result<(), _> = with_retries(&fast(), CREATE, || {
            calls.set(calls.get() + 1);
            async { Err(conflict()) }
        })
        .await;
        let Err(e @ ConnectorError::GaveUp { attempts: 4, .. }) = r else {
            panic!("expected GaveUp after 4 attempts, got {r:?}");
        };
        assert!(matches!(&e, ConnectorError::GaveUp { last, .. } if matches!(**last, ConnectorError::Conflict { .. })));
        assert!(e.is_retryable() && !e.is_transient(), "retryable later, but not retried again at once");
        let text = e.to_string();
        assert!(text.contains("CreateAccountAssignment failed 4 times") && text.contains("busy"), "{text}");
        assert_eq!(calls.get(), 4);

        // A single attempt hands the error back as it is, for the caller to retry.
        calls.set(0);
        let r: Result<(), _> = with_retries(&fast().once(), CREATE, || {
            calls.set(calls.get() + 1);
            async { Err(conflict()) }
        })
        .await;
        assert!(matches!(r, Err(ConnectorError::Conflict { .. })), "{r:?}");
        assert_eq!(calls.get(), 1);

        calls.set(0);
        let r: Result<(), _> = with_retries(&fast(), CREATE, || {
            calls.set(calls.get() + 1);
            async {
                Err(ConnectorError::NotFound {
                    operation: "x",
                    code: "ResourceNotFoundException".into(),
                    message: String::new(),
                })
            }
        })
        .await;
        assert!(r.is_err());
        assert_eq!(calls.get(), 1);
    }

    #[tokio::test]
    async fn polls_until_succeeded_through_transient_errors() {
        let calls = Cell::new(0);
        let r = wait_for(&fast(), "CreateAccountAssignment", CREATION_STATUS, "req-1", || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move {
                match n {
                    1 => Ok(RequestState::InProgress),
                    2 => Err(conflict()),
                    3 => Ok(RequestState::InProgress),
                    _ => Ok(RequestState::Succeeded),
                }
            }
        })
        .await;
        assert!(r.is_ok(), "{r:?}");
        assert_eq!(calls.get(), 4);
    }

    #[tokio::test]
    async fn failed_status_carries_the_reason() {
        let r = wait_for(&fast(), "CreateAccountAssignment", CREATION_STATUS, "req-2", || async {
            Ok(RequestState::Failed("Received a 404 status error: Not supported account".into()))
        })
        .await;
        match r {
            Err(e @ ConnectorError::OperationFailed { .. }) => {
                assert!(e.to_string().contains("Not supported account"), "{e}");
                assert!(!e.is_retryable());
            }
            other => panic!("expected OperationFailed, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn in_progress_forever_times_out() {
        let t = fast();
        let deletion_status = Op::sso("DescribeAccountAssignmentDeletionStatus");
        let r = wait_for(&t, "DeleteAccountAssignment", deletion_status, "req-3", || async {
            Ok(RequestState::InProgress)
        })
        .await;
        match r {
            Err(e @ ConnectorError::Timeout { .. }) => assert!(e.is_retryable()),
            other => panic!("expected Timeout, got {other:?}"),
        }
    }

    #[tokio::test]
    async fn status_calls_failing_to_the_end_are_not_called_in_progress() {
        let calls = Cell::new(0);
        let r = wait_for(&fast(), "CreateAccountAssignment", CREATION_STATUS, "req-4", || {
            calls.set(calls.get() + 1);
            let n = calls.get();
            async move { if n == 1 { Ok(RequestState::InProgress) } else { Err(conflict()) } }
        })
        .await;
        match r {
            Err(ConnectorError::GaveUp {
                operation: "DescribeAccountAssignmentCreationStatus",
                attempts,
                last,
                ..
            }) => {
                assert_eq!(attempts, calls.get() - 1, "the failures since the last answer");
                assert!(matches!(*last, ConnectorError::Conflict { .. }));
            }
            other => panic!("expected GaveUp on the status call, got {other:?}"),
        }
    }
}
