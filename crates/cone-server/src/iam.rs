//! The IAM inventory the scheduled sync stores (`aws.sync_iam`, `aws.sync_secrets`), of the connector's account and,
//! with Organizations, of each member account: the administrators' `GET /api/v1/iam/access-keys` and
//! `GET /api/v1/iam/users`. The console's Access keys page reads the same
//! pages, so both show the same keys in the same words.

use std::collections::HashMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cone_api::{AccessKey, AccessKeyPage, IamUser, IamUserPage, codes};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::app::time;
use crate::auth;
use crate::db::{AccessKeyFilter, AccessKeyRow, IamUserRow};
use crate::http::{ApiFailure, ApiQuery, AppState, BadRequest, Forbidden, Internal, Unauthenticated, now, one_page};

/// `GET /api/v1/iam/access-keys`: the query as the API (and the console's filters) take it.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AccessKeyQuery {
    /// Only the keys in this AWS account (by id, or by name as the catalog knows it).
    #[serde(default)]
    pub account: Option<String>,
    /// Only the keys of this IAM user (by user name).
    #[serde(default)]
    pub user: Option<String>,
    /// Only keys in this status: `Active` or `Inactive`.
    #[serde(default)]
    pub status: Option<String>,
    /// `next_page_token` of the previous page; absent for the first.
    #[serde(default)]
    pub page_token: Option<String>,
    /// Keys per page: 100 when absent, at least 1 and at most 1000.
    #[serde(default)]
    pub page_size: Option<i64>,
}

/// `GET /api/v1/iam/users`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct UserQuery {
    /// Only the users in this AWS account (by id, or by name as the catalog knows it).
    #[serde(default)]
    pub account: Option<String>,
    /// `next_page_token` of the previous page; absent for the first.
    #[serde(default)]
    pub page_token: Option<String>,
    /// Users per page: 100 when absent, at least 1 and at most 1000.
    #[serde(default)]
    pub page_size: Option<i64>,
}

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

/// The page `q` asks for, empty (and `synced: false`) while `aws.sync_secrets` is off.
pub async fn access_key_page(s: &AppState, q: &AccessKeyQuery) -> Result<AccessKeyPage, ApiFailure> {
    let offset = crate::http::page_offset(q.page_token.as_deref())?;
    let size = q.page_size.unwrap_or(100).clamp(1, 1000);
    let status = match q.status.as_deref().unwrap_or_default() {
        any @ ("" | "Active" | "Inactive") => any.to_string(),
        _ => {
            return Err(ApiFailure::new(
                StatusCode::BAD_REQUEST,
                codes::INVALID_REQUEST,
                "status must be Active or Inactive (as IAM names them), or absent for both.",
            ));
        }
    };
    let synced = s.config.aws.sync_secrets;
    if !synced {
        return Ok(AccessKeyPage { synced, access_keys: Vec::new(), next_page_token: None });
    }
    let filter = AccessKeyFilter {
        account: q.account.clone().unwrap_or_default(),
        user_name: q.user.clone().unwrap_or_default(),
        status,
    };
    let rows = s.db.access_keys(&s.config.aws.app_id, &filter, offset, size + 1).await?;
    let (rows, next_page_token) = one_page(rows, offset, size);
    let now = now();
    Ok(AccessKeyPage { synced, access_keys: rows.into_iter().map(|r| access_key(r, now)).collect(), next_page_token })
}

/// The access keys of the connector's account and the member accounts read, metadata only (never a secret key), by
/// user name, account and key id.
/// Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/iam/access-keys",
    tag = "operations",
    params(AccessKeyQuery),
    responses((status = 200, description = "One page", body = AccessKeyPage), BadRequest, Unauthenticated, Forbidden, Internal)
)]
pub async fn access_keys(
    State(s): State<AppState>,
    _: auth::Admin,
    ApiQuery(q): ApiQuery<AccessKeyQuery>,
) -> Result<Json<AccessKeyPage>, ApiFailure> {
    Ok(Json(access_key_page(&s, &q).await?))
}

