//! Durations as people type them: `90m`, `8h`, `1w2d`, `2h45m`.

/// Parses a duration made of `<n>w`, `<n>d`, `<n>h`, `<n>m`, `<n>s` parts into seconds.
pub fn parse(text: &str) -> Result<i64, String> {
    let bad = || format!("`{text}` is not a duration; use numbers with units w, d, h, m or s, such as `1h30m`");
    let mut total: i64 = 0;
    let mut number = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            number.push(c);
            continue;
        }
        let unit = match c {
            'w' => 604_800,
            'd' => 86_400,
            'h' => 3_600,
            'm' => 60,
            's' => 1,
            _ => return Err(bad()),
        };
        let n: i64 = number.parse().map_err(|_| bad())?;
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(bad)?;
        number.clear();
    }
    if !number.is_empty() || total == 0 {
        return Err(bad());
    }
    Ok(total)
}

/// The short form people read: `8h`, `1h30m`, `45s`.
pub fn format(secs: i64) -> String {
    let (h, m, s) = (secs / 3600, secs % 3600 / 60, secs % 60);
    let mut out = String::new();
    if h > 0 {
        out.push_str(&format!("{h}h"));
    }
    if m > 0 {
        out.push_str(&format!("{m}m"));
    }
    if s > 0 || out.is_empty() {
        out.push_str(&format!("{s}s"));
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn parses_and_formats() {
        assert_eq!(super::parse("1w2d"), Ok(777_600));
        assert_eq!(super::parse("2h45m"), Ok(9_900));
        assert!(super::parse("12").is_err());
        assert!(super::parse("3x").is_err());
        assert!(super::parse("").is_err());
        assert_eq!(super::format(5400), "1h30m");
        assert_eq!(super::format(8 * 3600), "8h");
        assert_eq!(super::format(4), "4s");
    }
}
