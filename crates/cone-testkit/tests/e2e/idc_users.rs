//! A person who signs in to Cone with a password and whom Identity Center does not know, end to end on SQLite and
//! on PostgreSQL with moto and the real AWS CLI (`aws.account_provisioning.identity_center_users`): dave's first
//! grant creates his Identity Center user (user type `cone`) and is made for it, he signs in to Identity Center as
//! it and the AWS CLI works through cone; syncs neither link nor offboard him by it; his last grant's end deletes it,
//! and he is a person with a password only again.

use std::time::Duration;

use aws_sdk_identitystore::types::{AlternateIdentifier, UniqueAttribute};
use cone_api::{AuditPage, CreateTask, CreatedIamUserPage, TaskState};
use cone_testkit::{Sandbox, Store, moto_sdk_config};

use crate::people::sync;
use crate::{assert_audit_intact, eventually};

cone_testkit::on_both_stores!(
    a_password_persons_first_grant_creates_their_identity_center_user_and_the_last_deletes_it
);

/// The id and user type of Identity Center user `name`, if there is one.
async fn idc_user(sb: &Sandbox, name: &str) -> Option<(String, Option<String>)> {
    let ids = aws_sdk_identitystore::Client::new(&moto_sdk_config(&sb.moto.endpoint));
    let by_name = UniqueAttribute::builder().attribute_path("userName").attribute_value(name.into()).build().ok()?;
    let id = ids
        .get_user_id()
        .identity_store_id(&sb.org.identity_store_id)
        .alternate_identifier(AlternateIdentifier::UniqueAttribute(by_name))
        .send()
        .await
        .ok()?
        .user_id;
    let user = ids.describe_user().identity_store_id(&sb.org.identity_store_id).user_id(&id).send().await.ok()?;
    Some((id, user.user_type))
}

async fn a_password_persons_first_grant_creates_their_identity_center_user_and_the_last_deletes_it(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let settings = "  account_provisioning: { identity_center_users: true }\n";
    let sb = Sandbox::start_on(store, dir.path(), settings, "").await.unwrap();
    sb.add_local_user("dave").unwrap();
    for user in ["dave", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let (dave, carol) = (sb.client("dave").unwrap(), sb.client("carol").unwrap());
    assert_eq!(idc_user(&sb, "dave").await, None);

    let entitlement = format!(
        "{}|{}",
        sb.org.account_id("Production").unwrap(),
        sb.org.permission_set_arn("ReadOnlyAccess").unwrap()
    );
    let ask = CreateTask { app_id: "aws".into(), entitlement_id: entitlement, ..CreateTask::default() };
    let task = dave.create_task(&ask).await.unwrap();
    eventually(Duration::from_secs(30), "dave's grant is made", async || {
        dave.task(task.id, None, Duration::ZERO).await.unwrap().state == TaskState::Granted
    })
    .await;
    let (id, user_type) = idc_user(&sb, "dave").await.expect("Cone created dave's Identity Center user");
    assert_eq!(user_type.as_deref(), Some("cone"), "Cone's user type");
    assert!(sb.assigned_principals("Production", "ReadOnlyAccess").await.unwrap().contains(&id));

    // dave signs in to Identity Center as that user, and the AWS CLI works through cone.
    sb.sign_in("dave").await.unwrap();
    let o = sb.caller_identity("dave", "production-readonlyaccess").unwrap();
    let said = String::from_utf8_lossy(&o.stdout);
    assert!(o.status.success() && said.contains("AWSReservedSSO_ReadOnlyAccess_"), "{o:?}");

    // A sync lists the user; dave stays as Cone made him. Administrators see what Cone created.
    sync(&carol).await;
    assert_eq!(dave.me().await.unwrap().username, "dave");
    let created: CreatedIamUserPage = carol.get("/api/v1/iam/created-users").await.unwrap();
    let rows: Vec<(&str, &str, &str, &str)> = created
        .users
        .iter()
        .map(|u| (u.username.as_str(), u.kind.as_str(), u.account_name.as_str(), u.state.as_str()))
        .collect();
    assert_eq!(rows, [("dave", "idc_user", "Identity Center", "active")]);

    // His only grant ends: the user goes, and with it his sign-in to the role.
    let o = sb.cone("dave", &["drop", "production-readonlyaccess"]).unwrap();
    assert!(o.status.success(), "{o:?}");
    eventually(Duration::from_secs(60), "dave's Identity Center user is deleted", async || {
        idc_user(&sb, "dave").await.is_none()
    })
    .await;
    assert!(!sb.assigned_principals("Production", "ReadOnlyAccess").await.unwrap().contains(&id));
    let o = sb.role_credentials("dave", "Production", "ReadOnlyAccess").unwrap();
    assert!(!o.status.success(), "the role is still given: {o:?}");
    // A sync after it does not offboard him: he signs in to Cone as before, and may ask again.
    sync(&carol).await;
    assert_eq!(dave.me().await.unwrap().username, "dave");
    let audit: AuditPage = carol.get("/api/v1/audit?action=account.*").await.unwrap();
    let made: Vec<(&str, &serde_json::Value)> =
        audit.entries.iter().map(|e| (e.action.as_str(), &e.detail["user_id"])).collect();
    let id = serde_json::Value::from(id.as_str());
    assert_eq!(made, [("account.create", &id), ("account.delete", &id)]);
    let offboarded: AuditPage = carol.get("/api/v1/audit?action=identity.*").await.unwrap();
    assert!(offboarded.entries.is_empty(), "{:?}", offboarded.entries);
    assert_audit_intact(&sb);
}
