//! The SSO OIDC state machine: client registrations, device authorizations, authorization-code (PKCE)
//! sign-ins, and the access/refresh tokens they turn into. No I/O: every operation takes the current time,
//! so tests can drive the clock.

use std::collections::HashMap;

use axum::http::Uri;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::errors::{OidcError, OidcErrorKind};

pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
pub const REFRESH_TOKEN_GRANT: &str = "refresh_token";
/// The scope a registration needs for CreateToken to issue refresh tokens.
pub const ACCOUNT_ACCESS_SCOPE: &str = "sso:account:access";
const AUTHORIZATION_CODE_GRANT: &str = "authorization_code";

const CLIENT_SECRET_LIFETIME: TimeDelta = TimeDelta::days(90);
const DEVICE_CODE_LIFETIME_SECS: i64 = 600;
const POLL_INTERVAL_SECS: i64 = 1;
/// Polls are allowed this fraction of `interval` apart: clients sleep `interval` between polls, and timer
/// jitter must not turn an honest client's poll into a SlowDown.
const POLL_LENIENCY: f64 = 0.8;
/// No vowels, so user codes never spell words; no digits, so nothing is confused with O/I.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";
/// The AWS CLI gives the person 600 s to sign in before it stops waiting for the redirect.
const AUTHORIZATION_REQUEST_LIFETIME: TimeDelta = TimeDelta::minutes(10);
/// Codes are redeemed right after the redirect; RFC 6749 §4.1.2 asks for at most ten minutes.
const AUTHORIZATION_CODE_LIFETIME: TimeDelta = TimeDelta::minutes(5);
/// RFC 8252 §7.3: native clients register a loopback redirect URI without a port and listen on any port.
const LOOPBACK_HOSTS: [&str; 3] = ["127.0.0.1", "localhost", "[::1]"];

#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub token_ttl: TimeDelta,
    pub issue_refresh_tokens: bool,
}

