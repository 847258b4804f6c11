//! `cone-server`: the control plane. `serve` runs the API, the sign-in page, the web console and the workers;
//! `set-password` gives a local user a password (read from standard input); `verify-audit` checks the audit log's
//! hash chain and `export-audit` writes the log as JSON Lines.

mod access;
mod app;
mod audit;
mod auth;
mod cache;
mod config;
mod db;
mod drift;
mod http;
mod iam;
mod metrics;
mod rules;
mod tokens;
mod web;
mod webhooks;
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
        Command::ExportAudit { config, since, until, output } => {
            let config = config::Config::load(&config)?;
            let since = since.map(|t| audit::parse_time(&t, "--since")).transpose()?;
            let until = until.map(|t| audit::parse_time(&t, "--until")).transpose()?;
            audit::check_range(since, until)?;
            let db = db::Db::open(&config.database).await?;
            let filter = db::AuditFilter { since, until, ..Default::default() };
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
        Command::Serve { config } => serve(&config).await,
    }
}

async fn serve(file: &std::path::Path) -> Result<()> {
    let mut config = config::Config::load(file)?;
    metrics::install()?;
    // Secrets first: a webhook whose secret cannot be read stops the start, before anything is recorded for it.
    let sender = Arc::new(webhooks::Sender::new(&config.webhooks, |name| std::env::var(name).ok())?);
    // The identity provider's client secret is read again at each sign-in; reading it now stops a start without it.
    if let Some(oidc) = &config.oidc {
        oidc.secret.read("oidc", |name| std::env::var(name).ok())?;
    }
    let routes = config.webhooks.iter().map(|w| (w.name.clone(), w.events.clone())).collect();
    let db = db::Db::open(&config.database).await?.with_webhooks(routes);
    let access = access::load_at_start(&db, &config, &file.display().to_string()).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}; is another server using it?", config.listen))?;
    let addr = listener.local_addr()?;
    let public_url =
        config.public_url.clone().unwrap_or_else(|| format!("http://{addr}")).trim_end_matches('/').to_string();
    let settings =
        cone_aws::AwsSettings { sso_region: config.aws.sso_region.clone(), ..cone_aws::AwsSettings::from_env()? };
    // A baton-aws deployment turns these on in the environment; either there or in the file turns them on.
    config.aws.sync_iam |= settings.sync_iam;
    config.aws.sync_secrets |= settings.sync_secrets;
    config.aws.organizations = settings.orgs_enabled;
    let connector = Arc::new(settings.connect().await?);
    let app_id = config.aws.app_id.clone();
    let state = http::AppState {
        db,
        config: Arc::new(config),
        access: Arc::new(arc_swap::ArcSwap::from_pointee(access)),
        public_url: public_url.clone(),
        task_changes: broadcast::channel(1024).0,
        wake: Arc::new(Notify::new()),
        sync_now: Arc::new(Notify::new()),
        sync_status: Arc::new(std::sync::Mutex::new(cone_api::ConnectorStatus {
            app_id: app_id.clone(),
            state: cone_api::CONNECTOR_SYNCING.into(),
            last_success_at: None,
            last_attempt_at: None,
            last_error: None,
        })),
        sign_in_failures: Arc::default(),
    };
    let access_changed = Arc::new(Notify::new());
    tokio::spawn(db::forward_changes(
        state.db.clone(),
        state.config.database.clone(),
        state.task_changes.clone(),
        access_changed.clone(),
    ));
    tokio::spawn(access::follow(state.clone(), access_changed));
    // The workers start first: grants that ended while the server was down are revoked at once, whatever the
    // initial sync's duration or outcome.
    workers::spawn_reconciler(state.clone(), connector.clone());
    workers::spawn_webhook_sender(state.clone(), sender);
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
