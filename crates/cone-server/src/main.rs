//! `cone-server`: the control plane. `serve` runs the API, the sign-in page, the web console and the workers;
//! `config check` reads a configuration as `serve` would, without starting; `set-password` gives a local user a
//! password (read from standard input); `verify-audit` checks the audit log's hash chain and `export-audit` writes
//! the log as JSON Lines.
//!
//! The modules form a stack, each using only those below it (the tidy test `server_layers` checks):
//! `server` and `main` on top; `api`, `web` and `workers`; `services`; `state` and `error`; `store`; and at the
//! bottom `config` with the pure `drift`, `webhooks`, `notify`, `throttle` and `clients`.

mod api;
mod clients;
mod config;
mod drift;
mod error;
mod notify;
mod server;
mod services;
mod state;
mod store;
mod throttle;
mod web;
mod webhooks;
mod workers;

use std::io::{BufRead, Write};
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cone-server", version, about = "Cone control plane: just-in-time access to AWS")]
struct Cli {
    /// How log lines on standard error are written: `text` for people, `json` (one object a line) for a log
    /// collector. Which lines: `CONE_LOG` (such as `info`, or `info,request=off` without the request log).
    #[arg(long, global = true, value_enum, env = "CONE_LOG_FORMAT", default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum LogFormat {
    Text,
    Json,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server. Prints `READY <url>` on standard output once it accepts requests.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Check a configuration without starting, or describe the configuration file.
    Config {
        #[command(subcommand)]
        command: ConfigCommand,
    },
    /// Set a local user's password, read from the first line of standard input.
    SetPassword {
        #[arg(long, short)]
        config: PathBuf,
        username: String,
    },
    /// Check that the audit log's hash chain is intact.
    VerifyAudit {
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Write the audit log as JSON Lines (one entry a line, in order), to check or keep elsewhere (docs/audit.md).
    ExportAudit {
        #[arg(long, short)]
        config: PathBuf,
        /// Only entries at or after this RFC 3339 time (2025-01-31T00:00:00Z).
        #[arg(long)]
        since: Option<String>,
        /// Only entries before this RFC 3339 time.
        #[arg(long)]
        until: Option<String>,
        /// Write here (replaced when complete, mode 0600) instead of to standard output.
        #[arg(long, short)]
        output: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum ConfigCommand {
    /// Read the configuration and every secret it names, as `serve` would, and say what it sets up; exits 1 with
    /// the first mistake. Opens no database and calls nothing.
    Check {
        #[arg(long)]
        config: PathBuf,
    },
    /// Print the configuration file's JSON Schema, for editors that check YAML as it is written.
    Schema,
    /// Print the configuration reference in Markdown (docs/configuration.md).
    Reference,
}

#[tokio::main]
async fn main() {
    let cli = Cli::parse();
    let logs = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CONE_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr);
    match cli.log_format {
        LogFormat::Text => logs.init(),
        LogFormat::Json => logs.json().flatten_event(true).init(),
    }
    if let Err(e) = run(cli).await {
        eprintln!("cone-server: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    use services::audit;
    match cli.command {
        Command::SetPassword { config, username } => {
            let config = config::Config::load(&config)?;
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.len() < 8 {
                bail!("the password must have at least 8 characters");
            }
            let db = store::Db::open(&config.database).await?;
            db.set_password(&username, &services::auth::hash_password(password)?).await?;
            eprintln!("Password set for {username}.");
            Ok(())
        }
        Command::VerifyAudit { config } => {
            let config = config::Config::load(&config)?;
            match store::Db::open(&config.database).await?.audit_chain_break().await? {
                None => {
                    eprintln!("The audit log is intact.");
                    Ok(())
                }
                Some(id) => bail!("the audit log was altered at or just before entry {id}"),
            }
        }
        Command::ExportAudit { config, since, until, output } => {
            let config = config::Config::load(&config)?;
            let since = since.map(|t| audit::parse_time(&t, "--since")).transpose()?;
            let until = until.map(|t| audit::parse_time(&t, "--until")).transpose()?;
            audit::check_range(since, until)?;
            let db = store::Db::open(&config.database).await?;
            let filter = store::AuditFilter { since, until, ..Default::default() };
            let done = audit::export_to(&db, filter, output.as_deref()).await?;
            let to = output.map_or("standard output".to_string(), |p| p.display().to_string());
            match (done.first, done.last) {
                (Some(first), Some(last)) => {
                    eprintln!("Exported {} audit entries ({first} to {last}) to {to}.", done.entries)
                }
                _ => eprintln!("No audit entries in that range; {to} has none."),
            }
            match done.chain_break {
                None => Ok(()),
                Some(id) => bail!(
                    "entry {id} does not match its hash or its predecessor: the audit log was altered; run \
                     `cone-server verify-audit` and keep this export as evidence"
                ),
            }
        }
        Command::Serve { config } => server::serve(&config).await,
        Command::Config { command: ConfigCommand::Check { config } } => {
            println!("{}", server::check(&config)?);
            Ok(())
        }
        Command::Config { command: ConfigCommand::Schema } => print(&format!("{:#}\n", config::reference::schema())),
        Command::Config { command: ConfigCommand::Reference } => print(&config::reference::markdown()),
    }
}

/// Writes to standard output, which may be a closed pipe (`| head`): an error, not a panic.
fn print(text: &str) -> Result<()> {
    std::io::stdout().lock().write_all(text.as_bytes()).context("cannot write to standard output")
}
