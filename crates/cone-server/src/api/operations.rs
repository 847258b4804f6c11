//! Operations: the drift report, the audit log, the connector's syncs, and the IAM inventory. Administrators only,
//! but for the connectors' state.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use cone_api::{AccessKeyPage, ConnectorStatus, CreatedIamUserPage, DriftPage, IamUserPage};
use serde::Deserialize;
use utoipa::{IntoParams, ToSchema};

use super::doc::{BadRequest, Forbidden, Internal, Unauthenticated};
use super::extract::{Admin, ApiQuery, CurrentUser};
use crate::error::Error;
use crate::services::{Page, audit, iam, operations};
use crate::state::AppState;
use crate::store::{AccessKeyFilter, DriftFilter};

/// Open drift findings, oldest first: differences between Identity Center's assignments and Cone's grants.
/// Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/drift",
    tag = "operations",
    params(DriftQuery),
    responses((status = 200, description = "A page of the open findings", body = DriftPage), BadRequest, Unauthenticated, Forbidden, Internal)
)]
pub async fn drift(
    State(s): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<DriftQuery>,
) -> Result<Json<DriftPage>, Error> {
    let page = Page::new(q.page_token.as_deref(), q.page_size, 100, 1000)?;
    let filter = DriftFilter {
        kind: q.kind.unwrap_or_default(),
        user: q.user.unwrap_or_default(),
        account: q.account.unwrap_or_default(),
        target: q.permission_set.unwrap_or_default(),
    };
    Ok(Json(operations::open_drift(&s, &filter, page).await?))
}

/// `GET /api/v1/drift`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DriftQuery {
    /// Only findings of this kind: `unexplained` or `missing`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Only the findings about this Cone user (by user name).
    #[serde(default)]
    pub user: Option<String>,
    /// Only those in this AWS account (by id, or by name in any case).
    #[serde(default)]
    pub account: Option<String>,
    /// Only those of this permission set or group (by name, in any case).
    #[serde(default)]
    pub permission_set: Option<String>,
    /// `next_page_token` of the previous page; absent for the first.
    #[serde(default)]
    pub page_token: Option<String>,
    /// Findings per page: 100 when absent, at least 1 and at most 1000.
    #[serde(default)]
    pub page_size: Option<i64>,
}

/// The audit log, a page at a time, for administrators.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "operations",
    params(AuditQuery),
    responses((status = 200, description = "Entries in the order asked for", body = cone_api::AuditPage), BadRequest, Unauthenticated, Forbidden, Internal)
)]
pub async fn audit(
    State(s): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<Json<cone_api::AuditPage>, Error> {
    let mut filter =
        audit::filter(q.since.as_deref(), q.until.as_deref(), q.action.as_deref(), q.page_token.as_deref())?;
    filter.newest_first = q.order == Some(AuditOrder::Newest);
    let filter = audit::by_person(&s, filter, q.user.as_deref().unwrap_or_default()).await?;
    Ok(Json(audit::page(&s, &filter, q.page_size).await?))
}

/// How this server's syncs with AWS stand; the last failure's details are for administrators.
#[utoipa::path(
    get,
    path = "/api/v1/connectors",
    tag = "operations",
    responses((status = 200, description = "One entry per app", body = Vec<ConnectorStatus>), Unauthenticated, Internal)
)]
pub async fn connectors(
    State(s): State<AppState>,
    CurrentUser(user): CurrentUser,
) -> Result<Json<Vec<ConnectorStatus>>, Error> {
    Ok(Json(vec![operations::connector_seen_by(&s, &user).await?]))
}

/// Asks this server for a sync with AWS now, beside its schedule (at most one every 10 s); the connector's
/// `last_attempt_at` moves when it has run. Administrators only.
#[utoipa::path(
    post,
    path = "/api/v1/connectors/sync",
    tag = "operations",
    responses((status = 202, description = "A sync is asked for; the connector as it stands", body = ConnectorStatus), Unauthenticated, Forbidden, Internal)
)]
pub async fn sync_connector(State(s): State<AppState>, Admin(caller): Admin) -> (StatusCode, Json<ConnectorStatus>) {
    (StatusCode::ACCEPTED, Json(operations::ask_for_sync(&s, &caller.user)))
}

/// `GET /api/v1/audit`: the query as the API takes it.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Entries at or after this time (RFC 3339, or a day such as 2025-01-31).
    #[serde(default)]
    pub since: Option<String>,
    /// Entries before this time (RFC 3339, or a day).
    #[serde(default)]
    pub until: Option<String>,
    /// One action (`grant.revoke`) or a family (`grant.*`).
    #[serde(default)]
    pub action: Option<String>,
    /// Only what this Cone user (a user name) did.
    #[serde(default)]
    pub user: Option<String>,
    /// `oldest` first (the log's order, the default) or `newest` first.
    #[serde(default)]
    #[param(inline)]
    pub order: Option<AuditOrder>,
    /// The last id of the previous page; clients treat it as opaque.
    #[serde(default)]
    pub page_token: Option<String>,
    /// Entries per page (1 to 1,000; 100 when absent).
    #[serde(default)]
    pub page_size: Option<i64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum AuditOrder {
    Oldest,
    Newest,
}

/// `GET /api/v1/iam/access-keys`.
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

