//! Profile names and values that go into files other tools parse.

/// `<account-name>-<role-name>`, lower-case, with anything outside `[a-z0-9._-]` turned into `-`, so the name is a
/// valid profile name for botocore and the Rust SDK alike and cannot break out of an INI section header.
pub fn profile_name(account_name: &str, role_name: &str) -> String {
    let raw = format!("{account_name}-{role_name}").to_lowercase();
    let mut out = String::with_capacity(raw.len());
    for c in raw.chars() {
        let c = if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') { c } else { '-' };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
    }
    out.trim_matches('-').to_string()
}

/// Aliases for a catalog of `(account name, role name, account id)`, in the same order: `<account>-<role>`, and
/// when two entries would share one, each of them gets its account id appended, so that the result does not
/// depend on the order the catalog is listed in. So does a name that would be empty or `default` (an account named
/// with punctuation only, say), which the AWS CLI would take for the profile used when none is named.
pub fn aliases(catalog: &[(&str, &str, &str)]) -> Vec<String> {
    let base: Vec<String> = catalog.iter().map(|(account, role, _)| profile_name(account, role)).collect();
    catalog
        .iter()
        .zip(&base)
        .map(|((_, _, account_id), b)| {
            let unusable = b.is_empty() || b == "default" || base.iter().filter(|x| *x == b).count() > 1;
            if unusable { profile_name(&format!("{b}-{account_id}"), "") } else { b.clone() }
        })
        .collect()
}

/// The IAM user name Cone gives a person: their user name with anything IAM refuses (outside
/// `[A-Za-z0-9+=,.@_-]`) turned into `-`, cut to IAM's 64 characters.
pub fn iam_user_name(user_name: &str) -> String {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    user_name.chars().map(|c| if allowed(c) { c } else { '-' }).take(64).collect()
}

/// The given and family names Identity Center requires of a user, from a display name ("Dave van Dijk" → "Dave",
/// "van Dijk"); a part the display name lacks is the user name.
pub fn given_and_family(display_name: &str, user_name: &str) -> (String, String) {
    let mut parts = display_name.trim().splitn(2, char::is_whitespace);
    let given = parts.next().filter(|p| !p.is_empty()).unwrap_or(user_name);
    let family = parts.next().map(str::trim).filter(|p| !p.is_empty()).unwrap_or(user_name);
    (given.to_string(), family.to_string())
}

/// Text from elsewhere (a reason another person typed, a name) as one line safe for a terminal: each control
/// character, escape sequences' ESC and line breaks included, becomes a space.
pub fn printable(text: &str) -> String {
    text.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// [`printable`] line by line: text of several lines (an error with its advice, say) keeps its line breaks, and
/// nothing else that could move the cursor, change colours or clear the screen.
pub fn printable_lines(text: &str) -> String {
    text.split('\n').map(printable).collect::<Vec<_>>().join("\n")
}

/// A value safe to write after `key = ` in an INI file: one line, no control characters, no leading or trailing
/// space (botocore strips it) and nothing a shell-less `shlex` split could treat as a second argument.
pub fn ini_value(value: &str) -> String {
    value
        .chars()
        .filter(|c| !c.is_control())
        .map(|c| if matches!(c, '[' | ']' | ';' | '#' | '"' | '\'' | '`' | '$' | '\\') { '_' } else { c })
        .collect::<String>()
        .trim()
        .to_string()
}

/// Quotes one argument for a `credential_process` line: botocore splits it with POSIX `shlex`, the Rust SDK runs
/// it with `sh -c`, and single quotes mean the same to both.
pub fn shell_quote(arg: &str) -> String {
    if !arg.is_empty() && arg.chars().all(|c| c.is_ascii_alphanumeric() || "/._-+=:@,".contains(c)) {
        arg.to_string()
    } else {
        format!("'{}'", arg.replace('\'', r"'\''"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printable_text_cannot_move_the_cursor_or_start_a_line() {
        assert_eq!(printable("ok\u{1b}[2J\nfake: line\t!"), "ok [2J fake: line !");
    }

    #[test]
    fn lines_stay_lines_without_escapes() {
        assert_eq!(printable_lines("denied\x1b[2J\r\nrun: cone get x\x07"), "denied [2J \nrun: cone get x ");
    }

    #[test]
    fn no_alias_is_empty_or_the_default_profile() {
        let catalog = [("!!!", "Default", "111"), ("***", "", "222"), ("Prod", "ReadOnly", "333")];
        assert_eq!(aliases(&catalog), ["default-111", "222", "prod-readonly"]);
    }

    #[test]
    fn names_for_identity_center_come_from_the_display_name_or_the_user_name() {
        let pair = |g: &str, f: &str| (g.to_string(), f.to_string());
        assert_eq!(given_and_family("Dave van Dijk", "dave"), pair("Dave", "van Dijk"));
        assert_eq!(given_and_family("  Dave  ", "dave"), pair("Dave", "dave"));
        assert_eq!(given_and_family("", "dave"), pair("dave", "dave"));
    }

    #[test]
    fn iam_user_names_keep_what_iam_allows() {
        assert_eq!(iam_user_name("alice@example.com"), "alice@example.com");
        assert_eq!(iam_user_name("Bob Smith/ops"), "Bob-Smith-ops");
        assert_eq!(iam_user_name(&"x".repeat(80)).len(), 64);
    }

    #[test]
    fn names_follow_the_seed() {
        assert_eq!(profile_name("Production", "DatabaseAdministrator"), "production-databaseadministrator");
        assert_eq!(profile_name("Staging", "ReadOnlyAccess"), "staging-readonlyaccess");
    }

    #[test]
    fn colliding_aliases_get_account_ids_whatever_the_order() {
        let a = [("Prod", "Admin", "111"), ("prod", "Admin", "222"), ("Staging", "ReadOnly", "333")];
        assert_eq!(aliases(&a), vec!["prod-admin-111", "prod-admin-222", "staging-readonly"]);
        let b = [a[2], a[1], a[0]];
        assert_eq!(aliases(&b), vec!["staging-readonly", "prod-admin-222", "prod-admin-111"]);
    }

    #[test]
    fn names_cannot_escape_a_section_header() {
        assert_eq!(profile_name("Prod]\n[default", "Admin"), "prod-default-admin");
        assert_eq!(profile_name("  My  Account ", "Role/X"), "my-account-role-x");
    }

    #[test]
    fn values_are_single_line_and_inert() {
        assert_eq!(ini_value("a\nb = c"), "ab = c");
        assert_eq!(ini_value(" x'; rm -rf ~ #"), "x__ rm -rf ~ _");
    }

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("/usr/bin/cone"), "/usr/bin/cone");
        assert_eq!(shell_quote("/my dir/cone"), "'/my dir/cone'");
        assert_eq!(shell_quote("it's"), r"'it'\''s'");
    }
}
