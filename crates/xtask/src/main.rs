//! `cargo xtask sandbox [--demo]`, `cargo xtask test` and `cargo xtask dist`: the commands of the README. The tidy
//! tests (`tidy`) check the repository itself.

mod dist;
#[cfg(test)]
mod tidy;

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// What the tests and the sandbox need from PyPI, installed into `.venv` (git-ignored). boto3 is pinned to the
/// release that matches awscli's botocore; aws-sso-util (and the library doing its work) are pinned for the
/// interop tests (`crates/cone-testkit/tests/e2e/interop.rs`); schemathesis fuzzes the API from its OpenAPI
/// document (`crates/cone-testkit/tests/e2e/openapi.rs`); aiosmtpd is the SMTP server notifications are sent to
/// (`crates/cone-testkit/python/smtp_server.py`); kubernetes-validate checks `deploy/kubernetes` against the
/// Kubernetes schemas it carries (`crates/cone-testkit/tests/e2e/deploy.rs`).
const PYTHON_PACKAGES: &[&str] = &[
    "moto[server]==5.2.1",
    "awscli==1.45.11",
    "boto3==1.43.11",
    "aws-sso-util==4.33.0",
    "aws-sso-lib==1.14.0",
    "schemathesis==4.32.5",
    "aiosmtpd==1.4.6",
    "kubernetes-validate==1.37.0",
];

/// The programs the packages above install; a `.venv` missing one is installed again.
const PYTHON_PROGRAMS: &[&str] =
    &["moto_server", "aws", "aws-sso-util", "schemathesis", "aiosmtpd", "kubernetes-validate"];

/// The AWS CLI v2 the interop tests drive: Debian bookworm's package. Its endpoints are redirected with
/// `AWS_DATA_PATH` (it predates `AWS_ENDPOINT_URL_*`), so another version may not work with the tests.
const AWS_CLI_V2: &str = "/usr/bin/aws";
const AWS_CLI_V2_VERSION: &str = "aws-cli/2.9.19 ";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("sandbox") => sandbox(args.iter().any(|a| a == "--demo")),
        Some("test") => test(),
        Some("dist") => release(),
        _ => Err("usage: cargo xtask sandbox [--demo] | cargo xtask test | cargo xtask dist".to_string()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask: {e}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn cargo() -> Command {
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(mut cmd: Command, what: &str) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("cannot run {what}: {e}"))?;
    if status.success() { Ok(()) } else { Err(format!("{what} failed ({status})")) }
}

/// Creates `.venv` with the packages above unless it already holds exactly these versions (an older `.venv`
/// gets the new ones: the stamp lists every pinned package).
fn ensure_python_env() -> Result<(), String> {
    let venv = root().join(".venv");
    let stamp = venv.join("cone-requirements.txt");
    let wanted = PYTHON_PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted)
        && PYTHON_PROGRAMS.iter().all(|p| venv.join("bin").join(p).exists())
    {
        return Ok(());
    }
    eprintln!("xtask: installing {} into {}", PYTHON_PACKAGES.join(", "), venv.display());
    let mut create = Command::new("python3");
    create.args(["-m", "venv"]).arg(&venv);
    run(create, "python3 -m venv (on Debian, install python3-venv)")?;
    let mut pip = Command::new(venv.join("bin/pip"));
    pip.args(["install", "--quiet", "--disable-pip-version-check"]).args(PYTHON_PACKAGES);
    run(pip, "pip install")?;
    std::fs::write(&stamp, wanted).map_err(|e| format!("cannot write {}: {e}", stamp.display()))
}

/// `apt-get` with its arguments: root (containers, CI) runs it itself, anyone else through sudo.
fn apt(args: &[&str]) -> Command {
    let root = Command::new("id").arg("-u").output().is_ok_and(|o| o.stdout.trim_ascii() == b"0");
    let mut cmd = Command::new(if root { "apt-get" } else { "sudo" });
    cmd.args(if root { &[][..] } else { &["apt-get"][..] }).args(args).env("DEBIAN_FRONTEND", "noninteractive");
    cmd
}

fn deb_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f=${Status}", package])
        .output()
        .is_ok_and(|o| o.stdout.ends_with(b" installed"))
}

/// Installs a Debian package; the package lists are refreshed first only when it is not installed, so that a
/// package already there costs one `apt-get install` that does nothing.
fn apt_install(package: &str, why: &str) -> Result<(), String> {
    if !deb_installed(package) {
        eprintln!("xtask: installing the Debian package {package} {why}");
        run(apt(&["update", "-q"]), "apt-get update")?;
    }
    run(apt(&["install", "-y", "-q", package]), &format!("apt-get install {package}"))
}

