//! The `cone-aws` binary against moto: sync, change an assignment through the SDK, sync again, then list
//! and diff the two files; and the policy printers and the errors people see.

use std::path::Path;
use std::process::{Command, Output};

use anyhow::{Context, Result};
use aws_sdk_ssoadmin::types::{PrincipalType, TargetType};
use cone_testkit::{Moto, moto_sdk_config, seed_sandbox, target_bin};

/// Runs `cone-aws` with `args` against `moto` (no moto: no AWS environment at all).
fn cone_aws(moto: Option<&Moto>, args: &[&str]) -> Result<Output> {
    let mut cmd = Command::new(target_bin("cone-aws")?);
    cmd.args(args);
    for var in ["BATON_ROLE_ARN", "BATON_EXTERNAL_ID", "BATON_GLOBAL_AWS_ORGS_ENABLED", "BATON_GLOBAL_AWS_SSO_REGION"] {
        cmd.env_remove(var);
    }
    if let Some(moto) = moto {
        cmd.envs(moto.aws_env());
    }
    cmd.output().context("running cone-aws")
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

#[tokio::test]
async fn sync_without_organizations_knows_accounts_from_identity_center_only() -> Result<()> {
    let moto = Moto::start()?;
    let org = seed_sandbox(&moto.endpoint).await?;
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("no-orgs.sqlite");
    ok(cone_aws(Some(&moto), &["sync", "--out", path(&file), "--global-aws-orgs-enabled", "false"])?);
    // moto 5.2.1 answers ListAccountsForProvisionedPermissionSet with the caller's own account only.
    let accounts = stdout(&ok(cone_aws(None, &["list", path(&file)])?));
    let id = &org.management_account_id;
    assert_eq!(accounts, format!("id\tname\temail\tstatus\n{id}\t{id}\t\tUNKNOWN\n"));
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
