//! Signing in and out of the console, the session cookie, and the form token that guards every POST.
//!
//! The session cookie holds a random secret; the database holds its SHA-256 hash (`web_sessions`). The form token
//! is `HMAC-SHA256(secret, label)`: bound to the session, unknowable without the cookie (which scripts cannot read,
//! being `HttpOnly`, and other sites cannot read at all), and never stored. The sign-in form is guarded the same
//! way by a short-lived cookie of its own, so that another site cannot sign a browser in as someone else.

use axum::Form;
use axum::extract::{FromRequest, FromRequestParts, Query, Request, State};
use axum::http::StatusCode;
use axum::http::request::Parts;
use axum::response::{IntoResponse, Redirect, Response};
use axum_extra::extract::cookie::{Cookie, CookieJar, SameSite};
use hmac::{Hmac, Mac};
use maud::html;
use serde::Deserialize;
use sha2::Sha256;

use super::layout::{self, TOKEN_FIELD, Viewer, WebError, link};
use crate::services::auth::{self, SignIn, WEB_SESSION_TTL, random_token};
use crate::state::AppState;
use crate::store::UserRow;

/// How long the sign-in form stays valid.
const SIGN_IN_TTL: i64 = 15 * 60;
const SESSION_COOKIE: &str = "cone_session";
const SIGN_IN_COOKIE: &str = "cone_sign_in";
const TOKEN_LABEL: &[u8] = b"cone web console form token";

/// The form token of a session (or sign-in) secret.
pub fn form_token(secret: &str) -> String {
    hex::encode(mac(secret).finalize().into_bytes())
}

fn mac(secret: &str) -> Hmac<Sha256> {
    // HMAC takes a key of any length, so this cannot fail.
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret.as_bytes()).expect("HMAC accepts any key length");
    mac.update(TOKEN_LABEL);
    mac
}

/// Whether `submitted` is the form token of `secret`, compared in constant time.
fn token_matches(secret: &str, submitted: &str) -> bool {
    hex::decode(submitted).is_ok_and(|bytes| mac(secret).verify_slice(&bytes).is_ok())
}

/// Cookies are `__Host-` prefixed and `Secure` when the server is reached over HTTPS: the prefix makes the browser
/// refuse the cookie from anything but this host over HTTPS, with no `Domain`. Over plain HTTP (a laptop, the
/// sandbox) the browser would drop such a cookie, so the plain name is used there.
pub(super) fn cookie_name(s: &AppState, base: &str) -> String {
    if https(s) { format!("__Host-{base}") } else { base.to_string() }
}

fn https(s: &AppState) -> bool {
    s.public_url.starts_with("https://")
}

/// This server's cookie `base` holding `value`: for every path, out of scripts' reach, sent along only from this
/// site's own pages (and links to them), and over HTTPS `Secure` as its `__Host-` name requires.
fn server_cookie(s: &AppState, base: &str, value: String) -> Cookie<'static> {
    Cookie::build((cookie_name(s, base), value))
        .path("/")
        .http_only(true)
        .same_site(SameSite::Lax)
        .secure(https(s))
        .build()
}

/// `jar` with this server's cookie `base` set to `value` for `max_age` seconds.
pub(super) fn with_cookie(jar: CookieJar, s: &AppState, base: &str, value: String, max_age: i64) -> CookieJar {
    let mut cookie = server_cookie(s, base, value);
    cookie.set_max_age(cookie::time::Duration::seconds(max_age));
    jar.add(cookie)
}

/// `jar` telling the browser to forget this server's cookie `base`, with the same attributes (a browser ignores a
/// `__Host-` cookie without `Secure`, removal included).
pub(super) fn without_cookie(jar: CookieJar, s: &AppState, base: &str) -> CookieJar {
    jar.remove(server_cookie(s, base, String::new()))
}

/// The value of this server's cookie `base`.
pub(super) fn cookie<'a>(jar: &'a CookieJar, s: &AppState, base: &str) -> Option<&'a str> {
    jar.get(&cookie_name(s, base)).map(|c| c.value())
}

