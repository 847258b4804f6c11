//! A whole Cone on one machine: moto seeded with the sandbox organisation, the Identity Center emulator and
//! cone-server (on SQLite, or on PostgreSQL in a throwaway cluster), plus per-user home directories for running
//! `cone` and the real `aws` CLI.

use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail};

use crate::console::Console;
use crate::process::aws_env;
use crate::{Child, Moto, Postgres, SandboxOrg, moto_sdk_config, seed_sandbox, target_bin, venv_bin};

/// The start URL profiles use. It is never contacted: endpoints point at the emulator.
pub const START_URL: &str = "https://d-0000000000.awsapps.com/start";

/// The policies of the sandbox organisation.
const POLICIES: &str = r#"  - name: readonly-auto-approved
    match: { permission_set: ReadOnlyAccess }
    max_duration: 8h
    steps: [accept]
  - name: admin-needs-an-approver
    match: { permission_set: AdministratorAccess }
    max_duration: 1h
    steps: [{ approval: { group: approvers } }]
  - name: dba-needs-a-ticket
    match: { permission_set: DatabaseAdministrator }
    max_duration: 1h
    form: [{ name: ticket, required: true }]
    steps: [accept]
"#;

/// The sandbox users' passwords for the server's sign-in page.
pub fn password(user: &str) -> String {
    format!("{user}-sandbox-password")
}

/// What `cone get -o json` prints: whether it asked, for what, and the task it filed.
#[derive(Debug, serde::Deserialize)]
pub struct Got {
    /// `requested`, or `already_granted`.
    pub outcome: String,
    pub entitlement: cone_api::Entitlement,
    pub task: Option<cone_api::Task>,
}

impl Got {
    /// The task the request filed.
    pub fn task(&self) -> &cone_api::Task {
        self.task.as_ref().unwrap_or_else(|| panic!("cone get filed no task: {self:?}"))
    }
}

/// Where cone-server stores.
pub enum Store {
    /// A SQLite file in the sandbox's directory (the default).
    Sqlite,
    Postgres(Postgres),
}

impl Store {
    /// A throwaway PostgreSQL cluster, or `None` (after a SKIP line naming `test`) where PostgreSQL is not
    /// installed; `cargo xtask test` installs it.
    pub fn postgres(test: &str) -> Result<Option<Store>> {
        let pg = Postgres::start()?;
        if pg.is_none() {
            eprintln!("SKIP {test} on PostgreSQL: it is not installed (cargo xtask test installs it)");
        }
        Ok(pg.map(Store::Postgres))
    }
}

/// Runs each `async fn NAME(store: Store)` as a test on SQLite (`sqlite::NAME`) and on PostgreSQL
/// (`postgres::NAME`, which skips with a line on stderr where PostgreSQL is not installed).
#[macro_export]
macro_rules! on_both_stores {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                super::$name($crate::Store::Sqlite).await
            })*
        }
        mod postgres {
            $(#[tokio::test(flavor = "multi_thread")]
            async fn $name() {
                if let Some(store) = $crate::Store::postgres(stringify!($name)).unwrap() {
                    super::$name(store).await
                }
            })*
        }
    };
}

pub struct Sandbox {
    // Fields drop in declaration order: the server and the emulator stop before moto and the database they use.
    server: Option<Child>,
    _emulator: Child,
    _store: Store,
    pub moto: Moto,
    pub dir: PathBuf,
    pub org: SandboxOrg,
    pub emulator_url: String,
    pub server_url: String,
}

impl Sandbox {
    /// Starts everything under `dir` (which must be empty or absent). `extra_policies` (YAML list items) come
    /// before the sandbox's own, so they win where both match.
    pub async fn start(dir: &Path, extra_policies: &str) -> Result<Sandbox> {
        Sandbox::start_with(dir, "", extra_policies).await
    }

