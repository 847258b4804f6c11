//! Reads Identity Center state from moto (SSO Admin, Identity Store, Organizations) and mints role
//! credentials with moto STS. Everything is read live on each call: tests change assignments while the
//! emulator runs.

use std::collections::{HashMap, HashSet};
use std::future::Future;

use anyhow::{Context, Result, bail};
use aws_sdk_identitystore::types::{AlternateIdentifier, MemberId, UniqueAttribute};
use aws_sdk_ssoadmin::operation::list_account_assignments::ListAccountAssignmentsOutput;
use aws_sdk_ssoadmin::operation::list_account_assignments_for_principal::ListAccountAssignmentsForPrincipalOutput;
use aws_sdk_ssoadmin::types::{ListAccountAssignmentsFilter, PrincipalType};
use aws_smithy_types::Document;

use crate::access::{Assignment, PrincipalKind};

/// The Identity Center instance whose state the portal exposes.
#[derive(Debug, Clone)]
pub struct Instance {
    pub instance_arn: String,
    pub identity_store_id: String,
}

#[derive(Debug, Clone)]
pub struct PermissionSet {
    pub arn: String,
    pub name: String,
}

#[derive(Debug, Clone)]
pub struct AccountDetails {
    pub name: String,
    pub email: String,
}

/// An identity-store user as the sign-in page lists them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserSummary {
    pub user_name: String,
    pub display_name: Option<String>,
}

#[derive(Debug, Clone)]
pub struct RoleCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
    pub expiration_millis: i64,
}

/// moto's paginators can hand back the same token forever; no real listing here needs more pages.
const MAX_PAGES: usize = 1000;

#[derive(Debug, Clone)]
pub struct Directory {
    sso_admin: aws_sdk_ssoadmin::Client,
    identity_store: aws_sdk_identitystore::Client,
    organizations: aws_sdk_organizations::Client,
    sts: aws_sdk_sts::Client,
}

impl Directory {
    pub fn new(config: &aws_config::SdkConfig) -> Self {
        Self {
            sso_admin: aws_sdk_ssoadmin::Client::new(config),
            identity_store: aws_sdk_identitystore::Client::new(config),
            organizations: aws_sdk_organizations::Client::new(config),
            sts: aws_sdk_sts::Client::new(config),
        }
    }

    /// moto creates one instance per account and region on first use; the emulator serves the first.
    pub async fn instance(&self) -> Result<Instance> {
        let out = self
            .sso_admin
            .list_instances()
            .send()
            .await
            .context("sso-admin ListInstances failed (is AWS_ENDPOINT_URL pointing at moto?)")?;
        let Some(first) = out.instances().first() else {
            bail!("sso-admin ListInstances returned no Identity Center instance");
        };
        match (first.instance_arn(), first.identity_store_id()) {
            (Some(arn), Some(store)) => {
                Ok(Instance { instance_arn: arn.to_string(), identity_store_id: store.to_string() })
            }
            _ => bail!("sso-admin ListInstances returned an instance without InstanceArn or IdentityStoreId"),
        }
    }

    /// The identity-store user id for a user name, or None when there is no such user.
    pub async fn user_id(&self, identity_store_id: &str, user_name: &str) -> Result<Option<String>> {
        let attribute = UniqueAttribute::builder()
            .attribute_path("UserName")
            .attribute_value(Document::String(user_name.to_string()))
            .build()
            .context("building the identitystore GetUserId request")?;
        let result = self
            .identity_store
            .get_user_id()
            .identity_store_id(identity_store_id)
            .alternate_identifier(AlternateIdentifier::UniqueAttribute(attribute))
            .send()
            .await;
        match result {
            Ok(out) => Ok(Some(out.user_id().to_string())),
            Err(err) => {
                let err = err.into_service_error();
                if err.is_resource_not_found_exception() {
                    Ok(None)
                } else {
                    Err(anyhow::Error::new(err)
                        .context(format!("identitystore GetUserId for user name {user_name:?} failed")))
                }
            }
        }
    }

    /// Every user of the identity store, sorted by user name.
    pub async fn users(&self, identity_store_id: &str) -> Result<Vec<UserSummary>> {
        let mut users = collect_pages("identitystore ListUsers", |token| async move {
            let out = self
                .identity_store
                .list_users()
                .identity_store_id(identity_store_id)
                .set_next_token(token)
                .send()
                .await?;
            let users = out
                .users()
                .iter()
                .filter_map(|u| {
                    Some(UserSummary {
                        user_name: u.user_name()?.to_string(),
                        display_name: u.display_name().map(str::to_string),
                    })
                })
                .collect();
            Ok((users, out.next_token().map(str::to_string)))
        })
        .await?;
        users.sort_by(|a, b| a.user_name.cmp(&b.user_name));
        Ok(users)
    }

