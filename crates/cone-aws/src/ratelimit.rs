//! Client-side rate limits, one token bucket per AWS API family, shared by every call the connector makes.
//!
//! AWS throttles per account and API family, and the connector fans out (one ListAccountAssignments per
//! account × permission set, or one ListAccountAssignmentsForPrincipal per user and group). Pacing the calls keeps a large sync under the quota instead of bouncing off
//! it and burning retries; it also leaves headroom for other tools using the same account.
//!
//! The buckets are governor's GCRA limiters. governor's own waiting (`until_ready`) sleeps on futures-timer
//! against a wall clock, which tokio's paused test clock cannot drive; so the limiter reads a clock based on
//! `tokio::time::Instant` and waits with `tokio::time::sleep`. The GCRA itself stays governor's, which is
//! well tested and lock-free.

use std::collections::BTreeMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use governor::clock::Clock;
use governor::middleware::NoOpMiddleware;
use governor::state::{InMemoryState, NotKeyed};
use governor::{Quota, RateLimiter};

/// The AWS API families the connector paces separately.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiFamily {
    /// SSO Admin (`sso:`) and Identity Store (`identitystore:`), which share IAM Identity Center's quota.
    IdentityCenter,
    /// AWS Organizations (`organizations:`).
    Organizations,
    /// AWS STS (`sts:`), for assuming the integration role.
    Sts,
    /// AWS IAM (`iam:`), for the IAM sync and the access-key inventory.
    Iam,
}

impl ApiFamily {
    /// The flag and environment variable that set this family's rate, for messages.
    pub fn rate_setting(self) -> &'static str {
        match self {
            ApiFamily::IdentityCenter => "--sso-rate, CONE_AWS_SSO_RATE",
            ApiFamily::Organizations => "--orgs-rate, CONE_AWS_ORGS_RATE",
            ApiFamily::Sts => "--sts-rate, CONE_AWS_STS_RATE",
            ApiFamily::Iam => "--iam-rate, CONE_AWS_IAM_RATE",
        }
    }
}

/// Requests per second allowed for each family. The burst is one second's worth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::Args)]
pub struct Rates {
    /// Requests per second to IAM Identity Center (SSO Admin and Identity Store together). Default 20:
    /// AWS documents 20 transactions per second per account, shared by all IAM Identity Center APIs.
    #[arg(long = "sso-rate", env = "CONE_AWS_SSO_RATE", default_value_t = Rates::DEFAULT.identity_center)]
    pub identity_center: NonZeroU32,
    /// Requests per second to AWS Organizations. Default 5: a global control-plane API with low quotas
    /// per account; a sync makes a handful of paged ListAccounts calls, so a low pace costs nothing.
    #[arg(long = "orgs-rate", env = "CONE_AWS_ORGS_RATE", default_value_t = Rates::DEFAULT.organizations)]
    pub organizations: NonZeroU32,
    /// Requests per second to AWS STS. Default 2: STS is called only to assume the integration role
    /// (about once an hour); the limit only stops a credential-refresh storm.
    #[arg(long = "sts-rate", env = "CONE_AWS_STS_RATE", default_value_t = Rates::DEFAULT.sts)]
    pub sts: NonZeroU32,
    /// Requests per second to AWS IAM. Default 10: IAM is a global control-plane API whose request quotas AWS
    /// does not publish per action; the IAM sync makes a few paged calls plus, with secrets, one
    /// ListAccessKeys per user and one GetAccessKeyLastUsed per key, and throttling is retried.
    #[arg(long = "iam-rate", env = "CONE_AWS_IAM_RATE", default_value_t = Rates::DEFAULT.iam)]
    pub iam: NonZeroU32,
}

impl Rates {
    pub const DEFAULT: Rates =
        Rates { identity_center: nonzero(20), organizations: nonzero(5), sts: nonzero(2), iam: nonzero(10) };
}

impl Default for Rates {
    fn default() -> Self {
        Rates::DEFAULT
    }
}

const fn nonzero(n: u32) -> NonZeroU32 {
    match NonZeroU32::new(n) {
        Some(n) => n,
        None => panic!("a rate must not be zero"),
    }
}

/// Time as tokio sees it (so paused test time drives the buckets), as governor wants it: a `Duration`
/// since the limiter was made.
#[derive(Debug, Clone)]
struct TokioClock {
    start: tokio::time::Instant,
}

impl Clock for TokioClock {
    type Instant = Duration;

    fn now(&self) -> Duration {
        self.start.elapsed()
    }
}

type Bucket = RateLimiter<NotKeyed, InMemoryState, TokioClock, NoOpMiddleware<Duration>>;

/// The connector's buckets, and the tally of the calls that took their tokens. Cheap to clone; clones share
/// both.
#[derive(Debug, Clone)]
pub struct RateLimits {
    identity_center: Arc<Bucket>,
    organizations: Arc<Bucket>,
    sts: Arc<Bucket>,
    iam: Arc<Bucket>,
    /// Calls made, by IAM action (`sso:ListInstances`). Every request takes exactly one token, so counting
    /// here counts what was sent, which is what the sync's target (calls per datum) is measured in.
    calls: Arc<Mutex<BTreeMap<String, u64>>>,
}

