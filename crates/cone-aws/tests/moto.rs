//! The connector against a real moto server holding the seeded sandbox organisation.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use cone_aws::{Assignment, AssignmentRecord, Connector, Principal, Snapshot};
use cone_testkit::{Moto, SandboxOrg, moto_sdk_config, seed_sandbox};

/// A sync must finish; moto's duplicate-assignment loop would otherwise hang the test instead of failing it.
async fn sync(connector: &Connector) -> Result<Snapshot> {
    Ok(
        tokio::time::timeout(Duration::from_secs(60), connector.sync())
            .await
            .context("sync did not finish within 60 s")??,
    )
}

fn id<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs
        .iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap_or_else(|| panic!("{key} was not seeded"))
}

fn check_seeded_snapshot(org: &SandboxOrg, snap: &Snapshot) {
    assert_eq!(snap.instance_arn, org.instance_arn);
    assert_eq!(snap.identity_store_id, org.identity_store_id);

    // Organizations ListAccounts includes the management account (on AWS as in moto). Cone keeps it:
    // IAM Identity Center can assign permission sets in the management account too.
    let accounts: BTreeSet<(&str, &str, &str, &str)> = snap
        .accounts
        .iter()
        .map(|a| {
            (
                a.id.as_str(),
                a.name.as_str(),
                a.email.as_str(),
                a.status.as_str(),
            )
        })
        .collect();
    let mut expected = BTreeSet::from([(
        org.management_account_id.as_str(),
        "master",
        "master@example.com",
        "ACTIVE",
    )]);
    for (name, email) in [
        ("Production", "production@example.com"),
        ("Staging", "staging@example.com"),
        ("Sandbox", "sandbox@example.com"),
    ] {
        expected.insert((id(&org.accounts, name), name, email, "ACTIVE"));
    }
    assert_eq!(accounts, expected);
    assert_eq!(snap.accounts.len(), 4);

    let sets: Vec<(&str, &str, Option<&str>)> = snap
        .permission_sets
        .iter()
        .map(|p| {
            (
                p.name.as_str(),
                p.arn.as_str(),
                p.session_duration.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        sets,
        vec![
            (
                "AdministratorAccess",
                id(&org.permission_sets, "AdministratorAccess"),
                Some("PT1H")
            ),
            (
                "DatabaseAdministrator",
                id(&org.permission_sets, "DatabaseAdministrator"),
                Some("PT1H")
            ),
            (
                "ReadOnlyAccess",
                id(&org.permission_sets, "ReadOnlyAccess"),
                Some("PT1H")
            ),
        ]
    );
    assert!(
        snap.permission_sets
            .iter()
            .all(|p| p.description.as_deref().is_some_and(|d| !d.is_empty()))
    );

    // Seeded: every permission set provisioned to each member account. moto 5.2.1 ignores the target of
    // ProvisionPermissionSet, so the connector's cross-check falls back to ListPermissionSetsProvisionedToAccount,
    // which in moto reports every provisioned permission set for every account: the management account shows
    // up too. All 9 member pairs must be there, and nothing outside accounts × permission sets.
    let provisioned: BTreeSet<(&str, &str)> = snap
        .provisioned
        .iter()
        .map(|(a, p)| (a.as_str(), p.as_str()))
        .collect();
    assert_eq!(
        provisioned.len(),
        snap.provisioned.len(),
        "provisioned pairs are unique"
    );
    let all_pairs: BTreeSet<(&str, &str)> = snap
        .accounts
        .iter()
        .flat_map(|a| {
            snap.permission_sets
                .iter()
                .map(move |p| (a.id.as_str(), p.arn.as_str()))
        })
        .collect();
    assert_eq!(
        provisioned, all_pairs,
        "moto 5.2.1: every provisioned permission set in every account"
    );
    for (_, account) in &org.accounts {
        for (_, arn) in &org.permission_sets {
            assert!(
                provisioned.contains(&(account.as_str(), arn.as_str())),
                "{arn} not provisioned in {account}"
            );
        }
    }

    let users: Vec<(&str, &str, &str, Option<&str>)> = snap
        .users
        .iter()
        .map(|u| {
            (
                u.id.as_str(),
                u.user_name.as_str(),
                u.display_name.as_str(),
                u.email.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        users,
        vec![
            (
                id(&org.users, "alice"),
                "alice",
                "Alice Anders",
                Some("alice@example.com")
            ),
            (
                id(&org.users, "bob"),
                "bob",
                "Bob Berg",
                Some("bob@example.com")
            ),
            (
                id(&org.users, "carol"),
                "carol",
                "Carol Chen",
                Some("carol@example.com")
            ),
        ]
    );

    assert_eq!(snap.groups.len(), 1);
    assert_eq!(
        (
            snap.groups[0].id.as_str(),
            snap.groups[0].display_name.as_str()
        ),
        (org.approvers_group_id.as_str(), "approvers")
    );
    assert_eq!(
        snap.memberships,
        vec![(
            org.approvers_group_id.clone(),
            id(&org.users, "bob").to_string()
        )]
    );
}

#[tokio::test]
async fn sync_assign_unassign_against_moto() -> Result<()> {
    let moto = Moto::start()?;
    let org = seed_sandbox(&moto.endpoint).await?;
    let connector = Connector::new(&moto_sdk_config(&moto.endpoint));

    let snap = sync(&connector).await?;
    check_seeded_snapshot(&org, &snap);
    assert_eq!(snap.assignments, vec![]);

    let alice_readonly_staging = Assignment {
        instance_arn: org.instance_arn.clone(),
        account_id: id(&org.accounts, "Staging").to_string(),
        permission_set_arn: id(&org.permission_sets, "ReadOnlyAccess").to_string(),
        principal: Principal::User(id(&org.users, "alice").to_string()),
    };
    let record = AssignmentRecord {
        account_id: alice_readonly_staging.account_id.clone(),
        permission_set_arn: alice_readonly_staging.permission_set_arn.clone(),
        principal: alice_readonly_staging.principal.clone(),
    };

    connector.assign(&alice_readonly_staging).await?;
    assert_eq!(sync(&connector).await?.assignments, vec![record.clone()]);

    // Again: no second assignment (moto would store a duplicate and then page it forever).
    connector.assign(&alice_readonly_staging).await?;
    let snap = sync(&connector).await?;
    assert_eq!(snap.assignments, vec![record.clone()]);
    check_seeded_snapshot(&org, &snap);

    // A group principal next to it.
    let approvers_admin_production = Assignment {
        instance_arn: org.instance_arn.clone(),
        account_id: id(&org.accounts, "Production").to_string(),
        permission_set_arn: id(&org.permission_sets, "AdministratorAccess").to_string(),
        principal: Principal::Group(org.approvers_group_id.clone()),
    };
    connector.assign(&approvers_admin_production).await?;
    let group_record = AssignmentRecord {
        account_id: approvers_admin_production.account_id.clone(),
        permission_set_arn: approvers_admin_production.permission_set_arn.clone(),
        principal: approvers_admin_production.principal.clone(),
    };
    let mut both = vec![record.clone(), group_record];
    both.sort();
    assert_eq!(sync(&connector).await?.assignments, both);

    connector.unassign(&alice_readonly_staging).await?;
    let after = sync(&connector).await?.assignments;
    assert!(
        !after.contains(&record),
        "alice's assignment is gone: {after:?}"
    );
    assert_eq!(after.len(), 1);

    // Already gone: still success.
    connector.unassign(&alice_readonly_staging).await?;
    connector.unassign(&approvers_admin_production).await?;
    assert_eq!(sync(&connector).await?.assignments, vec![]);
    connector.unassign(&approvers_admin_production).await?;
    Ok(())
}

#[tokio::test]
async fn unreachable_endpoint_is_a_retryable_transport_error() -> Result<()> {
    let moto = Moto::start()?;
    let endpoint = moto.endpoint.clone();
    drop(moto); // killed: nothing listens on the port any more
    let connector = Connector::new(&moto_sdk_config(&endpoint));
    let err = connector
        .sync()
        .await
        .expect_err("sync against a dead endpoint must fail");
    assert!(
        matches!(err, cone_aws::ConnectorError::Transport { .. }),
        "{err:?}"
    );
    assert!(err.is_retryable());
    assert!(err.to_string().contains("AWS_ENDPOINT_URL"), "{err}");
    Ok(())
}

/// moto stores a repeated CreateAccountAssignment again each time. A few duplicates fit in one page (the
/// default 100) and come out as one record; past one page, moto's token points back at the first copy and
/// it serves the same page with the same NextToken forever. The connector must stop with an error.
#[tokio::test]
async fn duplicate_assignments_in_moto_are_merged_or_stop_paging_with_an_error() -> Result<()> {
    let moto = Moto::start()?;
    let org = seed_sandbox(&moto.endpoint).await?;
    let sdk = moto_sdk_config(&moto.endpoint);
    let connector = Connector::new(&sdk);
    let sso = aws_sdk_ssoadmin::Client::new(&sdk);
    let create_duplicates = |n: usize| {
        let sso = sso.clone();
        let org = org.clone();
        async move {
            for _ in 0..n {
                sso.create_account_assignment()
                    .instance_arn(&org.instance_arn)
                    .target_id(id(&org.accounts, "Sandbox"))
                    .target_type(aws_sdk_ssoadmin::types::TargetType::AwsAccount)
                    .permission_set_arn(id(&org.permission_sets, "ReadOnlyAccess"))
                    .principal_type(aws_sdk_ssoadmin::types::PrincipalType::User)
                    .principal_id(id(&org.users, "carol"))
                    .send()
                    .await?;
            }
            anyhow::Ok(())
        }
    };

    create_duplicates(2).await?;
    let snap = sync(&connector).await?;
    assert_eq!(snap.assignments.len(), 1, "{:?}", snap.assignments);

    create_duplicates(100).await?;
    let err = sync(&connector)
        .await
        .expect_err("an endless listing must not pass for a normal one");
    assert!(
        matches!(
            err.downcast_ref(),
            Some(cone_aws::ConnectorError::PaginationLoop {
                operation: "ListAccountAssignments",
                ..
            })
        ),
        "{err:?}"
    );
    Ok(())
}
