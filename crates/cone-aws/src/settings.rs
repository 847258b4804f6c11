//! How the connector reaches AWS, under baton-aws's flag and environment names so that a deployment of
//! baton-aws can be pointed at Cone unchanged: ambient credentials, optionally one `sts:AssumeRole` hop
//! (with an External ID) into the integration role, the IAM Identity Center region, and the features.

use aws_config::sts::AssumeRoleProvider;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use std::sync::{Mutex, PoisonError};

use aws_credential_types::Credentials;
use aws_credential_types::provider::error::CredentialsError;
use aws_credential_types::provider::{ProvideCredentials, SharedCredentialsProvider, future};
use clap::builder::BoolishValueParser;
use clap::{Args, Parser};

use crate::Connector;
use crate::error::{ConnectorError, causes};
use crate::ratelimit::{ApiFamily, RateLimits, Rates};
use crate::scim::{Scim, Secret};

/// The session name on the assumed role, as CloudTrail shows it.
const SESSION_NAME: &str = "cone-aws";

/// Where and as whom the connector calls AWS. Every field is a flag and a `BATON_*` (or `CONE_AWS_*`)
/// environment variable; [`AwsSettings::from_env`] reads the variables alone.
#[derive(Debug, Clone, PartialEq, Eq, Args)]
pub struct AwsSettings {
    /// Region where IAM Identity Center is enabled.
    #[arg(
        long = "global-aws-sso-region",
        env = "BATON_GLOBAL_AWS_SSO_REGION",
        default_value = "us-east-1",
        value_parser = parse_region
    )]
    pub sso_region: String,

    /// Role to assume (one `sts:AssumeRole` hop from the ambient credentials) before calling AWS, e.g.
    /// `arn:aws:iam::111122223333:role/ConeIntegration`. Without it the ambient credentials are used as they are.
    #[arg(long = "role-arn", env = "BATON_ROLE_ARN", value_parser = parse_role_arn)]
    pub role_arn: Option<String>,

    /// External ID to present when assuming `--role-arn` (the role's trust policy must require the same).
    #[arg(
        long = "external-id",
        env = "BATON_EXTERNAL_ID",
        requires = "role_arn",
        hide_env_values = true,
        value_parser = parse_external_id
    )]
    pub external_id: Option<String>,

    /// Read account names and states from AWS Organizations (needs `organizations:ListAccounts` in the
    /// management or a delegated administrator account). When false, accounts are the ones IAM Identity
    /// Center has permission sets provisioned to, known by id only.
    #[arg(
        long = "global-aws-orgs-enabled",
        env = "BATON_GLOBAL_AWS_ORGS_ENABLED",
        default_value = "true",
        value_parser = BoolishValueParser::new(),
        action = clap::ArgAction::Set
    )]
    pub orgs_enabled: bool,

    /// Use AWS IAM Identity Center. Accepted for baton-aws compatibility; Cone grants access only through
    /// IAM Identity Center, so it must stay true (unlike baton-aws, where it defaults to false).
    #[arg(
        long = "global-aws-sso-enabled",
        env = "BATON_GLOBAL_AWS_SSO_ENABLED",
        default_value = "true",
        value_parser = BoolishValueParser::new(),
        action = clap::ArgAction::Set
    )]
    pub sso_enabled: bool,

    /// Also read IAM in the account Cone's credentials are in: users, groups and their members, roles and
    /// the principals their trust policies allow, and the account alias (`cone-aws sync` only; baton-aws
    /// always reads IAM and has no such setting).
    #[arg(
        long = "sync-iam",
        env = "CONE_AWS_SYNC_IAM",
        default_value = "false",
        value_parser = BoolishValueParser::new(),
        action = clap::ArgAction::Set
    )]
    pub sync_iam: bool,

    /// Also read the access-key inventory: each IAM user's access keys with their status, creation and last
    /// use (metadata only; secret keys are never returned by these APIs).
    #[arg(
        long = "sync-secrets",
        env = "BATON_SYNC_SECRETS",
        default_value = "false",
        value_parser = BoolishValueParser::new(),
        action = clap::ArgAction::Set
    )]
    pub sync_secrets: bool,

    /// Name of the role to assume in each member account of the organisation to read its IAM (with
    /// `--sync-iam` or `--sync-secrets` and Organizations), as baton-aws's setting of the same name. Assumed from
    /// Cone's credentials without an External ID; accounts where it cannot be assumed are skipped and reported.
    #[arg(
        long = "iam-assume-role-name",
        env = "BATON_IAM_ASSUME_ROLE_NAME",
        default_value = DEFAULT_MEMBER_ROLE,
        value_parser = parse_role_name
    )]
    pub member_role: String,

    /// Read each user's `active` flag from IAM Identity Center's SCIM API too (with `BATON_SCIM_ENDPOINT` and
    /// `BATON_SCIM_TOKEN`): someone deactivated there leaves Cone as if disabled in Identity Center.
    #[arg(
        long = "scim-enabled",
        env = "BATON_SCIM_ENABLED",
        default_value = "false",
        value_parser = BoolishValueParser::new(),
        action = clap::ArgAction::Set
    )]
    pub scim_enabled: bool,

    /// IAM Identity Center's SCIM endpoint, `https://scim.<region>.amazonaws.com/<tenant>/scim/v2`.
    #[arg(long = "scim-endpoint", env = "BATON_SCIM_ENDPOINT")]
    pub scim_endpoint: Option<String>,

    /// The SCIM access token IAM Identity Center issued (Settings, Automatic provisioning).
    #[arg(long = "scim-token", env = "BATON_SCIM_TOKEN", hide_env_values = true, value_parser = secret)]
    pub scim_token: Option<Secret>,

    #[command(flatten)]
    pub rates: Rates,
}

