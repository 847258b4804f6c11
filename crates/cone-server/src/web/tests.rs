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

/// Guessing is slow: after five failures for a name, even the right password waits, for that name only.
#[tokio::test]
async fn repeated_failed_sign_ins_for_a_name_are_throttled() {
    let (s, _keep) = state("").await;
    let mut b = Browser::new(&s);
    let token = b.get("/console/login").await.token();
    for _ in 0..crate::auth::Throttle::LIMIT {
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
        let db = s.db.clone();
        let (code, hash) = (code.to_string(), hash.to_string());
        async move { db.create_device_code(&hash, &code, crate::http::now() + 600, 0).await.unwrap() }
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
    assert_eq!(
        s.db.poll_device_code("h1", crate::http::now()).await.unwrap(),
        crate::db::DevicePoll::Approved(alice.id)
    );
    let again = b.post("/console/device", &[("csrf", token.as_str()), approve[0], approve[1]]).await;
    assert_eq!(again.status, StatusCode::BAD_REQUEST, "a code is used once");

    start("MNPQ-RSTV", "h2").await;
    let deny =
        b.post("/console/device", &[("csrf", token.as_str()), ("user_code", "MNPQ-RSTV"), ("decision", "deny")]).await;
    assert!(deny.body.contains("The sign-in was denied"), "{}", deny.body);
    assert_eq!(s.db.poll_device_code("h2", crate::http::now()).await.unwrap(), crate::db::DevicePoll::Denied);
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
    s.db.apply_snapshot("aws", &snapshot(), 1).await.unwrap();
    s.db.entitlements().await.unwrap().remove(0).id
}

fn snapshot() -> cone_aws::Snapshot {
    cone_aws::Snapshot {
        resumed: None,
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
    }
}

#[tokio::test]
async fn access_through_a_group_is_listed_read_only_and_not_requested() {
    let (s, _keep) = state(DBA).await;
    let through_group = cone_aws::Snapshot {
        groups: vec![cone_aws::Group { id: "g-dba".into(), display_name: "dbas".into() }],
        memberships: vec![("g-dba".into(), "idc-alice".into())],
        assignments: vec![cone_aws::AssignmentRecord {
            account_id: "111111111111".into(),
            permission_set_arn: "arn:aws:sso:::permissionSet/ssoins-1/ps-1".into(),
            principal: cone_aws::Principal::Group("g-dba".into()),
        }],
        ..snapshot()
    };
    s.db.apply_snapshot("aws", &through_group, 1).await.unwrap();
    let mut alice = Browser::new(&s);
    alice.sign_in("alice").await;

    let mine = alice.get("/console/requests").await;
    assert!(mine.body.contains("Access through your groups"), "{}", mine.body);
    assert!(mine.body.contains("DatabaseAdministrator on Production</th><td>group &quot;dbas&quot;"), "{}", mine.body);
    let list = alice.get("/console").await;
    assert!(list.body.contains("through group &quot;dbas&quot;"), "{}", list.body);
    assert!(!list.body.contains("aria-label=\"Request DatabaseAdministrator"), "no request link: {}", list.body);
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
    let filter = crate::db::AuditFilter { after_id: 0, since: None, until: None, action: None };
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

const READONLY: &str = "policies:\n  - name: readonly\n    match: { permission_set: ReadOnlyAccess }\n    max_duration: 8h\n    steps: [accept]\n";

#[tokio::test]
async fn administrators_check_apply_and_look_back_on_the_access_document() {
    let (s, _keep) = state(&format!("admins: {{ users: [carol] }}\n{READONLY}")).await;
    s.db.set_password("carol", &hash_password("pw").unwrap()).await.unwrap();
    let access = crate::access::load_at_start(&s.db, &s.config, "cone-server.yaml").await.unwrap();
    s.access.store(std::sync::Arc::new(access));
    let mut carol = Browser::new(&s);
    carol.sign_in("carol").await;

    let page = carol.get("/console/policies").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for needle in [
        "In force: version 1",
        "the configuration file, at start-up",
        "max_duration: 8h",
        r#"name="base_version" value="1""#,
    ] {
        assert!(page.body.contains(needle), "no {needle:?} in {}", page.body);
    }
    let token = page.token();
    let shorter = READONLY.replace("8h", "2h");

    // Check applies nothing: a mistake is named and the text stays; a good document is summarised.
    let typo = shorter.replace("max_duration", "max_durration");
    let form = |doc: &str, action: &str, base: &str| {
        vec![
            ("csrf", token.clone()),
            ("document", doc.replace('\n', "\r\n")),
            ("comment", "shorter".into()),
            ("base_version", base.into()),
            ("action", action.into()),
        ]
    };
    let bad = carol.post("/console/policies", &pairs(&form(&typo, "check", "1"))).await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body.contains("unknown field `max_durration`") && bad.body.contains("Your text is kept below."),
        "{}",
        bad.body
    );
    assert!(bad.body.contains("max_durration: 2h\n    steps: [accept]\n</textarea>"), "the text stays: {}", bad.body);
    let good = carol.post("/console/policies", &pairs(&form(&shorter, "check", "1"))).await;
    assert_eq!(good.status, StatusCode::OK);
    assert!(
        good.body.contains("The document checks; nothing was applied.") && good.body.contains("1 policies: readonly"),
        "{}",
        good.body
    );
    assert_eq!(s.access().version, 1, "a check applies nothing");

    let applied = carol.post("/console/policies", &pairs(&form(&shorter, "apply", "1"))).await;
    assert_eq!((applied.status, applied.location()), (StatusCode::SEE_OTHER, "/console/policies?applied=2"));
    assert_eq!(s.access().version, 2);
    assert_eq!(s.access().policies()[0].max_duration, 7200);
    let after = carol.get(applied.location()).await;
    assert!(after.body.contains("Version 2 applied") && after.body.contains("max_duration: 2h"), "{}", after.body);
    assert!(after.body.contains("<dd>carol</dd>") && after.body.contains("<dd>shorter</dd>"), "{}", after.body);
    let again = carol.post("/console/policies", &pairs(&form(&shorter, "apply", "2"))).await;
    assert_eq!(again.location(), "/console/policies?unchanged=2", "the same text (LF or CRLF) is no change");

    // A change started from version 1 would undo version 2 unseen: refused, with the text kept and the form now
    // starting from the version in force.
    let stale = carol.post("/console/policies", &pairs(&form(&READONLY.replace("8h", "4h"), "apply", "1"))).await;
    assert_eq!(stale.status, StatusCode::CONFLICT);
    assert!(stale.body.contains("Version 2 of the access document was applied after version 1"), "{}", stale.body);
    assert!(stale.body.contains("max_duration: 4h\n    steps: [accept]\n</textarea>"), "{}", stale.body);
    assert!(stale.body.contains(r#"name="base_version" value="2""#), "{}", stale.body);
    assert_eq!(s.access().version, 2);

    let history = carol.get("/console/policies/history").await;
    let (v2, v1) = (
        history.body.find(r#"aria-label="Version 2""#).unwrap(),
        history.body.find(r#"aria-label="Version 1""#).unwrap(),
    );
    assert!(v2 < v1, "newest first: {}", history.body);
    assert!(history.body.contains("<td>shorter</td>") && history.body.contains("in force"), "{}", history.body);
    let first = carol.get("/console/policies/versions/1").await;
    assert!(first.body.contains("Policy version 1") && first.body.contains("max_duration: 8h"), "{}", first.body);
    assert_eq!(carol.get("/console/policies/versions/9").await.status, StatusCode::NOT_FOUND);

    // Nobody else sees or changes it.
    let mut alice = Browser::new(&s);
    let mine = alice.sign_in("alice").await;
    assert_eq!(mine.status, StatusCode::SEE_OTHER);
    let alices = alice.get("/console").await;
    assert!(!alices.body.contains("/console/policies"), "no link for alice: {}", alices.body);
    for path in
        ["/console/policies", "/console/policies/history", "/console/policies/versions/1", "/console/connectors"]
    {
        let refused = alice.get(path).await;
        assert_eq!(refused.status, StatusCode::FORBIDDEN, "{path}");
        assert!(refused.body.contains("Only Cone administrators may see this page"), "{}", refused.body);
    }
    let post = [
        ("csrf", alices.token()),
        ("document", String::new()),
        ("base_version", "2".into()),
        ("action", "apply".into()),
    ];
    assert_eq!(alice.post("/console/policies", &pairs(&post)).await.status, StatusCode::FORBIDDEN);
    assert_eq!(s.access().version, 2);
}

fn pairs<'a>(list: &'a [(&'a str, String)]) -> Vec<(&'a str, &'a str)> {
    list.iter().map(|(n, v)| (*n, v.as_str())).collect()
}

#[tokio::test]
async fn the_connectors_page_says_syncing_then_connected_or_the_error() {
    let (s, _keep) = state("admins: { users: [bob] }\n").await;
    let mut bob = Browser::new(&s);
    bob.sign_in("bob").await;
    let syncing = bob.get("/console/connectors").await;
    assert!(syncing.body.contains(r#"<span class="state syncing">Syncing</span>"#), "{}", syncing.body);
    let at = chrono::DateTime::from_timestamp(1_800_000_000, 0).unwrap();
    {
        let mut status = s.sync_status.lock().unwrap();
        status.state = cone_api::CONNECTOR_ERROR.into();
        status.last_success_at = Some(at);
        status.last_attempt_at = Some(at);
        status.last_error = Some("AccessDeniedException: <sso:ListInstances>".into());
    }
    let failed = bob.get("/console/connectors").await;
    for needle in [
        "Error</span>",
        "2027-01-15 08:00 UTC",
        "AccessDeniedException: &lt;sso:ListInstances&gt;",
        "The last sync failed",
    ] {
        assert!(failed.body.contains(needle), "no {needle:?} in {}", failed.body);
    }
    s.sync_status.lock().unwrap().state = cone_api::CONNECTOR_CONNECTED.into();
    assert!(bob.get("/console/connectors").await.body.contains("Connected</span>"));
}

#[tokio::test]
async fn the_access_keys_page_flags_old_and_unused_keys_and_says_when_the_sync_is_off() {
    let (off, _keep) = state("admins: { users: [bob] }\n").await;
    let mut bob = Browser::new(&off);
    bob.sign_in("bob").await;
    let page = bob.get("/console/access-keys").await;
    assert!(page.body.contains("IAM sync is off; set <code>aws.sync_secrets: true</code>"), "{}", page.body);
    assert!(page.body.contains(r#"href="/console/access-keys" aria-current="page""#), "linked from the navigation");

    let now = crate::http::now();
    let key = |id: &str, status: &str, age: i64, used: Option<i64>| cone_aws::AccessKey {
        id: id.into(),
        user_arn: "arn:aws:iam::123456789012:user/deployer".into(),
        status: status.into(),
        created: crate::db::rfc3339(now - age * 86_400),
        last_used: used.map(|d| crate::db::rfc3339(now - d * 86_400)),
        last_used_service: used.map(|_| "s3".into()),
        last_used_region: used.map(|_| "eu-west-1".into()),
    };
    let iam = cone_aws::IamSnapshot {
        users: vec![cone_aws::IamUser {
            arn: "arn:aws:iam::123456789012:user/deployer".into(),
            id: "AIDADEPLOYER".into(),
            name: "deployer".into(),
            created: crate::db::rfc3339(now - 400 * 86_400),
            password_last_used: None,
        }],
        access_keys: vec![key("AKIAFRESH", "Active", 5, Some(1)), key("AKIASTALE", "Inactive", 200, None)],
        ..Default::default()
    };
    off.db.apply_iam_snapshot("aws", &iam, now).await.unwrap();
    let mut s = off.clone();
    let config = "database: /unused.db\naws: { sso_region: us-east-1, sync_secrets: true }\nadmins: { users: [bob] }\n";
    s.config = std::sync::Arc::new(crate::config::Config::parse(config).unwrap());
    let mut bob = Browser::new(&s);
    bob.sign_in("bob").await;
    let page = bob.get("/console/access-keys").await;
    let rows: Vec<&str> = page.body.split("<tr>").skip(2).collect();
    assert_eq!(rows.len(), 2, "{}", page.body);
    for needle in ["<code>AKIAFRESH</code>", "deployer", "Active", "5 days ago", "yesterday", "s3", "eu-west-1"] {
        assert!(rows[0].contains(needle), "no {needle:?} in {}", rows[0]);
    }
    assert!(!rows[0].contains("class=\"flag\""), "a fresh key in use is not flagged: {}", rows[0]);
    for needle in ["AKIASTALE", "Inactive", "never", "Older than 90 days", "Never used"] {
        assert!(rows[1].contains(needle), "no {needle:?} in {}", rows[1]);
    }
    assert!(page.body.contains("<caption>"), "the table has a caption");
    let inactive = bob.get("/console/access-keys?user=deployer&status=Inactive").await;
    assert!(inactive.body.contains("AKIASTALE") && !inactive.body.contains("AKIAFRESH"), "{}", inactive.body);
    assert!(inactive.body.contains(r#"<option value="Inactive" selected>"#), "the filter stays chosen");
    let bad = bob.get("/console/access-keys?status=Gone").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);

    let mut alice = Browser::new(&s);
    alice.sign_in("alice").await;
    assert_eq!(alice.get("/console/access-keys").await.status, StatusCode::FORBIDDEN);
    assert!(!alice.get("/console").await.body.contains("/console/access-keys"), "no link for requesters");
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

/// Seed 001's step 2 on the Apps page: the default rule is switched to an access profile, which is recorded as a
/// new version with only `entitlement_management` rewritten; the page shows accounts, profiles and forms.
#[tokio::test]
async fn administrators_set_the_default_entitlement_management_rule_on_the_apps_page() {
    let document = "\
# Catalog for the data team.
access_profiles:
  - name: everyone
    visible_to: { everyone: true }
  - name: dbas
    description: Database people
    visible_to: { groups: [dba] }
entitlement_management:
  - match: { account: Sandbox }
    requestable: false
# Policies follow.
policies:
  - name: dba
    match: { permission_set: DatabaseAdministrator }
    max_duration: 1h
    form: [{ name: ticket, required: true, max_length: 20 }]
    steps: [accept]
";
    let (s, _keep) = state(&format!("admins: {{ users: [carol] }}\n{READONLY}")).await;
    s.db.set_password("carol", &hash_password("pw").unwrap()).await.unwrap();
    s.access.store(std::sync::Arc::new(crate::access::load_at_start(&s.db, &s.config, "f").await.unwrap()));
    catalog(&s).await;
    // Version 2, as an administrator wrote it (a file's sections are recorded re-serialised, without comments).
    let carol_id = s.db.user_by_name("carol").await.unwrap().unwrap().id;
    let written = cone_api::ApplyConfig { document: document.into(), comment: String::new(), base_version: None };
    crate::access::apply_as(&s, carol_id, &written).await.unwrap();
    let mut alice = Browser::new(&s);
    alice.sign_in("alice").await;
    assert_eq!(alice.get("/console/apps").await.status, StatusCode::FORBIDDEN);
    let mut carol = Browser::new(&s);
    carol.sign_in("carol").await;

    let page = carol.get("/console/apps").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    for needle in [
        "1 account, 1 entitlement",
        "<th scope=\"row\">Production</th><td>0 of 1</td><td><span class=\"muted\">nobody</span>",
        "no rule",
        "group dba",
        "<td>at most 20 characters</td>",
    ] {
        assert!(page.body.contains(needle), "no {needle:?} in {}", page.body);
    }
    let token = page.token();
    let form = |base: &str, profile: &str, confirm: &str| {
        vec![
            ("csrf", token.clone()),
            ("base_version", base.to_string()),
            ("enabled", "on".to_string()),
            ("access_profile", profile.to_string()),
            ("confirm", confirm.to_string()),
        ]
    };
    let unconfirmed = carol.post("/console/apps", &pairs(&form("2", "dbas", ""))).await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST);
    assert_eq!(s.access().version, 2);

    let applied = carol.post("/console/apps", &pairs(&form("2", "dbas", "on"))).await;
    assert_eq!((applied.status, applied.location()), (StatusCode::SEE_OTHER, "/console/apps?applied=3"));
    let v3 = s.db.access_version(3).await.unwrap().unwrap();
    let expected = document.replace(
        "entitlement_management:\n  - match: { account: Sandbox }\n    requestable: false\n",
        "entitlement_management:\n- match:\n    account: Sandbox\n  requestable: false\n- requestable: true\n  access_profile: dbas\n",
    );
    assert_eq!(v3.document, expected, "only the section changed; the comments stay");
    assert_eq!(v3.comment, "Apps page: default rule enables requesting through access profile dbas");
    let after = carol.get(applied.location()).await;
    assert!(after.body.contains("<td>1 of 1</td><td>dbas</td><td>rule 2</td>"), "{}", after.body);
    assert!(after.body.contains(r#"<option value="dbas" selected>"#), "{}", after.body);

    let again = carol.post("/console/apps", &pairs(&form("3", "dbas", "on"))).await;
    assert_eq!(again.location(), "/console/apps?unchanged=3");
    let stale = carol.post("/console/apps", &pairs(&form("2", "", "on"))).await;
    assert_eq!(stale.status, StatusCode::CONFLICT, "the form started from version 2: {}", stale.body);
}

/// The audit page's filters also select what its download holds: every matching entry, one JSON object a line.
#[tokio::test]
async fn administrators_download_the_filtered_audit_log_as_json_lines() {
    let (s, _keep) = state("admins: { users: [carol] }\n").await;
    s.db.set_password("carol", &hash_password("pw").unwrap()).await.unwrap();
    let mut alice = Browser::new(&s);
    alice.sign_in("alice").await;
    assert_eq!(alice.get("/console/audit/export").await.status, StatusCode::FORBIDDEN);
    let mut carol = Browser::new(&s);
    carol.sign_in("carol").await;

    let page = carol.get("/console/audit?action=login").await;
    assert!(page.body.contains(r#"href="/console/audit/export?since=&amp;until=&amp;action=login""#), "{}", page.body);
    let download = carol.get("/console/audit/export?since=&until=&action=login").await;
    assert_eq!(download.status, StatusCode::OK);
    assert_eq!(download.headers[header::CONTENT_TYPE], "application/x-ndjson");
    assert!(download.headers[header::CONTENT_DISPOSITION].to_str().unwrap().starts_with("attachment;"));
    let lines: Vec<serde_json::Value> = download.body.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(lines.len(), 2, "alice's and carol's sign-ins: {}", download.body);
    assert!(lines.iter().all(|e| e["action"] == "login" && e["hash"].is_string()), "{}", download.body);
    let bad = carol.get("/console/audit/export?since=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
}

/// Break-glass in the console: the form offers it only where the policy has emergency steps, a justification is
/// required, and a pending request can be escalated from the requests page.
#[tokio::test]
async fn requesters_break_glass_or_escalate_where_the_policy_allows() {
    let policy = "policies:\n  - name: dba\n    match: { permission_set: DatabaseAdministrator }\n    max_duration: 1h\n    steps: [{ approval: { users: [bob] } }]\n    emergency_steps: [accept]\n";
    let (s, _keep) = state(policy).await;
    let id = catalog(&s).await;
    let mut alice = Browser::new(&s);
    alice.sign_in("alice").await;
    let form_page = alice.get(&super::link("/console/request", &[("app_id", "aws"), ("entitlement_id", &id)])).await;
    assert!(form_page.body.contains("Break glass: follow the emergency policy"), "{}", form_page.body);
    let token = form_page.token();
    let ask = |justification: &'static str, emergency: &'static str| {
        [
            ("csrf", token.clone()),
            ("app_id", "aws".to_string()),
            ("entitlement_id", id.clone()),
            ("duration", "30m".to_string()),
            ("justification", justification.to_string()),
            ("emergency", emergency.to_string()),
        ]
    };
    let unjustified = alice.post("/console/request", &pairs(&ask("", "on"))).await;
    assert_eq!(unjustified.status, StatusCode::BAD_REQUEST);
    assert!(
        unjustified.body.contains("Justification</a>: Emergency access needs a justification."),
        "{}",
        unjustified.body
    );
    assert!(unjustified.body.contains(r#"name="emergency" value="on" checked"#), "the box stays ticked");

    let filed = alice.post("/console/request", &pairs(&ask("database down, INC-7", "on"))).await;
    assert_eq!(filed.status, StatusCode::SEE_OTHER, "{}", filed.body);
    let task = s.db.task(1).await.unwrap().unwrap();
    assert_eq!((task.emergency, task.state.as_str()), (1, "provisioning"), "accepted at once by the emergency steps");

    // A normal request waits for bob; alice escalates it, and the emergency steps accept it.
    crate::app::drop_access(&s, &s.db.user_by_name("alice").await.unwrap().unwrap(), "aws", &id).await.unwrap();
    let normal = alice.post("/console/request", &pairs(&ask("routine", ""))).await;
    let mine = alice.get(normal.location()).await;
    assert!(mine.body.contains("Escalate request 2 to emergency access"), "{}", mine.body);
    let escalated = alice.post("/console/tasks/2/escalate", &[("csrf", &mine.token())]).await;
    assert_eq!(escalated.location(), "/console/requests?escalated=2");
    assert_eq!(s.db.task(2).await.unwrap().unwrap().emergency, 1);
    let after = alice.get(escalated.location()).await;
    assert!(after.body.contains("Request 2 follows the emergency policy now."), "{}", after.body);
}

/// Lists longer than a page go on: my requests past the newest 50, and the approvals page past its first 100.
#[tokio::test]
async fn long_lists_of_requests_and_approvals_page_on() {
    let policy = "policies:\n  - name: dba\n    match: { permission_set: DatabaseAdministrator }\n    max_duration: 1h\n    steps: [{ approval: { users: [bob] } }]\n";
    let (s, _keep) = state(policy).await;
    let id = catalog(&s).await;
    let alice = s.db.user_by_name("alice").await.unwrap().unwrap();
    let ask = || cone_api::CreateTask {
        app_id: "aws".into(),
        entitlement_id: id.clone(),
        justification: "again".into(),
        duration_secs: None,
        form_data: Default::default(),
        emergency: false,
    };
    for _ in 0..50 {
        let t = crate::app::create_task(&s, &alice, ask()).await.unwrap();
        crate::app::cancel(&s, &alice, t.id).await.unwrap();
    }
    crate::app::create_task(&s, &alice, ask()).await.unwrap();

    let mut browser = Browser::new(&s);
    browser.sign_in("alice").await;
    let first = browser.get("/console/requests").await;
    assert!(first.body.contains(r#"aria-label="Request 51""#) && !first.body.contains(r#"aria-label="Request 1""#));
    assert!(first.body.contains(r#"<a href="/console/requests?page_token=50">Older requests</a>"#), "{}", first.body);
    let second = browser.get("/console/requests?page_token=50").await;
    assert!(second.body.contains(r#"aria-label="Request 1""#) && !second.body.contains("Older requests"));

    // bob's one waiting request is on his first page, with no further page.
    let mut bob = Browser::new(&s);
    bob.sign_in("bob").await;
    let inbox = bob.get("/console/inbox").await;
    assert!(inbox.body.contains("Request 51: ") && !inbox.body.contains("More requests"), "{}", inbox.body);
    assert!(bob.get("/console/tasks/51").await.body.contains("Approve"), "bob may decide it on its page");
    assert!(!browser.get("/console/tasks/51").await.body.contains(r#"value="approve""#), "alice may not");
}