async fn viewer(jar: &CookieJar, s: &AppState) -> Result<Option<Viewer>, WebError> {
    let Some(secret) = cookie(jar, s, SESSION_COOKIE) else { return Ok(None) };
    let Some(user) = auth::web_session_user(s, secret).await? else { return Ok(None) };
    let admin = auth::is_admin(s, &user).await?;
    Ok(Some(Viewer { user, admin, token: form_token(secret), secret: secret.to_string() }))
}

/// A page for signed-in people; anyone else is sent to the sign-in page, and back here afterwards.
impl FromRequestParts<AppState> for Viewer {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, s: &AppState) -> Result<Self, Response> {
        match viewer(&CookieJar::from_headers(&parts.headers), s).await {
            Ok(Some(v)) => Ok(v),
            Ok(None) => {
                // After signing in, a page comes back; a form is not sent again (its page is reloaded instead).
                let page = parts.uri.path_and_query().filter(|_| parts.method == axum::http::Method::GET);
                let back = page.map_or("/console", |p| p.as_str());
                Err(Redirect::to(&link("/console/login", &[("next", back)])).into_response())
            }
            Err(e) => Err(e.into_response()),
        }
    }
}

/// The fields of a submitted console form, once its form token has been checked against the session.
pub struct Posted {
    pub viewer: Viewer,
    fields: Vec<(String, String)>,
}

impl Posted {
    /// The first value of a field, or "" when it is absent.
    pub fn get(&self, name: &str) -> &str {
        field(&self.fields, name)
    }

    /// The fields whose names start with `prefix`, with the prefix removed.
    pub fn prefixed<'a>(&'a self, prefix: &'a str) -> impl Iterator<Item = (&'a str, &'a str)> {
        self.fields.iter().filter_map(move |(n, v)| Some((n.strip_prefix(prefix)?, v.as_str())))
    }
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields.iter().find(|(n, _)| n == name).map_or("", |(_, v)| v.as_str())
}

fn forged() -> WebError {
    WebError::new(
        StatusCode::FORBIDDEN,
        "Form expired",
        "This form has expired or was not sent from Cone's own pages, so nothing was done. Reload the page and submit it again.",
    )
}

/// Reads a urlencoded form body; text holding NUL is refused, as the API refuses it (PostgreSQL cannot store it).
async fn form_fields(req: Request, s: &AppState) -> Result<Vec<(String, String)>, WebError> {
    let Form(fields) = Form::<Vec<(String, String)>>::from_request(req, s).await.map_err(|e| {
        WebError::new(
            StatusCode::BAD_REQUEST,
            "Cannot read the form",
            format!("{}. Reload the page and try again.", e.body_text()),
        )
    })?;
    if fields.iter().any(|(n, v)| n.contains('\0') || v.contains('\0')) {
        return Err(WebError::new(
            StatusCode::BAD_REQUEST,
            "Cannot read the form",
            "The form contains a NUL character, which Cone does not accept; remove it and submit again.",
        ));
    }
    Ok(fields)
}

impl FromRequest<AppState> for Posted {
    type Rejection = Response;

    async fn from_request(req: Request, s: &AppState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let viewer = Viewer::from_request_parts(&mut parts, s).await?;
        let fields = form_fields(Request::from_parts(parts, body), s).await.map_err(IntoResponse::into_response)?;
        if !token_matches(&viewer.secret, field(&fields, TOKEN_FIELD)) {
            return Err(forged().into_response());
        }
        Ok(Posted { viewer, fields })
    }
}

#[derive(Deserialize)]
pub struct SignInQuery {
    #[serde(default)]
    next: String,
    #[serde(default)]
    signed_out: bool,
}

/// Where to go after signing in: a console page, never another site (`//host` or `/\host` would leave this one).
pub(super) fn destination(next: &str) -> &str {
    let local = next.starts_with("/console") && !next.contains("//") && !next.contains('\\');
    if local { next } else { "/console" }
}

pub async fn login_page(State(s): State<AppState>, Query(q): Query<SignInQuery>, jar: CookieJar) -> Response {
    if matches!(viewer(&jar, &s).await, Ok(Some(_))) {
        return Redirect::to(destination(&q.next)).into_response();
    }
    let notice = q.signed_out.then_some("You are signed out.");
    sign_in_form(&s, jar, StatusCode::OK, destination(&q.next), notice, None)
}

