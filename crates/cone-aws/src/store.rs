//! The sync file: one snapshot in a self-describing SQLite database that any SQLite client can read.
//!
//! Format version 4: a `meta` table of key/value text (format, format_version, synced_at, instance_arn,
//! identity_store_id, sso_region, organizations, iam, secrets) and one table per kind of record, all values
//! text except `entitlements.provisioned` (0 or 1). Every IAM row names its account (`account_id`), and
//! `iam_skipped_accounts` lists the member accounts whose IAM could not be read. Version 3 had no user status,
//! version 2 read the connector's account only and had no account columns, version 1 lacked the IAM tables and the
//! iam and secrets keys.

use std::collections::HashSet;
use std::path::Path;

use anyhow::{Context, Result, bail};
use cone_aws::journal::SqlJournal;
use cone_aws::{IamSnapshot, Part, PartStream, Principal, SqlSpool, Synced, arn_account};
use futures_util::StreamExt;
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use sqlx::any::AnyPoolOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode};
use sqlx::{AnyPool, Connection, Executor, QueryBuilder, Row, Sqlite, SqliteConnection};

const FORMAT: &str = "cone-aws-sync";
const FORMAT_VERSION: u32 = 4;

/// A table of the file: its name (also the `list` argument, with `-` for `_`), columns, and key.
pub struct Table {
    pub name: &'static str,
    pub columns: &'static [Column],
    key: &'static str,
}

/// A column: its name and what it holds.
pub struct Column(pub &'static str, Kind);

#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Text,
    OptionalText,
    /// 0 or 1.
    Flag,
}

use Kind::{Flag, OptionalText, Text};

impl Table {
    fn create(&self) -> String {
        let columns: Vec<String> = self
            .columns
            .iter()
            .map(|Column(c, kind)| match kind {
                Text => format!("\"{c}\" TEXT NOT NULL"),
                OptionalText => format!("\"{c}\" TEXT"),
                Flag => format!("\"{c}\" INTEGER NOT NULL CHECK (\"{c}\" IN (0, 1))"),
            })
            .collect();
        format!("CREATE TABLE \"{}\" ({}, PRIMARY KEY ({})) STRICT", self.name, columns.join(", "), self.key)
    }

    pub fn column_names(&self) -> impl Iterator<Item = &'static str> {
        self.columns.iter().map(|c| c.0)
    }
}

