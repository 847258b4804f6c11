//! Child processes on free loopback ports, killed by PID on drop.

use std::io::{BufRead, BufReader};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// The repository root (two levels above this crate).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..").canonicalize().expect("workspace root exists")
}

/// A program from the project-local virtualenv that `cargo xtask` installs.
pub fn venv_bin(name: &str) -> Result<PathBuf> {
    let path = workspace_root().join(".venv/bin").join(name);
    if !path.exists() {
        bail!(
            "{} is missing; run `cargo xtask test` (or `cargo xtask sandbox`), which installs the Python test tools (moto, awscli, schemathesis, …) into .venv",
            path.display()
        );
    }
    Ok(path)
}

/// A binary of this workspace, built by `cargo build --workspace --bins` into the same target directory as the
/// running test, and built since its sources last changed: a test never runs what an older build left.
pub fn target_bin(name: &str) -> Result<PathBuf> {
    let exe = std::env::current_exe().context("locating the running executable")?;
    let Some(bin) = exe.ancestors().skip(1).map(|dir| dir.join(name)).find(|c| c.is_file()) else {
        bail!(
            "binary `{name}` not found next to {}; run `cargo build --workspace --bins` first (cargo xtask test does)",
            exe.display()
        )
    };
    if let Some(changed) = newer_source(&bin)? {
        bail!(
            "{} was built before {} changed, so it is not what the sources say; run `cargo build --workspace --bins` \
             (cargo xtask test does) and the test again",
            bin.display(),
            changed.display()
        );
    }
    Ok(bin)
}

/// A source file of `bin` changed since it was built, by the dependency list cargo writes beside it (`bin.d`).
fn newer_source(bin: &Path) -> Result<Option<PathBuf>> {
    let built =
        std::fs::metadata(bin).and_then(|m| m.modified()).with_context(|| format!("reading {}", bin.display()))?;
    let list = bin.with_extension("d");
    let deps = std::fs::read_to_string(&list)
        .with_context(|| format!("reading {}, cargo's list of {}'s sources", list.display(), bin.display()))?;
    // `target: dep dep ...`, with spaces in paths escaped as `\ `.
    let files = deps.split_once(": ").map_or("", |(_, files)| files).replace("\\ ", "\0");
    Ok(files
        .split_whitespace()
        .map(|f| PathBuf::from(f.replace('\0', " ")))
        .find(|f| std::fs::metadata(f).and_then(|m| m.modified()).is_ok_and(|changed| changed > built)))
}

/// A port that was free a moment ago on 127.0.0.1.
pub(crate) fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A running child process; dropped means killed (by PID) and reaped.
pub struct Child {
    inner: std::process::Child,
}

impl Child {
    /// Starts `cmd` and returns at once.
    pub fn spawn(name: &str, mut cmd: Command) -> Result<Child> {
        cmd.stdin(Stdio::null());
        Ok(Child { inner: cmd.spawn().with_context(|| format!("starting {name}"))? })
    }

    pub fn id(&self) -> u32 {
        self.inner.id()
    }

    /// Whether it exited, and how.
    pub fn exited(&mut self) -> Result<Option<std::process::ExitStatus>> {
        Ok(self.inner.try_wait()?)
    }

    /// Asks it to stop with SIGTERM, as Kubernetes and systemd do, and waits up to `timeout` for it to exit.
    pub fn terminate(&mut self, timeout: Duration) -> Result<std::process::ExitStatus> {
        let pid = libc::pid_t::try_from(self.inner.id()).context("a process id beyond pid_t")?;
        // SAFETY: kill only sends a signal, to a child this handle has not yet reaped.
        if unsafe { libc::kill(pid, libc::SIGTERM) } != 0 {
            bail!("cannot send SIGTERM to {pid}: {}", std::io::Error::last_os_error());
        }
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.inner.try_wait()? {
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!("process {pid} was still running {timeout:?} after SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Starts `cmd` and waits for it to print `READY <url>` as a line on stdout; returns the child and the URL.
    pub fn spawn_ready(name: &str, mut cmd: Command, timeout: Duration) -> Result<(Child, String)> {
        cmd.stdout(Stdio::piped()).stdin(Stdio::null());
        let mut inner = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let stdout = inner.stdout.take().context("child stdout")?;
        let child = Child { inner };
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            let mut sent = false;
            for line in lines.by_ref() {
                let Ok(line) = line else { break };
                if !sent {
                    if let Some(url) = line.strip_prefix("READY ") {
                        let _ = tx.send(url.trim().to_string());
                        sent = true;
                    }
                } else {
                    println!("[{line}]");
                }
            }
        });
        match rx.recv_timeout(timeout) {
            Ok(url) => Ok((child, url)),
            Err(_) => bail!("{name} did not report READY within {timeout:?}; see its stderr above"),
        }
    }

    /// Starts `cmd` and waits until something accepts connections on `port`.
    pub fn spawn_listening(name: &str, mut cmd: Command, port: u16, timeout: Duration) -> Result<Child> {
        cmd.stdin(Stdio::null());
        let inner = cmd.spawn().with_context(|| format!("starting {name}"))?;
        let mut child = Child { inner };
        let deadline = Instant::now() + timeout;
        loop {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(child);
            }
            if let Some(status) = child.inner.try_wait()? {
                bail!("{name} exited with {status} before listening on port {port}");
            }
            if Instant::now() > deadline {
                bail!("{name} did not listen on port {port} within {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        let _ = self.inner.kill();
        let _ = self.inner.wait();
    }
}

/// moto in server mode on a free loopback port.
pub struct Moto {
    pub child: Child,
    pub endpoint: String,
}

impl Moto {
    pub fn start() -> Result<Moto> {
        let port = free_port()?;
        let mut cmd = Command::new(venv_bin("moto_server")?);
        cmd.args(["-H", "127.0.0.1", "-p", &port.to_string()]).stdout(Stdio::null()).stderr(Stdio::null());
        let child = Child::spawn_listening("moto", cmd, port, Duration::from_secs(60))?;
        Ok(Moto { child, endpoint: format!("http://127.0.0.1:{port}") })
    }

    /// Environment for any AWS client aimed at this moto (static test keys, no real AWS).
    pub fn aws_env(&self) -> Vec<(&'static str, String)> {
        aws_env(&self.endpoint)
    }
}

/// Environment for any AWS client aimed at moto, or a proxy to it, at `endpoint` (static test keys, no real AWS).
pub(crate) fn aws_env(endpoint: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ENDPOINT_URL", endpoint.to_string()),
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("AWS_DEFAULT_REGION", "us-east-1".into()),
    ]
}
