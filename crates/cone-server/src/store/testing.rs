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

pub fn user(id: &str, name: &str) -> cone_aws::User {
    cone_aws::User { id: id.into(), user_name: name.into(), display_name: name.into(), email: None, enabled: true }
}

/// A sync of one account, Production (111), where AdministratorAccess (`ps-admin`) is provisioned, with `users`.
pub fn production_admin(users: Vec<cone_aws::User>) -> cone_aws::Snapshot {
    cone_aws::Snapshot {
        resumed: None,
        instance_arn: "inst".into(),
        identity_store_id: "d-1".into(),
        accounts: vec![cone_aws::Account {
            id: "111".into(),
            name: "Production".into(),
            email: String::new(),
            status: "ACTIVE".into(),
        }],
        permission_sets: vec![cone_aws::PermissionSet {
            arn: "ps-admin".into(),
            name: "AdministratorAccess".into(),
            description: None,
            session_duration: None,
        }],
        provisioned: vec![("111".into(), "ps-admin".into())],
        users,
        groups: vec![],
        memberships: vec![],
        assignments: vec![],
    }
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
