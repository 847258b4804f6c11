//! The IAM policies the integration role needs: the permissions policy for the chosen features, holding
//! exactly the actions those features call, and the trust policy that lets Cone's identity assume the role.

use serde_json::{Value, json};

use crate::settings::{DEFAULT_MEMBER_ROLE, parse_external_id};

/// What the integration role is for, beyond the always-needed IAM Identity Center sync.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
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

/// One policy statement: actions on a resource. [`IAM_USERS`] stands for the IAM users under the chosen path.
struct Statement {
    sid: &'static str,
    actions: &'static [&'static str],
    resource: &'static str,
}

/// The resource of the statements that change IAM users: those under the path Cone creates them in.
const IAM_USERS: &str = "arn:aws:iam::*:user{path}*";

/// The path under which Cone creates IAM users unless told otherwise (cone-server's
/// `aws.account_provisioning.path`).
pub const DEFAULT_IAM_USER_PATH: &str = "/cone/";

/// Refuses an IAM path that IAM would refuse (1 to 512 printable characters, starting and ending with `/`) or
/// that would widen a policy's resource (`*` and `?` are wildcards there).
pub fn check_iam_path(path: &str) -> Result<(), String> {
    let printable = path.bytes().all(|b| (0x21..=0x7e).contains(&b) && b != b'*' && b != b'?');
    if path.starts_with('/') && path.ends_with('/') && path.len() <= 512 && printable {
        Ok(())
    } else {
        Err(format!(
            "\"{path}\" is not an IAM path Cone can use: give one that starts and ends with `/`, such as /cone/, \
             of at most 512 printable characters without `*` or `?`"
        ))
    }
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
/// implemented), a deleted user's memberships listed with ListGroupMembershipsForMember, and a user's type read
/// with DescribeUser before Cone deletes a user it created.
const PROVISION_IDENTITY_STORE: Statement = Statement {
    sid: "ConeProvisionIdentityStore",
    actions: &[
        "identitystore:CreateGroupMembership",
        "identitystore:CreateUser",
        "identitystore:DeleteGroupMembership",
        "identitystore:DeleteUser",
        "identitystore:DescribeUser",
        "identitystore:GetGroupId",
        "identitystore:GetGroupMembershipId",
        "identitystore:GetUserId",
        "identitystore:ListGroupMemberships",
        "identitystore:ListGroupMembershipsForMember",
    ],
    resource: "*",
};

/// `cone-aws provision` in IAM: creating users with tags, a user's full deletion with everything IAM requires gone
/// first, and disabling one kept (`UpdateAccessKey`); only users under the chosen path.
const PROVISION_IAM_USERS: Statement = Statement {
    sid: "ConeProvisionIamUsers",
    actions: &[
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
        "iam:DetachUserPolicy",
        "iam:ListAccessKeys",
        "iam:ListAttachedUserPolicies",
        "iam:ListMFADevices",
        "iam:ListSSHPublicKeys",
        "iam:ListServiceSpecificCredentials",
        "iam:ListSigningCertificates",
        "iam:ListUserPolicies",
        "iam:TagUser",
        "iam:UpdateAccessKey",
    ],
    resource: IAM_USERS,
};

/// Looking a user up by name, wherever its path: IAM user names are unique in an account, so a user of the name
/// Cone would create is found (and left alone) even when someone else made it elsewhere.
const PROVISION_IAM_LOOKUPS: Statement = Statement {
    sid: "ConeLookUpIamUsers",
    actions: &["iam:GetUser", "iam:ListGroupsForUser"],
    resource: "arn:aws:iam::*:user/*",
};

/// Group memberships (`AddUserToGroup` and `RemoveUserFromGroup` are authorized on the group alone).
const PROVISION_IAM_GROUPS: Statement = Statement {
    sid: "ConeProvisionIamGroupMembers",
    actions: &["iam:AddUserToGroup", "iam:RemoveUserFromGroup"],
    resource: "arn:aws:iam::*:group/*",
};

/// A deleted user's virtual MFA devices, whose path their creator chose.
const PROVISION_IAM_MFA: Statement = Statement {
    sid: "ConeDeleteIamVirtualMfaDevices",
    actions: &["iam:DeleteVirtualMFADevice"],
    resource: "arn:aws:iam::*:mfa/*",
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
/// [`DEFAULT_MEMBER_ROLE`] and IAM users Cone creates under [`DEFAULT_IAM_USER_PATH`].
pub fn permissions_policy(features: &Features) -> Value {
    permissions_policy_for(features, DEFAULT_MEMBER_ROLE, DEFAULT_IAM_USER_PATH)
}

/// The permissions policy (IAM JSON) for `features`. An action that an earlier statement already grants
/// on the same resource is left out of later ones, so every action appears once per resource. With Organizations
/// and IAM or secrets, `member_role` may be assumed in every account: the IAM sync reads each member account
/// through it, and that role needs the IAM statements' actions (`--iam`, `--secrets`) in its own permissions
/// policy. IAM users are created and deleted only under `iam_user_path` (checked with [`check_iam_path`] first).
pub fn permissions_policy_for(features: &Features, member_role: &str, iam_user_path: &str) -> Value {
    let users = IAM_USERS.replace("{path}", iam_user_path);
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
        (features.provisioning && features.iam, &PROVISION_IAM_USERS),
        (features.provisioning && features.iam, &PROVISION_IAM_LOOKUPS),
        (features.provisioning && features.iam, &PROVISION_IAM_GROUPS),
        (features.provisioning && features.iam, &PROVISION_IAM_MFA),
        (features.revoke_sessions, &REVOKE_SESSIONS),
    ]
    .into_iter()
    .filter_map(|(on, statement)| on.then_some(statement))
    .collect();

    let mut granted: Vec<(&str, &str)> = Vec::new();
    let mut statements = Vec::new();
    for s in chosen {
        let resource = if s.resource == IAM_USERS { users.as_str() } else { s.resource };
        let actions: Vec<&str> = s.actions.iter().copied().filter(|a| !granted.contains(&(resource, a))).collect();
        if actions.is_empty() {
            continue;
        }
        granted.extend(actions.iter().map(|a| (resource, *a)));
        statements.push(json!({ "Sid": s.sid, "Effect": "Allow", "Action": actions, "Resource": resource }));
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
        let provision_iam: BTreeSet<String> =
            [PROVISION_IAM_USERS, PROVISION_IAM_LOOKUPS, PROVISION_IAM_GROUPS, PROVISION_IAM_MFA]
                .iter()
                .flat_map(|s| set(s.actions))
                .collect();
        assert!(provision_iam.is_disjoint(&provisioning), "{provisioning:?}");
        let both: BTreeSet<String> = added(Features { provisioning: true, iam: true, ..Features::default() })
            .difference(&provisioning)
            .cloned()
            .collect();
        let iam = added(Features { iam: true, ..Features::default() });
        assert_eq!(both, iam.union(&provision_iam).cloned().collect());
    }

    #[test]
    fn everything_together_lists_each_action_once() {
        let all = Features { provisioning: true, organizations: true, iam: true, secrets: true, revoke_sessions: true };
        let got = actions(&permissions_policy(&all));
        // iam:ListUsers (IAM and secrets) is granted once.
        assert!(got.contains("iam:ListUsers"));
        // Sync 9, provisioning 5 + 11 + 1 + 2 + identity store 10 less ListGroupMemberships, Organizations 1, IAM 3,
        // secrets 3 less ListUsers, IAM provisioning 25 less ListAccessKeys, revoking sessions 7, the member
        // accounts' role 1.
        assert_eq!(got.len(), 9 + 5 + 11 + 1 + 2 + 9 + 1 + 3 + 2 + 24 + 7 + 1, "{got:?}");
    }

    #[test]
    fn iam_users_are_created_and_deleted_only_under_the_path() {
        let features = Features { provisioning: true, iam: true, ..Features::default() };
        let policy = permissions_policy_for(&features, DEFAULT_MEMBER_ROLE, "/jit/");
        let resources = |action: &str| -> Vec<String> {
            let statements = policy["Statement"].as_array().expect("statements");
            let granting =
                statements.iter().filter(|s| s["Action"].as_array().is_some_and(|a| a.contains(&json!(action))));
            granting.map(|s| s["Resource"].as_str().expect("one resource").to_string()).collect()
        };
        for action in
            ["iam:CreateUser", "iam:DeleteUser", "iam:TagUser", "iam:DeleteLoginProfile", "iam:DeleteAccessKey"]
        {
            assert_eq!(resources(action), ["arn:aws:iam::*:user/jit/*"], "{action}");
        }
        assert_eq!(resources("iam:GetUser"), ["arn:aws:iam::*:user/*"], "looked up wherever it is");
        assert_eq!(resources("iam:AddUserToGroup"), ["arn:aws:iam::*:group/*"]);
        assert!(!policy.to_string().contains("{path}"));
        // Nothing changes IAM users on every resource.
        for s in policy["Statement"].as_array().expect("statements") {
            let changes_users = s["Action"].as_array().expect("actions").iter().any(|a| a == "iam:CreateUser");
            assert!(!(changes_users && s["Resource"] == "*"), "{s}");
        }
    }

    #[test]
    fn iam_paths_that_iam_refuses_or_that_widen_the_policy_are_refused() {
        for good in ["/", "/cone/", "/team/jit/"] {
            assert_eq!(check_iam_path(good), Ok(()), "{good}");
        }
        for bad in ["", "cone/", "/cone", "/*/", "/c?ne/", "/co ne/", "/cöne/"] {
            let e = check_iam_path(bad).expect_err(bad);
            assert!(e.contains("such as /cone/"), "{e}");
        }
        assert!(check_iam_path(&format!("/{}/", "a".repeat(511))).is_err(), "longer than 512");
    }

    #[test]
    fn the_member_accounts_role_may_be_assumed_only_to_read_their_iam() {
        let policy = |f: Features| permissions_policy_for(&f, "ConeIamReader", DEFAULT_IAM_USER_PATH);
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
