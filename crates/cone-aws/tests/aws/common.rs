//! IAM and Organizations beside the sandbox organisation, made through the SDK as an administrator would, and
//! what a sync must read from them.

use anyhow::{Context, Result};
use aws_sdk_iam::primitives::{DateTime, DateTimeFormat};
use aws_sdk_iam::types::StatusType;
use cone_aws::{IamGroup, IamRole, IamUser};
use cone_testkit::moto_sdk_config;

pub struct SeedKey {
    pub id: String,
    pub user: String,
    pub status: String,
    pub created: String,
}

/// What [`seed_iam`] made.
pub struct IamSeed {
    /// Sorted by ARN, as a sync lists them: alice (path /eng/), bob, carol.
    pub users: Vec<IamUser>,
    /// Sorted by ARN: auditors (no members), devs (alice, bob), ops (bob).
    pub groups: Vec<IamGroup>,
    /// Sorted by ARN: deploy (an account and two services; a Deny naming another account), okta-admins
    /// (a SAML provider).
    pub roles: Vec<IamRole>,
    /// Alice's first key (used against IAM), alice's second (Inactive), bob's.
    pub keys: Vec<SeedKey>,
    /// The secret access keys of those keys, which no sync may store.
    pub secrets: Vec<String>,
    /// The id of the member account "Retired", closed (SUSPENDED).
    pub closed_account: String,
}

impl IamSeed {
    pub fn user(&self, name: &str) -> &IamUser {
        self.users.iter().find(|u| u.name == name).unwrap_or_else(|| panic!("{name} was not seeded"))
    }
    pub fn group(&self, name: &str) -> &IamGroup {
        self.groups.iter().find(|g| g.name == name).unwrap_or_else(|| panic!("{name} was not seeded"))
    }
    pub fn role(&self, name: &str) -> &IamRole {
        self.roles.iter().find(|r| r.name == name).unwrap_or_else(|| panic!("{name} was not seeded"))
    }
    pub fn key(&self, user: &str, n: usize) -> &SeedKey {
        self.keys.iter().filter(|k| k.user == user).nth(n).unwrap_or_else(|| panic!("{user} has no key {n}"))
    }
}

/// The trust policies, as plain JSON (IAM stores them and sends them back URL-encoded).
const DEPLOY_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root",
    "Service":["lambda.amazonaws.com","ecs-tasks.amazonaws.com"]},"Action":"sts:AssumeRole"},
  {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"sts:AssumeRole"}]}"#;
const OKTA_TRUST: &str = r#"{"Version":"2012-10-17","Statement":[
  {"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:saml-provider/Okta"},
    "Action":"sts:AssumeRoleWithSAML"}]}"#;

pub const ALIAS: &str = "cone-sandbox";

pub fn rfc3339(d: Option<&DateTime>) -> Result<String> {
    Ok(d.context("no date")?.fmt(DateTimeFormat::DateTime)?)
}

/// Seeds IAM in moto's default account (the sandbox's management account) and closes one extra member
/// account. Alice's first key signs one IAM request, so that it has a last use.
pub async fn seed_iam(endpoint: &str) -> Result<IamSeed> {
    let sdk = moto_sdk_config(endpoint);
    let iam = aws_sdk_iam::Client::new(&sdk);

    let mut users = Vec::new();
    for (name, path) in [("alice", "/eng/"), ("bob", "/"), ("carol", "/")] {
        let out = iam.create_user().user_name(name).path(path).send().await.context("CreateUser")?;
        let u = out.user.context("CreateUser returned no user")?;
        users.push(IamUser {
            created: rfc3339(Some(&u.create_date))?,
            arn: u.arn,
            id: u.user_id,
            name: u.user_name,
            password_last_used: None,
        });
    }
    users.sort_by(|a, b| a.arn.cmp(&b.arn));

    let mut groups = Vec::new();
    for (name, members) in [("auditors", &[][..]), ("devs", &["alice", "bob"][..]), ("ops", &["bob"][..])] {
        let g = iam.create_group().group_name(name).send().await.context("CreateGroup")?.group.context("group")?;
        for member in members {
            iam.add_user_to_group().group_name(name).user_name(*member).send().await.context("AddUserToGroup")?;
        }
        groups.push(IamGroup {
            created: rfc3339(Some(&g.create_date))?,
            arn: g.arn,
            id: g.group_id,
            name: g.group_name,
        });
    }
    groups.sort_by(|a, b| a.arn.cmp(&b.arn));

    let mut roles = Vec::new();
    for (name, trust) in [("deploy", DEPLOY_TRUST), ("okta-admins", OKTA_TRUST)] {
        let out = iam.create_role().role_name(name).assume_role_policy_document(trust).send().await;
        let r = out.context("CreateRole")?.role.context("role")?;
        roles.push(IamRole {
            created: rfc3339(Some(&r.create_date))?,
            arn: r.arn,
            id: r.role_id,
            name: r.role_name,
            last_used: None,
        });
    }
    roles.sort_by(|a, b| a.arn.cmp(&b.arn));

    iam.create_account_alias().account_alias(ALIAS).send().await.context("CreateAccountAlias")?;

    let mut keys = Vec::new();
    let mut secrets = Vec::new();
    for user in ["alice", "alice", "bob"] {
        let key = iam.create_access_key().user_name(user).send().await.context("CreateAccessKey")?.access_key;
        let key = key.context("CreateAccessKey returned no key")?;
        secrets.push(key.secret_access_key);
        keys.push(SeedKey {
            created: rfc3339(key.create_date.as_ref())?,
            id: key.access_key_id,
            user: user.to_string(),
            status: "Active".to_string(),
        });
    }
    iam.update_access_key().user_name("alice").access_key_id(&keys[1].id).status(StatusType::Inactive).send().await?;
    keys[1].status = "Inactive".to_string();

    // Alice's first key signs a request, as a script using it would: moto records its last use.
    let alice = aws_sdk_iam::Client::from_conf(
        aws_sdk_iam::config::Builder::from(&sdk)
            .credentials_provider(aws_sdk_iam::config::Credentials::new(&keys[0].id, &secrets[0], None, None, "alice"))
            .build(),
    );
    alice.list_account_aliases().send().await.context("ListAccountAliases with alice's key")?;

    let org = aws_sdk_organizations::Client::new(&sdk);
    let created = org.create_account().account_name("Retired").email("retired@example.com").send().await?;
    let request = created.create_account_status.and_then(|s| s.id).context("CreateAccount returned no request id")?;
    let status = org.describe_create_account_status().create_account_request_id(request).send().await?;
    let closed_account =
        status.create_account_status.and_then(|s| s.account_id).context("the account was created without an id")?;
    org.close_account().account_id(&closed_account).send().await.context("CloseAccount")?;

    Ok(IamSeed { users, groups, roles, keys, secrets, closed_account })
}
