//! Editing one top-level section of a YAML document's text (the access document's `entitlement_management`, from
//! the console), leaving every other byte as it was, comments included — as `awsconfig` does for `~/.aws/config`.

/// `text` with its top-level `key:` section replaced by `section` (the whole block, starting `key:`), or with
/// `section` appended when there is none. Comment and blank lines just before the next top-level key stay with
/// that key. `None` when the text is not a block-style mapping of plain keys at column 0 (flow style `{...}`,
/// `---` separators, an indented or quoted key, a top-level list), where a section's end cannot be found by lines.
pub fn replace_section(text: &str, key: &str, section: &str) -> Option<String> {
    let section = if section.ends_with('\n') { section.to_string() } else { format!("{section}\n") };
    let mut lines = Vec::new();
    let mut offset = 0;
    let mut in_mapping = false;
    for line in text.split_inclusive('\n') {
        let trimmed = line.trim_end();
        // YAML also ends a line at a lone carriage return, and (1.1, as serde_yaml reads it) at NEL and the Unicode
        // line and paragraph separators, where lines split here would not see it.
        let hidden_break = line.trim_end_matches(['\r', '\n']).contains(['\r', '\u{85}', '\u{2028}', '\u{2029}']);
        if trimmed == "---" || trimmed == "..." || trimmed.starts_with('{') || hidden_break {
            return None;
        }
        let content = !trimmed.trim_start().is_empty() && !trimmed.trim_start().starts_with('#');
        if content && top_level_key(line).is_some() {
            in_mapping = true;
        } else if content && !(in_mapping && (line.starts_with([' ', '\t']) || list_item(trimmed))) {
            return None;
        }
        lines.push((offset, line));
        offset += line.len();
    }
    let Some(start) = lines.iter().position(|(_, l)| top_level_key(l) == Some(key)) else {
        let separator = if text.is_empty() || text.ends_with('\n') { "" } else { "\n" };
        return Some(format!("{text}{separator}{section}"));
    };
    let next =
        lines[start + 1..].iter().position(|(_, l)| top_level_key(l).is_some()).map_or(lines.len(), |i| start + 1 + i);
    let mut end = next;
    while end > start + 1 && (lines[end - 1].1.starts_with('#') || lines[end - 1].1.trim().is_empty()) {
        end -= 1;
    }
    let at = |i: usize| lines.get(i).map_or(text.len(), |(o, _)| *o);
    Some(format!("{}{section}{}", &text[..at(start)], &text[at(end)..]))
}

/// A list item written at its key's indentation (`policies:` then `- name: all`), as YAML allows.
fn list_item(line: &str) -> bool {
    line == "-" || line.starts_with("- ")
}

/// The key a line starts at column 0, if it does (`name:` or `name: value`).
fn top_level_key(line: &str) -> Option<&str> {
    let (name, rest) = line.split_once(':')?;
    let plain = !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-');
    // A colon ends a key only before white space: `policies:x: 1` is the key `policies:x`.
    let ends = rest.is_empty() || rest.starts_with([' ', '\t', '\r', '\n']);
    (plain && ends && !name.starts_with('-')).then_some(name)
}

#[cfg(test)]
mod tests {
    use super::replace_section;

    const DOC: &str = "\
# Who may request what.
access_profiles:
  - name: everyone   # a comment kept
    visible_to: { everyone: true }

# Rules, first match decides.
entitlement_management:
  - match: { account: Sandbox }
    requestable: false
  # old default
  - requestable: true

# The policies.
policies:
  - name: all
    steps: [accept]
";

    #[test]
    fn replaces_only_the_section_and_keeps_the_comments_around_it() {
        let new = "entitlement_management:\n- requestable: false\n";
        let out = replace_section(DOC, "entitlement_management", new).unwrap();
        let expected = DOC.replace(
            "entitlement_management:\n  - match: { account: Sandbox }\n    requestable: false\n  # old default\n  - requestable: true\n",
            new,
        );
        assert_eq!(out, expected);
        assert!(out.contains("# The policies.\npolicies:") && out.contains("# a comment kept"));
    }

    #[test]
    fn the_last_section_and_an_inline_one_are_replaced_too() {
        let out = replace_section(
            "policies: []\nentitlement_management: []",
            "entitlement_management",
            "entitlement_management: [x]",
        )
        .unwrap();
        assert_eq!(out, "policies: []\nentitlement_management: [x]\n");
        let out = replace_section(
            "entitlement_management: []\npolicies: []\n",
            "entitlement_management",
            "entitlement_management:\n- a\n",
        )
        .unwrap();
        assert_eq!(out, "entitlement_management:\n- a\npolicies: []\n");
    }

    #[test]
    fn a_missing_section_is_appended_and_what_lines_cannot_edit_is_refused() {
        assert_eq!(
            replace_section("policies: []", "entitlement_management", "entitlement_management: []\n").unwrap(),
            "policies: []\nentitlement_management: []\n"
        );
        assert_eq!(replace_section("", "k", "k: 1").unwrap(), "k: 1\n");
        assert_eq!(replace_section("{policies: []}", "policies", "policies: []\n"), None);
        assert_eq!(replace_section("a: 1\n---\nb: 2\n", "a", "a: 2\n"), None);
        // Found by fuzzing: a mapping indented as a whole, or a quoted key, would get a second section at column 0.
        assert_eq!(replace_section(" a: 1\n", "policies", "policies: []\n"), None);
        assert_eq!(replace_section("\"policies\": []\n", "policies", "policies: [x]\n"), None);
        assert_eq!(replace_section("- a\n", "policies", "policies: []\n"), None);
        // A colon inside a plain key does not end it (found by fuzzing: the whole line was taken for `policies`).
        assert_eq!(replace_section("policies:x: 1\n", "policies", "policies: []\n"), None);
        // Nor does a lone carriage return escape it (fuzzing again); Windows line ends are fine.
        assert_eq!(replace_section("policies:\n a\rother: 1\n", "policies", "policies: []\n"), None);
        assert_eq!(replace_section("policies:\n a\u{2029}other: 1\n", "policies", "policies: []\n"), None);
        let crlf = replace_section("policies: []\r\nother: 1\r\n", "policies", "policies: [x]\n").unwrap();
        assert_eq!(crlf, "policies: [x]\nother: 1\r\n");
        assert!(replace_section("policies:\n- name: all\n  # note\n", "policies", "policies: []\n").is_some());
    }
}
