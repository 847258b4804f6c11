//! Setup for the server benchmarks in `bench/` (build it with `--release`, so that the cone-server it starts, found
//! next to it, is a release build too).
//!
//! `cone-bench-setup check [--postgres] [--org] [--campaigns N]`: a sandbox where alice is signed in to Cone and holds
//! an active grant on Staging ReadOnlyAccess; with `--org`, `bench/seed_org.py`'s organisation too; with `--campaigns`,
//! N access reviews of everything, each item alice's to review, each creation timed (`CAMPAIGN` lines). Prints `URL`,
//! `TOKEN` and `COOKIE` (alice's API token and console session), `ADMIN_TOKEN` and `ADMIN_COOKIE` (carol's, an
//! administrator), `APP_ID` and `ENTITLEMENT_ID` lines, then `READY`, and stays up
//! until interrupted (SIGINT), for a load tool to drive the grant check.
//!
//! `cone-bench-setup expiry [--postgres] [--grants N] [--spread SECS]`: N identity-store users, each with an account
//! assignment and an active grant for it in Cone's database, all ending at the same second, or with `--spread` one
//! after another over SECS seconds; cone-server's calls to AWS go through a proxy here that timestamps them. Prints
//! the latency from each grant's end to its DeleteAccountAssignment being sent (and accepted), and the busiest second
//! of calls to IAM Identity Center (the server's limit is `CONE_AWS_SSO_RATE`). With `--aws-limits N`, a fault proxy
//! holds moto to Identity Center's write limits: N outstanding writes, each taking `--write-ms` (1000), one per
//! account and permission set; it prints how many writes those limits refused.
//!
//! `cone-bench-setup offboard [--postgres] [--grants N]`: the same N users, grants and assignments (ending in an
//! hour), each user with a `cone login` session too, and `aws.revoke_sessions` on; then every one of them is deleted
//! in Identity Center and a sync is asked for. Prints, from the sync's last read of AWS, when a leaver's session was
//! refused, when the deny policy was written and when the last DeleteAccountAssignment was sent, and the rate of
//! Identity Center calls meanwhile.
//!
//! `cone-bench-setup notify [--postgres] [--grants N]`: N people each file a request bob must approve, all at once,
//! with email through a real SMTP server (aiosmtpd, STARTTLS and AUTH). Prints the messages delivered a second and
//! the latency from each request's filing to the SMTP server accepting bob's email about it.
//!
//! `cone-bench-setup flood [--postgres] [--rates DEVICE,POLL,PASSWORD]`: alice asks for administrator access for
//! 20 s, bob approves, it is granted and ends; once on a quiet server, then again while this process floods the
//! sign-in endpoints from loopback (device-code starts, token polls for made-up codes and wrong passwords for
//! made-up names, by default 5,000, 5,000 and 1,000 a second, open loop). Prints each step's time and the server's
//! peak memory side by side, and what the flood sent and was answered.
//!
//! `cone-bench-setup connector [--postgres] [--rounds N]`: alice's auto-approved request, from filing to granted (the
//! credentials can then be fetched), about N times with the embedded connector and N times with `cone-aws serve` on
//! the same sandbox (the server restarted with `aws.connector: external` and no AWS variables), the modes taking
//! turns in three blocks; each grant is released and its revocation waited for before the next round. Prints each
//! mode's times and their ratio.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::process::{Command, ExitCode, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use aws_sdk_identitystore::types::Name;
use aws_sdk_ssoadmin::types::{PrincipalType, TargetType};
use axum::extract::{Request, State};
use axum::response::Response;
use cone_api::{CreateTask, TaskState};
use cone_testkit::faults::FaultProxy;
use cone_testkit::{Sandbox, Store, moto_sdk_config};
use serde_json::Value;
use sha2::{Digest, Sha256};

#[tokio::main]
async fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let postgres = args.iter().any(|a| a == "--postgres");
    let number = |flag: &str, default: u64| match args.iter().position(|a| a == flag).map(|i| args.get(i + 1)) {
        None => Ok(default),
        Some(Some(n)) => n.parse::<u64>().map_err(|_| anyhow::anyhow!("{flag} needs a whole number, not {n}")),
        Some(None) => Err(anyhow::anyhow!("{flag} needs a whole number")),
    };
    let (grants, spread) = (number("--grants", 1000), number("--spread", 0));
    let rates = match args.iter().position(|a| a == "--rates").map(|i| args.get(i + 1)) {
        None => Ok([5000, 5000, 1000]),
        Some(list) => list
            .and_then(|l| {
                let n: Vec<u64> = l.split(',').filter_map(|n| n.parse().ok()).collect();
                <[u64; 3]>::try_from(n).ok()
            })
            .context("--rates needs three whole numbers a second: device-code starts, token polls, wrong passwords"),
    };
    let limits = match (number("--aws-limits", 0), number("--write-ms", 1000)) {
        (Ok(0), _) => Ok(None),
        (Ok(n), Ok(ms)) => Ok(Some((n as usize, Duration::from_millis(ms)))),
        (Err(e), _) | (_, Err(e)) => Err(e),
    };
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => {
            eprintln!("cannot create a directory for the sandbox: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = async {
        let store = if postgres {
            Store::postgres("the benchmark")?.context("PostgreSQL is not installed")?
        } else {
            Store::Sqlite
        };
        match args.first().map(String::as_str) {
            Some("check") => {
                check(store, dir.path(), args.iter().any(|a| a == "--org"), number("--campaigns", 0)?).await
            }
            Some("expiry") => expiry(store, dir.path(), grants?.max(1), spread?, limits?).await,
            Some("offboard") => offboard(store, dir.path(), grants?.max(1)).await,
            Some("flood") => flood(store, dir.path(), rates?).await,
            Some("notify") => notify(store, dir.path(), grants?.max(1)).await,
            Some("connector") => connector(store, dir.path(), number("--rounds", 30)?.max(1)).await,
            _ => bail!(
                "usage: cone-bench-setup check [--org]|expiry|offboard|flood|notify|connector [--postgres] [--rounds N] [--grants N] [--spread SECS] \
                 [--aws-limits N [--write-ms MS]] [--rates DEVICE,POLL,PASSWORD]"
            ),
        }
    };
    match result.await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("cone-bench-setup: {e:#}");
            ExitCode::FAILURE
        }
    }
}

