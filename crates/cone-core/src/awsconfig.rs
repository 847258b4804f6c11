//! Reads and edits `~/.aws/config` without disturbing anything cone did not write: the document is kept as its
//! original lines, lookups parse them on demand, and additions are appended as whole sections.

use std::collections::BTreeMap;

/// The comment line that marks a section cone wrote.
pub const MANAGED_MARKER: &str = "# Managed by cone; edit with `cone aws setup`.";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigFile {
    text: String,
}

impl ConfigFile {
    pub fn parse(text: &str) -> ConfigFile {
        ConfigFile { text: text.to_string() }
    }

    pub fn render(&self) -> &str {
        &self.text
    }

    /// The keys of `[profile NAME]` (or `[default]` for `default`), lower-cased; later keys win, as in the Rust SDK.
    pub fn profile(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.section(|section| profile_of(section) == Some(name))
    }

    /// The keys of `[sso-session NAME]`.
    pub fn sso_session(&self, name: &str) -> Option<BTreeMap<String, String>> {
        self.section(|section| section.strip_prefix("sso-session ").map(str::trim) == Some(name))
    }

    /// The names of the `[sso-session NAME]` sections, in file order.
    pub fn sso_session_names(&self) -> Vec<String> {
        self.text
            .lines()
            .filter_map(|l| section_name(l.trim()))
            .filter_map(|s| s.strip_prefix("sso-session ").map(|n| n.trim().to_string()))
            .collect()
    }

    /// The merged keys of every section `wanted` picks (by its normalised name), or `None` when there is none.
    fn section(&self, wanted: impl Fn(&str) -> bool) -> Option<BTreeMap<String, String>> {
        let mut found = false;
        let mut current = false;
        let mut keys = BTreeMap::new();
        for line in self.text.lines() {
            let trimmed = line.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed.starts_with(';') {
                continue;
            }
            if let Some(section) = section_name(trimmed) {
                current = wanted(&section);
                found |= current;
                continue;
            }
            // Indented lines belong to a nested value (`s3 =` and friends), not to the profile.
            if current
                && !line.starts_with([' ', '\t'])
                && let Some((k, v)) = trimmed.split_once(['=', ':'])
            {
                keys.insert(k.trim().to_lowercase(), v.trim().to_string());
            }
        }
        found.then_some(keys)
    }

    pub fn has_profile(&self, name: &str) -> bool {
        self.profile(name).is_some()
    }

    /// Appends a marked `[profile NAME]` section. Callers sanitise names and values (see `naming`).
    pub fn add_profile(&mut self, name: &str, entries: &[(&str, String)]) {
        if !self.text.is_empty() && !self.text.ends_with('\n') {
            self.text.push('\n');
        }
        if !self.text.is_empty() && !self.text.ends_with("\n\n") {
            self.text.push('\n');
        }
        self.text.push_str(MANAGED_MARKER);
        self.text.push_str(&format!("\n[profile {name}]\n"));
        for (key, value) in entries {
            self.text.push_str(&format!("{key} = {value}\n"));
        }
    }

    /// The profiles of sections cone wrote (those right after the marker line), in file order.
    pub fn managed_profiles(&self) -> Vec<String> {
        let lines: Vec<&str> = self.text.lines().collect();
        lines
            .windows(2)
            .filter(|w| w[0].trim() == MANAGED_MARKER)
            .filter_map(|w| section_name(w[1].trim()).and_then(|s| profile_of(&s).map(String::from)))
            .collect()
    }

    /// Removes a section cone wrote (marker, header and keys) with the blank line that separated it, leaving every
    /// other byte as it was. Sections cone did not write are never removed; false when there is none by that name.
    pub fn remove_managed_profile(&mut self, name: &str) -> bool {
        let lines: Vec<&str> = self.text.split_inclusive('\n').collect();
        let header_names = |i: usize| section_name(lines[i].trim()).is_some_and(|s| profile_of(&s) == Some(name));
        let Some(start) =
            (0..lines.len().saturating_sub(1)).find(|&i| lines[i].trim() == MANAGED_MARKER && header_names(i + 1))
        else {
            return false;
        };
        let mut end = start + 2;
        while end < lines.len() && section_name(lines[end].trim()).is_none() && lines[end].trim() != MANAGED_MARKER {
            end += 1;
        }
        let blank = |i: usize| lines[i].trim().is_empty();
        let mut keys_end = end;
        while keys_end > start + 2 && blank(keys_end - 1) {
            keys_end -= 1;
        }
        // Take the blank line before the section, or failing that the ones after it, so that the file reads as if
        // the section had never been added.
        let (lo, hi) = if start > 0 && blank(start - 1) { (start - 1, keys_end) } else { (start, end) };
        self.text = lines[..lo].iter().chain(&lines[hi..]).copied().collect();
        true
    }
}

