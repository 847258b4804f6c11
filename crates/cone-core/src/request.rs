//! Validation of a grant request against its entitlement: duration and extensions (the form: [`crate::form`]).

/// What is wrong with a request, one message per problem, each saying what to change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Invalid(pub Vec<String>);

/// The longest justification, comment or reason Cone takes, in characters: several paragraphs, not a document.
/// Each is kept with its task and in the audit log for good.
pub const MAX_TEXT: usize = 2000;
/// The most comments one task takes.
pub const MAX_COMMENTS: i64 = 100;

/// Checks the length of a text someone typed, named `what` ("justification").
pub fn text(what: &str, text: &str) -> Result<(), Invalid> {
    let n = text.chars().count();
    if n > MAX_TEXT {
        return Err(Invalid(vec![format!(
            "The {what} is {n} characters long, more than the {MAX_TEXT} Cone takes; shorten it, and link to a \
             document for the rest."
        )]));
    }
    Ok(())
}

/// The duration to grant: the one asked for, or `default` when none was; never more than `max`.
pub fn validate(duration_secs: Option<i64>, default_secs: i64, max_secs: i64) -> Result<i64, Invalid> {
    let duration = duration_secs.unwrap_or(default_secs.min(max_secs));
    if duration <= 0 {
        return Err(Invalid(vec!["The duration must be positive.".to_string()]));
    }
    if duration > max_secs {
        return Err(Invalid(vec![format!(
            "The duration {} exceeds this entitlement's maximum of {}; ask for less.",
            crate::duration::format(duration),
            crate::duration::format(max_secs)
        )]));
    }
    Ok(duration)
}

/// The end of a grant after extending it by `add_secs`: extensions count from the current end, are capped at
/// `max_extensions`, and the grant may never reach further than the entitlement's maximum from now.
pub fn extension_end(
    current_end: i64,
    now: i64,
    add_secs: i64,
    max_secs: i64,
    extensions_used: i64,
    max_extensions: i64,
) -> Result<i64, Invalid> {
    if extensions_used >= max_extensions {
        return Err(Invalid(vec![format!(
            "This grant was already extended {extensions_used} time(s), the most its policy allows; request access again once it ends."
        )]));
    }
    if add_secs <= 0 {
        return Err(Invalid(vec!["The extension must be positive.".to_string()]));
    }
    // Beyond the maximum whenever the sum overflows.
    let end = current_end.max(now).saturating_add(add_secs);
    if end > extended_end(current_end, now, add_secs, max_secs) {
        let room = max_secs - (current_end.max(now) - now);
        return Err(Invalid(vec![if room > 0 {
            format!(
                "Extending by {} would exceed this entitlement's maximum of {} from now; extend by at most {}.",
                crate::duration::format(add_secs),
                crate::duration::format(max_secs),
                crate::duration::format(room)
            )
        } else {
            format!(
                "The grant already runs for the entitlement's maximum of {}; extend it later.",
                crate::duration::format(max_secs)
            )
        }]));
    }
    Ok(end)
}

/// Where an approved extension moves a grant's end: by `add_secs` from its current end (or from now, once past),
/// never further than `max_secs` from now. A request is refused when this would cut it short ([`extension_end`]);
/// by the time it is approved, time has passed and the cap may apply.
pub fn extended_end(current_end: i64, now: i64, add_secs: i64, max_secs: i64) -> i64 {
    current_end.max(now).saturating_add(add_secs).min(now.saturating_add(max_secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_texts_are_refused_by_characters_not_bytes() {
        assert!(text("comment", &"é".repeat(MAX_TEXT)).is_ok());
        let e = text("justification", &"x".repeat(MAX_TEXT + 1)).unwrap_err();
        assert_eq!(
            e.0,
            [
                "The justification is 2001 characters long, more than the 2000 Cone takes; shorten it, and link to a document for the rest."
            ]
        );
    }

    #[test]
    fn extensions_count_from_the_current_end_and_are_capped() {
        // 30 min left, add 1 h, max 2 h from now.
        assert_eq!(extension_end(1_800, 0, 3_600, 7_200, 0, 2), Ok(5_400));
        // An end already in the past counts from now.
        assert_eq!(extension_end(-10, 0, 600, 7_200, 1, 2), Ok(600));
        let Err(Invalid(p)) = extension_end(1_800, 0, 7_200, 7_200, 0, 2) else { panic!() };
        assert!(p[0].contains("extend by at most 1h30m"), "{p:?}");
        assert!(extension_end(7_200, 0, 60, 7_200, 0, 2).is_err());
        let Err(Invalid(p)) = extension_end(0, 0, 60, 7_200, 2, 2) else { panic!() };
        assert!(p[0].contains("already extended 2 time(s)"), "{p:?}");
        assert!(extension_end(1_800, 0, 0, 7_200, 0, 2).is_err());
        assert!(extension_end(1_800, 0, -600, 7_200, 0, 2).is_err());
        assert!(extension_end(1_800, 0, i64::MAX, 7_200, 0, 2).is_err());
    }

    #[test]
    fn an_approved_extension_is_capped_at_the_maximum_from_now() {
        assert_eq!(extended_end(1_800, 0, 3_600, 7_200), 5_400);
        // Approved later: the cap moved with the clock.
        assert_eq!(extended_end(1_800, 600, 3_600, 7_200), 5_400);
        assert_eq!(extended_end(6_000, 0, 3_600, 7_200), 7_200);
        assert_eq!(extended_end(0, 0, i64::MAX, 7_200), 7_200);
    }

    #[test]
    fn durations() {
        assert_eq!(validate(None, 3600, 28800), Ok(3600));
        assert_eq!(validate(None, 3600, 60), Ok(60));
        assert_eq!(validate(Some(120), 3600, 3600), Ok(120));
        assert!(validate(Some(7200), 3600, 3600).is_err());
        assert!(validate(Some(0), 3600, 3600).is_err());
    }
}
