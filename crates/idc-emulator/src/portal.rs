//! The SSO portal operations: combine live moto state with the access decisions of `access`.

use serde::Serialize;

use crate::access::{self, Assignment, PrincipalKind, Principals};
use crate::errors::PortalError;
use crate::moto::{Directory, Instance, RoleCredentials};
use crate::oidc::Identity;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct AccountInfo {
    pub account_id: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub account_name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub email_address: Option<String>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct RoleInfo {
    pub role_name: String,
    pub account_id: String,
}

pub async fn role_credentials(
    directory: &Directory,
    identity: &Identity,
    account_id: &str,
    role_name: &str,
    duration_secs: i32,
) -> Result<RoleCredentials, PortalError> {
    let instance = directory.instance().await.map_err(PortalError::backend)?;
    let permission_sets = directory.permission_sets(&instance.instance_arn).await.map_err(PortalError::backend)?;
    let Some(permission_set) = permission_sets.into_iter().find(|ps| ps.name == role_name) else {
        tracing::info!(user = %identity.user_name, account_id, role_name, "denied: no permission set has this name");
        return Err(PortalError::no_access());
    };
    let assignments = directory
        .assignments_for(&instance.instance_arn, account_id, &permission_set.arn)
        .await
        .map_err(PortalError::backend)?;
    let who = principals(directory, &instance, identity).await?;
    if !access::grants(&assignments, &who, account_id, &permission_set.arn) {
        tracing::info!(user = %identity.user_name, account_id, role_name, "denied: not assigned");
        return Err(PortalError::no_access());
    }
    let role_arn = access::reserved_role_arn(account_id, &permission_set.name, &permission_set.arn);
    let credentials = directory
        .assume_role(&role_arn, &access::role_session_name(&identity.user_name), duration_secs)
        .await
        .map_err(PortalError::backend)?;
    tracing::info!(user = %identity.user_name, %role_arn, "issued role credentials");
    Ok(credentials)
}

pub async fn accounts(directory: &Directory, identity: &Identity) -> Result<Vec<AccountInfo>, PortalError> {
    let (_, who, assignments) = caller_assignments(directory, identity, None).await?;
    let details = directory.accounts().await.map_err(PortalError::backend)?;
    Ok(access::assigned_accounts(&assignments, &who)
        .into_iter()
        .map(|account_id| {
            let known = details.get(&account_id);
            if known.is_none() {
                tracing::warn!(account_id, "assigned account is not in moto's organization; listing it without a name");
            }
            AccountInfo {
                account_name: known.map(|d| d.name.clone()),
                email_address: known.map(|d| d.email.clone()),
                account_id,
            }
        })
        .collect())
}

pub async fn roles(directory: &Directory, identity: &Identity, account_id: &str) -> Result<Vec<RoleInfo>, PortalError> {
    let (instance, who, assignments) = caller_assignments(directory, identity, Some(account_id)).await?;
    let arns = access::assigned_permission_sets(&assignments, &who, account_id);
    if arns.is_empty() {
        return Ok(Vec::new());
    }
    let permission_sets = directory.permission_sets(&instance.instance_arn).await.map_err(PortalError::backend)?;
    let mut roles: Vec<RoleInfo> = permission_sets
        .into_iter()
        .filter(|ps| arns.contains(&ps.arn))
        .map(|ps| RoleInfo { role_name: ps.name, account_id: account_id.to_string() })
        .collect();
    roles.sort_by(|a, b| a.role_name.cmp(&b.role_name));
    Ok(roles)
}

/// The instance, the signed-in user's principals, and every assignment naming one of them (optionally only
/// those in one account).
async fn caller_assignments(
    directory: &Directory,
    identity: &Identity,
    account_id: Option<&str>,
) -> Result<(Instance, Principals, Vec<Assignment>), PortalError> {
    let instance = directory.instance().await.map_err(PortalError::backend)?;
    let who = principals(directory, &instance, identity).await?;
    let assignments = assignments_of(directory, &instance, &who, account_id).await?;
    Ok((instance, who, assignments))
}

async fn principals(
    directory: &Directory,
    instance: &Instance,
    identity: &Identity,
) -> Result<Principals, PortalError> {
    let group_ids =
        directory.group_ids(&instance.identity_store_id, &identity.user_id).await.map_err(PortalError::backend)?;
    Ok(Principals { user_id: identity.user_id.clone(), group_ids })
}

async fn assignments_of(
    directory: &Directory,
    instance: &Instance,
    who: &Principals,
    account_id: Option<&str>,
) -> Result<Vec<Assignment>, PortalError> {
    let mut all = Vec::new();
    let principals = std::iter::once((PrincipalKind::User, &who.user_id))
        .chain(who.group_ids.iter().map(|g| (PrincipalKind::Group, g)));
    for (kind, id) in principals {
        let found = directory
            .assignments_of(&instance.instance_arn, kind, id, account_id)
            .await
            .map_err(PortalError::backend)?;
        all.extend(found);
    }
    Ok(all)
}
