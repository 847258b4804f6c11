//! Request forms: a policy's field definitions, checked when the configuration loads, and the values a requester
//! submits, checked against them.

use std::collections::{BTreeMap, HashSet};

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A submitted value, normalised: strings trimmed, empty optional values dropped. Serialises untagged, so that
/// stored forms and policy conditions see plain JSON (`request.form.count` is an integer in CEL).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(untagged)]
pub enum FormValue {
    Text(String),
    Bool(bool),
    Integer(i64),
    List(Vec<String>),
}

pub type FormData = BTreeMap<String, FormValue>;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FieldError {
    pub field: String,
    /// For people, without the field name: "must be at most 20 characters".
    pub message: String,
}

/// A field of a policy's request form. Written `{name, required}` before fields had types, which still means a
/// string. The limits apply to their types only: lengths to strings and to each item of a list, `min`/`max` to
/// integers, `max_items` to lists.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FormField {
    pub name: String,
    #[serde(default, rename = "type")]
    pub kind: FieldType,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default)]
    pub required: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_length: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_items: Option<u64>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum FieldType {
    #[default]
    String,
    Bool,
    Integer,
    StringList,
}

/// What is wrong with a form definition, naming the field.
pub fn check_definitions(fields: &[FormField]) -> Result<(), String> {
    let mut names = HashSet::new();
    for f in fields {
        if f.name.trim().is_empty() {
            return Err("a form field has an empty `name`; give every field a name".into());
        }
        if !names.insert(f.name.as_str()) {
            return Err(format!("form field \"{}\" is defined twice; keep one", f.name));
        }
        let on = |types: &[FieldType]| types.contains(&f.kind);
        let lengths = on(&[FieldType::String, FieldType::StringList]);
        let limits = [
            ("min_length", f.min_length.is_some(), lengths, "string and string_list"),
            ("max_length", f.max_length.is_some(), lengths, "string and string_list"),
            ("min", f.min.is_some(), on(&[FieldType::Integer]), "integer"),
            ("max", f.max.is_some(), on(&[FieldType::Integer]), "integer"),
            ("max_items", f.max_items.is_some(), on(&[FieldType::StringList]), "string_list"),
        ];
        if let Some((key, _, _, types)) = limits.iter().find(|(_, set, applies, _)| *set && !applies) {
            return Err(format!("form field \"{}\": `{key}` applies to {types} fields only", f.name));
        }
        if f.min_length.zip(f.max_length).is_some_and(|(lo, hi)| lo > hi) {
            return Err(format!("form field \"{}\": `min_length` is greater than `max_length`", f.name));
        }
        if f.min.zip(f.max).is_some_and(|(lo, hi)| lo > hi) {
            return Err(format!("form field \"{}\": `min` is greater than `max`", f.name));
        }
        if f.max_items == Some(0) {
            return Err(format!("form field \"{}\": `max_items` must be at least 1", f.name));
        }
    }
    Ok(())
}

/// A value of each field's type that a policy condition can be tried on at load.
pub fn sample(fields: &[FormField]) -> FormData {
    let value = |f: &FormField| match f.kind {
        FieldType::String => FormValue::Text(String::new()),
        FieldType::Bool => FormValue::Bool(false),
        FieldType::Integer => FormValue::Integer(f.min.unwrap_or(0)),
        FieldType::StringList => FormValue::List(vec![]),
    };
    fields.iter().map(|f| (f.name.clone(), value(f))).collect()
}

/// The submitted values, normalised, or every problem, one per field (unknown fields too).
pub fn validate(fields: &[FormField], data: &BTreeMap<String, Value>) -> Result<FormData, Vec<FieldError>> {
    let mut values = FormData::new();
    let mut errors = Vec::new();
    for f in fields {
        match data.get(&f.name).map_or(Ok(None), |v| value(f, v)) {
            Ok(Some(v)) => {
                values.insert(f.name.clone(), v);
            }
            Ok(None) if f.required => errors.push(error(&f.name, "is required")),
            Ok(None) => {}
            Err(message) => errors.push(error(&f.name, &message)),
        }
    }
    for name in data.keys().filter(|n| !fields.iter().any(|f| &f.name == *n)) {
        let known: Vec<&str> = fields.iter().map(|f| f.name.as_str()).collect();
        let message = match known.is_empty() {
            true => "is not a field: this entitlement has no request form".to_string(),
            false => format!("is not a field of this form; its fields are {}", known.join(", ")),
        };
        errors.push(error(name, &message));
    }
    if errors.is_empty() { Ok(values) } else { Err(errors) }
}