pub const TABLES: [Table; 15] = [
    Table {
        name: "accounts",
        columns: &[Column("id", Text), Column("name", Text), Column("email", Text), Column("status", Text)],
        key: "id",
    },
    Table {
        name: "permission_sets",
        columns: &[
            Column("arn", Text),
            Column("name", Text),
            Column("description", OptionalText),
            Column("session_duration", OptionalText),
        ],
        key: "arn",
    },
    Table {
        name: "users",
        columns: &[
            Column("id", Text),
            Column("user_name", Text),
            Column("display_name", Text),
            Column("email", OptionalText),
            Column("status", Text),
        ],
        key: "id",
    },
    Table { name: "groups", columns: &[Column("id", Text), Column("display_name", Text)], key: "id" },
    Table {
        name: "memberships",
        columns: &[Column("group_id", Text), Column("user_id", Text)],
        key: "group_id, user_id",
    },
    Table {
        name: "entitlements",
        columns: &[Column("account_id", Text), Column("permission_set_arn", Text), Column("provisioned", Flag)],
        key: "account_id, permission_set_arn",
    },
    Table {
        name: "assignments",
        columns: &[
            Column("account_id", Text),
            Column("permission_set_arn", Text),
            Column("principal_type", Text),
            Column("principal_id", Text),
        ],
        key: "account_id, permission_set_arn, principal_type, principal_id",
    },
    Table {
        name: "account_aliases",
        columns: &[Column("account_id", Text), Column("alias", Text)],
        key: "account_id, alias",
    },
    Table {
        name: "iam_users",
        columns: &[
            Column("account_id", Text),
            Column("arn", Text),
            Column("id", Text),
            Column("name", Text),
            Column("created", Text),
            Column("password_last_used", OptionalText),
        ],
        key: "account_id, arn",
    },
    Table {
        name: "iam_groups",
        columns: &[
            Column("account_id", Text),
            Column("arn", Text),
            Column("id", Text),
            Column("name", Text),
            Column("created", Text),
        ],
        key: "account_id, arn",
    },
    Table {
        name: "iam_group_members",
        columns: &[Column("account_id", Text), Column("group_arn", Text), Column("user_arn", Text)],
        key: "account_id, group_arn, user_arn",
    },
    Table {
        name: "iam_roles",
        columns: &[
            Column("account_id", Text),
            Column("arn", Text),
            Column("id", Text),
            Column("name", Text),
            Column("created", Text),
            Column("last_used", OptionalText),
        ],
        key: "account_id, arn",
    },
    Table {
        name: "iam_role_trusts",
        columns: &[
            Column("account_id", Text),
            Column("role_arn", Text),
            Column("principal_kind", Text),
            Column("principal", Text),
        ],
        key: "account_id, role_arn, principal_kind, principal",
    },
    Table {
        name: "access_keys",
        columns: &[
            Column("account_id", Text),
            Column("id", Text),
            Column("user_arn", Text),
            Column("status", Text),
            Column("created", Text),
            Column("last_used", OptionalText),
            Column("last_used_service", OptionalText),
            Column("last_used_region", OptionalText),
        ],
        key: "account_id, id",
    },
    Table {
        name: "iam_skipped_accounts",
        columns: &[Column("account_id", Text), Column("reason", Text)],
        key: "account_id",
    },
];

/// A row as the file holds it, every value as text; `None` is SQL NULL.
pub type Values = Vec<Option<String>>;

/// Where a part's rows go: for each table it fills, the table's index in [`TABLES`] and the rows. `catalog` keeps
/// the accounts' ids and the permission sets' arns for the entitlements, which are every account × permission set
/// (any permission set may be assigned in any account; IAM Identity Center provisions it on first assignment),
/// flagged with whether it is provisioned there now; [`Part::kind`] order puts both before the provisioned pairs.
fn part_rows(part: Part, catalog: &mut (Vec<String>, Vec<String>)) -> Vec<(usize, Vec<Values>)> {
    let one = match part {
        Part::Accounts(list) => {
            catalog.0.extend(list.iter().map(|a| a.id.clone()));
            (0, list.into_iter().map(|a| vec![Some(a.id), Some(a.name), Some(a.email), Some(a.status)]).collect())
        }
        Part::PermissionSets(list) => {
            catalog.1.extend(list.iter().map(|p| p.arn.clone()));
            (1, list.into_iter().map(|p| vec![Some(p.arn), Some(p.name), p.description, p.session_duration]).collect())
        }
        Part::Users(list) => {
            let rows = list.into_iter().map(|u| {
                let status = if u.enabled { "ENABLED" } else { "DISABLED" };
                vec![Some(u.id), Some(u.user_name), Some(u.display_name), u.email, Some(status.into())]
            });
            (2, rows.collect())
        }
        Part::Groups(list) => (3, list.into_iter().map(|g| vec![Some(g.id), Some(g.display_name)]).collect()),
        Part::Memberships(pairs) => (4, pairs.into_iter().map(|(g, u)| vec![Some(g), Some(u)]).collect()),
        Part::Provisioned(pairs) => {
            let provisioned: HashSet<(&str, &str)> = pairs.iter().map(|(a, p)| (a.as_str(), p.as_str())).collect();
            let (accounts, sets) = &*catalog;
            let rows = accounts
                .iter()
                .flat_map(|a| sets.iter().map(move |p| (a, p)))
                .map(|(a, p)| {
                    let flag = provisioned.contains(&(a.as_str(), p.as_str()));
                    vec![Some(a.clone()), Some(p.clone()), Some(if flag { "1" } else { "0" }.to_string())]
                })
                .collect();
            (5, rows)
        }
        Part::Assignments(list) => {
            let rows = list
                .into_iter()
                .map(|a| {
                    let (kind, id) = match a.principal {
                        Principal::User(id) => ("USER", id),
                        Principal::Group(id) => ("GROUP", id),
                    };
                    vec![Some(a.account_id), Some(a.permission_set_arn), Some(kind.to_string()), Some(id)]
                })
                .collect();
            (6, rows)
        }
        Part::Iam(iam) => return iam_rows(&iam).into_iter().enumerate().map(|(i, rows)| (i + 7, rows)).collect(),
    };
    vec![one]
}

