//! The connector against a real moto server holding the seeded sandbox organisation.

use std::collections::BTreeSet;
use std::time::Duration;

use anyhow::{Context, Result};
use cone_aws::journal::NoJournal;
use cone_aws::spool::SinkError;
use cone_aws::{
    Account, Assignment, AssignmentRecord, Connector, ConnectorError, Part, Principal, Sink, Snapshot, User,
};
use cone_testkit::{Moto, SandboxOrg, moto_sdk_config, seed_sandbox};
use futures_util::future::BoxFuture;

/// A sync must finish; moto's duplicate-assignment loop would otherwise hang the test instead of failing it.
async fn sync(connector: &Connector) -> Result<Snapshot> {
    Ok(tokio::time::timeout(Duration::from_secs(60), connector.sync())
        .await
        .context("sync did not finish within 60 s")??)
}

fn id<'a>(pairs: &'a [(String, String)], key: &str) -> &'a str {
    pairs.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str()).unwrap_or_else(|| panic!("{key} was not seeded"))
}

/// The assignment of `principal` to the seeded permission set `set` in the seeded member account `account`.
fn assignment(org: &SandboxOrg, account: &str, set: &str, principal: Principal) -> Assignment {
    Assignment {
        instance_arn: org.instance_arn.clone(),
        account_id: id(&org.accounts, account).to_string(),
        permission_set_arn: id(&org.permission_sets, set).to_string(),
        principal,
    }
}

/// How a sync reports `a` once it exists.
fn record_of(a: &Assignment) -> AssignmentRecord {
    AssignmentRecord {
        account_id: a.account_id.clone(),
        permission_set_arn: a.permission_set_arn.clone(),
        principal: a.principal.clone(),
    }
}

fn check_seeded_snapshot(org: &SandboxOrg, snap: &Snapshot) {
    assert_eq!(snap.instance_arn, org.instance_arn);
    assert_eq!(snap.identity_store_id, org.identity_store_id);

    // Organizations ListAccounts includes the management account (on AWS as in moto). Cone keeps it:
    // IAM Identity Center can assign permission sets in the management account too.
    let mut accounts: Vec<Account> = [
        (org.management_account_id.as_str(), "master"),
        (id(&org.accounts, "Production"), "Production"),
        (id(&org.accounts, "Staging"), "Staging"),
        (id(&org.accounts, "Sandbox"), "Sandbox"),
    ]
    .into_iter()
    .map(|(id, name)| Account {
        id: id.to_string(),
        name: name.to_string(),
        email: format!("{}@example.com", name.to_lowercase()),
        status: "ACTIVE".to_string(),
    })
    .collect();
    accounts.sort_by(|a, b| a.id.cmp(&b.id));
    assert_eq!(snap.accounts, accounts);

    let sets: Vec<(&str, &str, Option<&str>)> =
        snap.permission_sets.iter().map(|p| (p.name.as_str(), p.arn.as_str(), p.session_duration.as_deref())).collect();
    let expected: Vec<(&str, &str, Option<&str>)> = ["AdministratorAccess", "DatabaseAdministrator", "ReadOnlyAccess"]
        .into_iter()
        .map(|name| (name, id(&org.permission_sets, name), Some("PT1H")))
        .collect();
    assert_eq!(sets, expected);
    assert!(snap.permission_sets.iter().all(|p| p.description.as_deref().is_some_and(|d| !d.is_empty())));

    // Seeded: every permission set provisioned to each member account. moto 5.2.1 ignores the target of
    // ProvisionPermissionSet, so the connector's cross-check falls back to ListPermissionSetsProvisionedToAccount,
    // which in moto reports every provisioned permission set for every account: the management account shows
    // up too. All 9 member pairs must be there, and nothing outside accounts × permission sets.
    let provisioned: BTreeSet<(&str, &str)> = snap.provisioned.iter().map(|(a, p)| (a.as_str(), p.as_str())).collect();
    assert_eq!(provisioned.len(), snap.provisioned.len(), "provisioned pairs are unique");
    let all_pairs: BTreeSet<(&str, &str)> = snap
        .accounts
        .iter()
        .flat_map(|a| snap.permission_sets.iter().map(move |p| (a.id.as_str(), p.arn.as_str())))
        .collect();
    assert_eq!(provisioned, all_pairs, "moto 5.2.1: every provisioned permission set in every account");
    for (_, account) in &org.accounts {
        for (_, arn) in &org.permission_sets {
            assert!(provisioned.contains(&(account.as_str(), arn.as_str())), "{arn} not provisioned in {account}");
        }
    }

    let users: Vec<User> = [("alice", "Alice Anders"), ("bob", "Bob Berg"), ("carol", "Carol Chen")]
        .into_iter()
        .map(|(user_name, display_name)| User {
            id: id(&org.users, user_name).to_string(),
            user_name: user_name.to_string(),
            display_name: display_name.to_string(),
            email: Some(format!("{user_name}@example.com")),
            enabled: true,
        })
        .collect();
    assert_eq!(snap.users, users);

    assert_eq!(snap.groups.len(), 1);
    assert_eq!(
        (snap.groups[0].id.as_str(), snap.groups[0].display_name.as_str()),
        (org.approvers_group_id.as_str(), "approvers")
    );
    assert_eq!(snap.memberships, vec![(org.approvers_group_id.clone(), id(&org.users, "bob").to_string())]);
}

