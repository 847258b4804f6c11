//! The connector: one full read (`sync`) and the two writes (`assign`, `unassign`).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::future::Future;
use std::sync::{Arc, Mutex};

use aws_config::SdkConfig;
use aws_config::retry::RetryConfig;
use aws_config::timeout::TimeoutConfig;
use aws_sdk_identitystore::types::MemberId;
use aws_sdk_ssoadmin::types::{
    AccountAssignmentOperationStatus, ListAccountAssignmentsFilter, PrincipalType, StatusValues, TargetType,
};
use futures_util::{StreamExt, TryStreamExt, stream};

use crate::error::{ConnectorError, Op};
use crate::journal::{Journal, NoJournal, Units};
use crate::paging::{call, call_retried, list_all};
use crate::ratelimit::{RateLimits, Rates};
use crate::retry::{RequestState, Timing, wait_for, with_retries};
use crate::scim::Scim;
use crate::settings::DEFAULT_MEMBER_ROLE;
use crate::spool::{Part, Parts, Sink, Synced};
use crate::writes::AssignmentWrites;
use crate::{Account, Assignment, AssignmentRecord, Group, PermissionSet, Principal, Snapshot, User};

const LIST_INSTANCES: Op = Op::sso("ListInstances");
const LIST_PERMISSION_SETS: Op = Op::sso("ListPermissionSets");
const DESCRIBE_PERMISSION_SET: Op = Op::sso("DescribePermissionSet");
const LIST_ACCOUNTS_FOR_PROVISIONED: Op = Op::sso("ListAccountsForProvisionedPermissionSet");
const LIST_PROVISIONED_TO_ACCOUNT: Op = Op::sso("ListPermissionSetsProvisionedToAccount");
const LIST_ACCOUNT_ASSIGNMENTS: Op = Op::sso("ListAccountAssignments");
const LIST_ASSIGNMENTS_FOR_PRINCIPAL: Op = Op::sso("ListAccountAssignmentsForPrincipal");
const CREATE_ASSIGNMENT: Op = Op::sso("CreateAccountAssignment");
const CREATION_STATUS: Op = Op::sso("DescribeAccountAssignmentCreationStatus");
const DELETE_ASSIGNMENT: Op = Op::sso("DeleteAccountAssignment");
const DELETION_STATUS: Op = Op::sso("DescribeAccountAssignmentDeletionStatus");
const LIST_ACCOUNTS: Op = Op::organizations("ListAccounts");
const LIST_USERS: Op = Op::identitystore("ListUsers");
const LIST_GROUPS: Op = Op::identitystore("ListGroups");
const LIST_GROUP_MEMBERSHIPS: Op = Op::identitystore("ListGroupMemberships");

/// The largest page AWS documents for the list calls the connector makes (MaxResults), and for Organizations'
/// ListAccounts. Asking for it keeps the number of pages, and so of calls, at its least; left out, AWS picks a
/// page size of its own.
const PAGE: i32 = 100;
const ACCOUNTS_PAGE: i32 = 20;

/// Calls in flight at once during `sync`. The rate limiter sets the pace; a few calls in flight keep it
/// from being bound by round-trip latency.
const CONCURRENCY: usize = 4;

/// A handle on one AWS organisation's IAM Identity Center (and the IAM of the account its credentials are
/// in). Cheap to clone.
#[derive(Debug, Clone)]
pub struct Connector {
    pub(crate) org: aws_sdk_organizations::Client,
    sso: aws_sdk_ssoadmin::Client,
    pub(crate) ids: aws_sdk_identitystore::Client,
    pub(crate) iam: aws_sdk_iam::Client,
    pub(crate) sts: aws_sdk_sts::Client,
    /// The configuration the clients were made from, as loaded: the member accounts' roles are assumed from its
    /// credentials.
    pub(crate) sdk: SdkConfig,
    /// The role assumed in each member account to read its IAM (`BATON_IAM_ASSUME_ROLE_NAME`).
    pub(crate) member_role: String,
    /// IAM clients of the member accounts whose role could be assumed, by account id: each caches its account's
    /// credentials and renews them before they expire, across syncs.
    pub(crate) members: Arc<Mutex<HashMap<String, aws_sdk_iam::Client>>>,
    /// The account the credentials are in and its partition, from sts:GetCallerIdentity, asked once.
    pub(crate) caller: Arc<tokio::sync::OnceCell<(String, String)>>,
    /// Identity Center's limits on assignment writes (`writes`).
    writes: Arc<AssignmentWrites>,
    region: String,
    pub(crate) timing: Timing,
    pub(crate) limits: RateLimits,
    /// Read accounts from Organizations (ListAccounts); without it, accounts are the ones IAM Identity
    /// Center has permission sets provisioned to, known by id only.
    pub(crate) organizations: bool,
    /// Users' `active` flag from SCIM (`BATON_SCIM_*`), beside Identity Center's `UserStatus`.
    pub(crate) scim: Option<Scim>,
}