/// The rows of the IAM tables, the last eight of [`TABLES`].
fn iam_rows(iam: &IamSnapshot) -> [Vec<Values>; 8] {
    let some = |s: &str| Some(s.to_string());
    let account = |arn: &str| some(arn_account(arn));
    [
        iam.account_aliases.iter().map(|(id, alias)| vec![some(id), some(alias)]).collect(),
        iam.users
            .iter()
            .map(|u| {
                let created = some(&u.created);
                vec![account(&u.arn), some(&u.arn), some(&u.id), some(&u.name), created, u.password_last_used.clone()]
            })
            .collect(),
        iam.groups
            .iter()
            .map(|g| vec![account(&g.arn), some(&g.arn), some(&g.id), some(&g.name), some(&g.created)])
            .collect(),
        iam.group_members.iter().map(|(g, u)| vec![account(g), some(g), some(u)]).collect(),
        iam.roles
            .iter()
            .map(|r| {
                vec![account(&r.arn), some(&r.arn), some(&r.id), some(&r.name), some(&r.created), r.last_used.clone()]
            })
            .collect(),
        iam.trusted
            .iter()
            .map(|t| vec![account(&t.role_arn), some(&t.role_arn), some(&t.kind), some(&t.value)])
            .collect(),
        iam.access_keys
            .iter()
            .map(|k| {
                vec![
                    account(&k.user_arn),
                    some(&k.id),
                    some(&k.user_arn),
                    some(&k.status),
                    some(&k.created),
                    k.last_used.clone(),
                    k.last_used_service.clone(),
                    k.last_used_region.clone(),
                ]
            })
            .collect(),
        iam.skipped.iter().map(|s| vec![some(&s.account_id), some(&s.reason)]).collect(),
    ]
}

/// Rows per INSERT: 100 rows of at most 8 values stay below SQLite's limit on bound parameters (even the 999
/// of old builds).
const BATCH: usize = 100;

/// Context of a sync that the snapshot itself does not carry.
pub struct SyncInfo<'a> {
    pub synced_at: chrono::DateTime<chrono::Utc>,
    pub sso_region: &'a str,
    pub organizations: bool,
    /// Whether IAM and the access keys were read: their tables are empty otherwise.
    pub iam: bool,
    pub secrets: bool,
}

/// Writes what a sync and its IAM sync read (`parts` in [`Part::kind`] order, as [`cone_aws::SqlSpool::parts`] gives
/// them) to a new file at `path` in one transaction; returns the number of rows per table. The file is written beside
/// `path` and renamed over it at the end, so a failed sync leaves no half file.
pub async fn write(
    path: &Path,
    synced: &Synced,
    parts: PartStream<'_>,
    info: &SyncInfo<'_>,
) -> Result<Vec<(&'static str, usize)>> {
    let partial = path.with_extension("partial");
    // A leftover from an interrupted run is ours to replace.
    if partial.exists() {
        std::fs::remove_file(&partial).with_context(|| format!("cannot remove the leftover {}", partial.display()))?;
    }
    let result = write_new(&partial, synced, parts, info).await;
    match result {
        Ok(counts) => {
            std::fs::rename(&partial, path)
                .with_context(|| format!("cannot move {} to {}", partial.display(), path.display()))?;
            Ok(counts)
        }
        Err(e) => {
            // The error matters more than a failure to clean up after it.
            let _ = std::fs::remove_file(&partial);
            Err(e)
        }
    }
}