/// The server tests run on PostgreSQL as well as SQLite, each in a throwaway cluster of Debian's binaries (the
/// tests run `initdb` and `postgres` themselves; the package's own cluster is not used).
fn ensure_postgresql() -> Result<(), String> {
    let installed = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .flatten()
        .any(|version| version.path().join("bin/initdb").is_file());
    if installed { Ok(()) } else { apt_install("postgresql", "for the server tests on PostgreSQL") }
}

/// `systemd-analyze verify` checks the systemd unit in `deploy/systemd`.
fn ensure_systemd_analyze() -> Result<(), String> {
    if Path::new("/usr/bin/systemd-analyze").exists() {
        return Ok(());
    }
    apt_install("systemd", "(systemd-analyze) to check the systemd unit")
}

fn aws_cli_v2_version() -> Option<String> {
    let out = Command::new(AWS_CLI_V2).arg("--version").output().ok()?;
    Some(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// Installs the Debian package `awscli` (AWS CLI v2) unless /usr/bin/aws already is the expected version, so a
/// second run costs one `aws --version`.
fn ensure_aws_cli_v2() -> Result<(), String> {
    if aws_cli_v2_version().is_some_and(|v| v.starts_with(AWS_CLI_V2_VERSION)) {
        return Ok(());
    }
    apt_install("awscli", "(AWS CLI v2; Debian bookworm has 2.9.19) for the interop tests")?;
    match aws_cli_v2_version() {
        Some(v) if v.starts_with(AWS_CLI_V2_VERSION) => Ok(()),
        other => Err(format!(
            "{AWS_CLI_V2} reports {:?}, but the interop tests need {}(Debian bookworm's awscli package)",
            other.unwrap_or_default(),
            AWS_CLI_V2_VERSION
        )),
    }
}

/// What the web console's browser test (`crates/cone-testkit/tests/e2e/web.rs`) drives: Debian's Chromium, and the
/// playwright-core pinned in `web-tests/package-lock.json`. `npm ci` runs only when that lock file differs from the
/// one installed last, so a second run costs two file reads.
fn ensure_browser_test() -> Result<(), String> {
    if !Path::new("/usr/bin/chromium").exists() {
        apt_install("chromium", "for the web console's browser test")?;
    }
    let dir = root().join("web-tests");
    let lock_file = dir.join("package-lock.json");
    let lock = std::fs::read_to_string(&lock_file).map_err(|e| format!("cannot read {}: {e}", lock_file.display()))?;
    let stamp = dir.join("node_modules/.cone-installed-lock.json");
    if std::fs::read_to_string(&stamp).is_ok_and(|installed| installed == lock) {
        return Ok(());
    }
    let mut npm = Command::new("npm");
    npm.args(["ci", "--no-audit", "--no-fund"]).current_dir(&dir);
    run(npm, "npm ci in web-tests (needs Node.js 20 or later with npm)")?;
    std::fs::write(&stamp, lock).map_err(|e| format!("cannot write {}: {e}", stamp.display()))
}

/// Builds every binary; with `tests`, every test target too, in one build, so that the binaries and the tests
/// share one resolution of the dependencies' features (dev-dependencies turn some on) and nothing is compiled twice.
fn build(tests: bool) -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["build", "--workspace", "--bins"]);
    if tests {
        cmd.arg("--tests");
    }
    run(cmd, "cargo build")
}

/// Runs the `cone-sandbox` that [`build`] made. Not `cargo run -p cone-testkit`: building one package resolves
/// features apart from the workspace build and compiles the AWS SDK again, for minutes.
fn sandbox(demo: bool) -> Result<(), String> {
    ensure_python_env()?;
    build(false)?;
    // This program is built into the same directory as the workspace's binaries.
    let exe = std::env::current_exe().map_err(|e| format!("cannot locate xtask's own binary: {e}"))?;
    let mut cmd = Command::new(exe.with_file_name("cone-sandbox"));
    cmd.current_dir(root());
    if demo {
        cmd.arg("--demo");
    }
    run(cmd, "the sandbox")
}

/// Builds the release binaries and packs them (`dist`) into the target directory's `dist/`.
fn release() -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["build", "--release", "--locked", "--workspace"]);
    for bin in dist::BINARIES {
        cmd.args(["--bin", bin]);
    }
    run(cmd, "cargo build --release")?;
    let target = std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), PathBuf::from);
    let out = target.join("dist");
    std::fs::create_dir_all(&out).map_err(|e| format!("cannot create {}: {e}", out.display()))?;
    let tarball =
        dist::package(&root(), &target.join("release"), &out, env!("CARGO_PKG_VERSION"), &dist::host_triple()?)?;
    println!("{}", tarball.display());
    Ok(())
}

fn test() -> Result<(), String> {
    ensure_python_env()?;
    ensure_aws_cli_v2()?;
    ensure_postgresql()?;
    ensure_browser_test()?;
    ensure_systemd_analyze()?;
    build(true)?;
    let mut cmd = cargo();
    cmd.args(["test", "--workspace"]);
    run(cmd, "cargo test")
}
