//! The fuzz targets: each takes the fuzzer's bytes, feeds them to a parser or checker that meets text from outside
//! (a user's `~/.aws/config`, the access document, the AWS CLI's caches, request forms, policy conditions, the API's
//! bodies) and panics when a property that must always hold does not. `fuzz/` runs them under libFuzzer on
//! nightly; `tests/corpus.rs` replays the saved corpus on stable.

use std::collections::BTreeMap;

use arbitrary::{Arbitrary, Unstructured};
use cone::cache::{self, CacheEntry, Registration, TokenFile};
use cone_core::awsconfig::ConfigFile;
use cone_core::condition::{self, Condition, Facts};
use cone_core::form::{self, FieldType, FormField, FormValue};
use cone_core::{naming, request};

/// A target: the fuzzer's bytes in, a panic when a property fails.
pub type Target = fn(&[u8]);

/// The targets by name, for the corpus replay.
pub const TARGETS: &[(&str, Target)] = &[
    ("aws_config", aws_config),
    ("document", document),
    ("caches", caches),
    ("form", form),
    ("condition", condition),
    ("api_bodies", api_bodies),
];

/// Splits at the first NUL: two texts from one input.
fn halves(data: &[u8]) -> (String, String) {
    let at = data.iter().position(|&b| b == 0).unwrap_or(data.len());
    let second = data.get(at + 1..).unwrap_or_default();
    (String::from_utf8_lossy(&data[..at]).into_owned(), String::from_utf8_lossy(second).into_owned())
}

/// Adding a profile to any `~/.aws/config` and removing it again leaves every other section reading as before, and
/// the file as it was but for trailing blank lines.
pub fn aws_config(data: &[u8]) {
    let (text, names) = halves(data);
    let mut parts = names.splitn(3, '\n');
    let (account, role, value) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let mut doc = ConfigFile::parse(&text);
    assert_eq!(doc.render(), text);
    let name = naming::aliases(&[(account, role, "111111111111")]).remove(0);
    if doc.has_profile(&name) {
        return;
    }
    let others: Vec<String> = doc.managed_profiles().into_iter().chain(["default".to_string()]).collect();
    let read = |doc: &ConfigFile| others.iter().map(|p| doc.profile(p)).collect::<Vec<_>>();
    let before = read(&doc);
    let sessions: Vec<_> = doc.sso_session_names().iter().map(|s| doc.sso_session(s)).collect();

    let entries = [("sso_account_id", naming::ini_value(value)), ("region", "us-east-1".to_string())];
    doc.add_profile(&name, &entries);
    let expected: BTreeMap<String, String> = entries.iter().map(|(k, v)| (k.to_string(), v.clone())).collect();
    assert_eq!(doc.profile(&name), Some(expected), "the added profile reads back in {:?}", doc.render());
    assert_eq!(doc.managed_profiles().last(), Some(&name));
    assert_eq!(read(&doc), before, "other profiles changed by adding {name}");
    let after: Vec<_> = doc.sso_session_names().iter().map(|s| doc.sso_session(s)).collect();
    assert_eq!(after, sessions);

    assert!(doc.remove_managed_profile(&name), "cannot remove the profile just added");
    assert!(!doc.has_profile(&name));
    assert_eq!(read(&doc), before, "other profiles changed by removing {name}");
    assert_eq!(doc.render().trim_end_matches('\n'), text.trim_end_matches('\n'));
}

/// Replacing one section of a valid access document gives a valid document with that section, and every other
/// top-level key as it was.
pub fn document(data: &[u8]) {
    let (mut text, body) = halves(data);
    // Appending to a text without a final line break gives it one, which YAML reads into a block scalar (`|`)
    // that ends the file; that is the one change the splice makes outside its section.
    if !text.is_empty() && !text.ends_with('\n') {
        text.push('\n');
    }
    let key = ["entitlement_management", "policies", "access_profiles"][body.len() % 3];
    let section = format!("{key}:\n{}", body.lines().map(|l| format!("  {l}\n")).collect::<String>());
    let (Ok(original), Ok(wanted)) = (yaml(&text), yaml(&section)) else { return };
    // The console writes a section as serde_yaml does: one key. A body with a line break of YAML's own (NEL, say)
    // would be two.
    if wanted.len() != 1 {
        return;
    }
    let Some(out) = cone_core::document::replace_section(&text, key, &section) else { return };
    let replaced = yaml(&out).unwrap_or_else(|e| panic!("the splice is not YAML ({e}):\n{out}"));
    assert_eq!(replaced.get(key), wanted.get(key), "the section in:\n{out}");
    for (k, v) in &original {
        if k.as_str() != Some(key) {
            assert_eq!(replaced.get(k), Some(v), "{k:?} changed in:\n{out}");
        }
    }
}

