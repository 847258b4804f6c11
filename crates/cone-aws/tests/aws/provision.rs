//! Provisioning beyond account assignments against moto: each change made twice (the second finds it done) and
//! read back from moto through the SDK, an IAM user holding one of everything deleted whole, unknown users and
//! groups named in the error, and the printed policy holding exactly the actions provisioning calls (an access
//! review's key deactivation included).

use std::collections::{BTreeMap, BTreeSet};

use anyhow::{Context, Result};
use aws_sdk_iam::types::StatusType;
use aws_sdk_identitystore::types::{AlternateIdentifier, UniqueAttribute};
use aws_smithy_types::Document;
use cone_aws::{
    Assignment, Change, Connector, ConnectorError, Features, NewIamUser, NewIdcUser, Principal, permissions_policy,
};
use cone_testkit::{Moto, SandboxOrg, moto_sdk_config, seed_sandbox};

/// A self-signed certificate, as UploadSigningCertificate takes one.
const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----
MIIBfjCCASWgAwIBAgIUAfPpT3mXATi22FXQMk0yZ+9ft3cwCgYIKoZIzj0EAwIw
FDESMBAGA1UEAwwJY29uZS10ZXN0MCAXDTI2MTEyMzExNDAzN1oYDzIxMjYxMDMw
MTE0MDM3WjAUMRIwEAYDVQQDDAljb25lLXRlc3QwWTATBgcqhkjOPQIBBggqhkjO
PQMBBwNCAASdpnE4t0ZpWEZa9sqaKoP4qXTLzM+U/mhijgnPr7BXjYYz3/MmmY1j
yUBLRfGjhZDdbNhT/48caVU62L+cUXOFo1MwUTAdBgNVHQ4EFgQUnYxSYYrLYZgK
NvKHiS5VJAiFt04wHwYDVR0jBBgwFoAUnYxSYYrLYZgKNvKHiS5VJAiFt04wDwYD
VR0TAQH/BAUwAwEB/zAKBggqhkjOPQQDAgNHADBEAiA/Vu/GsLrPkl9OfsN5mnhF
q05SBM2/sDjb9OdrJoJzZQIgPebctYJDqaLikXq1AhUIGQKmb6c1Ag0x0XEGc7eh
B6c=
-----END CERTIFICATE-----
";
const SSH_KEY: &str = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIEBeDetb7Ut3WLoea4fpcdJJ0uZS1IWdCw0MdQe/vIDh cone-test";
const POLICY: &str =
    r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"s3:ListBucket","Resource":"*"}]}"#;

/// moto with the sandbox organisation, and SDK clients that read it directly.
struct Env {
    /// Kept for its lifetime: dropping it stops moto.
    _moto: Moto,
    org: SandboxOrg,
    iam: aws_sdk_iam::Client,
    ids: aws_sdk_identitystore::Client,
    connector: Connector,
}

impl Env {
    async fn start() -> Result<Env> {
        let moto = Moto::start()?;
        let org = seed_sandbox(&moto.endpoint).await?;
        let sdk = moto_sdk_config(&moto.endpoint);
        Ok(Env {
            org,
            iam: aws_sdk_iam::Client::new(&sdk),
            ids: aws_sdk_identitystore::Client::new(&sdk),
            connector: Connector::new(&sdk),
            _moto: moto,
        })
    }

    fn store(&self) -> &str {
        &self.org.identity_store_id
    }

    fn user_id(&self, name: &str) -> Result<String> {
        self.org.user_id(name).map(str::to_string).with_context(|| format!("{name} was not seeded"))
    }

    async fn approvers(&self) -> Result<Vec<String>> {
        self.org.approvers(&self._moto.endpoint).await
    }

    /// The id of the identity-store user with this user name, if there is one.
    async fn idc_user(&self, user_name: &str) -> Result<Option<String>> {
        let by_name = UniqueAttribute::builder()
            .attribute_path("userName")
            .attribute_value(Document::String(user_name.into()))
            .build()?;
        let out = self
            .ids
            .get_user_id()
            .identity_store_id(self.store())
            .alternate_identifier(AlternateIdentifier::UniqueAttribute(by_name))
            .send()
            .await;
        match out {
            Ok(out) => Ok(Some(out.user_id)),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_resource_not_found_exception()) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn iam_groups_of(&self, user: &str) -> Result<Vec<String>> {
        let out = self.iam.list_groups_for_user().user_name(user).send().await?;
        Ok(out.groups.into_iter().map(|g| g.group_name).collect())
    }

    async fn iam_user_exists(&self, name: &str) -> Result<bool> {
        match self.iam.get_user().user_name(name).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_entity_exception()) => Ok(false),
            Err(e) => Err(e.into()),
        }
    }
}

