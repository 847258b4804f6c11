//! The cone keys of an AWS CLI profile that `cone aws setup` wrote.

use anyhow::{Context, Result, bail};
use cone_core::awsconfig::ConfigFile;

use crate::files;

/// The cone keys of one profile.
pub struct ConeProfile {
    pub name: String,
    pub app_id: String,
    pub entitlement_id: String,
    pub account_id: String,
    pub role_name: String,
    pub region: Option<String>,
}

impl ConeProfile {
    pub fn read(name: &str) -> Result<ConeProfile> {
        let path = files::aws_config_path()?;
        let doc = ConfigFile::parse(&files::read_optional(&path)?.unwrap_or_default());
        let keys = doc.profile(name).with_context(|| {
            format!("There is no profile \"{name}\" in {}; run `cone aws setup` to create it.", path.display())
        })?;
        let get = |k: &str| keys.get(k).filter(|v| !v.is_empty()).cloned();
        let (Some(app_id), Some(entitlement_id)) = (get("cone_app_id"), get("cone_entitlement_id")) else {
            bail!(
                "Missing cone_app_id or cone_entitlement_id in profile \"{name}\". Delete the profile from {} and re-run `cone aws setup` to recreate it.",
                path.display()
            );
        };
        let account_id =
            get("cone_account_id").or_else(|| entitlement_id.split('|').next().map(String::from)).unwrap_or_default();
        Ok(ConeProfile {
            name: name.into(),
            app_id,
            entitlement_id,
            account_id,
            role_name: get("cone_role_name").unwrap_or_default(),
            region: get("region"),
        })
    }
}
