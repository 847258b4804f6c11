//! `cone-aws serve`: the connector as a service of its own (seed 002's self-hosted mode). It holds the AWS
//! credentials; cone-server (with `aws.connector: external`) holds none. It takes work from the server by long poll,
//! with the credentials an administrator issued (`BATON_CLIENT_ID`, `BATON_CLIENT_SECRET`), runs each call against
//! AWS, and sends back the answer, and a sync's parts as it reads them. Several may run side by side: a call is
//! leased to one at a time, the lease renewed while it runs, so a connector that dies leaves its call to another.
//! A sync's journal is the server's, so that a sync left unfinished resumes on whichever connector runs the next.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::Args;
use cone_aws::journal::{Journal, JournalError};
use cone_aws::remote::{Answer, Call, Claimed, Failure, JournalPost, PartPost};
use cone_aws::spool::SinkError;
use cone_aws::{AwsSettings, Connector, Part, Sink};
use futures_util::future::BoxFuture;
use reqwest::StatusCode;

/// Calls run at once (each its own AWS requests, within the connector's rate limits).
const CALLS_IN_FLIGHT: usize = 16;
/// The server answers a long poll within 20 s; past this, the connection is taken for lost.
const POLL_TIMEOUT: Duration = Duration::from_secs(60);
/// What a call's answer is given to reach the server, retries included, before the lease decides.
const ANSWER_TRIES: u32 = 5;
/// How long calls in flight may finish once the connector is asked to stop.
const STOP_GRACE: Duration = Duration::from_secs(20);

#[derive(Args)]
pub struct Serve {
    /// The cone-server to take work from, such as https://cone.example.com.
    #[arg(long, env = "CONE_SERVER_URL")]
    server: reqwest::Url,
    /// The client id an administrator issued (`cone connector rotate`).
    #[arg(long, env = "BATON_CLIENT_ID", hide_env_values = true)]
    client_id: String,
    /// The client secret issued with it.
    #[arg(long, env = "BATON_CLIENT_SECRET", hide_env_values = true)]
    client_secret: String,
    /// This connector's name on the server's Connectors page; replicas may share it (each process adds its own
    /// suffix).
    #[arg(long, env = "BATON_HOST_ID", default_value = "cone-aws")]
    host_id: String,
    #[command(flatten)]
    provisioning: crate::Provisioning,
    #[command(flatten)]
    aws: AwsSettings,
}

/// The server, as this process talks to it.
struct Link {
    http: reqwest::Client,
    base: reqwest::Url,
    client_id: String,
    client_secret: String,
    /// `BATON_HOST_ID:<random>`: replicas sharing one host id are still told apart.
    host: String,
}

/// Why a request to the server failed.
enum Trouble {
    /// The server refused the credentials or the request: trying again cannot help.
    Refused(String),
    /// The server no longer hands this call to this host.
    NotHeld,
    Other(anyhow::Error),
}

impl Link {
    async fn post(&self, path: &str, body: Option<&impl serde::Serialize>) -> Result<reqwest::Response, Trouble> {
        let url = self.base.join(path).map_err(|e| Trouble::Other(e.into()))?;
        let mut req = self
            .http
            .post(url)
            .basic_auth(&self.client_id, Some(&self.client_secret))
            .header("cone-connector-host", &self.host)
            .header("cone-connector-version", env!("CARGO_PKG_VERSION"));
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| Trouble::Other(e.into()))?;
        match resp.status() {
            s if s.is_success() => Ok(resp),
            // Refused credentials, or a request this server does not take (a host id too long, another version's
            // protocol): asking again cannot help.
            StatusCode::UNAUTHORIZED | StatusCode::BAD_REQUEST | StatusCode::NOT_FOUND => {
                Err(Trouble::Refused(resp.text().await.unwrap_or_default()))
            }
            StatusCode::CONFLICT => Err(Trouble::NotHeld),
            s => {
                let text = resp.text().await.unwrap_or_default();
                Err(Trouble::Other(anyhow::anyhow!("the server answered {s}: {}", text.trim())))
            }
        }
    }

    /// The next call, or `None` after the server's long poll found none.
    async fn next(&self) -> Result<Option<Claimed>, Trouble> {
        let resp = self.post("api/v1/connector/calls/next", None::<&()>).await?;
        if resp.status() == StatusCode::NO_CONTENT {
            return Ok(None);
        }
        resp.json().await.map(Some).map_err(|e| Trouble::Other(e.into()))
    }

    async fn renew(&self, id: i64) -> Result<(), Trouble> {
        self.post(&format!("api/v1/connector/calls/{id}/lease"), None::<&()>).await.map(drop)
    }

    /// Sends the answer, retrying a failure to reach the server a few times: a lost answer means the call runs
    /// again after its lease.
    async fn answer(&self, id: i64, answer: &Answer) {
        for attempt in 1..=ANSWER_TRIES {
            match self.post(&format!("api/v1/connector/calls/{id}/answer"), Some(answer)).await {
                Ok(_) => return,
                Err(Trouble::NotHeld) => {
                    tracing::warn!(call = id, "the server no longer holds this call for us; its answer is dropped");
                    return;
                }
                Err(Trouble::Refused(why)) => {
                    tracing::error!(call = id, "the server refused our credentials while answering: {why}");
                    return;
                }
                Err(Trouble::Other(e)) => {
                    tracing::warn!(call = id, attempt, "cannot send the answer; trying again: {e:#}");
                    tokio::time::sleep(Duration::from_secs(1 << attempt)).await;
                }
            }
        }
    }
}

