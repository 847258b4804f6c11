//! `cargo xtask sandbox [--demo]` and `cargo xtask test`: the two commands of the README.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// What the tests and the sandbox need from PyPI, installed into `.venv` (git-ignored).
const PYTHON_PACKAGES: &[&str] = &["moto[server]==5.2.1", "awscli==1.45.11"];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("sandbox") => sandbox(args.iter().any(|a| a == "--demo")),
        Some("test") => test(),
        _ => Err("usage: cargo xtask sandbox [--demo] | cargo xtask test".to_string()),
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

/// Creates `.venv` with moto and the AWS CLI v1 unless it already holds exactly these versions.
fn ensure_python_env() -> Result<(), String> {
    let venv = root().join(".venv");
    let stamp = venv.join("cone-requirements.txt");
    let wanted = PYTHON_PACKAGES.join("\n");
    if std::fs::read_to_string(&stamp).is_ok_and(|s| s == wanted)
        && venv.join("bin/moto_server").exists()
        && venv.join("bin/aws").exists()
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

fn build() -> Result<(), String> {
    let mut cmd = cargo();
    cmd.args(["build", "--workspace", "--bins"]);
    run(cmd, "cargo build")
}

fn sandbox(demo: bool) -> Result<(), String> {
    ensure_python_env()?;
    build()?;
    let mut cmd = cargo();
    cmd.args(["run", "--quiet", "-p", "cone-testkit", "--bin", "cone-sandbox", "--"]);
    if demo {
        cmd.arg("--demo");
    }
    run(cmd, "the sandbox")
}

fn test() -> Result<(), String> {
    ensure_python_env()?;
    build()?;
    let mut cmd = cargo();
    cmd.args(["test", "--workspace"]);
    run(cmd, "cargo test")
}