fn secret(value: &str) -> Result<Secret, String> {
    Ok(Secret(value.to_string()))
}

/// The role AWS Organizations creates in each account it creates.
pub const DEFAULT_MEMBER_ROLE: &str = "OrganizationAccountAccessRole";

/// Parses the environment alone (no command line) into [`AwsSettings`].
#[derive(Parser)]
#[command(no_binary_name = true)]
struct FromEnv {
    #[command(flatten)]
    settings: AwsSettings,
}

impl AwsSettings {
    /// The settings given by the environment variables, with defaults for the unset ones.
    pub fn from_env() -> Result<AwsSettings, ConnectorError> {
        let parsed = FromEnv::try_parse_from(std::iter::empty::<String>())
            .map_err(|e| ConnectorError::InvalidSettings { message: e.to_string().trim().to_string() })?;
        Ok(parsed.settings)
    }

    /// Checks what a flag-by-flag parse cannot: settings that contradict each other or Cone.
    pub fn validate(&self) -> Result<(), ConnectorError> {
        if !self.sso_enabled {
            return Err(ConnectorError::InvalidSettings {
                message: "BATON_GLOBAL_AWS_SSO_ENABLED (--global-aws-sso-enabled) is false, but Cone reads and grants \
                          access only through IAM Identity Center; unset it or set it to true"
                    .into(),
            });
        }
        self.scim()?;
        Ok(())
    }

    /// The SCIM client the `BATON_SCIM_*` settings ask for, if any; settings that half ask for one are refused
    /// rather than ignored.
    pub fn scim(&self) -> Result<Option<Scim>, ConnectorError> {
        let invalid = |message: &str| Err(ConnectorError::InvalidSettings { message: message.into() });
        match (self.scim_enabled, &self.scim_endpoint, &self.scim_token) {
            (true, Some(endpoint), Some(Secret(token))) => Scim::new(endpoint, token).map(Some),
            (true, _, _) => invalid(
                "BATON_SCIM_ENABLED is true but BATON_SCIM_ENDPOINT or BATON_SCIM_TOKEN is missing; set both (IAM \
                 Identity Center, Settings, Automatic provisioning) or set BATON_SCIM_ENABLED=false",
            ),
            (false, None, None) => Ok(None),
            (false, _, _) => invalid(
                "BATON_SCIM_ENDPOINT or BATON_SCIM_TOKEN is set but BATON_SCIM_ENABLED is not true; set it to true to \
                 read users' active flag through SCIM, or unset them",
            ),
        }
    }