    /// [`Sandbox::start`] with extra server settings (YAML lines, such as `pending_timeout: 3s`). They follow the
    /// `aws:` section directly, so indented first lines add to it (`  sync_interval_secs: 10`).
    pub async fn start_with(dir: &Path, settings: &str, extra_policies: &str) -> Result<Sandbox> {
        Sandbox::start_on(Store::Sqlite, dir, settings, extra_policies).await
    }

    /// [`Sandbox::start_with`] on the given store.
    pub async fn start_on(store: Store, dir: &Path, settings: &str, extra_policies: &str) -> Result<Sandbox> {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
        let dir = dir.canonicalize()?;
        let moto = Moto::start()?;
        let org = seed_sandbox(&moto.endpoint).await.context("seeding the sandbox organisation into moto")?;

        let (emulator, emulator_url) = spawn_emulator(&moto, "us-east-1")?;

        let config = dir.join("cone-server.yaml");
        std::fs::write(
            &config,
            format!(
                "listen: 127.0.0.1:0\ndatabase: {}\naws:\n  sso_region: us-east-1\n{settings}admins:\n  users: [carol]\npolicies:\n{extra_policies}{POLICIES}",
                match &store {
                    Store::Sqlite => dir.join("cone.db").display().to_string(),
                    Store::Postgres(pg) => pg.url.clone(),
                }
            ),
        )?;
        set_passwords(&config)?;
        let (server, server_url) = spawn_server(&config, Some(&moto.endpoint), &[], None)?;
        Ok(Sandbox {
            dir,
            org,
            moto,
            emulator_url,
            server_url,
            server: Some(server),
            _emulator: emulator,
            _store: store,
        })
    }

    /// A Cone user with a password (`password(user)`) and no Identity Center user: signs in, holds no AWS access.
    pub fn add_local_user(&self, user: &str) -> Result<()> {
        let mut set = Command::new(target_bin("cone-server")?);
        set.args(["set-password", "--config"]).arg(self.dir.join("cone-server.yaml")).arg(user);
        run_with_stdin(set, &password(user))
    }

    /// The process id of the running cone-server, if one runs.
    pub fn server_pid(&self) -> Option<u32> {
        self.server.as_ref().map(Child::id)
    }

    /// Stops cone-server (to show what works without it).
    pub fn stop_server(&mut self) {
        self.server = None;
    }

    /// Starts cone-server again on the same configuration and database, as after a crash or an upgrade; a server
    /// still running is stopped first. It listens on a new port, so `server_url` changes (the users' `cone`
    /// settings keep the old one).
    pub fn start_server(&mut self) -> Result<()> {
        self.server = None;
        let (server, url) = self.spawn_replica(&self.moto.endpoint)?;
        self.server = Some(server);
        self.server_url = url;
        Ok(())
    }

    /// Rewrites the server's configuration with `edit` and restarts it, with the sandbox users' passwords set
    /// again (in case the edit moved the database).
    pub fn reconfigure_server(&mut self, edit: impl FnOnce(String) -> String) -> Result<()> {
        self.server = None;
        let config = self.dir.join("cone-server.yaml");
        std::fs::write(&config, edit(std::fs::read_to_string(&config)?))?;
        set_passwords(&config)?;
        self.start_server()
    }

    /// Another Identity Center emulator on the same moto, as IAM Identity Center in another region: it knows
    /// nothing of the first one's sign-ins.
    pub fn emulator_in(&self, region: &str) -> Result<(Child, String)> {
        spawn_emulator(&self.moto, region)
    }

    /// Another cone-server on the same configuration and database, whose AWS is at `aws_endpoint` (moto, or
    /// something in front of it); returns it once it is ready, with its URL.
    pub fn spawn_replica(&self, aws_endpoint: &str) -> Result<(Child, String)> {
        self.spawn_replica_with(aws_endpoint, &[])
    }

