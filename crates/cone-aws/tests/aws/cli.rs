//! The `cone-aws` binary against moto: sync, change an assignment (or IAM) through the SDK, sync again, then
//! list and diff the two files; provision users and memberships; and the policy printers and the errors people
//! see.

use crate::common;

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result};
use aws_sdk_iam::types::StatusType;
use aws_sdk_ssoadmin::types::{PrincipalType, TargetType};
use common::{ALIAS, seed_iam};
use cone_testkit::{Moto, moto_sdk_config, seed_sandbox, target_bin};
use sqlx::{Connection, SqliteConnection};

/// Runs `cone-aws` with `args` against `moto` (no moto: no AWS environment at all).
fn cone_aws(moto: Option<&Moto>, args: &[&str]) -> Result<Output> {
    command(moto, args)?.output().context("running cone-aws")
}

/// `cone-aws` with `args` against `moto`, none of the connector's variables inherited.
fn command(moto: Option<&Moto>, args: &[&str]) -> Result<Command> {
    let mut cmd = Command::new(target_bin("cone-aws")?);
    cmd.args(args);
    for var in [
        "BATON_ROLE_ARN",
        "BATON_EXTERNAL_ID",
        "BATON_GLOBAL_AWS_ORGS_ENABLED",
        "BATON_GLOBAL_AWS_SSO_REGION",
        "BATON_SYNC_SECRETS",
        "BATON_PROVISIONING",
        "CONE_AWS_SYNC_IAM",
    ] {
        cmd.env_remove(var);
    }
    if let Some(moto) = moto {
        cmd.envs(moto.aws_env());
    }
    Ok(cmd)
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

fn ok(out: Output) -> Output {
    assert_eq!(out.status.code(), Some(0), "stdout: {}\nstderr: {}", stdout(&out), stderr(&out));
    out
}

fn path(p: &Path) -> &str {
    p.to_str().expect("temporary paths are UTF-8")
}

#[tokio::test]
async fn sync_list_and_diff_around_a_new_assignment() -> Result<()> {
    let moto = Moto::start()?;
    let org = seed_sandbox(&moto.endpoint).await?;
    let dir = tempfile::tempdir()?;
    let (before, after) = (dir.path().join("before.sqlite"), dir.path().join("after.sqlite"));

    // Through an assumed role with an External ID, as a deployment would (moto maps the role's account,
    // the management account here, to the same organisation).
    let role = format!("arn:aws:iam::{}:role/ConeIntegration", org.management_account_id);
    let assume = ["--role-arn", role.as_str(), "--external-id", "cone-test-external-id"];
    let sync = |out: &Path| {
        let mut args = vec!["sync", "--out", path(out)];
        args.extend(assume);
        cone_aws(Some(&moto), &args)
    };
    let out = ok(sync(&before)?);
    assert!(stderr(&out).contains("4 accounts, 3 permission_sets, 3 users, 1 groups"), "{}", stderr(&out));

    let accounts = stdout(&ok(cone_aws(None, &["list", path(&before), "accounts"])?));
    let mut lines = accounts.lines();
    assert_eq!(lines.next(), Some("id\tname\temail\tstatus"));
    let staging = org.account_id("Staging").context("seeded")?;
    assert!(accounts.contains(&format!("{staging}\tStaging\tstaging@example.com\tACTIVE")), "{accounts}");
    assert_eq!(lines.count(), 4);
    let assignments = stdout(&ok(cone_aws(None, &["list", path(&before), "assignments"])?));
    assert_eq!(assignments, "account_id\tpermission_set_arn\tprincipal_type\tprincipal_id\n");
    let entitlements = stdout(&ok(cone_aws(None, &["list", path(&before), "entitlements"])?));
    assert_eq!(entitlements.lines().count(), 1 + 4 * 3, "accounts × permission sets: {entitlements}");

    // The change, made through the SDK as an administrator would.
    let read_only = org.permission_set_arn("ReadOnlyAccess").context("seeded")?;
    let alice = org.user_id("alice").context("seeded")?;
    aws_sdk_ssoadmin::Client::new(&moto_sdk_config(&moto.endpoint))
        .create_account_assignment()
        .instance_arn(&org.instance_arn)
        .target_id(staging)
        .target_type(TargetType::AwsAccount)
        .permission_set_arn(read_only)
        .principal_type(PrincipalType::User)
        .principal_id(alice)
        .send()
        .await?;
    ok(sync(&after)?);

    let row = format!("{staging}\t{read_only}\tUSER\t{alice}");
    let listed = stdout(&ok(cone_aws(None, &["list", path(&after), "assignments"])?));
    assert!(listed.ends_with(&format!("\n{row}\n")), "{listed}");

    let diff = cone_aws(None, &["diff", path(&before), path(&after)])?;
    assert_eq!(diff.status.code(), Some(1), "different files exit 1: {}", stderr(&diff));
    assert_eq!(stdout(&diff), format!("--- assignments: 1 added, 0 removed\n+ {row}\n"));
    let reverse = cone_aws(None, &["diff", path(&after), path(&before)])?;
    assert_eq!(reverse.status.code(), Some(1));
    assert_eq!(stdout(&reverse), format!("--- assignments: 0 added, 1 removed\n- {row}\n"));
    let same = ok(cone_aws(None, &["diff", path(&after), path(&after)])?);
    assert_eq!(stdout(&same), "", "identical files print nothing and exit 0");
    Ok(())
}

/// `cone-aws list FILE TABLE`, checked to succeed.
fn list(file: &Path, table: &str) -> Result<String> {
    Ok(stdout(&ok(cone_aws(None, &["list", path(file), table])?)))
}

/// A header and rows as `list` prints them.
fn tsv(header: &str, rows: &[Vec<&str>]) -> String {
    rows.iter().fold(format!("{header}\n"), |text, row| text + &row.join("\t") + "\n")
}

#[tokio::test]
async fn iam_tables_list_and_diff_and_hold_no_secret_key() -> Result<()> {
    let moto = Moto::start()?;
    let org = seed_sandbox(&moto.endpoint).await?;
    // Every IAM row names its account: here the management account, the member accounts having no IAM in moto.
    let acct = org.management_account_id.as_str();
    let seed = seed_iam(&moto.endpoint).await?;
    let dir = tempfile::tempdir()?;
    let (before, after) = (dir.path().join("before.sqlite"), dir.path().join("after.sqlite"));
    let sync = |out: &Path| {
        // Secrets through baton-aws's variable, as a baton-aws deployment sets it; IAM by flag. The connector's
        // account only: moto gives each member account an OrganizationAccountAccessRole, which would be listed too.
        command(Some(&moto), &["sync", "--out", path(out), "--sync-iam", "true"])?
            .env("BATON_SYNC_SECRETS", "1")
            .env("BATON_GLOBAL_AWS_ORGS_ENABLED", "false")
            .output()
            .context("running cone-aws")
    };
    let out = ok(sync(&before)?);
    assert!(
        stderr(&out).contains(
            "1 account_aliases, 3 iam_users, 3 iam_groups, 3 iam_group_members, 2 iam_roles, 4 iam_role_trusts, \
             3 access_keys"
        ),
        "{}",
        stderr(&out)
    );
    // Metadata only: no secret access key in the file, byte for byte, nor in what the sync printed.
    let bytes = std::fs::read(&before)?;
    for secret in &seed.secrets {
        assert!(!bytes.windows(secret.len()).any(|w| w == secret.as_bytes()), "a secret access key is in the file");
        assert!(!stderr(&out).contains(secret.as_str()) && !stdout(&out).contains(secret.as_str()));
    }
    assert!(!list(&before, "accounts")?.contains(&seed.closed_account), "a SUSPENDED account is not synced");

    assert_eq!(list(&before, "account-aliases")?, format!("account_id\talias\n{acct}\t{ALIAS}\n"));
    let users: Vec<Vec<&str>> =
        seed.users.iter().map(|u| vec![acct, u.arn.as_str(), &u.id, &u.name, &u.created, ""]).collect();
    assert_eq!(list(&before, "iam-users")?, tsv("account_id\tarn\tid\tname\tcreated\tpassword_last_used", &users));
    let groups: Vec<Vec<&str>> =
        seed.groups.iter().map(|g| vec![acct, g.arn.as_str(), &g.id, &g.name, &g.created]).collect();
    assert_eq!(list(&before, "iam-groups")?, tsv("account_id\tarn\tid\tname\tcreated", &groups));
    let (alice, bob, carol) = (&seed.user("alice").arn, &seed.user("bob").arn, &seed.user("carol").arn);
    let (auditors, devs, ops) = (&seed.group("auditors").arn, &seed.group("devs").arn, &seed.group("ops").arn);
    let mut members = vec![vec![acct, devs.as_str(), alice], vec![acct, devs, bob], vec![acct, ops, bob]];
    members.sort();
    assert_eq!(list(&before, "iam-group-members")?, tsv("account_id\tgroup_arn\tuser_arn", &members));
    let roles: Vec<Vec<&str>> =
        seed.roles.iter().map(|r| vec![acct, r.arn.as_str(), &r.id, &r.name, &r.created, ""]).collect();
    assert_eq!(list(&before, "iam-roles")?, tsv("account_id\tarn\tid\tname\tcreated\tlast_used", &roles));
    let (deploy, okta) = (seed.role("deploy").arn.as_str(), seed.role("okta-admins").arn.as_str());
    let okta_trust = vec![acct, okta, "Federated", "arn:aws:iam::123456789012:saml-provider/Okta"];
    assert_eq!(
        list(&before, "iam-role-trusts")?,
        tsv(
            "account_id\trole_arn\tprincipal_kind\tprincipal",
            &[
                vec![acct, deploy, "AWS", "arn:aws:iam::111122223333:root"],
                vec![acct, deploy, "Service", "ecs-tasks.amazonaws.com"],
                vec![acct, deploy, "Service", "lambda.amazonaws.com"],
                okta_trust.clone(),
            ]
        )
    );
    let keys = list(&before, "access-keys")?;
    let mut lines = keys.lines();
    assert_eq!(
        lines.next(),
        Some("account_id\tid\tuser_arn\tstatus\tcreated\tlast_used\tlast_used_service\tlast_used_region")
    );
    let row = |k: &common::SeedKey, status: &str| {
        format!("{acct}\t{}\t{}\t{status}\t{}", k.id, seed.user(&k.user).arn, k.created)
    };
    let (used, inactive, bobs) = (seed.key("alice", 0), seed.key("alice", 1), seed.key("bob", 0));
    let mut rows: Vec<&str> = lines.collect();
    rows.sort_by_key(|r| !r.starts_with(&format!("{acct}\t{}", used.id)));
    assert!(rows[0].starts_with(&format!("{}\t", row(used, "Active"))), "{keys}");
    assert!(rows[0].ends_with("Z\tiam\tus-east-1"), "used once against IAM: {keys}");
    assert!(rows.contains(&format!("{}\t\t\t", row(inactive, "Inactive")).as_str()), "never used: {keys}");
    assert!(rows.contains(&format!("{}\t\t\t", row(bobs, "Active")).as_str()), "{keys}");
    assert_eq!(rows.len(), 3);

    // Changes an administrator makes: carol joins the auditors, bob's key is deactivated, the SAML role goes.
    let iam = aws_sdk_iam::Client::new(&moto_sdk_config(&moto.endpoint));
    iam.add_user_to_group().group_name("auditors").user_name("carol").send().await?;
    iam.update_access_key().user_name("bob").access_key_id(&bobs.id).status(StatusType::Inactive).send().await?;
    iam.delete_role().role_name("okta-admins").send().await?;
    ok(sync(&after)?);

    let diff = cone_aws(None, &["diff", path(&before), path(&after)])?;
    assert_eq!(diff.status.code(), Some(1), "{}", stderr(&diff));
    let okta_role = seed.role("okta-admins");
    assert_eq!(
        stdout(&diff),
        format!(
            "--- iam_group_members: 1 added, 0 removed\n+ {acct}\t{auditors}\t{carol}\n\
             --- iam_roles: 0 added, 1 removed\n- {acct}\t{okta}\t{}\tokta-admins\t{}\t\n\
             --- iam_role_trusts: 0 added, 1 removed\n- {}\n\
             --- access_keys: 1 added, 1 removed\n- {}\t\t\t\n+ {}\t\t\t\n",
            okta_role.id,
            okta_role.created,
            okta_trust.join("\t"),
            row(bobs, "Active"),
            row(bobs, "Inactive"),
        )
    );

    // A file synced without IAM differs by all of it, and diff says why.
    let without = dir.path().join("without.sqlite");
    ok(cone_aws(Some(&moto), &["sync", "--out", path(&without)])?);
    let diff = cone_aws(None, &["diff", path(&after), path(&without)])?;
    assert_eq!(diff.status.code(), Some(1));
    assert!(stderr(&diff).contains("IAM was read for one file only (iam = true and false)"), "{}", stderr(&diff));
    assert!(stdout(&diff).contains("--- iam_users: 0 added, 3 removed"), "{}", stdout(&diff));
    Ok(())
}

#[tokio::test]
async fn sync_without_organizations_knows_accounts_from_identity_center_only() -> Result<()> {
    let moto = Moto::start()?;
    let org = seed_sandbox(&moto.endpoint).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("no-orgs.sqlite");
    let out =
        ok(cone_aws(Some(&moto), &["sync", "--out", path(&file), "--global-aws-orgs-enabled", "false", "--stats"])?);
    // --stats: the calls by action, as JSON on stdout; Organizations was not asked.
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(stats["calls"]["sso:ListInstances"], 1, "{stats}");
    assert!(stats["calls"].get("organizations:ListAccounts").is_none(), "{stats}");
    // moto 5.2.1 answers ListAccountsForProvisionedPermissionSet with the caller's own account only.
    let accounts = stdout(&ok(cone_aws(None, &["list", path(&file)])?));
    let id = &org.management_account_id;
    assert_eq!(accounts, format!("id\tname\temail\tstatus\n{id}\t{id}\t\tUNKNOWN\n"));
    Ok(())
}

#[tokio::test]
async fn a_sync_killed_part_way_resumes_from_its_journal_and_writes_what_a_fresh_sync_writes() -> Result<()> {
    let moto = Moto::start()?;
    seed_sandbox(&moto.endpoint).await?;
    let dir = tempfile::tempdir()?;
    // A name sqlx would misread as a URL, unescaped.
    let (file, fresh) = (dir.path().join("org #1?%20.sqlite"), dir.path().join("fresh.sqlite"));
    let journal = dir.path().join("org #1?%20.journal");

    // Slowed to 3 Identity Center calls a second, so that it is still running when killed.
    let mut slow = command(Some(&moto), &["sync", "--out", path(&file), "--sso-rate", "3"])?.spawn()?;
    let mut recorded = 0;
    for _ in 0..600 {
        if journal.exists() {
            let options = sqlx::sqlite::SqliteConnectOptions::new().filename(&journal).read_only(true);
            let mut conn = SqliteConnection::connect_with(&options).await?;
            // The file exists a moment before its table does.
            let count = sqlx::query_as("SELECT count(*) FROM journal").fetch_one(&mut conn).await;
            conn.close().await?;
            recorded = count.map_or(0, |(n,): (i64,)| n);
        }
        if recorded >= 6 || slow.try_wait()?.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(slow.try_wait()?.is_none(), "the slowed sync finished before it could be killed");
    slow.kill()?;
    slow.wait()?;
    assert!(recorded >= 6, "the killed sync recorded {recorded} unit(s)");
    assert!(!file.exists(), "a killed sync writes no file");

    let out = ok(cone_aws(Some(&moto), &["sync", "--out", path(&file), "--stats"])?);
    let stats: serde_json::Value = serde_json::from_slice(&out.stdout)?;
    let taken = stats["resumed"]["units"].as_i64().with_context(|| format!("not resumed: {stats}"))?;
    assert!(taken >= recorded, "{taken} unit(s) taken of {recorded} recorded: {stats}");
    assert!(stderr(&out).contains("resumed an interrupted sync"), "{}", stderr(&out));
    assert!(!journal.exists(), "the journal is removed once the file is written");

    ok(cone_aws(Some(&moto), &["sync", "--out", path(&fresh), "--fresh"])?);
    let diff = ok(cone_aws(None, &["diff", path(&fresh), path(&file)])?);
    assert!(stdout(&diff).is_empty(), "{}", stdout(&diff));
    Ok(())
}

#[test]
fn policies_print_as_json() -> Result<()> {
    let policy: serde_json::Value =
        serde_json::from_slice(&ok(cone_aws(None, &["policy", "--provisioning", "--orgs"])?).stdout)?;
    let text = policy.to_string();
    for action in ["sso:ListInstances", "sso:CreateAccountAssignment", "organizations:ListAccounts"] {
        assert!(text.contains(action), "{action} missing: {text}");
    }
    assert!(!text.contains("iam:ListAccessKeys"), "secrets were not asked for");
    let args = ["policy", "--provisioning", "--iam", "--iam-user-path", "/jit/"];
    let scoped = String::from_utf8(ok(cone_aws(None, &args)?).stdout)?;
    assert!(scoped.contains("arn:aws:iam::*:user/jit/*"), "{scoped}");
    let wide = cone_aws(None, &["policy", "--provisioning", "--iam", "--iam-user-path", "/*/"])?;
    assert_eq!(wide.status.code(), Some(2), "a path that widens the policy is refused");
    assert!(stderr(&wide).contains("without `*` or `?`"), "{}", stderr(&wide));

    let trust: serde_json::Value = serde_json::from_slice(
        &ok(cone_aws(
            None,
            &["trust-policy", "--principal", "arn:aws:iam::111122223333:role/cone-server", "--external-id", "ext-1234"],
        )?)
        .stdout,
    )?;
    assert_eq!(trust["Statement"][0]["Condition"]["StringEquals"]["sts:ExternalId"], "ext-1234");
    Ok(())
}

#[test]
fn errors_say_what_to_do_and_exit_2() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let missing = dir.path().join("missing.sqlite");
    let out = cone_aws(None, &["list", path(&missing), "users"])?;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("cone-aws sync --out FILE"), "{}", stderr(&out));

    let out = cone_aws(None, &["trust-policy", "--principal", "cone-server"])?;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("ARN of the role or user Cone runs as"), "{}", stderr(&out));

    let out = cone_aws(None, &["sync", "--out", path(&missing), "--role-arn", "ConeIntegration"])?;
    assert_eq!(out.status.code(), Some(2), "clap's usage errors exit 2 too");
    assert!(stderr(&out).contains("is not an IAM role ARN"), "{}", stderr(&out));
    assert!(!missing.exists());
    Ok(())
}