async fn write_new(
    path: &Path,
    synced: &Synced,
    mut parts: PartStream<'_>,
    info: &SyncInfo<'_>,
) -> Result<Vec<(&'static str, usize)>> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        // One file, no -wal or -journal beside it once closed.
        .journal_mode(SqliteJournalMode::Delete);
    let mut conn = SqliteConnection::connect_with(&options)
        .await
        .with_context(|| format!("cannot create {}; check that its folder exists and is writable", path.display()))?;
    let mut tx = conn.begin().await?;

    sqlx::query("CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL) STRICT").execute(&mut *tx).await?;
    let meta = [
        ("format", FORMAT.to_string()),
        ("format_version", FORMAT_VERSION.to_string()),
        ("synced_at", info.synced_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)),
        ("instance_arn", synced.instance_arn.clone()),
        ("identity_store_id", synced.identity_store_id.clone()),
        ("sso_region", info.sso_region.to_string()),
        ("organizations", info.organizations.to_string()),
        ("iam", info.iam.to_string()),
        ("secrets", info.secrets.to_string()),
    ];
    let mut insert = QueryBuilder::<Sqlite>::new("INSERT INTO meta (key, value) ");
    insert.push_values(meta, |mut b, (k, v)| {
        b.push_bind(k).push_bind(v);
    });
    insert.build().execute(&mut *tx).await?;

    for table in &TABLES {
        sqlx::query(&table.create()).execute(&mut *tx).await?;
    }
    let mut counts = [0; TABLES.len()];
    let mut catalog = Default::default();
    while let Some(part) = parts.next().await {
        for (table, rows) in part_rows(part?, &mut catalog) {
            counts[table] += insert_rows(&mut tx, &TABLES[table], &rows).await?;
        }
    }
    tx.commit().await?;
    conn.close().await?;
    Ok(TABLES.iter().map(|t| t.name).zip(counts).collect())
}

/// Inserts `rows` into `table`; returns how many were new (a sync may list a membership twice).
async fn insert_rows(conn: &mut SqliteConnection, table: &Table, rows: &[Values]) -> Result<usize> {
    let columns: Vec<String> = table.column_names().map(|c| format!("\"{c}\"")).collect();
    let mut added = 0;
    for batch in rows.chunks(BATCH) {
        let mut insert =
            QueryBuilder::<Sqlite>::new(format!("INSERT INTO \"{}\" ({}) ", table.name, columns.join(", ")));
        insert.push_values(batch, |mut b, row| {
            for (Column(_, kind), value) in table.columns.iter().zip(row) {
                // A flag is bound as an integer: STRICT tables take no text in an INTEGER column.
                if *kind == Flag {
                    b.push_bind(value.as_deref() == Some("1"));
                } else {
                    b.push_bind(value.clone());
                }
            }
        });
        insert.push(" ON CONFLICT DO NOTHING");
        added += insert.build().execute(&mut *conn).await?.rows_affected() as usize;
    }
    Ok(added)
}

/// The journal of a sync into `FILE`: `FILE.journal` beside it, a SQLite file of the units read so far, so that a
/// sync that stopped part-way resumes, and of the running sync's spool. Removed once the sync file is written.
pub struct JournalFile {
    path: std::path::PathBuf,
    journal: SqlJournal,
    pool: AnyPool,
}

