//! Signing in and out, cookies, form tokens, the throttle, the device page and the identity provider.

use super::*;
use crate::services::auth::secret_hash;
use crate::web::CONTENT_SECURITY_POLICY;

#[tokio::test]
async fn signing_in_stores_a_hashed_session_and_every_post_needs_its_form_token() {
    let (s, _keep) = state("").await;
    let mut b = Browser::new(&s);

    let page = b.get("/console/requests").await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert_eq!(page.location(), "/console/login?next=%2Fconsole%2Frequests");
    let login = b.get("/console/login").await;
    assert_eq!(login.status, StatusCode::OK);
    assert_eq!(login.headers[header::CONTENT_SECURITY_POLICY], CONTENT_SECURITY_POLICY);
    let cookie = login.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cookie.starts_with("cone_sign_in=") && cookie.contains("; HttpOnly; SameSite=Lax"), "{cookie}");
    assert!(!cookie.contains("Secure"), "{cookie}");
    assert!(login.body.contains(r#"<label for="password">"#), "{}", login.body);

    // The sign-in form itself needs its token; a wrong password is told apart from a forged form.
    let forged = b.post("/console/login", &[("csrf", "00"), ("username", "alice"), ("password", "pw")]).await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    let token = login.token();
    let wrong = b.post("/console/login", &[("csrf", &token), ("username", "alice"), ("password", "no")]).await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.body.contains("Wrong user name or password."), "{}", wrong.body);
    let next = [("csrf", token.as_str()), ("username", "alice"), ("password", "pw"), ("next", "//evil.example/x")];
    let done = b.post("/console/login", &next).await;
    assert_eq!((done.status, done.location()), (StatusCode::SEE_OTHER, "/console"));
    let session = b.cookies["cone_session"].clone();
    assert!(!b.cookies.contains_key("cone_sign_in"));

    // Only the secret's hash is stored.
    let stored: Vec<String> =
        sqlx::query_scalar("SELECT token_hash FROM web_sessions").fetch_all(s.db.pool()).await.unwrap();
    assert_eq!(stored, [secret_hash(&session)]);

    let home = b.get("/console").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.body.contains("Signed in as <strong>alice</strong>"), "{}", home.body);
    assert_eq!(home.headers[header::CACHE_CONTROL], "no-store");

    // A POST without the token, or with another session's, does nothing.
    assert_eq!(b.post("/console/logout", &[("x", "y")]).await.status, StatusCode::FORBIDDEN);
    let mut other = Browser::new(&s);
    other.sign_in("bob").await;
    let bobs = other.get("/console").await.token();
    assert_eq!(b.post("/console/logout", &[("csrf", &bobs)]).await.status, StatusCode::FORBIDDEN);
    assert_eq!(b.get("/console").await.status, StatusCode::OK);

    let out = b.post("/console/logout", &[("csrf", &home.token())]).await;
    assert_eq!((out.status, out.location()), (StatusCode::SEE_OTHER, "/console/login?signed_out=true"));
    assert!(b.cookies.is_empty());
    b.cookies.insert("cone_session".into(), session);
    assert_eq!(b.get("/console").await.status, StatusCode::SEE_OTHER, "a session signed out is over");
}