/// The identity-store user a device authorization was approved for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub user_id: String,
    pub user_name: String,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisterClientRequest {
    pub client_name: Option<String>,
    pub client_type: Option<String>,
    pub scopes: Option<Vec<String>>,
    pub redirect_uris: Option<Vec<String>>,
    pub grant_types: Option<Vec<String>>,
    pub issuer_url: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct RegisterClientResponse {
    pub client_id: String,
    pub client_secret: String,
    pub client_id_issued_at: i64,
    pub client_secret_expires_at: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct StartDeviceAuthorizationRequest {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub start_url: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct StartDeviceAuthorizationResponse {
    pub device_code: String,
    pub user_code: String,
    pub verification_uri: String,
    pub verification_uri_complete: String,
    pub expires_in: i64,
    pub interval: i64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct CreateTokenRequest {
    pub client_id: Option<String>,
    pub client_secret: Option<String>,
    pub grant_type: Option<String>,
    pub device_code: Option<String>,
    pub code: Option<String>,
    pub refresh_token: Option<String>,
    pub redirect_uri: Option<String>,
    pub code_verifier: Option<String>,
}

#[derive(Debug, Serialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct CreateTokenResponse {
    pub access_token: String,
    pub token_type: &'static str,
    pub expires_in: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refresh_token: Option<String>,
}

/// Why a control request on a device authorization could not be carried out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DeviceControlError {
    UnknownUserCode,
    NotPending(&'static str),
}

/// Query parameters of `GET /authorize`, named as AWS CLI v2 sends them (`scopes` is space-separated).
#[derive(Debug, Deserialize)]
pub struct AuthorizeParams {
    pub response_type: Option<String>,
    pub client_id: Option<String>,
    pub redirect_uri: Option<String>,
    pub state: Option<String>,
    pub code_challenge: Option<String>,
    pub code_challenge_method: Option<String>,
    pub scopes: Option<String>,
}

/// Why an authorization request failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthorizeError {
    /// The client or its redirect URI is not trustworthy, so the browser must not be sent there
    /// (RFC 6749 §4.1.2.1); the text is shown to the person instead.
    Page(String),
    /// The client learns of the failure through its redirect URI: the `Location` to send the browser to.
    Redirect(String),
}

/// What the sign-in page tells the person about a validated authorization request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthorizationPrompt {
    /// Names the request in the sign-in form's answer.
    pub request_id: String,
    pub client_name: String,
    pub issuer_url: Option<String>,
    pub scopes: Vec<String>,
}

/// Which refresh tokens a revocation applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Revocation<'a> {
    All,
    /// Every refresh token of the identity-store user with this user name.
    User(&'a str),
    Token(&'a str),
}

#[derive(Debug)]
struct Client {
    name: String,
    secret: String,
    secret_expires_at: DateTime<Utc>,
    grant_types: Vec<String>,
    redirect_uris: Vec<String>,
    scopes: Vec<String>,
    issuer_url: Option<String>,
}

/// An authorization request waiting for the person on the sign-in page.
#[derive(Debug)]
struct PendingAuthorization {
    client_id: String,
    redirect_uri: String,
    state: Option<String>,
    code_challenge: String,
    expires_at: DateTime<Utc>,
}

#[derive(Debug)]
struct AuthorizationCode {
    client_id: String,
    /// As given to `/authorize`, port included: CreateToken must repeat it exactly.
    redirect_uri: String,
    code_challenge: String,
    identity: Identity,
    expires_at: DateTime<Utc>,
}

#[derive(Debug)]
enum DeviceStatus {
    Pending,
    Approved(Identity),
    Denied,
    Redeemed,
}

#[derive(Debug)]
struct Device {
    client_id: String,
    user_code: String,
    expires_at: DateTime<Utc>,
    last_poll: Option<DateTime<Utc>>,
    status: DeviceStatus,
}

/// A sign-in session: what one approved device authorization grants, across refreshes, until logout.
type SessionId = u64;

#[derive(Debug)]
struct AccessToken {
    session: SessionId,
    identity: Identity,
    expires_at: DateTime<Utc>,
}

#[derive(Debug)]
struct RefreshToken {
    session: SessionId,
    identity: Identity,
    client_id: String,
}

#[derive(Debug)]
pub struct Oidc {
    settings: Settings,
    region: String,
    clients: HashMap<String, Client>,
    devices: HashMap<String, Device>,
    pending_authorizations: HashMap<String, PendingAuthorization>,
    authorization_codes: HashMap<String, AuthorizationCode>,
    access_tokens: HashMap<String, AccessToken>,
    refresh_tokens: HashMap<String, RefreshToken>,
    next_session: SessionId,
}

impl Oidc {
    pub fn new(settings: Settings, region: impl Into<String>) -> Self {
        Self {
            settings,
            region: region.into(),
            clients: HashMap::new(),
            devices: HashMap::new(),
            pending_authorizations: HashMap::new(),
            authorization_codes: HashMap::new(),
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            next_session: 0,
        }
    }

    pub fn settings(&self) -> Settings {
        self.settings
    }

    /// Applies to tokens issued from now on; tokens already out keep their lifetimes.
    pub fn set_settings(&mut self, settings: Settings) {
        self.settings = settings;
    }

    pub fn register_client(
        &mut self,
        request: &RegisterClientRequest,
        now: DateTime<Utc>,
    ) -> Result<RegisterClientResponse, OidcError> {
        let client_type = required(&request.client_type, "clientType")?;
        if client_type != "public" {
            return Err(OidcError::new(
                OidcErrorKind::InvalidClientMetadata,
                format!("clientType must be \"public\", got {client_type:?}"),
            ));
        }
        let client_name = required(&request.client_name, "clientName")?.to_string();
        let grant_types = request.grant_types.clone().unwrap_or_default();
        for grant in &grant_types {
            if ![AUTHORIZATION_CODE_GRANT, DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT].contains(&grant.as_str()) {
                return Err(OidcError::new(
                    OidcErrorKind::UnsupportedGrantType,
                    format!("grant type {grant:?} cannot be registered"),
                ));
            }
        }
        let redirect_uris = request.redirect_uris.clone().unwrap_or_default();
        if let Some(bad) = redirect_uris.iter().find(|uri| RedirectUri::parse(uri).is_none()) {
            return Err(OidcError::new(
                OidcErrorKind::InvalidRedirectUri,
                format!("redirect URI {bad:?} is not an absolute URI without a fragment"),
            ));
        }
        if grant_types.iter().any(|g| g == AUTHORIZATION_CODE_GRANT) && redirect_uris.is_empty() {
            return Err(OidcError::new(
                OidcErrorKind::InvalidRequest,
                "redirectUris is required when grantTypes includes authorization_code",
            ));
        }
        let client_id = random_token("cid-", 16);
        let client_secret = random_token("cs-", 48);
        let secret_expires_at = now + CLIENT_SECRET_LIFETIME;
        self.clients.insert(
            client_id.clone(),
            Client {
                name: client_name,
                secret: client_secret.clone(),
                secret_expires_at,
                grant_types,
                redirect_uris,
                scopes: request.scopes.clone().unwrap_or_default(),
                issuer_url: request.issuer_url.clone().filter(|u| !u.is_empty()),
            },
        );
        Ok(RegisterClientResponse {
            client_id,
            client_secret,
            client_id_issued_at: now.timestamp(),
            client_secret_expires_at: secret_expires_at.timestamp(),
        })
    }

    pub fn start_device_authorization(
        &mut self,
        request: &StartDeviceAuthorizationRequest,
        now: DateTime<Utc>,
    ) -> Result<StartDeviceAuthorizationResponse, OidcError> {
        let client_id = self.authenticate_client(&request.client_id, &request.client_secret, now)?;
        required(&request.start_url, "startUrl")?;
        let user_code = loop {
            let candidate = random_user_code();
            if !self.devices.values().any(|d| d.user_code == candidate) {
                break candidate;
            }
        };
        let device_code = random_token("dc-", 32);
        self.devices.insert(
            device_code.clone(),
            Device {
                client_id,
                user_code: user_code.clone(),
                expires_at: now + TimeDelta::seconds(DEVICE_CODE_LIFETIME_SECS),
                last_poll: None,
                status: DeviceStatus::Pending,
            },
        );
        let verification_uri = format!("https://device.sso.{}.amazonaws.com/", self.region);
        Ok(StartDeviceAuthorizationResponse {
            verification_uri_complete: format!("{verification_uri}?user_code={user_code}"),
            verification_uri,
            device_code,
            user_code,
            expires_in: DEVICE_CODE_LIFETIME_SECS,
            interval: POLL_INTERVAL_SECS,
        })
    }

    pub fn create_token(
        &mut self,
        request: &CreateTokenRequest,
        now: DateTime<Utc>,
    ) -> Result<CreateTokenResponse, OidcError> {
        let grant_type = required(&request.grant_type, "grantType")?.to_string();
        let client_id = self.authenticate_client(&request.client_id, &request.client_secret, now)?;
        match grant_type.as_str() {
            DEVICE_CODE_GRANT => self.redeem_device_code(&client_id, &request.device_code, now),
            REFRESH_TOKEN_GRANT => self.redeem_refresh_token(&client_id, &request.refresh_token, now),
            AUTHORIZATION_CODE_GRANT => self.redeem_authorization_code(&client_id, request, now),
            other => Err(OidcError::new(
                OidcErrorKind::UnsupportedGrantType,
                format!("grant type {other:?} is not supported"),
            )),
        }
    }

    /// Approves the pending device authorization shown to the user as `user_code`.
    pub fn approve(
        &mut self,
        user_code: &str,
        identity: Identity,
        now: DateTime<Utc>,
    ) -> Result<(), DeviceControlError> {
        let device = self.pending_device(user_code, now)?;
        device.status = DeviceStatus::Approved(identity);
        Ok(())
    }

    pub fn deny(&mut self, user_code: &str, now: DateTime<Utc>) -> Result<(), DeviceControlError> {
        let device = self.pending_device(user_code, now)?;
        device.status = DeviceStatus::Denied;
        Ok(())
    }

    /// Lets a pending device authorization run out now, as if nobody had approved it in time.
    pub fn expire_device(&mut self, user_code: &str, now: DateTime<Utc>) -> Result<(), DeviceControlError> {
        let device = self.pending_device(user_code, now)?;
        device.expires_at = now;
        Ok(())
    }

    /// Validates a `/authorize` request and keeps it until the person decides.
    pub fn begin_authorization(
        &mut self,
        params: &AuthorizeParams,
        now: DateTime<Utc>,
    ) -> Result<AuthorizationPrompt, AuthorizeError> {
        let client_id = params.client_id.as_deref().filter(|id| !id.is_empty()).ok_or_else(|| {
            AuthorizeError::Page("the sign-in link has no client_id; start the login from your tool again".into())
        })?;
        let client = self.clients.get(client_id).filter(|c| c.secret_expires_at > now).ok_or_else(|| {
            AuthorizeError::Page(format!(
                "client {client_id:?} is not registered or its registration expired; register it again with \
                 RegisterClient and restart the login"
            ))
        })?;
        let redirect_uri = params.redirect_uri.as_deref().filter(|uri| !uri.is_empty()).ok_or_else(|| {
            AuthorizeError::Page("the sign-in link has no redirect_uri; start the login from your tool again".into())
        })?;
        if !client.redirect_uris.iter().any(|registered| redirect_uri_matches(registered, redirect_uri)) {
            return Err(AuthorizeError::Page(format!(
                "redirect_uri {redirect_uri:?} is not among the client's registered redirect URIs {:?} (a loopback \
                 URI may differ only in its port); register the client with this redirect URI",
                client.redirect_uris
            )));
        }
        let fail = |error: &str, description: String| {
            AuthorizeError::Redirect(redirect_location(
                redirect_uri,
                &[("error", error), ("error_description", &description)],
                params.state.as_deref(),
            ))
        };
        if params.response_type.as_deref() != Some("code") {
            return Err(fail(
                "unsupported_response_type",
                format!("response_type must be \"code\", got {:?}", params.response_type),
            ));
        }
        if !client.grant_types.iter().any(|g| g == AUTHORIZATION_CODE_GRANT) {
            return Err(fail(
                "unauthorized_client",
                "the client was not registered with the authorization_code grant type".into(),
            ));
        }
        if params.code_challenge_method.as_deref() != Some("S256") {
            return Err(fail(
                "invalid_request",
                format!("code_challenge_method must be \"S256\", got {:?}", params.code_challenge_method),
            ));
        }
        let code_challenge = params.code_challenge.as_deref().filter(|c| is_s256_challenge(c)).ok_or_else(|| {
            fail(
                "invalid_request",
                "code_challenge must be BASE64URL(SHA256(code_verifier)) without padding: 43 characters".into(),
            )
        })?;
        let requested: Vec<String> =
            params.scopes.as_deref().unwrap_or("").split_whitespace().map(str::to_string).collect();
        // A client that registered no scopes is not held to any: legacy registrations carry none.
        let unregistered = requested.iter().find(|s| !client.scopes.is_empty() && !client.scopes.contains(s));
        if let Some(scope) = unregistered {
            return Err(fail(
                "invalid_scope",
                format!("scope {scope:?} was not registered for the client (registered: {:?})", client.scopes),
            ));
        }
        let scopes = if requested.is_empty() { client.scopes.clone() } else { requested };
        let prompt = AuthorizationPrompt {
            request_id: random_token("ar-", 24),
            client_name: client.name.clone(),
            issuer_url: client.issuer_url.clone(),
            scopes,
        };
        self.pending_authorizations.insert(
            prompt.request_id.clone(),
            PendingAuthorization {
                client_id: client_id.to_string(),
                redirect_uri: redirect_uri.to_string(),
                state: params.state.clone(),
                code_challenge: code_challenge.to_string(),
                expires_at: now + AUTHORIZATION_REQUEST_LIFETIME,
            },
        );
        Ok(prompt)
    }

    /// Signs `identity` in for a pending authorization request; returns where to send the browser (the
    /// client's redirect URI with `code` and `state`).
    pub fn approve_authorization(
        &mut self,
        request_id: &str,
        identity: Identity,
        now: DateTime<Utc>,
    ) -> Result<String, AuthorizeError> {
        let request = self.take_pending_authorization(request_id, now)?;
        let code = random_token("ac-", 32);
        let location = redirect_location(&request.redirect_uri, &[("code", &code)], request.state.as_deref());
        self.authorization_codes.insert(
            code,
            AuthorizationCode {
                client_id: request.client_id,
                redirect_uri: request.redirect_uri,
                code_challenge: request.code_challenge,
                identity,
                expires_at: now + AUTHORIZATION_CODE_LIFETIME,
            },
        );
        Ok(location)
    }

    /// Refuses a pending authorization request; returns where to send the browser (the client's redirect
    /// URI with `error=access_denied`).
    pub fn deny_authorization(&mut self, request_id: &str, now: DateTime<Utc>) -> Result<String, AuthorizeError> {
        let request = self.take_pending_authorization(request_id, now)?;
        Ok(redirect_location(
            &request.redirect_uri,
            &[("error", "access_denied"), ("error_description", "The user denied the sign-in request")],
            request.state.as_deref(),
        ))
    }

    /// Revokes refresh tokens; returns how many. Access tokens already issued keep working until they expire,
    /// as they would with the real service.
    pub fn revoke_refresh_tokens(&mut self, which: Revocation<'_>) -> usize {
        let before = self.refresh_tokens.len();
        self.refresh_tokens.retain(|token, t| match which {
            Revocation::All => false,
            Revocation::User(user_name) => t.identity.user_name != user_name,
            Revocation::Token(revoked) => token != revoked,
        });
        before - self.refresh_tokens.len()
    }

    /// Lets every access token issued so far run out now; refresh tokens stay valid. Returns how many were live.
    pub fn expire_all_access_tokens(&mut self, now: DateTime<Utc>) -> usize {
        let mut live = 0;
        for token in self.access_tokens.values_mut() {
            if token.expires_at > now {
                live += 1;
                token.expires_at = now;
            }
        }
        live
    }

    /// The user behind a live access token.
    pub fn identity(&self, access_token: &str, now: DateTime<Utc>) -> Option<&Identity> {
        self.access_tokens.get(access_token).filter(|t| t.expires_at > now).map(|t| &t.identity)
    }

    /// Ends the sign-in session of a live access token: all its access and refresh tokens stop working.
    /// Returns false when the token was not live.
    pub fn logout(&mut self, access_token: &str, now: DateTime<Utc>) -> bool {
        let Some(session) = self.access_tokens.get(access_token).filter(|t| t.expires_at > now).map(|t| t.session)
        else {
            return false;
        };
        self.access_tokens.retain(|_, t| t.session != session);
        self.refresh_tokens.retain(|_, t| t.session != session);
        true
    }

    fn authenticate_client(
        &self,
        client_id: &Option<String>,
        client_secret: &Option<String>,
        now: DateTime<Utc>,
    ) -> Result<String, OidcError> {
        let id = required(client_id, "clientId")?;
        let secret = required(client_secret, "clientSecret")?;
        match self.clients.get(id) {
            Some(client) if client.secret == secret && client.secret_expires_at > now => Ok(id.to_string()),
            Some(client) if client.secret == secret => Err(OidcError::new(
                OidcErrorKind::InvalidClient,
                "the client registration has expired; register the client again",
            )),
            _ => Err(OidcError::new(
                OidcErrorKind::InvalidClient,
                "unknown clientId or wrong clientSecret; register the client again",
            )),
        }
    }

    fn redeem_device_code(
        &mut self,
        client_id: &str,
        device_code: &Option<String>,
        now: DateTime<Utc>,
    ) -> Result<CreateTokenResponse, OidcError> {
        let device_code = required(device_code, "deviceCode")?;
        let unknown = || OidcError::new(OidcErrorKind::InvalidGrant, "the device code is unknown or was already used");
        let device = self.devices.get_mut(device_code).ok_or_else(unknown)?;
        if device.client_id != client_id || matches!(device.status, DeviceStatus::Redeemed) {
            return Err(unknown());
        }
        if device.expires_at <= now {
            return Err(OidcError::new(
                OidcErrorKind::ExpiredToken,
                "the device authorization has expired; start a new one",
            ));
        }
        let previous_poll = device.last_poll.replace(now);
        let min_gap = TimeDelta::milliseconds((POLL_INTERVAL_SECS as f64 * 1000.0 * POLL_LENIENCY) as i64);
        if previous_poll.is_some_and(|previous| now - previous < min_gap) {
            return Err(OidcError::new(
                OidcErrorKind::SlowDown,
                format!("polled faster than the {POLL_INTERVAL_SECS} s interval"),
            ));
        }
        let identity = match &device.status {
            DeviceStatus::Pending => {
                return Err(OidcError::new(OidcErrorKind::AuthorizationPending, "Authorization is still pending"));
            }
            DeviceStatus::Denied => {
                return Err(OidcError::new(OidcErrorKind::AccessDenied, "the user denied the authorization"));
            }
            DeviceStatus::Redeemed => return Err(unknown()),
            DeviceStatus::Approved(identity) => identity.clone(),
        };
        device.status = DeviceStatus::Redeemed;
        let session = self.new_session();
        Ok(self.issue_tokens(session, identity, client_id, now))
    }

    fn take_pending_authorization(
        &mut self,
        request_id: &str,
        now: DateTime<Utc>,
    ) -> Result<PendingAuthorization, AuthorizeError> {
        self.pending_authorizations.remove(request_id).filter(|r| r.expires_at > now).ok_or_else(|| {
            AuthorizeError::Page(
                "this sign-in request is unknown, has expired or was already answered; start the login from your \
                 tool again"
                    .into(),
            )
        })
    }

    fn redeem_authorization_code(
        &mut self,
        client_id: &str,
        request: &CreateTokenRequest,
        now: DateTime<Utc>,
    ) -> Result<CreateTokenResponse, OidcError> {
        let code = required(&request.code, "code")?;
        let redirect_uri = required(&request.redirect_uri, "redirectUri")?;
        let code_verifier = required(&request.code_verifier, "codeVerifier")?;
        let unknown = || {
            OidcError::new(
                OidcErrorKind::InvalidGrant,
                "the authorization code is unknown, was already used, or was issued to another client; log in again",
            )
        };
        let grant = self.authorization_codes.get(code).filter(|g| g.client_id == client_id).ok_or_else(unknown)?;
        if grant.expires_at <= now {
            self.authorization_codes.remove(code);
            // The AWS CLI turns ExpiredTokenException from this grant into "the pending authorization has expired".
            return Err(OidcError::new(
                OidcErrorKind::ExpiredToken,
                "the authorization code has expired; log in again",
            ));
        }
        if grant.redirect_uri != redirect_uri {
            return Err(OidcError::new(
                OidcErrorKind::InvalidGrant,
                format!(
                    "redirectUri {redirect_uri:?} differs from the redirect_uri {:?} given to /authorize",
                    grant.redirect_uri
                ),
            ));
        }
        if s256_challenge(code_verifier) != grant.code_challenge {
            return Err(OidcError::new(
                OidcErrorKind::InvalidGrant,
                "codeVerifier does not match the code_challenge given to /authorize (S256)",
            ));
        }
        let grant = self.authorization_codes.remove(code).ok_or_else(unknown)?;
        let session = self.new_session();
        Ok(self.issue_tokens(session, grant.identity, client_id, now))
    }

    fn redeem_refresh_token(
        &mut self,
        client_id: &str,
        refresh_token: &Option<String>,
        now: DateTime<Utc>,
    ) -> Result<CreateTokenResponse, OidcError> {
        let refresh_token = required(refresh_token, "refreshToken")?;
        let invalid = || {
            OidcError::new(
                OidcErrorKind::InvalidGrant,
                "the refresh token is unknown, revoked, or belongs to another client; log in again",
            )
        };
        // Another client presenting the token must not revoke it for its owner.
        if self.refresh_tokens.get(refresh_token).is_none_or(|t| t.client_id != client_id) {
            return Err(invalid());
        }
        let old = self.refresh_tokens.remove(refresh_token).ok_or_else(invalid)?;
        Ok(self.issue_tokens(old.session, old.identity, client_id, now))
    }

    fn new_session(&mut self) -> SessionId {
        self.next_session += 1;
        self.next_session
    }

    fn issue_tokens(
        &mut self,
        session: SessionId,
        identity: Identity,
        client_id: &str,
        now: DateTime<Utc>,
    ) -> CreateTokenResponse {
        let access_token = random_token("at-", 32);
        self.access_tokens.insert(
            access_token.clone(),
            AccessToken { session, identity: identity.clone(), expires_at: now + self.settings.token_ttl },
        );
        // As IAM Identity Center documents: only a client registered with the sso:account:access scope (the AWS
        // CLI's sso-session, cone's registrations) is given refresh tokens.
        let scoped = self.clients.get(client_id).is_some_and(|c| c.scopes.iter().any(|s| s == ACCOUNT_ACCESS_SCOPE));
        let refresh_token = (self.settings.issue_refresh_tokens && scoped).then(|| {
            let token = random_token("rt-", 32);
            self.refresh_tokens
                .insert(token.clone(), RefreshToken { session, identity, client_id: client_id.to_string() });
            token
        });
        CreateTokenResponse {
            access_token,
            token_type: "Bearer",
            expires_in: self.settings.token_ttl.num_seconds(),
            refresh_token,
        }
    }

    fn pending_device(&mut self, user_code: &str, now: DateTime<Utc>) -> Result<&mut Device, DeviceControlError> {
        let wanted = normalize_user_code(user_code);
        let device = self
            .devices
            .values_mut()
            .find(|d| normalize_user_code(&d.user_code) == wanted)
            .ok_or(DeviceControlError::UnknownUserCode)?;
        if device.expires_at <= now {
            return Err(DeviceControlError::NotPending("expired"));
        }
        match device.status {
            DeviceStatus::Pending => Ok(device),
            DeviceStatus::Approved(_) => Err(DeviceControlError::NotPending("already approved")),
            DeviceStatus::Denied => Err(DeviceControlError::NotPending("already denied")),
            DeviceStatus::Redeemed => Err(DeviceControlError::NotPending("already redeemed")),
        }
    }
}

fn required<'a>(value: &'a Option<String>, field: &str) -> Result<&'a str, OidcError> {
    match value.as_deref() {
        Some(v) if !v.is_empty() => Ok(v),
        _ => Err(OidcError::new(OidcErrorKind::InvalidRequest, format!("{field} is required"))),
    }
}