async fn check(store: Store, dir: &Path, org: bool, campaigns: u64) -> Result<()> {
    let mut sb = Sandbox::start_on(store, dir, "", "").await?;
    sb.cone_login("alice", &[], "alice").await?;
    sb.cone_login("carol", &[], "carol").await?;
    let token = sb.api_token("alice")?;
    // With --org, a server of the organisation's size, on its own port; the sandbox's is stopped.
    let (url, _server) = match org {
        true => {
            let (server, url) = sb.seed_org().await?;
            (url, Some(server))
        }
        false => (sb.server_url.clone(), None),
    };
    let client = cone_client::Client::new(&url, &token)?;
    let all = client.entitlements(None).await?;
    let ent = all
        .into_iter()
        .find(|e| e.alias == "staging-readonlyaccess")
        .context("the catalog has no staging-readonlyaccess")?;
    let request = CreateTask {
        app_id: ent.app_id.clone(),
        entitlement_id: ent.id.clone(),
        justification: "benchmark".into(),
        ..CreateTask::default()
    };
    let mut task = client.create_task(&request).await?;
    let deadline = Instant::now() + Duration::from_secs(60);
    while task.state != TaskState::Granted {
        if Instant::now() > deadline {
            bail!("the request was not granted within a minute: {task:?}");
        }
        task = client.task(task.id, Some(task.state), Duration::from_secs(10)).await?;
    }
    let (app, id) = (ent.app_id, ent.id);
    // Access reviews of everything, each item alice's to decide (but her own, which carol reviews).
    let admin_token = sb.api_token("carol")?;
    let admin = cone_client::Client::new(&url, &admin_token)?;
    for n in 1..=campaigns {
        let campaign = cone_api::NewReviewCampaign {
            name: format!("benchmark {n}"),
            due: chrono::Utc::now() + chrono::Duration::days(14),
            scope: cone_api::ReviewScope::default(),
            reviewers: cone_api::Reviewers {
                from: cone_api::ReviewersFrom::Users,
                group: None,
                users: vec!["alice".into()],
                fallback: vec!["carol".into()],
            },
        };
        let started = Instant::now();
        let made = admin.create_review_campaign(&campaign).await?;
        println!("CAMPAIGN {} {} items in {:.2} s", made.id, made.items, started.elapsed().as_secs_f64());
    }
    let cookie = async |user| {
        let console = cone_testkit::console::Console::sign_in(&url, user, &cone_testkit::password(user)).await?;
        anyhow::Ok(console.cookie_header())
    };
    let (alice_cookie, carol_cookie) = (cookie("alice").await?, cookie("carol").await?);
    println!("URL {url}\nTOKEN {token}\nCOOKIE {alice_cookie}\nADMIN_TOKEN {admin_token}\nADMIN_COOKIE {carol_cookie}");
    println!("APP_ID {app}\nENTITLEMENT_ID {id}\nREADY");
    tokio::signal::ctrl_c().await.context("waiting for an interrupt")?;
    Ok(())
}

/// cone-server's calls to AWS as they arrive.
#[derive(Clone)]
struct Proxy {
    moto: String,
    http: reqwest::Client,
    calls: Arc<Mutex<Vec<Call>>>,
}

#[derive(Clone)]
struct Call {
    /// The operation (`X-Amz-Target`).
    target: String,
    /// Unix milliseconds.
    at: u128,
    /// The JSON body's `PrincipalId`, if it has one.
    principal: Option<String>,
    /// Whether AWS took it (a 2xx answer).
    accepted: bool,
}

async fn forward(State(p): State<Proxy>, req: Request) -> Result<Response, String> {
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, usize::MAX).await.map_err(|e| e.to_string())?;
    let target = parts.headers.get("x-amz-target").and_then(|v| v.to_str().ok()).unwrap_or_default().to_string();
    let principal = serde_json::from_slice::<Value>(&body)
        .ok()
        .and_then(|b| b.get("PrincipalId").and_then(Value::as_str).map(str::to_string));
    let at = unix_ms();
    let url = format!("{}{}", p.moto, parts.uri.path_and_query().map_or("/", |pq| pq.as_str()));
    let mut headers = parts.headers;
    for hop in ["host", "content-length", "connection", "transfer-encoding"] {
        headers.remove(hop);
    }
    let answer =
        p.http.request(parts.method, url).headers(headers).body(body).send().await.map_err(|e| e.to_string())?;
    let status = answer.status();
    let call = Call { target, at, principal, accepted: status.is_success() };
    p.calls.lock().unwrap_or_else(|e| e.into_inner()).push(call);
    let mut headers = answer.headers().clone();
    headers.remove("transfer-encoding");
    let bytes = answer.bytes().await.map_err(|e| e.to_string())?;
    let mut out = Response::new(axum::body::Body::from(bytes));
    *out.status_mut() = status;
    *out.headers_mut() = headers;
    Ok(out)
}

fn unix_ms() -> u128 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis())
}

/// N identity-store users in moto, each with an assignment on Staging ReadOnlyAccess: their user ids.
async fn seed_users(sb: &Sandbox, n: u64) -> Result<Vec<String>> {
    seed_people(sb, n, true).await
}

