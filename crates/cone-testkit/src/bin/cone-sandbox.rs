//! The local sandbox behind `cargo xtask sandbox`: starts everything, signs alice in, and shows one JIT request
//! through the real `aws` CLI. With `--demo` it exits when done; otherwise it stays up until Ctrl-C.
//! `--dir PATH` puts its state somewhere other than `.sandbox/`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Stdio};

use anyhow::{Context, Result, bail};
use cone_testkit::{Sandbox, workspace_root};

const PROFILE: &str = "staging-readonlyaccess";

#[tokio::main(flavor = "current_thread")]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let demo = args.iter().any(|a| a == "--demo");
    let dir = match args.iter().position(|a| a == "--dir") {
        Some(i) => match args.get(i + 1) {
            Some(d) => PathBuf::from(d),
            None => {
                eprintln!("--dir needs a directory");
                return ExitCode::FAILURE;
            }
        },
        None => workspace_root().join(".sandbox"),
    };
    match run(demo, &dir).await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("\nsandbox failed: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn step(text: &str) {
    println!("\n==> {text}");
    let _ = std::io::stdout().flush();
}

async fn run(demo: bool, dir: &Path) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).with_context(|| format!("cannot clear {}", dir.display()))?;
    }
    step("Starting moto, seeding the organisation, starting the Identity Center emulator and cone-server");
    let sandbox = Sandbox::start(dir, "").await?;
    println!("moto:         {}", sandbox.moto.endpoint);
    println!("emulator:     {}", sandbox.emulator_url);
    println!("cone-server:  {} (SQLite in {})", sandbox.server_url, dir.display());
    for (name, id) in &sandbox.org.accounts {
        println!("account:      {name} {id}");
    }

    step("Signing alice in to Cone and IAM Identity Center, and running `cone aws setup`");
    print!("{}", sandbox.sign_in("alice").await?);

    step(&format!("$ aws sts get-caller-identity --profile {PROFILE}"));
    let output = run_on_terminal(&sandbox, &format!("aws sts get-caller-identity --profile {PROFILE}"))?;
    print!("{output}");
    if !output.contains("Access granted!") || !output.contains("assumed-role/AWSReservedSSO_ReadOnlyAccess_") {
        bail!(
            "the JIT request did not end with `Access granted!` and an AWSReservedSSO_ReadOnlyAccess_ role; see the output above"
        );
    }

    let env_file = sandbox.dir.join("env.sh");
    let exports: String = sandbox
        .env("alice")?
        .iter()
        .map(|(k, v)| format!("export {k}='{v}'\n"))
        .chain(["unset AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN AWS_PROFILE AWS_DEFAULT_PROFILE\n"
            .to_string()])
        .collect();
    std::fs::write(&env_file, exports)?;
    step("The sandbox works end to end");
    if demo {
        return Ok(());
    }
    println!(
        "Try more as alice (bob and carol: sign in with `cone login {}`, passwords <name>-sandbox-password):",
        sandbox.server_url
    );
    println!("\n    source {}\n", env_file.display());
    println!("The web console is at {}/console (same users and passwords).", sandbox.server_url);
    println!("Press Ctrl-C to stop every process the sandbox started.");
    tokio::signal::ctrl_c().await.context("waiting for Ctrl-C")?;
    println!("\nStopping.");
    Ok(())
}

/// Runs a shell command on a pseudo-terminal (`script`), as a person would: the AWS CLI captures a
/// `credential_process`'s stderr, so cone's messages reach people through the terminal.
fn run_on_terminal(sandbox: &Sandbox, command: &str) -> Result<String> {
    let mut cmd = sandbox.command("alice", "script")?;
    cmd.args(["-qefc", command, "/dev/null"]).stdout(Stdio::piped()).stderr(Stdio::piped());
    let out = cmd.output().context("running `script` (package bsdutils) to give the AWS CLI a terminal")?;
    let text = String::from_utf8_lossy(&out.stdout).replace('\r', "") + &String::from_utf8_lossy(&out.stderr);
    if !out.status.success() {
        bail!("`{command}` failed:\n{text}");
    }
    Ok(text)
}
