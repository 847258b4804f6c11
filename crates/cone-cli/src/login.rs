//! `cone login <server-url>`: OAuth 2.0 device authorization (RFC 8628) against cone-server.

use std::time::Duration;

use anyhow::{Context, Result, bail};
use cone_api::{DeviceAuthorization, OAuthError, TokenResponse};

use cone_client::{Failure, http_client};

use crate::settings::client;
use crate::settings::{Settings, Token};
use crate::ui::Ui;

pub async fn login(server: &str) -> Result<()> {
    let server = server.trim_end_matches('/').to_string();
    if !(server.starts_with("https://") || server.starts_with("http://")) {
        bail!("`{server}` is not a server URL; give the full address, like https://cone.example.com");
    }
    let http = http_client()?;
    let unreachable = || format!("Cannot reach the Cone server at {server}; check the address and that it is running");
    let resp = http
        .post(format!("{server}/oauth/device/code"))
        .form(&[("client_id", cone_api::CLI_CLIENT_ID)])
        .send()
        .await
        .with_context(unreachable)?;
    if !resp.status().is_success() {
        bail!("{server} did not accept a sign-in ({}); is it a Cone server?", resp.status());
    }
    let auth: DeviceAuthorization =
        resp.json().await.with_context(|| format!("{server} is not a Cone server, or a different version"))?;
    let mut ui = Ui::new();
    ui.say(&format!("To sign in to Cone, open {}", auth.verification_uri_complete));
    ui.say(&format!("Code: {}", auth.user_code));
    let mut interval = Duration::from_secs(auth.interval.max(1) as u64);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(auth.expires_in.max(1) as u64);
    while tokio::time::Instant::now() < deadline {
        tokio::time::sleep(interval).await;
        let resp = http
            .post(format!("{server}/oauth/token"))
            .form(&[
                ("grant_type", "urn:ietf:params:oauth:grant-type:device_code"),
                ("device_code", auth.device_code.as_str()),
                ("client_id", cone_api::CLI_CLIENT_ID),
            ])
            .send()
            .await
            .with_context(unreachable)?;
        if resp.status().is_success() {
            let token: TokenResponse = resp.json().await.context("the server sent a token cone cannot read")?;
            Token { server: server.clone(), access_token: token.access_token }.save()?;
            let mut settings = Settings::load(crate::settings::profile())?;
            settings.server = Some(server.clone());
            settings.save(crate::settings::profile())?;
            ui.say(&format!("Signed in to {server}."));
            return Ok(());
        }
        let err: OAuthError = resp.json().await.context("the server sent an error cone cannot read")?;
        match err.error.as_str() {
            "authorization_pending" => {}
            "slow_down" => interval += Duration::from_secs(5),
            "access_denied" => {
                bail!("The sign-in was refused; run `cone login {server}` to try again.")
            }
            _ => bail!("Sign-in failed: {}", err.error_description),
        }
    }
    bail!("The sign-in code expired before it was approved; run `cone login {server}` again.")
}

/// Revokes the token at the server and forgets it. A token the server no longer knows is forgotten all the same.
pub async fn logout() -> Result<()> {
    if let Some(source) = crate::settings::headless_source() {
        bail!(
            "cone logout signs out the session of `cone login`, but this command uses the API token from {source}; \
             revoke that token with `cone token revoke ID`, or run cone logout without it."
        );
    }
    let mut ui = Ui::new();
    let Ok(api) = client() else {
        ui.say("You were not signed in to Cone.");
        return Ok(());
    };
    match api.logout().await {
        Ok(()) | Err(Failure::Api { .. }) => {}
        Err(Failure::Other(e)) => {
            return Err(e.context("the server could not be told; run `cone logout` again when it is reachable"));
        }
    }
    Token::remove()?;
    ui.say("Signed out of Cone.");
    Ok(())
}
