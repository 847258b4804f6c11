//! The whole server: the HTTP surface (the API, `cone login`'s device sign-in, the console, the operations
//! endpoints) on one router, and `serve`, which opens the store, starts the workers and the first sync, and listens.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use tokio::sync::Notify;

use crate::error::Error;
use crate::state::{AppState, SlackApp};
use crate::{api, config, services, store, web, workers};

pub fn router(state: AppState) -> Router {
    routes().layer(axum::middleware::from_fn_with_state(state.clone(), limit_sign_in)).with_state(state)
}

/// The endpoints anyone may call before signing in: starting and polling a device sign-in, the password form and
/// the OpenID Connect redirects.
fn before_sign_in(method: &Method, path: &str) -> bool {
    match *method {
        Method::POST => matches!(path, "/oauth/device/code" | "/oauth/token" | "/console/login"),
        Method::GET => path.starts_with("/console/login/oidc"),
        _ => false,
    }
}

/// Holds each client to its rate on the sign-in endpoints (`clients`), so that a flood from a few addresses is
/// answered cheaply with 429 and cannot stall sign-ins, approvals and expiry for everyone else.
async fn limit_sign_in(State(s): State<AppState>, req: Request, next: Next) -> Response {
    if before_sign_in(req.method(), req.uri().path()) {
        let peer = req.extensions().get::<ConnectInfo<SocketAddr>>().map(|c| c.0.ip());
        let forwarded = req.headers().get_all("x-forwarded-for").into_iter().filter_map(|v| v.to_str().ok());
        if let Some(wait) = s.clients.check(s.clients.client(peer, forwarded)) {
            metrics::counter!("cone_sign_in_limited_total").increment(1);
            let secs = wait.as_secs() + 1;
            let mut answer = Error::TooMany(format!(
                "Too many sign-in requests from your address; wait {secs} s and try again. If many people share \
                 this address, an administrator can raise clients.sign_in_rate."
            ))
            .into_response();
            answer.headers_mut().insert(header::RETRY_AFTER, secs.into());
            return answer;
        }
    }
    next.run(req).await
}

/// Every route of the server, before it gets its state.
pub(crate) fn routes() -> Router<AppState> {
    let (api, _) = api::routes();
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/oauth/device/code", post(api::session::device_authorization))
        .route("/oauth/token", post(api::session::token))
        .route("/device", get(web::device::verification_uri))
        .route(
            "/slack/interactivity",
            post(api::slack::interactivity).layer(axum::extract::DefaultBodyLimit::max(api::slack::BODY_LIMIT)),
        )
        .merge(api)
        .merge(api::metrics::routes())
        .merge(web::routes())
        .method_not_allowed_fallback(api::method_not_allowed)
        .fallback(api::not_found)
        .route_layer(axum::middleware::from_fn(api::metrics::track))
}

/// What the configuration file and the environment give, before anything is opened: checked whole, with every
/// secret they name read, so that a mistake stops the start (or `config check`) rather than a later request.
struct Prepared {
    config: config::Config,
    sender: workers::delivery::Sender,
    channels: workers::notify::Channels,
    slack: Option<Arc<SlackApp>>,
    settings: cone_aws::AwsSettings,
}

fn prepare(file: &std::path::Path) -> Result<Prepared> {
    let env = |name: &str| std::env::var(name).ok();
    let mut config = config::Config::load(file)?;
    config.aws.set_provisioning(env("BATON_PROVISIONING").as_deref())?;
    // Secrets first: a webhook whose secret cannot be read stops the start, before anything is recorded for it.
    let sender = workers::delivery::Sender::new(&config.webhooks, env)?;
    let channels = workers::notify::Channels::new(&config.notifications, env)?;
    let slack = config.notifications.slack.as_ref().map(|c| SlackApp::new(c, env)).transpose()?.map(Arc::new);
    // The identity provider's client secret is read again at each sign-in; reading it now stops a start without it.
    if let Some(oidc) = &config.oidc {
        oidc.secret.read("oidc", env)?;
    }
    refuse_connector_variables(&config, |name| std::env::var_os(name).is_some())?;
    let settings =
        cone_aws::AwsSettings { sso_region: config.aws.sso_region.clone(), ..cone_aws::AwsSettings::from_env()? };
    settings.validate()?;
    // A baton-aws deployment turns these on in the environment; either there or in the file turns them on.
    config.aws.sync_iam |= settings.sync_iam;
    config.aws.sync_secrets |= settings.sync_secrets;
    config.aws.organizations = settings.orgs_enabled;
    // An external connector reads BATON_GLOBAL_AWS_ORGS_ENABLED where it runs, and refuses the policy's calls
    // without it.
    if config.aws.revoke_sessions
        && config.aws.connector == config::ConnectorMode::Embedded
        && !config.aws.organizations
    {
        anyhow::bail!(
            "aws.revoke_sessions keeps a service control policy in AWS Organizations, which the connector does not use \
             here: set BATON_GLOBAL_AWS_ORGS_ENABLED=true (the default), or remove aws.revoke_sessions"
        );
    }
    Ok(Prepared { config, sender, channels, slack, settings })
}

