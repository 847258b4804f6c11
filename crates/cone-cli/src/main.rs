//! `cone-cli`: every `cone` command. The `cone` binary answers `credential_process` cache hits itself and runs
//! this program for everything else.

mod aws;
mod get;
mod login;
mod notifications;
mod output;
mod pkce;
mod review;
mod select;
mod settings;
mod sso;
mod ui;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{Context, Result};
use clap::{CommandFactory, Parser, Subcommand};
use output::{Format, Output, View};
use select::Selector;

#[derive(Parser)]
#[command(name = "cone", bin_name = "cone", version, about = "Just-in-time access to AWS through IAM Identity Center")]
struct Cli {
    /// How to show results: aligned tables, tables with ids, or complete JSON.
    #[arg(long, short = 'o', global = true, value_enum, default_value = "table", env = "CONE_OUTPUT")]
    output: Format,
    /// The cone profile: one Cone server and its AWS settings.
    #[arg(long = "profile", short = 'p', global = true, default_value = settings::DEFAULT_PROFILE, env = "CONE_PROFILE")]
    cone_profile: String,
    /// Never prompt; fail with a message saying which flag is missing instead.
    #[arg(long, short = 'i', global = true, env = "CONE_NON_INTERACTIVE")]
    non_interactive: bool,
    /// Present the API token in this file (readable by you only) instead of the `cone login` session; so does
    /// CONE_TOKEN holding the token itself. The server is CONE_SERVER_URL, else the session's.
    #[arg(long, global = true, value_name = "FILE", env = "CONE_TOKEN_FILE")]
    token_file: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Sign in to a Cone server.
    Login { server_url: String },
    /// Sign out of the Cone server and forget the token.
    Logout,
    /// Show who you are signed in as.
    Whoami,
    /// List the entitlements you can request.
    Search {
        /// Words that all appear in the alias, role or group, account name or account id.
        #[arg(long, short = 'q')]
        query: Option<String>,
        /// Only entitlements of this account (its id or name).
        #[arg(long)]
        account: Option<String>,
        /// Only entitlements of this kind.
        #[arg(long, value_parser = [
            cone_api::KIND_AWS_PERMISSION_SET, cone_api::KIND_AWS_IDC_GROUP_MEMBERSHIP,
            cone_api::KIND_AWS_IAM_GROUP_MEMBERSHIP,
        ])]
        kind: Option<String>,
        #[arg(long)]
        alias: Option<String>,
        /// Only entitlements of this app.
        #[arg(long)]
        app: Option<String>,
        /// Only what you have now.
        #[arg(long, conflicts_with = "not_granted")]
        granted: bool,
        /// Only what you do not have.
        #[arg(long)]
        not_granted: bool,
    },
    /// Request access to an entitlement (or more time on access you have).
    Get {
        #[command(flatten)]
        selector: Selector,
        #[arg(long, short = 'j')]
        justification: Option<String>,
        /// How long, such as 30m, 2h, 1d or 1w2d (default: the server's default, within the entitlement's maximum).
        #[arg(long, short = 'd')]
        duration: Option<String>,
        /// The request form as a JSON object, such as '{"ticket": "OPS-42"}'.
        #[arg(long)]
        form_data: Option<String>,
        /// Wait until the request is granted or closed; exit 1 unless granted.
        #[arg(long, short = 'w')]
        wait: bool,
        /// Ask for more time on access you already have.
        #[arg(long, alias = "force")]
        extend: bool,
        /// Break-glass: follow the policy's emergency steps (needs a justification).
        #[arg(long)]
        emergency_access: bool,
    },
    /// Give back access now, and withdraw open requests for it.
    Drop {
        #[command(flatten)]
        selector: Selector,
    },
    /// Check whether you have access now; exit 2 when you do not.
    Has {
        #[command(flatten)]
        selector: Selector,
    },
    /// AWS CLI integration.
    Aws {
        #[command(subcommand)]
        command: AwsCommand,
    },
    /// Look at, decide and discuss access requests.
    Task {
        #[command(subcommand)]
        command: TaskCommand,
    },
    /// The connector to AWS: how its syncs stand, and (administrators) the credentials of `cone-aws serve`.
    Connector {
        #[command(subcommand)]
        command: ConnectorCommand,
    },
    /// API tokens for scripts: personal ones, and service accounts' (administrators).
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
    /// What Cone tells you by email, and (administrators) what it sent.
    Notifications {
        #[command(subcommand)]
        command: NotificationsCommand,
    },
    /// User access reviews: decide the items given to you; create and close campaigns (administrators).
    Review {
        #[command(subcommand)]
        command: review::ReviewCommand,
    },
    /// The access document: access profiles, entitlement management and policies (administrators).
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Print a shell completion script, for example `cone completions bash > /etc/bash_completion.d/cone`.
    Completions { shell: clap_complete::Shell },
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
        /// Also remove the profiles cone wrote whose entitlement you can no longer request.
        #[arg(long)]
        prune: bool,
        #[command(subcommand)]
        show: Option<SetupShow>,
    },
    /// Sign in to AWS IAM Identity Center: in the browser when there is one here, else with a device code.
    Login {
        /// Sign in with a code on any device instead of a browser on this machine (for SSH sessions).
        #[arg(long, conflicts_with = "no_browser")]
        device_code: bool,
        /// Do not start a browser; print the sign-in URL to open on this machine.
        #[arg(long)]
        no_browser: bool,
    },
    /// Sign out of AWS IAM Identity Center and remove cached role credentials.
    Logout,
    /// Print credentials for a profile as a `credential_process`, requesting access when needed.
    Credentials { profile: String },
    /// Print shell commands that put a profile's credentials in the environment: eval "$(cone aws env NAME)".
    Env { profile: String },
    /// Open the AWS console as a profile's role (requesting access when needed).
    Console {
        /// The profile, as `cone aws setup` named it (the entitlement's alias).
        #[arg(required_unless_present = "query")]
        profile: Option<String>,
        /// Words that all appear in the entitlement (as `cone get -q`); several matches are offered as a choice on a
        /// terminal.
        #[arg(long, short = 'q', conflicts_with = "profile")]
        query: Option<String>,
        /// Where in the console to land (default: the console home in the profile's region).
        #[arg(long)]
        destination: Option<String>,
        /// Print the sign-in URL instead of opening a browser.
        #[arg(long)]
        print: bool,
    },
    /// Run a command with a profile's credentials in its environment: cone aws exec NAME -- terraform plan.
    Exec {
        profile: String,
        #[arg(last = true, required = true)]
        command: Vec<String>,
    },
}