/// Points a Create- or DeleteAccountAssignment request (builders that share no trait) at assignment `$a`.
macro_rules! targeting {
    ($request:expr, $a:expr) => {{
        let a: &Assignment = $a;
        let (principal_type, principal_id) = principal_parts(&a.principal);
        $request
            .instance_arn(&a.instance_arn)
            .target_id(&a.account_id)
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(&a.permission_set_arn)
            .principal_type(principal_type)
            .principal_id(principal_id)
    }};
}

/// A create or delete request that IAM Identity Center accepted.
struct Started {
    request_id: String,
    progress: RequestState,
}

impl Connector {
    /// A connector using an already loaded configuration, with Organizations enabled and the default
    /// [`Rates`]. Organizations is a global service; the SDK routes it to its global endpoint whatever the
    /// region.
    pub fn new(sdk: &SdkConfig) -> Connector {
        Connector::configured(sdk, RateLimits::new(&Rates::default()), true, DEFAULT_MEMBER_ROLE)
    }

    /// A connector drawing on `limits` (shared with whatever else calls AWS for it, such as the STS
    /// credentials provider), reading accounts from Organizations if `organizations`.
    pub(crate) fn configured(
        loaded: &SdkConfig,
        limits: RateLimits,
        organizations: bool,
        member_role: &str,
    ) -> Connector {
        let timing = Timing::default();
        let sdk = &calling(loaded, &timing);
        Connector {
            org: aws_sdk_organizations::Client::new(sdk),
            sso: aws_sdk_ssoadmin::Client::new(sdk),
            ids: aws_sdk_identitystore::Client::new(sdk),
            iam: aws_sdk_iam::Client::new(sdk),
            sts: aws_sdk_sts::Client::new(sdk),
            sdk: loaded.clone(),
            member_role: member_role.to_string(),
            members: Arc::default(),
            caller: Arc::default(),
            writes: Arc::new(AssignmentWrites::new(crate::writes::DEFAULT_OUTSTANDING)),
            region: sdk.region().map(|r| r.to_string()).unwrap_or_else(|| "(no region configured)".into()),
            timing,
            limits,
            organizations,
            scim: None,
        }
    }

    /// Reads everything Cone needs, using the first IAM Identity Center instance that ListInstances returns.
    pub async fn sync(&self) -> Result<Snapshot, ConnectorError> {
        self.sync_resuming(&NoJournal).await
    }

    /// [`Connector::sync`], resuming from `journal` as [`Connector::sync_into`] does.
    pub async fn sync_resuming(&self, journal: &dyn Journal) -> Result<Snapshot, ConnectorError> {
        let parts = Parts::default();
        let synced = self.sync_into(journal, &parts).await?;
        Ok(Snapshot::from_parts(synced, parts.into_inner()))
    }

    /// Reads everything Cone needs into `sink`, a part as soon as it is read (see [`crate::spool`]). Records each
    /// finished unit of reading in `journal` and takes the units an interrupted sync recorded there (see
    /// [`crate::journal`]); clear the journal once what the sink took is stored.
    pub async fn sync_into(&self, journal: &dyn Journal, sink: &dyn Sink) -> Result<Synced, ConnectorError> {
        let (instance_arn, identity_store_id) = self.instance().await?;
        let units = Units::new(journal, &instance_arn);
        let (listed_accounts, permission_sets, users, groups) = tokio::try_join!(
            async { if self.organizations { self.accounts().await.map(Some) } else { Ok(None) } },
            self.permission_sets(&units, &instance_arn),
            self.users(&identity_store_id),
            self.groups(&identity_store_id),
        )?;
        self.memberships(&units, sink, &identity_store_id, &groups).await?;
        let per_set = self.accounts_per_permission_set(&units, &instance_arn, &permission_sets).await?;
        let accounts = listed_accounts.unwrap_or_else(|| accounts_seen(&per_set));
        let provisioned = self.provisioned(&units, &instance_arn, &accounts, &permission_sets, per_set).await?;
        // Only the principals' ids drive what follows.
        let principals: Vec<Principal> = users
            .iter()
            .map(|u| Principal::User(u.id.clone()))
            .chain(groups.iter().map(|g| Principal::Group(g.id.clone())))
            .collect();
        for part in
            [Part::Accounts(accounts), Part::PermissionSets(permission_sets), Part::Users(users), Part::Groups(groups)]
        {
            put(sink, part).await?;
        }
        self.assignments(&units, sink, &instance_arn, &provisioned, principals).await?;
        put(sink, Part::Provisioned(provisioned)).await?;
        Ok(Synced { resumed: units.finish(), instance_arn, identity_store_id })
    }

