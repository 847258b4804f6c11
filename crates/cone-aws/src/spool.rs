//! Where a sync puts what it reads, as it reads it: each group's members and each unit of assignments goes to a
//! [`Sink`] once read, so that the sync itself holds only what drives it (accounts, permission sets, where they are
//! provisioned, the principals), not the memberships and assignments, which grow with the organisation.
//!
//! [`SqlSpool`] is the sink Cone's two consumers use: a SQL table that the sync fills and the consumer then reads
//! back part by part, in [`Part::kind`] order, to store the snapshot (the server's catalog, `cone-aws sync`'s file).
//! [`Snapshot::from_parts`] and [`IamSnapshot::from_parts`] assemble the whole snapshot in memory instead, for tests.

use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, Ordering};

use futures_util::future::BoxFuture;
use futures_util::stream::{BoxStream, StreamExt};
use serde::{Deserialize, Serialize};
use sqlx::AnyPool;

use crate::connector::sorted_unique;
use crate::journal::Resumed;
use crate::{Account, AssignmentRecord, Group, IamSnapshot, PermissionSet, Snapshot, User};

pub type SinkError = Box<dyn std::error::Error + Send + Sync>;

/// Parts read back from a spool (or made up by a test), in [`Part::kind`] order.
pub type PartStream<'a> = BoxStream<'a, anyhow::Result<Part>>;

/// A piece of a snapshot. A sync puts each of the first five once, sorted as [`Snapshot`] has them, and memberships
/// and assignments a unit at a time, in no order and possibly with repeats (moto lists a membership made twice twice);
/// the IAM sync puts one part per account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Part {
    Accounts(Vec<Account>),
    PermissionSets(Vec<PermissionSet>),
    /// `(account id, permission set arn)`.
    Provisioned(Vec<(String, String)>),
    Users(Vec<User>),
    Groups(Vec<Group>),
    /// `(group id, user id)`.
    Memberships(Vec<(String, String)>),
    Assignments(Vec<AssignmentRecord>),
    /// One account's IAM, or the account skipped ([`crate::Connector::sync_iam_into`]).
    Iam(IamSnapshot),
}

impl Part {
    /// The order in which a consumer reads parts back: what later parts refer to comes first.
    pub fn kind(&self) -> i64 {
        match self {
            Part::Accounts(_) => 0,
            Part::PermissionSets(_) => 1,
            Part::Provisioned(_) => 2,
            Part::Users(_) => 3,
            Part::Groups(_) => 4,
            Part::Memberships(_) => 5,
            Part::Assignments(_) => Part::ASSIGNMENTS,
            Part::Iam(_) => Part::IAM,
        }
    }

    /// The [`Part::kind`]s that the server reads back on their own: the drift sweep's and the IAM tables'.
    pub const ASSIGNMENTS: i64 = 6;
    pub const IAM: i64 = 7;
}

/// Takes a sync's parts as they are read. A sink that fails stops the sync ([`crate::ConnectorError::Store`]).
pub trait Sink: Send + Sync {
    fn put(&self, part: Part) -> BoxFuture<'_, Result<(), SinkError>>;
}

/// What a sync put into its sink, besides the parts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Synced {
    /// Set when the sync resumed from a journal: some of what it put was read by an earlier, interrupted sync.
    pub resumed: Option<Resumed>,
    pub instance_arn: String,
    pub identity_store_id: String,
}

/// Parts kept in memory, for [`Snapshot::from_parts`].
#[derive(Default)]
pub(crate) struct Parts(Mutex<Vec<Part>>);

impl Parts {
    pub(crate) fn into_inner(self) -> Vec<Part> {
        self.0.into_inner().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Sink for Parts {
    fn put(&self, part: Part) -> BoxFuture<'_, Result<(), SinkError>> {
        self.0.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).push(part);
        Box::pin(async { Ok(()) })
    }
}

impl Snapshot {
    /// The snapshot made of the `parts` of a sync: its memberships and assignments sorted and each once.
    pub fn from_parts(synced: Synced, parts: impl IntoIterator<Item = Part>) -> Snapshot {
        let mut snap = Snapshot {
            resumed: synced.resumed,
            instance_arn: synced.instance_arn,
            identity_store_id: synced.identity_store_id,
            accounts: Vec::new(),
            permission_sets: Vec::new(),
            provisioned: Vec::new(),
            users: Vec::new(),
            groups: Vec::new(),
            memberships: Vec::new(),
            assignments: Vec::new(),
        };
        let (mut memberships, mut assignments) = (Vec::new(), Vec::new());
        for part in parts {
            match part {
                Part::Accounts(v) => snap.accounts.extend(v),
                Part::PermissionSets(v) => snap.permission_sets.extend(v),
                Part::Provisioned(v) => snap.provisioned.extend(v),
                Part::Users(v) => snap.users.extend(v),
                Part::Groups(v) => snap.groups.extend(v),
                Part::Memberships(v) => memberships.push(v),
                Part::Assignments(v) => assignments.push(v),
                // Read by a sync of its own into a snapshot of its own ([`IamSnapshot::from_parts`]).
                Part::Iam(_) => {}
            }
        }
        snap.memberships = sorted_unique(memberships);
        snap.assignments = sorted_unique(assignments);
        snap
    }