/// The parts of a redirect URI that matching compares.
#[derive(Debug, PartialEq, Eq)]
struct RedirectUri {
    scheme: String,
    host: String,
    port: Option<u16>,
    path: String,
    query: Option<String>,
}

impl RedirectUri {
    /// None unless `raw` is an absolute URI with a host and no fragment (RFC 6749 §3.1.2).
    fn parse(raw: &str) -> Option<RedirectUri> {
        if raw.contains('#') {
            return None;
        }
        let uri: Uri = raw.parse().ok()?;
        let host = uri.host().filter(|h| !h.is_empty())?.to_ascii_lowercase();
        let path = match uri.path() {
            "" => "/".to_string(),
            path => path.to_string(),
        };
        Some(RedirectUri {
            scheme: uri.scheme_str()?.to_ascii_lowercase(),
            host,
            port: uri.port_u16(),
            path,
            query: uri.query().map(str::to_string),
        })
    }
}

/// Exact match, except that a loopback `http` URI may carry any port: the AWS CLI registers
/// `http://127.0.0.1/oauth/callback` and then listens on an ephemeral port.
fn redirect_uri_matches(registered: &str, used: &str) -> bool {
    let (Some(registered), Some(used)) = (RedirectUri::parse(registered), RedirectUri::parse(used)) else {
        return false;
    };
    let any_port = used.scheme == "http" && LOOPBACK_HOSTS.contains(&used.host.as_str());
    registered.scheme == used.scheme
        && registered.host == used.host
        && registered.path == used.path
        && registered.query == used.query
        && (any_port || registered.port == used.port)
}

