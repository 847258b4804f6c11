//! The console through its router: sign-in, cookies, form tokens, the request form's errors and the approver's
//! decision, on SQLite.

use std::collections::HashMap;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use tower::ServiceExt;

use super::CONTENT_SECURITY_POLICY;
use crate::auth::{hash_password, secret_hash};
use crate::http::{AppState, router, testing};

/// A browser: a cookie jar in front of the router.
struct Browser {
    app: Router,
    cookies: HashMap<String, String>,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn location(&self) -> &str {
        self.headers.get(header::LOCATION).and_then(|l| l.to_str().ok()).unwrap_or_default()
    }

    /// The form token of the first form on the page.
    fn token(&self) -> String {
        let needle = r#"name="csrf" value=""#;
        let at = self.body.find(needle).expect("a form token on the page") + needle.len();
        self.body[at..].split('"').next().unwrap().to_string()
    }
}

impl Browser {
    fn new(s: &AppState) -> Browser {
        Browser { app: router(s.clone()), cookies: HashMap::new() }
    }

    async fn send(&mut self, method: Method, uri: &str, form: &[(&str, &str)]) -> Answer {
        let mut req = Request::builder().method(method).uri(uri);
        let jar: Vec<String> = self.cookies.iter().map(|(n, v)| format!("{n}={v}")).collect();
        if !jar.is_empty() {
            req = req.header(header::COOKIE, jar.join("; "));
        }
        let body = if form.is_empty() {
            Body::empty()
        } else {
            req = req.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
            Body::from(serde_urlencoded::to_string(form).unwrap())
        };
        let resp = self.app.clone().oneshot(req.body(body).unwrap()).await.unwrap();
        for set in resp.headers().get_all(header::SET_COOKIE) {
            let set = set.to_str().unwrap();
            let (name, value) = set.split(';').next().unwrap().split_once('=').unwrap();
            if set.contains("Max-Age=0") {
                self.cookies.remove(name);
            } else {
                self.cookies.insert(name.to_string(), value.to_string());
            }
        }
        let (status, headers) = (resp.status(), resp.headers().clone());
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 22).await.unwrap();
        Answer { status, headers, body: String::from_utf8(bytes.to_vec()).unwrap() }
    }

    async fn get(&mut self, uri: &str) -> Answer {
        self.send(Method::GET, uri, &[]).await
    }

    async fn post(&mut self, uri: &str, form: &[(&str, &str)]) -> Answer {
        self.send(Method::POST, uri, form).await
    }

    async fn sign_in(&mut self, user: &str) -> Answer {
        let token = self.get("/console/login").await.token();
        self.post("/console/login", &[("csrf", &token), ("username", user), ("password", "pw"), ("next", "/console")])
            .await
    }
}

async fn state(extra: &str) -> (AppState, crate::db::testing::Keep) {
    let (db, keep) = crate::db::testing::sqlite().await;
    for user in ["alice", "bob"] {
        db.set_password(user, &hash_password("pw").unwrap()).await.unwrap();
    }
    (testing::state(db, extra), keep)
}

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
    assert!(cookie.starts_with("__Host-cone_sign_in=") && cookie.ends_with("; Secure"), "{cookie}");
    assert!(cookie.contains("; Path=/;"), "{cookie}");
}

const DBA: &str = r#"policies:
  - name: dba
    match: { permission_set: DatabaseAdministrator }
    max_duration: 1h
    form:
      - { name: ticket, required: true, max_length: 10, description: The change ticket }
      - { name: hosts, type: integer, min: 1, max: 5 }
      - { name: urgent, type: bool }
    steps: [{ approval: { users: [bob, carol] } }]
"#;

/// Production's DatabaseAdministrator, with alice, bob and carol linked to Identity Center users; returns its id.
async fn catalog(s: &AppState) -> String {
    let snap = cone_aws::Snapshot {
        instance_arn: "arn:aws:sso:::instance/ssoins-1".into(),
        identity_store_id: "d-1".into(),
        accounts: vec![cone_aws::Account {
            id: "111111111111".into(),
            name: "Production".into(),
            email: String::new(),
            status: "ACTIVE".into(),
        }],
        permission_sets: vec![cone_aws::PermissionSet {
            arn: "arn:aws:sso:::permissionSet/ssoins-1/ps-1".into(),
            name: "DatabaseAdministrator".into(),
            description: None,
            session_duration: None,
        }],
        provisioned: vec![("111111111111".into(), "arn:aws:sso:::permissionSet/ssoins-1/ps-1".into())],
        users: ["alice", "bob", "carol"]
            .map(|name| cone_aws::User {
                id: format!("idc-{name}"),
                user_name: name.into(),
                display_name: name.into(),
                email: None,
            })
            .into(),
        groups: vec![],
        memberships: vec![],
        assignments: vec![],
    };
    s.db.apply_snapshot("aws", &snap, 1).await.unwrap();
    s.db.entitlements().await.unwrap().remove(0).id
}

