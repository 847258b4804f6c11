//! What the services, the API, the console and the workers of one server process share: the store, the
//! configuration, the access document in force, the clock, and the channels that wake waiting clients and workers.
//!
//! The clock is the only place the server reads the time (`clippy.toml` refuses `Utc::now` elsewhere), so that
//! tests can move it.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use arc_swap::ArcSwap;
use cone_api::ConnectorStatus;
use tokio::sync::{Notify, broadcast};

use crate::clients::ClientLimits;
use crate::config::{Access, Config};
use crate::store::Db;
use crate::throttle::Throttle;

/// The wall clock, moved by an offset that only tests set.
#[derive(Clone, Default)]
pub struct Clock {
    offset_secs: Arc<AtomicI64>,
}

impl Clock {
    /// Now, in Unix seconds.
    pub fn now(&self) -> i64 {
        self.utc().timestamp()
    }

    /// Now, in Unix milliseconds.
    pub fn now_millis(&self) -> i64 {
        self.utc().timestamp_millis()
    }

    #[allow(clippy::disallowed_methods)]
    pub fn utc(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + chrono::Duration::seconds(self.offset_secs.load(Ordering::Relaxed))
    }

    /// Moves this clock (and every clone of it) `secs` into the future.
    #[cfg(test)]
    pub fn advance(&self, secs: i64) {
        self.offset_secs.fetch_add(secs, Ordering::Relaxed);
    }
}

#[derive(Clone)]
pub struct AppState {
    pub db: Db,
    pub config: Arc<Config>,
    /// The access document in force (see [`AppState::access`]).
    pub access: Arc<ArcSwap<Access>>,
    pub clock: Clock,
    pub public_url: String,
    /// Ids of tasks that just changed, for long-polling clients.
    pub task_changes: broadcast::Sender<i64>,
    /// Wakes the workers when there is new work.
    pub wake: Arc<Notify>,
    /// Asks this process's sync loop for a sync now (an administrator's "sync now").
    pub sync_now: Arc<Notify>,
    /// How this process's syncs with AWS stand.
    pub sync_status: Arc<std::sync::Mutex<ConnectorStatus>>,
    pub sign_in_failures: Arc<Throttle>,
    /// Requests to the sign-in endpoints by client, in this process.
    pub clients: Arc<ClientLimits>,
    /// True once the process is asked to stop: long polls answer at once so that it drains quickly.
    pub stopping: tokio::sync::watch::Sender<bool>,
    /// The Slack app, when `notifications.slack` is configured.
    pub slack: Option<Arc<SlackApp>>,
}

/// A Slack app: its bot, and the secret that proves a request came from Slack.
pub struct SlackApp {
    pub bot: cone_slack::Slack,
    pub signing_secret: crate::webhooks::Secret,
}

impl SlackApp {
    /// Reads the app's secrets (through `env` for environment variables), so that a missing one stops the start.
    pub fn new(c: &crate::config::Slack, env: impl Fn(&str) -> Option<String>) -> anyhow::Result<SlackApp> {
        let token = c.bot_token.read("notifications.slack bot_token", &env)?;
        let token = String::from_utf8(token.reveal().to_vec())
            .map_err(|_| anyhow::anyhow!("notifications.slack: the bot token is not text; it starts with xoxb-"))?;
        let signing_secret = c.signing_secret.read("notifications.slack signing_secret", &env)?;
        Ok(SlackApp { bot: cone_slack::Slack::new(&c.api_url, token)?, signing_secret })
    }
}

impl AppState {
    /// A state for `config` (its access document in force: `access`) on `db`, before any sync.
    pub fn new(db: Db, config: Config, access: Access, public_url: String) -> AppState {
        let (app_id, provisioning) = (config.aws.app_id.clone(), config.aws.provisioning);
        let mode = match config.aws.connector {
            crate::config::ConnectorMode::Embedded => "embedded",
            crate::config::ConnectorMode::External => "external",
        };
        let clients = Arc::new(ClientLimits::new(&config.clients));
        AppState {
            db,
            config: Arc::new(config),
            access: Arc::new(ArcSwap::from_pointee(access)),
            clock: Clock::default(),
            public_url,
            task_changes: broadcast::channel(1024).0,
            wake: Arc::new(Notify::new()),
            sync_now: Arc::new(Notify::new()),
            sync_status: Arc::new(std::sync::Mutex::new(ConnectorStatus {
                app_id,
                state: cone_api::CONNECTOR_SYNCING.into(),
                last_success_at: None,
                last_attempt_at: None,
                last_error: None,
                provisioning,
                mode: mode.into(),
                hosts: Vec::new(),
            })),
            sign_in_failures: Arc::default(),
            clients,
            stopping: tokio::sync::watch::Sender::new(false),
            slack: None,
        }
    }

    /// Resolves once the process is asked to stop (at once if it has been).
    pub async fn stopped(&self) {
        let mut stopping = self.stopping.subscribe();
        let _ = stopping.wait_for(|stop| *stop).await;
    }

    /// The catalog and policies in force. A request holds the ones it started with, whatever changes meanwhile.
    pub fn access(&self) -> Arc<Access> {
        self.access.load_full()
    }

    pub fn now(&self) -> i64 {
        self.clock.now()
    }

    /// How this process's syncs stand, as last recorded.
    pub fn sync_status(&self) -> ConnectorStatus {
        self.sync_status.lock().unwrap_or_else(|poisoned| poisoned.into_inner()).clone()
    }

    /// A task changed: its long-polling clients and the workers are told.
    pub fn task_changed(&self, task_id: i64) {
        let _ = self.task_changes.send(task_id);
        self.wake.notify_one();
    }
}
