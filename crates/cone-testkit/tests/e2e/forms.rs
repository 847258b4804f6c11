//! Typed request forms and request catalogs end to end: moto, the Identity Center emulator, cone-server and the
//! `cone` CLI as separate processes. Needs `cargo build --workspace` and the .venv that `cargo xtask test` prepares.

use std::process::Output;

use cone_api::{ApiError, Entitlement, FieldError, TaskState};
use cone_testkit::{Got, Sandbox};
use serde::Deserialize;
use serde::de::DeserializeOwned;

fn output(o: &Output, what: &str, succeeds: bool) -> (String, String) {
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.success(), succeeds, "{what}\nstdout: {out}\nstderr: {err}");
    (out.into_owned(), err.into_owned())
}

/// What `cone … -o json` printed, read as `T`.
fn json<T: DeserializeOwned>(text: &str, what: &str) -> T {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not what was expected ({e}): {text}"))
}

/// What `cone -o json` prints on failure.
#[derive(Debug, Deserialize)]
struct Refusal {
    error: ApiError,
}

// Granted at once when the typed fields say so; the condition reads a boolean, an integer and a list.
const TYPED_FORM: &str = r#"  - name: sandbox-dba-typed-form
    match: { account: Sandbox, permission_set: DatabaseAdministrator }
    max_duration: 1h
    form:
      - { name: ticket, required: true, min_length: 3, max_length: 10, description: The change ticket }
      - { name: urgent, type: bool }
      - { name: hosts, type: integer, min: 1, max: 5 }
      - { name: regions, type: string_list, max_items: 2 }
    steps:
      - when: "request.form.urgent && request.form.hosts <= 3 && 'eu-west-1' in request.form.regions"
        steps: [accept]
      - otherwise: [reject]
"#;

#[tokio::test(flavor = "multi_thread")]
async fn typed_forms_are_checked_field_by_field() {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start(dir.path(), TYPED_FORM).await.unwrap();
    sb.sign_in("alice").await.unwrap();
    let get = |data: &str, extra: &[&str]| {
        let mut args = vec!["get", "sandbox-databaseadministrator", "-j", "migration", "--form-data", data];
        args.extend_from_slice(extra);
        sb.cone("alice", &args).unwrap()
    };

    let invalid = r#"{"ticket": "OPS-12345678", "urgent": "yes", "hosts": 9, "team": "data"}"#;
    let (_, err) = output(&get(invalid, &[]), "invalid form", false);
    for line in [
        "The request form has invalid fields; correct them and request again.",
        "  ticket: must be at most 10 characters",
        "  urgent: must be true or false",
        "  hosts: must be at most 5",
        "  team: is not a field of this form; its fields are ticket, urgent, hosts, regions",
    ] {
        assert!(err.lines().any(|l| l == line), "no line {line:?} in:\n{err}");
    }
    let (_, err) = output(&get(invalid, &["-o", "json"]), "invalid form as JSON", false);
    let error = json::<Refusal>(&err, "invalid form as JSON").error;
    assert_eq!(error.code, "invalid_form");
    let ticket = FieldError { field: "ticket".into(), message: "must be at most 10 characters".into() };
    assert_eq!(error.fields[0], ticket);
    assert_eq!(error.fields.len(), 4, "{error:?}");

    // A field the condition reads, left out: the request stops there (fail closed), rather than the condition
    // counting as false and the request falling through to a later branch.
    let partial = r#"{"ticket": "OPS-8", "urgent": true, "hosts": 2}"#;
    let (_, err) = output(&get(partial, &[]), "a condition that cannot be evaluated", false);
    assert!(err.contains("cannot be decided, so nothing was filed"), "{err}");
    assert!(err.contains("policy \"sandbox-dba-typed-form\", branch 1: the condition"), "{err}");

    let valid = r#"{"ticket": " OPS-7 ", "urgent": true, "hosts": 2, "regions": ["eu-west-1", "us-east-1"]}"#;
    let (out, _) = output(&get(valid, &["--wait", "-o", "json"]), "valid form", true);
    assert_eq!(json::<Got>(&out, "valid form").task().state, TaskState::Granted, "{out}");
}

// alice sees read-only roles outside the Sandbox account; approvers (bob) also the administrator roles there.
const CATALOG: &str = r#"access_profiles:
  - name: read-only
    description: Read-only roles, for everyone
    visible_to: { everyone: true }
    entitlements: [{ permission_set: ReadOnlyAccess }]
  - name: administrators
    visible_to: { groups: [approvers] }
entitlement_management:
  - match: { account: Sandbox }
    requestable: false
  - match: { permission_set: AdministratorAccess }
    requestable: true
    access_profile: administrators
  - requestable: true
"#;

#[tokio::test(flavor = "multi_thread")]
async fn access_profiles_shape_each_catalog() {
    let dir = tempfile::tempdir().unwrap();
    let sb = Sandbox::start_with(dir.path(), CATALOG, "").await.unwrap();
    let catalog = |user: &str| {
        let (out, _) = output(&sb.cone(user, &["search", "-o", "json"]).unwrap(), "search", true);
        let mut aliases: Vec<String> = json::<Vec<Entitlement>>(&out, "search").into_iter().map(|e| e.alias).collect();
        aliases.sort();
        aliases
    };

    let setup = sb.sign_in("alice").await.unwrap();
    sb.sign_in("bob").await.unwrap();
    // The management account's roles are in the catalog too; Sandbox's are not requestable at all.
    let alice = catalog("alice");
    assert_eq!(alice, ["master-readonlyaccess", "production-readonlyaccess", "staging-readonlyaccess"]);
    let bob = catalog("bob");
    let extra: Vec<&String> = bob.iter().filter(|a| !alice.contains(a)).collect();
    assert!(extra.iter().all(|a| a.ends_with("-administratoraccess") && !a.starts_with("sandbox")), "{bob:?}");
    assert!(bob.contains(&"production-administratoraccess".to_string()), "{bob:?}");
    assert!(setup.contains("staging-readonlyaccess") && !setup.contains("administratoraccess"), "{setup}");
    let config = std::fs::read_to_string(sb.home("alice").join(".aws/config")).unwrap();
    let mut profiles: Vec<&str> =
        config.lines().filter_map(|l| l.strip_prefix("[profile ")?.strip_suffix(']')).collect();
    profiles.sort();
    assert_eq!(profiles, alice, "{config}");

    // Outside her catalog, by id: refused as if it did not exist.
    let (out, _) = output(&sb.cone("bob", &["search", "-o", "json"]).unwrap(), "bob's search", true);
    let admin = json::<Vec<Entitlement>>(&out, "bob's search")
        .into_iter()
        .find(|e| e.alias == "production-administratoraccess")
        .map(|e| e.id)
        .unwrap();
    let args = ["get", "--app-id", "aws", "--entitlement-id", &admin, "-j", "x", "-o", "json"];
    let (_, err) = output(&sb.cone("alice", &args).unwrap(), "alice outside her catalog", false);
    let error = json::<Refusal>(&err, "refusal").error;
    assert_eq!(error.code, "not_found", "{error:?}");
    assert!(error.message.contains("that you can request"), "{error:?}");
}