    pub async fn group_ids(&self, identity_store_id: &str, user_id: &str) -> Result<Vec<String>> {
        collect_pages("identitystore ListGroupMembershipsForMember", |token| async move {
            let out = self
                .identity_store
                .list_group_memberships_for_member()
                .identity_store_id(identity_store_id)
                .member_id(MemberId::UserId(user_id.to_string()))
                .set_next_token(token)
                .send()
                .await?;
            let groups = out.group_memberships().iter().filter_map(|m| m.group_id().map(str::to_string)).collect();
            Ok((groups, out.next_token().map(str::to_string)))
        })
        .await
    }

    pub async fn permission_sets(&self, instance_arn: &str) -> Result<Vec<PermissionSet>> {
        let arns = collect_pages("sso-admin ListPermissionSets", |token| async move {
            let out =
                self.sso_admin.list_permission_sets().instance_arn(instance_arn).set_next_token(token).send().await?;
            Ok((out.permission_sets().to_vec(), out.next_token().map(str::to_string)))
        })
        .await?;
        let mut sets = Vec::with_capacity(arns.len());
        for arn in arns {
            let out = self
                .sso_admin
                .describe_permission_set()
                .instance_arn(instance_arn)
                .permission_set_arn(&arn)
                .send()
                .await
                .with_context(|| {
                    format!(
                        "sso-admin DescribePermissionSet {arn} failed (moto answers a number the SDK cannot parse \
                         for permission sets created without SessionDuration: create them with one, e.g. PT1H)"
                    )
                })?;
            let name = out
                .permission_set()
                .and_then(|ps| ps.name())
                .with_context(|| format!("sso-admin DescribePermissionSet {arn} returned no name"))?;
            sets.push(PermissionSet { name: name.to_string(), arn });
        }
        Ok(sets)
    }

    /// Every principal holding `permission_set_arn` in `account_id`.
    pub async fn assignments_for(
        &self,
        instance_arn: &str,
        account_id: &str,
        permission_set_arn: &str,
    ) -> Result<Vec<Assignment>> {
        collect_pages("sso-admin ListAccountAssignments", |token| async move {
            let out = self
                .sso_admin
                .list_account_assignments()
                .instance_arn(instance_arn)
                .account_id(account_id)
                .permission_set_arn(permission_set_arn)
                .set_next_token(token)
                .send()
                .await?;
            Ok(out.assignment_page())
        })
        .await
    }

    /// Every assignment naming the principal, optionally only those in one account.
    pub async fn assignments_of(
        &self,
        instance_arn: &str,
        kind: PrincipalKind,
        principal_id: &str,
        account_id: Option<&str>,
    ) -> Result<Vec<Assignment>> {
        let principal_type = match kind {
            PrincipalKind::User => PrincipalType::User,
            PrincipalKind::Group => PrincipalType::Group,
        };
        let filter = account_id.map(|id| ListAccountAssignmentsFilter::builder().account_id(id).build());
        collect_pages("sso-admin ListAccountAssignmentsForPrincipal", |token| {
            let principal_type = principal_type.clone();
            let filter = filter.clone();
            async move {
                let out = self
                    .sso_admin
                    .list_account_assignments_for_principal()
                    .instance_arn(instance_arn)
                    .principal_type(principal_type)
                    .principal_id(principal_id)
                    .set_filter(filter)
                    .set_next_token(token)
                    .send()
                    .await?;
                Ok(out.assignment_page())
            }
        })
        .await
    }

    /// Names and e-mail addresses of the organization's accounts; empty when moto has no organization.
    pub async fn accounts(&self) -> Result<HashMap<String, AccountDetails>> {
        let result = collect_pages("organizations ListAccounts", |token| async move {
            let out = self.organizations.list_accounts().set_next_token(token).send().await?;
            let accounts = out
                .accounts()
                .iter()
                .filter_map(|a| {
                    let details = AccountDetails { name: a.name()?.to_string(), email: a.email()?.to_string() };
                    Some((a.id()?.to_string(), details))
                })
                .collect();
            Ok((accounts, out.next_token().map(str::to_string)))
        })
        .await;
        match result {
            Ok(accounts) => Ok(accounts.into_iter().collect()),
            Err(err) if organizations_not_in_use(&err) => {
                tracing::warn!("moto has no organization; accounts are listed without names or e-mail addresses");
                Ok(HashMap::new())
            }
            Err(err) => Err(err),
        }
    }

    /// moto honours any `duration_secs`, also below the 900 s that real STS requires, so short-lived
    /// credentials for refresh tests are possible.
    pub async fn assume_role(&self, role_arn: &str, session_name: &str, duration_secs: i32) -> Result<RoleCredentials> {
        let out = self
            .sts
            .assume_role()
            .role_arn(role_arn)
            .role_session_name(session_name)
            .duration_seconds(duration_secs)
            .send()
            .await
            .with_context(|| format!("sts AssumeRole {role_arn} failed"))?;
        let creds = out.credentials().with_context(|| format!("sts AssumeRole {role_arn} returned no credentials"))?;
        let expiration_millis = creds
            .expiration()
            .to_millis()
            .with_context(|| format!("sts AssumeRole {role_arn} returned an unrepresentable expiration"))?;
        Ok(RoleCredentials {
            access_key_id: creds.access_key_id().to_string(),
            secret_access_key: creds.secret_access_key().to_string(),
            session_token: creds.session_token().to_string(),
            expiration_millis,
        })
    }
}