#[derive(Subcommand)]
enum SetupShow {
    /// Show the saved SSO settings.
    Show,
}

#[derive(Subcommand)]
enum TaskCommand {
    /// Show a task and its latest history.
    Get { id: i64 },
    /// Show a task's whole history, oldest first.
    History { id: i64 },
    /// List your requests, with --approvable those waiting for your decision, with --all everyone's
    /// (administrators; `--all --state granted` lists every active grant).
    Search {
        #[arg(long, conflicts_with = "all")]
        approvable: bool,
        #[arg(long)]
        all: bool,
        /// open, closed, live (open or granted), all, or one state such as granted or pending_approval.
        #[arg(long, default_value = "all", value_parser = [
            "open", "closed", "live", "all", "pending_approval", "provisioning", "granted", "denied", "failed",
            "expired", "cancelled", "released", "timed_out",
        ])]
        state: String,
        /// Only this requester's tasks.
        #[arg(long, default_value = "")]
        user: String,
        /// Only tasks on this account (its id, or its name in any case).
        #[arg(long, default_value = "")]
        account: String,
        /// Only tasks on this permission set (its name, in any case).
        #[arg(long, default_value = "")]
        permission_set: String,
    },
    /// End the grant of a task now, saying why (administrators); the requester is shown who and why.
    Withdraw {
        id: i64,
        #[arg(long)]
        reason: String,
    },
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
    /// Add a comment to a task.
    Comment { id: i64, comment: String },
    /// Withdraw your request before it is decided.
    Cancel { id: i64 },
    /// Move your undecided request to its policy's emergency steps (break-glass).
    Escalate { id: i64 },
}

