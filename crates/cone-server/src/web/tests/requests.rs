//! The catalog, the request form and its errors, break-glass, and the approver's inbox.

use super::*;

/// Production's DatabaseAdministrator, with alice, bob and carol linked to Identity Center users; returns its id.
pub(super) async fn catalog(s: &AppState) -> String {
    s.db.apply_snapshot("aws", &snapshot(), 1).await.unwrap();
    s.db.entitlements().await.unwrap()[0].id.clone()
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
                enabled: true,
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
    let form_page =
        alice.get(&crate::web::layout::link("/console/request", &[("app_id", "aws"), ("entitlement_id", &id)])).await;
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
    let approved = bob.get("/console/inbox?approved=1").await;
    assert!(approved.body.contains("You approved request 1."), "{} {}", approved.status, approved.body);
    let task = s.db.task(1).await.unwrap().unwrap();
    assert_eq!(task.state.as_str(), "provisioning");
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
    assert_eq!(s.db.task(2).await.unwrap().unwrap().state.as_str(), "cancelled");
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
    let form_page =
        alice.get(&crate::web::layout::link("/console/request", &[("app_id", "aws"), ("entitlement_id", &id)])).await;
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
    crate::services::tasks::drop_access(&s, &s.db.user_by_name("alice").await.unwrap().unwrap(), "aws", &id)
        .await
        .unwrap();
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
        let t = crate::services::tasks::create(&s, &alice, ask()).await.unwrap();
        crate::services::tasks::cancel(&s, &alice, t.id).await.unwrap();
    }
    crate::services::tasks::create(&s, &alice, ask()).await.unwrap();

    let mut browser = Browser::new(&s);
    browser.sign_in("alice").await;
    let first = browser.get("/console/requests").await;
    assert!(first.body.contains(r#"aria-label="Request 51""#) && !first.body.contains(r#"aria-label="Request 1""#));
    assert!(first.body.contains(r#"<a href="/console/requests?page_token=50">Older requests</a>"#), "{}", first.body);
    let second = browser.get("/console/requests?page_token=50").await;
    assert!(second.body.contains(r#"aria-label="Request 1""#) && !second.body.contains("Older requests"));
    // Filtered: the one open request; the 50 withdrawn ones page on, keeping the filter.
    let open = browser.get("/console/requests?state=open&account=production").await;
    assert!(open.body.contains(r#"aria-label="Request 51""#) && !open.body.contains(r#"aria-label="Request 50""#));
    let closed = browser.get("/console/requests?state=closed&permission_set=databaseadministrator").await;
    assert!(!closed.body.contains(r#"aria-label="Request 51""#) && closed.body.contains(r#"aria-label="Request 50""#));
    assert!(!closed.body.contains("Older requests"), "50 fit on a page");
    let none = browser.get("/console/requests?account=staging").await;
    assert!(none.body.contains("None of your requests match."), "{}", none.body);

    // bob's one waiting request is on his first page, with no further page.
    let mut bob = Browser::new(&s);
    bob.sign_in("bob").await;
    let inbox = bob.get("/console/inbox").await;
    assert!(inbox.body.contains("Request 51: ") && !inbox.body.contains("More requests"), "{}", inbox.body);
    // Approvers narrow their list by requester, account and permission set.
    let alices = bob.get("/console/inbox?user=alice&account=production&permission_set=DatabaseAdministrator").await;
    assert!(alices.body.contains("Request 51: ") && alices.body.contains(r#"value="production""#), "{}", alices.body);
    let carols = bob.get("/console/inbox?user=carol").await;
    assert!(carols.body.contains("No request that matches waits for your decision."), "{}", carols.body);
    assert!(bob.get("/console/tasks/51").await.body.contains("Approve"), "bob may decide it on its page");
    assert!(!browser.get("/console/tasks/51").await.body.contains(r#"value="approve""#), "alice may not");
}

/// What people type is bounded: a justification or comment longer than `request::MAX_TEXT` characters, or a form
/// value past the form's (or the default) limit, is refused; a task takes `request::MAX_COMMENTS` comments, then
/// refuses more with a 409.
#[tokio::test]
async fn justifications_comments_and_form_values_are_bounded() {
    use crate::services::tasks;
    let (s, _keep) = state(DBA).await;
    let id = catalog(&s).await;
    let (alice, bob) =
        (s.db.user_by_name("alice").await.unwrap().unwrap(), s.db.user_by_name("bob").await.unwrap().unwrap());
    let ask = |justification: String, ticket: &str| cone_api::CreateTask {
        app_id: "aws".into(),
        entitlement_id: id.clone(),
        justification,
        form_data: [("ticket".to_string(), serde_json::json!(ticket))].into(),
        ..cone_api::CreateTask::default()
    };
    let long = "x".repeat(cone_core::request::MAX_TEXT + 1);
    let e = tasks::create(&s, &alice, ask(long.clone(), "T-1")).await.unwrap_err();
    assert!(e.to_string().contains("2001 characters long, more than the 2000"), "{e}");
    let hosts_field = serde_json::json!("h".repeat(11));
    let mut too_long_ticket = ask("why".into(), "T-1");
    too_long_ticket.form_data.insert("ticket".into(), hosts_field);
    assert!(tasks::create(&s, &alice, too_long_ticket).await.is_err(), "the form's own max_length holds");
    let task = tasks::create(&s, &alice, ask("why".into(), "T-1")).await.unwrap();

    assert!(tasks::comment(&s, &bob, task.id, &long).await.is_err());
    assert!(tasks::decide(&s, &bob, task.id, true, &long).await.is_err(), "a decision's comment too");
    for n in 0..cone_core::request::MAX_COMMENTS {
        tasks::comment(&s, &bob, task.id, &format!("note {n}")).await.unwrap();
    }
    let e = tasks::comment(&s, &alice, task.id, "one more").await.unwrap_err();
    assert!(matches!(e, crate::error::Error::WrongState(_)), "{e:?}");
    assert!(e.to_string().contains("has 100 comments, the most one task takes"), "{e}");
}

/// A task carries its latest `TASK_EVENTS_SHOWN` events; its whole history pages from the API and the console,
/// oldest first.
#[tokio::test]
async fn a_long_history_pages_oldest_first() {
    use crate::services::{Page, tasks};
    use cone_api::TASK_EVENTS_SHOWN;
    let (s, _keep) = state(DBA).await;
    let id = catalog(&s).await;
    let (alice, bob) =
        (s.db.user_by_name("alice").await.unwrap().unwrap(), s.db.user_by_name("bob").await.unwrap().unwrap());
    let ask = cone_api::CreateTask {
        app_id: "aws".into(),
        entitlement_id: id,
        justification: "why".into(),
        form_data: [("ticket".to_string(), serde_json::json!("T-1"))].into(),
        ..cone_api::CreateTask::default()
    };
    let task = tasks::create(&s, &alice, ask).await.unwrap();
    for n in 0..cone_core::request::MAX_COMMENTS {
        tasks::comment(&s, &bob, task.id, &format!("note {n}")).await.unwrap();
    }

    let shown = tasks::get(&s, &alice, task.id).await.unwrap();
    assert_eq!(shown.events.len() as i64, TASK_EVENTS_SHOWN);
    assert_eq!(shown.events.last().and_then(|e| e.comment.as_deref()), Some("note 99"), "the newest come last");
    let mut all = Vec::new();
    let mut token = None;
    loop {
        let page = Page::new(token.as_deref(), Some(30), 50, 200).unwrap();
        let page = tasks::history(&s, &bob, task.id, page).await.unwrap();
        assert!(page.events.len() <= 30);
        all.extend(page.events);
        match page.next_page_token {
            Some(next) => token = Some(next),
            None => break,
        }
    }
    assert_eq!(all.len() as i64, shown.earlier_events + TASK_EVENTS_SHOWN, "every event once");
    assert_eq!(all[0].action, "task.create");
    let comments = |events: &[cone_api::TaskEvent]| events.iter().map(|e| e.comment.clone()).collect::<Vec<_>>();
    assert_eq!(comments(&all[all.len() - shown.events.len()..]), comments(&shown.events));

    let mut browser = Browser::new(&s);
    browser.sign_in("bob").await;
    let page = browser.get(&format!("/console/tasks/{}", task.id)).await;
    let earlier = format!("{} earlier events are not shown.", shown.earlier_events);
    assert!(page.body.contains(&earlier) && page.body.contains("/history\">See the whole history"), "{}", page.body);
    let first = browser.get(&format!("/console/tasks/{}/history", task.id)).await;
    assert!(first.body.contains(">note 0<") && !first.body.contains(">note 99<"), "{}", first.body);
    let next = format!("/console/tasks/{}/history?page_token=100", task.id);
    assert!(first.body.contains(&format!("<a href=\"{next}\">Later events</a>")), "{}", first.body);
    let second = browser.get(&next).await;
    assert!(second.body.contains(">note 99<") && !second.body.contains("Later events"), "{}", second.body);
}

/// The catalog is searched by words, account and kind, counts the matches of each account and kind, and pages on,
/// keeping the search in every link.
#[tokio::test]
async fn the_catalog_finds_by_words_account_and_kind_and_pages_on() {
    let (s, _keep) = state("").await;
    let accounts = [("111111111111", "Production"), ("222222222222", "Staging"), ("333333333333", "Billing")];
    let sets = (0..45).map(|n| format!("Set{n:02}")).chain(["ReadOnlyAccess".to_string()]);
    let mut snap = snapshot();
    snap.accounts = accounts
        .iter()
        .map(|(id, name)| cone_aws::Account {
            id: id.to_string(),
            name: name.to_string(),
            email: String::new(),
            status: "ACTIVE".into(),
        })
        .collect();
    snap.permission_sets = sets
        .map(|name| cone_aws::PermissionSet {
            arn: format!("arn:aws:sso:::permissionSet/ssoins-1/{name}"),
            name,
            description: None,
            session_duration: None,
        })
        .collect();
    snap.provisioned = accounts
        .iter()
        .flat_map(|(id, _)| snap.permission_sets.iter().map(|p| (id.to_string(), p.arn.clone())))
        .collect();
    s.db.apply_snapshot("aws", &snap, 1).await.unwrap();
    let mut browser = Browser::new(&s);
    browser.sign_in("alice").await;
    let rows = |body: &str| body.matches("<th scope=\"row\">").count();

    let all = browser.get("/console").await;
    let has = |page: &Answer, text: &str| assert!(page.body.contains(text), "{text} is not in the page");
    assert_eq!(rows(&all.body), 100, "a page of 138");
    has(&all, r#"<option value="111111111111">Production (46)</option>"#);
    has(&all, r#"<option value="aws_permission_set">permission set (138)</option>"#);
    has(&all, r#"<a href="/console?page_token=100">More entitlements</a>"#);

    let found = browser.get("/console?q=billing+READ+only").await;
    assert_eq!(rows(&found.body), 1);
    has(&found, "1 entitlement matches.");
    has(&found, r#"aria-label="Request ReadOnlyAccess on Billing""#);
    has(&found, r#"value="billing READ only""#);

    // An account by name or id; the counts follow the words, and the link to more keeps every filter.
    let staging = browser.get("/console?q=set&account=staging").await;
    has(&staging, "45 entitlements match.");
    has(&staging, r#"<option value="222222222222" selected>Staging (45)</option>"#);
    let by_id = browser.get("/console?q=set&account=222222222222").await;
    assert_eq!(rows(&by_id.body), 45);
    assert!(!by_id.body.contains("More entitlements"), "45 fit on a page");
    let wide = browser.get("/console?q=set&kind=aws_permission_set").await;
    has(&wide, r#"<a href="/console?q=set&amp;kind=aws_permission_set&amp;page_token=100">More entitlements</a>"#);
    let second = browser.get("/console?q=set&kind=aws_permission_set&page_token=100").await;
    assert_eq!(rows(&second.body), 35, "135 sets in all");

    let none = browser.get("/console?kind=aws_iam_group_membership").await;
    has(&none, "0 entitlements match.");
    assert!(!none.body.contains("Nothing is offered"));
    let long = browser.get(&format!("/console?q={}", "x".repeat(201))).await;
    assert_eq!(long.status, StatusCode::BAD_REQUEST);
    has(&long, "longer than 200 characters");
}