/// `redirect_uri` with `params` and then `state` (when the client sent one) added to its query.
fn redirect_location(redirect_uri: &str, params: &[(&str, &str)], state: Option<&str>) -> String {
    let mut location = redirect_uri.to_string();
    let state = state.map(|s| ("state", s));
    for (i, (name, value)) in params.iter().copied().chain(state).enumerate() {
        let separator = if i > 0 || location.contains('?') { '&' } else { '?' };
        location.push(separator);
        location.push_str(name);
        location.push('=');
        location.push_str(&percent_encode(value));
    }
    location
}

/// RFC 3986 percent-encoding of everything but the unreserved characters.
fn percent_encode(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for byte in value.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// RFC 7636 §4.2: `BASE64URL-ENCODE(SHA256(ASCII(code_verifier)))`, unpadded.
fn s256_challenge(code_verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(code_verifier.as_bytes()))
}

fn is_s256_challenge(challenge: &str) -> bool {
    challenge.len() == 43 && challenge.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

fn random_token(prefix: &str, bytes: usize) -> String {
    let mut buf = vec![0u8; bytes];
    rand::thread_rng().fill_bytes(&mut buf);
    format!("{prefix}{}", URL_SAFE_NO_PAD.encode(buf))
}

fn random_user_code() -> String {
    let mut rng = rand::thread_rng();
    let mut pick = || USER_CODE_ALPHABET[rng.gen_range(0..USER_CODE_ALPHABET.len())] as char;
    let first: String = (0..4).map(|_| pick()).collect();
    let second: String = (0..4).map(|_| pick()).collect();
    format!("{first}-{second}")
}

/// People type user codes in lower case or without the dash.
fn normalize_user_code(code: &str) -> String {
    code.chars().filter(|c| *c != '-' && !c.is_whitespace()).map(|c| c.to_ascii_uppercase()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t0() -> DateTime<Utc> {
        DateTime::from_timestamp(1_800_000_000, 0).expect("valid timestamp")
    }

    fn secs(s: f64) -> TimeDelta {
        TimeDelta::milliseconds((s * 1000.0) as i64)
    }

    fn oidc(issue_refresh_tokens: bool) -> Oidc {
        Oidc::new(Settings { token_ttl: TimeDelta::hours(8), issue_refresh_tokens }, "eu-west-1")
    }

    fn alice() -> Identity {
        Identity { user_id: "u-1".into(), user_name: "alice".into() }
    }

    /// A device-flow client registered with `scopes`.
    fn register_with(o: &mut Oidc, scopes: Option<Vec<String>>) -> RegisterClientResponse {
        o.register_client(
            &RegisterClientRequest {
                client_name: Some("botocore-client-test".into()),
                client_type: Some("public".into()),
                scopes,
                ..Default::default()
            },
            t0(),
        )
        .expect("registration")
    }

    /// As the AWS CLI's sso-session and cone register: with the scope that brings refresh tokens.
    fn register(o: &mut Oidc) -> RegisterClientResponse {
        register_with(o, Some(vec![ACCOUNT_ACCESS_SCOPE.into()]))
    }

    fn start(o: &mut Oidc, c: &RegisterClientResponse) -> StartDeviceAuthorizationResponse {
        o.start_device_authorization(
            &StartDeviceAuthorizationRequest {
                client_id: Some(c.client_id.clone()),
                client_secret: Some(c.client_secret.clone()),
                start_url: Some("https://d-1234567890.awsapps.com/start".into()),
            },
            t0(),
        )
        .expect("device authorization")
    }

    fn device_poll(c: &RegisterClientResponse, d: &StartDeviceAuthorizationResponse) -> CreateTokenRequest {
        CreateTokenRequest {
            client_id: Some(c.client_id.clone()),
            client_secret: Some(c.client_secret.clone()),
            grant_type: Some(DEVICE_CODE_GRANT.into()),
            device_code: Some(d.device_code.clone()),
            ..Default::default()
        }
    }

    fn refresh(c: &RegisterClientResponse, token: &str) -> CreateTokenRequest {
        CreateTokenRequest {
            client_id: Some(c.client_id.clone()),
            client_secret: Some(c.client_secret.clone()),
            grant_type: Some(REFRESH_TOKEN_GRANT.into()),
            refresh_token: Some(token.into()),
            ..Default::default()
        }
    }

    fn kind(r: Result<CreateTokenResponse, OidcError>) -> OidcErrorKind {
        r.expect_err("an error").kind
    }

    /// Registers and starts a device authorization, then polls it once at t0 (still pending); returns the
    /// authorization and its poll request.
    fn polled_once(o: &mut Oidc) -> (StartDeviceAuthorizationResponse, CreateTokenRequest) {
        let c = register(o);
        let d = start(o, &c);
        let poll = device_poll(&c, &d);
        assert_eq!(kind(o.create_token(&poll, t0())), OidcErrorKind::AuthorizationPending);
        (d, poll)
    }

    /// Registers, starts, approves and redeems; returns the client and the token response.
    fn logged_in(o: &mut Oidc) -> (RegisterClientResponse, CreateTokenResponse) {
        let c = register(o);
        let d = start(o, &c);
        o.approve(&d.user_code, alice(), t0()).expect("approve");
        let token = o.create_token(&device_poll(&c, &d), t0()).expect("token");
        (c, token)
    }

    #[test]
    fn registration_uses_epoch_seconds_and_ninety_days() {
        let mut o = oidc(true);
        let c = register(&mut o);
        assert_eq!(c.client_id_issued_at, 1_800_000_000);
        assert_eq!(c.client_secret_expires_at - c.client_id_issued_at, 90 * 24 * 3600);
    }

    #[test]
    fn registration_rejects_confidential_clients_and_unknown_grants() {
        let mut o = oidc(true);
        let err = o
            .register_client(
                &RegisterClientRequest {
                    client_name: Some("x".into()),
                    client_type: Some("confidential".into()),
                    ..Default::default()
                },
                t0(),
            )
            .expect_err("confidential client");
        assert_eq!(err.kind, OidcErrorKind::InvalidClientMetadata);
        let err = o
            .register_client(
                &RegisterClientRequest {
                    client_name: Some("x".into()),
                    client_type: Some("public".into()),
                    grant_types: Some(vec!["password".into()]),
                    ..Default::default()
                },
                t0(),
            )
            .expect_err("password grant");
        assert_eq!(err.kind, OidcErrorKind::UnsupportedGrantType);
        let err = o.register_client(&RegisterClientRequest::default(), t0()).expect_err("empty");
        assert_eq!(err.kind, OidcErrorKind::InvalidRequest);
    }

    #[test]
    fn device_authorization_shape() {
        let mut o = oidc(true);
        let c = register(&mut o);
        let d = start(&mut o, &c);
        assert_eq!(d.expires_in, 600);
        assert_eq!(d.interval, 1);
        let code: Vec<char> = d.user_code.chars().collect();
        assert_eq!(code.len(), 9);
        assert_eq!(code[4], '-');
        assert!(code.iter().enumerate().all(|(i, ch)| i == 4 || ch.is_ascii_uppercase()));
        assert_eq!(d.verification_uri, "https://device.sso.eu-west-1.amazonaws.com/");
        assert_eq!(d.verification_uri_complete, format!("{}?user_code={}", d.verification_uri, d.user_code));
    }

    #[test]
    fn device_authorization_needs_a_valid_client() {
        let mut o = oidc(true);
        let c = register(&mut o);
        let mut request = StartDeviceAuthorizationRequest {
            client_id: Some(c.client_id.clone()),
            client_secret: Some("wrong".into()),
            start_url: Some("https://d-1234567890.awsapps.com/start".into()),
        };
        let err = o.start_device_authorization(&request, t0()).expect_err("wrong secret");
        assert_eq!(err.kind, OidcErrorKind::InvalidClient);
        request.client_secret = Some(c.client_secret.clone());
        let after_expiry = t0() + TimeDelta::days(91);
        let err = o.start_device_authorization(&request, after_expiry).expect_err("expired registration");
        assert_eq!(err.kind, OidcErrorKind::InvalidClient);
        request.start_url = None;
        let err = o.start_device_authorization(&request, t0()).expect_err("no start URL");
        assert_eq!(err.kind, OidcErrorKind::InvalidRequest);
    }

    #[test]
    fn pending_then_approved_then_single_use() {
        let mut o = oidc(true);
        let (d, poll) = polled_once(&mut o);
        assert_eq!(kind(o.create_token(&poll, t0() + secs(1.0))), OidcErrorKind::AuthorizationPending);
        o.approve(&d.user_code.to_lowercase().replace('-', ""), alice(), t0() + secs(1.5))
            .expect("approve by a loosely typed code");
        let token = o.create_token(&poll, t0() + secs(2.0)).expect("token after approval");
        assert_eq!(token.token_type, "Bearer");
        assert_eq!(token.expires_in, 8 * 3600);
        assert!(token.refresh_token.is_some());
        assert_eq!(o.identity(&token.access_token, t0() + secs(3.0)), Some(&alice()));
        assert_eq!(kind(o.create_token(&poll, t0() + secs(4.0))), OidcErrorKind::InvalidGrant);
    }

    #[test]
    fn polling_faster_than_the_interval_slows_down_but_is_lenient() {
        let mut o = oidc(true);
        let (d, poll) = polled_once(&mut o);
        assert_eq!(kind(o.create_token(&poll, t0() + secs(0.5))), OidcErrorKind::SlowDown);
        assert_eq!(kind(o.create_token(&poll, t0() + secs(1.35))), OidcErrorKind::AuthorizationPending);
        o.approve(&d.user_code, alice(), t0()).expect("approve");
        assert_eq!(kind(o.create_token(&poll, t0() + secs(1.4))), OidcErrorKind::SlowDown);
        o.create_token(&poll, t0() + secs(2.3)).expect("0.9 s after the last poll is accepted");
    }

    #[test]
    fn denied_and_expired_device_codes() {
        let mut o = oidc(true);
        let c = register(&mut o);
        let denied = start(&mut o, &c);
        o.deny(&denied.user_code, t0()).expect("deny");
        assert_eq!(kind(o.create_token(&device_poll(&c, &denied), t0())), OidcErrorKind::AccessDenied);
        assert_eq!(o.approve(&denied.user_code, alice(), t0()), Err(DeviceControlError::NotPending("already denied")));

        let late = start(&mut o, &c);
        let expiry = t0() + TimeDelta::seconds(600);
        assert_eq!(kind(o.create_token(&device_poll(&c, &late), expiry)), OidcErrorKind::ExpiredToken);
        assert_eq!(o.approve(&late.user_code, alice(), expiry), Err(DeviceControlError::NotPending("expired")));
        assert_eq!(o.deny("ZZZZ-ZZZZ", t0()), Err(DeviceControlError::UnknownUserCode));
    }

    #[test]
    fn a_device_code_cannot_be_redeemed_by_another_client() {
        let mut o = oidc(true);
        let c = register(&mut o);
        let other = register(&mut o);
        let d = start(&mut o, &c);
        o.approve(&d.user_code, alice(), t0()).expect("approve");
        let mut poll = device_poll(&other, &d);
        assert_eq!(kind(o.create_token(&poll, t0())), OidcErrorKind::InvalidGrant);
        poll.client_secret = Some("wrong".into());
        assert_eq!(kind(o.create_token(&poll, t0())), OidcErrorKind::InvalidClient);
        o.create_token(&device_poll(&c, &d), t0()).expect("the right client still can");
    }

    #[test]
    fn refresh_rotates_and_revokes_the_old_refresh_token() {
        let mut o = oidc(true);
        let (c, first) = logged_in(&mut o);
        let rt = first.refresh_token.expect("refresh token");
        let later = t0() + TimeDelta::hours(9);
        assert_eq!(o.identity(&first.access_token, later), None, "access token outlives its ttl");
        let second = o.create_token(&refresh(&c, &rt), later).expect("refresh");
        assert_ne!(second.access_token, first.access_token);
        let rt2 = second.refresh_token.clone().expect("rotated refresh token");
        assert_ne!(rt2, rt);
        assert_eq!(o.identity(&second.access_token, later), Some(&alice()));
        assert_eq!(kind(o.create_token(&refresh(&c, &rt), later)), OidcErrorKind::InvalidGrant);

        let other = register(&mut o);
        assert_eq!(kind(o.create_token(&refresh(&other, &rt2), later)), OidcErrorKind::InvalidGrant);
        let mut bad_client = refresh(&c, &rt2);
        bad_client.client_secret = Some("wrong".into());
        assert_eq!(kind(o.create_token(&bad_client, later)), OidcErrorKind::InvalidClient);
    }

    #[test]
    fn no_refresh_tokens_without_the_account_access_scope() {
        let mut o = oidc(true);
        let c = register_with(&mut o, None);
        let d = start(&mut o, &c);
        o.approve(&d.user_code, alice(), t0()).expect("approve");
        let token = o.create_token(&device_poll(&c, &d), t0()).expect("token");
        assert_eq!(token.refresh_token, None, "a legacy registration, as a profile without sso-session makes");
    }

    #[test]
    fn no_refresh_tokens_when_disabled() {
        let mut o = oidc(false);
        let (c, token) = logged_in(&mut o);
        assert_eq!(token.refresh_token, None);
        assert_eq!(kind(o.create_token(&refresh(&c, "rt-anything"), t0())), OidcErrorKind::InvalidGrant);
    }

    #[test]
    fn logout_ends_the_whole_session() {
        let mut o = oidc(true);
        let (c, first) = logged_in(&mut o);
        let second = o
            .create_token(&refresh(&c, first.refresh_token.as_deref().expect("refresh token")), t0())
            .expect("refresh");
        let (_, bystander) = logged_in(&mut o);
        assert!(o.logout(&second.access_token, t0()));
        assert_eq!(o.identity(&first.access_token, t0()), None);
        assert_eq!(o.identity(&second.access_token, t0()), None);
        let rt2 = second.refresh_token.expect("refresh token");
        assert_eq!(kind(o.create_token(&refresh(&c, &rt2), t0())), OidcErrorKind::InvalidGrant);
        assert!(!o.logout(&second.access_token, t0()), "a second logout finds no session");
        assert_eq!(o.identity(&bystander.access_token, t0()), Some(&alice()));
    }

    #[test]
    fn expire_all_keeps_refresh_working() {
        let mut o = oidc(true);
        let (c, token) = logged_in(&mut o);
        assert_eq!(o.expire_all_access_tokens(t0()), 1);
        assert_eq!(o.identity(&token.access_token, t0()), None);
        assert_eq!(o.expire_all_access_tokens(t0()), 0);
        let renewed = o
            .create_token(&refresh(&c, token.refresh_token.as_deref().expect("refresh token")), t0())
            .expect("refresh after expiry");
        assert_eq!(o.identity(&renewed.access_token, t0()), Some(&alice()));
    }

    #[test]
    fn grant_type_checks() {
        let mut o = oidc(true);
        let c = register(&mut o);
        let mut request = refresh(&c, "x");
        request.grant_type = Some("authorization_code".into());
        assert_eq!(kind(o.create_token(&request, t0())), OidcErrorKind::InvalidRequest, "no code");
        request.grant_type = Some("client_credentials".into());
        assert_eq!(kind(o.create_token(&request, t0())), OidcErrorKind::UnsupportedGrantType);
        request.grant_type = None;
        assert_eq!(kind(o.create_token(&request, t0())), OidcErrorKind::InvalidRequest);
        request.grant_type = Some(DEVICE_CODE_GRANT.into());
        assert_eq!(kind(o.create_token(&request, t0())), OidcErrorKind::InvalidRequest, "no deviceCode");
    }

    // RFC 7636 appendix B.
    const VERIFIER: &str = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
    const CHALLENGE: &str = "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM";
    const REGISTERED_REDIRECT: &str = "http://127.0.0.1/oauth/callback";
    const REDIRECT: &str = "http://127.0.0.1:35987/oauth/callback";

    /// Registers a client the way AWS CLI v2 does for PKCE.
    fn register_pkce(o: &mut Oidc) -> RegisterClientResponse {
        o.register_client(
            &RegisterClientRequest {
                client_name: Some("botocore-client-corp".into()),
                client_type: Some("public".into()),
                grant_types: Some(vec![AUTHORIZATION_CODE_GRANT.into(), REFRESH_TOKEN_GRANT.into()]),
                redirect_uris: Some(vec![REGISTERED_REDIRECT.into()]),
                issuer_url: Some("https://d-1234567890.awsapps.com/start".into()),
                scopes: Some(vec!["sso:account:access".into()]),
            },
            t0(),
        )
        .expect("PKCE registration")
    }

    /// A client with only `grant_type` and the loopback redirect: no scopes, no issuer.
    fn register_bare(o: &mut Oidc, grant_type: &str) -> RegisterClientResponse {
        o.register_client(
            &RegisterClientRequest {
                client_name: Some("x".into()),
                client_type: Some("public".into()),
                grant_types: Some(vec![grant_type.into()]),
                redirect_uris: Some(vec![REGISTERED_REDIRECT.into()]),
                ..Default::default()
            },
            t0(),
        )
        .expect("registration")
    }

    fn authorize_params(c: &RegisterClientResponse) -> AuthorizeParams {
        AuthorizeParams {
            response_type: Some("code".into()),
            client_id: Some(c.client_id.clone()),
            redirect_uri: Some(REDIRECT.into()),
            state: Some("3fd6b235-8d4d-453c-aec1-37570a68391a".into()),
            code_challenge: Some(CHALLENGE.into()),
            code_challenge_method: Some("S256".into()),
            scopes: Some("sso:account:access".into()),
        }
    }

    fn code_request(c: &RegisterClientResponse, code: &str, verifier: &str) -> CreateTokenRequest {
        CreateTokenRequest {
            client_id: Some(c.client_id.clone()),
            client_secret: Some(c.client_secret.clone()),
            grant_type: Some(AUTHORIZATION_CODE_GRANT.into()),
            code: Some(code.into()),
            redirect_uri: Some(REDIRECT.into()),
            code_verifier: Some(verifier.into()),
            ..Default::default()
        }
    }

    /// The query parameters of a redirect `Location`, decoded.
    fn query_of(location: &str) -> HashMap<String, String> {
        let (_, query) = location.split_once('?').expect("a query");
        query
            .split('&')
            .map(|pair| {
                let (name, value) = pair.split_once('=').expect("name=value");
                (name.to_string(), percent_decode(value))
            })
            .collect()
    }

    fn percent_decode(value: &str) -> String {
        let mut out = Vec::new();
        let mut bytes = value.bytes();
        while let Some(b) = bytes.next() {
            if b == b'%' {
                let hex: String = bytes.by_ref().take(2).map(char::from).collect();
                out.push(u8::from_str_radix(&hex, 16).expect("hex escape"));
            } else {
                out.push(b);
            }
        }
        String::from_utf8(out).expect("utf-8")
    }

    /// One way to spoil a valid authorization request.
    type ParamsChange<'a> = Box<dyn Fn(&mut AuthorizeParams) + 'a>;

    /// Authorizes alice with the RFC 7636 challenge; returns the client and the code.
    fn authorized(o: &mut Oidc) -> (RegisterClientResponse, String) {
        let c = register_pkce(o);
        let prompt = o.begin_authorization(&authorize_params(&c), t0()).expect("valid request");
        let location = o.approve_authorization(&prompt.request_id, alice(), t0()).expect("approve");
        assert!(location.starts_with(&format!("{REDIRECT}?code=")), "{location}");
        let query = query_of(&location);
        assert_eq!(query["state"], "3fd6b235-8d4d-453c-aec1-37570a68391a");
        (c, query["code"].clone())
    }

    #[test]
    fn s256_matches_rfc_7636() {
        assert_eq!(s256_challenge(VERIFIER), CHALLENGE);
        assert!(is_s256_challenge(CHALLENGE));
        assert!(!is_s256_challenge(&CHALLENGE[1..]));
        assert!(!is_s256_challenge(&format!("{}+", &CHALLENGE[1..])), "standard base64 is not base64url");
    }

    #[test]
    fn loopback_redirects_match_on_any_port_others_exactly() {
        for (registered, used, matches) in [
            (REGISTERED_REDIRECT, REDIRECT, true),
            (REGISTERED_REDIRECT, REGISTERED_REDIRECT, true),
            ("http://localhost/cb", "http://localhost:8080/cb", true),
            ("http://[::1]/cb", "http://[::1]:8080/cb", true),
            ("http://127.0.0.1:9000/cb", "http://127.0.0.1:8080/cb", true),
            (REGISTERED_REDIRECT, "http://localhost:35987/oauth/callback", false),
            (REGISTERED_REDIRECT, "http://127.0.0.1:35987/other", false),
            (REGISTERED_REDIRECT, "http://127.0.0.1:35987/oauth/callback?x=1", false),
            (REGISTERED_REDIRECT, "https://127.0.0.1:35987/oauth/callback", false),
            ("https://app.example.com/cb", "https://app.example.com/cb", true),
            ("https://app.example.com/cb", "https://app.example.com:8443/cb", false),
            ("https://app.example.com/cb", "https://evil.example.com/cb", false),
            (REGISTERED_REDIRECT, "/oauth/callback", false),
        ] {
            assert_eq!(redirect_uri_matches(registered, used), matches, "{registered} vs {used}");
        }
    }

    #[test]
    fn redirect_locations_encode_and_extend_queries() {
        assert_eq!(
            redirect_location("http://127.0.0.1:1/cb", &[("code", "a b&c")], Some("s/1")),
            "http://127.0.0.1:1/cb?code=a%20b%26c&state=s%2F1"
        );
        assert_eq!(redirect_location("http://h/cb?x=1", &[("code", "c")], None), "http://h/cb?x=1&code=c");
    }

    #[test]
    fn pkce_registration_is_validated() {
        let mut o = oidc(true);
        let pkce = |redirect_uris: Option<Vec<String>>| RegisterClientRequest {
            client_name: Some("x".into()),
            client_type: Some("public".into()),
            grant_types: Some(vec![AUTHORIZATION_CODE_GRANT.into()]),
            redirect_uris,
            ..Default::default()
        };
        let err = o.register_client(&pkce(None), t0()).expect_err("no redirect URIs");
        assert_eq!(err.kind, OidcErrorKind::InvalidRequest);
        for bad in ["/oauth/callback", "http://127.0.0.1/cb#frag", "not a uri"] {
            let err = o.register_client(&pkce(Some(vec![bad.into()])), t0()).expect_err(bad);
            assert_eq!(err.kind, OidcErrorKind::InvalidRedirectUri, "{bad}");
        }
        register_pkce(&mut o);
    }

    #[test]
    fn pkce_code_grant_issues_tokens_once() {
        let mut o = oidc(true);
        let (c, code) = authorized(&mut o);
        let token = o.create_token(&code_request(&c, &code, VERIFIER), t0() + secs(1.0)).expect("token");
        assert_eq!(token.token_type, "Bearer");
        assert!(token.refresh_token.is_some());
        assert_eq!(o.identity(&token.access_token, t0()), Some(&alice()));
        assert_eq!(kind(o.create_token(&code_request(&c, &code, VERIFIER), t0())), OidcErrorKind::InvalidGrant);
        let refreshed = o
            .create_token(&refresh(&c, token.refresh_token.as_deref().expect("refresh token")), t0())
            .expect("the PKCE session refreshes");
        assert_eq!(o.identity(&refreshed.access_token, t0()), Some(&alice()));
    }

    #[test]
    fn pkce_code_grant_checks_verifier_redirect_client_and_expiry() {
        let mut o = oidc(true);
        let (c, code) = authorized(&mut o);
        let wrong = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXX";
        let err = o.create_token(&code_request(&c, &code, wrong), t0()).expect_err("wrong verifier");
        assert_eq!(err.kind, OidcErrorKind::InvalidGrant);
        assert!(err.description.contains("codeVerifier"), "{}", err.description);

        let mut moved = code_request(&c, &code, VERIFIER);
        moved.redirect_uri = Some("http://127.0.0.1:1111/oauth/callback".into());
        assert_eq!(kind(o.create_token(&moved, t0())), OidcErrorKind::InvalidGrant, "another port than /authorize");

        let other = register_pkce(&mut o);
        assert_eq!(kind(o.create_token(&code_request(&other, &code, VERIFIER), t0())), OidcErrorKind::InvalidGrant);

        let mut missing = code_request(&c, &code, VERIFIER);
        missing.code_verifier = None;
        assert_eq!(kind(o.create_token(&missing, t0())), OidcErrorKind::InvalidRequest);

        let late = t0() + AUTHORIZATION_CODE_LIFETIME;
        assert_eq!(kind(o.create_token(&code_request(&c, &code, VERIFIER), late)), OidcErrorKind::ExpiredToken);
        assert_eq!(kind(o.create_token(&code_request(&c, &code, VERIFIER), t0())), OidcErrorKind::InvalidGrant);

        let (c, code) = authorized(&mut o);
        o.create_token(&code_request(&c, &code, VERIFIER), t0()).expect("failed attempts do not spend a code");
    }

    #[test]
    fn authorize_without_a_trusted_redirect_shows_a_page() {
        let mut o = oidc(true);
        let c = register_pkce(&mut o);
        let device_only = register(&mut o);
        let cases: [(&str, ParamsChange); 5] = [
            ("no client", Box::new(|p| p.client_id = None)),
            ("unknown client", Box::new(|p| p.client_id = Some("cid-nope".into()))),
            ("no redirect", Box::new(|p| p.redirect_uri = None)),
            ("unregistered path", Box::new(|p| p.redirect_uri = Some("http://127.0.0.1:5/elsewhere".into()))),
            ("client without redirect URIs", Box::new(|p| p.client_id = Some(device_only.client_id.clone()))),
        ];
        for (what, change) in cases {
            let mut params = authorize_params(&c);
            change(&mut params);
            let err = o.begin_authorization(&params, t0()).expect_err(what);
            assert!(matches!(err, AuthorizeError::Page(_)), "{what}: {err:?}");
        }
        let expired = t0() + CLIENT_SECRET_LIFETIME;
        assert!(matches!(o.begin_authorization(&authorize_params(&c), expired), Err(AuthorizeError::Page(_))));
    }

    #[test]
    fn authorize_errors_go_back_to_the_client() {
        let mut o = oidc(true);
        let c = register_pkce(&mut o);
        let cases: [(&str, ParamsChange); 5] = [
            ("unsupported_response_type", Box::new(|p| p.response_type = Some("token".into()))),
            ("invalid_request", Box::new(|p| p.code_challenge_method = Some("plain".into()))),
            ("invalid_request", Box::new(|p| p.code_challenge_method = None)),
            ("invalid_request", Box::new(|p| p.code_challenge = Some("short".into()))),
            ("invalid_scope", Box::new(|p| p.scopes = Some("sso:account:access openid".into()))),
        ];
        for (error, change) in cases {
            let mut params = authorize_params(&c);
            change(&mut params);
            let Err(AuthorizeError::Redirect(location)) = o.begin_authorization(&params, t0()) else {
                panic!("{error}: expected a redirect");
            };
            assert!(location.starts_with(REDIRECT), "{location}");
            let query = query_of(&location);
            assert_eq!(query["error"], error, "{location}");
            assert_eq!(query["state"], "3fd6b235-8d4d-453c-aec1-37570a68391a");
            assert!(!query["error_description"].is_empty());
        }
        let mut no_scopes = authorize_params(&c);
        no_scopes.scopes = None;
        let prompt = o.begin_authorization(&no_scopes, t0()).expect("registered scopes apply");
        assert_eq!(prompt.scopes, vec!["sso:account:access"]);
        assert_eq!(prompt.client_name, "botocore-client-corp");
        assert_eq!(prompt.issuer_url.as_deref(), Some("https://d-1234567890.awsapps.com/start"));
    }

    #[test]
    fn clients_without_registered_scopes_may_ask_for_any() {
        let mut o = oidc(true);
        let c = register_bare(&mut o, AUTHORIZATION_CODE_GRANT);
        let prompt = o.begin_authorization(&authorize_params(&c), t0()).expect("scopes accepted");
        assert_eq!(prompt.scopes, vec!["sso:account:access"]);
    }

    #[test]
    fn authorization_code_grant_needs_the_registered_grant_type() {
        let mut o = oidc(true);
        let c = register_bare(&mut o, DEVICE_CODE_GRANT);
        let Err(AuthorizeError::Redirect(location)) = o.begin_authorization(&authorize_params(&c), t0()) else {
            panic!("expected a redirect");
        };
        assert_eq!(query_of(&location)["error"], "unauthorized_client");
    }

    #[test]
    fn denied_and_stale_sign_in_requests() {
        let mut o = oidc(true);
        let c = register_pkce(&mut o);
        let prompt = o.begin_authorization(&authorize_params(&c), t0()).expect("valid request");
        let location = o.deny_authorization(&prompt.request_id, t0()).expect("deny");
        let query = query_of(&location);
        assert_eq!(query["error"], "access_denied");
        assert_eq!(query["state"], "3fd6b235-8d4d-453c-aec1-37570a68391a");
        assert!(matches!(o.approve_authorization(&prompt.request_id, alice(), t0()), Err(AuthorizeError::Page(_))));

        let prompt = o.begin_authorization(&authorize_params(&c), t0()).expect("valid request");
        let late = t0() + AUTHORIZATION_REQUEST_LIFETIME;
        assert!(matches!(o.approve_authorization(&prompt.request_id, alice(), late), Err(AuthorizeError::Page(_))));
    }

    #[test]
    fn revoked_refresh_tokens_are_invalid_grants() {
        let mut o = oidc(true);
        let (c, alice_token) = logged_in(&mut o);
        let (c2, second) = logged_in(&mut o);
        let bob = Identity { user_id: "u-2".into(), user_name: "bob".into() };
        let d = start(&mut o, &c);
        o.approve(&d.user_code, bob, t0()).expect("approve bob");
        let bob_token = o.create_token(&device_poll(&c, &d), t0()).expect("bob's token");

        assert_eq!(o.revoke_refresh_tokens(Revocation::User("nobody")), 0);
        assert_eq!(o.revoke_refresh_tokens(Revocation::User("alice")), 2);
        let alice_rt = alice_token.refresh_token.expect("refresh token");
        assert_eq!(kind(o.create_token(&refresh(&c, &alice_rt), t0())), OidcErrorKind::InvalidGrant);
        let second_rt = second.refresh_token.expect("refresh token");
        assert_eq!(kind(o.create_token(&refresh(&c2, &second_rt), t0())), OidcErrorKind::InvalidGrant);
        assert_eq!(o.identity(&alice_token.access_token, t0()), Some(&alice()), "access tokens live on");

        let bob_rt = bob_token.refresh_token.expect("refresh token");
        assert_eq!(o.revoke_refresh_tokens(Revocation::Token("rt-unknown")), 0);
        let renewed = o.create_token(&refresh(&c, &bob_rt), t0()).expect("bob is unaffected");
        let renewed_rt = renewed.refresh_token.expect("refresh token");
        assert_eq!(o.revoke_refresh_tokens(Revocation::Token(&renewed_rt)), 1);
        assert_eq!(kind(o.create_token(&refresh(&c, &renewed_rt), t0())), OidcErrorKind::InvalidGrant);

        logged_in(&mut o);
        assert_eq!(o.revoke_refresh_tokens(Revocation::All), 1);
    }

    #[test]
    fn a_device_authorization_can_be_expired_on_request() {
        let mut o = oidc(true);
        let (d, poll) = polled_once(&mut o);
        o.expire_device(&d.user_code, t0() + secs(1.0)).expect("expire");
        assert_eq!(kind(o.create_token(&poll, t0() + secs(2.0))), OidcErrorKind::ExpiredToken);
        assert_eq!(o.expire_device(&d.user_code, t0() + secs(2.0)), Err(DeviceControlError::NotPending("expired")));
    }

    #[test]
    fn settings_apply_to_tokens_issued_afterwards() {
        let mut o = oidc(true);
        let (_, before) = logged_in(&mut o);
        o.set_settings(Settings { token_ttl: TimeDelta::minutes(10), issue_refresh_tokens: false });
        assert_eq!(o.settings().token_ttl, TimeDelta::minutes(10));
        let (_, after) = logged_in(&mut o);
        assert_eq!(after.expires_in, 600);
        assert_eq!(after.refresh_token, None);
        assert_eq!(o.identity(&before.access_token, t0() + TimeDelta::hours(1)), Some(&alice()));
        assert_eq!(o.identity(&after.access_token, t0() + TimeDelta::minutes(10)), None);
    }
}
