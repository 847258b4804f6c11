//! The page where a signed-in person lets `cone login` on their terminal act as them (RFC 8628's verification
//! page). It is a console page, so whoever can sign in to the console, with a password or through the identity
//! provider, can sign the command line in.

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;

use super::layout::{Nav, Viewer, WebError, link, page};
use super::session::Posted;
use crate::services::auth;
use crate::state::AppState;

#[derive(Deserialize)]
pub struct CodeQuery {
    #[serde(default)]
    user_code: String,
}

/// `/device`, the address `cone login` prints, leads to the console's page (through sign-in when needed).
pub async fn verification_uri(Query(q): Query<CodeQuery>) -> Redirect {
    Redirect::to(&link("/console/device", &[("user_code", &q.user_code)]))
}

pub async fn device_page(v: Viewer, Query(q): Query<CodeQuery>) -> Response {
    let content = html! {
        p { "A terminal running " code { "cone login" } " asks to act as " strong { (v.user.username) } " for 30 days. Approve only if you started it and the code below is the one it shows." }
        form.stack method="post" action="/console/device" {
            (v.token_field())
            label for="user_code" { "Code" }
            input #user_code name="user_code" value=(q.user_code) autocomplete="off" required;
            div.actions {
                button type="submit" name="decision" value="approve" { "Approve sign-in" }
                button.danger type="submit" name="decision" value="deny" { "Deny" }
            }
        }
    };
    page("Sign in the command line", &v, Nav::Elsewhere, content).into_response()
}

pub async fn decide(State(s): State<AppState>, posted: Posted) -> Result<Response, WebError> {
    let v = &posted.viewer;
    let approve = posted.get("decision") == "approve";
    if !auth::decide_device_code(&s, &v.user, posted.get("user_code"), approve).await? {
        return Err(WebError::new(
            StatusCode::BAD_REQUEST,
            "Unknown code",
            "That code is unknown, expired or already used. Run `cone login` again for a new one.",
        ));
    }
    let message = match approve {
        true => "The command line is signed in. You can close this window and return to your terminal.",
        false => "The sign-in was denied; the terminal that asked is told so.",
    };
    Ok(page("Sign in the command line", v, Nav::Elsewhere, html! { p.notice role="status" { (message) } })
        .into_response())
}