#[tokio::test]
async fn provision_refuses_unless_enabled_then_changes_aws_once() -> Result<()> {
    let moto = Moto::start()?;
    let org = seed_sandbox(&moto.endpoint).await?;
    let iam = aws_sdk_iam::Client::new(&moto_sdk_config(&moto.endpoint));
    let create = ["provision", "iam-user", "create", "erin", "--tag", "email=erin@example.com"];

    let out = cone_aws(Some(&moto), &create)?;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("provisioning is not enabled") && stderr(&out).contains("BATON_PROVISIONING"));
    assert!(iam.get_user().user_name("erin").send().await.is_err(), "nothing was made");

    // Enabled as a baton-aws deployment does, through the environment.
    let enabled = |args: &[&str]| -> Result<String> {
        let out = command(Some(&moto), args)?.env("BATON_PROVISIONING", "true").output()?;
        Ok(stdout(&ok(out)))
    };
    assert_eq!(enabled(&create)?, "created IAM user erin\n");
    assert_eq!(enabled(&create)?, "IAM user erin already exists; nothing to do\n");
    let tags = iam.list_user_tags().user_name("erin").send().await?.tags;
    assert_eq!(tags.first().map(|t| (t.key.as_str(), t.value.as_str())), Some(("email", "erin@example.com")));

    let join = ["provision", "idc-group-member", "add", "--group", "approvers", "--user", "alice"];
    assert_eq!(enabled(&join)?, "added alice to Identity Center group approvers\n");
    assert_eq!(enabled(&join)?, "alice is already in Identity Center group approvers; nothing to do\n");
    let members = aws_sdk_identitystore::Client::new(&moto_sdk_config(&moto.endpoint))
        .list_group_memberships()
        .identity_store_id(&org.identity_store_id)
        .group_id(&org.approvers_group_id)
        .send()
        .await?
        .group_memberships;
    let alice = org.user_id("alice").context("seeded")?;
    let alice_in = members
        .iter()
        .filter(|m| m.member_id.as_ref().and_then(|m| m.as_user_id().ok()) == Some(&alice.to_string()))
        .count();
    assert_eq!(alice_in, 1);

    // The flag form, and an unknown group named in the error.
    let out = cone_aws(
        Some(&moto),
        &["provision", "--provisioning", "iam-group-member", "add", "--group", "devs", "--user", "erin"],
    )?;
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("IAM group `devs` does not exist"), "{}", stderr(&out));
    let deleted = ok(cone_aws(Some(&moto), &["provision", "--provisioning", "iam-user", "delete", "erin"])?);
    assert_eq!(stdout(&deleted), "deleted IAM user erin\n");
    assert!(iam.get_user().user_name("erin").send().await.is_err(), "erin is gone");
    Ok(())
}
