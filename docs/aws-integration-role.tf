# The integration role Cone's AWS connector assumes: sync + provisioning (account assignments, and identity-store
# and, with sync_iam, IAM users and group memberships), with Organizations enabled. Create it in the organization's management account (or the IAM Identity Center
# delegated administrator account, without the management-account statements).
#
# The policies are what `cone-aws trust-policy --principal ARN --external-id X` and
# `cone-aws policy --provisioning --orgs` print (plus `--iam`, `--secrets` and `--revoke-sessions` when sync_iam,
# sync_secrets and revoke_sessions are set); regenerate and compare after upgrading Cone.
#
# Then run Cone with BATON_ROLE_ARN = the role ARN output and BATON_EXTERNAL_ID = var.external_id.

variable "cone_principal_arn" {
  description = "ARN of the role or user Cone runs as (e.g. the cone-server instance or task role)"
  type        = string
}

variable "external_id" {
  description = "External ID Cone presents when assuming the role (2 to 1224 characters of [A-Za-z0-9+=,.@:/_-])"
  type        = string
  sensitive   = true
}

variable "sync_iam" {
  description = "Also allow `cone-aws sync --sync-iam`: IAM users, groups, members, roles and trust policies, the account alias"
  type        = bool
  default     = false
}

variable "sync_secrets" {
  description = "Also allow `cone-aws sync --sync-secrets` (BATON_SYNC_SECRETS): access-key metadata, never secret keys"
  type        = bool
  default     = false
}

variable "revoke_sessions" {
  description = "Also allow cone-server's `aws.revoke_sessions`: one service control policy of Cone's, denying revoked role sessions"
  type        = bool
  default     = false
}

variable "member_role_name" {
  description = "Role the IAM sync assumes in each member account (BATON_IAM_ASSUME_ROLE_NAME); it needs the same IAM read actions"
  type        = string
  default     = "OrganizationAccountAccessRole"
}

variable "iam_user_path" {
  description = "With sync_iam: the path of the IAM users Cone may create and delete (cone-server's aws.account_provisioning.path)"
  type        = string
  default     = "/cone/"
}

variable "role_name" {
  description = "Name of the integration role"
  type        = string
  default     = "ConeIntegration"
}

resource "aws_iam_role" "cone_integration" {
  name        = var.role_name
  description = "Assumed by Cone to sync IAM Identity Center and grant just-in-time access"
  assume_role_policy = jsonencode({
    Version = "2012-10-17"
    Statement = [
      {
        Sid       = "ConeAssumeIntegrationRole"
        Effect    = "Allow"
        Principal = { AWS = var.cone_principal_arn }
        Action    = "sts:AssumeRole"
        Condition = { StringEquals = { "sts:ExternalId" = var.external_id } }
      }
    ]
  })
}