fn error(field: &str, message: &str) -> FieldError {
    FieldError { field: field.into(), message: message.into() }
}

/// The value of one field, `None` when it is empty (null, blank, or an empty list).
fn value(f: &FormField, v: &Value) -> Result<Option<FormValue>, String> {
    if v.is_null() {
        return Ok(None);
    }
    match (f.kind, v) {
        (FieldType::String, Value::String(s)) => match s.trim() {
            "" => Ok(None),
            s => text(f, s, "").map(|()| Some(FormValue::Text(s.into()))),
        },
        (FieldType::String, _) => Err("must be text".into()),
        (FieldType::Bool, Value::Bool(b)) => Ok(Some(FormValue::Bool(*b))),
        (FieldType::Bool, _) => Err("must be true or false".into()),
        (FieldType::Integer, Value::Number(n)) => {
            let n = n.as_i64().ok_or("must be a whole number")?;
            match (f.min, f.max) {
                (Some(min), _) if n < min => Err(format!("must be at least {min}")),
                (_, Some(max)) if n > max => Err(format!("must be at most {max}")),
                _ => Ok(Some(FormValue::Integer(n))),
            }
        }
        (FieldType::Integer, _) => Err("must be a whole number".into()),
        (FieldType::StringList, Value::Array(items)) => {
            let mut list = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let s = item.as_str().map(str::trim).ok_or_else(|| format!("item {} must be text", i + 1))?;
                if !s.is_empty() {
                    text(f, s, &format!("item {} ", i + 1))?;
                    list.push(s.to_string());
                }
            }
            match f.max_items.unwrap_or(MAX_ITEMS) {
                max if list.len() as u64 > max => Err(format!("must have at most {max} items")),
                _ => Ok((!list.is_empty()).then_some(FormValue::List(list))),
            }
        }
        (FieldType::StringList, _) => Err("must be a list of text, like [\"a\", \"b\"]".into()),
    }
}

/// The longest text value, and the most items of a list, of a field that sets no limit of its own: every value is
/// stored with its task and in the audit log.
pub const MAX_TEXT: u64 = 1000;
pub const MAX_ITEMS: u64 = 100;