    /// The AWS calls this connector (and its clones) made so far, by IAM action, each page and retry counted.
    pub fn calls(&self) -> std::collections::BTreeMap<String, u64> {
        self.limits.calls()
    }

    /// At most `n` account-assignment writes outstanding at once (AWS's quota is
    /// [`DEFAULT_OUTSTANDING`](crate::DEFAULT_OUTSTANDING_ASSIGNMENT_WRITES), the default).
    pub fn with_outstanding_writes(mut self, n: usize) -> Connector {
        self.writes = Arc::new(AssignmentWrites::new(n));
        self
    }

    /// Creates the assignment unless it already exists, and waits until IAM Identity Center reports it done,
    /// within Identity Center's limits on writes (`writes`).
    pub async fn assign(&self, a: &Assignment) -> Result<(), ConnectorError> {
        let _slot = self.writes.slot(&a.account_id, &a.permission_set_arn).await;
        let started =
            self.start(CREATE_ASSIGNMENT, a, "assignment already exists", || self.create_unless_exists(a)).await?;
        let Some((request_id, true)) = started else {
            return Ok(());
        };
        wait_for(&self.timing, CREATE_ASSIGNMENT.name, CREATION_STATUS, &request_id, || {
            self.creation_progress(a, &request_id)
        })
        .await
    }

    /// Deletes the assignment and waits until IAM Identity Center reports it gone; returns the deletion request's
    /// id, `None` when there was nothing to delete. An assignment that does not exist counts as removed.
    ///
    /// Deletes first and looks only if the deletion fails: a grant's assignment is nearly always there, so looking
    /// first would spend a call per revocation (half of them, when many grants end together) on the rare case.
    /// Deleting what is not there is answered ResourceNotFound (moto) or ends FAILED (AWS, for one).
    pub async fn unassign(&self, a: &Assignment) -> Result<Option<String>, ConnectorError> {
        let failure = match self.delete(a).await {
            Err(e @ ConnectorError::OperationFailed { .. }) => e,
            done => return done,
        };
        if with_retries(&self.timing, LIST_ASSIGNMENTS_FOR_PRINCIPAL, || self.exists(a)).await? {
            return Err(failure);
        }
        tracing::debug!(?a, %failure, "assignment already absent");
        Ok(None)
    }

    async fn delete(&self, a: &Assignment) -> Result<Option<String>, ConnectorError> {
        let _slot = self.writes.slot(&a.account_id, &a.permission_set_arn).await;
        let started = self.start(DELETE_ASSIGNMENT, a, "assignment already absent", || self.delete_once(a)).await?;
        let Some((request_id, pending)) = started else {
            return Ok(None);
        };
        if pending {
            wait_for(&self.timing, DELETE_ASSIGNMENT.name, DELETION_STATUS, &request_id, || {
                self.deletion_progress(&a.instance_arn, &request_id)
            })
            .await?;
        }
        Ok(Some(request_id))
    }

    /// Runs `step` (one create or delete, retried while it fails transiently) and tells what it started: the
    /// request's id, and whether IAM Identity Center is still at it; `None` when `step` had nothing to do (logged
    /// as `settled`).
    async fn start<F, Fut>(
        &self,
        op: Op,
        a: &Assignment,
        settled: &str,
        step: F,
    ) -> Result<Option<(String, bool)>, ConnectorError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Option<Started>, ConnectorError>>,
    {
        let Some(Started { request_id, progress }) = with_retries(&self.timing, op, step).await? else {
            tracing::debug!(?a, "{settled}");
            return Ok(None);
        };
        match progress {
            RequestState::Succeeded => Ok(Some((request_id, false))),
            RequestState::Failed(reason) => {
                Err(ConnectorError::OperationFailed { operation: op.name, request_id, reason })
            }
            RequestState::InProgress => Ok(Some((request_id, true))),
        }
    }

    // ---- sync parts -------------------------------------------------------------------------------

    pub(crate) async fn instance(&self) -> Result<(String, String), ConnectorError> {
        let instances = list_all(
            &self.limits,
            &self.timing,
            LIST_INSTANCES,
            |token| self.sso.list_instances().max_results(PAGE).set_next_token(token).send(),
            |out| (out.instances.unwrap_or_default(), out.next_token),
        )
        .await?;
        let mut usable =
            instances.iter().filter_map(|i| Some((i.instance_arn()?.to_string(), i.identity_store_id()?.to_string())));
        let Some(first) = usable.next() else {
            return Err(ConnectorError::NoInstance { region: self.region.clone() });
        };
        if instances.len() > 1 {
            tracing::warn!(count = instances.len(), instance = %first.0, "several IAM Identity Center instances; using the first");
        }
        Ok(first)
    }