/// The access keys of the connector's account and the member accounts read, metadata only (never a secret key), by
/// user name, account and key id. Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/iam/access-keys",
    tag = "operations",
    params(AccessKeyQuery),
    responses((status = 200, description = "One page", body = AccessKeyPage), BadRequest, Unauthenticated, Forbidden, Internal)
)]
pub async fn access_keys(
    State(s): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<AccessKeyQuery>,
) -> Result<Json<AccessKeyPage>, Error> {
    let page = Page::new(q.page_token.as_deref(), q.page_size, 100, 1000)?;
    let filter = AccessKeyFilter {
        account: q.account.unwrap_or_default(),
        user_name: q.user.unwrap_or_default(),
        status: q.status.unwrap_or_default(),
    };
    Ok(Json(iam::access_keys(&s, &filter, page).await?))
}

/// The IAM users of the connector's account and the member accounts read, by name, with their groups and how many
/// access keys they have. Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/iam/users",
    tag = "operations",
    params(UserQuery),
    responses((status = 200, description = "One page", body = IamUserPage), BadRequest, Unauthenticated, Forbidden, Internal)
)]
pub async fn iam_users(
    State(s): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> Result<Json<IamUserPage>, Error> {
    let page = Page::new(q.page_token.as_deref(), q.page_size, 100, 1000)?;
    Ok(Json(iam::users(&s, q.account.as_deref().unwrap_or_default(), page).await?))
}

/// The IAM users Cone created for people granted IAM groups (`aws.account_provisioning`), newest first, deleted
/// ones included. Administrators only.
#[utoipa::path(
    get,
    path = "/api/v1/iam/created-users",
    tag = "operations",
    params(UserQuery),
    responses((status = 200, description = "One page", body = CreatedIamUserPage), BadRequest, Unauthenticated, Forbidden, Internal)
)]
pub async fn created_iam_users(
    State(s): State<AppState>,
    _: Admin,
    ApiQuery(q): ApiQuery<UserQuery>,
) -> Result<Json<CreatedIamUserPage>, Error> {
    let page = Page::new(q.page_token.as_deref(), q.page_size, 100, 1000)?;
    Ok(Json(iam::created_users(&s, q.account.as_deref().unwrap_or_default(), page).await?))
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use axum::http::Method;
    use cone_aws::{AccessKey as Key, IamGroup, IamSnapshot, IamUser as User};
    use serde_json::Value;

    use crate::server::testing::{call, person, state};
    use crate::store::Db;

    crate::store::testing::on_both_backends!(
        the_inventory_is_replaced_per_sync_filtered_paged_and_for_admins_only,
        only_administrators_read_why_a_sync_failed,
    );

    async fn only_administrators_read_why_a_sync_failed(db: Db) {
        let s = state(db, "admins: { users: [carol] }\n");
        let (alice, carol) = (person(&s, "alice").await, person(&s, "carol").await);
        s.sync_status.lock().unwrap().last_error = Some("AccessDeniedException: sso:ListInstances on 111".into());
        let (status, seen) = call(&s, Method::GET, "/api/v1/connectors", Some(&alice), None).await;
        assert_eq!(status, 200);
        assert_eq!(
            seen[0]["last_error"],
            "The last sync with AWS failed; administrators see why on the Connectors page."
        );
        let (_, seen) = call(&s, Method::GET, "/api/v1/connectors", Some(&carol), None).await;
        assert_eq!(seen[0]["last_error"], "AccessDeniedException: sso:ListInstances on 111");
    }

    const DAY: i64 = 86_400;
    const NOW: i64 = 1_750_000_000;

    fn at(t: i64) -> String {
        crate::store::rfc3339(t)
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
        let filter = crate::store::AuditFilter { action: Some("iam.sync".into()), ..Default::default() };
        assert_eq!(db.audit_entries(&filter, 10).await.unwrap().len(), 5, "nothing stored or forgotten, no entry");
        // The audit API newest first, and narrowed to a person.
        let audit_ids = |page: &Value| -> Vec<i64> {
            page["entries"].as_array().unwrap().iter().map(|e| e["id"].as_i64().unwrap()).collect()
        };
        let (_, newest) = get("/api/v1/audit?action=iam.sync&order=newest&page_size=3", &carol).await;
        let (_, oldest) = get("/api/v1/audit?action=iam.sync&page_size=5", &carol).await;
        let mut reversed = audit_ids(&oldest);
        reversed.reverse();
        assert_eq!(audit_ids(&newest), reversed[..3], "{newest}");
        let next = newest["next_page_token"].as_str().unwrap();
        let (_, rest) = get(&format!("/api/v1/audit?action=iam.sync&order=newest&page_token={next}"), &carol).await;
        assert_eq!(audit_ids(&rest), reversed[3..], "{rest}");
        let (_, hers) = get("/api/v1/audit?user=alice", &carol).await;
        let actions: Vec<&str> =
            hers["entries"].as_array().unwrap().iter().map(|e| e["action"].as_str().unwrap()).collect();
        assert_eq!(actions, ["login"], "her sign-in alone, not the syncs: {hers}");
        // Her entry names her by the id the hash covers, and the page says whose id that is.
        let actor = hers["entries"][0]["actor"].as_str().unwrap();
        assert!(actor.starts_with("user:"), "{hers}");
        assert_eq!(hers["names"][actor], "alice", "{hers}");
        let (status, error) = get("/api/v1/audit?user=nobody", &carol).await;
        assert!(status == 400 && error["message"].as_str().unwrap().contains("no Cone user"), "{error}");

        // With the inventory off, the API says so rather than show what an older sync left.
        db.apply_iam_snapshot("aws", &fewer, NOW).await.unwrap();
        let off = state(db, "admins: { users: [carol] }");
        let (_, page) = call(&off, Method::GET, "/api/v1/iam/access-keys", Some(&carol), None).await;
        assert_eq!((page["synced"].as_bool(), ids(&page).len()), (Some(false), 0));
    }
}
