//! Repository checks as ordinary tests, so that `cargo test` keeps the tree honest: the two stores' migrations in
//! step, the published IAM policy in step with the connector, ARCHITECTURE.md naming every crate and server module,
//! every source file opening with a `//!` line, and cone-server's modules importing only the layers below them.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

/// The `.rs` files under `dir`, recursively, sorted.
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else { return out };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(rust_files(&path));
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
    out.sort();
    out
}

fn crates() -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(root().join("crates"))
        .expect("crates/ exists")
        .flatten()
        .filter(|e| e.path().join("Cargo.toml").is_file())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Migrations of the first releases that the two stores number differently: SQLite's early steps are folded into
/// PostgreSQL's `0001_init`, and two PostgreSQL migrations (notification triggers) have no SQLite counterpart.
/// Applied migrations are never renumbered, so they are mapped here instead; every later migration must exist in
/// both folders under the same number and name.
const LEGACY: &[(&str, &str)] = &[
    ("0001_init", "0001_init"),
    ("0002_lifecycle", "0001_init"),
    ("0003_drift", "0001_init"),
    ("0004_emergency", "0001_init"),
    ("0005_entitlement_alias", "0001_init"),
    ("", "0006_task_notify"),
    ("0007_webhooks", "0007_webhooks"),
    ("0006_api_tokens", "0008_api_tokens"),
    ("", "0009_cache_notify"),
    ("0008_config_versions", "0010_config_versions"),
    ("0009_web_sessions", "0011_web_sessions"),
    ("0010_iam", "0012_iam"),
    ("0011_group_assignments", "0013_group_assignments"),
    ("0012_sync_journal", "0014_sync_journal"),
    ("0013_sync_spool", "0015_sync_spool"),
];

/// From this number on, both folders hold the same migrations.
const FIRST_SHARED: u32 = 16;

/// The migrations of one store: `0007_webhooks` for `0007_webhooks.sql`.
fn migrations(dialect: &str) -> BTreeSet<String> {
    let dir = root().join("crates/cone-server/migrations").join(dialect);
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot list {}: {e}", dir.display()))
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.strip_suffix(".sql").map(str::to_string))
        .collect()
}

/// What is wrong with two stores' migrations, one line each.
fn migration_mismatches(sqlite: &BTreeSet<String>, postgres: &BTreeSet<String>) -> Vec<String> {
    let number = |name: &str| name.split('_').next().and_then(|n| n.parse::<u32>().ok()).unwrap_or(0);
    let mut problems = Vec::new();
    for (dialect, names, other) in [("sqlite", sqlite, postgres), ("postgres", postgres, sqlite)] {
        for name in names {
            if number(name) >= FIRST_SHARED {
                if !other.contains(name) {
                    problems.push(format!("{dialect}/{name}.sql has no counterpart of the same number and name"));
                }
                continue;
            }
            let mapped = LEGACY.iter().any(|(s, p)| if dialect == "sqlite" { s == name } else { p == name });
            if !mapped {
                problems.push(format!("{dialect}/{name}.sql is numbered below {FIRST_SHARED:04} and not in LEGACY"));
            }
        }
    }
    for (s, p) in LEGACY {
        for (dialect, name, names) in [("sqlite", s, sqlite), ("postgres", p, postgres)] {
            if !name.is_empty() && !names.contains(*name) {
                problems.push(format!("LEGACY names {dialect}/{name}.sql, which is gone; applied migrations stay"));
            }
        }
    }
    problems
}

#[test]
fn both_stores_have_the_same_migrations() {
    let problems = migration_mismatches(&migrations("sqlite"), &migrations("postgres"));
    assert!(problems.is_empty(), "the migration folders differ:\n{}", problems.join("\n"));
}

#[test]
fn a_migration_added_to_one_store_only_is_caught() {
    let (mut sqlite, postgres) = (migrations("sqlite"), migrations("postgres"));
    sqlite.insert("0099_only_here".into());
    let problems = migration_mismatches(&sqlite, &postgres);
    assert_eq!(problems, ["sqlite/0099_only_here.sql has no counterpart of the same number and name"]);
}

