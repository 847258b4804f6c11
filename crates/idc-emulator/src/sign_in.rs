//! The browser side of the authorization-code flow: `GET /authorize` and the sign-in page's form, where a
//! person picks the identity-store user to sign in as. Tests skip the page with `/_emu/authorize/mode`.

use axum::Form;
use axum::extract::{Query, State};
use axum::http::header::LOCATION;
use axum::http::{HeaderValue, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use chrono::Utc;
use serde::Deserialize;

use crate::http::{App, AppState, SignInMode};
use crate::moto::UserSummary;
use crate::oidc::{AuthorizationPrompt, AuthorizeError, AuthorizeParams};

pub async fn authorize(State(app): App, Query(params): Query<AuthorizeParams>) -> Response {
    let prompt = match app.oidc().begin_authorization(&params, Utc::now()) {
        Ok(prompt) => prompt,
        Err(err) => return failure(err),
    };
    let mode = app.controls().sign_in.clone();
    match mode {
        SignInMode::Interactive => sign_in_page(&app, &prompt).await,
        SignInMode::Approve { user_name } => approve(&app, &prompt.request_id, &user_name).await,
        SignInMode::Deny => deny(&app, &prompt.request_id),
    }
}

/// The sign-in form's answer. Every field is optional so that a tampered form gets a readable page rather
/// than a bare extractor rejection.
#[derive(Debug, Deserialize)]
pub struct Decision {
    request: Option<String>,
    decision: Option<String>,
    user_name: Option<String>,
}

pub async fn decide(State(app): App, Form(form): Form<Decision>) -> Response {
    let Some(request_id) = form.request.as_deref() else {
        return message_page(StatusCode::BAD_REQUEST, "The sign-in form was sent without its request; start again.");
    };
    match (form.decision.as_deref(), form.user_name.as_deref()) {
        (Some("deny"), _) => deny(&app, request_id),
        (Some("approve"), Some(user_name)) if !user_name.is_empty() => approve(&app, request_id, user_name).await,
        (Some("approve"), _) => {
            message_page(StatusCode::BAD_REQUEST, "Pick a user to sign in as: go back and select one.")
        }
        _ => message_page(StatusCode::BAD_REQUEST, "The sign-in form was sent without a decision; go back."),
    }
}

async fn approve(app: &AppState, request_id: &str, user_name: &str) -> Response {
    let identity = match app.find_user(user_name).await {
        Ok(Some(identity)) => identity,
        Ok(None) => {
            return message_page(
                StatusCode::BAD_REQUEST,
                &format!("The identity store has no user named {user_name:?}; create the user or pick another one."),
            );
        }
        Err(err) => {
            return message_page(
                StatusCode::BAD_GATEWAY,
                &format!("The emulator could not read the identity store from moto: {err:#}"),
            );
        }
    };
    let result = app.oidc().approve_authorization(request_id, identity, Utc::now());
    if result.is_ok() {
        tracing::info!(user = user_name, "signed in through /authorize");
    }
    finish(result)
}

fn deny(app: &AppState, request_id: &str) -> Response {
    finish(app.oidc().deny_authorization(request_id, Utc::now()))
}

/// Sends the browser back to the client with the outcome.
fn finish(result: Result<String, AuthorizeError>) -> Response {
    match result {
        Ok(location) => redirect(location),
        Err(err) => failure(err),
    }
}

fn failure(err: AuthorizeError) -> Response {
    match err {
        AuthorizeError::Page(message) => message_page(StatusCode::BAD_REQUEST, &message),
        AuthorizeError::Redirect(location) => redirect(location),
    }
}

fn redirect(location: String) -> Response {
    match HeaderValue::try_from(location) {
        Ok(value) => (StatusCode::FOUND, [(LOCATION, value)]).into_response(),
        Err(_) => message_page(
            StatusCode::BAD_REQUEST,
            "The redirect URI cannot be sent back in a Location header; register a plain ASCII redirect URI.",
        ),
    }
}

async fn sign_in_page(app: &AppState, prompt: &AuthorizationPrompt) -> Response {
    let users = match app.directory.instance().await {
        Ok(instance) => app.directory.users(&instance.identity_store_id).await,
        Err(err) => Err(err),
    };
    match users {
        Ok(users) => (StatusCode::OK, Html(sign_in_html(prompt, &users))).into_response(),
        Err(err) => message_page(
            StatusCode::BAD_GATEWAY,
            &format!("The emulator could not list the identity store's users in moto: {err:#}"),
        ),
    }
}

fn sign_in_html(prompt: &AuthorizationPrompt, users: &[UserSummary]) -> String {
    let issuer = prompt.issuer_url.as_deref().map(|url| format!(" at {}", escape(url))).unwrap_or_default();
    let scopes = if prompt.scopes.is_empty() { "no scopes".to_string() } else { escape(&prompt.scopes.join(" ")) };
    let choices: String = if users.is_empty() {
        "<p>The identity store has no users yet; create one with identitystore CreateUser and reload.</p>".into()
    } else {
        users
            .iter()
            .map(|u| {
                let shown = match &u.display_name {
                    Some(display) if display != &u.user_name => format!("{} ({})", u.user_name, display),
                    _ => u.user_name.clone(),
                };
                format!(
                    "<label><input type=\"radio\" name=\"user_name\" value=\"{}\" required> {}</label><br>\n",
                    escape(&u.user_name),
                    escape(&shown)
                )
            })
            .collect()
    };
    format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Sign in - IAM Identity Center emulator</title></head>\n\
         <body>\n<h1>Sign in</h1>\n<p><b>{client}</b> asks to sign in{issuer} with {scopes}.</p>\n\
         <form method=\"post\" action=\"authorize\">\n<input type=\"hidden\" name=\"request\" value=\"{request}\">\n\
         {choices}<button type=\"submit\" name=\"decision\" value=\"approve\">Sign in and allow</button>\n\
         <button type=\"submit\" name=\"decision\" value=\"deny\" formnovalidate>Deny</button>\n</form>\n</body></html>\n",
        client = escape(&prompt.client_name),
        request = escape(&prompt.request_id),
    )
}

