//! A throwaway PostgreSQL cluster for tests: `initdb` into a temporary directory and `postgres` on a free loopback
//! port, stopped by PID when dropped. Debian's binaries are used (`cargo xtask test` installs the `postgresql`
//! package); as root, which `initdb` and `postgres` refuse to run as, both run as the `postgres` OS user, started
//! directly with that user's ids so that the PID held is the server's own.

use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

use crate::Child;
use crate::process::free_port;

pub struct Postgres {
    // Declared first: the server stops before its directory is removed.
    _server: Child,
    dir: tempfile::TempDir,
    /// `postgres://` URL of the cluster's `postgres` database (superuser `postgres`, no password).
    pub url: String,
}

impl Postgres {
    /// Starts a cluster, or `Ok(None)` when PostgreSQL is not installed.
    pub fn start() -> Result<Option<Postgres>> {
        let Some(bin) = bindir() else { return Ok(None) };
        let dir = tempfile::tempdir().context("creating a directory for PostgreSQL")?;
        let owner = if unsafe { libc::geteuid() } == 0 { Some(postgres_user()?) } else { None };
        if let Some((uid, gid)) = owner {
            std::os::unix::fs::chown(dir.path(), Some(uid), Some(gid))
                .with_context(|| format!("cannot hand {} to the postgres user", dir.path().display()))?;
        }
        let command = |program: &str| {
            let mut cmd = Command::new(bin.join(program));
            if let Some((uid, gid)) = owner {
                cmd.uid(uid).gid(gid);
            }
            cmd.stdin(Stdio::null());
            cmd
        };
        let data = dir.path().join("data");
        let mut initdb = command("initdb");
        initdb.arg("-D").arg(&data).args(["-U", "postgres", "-A", "trust", "-E", "UTF8", "--no-sync"]);
        let out = initdb.output().context("running initdb")?;
        if !out.status.success() {
            bail!("initdb failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
        }

        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("postgres.log"))?;
        let mut postgres = command("postgres");
        postgres
            .arg("-D")
            .arg(&data)
            .arg("-k")
            .arg(dir.path())
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            // Throwaway data: durability only costs time.
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"])
            .stdout(log.try_clone()?)
            .stderr(log);
        let server = Child::spawn_listening("postgres", postgres, port, Duration::from_secs(60))?;
        let pg = Postgres { _server: server, url: format!("postgres://postgres@127.0.0.1:{port}/postgres"), dir };
        pg.wait_ready(&bin.join("pg_isready"), port)?;
        Ok(Some(pg))
    }

    /// A superuser `user` who must sign in with `password` over TCP (everyone else is still trusted); returns the URL
    /// of the `postgres` database as that user, without the password.
    pub fn password_user(&self, user: &str, password: &str) -> Result<String> {
        let hba = self.dir.path().join("data/pg_hba.conf");
        let rules = std::fs::read_to_string(&hba).context("reading pg_hba.conf")?;
        std::fs::write(&hba, format!("host all {user} 127.0.0.1/32 scram-sha-256\n{rules}"))?;
        let bin = bindir().context("PostgreSQL's programs are gone")?;
        let sql = format!("CREATE ROLE {user} LOGIN SUPERUSER PASSWORD '{password}'; SELECT pg_reload_conf();");
        let out = Command::new(bin.join("psql")).args([self.url.as_str(), "-qAt", "-c", &sql]).output()?;
        if !out.status.success() {
            bail!("psql failed ({}): {}", out.status, String::from_utf8_lossy(&out.stderr));
        }
        Ok(self.url.replacen("postgres@", &format!("{user}@"), 1))
    }

    /// The listening socket opens before the server accepts sessions.
    fn wait_ready(&self, pg_isready: &Path, port: u16) -> Result<()> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ready = Command::new(pg_isready)
                .args(["-q", "-h", "127.0.0.1", "-p", &port.to_string(), "-U", "postgres"])
                .status()
                .is_ok_and(|s| s.success());
            if ready {
                return Ok(());
            }
            if Instant::now() > deadline {
                let log = std::fs::read_to_string(self.dir.path().join("postgres.log")).unwrap_or_default();
                bail!("PostgreSQL did not accept connections within 30 s; its log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// Where `initdb` and `postgres` are: `pg_config --bindir`, else the newest `/usr/lib/postgresql/*/bin`.
fn bindir() -> Option<PathBuf> {
    let from_pg_config = Command::new("pg_config")
        .arg("--bindir")
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map(|o| PathBuf::from(String::from_utf8_lossy(&o.stdout).trim()));
    let mut debian: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .map(|e| e.path().join("bin"))
        .collect();
    debian.sort_by_key(|p| {
        p.parent().and_then(|v| v.file_name()).and_then(|v| v.to_str()).and_then(|v| v.parse::<u32>().ok())
    });
    from_pg_config.into_iter().chain(debian.into_iter().rev()).find(|b| b.join("initdb").is_file())
}

/// The uid and gid of the `postgres` OS user that Debian's package creates.
fn postgres_user() -> Result<(u32, u32)> {
    // SAFETY: getpwnam returns a pointer into static storage (or null), read at once on this thread.
    let entry = unsafe { libc::getpwnam(c"postgres".as_ptr()) };
    if entry.is_null() {
        bail!(
            "running as root, the tests start PostgreSQL as the postgres user, which does not exist; install the postgresql package (cargo xtask test does) or run as another user"
        );
    }
    // SAFETY: checked non-null above.
    Ok(unsafe { ((*entry).pw_uid, (*entry).pw_gid) })
}