/// The IAM actions (`service:Action`) quoted in `text`.
fn actions(text: &str) -> BTreeSet<String> {
    text.split('"')
        .skip(1)
        .step_by(2)
        .filter(|s| {
            s.split_once(':').is_some_and(|(service, action)| {
                !service.is_empty()
                    && service.bytes().all(|b| b.is_ascii_lowercase() || b == b'-')
                    && action.starts_with(|c: char| c.is_ascii_uppercase())
                    && action.bytes().all(|b| b.is_ascii_alphanumeric())
            })
        })
        .map(str::to_string)
        .collect()
}

#[test]
fn the_published_integration_role_holds_exactly_what_cone_aws_policy_prints() {
    let tf = read(&root().join("docs/aws-integration-role.tf"));
    // The permissions policy only; the trust policy is `cone-aws trust-policy`'s.
    let permissions = tf.split("resource \"aws_iam_role_policy\"").nth(1).expect("the role's permissions policy");
    let all =
        cone_aws::Features { provisioning: true, organizations: true, iam: true, secrets: true, revoke_sessions: true };
    let printed: BTreeSet<(String, String)> = cone_aws::permissions_policy(&all)["Statement"]
        .as_array()
        .expect("statements")
        .iter()
        .flat_map(|s| {
            let resource = s["Resource"].as_str().expect("one resource").to_string();
            actions(&s["Action"].to_string()).into_iter().map(move |a| (resource.clone(), a))
        })
        .collect();
    // Each statement of the file: its actions on its resource, with the variables' defaults.
    let published: BTreeSet<(String, String)> = permissions
        .split("Sid ")
        .skip(1)
        .flat_map(|statement| {
            let resource = statement.split("Resource").nth(1).and_then(|r| r.split('"').nth(1)).unwrap_or_default();
            let resource = resource
                .replace("${var.member_role_name}", cone_aws::DEFAULT_MEMBER_ROLE)
                .replace("${var.iam_user_path}", cone_aws::DEFAULT_IAM_USER_PATH);
            actions(statement).into_iter().map(move |a| (resource.clone(), a))
        })
        .collect();
    let missing: Vec<_> = printed.difference(&published).collect();
    let extra: Vec<_> = published.difference(&printed).collect();
    assert!(
        missing.is_empty() && extra.is_empty(),
        "docs/aws-integration-role.tf is out of step with `cone-aws policy --provisioning --orgs --iam --secrets --revoke-sessions` (resource, action): \
         missing {missing:?}, not printed {extra:?}"
    );
}

/// cone-server's top-level modules, bottom layer first. A module may use those of lower layers and its own
/// submodules, nothing beside or above it; `main.rs` (the crate root) wires them all.
const SERVER_LAYERS: &[&[&str]] = &[
    &["drift", "webhooks", "notify", "throttle", "clients"],
    &["config"],
    &["store"],
    &["state", "error"],
    &["services"],
    &["api", "web", "workers"],
    &["server"],
];

fn server_modules() -> BTreeSet<String> {
    let src = root().join("crates/cone-server/src");
    std::fs::read_dir(&src)
        .expect("cone-server/src exists")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            let module = if e.path().is_dir() { name } else { name.strip_suffix(".rs")?.to_string() };
            (module != "main").then_some(module)
        })
        .collect()
}

/// The source a module runs, without its tests: test files, and a file's `#[cfg(test)]` items from the first on
/// (tests sit at the end of a file).
fn non_test_source(path: &Path) -> Option<String> {
    let name = path.file_name()?.to_str()?;
    if matches!(name, "tests.rs" | "testing.rs") || path.components().any(|c| c.as_os_str() == "tests") {
        return None;
    }
    let text = read(path);
    Some(text.split("\n#[cfg(test)]").next().unwrap_or_default().to_string())
}

