//! The IAM policies the integration role needs: the permissions policy for the chosen features, holding
//! exactly the actions those features call, and the trust policy that lets Cone's identity assume the role.

use serde_json::{Value, json};

use crate::settings::{DEFAULT_MEMBER_ROLE, parse_external_id};

/// What the integration role is for, beyond the always-needed IAM Identity Center sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// Create and delete account assignments (Cone's grants and revocations), and identity-store users and group
    /// memberships (`cone-aws provision`); with `iam`, IAM users and group memberships too.
    pub provisioning: bool,
    /// Read account names and states from AWS Organizations (`BATON_GLOBAL_AWS_ORGS_ENABLED`).
    pub organizations: bool,
    /// IAM users, groups with their members, roles with their trust policies, and the account alias, as
    /// `Connector::sync_iam` reads them (`--sync-iam`).
    pub iam: bool,
    /// The access-key inventory (`BATON_SYNC_SECRETS`): metadata only, never key secrets.
    pub secrets: bool,
    /// Keep the service control policy that ends revoked role sessions (cone-server's `aws.revoke_sessions`).
    pub revoke_sessions: bool,
}

/// One policy statement: actions on a resource.
struct Statement {
    sid: &'static str,
    actions: &'static [&'static str],
    resource: &'static str,
}

/// Every call `Connector::sync` makes, whatever the features.
const SYNC: Statement = Statement {
    sid: "ConeSyncIdentityCenter",
    actions: &[
        "identitystore:ListGroupMemberships",
        "identitystore:ListGroups",
        "identitystore:ListUsers",
        "sso:DescribePermissionSet",
        "sso:ListAccountAssignments",
        "sso:ListAccountAssignmentsForPrincipal",
        "sso:ListAccountsForProvisionedPermissionSet",
        "sso:ListInstances",
        "sso:ListPermissionSets",
        "sso:ListPermissionSetsProvisionedToAccount",
    ],
    resource: "*",
};

/// `Connector::assign` and `unassign`: the writes and the status polls. The look at the principal's assignments
/// that makes them idempotent (ListAccountAssignmentsForPrincipal) is a sync read too, so [`SYNC`] has it.
const PROVISION: Statement = Statement {
    sid: "ConeProvisionAccountAssignments",
    actions: &[
        "sso:CreateAccountAssignment",
        "sso:DeleteAccountAssignment",
        "sso:DescribeAccountAssignmentCreationStatus",
        "sso:DescribeAccountAssignmentDeletionStatus",
    ],
    resource: "*",
};

/// An assignment in the management account makes IAM Identity Center create or change the permission
/// set's role there with the caller's own IAM permissions (in member accounts its service-linked role does
/// it). Only roles IAM Identity Center owns are in reach.
const PROVISION_MANAGEMENT_ROLES: Statement = Statement {
    sid: "ConeProvisionInManagementAccountRoles",
    actions: &[
        "iam:AttachRolePolicy",
        "iam:CreateRole",
        "iam:DeleteRole",
        "iam:DeleteRolePolicy",
        "iam:DetachRolePolicy",
        "iam:GetRole",
        "iam:ListAttachedRolePolicies",
        "iam:ListRolePolicies",
        "iam:PutRolePolicy",
        "iam:UpdateRole",
        "iam:UpdateRoleDescription",
    ],
    resource: "arn:aws:iam::*:role/aws-reserved/sso.amazonaws.com/*",
};

/// The SAML provider IAM Identity Center keeps in the management account, read while it provisions there.
const PROVISION_MANAGEMENT_SAML: Statement = Statement {
    sid: "ConeProvisionInManagementAccountSaml",
    actions: &["iam:GetSAMLProvider"],
    resource: "arn:aws:iam::*:saml-provider/AWSSSO_*_DO_NOT_DELETE",
};

