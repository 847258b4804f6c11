//! IAM Identity Center's limits on account-assignment writes, kept by the connector rather than left to retries:
//! at most a few asynchronous create or delete operations outstanding per instance (AWS documents 10 for
//! CreateAccountAssignment), and one at a time per account and permission set, since each write updates that
//! permission set's role in the account and a second one meanwhile is refused with a ConflictException.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::{OwnedMutexGuard, OwnedSemaphorePermit, Semaphore};

/// AWS's published quota on outstanding CreateAccountAssignment calls.
pub const DEFAULT_OUTSTANDING: usize = 10;

/// Each role's turn, by (account id, permission set ARN).
type Roles = HashMap<(String, String), Arc<tokio::sync::Mutex<()>>>;

/// The slots writes take, shared by every clone of a connector.
#[derive(Debug)]
pub(crate) struct AssignmentWrites {
    outstanding: Arc<Semaphore>,
    roles: Mutex<Roles>,
}

/// A write's place: its role's turn, then one of the outstanding operations. Dropped when the write has ended.
pub(crate) struct Slot {
    _outstanding: Option<OwnedSemaphorePermit>,
    _role: OwnedMutexGuard<()>,
}

impl AssignmentWrites {
    pub(crate) fn new(outstanding: usize) -> AssignmentWrites {
        AssignmentWrites { outstanding: Arc::new(Semaphore::new(outstanding.max(1))), roles: Mutex::default() }
    }

    /// Waits for the role of `permission_set_arn` in `account_id` to be free, then for an outstanding slot: a write
    /// queued behind another on the same role holds no slot while it waits.
    pub(crate) async fn slot(&self, account_id: &str, permission_set_arn: &str) -> Slot {
        let role = {
            let mut roles = self.roles.lock().unwrap_or_else(PoisonError::into_inner);
            roles.entry((account_id.to_string(), permission_set_arn.to_string())).or_default().clone()
        };
        let role = role.lock_owned().await;
        // Acquiring fails only on a closed semaphore, and this one is never closed.
        let outstanding = self.outstanding.clone().acquire_owned().await.ok();
        Slot { _outstanding: outstanding, _role: role }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn writes_stay_within_the_outstanding_limit_and_one_per_role() {
        let writes = Arc::new(AssignmentWrites::new(3));
        let (now, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let per_role: Arc<Mutex<HashMap<usize, usize>>> = Arc::default();
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..24 {
            let (writes, now, most, per_role) = (writes.clone(), now.clone(), most.clone(), per_role.clone());
            tasks.spawn(async move {
                let role = i % 6;
                let _slot = writes.slot("111", &format!("ps-{role}")).await;
                let running = now.fetch_add(1, Ordering::SeqCst) + 1;
                most.fetch_max(running, Ordering::SeqCst);
                let same = {
                    let mut roles = per_role.lock().unwrap();
                    let n = roles.entry(role).or_default();
                    *n += 1;
                    *n
                };
                assert_eq!(same, 1, "two writes on role {role} at once");
                tokio::time::sleep(Duration::from_millis(100)).await;
                *per_role.lock().unwrap().get_mut(&role).unwrap() -= 1;
                now.fetch_sub(1, Ordering::SeqCst);
            });
        }
        while let Some(done) = tasks.join_next().await {
            done.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 3, "the limit is reached and never passed");
    }
}