/// The sign-in page and the token derived from its cookie. A browser that has the cookie keeps it, so that sign-in
/// pages open in several tabs all work.
fn sign_in_form(
    s: &AppState,
    jar: CookieJar,
    status: StatusCode,
    next: &str,
    notice: Option<&str>,
    error: Option<&str>,
) -> Response {
    let held = cookie(&jar, s, SIGN_IN_COOKIE).filter(|c| c.len() == 64 && hex::decode(c).is_ok());
    let secret = held.map_or_else(|| random_token(32), str::to_string);
    let content = html! {
        @if let Some(n) = notice { p.notice role="status" { (n) } }
        @if let Some(e) = error { p.error role="alert" { (e) } }
        form.stack method="post" action="/console/login" {
            input type="hidden" name=(TOKEN_FIELD) value=(form_token(&secret));
            input type="hidden" name="next" value=(next);
            label for="username" { "User name" }
            input #username name="username" autocomplete="username" required autofocus;
            label for="password" { "Password" }
            input #password name="password" type="password" autocomplete="current-password" required;
            button type="submit" { "Sign in" }
        }
        @if let Some(oidc) = &s.config.oidc {
            p.or { "or" }
            p { a.button href=(link("/console/login/oidc", &[("next", next)])) { "Sign in with " (oidc.name) } }
        }
        p.hint { "The command line signs in with " code { "cone login" } "." }
    };
    let jar = with_cookie(jar, s, SIGN_IN_COOKIE, secret, SIGN_IN_TTL);
    (status, jar, layout::bare("Sign in to Cone", content)).into_response()
}

pub async fn login(State(s): State<AppState>, req: Request) -> Response {
    let jar = CookieJar::from_headers(req.headers());
    let fields = match form_fields(req, &s).await {
        Ok(f) => f,
        Err(e) => return e.into_response(),
    };
    let next = destination(field(&fields, "next"));
    let secret = cookie(&jar, &s, SIGN_IN_COOKIE);
    if !secret.is_some_and(|secret| token_matches(secret, field(&fields, TOKEN_FIELD))) {
        let expired = "The sign-in form expired or did not come from this page; sign in again.";
        return sign_in_form(&s, jar, StatusCode::FORBIDDEN, next, None, Some(expired));
    }
    let user = match auth::authenticate(&s, field(&fields, "username"), field(&fields, "password")).await {
        Ok(SignIn::Accepted(user)) => user,
        Ok(SignIn::Refused) => {
            let wrong = "Wrong user name or password. Check both and sign in again.";
            return sign_in_form(&s, jar, StatusCode::UNAUTHORIZED, next, None, Some(wrong));
        }
        Ok(SignIn::Throttled(wait)) => {
            let wait = format!(
                "Too many failed sign-ins for this user name; try again in {}.",
                cone_core::duration::format(wait.max(1))
            );
            return sign_in_form(&s, jar, StatusCode::TOO_MANY_REQUESTS, next, None, Some(&wait));
        }
        Err(e) => return WebError::from(e).into_response(),
    };
    start_session(&s, jar, &user, None, SIGN_IN_COOKIE, next).await
}

/// Signs `user` in (through the identity provider `oidc_issuer`, if any), clears the cookie that guarded the
/// sign-in, and goes on to `next`.
pub(super) async fn start_session(
    s: &AppState,
    jar: CookieJar,
    user: &UserRow,
    oidc_issuer: Option<&str>,
    guard_cookie: &str,
    next: &str,
) -> Response {
    let session = match auth::start_web_session(s, user, oidc_issuer).await {
        Ok(secret) => secret,
        Err(e) => return WebError::from(e).into_response(),
    };
    let jar = with_cookie(without_cookie(jar, s, guard_cookie), s, SESSION_COOKIE, session, WEB_SESSION_TTL);
    (jar, Redirect::to(next)).into_response()
}

pub async fn logout(State(s): State<AppState>, jar: CookieJar, posted: Posted) -> Result<Response, WebError> {
    let v = &posted.viewer;
    auth::end_web_session(&s, &v.secret, &v.user).await?;
    Ok((without_cookie(jar, &s, SESSION_COOKIE), Redirect::to("/console/login?signed_out=true")).into_response())
}