    /// [`Sandbox::spawn_replica`] with these environment variables too.
    pub fn spawn_replica_with(&self, aws_endpoint: &str, env: &[(&str, &str)]) -> Result<(Child, String)> {
        spawn_server(&self.dir.join("cone-server.yaml"), Some(aws_endpoint), env, None)
    }

    /// [`Sandbox::spawn_replica_with`], its log (standard error) written to `log`.
    pub fn spawn_replica_logging(&self, env: &[(&str, &str)], log: std::fs::File) -> Result<(Child, String)> {
        spawn_server(&self.dir.join("cone-server.yaml"), Some(&self.moto.endpoint), env, Some(log))
    }

    /// cone-server with no `AWS_*` or `BATON_*` variable in its environment at all, as beside an external
    /// connector.
    pub fn spawn_replica_without_aws(&self) -> Result<(Child, String)> {
        spawn_server(&self.dir.join("cone-server.yaml"), None, &[], None)
    }

    /// `cone-aws serve` taking work from the server at `server_url` with the connector credentials given, and
    /// calling AWS (moto) at `aws_endpoint`; `env` adds to or overrides its `BATON_*` settings.
    pub fn spawn_connector(
        &self,
        server_url: &str,
        (client_id, secret): (&str, &str),
        aws_endpoint: &str,
        env: &[(&str, &str)],
    ) -> Result<Child> {
        let mut cmd = Command::new(target_bin("cone-aws")?);
        cmd.arg("serve").envs(aws_env(aws_endpoint)).env("RUST_LOG", "warn");
        cmd.envs([
            ("CONE_SERVER_URL", server_url),
            ("BATON_CLIENT_ID", client_id),
            ("BATON_CLIENT_SECRET", secret),
            ("BATON_PROVISIONING", "true"),
        ]);
        cmd.envs(env.iter().copied());
        Child::spawn("cone-aws serve", cmd)
    }

    /// Adds `bench/seed_org.py`'s organisation (ACCOUNTS, PERMISSION_SETS, USERS from the environment; 200, 20 and
    /// 2,000 by default) to the sandbox's moto, and restarts cone-server with room in its AWS rate limits, so that its
    /// first sync brings it all in: the server and its URL, once alice's catalog holds every account's permission sets.
    pub async fn seed_org(&mut self) -> Result<(Child, String)> {
        let script = crate::workspace_root().join("bench/seed_org.py");
        eprintln!("seeding the organisation into moto (minutes)");
        let seeded = Command::new(venv_bin("python")?)
            .arg(&script)
            .arg(&self.moto.endpoint)
            .env("INTO_EXISTING", "1")
            .output()
            .context("running bench/seed_org.py")?;
        if !seeded.status.success() {
            bail!("bench/seed_org.py failed: {}", String::from_utf8_lossy(&seeded.stderr));
        }
        let sizes: serde_json::Value =
            serde_json::from_slice(&seeded.stdout).context("bench/seed_org.py printed no JSON")?;
        // The seeded member accounts' permission sets (the management account's count too, where moto provisions them).
        let members = sizes["sizes"]["accounts"].as_u64().unwrap_or(1).saturating_sub(1);
        let pairs = members * sizes["sizes"]["permission_sets"].as_u64().unwrap_or(0);
        eprintln!("seeded {}; syncing", sizes["sizes"]);
        self.stop_server();
        let fast = [("CONE_AWS_SSO_RATE", "1000"), ("CONE_AWS_ORGS_RATE", "1000")];
        let (server, url) = self.spawn_replica_with(&self.moto.endpoint.clone(), &fast)?;
        let client = cone_client::Client::new(&url, &self.api_token("alice")?)?;
        let deadline = std::time::Instant::now() + Duration::from_secs(900);
        loop {
            let kinds = client.search_entitlements(&[("kind", cone_api::KIND_AWS_PERMISSION_SET)]).await;
            let n = kinds.map(|all| all.len() as u64).unwrap_or(0);
            // The whole first sync, drift sweep included, so that what is measured next does not wait on its writes.
            let synced =
                client.connectors().await.is_ok_and(|c| c.iter().all(|c| c.state != cone_api::CONNECTOR_SYNCING));
            if n >= pairs && synced {
                eprintln!("the catalog holds {n} permission sets by account");
                return Ok((server, url));
            }
            if std::time::Instant::now() > deadline {
                bail!("the catalog held {n} of {pairs} entitlements after 15 minutes of syncing");
            }
            tokio::time::sleep(Duration::from_secs(5)).await;
        }
    }

