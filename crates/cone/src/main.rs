//! `cone`: request and use just-in-time access to AWS from the command line.

mod aws;
mod client;
mod files;
mod get;
mod login;
mod settings;
mod sso;
mod ui;

use std::process::ExitCode;

use anyhow::Result;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "cone", version, about = "Just-in-time access to AWS through IAM Identity Center")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign in to a Cone server.
    Login { server_url: String },
    /// Show who you are signed in as.
    Whoami,
    /// Request access to an entitlement.
    Get {
        #[arg(long, short = 'a')]
        app_id: String,
        #[arg(long, short = 'e')]
        entitlement_id: String,
        #[arg(long, short = 'j', default_value = "")]
        justification: String,
        /// How long, such as 30m, 2h or 1d (default: the server's default, within the entitlement's maximum).
        #[arg(long, short = 'd')]
        duration: Option<String>,
        /// The request form as a JSON object, such as '{"ticket": "OPS-42"}'.
        #[arg(long)]
        form_data: Option<String>,
    },
    /// AWS CLI integration.
    Aws {
        #[command(subcommand)]
        command: AwsCommand,
    },
    /// Look at and decide access requests.
    Task {
        #[command(subcommand)]
        command: TaskCommand,
    },
}

#[derive(Subcommand)]
enum AwsCommand {
    /// Save SSO settings and write an AWS CLI profile for every permission set you can request.
    Setup {
        /// Your AWS access portal URL (required the first time).
        #[arg(long)]
        sso_url: Option<String>,
        /// Region of IAM Identity Center (default us-east-1).
        #[arg(long)]
        sso_region: Option<String>,
        /// Default region of the generated profiles (default us-east-1).
        #[arg(long)]
        region: Option<String>,
        #[command(subcommand)]
        show: Option<SetupShow>,
    },
    /// Sign in to AWS IAM Identity Center.
    Login,
    /// Print credentials for a profile as a `credential_process`, requesting access when needed.
    Credentials { profile: String },
}

#[derive(Subcommand)]
enum SetupShow {
    /// Show the saved SSO settings.
    Show,
}

#[derive(Subcommand)]
enum TaskCommand {
    /// Show a task.
    Get { id: i64 },
    /// Approve a task that waits for you.
    Approve {
        id: i64,
        #[arg(long, default_value = "")]
        comment: String,
    },
    /// Deny a task that waits for you.
    Deny {
        id: i64,
        #[arg(long, default_value = "")]
        comment: String,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Credentials from the cache are printed before any async runtime or network client exists.
    if let Command::Aws { command: AwsCommand::Credentials { profile } } = &cli.command {
        match aws::cached_credentials(profile) {
            Ok(true) => return ExitCode::SUCCESS,
            Ok(false) => {}
            Err(e) => return fail(&e),
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(&anyhow::Error::from(e).context("cannot start the async runtime")),
    };
    match runtime.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

fn fail(e: &anyhow::Error) -> ExitCode {
    eprintln!("{e:#}");
    ExitCode::FAILURE
}

async fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Login { server_url } => login::login(&server_url).await,
        Command::Whoami => {
            let me = client::Api::from_saved()?.me().await?;
            println!("User:   {}", me.username);
            println!("Name:   {}", me.display_name);
            println!("Email:  {}", me.email);
            println!("Groups: {}", me.groups.join(", "));
            Ok(())
        }
        Command::Get { app_id, entitlement_id, justification, duration, form_data } => {
            let task = get::get(get::GetArgs { app_id, entitlement_id, justification, duration, form_data }).await?;
            print_task(&task);
            Ok(())
        }
        Command::Aws { command } => match command {
            AwsCommand::Setup { show: Some(SetupShow::Show), .. } => aws::setup_show(),
            AwsCommand::Setup { sso_url, sso_region, region, show: None } => {
                aws::setup(aws::SetupArgs { sso_url, sso_region, region }).await
            }
            AwsCommand::Login => aws::login().await,
            AwsCommand::Credentials { profile } => aws::credentials(&profile).await,
        },
        Command::Task { command } => {
            let api = client::Api::from_saved()?;
            let task = match command {
                TaskCommand::Get { id } => api.task(id, None, std::time::Duration::ZERO).await?,
                TaskCommand::Approve { id, comment } => api.decide(id, true, &comment).await?,
                TaskCommand::Deny { id, comment } => api.decide(id, false, &comment).await?,
            };
            print_task(&task);
            Ok(())
        }
    }
}

fn print_task(t: &cone_api::Task) {
    println!("Task:        {}", t.id);
    println!("Entitlement: {}", t.entitlement_name);
    println!("Requester:   {}", t.requester);
    println!("State:       {}", t.state.replace('_', " "));
    if let Some(g) = t.waiting_for_group.as_ref().filter(|_| t.state == "pending_approval") {
        println!("Waiting for: a member of group \"{g}\"");
    }
    if let Some(d) = &t.decided_by {
        println!("Decided by:  {d}");
    }
    if let Some(r) = &t.reason {
        println!("Reason:      {r}");
    }
    println!("Duration:    {}", cone_core::duration::format(t.duration_secs));
    if let Some(until) = t.grant_expires_at {
        println!("Grant ends:  {}", until.format("%Y-%m-%d %H:%M:%S UTC"));
    }
    println!("Justification: {}", t.justification);
}
