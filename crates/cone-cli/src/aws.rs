//! `cone aws setup`, `setup show`, `login` and `credentials`.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use chrono::{DateTime, Utc};
use cone_api::{ConnectorStatus, CreateTask, Entitlement, codes};
use cone_core::awsconfig::ConfigFile;
use cone_core::naming;
use cone_core::task::TaskState;
use serde::Serialize;

use cone_client::{Client, Failure};

use crate::output::{Output, View};
use crate::settings::client;
use crate::settings::{self, AwsSettings, Settings};
use crate::sso::{self, PortalError, Sso};
use crate::ui::Ui;
use cone::cache::{self, CacheEntry, CachedCredentials};
use cone::files;
use cone::profile::ConeProfile;

/// How long to retry "No access" while AWS finishes provisioning an assignment.
const PROVISIONING_GRACE: Duration = Duration::from_secs(60);
/// Longest wait for an approved request to be provisioned.
const PROVISIONING_WAIT: Duration = Duration::from_secs(300);

pub struct SetupArgs {
    pub sso_url: Option<String>,
    pub sso_region: Option<String>,
    pub region: Option<String>,
    pub prune: bool,
}

/// What `cone aws setup` did to `~/.aws/config`.
#[derive(Serialize)]
pub struct SetupResult {
    pub config_file: String,
    pub added: Vec<String>,
    /// Cone's profiles for the same entitlements, already there.
    pub existing: Vec<String>,
    /// Names held by a profile someone else wrote (or cone wrote for another entitlement): left as they are, so
    /// that entitlement has no profile.
    pub taken: Vec<String>,
    pub removed: Vec<String>,
}

/// Why the catalog may be empty, from the server's last sync with AWS.
fn empty_catalog_hint(status: Option<&ConnectorStatus>) -> String {
    let at = |t: Option<DateTime<Utc>>| t.map(|t| t.format("%Y-%m-%d %H:%M UTC").to_string()).unwrap_or_default();
    match status {
        Some(s) if s.state == cone_api::CONNECTOR_ERROR => format!(
            "The server's last sync with AWS failed ({}): {}. Ask your Cone administrator to fix the AWS integration, then run `cone aws setup` again.",
            at(s.last_attempt_at),
            s.last_error.as_deref().unwrap_or("no reason given").trim_end_matches('.')
        ),
        Some(s) if s.state == cone_api::CONNECTOR_SYNCING => {
            "The server has not finished its first sync with AWS; run `cone aws setup` again in a minute.".into()
        }
        Some(s) => format!(
            "The AWS integration last synced at {} and found no permission set you can request; ask your Cone administrator which ones you should see.",
            at(s.last_success_at)
        ),
        None => "If the AWS integration was set up recently, its permission sets may not have synced yet; ask your Cone administrator.".into(),
    }
}

/// The AWS profile name for an entitlement: its alias, prefixed with the cone profile unless that is the default,
/// so that several Cone servers can write profiles into one file.
fn aws_profile_name(alias: &str) -> String {
    // Aliases come from the server already restricted to `[a-z0-9._-]`; re-deriving keeps a misbehaving server
    // from writing a section header or a second argument into the file.
    match settings::profile() {
        settings::DEFAULT_PROFILE => naming::profile_name(alias, ""),
        p => naming::profile_name(p, alias),
    }
}

