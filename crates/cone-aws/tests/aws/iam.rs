//! The IAM sync against moto: exact contents, the calls it makes (no call per user or group where a batch
//! API exists), and that each feature reads only its part.

use crate::common;

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_config::{BehaviorVersion, Region};
use aws_credential_types::Credentials;
use aws_credential_types::provider::SharedCredentialsProvider;
use common::{ALIAS, IamSeed, rfc3339, seed_iam};
use cone_aws::{
    AccessKey, Connector, DEFAULT_MEMBER_ROLE, Features, IamSnapshot, TrustedPrincipal, arn_account, permissions_policy,
};
use cone_testkit::faults::{Failure, FaultProxy};
use cone_testkit::{Moto, moto_sdk_config, seed_sandbox};

const IAM: Features =
    Features { provisioning: false, organizations: false, iam: true, secrets: false, revoke_sessions: false };
const SECRETS: Features = Features { secrets: true, iam: false, ..IAM };
const BOTH: Features = Features { secrets: true, ..IAM };

fn trusted(role_arn: &str, kind: &str, value: &str) -> TrustedPrincipal {
    TrustedPrincipal { role_arn: role_arn.into(), kind: kind.into(), value: value.into() }
}

/// The access keys as a sync must report them: alice's first key used against IAM in us-east-1 (when, moto
/// says), the others never used.
async fn expected_keys(endpoint: &str, seed: &IamSeed) -> Result<Vec<AccessKey>> {
    let used = &seed.key("alice", 0).id;
    let iam = aws_sdk_iam::Client::new(&moto_sdk_config(endpoint));
    let last_use = iam.get_access_key_last_used().access_key_id(used).send().await?.access_key_last_used;
    let used_at = rfc3339(last_use.as_ref().and_then(|u| u.last_used_date.as_ref()))?;
    let mut keys: Vec<AccessKey> = seed
        .keys
        .iter()
        .map(|k| {
            let was_used = k.id == *used;
            AccessKey {
                id: k.id.clone(),
                user_arn: seed.user(&k.user).arn.clone(),
                status: k.status.clone(),
                created: k.created.clone(),
                last_used: was_used.then(|| used_at.clone()),
                last_used_service: was_used.then(|| "iam".to_string()),
                last_used_region: was_used.then(|| "us-east-1".to_string()),
            }
        })
        .collect();
    keys.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(keys)
}

fn calls(pairs: &[(&str, u64)]) -> BTreeMap<String, u64> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[tokio::test]
async fn iam_sync_reads_users_groups_roles_trusts_and_key_metadata() -> Result<()> {
    let moto = Moto::start()?;
    let org = seed_sandbox(&moto.endpoint).await?;
    let seed = seed_iam(&moto.endpoint).await?;
    let sdk = moto_sdk_config(&moto.endpoint);
    let connector = Connector::new(&sdk);

    let snap = connector.sync_iam(&BOTH).await?;
    assert_eq!(snap.account_aliases, vec![(org.management_account_id.clone(), ALIAS.to_string())]);
    assert_eq!(snap.users, seed.users);
    assert_eq!(snap.groups, seed.groups);
    let (alice, bob) = (&seed.user("alice").arn, &seed.user("bob").arn);
    let (devs, ops) = (&seed.group("devs").arn, &seed.group("ops").arn);
    let mut members = vec![(devs.clone(), alice.clone()), (devs.clone(), bob.clone()), (ops.clone(), bob.clone())];
    members.sort();
    assert_eq!(snap.group_members, members);
    assert_eq!(snap.roles, seed.roles);
    let (deploy, okta) = (&seed.role("deploy").arn, &seed.role("okta-admins").arn);
    assert_eq!(
        snap.trusted,
        vec![
            trusted(deploy, "AWS", "arn:aws:iam::111122223333:root"),
            trusted(deploy, "Service", "ecs-tasks.amazonaws.com"),
            trusted(deploy, "Service", "lambda.amazonaws.com"),
            trusted(okta, "Federated", "arn:aws:iam::123456789012:saml-provider/Okta"),
        ],
        "Allow statements only; the Deny's account is not trusted"
    );
    assert_eq!(snap.access_keys, expected_keys(&moto.endpoint, &seed).await?);
    let text = format!("{snap:?}");
    for secret in &seed.secrets {
        assert!(!text.contains(secret.as_str()), "a secret access key was read");
    }

    // One batch listing for users, groups, memberships and roles: no call per user or per group. Per user and
    // per key only what has no batch form: ListAccessKeys (3 users) and GetAccessKeyLastUsed (3 keys).
    let made = connector.calls();
    assert_eq!(
        made,
        calls(&[
            ("iam:GetAccessKeyLastUsed", 3),
            ("iam:GetAccountAuthorizationDetails", 1),
            ("iam:ListAccessKeys", 3),
            ("iam:ListAccountAliases", 1),
            ("iam:ListUsers", 1),
            ("sts:GetCallerIdentity", 1),
        ])
    );
    // And the printed policy for these features allows exactly what was called.
    let policy = permissions_policy(&BOTH).to_string();
    let base = permissions_policy(&Features::default()).to_string();
    // sts:GetCallerIdentity needs no permission.
    for action in made.keys().filter(|a| !a.starts_with("sts:")) {
        assert!(policy.contains(&format!("\"{action}\"")) && !base.contains(action.as_str()), "{action}");
    }
    let iam_actions = policy.matches("\"iam:").count() - base.matches("\"iam:").count();
    assert_eq!(iam_actions, made.len() - 1, "the policy allows an IAM action the sync does not call: {policy}");

    // The suspended account stays out of the Identity Center snapshot, as non-ACTIVE accounts always have.
    let accounts = connector.sync().await?.accounts;
    assert_eq!(accounts.len(), 1 + org.accounts.len());
    assert!(accounts.iter().all(|a| a.id != seed.closed_account && a.status == "ACTIVE"), "{accounts:?}");
    Ok(())
}