/// The listings IAM Identity Center makes with the caller's permissions when provisioning in the
/// management account.
const PROVISION_MANAGEMENT_LISTS: Statement = Statement {
    sid: "ConeProvisionInManagementAccountLists",
    actions: &["iam:ListPolicies", "iam:ListRoles"],
    resource: "*",
};

/// `cone-aws provision` in the identity store: users and group memberships, names resolved with GetUserId and
/// GetGroupId, a membership found with GetGroupMembershipId (or ListGroupMemberships where that is not
/// implemented), and a deleted user's memberships listed with ListGroupMembershipsForMember.
const PROVISION_IDENTITY_STORE: Statement = Statement {
    sid: "ConeProvisionIdentityStore",
    actions: &[
        "identitystore:CreateGroupMembership",
        "identitystore:CreateUser",
        "identitystore:DeleteGroupMembership",
        "identitystore:DeleteUser",
        "identitystore:GetGroupId",
        "identitystore:GetGroupMembershipId",
        "identitystore:GetUserId",
        "identitystore:ListGroupMemberships",
        "identitystore:ListGroupMembershipsForMember",
    ],
    resource: "*",
};

/// `cone-aws provision` in IAM: group membership (looked up with ListGroupsForUser), user creation with tags, and
/// a user's full deletion with everything IAM requires gone first.
const PROVISION_IAM: Statement = Statement {
    sid: "ConeProvisionIam",
    actions: &[
        "iam:AddUserToGroup",
        "iam:CreateUser",
        "iam:DeactivateMFADevice",
        "iam:DeleteAccessKey",
        "iam:DeleteLoginProfile",
        "iam:DeleteSSHPublicKey",
        "iam:DeleteServiceSpecificCredential",
        "iam:DeleteSigningCertificate",
        "iam:DeleteUser",
        "iam:DeleteUserPermissionsBoundary",
        "iam:DeleteUserPolicy",
        "iam:DeleteVirtualMFADevice",
        "iam:DetachUserPolicy",
        "iam:GetUser",
        "iam:ListAccessKeys",
        "iam:ListAttachedUserPolicies",
        "iam:ListGroupsForUser",
        "iam:ListMFADevices",
        "iam:ListSSHPublicKeys",
        "iam:ListServiceSpecificCredentials",
        "iam:ListSigningCertificates",
        "iam:ListUserPolicies",
        "iam:RemoveUserFromGroup",
        "iam:TagUser",
    ],
    resource: "*",
};

const ORGANIZATIONS: Statement =
    Statement { sid: "ConeReadOrganizationAccounts", actions: &["organizations:ListAccounts"], resource: "*" };

/// `Connector::keep_denial`: Cone's own service control policy, found by name, and where it is attached.
const REVOKE_SESSIONS: Statement = Statement {
    sid: "ConeRevokeRoleSessions",
    actions: &[
        "organizations:AttachPolicy",
        "organizations:CreatePolicy",
        "organizations:DeletePolicy",
        "organizations:DetachPolicy",
        "organizations:ListPolicies",
        "organizations:ListTargetsForPolicy",
        "organizations:UpdatePolicy",
    ],
    resource: "*",
};

/// `Connector::sync_iam` with IAM: one paged GetAccountAuthorizationDetails for users, groups, memberships and
/// roles, ListUsers for what it leaves out (PasswordLastUsed), and the account alias.
const IAM: Statement = Statement {
    sid: "ConeReadIam",
    actions: &["iam:GetAccountAuthorizationDetails", "iam:ListAccountAliases", "iam:ListUsers"],
    resource: "*",
};

/// `Connector::sync_iam` with secrets: the users, their keys' metadata, and when each key was last used.
const SECRETS: Statement = Statement {
    sid: "ConeReadAccessKeyMetadata",
    actions: &["iam:GetAccessKeyLastUsed", "iam:ListAccessKeys", "iam:ListUsers"],
    resource: "*",
};

