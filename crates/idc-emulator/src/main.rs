//! A local stand-in for the AWS SSO OIDC and SSO portal APIs, backed by moto's Identity Center state.
//! Prints `READY http://127.0.0.1:<port>` on stdout once it accepts connections.

mod access;
mod errors;
mod http;
mod moto;
mod oidc;
mod portal;

use std::io::Write;
use std::sync::Arc;

use anyhow::{Context, Result};
use aws_config::{BehaviorVersion, Region};
use chrono::TimeDelta;
use clap::{ArgAction, Parser};
use tracing_subscriber::EnvFilter;

/// Emulates AWS IAM Identity Center sign-in (SSO OIDC) and the SSO portal for local tests.
///
/// moto is reached through the usual AWS SDK environment (AWS_ENDPOINT_URL, AWS_ACCESS_KEY_ID, ...).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Port on 127.0.0.1 to listen on; 0 picks a free one.
    #[arg(long, default_value_t = 0)]
    port: u16,
    /// Region of moto's Identity Center instance, also shown in verification URIs.
    #[arg(long, default_value = "us-east-1")]
    region: String,
    /// Lifetime of issued access tokens, in seconds.
    #[arg(long, default_value_t = 28800, value_parser = clap::value_parser!(u32).range(1..))]
    token_ttl_secs: u32,
    /// Whether CreateToken issues refresh tokens.
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    issue_refresh_tokens: bool,
}

#[tokio::main]
async fn main() -> Result<()> {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info")))
        .init();
    let args = Args::parse();

    let aws = aws_config::defaults(BehaviorVersion::latest()).region(Region::new(args.region.clone())).load().await;
    let settings = oidc::Settings {
        token_ttl: TimeDelta::seconds(i64::from(args.token_ttl_secs)),
        issue_refresh_tokens: args.issue_refresh_tokens,
    };
    let state = http::AppState::new(oidc::Oidc::new(settings, &args.region), moto::Directory::new(&aws));

    let listener = tokio::net::TcpListener::bind(("127.0.0.1", args.port))
        .await
        .with_context(|| format!("cannot listen on 127.0.0.1:{}; pick another --port or 0", args.port))?;
    let address = listener.local_addr().context("reading the bound address")?;
    tracing::info!(%address, region = %args.region, ?settings, "idc-emulator listening");
    {
        // Test harnesses block on this line; it must leave the pipe buffer now.
        let mut stdout = std::io::stdout().lock();
        writeln!(stdout, "READY http://{address}").context("writing the READY line to stdout")?;
        stdout.flush().context("flushing the READY line")?;
    }

    axum::serve(listener, http::router(Arc::new(state)))
        .with_graceful_shutdown(async {
            if let Err(err) = tokio::signal::ctrl_c().await {
                tracing::error!("cannot listen for Ctrl-C ({err}); stop the emulator by killing it");
                std::future::pending::<()>().await;
            }
        })
        .await
        .context("serving HTTP")
}
