//! The service control policy that ends revoked role sessions (its text comes from `cone_core::sessions`): made,
//! changed, attached and detached until AWS Organizations holds what was asked, and deleted when nothing is left
//! to deny. Every step looks at what exists first, so running it again after a failure finishes the work.

use std::collections::BTreeSet;

use aws_sdk_organizations::types::PolicyType;
use serde::{Deserialize, Serialize};

use crate::connector::Connector;
use crate::error::{ConnectorError, Op};
use crate::paging::{call_retried, list_all};

const LIST_POLICIES: Op = Op::organizations("ListPolicies");
const CREATE_POLICY: Op = Op::organizations("CreatePolicy");
const UPDATE_POLICY: Op = Op::organizations("UpdatePolicy");
const DELETE_POLICY: Op = Op::organizations("DeletePolicy");
const ATTACH_POLICY: Op = Op::organizations("AttachPolicy");
const DETACH_POLICY: Op = Op::organizations("DetachPolicy");
const LIST_TARGETS: Op = Op::organizations("ListTargetsForPolicy");

/// The policy's name in AWS Organizations: Cone finds its policy by it, and changes no other.
pub const DENIAL_POLICY: &str = "cone-revoked-sessions";

/// What the policy should be: its JSON text and the accounts it is attached to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Wanted {
    pub document: String,
    pub accounts: BTreeSet<String>,
}

impl Connector {
    /// Makes Cone's service control policy hold `wanted`, attached to exactly its accounts; with `None`, detaches
    /// and deletes it, leaving nothing behind.
    pub async fn keep_denial(&self, wanted: Option<&Wanted>) -> Result<(), ConnectorError> {
        if !self.organizations {
            return Err(ConnectorError::InvalidSettings {
                message:
                    "revoking role sessions (cone-server's aws.revoke_sessions) keeps a service control policy in \
                          AWS Organizations, which this connector does not use: set BATON_GLOBAL_AWS_ORGS_ENABLED=true \
                          (the default) where it runs, or remove aws.revoke_sessions"
                        .into(),
            });
        }
        let existing = self.denial_policy().await?;
        let Some(wanted) = wanted else {
            if let Some(id) = existing {
                for target in self.policy_targets(&id).await? {
                    self.detach(&id, &target).await?;
                }
                let delete = || self.org.delete_policy().policy_id(&id).send();
                call_retried(&self.limits, &self.timing, DELETE_POLICY, delete).await?;
            }
            return Ok(());
        };
        let id = match existing {
            Some(id) => {
                let update = || self.org.update_policy().policy_id(&id).content(&wanted.document).send();
                call_retried(&self.limits, &self.timing, UPDATE_POLICY, update).await?;
                id
            }
            None => {
                let create = || {
                    self.org
                        .create_policy()
                        .name(DENIAL_POLICY)
                        .description("Denies role sessions issued before Cone revoked them. Managed by Cone.")
                        .r#type(PolicyType::ServiceControlPolicy)
                        .content(&wanted.document)
                        .send()
                };
                let out = call_retried(&self.limits, &self.timing, CREATE_POLICY, create).await?;
                out.policy.and_then(|p| p.policy_summary).and_then(|s| s.id).ok_or_else(|| {
                    ConnectorError::Rejected {
                        operation: CREATE_POLICY.name,
                        status: None,
                        code: "NoPolicyId".into(),
                        message: "AWS Organizations created the policy but did not say its id".into(),
                    }
                })?
            }
        };
        let attached = self.policy_targets(&id).await?;
        for account in wanted.accounts.difference(&attached) {
            let attach = || self.org.attach_policy().policy_id(&id).target_id(account).send();
            match call_retried(&self.limits, &self.timing, ATTACH_POLICY, attach).await {
                Err(e) if e.is_rejected_as("DuplicatePolicyAttachmentException") => {}
                other => {
                    other?;
                }
            }
        }
        for target in attached.difference(&wanted.accounts) {
            self.detach(&id, target).await?;
        }
        Ok(())
    }

    /// The id of Cone's policy, if it exists.
    async fn denial_policy(&self) -> Result<Option<String>, ConnectorError> {
        let policies = list_all(
            &self.limits,
            &self.timing,
            LIST_POLICIES,
            |token| self.org.list_policies().filter(PolicyType::ServiceControlPolicy).set_next_token(token).send(),
            |out| (out.policies.unwrap_or_default(), out.next_token),
        )
        .await?;
        Ok(policies.into_iter().find(|p| p.name.as_deref() == Some(DENIAL_POLICY)).and_then(|p| p.id))
    }

    async fn policy_targets(&self, id: &str) -> Result<BTreeSet<String>, ConnectorError> {
        let targets = list_all(
            &self.limits,
            &self.timing,
            LIST_TARGETS,
            |token| self.org.list_targets_for_policy().policy_id(id).set_next_token(token).send(),
            |out| (out.targets.unwrap_or_default(), out.next_token),
        )
        .await?;
        Ok(targets.into_iter().filter_map(|t| t.target_id).collect())
    }

    async fn detach(&self, id: &str, target: &str) -> Result<(), ConnectorError> {
        let detach = || self.org.detach_policy().policy_id(id).target_id(target).send();
        match call_retried(&self.limits, &self.timing, DETACH_POLICY, detach).await {
            Err(e) if e.is_rejected_as("PolicyNotAttachedException") => Ok(()),
            other => other.map(|_| ()),
        }
    }
}
