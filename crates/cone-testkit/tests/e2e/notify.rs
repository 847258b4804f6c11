//! Email notifications end to end: cone-server sends through a real SMTP server (aiosmtpd, STARTTLS and AUTH
//! required) what happens to alice's request, and each message once, across a crash.

use std::process::Output;
use std::time::Duration;

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

cone_testkit::on_both_stores!(people_are_told_by_email_once_each);

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