/// N identity-store users `bench-00000`…, each with an assignment on Staging ReadOnlyAccess when `assign`.
async fn seed_people(sb: &Sandbox, n: u64, assign: bool) -> Result<Vec<String>> {
    let sdk = moto_sdk_config(&sb.moto.endpoint);
    let ids = aws_sdk_identitystore::Client::new(&sdk);
    let sso = aws_sdk_ssoadmin::Client::new(&sdk);
    let (account, ps) = staging_readonly(sb)?;
    eprintln!("creating {n} users in moto");
    let mut created = Vec::new();
    for i in 0..n {
        let name = format!("bench-{i:05}");
        let user = ids
            .create_user()
            .identity_store_id(&sb.org.identity_store_id)
            .user_name(&name)
            .display_name(&name)
            .name(Name::builder().given_name("Bench").family_name(&name).build())
            .send()
            .await
            .with_context(|| format!("CreateUser {name}"))?;
        if !assign {
            created.push(user.user_id);
            continue;
        }
        sso.create_account_assignment()
            .instance_arn(&sb.org.instance_arn)
            .target_id(account)
            .target_type(TargetType::AwsAccount)
            .permission_set_arn(ps)
            .principal_type(PrincipalType::User)
            .principal_id(&user.user_id)
            .send()
            .await
            .with_context(|| format!("CreateAccountAssignment for {name}"))?;
        created.push(user.user_id);
    }
    Ok(created)
}

fn staging_readonly(sb: &Sandbox) -> Result<(&str, &str)> {
    let account = sb.org.account_id("Staging").context("no Staging account")?;
    Ok((account, sb.org.permission_set_arn("ReadOnlyAccess").context("no ReadOnlyAccess")?))
}

/// Restarts cone-server behind a proxy that records its calls to AWS (`upstream`: moto, or a proxy in front of it);
/// its sync at start brings the new users in.
async fn behind_proxy(sb: &mut Sandbox, upstream: &str) -> Result<(Proxy, cone_testkit::Child, String)> {
    let proxy = Proxy { moto: upstream.to_string(), http: reqwest::Client::new(), calls: Arc::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let endpoint = format!("http://{}", listener.local_addr()?);
    let app = axum::Router::new().fallback(forward).with_state(proxy.clone());
    tokio::spawn(async move { axum::serve(listener, app).await });
    sb.stop_server();
    let (server, url) = sb.spawn_replica(&endpoint)?;
    Ok((proxy, server, url))
}

/// Runs `sql` on the sandbox's database (the server may be writing too).
fn database(sb: &Sandbox, postgres: Option<&str>, sql: &str) -> Result<String> {
    let mut cmd = match postgres {
        None => {
            let mut c = Command::new("sqlite3");
            c.args(["-cmd", ".timeout 10000"]).arg(sb.dir.join("cone.db"));
            c
        }
        Some(url) => {
            let mut c = Command::new("psql");
            c.args(["-qtA", "-v", "ON_ERROR_STOP=1", url]);
            c
        }
    };
    run_sql(&mut cmd, sql)
}

/// Grants as the workers leave them once provisioned, written straight to the database for every `bench-` user,
/// ending at the SQL expression `end`: provisioning a thousand grants through the API would take as long as
/// revoking them, and is not what is measured. Returns each grant's principal and end (Unix ms).
fn seed_grants(sb: &Sandbox, postgres: Option<&str>, ends: u64, end: &str) -> Result<HashMap<String, u128>> {
    let (account, ps) = staging_readonly(sb)?;
    let (inst, app) = (&sb.org.instance_arn, "(SELECT id FROM apps LIMIT 1)");
    let sql = format!(
        "INSERT INTO tasks (requester_id, app_id, entitlement_id, state, justification, duration_secs, form_json,
             policy_name, steps_json, created_at, updated_at)
         SELECT id, {app}, '{account}|{ps}', 'granted', 'benchmark', 3600, '{{}}', 'bench', '[]', {ends} - 3600,
             {ends} - 3600 FROM users WHERE username LIKE 'bench-%';
         INSERT INTO grants (task_id, user_id, app_id, entitlement_id, instance_arn, account_id, permission_set_arn,
             principal_id, duration_secs, starts_at, expires_at, state)
         SELECT t.id, u.id, t.app_id, t.entitlement_id, '{inst}', '{account}', '{ps}', u.idc_user_id, 3600,
             {end} - 3600, {end}, 'active'
         FROM tasks t JOIN users u ON u.id = t.requester_id WHERE t.justification = 'benchmark';
         SELECT principal_id, expires_at FROM grants WHERE state = 'active';"
    );
    // `principal|end` lines, from sqlite3 and psql -A alike.
    Ok(database(sb, postgres, &sql)?
        .lines()
        .filter_map(|line| {
            let (principal, end) = line.split_once('|')?;
            Some((principal.to_string(), end.trim().parse::<u128>().ok()? * 1000))
        })
        .collect())
}

/// A `cone login` session for each `bench-` user, as its hash is stored: `bench-session-00000`, ….
fn sessions(sb: &Sandbox, postgres: Option<&str>, n: u64, now: u64) -> Result<()> {
    let sql: String = (0..n)
        .map(|i| {
            let hash = hex::encode(Sha256::digest(format!("bench-session-{i:05}")));
            format!(
                "INSERT INTO access_tokens (token_hash, user_id, created_at, expires_at)
                 SELECT '{hash}', id, {now}, {now} + 86400 FROM users WHERE username = 'bench-{i:05}';\n"
            )
        })
        .collect();
    database(sb, postgres, &sql).map(drop)
}