resource "aws_iam_role_policy" "cone_integration" {
  name = "ConePermissions"
  role = aws_iam_role.cone_integration.id
  policy = jsonencode({
    Version = "2012-10-17"
    Statement = concat([
      {
        # Every call of a sync.
        Sid    = "ConeSyncIdentityCenter"
        Effect = "Allow"
        Action = [
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
        ]
        Resource = "*"
      },
      {
        # Granting and revoking: the writes and their status polls.
        Sid    = "ConeProvisionAccountAssignments"
        Effect = "Allow"
        Action = [
          "sso:CreateAccountAssignment",
          "sso:DeleteAccountAssignment",
          "sso:DescribeAccountAssignmentCreationStatus",
          "sso:DescribeAccountAssignmentDeletionStatus",
        ]
        Resource = "*"
      },
      {
        # Assignments in the management account: IAM Identity Center manages the permission set's role
        # there with the caller's permissions. Limited to the roles IAM Identity Center owns.
        Sid    = "ConeProvisionInManagementAccountRoles"
        Effect = "Allow"
        Action = [
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
        ]
        Resource = "arn:aws:iam::*:role/aws-reserved/sso.amazonaws.com/*"
      },
      {
        Sid      = "ConeProvisionInManagementAccountSaml"
        Effect   = "Allow"
        Action   = ["iam:GetSAMLProvider"]
        Resource = "arn:aws:iam::*:saml-provider/AWSSSO_*_DO_NOT_DELETE"
      },
      {
        Sid      = "ConeProvisionInManagementAccountLists"
        Effect   = "Allow"
        Action   = ["iam:ListPolicies", "iam:ListRoles"]
        Resource = "*"
      },
      {
        # `cone-aws provision` in the identity store: users and group memberships, looked up before each change.
        # (identitystore:ListGroupMemberships is in ConeSyncIdentityCenter.)
        Sid    = "ConeProvisionIdentityStore"
        Effect = "Allow"
        Action = [
          "identitystore:CreateGroupMembership",
          "identitystore:CreateUser",
          "identitystore:DeleteGroupMembership",
          "identitystore:DeleteUser",
          "identitystore:DescribeUser",
          "identitystore:GetGroupId",
          "identitystore:GetGroupMembershipId",
          "identitystore:GetUserId",
          "identitystore:ListGroupMembershipsForMember",
        ]
        Resource = "*"
      },
      {
        # Account names and states (BATON_GLOBAL_AWS_ORGS_ENABLED=true, the default).
        Sid      = "ConeReadOrganizationAccounts"
        Effect   = "Allow"
        Action   = ["organizations:ListAccounts"]
        Resource = "*"
      },
      ], var.sync_iam ? [{
        # Users, groups, members, roles and trust policies in one paged listing; ListUsers for PasswordLastUsed.
        Sid      = "ConeReadIam"
        Effect   = "Allow"
        Action   = ["iam:GetAccountAuthorizationDetails", "iam:ListAccountAliases", "iam:ListUsers"]
        Resource = "*"
        }, {
        # IAM users Cone creates (named after people, no password, no keys) and their deletion with everything
        # IAM requires gone first: only under var.iam_user_path (`cone-aws policy --iam-user-path`).
        Sid    = "ConeProvisionIamUsers"
        Effect = "Allow"
        Action = [
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
        ]
        Resource = "arn:aws:iam::*:user${var.iam_user_path}*"
        }, {
        # A user of the name Cone would create is found (and left alone) wherever someone else made it.
        Sid      = "ConeLookUpIamUsers"
        Effect   = "Allow"
        Action   = ["iam:GetUser", "iam:ListGroupsForUser"]
        Resource = "arn:aws:iam::*:user/*"
        }, {
        # Group memberships, which IAM authorizes on the group alone.
        Sid      = "ConeProvisionIamGroupMembers"
        Effect   = "Allow"
        Action   = ["iam:AddUserToGroup", "iam:RemoveUserFromGroup"]
        Resource = "arn:aws:iam::*:group/*"
        }, {
        # A deleted user's virtual MFA devices, whose path their creator chose.
        Sid      = "ConeDeleteIamVirtualMfaDevices"
        Effect   = "Allow"
        Action   = ["iam:DeleteVirtualMFADevice"]
        Resource = "arn:aws:iam::*:mfa/*"
        }] : [], var.sync_secrets ? [{
        # Access-key metadata and last use. (iam:ListUsers appears in both statements when both are on.)
        Sid      = "ConeReadAccessKeyMetadata"
        Effect   = "Allow"
        Action   = ["iam:GetAccessKeyLastUsed", "iam:ListAccessKeys", "iam:ListUsers"]
        Resource = "*"
        }] : [], var.sync_iam || var.sync_secrets ? [{
        # IAM of each member account, read through its role (no External ID on this hop). Give that role the
        # ConeReadIam / ConeReadAccessKeyMetadata actions above and a trust policy naming this role.
        Sid      = "ConeAssumeMemberAccountRole"
        Effect   = "Allow"
        Action   = ["sts:AssumeRole"]
        Resource = "arn:aws:iam::*:role/${var.member_role_name}"
        }] : [], var.revoke_sessions ? [{
        # Cone's own service control policy (named cone-revoked-sessions), found by name and attached to the
        # accounts whose revoked sessions it denies.
        Sid    = "ConeRevokeRoleSessions"
        Effect = "Allow"
        Action = [
          "organizations:AttachPolicy",
          "organizations:CreatePolicy",
          "organizations:DeletePolicy",
          "organizations:DetachPolicy",
          "organizations:ListPolicies",
          "organizations:ListTargetsForPolicy",
          "organizations:UpdatePolicy",
        ]
        Resource = "*"
    }] : [])
  })
}

output "role_arn" {
  description = "Set BATON_ROLE_ARN to this"
  value       = aws_iam_role.cone_integration.arn
}
