//! Typed request forms end to end: moto, the Identity Center emulator, cone-server and the
//! `cone` CLI as separate processes. Needs `cargo build --workspace` and the .venv that `cargo xtask test` prepares.

use std::process::Output;

use cone_testkit::Sandbox;

fn output(o: &Output, what: &str, succeeds: bool) -> (String, String) {
    let (out, err) = (String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
    assert_eq!(o.status.success(), succeeds, "{what}\nstdout: {out}\nstderr: {err}");
    (out.into_owned(), err.into_owned())
}

fn json(text: &str, what: &str) -> serde_json::Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
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
    let error = &json(&err, "invalid form as JSON")["error"];
    assert_eq!(error["code"], "invalid_form");
    assert_eq!(error["fields"][0], serde_json::json!({"field": "ticket", "message": "must be at most 10 characters"}));
    assert_eq!(error["fields"].as_array().map(Vec::len), Some(4), "{error}");

    let valid = r#"{"ticket": " OPS-7 ", "urgent": true, "hosts": 2, "regions": ["eu-west-1", "us-east-1"]}"#;
    let (out, _) = output(&get(valid, &["--wait", "-o", "json"]), "valid form", true);
    assert_eq!(json(&out, "valid form")["task"]["state"], "granted", "{out}");
}