/// The `BATON_*` variables that belong to the external connector (`cone-aws serve`): set for cone-server, they
/// would be ignored, so they are refused. With an external connector, every AWS setting is the connector's, and
/// only `BATON_PROVISIONING` (whether this server hands out writes at all) is the server's.
fn refuse_connector_variables(config: &config::Config, set: impl Fn(&str) -> bool) -> Result<()> {
    const CONNECTOR_ONLY: [&str; 3] = ["BATON_CLIENT_ID", "BATON_CLIENT_SECRET", "BATON_HOST_ID"];
    const AWS: [&str; 12] = [
        "BATON_ROLE_ARN",
        "BATON_EXTERNAL_ID",
        "BATON_GLOBAL_AWS_SSO_REGION",
        "BATON_GLOBAL_AWS_SSO_ENABLED",
        "BATON_GLOBAL_AWS_ORGS_ENABLED",
        "BATON_IAM_ASSUME_ROLE_NAME",
        "BATON_SCIM_ENABLED",
        "BATON_SCIM_ENDPOINT",
        "BATON_SCIM_TOKEN",
        "BATON_SYNC_IAM",
        "BATON_SYNC_SECRETS",
        "CONE_AWS_SYNC_IAM",
    ];
    if let Some(name) = CONNECTOR_ONLY.into_iter().find(|n| set(n)) {
        anyhow::bail!(
            "{name} is set for cone-server, which does not use it: it is the external connector's. Set it for \
             `cone-aws serve` (with aws.connector: external here) and remove it from cone-server's environment"
        );
    }
    if config.aws.connector == config::ConnectorMode::External
        && let Some(name) = AWS.into_iter().find(|n| set(n))
    {
        anyhow::bail!(
            "{name} is set for cone-server, but with aws.connector: external the connector (`cone-aws serve`) calls \
             AWS: set it there, and remove it here (the server's own settings are aws.sync_iam, aws.sync_secrets and \
             BATON_PROVISIONING)"
        );
    }
    Ok(())
}

/// `cone-server config check`: what `serve` would start with, said in a few lines; nothing is opened or started.
pub fn check(file: &std::path::Path) -> Result<String> {
    let Prepared { config, settings, .. } = prepare(file)?;
    let names = |list: Vec<String>| if list.is_empty() { "none".to_string() } else { list.join(", ") };
    let n = &config.notifications;
    let mut channels: Vec<String> = n.email.iter().map(|e| format!("email through {}:{}", e.host, e.port)).collect();
    channels.extend(n.slack.iter().map(|_| "Slack".to_string()));
    Ok(format!(
        "{} is valid, and every secret it names was read.\n\
         Store: {}.\n\
         Policies: {}.\n\
         Access profiles: {}.\n\
         Webhooks: {}.\n\
         Notifications: {}.\n\
         Console sign-in: passwords{}.\n\
         AWS: {}; {}.",
        file.display(),
        config.database,
        names(config.access.policies().iter().map(|p| p.name.clone()).collect()),
        names(config.access.catalog.profiles.iter().map(|p| p.name.clone()).collect()),
        names(config.webhooks.iter().map(|w| w.name.clone()).collect()),
        names(channels),
        config.oidc.as_ref().map(|o| format!(" and {}", o.name)).unwrap_or_default(),
        match config.aws.connector {
            config::ConnectorMode::Embedded =>
                format!("Identity Center in {}, called from this server", settings.sso_region),
            config::ConnectorMode::External => "through the external connector (cone-aws serve)".to_string(),
        },
        if config.aws.provisioning { "provisioning on" } else { "sync only (provisioning off)" },
    ))
}