#[tokio::test]
async fn sync_assign_unassign_against_moto() -> Result<()> {
    let moto = Moto::start()?;
    let org = seed_sandbox(&moto.endpoint).await?;
    let connector = Connector::new(&moto_sdk_config(&moto.endpoint));

    let snap = sync(&connector).await?;
    check_seeded_snapshot(&org, &snap);
    assert_eq!(snap.assignments, vec![]);

    let alice_readonly_staging =
        assignment(&org, "Staging", "ReadOnlyAccess", Principal::User(id(&org.users, "alice").to_string()));
    let record = record_of(&alice_readonly_staging);

    connector.assign(&alice_readonly_staging).await?;
    assert_eq!(sync(&connector).await?.assignments, vec![record.clone()]);

    // Again: no second assignment (moto would store a duplicate and then page it forever).
    connector.assign(&alice_readonly_staging).await?;
    let snap = sync(&connector).await?;
    assert_eq!(snap.assignments, vec![record.clone()]);
    check_seeded_snapshot(&org, &snap);

    // A group principal next to it.
    let approvers_admin_production =
        assignment(&org, "Production", "AdministratorAccess", Principal::Group(org.approvers_group_id.clone()));
    connector.assign(&approvers_admin_production).await?;
    let mut both = vec![record.clone(), record_of(&approvers_admin_production)];
    both.sort();
    assert_eq!(sync(&connector).await?.assignments, both);

    connector.unassign(&alice_readonly_staging).await?;
    let after = sync(&connector).await?.assignments;
    assert!(!after.contains(&record), "alice's assignment is gone: {after:?}");
    assert_eq!(after.len(), 1);

    // Already gone: still success.
    connector.unassign(&alice_readonly_staging).await?;
    connector.unassign(&approvers_admin_production).await?;
    assert_eq!(sync(&connector).await?.assignments, vec![]);
    connector.unassign(&approvers_admin_production).await?;
    Ok(())
}