/// The top-level modules `text` names as `crate::NAME`, braces included (`crate::{a, b::c}`).
fn crate_references(text: &str) -> BTreeSet<String> {
    let ident = |s: &str| s.trim_start().chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect();
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let rest = &text[at + "crate::".len()..];
        let Some(group) = rest.strip_prefix('{') else {
            found.insert(ident(rest));
            continue;
        };
        let (mut depth, mut start) = (0, 0);
        for (i, c) in group.char_indices() {
            match c {
                '{' => depth += 1,
                '}' if depth == 0 => {
                    found.insert(ident(&group[start..i]));
                    break;
                }
                '}' => depth -= 1,
                ',' if depth == 0 => {
                    found.insert(ident(&group[start..i]));
                    start = i + 1;
                }
                _ => {}
            }
        }
    }
    found.retain(|m: &String| !m.is_empty());
    found
}

#[test]
fn server_modules_import_only_the_layers_below_them() {
    let rank: BTreeMap<&str, usize> =
        SERVER_LAYERS.iter().enumerate().flat_map(|(n, layer)| layer.iter().map(move |m| (*m, n))).collect();
    let modules = server_modules();
    let unranked: Vec<_> = modules.iter().filter(|m| !rank.contains_key(m.as_str())).collect();
    assert!(unranked.is_empty(), "give these cone-server modules a layer in SERVER_LAYERS: {unranked:?}");
    let src = root().join("crates/cone-server/src");
    let mut problems = Vec::new();
    for module in &modules {
        let files = match src.join(module) {
            dir if dir.is_dir() => rust_files(&dir),
            _ => vec![src.join(format!("{module}.rs"))],
        };
        for file in files {
            let Some(text) = non_test_source(&file) else { continue };
            for used in crate_references(&text) {
                if used != *module && rank.get(used.as_str()).is_none_or(|r| *r >= rank[module.as_str()]) {
                    problems.push(format!("{} uses crate::{used}", file.strip_prefix(&src).unwrap_or(&file).display()));
                }
            }
            // The API and the console call services; the store is the services' to call.
            let calls_store = text
                .match_indices(".db")
                .any(|(at, _)| !text[at + ".db".len()..].starts_with(|c: char| c.is_ascii_alphanumeric() || c == '_'));
            if ["api", "web"].contains(&module.as_str()) && calls_store {
                problems
                    .push(format!("{} calls the store directly", file.strip_prefix(&src).unwrap_or(&file).display()));
            }
        }
    }
    assert!(problems.is_empty(), "cone-server's layers are crossed (see SERVER_LAYERS):\n{}", problems.join("\n"));
}

#[test]
fn the_layer_check_reads_braced_and_nested_imports() {
    let text = "use crate::{api, services::{Page, audit}, store};\nlet x = crate::state::Clock::default();";
    let found: Vec<String> = crate_references(text).into_iter().collect();
    assert_eq!(found, ["api", "services", "state", "store"]);
}

#[test]
fn architecture_names_every_crate_and_server_module() {
    let map = read(&root().join("ARCHITECTURE.md"));
    let missing: Vec<String> = crates()
        .into_iter()
        .filter(|c| !map.contains(&format!("`{c}`")))
        .chain(server_modules().into_iter().filter(|m| !map.contains(&format!("`{m}`"))))
        .collect();
    assert!(missing.is_empty(), "ARCHITECTURE.md does not name (in backquotes) {missing:?}");
}

#[test]
fn every_source_file_opens_with_a_module_comment() {
    let files: Vec<PathBuf> = crates()
        .iter()
        .flat_map(|c| ["src", "tests", "benches"].map(|d| root().join("crates").join(c).join(d)))
        .flat_map(|dir| rust_files(&dir))
        .collect();
    assert!(files.len() > 50, "too few source files found: {}", files.len());
    let bare: Vec<String> =
        files.iter().filter(|f| !read(f).starts_with("//!")).map(|f| f.display().to_string()).collect();
    assert!(bare.is_empty(), "these files do not open with a `//!` line saying what they hold:\n{}", bare.join("\n"));
}