fn dave() -> NewIdcUser {
    NewIdcUser {
        user_name: "dave".into(),
        display_name: "Dave Diaz".into(),
        given_name: "Dave".into(),
        family_name: "Diaz".into(),
        email: Some("dave@example.com".into()),
    }
}

fn sorted(mut ids: Vec<String>) -> Vec<String> {
    ids.sort();
    ids
}

async fn identity_center(env: &Env) -> Result<()> {
    let (c, store) = (&env.connector, env.store());
    let (alice, bob) = (env.user_id("alice")?, env.user_id("bob")?);

    // By names, twice; then by ids, which finds it done too.
    assert_eq!(c.add_idc_group_member(store, "approvers", "alice").await?, Change::Made);
    assert_eq!(c.add_idc_group_member(store, "approvers", "alice").await?, Change::AlreadyInPlace);
    assert_eq!(c.add_idc_group_member(store, &env.org.approvers_group_id, &alice).await?, Change::AlreadyInPlace);
    assert_eq!(env.approvers().await?, sorted(vec![alice.clone(), bob.clone()]), "one membership, not two");
    assert_eq!(c.remove_idc_group_member(store, "approvers", "alice").await?, Change::Made);
    assert_eq!(c.remove_idc_group_member(store, "approvers", &alice).await?, Change::AlreadyInPlace);
    assert_eq!(env.approvers().await?, vec![bob.clone()]);

    assert_eq!(c.create_idc_user(store, &dave()).await?, Change::Made);
    let other = NewIdcUser { display_name: "Someone Else".into(), ..dave() };
    assert_eq!(c.create_idc_user(store, &other).await?, Change::AlreadyInPlace, "an existing user name is success");
    let id = env.idc_user("dave").await?.context("dave was created")?;
    let user = env.ids.describe_user().identity_store_id(store).user_id(&id).send().await?;
    assert_eq!(user.display_name.as_deref(), Some("Dave Diaz"), "left as it was");
    let name = user.name.context("a name")?;
    assert_eq!((name.given_name.as_deref(), name.family_name.as_deref()), (Some("Dave"), Some("Diaz")));
    let email = user.emails.unwrap_or_default().into_iter().next().context("an email")?;
    assert_eq!((email.value.as_deref(), email.primary), (Some("dave@example.com"), true));

    // A user's memberships go with it.
    assert_eq!(c.add_idc_group_member(store, "approvers", "dave").await?, Change::Made);
    assert_eq!(c.delete_idc_user(store, "dave").await?, Change::Made);
    assert_eq!(c.delete_idc_user(store, "dave").await?, Change::AlreadyInPlace);
    assert_eq!(env.idc_user("dave").await?, None);
    assert_eq!(env.approvers().await?, vec![bob]);

    // A user Cone creates for a person carries its user type, by which a retry knows it and a deletion may take it.
    let (made, id) = c.create_owned_idc_user(store, &dave()).await?;
    assert_eq!(made, Change::Made);
    assert_eq!(c.create_owned_idc_user(store, &dave()).await?, (Change::AlreadyInPlace, id.clone()));
    let user = env.ids.describe_user().identity_store_id(store).user_id(&id).send().await?;
    assert_eq!(user.user_type.as_deref(), Some(cone_aws::OWNER_USER_TYPE));
    assert_eq!(c.delete_owned_idc_user(store, &id).await?, Change::Made);
    assert_eq!(c.delete_owned_idc_user(store, "dave").await?, Change::AlreadyInPlace);
    // One made by someone else is neither taken nor deleted.
    c.create_idc_user(store, &dave()).await?;
    for refused in [
        c.create_owned_idc_user(store, &dave()).await.map(drop),
        c.delete_owned_idc_user(store, "dave").await.map(drop),
    ] {
        let e = refused.expect_err("not Cone's");
        assert!(e.is_not_created_by_cone() && !e.is_retryable(), "{e}");
        assert!(e.to_string().contains("Identity Center user `dave` exists and Cone did not create it"), "{e}");
    }
    assert!(env.idc_user("dave").await?.is_some(), "left alone");
    c.delete_idc_user(store, "dave").await?;
    Ok(())
}