pub async fn serve(file: &std::path::Path) -> Result<()> {
    let Prepared { config, sender, channels, slack, settings } = prepare(file)?;
    let sender = Arc::new(sender);
    api::metrics::install()?;
    let routes = config.webhooks.iter().map(|w| (w.name.clone(), w.events.clone())).collect();
    let db =
        store::Db::open(&config.database).await?.with_webhooks(routes).with_session_denials(config.aws.revoke_sessions);
    let clock = crate::state::Clock::default();
    let access = services::access::load_at_start(&db, &config, &file.display().to_string(), clock.now()).await?;
    let listener = tokio::net::TcpListener::bind(&config.listen)
        .await
        .with_context(|| format!("cannot listen on {}; is another server using it?", config.listen))?;
    let addr = listener.local_addr()?;
    let public_url =
        config.public_url.clone().unwrap_or_else(|| format!("http://{addr}")).trim_end_matches('/').to_string();
    let embedded = match config.aws.connector {
        config::ConnectorMode::Embedded => {
            Some(Arc::new(settings.connect().await?.with_outstanding_writes(config.aws.max_assignment_writes)))
        }
        config::ConnectorMode::External => None,
    };
    let state = AppState { clock, slack, ..AppState::new(db, config, access, public_url.clone()) };
    let connector = match &embedded {
        Some(c) => workers::aws::Aws::Embedded(c.clone()),
        None => {
            tracing::info!(
                "the connector is external: cone-aws serve takes the syncs and the jobs' AWS calls from here"
            );
            workers::aws::Aws::External(state.clone())
        }
    };
    let access_changed = Arc::new(Notify::new());
    tokio::spawn(store::forward_changes(
        state.db.clone(),
        state.config.database.clone(),
        state.task_changes.clone(),
        access_changed.clone(),
    ));
    tokio::spawn(services::access::follow(state.clone(), access_changed));
    // The workers start first: grants that ended while the server was down are revoked at once, whatever the
    // initial sync's duration or outcome.
    if !state.config.aws.provisioning {
        tracing::warn!(
            "sync-only mode (BATON_PROVISIONING=false or aws.provisioning: false): Cone syncs and decides but never \
             writes to AWS; approved requests wait as provisioning"
        );
    }
    let jobs = workers::jobs::spawn(state.clone(), state.config.aws.provisioning.then(|| connector.clone()));
    workers::delivery::spawn(state.clone(), sender);
    workers::notify::spawn(state.clone(), Arc::new(channels.with_console(&public_url).with_slack(state.slack.clone())));
    if state.config.aws.revoke_sessions {
        workers::denials::spawn(state.clone(), connector.clone());
    }
    // The embedded connector syncs before the server answers; an external one syncs once it connects, which
    // may be after this server starts.
    let mut last_sweep = None;
    if embedded.is_some()
        && let Err(e) = workers::sync::sync_once(&state, &connector, &mut last_sweep).await
    {
        tracing::error!("initial sync with AWS failed; serving what the database holds and retrying later: {e:#}");
    }
    if let Some(addr) = &state.config.metrics_listen {
        let scrape = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr} (metrics_listen); is another server using it?"))?;
        tracing::info!("serving /metrics on {}", scrape.local_addr()?);
        let app = api::metrics::scrape_routes().with_state(state.clone());
        tokio::spawn(async move {
            if let Err(e) = axum::serve(scrape, app).await {
                tracing::error!("the metrics listener stopped: {e}");
            }
        });
    }
    println!("READY {public_url}");
    std::io::stdout().flush()?;
    tracing::info!("listening on {addr}");
    let app = router(state.clone()).into_make_service_with_connect_info::<SocketAddr>();
    let stopping = state.stopping.clone();
    // Without TCP_NODELAY an answer written in two pieces waits for the client's delayed ACK (40 ms on Linux): a
    // connector's long poll and answer would each pay it.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        if let Err(e) = tcp.set_nodelay(true) {
            tracing::warn!("cannot set TCP_NODELAY on a connection: {e}");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        stop_signal().await;
        tracing::info!("asked to stop: answering the requests in flight, then exiting");
        stopping.send_replace(true);
    });
    // The sync loop runs beside the server rather than on a spawned task: it borrows across awaits in ways
    // that need not be `Send`.
    tokio::select! {
        result = server => result?,
        () = workers::sync::sync_periodically(state, connector, last_sweep, embedded.is_none()) => {}
    }
    // The jobs in flight finish, or are given back, within `stop_grace`.
    if let Err(e) = jobs.await {
        tracing::error!("the jobs worker stopped abnormally; its jobs run again when their leases end: {e}");
    }
    tracing::info!("stopped");
    Ok(())
}