/// ListAccountAssignments and ListAccountAssignmentsForPrincipal answer with two SDK types that carry the
/// same fields; a page of either becomes `Assignment`s and the next token the same way.
trait AssignmentPage {
    fn assignment_page(&self) -> (Vec<Assignment>, Option<String>);
}

macro_rules! impl_assignment_page {
    ($($output:ty),+) => {$(
        impl AssignmentPage for $output {
            fn assignment_page(&self) -> (Vec<Assignment>, Option<String>) {
                let assignments = self
                    .account_assignments()
                    .iter()
                    .filter_map(|a| {
                        assignment(
                            a.account_id(),
                            a.permission_set_arn(),
                            a.principal_type(),
                            a.principal_id(),
                        )
                    })
                    .collect();
                (assignments, self.next_token().map(str::to_string))
            }
        }
    )+};
}

impl_assignment_page!(ListAccountAssignmentsOutput, ListAccountAssignmentsForPrincipalOutput);

/// None when a field is missing or the principal type is one the portal does not know.
fn assignment(
    account_id: Option<&str>,
    permission_set_arn: Option<&str>,
    principal_type: Option<&PrincipalType>,
    principal_id: Option<&str>,
) -> Option<Assignment> {
    let principal_kind = match principal_type? {
        PrincipalType::User => PrincipalKind::User,
        PrincipalType::Group => PrincipalKind::Group,
        other => {
            tracing::warn!("ignoring an account assignment to an unknown principal type {other:?}");
            return None;
        }
    };
    Some(Assignment {
        account_id: account_id?.to_string(),
        permission_set_arn: permission_set_arn?.to_string(),
        principal_kind,
        principal_id: principal_id?.to_string(),
    })
}

fn organizations_not_in_use(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<aws_sdk_organizations::error::SdkError<
                aws_sdk_organizations::operation::list_accounts::ListAccountsError,
            >>()
            .and_then(|e| e.as_service_error())
            .is_some_and(|e| e.is_aws_organizations_not_in_use_exception())
    })
}

/// Follows `NextToken`s until the end. moto may answer `"NextToken": null` (the SDK's None) or repeat a
/// token it already gave; both end the listing instead of looping.
async fn collect_pages<T, F, Fut>(what: &str, mut fetch: F) -> Result<Vec<T>>
where
    F: FnMut(Option<String>) -> Fut,
    Fut: Future<Output = Result<(Vec<T>, Option<String>)>>,
{
    let mut items = Vec::new();
    let mut seen = HashSet::new();
    let mut token = None;
    for _ in 0..MAX_PAGES {
        let (page, next) = fetch(token).await.with_context(|| format!("{what} failed"))?;
        items.extend(page);
        match next.filter(|t| !t.is_empty()) {
            None => return Ok(items),
            Some(next) if !seen.insert(next.clone()) => {
                tracing::warn!("{what} repeated NextToken {next:?}; treating the listing as complete");
                return Ok(items);
            }
            Some(next) => token = Some(next),
        }
    }
    bail!("{what} did not finish within {MAX_PAGES} pages")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pages_stop_at_a_missing_token() {
        let pages = [(vec![1, 2], Some("a")), (vec![3], None)];
        let mut calls = 0;
        let items = collect_pages("test", |token| {
            let (items, next) = pages[calls].clone();
            assert_eq!(token.as_deref(), if calls == 0 { None } else { Some("a") });
            calls += 1;
            async move { Ok::<_, anyhow::Error>((items, next.map(str::to_string))) }
        })
        .await
        .expect("listing");
        assert_eq!(items, vec![1, 2, 3]);
        assert_eq!(calls, 2);
    }

    #[tokio::test]
    async fn pages_stop_at_a_repeated_token() {
        let mut calls = 0;
        let items = collect_pages("test", |_| {
            calls += 1;
            let token = if calls == 1 { "a" } else { "b" };
            async move { Ok::<_, anyhow::Error>((vec![calls], Some(token.to_string()))) }
        })
        .await
        .expect("listing");
        assert_eq!(items, vec![1, 2, 3], "a, b, then b again ends it");
    }

    #[tokio::test]
    async fn pages_stop_at_an_empty_token() {
        let items = collect_pages("test", |_| async { Ok::<_, anyhow::Error>((vec![7], Some(String::new()))) })
            .await
            .expect("listing");
        assert_eq!(items, vec![7]);
    }
}