impl JournalFile {
    /// Opens (or creates) the journal of `out`; with `fresh`, what an earlier sync recorded is forgotten first.
    pub async fn open(out: &Path, fresh: bool) -> Result<JournalFile> {
        let path = out.with_extension("journal");
        if fresh {
            remove_journal(&path)?;
        }
        sqlx::any::install_default_drivers();
        let Some(name) = path.to_str() else {
            bail!("{} is not a UTF-8 path; write the sync file to one that is", path.display());
        };
        // sqlx decodes the file name as a URL path: `?`, `#` and `%` in it must be escaped.
        const PATH: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/').remove(b'.').remove(b'-').remove(b'_');
        let url = format!("sqlite://{}?mode=rwc", utf8_percent_encode(name, PATH));
        // One connection: SQLite writes one at a time anyway, and a pool is what lets concurrent units share it. WAL
        // with NORMAL sync: an entry survives the process being killed, which is what the journal is for, without a
        // disk flush per unit.
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .after_connect(|conn, _| {
                Box::pin(async move {
                    conn.execute("PRAGMA journal_mode = WAL; PRAGMA synchronous = NORMAL").await?;
                    Ok(())
                })
            })
            .connect(&url)
            .await
            .with_context(|| {
                format!("cannot open the sync journal {}; check that its folder is writable", path.display())
            })?;
        let journal = SqlJournal::open(pool.clone(), "journal").await.map_err(|e| {
            anyhow::anyhow!("{} is not a sync journal ({e}); remove it, or sync with --fresh", path.display())
        })?;
        Ok(JournalFile { path, journal, pool })
    }

    pub fn journal(&self) -> &SqlJournal {
        &self.journal
    }

    /// A spool for this sync's parts (see `cone_aws::spool`), in the journal's file: gone with it.
    pub async fn spool(&self) -> Result<SqlSpool> {
        SqlSpool::start(self.pool.clone(), "spool")
            .await
            .map_err(|e| anyhow::anyhow!("cannot use the spool in {}: {e}", self.path.display()))
    }

    /// Closes and deletes the journal: the sync it served is stored.
    pub async fn remove(self) -> Result<()> {
        self.pool.close().await;
        remove_journal(&self.path)
    }
}

/// Deletes the journal at `path` with its WAL files, if there.
fn remove_journal(path: &Path) -> Result<()> {
    for path in [path.to_path_buf(), path.with_extension("journal-wal"), path.with_extension("journal-shm")] {
        if path.exists() {
            std::fs::remove_file(&path).with_context(|| format!("cannot remove {}", path.display()))?;
        }
    }
    Ok(())
}

/// A sync file opened for reading, its format checked.
pub struct SyncFile {
    conn: SqliteConnection,
}

impl SyncFile {
    pub async fn open(path: &Path) -> Result<SyncFile> {
        if !path.is_file() {
            bail!("{} does not exist (or is not a file); write one with `cone-aws sync --out FILE`", path.display());
        }
        let options = SqliteConnectOptions::new().filename(path).read_only(true);
        let mut conn = SqliteConnection::connect_with(&options)
            .await
            .with_context(|| format!("cannot open {} as SQLite", path.display()))?;
        let format: Option<(String,)> =
            sqlx::query_as("SELECT value FROM meta WHERE key = 'format'").fetch_optional(&mut conn).await.map_err(
                |e| anyhow::anyhow!("{} is not a cone-aws sync file (no readable meta table: {e})", path.display()),
            )?;
        if format.as_ref().map(|f| f.0.as_str()) != Some(FORMAT) {
            bail!("{} is not a cone-aws sync file (its meta table does not say format = {FORMAT})", path.display());
        }
        let mut file = SyncFile { conn };
        let version = file.meta("format_version").await?;
        if version.parse::<u32>().ok() != Some(FORMAT_VERSION) {
            bail!(
                "{} has format version {version}, and this cone-aws reads version {FORMAT_VERSION} only; \
                 use the cone-aws that wrote it, or sync again",
                path.display()
            );
        }
        Ok(file)
    }

    pub async fn meta(&mut self, key: &str) -> Result<String> {
        let value: Option<(String,)> =
            sqlx::query_as("SELECT value FROM meta WHERE key = ?").bind(key).fetch_optional(&mut self.conn).await?;
        value.map(|v| v.0).with_context(|| format!("the sync file's meta table has no {key}"))
    }