    /// The principal ids (users and groups) assigned `permission_set` in `account`, as moto holds them.
    pub async fn assigned_principals(&self, account: &str, permission_set: &str) -> Result<Vec<String>> {
        let sso = aws_sdk_ssoadmin::Client::new(&moto_sdk_config(&self.moto.endpoint));
        let out = sso
            .list_account_assignments()
            .instance_arn(&self.org.instance_arn)
            .account_id(self.org.account_id(account).context("no such sandbox account")?)
            .permission_set_arn(self.org.permission_set_arn(permission_set).context("no such sandbox permission set")?)
            .send()
            .await
            .context("listing account assignments in moto")?;
        Ok(out.account_assignments.unwrap_or_default().into_iter().filter_map(|a| a.principal_id).collect())
    }

    /// `user`'s Cone API token, from the file `cone login` wrote.
    pub fn api_token(&self, user: &str) -> Result<String> {
        let path = self.home(user).join(".conductorone/token.json");
        let saved: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&path)?)?;
        Ok(saved["access_token"].as_str().context("token.json has no access_token")?.to_string())
    }

    /// The typed API client, acting as `user` with the token `cone login` saved for them.
    pub fn client(&self, user: &str) -> Result<cone_client::Client> {
        cone_client::Client::new(&self.server_url, &self.api_token(user)?)
    }

    pub fn home(&self, user: &str) -> PathBuf {
        self.dir.join("home").join(user)
    }

    /// The environment a person in the sandbox has: their own HOME, cone and `aws` on PATH, and every AWS
    /// endpoint on this machine.
    pub fn env(&self, user: &str) -> Result<Vec<(String, String)>> {
        let home = self.home(user);
        let cone_dir = target_bin("cone")?.parent().context("target dir")?.to_path_buf();
        let venv = venv_bin("aws")?.parent().context("venv dir")?.to_path_buf();
        let path = format!("{}:{}:{}", cone_dir.display(), venv.display(), std::env::var("PATH").unwrap_or_default());
        Ok(vec![
            ("HOME".into(), home.display().to_string()),
            ("PATH".into(), path),
            ("AWS_CONFIG_FILE".into(), home.join(".aws/config").display().to_string()),
            ("AWS_SHARED_CREDENTIALS_FILE".into(), home.join(".aws/credentials").display().to_string()),
            ("AWS_ENDPOINT_URL_SSO".into(), self.emulator_url.clone()),
            ("AWS_ENDPOINT_URL_SSO_OIDC".into(), self.emulator_url.clone()),
            ("AWS_ENDPOINT_URL_STS".into(), self.moto.endpoint.clone()),
        ])
    }

    /// A command run as `user`: sandbox environment, no AWS variables from outside, and no controlling
    /// terminal (as under Terraform or an IDE), unless the caller gives it one.
    pub fn command(&self, user: &str, program: &str) -> Result<Command> {
        let mut cmd = Command::new(program);
        for var in [
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_PROFILE",
            "AWS_DEFAULT_PROFILE",
            "AWS_ENDPOINT_URL",
            "AWS_REGION",
            "AWS_DEFAULT_REGION",
            "AWS_DATA_PATH",
        ] {
            cmd.env_remove(var);
        }
        cmd.envs(self.env(user)?).stdin(Stdio::null());
        Ok(cmd)
    }

    /// Like [`Sandbox::command`] but detached from any terminal, so output can only go to stdout and stderr.
    pub fn detached(&self, user: &str, program: &str) -> Result<Command> {
        let mut cmd = self.command(user, program)?;
        // SAFETY: setsid is async-signal-safe and touches no memory of the parent.
        unsafe {
            cmd.pre_exec(|| {
                libc::setsid();
                Ok(())
            });
        }
        Ok(cmd)
    }

    pub fn cone(&self, user: &str, args: &[&str]) -> Result<Output> {
        let mut cmd = self.detached(user, "cone")?;
        cmd.args(args);
        Ok(cmd.output()?)
    }

    pub fn aws(&self, user: &str, args: &[&str]) -> Result<Output> {
        let mut cmd = self.detached(user, "aws")?;
        cmd.args(args);
        Ok(cmd.output()?)
    }

    /// `aws sso get-role-credentials` with the Identity Center token `user`'s cone cached: what AWS answers for
    /// the role now, past every cache.
    pub fn role_credentials(&self, user: &str, account: &str, role: &str) -> Result<Output> {
        let token = std::fs::read_dir(self.home(user).join(".aws/sso/cache"))?
            .filter_map(std::result::Result::ok)
            .find_map(|e| {
                let v: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(e.path()).ok()?).ok()?;
                v["accessToken"].as_str().map(String::from)
            })
            .context("cone cached no Identity Center token")?;
        let account_id = self.org.account_id(account).context("no such sandbox account")?;
        self.aws(
            user,
            &[
                "sso",
                "get-role-credentials",
                "--role-name",
                role,
                "--account-id",
                account_id,
                "--access-token",
                &token,
                "--region",
                "us-east-1",
            ],
        )
    }

    /// `aws sts get-caller-identity --profile PROFILE`, the smallest call that needs credentials.
    pub fn caller_identity(&self, user: &str, profile: &str) -> Result<Output> {
        self.aws(user, &["sts", "get-caller-identity", "--profile", profile])
    }

    /// Signs `user` in to Cone (approving the device code on the server's page with their password), writes
    /// their AWS profiles with `cone aws setup`, and signs them in to Identity Center (approving through the
    /// emulator's control endpoint).
    pub async fn sign_in(&self, user: &str) -> Result<String> {
        let http = reqwest::Client::new();
        self.cone_login(user, &[], user).await?;

        let setup = self.cone(
            user,
            &["aws", "setup", "--sso-url", START_URL, "--sso-region", "us-east-1", "--region", "us-east-1"],
        )?;
        let setup_text = String::from_utf8_lossy(&setup.stdout).to_string() + &String::from_utf8_lossy(&setup.stderr);
        if !setup.status.success() {
            bail!("cone aws setup failed: {setup_text}");
        }

        let code = self.start_and_read_code(user, &["aws", "login", "--device-code"], "and confirm this code: ")?;
        let body = serde_json::json!({ "user_code": code.1, "user_name": user });
        let resp = http.post(format!("{}/_emu/device/approve", self.emulator_url)).json(&body).send().await?;
        if !resp.status().is_success() {
            bail!("the emulator refused to approve {user}'s sign-in: {}", resp.text().await.unwrap_or_default());
        }
        wait_ok(code.0, "cone aws login")?;
        Ok(setup_text)
    }

    /// Runs `cone [FLAGS] login` in `home`'s HOME and approves it on the console's device page as `user` (signed in
    /// with their password), so that one person can hold sessions of several cone profiles.
    pub async fn cone_login(&self, home: &str, flags: &[&str], user: &str) -> Result<()> {
        let code = self.start_cone_login(home, flags)?;
        let mut console = Console::sign_in(&self.server_url, user, &password(user)).await?;
        let fields = [("user_code", code.1.as_str()), ("decision", "approve")];
        let answer = console.submit("/console/device", "/console/device", &fields).await?;
        if !answer.contains("The command line is signed in.") {
            bail!("the console did not approve {user}'s sign-in: {answer}");
        }
        wait_ok(code.0, "cone login")
    }

    /// Starts `cone [FLAGS] login` in `home`'s HOME and returns it, waiting for approval, with the code it printed.
    pub fn start_cone_login(&self, home: &str, flags: &[&str]) -> Result<(std::process::Child, String)> {
        let args: Vec<&str> = flags.iter().copied().chain(["login", self.server_url.as_str()]).collect();
        self.start_and_read_code(home, &args, "Code: ")
    }

    /// Starts `cone ARGS` and returns it with the code it printed after `prefix` on stderr.
    fn start_and_read_code(&self, user: &str, args: &[&str], prefix: &str) -> Result<(std::process::Child, String)> {
        let mut cmd = self.detached(user, "cone")?;
        cmd.args(args).stderr(Stdio::piped());
        let mut child = cmd.spawn().context("starting cone")?;
        let stderr = child.stderr.take().context("cone stderr")?;
        let mut lines = BufReader::new(stderr).lines();
        let code = loop {
            let Some(line) = lines.next() else {
                let status = child.wait()?;
                bail!("`cone {}` exited ({status}) without printing a code", args.join(" "));
            };
            if let Some(code) = line?.strip_prefix(prefix) {
                break code.trim().to_string();
            }
        };
        // Keep draining stderr so the child never blocks on a full pipe.
        std::thread::spawn(move || lines.for_each(drop));
        Ok((child, code))
    }
}

