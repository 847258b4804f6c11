//! The administrators' pages: policies, connectors, access keys, apps and the audit download.

use super::*;
use crate::web::tests::requests::catalog;

#[tokio::test]
async fn administrators_check_apply_and_look_back_on_the_access_document() {
    let (s, _keep) = state(&format!("admins: {{ users: [carol] }}\n{READONLY}")).await;
    s.db.set_password("carol", &hash_password("pw").unwrap()).await.unwrap();
    let access = crate::services::access::load_at_start(&s.db, &s.config, "cone-server.yaml", s.now()).await.unwrap();
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

/// An administrator issues the credentials of `cone-aws serve` on the Connectors page (the secret shown once,
/// stored only hashed), sees the connector processes heard from, and revokes the credentials.
#[tokio::test]
async fn administrators_issue_and_revoke_the_connectors_credentials_on_its_page() {
    let (s, _keep) = state("admins: { users: [bob] }\n").await;
    let mut bob = Browser::new(&s);
    bob.sign_in("bob").await;
    let page = bob.get("/console/connectors").await;
    assert!(page.body.contains("No <code>cone-aws serve</code> has connected"), "{}", page.body);
    let issued = bob.post("/console/connectors/credentials", &[("csrf", &page.token())]).await;
    assert_eq!(issued.status, StatusCode::OK, "{}", issued.body);
    let line = |key: &str| {
        let at = issued.body.find(&format!("{key}=")).unwrap_or_else(|| panic!("no {key} in {}", issued.body));
        issued.body[at + key.len() + 1..].split(['\n', '<']).next().unwrap().to_string()
    };
    let (id, secret) = (line("BATON_CLIENT_ID"), line("BATON_CLIENT_SECRET"));
    assert!(id.starts_with("cone-connector-") && secret.len() == 64, "{id} {secret}");
    let stored = s.db.connector_secret_hash(&id).await.unwrap().unwrap();
    assert_eq!(stored, crate::services::auth::secret_hash(&secret));
    assert!(!stored.contains(&secret));

    crate::services::connector::authenticate(&s, &id, &secret, "pod-1:0a1b", "0.1.0", || false).await.unwrap();
    let page = bob.get("/console/connectors").await;
    assert!(page.body.contains("<code>pod-1:0a1b</code>") && !page.body.contains(&secret), "{}", page.body);

    let revoked = bob.post("/console/connectors/credentials/revoke", &[("csrf", &page.token())]).await;
    assert_eq!(revoked.location(), "/console/connectors?revoked=true");
    assert!(bob.get(revoked.location()).await.body.contains("Revoked: no connector may connect"));
    let refused = crate::services::connector::authenticate(&s, &id, &secret, "pod-1:0a1b", "0.1.0", || false).await;
    assert!(matches!(refused, Err(crate::error::Error::Unauthenticated(_))));
}

#[tokio::test]
async fn the_access_keys_page_flags_old_and_unused_keys_and_says_when_the_sync_is_off() {
    let (off, _keep) = state("admins: { users: [bob] }\n").await;
    let mut bob = Browser::new(&off);
    bob.sign_in("bob").await;
    let page = bob.get("/console/access-keys").await;
    assert!(page.body.contains("IAM sync is off; set <code>aws.sync_secrets: true</code>"), "{}", page.body);
    assert!(page.body.contains(r#"href="/console/access-keys" aria-current="page""#), "linked from the navigation");

    let now = off.now();
    let key = |id: &str, status: &str, age: i64, used: Option<i64>| cone_aws::AccessKey {
        id: id.into(),
        user_arn: "arn:aws:iam::123456789012:user/deployer".into(),
        status: status.into(),
        created: crate::store::rfc3339(now - age * 86_400),
        last_used: used.map(|d| crate::store::rfc3339(now - d * 86_400)),
        last_used_service: used.map(|_| "s3".into()),
        last_used_region: used.map(|_| "eu-west-1".into()),
    };
    let iam = cone_aws::IamSnapshot {
        users: vec![cone_aws::IamUser {
            arn: "arn:aws:iam::123456789012:user/deployer".into(),
            id: "AIDADEPLOYER".into(),
            name: "deployer".into(),
            created: crate::store::rfc3339(now - 400 * 86_400),
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
async fn the_drift_page_narrows_by_kind_person_account_and_permission_set() {
    use crate::drift::{Finding, Kind};
    let (s, _keep) = state("admins: { users: [bob] }\n").await;
    let mut bob = Browser::new(&s);
    bob.sign_in("bob").await;
    assert!(bob.get("/console/drift").await.body.contains("No drift"));
    let finding = |account: &str| Finding {
        kind: Kind::Unexplained,
        account_id: account.into(),
        permission_set_arn: "ps-admin".into(),
        principal_id: "u-alice".into(),
        group_id: String::new(),
        grant_id: None,
        remedy: None,
    };
    s.db.record_drift("inst", &[finding("111"), finding("222")], false, s.now()).await.unwrap();
    let rows = |body: &str| body.split("<tr>").skip(2).count();
    assert_eq!(rows(&bob.get("/console/drift").await.body), 2);
    let narrowed = bob.get("/console/drift?kind=unexplained&user=&account=111&permission_set=").await;
    assert_eq!(rows(&narrowed.body), 1, "{}", narrowed.body);
    assert!(narrowed.body.contains(r#"<option value="unexplained" selected>"#), "the filter stays chosen");
    assert!(narrowed.body.contains(r#"value="111""#));
    let none = bob.get("/console/drift?kind=missing").await;
    assert!(none.body.contains("No open finding matches."), "{}", none.body);
    assert_eq!(bob.get("/console/drift?kind=odd").await.status, StatusCode::BAD_REQUEST);
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
    s.access.store(std::sync::Arc::new(
        crate::services::access::load_at_start(&s.db, &s.config, "f", s.now()).await.unwrap(),
    ));
    catalog(&s).await;
    // Version 2, as an administrator wrote it (a file's sections are recorded re-serialised, without comments).
    let carol_id = s.db.user_by_name("carol").await.unwrap().unwrap().id;
    let written = cone_api::ApplyConfig { document: document.into(), comment: String::new(), base_version: None };
    crate::services::access::apply(&s, carol_id, &written).await.unwrap();
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
    assert!(page.body.contains(r#"href="/console/audit/export?action=login""#), "{}", page.body);
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

/// The audit page names people, links requests, shows details as fields, lists the newest first, and narrows to
/// one person's actions; the log's own ids stay one hover away.
#[tokio::test]
async fn the_audit_page_names_people_newest_first_and_narrows_to_a_person() {
    let (s, _keep) = state("admins: { users: [carol] }\n").await;
    s.db.set_password("carol", &hash_password("pw").unwrap()).await.unwrap();
    let id = super::requests::catalog(&s).await;
    let alice = s.db.user_by_name("alice").await.unwrap().unwrap();
    let ask = cone_api::CreateTask {
        app_id: "aws".into(),
        entitlement_id: id,
        justification: "rotate the keys".into(),
        ..cone_api::CreateTask::default()
    };
    let task = crate::services::tasks::create(&s, &alice, ask).await.unwrap();
    let mut carol = Browser::new(&s);
    carol.sign_in("carol").await;
    let ids = |body: &str| -> Vec<i64> {
        body.split("<tr><td>").skip(1).filter_map(|row| row.split("</td>").next()?.parse().ok()).collect()
    };

    let newest = carol.get("/console/audit").await;
    let shown = ids(&newest.body);
    assert!(shown.len() >= 3 && shown.windows(2).all(|w| w[0] > w[1]), "newest first: {shown:?}");
    let alice_id = format!(r#"<span title="user:{}">alice</span>"#, alice.id);
    assert!(newest.body.contains(&alice_id), "{}", newest.body);
    let request = format!(r#"<a href="/console/tasks/{0}" title="task:{0}">request {0}</a>"#, task.id);
    assert!(newest.body.contains(&request), "{}", newest.body);
    assert!(newest.body.contains("<dt>justification</dt><dd>rotate the keys</dd>"), "{}", newest.body);

    let oldest = ids(&carol.get("/console/audit?order=oldest").await.body);
    assert!(oldest.windows(2).all(|w| w[0] < w[1]), "{oldest:?}");
    let hers = carol.get("/console/audit?user=alice&since=2000-01-01").await;
    assert!(!ids(&hers.body).is_empty() && !hers.body.contains(">carol</span>"), "{}", hers.body);
    assert_eq!(hers.body.matches(&alice_id).count(), ids(&hers.body).len(), "every row is alice's");
    let nobody = carol.get("/console/audit?user=nobody").await;
    assert_eq!(nobody.status, StatusCode::BAD_REQUEST);
    assert!(nobody.body.contains("There is no Cone user"), "{}", nobody.body);
}

#[tokio::test]
async fn people_choose_what_they_are_told_and_administrators_see_what_was_sent() {
    let email = "notifications:\n  email: { from: cone@example.com, host: 127.0.0.1, tls: none }\n";
    let (s, _keep) = state(&format!("admins: {{ users: [carol] }}\n{email}")).await;
    s.db.set_password("carol", &hash_password("pw").unwrap()).await.unwrap();
    catalog(&s).await;
    let mut alice = Browser::new(&s);
    alice.sign_in("alice").await;

    // alice has no address in this catalog: nothing reaches her, and the page says so.
    let page = alice.get("/console/notifications").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains("Cone knows no email address for you."), "{}", page.body);
    assert!(!page.body.contains("Every notification"), "only administrators see the list");
    let form = [
        ("csrf", page.token()),
        ("mute-granted", "on".into()),
        ("mute-expiring", "on".into()),
        ("digest", "on".into()),
    ];
    let saved = alice.post("/console/notifications", &pairs(&form)).await;
    assert_eq!(saved.location(), "/console/notifications?done=saved");
    let alice_row = s.db.user_by_name("alice").await.unwrap().unwrap();
    let p = s.db.preferences(alice_row.id).await.unwrap();
    assert_eq!(p.muted, [cone_api::NotificationKind::Granted, cone_api::NotificationKind::Expiring]);
    assert!(p.digest && p.channels.is_none(), "{p:?}");
    let page = alice.get("/console/notifications?done=saved").await;
    assert!(page.body.contains("Your preferences are saved."));
    assert!(page.body.contains(r#"id="mute-granted" type="checkbox" name="mute-granted" value="on" checked>"#));
    let tested = alice.post("/console/notifications/test", &[("csrf", &page.token())]).await;
    assert_eq!(tested.location(), "/console/notifications?done=none");

    // carol has an address: her test goes out by email and she sees it listed, pending until the worker sends it.
    sqlx::query("UPDATE users SET email = 'carol@example.com' WHERE username = 'carol'")
        .execute(s.db.pool())
        .await
        .unwrap();
    let mut carol = Browser::new(&s);
    carol.sign_in("carol").await;
    let page = carol.get("/console/notifications").await;
    let tested = carol.post("/console/notifications/test", &[("csrf", &page.token())]).await;
    assert_eq!(tested.location(), "/console/notifications?done=email");
    let page = carol.get("/console/notifications?state=pending").await;
    assert!(page.body.contains("Every notification") && page.body.contains("<td>test</td>"), "{}", page.body);
    let page = carol.get("/console/notifications?state=sent").await;
    assert!(page.body.contains("No notification matches."));
}
