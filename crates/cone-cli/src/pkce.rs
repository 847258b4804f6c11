//! The pieces of the browser sign-in (OAuth authorization code with PKCE, RFC 7636; loopback redirect, RFC 8252)
//! that do no I/O: the verifier and challenge, the authorize URL, and reading the browser's callback.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::Rng;
use sha2::{Digest, Sha256};

/// What the callback path is registered as; the port is added when signing in.
pub const REDIRECT_URI: &str = "http://127.0.0.1/oauth/callback";

const VERIFIER_CHARS: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~";

/// A fresh 64-character code verifier and its S256 challenge.
pub fn verifier_and_challenge() -> (String, String) {
    let mut rng = rand::thread_rng();
    let verifier: String = (0..64).map(|_| VERIFIER_CHARS[rng.gen_range(0..VERIFIER_CHARS.len())] as char).collect();
    let challenge = challenge(&verifier);
    (verifier, challenge)
}

pub fn challenge(verifier: &str) -> String {
    URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// An unguessable `state`, so that a callback from anything but this sign-in is refused.
pub fn state() -> String {
    hex::encode(rand::thread_rng().r#gen::<[u8; 16]>())
}

pub fn redirect_uri(port: u16) -> String {
    format!("http://127.0.0.1:{port}/oauth/callback")
}

/// `<oidc base>/authorize?…` with the parameters in the order the AWS CLI sends them.
pub fn authorize_url(
    base: &str,
    client_id: &str,
    redirect_uri: &str,
    state: &str,
    challenge: &str,
) -> anyhow::Result<String> {
    let mut url = reqwest::Url::parse(&format!("{}/authorize", base.trim_end_matches('/'))).map_err(|e| {
        anyhow::anyhow!(
            "the IAM Identity Center sign-in endpoint {base} is not a URL ({e}); check AWS_ENDPOINT_URL_SSO_OIDC"
        )
    })?;
    url.query_pairs_mut()
        .append_pair("response_type", "code")
        .append_pair("client_id", client_id)
        .append_pair("redirect_uri", redirect_uri)
        .append_pair("state", state)
        .append_pair("code_challenge_method", "S256")
        .append_pair("scopes", "sso:account:access")
        .append_pair("code_challenge", challenge);
    Ok(url.to_string())
}

/// What one request to the loopback server means.
#[derive(Debug, PartialEq, Eq)]
pub enum Callback {
    /// Not the callback (a favicon, a stray request): keep waiting.
    Ignore,
    Code(String),
    /// The sign-in failed or was refused, or the callback did not come from this sign-in.
    Failed(String),
}

/// Reads the request line of an HTTP request to the loopback server (`GET /oauth/callback?code=…&state=… HTTP/1.1`).
pub fn read_callback(request_line: &str, expected_state: &str) -> Callback {
    let Some(target) = request_line.split_whitespace().nth(1) else { return Callback::Ignore };
    let Ok(url) = reqwest::Url::parse(&format!("http://127.0.0.1{target}")) else { return Callback::Ignore };
    let get = |name: &str| url.query_pairs().find(|(k, _)| k == name).map(|(_, v)| v.into_owned());
    if let Some(error) = get("error") {
        let detail = get("error_description").map(|d| format!(": {d}")).unwrap_or_default();
        return Callback::Failed(format!("the sign-in was not completed ({error}{detail})"));
    }
    match (get("code"), get("state")) {
        (Some(code), Some(state)) if constant_time_eq(&state, expected_state) => Callback::Code(code),
        (Some(_), Some(_)) => {
            Callback::Failed("the sign-in answer did not belong to this sign-in (state mismatch)".into())
        }
        _ => Callback::Ignore,
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    subtle::ConstantTimeEq::ct_eq(a.as_bytes(), b.as_bytes()).into()
}

/// Whether a browser on this machine can complete a sign-in whose redirect goes to 127.0.0.1: not over SSH
/// (the browser would be on another machine), and only with a browser to start.
pub fn browser_available(var: impl Fn(&str) -> Option<String>) -> bool {
    let set = |name: &str| var(name).is_some_and(|v| !v.is_empty());
    if set("SSH_CONNECTION") || set("SSH_TTY") {
        return false;
    }
    set("BROWSER") || cfg!(target_os = "macos") || set("DISPLAY") || set("WAYLAND_DISPLAY")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn challenge_matches_rfc_7636() {
        assert_eq!(
            challenge("dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"),
            "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
        );
        let (v, c) = verifier_and_challenge();
        assert_eq!(v.len(), 64);
        assert!(v.bytes().all(|b| VERIFIER_CHARS.contains(&b)));
        assert_eq!(c, challenge(&v));
        assert_ne!(verifier_and_challenge().0, v);
    }

    #[test]
    fn authorize_url_has_the_aws_cli_parameters() {
        let url = authorize_url("http://127.0.0.1:9/", "cid", &redirect_uri(4321), "st", "ch").unwrap();
        assert_eq!(
            url,
            "http://127.0.0.1:9/authorize?response_type=code&client_id=cid&redirect_uri=http%3A%2F%2F127.0.0.1%3A4321%2Foauth%2Fcallback&state=st&code_challenge_method=S256&scopes=sso%3Aaccount%3Aaccess&code_challenge=ch"
        );
    }

    #[test]
    fn callbacks() {
        assert_eq!(read_callback("GET /oauth/callback?code=abc&state=s1 HTTP/1.1", "s1"), Callback::Code("abc".into()));
        assert!(
            matches!(read_callback("GET /oauth/callback?code=abc&state=s2 HTTP/1.1", "s1"), Callback::Failed(m) if m.contains("state mismatch"))
        );
        assert!(matches!(
            read_callback("GET /oauth/callback?error=access_denied&error_description=no&state=s1 HTTP/1.1", "s1"),
            Callback::Failed(m) if m.contains("access_denied: no")
        ));
        assert_eq!(read_callback("GET /favicon.ico HTTP/1.1", "s1"), Callback::Ignore);
        assert_eq!(read_callback("garbage", "s1"), Callback::Ignore);
    }

    #[test]
    fn no_browser_over_ssh_or_without_a_display() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| pairs.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert!(browser_available(env(&[("BROWSER", "firefox")])));
        assert!(!browser_available(env(&[("BROWSER", "firefox"), ("SSH_CONNECTION", "1.2.3.4 5 6.7.8.9 22")])));
        if !cfg!(target_os = "macos") {
            assert!(!browser_available(env(&[])));
            assert!(browser_available(env(&[("DISPLAY", ":0")])));
        }
    }
}
