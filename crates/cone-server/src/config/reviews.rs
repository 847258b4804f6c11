//! Access review templates (`access_reviews` in the access document): a campaign's scope, reviewers and time to
//! decide, kept with the policies, so that an administrator starts one by name and, with `every`, the server opens
//! one on a schedule (docs/reviews.md).

use anyhow::{Result, bail};
use cone_api::{ReviewScope, Reviewers};
use serde::Deserialize;

use super::duration;

/// The shortest schedule: a review opened more often than daily is a mistake, not a cadence.
const MIN_EVERY: i64 = 24 * 3600;
const MAX_NAME: usize = 100;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReviewTemplate {
    /// What it is started by (`cone review campaign create --template NAME`); its campaigns are named after it and
    /// their day of opening.
    pub name: String,
    #[serde(default)]
    pub scope: ReviewScope,
    pub reviewers: Reviewers,
    /// How long reviewers have, from the campaign's opening.
    #[serde(with = "duration")]
    pub due_in: i64,
    /// Open a campaign this long after the last one from this template (the first after the sync that follows
    /// the template's arrival); absent, only by hand.
    #[serde(default, with = "duration")]
    pub every: i64,
}

/// Refuses templates that could not open a campaign as written.
pub(super) fn check(templates: &[ReviewTemplate]) -> Result<()> {
    let mut names = std::collections::HashSet::new();
    for t in templates {
        let name = t.name.as_str();
        let allowed = |c: char| c.is_ascii_alphanumeric() || "._-".contains(c);
        if name.is_empty() || name.len() > MAX_NAME || !name.chars().all(allowed) {
            bail!(
                "access_reviews: \"{name}\" is no template name; use 1 to {MAX_NAME} letters, digits, `.`, `_` and \
                 `-`, such as quarterly-production"
            );
        }
        if !names.insert(name) {
            bail!("access_reviews names \"{name}\" twice; give each template its own name");
        }
        if t.every != 0 && t.every < MIN_EVERY {
            bail!("access_reviews \"{name}\": every must be at least 1d (such as 90d), or absent to start it by hand");
        }
    }
    Ok(())
}