fn message_page(status: StatusCode, message: &str) -> Response {
    let html = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>Sign-in failed - IAM Identity Center emulator</title>\
         </head>\n<body>\n<h1>Sign-in failed</h1>\n<p>{}</p>\n</body></html>\n",
        escape(message)
    );
    (status, Html(html)).into_response()
}

fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            _ => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prompt() -> AuthorizationPrompt {
        AuthorizationPrompt {
            request_id: "ar-1".into(),
            client_name: "botocore-client-<corp>".into(),
            issuer_url: Some("https://d-1234567890.awsapps.com/start".into()),
            scopes: vec!["sso:account:access".into()],
        }
    }

    #[test]
    fn the_page_offers_every_user_and_escapes_what_it_shows() {
        let users = vec![
            UserSummary { user_name: "alice".into(), display_name: Some("Alice Anders".into()) },
            UserSummary { user_name: "b\"ob".into(), display_name: None },
        ];
        let html = sign_in_html(&prompt(), &users);
        assert!(html.contains("<b>botocore-client-&lt;corp&gt;</b>"), "{html}");
        assert!(html.contains("at https://d-1234567890.awsapps.com/start with sso:account:access"), "{html}");
        assert!(html.contains("name=\"request\" value=\"ar-1\""), "{html}");
        assert!(html.contains("value=\"alice\" required> alice (Alice Anders)"), "{html}");
        assert!(html.contains("value=\"b&quot;ob\" required> b&quot;ob</label>"), "{html}");
        assert!(html.contains("name=\"decision\" value=\"approve\"") && html.contains("value=\"deny\""));
    }

    #[test]
    fn an_empty_identity_store_says_what_to_do() {
        let html = sign_in_html(&prompt(), &[]);
        assert!(html.contains("create one with identitystore CreateUser"), "{html}");
    }

    #[tokio::test]
    async fn failures_are_pages_or_redirects() {
        let page = failure(AuthorizeError::Page("bad <client>".into()));
        assert_eq!(page.status(), StatusCode::BAD_REQUEST);
        let body = axum::body::to_bytes(page.into_body(), 1 << 20).await.expect("body");
        assert!(String::from_utf8_lossy(&body).contains("bad &lt;client&gt;"));
        let redirected = failure(AuthorizeError::Redirect("http://127.0.0.1:5/cb?error=access_denied".into()));
        assert_eq!(redirected.status(), StatusCode::FOUND);
        assert_eq!(redirected.headers()[LOCATION], "http://127.0.0.1:5/cb?error=access_denied");
    }
}