/// Guessing is slow: after five failures for a name, even the right password waits, for that name only.
#[tokio::test]
async fn repeated_failed_sign_ins_for_a_name_are_throttled() {
    let (s, _keep) = state("").await;
    let mut b = Browser::new(&s);
    let token = b.get("/console/login").await.token();
    for _ in 0..crate::throttle::Throttle::LIMIT {
        let wrong = b.post("/console/login", &[("csrf", &token), ("username", "Alice"), ("password", "guess")]).await;
        assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    }
    let held = b.post("/console/login", &[("csrf", &token), ("username", "alice"), ("password", "pw")]).await;
    assert_eq!(held.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(held.body.contains("Too many failed sign-ins for this user name; try again in "), "{}", held.body);
    assert!(!b.cookies.contains_key("cone_session"));
    assert_eq!(b.sign_in("bob").await.status, StatusCode::SEE_OTHER, "another name is not held up");
}

/// `cone login`'s address leads through the console's sign-in to a page that signs the terminal in as the viewer,
/// guarded by the form token; a denied code tells the terminal so.
#[tokio::test]
async fn the_device_page_signs_the_command_line_in_as_the_viewer() {
    let (s, _keep) = state("").await;
    let mut b = Browser::new(&s);
    let start = |code: &str, hash: &str| {
        let (db, now) = (s.db.clone(), s.now());
        let (code, hash) = (code.to_string(), hash.to_string());
        async move { assert!(db.create_device_code(&hash, &code, now + 600, 0, 10, now).await.unwrap()) }
    };
    start("BCDF-GHJK", "h1").await;
    let to = b.get("/device?user_code=BCDF-GHJK").await;
    assert_eq!((to.status, to.location()), (StatusCode::SEE_OTHER, "/console/device?user_code=BCDF-GHJK"));
    let signed_out = b.get(to.location()).await;
    assert_eq!(signed_out.location(), "/console/login?next=%2Fconsole%2Fdevice%3Fuser_code%3DBCDF-GHJK");
    b.sign_in("alice").await;
    let page = b.get("/console/device?user_code=BCDF-GHJK").await;
    assert!(
        page.body.contains(r#"value="BCDF-GHJK""#) && page.body.contains("as <strong>alice</strong>"),
        "{}",
        page.body
    );

    let approve = [("user_code", "bcdf-ghjk"), ("decision", "approve")];
    assert_eq!(b.post("/console/device", &approve).await.status, StatusCode::FORBIDDEN, "no form token");
    let token = page.token();
    let done = b.post("/console/device", &[("csrf", token.as_str()), approve[0], approve[1]]).await;
    assert_eq!(done.status, StatusCode::OK);
    assert!(done.body.contains("The command line is signed in."), "{}", done.body);
    let alice = s.db.user_by_name("alice").await.unwrap().unwrap();
    assert_eq!(s.db.poll_device_code("h1", s.now()).await.unwrap(), crate::store::DevicePoll::Approved(alice.id));
    let again = b.post("/console/device", &[("csrf", token.as_str()), approve[0], approve[1]]).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "a code is used once");

    start("MNPQ-RSTV", "h2").await;
    let deny =
        b.post("/console/device", &[("csrf", token.as_str()), ("user_code", "MNPQ-RSTV"), ("decision", "deny")]).await;
    assert!(deny.body.contains("The sign-in was denied"), "{}", deny.body);
    assert_eq!(s.db.poll_device_code("h2", s.now()).await.unwrap(), crate::store::DevicePoll::Denied);
}

#[tokio::test]
async fn over_https_the_cookies_are_host_only_and_secure() {
    let (mut s, _keep) = state("").await;
    s.public_url = "https://cone.example.com".into();
    let mut b = Browser::new(&s);
    b.sign_in("alice").await;
    let names: Vec<&String> = b.cookies.keys().collect();
    assert_eq!(names, ["__Host-cone_session"]);
    let login = b.get("/console/login?next=/console/inbox").await;
    assert_eq!(login.location(), "/console/inbox", "signed in already");
    let mut fresh = Browser::new(&s);
    let cookie = fresh.get("/console/login").await.headers[header::SET_COOKIE].to_str().unwrap().to_string();
    // Attributes in any order: what matters is that each is there.
    let attributes: Vec<&str> = cookie.split("; ").collect();
    assert!(cookie.starts_with("__Host-cone_sign_in=") && attributes.contains(&"Secure"), "{cookie}");
    assert!(attributes.contains(&"Path=/"), "{cookie}");
    // Signing out clears the session cookie with the same attributes, or the browser would keep it.
    let page = b.get("/console").await;
    let out = b.post("/console/logout", &[("csrf", &page.token())]).await;
    let cleared = out.headers[header::SET_COOKIE].to_str().unwrap();
    let attributes: Vec<&str> = cleared.split("; ").collect();
    assert!(
        cleared.starts_with("__Host-cone_session=;") || cleared.starts_with("__Host-cone_session=\"\";"),
        "{cleared}"
    );
    assert!(attributes.contains(&"Secure") && attributes.contains(&"Max-Age=0"), "{cleared}");
}

#[test]
fn after_signing_in_only_console_pages_are_destinations() {
    use crate::web::session::destination;
    assert_eq!(destination("/console/requests?submitted=1"), "/console/requests?submitted=1");
    for outside in ["https://evil.example", "//evil.example", "/console//evil", "/console\\x", "/api/v1/me", ""] {
        assert_eq!(destination(outside), "/console", "{outside}");
    }
}

crate::store::testing::on_both_backends!(sessions_end_when_signed_out_or_expired_and_are_audited);

async fn sessions_end_when_signed_out_or_expired_and_are_audited(db: crate::store::Db) {
    db.set_password("alice", "hash").await.unwrap();
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    db.insert_web_session("h1", alice.id, 100, 200, None).await.unwrap();
    db.insert_web_session("h2", alice.id, 150, 1000, None).await.unwrap();
    assert_eq!(db.web_session_user("h1", 199).await.unwrap().map(|u| u.username).as_deref(), Some("alice"));
    assert!(db.web_session_user("h1", 200).await.unwrap().is_none(), "expired");
    assert!(db.web_session_user("nope", 150).await.unwrap().is_none());
    // A sign-in clears the sessions that ended.
    db.insert_web_session("h3", alice.id, 300, 1000, Some("https://idp.example.com")).await.unwrap();
    let left: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM web_sessions ORDER BY token_hash")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(left, ["h2", "h3"]);
    db.delete_web_session("h2", alice.id, 400).await.unwrap();
    assert!(db.web_session_user("h2", 400).await.unwrap().is_none());
    let filter = crate::store::AuditFilter::default();
    let actions: Vec<String> = db
        .audit_entries(&filter, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {}", e.action, e.detail))
        .collect();
    let web = r#"{"via":"web"}"#;
    let oidc = r#"{"oidc":"https://idp.example.com","via":"web"}"#;
    assert_eq!(
        actions,
        [format!("login {web}"), format!("login {web}"), format!("login {oidc}"), format!("logout {web}")]
    );
}

#[tokio::test]
async fn the_sign_in_page_offers_the_identity_provider_and_its_callback_refuses_strangers() {
    let (plain, _keep) = state("").await;
    let mut b = Browser::new(&plain);
    assert!(!b.get("/console/login").await.body.contains("Sign in with"));
    assert_eq!(b.get("/console/login/oidc").await.status, StatusCode::NOT_FOUND);

    let oidc =
        "oidc: { name: Example SSO, issuer: 'http://127.0.0.1:9', client_id: cone, secret_env: CONE_TEST_NONE }\n";
    let (s, _keep2) = state(oidc).await;
    let mut b = Browser::new(&s);
    let login = b.get("/console/login?next=/console/inbox").await;
    assert!(
        login.body.contains(r#"href="/console/login/oidc?next=%2Fconsole%2Finbox">Sign in with Example SSO</a>"#),
        "{}",
        login.body
    );
    // An answer that no sign-in of this browser started is refused before anything is asked of the provider.
    let forged = b.get("/console/login/oidc/callback?code=c&state=s").await;
    assert_eq!(forged.status, StatusCode::BAD_REQUEST);
    assert!(forged.body.contains("was not started from this browser"), "{}", forged.body);
    b.cookies.insert("cone_oidc".into(), "state=right&verifier=v&nonce=n&next=%2Fconsole".into());
    let wrong = b.get("/console/login/oidc/callback?code=c&state=wrong").await;
    assert!(wrong.body.contains("does not belong to the sign-in this browser started"), "{}", wrong.body);
    let denied = b.get("/console/login/oidc/callback?error=access_denied&error_description=no%20consent").await;
    assert_eq!(denied.status, StatusCode::UNAUTHORIZED);
    assert!(denied.body.contains("Example SSO did not sign you in: access_denied (no consent)."), "{}", denied.body);
    // The provider is down: the page says so and offers the password.
    let down = b.get("/console/login/oidc").await;
    assert_eq!(down.status, StatusCode::BAD_GATEWAY);
    assert!(
        down.body.contains("Cone could not read the provider's OpenID configuration with Example SSO"),
        "{}",
        down.body
    );
    assert!(b.cookies.keys().all(|c| !c.starts_with("cone_session")));
}
