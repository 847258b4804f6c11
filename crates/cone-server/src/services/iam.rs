//! The IAM inventory the scheduled sync stores (`aws.sync_iam`, `aws.sync_secrets`), of the connector's account and,
//! with Organizations, of each member account: the pages of access keys and IAM users that administrators read
//! through the API and the console's Access keys page, in the same words.

use std::collections::HashMap;

use cone_api::{AccessKey, AccessKeyPage, CreatedIamUser, CreatedIamUserPage, IamUser, IamUserPage};
use cone_core::account::AccountKind;

use super::{Page, time};
use crate::error::{Error, Result};
use crate::state::AppState;
use crate::store::{AccessKeyFilter, AccessKeyRow, IamUserRow};

/// Whole days from `since` to `now`.
fn days(since: i64, now: i64) -> i64 {
    (now - since).max(0) / 86_400
}

fn access_key(r: AccessKeyRow, now: i64) -> AccessKey {
    AccessKey {
        age_days: days(r.created_at, now),
        days_since_last_use: r.last_used_at.map(|t| days(t, now)),
        created_at: time(r.created_at),
        last_used_at: r.last_used_at.map(time),
        account_name: r.account_name.unwrap_or_else(|| r.account_id.clone()),
        account_id: r.account_id,
        id: r.id,
        user_name: r.user_name,
        user_arn: r.user_arn,
        status: r.status,
        last_used_service: r.last_used_service,
        last_used_region: r.last_used_region,
    }
}

/// The access keys `filter` selects (by account id or name, user name, status `Active` or `Inactive`; empty for
/// any), by user name, account and key id; empty (and `synced: false`) while `aws.sync_secrets` is off.
pub async fn access_keys(s: &AppState, filter: &AccessKeyFilter, page: Page) -> Result<AccessKeyPage> {
    if !matches!(filter.status.as_str(), "" | "Active" | "Inactive") {
        return Err(Error::invalid("status must be Active or Inactive (as IAM names them), or absent for both."));
    }
    let synced = s.config.aws.sync_secrets;
    if !synced {
        return Ok(AccessKeyPage { synced, access_keys: Vec::new(), next_page_token: None });
    }
    let rows = s.db.access_keys(&s.config.aws.app_id, filter, page.offset, page.limit()).await?;
    let (rows, next_page_token) = page.cut(rows);
    let now = s.now();
    Ok(AccessKeyPage { synced, access_keys: rows.into_iter().map(|r| access_key(r, now)).collect(), next_page_token })
}

/// The IAM users of `account` (an id or catalog name; empty for all), by name, with their groups and how many
/// access keys they have.
pub async fn users(s: &AppState, account: &str, page: Page) -> Result<IamUserPage> {
    // ListUsers runs for either feature: the access keys' owners are users.
    let synced = s.config.aws.sync_iam || s.config.aws.sync_secrets;
    if !synced {
        return Ok(IamUserPage { synced, users: Vec::new(), next_page_token: None });
    }
    let rows = s.db.iam_users(&s.config.aws.app_id, account, page.offset, page.limit()).await?;
    let (rows, next_page_token) = page.cut(rows);
    let arns: Vec<&str> = rows.iter().map(|u| u.arn.as_str()).collect();
    let mut groups: HashMap<String, Vec<String>> = HashMap::new();
    for (user, group) in s.db.iam_groups_of(&arns).await? {
        groups.entry(user).or_default().push(group);
    }
    let users = rows
        .into_iter()
        .map(|u: IamUserRow| IamUser {
            groups: groups.remove(&u.arn).unwrap_or_default(),
            created_at: time(u.created_at),
            password_last_used_at: u.password_last_used_at.map(time),
            account_name: u.account_name.unwrap_or_else(|| u.account_id.clone()),
            account_id: u.account_id,
            name: u.name,
            arn: u.arn,
            id: u.id,
            access_keys: u.access_keys,
        })
        .collect();
    Ok(IamUserPage { synced, users, next_page_token })
}

/// The users Cone created for people in `account` (an id or catalog name; empty for all, Identity Center's
/// included), newest first.
pub async fn created_users(s: &AppState, account: &str, page: Page) -> Result<CreatedIamUserPage> {
    let (rows, next_page_token) = page.cut(s.db.created_accounts(account, page.offset, page.limit()).await?);
    let users = rows
        .into_iter()
        .map(|a| CreatedIamUser {
            username: a.username,
            kind: a.kind.as_str().to_string(),
            account_name: match a.kind {
                AccountKind::IdcUser => "Identity Center".into(),
                AccountKind::IamUser => a.account_name.unwrap_or_else(|| a.account_id.clone()),
            },
            account_id: a.account_id,
            name: a.user_name,
            path: a.path,
            state: a.state.as_str().to_string(),
            created_at: time(a.created_at),
            deleted_at: a.deleted_at.map(time),
        })
        .collect();
    Ok(CreatedIamUserPage { users, next_page_token })
}