/// The IAM users of the connector's account and the member accounts read, by name, with their groups and how many access keys they have.
/// Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/iam/users",
    tag = "operations",
    params(UserQuery),
    responses((status = 200, description = "One page", body = IamUserPage), BadRequest, Unauthenticated, Forbidden, Internal)
)]
pub async fn users(
    State(s): State<AppState>,
    _: auth::Admin,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> Result<Json<IamUserPage>, ApiFailure> {
    let offset = crate::http::page_offset(q.page_token.as_deref())?;
    let size = q.page_size.unwrap_or(100).clamp(1, 1000);
    // ListUsers runs for either feature: the access keys' owners are users.
    let synced = s.config.aws.sync_iam || s.config.aws.sync_secrets;
    if !synced {
        return Ok(Json(IamUserPage { synced, users: Vec::new(), next_page_token: None }));
    }
    let account = q.account.as_deref().unwrap_or_default();
    let rows = s.db.iam_users(&s.config.aws.app_id, account, offset, size + 1).await?;
    let (rows, next_page_token) = one_page(rows, offset, size);
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
    Ok(Json(IamUserPage { synced, users, next_page_token }))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::Method;
    use cone_aws::{AccessKey as Key, IamGroup, IamSnapshot, IamUser as User};
    use serde_json::Value;

    use crate::db::Db;
    use crate::http::testing::{call, person, state};

    crate::db::testing::on_both_backends!(the_inventory_is_replaced_per_sync_filtered_paged_and_for_admins_only);

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_750_000_000;

    fn at(t: i64) -> String {
        crate::db::rfc3339(t)
    }

    fn user(name: &str) -> User {
        User {
            arn: format!("arn:aws:iam::123456789012:user/{name}"),
            id: format!("AIDA{}", name.to_uppercase()),
            name: name.into(),
            created: at(NOW - 400 * DAY),
            password_last_used: None,
        }
    }

    fn key(id: &str, owner: &str, status: &str, age: i64, used: Option<i64>) -> Key {
        Key {
            id: id.into(),
            user_arn: user(owner).arn,
            status: status.into(),
            created: at(NOW - age * DAY),
            last_used: used.map(|d| at(NOW - d * DAY)),
            last_used_service: used.map(|_| "s3".into()),
            last_used_region: used.map(|_| "eu-west-1".into()),
        }
    }

    async fn the_inventory_is_replaced_per_sync_filtered_paged_and_for_admins_only(db: Db) {
        let ops = IamGroup {
            arn: "arn:aws:iam::123456789012:group/ops".into(),
            id: "AGPAOPS".into(),
            name: "ops".into(),
            created: at(NOW - 500 * DAY),
        };
        let snapshot = IamSnapshot {
            users: vec![user("alice"), user("bob")],
            groups: vec![ops.clone()],
            group_members: vec![(ops.arn.clone(), user("bob").arn)],
            access_keys: vec![
                key("AKIAALICE1", "alice", "Active", 10, Some(2)),
                key("AKIAALICE2", "alice", "Inactive", 200, None),
                key("AKIABOB1", "bob", "Active", 120, Some(100)),
            ],
            ..IamSnapshot::default()
        };
        db.apply_iam_snapshot("aws", &snapshot, NOW).await.unwrap();
        let mut s = state(db.clone(), "admins: { users: [carol] }");
        Arc::get_mut(&mut s.config).unwrap().aws.sync_secrets = true;
        let (carol, alice) = (person(&s, "carol").await, person(&s, "alice").await);
        let get = async |uri: &str, token: &str| call(&s, Method::GET, uri, Some(token), None).await;

        let (status, page) = get("/api/v1/iam/access-keys", &carol).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["synced"], true);
        let ids = |page: &Value| -> Vec<String> {
            page["access_keys"].as_array().unwrap().iter().map(|k| k["id"].as_str().unwrap().to_string()).collect()
        };
        assert_eq!(ids(&page), ["AKIAALICE1", "AKIAALICE2", "AKIABOB1"], "by user, then key");
        let bob = &page["access_keys"][2];
        assert_eq!((bob["user_name"].as_str(), bob["status"].as_str()), (Some("bob"), Some("Active")));
        assert_eq!(bob["last_used_service"], "s3");
        assert_eq!(bob["last_used_region"], "eu-west-1");
        // Days count from now, whatever the clock says: at least what the snapshot was built with.
        assert!(bob["age_days"].as_i64().unwrap() >= 120 && bob["days_since_last_use"].as_i64().unwrap() >= 100);
        assert_eq!(page["access_keys"][1]["days_since_last_use"], Value::Null, "never used");

        // A member account's user and key, beside the connector's account.
        let member = "210987654321";
        let mut dave = user("dave");
        dave.arn = format!("arn:aws:iam::{member}:user/dave");
        let mut daves_key = key("AKIADAVE1", "dave", "Active", 5, None);
        daves_key.user_arn = dave.arn.clone();
        let mut with_member = snapshot.clone();
        with_member.users.push(dave);
        with_member.access_keys.push(daves_key);
        let skipped = cone_aws::SkippedAccount { account_id: "333333333333".into(), reason: "no role".into() };
        with_member.skipped.push(skipped);
        db.apply_iam_snapshot("aws", &with_member, NOW).await.unwrap();
        let (_, page) = get(&format!("/api/v1/iam/access-keys?account={member}"), &carol).await;
        assert_eq!(ids(&page), ["AKIADAVE1"]);
        let dave_key = &page["access_keys"][0];
        assert_eq!((dave_key["account_id"].as_str(), dave_key["account_name"].as_str()), (Some(member), Some(member)));
        let (_, users) = get(&format!("/api/v1/iam/users?account={member}"), &carol).await;
        assert_eq!((users["users"][0]["name"].as_str(), users["users"].as_array().unwrap().len()), (Some("dave"), 1));
        let (_, page) = get("/api/v1/iam/access-keys?account=123456789012", &carol).await;
        assert_eq!(ids(&page), ["AKIAALICE1", "AKIAALICE2", "AKIABOB1"]);
        db.apply_iam_snapshot("aws", &snapshot, NOW).await.unwrap();

        let (_, page) = get("/api/v1/iam/access-keys?user=alice&status=Inactive", &carol).await;
        assert_eq!(ids(&page), ["AKIAALICE2"]);
        let (_, page) = get("/api/v1/iam/access-keys?page_size=2", &carol).await;
        assert_eq!((ids(&page).len(), page["next_page_token"].as_str()), (2, Some("2")));
        let (_, page) = get("/api/v1/iam/access-keys?page_size=2&page_token=2", &carol).await;
        assert_eq!((ids(&page), &page["next_page_token"]), (vec!["AKIABOB1".to_string()], &Value::Null));
        let (status, error) = get("/api/v1/iam/access-keys?status=Revoked", &carol).await;
        assert!(status == 400 && error["message"].as_str().unwrap().contains("Active or Inactive"), "{error}");

        let (_, users) = get("/api/v1/iam/users", &carol).await;
        assert_eq!(users["users"][0]["name"], "alice");
        assert_eq!(
            (users["users"][0]["access_keys"].as_i64(), users["users"][1]["groups"].clone()),
            (Some(2), serde_json::json!(["ops"]))
        );

        for uri in ["/api/v1/iam/access-keys", "/api/v1/iam/users"] {
            assert_eq!(get(uri, &alice).await.0, 403, "{uri} is for administrators");
        }

        // The next sync replaces everything; one with IAM off forgets it. Each is audited.
        let fewer = IamSnapshot { access_keys: vec![key("AKIABOB2", "bob", "Active", 1, None)], ..snapshot };
        db.apply_iam_snapshot("aws", &fewer, NOW).await.unwrap();
        assert_eq!(ids(&get("/api/v1/iam/access-keys", &carol).await.1), ["AKIABOB2"]);
        db.apply_iam_snapshot("aws", &IamSnapshot::default(), NOW).await.unwrap();
        assert!(ids(&get("/api/v1/iam/access-keys", &carol).await.1).is_empty());
        db.apply_iam_snapshot("aws", &IamSnapshot::default(), NOW).await.unwrap();
        let filter = crate::db::AuditFilter { action: Some("iam.sync".into()), ..Default::default() };
        assert_eq!(db.audit_entries(&filter, 10).await.unwrap().len(), 5, "nothing stored or forgotten, no entry");

        // With the inventory off, the API says so rather than show what an older sync left.
        db.apply_iam_snapshot("aws", &fewer, NOW).await.unwrap();
        let off = state(db, "admins: { users: [carol] }");
        let (_, page) = call(&off, Method::GET, "/api/v1/iam/access-keys", Some(&carol), None).await;
        assert_eq!((page["synced"].as_bool(), ids(&page).len()), (Some(false), 0));
    }
}