fn yaml(text: &str) -> Result<serde_yaml_ng::Mapping, serde_yaml_ng::Error> {
    match serde_yaml_ng::from_str::<serde_yaml_ng::Value>(text)? {
        serde_yaml_ng::Value::Mapping(m) => Ok(m),
        serde_yaml_ng::Value::Null => Ok(serde_yaml_ng::Mapping::new()),
        _ => Err(serde::de::Error::custom("not a mapping")),
    }
}

/// Whatever is in the AWS CLI's cache files: reading never panics, what is read writes back the same, a time read
/// can be written and read again, and cache keys hash as Python's JSON writes them.
pub fn caches(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    round_trip::<TokenFile>(&text);
    round_trip::<Registration>(&text);
    if let Some(entry) = round_trip::<CacheEntry>(&text) {
        let json = entry.credentials.process_json().expect("credentials encode");
        let printed: serde_json::Value = serde_json::from_str(&json).expect("credential_process output is JSON");
        assert_eq!(printed["Version"], 1);
        assert_eq!(printed["SessionToken"].as_str(), Some(entry.credentials.session_token.as_str()));
    }
    if let Some(t) = cache::parse_time(&text) {
        let written = cache::format_time(t);
        assert_eq!(cache::parse_time(&written).map(|t| t.timestamp()), Some(t.timestamp()), "{written}");
    }
    let quoted = cache::python_json_string(&text);
    assert!(quoted.is_ascii());
    assert_eq!(serde_json::from_str::<String>(&quoted).ok().as_deref(), Some(&*text));
}

fn round_trip<T: serde::Serialize + serde::de::DeserializeOwned>(text: &str) -> Option<T> {
    let value: T = serde_json::from_str(text).ok()?;
    let once = serde_json::to_string(&value).expect("what was read encodes");
    let again: T = serde_json::from_str(&once).expect("what was written reads back");
    assert_eq!(serde_json::to_string(&again).ok().as_deref(), Some(once.as_str()));
    Some(value)
}

/// A field definition as a policy author might write one.
#[derive(Debug, Arbitrary)]
struct Field {
    name: u8,
    kind: u8,
    required: bool,
    min_length: Option<u8>,
    max_length: Option<u16>,
    min: Option<i64>,
    max: Option<i64>,
    max_items: Option<u8>,
}

fn field(f: Field) -> FormField {
    FormField {
        name: ["ticket", "hosts", "urgent", "regions", "", "a b"][f.name as usize % 6].to_string(),
        kind: [FieldType::String, FieldType::Bool, FieldType::Integer, FieldType::StringList][f.kind as usize % 4],
        description: String::new(),
        required: f.required,
        min_length: f.min_length.map(u64::from),
        max_length: f.max_length.map(u64::from),
        min: f.min,
        max: f.max,
        max_items: f.max_items.map(u64::from),
    }
}

/// Any submission against any definition that loads: what is accepted meets every limit of its field, and what is
/// refused says which field.
pub fn form(data: &[u8]) {
    let mut u = Unstructured::new(data);
    let Ok(defs) = Vec::<Field>::arbitrary(&mut u) else { return };
    let fields: Vec<FormField> = defs.into_iter().take(8).map(field).collect();
    if form::check_definitions(&fields).is_err() {
        return;
    }
    let rest = String::from_utf8_lossy(u.take_rest());
    let Ok(submitted) = serde_json::from_str::<BTreeMap<String, serde_json::Value>>(&rest) else { return };
    match form::validate(&fields, &submitted) {
        Ok(values) => {
            for f in &fields {
                match values.get(&f.name) {
                    None => assert!(!f.required, "required {} missing", f.name),
                    Some(v) => within_limits(f, v),
                }
            }
            assert!(values.keys().all(|k| fields.iter().any(|f| &f.name == k)));
        }
        Err(errors) => {
            assert!(!errors.is_empty());
            for e in errors {
                assert!(fields.iter().any(|f| f.name == e.field) || submitted.contains_key(&e.field), "{e:?}");
            }
        }
    }
}

