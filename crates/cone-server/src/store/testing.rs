//! Fresh databases on each backend, for tests.

use super::pool::Db;
use crate::config::Database;

/// What keeps a test database alive: its SQLite directory, or its PostgreSQL cluster.
pub type Keep = Box<dyn std::any::Any + Send>;

pub async fn sqlite() -> (Db, Keep) {
    let dir = tempfile::tempdir().unwrap();
    (Db::open(&Database::Sqlite(dir.path().join("cone.db"))).await.unwrap(), Box::new(dir))
}

/// A database in a cluster of its own; `None` (with a SKIP line) only where PostgreSQL is not installed, which
/// `cargo xtask test` installs.
pub async fn postgres(test: &str) -> Option<(Db, Keep)> {
    let Some(pg) = cone_testkit::Postgres::start().unwrap() else {
        eprintln!("SKIP {test} on PostgreSQL: it is not installed (cargo xtask test installs it)");
        return None;
    };
    let db = Db::open(&Database::try_from(pg.url.clone()).unwrap()).await.unwrap();
    Some((db, Box::new(pg)))
}

/// Runs each `async fn NAME(db: Db)` as a test on SQLite (`sqlite::NAME`) and on PostgreSQL (`postgres::NAME`).
macro_rules! on_both_backends {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $name() {
                let (db, _keep) = $crate::store::testing::sqlite().await;
                super::$name(db).await
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $name() {
                if let Some((db, _keep)) = $crate::store::testing::postgres(stringify!($name)).await {
                    super::$name(db).await
                }
            })*
        }
    };
}
pub(crate) use on_both_backends;