/// A sync whose parts cannot be stored stops with an error that says so, rather than leave holes in what it reports.
#[tokio::test]
async fn a_sync_whose_parts_cannot_be_stored_stops_with_an_error_saying_so() -> Result<()> {
    struct Full;
    impl Sink for Full {
        fn put(&self, part: Part) -> BoxFuture<'_, Result<(), SinkError>> {
            Box::pin(async move {
                match part {
                    Part::Memberships(_) => Err("database or disk is full".into()),
                    _ => Ok(()),
                }
            })
        }
    }
    let moto = Moto::start()?;
    seed_sandbox(&moto.endpoint).await?;
    let connector = Connector::new(&moto_sdk_config(&moto.endpoint));
    let err = connector.sync_into(&NoJournal, &Full).await.expect_err("a sync whose sink fails must fail");
    assert!(matches!(err, ConnectorError::Store(_)), "{err:?}");
    let text = err.to_string();
    assert!(text.contains("database or disk is full") && text.contains("then sync again"), "{text}");
    Ok(())
}

#[tokio::test]
async fn unreachable_endpoint_is_retried_then_a_retryable_transport_error() -> Result<()> {
    let moto = Moto::start()?;
    let endpoint = moto.endpoint.clone();
    drop(moto); // killed: nothing listens on the port any more
    let connector = Connector::new(&moto_sdk_config(&endpoint));
    let err = connector.sync().await.expect_err("sync against a dead endpoint must fail");
    let cone_aws::ConnectorError::GaveUp { last, .. } = &err else {
        panic!("expected the connector to give up retrying, got {err:?}");
    };
    assert!(matches!(**last, cone_aws::ConnectorError::Transport { .. }), "{err:?}");
    assert!(err.is_retryable());
    assert!(err.to_string().contains("AWS_ENDPOINT_URL"), "{err}");
    Ok(())
}

/// The assignments are read by principal while there are fewer users and groups than (account, permission set)
/// pairs, as seeded (4 principals, 4 accounts × 3 permission sets), and by pair once users outnumber the pairs;
/// either way the same records, for one call per principal or per pair.
#[tokio::test]
async fn assignments_read_by_principal_or_by_pair_are_the_same() -> Result<()> {
    let moto = Moto::start()?;
    let org = seed_sandbox(&moto.endpoint).await?;
    let sdk = moto_sdk_config(&moto.endpoint);
    let alice = Principal::User(id(&org.users, "alice").to_string());
    let approvers = Principal::Group(org.approvers_group_id.clone());
    let assigned = [
        assignment(&org, "Staging", "ReadOnlyAccess", alice),
        assignment(&org, "Production", "AdministratorAccess", approvers),
    ];
    for a in &assigned {
        Connector::new(&sdk).assign(a).await?;
    }
    let mut expected: Vec<AssignmentRecord> = assigned.iter().map(record_of).collect();
    expected.sort();
    let calls = |c: &Connector, action: &str| c.calls().get(action).copied().unwrap_or(0);

    let by_principal = Connector::new(&sdk);
    assert_eq!(sync(&by_principal).await?.assignments, expected);
    assert_eq!(calls(&by_principal, "sso:ListAccountAssignmentsForPrincipal"), 4);
    assert_eq!(calls(&by_principal, "sso:ListAccountAssignments"), 0);

    let ids = aws_sdk_identitystore::Client::new(&sdk);
    for i in 0..10 {
        ids.create_user()
            .identity_store_id(&org.identity_store_id)
            .user_name(format!("extra{i}"))
            .display_name(format!("Extra {i}"))
            .name(aws_sdk_identitystore::types::Name::builder().given_name("Extra").family_name(i.to_string()).build())
            .send()
            .await?;
    }
    let by_pair = Connector::new(&sdk);
    assert_eq!(sync(&by_pair).await?.assignments, expected);
    assert_eq!(calls(&by_pair, "sso:ListAccountAssignments"), 12);
    assert_eq!(calls(&by_pair, "sso:ListAccountAssignmentsForPrincipal"), 0);
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
    let err = sync(&connector).await.expect_err("an endless listing must not pass for a normal one");
    assert!(
        matches!(
            err.downcast_ref(),
            Some(cone_aws::ConnectorError::PaginationLoop { operation: "ListAccountAssignmentsForPrincipal", .. })
        ),
        "{err:?}"
    );
    Ok(())
}