impl RateLimits {
    /// Fresh, full buckets for `rates`, on tokio's clock.
    pub fn new(rates: &Rates) -> RateLimits {
        let clock = TokioClock { start: tokio::time::Instant::now() };
        let bucket = |rate| Arc::new(RateLimiter::direct_with_clock(Quota::per_second(rate), clock.clone()));
        RateLimits {
            identity_center: bucket(rates.identity_center),
            organizations: bucket(rates.organizations),
            sts: bucket(rates.sts),
            iam: bucket(rates.iam),
            calls: Arc::default(),
        }
    }

    /// Waits until `action`'s family may make one more request, takes its token, and counts the call.
    pub(crate) async fn acquire_for(&self, family: ApiFamily, action: &str) {
        self.acquire(family).await;
        let mut calls = self.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        *calls.entry(action.to_string()).or_default() += 1;
    }

    /// The calls made through these limits so far, by IAM action (`iam:ListUsers`), each page and retry
    /// counted.
    pub fn calls(&self) -> BTreeMap<String, u64> {
        self.calls.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// Waits until `family` may make one more request, and takes its token.
    pub async fn acquire(&self, family: ApiFamily) {
        let bucket = match family {
            ApiFamily::IdentityCenter => &self.identity_center,
            ApiFamily::Organizations => &self.organizations,
            ApiFamily::Sts => &self.sts,
            ApiFamily::Iam => &self.iam,
        };
        // Another task may take the token we waited for; then wait again for the next one.
        while let Err(not_until) = bucket.check() {
            tokio::time::sleep(not_until.wait_time_from(bucket.clock().now())).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::time::Instant;

    fn rates(identity_center: u32) -> Rates {
        Rates { identity_center: nonzero(identity_center), ..Rates::default() }
    }

    /// How long (in tokio's paused time) `n` acquisitions of `family` take from a fresh bucket.
    async fn time_for(limits: &RateLimits, family: ApiFamily, n: usize) -> Duration {
        let start = Instant::now();
        for _ in 0..n {
            limits.acquire(family).await;
        }
        start.elapsed()
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_bucket_bursts_then_paces_at_the_rate() {
        let limits = RateLimits::new(&rates(20));
        // The first second's worth goes at once.
        assert_eq!(time_for(&limits, ApiFamily::IdentityCenter, 20).await, Duration::ZERO);
        // Then one token every 1/20 s: 40 more take 2 s.
        assert_eq!(time_for(&limits, ApiFamily::IdentityCenter, 40).await, Duration::from_secs(2));
    }

    #[tokio::test(start_paused = true)]
    async fn an_idle_bucket_refills_up_to_its_burst_only() {
        let limits = RateLimits::new(&rates(10));
        time_for(&limits, ApiFamily::IdentityCenter, 10).await;
        tokio::time::sleep(Duration::from_secs(60)).await;
        // A minute idle refills 10 tokens, not 600.
        assert_eq!(time_for(&limits, ApiFamily::IdentityCenter, 10).await, Duration::ZERO);
        assert_eq!(time_for(&limits, ApiFamily::IdentityCenter, 1).await, Duration::from_millis(100));
    }

    #[tokio::test(start_paused = true)]
    async fn families_do_not_share_tokens_and_clones_do() {
        let limits = RateLimits::new(&Rates::default());
        time_for(&limits, ApiFamily::Organizations, 5).await;
        // Organizations is empty; STS and Identity Center are untouched.
        assert_eq!(time_for(&limits, ApiFamily::Sts, 2).await, Duration::ZERO);
        assert_eq!(time_for(&limits, ApiFamily::IdentityCenter, 20).await, Duration::ZERO);
        let clone = limits.clone();
        assert_eq!(time_for(&clone, ApiFamily::Organizations, 1).await, Duration::from_millis(200));
    }

    #[tokio::test(start_paused = true)]
    async fn calls_are_counted_by_action_across_clones_and_iam_has_its_own_bucket() {
        let limits = RateLimits::new(&Rates::default());
        let clone = limits.clone();
        for _ in 0..10 {
            limits.acquire_for(ApiFamily::Iam, "iam:ListAccessKeys").await;
        }
        clone.acquire_for(ApiFamily::IdentityCenter, "sso:ListInstances").await;
        let expected = [("iam:ListAccessKeys".to_string(), 10), ("sso:ListInstances".to_string(), 1)];
        assert_eq!(limits.calls(), BTreeMap::from(expected));
        // Ten IAM calls emptied IAM's bucket only.
        assert_eq!(time_for(&limits, ApiFamily::Iam, 1).await, Duration::from_millis(100));
        assert_eq!(time_for(&limits, ApiFamily::Organizations, 5).await, Duration::ZERO);
    }

    #[tokio::test(start_paused = true)]
    async fn concurrent_callers_share_one_bucket() {
        let limits = RateLimits::new(&rates(4));
        let start = Instant::now();
        // 4 tasks × 3 requests = 12 at 4/s with a burst of 4: the last token comes at 2 s.
        let tasks: Vec<_> = (0..4)
            .map(|_| {
                let limits = limits.clone();
                tokio::spawn(async move { time_for(&limits, ApiFamily::IdentityCenter, 3).await })
            })
            .collect();
        for task in tasks {
            task.await.expect("task finishes");
        }
        assert_eq!(start.elapsed(), Duration::from_secs(2));
    }
}