    pub(crate) async fn accounts(&self) -> Result<Vec<Account>, ConnectorError> {
        let listed = list_all(
            &self.limits,
            &self.timing,
            LIST_ACCOUNTS,
            |token| self.org.list_accounts().max_results(ACCOUNTS_PAGE).set_next_token(token).send(),
            |out| (out.accounts.unwrap_or_default(), out.next_token),
        )
        .await?;
        let mut accounts = Vec::new();
        for a in listed {
            let Some(id) = a.id() else {
                return Err(ConnectorError::MalformedResponse { operation: LIST_ACCOUNTS.name, field: "Account.Id" });
            };
            // `State` replaces the `Status` field that AWS retires in 2026; read whichever is there.
            let status = a.state().map(|s| s.as_str()).or_else(|| a.status().map(|s| s.as_str())).unwrap_or("UNKNOWN");
            if status != "ACTIVE" {
                tracing::debug!(account = id, status, "skipping account that is not ACTIVE");
                continue;
            }
            accounts.push(Account {
                id: id.to_string(),
                name: a.name().unwrap_or(id).to_string(),
                email: a.email().unwrap_or_default().to_string(),
                status: status.to_string(),
            });
        }
        accounts.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(accounts)
    }

    async fn permission_sets(
        &self,
        units: &Units<'_>,
        instance_arn: &str,
    ) -> Result<Vec<PermissionSet>, ConnectorError> {
        let arns = list_all(
            &self.limits,
            &self.timing,
            LIST_PERMISSION_SETS,
            |token| {
                self.sso
                    .list_permission_sets()
                    .instance_arn(instance_arn)
                    .max_results(PAGE)
                    .set_next_token(token)
                    .send()
            },
            |out| (out.permission_sets.unwrap_or_default(), out.next_token),
        )
        .await?;
        let described = bounded(arns, |arn| {
            let key = arn.clone();
            let read = async move {
                let describe =
                    || self.sso.describe_permission_set().instance_arn(instance_arn).permission_set_arn(&arn).send();
                let described = call_retried(&self.limits, &self.timing, DESCRIBE_PERMISSION_SET, describe).await;
                // None: deleted between the listing and now.
                let Some(out) = found(described)? else {
                    return Ok(None);
                };
                let Some(ps) = out.permission_set else {
                    return Err(ConnectorError::MalformedResponse {
                        operation: DESCRIBE_PERMISSION_SET.name,
                        field: "PermissionSet",
                    });
                };
                Ok(Some(PermissionSet {
                    name: ps.name().unwrap_or(&arn).to_string(),
                    description: ps.description().map(str::to_string),
                    session_duration: ps.session_duration().map(str::to_string),
                    arn,
                }))
            };
            async move { units.unit("permission-set", &key, read).await }
        })
        .await?;
        let mut sets: Vec<PermissionSet> = described.into_iter().flatten().collect();
        sets.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.arn.cmp(&b.arn)));
        Ok(sets)
    }

    async fn users(&self, identity_store_id: &str) -> Result<Vec<User>, ConnectorError> {
        let listed = list_all(
            &self.limits,
            &self.timing,
            LIST_USERS,
            |token| {
                self.ids
                    .list_users()
                    .identity_store_id(identity_store_id)
                    .max_results(PAGE)
                    .set_next_token(token)
                    .send()
            },
            |out| (out.users, out.next_token),
        )
        .await?;
        let inactive = match &self.scim {
            Some(scim) => scim.inactive().await?,
            None => std::collections::HashSet::new(),
        };
        let mut users: Vec<User> = listed
            .iter()
            .map(|u| {
                let user_name = u.user_name().unwrap_or(u.user_id()).to_string();
                let email = u
                    .emails()
                    .iter()
                    .find(|e| e.primary())
                    .or_else(|| u.emails().first())
                    .and_then(|e| e.value())
                    .map(str::to_string);
                User {
                    id: u.user_id().to_string(),
                    display_name: u.display_name().map(str::to_string).unwrap_or_else(|| user_name.clone()),
                    user_name,
                    email,
                    enabled: u.user_status() != Some(&aws_sdk_identitystore::types::UserStatus::Disabled)
                        && !inactive.contains(u.user_id()),
                }
            })
            .collect();
        users.sort_by(|a, b| a.user_name.cmp(&b.user_name).then_with(|| a.id.cmp(&b.id)));
        Ok(users)
    }

    async fn groups(&self, identity_store_id: &str) -> Result<Vec<Group>, ConnectorError> {
        let listed = list_all(
            &self.limits,
            &self.timing,
            LIST_GROUPS,
            |token| {
                self.ids
                    .list_groups()
                    .identity_store_id(identity_store_id)
                    .max_results(PAGE)
                    .set_next_token(token)
                    .send()
            },
            |out| (out.groups, out.next_token),
        )
        .await?;
        let mut groups: Vec<Group> = listed
            .iter()
            .map(|g| Group {
                id: g.group_id().to_string(),
                display_name: g.display_name().unwrap_or(g.group_id()).to_string(),
            })
            .collect();
        groups.sort_by(|a, b| a.display_name.cmp(&b.display_name).then_with(|| a.id.cmp(&b.id)));
        Ok(groups)
    }

    async fn memberships(
        &self,
        units: &Units<'_>,
        sink: &dyn Sink,
        identity_store_id: &str,
        groups: &[Group],
    ) -> Result<(), ConnectorError> {
        bounded(groups, |group| async move {
            let read = list_all(
                &self.limits,
                &self.timing,
                LIST_GROUP_MEMBERSHIPS,
                move |token| {
                    self.ids
                        .list_group_memberships()
                        .identity_store_id(identity_store_id)
                        .group_id(&group.id)
                        .max_results(PAGE)
                        .set_next_token(token)
                        .send()
                },
                move |out| {
                    let users = out
                        .group_memberships
                        .iter()
                        .filter_map(|m| match m.member_id() {
                            Some(MemberId::UserId(user)) => Some((group.id.clone(), user.clone())),
                            _ => None,
                        })
                        .collect();
                    (users, out.next_token)
                },
            );
            put(sink, Part::Memberships(units.unit("members", &group.id, read).await?)).await
        })
        .await?;
        Ok(())
    }

    /// `(account id, permission set arn)` for every account each permission set is provisioned to, from one
    /// ListAccountsForProvisionedPermissionSet per permission set (there are usually far fewer permission
    /// sets than accounts).
    async fn accounts_per_permission_set(
        &self,
        units: &Units<'_>,
        instance_arn: &str,
        permission_sets: &[PermissionSet],
    ) -> Result<BTreeSet<(String, String)>, ConnectorError> {
        let per_set = bounded(permission_sets, |ps| async move {
            let read = self.accounts_for_permission_set(instance_arn, &ps.arn);
            let ids = units.unit("accounts-of", &ps.arn, read).await?;
            Ok(ids.into_iter().map(|id| (id, ps.arn.clone())).collect::<Vec<_>>())
        })
        .await?;
        Ok(per_set.into_iter().flatten().collect())
    }

    /// Where each permission set is provisioned, as `(account id, permission set arn)` for `accounts`.
    ///
    /// `per_set` is [`Self::accounts_per_permission_set`]; then one ListPermissionSetsProvisionedToAccount for the account with
    /// the fewest results as a cross-check. If the two disagree, the per-account view is used for every
    /// account. On AWS they agree (barring a change during the sync); moto 5.2.1 needs the fallback: its
    /// ListAccountsForProvisionedPermissionSet answers the caller's own account for every provisioned
    /// permission set, while its ListPermissionSetsProvisionedToAccount ignores AccountId and answers every
    /// provisioned permission set for any account.
    async fn provisioned(
        &self,
        units: &Units<'_>,
        instance_arn: &str,
        accounts: &[Account],
        permission_sets: &[PermissionSet],
        per_set: BTreeSet<(String, String)>,
    ) -> Result<Vec<(String, String)>, ConnectorError> {
        let active: HashSet<&str> = accounts.iter().map(|a| a.id.as_str()).collect();
        let known: HashSet<&str> = permission_sets.iter().map(|p| p.arn.as_str()).collect();
        let pairs: BTreeSet<(String, String)> =
            per_set.into_iter().filter(|(id, _)| active.contains(id.as_str())).collect();

        let Some(probe) = accounts.iter().min_by_key(|a| pairs.iter().filter(|(id, _)| *id == a.id).count()) else {
            return Ok(Vec::new());
        };
        let listed: BTreeSet<String> = self
            .sets_provisioned_to_account(units, instance_arn, &probe.id)
            .await?
            .into_iter()
            .filter(|arn| known.contains(arn.as_str()))
            .collect();
        let expected: BTreeSet<String> =
            pairs.iter().filter(|(id, _)| *id == probe.id).map(|(_, arn)| arn.clone()).collect();
        if listed == expected {
            return Ok(pairs.into_iter().collect());
        }

        tracing::warn!(
            account = %probe.id,
            "ListAccountsForProvisionedPermissionSet and ListPermissionSetsProvisionedToAccount disagree \
             (as in moto 5.2.1); listing provisioned permission sets per account instead"
        );
        // The probed account's answer is in hand already.
        let others = accounts.iter().filter(|a| a.id != probe.id);
        let mut per_account = bounded(others, |account| async move {
            let arns = self.sets_provisioned_to_account(units, instance_arn, &account.id).await?;
            Ok(arns.into_iter().map(|arn| (account.id.clone(), arn)).collect::<Vec<_>>())
        })
        .await?;
        per_account.push(listed.into_iter().map(|arn| (probe.id.clone(), arn)).collect());
        Ok(sorted_unique(per_account).into_iter().filter(|(_, arn)| known.contains(arn.as_str())).collect())
    }

    async fn accounts_for_permission_set(
        &self,
        instance_arn: &str,
        permission_set_arn: &str,
    ) -> Result<Vec<String>, ConnectorError> {
        list_all(
            &self.limits,
            &self.timing,
            LIST_ACCOUNTS_FOR_PROVISIONED,
            |token| {
                self.sso
                    .list_accounts_for_provisioned_permission_set()
                    .instance_arn(instance_arn)
                    .permission_set_arn(permission_set_arn)
                    .max_results(PAGE)
                    .set_next_token(token)
                    .send()
            },
            |out| (out.account_ids.unwrap_or_default(), out.next_token),
        )
        .await
    }

    async fn sets_provisioned_to_account(
        &self,
        units: &Units<'_>,
        instance_arn: &str,
        account_id: &str,
    ) -> Result<Vec<String>, ConnectorError> {
        let read = list_all(
            &self.limits,
            &self.timing,
            LIST_PROVISIONED_TO_ACCOUNT,
            |token| {
                self.sso
                    .list_permission_sets_provisioned_to_account()
                    .instance_arn(instance_arn)
                    .account_id(account_id)
                    .max_results(PAGE)
                    .set_next_token(token)
                    .send()
            },
            |out| (out.permission_sets.unwrap_or_default(), out.next_token),
        );
        units.unit("provisioned-to", account_id, read).await
    }

    /// Every assignment of the `provisioned` (account, permission set) pairs into `sink`, read whichever way takes
    /// fewer calls: one ListAccountAssignments (a page or more) per pair, or one ListAccountAssignmentsForPrincipal per
    /// user and group. 200 accounts × 20 permission sets are 4,000 pairs, where 2,000 users and 50 groups are 2,050
    /// principals. Read by principal, assignments to principals the identity store no longer holds are not seen;
    /// Cone cannot grant to those anyway.
    async fn assignments(
        &self,
        units: &Units<'_>,
        sink: &dyn Sink,
        instance_arn: &str,
        provisioned: &[(String, String)],
        principals: Vec<Principal>,
    ) -> Result<(), ConnectorError> {
        if principals.len() >= provisioned.len() {
            return self.assignments_by_pair(units, sink, instance_arn, provisioned).await;
        }
        let pairs: HashSet<(&str, &str)> = provisioned.iter().map(|(a, p)| (a.as_str(), p.as_str())).collect();
        bounded(principals, |principal| {
            let pairs = &pairs;
            async move {
                let (kind, id) = match &principal {
                    Principal::User(id) => ("assignments-of-user", id),
                    Principal::Group(id) => ("assignments-of-group", id),
                };
                let held = units.unit(kind, id, self.assignments_of(instance_arn, &principal)).await?;
                let records = held
                    .into_iter()
                    .filter(|(a, p)| pairs.contains(&(a.as_str(), p.as_str())))
                    .map(|(account_id, permission_set_arn)| AssignmentRecord {
                        account_id,
                        permission_set_arn,
                        principal: principal.clone(),
                    })
                    .collect();
                put(sink, Part::Assignments(records)).await
            }
        })
        .await?;
        Ok(())
    }

    /// `(account id, permission set arn)` of every assignment made to `principal` itself (ListAccountAssignmentsForPrincipal,
    /// all pages). A user's listing may also show what it holds through its groups, under the group's id; those
    /// rows are left to the group's own listing.
    async fn assignments_of(
        &self,
        instance_arn: &str,
        principal: &Principal,
    ) -> Result<Vec<(String, String)>, ConnectorError> {
        let (principal_type, principal_id) = principal_parts(principal);
        list_all(
            &self.limits,
            &self.timing,
            LIST_ASSIGNMENTS_FOR_PRINCIPAL,
            |token| {
                self.sso
                    .list_account_assignments_for_principal()
                    .instance_arn(instance_arn)
                    .principal_type(principal_type.clone())
                    .principal_id(principal_id)
                    .max_results(PAGE)
                    .set_next_token(token)
                    .send()
            },
            |out| {
                let held = out
                    .account_assignments
                    .unwrap_or_default()
                    .into_iter()
                    .filter(|x| x.principal_type() == Some(&principal_type) && x.principal_id() == Some(principal_id))
                    .filter_map(|x| Some((x.account_id?, x.permission_set_arn?)))
                    .collect();
                (held, out.next_token)
            },
        )
        .await
    }

    async fn assignments_by_pair(
        &self,
        units: &Units<'_>,
        sink: &dyn Sink,
        instance_arn: &str,
        provisioned: &[(String, String)],
    ) -> Result<(), ConnectorError> {
        bounded(provisioned, |(account_id, permission_set_arn)| async move {
            let read = self.principals_assigned(instance_arn, account_id, permission_set_arn);
            let principals = units.unit("assigned", &format!("{account_id} {permission_set_arn}"), read).await?;
            let records = principals
                .into_iter()
                .map(|principal| AssignmentRecord {
                    account_id: account_id.clone(),
                    permission_set_arn: permission_set_arn.clone(),
                    principal,
                })
                .collect();
            put(sink, Part::Assignments(records)).await
        })
        .await?;
        Ok(())
    }

    /// The principals assigned a permission set in an account (ListAccountAssignments, all pages).
    async fn principals_assigned(
        &self,
        instance_arn: &str,
        account_id: &str,
        permission_set_arn: &str,
    ) -> Result<Vec<Principal>, ConnectorError> {
        list_all(
            &self.limits,
            &self.timing,
            LIST_ACCOUNT_ASSIGNMENTS,
            |token| {
                self.sso
                    .list_account_assignments()
                    .instance_arn(instance_arn)
                    .account_id(account_id)
                    .permission_set_arn(permission_set_arn)
                    .max_results(PAGE)
                    .set_next_token(token)
                    .send()
            },
            |out| {
                let principals = out
                    .account_assignments
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|a| {
                        let id = a.principal_id()?.to_string();
                        match a.principal_type()? {
                            PrincipalType::User => Some(Principal::User(id)),
                            PrincipalType::Group => Some(Principal::Group(id)),
                            other => {
                                tracing::warn!(
                                    principal_type = other.as_str(),
                                    "ignoring assignment to an unknown principal type"
                                );
                                None
                            }
                        }
                    })
                    .collect();
                (principals, out.next_token)
            },
        )
        .await
    }

    // ---- assign / unassign parts -----------------------------------------------------------------

    /// Whether the assignment exists, asked of the one principal in the one account: a page or so, where listing the
    /// permission set's assignments in the account would page through everyone holding it.
    async fn exists(&self, a: &Assignment) -> Result<bool, ConnectorError> {
        let (principal_type, principal_id) = principal_parts(&a.principal);
        let filter = ListAccountAssignmentsFilter::builder().account_id(&a.account_id).build();
        // One attempt per page: this look is part of a step that is retried (or polled) as a whole.
        let permission_sets = list_all(
            &self.limits,
            &self.timing.once(),
            LIST_ASSIGNMENTS_FOR_PRINCIPAL,
            |token| {
                self.sso
                    .list_account_assignments_for_principal()
                    .instance_arn(&a.instance_arn)
                    .principal_type(principal_type.clone())
                    .principal_id(principal_id)
                    .filter(filter.clone())
                    .max_results(PAGE)
                    .set_next_token(token)
                    .send()
            },
            |out| {
                let found = out
                    .account_assignments
                    .unwrap_or_default()
                    .into_iter()
                    // The filter should do this; checking again costs nothing.
                    .filter(|x| x.account_id() == Some(a.account_id.as_str()))
                    .filter_map(|x| x.permission_set_arn)
                    .collect();
                (found, out.next_token)
            },
        )
        .await?;
        Ok(permission_sets.contains(&a.permission_set_arn))
    }

    /// One attempt: look, then create. `None` when the assignment is already there. Looking first keeps
    /// retries idempotent, and keeps moto (which stores duplicates and then pages them forever) sane.
    async fn create_unless_exists(&self, a: &Assignment) -> Result<Option<Started>, ConnectorError> {
        if self.exists(a).await? {
            return Ok(None);
        }
        let out =
            call(&self.limits, CREATE_ASSIGNMENT, targeting!(self.sso.create_account_assignment(), a).send()).await?;
        started(CREATE_ASSIGNMENT, out.account_assignment_creation_status.as_ref()).map(Some)
    }

    /// One attempt. `None` when there is nothing to delete (moto says ResourceNotFound for a missing assignment).
    async fn delete_once(&self, a: &Assignment) -> Result<Option<Started>, ConnectorError> {
        let result =
            call(&self.limits, DELETE_ASSIGNMENT, targeting!(self.sso.delete_account_assignment(), a).send()).await;
        let Some(out) = found(result)? else {
            return Ok(None);
        };
        started(DELETE_ASSIGNMENT, out.account_assignment_deletion_status.as_ref()).map(Some)
    }

    async fn creation_progress(&self, a: &Assignment, request_id: &str) -> Result<RequestState, ConnectorError> {
        let request = self
            .sso
            .describe_account_assignment_creation_status()
            .instance_arn(&a.instance_arn)
            .account_assignment_creation_request_id(request_id)
            .send();
        let result = call(&self.limits, CREATION_STATUS, request).await;
        match found(result)? {
            Some(out) => progress(CREATION_STATUS, out.account_assignment_creation_status.as_ref()),
            // moto forgets a creation request once its assignment is deleted; decide by what exists.
            None => {
                if self.exists(a).await? {
                    Ok(RequestState::Succeeded)
                } else {
                    Ok(RequestState::Failed(
                        "the creation request is unknown to IAM Identity Center and the assignment does not exist"
                            .into(),
                    ))
                }
            }
        }
    }

    async fn deletion_progress(&self, instance_arn: &str, request_id: &str) -> Result<RequestState, ConnectorError> {
        let request = self
            .sso
            .describe_account_assignment_deletion_status()
            .instance_arn(instance_arn)
            .account_assignment_deletion_request_id(request_id)
            .send();
        let result = call(&self.limits, DELETION_STATUS, request).await;
        match found(result)? {
            Some(out) => progress(DELETION_STATUS, out.account_assignment_deletion_status.as_ref()),
            // moto can answer ResourceNotFound for the status of a finished delete: the assignment is gone.
            None => Ok(RequestState::Succeeded),
        }
    }
}