/// Gives IAM user `name` one of everything DeleteUser needs gone first, and a virtual MFA device.
async fn equip(env: &Env, name: &str, policy_arn: &str) -> Result<()> {
    let iam = &env.iam;
    for _ in 0..2 {
        iam.create_access_key().user_name(name).send().await?;
    }
    iam.create_login_profile().user_name(name).password("Cone-test-password-1").send().await?;
    let device = iam.create_virtual_mfa_device().virtual_mfa_device_name(format!("{name}-mfa")).send().await?;
    let serial = device.virtual_mfa_device.context("a device")?.serial_number;
    let enable = iam.enable_mfa_device().user_name(name).serial_number(serial);
    enable.authentication_code1("123456").authentication_code2("234567").send().await?;
    iam.upload_ssh_public_key().user_name(name).ssh_public_key_body(SSH_KEY).send().await?;
    iam.upload_signing_certificate().user_name(name).certificate_body(CERTIFICATE).send().await?;
    for group in ["devs", "ops"] {
        iam.add_user_to_group().group_name(group).user_name(name).send().await?;
    }
    iam.attach_user_policy().user_name(name).policy_arn(policy_arn).send().await?;
    iam.put_user_policy().user_name(name).policy_name("inline").policy_document(POLICY).send().await?;
    Ok(())
}