#[tokio::test]
async fn each_feature_reads_only_its_part() -> Result<()> {
    let moto = Moto::start()?;
    seed_sandbox(&moto.endpoint).await?;
    let seed = seed_iam(&moto.endpoint).await?;
    let sdk = moto_sdk_config(&moto.endpoint);

    let connector = Connector::new(&sdk);
    assert_eq!(connector.sync_iam(&Features::default()).await?, IamSnapshot::default());
    assert_eq!(connector.calls(), calls(&[]), "nothing asked, nothing called");

    let connector = Connector::new(&sdk);
    let iam = connector.sync_iam(&IAM).await?;
    assert_eq!((iam.users.len(), iam.groups.len(), iam.roles.len(), iam.trusted.len()), (3, 3, 2, 4));
    assert!(iam.access_keys.is_empty());
    assert_eq!(
        connector.calls(),
        calls(&[
            ("iam:GetAccountAuthorizationDetails", 1),
            ("iam:ListAccountAliases", 1),
            ("iam:ListUsers", 1),
            ("sts:GetCallerIdentity", 1)
        ])
    );

    let connector = Connector::new(&sdk);
    let secrets = connector.sync_iam(&SECRETS).await?;
    assert_eq!(
        secrets,
        IamSnapshot {
            users: seed.users.clone(),
            access_keys: expected_keys(&moto.endpoint, &seed).await?,
            ..IamSnapshot::default()
        },
        "the key owners and their keys only"
    );
    assert_eq!(
        connector.calls(),
        calls(&[
            ("iam:GetAccessKeyLastUsed", 3),
            ("iam:ListAccessKeys", 3),
            ("iam:ListUsers", 1),
            ("sts:GetCallerIdentity", 1)
        ])
    );
    Ok(())
}

/// An IAM client acting in member account `account` through its OrganizationAccountAccessRole, as an
/// administrator of the organisation reaches it (moto assumes any role, existing or not).
async fn member_iam(endpoint: &str, account: &str) -> Result<aws_sdk_iam::Client> {
    let sdk = moto_sdk_config(endpoint);
    let role = format!("arn:aws:iam::{account}:role/{DEFAULT_MEMBER_ROLE}");
    let out = aws_sdk_sts::Client::new(&sdk).assume_role().role_arn(role).role_session_name("seed").send().await?;
    let c = out.credentials.context("AssumeRole returned no credentials")?;
    let credentials = Credentials::new(c.access_key_id, c.secret_access_key, Some(c.session_token), None, "member");
    Ok(aws_sdk_iam::Client::new(
        &sdk.to_builder().credentials_provider(SharedCredentialsProvider::new(credentials)).build(),
    ))
}