#[tokio::test]
async fn the_request_form_names_each_bad_field_and_a_requester_cannot_decide() {
    let (s, _keep) = state(DBA).await;
    let id = catalog(&s).await;
    let mut alice = Browser::new(&s);
    alice.sign_in("alice").await;

    let list = alice.get("/console").await;
    assert!(list.body.contains("Production") && list.body.contains("DatabaseAdministrator"), "{}", list.body);
    let form_page = alice.get(&super::link("/console/request", &[("app_id", "aws"), ("entitlement_id", &id)])).await;
    assert_eq!(form_page.status, StatusCode::OK, "{}", form_page.body);
    assert!(form_page.body.contains(r#"<label for="field-ticket">ticket"#), "{}", form_page.body);
    let token = form_page.token();
    let bad = [
        ("csrf", token.as_str()),
        ("app_id", "aws"),
        ("entitlement_id", &id),
        ("duration", "soon"),
        ("justification", "<script>alert(1)</script>"),
        ("form.ticket", ""),
        ("form.hosts", "many"),
    ];
    let refused = alice.post("/console/request", &bad).await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    for needle in [
        "`soon` is not a duration",
        "ticket</a>: is required",
        "hosts</a>: must be a whole number",
        r#"aria-invalid="true""#,
        "&lt;script&gt;alert(1)&lt;/script&gt;",
    ] {
        assert!(refused.body.contains(needle), "no {needle:?} in {}", refused.body);
    }
    assert!(!refused.body.contains("<script>"));
    let at = |needle: &str| refused.body.find(needle).unwrap();
    assert!(at("Duration</a>") < at("ticket</a>") && at("ticket</a>") < at("hosts</a>"), "in the form's order");

    let good = [
        ("csrf", token.as_str()),
        ("app_id", "aws"),
        ("entitlement_id", &id),
        ("duration", "30m"),
        ("justification", "migration <b>now</b>"),
        ("form.ticket", "OPS-1"),
        ("form.hosts", "2"),
        ("form.urgent", "true"),
    ];
    let filed = alice.post("/console/request", &good).await;
    assert_eq!((filed.status, filed.location()), (StatusCode::SEE_OTHER, "/console/requests?submitted=1"));
    let mine = alice.get(filed.location()).await;
    assert!(mine.body.contains("Request 1 submitted. It waits for approval"), "{}", mine.body);
    assert!(mine.body.contains("migration &lt;b&gt;now&lt;/b&gt;"), "{}", mine.body);
    let again = alice.post("/console/request", &good).await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert!(again.body.contains("You already have a pending request for this access (request 1)"), "{}", again.body);

    // alice has nothing to approve, and cannot decide her own request by posting the form anyway.
    let inbox = alice.get("/console/inbox").await;
    assert!(inbox.body.contains("No request waits for your decision."), "{}", inbox.body);
    let decide = [("csrf", token.as_str()), ("decision", "approve"), ("comment", "")];
    let own = alice.post("/console/tasks/1/decide", &decide).await;
    assert_eq!(own.status, StatusCode::FORBIDDEN, "{}", own.body);
    // Administrators' pages are not hers either; a wrong address is a page too.
    assert_eq!(alice.get("/console/audit").await.status, StatusCode::FORBIDDEN);
    for wrong in ["/console/nowhere", "/console/request?app_id=aws"] {
        let page = alice.get(wrong).await;
        assert_eq!(page.status, StatusCode::NOT_FOUND, "{wrong}");
        assert!(page.body.contains("Back to the catalog"), "{}", page.body);
    }

    let mut bob = Browser::new(&s);
    bob.sign_in("bob").await;
    let inbox = bob.get("/console/inbox").await;
    assert!(inbox.body.contains("Request 1: DatabaseAdministrator on Production"), "{}", inbox.body);
    let bobs = inbox.token();
    let unsaid = bob.post("/console/tasks/1/decide", &[("csrf", &bobs), ("comment", "hm")]).await;
    assert_eq!(unsaid.status, StatusCode::BAD_REQUEST);
    let approve = [("csrf", bobs.as_str()), ("decision", "approve"), ("comment", "ok for OPS-1")];
    let done = bob.post("/console/tasks/1/decide", &approve).await;
    assert_eq!((done.status, done.location()), (StatusCode::SEE_OTHER, "/console/inbox?approved=1"));
    let task = s.db.task(1).await.unwrap().unwrap();
    assert_eq!(task.state, "provisioning");
    // The request's page shows the decision, and both may comment there.
    let history = alice.get("/console/tasks/1").await;
    assert!(history.body.contains("<td>ok for OPS-1</td>"), "{}", history.body);
    assert!(!history.body.contains(r#"value="approve""#), "nothing to decide: {}", history.body);
    let said = alice.post("/console/tasks/1/comment", &[("csrf", &token), ("comment", "thanks")]).await;
    assert_eq!(said.location(), "/console/tasks/1#history");
    assert!(bob.get("/console/tasks/1").await.body.contains("<td>thanks</td>"));
    assert_eq!(alice.post("/console/tasks/1/comment", &[("csrf", &token), ("comment", " ")]).await.status, 400);

    // An undecided request (bob's, which waits for carol) can be withdrawn by its requester only.
    let second = [("csrf", token.as_str()), ("app_id", "aws"), ("entitlement_id", &id), ("form.ticket", "OPS-2")];
    let filed = bob.post("/console/request", &[&second[1..], &[("csrf", bobs.as_str())]].concat()).await;
    assert_eq!(filed.location(), "/console/requests?submitted=2", "{}", filed.body);
    let mine = bob.get(filed.location()).await;
    assert!(mine.body.contains(r#"aria-label="Withdraw request 2""#), "{}", mine.body);
    assert_eq!(alice.post("/console/tasks/2/withdraw", &second[..1]).await.status, StatusCode::NOT_FOUND);
    let withdrawn = bob.post("/console/tasks/2/withdraw", &[("csrf", &bobs)]).await;
    assert_eq!(withdrawn.location(), "/console/requests?withdrawn=2");
    assert_eq!(s.db.task(2).await.unwrap().unwrap().state, "cancelled");
}

#[test]
fn after_signing_in_only_console_pages_are_destinations() {
    use super::session::destination;
    assert_eq!(destination("/console/requests?submitted=1"), "/console/requests?submitted=1");
    for outside in ["https://evil.example", "//evil.example", "/console//evil", "/console\\x", "/api/v1/me", ""] {
        assert_eq!(destination(outside), "/console", "{outside}");
    }
}

crate::db::testing::on_both_backends!(sessions_end_when_signed_out_or_expired_and_are_audited);

async fn sessions_end_when_signed_out_or_expired_and_are_audited(db: crate::db::Db) {
    db.set_password("alice", "hash").await.unwrap();
    let alice = db.user_by_name("alice").await.unwrap().unwrap();
    db.insert_web_session("h1", alice.id, 100, 200).await.unwrap();
    db.insert_web_session("h2", alice.id, 150, 1000).await.unwrap();
    assert_eq!(db.web_session_user("h1", 199).await.unwrap().map(|u| u.username).as_deref(), Some("alice"));
    assert!(db.web_session_user("h1", 200).await.unwrap().is_none(), "expired");
    assert!(db.web_session_user("nope", 150).await.unwrap().is_none());
    // A sign-in clears the sessions that ended.
    db.insert_web_session("h3", alice.id, 300, 1000).await.unwrap();
    let left: Vec<String> = sqlx::query_scalar("SELECT token_hash FROM web_sessions ORDER BY token_hash")
        .fetch_all(db.pool())
        .await
        .unwrap();
    assert_eq!(left, ["h2", "h3"]);
    db.delete_web_session("h2", alice.id, 400).await.unwrap();
    assert!(db.web_session_user("h2", 400).await.unwrap().is_none());
    let filter = crate::db::AuditFilter { after_id: 0, since: None, until: None, action: None };
    let actions: Vec<String> = db
        .audit_entries(&filter, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|e| format!("{} {}", e.action, e.detail))
        .collect();
    let web = r#"{"via":"web"}"#;
    assert_eq!(
        actions,
        [format!("login {web}"), format!("login {web}"), format!("login {web}"), format!("logout {web}")]
    );
}