async fn iam(env: &Env) -> Result<()> {
    let c = &env.connector;
    for group in ["devs", "ops"] {
        env.iam.create_group().group_name(group).send().await?;
    }
    let policy = env.iam.create_policy().policy_name("list-buckets").policy_document(POLICY).send().await?;
    let policy_arn = policy.policy.and_then(|p| p.arn).context("a policy ARN")?;

    let email = [("email".to_string(), "erin@example.com".to_string())];
    let team = [("team".to_string(), "platform".to_string())];
    assert_eq!(c.create_iam_user("erin", "/cone/", &email).await?, Change::Made);
    assert_eq!(c.create_iam_user("erin", "/elsewhere/", &team).await?, Change::AlreadyInPlace);
    let erin = env.iam.get_user().user_name("erin").send().await?.user.context("erin")?;
    assert_eq!(erin.path, "/cone/", "created under the path asked for");
    let tags = env.iam.list_user_tags().user_name("erin").send().await?.tags;
    let tags: BTreeMap<String, String> = tags.into_iter().map(|t| (t.key, t.value)).collect();
    assert_eq!(tags, email.iter().chain(&team).cloned().collect(), "the tags asked for, either way");

    assert_eq!(c.add_iam_group_member("devs", "erin").await?, Change::Made);
    assert_eq!(c.add_iam_group_member("devs", "erin").await?, Change::AlreadyInPlace);
    assert_eq!(env.iam_groups_of("erin").await?, vec!["devs"]);
    assert_eq!(c.remove_iam_group_member("devs", "erin").await?, Change::Made);
    assert_eq!(c.remove_iam_group_member("devs", "erin").await?, Change::AlreadyInPlace);
    assert!(env.iam_groups_of("erin").await?.is_empty());

    equip(env, "erin", &policy_arn).await?;
    let before = c.calls();
    assert_eq!(c.delete_iam_user("erin").await?, Change::Made);
    assert!(!env.iam_user_exists("erin").await?);
    // One call per item, and one listing per kind of item; moto cannot list service-specific credentials.
    let expected: BTreeMap<String, u64> = [
        ("iam:GetUser", 1),
        ("iam:DeleteLoginProfile", 1),
        ("iam:ListAccessKeys", 1),
        ("iam:DeleteAccessKey", 2),
        ("iam:ListSigningCertificates", 1),
        ("iam:DeleteSigningCertificate", 1),
        ("iam:ListSSHPublicKeys", 1),
        ("iam:DeleteSSHPublicKey", 1),
        ("iam:ListServiceSpecificCredentials", 1),
        ("iam:ListMFADevices", 1),
        ("iam:DeactivateMFADevice", 1),
        ("iam:DeleteVirtualMFADevice", 1),
        ("iam:ListUserPolicies", 1),
        ("iam:DeleteUserPolicy", 1),
        ("iam:ListAttachedUserPolicies", 1),
        ("iam:DetachUserPolicy", 1),
        ("iam:ListGroupsForUser", 1),
        ("iam:RemoveUserFromGroup", 2),
        ("iam:DeleteUser", 1),
    ]
    .into_iter()
    .map(|(a, n)| (a.to_string(), n))
    .collect();
    let made: BTreeMap<String, u64> = c
        .calls()
        .into_iter()
        .filter_map(|(action, n)| {
            let more = n - before.get(&action).copied().unwrap_or(0);
            (more > 0).then_some((action, more))
        })
        .collect();
    assert_eq!(made, expected);
    // Nothing of the user's is left behind: the virtual MFA device is gone, the groups hold nobody (moto's GetGroup
    // would still list a user deleted without leaving them), the managed policy stays, unattached.
    assert!(env.iam.list_virtual_mfa_devices().send().await?.virtual_mfa_devices.is_empty());
    for group in ["devs", "ops"] {
        assert!(env.iam.get_group().group_name(group).send().await?.users.is_empty(), "{group}");
    }
    let policy = env.iam.get_policy().policy_arn(&policy_arn).send().await?.policy.context("the policy stays")?;
    assert_eq!(policy.attachment_count, Some(0));

    assert_eq!(c.delete_iam_user("erin").await?, Change::AlreadyInPlace, "a missing user is deleted already");

    // A user Cone made and keeps disabled (`deprovision: disable`) loses its password and keys, and stays.
    let frank = NewIamUser { name: "frank".into(), path: "/cone/".into(), owner: "u-frank".into(), tags: vec![] };
    assert_eq!(c.create_owned_iam_user(&frank).await?, Change::Made);
    env.iam.create_login_profile().user_name("frank").password("Un-guessable-42").send().await?;
    for _ in 0..2 {
        env.iam.create_access_key().user_name("frank").send().await?;
    }
    assert_eq!(c.disable_owned_iam_user("frank", "u-frank").await?, Change::Made);
    assert!(env.iam.get_login_profile().user_name("frank").send().await.is_err(), "no password");
    let keys = env.iam.list_access_keys().user_name("frank").send().await?.access_key_metadata;
    let statuses: Vec<_> = keys.iter().map(|k| k.status.clone()).collect();
    assert_eq!(statuses, [Some(StatusType::Inactive), Some(StatusType::Inactive)]);
    assert_eq!(c.disable_owned_iam_user("frank", "u-frank").await?, Change::AlreadyInPlace);
    let e = c.disable_owned_iam_user("frank", "u-someone-else").await.expect_err("not that person's");
    assert!(e.is_not_created_by_cone(), "{e}");
    assert!(env.iam_user_exists("frank").await?);
    // An access review's revocation deactivates one key, once; a key or user that is not there is done already.
    env.iam.create_user().user_name("grace").path("/cone/").send().await?;
    let key = env.iam.create_access_key().user_name("grace").send().await?.access_key.context("a key")?;
    assert_eq!(c.deactivate_access_key("grace", &key.access_key_id).await?, Change::Made);
    let keys = env.iam.list_access_keys().user_name("grace").send().await?.access_key_metadata;
    assert_eq!(keys[0].status, Some(StatusType::Inactive));
    assert_eq!(c.deactivate_access_key("grace", &key.access_key_id).await?, Change::AlreadyInPlace);
    assert_eq!(c.deactivate_access_key("grace", "AKIANOTTHERE").await?, Change::AlreadyInPlace);
    assert_eq!(c.deactivate_access_key("nobody", &key.access_key_id).await?, Change::AlreadyInPlace);
    assert_eq!(c.delete_owned_iam_user("frank", "u-frank").await?, Change::Made);
    Ok(())
}

/// The actions of a printed policy.
fn actions(features: &Features) -> BTreeSet<String> {
    let policy = permissions_policy(features);
    let statements = policy["Statement"].as_array().cloned().unwrap_or_default();
    statements
        .iter()
        .flat_map(|s| s["Action"].as_array().cloned().unwrap_or_default())
        .filter_map(|a| a.as_str().map(str::to_string))
        .collect()
}