/// Sends a sync's parts to the server as they are read, numbered in the order they are put.
struct Parts {
    link: Arc<Link>,
    call: i64,
    seq: AtomicI64,
}

impl Sink for Parts {
    fn put(&self, part: Part) -> BoxFuture<'_, Result<(), SinkError>> {
        Box::pin(async move {
            let post = PartPost { seq: self.seq.fetch_add(1, Ordering::Relaxed), part };
            match self.link.post(&format!("api/v1/connector/calls/{}/parts", self.call), Some(&post)).await {
                Ok(_) => Ok(()),
                Err(Trouble::NotHeld) => {
                    Err("the server gave this sync to another connector (the lease ran out)".into())
                }
                Err(Trouble::Refused(why)) => {
                    Err(format!("the server refused the connector's credentials: {why}").into())
                }
                Err(Trouble::Other(e)) => Err(format!("cannot send a part of the sync to the server: {e:#}").into()),
            }
        })
    }
}

/// The journal of the sync run as `call`, kept by the server.
struct ServerJournal {
    link: Arc<Link>,
    call: i64,
}

impl ServerJournal {
    async fn post(&self, post: JournalPost) -> Result<Option<(String, i64)>, JournalError> {
        let path = format!("api/v1/connector/calls/{}/journal", self.call);
        match self.link.post(&path, Some(&post)).await {
            Ok(resp) => Ok(resp.json().await?),
            Err(Trouble::NotHeld) => Err("the server gave this sync to another connector (the lease ran out)".into()),
            Err(Trouble::Refused(why)) => Err(format!("the server refused the journal's request: {why}").into()),
            Err(Trouble::Other(e)) => Err(format!("cannot reach the sync's journal on the server: {e:#}").into()),
        }
    }
}

impl Journal for ServerJournal {
    fn recall<'a>(
        &'a self,
        unit: &'a str,
        since: i64,
        until: i64,
    ) -> BoxFuture<'a, Result<Option<(String, i64)>, JournalError>> {
        Box::pin(self.post(JournalPost::Recall { unit: unit.into(), since, until }))
    }

    fn record<'a>(&'a self, unit: &'a str, body: &'a str, at: i64) -> BoxFuture<'a, Result<(), JournalError>> {
        Box::pin(
            async move { self.post(JournalPost::Record { unit: unit.into(), body: body.into(), at }).await.map(drop) },
        )
    }
}

/// Runs the connector until SIGTERM or SIGINT, or until the server refuses its credentials. The calls run on this
/// task's thread, side by side: a sync's future cannot move between threads, and the work is waiting on AWS.
pub async fn serve(args: Serve) -> Result<()> {
    tokio::task::LocalSet::new().run_until(serve_here(args)).await
}