    /// The snapshot as parts, in [`Part::kind`] order: what a sync would have put.
    pub fn parts(&self) -> Vec<Part> {
        vec![
            Part::Accounts(self.accounts.clone()),
            Part::PermissionSets(self.permission_sets.clone()),
            Part::Provisioned(self.provisioned.clone()),
            Part::Users(self.users.clone()),
            Part::Groups(self.groups.clone()),
            Part::Memberships(self.memberships.clone()),
            Part::Assignments(self.assignments.clone()),
        ]
    }
}

/// Runs that stopped without clearing their parts (a crash) are cleared by a later run after this long (seconds):
/// far longer than a sync takes.
const LEFTOVER_AFTER: i64 = 24 * 3600;

/// A sink in a SQL table of `(run TEXT, kind BIGINT, seq BIGINT, body TEXT, written_at BIGINT)` keyed by
/// `(run, kind, seq)`, on SQLite or PostgreSQL. Each run (one sync) has its own rows, so that syncs running side by
/// side (two servers on one database) keep apart. The table is this type's own: [`SqlSpool::start`] creates it where
/// it is missing.
pub struct SqlSpool {
    pool: AnyPool,
    run: String,
    seq: AtomicI64,
    insert: String,
    select: String,
    delete: String,
}

impl SqlSpool {
    /// A new run's spool in `table` (a trusted name: it is written into the statements), after clearing what runs
    /// that never finished left there a day or more ago.
    pub async fn start(pool: AnyPool, table: &str) -> Result<SqlSpool, SinkError> {
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (run TEXT NOT NULL, kind BIGINT NOT NULL, seq BIGINT NOT NULL,
                 body TEXT NOT NULL, written_at BIGINT NOT NULL, PRIMARY KEY (run, kind, seq))"
        );
        crate::journal::create_table(&pool, table, &create).await?;
        let index = format!("{table}_written_at");
        crate::journal::create_table(
            &pool,
            table,
            &format!("CREATE INDEX IF NOT EXISTS {index} ON {table} (written_at)"),
        )
        .await?;
        sqlx::query(&format!("DELETE FROM {table} WHERE written_at < $1"))
            .bind(chrono::Utc::now().timestamp() - LEFTOVER_AFTER)
            .execute(&pool)
            .await?;
        Ok(SqlSpool {
            pool,
            run: format!("{:016x}", rand::random::<u64>()),
            seq: AtomicI64::new(0),
            insert: format!("INSERT INTO {table} (run, kind, seq, body, written_at) VALUES ($1, $2, $3, $4, $5)"),
            select: format!("SELECT body FROM {table} WHERE run = $1 AND kind >= $2 AND kind <= $3 ORDER BY kind, seq"),
            delete: format!("DELETE FROM {table} WHERE run = $1"),
        })
    }

    /// The run's name: what [`SqlSpool::join`] takes.
    pub fn run(&self) -> &str {
        &self.run
    }

    /// The spool of a run another process started (a sync whose parts a connector in service mode sends), to put
    /// parts into with [`SqlSpool::put_numbered`].
    pub fn join(pool: AnyPool, table: &str, run: &str) -> SqlSpool {
        SqlSpool {
            pool,
            run: run.to_string(),
            seq: AtomicI64::new(0),
            insert: format!(
                "INSERT INTO {table} (run, kind, seq, body, written_at) VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING"
            ),
            select: format!("SELECT body FROM {table} WHERE run = $1 AND kind >= $2 AND kind <= $3 ORDER BY kind, seq"),
            delete: format!("DELETE FROM {table} WHERE run = $1"),
        }
    }

    /// Puts the part numbered `seq` by its sender; a part sent again under the same number is kept once.
    pub async fn put_numbered(&self, seq: i64, part: &Part) -> Result<(), SinkError> {
        sqlx::query(&self.insert)
            .bind(&self.run)
            .bind(part.kind())
            .bind(seq)
            .bind(serde_json::to_string(part)?)
            .bind(chrono::Utc::now().timestamp())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// This run's parts in [`Part::kind`] order, or only those of kind `only`, read one at a time.
    pub fn parts(&self, only: Option<i64>) -> PartStream<'_> {
        let (first, last) = only.map_or((i64::MIN, i64::MAX), |k| (k, k));
        let read = |row: Result<String, sqlx::Error>| -> Result<Part, SinkError> { Ok(serde_json::from_str(&row?)?) };
        sqlx::query_scalar::<_, String>(&self.select)
            .bind(&self.run)
            .bind(first)
            .bind(last)
            .fetch(&self.pool)
            .map(move |row| read(row).map_err(|e| anyhow::anyhow!("cannot read back what the sync read: {e}")))
            .boxed()
    }

    /// Deletes this run's parts: they are stored.
    pub async fn clear(&self) -> Result<(), SinkError> {
        sqlx::query(&self.delete).bind(&self.run).execute(&self.pool).await?;
        Ok(())
    }
}

