//! A real SMTP server (aiosmtpd, `python/smtp_server.py`) on a free loopback port: STARTTLS required, one user
//! with a password, and every message it accepts read back as Python's email parser sees it.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use serde::Deserialize;

use crate::{Child, venv_bin, workspace_root};

pub struct Smtp {
    _child: Child,
    pub dir: PathBuf,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub password: String,
}

/// A message the server accepted.
#[derive(Debug, Clone, Deserialize)]
pub struct Mail {
    /// When the server accepted it (Unix ms).
    pub received_at_ms: u128,
    pub mail_from: String,
    pub rcpt_tos: Vec<String>,
    /// Whether it came over TLS, and after AUTH.
    pub tls: bool,
    pub authenticated: bool,
    /// Header names in lower case.
    pub headers: std::collections::BTreeMap<String, String>,
    pub text: Option<String>,
    pub html: Option<String>,
}

impl Mail {
    pub fn header(&self, name: &str) -> &str {
        self.headers.get(name).map_or("", String::as_str)
    }

    pub fn subject(&self) -> &str {
        self.header("subject")
    }
}

impl Smtp {
    /// Starts the server, keeping its messages under `dir`.
    pub fn start(dir: &Path) -> Result<Smtp> {
        std::fs::create_dir_all(dir)?;
        let (user, password) = ("cone-mailer".to_string(), "smtp-test-password".to_string());
        let mut cmd = Command::new(venv_bin("python")?);
        cmd.arg(workspace_root().join("crates/cone-testkit/python/smtp_server.py"))
            .arg(dir)
            .args([&user, &password])
            .stderr(Stdio::inherit());
        let (child, addr) = Child::spawn_ready("aiosmtpd", cmd, Duration::from_secs(30))?;
        let (host, port) = addr.rsplit_once(':').context("the SMTP server's address")?;
        Ok(Smtp { _child: child, dir: dir.to_path_buf(), host: host.into(), port: port.parse()?, user, password })
    }

    /// The `notifications.email` settings that send here, with the password in a 0600 file under the directory.
    pub fn settings(&self, expiry_warning: &str) -> Result<String> {
        let password_file = self.dir.join("smtp.secret");
        std::fs::write(&password_file, &self.password)?;
        std::fs::set_permissions(&password_file, std::os::unix::fs::PermissionsExt::from_mode(0o600))?;
        Ok(format!(
            "notifications:\n  expiry_warning: {expiry_warning}\n  email:\n    from: \"Cone <cone@example.com>\"\n    \
             host: {}\n    port: {}\n    tls: starttls\n    username: {}\n    password_file: {}\n    ca_file: {}\n",
            self.host,
            self.port,
            self.user,
            password_file.display(),
            self.dir.join("ca.pem").display()
        ))
    }

    /// Every message accepted so far, in order.
    pub fn messages(&self) -> Result<Vec<Mail>> {
        let mut names: Vec<PathBuf> = std::fs::read_dir(&self.dir)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "json"))
            .collect();
        names.sort();
        names
            .iter()
            .map(|p| serde_json::from_slice(&std::fs::read(p)?).with_context(|| format!("{}", p.display())))
            .collect()
    }

    /// Waits up to `timeout` for a message to `to` whose subject contains `subject`.
    pub fn wait_for(&self, to: &str, subject: &str, timeout: Duration) -> Result<Mail> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(m) = self
                .messages()?
                .into_iter()
                .find(|m| m.rcpt_tos.iter().any(|r| r == to) && m.subject().contains(subject))
            {
                return Ok(m);
            }
            if Instant::now() > deadline {
                let seen: Vec<String> =
                    self.messages()?.iter().map(|m| format!("{:?} {}", m.rcpt_tos, m.subject())).collect();
                bail!("no message to {to} about {subject:?} within {timeout:?}; received: {seen:?}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}