/// Provisioning actions no call here makes: what IAM Identity Center does with the caller's permissions in the
/// management account, the status polls of assignment requests (moto finishes them at once), and the two
/// deletions moto gives nothing to (it reports no permissions boundary and cannot list service credentials).
const NOT_CALLED_HERE: &[&str] = &[
    "iam:AttachRolePolicy",
    "iam:CreateRole",
    "iam:DeleteRole",
    "iam:DeleteRolePolicy",
    "iam:DeleteServiceSpecificCredential",
    "iam:DeleteUserPermissionsBoundary",
    "iam:DetachRolePolicy",
    "iam:GetRole",
    "iam:GetSAMLProvider",
    "iam:ListAttachedRolePolicies",
    "iam:ListPolicies",
    "iam:ListRolePolicies",
    "iam:ListRoles",
    "iam:PutRolePolicy",
    "iam:UpdateRole",
    "iam:UpdateRoleDescription",
    "sso:DescribeAccountAssignmentCreationStatus",
    "sso:DescribeAccountAssignmentDeletionStatus",
];

#[tokio::test]
async fn provisioning_twice_changes_aws_once_and_the_policy_allows_exactly_its_calls() -> Result<()> {
    let env = Env::start().await?;
    identity_center(&env).await?;
    iam(&env).await?;
    let assignment = Assignment {
        instance_arn: env.org.instance_arn.clone(),
        account_id: env.org.account_id("Staging").context("seeded")?.to_string(),
        permission_set_arn: env.org.permission_set_arn("ReadOnlyAccess").context("seeded")?.to_string(),
        principal: Principal::User(env.user_id("alice")?),
    };
    env.connector.assign(&assignment).await?;
    env.connector.unassign(&assignment).await?;

    let called: BTreeSet<String> = env.connector.calls().into_keys().collect();
    let allowed = actions(&Features { provisioning: true, iam: true, ..Features::default() });
    let missing: Vec<&String> = called.difference(&allowed).collect();
    assert!(missing.is_empty(), "called but not in `cone-aws policy --provisioning --iam`: {missing:?}");
    // What provisioning adds to the policy beyond the syncs is called, but for what cannot be called here.
    let synced = actions(&Features { iam: true, ..Features::default() });
    let uncalled: Vec<&str> =
        allowed.difference(&synced).filter(|a| !called.contains(*a)).map(String::as_str).collect();
    assert_eq!(uncalled, NOT_CALLED_HERE, "in the policy but never called");
    Ok(())
}

fn no_such(result: Result<Change, ConnectorError>, what: &str) {
    match result {
        Err(e @ ConnectorError::NoSuchPrincipal { .. }) => {
            let text = e.to_string();
            assert!(text.contains(&format!("{what} does not exist")) && !e.is_retryable(), "{text}");
        }
        other => panic!("expected {what} to be unknown, got {other:?}"),
    }
}

#[tokio::test]
async fn unknown_users_and_groups_are_named_and_removing_them_is_done_already() -> Result<()> {
    let env = Env::start().await?;
    let (c, store) = (&env.connector, env.store());
    env.iam.create_group().group_name("devs").send().await?;
    env.iam.create_user().user_name("erin").send().await?;

    no_such(c.add_idc_group_member(store, "nobodies", "alice").await, "Identity Center group `nobodies`");
    no_such(c.add_idc_group_member(store, "approvers", "nobody").await, "Identity Center user `nobody`");
    // An id is taken as it is, and AWS says that no such user exists.
    let unknown = "00000000-0000-4000-8000-000000000000";
    no_such(
        c.add_idc_group_member(store, "approvers", unknown).await,
        &format!("Identity Center group `approvers` or user `{unknown}`"),
    );
    no_such(c.add_iam_group_member("devs", "nobody").await, "IAM user `nobody`");
    no_such(c.add_iam_group_member("nobodies", "erin").await, "IAM group `nobodies`");

    assert_eq!(c.remove_idc_group_member(store, "nobodies", "alice").await?, Change::AlreadyInPlace);
    assert_eq!(c.remove_idc_group_member(store, "approvers", "nobody").await?, Change::AlreadyInPlace);
    assert_eq!(c.remove_iam_group_member("devs", "nobody").await?, Change::AlreadyInPlace);
    assert_eq!(c.remove_iam_group_member("nobodies", "erin").await?, Change::AlreadyInPlace);
    assert_eq!(c.delete_iam_user("nobody").await?, Change::AlreadyInPlace);
    assert_eq!(c.delete_idc_user(store, "nobody").await?, Change::AlreadyInPlace);
    assert_eq!(env.approvers().await?, vec![env.user_id("bob")?], "nothing changed");
    Ok(())
}