async fn serve_here(args: Serve) -> Result<()> {
    if args.aws.sync_iam || args.aws.sync_secrets {
        bail!(
            "BATON_SYNC_IAM, BATON_SYNC_SECRETS and CONE_AWS_SYNC_IAM are the server's to decide in service mode: set \
             aws.sync_iam and aws.sync_secrets in cone-server's configuration, and remove them here"
        );
    }
    let connector = Arc::new(args.aws.connect().await.context("cannot connect to AWS")?);
    let base = if args.server.path().ends_with('/') {
        args.server
    } else {
        args.server.join(&format!("{}/", args.server.path()))?
    };
    let http = reqwest::Client::builder().timeout(POLL_TIMEOUT).build().context("cannot make an HTTP client")?;
    let instance: u32 = rand::random();
    let link = Arc::new(Link {
        http,
        base,
        client_id: args.client_id,
        client_secret: args.client_secret,
        host: format!("{}:{instance:08x}", args.host_id),
    });
    let provisioning = args.provisioning.provisioning;
    tracing::info!(server = %link.base, host = %link.host, provisioning, "taking work from the server");
    let mut running = tokio::task::JoinSet::new();
    let mut failures = 0u32;
    let stop = stop_signal();
    tokio::pin!(stop);
    loop {
        if running.len() >= CALLS_IN_FLIGHT {
            tokio::select! {
                _ = running.join_next() => continue,
                () = &mut stop => break,
            }
        }
        let claimed = tokio::select! {
            claimed = link.next() => claimed,
            Some(_) = running.join_next(), if !running.is_empty() => continue,
            () = &mut stop => break,
        };
        match claimed {
            Ok(Some(claimed)) => {
                failures = 0;
                let (link, connector) = (link.clone(), connector.clone());
                running.spawn_local(run(link, connector, claimed, provisioning));
            }
            Ok(None) => failures = 0,
            Err(Trouble::Refused(why)) => bail!("the server refused this connector: {why}"),
            Err(Trouble::NotHeld) => {}
            Err(Trouble::Other(e)) => {
                failures += 1;
                let wait = Duration::from_secs(1 << failures.min(5));
                tracing::warn!("cannot take work from the server; trying again in {wait:?}: {e:#}");
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = &mut stop => break,
                }
            }
        }
    }
    tracing::info!(calls = running.len(), "asked to stop: letting the calls in flight finish");
    if tokio::time::timeout(STOP_GRACE, async { while running.join_next().await.is_some() {} }).await.is_err() {
        tracing::warn!("calls still running after {STOP_GRACE:?} are left to their leases");
    }
    Ok(())
}

/// Runs one call, renewing its lease meanwhile, and sends its answer.
async fn run(link: Arc<Link>, connector: Arc<Connector>, claimed: Claimed, provisioning: bool) {
    let Claimed { id, call, lease_secs } = claimed;
    let renewing = {
        let link = link.clone();
        async move {
            let every = Duration::from_secs((lease_secs.max(3) / 3).unsigned_abs());
            loop {
                tokio::time::sleep(every).await;
                match link.renew(id).await {
                    Ok(()) => {}
                    Err(Trouble::NotHeld) => tracing::warn!(call = id, "the lease on this call was lost to another"),
                    Err(Trouble::Refused(why)) => tracing::warn!(call = id, "cannot renew the lease: {why}"),
                    Err(Trouble::Other(e)) => tracing::warn!(call = id, "cannot renew the lease; trying again: {e:#}"),
                }
            }
        }
    };
    let answer = tokio::select! {
        answer = execute(&link, &connector, id, &call, provisioning) => answer,
        () = renewing => return,
    };
    if let Err(f) = &answer {
        tracing::warn!(call = id, "{}", f.message);
    }
    link.answer(id, &answer).await;
}

async fn execute(link: &Arc<Link>, connector: &Connector, id: i64, call: &Call, provisioning: bool) -> Answer {
    if call.writes() && !provisioning {
        return Err(Failure {
            message:
                "this connector runs without provisioning, so it changes nothing in AWS: set BATON_PROVISIONING=true \
                      for cone-aws serve to let it grant and revoke"
                    .into(),
            retryable: true,
            not_created_by_cone: false,
        });
    }
    let done = if call.is_sync() {
        let parts = Parts { link: link.clone(), call: id, seq: AtomicI64::new(0) };
        let journal = ServerJournal { link: link.clone(), call: id };
        connector.execute_sync(call, &journal, &parts).await
    } else {
        connector.execute(call).await
    };
    done.map_err(|e| Failure::from(&e))
}

/// SIGTERM (Kubernetes, systemd) or SIGINT (Ctrl-C).
async fn stop_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    match signal(SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
        }
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
