//! Notifications end to end: cone-server sends through a real SMTP server (aiosmtpd, STARTTLS and AUTH required)
//! what happens to alice's request, each message once across a crash; and to a stand-in of Slack's Web API, whose
//! signed button clicks decide as the person who clicked.

use std::process::Output;
use std::time::Duration;

use cone_testkit::slack::{SIGNING_SECRET, SlackStandIn, SlackUser, click, signed};
use cone_testkit::smtp::Smtp;
use cone_testkit::{Sandbox, Store};

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// The task id in "cone task get N".
fn task_id(message: &str) -> String {
    let at = message.find("cone task get ").expect("message names a task") + "cone task get ".len();
    message[at..].chars().take_while(char::is_ascii_digit).collect()
}

const WAIT: Duration = Duration::from_secs(20);

cone_testkit::on_both_stores!(people_are_told_by_email_once_each, approvers_decide_from_slack_as_themselves);

async fn people_are_told_by_email_once_each(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&dir.path().join("smtp")).unwrap();
    // A warning an hour ahead: the hour-long grant is warned of as soon as it is made.
    let mut sb = Sandbox::start_on(store, &dir.path().join("sb"), &smtp.settings("1h").unwrap(), "").await.unwrap();
    sb.sign_in("alice").await.unwrap();
    sb.sign_in("bob").await.unwrap();

    // alice's request waits for the approvers group: bob is told, with the command and the console's page.
    let o = sb.caller_identity("alice", "production-administratoraccess").unwrap();
    assert!(stderr(&o).contains("requires approval"), "{}", stderr(&o));
    let id = task_id(&stderr(&o));
    let asked = smtp.wait_for("bob@example.com", "alice asks for AdministratorAccess on Production", WAIT).unwrap();
    assert!(asked.tls && asked.authenticated, "sent over STARTTLS after AUTH");
    assert_eq!(asked.header("from"), "Cone <cone@example.com>");
    let text = asked.text.as_deref().unwrap();
    assert!(text.contains(&format!("cone task approve {id}")), "{text}");
    let page = format!("{}/console/tasks/{id}", sb.server_url);
    assert!(text.contains(&page), "{text}");
    assert!(asked.html.as_deref().unwrap().contains(&format!("href=\"{page}\"")));
    assert_eq!(asked.header("list-unsubscribe"), format!("<{}/console/notifications>", sb.server_url));
    assert!(asked.header("message-id").starts_with("<cone-notification-"));

    // bob approves; alice hears of the decision, the grant and its coming end; bob hears nothing of his own act.
    let o = sb.cone("bob", &["task", "approve", &id]).unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let approved = smtp.wait_for("alice@example.com", "Request for AdministratorAccess on Production approved", WAIT);
    assert!(approved.unwrap().text.unwrap().contains("was approved by bob."));
    let granted = smtp.wait_for("alice@example.com", "AdministratorAccess on Production granted until", WAIT).unwrap();
    assert!(granted.text.unwrap().contains("cone get production-administratoraccess --extend"));
    let ending = smtp.wait_for("alice@example.com", "AdministratorAccess on Production ends at", WAIT).unwrap();
    assert!(ending.text.unwrap().contains("cone get production-administratoraccess --extend"));
    let o = sb.caller_identity("alice", "production-administratoraccess").unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let to_bob =
        |smtp: &Smtp| smtp.messages().unwrap().into_iter().filter(|m| m.rcpt_tos == ["bob@example.com"]).count();
    assert_eq!(to_bob(&smtp), 1, "bob was told of the request only");

    // The CLI: alice mutes what she does not want; carol (an administrator) tests alice's channel and lists what
    // was sent.
    let o =
        sb.cone("alice", &["notifications", "set", "--mute", "ended,drift", "--digest", "off", "-o", "json"]).unwrap();
    let settings: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
    assert_eq!(settings["preferences"]["muted"], serde_json::json!(["ended", "drift"]));
    assert_eq!(settings["available"], serde_json::json!(["email"]));
    let o = sb.cone("alice", &["notifications", "set", "--mute", "sometimes"]).unwrap();
    assert!(!o.status.success() && stderr(&o).contains("Unknown kind \"sometimes\""), "{}", stderr(&o));
    sb.sign_in("carol").await.unwrap();
    let o = sb.cone("carol", &["notifications", "test", "alice"]).unwrap();
    assert!(stderr(&o).is_empty() && String::from_utf8_lossy(&o.stdout).contains("on its way by email"));
    smtp.wait_for("alice@example.com", "A test message from Cone", WAIT).unwrap();
    let o = sb.cone("carol", &["notifications", "list", "--state", "sent", "-o", "json"]).unwrap();
    let sent: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap_or_else(|_| panic!("{}", stderr(&o)));
    let kinds: Vec<&str> =
        sent["notifications"].as_array().unwrap().iter().map(|n| n["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["test", "expiring", "granted", "decided", "approval_needed"], "newest first");
    let o = sb.cone("bob", &["notifications", "list"]).unwrap();
    assert!(stderr(&o).contains("Only Cone administrators"), "{}", stderr(&o));

    // The SMTP server goes away; alice's next request is recorded, and its message waits. The server is killed
    // (SIGKILL) before it could send it, and comes back pointed at a new SMTP server: bob gets it once.
    let old = (smtp.port, smtp.dir.clone());
    drop(smtp);
    let o = sb.caller_identity("alice", "staging-administratoraccess").unwrap();
    let staging = task_id(&stderr(&o));
    tokio::time::sleep(Duration::from_secs(1)).await;
    sb.stop_server();
    let smtp = Smtp::start(&dir.path().join("smtp2")).unwrap();
    let settings = smtp.settings("1h").unwrap();
    sb.reconfigure_server(|config| {
        let config = config.replace(&format!("port: {}", old.0), &format!("port: {}", smtp.port));
        let config = config.replace(&old.1.display().to_string(), &smtp.dir.display().to_string());
        assert!(config.contains(&settings), "the new SMTP server's settings: {config}");
        config
    })
    .unwrap();
    let asked = smtp.wait_for("bob@example.com", "alice asks for AdministratorAccess on Staging", WAIT).unwrap();
    assert!(asked.text.unwrap().contains(&format!("cone task approve {staging}")));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let all = smtp.messages().unwrap();
    assert_eq!(all.len(), 1, "one message after the restart, nothing sent before it again: {all:?}");
    let pending = sb.client("carol").unwrap().notifications(Some("pending"), None).await.unwrap();
    assert!(pending.notifications.is_empty(), "{pending:?}");
}

/// A click sent to cone-server as Slack sends it; `at` is its timestamp, `secret` what it is signed with.
async fn send_click(sb: &Sandbox, body: &str, secret: &str, at: i64) -> u16 {
    let mut req = reqwest::Client::new().post(format!("{}/slack/interactivity", sb.server_url)).body(body.to_string());
    for (name, value) in signed(secret, at, body) {
        req = req.header(name, value);
    }
    req.send().await.unwrap().status().as_u16()
}

async fn approvers_decide_from_slack_as_themselves(store: Store) {
    let dir = tempfile::tempdir().unwrap();
    let smtp = Smtp::start(&dir.path().join("smtp")).unwrap();
    let person = |name: &str, confirmed: bool| SlackUser {
        id: format!("U-{name}"),
        email: format!("{}@example.com", name.trim_end_matches("-2")),
        confirmed,
    };
    // mallory claims bob's address in Slack without Slack having confirmed it.
    let people = vec![
        person("alice", true),
        person("bob", true),
        person("carol", true),
        SlackUser { id: "U-mallory".into(), ..person("bob", false) },
    ];
    let slack = SlackStandIn::start(people).await.unwrap();
    let settings = format!("{}{}", smtp.settings("1h").unwrap(), slack.settings(&smtp.dir).unwrap());
    let sb = Sandbox::start_on(store, &dir.path().join("sb"), &settings, "").await.unwrap();
    sb.sign_in("alice").await.unwrap();
    sb.sign_in("bob").await.unwrap();

    // alice's request: bob gets an email and a Slack message with the buttons.
    let o = sb.caller_identity("alice", "production-administratoraccess").unwrap();
    let id = task_id(&stderr(&o));
    smtp.wait_for("bob@example.com", "alice asks for AdministratorAccess on Production", WAIT).unwrap();
    let asked = slack.wait_for("chat.postMessage", WAIT, |b| b["channel"] == "U-bob").unwrap();
    assert!(asked.authorized, "posted with the bot token");
    assert_eq!(asked.body["text"], "alice asks for AdministratorAccess on Production");
    let buttons = &asked.body["blocks"][1]["elements"];
    assert_eq!((buttons[0]["action_id"].as_str(), buttons[0]["value"].as_str()), (Some("approve"), Some(id.as_str())));
    let (channel, ts) = (asked.answer["channel"].as_str().unwrap(), asked.answer["ts"].as_str().unwrap());
    assert!(slack.calls().iter().all(|c| c.body["channel"] != "U-alice"), "alice is not told of her own request");

    // Refused without a word to Slack: a forged signature, a replay older than five minutes.
    let now = chrono::Utc::now().timestamp();
    let bob_approves = click("U-bob", "approve", &id, channel, ts);
    assert_eq!(send_click(&sb, &bob_approves, "not-the-signing-secret", now).await, 401);
    assert_eq!(send_click(&sb, &bob_approves, SIGNING_SECRET, now - 301).await, 401);
    // Answered in the thread, nothing decided: alice on her own request, carol who is no approver, and mallory
    // whose address Slack has not confirmed.
    for (who, says) in [
        ("U-alice", "You cannot approve or deny your own request"),
        ("U-carol", "you are not one"),
        ("U-mallory", "Slack has no confirmed email address for you"),
    ] {
        let body = click(who, "approve", &id, channel, ts);
        assert_eq!(send_click(&sb, &body, SIGNING_SECRET, now).await, 200);
        let reply = slack.wait_for("chat.postMessage", WAIT, |b| {
            b["thread_ts"] == ts && b["text"].as_str().unwrap_or_default().contains(says)
        });
        reply.unwrap_or_else(|e| panic!("{who}: {e}"));
    }
    let task = sb.client("alice").unwrap().task(id.parse().unwrap(), None, Duration::ZERO).await.unwrap();
    assert_eq!(task.state, cone_api::TaskState::PendingApproval);

    // bob's own click approves as bob: the message shows the outcome, and alice's aws call works.
    assert_eq!(send_click(&sb, &bob_approves, SIGNING_SECRET, now).await, 200);
    let updated = slack.wait_for("chat.update", WAIT, |b| b["ts"] == ts).unwrap();
    assert_eq!(updated.body["channel"], channel);
    assert!(
        updated.body["text"].as_str().unwrap().starts_with(&format!("bob approved request {id}")),
        "{:?}",
        updated.body
    );
    let o = sb.caller_identity("alice", "production-administratoraccess").unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    // A second click by bob, and a click on a request decided meanwhile in the CLI: answered, nothing changes.
    assert_eq!(send_click(&sb, &bob_approves, SIGNING_SECRET, now).await, 200);
    slack
        .wait_for("chat.postMessage", WAIT, |b| {
            b["thread_ts"] == ts && b["text"].as_str().unwrap_or_default().contains("no longer waits")
        })
        .unwrap();
    let o = sb.caller_identity("alice", "staging-administratoraccess").unwrap();
    let staging = task_id(&stderr(&o));
    let o = sb.cone("bob", &["task", "deny", &staging, "--comment", "not now"]).unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    let late = click("U-bob", "approve", &staging, channel, "1700000000.999999");
    assert_eq!(send_click(&sb, &late, SIGNING_SECRET, now).await, 200);
    slack
        .wait_for("chat.postMessage", WAIT, |b| {
            b["thread_ts"] == "1700000000.999999" && b["text"].as_str().unwrap_or_default().contains("denied")
        })
        .unwrap();
    let task = sb.client("alice").unwrap().task(staging.parse().unwrap(), None, Duration::ZERO).await.unwrap();
    assert_eq!(task.state, cone_api::TaskState::Denied);
}