impl Sink for SqlSpool {
    fn put(&self, part: Part) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let body = serde_json::to_string(&part)?;
            sqlx::query(&self.insert)
                .bind(&self.run)
                .bind(part.kind())
                .bind(self.seq.fetch_add(1, Ordering::Relaxed))
                .bind(body)
                .bind(chrono::Utc::now().timestamp())
                .execute(&self.pool)
                .await?;
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use futures_util::TryStreamExt;
    use sqlx::any::AnyPoolOptions;

    use super::*;
    use crate::Principal;

    fn user(id: &str) -> User {
        User { id: id.into(), user_name: id.into(), display_name: id.into(), email: None, enabled: true }
    }

    fn assigned(user: &str) -> AssignmentRecord {
        AssignmentRecord {
            account_id: "111".into(),
            permission_set_arn: "ps-1".into(),
            principal: Principal::User(user.into()),
        }
    }

    #[tokio::test]
    async fn each_run_reads_back_its_own_parts_in_kind_order_until_cleared() -> Result<(), SinkError> {
        sqlx::any::install_default_drivers();
        let pool = AnyPoolOptions::new()
            .max_connections(1)
            .idle_timeout(None)
            .max_lifetime(None)
            .connect("sqlite::memory:")
            .await?;
        // The table is made by the first run; a run that crashed two days ago left rows in it.
        let other = SqlSpool::start(pool.clone(), "spool").await?;
        sqlx::query("INSERT INTO spool VALUES ('crashed', 3, 0, '{\"Users\":[]}', $1)")
            .bind(chrono::Utc::now().timestamp() - 2 * LEFTOVER_AFTER)
            .execute(&pool)
            .await?;
        other.put(Part::Users(vec![user("u-other")])).await?;
        let spool = SqlSpool::start(pool.clone(), "spool").await?;
        let (count,): (i64,) =
            sqlx::query_as("SELECT count(*) FROM spool WHERE run = 'crashed'").fetch_one(&pool).await?;
        assert_eq!(count, 0, "a day-old run's leftovers are cleared");

        let put = [
            Part::Assignments(vec![assigned("u-1")]),
            Part::Users(vec![user("u-1")]),
            Part::Assignments(vec![assigned("u-2")]),
            Part::Accounts(vec![]),
        ];
        for part in put.clone() {
            spool.put(part).await?;
        }
        let [a1, users, a2, accounts] = put;
        let read: Vec<Part> = spool.parts(None).try_collect().await?;
        assert_eq!(read, vec![accounts, users, a1.clone(), a2.clone()]);
        let only: Vec<Part> = spool.parts(Some(Part::ASSIGNMENTS)).try_collect().await?;
        assert_eq!(only, vec![a1, a2]);

        spool.clear().await?;
        assert_eq!(spool.parts(None).try_collect::<Vec<_>>().await?, vec![]);
        assert_eq!(other.parts(None).try_collect::<Vec<_>>().await?, vec![Part::Users(vec![user("u-other")])]);
        Ok(())
    }

    #[test]
    fn a_snapshot_from_parts_has_each_membership_and_assignment_once_and_sorted() {
        let synced = Synced { resumed: None, instance_arn: "i".into(), identity_store_id: "d".into() };
        let parts = [
            Part::Assignments(vec![assigned("u-2")]),
            Part::Memberships(vec![("g-1".into(), "u-2".into()), ("g-1".into(), "u-1".into())]),
            Part::Assignments(vec![assigned("u-1"), assigned("u-2")]),
            Part::Memberships(vec![("g-1".into(), "u-2".into())]),
        ];
        let snap = Snapshot::from_parts(synced, parts);
        assert_eq!(snap.assignments, vec![assigned("u-1"), assigned("u-2")]);
        assert_eq!(snap.memberships, vec![("g-1".to_string(), "u-1".to_string()), ("g-1".into(), "u-2".into())]);
        assert_eq!(
            Snapshot::from_parts(
                Synced { resumed: None, instance_arn: "i".into(), identity_store_id: "d".into() },
                snap.parts()
            ),
            snap
        );
    }
}