#[tokio::test]
async fn member_accounts_are_read_through_their_role_and_one_without_it_is_skipped() -> Result<()> {
    let moto = Moto::start()?;
    let org = seed_sandbox(&moto.endpoint).await?;
    let account = |name: &str| org.account_id(name).map(str::to_string).context("seeded account");
    let (production, staging, sandbox) = (account("Production")?, account("Staging")?, account("Sandbox")?);
    for (id, user, group) in [(&production, "deployer", "releasers"), (&staging, "ci", "testers")] {
        let iam = member_iam(&moto.endpoint, id).await?;
        iam.create_user().user_name(user).send().await?;
        iam.create_access_key().user_name(user).send().await?;
        iam.create_group().group_name(group).send().await?;
        iam.add_user_to_group().group_name(group).user_name(user).send().await?;
    }
    // The Sandbox account has no such role: AWS denies the AssumeRole (moto would allow any, so the proxy denies).
    let proxy = FaultProxy::start(&moto.endpoint).await?;
    proxy.fail_always("sts:AssumeRole", &sandbox, Failure::AccessDenied);
    // Loaded as cone-aws loads it (moto_sdk_config lacks the time source that assuming a role needs).
    let sdk = aws_config::defaults(BehaviorVersion::latest())
        .region(Region::new("us-east-1"))
        .endpoint_url(proxy.endpoint())
        .credentials_provider(Credentials::new("testing", "testing", None, None, "test"))
        .load()
        .await;
    let connector = Connector::new(&sdk);
    let features = Features { organizations: true, ..BOTH };
    let sync = async || tokio::time::timeout(Duration::from_secs(60), connector.sync_iam(&features)).await;

    let snap = sync().await.context("the IAM sync did not finish within 60 s")??;
    let per_account = |arns: Vec<&str>| -> BTreeMap<String, usize> {
        arns.into_iter().fold(BTreeMap::new(), |mut n, arn| {
            *n.entry(arn_account(arn).to_string()).or_default() += 1;
            n
        })
    };
    let one_each: BTreeMap<String, usize> = [(production.clone(), 1), (staging.clone(), 1)].into();
    assert_eq!(per_account(snap.users.iter().map(|u| u.arn.as_str()).collect()), one_each);
    assert_eq!(per_account(snap.groups.iter().map(|g| g.arn.as_str()).collect()), one_each);
    assert_eq!(per_account(snap.group_members.iter().map(|(g, _)| g.as_str()).collect()), one_each);
    assert_eq!(per_account(snap.access_keys.iter().map(|k| k.user_arn.as_str()).collect()), one_each);
    let deployer = snap.users.iter().find(|u| u.name == "deployer").context("deployer read")?;
    assert_eq!(arn_account(&deployer.arn), production);
    assert_eq!(snap.skipped.len(), 1, "{:?}", snap.skipped);
    assert_eq!(snap.skipped[0].account_id, sandbox);
    let reason = &snap.skipped[0].reason;
    assert!(reason.contains(&format!("arn:aws:iam::{sandbox}:role/{DEFAULT_MEMBER_ROLE}")), "{reason}");
    assert!(reason.contains("BATON_IAM_ASSUME_ROLE_NAME"), "{reason}");
    assert!(!reason.contains("raw:") && reason.len() < 600, "the reason is for people, not an HTTP dump: {reason}");
    // The management account is read with the connector's own credentials; each member through one AssumeRole.
    let made = connector.calls();
    assert_eq!(made.get("sts:AssumeRole"), Some(&3), "{made:?}");
    assert_eq!(made.get("iam:ListUsers"), Some(&3), "management, Production and Staging: {made:?}");

    // A second sync reuses the member accounts' credentials, asking again only where the role was refused.
    let again = sync().await.context("the second IAM sync did not finish")??;
    assert_eq!((again.users, again.access_keys), (snap.users, snap.access_keys));
    assert_eq!(again.skipped.iter().map(|s| &s.account_id).collect::<Vec<_>>(), [&sandbox]);
    assert_eq!(connector.calls().get("sts:AssumeRole"), Some(&4));
    Ok(())
}
