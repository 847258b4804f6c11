//! What `cone` keeps on disk and reads on every `credential_process` call: its settings, the cone keys of AWS
//! profiles, the AWS CLI caches it shares, and how it writes files. Kept apart from the rest of the CLI (the
//! `cone-cli` crate) so that the `cone` binary, which answers cache hits, stays small and starts fast.

pub mod cache;
pub mod files;
pub mod profile;
pub mod settings;

use anyhow::Result;

/// The `credential_process` JSON for AWS profile `aws_profile` of cone profile `cone_profile`, when the cache
/// holds credentials with enough time left; `None` sends the caller down the slow path.
pub fn cached_process_output(cone_profile: &str, aws_profile: &str) -> Result<Option<String>> {
    let p = profile::ConeProfile::read(aws_profile)?;
    let Some(aws) = settings::Settings::load(cone_profile)?.aws else { return Ok(None) };
    cache::fresh_role_credentials(&aws.sso_start_url, &p.account_id, &p.role_name)?
        .map(|c| c.process_json())
        .transpose()
}