/// `sdk` as the connector's clients call with it. The connector retries by itself (`retry`), each attempt taking
/// a token of its API family's bucket and counted in `calls`. The SDK's own retries would bypass both, and resend
/// throttled calls at once unpaced, just when pacing matters, so they are off.
pub(crate) fn calling(sdk: &SdkConfig, timing: &Timing) -> SdkConfig {
    let timeouts = sdk.timeout_config().map(TimeoutConfig::to_builder).unwrap_or_default();
    sdk.to_builder()
        .retry_config(RetryConfig::disabled())
        .timeout_config(timeouts.operation_attempt_timeout(timing.attempt_timeout).build())
        .build()
}

fn principal_parts(p: &Principal) -> (PrincipalType, &str) {
    match p {
        Principal::User(id) => (PrincipalType::User, id),
        Principal::Group(id) => (PrincipalType::Group, id),
    }
}

pub(crate) async fn put(sink: &dyn Sink, part: Part) -> Result<(), ConnectorError> {
    sink.put(part).await.map_err(ConnectorError::Store)
}

/// `Ok(None)` in place of a NotFound error: for calls where a missing resource is an answer, not a failure.
pub(crate) fn found<T>(result: Result<T, ConnectorError>) -> Result<Option<T>, ConnectorError> {
    match result {
        Ok(v) => Ok(Some(v)),
        Err(e) if e.is_not_found() => Ok(None),
        Err(e) => Err(e),
    }
}

