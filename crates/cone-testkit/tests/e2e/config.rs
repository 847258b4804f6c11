//! The access document end to end: administrators change policies with `cone policy` while servers run, every
//! replica follows, the history says who changed what, and the configuration file wins again when it changes. On
//! SQLite and on PostgreSQL (with a second replica). Needs `cargo build --workspace` and the .venv that
//! `cargo xtask test` prepares.

use std::process::{Command, Output};
use std::time::{Duration, Instant};

use cone_api::{ConfigVersion, CreateTask, TaskState};
use cone_client::Client;
use cone_testkit::{Sandbox, Store};

cone_testkit::on_both_stores!(policies_change_through_the_api_on_every_replica_until_the_file_changes);

/// Checks each configuration file against the JSON Schema `cone-server config schema` prints, with the validator
/// editors use (Python's jsonschema, from the .venv); prints `ok` or the problems, one line a file.
const VALIDATE: &str = r#"
import json, sys, yaml, jsonschema
validator = jsonschema.Draft202012Validator(json.load(open(sys.argv[1])))
for path in sys.argv[2:]:
    problems = sorted(e.message for e in validator.iter_errors(yaml.safe_load(open(path))))
    print("ok" if not problems else "; ".join(problems))
"#;

/// The configurations people copy, README's annotated one and the Kubernetes ConfigMap's, are ones the server
/// accepts and the schema (and so docs/configuration.md, drawn from it) describes; a mistake fails both.
#[test]
fn the_shipped_configurations_check_and_match_the_schema() {
    let root = cone_testkit::workspace_root();
    let tmp = tempfile::tempdir().unwrap();
    let local = |text: &str| text.replace("/etc/cone/", &format!("{}/", tmp.path().display()));
    for secret in ["oidc", "chatops", "smtp", "slack-bot", "slack-signing", "secrets/password"] {
        let file = tmp.path().join(format!("{secret}{}", if secret.contains('/') { "" } else { ".secret" }));
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(file, "a-secret-of-some-length\n").unwrap();
    }
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let readme = readme[readme.find("```yaml\nlisten:").unwrap() + 8..].split_once("```").unwrap().0;
    let configmap = std::fs::read_to_string(root.join("deploy/kubernetes/server-configmap.yaml")).unwrap();
    let configmap: serde_yaml_ng::Value = serde_yaml_ng::from_str(&configmap).unwrap();
    let configmap = configmap["data"]["cone-server.yaml"].as_str().unwrap();
    let cases = [
        ("README", local(readme), true),
        ("ConfigMap", local(configmap), true),
        ("misspelt key", local(&readme.replace("  sso_region:", "  sso_regoin:")), false),
        ("bad duration", local(&format!("{readme}stop_grace: soon\n")), false),
    ];

    let server = cone_testkit::target_bin("cone-server").unwrap();
    let schema = Command::new(&server).args(["config", "schema"]).output().unwrap();
    assert!(schema.status.success());
    std::fs::write(tmp.path().join("schema.json"), &schema.stdout).unwrap();
    let mut files = vec![];
    for (name, text, good) in &cases {
        let file = tmp.path().join(format!("{}.yaml", name.replace(' ', "-")));
        std::fs::write(&file, text).unwrap();
        let check = Command::new(&server).args(["config", "check", "--config"]).arg(&file).output().unwrap();
        let said = String::from_utf8_lossy(&check.stderr);
        assert_eq!(check.status.success(), *good, "{name}: `cone-server config check` said {said}");
        assert!(*good || said.contains("sso_regoin") || said.contains("`soon` is not a duration"), "{name}: {said}");
        files.push(file);
    }
    let python = cone_testkit::venv_bin("python").unwrap();
    let o =
        Command::new(python).args(["-c", VALIDATE]).arg(tmp.path().join("schema.json")).args(&files).output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let verdicts = String::from_utf8_lossy(&o.stdout);
    for ((name, _, good), verdict) in cases.iter().zip(verdicts.lines()) {
        assert_eq!(verdict == "ok", *good, "{name}: the schema says {verdict}");
    }
    assert!(
        verdicts.contains("'sso_regoin' was unexpected") && verdicts.contains("'soon' does not match"),
        "{verdicts}"
    );
}

fn output(o: &Output, what: &str, succeeds: bool) -> String {
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.success(), succeeds, "{what}\nstdout: {out}\nstderr: {err}");
    format!("{out}{err}")
}

/// The sandbox's policies with read-only access needing an approver for at most two hours.
const STRICTER: &str = r#"# Read-only access is no longer automatic.
policies:
  - name: readonly-approved
    match: { permission_set: ReadOnlyAccess }
    max_duration: 2h
    steps: [{ approval: { group: approvers } }]
  - name: admin-needs-an-approver
    match: { permission_set: AdministratorAccess }
    max_duration: 1h
    steps: [{ approval: { group: approvers } }]
"#;