/// Checks a text's length; `what` prefixes the message ("item 2 ").
fn text(f: &FormField, s: &str, what: &str) -> Result<(), String> {
    let len = s.chars().count() as u64;
    match (f.min_length, f.max_length.unwrap_or(MAX_TEXT)) {
        (Some(min), _) if len < min => Err(format!("{what}must be at least {min} characters")),
        (_, max) if len > max => Err(format!("{what}must be at most {max} characters")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn field(name: &str, kind: FieldType, required: bool) -> FormField {
        FormField { name: name.into(), kind, required, ..FormField::default() }
    }

    fn form() -> Vec<FormField> {
        vec![
            FormField { max_length: Some(10), min_length: Some(3), ..field("ticket", FieldType::String, true) },
            field("urgent", FieldType::Bool, false),
            FormField { min: Some(1), max: Some(5), ..field("hosts", FieldType::Integer, false) },
            FormField { max_items: Some(2), max_length: Some(4), ..field("regions", FieldType::StringList, false) },
        ]
    }

    fn data(v: Value) -> BTreeMap<String, Value> {
        serde_json::from_value(v).unwrap()
    }

    fn problems(v: Value) -> Vec<String> {
        let errors = validate(&form(), &data(v)).unwrap_err();
        errors.iter().map(|e| format!("{}: {}", e.field, e.message)).collect()
    }

    #[test]
    fn fields_without_limits_of_their_own_get_the_defaults() {
        let fields = [field("note", FieldType::String, false), field("hosts", FieldType::StringList, false)];
        let data = |note: usize, hosts: usize| {
            BTreeMap::from([
                ("note".to_string(), json!("n".repeat(note))),
                ("hosts".to_string(), json!(vec!["h"; hosts])),
            ])
        };
        assert!(validate(&fields, &data(MAX_TEXT as usize, MAX_ITEMS as usize)).is_ok());
        let errors = validate(&fields, &data(MAX_TEXT as usize + 1, MAX_ITEMS as usize + 1)).unwrap_err();
        let messages: Vec<&str> = errors.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(messages, ["must be at most 1000 characters", "must have at most 100 items"]);
    }

    #[test]
    fn typed_values_are_normalised() {
        let submitted = json!({"ticket": " OPS-1 ", "urgent": false, "hosts": 5, "regions": ["eu", " ", "us "]});
        let got = validate(&form(), &data(submitted)).unwrap();
        assert_eq!(got["ticket"], FormValue::Text("OPS-1".into()));
        assert_eq!(got["urgent"], FormValue::Bool(false));
        assert_eq!(got["hosts"], FormValue::Integer(5));
        assert_eq!(got["regions"], FormValue::List(vec!["eu".into(), "us".into()]));
        assert_eq!(serde_json::to_value(&got).unwrap()["hosts"], json!(5));
        // Optional fields may be absent, blank or empty; they are then left out.
        let got = validate(&form(), &data(json!({"ticket": "OPS-1", "regions": [], "hosts": null}))).unwrap();
        assert_eq!(got.len(), 1);
    }

    #[test]
    fn every_problem_is_named_by_its_field() {
        assert_eq!(problems(json!({})), ["ticket: is required"]);
        assert_eq!(
            problems(json!({"ticket": "OPS-123456789", "urgent": "yes", "hosts": 9, "regions": ["eu", "us", "ap"]})),
            [
                "ticket: must be at most 10 characters",
                "urgent: must be true or false",
                "hosts: must be at most 5",
                "regions: must have at most 2 items",
            ]
        );
        assert_eq!(
            problems(json!({"ticket": "ab", "hosts": 1.5, "regions": ["europe"], "team": "x"})),
            [
                "ticket: must be at least 3 characters",
                "hosts: must be a whole number",
                "regions: item 1 must be at most 4 characters",
                "team: is not a field of this form; its fields are ticket, urgent, hosts, regions",
            ]
        );
        assert_eq!(
            problems(json!({"ticket": 42, "hosts": 0, "regions": "eu"}))[..2],
            ["ticket: must be text".to_string(), "hosts: must be at least 1".to_string()]
        );
        let none = validate(&[], &data(json!({"a": "b"}))).unwrap_err();
        assert_eq!(none[0].message, "is not a field: this entitlement has no request form");
    }

    #[test]
    fn definitions_are_checked() {
        assert_eq!(check_definitions(&form()), Ok(()));
        let twice = [field("a", FieldType::String, true), field("a", FieldType::Bool, false)];
        assert!(check_definitions(&twice).unwrap_err().contains("\"a\" is defined twice"));
        let misplaced = [FormField { min: Some(1), ..field("a", FieldType::String, true) }];
        assert_eq!(
            check_definitions(&misplaced).unwrap_err(),
            "form field \"a\": `min` applies to integer fields only"
        );
        let inverted = [FormField { min: Some(3), max: Some(1), ..field("n", FieldType::Integer, true) }];
        assert!(check_definitions(&inverted).unwrap_err().contains("`min` is greater than `max`"));
        let lengths = [FormField { min_length: Some(3), max_length: Some(1), ..field("s", FieldType::String, true) }];
        assert!(check_definitions(&lengths).unwrap_err().contains("`min_length` is greater than `max_length`"));
        // The old `{name, required}` shape is a string field.
        let old: FormField = serde_json::from_value(json!({"name": "ticket", "required": true})).unwrap();
        assert_eq!(old, field("ticket", FieldType::String, true));
    }
}