/// SIGTERM (how Kubernetes, systemd and `docker stop` ask a process to stop) or SIGINT (Ctrl-C).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(e) => {
            tracing::warn!("cannot listen for SIGTERM ({e}); stopping on Ctrl-C only");
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::refuse_connector_variables;
    use crate::config::Config;

    fn refused(connector: &str, set: &[&str]) -> Option<String> {
        let config =
            Config::parse(&format!("database: /unused.db\naws: {{ sso_region: us-east-1, connector: {connector} }}\n"))
                .unwrap();
        refuse_connector_variables(&config, |name| set.contains(&name)).err().map(|e| e.to_string())
    }

    #[test]
    fn the_connectors_variables_are_refused_rather_than_ignored() {
        for connector in ["embedded", "external"] {
            let said = refused(connector, &["BATON_CLIENT_SECRET"]).unwrap();
            assert!(said.starts_with("BATON_CLIENT_SECRET is set for cone-server, which does not use it"), "{said}");
            assert_eq!(refused(connector, &["BATON_PROVISIONING"]), None, "the server's own");
        }
        // Embedded, the server is the connector and reads the AWS settings; external, they are the connector's.
        assert_eq!(refused("embedded", &["BATON_ROLE_ARN", "BATON_SCIM_TOKEN"]), None);
        let said = refused("external", &["BATON_SCIM_TOKEN"]).unwrap();
        assert!(said.contains("with aws.connector: external the connector (`cone-aws serve`) calls AWS"), "{said}");
    }
}

/// An application state and a way to call the router, for tests.
#[cfg(test)]
pub(crate) mod testing {
    use axum::body::Body;
    use axum::extract::Request;
    use axum::http::{Method, header};
    use tower::ServiceExt;

    use super::*;
    use crate::services::auth::secret_hash;
    use crate::store::Db;

    /// A state on `db` with the configuration lines `extra` (such as `admins: { users: [carol] }`).
    pub fn state(db: Db, extra: &str) -> AppState {
        let mut config =
            crate::config::Config::parse(&format!("database: /unused.db\naws: {{ sso_region: us-east-1 }}\n{extra}"))
                .unwrap();
        let access = std::mem::take(&mut config.access);
        AppState::new(db, config, access, "http://127.0.0.1".into())
    }

    /// A person with a password and a `cone login` session; returns the session's token.
    pub async fn person(s: &AppState, name: &str) -> String {
        s.db.set_password(name, "x").await.unwrap();
        let user = s.db.user_by_name(name).await.unwrap().unwrap();
        let token = format!("session-of-{name}");
        s.db.insert_access_token(&secret_hash(&token), user.id, s.now(), s.now() + 3600).await.unwrap();
        token
    }

    /// Calls the router: the status and the JSON answer (`null` when the body is not JSON).
    pub async fn call(
        s: &AppState,
        method: Method,
        uri: &str,
        token: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (u16, serde_json::Value) {
        let mut req = Request::builder().method(method).uri(uri);
        if let Some(t) = token {
            req = req.header(header::AUTHORIZATION, format!("Bearer {t}"));
        }
        if body.is_some() {
            req = req.header(header::CONTENT_TYPE, "application/json");
        }
        let body = body.map(|b| Body::from(b.to_string())).unwrap_or_else(Body::empty);
        let resp = router(s.clone()).oneshot(req.body(body).unwrap()).await.unwrap();
        let status = resp.status().as_u16();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }
}
