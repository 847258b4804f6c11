//! The web console as a browser without a screen: a cookie jar, the form token read from each page, and the
//! console's own forms, for tests and the sandbox that need a person to act on a page (such as approving
//! `cone login`).

use std::collections::BTreeMap;

use anyhow::{Context, Result, bail};
use reqwest::header;

pub struct Console {
    server: String,
    http: reqwest::Client,
    cookies: BTreeMap<String, String>,
}

impl Console {
    /// Signs `user` in to the console of the server at `server` with their password.
    pub async fn sign_in(server: &str, user: &str, password: &str) -> Result<Console> {
        let mut console = Console::anonymous(server)?;
        let fields = [("username", user), ("password", password), ("next", "/console")];
        let answer = console.submit("/console/login", "/console/login", &fields).await?;
        if !console.cookies.contains_key("cone_session") {
            bail!("the console did not sign {user} in ({answer})");
        }
        Ok(console)
    }

    /// The `Cookie` header value this browser sends, for load tools that fetch pages as the person signed in.
    pub fn cookie_header(&self) -> String {
        self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect::<Vec<_>>().join("; ")
    }

    /// Opens `page` and submits its form to `action` with `fields` (and the page's form token); returns the
    /// answer's status and text, refusing anything but success or a redirect.
    pub async fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Result<String> {
        let (status, text) = self.post(page, action, fields).await?;
        if !(status.is_success() || status.is_redirection()) {
            bail!("the console answered {status} to {action}: {text}");
        }
        Ok(format!("{status}: {text}"))
    }

    /// [`Console::submit`] with the form token of `page`, whatever the answer: its status and text.
    pub async fn post(
        &mut self,
        page: &str,
        action: &str,
        fields: &[(&str, &str)],
    ) -> Result<(reqwest::StatusCode, String)> {
        let html = self.send(self.http.get(format!("{}{page}", self.server))).await?.1;
        let needle = r#"name="csrf" value=""#;
        let at = html.find(needle).with_context(|| format!("no form on {page}"))? + needle.len();
        let token = html[at..].split('"').next().unwrap_or_default().to_string();
        let mut form: Vec<(&str, &str)> = vec![("csrf", &token)];
        form.extend_from_slice(fields);
        self.send(self.http.post(format!("{}{action}", self.server)).form(&form)).await
    }

    /// A browser that has not signed in.
    pub fn anonymous(server: &str) -> Result<Console> {
        let http = reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build()?;
        Ok(Console { server: server.trim_end_matches('/').to_string(), http, cookies: BTreeMap::new() })
    }

    /// Opens `page` (redirects are not followed): its status and text.
    pub async fn open(&mut self, page: &str) -> Result<(reqwest::StatusCode, String)> {
        self.send(self.http.get(format!("{}{page}", self.server))).await
    }

    async fn send(&mut self, req: reqwest::RequestBuilder) -> Result<(reqwest::StatusCode, String)> {
        let jar: Vec<String> = self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
        let resp = req.header(header::COOKIE, jar.join("; ")).send().await.context("reaching the console")?;
        for set in resp.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap_or_default();
            let Some((name, value)) = set.split(';').next().and_then(|pair| pair.split_once('=')) else { continue };
            if set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let status = resp.status();
        Ok((status, resp.text().await.unwrap_or_default()))
    }
}