fn within_limits(f: &FormField, v: &FormValue) {
    let text = |s: &str| {
        let n = s.chars().count() as u64;
        assert!(!s.is_empty() && s.trim() == s, "{s:?} is not trimmed");
        assert!(n <= f.max_length.unwrap_or(form::MAX_TEXT) && n >= f.min_length.unwrap_or(0), "{s:?} for {f:?}");
    };
    match (f.kind, v) {
        (FieldType::String, FormValue::Text(s)) => text(s),
        (FieldType::Bool, FormValue::Bool(_)) => {}
        (FieldType::Integer, FormValue::Integer(n)) => {
            assert!(f.min.is_none_or(|m| *n >= m) && f.max.is_none_or(|m| *n <= m), "{n} for {f:?}")
        }
        (FieldType::StringList, FormValue::List(items)) => {
            assert!(!items.is_empty() && items.len() as u64 <= f.max_items.unwrap_or(form::MAX_ITEMS));
            items.iter().for_each(|s| text(s));
        }
        (kind, v) => panic!("{v:?} accepted for a {kind:?} field"),
    }
}

/// What a request can carry into a condition.
#[derive(Debug, Arbitrary)]
struct Asked {
    groups: Vec<String>,
    manager: Option<String>,
    attributes: BTreeMap<String, String>,
    account_name: String,
    permission_set: String,
    duration_secs: i64,
    emergency: bool,
    justification: String,
    form: BTreeMap<String, String>,
    now_secs: i64,
}

fn facts(a: Asked) -> Facts {
    let mut request = condition::Request::new("grant", a.duration_secs, a.emergency, &a.justification);
    request.form = a.form.into_iter().map(|(k, v)| (k, FormValue::Text(v))).collect();
    Facts {
        requester: condition::Requester {
            name: "alice".into(),
            email: "alice@example.com".into(),
            groups: a.groups,
            manager: a.manager,
            attributes: a.attributes,
        },
        entitlement: condition::Entitlement {
            app: "aws".into(),
            account_id: "123456789012".into(),
            account_name: a.account_name,
            permission_set: a.permission_set,
            group: String::new(),
        },
        request,
        now: condition::timestamp(chrono_time(a.now_secs)),
    }
}

fn chrono_time(secs: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(secs % 100_000_000_000, 0).unwrap_or_default()
}

/// Any expression, compiled against one request and asked about another: a result or an error, never a panic
/// that escapes (the parser's own are caught at compile), and the same answer when asked twice.
pub fn condition(data: &[u8]) {
    let (source, rest) = halves(data);
    let mut u = Unstructured::new(rest.as_bytes());
    let (Ok(sample), Ok(asked)) = (Asked::arbitrary(&mut u), Asked::arbitrary(&mut u)) else { return };
    let Ok(condition) = Condition::compile(&source, &[facts(sample)]) else { return };
    let asked = facts(asked);
    let first = condition.holds(&asked);
    assert_eq!(first, condition.holds(&asked));
    if let Err(e) = first {
        assert!(e.starts_with(&format!("`{source}`")), "the error names the condition: {e}");
    }
}

/// Any body sent to the API: it reads as its type or is refused, what is read writes back the same, and the checks
/// the server runs on a new request (text length, duration, form) answer without panicking.
pub fn api_bodies(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    round_trip::<cone_api::Decision>(&text);
    round_trip::<cone_api::Withdrawal>(&text);
    round_trip::<cone_api::DropRequest>(&text);
    round_trip::<cone_api::CreateToken>(&text);
    round_trip::<cone_api::CreateServiceToken>(&text);
    round_trip::<cone_api::ApplyConfig>(&text);
    let Some(task) = round_trip::<cone_api::CreateTask>(&text) else { return };
    let _ = request::text("justification", &task.justification);
    if let Ok(duration) = request::validate(task.duration_secs, 3600, 8 * 3600) {
        assert!(duration > 0 && duration <= 8 * 3600);
    }
    let fields: Vec<FormField> = serde_json::from_value(serde_json::json!([
        {"name": "ticket", "required": true, "max_length": 20},
        {"name": "hosts", "type": "integer", "min": 1, "max": 10},
        {"name": "regions", "type": "string_list", "max_items": 3},
    ]))
    .expect("the form definition is valid");
    let _ = form::validate(&fields, &task.form_data);
}