#[derive(Subcommand)]
enum NotificationsCommand {
    /// Show your preferences and the channels that reach you.
    Show,
    /// Change your preferences; what you leave out stays as it is.
    Set {
        /// The channels to use (`email`), or `all` for every channel that reaches you.
        #[arg(long, value_delimiter = ',')]
        channels: Option<Vec<String>>,
        /// Kinds never to send, such as `granted,expiring` (of approval_needed, decided, granted, failed,
        /// expiring, ended, drift, review_needed); `none` to mute nothing.
        #[arg(long, value_delimiter = ',')]
        mute: Option<Vec<String>>,
        /// Requests to approve as one message an hour (`on`) or each at once (`off`).
        #[arg(long)]
        digest: Option<Toggle>,
    },
    /// Send a test message to yourself, or (administrators) to someone else.
    Test { user: Option<String> },
    /// Every notification, newest first, with its state and last error (administrators).
    List {
        /// Only `pending`, `sent` or `failed` ones.
        #[arg(long)]
        state: Option<String>,
        /// Where the previous page ended (its last line says).
        #[arg(long)]
        page_token: Option<String>,
    },
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Toggle {
    On,
    Off,
}

#[derive(Subcommand)]
enum ConnectorCommand {
    /// How the server's syncs with AWS stand, and (administrators) the connector processes heard from.
    Status,
    /// Issue new credentials for `cone-aws serve` (BATON_CLIENT_ID, BATON_CLIENT_SECRET); those before stop working
    /// at once. The secret is shown once. Administrators only.
    Rotate,
    /// Revoke the connector's credentials: no `cone-aws serve` may connect until new ones are issued.
    Revoke,
}

#[derive(Subcommand)]
enum TokenCommand {
    /// Create an API token that acts as you (or, with --service, as a service account); its secret is shown once.
    Create {
        /// What the token is for, such as "ci deploys".
        name: String,
        /// Days until it stops working (1 to 3650); without it, it works until revoked.
        #[arg(long)]
        expires_in_days: Option<i64>,
        /// Create it for this service account (`service:<name>`, made with its first token); administrators only.
        #[arg(long)]
        service: Option<String>,
    },
    /// List your API tokens (administrators: and every service token); secrets are never shown again.
    List {
        /// Everyone's tokens, personal ones too (administrators).
        #[arg(long)]
        all: bool,
    },
    /// Revoke an API token; it stops working at once.
    Revoke { id: i64 },
    /// Sign a person out everywhere (administrators): their `cone login` sessions, console sessions and API
    /// tokens stop working at once; their grants stay.
    SignOut { username: String },
}

#[derive(Subcommand)]
enum PolicyCommand {
    /// Print the access document in force (or an earlier version) as YAML, ready to edit and apply.
    Show {
        #[arg(long)]
        version: Option<i64>,
    },
    /// Check a document (YAML file, `-` for standard input) without applying it: what it defines, or what is wrong.
    Check { file: PathBuf },
    /// Apply a document (YAML file, `-` for standard input); it is checked first and then in force on every server.
    Apply {
        file: PathBuf,
        /// Why it changes; kept with the version.
        #[arg(long, short = 'm', default_value = "")]
        comment: String,
        /// The version the change started from (see `show`): refused if another was applied since.
        #[arg(long)]
        base_version: Option<i64>,
    },
    /// List the versions, newest first: who applied each, when and why.
    History,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let out = Output { format: cli.output };
    if let Err(e) = settings::select(&cli.cone_profile) {
        return fail(&e, out);
    }
    if let Some(path) = cli.token_file.clone() {
        settings::use_token_file(path);
    }
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => return fail(&anyhow::Error::from(e).context("cannot start the async runtime"), out),
    };
    match runtime.block_on(run(cli, out)) {
        Ok(code) => code,
        Err(e) => fail(&e, out),
    }
}

/// Errors go to stderr: as the message, or with `-o json` as `{"error": {"code", "message", "fields"?}}`.
fn fail(e: &anyhow::Error, out: Output) -> ExitCode {
    if out.json() {
        let (code, fields) = match e.downcast_ref::<cone_client::Failure>().and_then(|f| f.api()) {
            Some(api) => (api.code.clone(), api.fields.clone()),
            None => ("error".into(), vec![]),
        };
        let message = settings::with_profile(&explained(e));
        let mut error = serde_json::json!({ "code": code, "message": message });
        if !fields.is_empty() {
            error["fields"] = serde_json::json!(fields);
        }
        eprintln!("{}", serde_json::json!({ "error": error }));
    } else {
        // The message may carry what the server or AWS said: no escape sequence of theirs reaches the terminal.
        eprintln!("{}", settings::with_profile(&cone_core::naming::printable_lines(&explained(e))));
    }
    ExitCode::FAILURE
}

/// The error for people: a refused API token is not a session to sign in to again.
fn explained(e: &anyhow::Error) -> String {
    let refused =
        matches!(e.downcast_ref::<cone_client::Failure>(), Some(cone_client::Failure::Api { status: 401, .. }));
    match settings::headless_source() {
        Some(source) if refused => format!(
            "The API token from {source} was refused: it has expired or was revoked. Create a new one with \
             `cone token create` and use that."
        ),
        _ => format!("{e:#}"),
    }
}

/// A document from a file, or standard input for `-`.
fn read_document(file: &std::path::Path) -> Result<String> {
    if file == std::path::Path::new("-") {
        return std::io::read_to_string(std::io::stdin()).context("cannot read the document from standard input");
    }
    std::fs::read_to_string(file).with_context(|| format!("cannot read {}", file.display()))
}