/// The permissions policy (IAM JSON) for `features`, member accounts' role being the default
/// [`DEFAULT_MEMBER_ROLE`].
pub fn permissions_policy(features: &Features) -> Value {
    permissions_policy_with_member_role(features, DEFAULT_MEMBER_ROLE)
}

/// The permissions policy (IAM JSON) for `features`. An action that an earlier statement already grants
/// on the same resource is left out of later ones, so every action appears once. With Organizations and IAM or
/// secrets, `member_role` may be assumed in every account: the IAM sync reads each member account through it,
/// and that role needs the IAM statements' actions (`--iam`, `--secrets`) in its own permissions policy.
pub fn permissions_policy_with_member_role(features: &Features, member_role: &str) -> Value {
    let chosen: Vec<&Statement> = [
        (true, &SYNC),
        (features.provisioning, &PROVISION),
        (features.provisioning, &PROVISION_MANAGEMENT_ROLES),
        (features.provisioning, &PROVISION_MANAGEMENT_SAML),
        (features.provisioning, &PROVISION_MANAGEMENT_LISTS),
        (features.provisioning, &PROVISION_IDENTITY_STORE),
        (features.organizations, &ORGANIZATIONS),
        (features.iam, &IAM),
        (features.secrets, &SECRETS),
        (features.provisioning && features.iam, &PROVISION_IAM),
        (features.revoke_sessions, &REVOKE_SESSIONS),
    ]
    .into_iter()
    .filter_map(|(on, statement)| on.then_some(statement))
    .collect();

    let mut granted: Vec<(&str, &str)> = Vec::new();
    let mut statements = Vec::new();
    for s in chosen {
        let actions: Vec<&str> = s.actions.iter().copied().filter(|a| !granted.contains(&(s.resource, a))).collect();
        if actions.is_empty() {
            continue;
        }
        granted.extend(actions.iter().map(|a| (s.resource, *a)));
        statements.push(json!({ "Sid": s.sid, "Effect": "Allow", "Action": actions, "Resource": s.resource }));
    }
    if features.organizations && (features.iam || features.secrets) {
        statements.push(json!({
            "Sid": "ConeAssumeMemberAccountRole",
            "Effect": "Allow",
            "Action": ["sts:AssumeRole"],
            "Resource": format!("arn:aws:iam::*:role/{member_role}"),
        }));
    }
    json!({ "Version": "2012-10-17", "Statement": statements })
}

