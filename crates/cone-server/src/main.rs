//! `cone-server`: the control plane. `serve` runs the API, the sign-in page and the workers;
//! `set-password` gives a local user a password (read from standard input).

mod app;
mod auth;
mod config;
mod db;
mod drift;
mod http;
mod metrics;
mod rules;
mod tokens;
mod workers;

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};
use tokio::sync::{Notify, broadcast};

#[derive(Parser)]
#[command(name = "cone-server", version, about = "Cone control plane: just-in-time access to AWS")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the server. Prints `READY <url>` on standard output once it accepts requests.
    Serve {
        #[arg(long, short)]
        config: PathBuf,
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
}

#[tokio::main]
async fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("CONE_LOG").unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    if let Err(e) = run(Cli::parse()).await {
        eprintln!("cone-server: {e:#}");
        std::process::exit(1);
    }
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::SetPassword { config, username } => {
            let config = config::Config::load(&config)?;
            let mut password = String::new();
            std::io::stdin().lock().read_line(&mut password).context("cannot read the password from standard input")?;
            let password = password.trim_end_matches(['\r', '\n']);
            if password.len() < 8 {
                bail!("the password must have at least 8 characters");
            }
            let db = db::Db::open(&config.database).await?;
            db.set_password(&username, &auth::hash_password(password)?).await?;
            eprintln!("Password set for {username}.");
            Ok(())
        }
        Command::VerifyAudit { config } => {
            let config = config::Config::load(&config)?;
            match db::Db::open(&config.database).await?.audit_chain_break().await? {
                None => {
                    eprintln!("The audit log is intact.");
                    Ok(())
                }
                Some(id) => bail!("the audit log was altered at or just before entry {id}"),
            }
        }
        Command::Serve { config } => serve(config::Config::load(&config)?).await,
    }
}

async fn serve(config: config::Config) -> Result<()> {
    metrics::install()?;
    let db = db::Db::open(&config.database).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}; is another server using it?", config.listen))?;
    let addr = listener.local_addr()?;
    let public_url =
        config.public_url.clone().unwrap_or_else(|| format!("http://{addr}")).trim_end_matches('/').to_string();
    let connector = Arc::new(cone_aws::Connector::from_env(&config.aws.sso_region).await?);
    let app_id = config.aws.app_id.clone();
    let state = http::AppState {
        db,
        config: Arc::new(config),
        public_url: public_url.clone(),
        task_changes: broadcast::channel(1024).0,
        wake: Arc::new(Notify::new()),
        sync_status: Arc::new(std::sync::Mutex::new(cone_api::ConnectorStatus {
            app_id: app_id.clone(),
            state: cone_api::CONNECTOR_SYNCING.into(),
            last_success_at: None,
            last_attempt_at: None,
            last_error: None,
        })),
    };
    tokio::spawn(db::forward_task_changes(state.config.database.clone(), state.task_changes.clone()));
    // The workers start first: grants that ended while the server was down are revoked at once, whatever the
    // initial sync's duration or outcome.
    workers::spawn_reconciler(state.clone(), connector.clone());
    let mut last_sweep = None;
    if let Err(e) = workers::sync_once(&state, &connector, &mut last_sweep).await {
        tracing::error!("initial sync with AWS failed; serving what the database holds and retrying later: {e:#}");
    }
    println!("READY {public_url}");
    std::io::stdout().flush()?;
    tracing::info!("listening on {addr}");
    let server = axum::serve(listener, http::router(state.clone())).with_graceful_shutdown(async {
        let _ = tokio::signal::ctrl_c().await;
    });
    // The sync loop runs beside the server rather than on a spawned task: it borrows across awaits in ways
    // that need not be `Send`.
    tokio::select! {
        result = server => result?,
        () = workers::sync_periodically(state, connector, last_sweep) => {}
    }
    Ok(())
}