    /// The SDK configuration these settings describe: the standard credential chain (environment, profile,
    /// instance or task role; `AWS_ENDPOINT_URL` honoured) in the IAM Identity Center region, behind the
    /// assumed role if one is set. STS calls of the assumed role draw on `limits`. Credentials are fetched
    /// once here, so that a wrong role or External ID fails now rather than in the middle of a sync.
    pub async fn sdk_config(&self, limits: &RateLimits) -> Result<SdkConfig, ConnectorError> {
        self.validate()?;
        let base =
            aws_config::defaults(BehaviorVersion::latest()).region(Region::new(self.sso_region.clone())).load().await;
        let Some(role_arn) = &self.role_arn else {
            let Some(credentials) = base.credentials_provider() else {
                return Err(ConnectorError::NoCredentials { message: "no credentials provider is configured".into() });
            };
            credentials
                .provide_credentials()
                .await
                .map_err(|e| ConnectorError::NoCredentials { message: causes(&e) })?;
            return Ok(base);
        };
        let provider =
            assumed(&base, limits, role_arn, SESSION_NAME, self.external_id.as_deref()).await.map_err(|e| {
                ConnectorError::AssumeRoleFailed {
                    role_arn: role_arn.clone(),
                    with_external_id: self.external_id.is_some(),
                    message: causes(&e),
                }
            })?;
        Ok(base.into_builder().credentials_provider(provider).build())
    }

    /// A connector as these settings describe, its AWS calls (STS included) paced by [`Self::rates`].
    pub async fn connect(&self) -> Result<Connector, ConnectorError> {
        let limits = RateLimits::new(&self.rates);
        let sdk = self.sdk_config(&limits).await?;
        let mut connector = Connector::configured(&sdk, limits, self.orgs_enabled, &self.member_role);
        connector.scim = self.scim()?;
        Ok(connector)
    }
}

/// `role_arn` assumed with `base`'s credentials (STS calls drawing on `limits`), its credentials fetched once
/// now so that a role that cannot be assumed fails here rather than at the first call that needs it.
pub(crate) async fn assumed(
    base: &SdkConfig,
    limits: &RateLimits,
    role_arn: &str,
    session_name: &str,
    external_id: Option<&str>,
) -> Result<SharedCredentialsProvider, CredentialsError> {
    // AssumeRoleProvider panics without one; a configuration loaded by aws_config always has it.
    if base.time_source().is_none() {
        return Err(CredentialsError::invalid_configuration(
            "the AWS SDK configuration has no time source; load it with aws_config::defaults",
        ));
    }
    let role = AssumeRoleProvider::builder(role_arn).session_name(session_name).configure(base);
    let role = match external_id {
        Some(id) => role.external_id(id),
        None => role,
    };
    let provider = StsRateLimited { inner: role.build().await, limits: limits.clone(), fetched: Mutex::default() };
    let first = provider.provide_credentials().await?;
    *provider.first() = Some(first);
    Ok(SharedCredentialsProvider::new(provider))
}

/// The assumed role's credentials provider, taking an STS token before each AssumeRole. The SDK's identity
/// cache calls it only when the credentials near expiry.
#[derive(Debug)]
struct StsRateLimited {
    inner: AssumeRoleProvider,
    limits: RateLimits,
    /// The credentials fetched to check the role, handed to the first caller instead of assuming it again.
    fetched: Mutex<Option<Credentials>>,
}

impl StsRateLimited {
    fn first(&self) -> std::sync::MutexGuard<'_, Option<Credentials>> {
        self.fetched.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl ProvideCredentials for StsRateLimited {
    fn provide_credentials<'a>(&'a self) -> future::ProvideCredentials<'a>
    where
        Self: 'a,
    {
        future::ProvideCredentials::new(async move {
            if let Some(fetched) = self.first().take() {
                return Ok(fetched);
            }
            self.limits.acquire_for(ApiFamily::Sts, "sts:AssumeRole").await;
            self.inner.provide_credentials().await
        })
    }
}