/// The trust policy of the integration role: `principal` (an IAM ARN, or an account id for the whole
/// account) may assume it, presenting `external_id` if one is given.
pub fn trust_policy(principal: &str, external_id: Option<&str>) -> Result<Value, String> {
    if !is_account_id(principal) && !is_iam_arn(principal) {
        return Err(format!(
            "`{principal}` is not an IAM principal; give the ARN of the role or user Cone runs as \
             (e.g. arn:aws:iam::111122223333:role/cone-server), or a 12-digit account id"
        ));
    }
    let mut statement = json!({
        "Sid": "ConeAssumeIntegrationRole",
        "Effect": "Allow",
        "Principal": { "AWS": principal },
        "Action": "sts:AssumeRole",
    });
    if let Some(id) = external_id {
        parse_external_id(id)?;
        statement["Condition"] = json!({ "StringEquals": { "sts:ExternalId": id } });
    }
    Ok(json!({ "Version": "2012-10-17", "Statement": [statement] }))
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// `arn:<partition>:iam::<account>:<root | user/… | role/…>`.
fn is_iam_arn(s: &str) -> bool {
    matches!(
        s.splitn(6, ':').collect::<Vec<_>>().as_slice(),
        ["arn", partition, "iam", "", account, resource]
            if !partition.is_empty()
                && is_account_id(account)
                && (*resource == "root"
                    || ["user/", "role/"].iter().any(|p| resource.strip_prefix(p).is_some_and(|n| !n.is_empty())))
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;

    /// Every action of the policy (checking that none is granted twice on one resource), after a round trip
    /// through JSON text.
    fn actions(policy: &Value) -> BTreeSet<String> {
        let text = serde_json::to_string_pretty(policy).expect("serialises");
        let parsed: Value = serde_json::from_str(&text).expect("the printed policy is valid JSON");
        assert_eq!(parsed["Version"], "2012-10-17");
        let mut all = Vec::new();
        for s in parsed["Statement"].as_array().expect("Statement is a list") {
            assert_eq!(s["Effect"], "Allow");
            assert!(s["Sid"].as_str().is_some_and(|sid| sid.chars().all(|c| c.is_ascii_alphanumeric())));
            let resource = s["Resource"].as_str().expect("Resource is one string");
            for a in s["Action"].as_array().expect("Action is a list") {
                all.push((resource, a.as_str().expect("actions are strings").to_string()));
            }
        }
        let unique: BTreeSet<&(&str, String)> = all.iter().collect();
        assert_eq!(unique.len(), all.len(), "an action is granted twice on one resource: {all:?}");
        all.into_iter().map(|(_, a)| a).collect()
    }

    fn set(items: &[&str]) -> BTreeSet<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    const SYNC_ACTIONS: &[&str] = &[
        "identitystore:ListGroupMemberships",
        "identitystore:ListGroups",
        "identitystore:ListUsers",
        "sso:DescribePermissionSet",
        "sso:ListAccountAssignments",
        "sso:ListAccountAssignmentsForPrincipal",
        "sso:ListAccountsForProvisionedPermissionSet",
        "sso:ListInstances",
        "sso:ListPermissionSets",
        "sso:ListPermissionSetsProvisionedToAccount",
    ];

    #[test]
    fn sync_only_is_the_identity_center_reads() {
        let policy = permissions_policy(&Features::default());
        assert_eq!(actions(&policy), set(SYNC_ACTIONS));
        assert_eq!(policy["Statement"][0]["Resource"], "*");
    }

    #[test]
    fn provisioning_adds_the_writes_and_management_account_role_access() {
        let policy = permissions_policy(&Features { provisioning: true, ..Features::default() });
        let expected: BTreeSet<String> = set(SYNC_ACTIONS)
            .into_iter()
            .chain(set(PROVISION.actions))
            .chain(set(PROVISION_MANAGEMENT_ROLES.actions))
            .chain(set(&["iam:GetSAMLProvider", "iam:ListPolicies", "iam:ListRoles"]))
            .chain(set(PROVISION_IDENTITY_STORE.actions))
            .collect();
        assert_eq!(actions(&policy), expected);
        for a in ["sso:CreateAccountAssignment", "sso:DescribeAccountAssignmentDeletionStatus", "iam:CreateRole"] {
            assert!(expected.contains(a), "{a}");
        }
        // Role changes stay within the roles IAM Identity Center owns.
        let roles = policy["Statement"]
            .as_array()
            .expect("statements")
            .iter()
            .find(|s| s["Action"].as_array().is_some_and(|a| a.contains(&json!("iam:CreateRole"))))
            .expect("a statement grants iam:CreateRole");
        assert_eq!(roles["Resource"], "arn:aws:iam::*:role/aws-reserved/sso.amazonaws.com/*");
    }

    #[test]
    fn each_feature_adds_exactly_its_actions() {
        let base = actions(&permissions_policy(&Features::default()));
        let added =
            |f: Features| -> BTreeSet<String> { actions(&permissions_policy(&f)).difference(&base).cloned().collect() };
        assert_eq!(
            added(Features { organizations: true, ..Features::default() }),
            set(&["organizations:ListAccounts"])
        );
        assert_eq!(
            added(Features { iam: true, ..Features::default() }),
            set(&["iam:GetAccountAuthorizationDetails", "iam:ListAccountAliases", "iam:ListUsers"])
        );
        assert_eq!(
            added(Features { secrets: true, ..Features::default() }),
            set(&["iam:GetAccessKeyLastUsed", "iam:ListAccessKeys", "iam:ListUsers"])
        );
        // IAM provisioning needs both: without IAM, provisioning changes Identity Center only.
        let provisioning = added(Features { provisioning: true, ..Features::default() });
        assert!(set(PROVISION_IAM.actions).is_disjoint(&provisioning), "{provisioning:?}");
        let both: BTreeSet<String> = added(Features { provisioning: true, iam: true, ..Features::default() })
            .difference(&provisioning)
            .cloned()
            .collect();
        let iam = added(Features { iam: true, ..Features::default() });
        assert_eq!(both, iam.union(&set(PROVISION_IAM.actions)).cloned().collect());
    }

    #[test]
    fn everything_together_lists_each_action_once() {
        let all = Features { provisioning: true, organizations: true, iam: true, secrets: true, revoke_sessions: true };
        let got = actions(&permissions_policy(&all));
        // iam:ListUsers (IAM and secrets) is granted once.
        assert!(got.contains("iam:ListUsers"));
        // Sync 9, provisioning 5 + 11 + 1 + 2 + identity store 9 less ListGroupMemberships, Organizations 1, IAM 3,
        // secrets 3 less ListUsers, IAM provisioning 24 less ListAccessKeys, revoking sessions 7, the member
        // accounts' role 1.
        assert_eq!(got.len(), 9 + 5 + 11 + 1 + 2 + 8 + 1 + 3 + 2 + 23 + 7 + 1, "{got:?}");
    }

    #[test]
    fn the_member_accounts_role_may_be_assumed_only_to_read_their_iam() {
        let policy = |f: Features| permissions_policy_with_member_role(&f, "ConeIamReader");
        let assumes = |p: &Value| {
            p["Statement"].as_array().expect("statements").iter().any(|s| s["Action"] == json!(["sts:AssumeRole"]))
        };
        assert!(!assumes(&policy(Features { organizations: true, ..Features::default() })));
        assert!(!assumes(&policy(Features { iam: true, ..Features::default() })));
        let both = policy(Features { organizations: true, secrets: true, ..Features::default() });
        let statement = both["Statement"].as_array().expect("statements").last().expect("a statement");
        assert_eq!(statement["Action"], json!(["sts:AssumeRole"]));
        assert_eq!(statement["Resource"], "arn:aws:iam::*:role/ConeIamReader");
    }

    #[test]
    fn trust_policy_names_the_principal_and_the_external_id() {
        let p = trust_policy("arn:aws:iam::111122223333:role/cone-server", Some("cone-3f9a0c")).expect("valid");
        let text = serde_json::to_string(&p).expect("serialises");
        let parsed: Value = serde_json::from_str(&text).expect("valid JSON");
        let s = &parsed["Statement"][0];
        assert_eq!(s["Effect"], "Allow");
        assert_eq!(s["Action"], "sts:AssumeRole");
        assert_eq!(s["Principal"]["AWS"], "arn:aws:iam::111122223333:role/cone-server");
        assert_eq!(s["Condition"]["StringEquals"]["sts:ExternalId"], "cone-3f9a0c");

        let without = trust_policy("111122223333", None).expect("an account id is a principal");
        assert!(without["Statement"][0].get("Condition").is_none());
        assert!(trust_policy("arn:aws:iam::111122223333:root", None).is_ok());
    }

    #[test]
    fn trust_policy_refuses_what_iam_would() {
        for bad in ["cone-server", "arn:aws:iam::111122223333:group/admins", "arn:aws:s3:::bucket", "1111"] {
            let err = trust_policy(bad, None).expect_err(bad);
            assert!(err.contains("ARN of the role or user Cone runs as"), "{err}");
        }
        assert!(trust_policy("111122223333", Some("x")).is_err(), "too short for STS");
    }
}