pub async fn setup(args: SetupArgs, out: Output) -> Result<()> {
    let mut settings = Settings::load(settings::profile())?;
    let old = settings.aws.clone();
    let sso_start_url = args.sso_url.or_else(|| old.as_ref().map(|a| a.sso_start_url.clone())).context(
        "--sso-url is required the first time; it is your AWS access portal URL, like https://myorg.awsapps.com/start",
    )?;
    if !sso_start_url.starts_with("https://") {
        bail!("--sso-url must start with https:// (for example https://myorg.awsapps.com/start)");
    }
    let pick = |flag: Option<String>, saved: Option<&String>| {
        flag.or_else(|| saved.cloned()).unwrap_or_else(|| "us-east-1".into())
    };
    let aws = AwsSettings {
        sso_region: pick(args.sso_region, old.as_ref().map(|a| &a.sso_region)),
        region: pick(args.region, old.as_ref().map(|a| &a.region)),
        sso_start_url,
    };
    settings.aws = Some(aws.clone());
    settings.save(settings::profile())?;

    let api = client()?;
    let mut entitlements = api.entitlements(Some(cone_api::KIND_AWS_PERMISSION_SET)).await?;
    let mut ui = Ui::new();
    if entitlements.is_empty() {
        // Older servers have no status endpoint; the hint then falls back to the likely cause.
        let status = api.connectors().await.ok().and_then(|all| all.into_iter().next());
        ui.say(&format!(
            "No AWS permission sets are visible to you in Cone, so no profiles were written (or pruned). {}",
            empty_catalog_hint(status.as_ref())
        ));
        return Ok(());
    }
    let path = files::aws_config_path()?;
    let before = files::read_optional(&path)?.unwrap_or_default();
    let mut doc = ConfigFile::parse(&before);
    let exe = cone_exe()?;
    let exe = naming::shell_quote(&exe.to_string_lossy());
    let profile = settings::profile();
    let flag = if profile == settings::DEFAULT_PROFILE { String::new() } else { format!("-p {profile} ") };
    let mut result = SetupResult {
        config_file: path.display().to_string(),
        added: Vec::new(),
        existing: Vec::new(),
        taken: Vec::new(),
        removed: Vec::new(),
    };
    entitlements.sort_by(|a, b| a.alias.cmp(&b.alias));
    for e in &entitlements {
        let name = aws_profile_name(&e.alias);
        if let Some(keys) = doc.profile(&name) {
            let ours = keys.get("cone_app_id") == Some(&e.app_id) && keys.get("cone_entitlement_id") == Some(&e.id);
            if ours {
                result.existing.push(name)
            } else {
                result.taken.push(name)
            }
            continue;
        }
        doc.add_profile(
            &name,
            &[
                ("credential_process", format!("{exe} {flag}aws credentials {name}")),
                ("region", naming::ini_value(&aws.region)),
                ("cone_profile", profile.to_string()),
                ("cone_app_id", naming::ini_value(&e.app_id)),
                ("cone_entitlement_id", naming::ini_value(&e.id)),
                ("cone_account_id", naming::ini_value(&e.account_id)),
                ("cone_role_name", naming::ini_value(&e.role_name)),
            ],
        );
        result.added.push(name);
    }
    if args.prune {
        for name in doc.managed_profiles() {
            let Some(keys) = doc.profile(&name) else { continue };
            let owner = keys.get("cone_profile").map(String::as_str).unwrap_or(settings::DEFAULT_PROFILE);
            let still_there = entitlements
                .iter()
                .any(|e| keys.get("cone_app_id") == Some(&e.app_id) && keys.get("cone_entitlement_id") == Some(&e.id));
            if owner == profile && !still_there && doc.remove_managed_profile(&name) {
                result.removed.push(name);
            }
        }
    }
    if doc.render() != before {
        files::write_private(&path, doc.render().as_bytes())?;
    }
    out.show(&result, || {
        let mut lines: Vec<String> = result.added.iter().map(|n| format!("added    {n}")).collect();
        lines.extend(result.existing.iter().map(|n| format!("exists   {n}")));
        lines.extend(
            result.taken.iter().map(|n| format!("taken    {n} (a profile cone did not write for it; left as it is)")),
        );
        lines.extend(result.removed.iter().map(|n| format!("removed  {n}")));
        View::Line(lines.join("\n"))
    })?;
    ui.say(&format!(
        "{} profile(s) added, {} already present, {} removed, in {}.",
        result.added.len(),
        result.existing.len(),
        result.removed.len(),
        path.display()
    ));
    if !result.taken.is_empty() {
        ui.say(&format!(
            "{} name(s) are taken by profiles cone did not write, so those entitlements have no profile: rename \
             yours, or use `cone get ALIAS` for them.",
            result.taken.len()
        ));
    }
    if !on_path("aws") {
        ui.say("The AWS CLI is required but was not found on PATH. Install AWS CLI v2 and make sure the `aws` command is available in your shell.");
    }
    Ok(())
}

/// The program profiles run: `cone` (which answers cache hits without starting this one), as it told us when it
/// ran us, else this program.
fn cone_exe() -> Result<std::path::PathBuf> {
    match std::env::var_os("CONE_EXE").map(std::path::PathBuf::from) {
        Some(exe) if exe.is_absolute() => Ok(exe),
        _ => std::env::current_exe().context("cannot tell where the cone binary is"),
    }
}