fn spawn_emulator(moto: &Moto, region: &str) -> Result<(Child, String)> {
    let mut emu = Command::new(target_bin("idc-emulator")?);
    emu.args(["--port", "0", "--region", region]).envs(moto.aws_env()).env("RUST_LOG", "warn");
    Child::spawn_ready("idc-emulator", emu, Duration::from_secs(30))
}

fn set_passwords(config: &Path) -> Result<()> {
    for user in ["alice", "bob", "carol"] {
        let mut set = Command::new(target_bin("cone-server")?);
        set.args(["set-password", "--config"]).arg(config).arg(user);
        run_with_stdin(set, &password(user))?;
    }
    Ok(())
}

/// `cone-server serve` on `config`, with moto (or a proxy to it) at `aws_endpoint` as its AWS; returns it once it
/// reports READY, with its URL.
fn spawn_server(
    config: &Path,
    aws_endpoint: Option<&str>,
    env: &[(&str, &str)],
    log: Option<std::fs::File>,
) -> Result<(Child, String)> {
    let mut srv = Command::new(target_bin("cone-server")?);
    srv.args(["serve", "--config"]).arg(config).env("CONE_LOG", "warn");
    match aws_endpoint {
        Some(endpoint) => {
            srv.envs(aws_env(endpoint));
        }
        None => {
            for (name, _) in std::env::vars().filter(|(n, _)| n.starts_with("AWS_") || n.starts_with("BATON_")) {
                srv.env_remove(name);
            }
        }
    }
    srv.envs(env.iter().copied());
    if let Some(log) = log {
        srv.stderr(log);
    }
    // A server syncs before it reports ready; at an organisation's size, beside other tests, that takes minutes.
    Child::spawn_ready("cone-server", srv, Duration::from_secs(300))
}

fn wait_ok(mut child: std::process::Child, what: &str) -> Result<()> {
    let status = child.wait()?;
    if !status.success() {
        bail!("{what} failed ({status})");
    }
    Ok(())
}

fn run_with_stdin(mut cmd: Command, input: &str) -> Result<()> {
    use std::io::Write;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::null()).stderr(Stdio::piped()).spawn()?;
    child.stdin.take().context("stdin")?.write_all(format!("{input}\n").as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("{:?} failed: {}", cmd.get_program(), String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}