fn exit(ok: bool, code_when_not: u8) -> ExitCode {
    if ok { ExitCode::SUCCESS } else { ExitCode::from(code_when_not) }
}

async fn run(cli: Cli, out: Output) -> Result<ExitCode> {
    let interactive = !cli.non_interactive;
    match cli.command {
        Command::Login { server_url } => login::login(&server_url).await?,
        Command::Logout => login::logout().await?,
        Command::Whoami => {
            let me = settings::client()?.me().await?;
            out.show(&me, || {
                View::Fields(vec![
                    ("User", me.username.clone(), false),
                    ("Name", me.display_name.clone(), false),
                    ("Email", me.email.clone(), false),
                    ("Groups", me.groups.join(", "), false),
                    ("Administrator", if me.admin { "yes" } else { "no" }.into(), true),
                ])
            })?;
        }
        Command::Search { query, account, kind, alias, app, granted, not_granted } => {
            let filters = [
                ("q", query.as_deref().unwrap_or_default()),
                ("account", account.as_deref().unwrap_or_default()),
                ("kind", kind.as_deref().unwrap_or_default()),
            ];
            let mut list = settings::client()?.search_entitlements(&filters).await?;
            let now = chrono::Utc::now();
            list.retain(|e| {
                let has = e.held_at(now);
                // Servers before searching ignore `q`; the same words are checked here.
                query.as_deref().is_none_or(|q| e.matches(q))
                    && alias.as_deref().is_none_or(|a| e.alias.eq_ignore_ascii_case(a))
                    && app.as_deref().is_none_or(|a| e.app_id == a)
                    && (!granted || has)
                    && (!not_granted || !has)
            });
            list.sort_by(|a, b| a.alias.cmp(&b.alias));
            out.show(&list, || output::entitlements_view(&list))?;
        }
        Command::Get { selector, justification, duration, form_data, wait, extend, emergency_access } => {
            let args = get::GetArgs {
                selector,
                justification,
                duration,
                form_data,
                wait,
                extend,
                emergency: emergency_access,
            };
            return Ok(exit(get::get(args, out, interactive).await?, 1));
        }
        Command::Drop { selector } => get::drop(selector, out, interactive).await?,
        Command::Has { selector } => return Ok(exit(get::has(selector, out, interactive).await?, 2)),
        Command::Aws { command } => match command {
            AwsCommand::Setup { show: Some(SetupShow::Show), .. } => aws::setup_show(out)?,
            AwsCommand::Setup { sso_url, sso_region, region, prune, show: None } => {
                aws::setup(aws::SetupArgs { sso_url, sso_region, region, prune }, out).await?
            }
            AwsCommand::Login { device_code, no_browser } => {
                let flow = match (device_code, no_browser) {
                    (true, _) => sso::Flow::DeviceCode,
                    (false, true) => sso::Flow::Browser { open: false },
                    (false, false) => sso::Flow::default_here(),
                };
                aws::login(flow).await?
            }
            AwsCommand::Logout => aws::logout().await?,
            AwsCommand::Credentials { profile } => aws::credentials(&profile).await?,
            AwsCommand::Env { profile } => aws::env(&profile, out.json()).await?,
            AwsCommand::Exec { profile, command } => aws::exec(&profile, &command).await?,
            AwsCommand::Console { profile, query, destination, print } => {
                let profile = match profile {
                    Some(profile) => profile,
                    None => {
                        let by_words = Selector { query, ..Selector::default() };
                        select::resolve(&settings::client()?, &by_words, interactive).await?.alias
                    }
                };
                aws::console(&profile, destination, print, out).await?
            }
        },
        Command::Task { command } => {
            let api = settings::client()?;
            let task = match command {
                TaskCommand::Search { approvable, all, state, user, account, permission_set } => {
                    let scope = match (approvable, all) {
                        (true, _) => "approvable",
                        (_, true) => "all",
                        _ => "mine",
                    };
                    let filters = [
                        ("scope", scope),
                        ("state", state.as_str()),
                        ("user", user.as_str()),
                        ("account", account.as_str()),
                        ("permission_set", permission_set.as_str()),
                    ];
                    let tasks = api.search_tasks(&filters).await?;
                    out.show(&tasks, || output::tasks_view(&tasks))?;
                    return Ok(ExitCode::SUCCESS);
                }
                TaskCommand::History { id } => {
                    let events = api.task_history(id).await?;
                    out.show(&events, || output::events_view(&events))?;
                    return Ok(ExitCode::SUCCESS);
                }
                TaskCommand::Get { id } => api.task(id, None, std::time::Duration::ZERO).await?,
                TaskCommand::Approve { id, comment } => api.act(id, "approve", &comment).await?,
                TaskCommand::Deny { id, comment } => api.act(id, "deny", &comment).await?,
                TaskCommand::Comment { id, comment } => api.act(id, "comment", &comment).await?,
                TaskCommand::Cancel { id } => api.act(id, "cancel", "").await?,
                TaskCommand::Escalate { id } => api.act(id, "escalate", "").await?,
                TaskCommand::Withdraw { id, reason } => api.withdraw(id, &reason).await?,
            };
            out.show(&task, || output::task_view(&task))?;
        }
        Command::Connector { command } => {
            let api = settings::client()?;
            match command {
                ConnectorCommand::Status => {
                    let all = api.connectors().await?;
                    out.show(&all, || output::connectors_view(&all))?;
                }
                ConnectorCommand::Rotate => {
                    let issued = api.rotate_connector_credentials().await?;
                    out.show(&issued, || {
                        View::Line(format!(
                            "BATON_CLIENT_ID={}\nBATON_CLIENT_SECRET={}",
                            issued.client_id, issued.client_secret
                        ))
                    })?;
                    if !out.json() {
                        eprintln!(
                            "Give these to cone-aws serve (a Kubernetes Secret, a systemd credential); the secret \
                             cannot be shown again. Connectors using the credentials before are refused from now on."
                        );
                    }
                }
                ConnectorCommand::Revoke => {
                    api.revoke_connector_credentials().await?;
                    eprintln!(
                        "Revoked: no cone-aws serve may connect until `cone connector rotate` issues new credentials."
                    );
                }
            }
        }
        Command::Token { command } => {
            let api = settings::client()?;
            match command {
                TokenCommand::Create { name, expires_in_days, service } => {
                    let created = match service {
                        Some(service) => {
                            let req = cone_api::CreateServiceToken { service, name, expires_in_days };
                            api.create_service_token(&req).await?
                        }
                        None => api.create_token(&cone_api::CreateToken { name, expires_in_days }).await?,
                    };
                    out.show(&created, || output::new_token_view(&created))?;
                    if !out.json() {
                        eprintln!(
                            "Copy the secret now: it cannot be shown again. Send it as `Authorization: Bearer <secret>`."
                        );
                    }
                }
                TokenCommand::List { all } => {
                    let list = api.tokens(all).await?;
                    out.show(&list, || output::tokens_view(&list.tokens))?;
                }
                TokenCommand::Revoke { id } => {
                    let token = api.revoke_token(id).await?;
                    out.show(&token, || {
                        View::Line(format!("Revoked token {} (\"{}\" of {}).", token.id, token.name, token.owner))
                    })?;
                }
                TokenCommand::SignOut { username } => {
                    let done = api.sign_out_user(&username).await?;
                    out.show(&done, || {
                        View::Line(format!(
                            "Signed {} out everywhere: {} cone login session(s), {} console session(s), {} API token(s).",
                            done.username, done.sessions, done.console_sessions, done.api_tokens
                        ))
                    })?;
                }
            }
        }
        Command::Notifications { command } => notifications::run(settings::client()?, command, out).await?,
        Command::Review { command } => review::run(settings::client()?, command, out).await?,
        Command::Policy { command } => {
            let api = settings::client()?;
            match command {
                PolicyCommand::Show { version } => {
                    let v = api.config(version).await?;
                    out.show(&v, || View::Line(v.document.trim_end().to_string()))?;
                    if !out.json() {
                        eprintln!("{}", output::config_version_line(&v));
                    }
                }
                PolicyCommand::Check { file } => {
                    let req = cone_api::ApplyConfig { document: read_document(&file)?, ..Default::default() };
                    let summary = api.check_config(&req).await?;
                    out.show(&summary, || output::config_summary_view(&summary))?;
                }
                PolicyCommand::Apply { file, comment, base_version } => {
                    let req = cone_api::ApplyConfig { document: read_document(&file)?, comment, base_version };
                    let applied = api.apply_config(&req).await?;
                    out.show(&applied, || {
                        let v = &applied.version;
                        View::Line(match applied.changed {
                            true => format!("Applied: version {} is in force.", v.version),
                            false => format!("Unchanged: the document is version {}, in force already.", v.version),
                        })
                    })?;
                }
                PolicyCommand::History => {
                    let versions = api.config_versions().await?;
                    out.show(&versions, || output::config_versions_view(&versions))?;
                }
            }
        }
        Command::Completions { shell } => {
            clap_complete::generate(shell, &mut Cli::command(), "cone", &mut std::io::stdout());
        }
    }
    Ok(ExitCode::SUCCESS)
}
