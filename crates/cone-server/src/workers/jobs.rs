//! Provisioning and revocation jobs, grant expiry, undecided requests timing out, policy waits ending, and drift
//! repairs: one loop per process, running up to 16 jobs at once.

use cone_aws::{Assignment, Change, ConnectorError, NewIamUser, NewIdcUser, Principal};
use cone_core::account::{AccountKind, AccountState};
use cone_core::job::JobKind;
use cone_core::review::{IamTarget, ItemKind, Removal, iam_removal, iam_user_name};

use super::aws::Aws;
use super::{Jitter, announce, backoff, until_due};
use crate::config::Deprovision;
use crate::drift;
use crate::services::tasks;
use crate::state::AppState;
use crate::store::{AccountNeed, CreatedAccountRow, GrantRow, JobRow, Repair};

/// Provisioning gives up after this many attempts; revocation and drift repairs never do (a restoration stops when
/// its grant ends).
const MAX_PROVISION_ATTEMPTS: i64 = 8;
/// Jobs one server runs at once. The connector's rate limits set the pace of the calls to AWS; several jobs in
/// flight keep that pace from being bound by each call's round trip. Jobs on one assignment never run side by side
/// (`Db::claim_job`).
const JOBS_IN_FLIGHT: usize = 16;
/// A failed job waits at most this long (seconds) before its next attempt.
const JOB_BACKOFF_CAP: i64 = 300;

/// Starts the loop; without a connector (sync-only mode) it decides (expiry, time-outs, waits) but runs no job. The
/// handle resolves once the loop has drained after the server was asked to stop.
pub fn spawn(s: AppState, connector: Option<Aws>) -> tokio::task::JoinHandle<()> {
    tokio::spawn(reconcile(s, connector))
}

/// Expires due grants and starts due jobs, then sleeps until a job finishes, the next due moment, or a wake-up.
/// Once the server is asked to stop, it claims nothing more and drains.
async fn reconcile(s: AppState, connector: Option<Aws>) {
    let mut running = Running::default();
    let mut stopping = s.stopping.subscribe();
    while !*stopping.borrow() {
        announce(&s, s.db.expire_due_grants(s.now()).await, "expire grants");
        announce(&s, s.db.time_out_pending(s.now() - s.config.pending_timeout, s.now()).await, "time out requests");
        announce(&s, tasks::end_waits(&s).await, "end policy waits");
        while let Some(connector) = &connector
            && running.set.len() < JOBS_IN_FLIGHT
        {
            match s.db.claim_job(s.now(), s.config.job_lease).await {
                Ok(Some(job)) => {
                    let (s, connector, id) = (s.clone(), connector.clone(), job.id);
                    let task = running.set.spawn(async move { run_job(&s, &connector, job).await });
                    running.jobs.insert(task.id(), id);
                }
                Ok(None) => break,
                Err(e) => {
                    tracing::error!("cannot claim a job: {e:#}");
                    break;
                }
            }
        }
        let wait =
            until_due(&s, s.db.next_due(s.config.pending_timeout, connector.is_some()).await, "the next due time");
        tokio::select! {
            // A finished job frees a place, and may unblock a job on the same assignment.
            Some(done) = running.set.join_next_with_id(), if !running.set.is_empty() => running.finished(done),
            _ = s.wake.notified() => {}
            _ = tokio::time::sleep(wait) => {}
            _ = stopping.changed() => {}
        }
    }
    running.drain(&s).await;
}

/// The jobs this server runs, by their tokio task.
#[derive(Default)]
struct Running {
    set: tokio::task::JoinSet<()>,
    jobs: std::collections::HashMap<tokio::task::Id, i64>,
}

impl Running {
    fn finished(&mut self, done: Result<(tokio::task::Id, ()), tokio::task::JoinError>) {
        let id = done.as_ref().map_or_else(tokio::task::JoinError::id, |(id, ())| *id);
        self.jobs.remove(&id);
        if let Err(e) = done {
            tracing::error!("a job stopped abnormally; it will run again when its lease ends: {e}");
        }
    }

