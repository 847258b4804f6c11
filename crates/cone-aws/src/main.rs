//! `cone-aws`: the AWS connector on the command line. Prints the IAM policies the integration role needs,
//! syncs IAM Identity Center (and, on request, IAM and its access keys) into a self-describing SQLite file,
//! lists and compares such files, and provisions users and group memberships (`provision`).
//!
//! Exit status: 0 on success (and for `diff`, when the files hold the same rows), 1 when `diff` finds
//! differences, 2 on any error — as diff(1) does.

mod serve;
mod store;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::builder::BoolishValueParser;
use clap::{Args, Parser, Subcommand, ValueEnum};
use cone_aws::{
    AwsSettings, Change, Connector, DEFAULT_IAM_USER_PATH, DEFAULT_MEMBER_ROLE, Features, NewIdcUser, check_iam_path,
    permissions_policy_for, trust_policy,
};

use store::{JournalFile, SyncFile, SyncInfo, TABLES, Table, Values};

#[derive(Parser)]
#[command(
    name = "cone-aws",
    version,
    about = "Cone's AWS connector: IAM policies, sync to SQLite, list and diff, provision users and memberships"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the least-privilege IAM permissions policy of the integration role for the chosen features
    /// (always: syncing IAM Identity Center).
    Policy {
        /// Also create and delete account assignments (granting and revoking access) and `provision` in the
        /// identity store; with --iam, `provision` in IAM too.
        #[arg(long)]
        provisioning: bool,
        /// Also read account names from AWS Organizations (BATON_GLOBAL_AWS_ORGS_ENABLED); with --iam or
        /// --secrets, also assume the member accounts' role to read their IAM.
        #[arg(long)]
        orgs: bool,
        /// Also allow the IAM sync (`sync --sync-iam`: users, groups, memberships, roles, trust policies, alias).
        #[arg(long)]
        iam: bool,
        /// Also allow the access-key inventory (`sync --sync-secrets`, BATON_SYNC_SECRETS; metadata only).
        #[arg(long)]
        secrets: bool,
        /// Also allow keeping the service control policy that ends revoked role sessions (cone-server's
        /// `aws.revoke_sessions`).
        #[arg(long)]
        revoke_sessions: bool,
        /// The role read in each member account (BATON_IAM_ASSUME_ROLE_NAME); it needs the IAM actions printed
        /// for --iam and --secrets.
        #[arg(long = "iam-assume-role-name", env = "BATON_IAM_ASSUME_ROLE_NAME", default_value = DEFAULT_MEMBER_ROLE)]
        member_role: String,
        /// With --provisioning --iam: the path of the IAM users Cone may create and delete (cone-server's
        /// `aws.account_provisioning.path`, and `provision iam-user create --path`); users elsewhere are only
        /// looked up and added to or removed from groups.
        #[arg(long, default_value = DEFAULT_IAM_USER_PATH, value_parser = iam_path)]
        iam_user_path: String,
    },
    /// Print the trust policy of the integration role: who may assume it, with which External ID.
    TrustPolicy {
        /// ARN of the role or user Cone runs as (or a 12-digit account id).
        #[arg(long)]
        principal: String,
        /// External ID the caller must present.
        #[arg(long, env = "BATON_EXTERNAL_ID", hide_env_values = true)]
        external_id: Option<String>,
    },
    /// Read IAM Identity Center (and Organizations, IAM, access keys as chosen) and write everything to a new
    /// SQLite file.
    Sync {
        /// The file to write; replaced if it exists.
        #[arg(long, value_name = "FILE.sqlite")]
        out: PathBuf,
        /// Also print, on stdout, the AWS calls made by IAM action (each page and retry counted) as one JSON object.
        #[arg(long)]
        stats: bool,
        /// Read everything from AWS, ignoring what an interrupted sync into the same file recorded in FILE.journal
        /// (by default a sync resumes from it, taking what was recorded in the last 30 minutes).
        #[arg(long)]
        fresh: bool,
        #[command(flatten)]
        aws: AwsSettings,
    },
    /// Print one table of a sync file as tab-separated values, with a header line.
    List {
        file: PathBuf,
        #[arg(value_enum, default_value_t = Kind::Accounts)]
        table: Kind,
    },
    /// Print the rows added and removed per table between two sync files; exit 1 if there are any.
    Diff { old: PathBuf, new: PathBuf },
    /// Run as a service: take syncs and AWS calls from a cone-server (`aws.connector: external`) by long poll, with
    /// the credentials an administrator issued, until SIGTERM. Holds the AWS credentials; the server needs none.
    Serve(serve::Serve),
    /// Create and delete users and group memberships in the identity store or IAM. Each change is idempotent:
    /// what is already as asked is reported and left alone. Needs BATON_PROVISIONING.
    Provision {
        #[command(flatten)]
        provisioning: Provisioning,
        #[command(flatten)]
        aws: AwsSettings,
        #[command(subcommand)]
        what: Provision,
    },
}