    /// The rows of `table`, sorted by all columns, every value as text.
    pub async fn rows(&mut self, table: &Table) -> Result<Vec<Values>> {
        let columns: Vec<String> = table.column_names().map(|c| format!("CAST(\"{c}\" AS TEXT)")).collect();
        let order: Vec<String> = (1..=table.columns.len()).map(|i| i.to_string()).collect();
        let sql = format!("SELECT {} FROM \"{}\" ORDER BY {}", columns.join(", "), table.name, order.join(", "));
        let rows = sqlx::query(&sql).fetch_all(&mut self.conn).await?;
        rows.iter()
            .map(|r| (0..table.columns.len()).map(|i| r.try_get::<Option<String>, _>(i)).collect::<Result<Values, _>>())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("reading table {}", table.name))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cone_aws::{
        AccessKey, Account, AssignmentRecord, Group, IamGroup, IamUser, PermissionSet, SkippedAccount, Snapshot, User,
    };

    async fn write_snapshot(
        path: &Path,
        snap: &Snapshot,
        iam: &IamSnapshot,
        info: &SyncInfo<'_>,
    ) -> Result<Vec<(&'static str, usize)>> {
        let synced = Synced {
            resumed: None,
            instance_arn: snap.instance_arn.clone(),
            identity_store_id: snap.identity_store_id.clone(),
        };
        let parts = snap.parts().into_iter().chain([Part::Iam(iam.clone())]).map(Ok);
        write(path, &synced, futures_util::stream::iter(parts).boxed(), info).await
    }

    fn snapshot() -> Snapshot {
        Snapshot {
            resumed: None,
            instance_arn: "arn:aws:sso:::instance/ssoins-1".into(),
            identity_store_id: "d-1".into(),
            accounts: vec![Account {
                id: "111111111111".into(),
                name: "Prod".into(),
                email: "prod@example.com".into(),
                status: "ACTIVE".into(),
            }],
            permission_sets: vec![
                PermissionSet { arn: "ps-a".into(), name: "A".into(), description: None, session_duration: None },
                PermissionSet {
                    arn: "ps-b".into(),
                    name: "B".into(),
                    description: Some("b".into()),
                    session_duration: Some("PT1H".into()),
                },
            ],
            provisioned: vec![("111111111111".into(), "ps-b".into())],
            users: vec![User {
                id: "u1".into(),
                user_name: "alice".into(),
                display_name: "Alice".into(),
                email: None,
                enabled: true,
            }],
            groups: vec![Group { id: "g1".into(), display_name: "approvers".into() }],
            memberships: vec![("g1".into(), "u1".into())],
            assignments: vec![AssignmentRecord {
                account_id: "111111111111".into(),
                permission_set_arn: "ps-b".into(),
                principal: Principal::Group("g1".into()),
            }],
        }
    }

    /// Secrets without IAM: the key owners and their keys, nothing else.
    fn iam_snapshot() -> IamSnapshot {
        let alice = "arn:aws:iam::111111111111:user/alice";
        IamSnapshot {
            users: vec![IamUser {
                arn: alice.into(),
                id: "AIDA1".into(),
                name: "alice".into(),
                created: "2026-01-01T00:00:00Z".into(),
                password_last_used: None,
            }],
            groups: vec![IamGroup {
                arn: "arn:aws:iam::111111111111:group/devs".into(),
                id: "AGPA1".into(),
                name: "devs".into(),
                created: "2026-01-02T00:00:00Z".into(),
            }],
            access_keys: vec![AccessKey {
                id: "AKIA1".into(),
                user_arn: alice.into(),
                status: "Active".into(),
                created: "2026-01-03T00:00:00Z".into(),
                last_used: Some("2026-01-04T00:00:00Z".into()),
                last_used_service: Some("sts".into()),
                last_used_region: None,
            }],
            skipped: vec![SkippedAccount {
                account_id: "222222222222".into(),
                reason: "cannot assume the role".into(),
            }],
            ..IamSnapshot::default()
        }
    }