    /// Lets the jobs in flight finish for `stop_grace`, then stops the rest and gives them back: a job cut off
    /// in the middle runs again from its start, which every job allows (each looks at AWS before it writes).
    async fn drain(mut self, s: &AppState) {
        let grace = std::time::Duration::from_secs(s.config.stop_grace.unsigned_abs());
        let finishing = async {
            while let Some(done) = self.set.join_next_with_id().await {
                self.finished(done);
            }
        };
        if tokio::time::timeout(grace, finishing).await.is_ok() {
            return;
        }
        self.set.abort_all();
        while let Some(done) = self.set.join_next_with_id().await {
            if done.as_ref().is_ok() {
                self.finished(done);
            }
        }
        let unfinished: Vec<i64> = self.jobs.into_values().collect();
        tracing::warn!(jobs = ?unfinished, "stopping: giving back the jobs that did not finish within stop_grace");
        if let Err(e) = s.db.release_jobs(&unfinished).await {
            tracing::error!("cannot give back the unfinished jobs; they run again when their lease ends: {e:#}");
        }
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

async fn run_job(s: &AppState, connector: &Aws, job: JobRow) {
    let result = match job.kind {
        JobKind::Provision | JobKind::Revoke => grant_job(s, connector, &job).await.map(Some),
        JobKind::Reprovision => reprovision(s, connector, &job).await.map(|()| None),
        JobKind::RemoveDrift => remove_drift(s, connector, &job).await.map(|()| None),
        JobKind::Deprovision => deprovision(s, connector, &job, AccountKind::IamUser).await.map(|()| None),
        JobKind::DeprovisionIdcUser => deprovision(s, connector, &job, AccountKind::IdcUser).await.map(|()| None),
        JobKind::ReviewRevoke => review_revoke(s, connector, &job).await.map(|()| None),
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

/// Why a grant's change in AWS did not happen (yet).
enum Failure {
    Aws(ConnectorError),
    /// Worth trying again later.
    Later(String),
    /// Trying again cannot help.
    Refused(String),
}

impl Failure {
    fn is_retryable(&self) -> bool {
        match self {
            Failure::Aws(e) => e.is_retryable(),
            Failure::Later(_) => true,
            Failure::Refused(_) => false,
        }
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Aws(e) => e.fmt(f),
            Failure::Later(why) | Failure::Refused(why) => f.write_str(why),
        }
    }
}

impl From<ConnectorError> for Failure {
    fn from(e: ConnectorError) -> Failure {
        Failure::Aws(e)
    }
}

/// What a step against AWS gives: the store's errors end the job's run (it runs again after its lease), AWS's are
/// the job's outcome.
type Step<T> = anyhow::Result<Result<T, Failure>>;

/// Runs a grant's provision or revoke job; returns the grant's task. A permission set's grant is an account
/// assignment; a group's is a membership, which is removed only if Cone made it.
async fn grant_job(s: &AppState, connector: &Aws, job: &JobRow) -> anyhow::Result<i64> {
    let grant_id =
        job.grant_id.ok_or_else(|| anyhow::anyhow!("{} job {} names no grant", job.kind.as_str(), job.id))?;
    let mut g = s.db.grant(grant_id).await?;
    if job.kind == JobKind::Provision {
        let mut made = identity(s, connector, &g).await?;
        if made.is_ok() {
            // Made for the Identity Center user the person has now.
            g = s.db.grant(grant_id).await?;
            made = if g.is_iam_group() {
                add_iam_member(s, connector, &g).await?
            } else if g.is_idc_group() {
                add_member(s, connector, &g).await?
            } else {
                connector.assign(&assignment(&g)).await.map_err(Failure::from)
            };
        }
        match made {
            Ok(()) => s.db.provisioned(job, &g, s.now()).await?,
            Err(e) if e.is_retryable() && !job.kind.gives_up(job.attempts, MAX_PROVISION_ATTEMPTS) => {
                tracing::warn!(job = job.id, "provisioning will be retried: {e}");
                retry(s, job, &e.to_string()).await?
            }
            Err(e) => {
                tracing::error!(job = job.id, "provisioning failed: {e}");
                s.db.provisioning_failed(job, &g, &e.to_string(), s.now()).await?
            }
        }
        return Ok(g.task_id);
    }
    let kept = g.membership_found == Some(1) || s.db.covered_by_other_grant(&g, s.now()).await?;
    let removed = if kept {
        Ok(())
    } else if g.is_iam_group() {
        remove_iam_member(s, connector, &g).await?
    } else if g.is_idc_group() {
        remove_member(connector, &g).await.map_err(Failure::from)
    } else {
        connector.unassign(&assignment(&g)).await.map(drop).map_err(Failure::from)
    };
    match removed {
        Ok(()) => s.db.revoked(job, &g, kept, deprovision_after(s), s.now()).await?,
        Err(e) => {
            tracing::error!(job = job.id, "revocation failed and will be retried: {e}");
            retry(s, job, &e.to_string()).await?
        }
    }
    Ok(g.task_id)
}

/// How long after its last grant ends a user Cone created is deleted (or disabled); `None` keeps it.
fn deprovision_after(s: &AppState) -> Option<i64> {
    let settings = &s.config.aws.account_provisioning;
    match settings.deprovision {
        Deprovision::Delete => Some(settings.delete_after),
        Deprovision::Disable => Some(0),
        Deprovision::Keep => None,
    }
}

/// Makes the membership a grant names. Whether the person was a member already is looked at and stored first, so
/// that a retry after a crash between the two does not take Cone's own membership for someone else's.
async fn add_member(s: &AppState, connector: &Aws, g: &GrantRow) -> Step<()> {
    let store = match connector.identity_store_id().await {
        Ok(store) => store,
        Err(e) => return Ok(Err(e.into())),
    };
    if g.membership_found.is_none() {
        match connector.is_idc_group_member(&store, &g.group_id, &g.principal_id).await {
            Ok(found) => s.db.membership_looked(g, found).await?,
            Err(e) => return Ok(Err(e.into())),
        }
    }
    Ok(connector.add_idc_group_member(&store, &g.group_id, &g.principal_id).await.map(drop).map_err(Failure::from))
}

async fn restore_member(connector: &Aws, g: &GrantRow) -> Result<(), ConnectorError> {
    let store = connector.identity_store_id().await?;
    connector.add_idc_group_member(&store, &g.group_id, &g.principal_id).await.map(drop)
}

async fn remove_member(connector: &Aws, g: &GrantRow) -> Result<(), ConnectorError> {
    let store = connector.identity_store_id().await?;
    connector.remove_idc_group_member(&store, &g.group_id, &g.principal_id).await.map(drop)
}

/// For a person Identity Center did not know, the Identity Center user Cone creates for them (recorded first, as an
/// IAM user is); the grant is then made for it.
async fn identity(s: &AppState, connector: &Aws, g: &GrantRow) -> Step<()> {
    let settings = &s.config.aws.account_provisioning;
    let Some(need) = s.db.identity_needed(g, settings.identity_center_users, s.now()).await? else { return Ok(Ok(())) };
    let account = match need {
        AccountNeed::Use(_) => return Ok(Ok(())),
        AccountNeed::Wait => {
            return Ok(Err(Failure::Later(
                "the Identity Center user Cone created for this person is being deleted; the grant is provisioned \
                 once it is gone, for a new one"
                    .into(),
            )));
        }
        AccountNeed::NotAllowed => {
            return Ok(Err(Failure::Refused(
                "the person has no Identity Center user, and aws.account_provisioning.identity_center_users is off: \
                 turn it on so that Cone creates one, or create the user in Identity Center (the next sync links it)"
                    .into(),
            )));
        }
        AccountNeed::Create(account) => account,
    };
    let store = match connector.identity_store_id().await {
        Ok(store) => store,
        Err(e) => return Ok(Err(e.into())),
    };
    let person = s.db.user_by_name(&account.username).await?;
    let (display_name, email) = person.map(|p| (p.display_name, p.email)).unwrap_or_default();
    let display_name = if display_name.trim().is_empty() { account.user_name.clone() } else { display_name };
    let (given_name, family_name) = cone_core::naming::given_and_family(&display_name, &account.user_name);
    let new = NewIdcUser {
        user_name: account.user_name.clone(),
        display_name,
        given_name,
        family_name,
        email: Some(email).filter(|e| !e.is_empty()),
    };
    let created = connector.create_owned_idc_user(&store, &new).await;
    created_or_not(s, &account, created.map(|(change, id)| (change, Some(id)))).await
}

/// Records what creating `account` came to: made, found from an earlier attempt, or found to be someone else's
/// (then Cone made nothing and keeps no record that it might have).
async fn created_or_not(
    s: &AppState,
    account: &CreatedAccountRow,
    created: Result<(Change, Option<String>), ConnectorError>,
) -> Step<()> {
    match created {
        Ok((change, id)) => {
            s.db.account_created(account, id.as_deref(), change == Change::Made, s.now()).await?;
            Ok(Ok(()))
        }
        Err(e) => {
            if e.is_not_created_by_cone() {
                s.db.account_not_created(account).await?;
            }
            Ok(Err(e.into()))
        }
    }
}

/// Adds the person to an IAM group through the IAM user Cone created for them in its account, creating it first
/// when there is none (recorded before IAM is asked, so a crash in between is finished, not repeated). As for an
/// Identity Center group, an existing membership is looked for and stored before the write.
async fn add_iam_member(s: &AppState, connector: &Aws, g: &GrantRow) -> Step<()> {
    let settings = &s.config.aws.account_provisioning;
    let user = match s.db.account_needed(g, settings.iam_users, &settings.path, s.now()).await? {
        AccountNeed::Use(user) => user,
        AccountNeed::Wait => {
            return Ok(Err(Failure::Later(format!(
                "the IAM user Cone created for this person in account {} is being deleted; the grant is provisioned \
                 once it is gone",
                g.account_id
            ))));
        }
        AccountNeed::NotAllowed => {
            return Ok(Err(Failure::Refused(format!(
                "the person has no IAM user in account {} that Cone created, and aws.account_provisioning.iam_users \
                 is off: turn it on so that Cone creates one, or grant the group through Identity Center",
                g.account_id
            ))));
        }
        AccountNeed::Create(account) => {
            let tags = settings.tags.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
            let new = NewIamUser {
                name: account.user_name.clone(),
                path: account.path.clone(),
                owner: account.owner.clone(),
                tags,
            };
            let created = connector.create_owned_iam_user(&g.account_id, &new).await;
            if let Err(e) = created_or_not(s, &account, created.map(|change| (change, None))).await? {
                return Ok(Err(e));
            }
            account.user_name
        }
    };
    if g.membership_found.is_none() {
        match connector.is_iam_group_member(&g.account_id, &g.group_id, &user).await {
            Ok(found) => s.db.membership_looked(g, found).await?,
            Err(e) => return Ok(Err(e.into())),
        }
    }
    Ok(connector.add_iam_group_member(&g.account_id, &g.group_id, &user).await.map(drop).map_err(Failure::from))
}

/// Takes the person out of the IAM group; without an IAM user of Cone's in the account there is nothing to remove.
async fn remove_iam_member(s: &AppState, connector: &Aws, g: &GrantRow) -> Step<()> {
    let Some(account) = s.db.created_account(g.user_id, &g.account_id).await? else { return Ok(Ok(())) };
    let removed = connector.remove_iam_group_member(&g.account_id, &g.group_id, &account.user_name).await;
    Ok(removed.map(drop).map_err(Failure::from))
}

/// Deletes the user of `kind` Cone created for a person once no grant needs it: an IAM user with everything IAM
/// requires gone first, an Identity Center user with its group memberships. With `deprovision: disable` (unless its
/// person left) an IAM user is disabled instead, an Identity Center user kept. A user that lost Cone's mark meanwhile
/// is left alone, and the job keeps failing visibly.
async fn deprovision(s: &AppState, connector: &Aws, job: &JobRow, kind: AccountKind) -> anyhow::Result<()> {
    let grant_id =
        job.grant_id.ok_or_else(|| anyhow::anyhow!("{} job {} names no grant", job.kind.as_str(), job.id))?;
    let g = s.db.grant(grant_id).await?;
    let delete = s.config.aws.account_provisioning.deprovision == Deprovision::Delete;
    let Some(account) = s.db.account_unneeded(job, &g, kind, delete, s.now()).await? else { return Ok(()) };
    if account.state != AccountState::Deleting {
        let disabled = match kind {
            AccountKind::IamUser => {
                connector.disable_owned_iam_user(&account.account_id, &account.user_name, &account.owner).await
            }
            AccountKind::IdcUser => return s.db.account_kept(job, &account, None, s.now()).await,
        };
        return match disabled {
            Ok(change) => s.db.account_kept(job, &account, Some(change == Change::Made), s.now()).await,
            Err(e) => {
                tracing::error!(job = job.id, "disabling an IAM user Cone created failed and will be retried: {e}");
                retry(s, job, &e.to_string()).await
            }
        };
    }
    let deleted = match kind {
        AccountKind::IamUser => {
            connector.delete_owned_iam_user(&account.account_id, &account.user_name, &account.owner).await
        }
        // The id is unknown while a creation's answer was lost: the name then finds the user.
        AccountKind::IdcUser => match connector.identity_store_id().await {
            Ok(store) => {
                let user = if account.owner.is_empty() { &account.user_name } else { &account.owner };
                connector.delete_owned_idc_user(&store, user).await
            }
            Err(e) => Err(e),
        },
    };
    match deleted {
        Ok(change) => s.db.account_removed(job, &account, change == Change::Made, s.now()).await,
        Err(e) => {
            tracing::error!(job = job.id, "deleting a user Cone created failed and will be retried: {e}");
            retry(s, job, &e.to_string()).await
        }
    }
}

/// Assigns again what an active grant says its user has. Unlike `provision`, the grant keeps its start and end;
/// the job stops once the grant is no longer active (its revocation takes over).
async fn reprovision(s: &AppState, connector: &Aws, job: &JobRow) -> anyhow::Result<()> {
    let grant_id = job.grant_id.ok_or_else(|| anyhow::anyhow!("reprovision job {} names no grant", job.id))?;
    if !s.db.grant_active(grant_id, s.now()).await? {
        tracing::info!(job = job.id, "the grant is no longer active; its missing assignment stays missing");
        return s.db.drift_repaired(job, Repair::Skipped, s.now()).await;
    }
    let g = s.db.grant(grant_id).await?;
    // A membership goes back as it was first made (its look is stored already: Cone made it).
    let restored = if g.is_iam_group() {
        add_iam_member(s, connector, &g).await?
    } else if g.is_idc_group() {
        restore_member(connector, &g).await.map_err(Failure::from)
    } else {
        connector.assign(&assignment(&g)).await.map_err(Failure::from)
    };
    match restored {
        Ok(()) => s.db.drift_repaired(job, Repair::Restored, s.now()).await,
        Err(e) => {
            tracing::error!(
                job = job.id,
                "restoring a missing assignment or membership failed and will be retried: {e}"
            );
            retry(s, job, &e.to_string()).await
        }
    }
}

/// Removes an unexplained assignment, unless the finding was resolved or reported only meanwhile, or a grant now
/// explains the assignment.
async fn remove_drift(s: &AppState, connector: &Aws, job: &JobRow) -> anyhow::Result<()> {
    let finding_id = job.finding_id.ok_or_else(|| anyhow::anyhow!("remove_drift job {} names no finding", job.id))?;
    let f = s.db.drift_finding(finding_id).await?;
    if f.resolved_at.is_some() || f.remedy.as_deref() != Some(drift::Remedy::Remove.as_str()) {
        return s.db.drift_repaired(job, Repair::Skipped, s.now()).await;
    }
    if s.db.drift_explained(&f).await? {
        tracing::info!(job = job.id, "a grant now explains the assignment; it stays");
        return s.db.drift_repaired(job, Repair::Skipped, s.now()).await;
    }
    let unexplained = Assignment {
        instance_arn: f.instance_arn.clone(),
        account_id: f.account_id.clone(),
        permission_set_arn: f.permission_set_arn.clone(),
        principal: Principal::User(f.principal_id.clone()),
    };
    match connector.unassign(&unexplained).await {
        Ok(_) => s.db.drift_repaired(job, Repair::Removed, s.now()).await,
        Err(e) => {
            tracing::error!(job = job.id, "removing an unexplained assignment failed and will be retried: {e}");
            retry(s, job, &e.to_string()).await
        }
    }
}

/// Removes what an access review revoked: a person's own assignment, their membership of an Identity Center group
/// (once no Cone grant gives the same access), an IAM group membership or an access key (a grant is revoked by its
/// own job). What the connector may not remove is left to someone by hand (`review_by_hand`). Retried until it is
/// done; each failure, and each wait, is on the item for all to see.
async fn review_revoke(s: &AppState, connector: &Aws, job: &JobRow) -> anyhow::Result<()> {
    let item_id = job.item_id.ok_or_else(|| anyhow::anyhow!("review_revoke job {} names no item", job.id))?;
    let t = s.db.review_target(item_id).await?;
    if !t.kind.is_iam()
        && let Some(task) = s.db.review_access_granted(item_id).await?
    {
        let why = format!("a Cone grant (request {task}) also gives this access; it is removed once that grant ends");
        return retry(s, job, &why).await;
    }
    let iam = IamTarget {
        account_id: &t.account_id,
        user_arn: &t.iam_user_arn,
        group: &t.group_id,
        access_key: &t.access_key_id,
    };
    let aws = &s.config.aws;
    if t.kind.is_iam()
        && let Removal::ByHand(what) =
            iam_removal(t.kind, &iam, aws.provisioning && aws.sync_iam, &aws.account_provisioning.path)
    {
        tracing::info!(job = job.id, item = item_id, "a revoked IAM item is left to be removed by hand: {what}");
        return s.db.review_by_hand(job, item_id, &what, s.now()).await;
    }
    let user = iam_user_name(&t.iam_user_arn);
    let removed = match t.kind {
        ItemKind::Assignment => {
            let a = Assignment {
                instance_arn: t.instance_arn,
                account_id: t.account_id,
                permission_set_arn: t.permission_set_arn,
                principal: Principal::User(t.principal_id),
            };
            connector.unassign(&a).await
        }
        ItemKind::GroupMembership => match connector.identity_store_id().await {
            Ok(store) => connector.remove_idc_group_member(&store, &t.group_id, &t.principal_id).await.map(|_| None),
            Err(e) => Err(e),
        },
        ItemKind::IamGroupMembership => {
            connector.remove_iam_group_member(&t.account_id, &t.group_id, user).await.map(|_| None)
        }
        ItemKind::AccessKey => {
            connector.deactivate_access_key(&t.account_id, user, &t.access_key_id).await.map(|_| None)
        }
        ItemKind::Grant | ItemKind::IamUser => {
            anyhow::bail!("review_revoke job {} names a {} item, which it cannot remove", job.id, t.kind.as_str())
        }
    };
    match removed {
        Ok(request_id) => s.db.review_removed(job, item_id, request_id.as_deref(), s.now()).await,
        Err(e) => {
            tracing::error!(
                job = job.id,
                item = item_id,
                "removing access revoked in a review failed and will be retried: {e}"
            );
            retry(s, job, &e.to_string()).await
        }
    }
}

/// The job runs again after a backoff.
async fn retry(s: &AppState, job: &JobRow, error: &str) -> anyhow::Result<()> {
    s.db.retry_job(job, error, s.now() + backoff(job.attempts, JOB_BACKOFF_CAP, Jitter::Full), s.now()).await
}