async fn policies_change_through_the_api_on_every_replica_until_the_file_changes(store: Store) {
    let postgres = matches!(store, Store::Postgres(_));
    let dir = tempfile::tempdir().unwrap();
    let mut sb = Sandbox::start_on(store, dir.path(), "", "").await.unwrap();
    for user in ["alice", "carol"] {
        sb.cone_login(user, &[], user).await.unwrap();
    }
    let alice = sb.api_token("alice").unwrap();
    // On PostgreSQL the change is made on one replica and watched on the other.
    let (_replica, other_url) = match postgres {
        true => {
            let (child, url) = sb.spawn_replica(&sb.moto.endpoint).unwrap();
            (Some(child), url)
        }
        false => (None, sb.server_url.clone()),
    };
    let entitlement =
        format!("{}|{}", sb.org.account_id("Sandbox").unwrap(), sb.org.permission_set_arn("ReadOnlyAccess").unwrap());
    let max_duration = async |url: &str| {
        let e = Client::new(url, &alice).unwrap().entitlement("aws", &entitlement).await;
        e.unwrap_or_else(|f| panic!("GET /api/v1/entitlement: {f}")).max_duration_secs
    };
    assert_eq!(max_duration(&other_url).await, 8 * 3600, "the file's policy is in force at start");

    // What is in force prints as the file's sections, and is version 1, from the file.
    let show = output(&sb.cone("carol", &["policy", "show"]).unwrap(), "cone policy show", true);
    assert!(show.contains("readonly-auto-approved") && show.contains("from the server's configuration file"), "{show}");
    let shown: ConfigVersion =
        serde_json::from_str(&output(&sb.cone("carol", &["policy", "show", "-o", "json"]).unwrap(), "show", true))
            .unwrap();
    let first = shown.version;

    // Mistakes are found before anything is applied, and say where.
    let bad = sb.dir.join("bad.yaml");
    std::fs::write(&bad, STRICTER.replace("group: approvers", "group: approvers, count: 0")).unwrap();
    let refused = output(&sb.cone("carol", &["policy", "apply", bad.to_str().unwrap()]).unwrap(), "bad", false);
    assert!(refused.contains("readonly-approved") && refused.contains("count"), "{refused}");
    std::fs::write(&bad, "policies: []\nadmins: { users: [alice] }\n").unwrap();
    let refused = output(&sb.cone("carol", &["policy", "check", bad.to_str().unwrap()]).unwrap(), "check", false);
    assert!(refused.contains("unknown section `admins`"), "{refused}");

    // Only administrators change policies.
    let stricter = sb.dir.join("stricter.yaml");
    std::fs::write(&stricter, STRICTER).unwrap();
    let path = stricter.to_str().unwrap();
    let denied = output(&sb.cone("alice", &["policy", "apply", path]).unwrap(), "alice applies", false);
    assert!(denied.to_lowercase().contains("administrator"), "{denied}");

    let checked = output(&sb.cone("carol", &["policy", "check", path]).unwrap(), "cone policy check", true);
    assert!(checked.contains("readonly-approved, admin-needs-an-approver"), "{checked}");
    let base = first.to_string();
    let applied =
        sb.cone("carol", &["policy", "apply", path, "-m", "readonly needs approval", "--base-version", &base]);
    let applied = output(&applied.unwrap(), "cone policy apply", true);
    assert!(applied.contains("Applied: version"), "{applied}");
    let again = output(&sb.cone("carol", &["policy", "apply", path]).unwrap(), "apply again", true);
    assert!(again.contains("Unchanged"), "{again}");
    // A change made from the first version would undo this one unseen.
    let stale = output(&sb.cone("carol", &["policy", "apply", path, "--base-version", &base]).unwrap(), "stale", false);
    assert!(stale.contains("was applied after version"), "{stale}");

    // Every replica follows at once: the catalog's limit and the steps of a new request.
    let deadline = Instant::now() + Duration::from_secs(5);
    while max_duration(&other_url).await != 2 * 3600 {
        assert!(Instant::now() < deadline, "the other replica still has the old policy after 5 s");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let request = CreateTask {
        app_id: "aws".into(),
        entitlement_id: entitlement.clone(),
        justification: "look".into(),
        ..CreateTask::default()
    };
    let task = Client::new(&other_url, &alice).unwrap().create_task(&request).await.unwrap();
    assert_eq!(task.state, TaskState::PendingApproval, "{task:?}");

    // The history says who changed what, when and why; the audit log has each change.
    let history = output(&sb.cone("carol", &["policy", "history"]).unwrap(), "cone policy history", true);
    let lines: Vec<&str> = history.lines().collect();
    assert_eq!(lines.len(), 3, "{history}");
    assert!(lines[1].contains("carol") && lines[1].contains("readonly needs approval"), "{history}");
    assert!(lines[2].contains("(file)"), "{history}");
    let old = output(&sb.cone("carol", &["policy", "show", "--version", &base]).unwrap(), "show old", true);
    assert!(old.contains("readonly-auto-approved"), "{old}");

    // A restart with the same file keeps the API's version; a changed file is applied instead.
    sb.start_server().unwrap();
    assert_eq!(max_duration(&sb.server_url).await, 2 * 3600, "a restart with the same file undid the API's change");
    sb.reconfigure_server(|c| c.replacen("max_duration: 8h", "max_duration: 4h", 1)).unwrap();
    assert_eq!(max_duration(&sb.server_url).await, 4 * 3600, "the changed file was not applied");
    // (The users' `cone` settings still name the server's first address.)
    let history = sb.client("carol").unwrap().config_versions().await.unwrap();
    let sources: Vec<&str> = history.iter().map(|v| v.source.as_str()).collect();
    assert_eq!(sources, ["file", "api", "file"], "{history:?}");
}