    #[tokio::test]
    async fn writes_and_reads_back_every_table() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("s.sqlite");
        let info = SyncInfo {
            synced_at: chrono::Utc::now(),
            sso_region: "us-east-1",
            organizations: true,
            iam: false,
            secrets: true,
        };
        let counts = write_snapshot(&path, &snapshot(), &iam_snapshot(), &info).await?;
        assert_eq!(
            counts,
            vec![
                ("accounts", 1),
                ("permission_sets", 2),
                ("users", 1),
                ("groups", 1),
                ("memberships", 1),
                ("entitlements", 2),
                ("assignments", 1),
                ("account_aliases", 0),
                ("iam_users", 1),
                ("iam_groups", 1),
                ("iam_group_members", 0),
                ("iam_roles", 0),
                ("iam_role_trusts", 0),
                ("access_keys", 1),
                ("iam_skipped_accounts", 1),
            ]
        );
        assert!(!path.with_extension("partial").exists());

        let mut file = SyncFile::open(&path).await?;
        assert_eq!(file.meta("instance_arn").await?, "arn:aws:sso:::instance/ssoins-1");
        assert_eq!(file.meta("format_version").await?, "4");
        assert_eq!((file.meta("iam").await?.as_str(), file.meta("secrets").await?.as_str()), ("false", "true"));
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            file.rows(&TABLES[5]).await?,
            vec![vec![s("111111111111"), s("ps-a"), s("0")], vec![s("111111111111"), s("ps-b"), s("1")]]
        );
        assert_eq!(file.rows(&TABLES[1]).await?[0], vec![s("ps-a"), s("A"), None, None]);
        assert_eq!(file.rows(&TABLES[6]).await?, vec![vec![s("111111111111"), s("ps-b"), s("GROUP"), s("g1")]]);
        assert_eq!(
            file.rows(&TABLES[13]).await?,
            vec![vec![
                s("111111111111"),
                s("AKIA1"),
                s("arn:aws:iam::111111111111:user/alice"),
                s("Active"),
                s("2026-01-03T00:00:00Z"),
                s("2026-01-04T00:00:00Z"),
                s("sts"),
                None
            ]]
        );
        assert_eq!(file.rows(&TABLES[8]).await?[0][5], None, "no password last used");
        assert_eq!(
            file.rows(&TABLES[9]).await?[0][..2],
            [s("111111111111"), s("arn:aws:iam::111111111111:group/devs")]
        );
        assert_eq!(file.rows(&TABLES[14]).await?, vec![vec![s("222222222222"), s("cannot assume the role")]]);

        // Syncing again over the file replaces it.
        write_snapshot(&path, &Snapshot { assignments: vec![], ..snapshot() }, &IamSnapshot::default(), &info).await?;
        assert!(SyncFile::open(&path).await?.rows(&TABLES[6]).await?.is_empty());
        Ok(())
    }

    #[tokio::test]
    async fn refuses_files_that_are_not_sync_files() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let missing = SyncFile::open(&dir.path().join("nope.sqlite")).await.err().expect("missing file");
        assert!(missing.to_string().contains("cone-aws sync --out"), "{missing}");

        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "not a database at all, just some text that is long enough to look like a header")?;
        let err = SyncFile::open(&text).await.err().expect("text file");
        assert!(format!("{err:#}").contains("not a cone-aws sync file") || format!("{err:#}").contains("SQLite"));

        let other = dir.path().join("other.sqlite");
        let options = SqliteConnectOptions::new().filename(&other).create_if_missing(true);
        let mut conn = SqliteConnection::connect_with(&options).await?;
        sqlx::query("CREATE TABLE meta (key TEXT, value TEXT)").execute(&mut conn).await?;
        sqlx::query("INSERT INTO meta VALUES ('format', 'something-else')").execute(&mut conn).await?;
        conn.close().await?;
        let err = SyncFile::open(&other).await.err().expect("foreign sqlite file");
        assert!(err.to_string().contains("not a cone-aws sync file"), "{err}");
        Ok(())
    }
}