/// `--provisioning` / `BATON_PROVISIONING`, as `provision` and `serve` take it.
#[derive(Args)]
pub struct Provisioning {
    /// Allow changes to AWS, as baton-aws's setting of the same name does; without it, nothing is changed (`serve`
    /// still syncs, and refuses the server's writes saying why). `--provisioning` alone is `--provisioning=true`.
    #[arg(
        long,
        env = "BATON_PROVISIONING",
        default_value = "false",
        num_args = 0..=1,
        require_equals = true,
        default_missing_value = "true",
        value_parser = BoolishValueParser::new()
    )]
    pub provisioning: bool,
}

#[derive(Subcommand)]
enum Provision {
    /// Membership of an IAM Identity Center (identity-store) group.
    IdcGroupMember {
        #[command(subcommand)]
        action: Membership,
    },
    /// Membership of an IAM group.
    IamGroupMember {
        #[command(subcommand)]
        action: Membership,
    },
    /// An IAM Identity Center (identity-store) user.
    IdcUser {
        #[command(subcommand)]
        action: IdcUser,
    },
    /// An IAM user.
    IamUser {
        #[command(subcommand)]
        action: IamUser,
    },
}

#[derive(Subcommand)]
enum Membership {
    /// Make the user a member of the group.
    Add(Member),
    /// End the user's membership of the group.
    Remove(Member),
}

#[derive(Args)]
struct Member {
    /// The group's name (display name in Identity Center) or id.
    #[arg(long)]
    group: String,
    /// The user's name (user name in Identity Center) or id.
    #[arg(long)]
    user: String,
}

#[derive(Subcommand)]
enum IdcUser {
    /// Create the user, unless one with this user name exists.
    Create {
        user_name: String,
        #[arg(long)]
        display_name: String,
        #[arg(long)]
        given_name: String,
        #[arg(long)]
        family_name: String,
        /// Work email, recorded as the primary one.
        #[arg(long)]
        email: Option<String>,
    },
    /// Delete the user (by user name or id) and its group memberships.
    Delete { user: String },
}

#[derive(Subcommand)]
enum IamUser {
    /// Create the user, unless it exists; tags are set either way.
    Create {
        name: String,
        /// The user's path; `cone-aws policy --provisioning --iam` allows creating users under /cone/ only,
        /// unless given another `--iam-user-path`.
        #[arg(long, default_value = DEFAULT_IAM_USER_PATH, value_parser = iam_path)]
        path: String,
        /// A tag to set, as KEY=VALUE; repeatable.
        #[arg(long = "tag", value_name = "KEY=VALUE", value_parser = parse_tag)]
        tags: Vec<(String, String)>,
    },
    /// Delete the user with its password, keys, certificates, MFA devices, credentials, policies and memberships.
    Delete { name: String },
}

/// The tables `list` shows, in the file's order.
#[derive(Clone, Copy, ValueEnum)]
enum Kind {
    Accounts,
    PermissionSets,
    Users,
    Groups,
    Memberships,
    Entitlements,
    Assignments,
    AccountAliases,
    IamUsers,
    IamGroups,
    IamGroupMembers,
    IamRoles,
    IamRoleTrusts,
    AccessKeys,
    IamSkippedAccounts,
}

