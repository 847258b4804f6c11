//! The SSO OIDC state machine: client registrations, device authorizations, and the access/refresh tokens
//! they turn into. No I/O: every operation takes the current time, so tests can drive the clock.

use std::collections::HashMap;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, TimeDelta, Utc};
use rand::{Rng, RngCore};
use serde::{Deserialize, Serialize};

use crate::errors::{OidcError, OidcErrorKind};

pub const DEVICE_CODE_GRANT: &str = "urn:ietf:params:oauth:grant-type:device_code";
pub const REFRESH_TOKEN_GRANT: &str = "refresh_token";
const AUTHORIZATION_CODE_GRANT: &str = "authorization_code";

const CLIENT_SECRET_LIFETIME: TimeDelta = TimeDelta::days(90);
const DEVICE_CODE_LIFETIME_SECS: i64 = 600;
const POLL_INTERVAL_SECS: i64 = 1;
/// Polls are allowed this fraction of `interval` apart: clients sleep `interval` between polls, and timer
/// jitter must not turn an honest client's poll into a SlowDown.
const POLL_LENIENCY: f64 = 0.8;
/// No vowels, so user codes never spell words; no digits, so nothing is confused with O/I.
const USER_CODE_ALPHABET: &[u8] = b"BCDFGHJKLMNPQRSTVWXZ";

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
    pub grant_types: Option<Vec<String>>,
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
    pub refresh_token: Option<String>,
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

#[derive(Debug)]
struct Client {
    secret: String,
    secret_expires_at: DateTime<Utc>,
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
            access_tokens: HashMap::new(),
            refresh_tokens: HashMap::new(),
            next_session: 0,
        }
    }

    pub fn register_client(
        &mut self,
        request: &RegisterClientRequest,
        now: DateTime<Utc>,
    ) -> Result<RegisterClientResponse, OidcError> {
        required(&request.client_name, "clientName")?;
        let client_type = required(&request.client_type, "clientType")?;
        if client_type != "public" {
            return Err(OidcError::new(
                OidcErrorKind::InvalidClientMetadata,
                format!("clientType must be \"public\", got {client_type:?}"),
            ));
        }
        for grant in request.grant_types.iter().flatten() {
            if ![AUTHORIZATION_CODE_GRANT, DEVICE_CODE_GRANT, REFRESH_TOKEN_GRANT].contains(&grant.as_str()) {
                return Err(OidcError::new(
                    OidcErrorKind::UnsupportedGrantType,
                    format!("grant type {grant:?} cannot be registered"),
                ));
            }
        }
        let client_id = random_token("cid-", 16);
        let client_secret = random_token("cs-", 48);
        let secret_expires_at = now + CLIENT_SECRET_LIFETIME;
        self.clients.insert(client_id.clone(), Client { secret: client_secret.clone(), secret_expires_at });
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
            AUTHORIZATION_CODE_GRANT => Err(OidcError::new(
                OidcErrorKind::UnsupportedGrantType,
                "this emulator implements only the device code and refresh token grants; log in with the device code flow",
            )),
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
        let session = self.next_session;
        self.next_session += 1;
        Ok(self.issue_tokens(session, identity, client_id, now))
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
        let refresh_token = self.settings.issue_refresh_tokens.then(|| {
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

    fn register(o: &mut Oidc) -> RegisterClientResponse {
        o.register_client(
            &RegisterClientRequest {
                client_name: Some("botocore-client-test".into()),
                client_type: Some("public".into()),
                grant_types: None,
            },
            t0(),
        )
        .expect("registration")
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
            refresh_token: None,
        }
    }

    fn refresh(c: &RegisterClientResponse, token: &str) -> CreateTokenRequest {
        CreateTokenRequest {
            client_id: Some(c.client_id.clone()),
            client_secret: Some(c.client_secret.clone()),
            grant_type: Some(REFRESH_TOKEN_GRANT.into()),
            device_code: None,
            refresh_token: Some(token.into()),
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
                    grant_types: None,
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
        assert_eq!(kind(o.create_token(&request, t0())), OidcErrorKind::UnsupportedGrantType);
        request.grant_type = Some("client_credentials".into());
        assert_eq!(kind(o.create_token(&request, t0())), OidcErrorKind::UnsupportedGrantType);
        request.grant_type = None;
        assert_eq!(kind(o.create_token(&request, t0())), OidcErrorKind::InvalidRequest);
        request.grant_type = Some(DEVICE_CODE_GRANT.into());
        assert_eq!(kind(o.create_token(&request, t0())), OidcErrorKind::InvalidRequest, "no deviceCode");
    }
}