/// N people each file a request that bob must approve, all at once; bob's email for each is read back from the
/// SMTP server. Prints how fast the messages went out and the latency from each request's filing to its message.
async fn notify(store: Store, dir: &Path, n: u64) -> Result<()> {
    let db = postgres_url(&store);
    let smtp = cone_testkit::smtp::Smtp::start(&dir.join("smtp"))?;
    let policy = "  - name: bench-needs-bob\n    match: { permission_set: ReadOnlyAccess }\n    max_duration: 8h\n    \
                  steps: [{ approval: { users: [bob] } }]\n";
    let mut sb = Sandbox::start_on(store, &dir.join("sb"), &smtp.settings("15m")?, policy).await?;
    seed_people(&sb, n, false).await?;
    // The start's sync imports them.
    sb.start_server()?;
    let now = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs();
    sessions(&sb, db.as_deref(), n, now)?;
    let (account, ps) = staging_readonly(&sb)?;
    let entitlement_id = format!("{account}|{ps}");
    let clients: Vec<cone_client::Client> = (0..n)
        .map(|i| cone_client::Client::new(&sb.server_url, &format!("bench-session-{i:05}")))
        .collect::<Result<_>>()?;
    eprintln!("{n} requests at once");
    let started = unix_ms();
    let mut filing = tokio::task::JoinSet::new();
    for c in clients {
        let ask = CreateTask {
            app_id: "aws".into(),
            entitlement_id: entitlement_id.clone(),
            justification: "benchmark".into(),
            duration_secs: None,
            form_data: Default::default(),
            emergency: false,
        };
        filing.spawn(async move { c.create_task(&ask).await.map(|t| (t.id, unix_ms())) });
    }
    let mut filed = HashMap::new();
    while let Some(done) = filing.join_next().await {
        let (id, at) = done??;
        filed.insert(id, at);
    }
    let all_filed = unix_ms();
    let deadline = Instant::now() + Duration::from_secs(600);
    let mails = loop {
        let mails: Vec<_> = smtp.messages()?.into_iter().filter(|m| m.rcpt_tos == ["bob@example.com"]).collect();
        if mails.len() >= filed.len() || Instant::now() > deadline {
            break mails;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let mut latencies: Vec<u128> = mails
        .iter()
        .filter_map(|m| {
            let text = m.text.as_deref()?;
            let id: i64 = text.split("cone task approve ").nth(1)?.split_whitespace().next()?.parse().ok()?;
            Some(m.received_at_ms.saturating_sub(*filed.get(&id)?))
        })
        .collect();
    latencies.sort_unstable();
    let last = mails.iter().map(|m| m.received_at_ms).max().unwrap_or(started);
    let pct = |p: f64| latencies.get(((latencies.len() as f64 * p).ceil() as usize).saturating_sub(1)).copied();
    println!(
        "{} requests filed in {} ms; {} emails to bob (one each: {}), the last {} ms after the first filing",
        filed.len(),
        all_filed - started,
        mails.len(),
        latencies.len() == filed.len(),
        last - started
    );
    println!(
        "  delivered {:.0} a second; filing to SMTP acceptance p50 {:?} ms, p99 {:?} ms, max {:?} ms",
        mails.len() as f64 * 1000.0 / (last - started).max(1) as f64,
        pct(0.5).unwrap_or_default(),
        pct(0.99).unwrap_or_default(),
        latencies.last().copied().unwrap_or_default()
    );
    Ok(())
}

async fn expiry(store: Store, dir: &Path, n: u64, spread: u64, limits: Option<(usize, Duration)>) -> Result<()> {
    let db = postgres_url(&store);
    let mut sb = Sandbox::start_on(store, dir, "", "").await?;
    seed_users(&sb, n).await?;
    let aws = FaultProxy::start(&sb.moto.endpoint).await?;
    if let Some((outstanding, takes)) = limits {
        aws.enforce_write_limits(outstanding, takes);
    }
    let (proxy, _server, _) = behind_proxy(&mut sb, aws.endpoint()).await?;
    let ends = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 15;
    let end = format!("{ends} + (ROW_NUMBER() OVER (ORDER BY u.id) - 1) * {spread} / {n}");
    let ends_of = seed_grants(&sb, db.as_deref(), ends, &end)?;
    if ends_of.len() as u64 != n {
        bail!("seeded {} active grants instead of {n}; did the sync import the users?", ends_of.len());
    }
    eprintln!("{n} grants end from {ends} over {spread} s; waiting for their revocation");

    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let calls = proxy.calls.lock().unwrap_or_else(|e| e.into_inner()).clone();
        // Each deletion against the end of the grant of its principal.
        let done: Vec<(u128, u128)> = calls
            .iter()
            .filter(|c| c.target.ends_with(".DeleteAccountAssignment") && c.accepted)
            .filter_map(|c| Some((c.at, *ends_of.get(c.principal.as_deref()?)?)))
            .collect();
        if done.len() as u64 >= n {
            let mut late: Vec<u128> = done.iter().map(|(at, end)| at.saturating_sub(*end)).collect();
            late.sort_unstable();
            let pct = |p: usize| late[(late.len() * p / 100).min(late.len() - 1)];
            let idc: Vec<u128> = calls
                .iter()
                .filter(|c| c.target.starts_with("SWBExternalService.") || c.target.starts_with("AWSIdentityStore."))
                .map(|c| c.at)
                .collect();
            println!(
                "expiry: {n} grants ending over {spread} s, DeleteAccountAssignment sent after each grant's end: \
                 p50 {} ms, p99 {} ms, max {} ms",
                pct(50),
                pct(99),
                late[late.len() - 1]
            );
            let sent = done.iter().map(|(at, _)| *at);
            let (first, last) = (sent.clone().min().unwrap_or(0), sent.max().unwrap_or(0));
            let span = (last - first) as f64 / 1000.0;
            let (during, per_second, busiest) = rate(&idc, first, last);
            println!(
                "expiry: {} Identity Center calls in all; while deleting, {during} calls in {span:.1} s = {per_second:.1}/s; \
                 busiest 1 s window {busiest} calls (limit CONE_AWS_SSO_RATE={}, with a burst of one second's worth)",
                idc.len(),
                std::env::var("CONE_AWS_SSO_RATE").unwrap_or_else(|_| "20, the default".into())
            );
            if let Some((outstanding, takes)) = limits {
                let (busy, role) = aws.write_limit_refusals();
                println!(
                    "expiry: Identity Center's write limits enforced ({outstanding} outstanding, {} ms each, one per \
                     role): {busy} writes refused as too many outstanding, {role} as their role busy",
                    takes.as_millis()
                );
            }
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {} of {n} assignments were deleted within 15 minutes", done.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

fn postgres_url(store: &Store) -> Option<String> {
    match store {
        Store::Sqlite => None,
        Store::Postgres(pg) => Some(pg.url.clone()),
    }
}

/// The share of `calls` (Unix ms) in `from..=to` per second, and the busiest one-second window of them.
fn rate(calls: &[u128], from: u128, to: u128) -> (usize, f64, usize) {
    let during = calls.iter().filter(|&&at| at >= from && at <= to).count();
    let busiest = calls.iter().map(|&a| calls.iter().filter(|&&b| b >= a && b < a + 1000).count()).max();
    (during, during as f64 / ((to - from) as f64 / 1000.0).max(0.001), busiest.unwrap_or(0))
}

async fn offboard(store: Store, dir: &Path, n: u64) -> Result<()> {
    let db = postgres_url(&store);
    // Everyone leaving at once would be held by the mass-offboarding guard, which is not what is measured.
    let settings = "  revoke_sessions: true\nidentities: { max_offboard_percent: 100 }\n";
    let mut sb = Sandbox::start_on(store, dir, settings, "").await?;
    sb.cone_login("carol", &[], "carol").await?;
    let users = seed_users(&sb, n).await?;
    let moto = sb.moto.endpoint.clone();
    let (proxy, _server, url) = behind_proxy(&mut sb, &moto).await?;
    let ends = SystemTime::now().duration_since(UNIX_EPOCH)?.as_secs() + 3600;
    let granted = seed_grants(&sb, db.as_deref(), ends, &ends.to_string())?;
    if granted.len() as u64 != n {
        bail!("seeded {} active grants instead of {n}; did the sync import the users?", granted.len());
    }
    sessions(&sb, db.as_deref(), n, ends - 3600)?;
    let last = cone_client::Client::new(&url, &format!("bench-session-{:05}", n - 1))?;
    last.me().await.context("a bench user's session does not work before the sync")?;

    eprintln!("deleting the {n} users in moto");
    let ids = aws_sdk_identitystore::Client::new(&moto_sdk_config(&sb.moto.endpoint));
    for id in &users {
        ids.delete_user().identity_store_id(&sb.org.identity_store_id).user_id(id).send().await?;
    }
    let carol = cone_client::Client::new(&url, &sb.api_token("carol")?)?;
    let asked = proxy.calls.lock().unwrap_or_else(|e| e.into_inner()).len();
    carol.call::<cone_api::ConnectorStatus>(reqwest::Method::POST, "/api/v1/connectors/sync", None::<&()>).await?;
    eprintln!("sync asked for; waiting for the offboarding");
    let refused = loop {
        if matches!(last.me().await, Err(cone_client::Failure::Api { status: 401, .. })) {
            break unix_ms();
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let deadline = Instant::now() + Duration::from_secs(900);
    loop {
        let calls = proxy.calls.lock().unwrap_or_else(|e| e.into_inner())[asked..].to_vec();
        let deletes: Vec<u128> = calls
            .iter()
            .filter(|c| {
                c.target.ends_with(".DeleteAccountAssignment")
                    && c.principal.as_ref().is_some_and(|p| granted.contains_key(p))
            })
            .map(|c| c.at)
            .collect();
        // The policy is written once the offboarding commits, and again as each removal moves its denials' time.
        let writes: Vec<u128> =
            calls.iter().filter(|c| c.target.contains("Policy") && !c.target.contains("List")).map(|c| c.at).collect();
        if deletes.len() as u64 >= n
            && let (Some(policy), Some(rewritten)) = (writes.iter().copied().min(), writes.iter().copied().max())
        {
            // The sync's reads end where the first write (a deletion or the policy) begins.
            let first_write = deletes.iter().copied().chain([policy]).min().unwrap_or(0);
            // The deny worker's own look at the policy (ListPolicies, ListTargetsForPolicy) is not the sync's.
            let reads = calls.iter().filter(|c| !c.target.contains("Polic")).map(|c| c.at);
            let synced = reads.filter(|&at| at < first_write).max().unwrap_or(first_write);
            let last_delete = deletes.iter().copied().max().unwrap_or(0);
            let after = |at: u128| at.saturating_sub(synced);
            println!(
                "offboard: {n} leavers with a grant and a session each; after the sync's last read of AWS: a leaver's \
                 session refused at {} ms, the deny policy written at {} ms (rewritten as removals happen, last at \
                 {} ms), the last DeleteAccountAssignment sent at {} ms",
                after(refused),
                after(policy),
                after(rewritten),
                after(last_delete)
            );
            let idc: Vec<u128> =
                calls.iter().filter(|c| c.target.starts_with("SWBExternalService.")).map(|c| c.at).collect();
            let (during, per_second, busiest) = rate(&idc, first_write, last_delete);
            println!(
                "offboard: while revoking, {during} Identity Center calls = {per_second:.1}/s; busiest 1 s window \
                 {busiest} calls (limit CONE_AWS_SSO_RATE={})",
                std::env::var("CONE_AWS_SSO_RATE").unwrap_or_else(|_| "20, the default".into())
            );
            let kept = denied_people(&sb).await?;
            println!("offboard: the deny policy names {kept} of the {n} leavers (one SCP holds 5,120 characters)");
            return Ok(());
        }
        if Instant::now() > deadline {
            bail!("only {} of {n} assignments were deleted within 15 minutes", deletes.len());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// How many Identity Center users Cone's deny policy in moto names.
async fn denied_people(sb: &Sandbox) -> Result<usize> {
    use aws_sdk_organizations::types::PolicyType;
    let org = aws_sdk_organizations::Client::new(&moto_sdk_config(&sb.moto.endpoint));
    let listed = org.list_policies().filter(PolicyType::ServiceControlPolicy).send().await?;
    let Some(id) = listed.policies().iter().find(|p| p.name() == Some("cone-revoked-sessions")).and_then(|p| p.id())
    else {
        return Ok(0);
    };
    let policy = org.describe_policy().policy_id(id).send().await?;
    let text = policy.policy().and_then(|p| p.content()).unwrap_or_default();
    let doc: Value = serde_json::from_str(text)?;
    let mut people = std::collections::BTreeSet::new();
    for statement in doc["Statement"].as_array().into_iter().flatten() {
        match &statement["Condition"]["StringEquals"]["identitystore:userId"] {
            Value::String(one) => {
                people.insert(one.clone());
            }
            Value::Array(many) => people.extend(many.iter().filter_map(Value::as_str).map(str::to_string)),
            _ => {}
        }
    }
    Ok(people.len())
}

fn run_sql(cmd: &mut Command, sql: &str) -> Result<String> {
    use std::io::Write;
    let mut child = cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
    child.stdin.take().context("stdin")?.write_all(sql.as_bytes())?;
    let out = child.wait_with_output()?;
    if !out.status.success() {
        bail!("seeding the grants failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).to_string())
}

/// What one person's day took: alice asks for administrator access for 20 s, bob approves, it is granted, and it
/// ends; with the server's peak memory meanwhile.
struct Day {
    request_ms: u128,
    approve_ms: u128,
    granted_ms: u128,
    /// From the grant's end to the task showing it ended.
    ended_ms: u128,
    /// From the grant's end to the assignment gone from AWS (moto).
    removed_ms: u128,
    peak_rss_kb: u64,
}

async fn day(sb: &Sandbox, alice: &cone_client::Client, bob: &cone_client::Client, account: &str) -> Result<Day> {
    let pid = sb.server_pid().context("the server is not running")?;
    let peak = Arc::new(AtomicU64::new(rss_kb(pid)));
    let sampling = Arc::new(AtomicBool::new(true));
    let sampler = {
        let (peak, sampling) = (peak.clone(), sampling.clone());
        tokio::spawn(async move {
            while sampling.load(Ordering::Relaxed) {
                peak.fetch_max(rss_kb(pid), Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        })
    };
    let entitlement = format!(
        "{}|{}",
        sb.org.account_id(account).context("no such account")?,
        sb.org.permission_set_arn("AdministratorAccess").context("no AdministratorAccess")?
    );
    let ask = CreateTask {
        app_id: "aws".into(),
        entitlement_id: entitlement,
        justification: "the flood benchmark".into(),
        duration_secs: Some(20),
        ..CreateTask::default()
    };
    let started = Instant::now();
    let task = alice.create_task(&ask).await?;
    let request_ms = started.elapsed().as_millis();
    let started = Instant::now();
    bob.act(task.id, "approve", "").await?;
    let approve_ms = started.elapsed().as_millis();
    let mut task = until(alice, task.id, TaskState::Granted).await?;
    let granted_ms = started.elapsed().as_millis();
    let end = task.grant_expires_at.context("a granted task has an end")?;
    task = until(alice, task.id, TaskState::Expired).await?;
    let ended_ms = since(end);
    let alice_id = sb.org.user_id("alice").context("no alice")?.to_string();
    let deadline = Instant::now() + Duration::from_secs(120);
    while sb.assigned_principals(account, "AdministratorAccess").await?.contains(&alice_id) {
        if Instant::now() > deadline {
            bail!("alice's assignment was still in AWS two minutes after task {} ended", task.id);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let removed_ms = since(end);
    sampling.store(false, Ordering::Relaxed);
    sampler.await?;
    Ok(Day { request_ms, approve_ms, granted_ms, ended_ms, removed_ms, peak_rss_kb: peak.load(Ordering::Relaxed) })
}

async fn connector(store: Store, dir: &Path, rounds: u64) -> Result<()> {
    let mut sb = Sandbox::start_on(store, dir, "", "").await?;
    for user in ["alice", "carol"] {
        sb.cone_login(user, &[], user).await?;
    }
    let alice = cone_client::Client::new(&sb.server_url, &sb.api_token("alice")?)?;
    let carol = cone_client::Client::new(&sb.server_url, &sb.api_token("carol")?)?;
    let credentials = carol.rotate_connector_credentials().await?;
    let secret = (credentials.client_id.as_str(), credentials.client_secret.as_str());

    // One server at a time on the sandbox's address, restarted between the modes: embedded (AWS variables, the
    // configuration as the sandbox wrote it) and external (no AWS variables, `cone-aws serve` beside it). The modes
    // take turns, a block of rounds each, so that whatever drifts during the run weighs on both alike.
    let port = sb.server_url.rsplit(':').next().context("the server's URL has no port")?.to_string();
    sb.stop_server();
    let config = sb.dir.join("cone-server.yaml");
    let embedded_config =
        std::fs::read_to_string(&config)?.replace("listen: 127.0.0.1:0\n", &format!("listen: 127.0.0.1:{port}\n"));
    let external_config = embedded_config
        .replace("aws:\n  sso_region: us-east-1\n", "aws:\n  sso_region: us-east-1\n  connector: external\n");
    let _connector = sb.spawn_connector(&sb.server_url, secret, &sb.moto.endpoint, &[("BATON_HOST_ID", "bench")])?;
    let (mut embedded, mut external) = (Vec::new(), Vec::new());
    const BLOCKS: u64 = 3;
    for _ in 0..BLOCKS {
        for (external_mode, times) in [(false, &mut embedded), (true, &mut external)] {
            std::fs::write(&config, if external_mode { &external_config } else { &embedded_config })?;
            let (_server, _) =
                if external_mode { sb.spawn_replica_without_aws()? } else { sb.spawn_replica(&sb.moto.endpoint)? };
            let deadline = Instant::now() + Duration::from_secs(60);
            while carol
                .connectors()
                .await?
                .first()
                .is_none_or(|c| c.state != "connected" || (external_mode && c.hosts.is_empty()))
            {
                if Instant::now() > deadline {
                    bail!("the server (external connector: {external_mode}) did not sync within a minute");
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            times.extend(grant_rounds(&sb, &alice, rounds.div_ceil(BLOCKS)).await?);
        }
    }
    embedded.sort();
    external.sort();

    let show = |name: &str, times: &[Duration]| {
        let ms: Vec<f64> = times.iter().map(|t| t.as_secs_f64() * 1000.0).collect();
        let at = |q: f64| ms[((ms.len() - 1) as f64 * q).round() as usize];
        println!("{name:<9} rounds {} p50 {:.1} ms p90 {:.1} ms max {:.1} ms", ms.len(), at(0.5), at(0.9), at(1.0));
        at(0.5)
    };
    let (e, x) = (show("embedded", &embedded), show("external", &external));
    println!("external/embedded p50 {:.2}x", x / e);
    Ok(())
}

/// Alice's auto-approved request for Staging ReadOnlyAccess, `rounds` times (after one round not counted): the time
/// from filing to granted. Each grant is released and its revocation waited for, and the rounds are spaced.
async fn grant_rounds(sb: &Sandbox, alice: &cone_client::Client, rounds: u64) -> Result<Vec<Duration>> {
    let entitlement = format!(
        "{}|{}",
        sb.org.account_id("Staging").context("no Staging")?,
        sb.org.permission_set_arn("ReadOnlyAccess").context("no ReadOnlyAccess")?
    );
    let request = CreateTask { app_id: "aws".into(), entitlement_id: entitlement.clone(), ..CreateTask::default() };
    // A sync just ran (at the server's start, or the connector's): its calls spent the connector's rate budget,
    // which refills within a second.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut times = Vec::new();
    for round in 0..=rounds {
        let started = Instant::now();
        let task =
            alice.create_task(&CreateTask { justification: format!("round {round}"), ..request.clone() }).await?;
        until(alice, task.id, TaskState::Granted).await?;
        if round > 0 {
            times.push(started.elapsed());
        }
        alice.drop_access("aws", &entitlement).await?;
        let deadline = Instant::now() + Duration::from_secs(60);
        while !alice.task(task.id, None, Duration::ZERO).await?.events.iter().any(|e| e.action == "grant.revoke") {
            if Instant::now() > deadline {
                bail!("round {round}'s grant was not revoked within a minute");
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // A round makes about six Identity Center calls; at the default 20 a second, half a second apart keeps the
        // rate limit from binding, so each round meets the connector as a lone request would.
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Ok(times)
}

/// Waits (long-polling, up to two minutes) until task `id` is in `state`.
async fn until(client: &cone_client::Client, id: i64, state: TaskState) -> Result<cone_api::Task> {
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut task = client.task(id, None, Duration::ZERO).await?;
    while task.state != state {
        if Instant::now() > deadline {
            bail!("task {id} is {:?}, not {state:?}, after two minutes", task.state);
        }
        task = client.task(id, Some(task.state), Duration::from_secs(5)).await?;
    }
    Ok(task)
}

/// Milliseconds since `t` (0 if it is still ahead).
fn since(t: chrono::DateTime<chrono::Utc>) -> u128 {
    (chrono::Utc::now() - t).num_milliseconds().max(0) as u128
}

/// The resident memory of process `pid`, in kB (0 once it is gone).
fn rss_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let line = status.lines().find_map(|l| l.strip_prefix("VmRSS:")).unwrap_or_default();
    line.trim().trim_end_matches("kB").trim().parse().unwrap_or(0)
}

/// One kind of request sent at a fixed rate (open loop), at most `IN_FLIGHT` at once; what it met.
struct Flood {
    name: &'static str,
    rate: u64,
    sent: AtomicU64,
    /// Due but not sent: every connection was busy (the load tool's limit, not the server's answer).
    skipped: AtomicU64,
    failed: AtomicU64,
    statuses: Mutex<BTreeMap<u16, u64>>,
}

const IN_FLIGHT: usize = 256;

impl Flood {
    /// Sends `request(n)` `rate` times a second until `stop`, in bursts every 10 ms.
    async fn run(
        self: Arc<Self>,
        http: reqwest::Client,
        request: impl Fn(&reqwest::Client, u64) -> reqwest::RequestBuilder,
        stop: Arc<AtomicBool>,
    ) {
        let slots = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
        let mut tick = tokio::time::interval(Duration::from_millis(10));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
        let mut n = 0;
        while !stop.load(Ordering::Relaxed) {
            tick.tick().await;
            for _ in 0..self.rate / 100 {
                n += 1;
                let Ok(slot) = slots.clone().try_acquire_owned() else {
                    self.skipped.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let (flood, req) = (self.clone(), request(&http, n));
                self.sent.fetch_add(1, Ordering::Relaxed);
                tokio::spawn(async move {
                    match req.send().await {
                        Ok(answer) => {
                            let mut statuses = flood.statuses.lock().unwrap_or_else(|e| e.into_inner());
                            *statuses.entry(answer.status().as_u16()).or_default() += 1;
                        }
                        Err(_) => {
                            flood.failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    drop(slot);
                });
            }
        }
    }
}

async fn flood(store: Store, dir: &Path, rates: [u64; 3]) -> Result<()> {
    let sb = Sandbox::start_on(store, dir, "", "").await?;
    for user in ["alice", "bob"] {
        sb.cone_login(user, &[], user).await?;
    }
    let (alice, bob) = (sb.client("alice")?, sb.client("bob")?);
    eprintln!("a day without the flood");
    let quiet = day(&sb, &alice, &bob, "Staging").await?;

    // The sign-in form's token and cookie, as a browser has them, so that each wrong password reaches the check.
    let mut console = cone_testkit::console::Console::anonymous(&sb.server_url)?;
    let page = console.open("/console/login").await?.1;
    let needle = r#"name="csrf" value=""#;
    let at = page.find(needle).context("no form on the sign-in page")? + needle.len();
    let csrf = page[at..].split('"').next().unwrap_or_default().to_string();
    let cookie = console.cookie_header();
    let url = sb.server_url.clone();
    let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
    let stop = Arc::new(AtomicBool::new(false));
    let floods: Vec<Arc<Flood>> = ["device-code starts", "bad token polls", "wrong passwords"]
        .into_iter()
        .zip(rates)
        .map(|(name, rate)| {
            Arc::new(Flood {
                name,
                rate,
                sent: AtomicU64::new(0),
                skipped: AtomicU64::new(0),
                failed: AtomicU64::new(0),
                statuses: Mutex::default(),
            })
        })
        .collect();
    let started = Instant::now();
    let mut runs = Vec::new();
    {
        let url = url.clone();
        runs.push(tokio::spawn(floods[0].clone().run(
            http.clone(),
            move |h, _| h.post(format!("{url}/oauth/device/code")).form(&[("client_id", cone_api::CLI_CLIENT_ID)]),
            stop.clone(),
        )));
    }
    {
        let url = url.clone();
        runs.push(tokio::spawn(floods[1].clone().run(
            http.clone(),
            move |h, n| {
                let code = format!("made-up-device-code-{n}");
                h.post(format!("{url}/oauth/token")).form(&[
                    ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                    ("device_code", code.as_str()),
                    ("client_id", cone_api::CLI_CLIENT_ID),
                ])
            },
            stop.clone(),
        )));
    }
    {
        let url = url.clone();
        runs.push(tokio::spawn(floods[2].clone().run(
            http.clone(),
            move |h, n| {
                let name = format!("made-up-{n}");
                h.post(format!("{url}/console/login")).header(reqwest::header::COOKIE, &cookie).form(&[
                    ("csrf", csrf.as_str()),
                    ("username", name.as_str()),
                    ("password", "wrong"),
                ])
            },
            stop.clone(),
        )));
    }
    // The server's memory every 5 s of the flood, to tell a plateau from growth.
    let pid = sb.server_pid().context("the server is not running")?;
    let timeline = {
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut samples = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                tokio::time::sleep(Duration::from_secs(5)).await;
                samples.push(rss_kb(pid) / 1024);
            }
            samples
        })
    };
    tokio::time::sleep(Duration::from_secs(3)).await;
    eprintln!("the same day under the flood");
    let loud = day(&sb, &alice, &bob, "Production").await;
    // As long again, so that memory that grows with time would show.
    tokio::time::sleep(Duration::from_secs(30)).await;
    stop.store(true, Ordering::Relaxed);
    for run in runs {
        run.await?;
    }
    let secs = started.elapsed().as_secs_f64();
    let timeline = timeline.await?;
    tokio::time::sleep(Duration::from_secs(5)).await;
    let after = rss_kb(pid) / 1024;
    let loud = loud?;
    println!("flood: {:<36} {:>10} {:>10}", "", "quiet", "flooded");
    let rows = [
        ("alice files a request (ms)", quiet.request_ms, loud.request_ms),
        ("bob approves it (ms)", quiet.approve_ms, loud.approve_ms),
        ("granted, from the approval (ms)", quiet.granted_ms, loud.granted_ms),
        ("ended, from the grant's end (ms)", quiet.ended_ms, loud.ended_ms),
        ("assignment gone, from the end (ms)", quiet.removed_ms, loud.removed_ms),
        ("server peak RSS (kB)", quiet.peak_rss_kb as u128, loud.peak_rss_kb as u128),
    ];
    for (what, q, l) in rows {
        println!("flood: {what:<36} {q:>10} {l:>10}");
    }
    println!("flood: server RSS every 5 s of the flood (MB): {timeline:?}; 5 s after it: {after}");
    for f in &floods {
        let statuses = f.statuses.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let answered: u64 = statuses.values().sum();
        println!(
            "flood: {} at {}/s offered for {secs:.0} s: {:.0}/s sent, {:.0}/s answered {statuses:?}, {} not sent \
             (all {IN_FLIGHT} connections busy), {} failed",
            f.name,
            f.rate,
            f.sent.load(Ordering::Relaxed) as f64 / secs,
            answered as f64 / secs,
            f.skipped.load(Ordering::Relaxed),
            f.failed.load(Ordering::Relaxed),
        );
    }
    Ok(())
}