fn on_path(program: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|paths| {
        std::env::split_paths(&paths).any(|dir| {
            std::fs::metadata(dir.join(program)).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

pub fn setup_show(out: Output) -> Result<()> {
    let settings = Settings::load(settings::profile())?;
    let aws = settings.aws()?;
    out.show(aws, || {
        View::Fields(vec![
            ("SSO start URL", aws.sso_start_url.clone(), false),
            ("SSO region", aws.sso_region.clone(), false),
            ("Default region", aws.region.clone(), false),
        ])
    })
}

pub async fn login(flow: sso::Flow) -> Result<()> {
    let settings = Settings::load(settings::profile())?;
    let sso = Sso::new(settings.aws()?).await;
    sso.login_now(&mut Ui::new(), flow).await?;
    Ok(())
}

/// `credential_process`: the profile's credentials as JSON on stdout.
pub async fn credentials(profile: &str) -> Result<()> {
    println!("{}", obtain(profile).await?.1.process_json()?);
    Ok(())
}

/// The whole flow behind a profile: cache, grant check, request, follow the policy, credentials.
async fn obtain(profile: &str) -> Result<(ConeProfile, CachedCredentials)> {
    // Many processes asking for one profile at once (Terraform, IDEs) make one request: the first does the
    // work, the others wait here and then find its credentials in the cache.
    let _lock = files::lock(&format!("profile-{}", cache::sha1_hex(profile)))?;
    let p = ConeProfile::read(profile)?;
    let settings = Settings::load(settings::profile())?;
    let aws = settings.aws()?.clone();
    if let Some(c) = cache::fresh_role_credentials(&aws.sso_start_url, &p.account_id, &p.role_name)? {
        return Ok((p, c));
    }
    let api = client()?;
    let mut ui = Ui::new();
    let entitlement = api.entitlement(&p.app_id, &p.entitlement_id).await?;
    // Access held through a group has no end in Cone and needs no request: the assignment is in AWS already.
    let granted_until = match entitlement.granted_until {
        _ if !entitlement.held_through_groups.is_empty() => None,
        Some(until) if until > Utc::now() => Some(until),
        _ => {
            let wanted = requested_for(&api, &mut ui, &p.name, entitlement.clone()).await?;
            request_access(&api, &mut ui, &p.name, &wanted).await?
        }
    };
    let role_name = if p.role_name.is_empty() { entitlement.role_name.clone() } else { p.role_name.clone() };
    let sso = Sso::new(&aws).await;
    let creds = fetch_role_credentials(&sso, &mut ui, &p.account_id, &role_name).await?;
    // JIT access ends with the grant, not with the role session: never hand out a later expiry.
    let expiration = granted_until.map_or(creds.expiration, |until| creds.expiration.min(until));
    let cached = CachedCredentials {
        access_key_id: creds.access_key_id,
        secret_access_key: creds.secret_access_key,
        session_token: creds.session_token,
        expiration: cache::format_time(expiration),
        account_id: p.account_id.clone(),
    };
    let entry = CacheEntry { provider_type: "sso".into(), credentials: cached };
    files::write_private(
        &cache::role_path(&aws.sso_start_url, &p.account_id, &role_name)?,
        &serde_json::to_vec(&entry)?,
    )?;
    Ok((p, entry.credentials))
}

/// The variables that hand the profile's credentials to a program, and the ones to remove: a child that
/// inherits `AWS_PROFILE` naming a cone profile would otherwise run `cone` again through `credential_process`.
fn environment(p: &ConeProfile, c: &CachedCredentials) -> (Vec<(&'static str, String)>, [&'static str; 2]) {
    let mut set = vec![
        ("AWS_ACCESS_KEY_ID", c.access_key_id.clone()),
        ("AWS_SECRET_ACCESS_KEY", c.secret_access_key.clone()),
        ("AWS_SESSION_TOKEN", c.session_token.clone()),
        ("AWS_CREDENTIAL_EXPIRATION", c.expiration.clone()),
    ];
    if let Some(region) = &p.region {
        set.push(("AWS_REGION", region.clone()));
        set.push(("AWS_DEFAULT_REGION", region.clone()));
    }
    (set, ["AWS_PROFILE", "AWS_DEFAULT_PROFILE"])
}

/// `cone aws env`: shell lines to `eval`, or the variables as JSON.
pub async fn env(profile: &str, json: bool) -> Result<()> {
    let (p, c) = obtain(profile).await?;
    let (set, unset) = environment(&p, &c);
    if json {
        let map: BTreeMap<&str, &str> = set.iter().map(|(k, v)| (*k, v.as_str())).collect();
        println!("{}", serde_json::to_string_pretty(&map)?);
        return Ok(());
    }
    for name in unset {
        println!("unset {name}");
    }
    for (name, value) in set {
        println!("export {name}={}", naming::shell_quote(&value));
    }
    Ok(())
}

/// `cone aws exec`: runs `command` with the profile's credentials in its environment, in place of cone.
pub async fn exec(profile: &str, command: &[String]) -> Result<()> {
    use std::os::unix::process::CommandExt;
    let (program, args) = command.split_first().context("name the command to run after `--`")?;
    let (p, c) = obtain(profile).await?;
    let (set, unset) = environment(&p, &c);
    let mut cmd = std::process::Command::new(program);
    cmd.args(args).envs(set);
    for name in unset {
        cmd.env_remove(name);
    }
    // `exec` only returns on failure.
    let err = cmd.exec();
    Err(anyhow::Error::from(err).context(format!("cannot run `{program}`; check that it is installed and on PATH")))
}

/// The AWS sign-in service that makes console sign-in URLs from role credentials (`CONE_SIGNIN_URL` overrides it,
/// for tests and other partitions).
fn signin_base() -> String {
    std::env::var("CONE_SIGNIN_URL")
        .ok()
        .filter(|u| !u.is_empty())
        .unwrap_or_else(|| "https://signin.aws.amazon.com".into())
        .trim_end_matches('/')
        .to_string()
}

#[derive(Serialize)]
pub struct ConsoleUrl {
    pub url: String,
}

/// `cone aws console`: signs in to the AWS console as the profile's role (through the same grant check as
/// `credentials`), in the browser when there is one here, else by printing the URL.
pub async fn console(profile: &str, destination: Option<String>, print: bool, out: Output) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct SigninToken {
        #[serde(rename = "SigninToken")]
        token: String,
    }
    let (p, c) = obtain(profile).await?;
    let base = signin_base();
    let session = serde_json::json!({
        "sessionId": c.access_key_id, "sessionKey": c.secret_access_key, "sessionToken": c.session_token,
    })
    .to_string();
    let resp = cone_client::http_client()?
        .get(format!("{base}/federation"))
        .query(&[("Action", "getSigninToken"), ("Session", session.as_str())])
        .send()
        .await
        .with_context(|| format!("cannot reach the AWS sign-in service at {base}; check your connection"))?;
    if !resp.status().is_success() {
        bail!(
            "The AWS sign-in service refused the role's credentials ({}); try again in a minute, or open the console from the AWS access portal.",
            resp.status()
        );
    }
    let token: SigninToken = resp.json().await.context("the AWS sign-in service sent an answer cone cannot read")?;
    let region = p.region.as_deref().unwrap_or("us-east-1");
    let destination =
        destination.unwrap_or_else(|| format!("https://{region}.console.aws.amazon.com/console/home?region={region}"));
    let mut url = reqwest::Url::parse(&format!("{base}/federation")).context("CONE_SIGNIN_URL is not a URL")?;
    url.query_pairs_mut()
        .append_pair("Action", "login")
        .append_pair("Issuer", "cone")
        .append_pair("Destination", &destination)
        .append_pair("SigninToken", &token.token);
    let result = ConsoleUrl { url: url.to_string() };
    if !print
        && !out.json()
        && crate::pkce::browser_available(|k| std::env::var(k).ok())
        && sso::start_browser(&result.url)
    {
        Ui::new().say(&format!("Opened the AWS console for {profile} in your browser."));
        return Ok(());
    }
    out.show(&result, || View::Line(result.url.clone()))
}

/// `cone aws logout`: ends the Identity Center session and forgets its token and every role credential cached
/// from it, like `aws sso logout`.
pub async fn logout() -> Result<()> {
    let settings = Settings::load(settings::profile())?;
    let sso = Sso::new(settings.aws()?).await;
    let signed_out = sso.logout().await?;
    let dir = files::home()?.join(".aws/cli/cache");
    let mut removed = 0;
    if let Ok(entries) = std::fs::read_dir(&dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            let is_sso = files::read_optional(&path)
                .ok()
                .flatten()
                .and_then(|t| serde_json::from_str::<CacheEntry>(&t).ok())
                .is_some_and(|e| e.provider_type == "sso");
            if is_sso && files::remove(&path)? {
                removed += 1;
            }
        }
    }
    let mut ui = Ui::new();
    ui.say(&match signed_out {
        true => format!("Signed out of IAM Identity Center; removed {removed} cached role credential(s)."),
        false => format!("You were not signed in to IAM Identity Center; removed {removed} cached role credential(s)."),
    });
    Ok(())
}

/// What to request for the profile's permission set: itself when the person may request it, else the one Identity
/// Center group membership that gives it. Several such groups are named for the person to choose with `cone get`.
async fn requested_for(api: &Client, ui: &mut Ui, profile: &str, e: Entitlement) -> Result<Entitlement> {
    if e.requestable {
        return Ok(e);
    }
    match e.through_groups.as_slice() {
        [] => bail!("\"{profile}\" is outside what you can request. Run `cone search` to see what you can request."),
        [group] => {
            let group_name = naming::printable(&group.display_name);
            ui.say(&format!("\"{profile}\" comes with membership of the Identity Center group \"{group_name}\"."));
            Ok(api.entitlement(&group.app_id, &group.id).await?)
        }
        several => {
            let choices: Vec<String> =
                several.iter().map(|g| format!("  cone get {}", naming::shell_quote(&g.alias))).collect();
            bail!(
                "\"{profile}\" comes with membership of any of {} Identity Center groups; request one of them, then retry:\n{}",
                several.len(),
                choices.join("\n")
            )
        }
    }
}

/// Files a request for `e` (unless a form is needed or one is pending) and follows it; returns the grant's end
/// once granted, `None` when the server says the person holds the access through a group (since the listing was
/// read), or an error carrying the message the person needs. `name` is the profile asked for.
async fn request_access(api: &Client, ui: &mut Ui, name: &str, e: &Entitlement) -> Result<Option<DateTime<Utc>>> {
    // Access an administrator withdrew is not asked for again behind the person's back: they are told who and
    // why, and ask again themselves if they still need it.
    if let Some(last) = api.latest_task(&e.app_id, &e.id).await?
        && let Some((by, why)) = last.withdrawal()
    {
        let (by, why) = (naming::printable(by), naming::printable(why));
        bail!(
            "Your access to \"{name}\" was withdrawn by {by}: {why}\nSee `cone task get {}`. If you still need it, request it again with `cone get {}`.",
            last.id,
            naming::shell_quote(&e.alias)
        );
    }
    if e.form.iter().any(|f| f.required) {
        return Err(form_required(name, e));
    }
    ui.say(&format!("No active grant for \"{name}\" — submitting access request..."));
    let req = CreateTask {
        app_id: e.app_id.clone(),
        entitlement_id: e.id.clone(),
        justification: format!("Requested by `cone aws credentials {name}`"),
        duration_secs: None,
        form_data: BTreeMap::new(),
        emergency: false,
    };
    let mut task = match api.create_task(&req).await {
        Ok(t) => t,
        Err(Failure::Api { error: err, .. }) if err.code == codes::PENDING_REQUEST_EXISTS => {
            let id = err.task_id.context("the server reported a pending request without its task id")?;
            let existing = api.task(id, None, Duration::ZERO).await?;
            // An approved request that AWS is still provisioning is worth waiting for; anything else is the
            // person's to resolve.
            if existing.state != TaskState::Provisioning {
                bail!(
                    "A pending request already exists for \"{name}\".\nCheck status: cone task get {id}\nOnce resolved, retry the command."
                );
            }
            existing
        }
        Err(Failure::Api { error: err, .. }) if err.code == codes::FORM_REQUIRED => {
            return Err(form_required(name, e));
        }
        Err(Failure::Api { error: err, .. }) if err.code == codes::HELD_THROUGH_GROUP => {
            ui.say(&err.message);
            return Ok(None);
        }
        Err(other) => return Err(other.into()),
    };
    ui.say(&format!("Access request submitted (task: {})", task.id));
    let deadline = tokio::time::Instant::now() + PROVISIONING_WAIT;
    if task.state == TaskState::Provisioning {
        ui.progress("Provisioning access in AWS");
    }
    loop {
        match task.state {
            TaskState::Granted => {
                ui.say("Access granted!");
                return task
                    .grant_expires_at
                    .context("the server reported a grant without an end time; retry the command")
                    .map(Some);
            }
            TaskState::PendingApproval => bail!(
                "Request submitted for \"{name}\" but requires approval.\nCheck status: cone task get {}\nOnce approved, retry the command.",
                task.id
            ),
            TaskState::Denied => bail!("Access request for \"{name}\" was denied"),
            TaskState::Failed => bail!(
                "Access request for \"{name}\" was approved but AWS could not provision it: {}. Check `cone task get {}` and ask your Cone administrator.",
                task.reason.as_deref().unwrap_or("no reason given"),
                task.id
            ),
            TaskState::Provisioning if tokio::time::Instant::now() < deadline => {
                task = api.task(task.id, Some(task.state), Duration::from_secs(20)).await?;
            }
            _ => bail!(
                "Access request for \"{name}\" is {}{}; check it with `cone task get {}`.",
                task.state.words(),
                task.waiting_for
                    .as_deref()
                    .map(|w| format!(", waiting for {}", naming::printable(w)))
                    .unwrap_or_default(),
                task.id
            ),
        }
    }
}

fn form_required(profile: &str, e: &Entitlement) -> anyhow::Error {
    anyhow::anyhow!(
        "No active grant for \"{profile}\". This entitlement requires a request form — request access with:\n  cone get --app-id {} --entitlement-id {}",
        naming::shell_quote(&e.app_id),
        naming::shell_quote(&e.id)
    )
}

async fn fetch_role_credentials(
    sso: &Sso,
    ui: &mut Ui,
    account_id: &str,
    role_name: &str,
) -> Result<sso::RoleCredentials> {
    let mut token = sso.access_token(ui).await?;
    let deadline = tokio::time::Instant::now() + PROVISIONING_GRACE;
    let mut relogged = false;
    loop {
        match sso.role_credentials(&token, account_id, role_name).await {
            Ok(c) => return Ok(c),
            Err(PortalError::NoAccess) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_secs(2)).await;
            }
            Err(PortalError::NoAccess) => bail!(
                "Your grant is active, but AWS still answers \"No access\" for {role_name} in account {account_id} after {}s; retry in a minute, and if it persists ask your Cone administrator to check provisioning.",
                PROVISIONING_GRACE.as_secs()
            ),
            Err(PortalError::Unauthorized) if !relogged && ui.has_terminal() => {
                sso.forget_token()?;
                token = sso.access_token(ui).await?;
                relogged = true;
            }
            Err(PortalError::Unauthorized) => bail!(
                "Session token not found or invalid: IAM Identity Center in {} does not accept your sign-in. Run `cone aws login`; if that does not help, the SSO region is probably wrong: check it with `cone aws setup show` and fix it with `cone aws setup --sso-region <region>`.",
                sso.sso_region()
            ),
            Err(PortalError::Other(e)) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(state: &str, error: Option<&str>) -> ConnectorStatus {
        let at = DateTime::from_timestamp(1_795_000_000, 0);
        ConnectorStatus {
            app_id: "aws".into(),
            state: state.into(),
            last_success_at: at,
            last_attempt_at: at,
            last_error: error.map(str::to_string),
            provisioning: true,
            mode: "embedded".into(),
            hosts: Vec::new(),
        }
    }

    #[test]
    fn empty_catalog_hint_says_why() {
        let failed = empty_catalog_hint(Some(&status(cone_api::CONNECTOR_ERROR, Some("no IAM Identity Center."))));
        assert_eq!(
            failed,
            "The server's last sync with AWS failed (2026-11-18 11:06 UTC): no IAM Identity Center. Ask your Cone administrator to fix the AWS integration, then run `cone aws setup` again."
        );
        assert!(empty_catalog_hint(Some(&status(cone_api::CONNECTOR_SYNCING, None))).contains("first sync"));
        assert!(
            empty_catalog_hint(Some(&status(cone_api::CONNECTOR_CONNECTED, None)))
                .starts_with("The AWS integration last synced at 2026-11-18 11:06 UTC")
        );
        assert!(empty_catalog_hint(None).contains("may not have synced yet"));
    }
}