/// The accounts IAM Identity Center has permission sets provisioned to, for when Organizations is not read:
/// known by id only, and of unknown state.
fn accounts_seen(per_set: &BTreeSet<(String, String)>) -> Vec<Account> {
    let ids: BTreeSet<&String> = per_set.iter().map(|(id, _)| id).collect();
    ids.into_iter()
        .map(|id| Account { id: id.clone(), name: id.clone(), email: String::new(), status: "UNKNOWN".to_string() })
        .collect()
}

/// The items of all the lists, sorted and each once.
pub(crate) fn sorted_unique<T: Ord>(lists: Vec<Vec<T>>) -> Vec<T> {
    lists.into_iter().flatten().collect::<BTreeSet<_>>().into_iter().collect()
}

fn progress(op: Op, status: Option<&AccountAssignmentOperationStatus>) -> Result<RequestState, ConnectorError> {
    let Some(status) = status else {
        return Err(ConnectorError::MalformedResponse { operation: op.name, field: "the operation status" });
    };
    Ok(match status.status() {
        Some(StatusValues::Succeeded) => RequestState::Succeeded,
        Some(StatusValues::Failed) => {
            RequestState::Failed(status.failure_reason().unwrap_or("no reason given").to_string())
        }
        Some(StatusValues::InProgress) => RequestState::InProgress,
        Some(other) => {
            tracing::warn!(status = other.as_str(), operation = op.name, "unknown status; treating it as in progress");
            RequestState::InProgress
        }
        None => {
            return Err(ConnectorError::MalformedResponse { operation: op.name, field: "Status" });
        }
    })
}

fn started(op: Op, status: Option<&AccountAssignmentOperationStatus>) -> Result<Started, ConnectorError> {
    let progress = progress(op, status)?;
    let Some(request_id) = status.and_then(|s| s.request_id()) else {
        return Err(ConnectorError::MalformedResponse { operation: op.name, field: "RequestId" });
    };
    Ok(Started { request_id: request_id.to_string(), progress })
}

/// Runs `f` over `items` with at most [`CONCURRENCY`] in flight; results keep the order of `items`.
pub(crate) async fn bounded<I, T, F, Fut>(items: I, f: F) -> Result<Vec<T>, ConnectorError>
where
    I: IntoIterator,
    F: FnMut(I::Item) -> Fut,
    Fut: Future<Output = Result<T, ConnectorError>>,
{
    stream::iter(items).map(f).buffered(CONCURRENCY).try_collect().await
}