impl Kind {
    fn table(self) -> &'static Table {
        &TABLES[self as usize]
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn")),
        )
        .init();
    match run(Cli::parse().command).await {
        Ok(code) => code,
        Err(e) => {
            eprintln!("cone-aws: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(command: Command) -> Result<ExitCode> {
    match command {
        Command::Policy { provisioning, orgs, iam, secrets, revoke_sessions, member_role, iam_user_path } => {
            let features = Features { provisioning, organizations: orgs, iam, secrets, revoke_sessions };
            let policy = permissions_policy_for(&features, &member_role, &iam_user_path);
            println!("{}", serde_json::to_string_pretty(&policy)?);
        }
        Command::TrustPolicy { principal, external_id } => {
            let policy = trust_policy(&principal, external_id.as_deref()).map_err(anyhow::Error::msg)?;
            println!("{}", serde_json::to_string_pretty(&policy)?);
        }
        Command::Sync { out, stats, fresh, aws } => sync(&out, stats, fresh, &aws).await?,
        Command::List { file, table } => {
            let table = table.table();
            let rows = SyncFile::open(&file).await?.rows(table).await?;
            println!("{}", table.column_names().collect::<Vec<_>>().join("\t"));
            for row in rows {
                println!("{}", tsv(&row));
            }
        }
        Command::Diff { old, new } => return diff(&old, &new).await,
        Command::Serve(args) => serve::serve(args).await?,
        Command::Provision { provisioning, aws, what } => {
            if !provisioning.provisioning {
                anyhow::bail!(
                    "provisioning is not enabled, so nothing was changed. Set BATON_PROVISIONING=true (or pass \
                     --provisioning) to let cone-aws change AWS; the role then needs `cone-aws policy --provisioning \
                     --iam`'s actions"
                );
            }
            let connector = aws.connect().await.context("cannot connect to AWS")?;
            println!("{}", provision(&connector, what).await?);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Makes the change and says what happened, or that there was nothing to do.
async fn provision(connector: &Connector, what: Provision) -> Result<String> {
    let (change, done, found) = match what {
        Provision::IdcGroupMember { action } => {
            let store = connector.identity_store_id().await?;
            match action {
                Membership::Add(m) => (
                    connector.add_idc_group_member(&store, &m.group, &m.user).await?,
                    format!("added {} to Identity Center group {}", m.user, m.group),
                    format!("{} is already in Identity Center group {}", m.user, m.group),
                ),
                Membership::Remove(m) => (
                    connector.remove_idc_group_member(&store, &m.group, &m.user).await?,
                    format!("removed {} from Identity Center group {}", m.user, m.group),
                    format!("{} is not in Identity Center group {}", m.user, m.group),
                ),
            }
        }
        Provision::IamGroupMember { action } => match action {
            Membership::Add(m) => (
                connector.add_iam_group_member(&m.group, &m.user).await?,
                format!("added {} to IAM group {}", m.user, m.group),
                format!("{} is already in IAM group {}", m.user, m.group),
            ),
            Membership::Remove(m) => (
                connector.remove_iam_group_member(&m.group, &m.user).await?,
                format!("removed {} from IAM group {}", m.user, m.group),
                format!("{} is not in IAM group {}", m.user, m.group),
            ),
        },
        Provision::IdcUser { action } => {
            let store = connector.identity_store_id().await?;
            match action {
                IdcUser::Create { user_name, display_name, given_name, family_name, email } => {
                    let user = NewIdcUser { user_name, display_name, given_name, family_name, email };
                    (
                        connector.create_idc_user(&store, &user).await?,
                        format!("created Identity Center user {}", user.user_name),
                        format!("Identity Center user {} already exists", user.user_name),
                    )
                }
                IdcUser::Delete { user } => (
                    connector.delete_idc_user(&store, &user).await?,
                    format!("deleted Identity Center user {user}"),
                    format!("Identity Center user {user} does not exist"),
                ),
            }
        }
        Provision::IamUser { action } => match action {
            IamUser::Create { name, path, tags } => (
                connector.create_iam_user(&name, &path, &tags).await?,
                format!("created IAM user {name}"),
                format!("IAM user {name} already exists"),
            ),
            IamUser::Delete { name } => (
                connector.delete_iam_user(&name).await?,
                format!("deleted IAM user {name}"),
                format!("IAM user {name} does not exist"),
            ),
        },
    };
    Ok(match change {
        Change::Made => done,
        Change::AlreadyInPlace => format!("{found}; nothing to do"),
    })
}

fn iam_path(text: &str) -> Result<String, String> {
    check_iam_path(text).map(|()| text.to_string())
}

/// `KEY=VALUE`, the key not empty.
fn parse_tag(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.is_empty() => Ok((key.to_string(), value.to_string())),
        _ => Err(format!("`{text}` is not a tag; write KEY=VALUE, e.g. --tag email=alice@example.com")),
    }
}

async fn sync(out: &Path, stats: bool, fresh: bool, aws: &AwsSettings) -> Result<()> {
    let connector = aws.connect().await.context("cannot connect to AWS")?;
    let started = chrono::Utc::now();
    let journal = JournalFile::open(out, fresh).await?;
    let features = Features {
        iam: aws.sync_iam,
        secrets: aws.sync_secrets,
        organizations: aws.orgs_enabled,
        ..Features::default()
    };
    let spool = journal.spool().await?;
    // Different APIs with their own rate limits: read both at once.
    let (synced, ()) =
        tokio::try_join!(connector.sync_into(journal.journal(), &spool), connector.sync_iam_into(&features, &spool))
            .context("the sync failed; nothing was written (run it again to resume where it stopped)")?;
    // What was taken from the journal was read then, so the file is as of then.
    let synced_at = match synced.resumed {
        Some(r) => chrono::DateTime::from_timestamp(r.oldest, 0).map_or(started, |oldest| oldest.min(started)),
        None => started,
    };
    if let Some(r) = synced.resumed {
        eprintln!(
            "resumed an interrupted sync: {} unit(s) taken from {}, {} read from AWS",
            r.units,
            out.with_extension("journal").display(),
            r.read
        );
    }
    let info = SyncInfo {
        synced_at,
        sso_region: &aws.sso_region,
        organizations: aws.orgs_enabled,
        iam: aws.sync_iam,
        secrets: aws.sync_secrets,
    };
    let counts = store::write(out, &synced, spool.parts(None), &info).await?;
    journal.remove().await?;
    let summary: Vec<String> = counts.iter().map(|(table, n)| format!("{n} {table}")).collect();
    let calls = connector.calls();
    let total: u64 = calls.values().sum();
    eprintln!("wrote {}: {}; {total} AWS calls", out.display(), summary.join(", "));
    let skipped = SyncFile::open(out).await?.rows(Kind::IamSkippedAccounts.table()).await?;
    if !skipped.is_empty() {
        let ids: Vec<&str> = skipped.iter().filter_map(|row| row.first()?.as_deref()).collect();
        eprintln!("IAM not read in {} member account(s) (see iam_skipped_accounts): {}", ids.len(), ids.join(", "));
    }
    if stats {
        let resumed = synced.resumed.map(|r| serde_json::json!({ "units": r.units, "read": r.read }));
        println!("{}", serde_json::json!({ "calls": calls, "resumed": resumed }));
    }
    Ok(())
}

async fn diff(old: &Path, new: &Path) -> Result<ExitCode> {
    let mut before = SyncFile::open(old).await?;
    let mut after = SyncFile::open(new).await?;
    let (a, b) = (before.meta("instance_arn").await?, after.meta("instance_arn").await?);
    if a != b {
        eprintln!("cone-aws: note: the files come from different IAM Identity Center instances ({a} and {b})");
    }
    for (key, what) in [("iam", "IAM"), ("secrets", "access keys")] {
        let (a, b) = (before.meta(key).await?, after.meta(key).await?);
        if a != b {
            eprintln!(
                "cone-aws: note: {what} was read for one file only ({key} = {a} and {b}), so its tables differ \
                 by everything; sync both with the same --sync-{key}"
            );
        }
    }
    let mut differ = false;
    for table in &TABLES {
        let old_rows: BTreeSet<Values> = before.rows(table).await?.into_iter().collect();
        let new_rows: BTreeSet<Values> = after.rows(table).await?.into_iter().collect();
        let removed: Vec<&Values> = old_rows.difference(&new_rows).collect();
        let added: Vec<&Values> = new_rows.difference(&old_rows).collect();
        if removed.is_empty() && added.is_empty() {
            continue;
        }
        differ = true;
        println!("--- {}: {} added, {} removed", table.name, added.len(), removed.len());
        for row in removed {
            println!("- {}", tsv(row));
        }
        for row in added {
            println!("+ {}", tsv(row));
        }
    }
    Ok(if differ { ExitCode::from(1) } else { ExitCode::SUCCESS })
}

/// A row as tab-separated text; NULL is empty.
fn tsv(row: &Values) -> String {
    row.iter().map(|v| v.as_deref().unwrap_or("")).collect::<Vec<_>>().join("\t")
}