fn section_name(line: &str) -> Option<String> {
    let inner = line.strip_prefix('[')?.strip_suffix(']')?;
    Some(inner.split_whitespace().collect::<Vec<_>>().join(" "))
}

fn profile_of(section: &str) -> Option<&str> {
    if section == "default" {
        return Some("default");
    }
    section.strip_prefix("profile ").map(|p| p.trim().trim_matches('"'))
}

#[cfg(test)]
mod tests {
    use super::*;

    const USER_FILE: &str = "# my settings\n[default]\nregion = eu-west-1 # keep\n\n[profile dev]\nsso_session = corp\ns3 =\n  max_concurrent_requests = 20\nREGION: us-east-2\n[sso-session corp]\nsso_region = us-east-1";

    #[test]
    fn reads_profiles_like_the_sdks() {
        let doc = ConfigFile::parse(USER_FILE);
        let dev = doc.profile("dev").unwrap();
        assert_eq!(dev.get("region").map(String::as_str), Some("us-east-2"));
        assert_eq!(dev.get("sso_session").map(String::as_str), Some("corp"));
        assert!(!dev.contains_key("max_concurrent_requests"));
        assert!(doc.has_profile("default"));
        assert!(!doc.has_profile("corp"));
        assert_eq!(doc.sso_session_names(), vec!["corp"]);
        assert_eq!(doc.sso_session("corp").unwrap()["sso_region"], "us-east-1");
        assert!(doc.sso_session("dev").is_none());
    }

    #[test]
    fn additions_preserve_every_existing_byte() {
        let mut doc = ConfigFile::parse(USER_FILE);
        doc.add_profile("staging-readonlyaccess", &[("region", "us-east-1".into())]);
        let out = doc.render();
        assert!(out.starts_with(USER_FILE));
        assert!(
            out.ends_with(&format!("\n\n{MANAGED_MARKER}\n[profile staging-readonlyaccess]\nregion = us-east-1\n"))
        );
        let reparsed = ConfigFile::parse(out);
        assert_eq!(reparsed.profile("dev"), ConfigFile::parse(USER_FILE).profile("dev"));
        assert!(reparsed.has_profile("staging-readonlyaccess"));
    }

    #[test]
    fn removing_a_managed_section_undoes_its_addition() {
        let mut doc = ConfigFile::parse(USER_FILE);
        doc.add_profile("a", &[("region", "us-east-1".into())]);
        let with_a = doc.render().to_string();
        doc.add_profile("b", &[("region", "us-east-2".into())]);
        doc.add_profile("c", &[]);
        assert_eq!(doc.managed_profiles(), vec!["a", "b", "c"]);
        assert!(doc.remove_managed_profile("c") && doc.remove_managed_profile("b"));
        assert_eq!(doc.render(), with_a);
        assert!(doc.remove_managed_profile("a"));
        assert_eq!(doc.render(), USER_FILE.to_string() + "\n");
        // Never a section cone did not write.
        assert!(!doc.remove_managed_profile("dev") && doc.has_profile("dev"));

        let mut doc = ConfigFile::parse("");
        doc.add_profile("a", &[]);
        doc.add_profile("b", &[("k", "v".into())]);
        assert!(doc.remove_managed_profile("a"));
        assert_eq!(doc.render(), format!("{MANAGED_MARKER}\n[profile b]\nk = v\n"));
    }

    #[test]
    fn empty_file_gets_no_leading_blank_line() {
        let mut doc = ConfigFile::parse("");
        doc.add_profile("p", &[]);
        assert_eq!(doc.render(), format!("{MANAGED_MARKER}\n[profile p]\n"));
    }
}