/// A region name such as `us-east-1` or `us-gov-west-1`: lowercase letters, digits and dashes.
fn parse_region(value: &str) -> Result<String, String> {
    let parts: Vec<&str> = value.split('-').collect();
    let well_formed = parts.len() >= 3
        && parts.iter().all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
        && parts.last().is_some_and(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if well_formed {
        Ok(value.to_string())
    } else {
        Err(format!(
            "`{value}` is not an AWS region name; give the region where IAM Identity Center is enabled, e.g. us-east-1"
        ))
    }
}

/// An IAM role ARN: `arn:<partition>:iam::<12-digit account>:role/<path and name>`.
fn parse_role_arn(value: &str) -> Result<String, String> {
    let parts: Vec<&str> = value.splitn(6, ':').collect();
    let well_formed = matches!(
        parts.as_slice(),
        ["arn", partition, "iam", "", account, resource]
            if !partition.is_empty()
                && account.len() == 12
                && account.bytes().all(|b| b.is_ascii_digit())
                && resource.strip_prefix("role/").is_some_and(|name| !name.is_empty())
    );
    if well_formed {
        Ok(value.to_string())
    } else {
        Err(format!(
            "`{value}` is not an IAM role ARN; expected arn:aws:iam::<12-digit account id>:role/<name>, \
             as the IAM console shows on the role's page"
        ))
    }
}

/// An IAM role name: 1 to 64 letters, digits and `+=,.@_-`.
fn parse_role_name(value: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@_-".contains(c);
    if (1..=64).contains(&value.len()) && value.chars().all(allowed) {
        Ok(value.to_string())
    } else {
        Err(format!(
            "`{value}` is not an IAM role name (1 to 64 letters, digits and +=,.@_-); give the name only, not an ARN, \
             e.g. {DEFAULT_MEMBER_ROLE}"
        ))
    }
}

/// An External ID as STS accepts it: 2 to 1224 characters of letters, digits and `+=,.@:/-_`.
pub(crate) fn parse_external_id(value: &str) -> Result<String, String> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || "+=,.@:/-_".contains(c);
    if !(2..=1224).contains(&value.len()) {
        Err(format!("the External ID must be 2 to 1224 characters long (it has {})", value.len()))
    } else if let Some(bad) = value.chars().find(|c| !allowed(*c)) {
        Err(format!("the External ID may hold only letters, digits and +=,.@:/-_ (it has {bad:?})"))
    } else {
        Ok(value.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::num::NonZeroU32;

    /// Parses a command line the way the binary does; the tests set no `BATON_*` variables.
    fn parse(args: &[&str]) -> Result<AwsSettings, clap::Error> {
        FromEnv::try_parse_from(args).map(|p| p.settings)
    }

    #[test]
    fn defaults_are_ambient_credentials_in_us_east_1_with_organizations_and_no_iam() {
        let s = parse(&[]).expect("no flags parse");
        assert_eq!(
            s,
            AwsSettings {
                sso_region: "us-east-1".into(),
                role_arn: None,
                external_id: None,
                orgs_enabled: true,
                sso_enabled: true,
                sync_iam: false,
                sync_secrets: false,
                member_role: DEFAULT_MEMBER_ROLE.into(),
                scim_enabled: false,
                scim_endpoint: None,
                scim_token: None,
                rates: Rates::DEFAULT,
            }
        );
        assert!(s.validate().is_ok());
    }

    #[test]
    fn reads_baton_flags() {
        let s = parse(&[
            "--global-aws-sso-region",
            "eu-west-1",
            "--role-arn",
            "arn:aws:iam::111122223333:role/integrations/ConeIntegration",
            "--external-id",
            "cone-3f9a0c",
            "--global-aws-orgs-enabled",
            "0",
            "--sso-rate",
            "5",
            "--sync-secrets",
            "yes",
        ])
        .expect("valid flags parse");
        assert_eq!(s.sso_region, "eu-west-1");
        assert_eq!(s.role_arn.as_deref(), Some("arn:aws:iam::111122223333:role/integrations/ConeIntegration"));
        assert_eq!(s.external_id.as_deref(), Some("cone-3f9a0c"));
        assert!(!s.orgs_enabled);
        assert!(s.sync_secrets && !s.sync_iam);
        assert_eq!(s.rates.identity_center, NonZeroU32::new(5).expect("nonzero"));
        assert_eq!(s.rates.organizations, Rates::DEFAULT.organizations);
    }

    #[test]
    fn booleans_accept_what_baton_deployments_write() {
        for (text, expected) in
            [("true", true), ("TRUE", true), ("1", true), ("yes", true), ("false", false), ("0", false)]
        {
            let s = parse(&["--global-aws-orgs-enabled", text]).expect("boolish value parses");
            assert_eq!(s.orgs_enabled, expected, "{text}");
        }
        assert!(parse(&["--global-aws-orgs-enabled", "maybe"]).is_err());
    }

    #[test]
    fn an_external_id_needs_a_role() {
        let err = parse(&["--external-id", "cone-3f9a0c"]).expect_err("external id alone is refused");
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument, "{err}");
    }

    #[test]
    fn sso_disabled_is_refused_with_a_reason() {
        let s = parse(&["--global-aws-sso-enabled", "false"]).expect("parses");
        let err = s.validate().expect_err("Cone needs Identity Center");
        assert!(matches!(err, ConnectorError::InvalidSettings { .. }));
        assert!(err.to_string().contains("BATON_GLOBAL_AWS_SSO_ENABLED"), "{err}");
    }

    #[test]
    fn scim_settings_are_used_whole_or_refused() {
        let https = "https://scim.us-east-1.amazonaws.com/abc/scim/v2";
        assert!(parse(&[]).unwrap().scim().unwrap().is_none());
        let on = ["--scim-enabled", "true", "--scim-endpoint", https, "--scim-token", "t"];
        assert!(parse(&on).unwrap().scim().unwrap().is_some());
        let local = ["--scim-enabled", "true", "--scim-endpoint", "http://127.0.0.1:9/scim/v2", "--scim-token", "t"];
        assert!(parse(&local).unwrap().scim().unwrap().is_some());
        for (args, says) in [
            (
                &["--scim-enabled", "true", "--scim-token", "t"][..],
                "BATON_SCIM_ENDPOINT or BATON_SCIM_TOKEN is missing",
            ),
            (&["--scim-endpoint", https], "BATON_SCIM_ENABLED is not true"),
            (
                &["--scim-enabled", "1", "--scim-endpoint", "http://scim.example.com/v2", "--scim-token", "t"],
                "not https",
            ),
            (&["--scim-enabled", "1", "--scim-endpoint", "scim", "--scim-token", "t"], "is not a URL"),
        ] {
            let err = parse(args).unwrap().validate().expect_err(says).to_string();
            assert!(err.contains(says), "{args:?}: {err}");
        }
    }

    #[test]
    fn the_scim_token_is_never_printed() {
        let s = parse(&["--scim-token", "very-secret"]).unwrap();
        assert!(!format!("{s:?}").contains("very-secret"));
    }

    #[test]
    fn zero_rates_are_refused() {
        assert!(parse(&["--sts-rate", "0"]).is_err());
    }

    #[test]
    fn role_arns_are_checked() {
        for good in ["arn:aws:iam::111122223333:role/Cone", "arn:aws-us-gov:iam::111122223333:role/a/b/Cone"] {
            assert_eq!(parse_role_arn(good).as_deref(), Ok(good));
        }
        for bad in [
            "ConeIntegration",
            "arn:aws:iam::1111:role/Cone",
            "arn:aws:iam::111122223333:user/alice",
            "arn:aws:sts::111122223333:role/Cone",
            "arn:aws:iam::111122223333:role/",
        ] {
            let err = parse_role_arn(bad).expect_err(bad);
            assert!(err.contains("arn:aws:iam::<12-digit account id>:role/<name>"), "{err}");
        }
    }

    #[test]
    fn member_role_names_are_checked() {
        let s = parse(&["--iam-assume-role-name", "ConeIamReader"]).expect("a role name parses");
        assert_eq!(s.member_role, "ConeIamReader");
        assert!(parse(&["--iam-assume-role-name", "arn:aws:iam::111122223333:role/X"]).is_err());
        assert!(parse(&["--iam-assume-role-name", ""]).is_err());
    }

    #[test]
    fn external_ids_follow_sts_rules() {
        assert!(parse_external_id("a").is_err());
        assert!(parse_external_id(&"x".repeat(1225)).is_err());
        assert!(parse_external_id("has space").is_err());
        assert_eq!(parse_external_id("Ab0+=,.@:/-_").as_deref(), Ok("Ab0+=,.@:/-_"));
    }

    #[test]
    fn regions_are_checked() {
        for good in ["us-east-1", "eu-central-2", "us-gov-west-1", "ap-southeast-4"] {
            assert_eq!(parse_region(good).as_deref(), Ok(good));
        }
        for bad in ["", "us-east", "US-EAST-1", "us_east_1", "https://sso.us-east-1.amazonaws.com"] {
            assert!(parse_region(bad).is_err(), "{bad}");
        }
    }
}
