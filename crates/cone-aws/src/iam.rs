//! The IAM sync (`Connector::sync_iam`): users, groups and their members, roles and the principals their trust
//! policies allow, the account alias, and the access-key inventory of the account the credentials are in and, with
//! Organizations, of each ACTIVE member account, read through the role `BATON_IAM_ASSUME_ROLE_NAME` there.
//!
//! Per sync: one sts:GetCallerIdentity (which account is the connector's own) and, with Organizations, one
//! ListAccounts and one sts:AssumeRole per member account not read before (its credentials are kept and renewed
//! 5 minutes before they expire). Then, per account read:
//!
//! Calls, for U users, K access keys and E users + groups + roles:
//! - IAM: ⌈E/1000⌉ GetAccountAuthorizationDetails pages, ⌈U/1000⌉ ListUsers pages, one ListAccountAliases.
//!   GetAccountAuthorizationDetails is the one IAM call that returns group membership in bulk (each user with
//!   its groups), and it brings the roles with their trust policies in the same pages. The alternatives are
//!   per entity: ListGroupsForUser per user (U calls) or GetGroup per group (G calls, more when a group has more
//!   than a page of members). Its user entries lack PasswordLastUsed, which only ListUsers (or GetUser, per
//!   user) returns, hence ListUsers beside it. Policies are filtered out of it: they are not synced, and would
//!   make most of its pages.
//! - Secrets: ListUsers, then one ListAccessKeys per user and one GetAccessKeyLastUsed per key, which is the
//!   least the data allows: no IAM call lists several users' keys, and last use is only given per key. The
//!   credential report has last use for all users in one call but without key ids, is generated
//!   asynchronously and may be hours old, so it cannot name the keys it describes.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::time::Duration;

use aws_config::identity::IdentityCache;
use aws_sdk_iam::primitives::{DateTime, DateTimeFormat};
use aws_sdk_iam::types::EntityType;
use serde_json::Value;

use crate::connector::{bounded, calling, found, put, sorted_unique};
use crate::error::{ConnectorError, Op, causes};
use crate::paging::{call_retried, list_all};
use crate::settings::assumed;
use crate::spool::{Part, Parts, Sink};
use crate::{
    AccessKey, Connector, Features, IamGroup, IamRole, IamSnapshot, IamUser, SkippedAccount, TrustedPrincipal,
};

const GET_AUTHORIZATION_DETAILS: Op = Op::iam("GetAccountAuthorizationDetails");
const LIST_USERS: Op = Op::iam("ListUsers");
const LIST_ACCOUNT_ALIASES: Op = Op::iam("ListAccountAliases");
const LIST_ACCESS_KEYS: Op = Op::iam("ListAccessKeys");
const GET_ACCESS_KEY_LAST_USED: Op = Op::iam("GetAccessKeyLastUsed");
const GET_CALLER_IDENTITY: Op = Op::sts("GetCallerIdentity");

/// The session name on the member accounts' roles, as their CloudTrail shows it.
const MEMBER_SESSION: &str = "cone-iam-sync";
/// How long before they expire a member account's credentials are renewed: a long sync never meets expired ones.
const RENEW_EARLY: Duration = Duration::from_secs(300);

/// The most items IAM serves in one page (MaxItems): fewer pages, fewer calls.
const PAGE: i32 = 1000;

/// What GetAccountAuthorizationDetails contributes.
struct Details {
    groups: Vec<IamGroup>,
    /// `(group arn, user arn)`.
    group_members: Vec<(String, String)>,
    roles: Vec<IamRole>,
    trusted: Vec<TrustedPrincipal>,
}

impl Connector {
    /// Reads IAM as `features.iam` and `features.secrets` ask, in the connector's account and, with
    /// `features.organizations`, in each ACTIVE member account; with neither IAM feature, makes no call and returns
    /// an empty snapshot. A member account whose role cannot be assumed, or denies a read, is skipped with a
    /// warning and listed in `skipped`; the sync goes on.
    pub async fn sync_iam(&self, features: &Features) -> Result<IamSnapshot, ConnectorError> {
        let parts = Parts::default();
        self.sync_iam_into(features, &parts).await?;
        Ok(IamSnapshot::from_parts(parts.into_inner()))
    }

    /// [`Connector::sync_iam`] into `sink`, a [`Part::Iam`] per account as soon as it is read (or skipped).
    pub async fn sync_iam_into(&self, features: &Features, sink: &dyn Sink) -> Result<(), ConnectorError> {
        if !features.iam && !features.secrets {
            return Ok(());
        }
        let (own, partition) = self.caller().await?;
        let partition = partition.as_str();
        let members: Vec<String> = if features.organizations {
            self.accounts().await?.into_iter().map(|a| a.id).filter(|id| *id != own).collect()
        } else {
            Vec::new()
        };
        tokio::try_join!(
            async { put(sink, Part::Iam(self.account_iam(&own, features).await?)).await },
            bounded(members, |id| async move {
                let iam = match self.member_iam(partition, id, features).await? {
                    Ok(member) => member,
                    Err(skipped) => IamSnapshot { skipped: vec![skipped], ..IamSnapshot::default() },
                };
                put(sink, Part::Iam(iam)).await
            }),
        )?;
        Ok(())
    }

    /// IAM of member account `account_id`, read with its role, or why it was skipped.
    async fn member_iam(
        &self,
        partition: &str,
        account_id: String,
        features: &Features,
    ) -> Result<Result<IamSnapshot, SkippedAccount>, ConnectorError> {
        let role_arn = format!("arn:{partition}:iam::{account_id}:role/{}", self.member_role);
        let skip = |problem: String| {
            let reason = format!(
                "{problem}. To read this account's IAM, create the role {role_arn} trusting the identity Cone runs as, \
                 with the IAM read actions of `cone-aws policy --iam --secrets`, or set BATON_IAM_ASSUME_ROLE_NAME \
                 to a role that exists in every member account"
            );
            tracing::warn!(account = %account_id, %reason, "skipping the IAM of a member account");
            Ok(Err(SkippedAccount { account_id: account_id.clone(), reason }))
        };
        let iam = match self.member_client(&role_arn, &account_id).await {
            Ok(iam) => iam,
            Err(ConnectorError::AssumeRoleFailed { message, .. }) => {
                return skip(format!("cannot assume {role_arn}: {message}"));
            }
            Err(e) => return skip(e.to_string()),
        };
        let mut member = self.clone();
        member.iam = iam;
        match member.account_iam(&account_id, features).await {
            Ok(snap) => Ok(Ok(snap)),
            // The role was deleted, lost a permission, or its renewed credentials were refused: assume it afresh
            // next time.
            Err(
                e @ (ConnectorError::AccessDenied { .. }
                | ConnectorError::NoCredentials { .. }
                | ConnectorError::InvalidCredentials { .. }),
            ) => {
                self.members().remove(&account_id);
                skip(e.to_string())
            }
            Err(e) => Err(e),
        }
    }

    /// The account the credentials are in and its partition (sts:GetCallerIdentity, once per connector).
    pub(crate) async fn caller(&self) -> Result<(String, String), ConnectorError> {
        let ask = || async {
            let caller =
                call_retried(&self.limits, &self.timing, GET_CALLER_IDENTITY, || self.sts.get_caller_identity().send())
                    .await?;
            let (Some(own), Some(arn)) = (caller.account, caller.arn) else {
                return Err(ConnectorError::MalformedResponse {
                    operation: GET_CALLER_IDENTITY.name,
                    field: "Account or Arn",
                });
            };
            // `arn:<partition>:...`: member roles are in the caller's partition.
            let partition = arn.split(':').nth(1).unwrap_or("aws").to_string();
            Ok((own, partition))
        };
        self.caller.get_or_try_init(ask).await.cloned()
    }

    /// This connector with its IAM calls going to `account_id`: itself in its own account, else through the member
    /// account's role (`BATON_IAM_ASSUME_ROLE_NAME`), which then needs the IAM actions of what is asked of it.
    pub async fn in_account(&self, account_id: &str) -> Result<Connector, ConnectorError> {
        let (own, partition) = self.caller().await?;
        let mut connector = self.clone();
        if account_id != own {
            let role_arn = format!("arn:{partition}:iam::{account_id}:role/{}", self.member_role);
            connector.iam = self.member_client(&role_arn, account_id).await?;
        }
        Ok(connector)
    }

    /// The IAM client of member account `account_id` through `role_arn`, kept across calls.
    async fn member_client(&self, role_arn: &str, account_id: &str) -> Result<aws_sdk_iam::Client, ConnectorError> {
        if let Some(iam) = self.members().get(account_id).cloned() {
            return Ok(iam);
        }
        let credentials = assumed(&self.sdk, &self.limits, role_arn, MEMBER_SESSION, None).await.map_err(|e| {
            ConnectorError::AssumeRoleFailed {
                role_arn: role_arn.to_string(),
                with_external_id: false,
                message: causes(&e),
            }
        })?;
        let sdk = self
            .sdk
            .to_builder()
            .credentials_provider(credentials)
            .identity_cache(IdentityCache::lazy().buffer_time(RENEW_EARLY).build())
            .build();
        let iam = aws_sdk_iam::Client::new(&calling(&sdk, &self.timing));
        self.members().insert(account_id.to_string(), iam.clone());
        Ok(iam)
    }

    fn members(&self) -> std::sync::MutexGuard<'_, HashMap<String, aws_sdk_iam::Client>> {
        self.members.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// IAM of the account `self.iam` calls, which is `account_id`.
    async fn account_iam(&self, account_id: &str, features: &Features) -> Result<IamSnapshot, ConnectorError> {
        // The access keys need only the users, so they are read while GetAccountAuthorizationDetails pages.
        let users_and_keys = async {
            let users = self.iam_users().await?;
            let keys = if features.secrets { self.access_keys(&users).await? } else { Vec::new() };
            Ok((users, keys))
        };
        let ((users, access_keys), details, account_aliases) = tokio::try_join!(
            users_and_keys,
            async { if features.iam { self.authorization_details().await.map(Some) } else { Ok(None) } },
            async { if features.iam { self.account_aliases().await } else { Ok(Vec::new()) } },
        )?;
        let Some(details) = details else {
            return Ok(IamSnapshot { users, access_keys, ..IamSnapshot::default() });
        };
        // A user made or deleted between ListUsers and GetAccountAuthorizationDetails is in one of them only;
        // keep the memberships of the users this snapshot lists.
        let listed: HashSet<&str> = users.iter().map(|u| u.arn.as_str()).collect();
        let group_members =
            details.group_members.into_iter().filter(|(_, user)| listed.contains(user.as_str())).collect();
        Ok(IamSnapshot {
            account_aliases: account_aliases.into_iter().map(|alias| (account_id.to_string(), alias)).collect(),
            users,
            groups: details.groups,
            group_members,
            roles: details.roles,
            trusted: details.trusted,
            access_keys,
            skipped: Vec::new(),
        })
    }

    /// Every IAM user (ListUsers, all pages), by ARN.
    async fn iam_users(&self) -> Result<Vec<IamUser>, ConnectorError> {
        let listed = list_all(
            &self.limits,
            &self.timing,
            LIST_USERS,
            |marker| self.iam.list_users().max_items(PAGE).set_marker(marker).send(),
            |out| (out.users, next_marker(out.is_truncated, out.marker)),
        )
        .await?;
        let mut users = listed
            .into_iter()
            .map(|u| {
                Ok(IamUser {
                    created: date(LIST_USERS, &u.create_date)?,
                    password_last_used: u.password_last_used.as_ref().map(|d| date(LIST_USERS, d)).transpose()?,
                    arn: u.arn,
                    id: u.user_id,
                    name: u.user_name,
                })
            })
            .collect::<Result<Vec<_>, ConnectorError>>()?;
        users.sort_by(|a, b| a.arn.cmp(&b.arn));
        Ok(users)
    }

    async fn account_aliases(&self) -> Result<Vec<String>, ConnectorError> {
        let mut aliases = list_all(
            &self.limits,
            &self.timing,
            LIST_ACCOUNT_ALIASES,
            |marker| self.iam.list_account_aliases().set_marker(marker).send(),
            |out| (out.account_aliases, next_marker(out.is_truncated, out.marker)),
        )
        .await?;
        aliases.sort();
        Ok(aliases)
    }

    /// Groups, memberships, roles and trust policies from GetAccountAuthorizationDetails (all pages).
    async fn authorization_details(&self) -> Result<Details, ConnectorError> {
        let pages = list_all(
            &self.limits,
            &self.timing,
            GET_AUTHORIZATION_DETAILS,
            |marker| {
                self.iam
                    .get_account_authorization_details()
                    .filter(EntityType::User)
                    .filter(EntityType::Group)
                    .filter(EntityType::Role)
                    .max_items(PAGE)
                    .set_marker(marker)
                    .send()
            },
            |out| {
                let next = next_marker(out.is_truncated, out.marker);
                let page = (
                    out.user_detail_list.unwrap_or_default(),
                    out.group_detail_list.unwrap_or_default(),
                    out.role_detail_list.unwrap_or_default(),
                );
                (vec![page], next)
            },
        )
        .await?;
        let op = GET_AUTHORIZATION_DETAILS;
        let missing = |field| ConnectorError::MalformedResponse { operation: op.name, field };
        let (mut user_details, mut group_details, mut role_details) = (Vec::new(), Vec::new(), Vec::new());
        for (users, groups, roles) in pages {
            user_details.extend(users);
            group_details.extend(groups);
            role_details.extend(roles);
        }

        let mut groups = Vec::new();
        for g in group_details {
            let (Some(arn), Some(id), Some(name), Some(created)) = (g.arn, g.group_id, g.group_name, g.create_date)
            else {
                return Err(missing("GroupDetail.Arn, GroupId, GroupName or CreateDate"));
            };
            groups.push(IamGroup { arn, id, name, created: date(op, &created)? });
        }
        groups.sort_by(|a, b| a.arn.cmp(&b.arn));

        // Users name their groups by name, which is unique in an account.
        let group_arn: HashMap<&str, &str> = groups.iter().map(|g| (g.name.as_str(), g.arn.as_str())).collect();
        let mut group_members = Vec::new();
        for u in &user_details {
            let Some(user_arn) = u.arn() else {
                return Err(missing("UserDetail.Arn"));
            };
            for name in u.group_list() {
                match group_arn.get(name.as_str()) {
                    Some(arn) => group_members.push((arn.to_string(), user_arn.to_string())),
                    None => tracing::warn!(user = user_arn, group = name, "ignoring membership of an unlisted group"),
                }
            }
        }

        let mut roles = Vec::new();
        let mut trusted = Vec::new();
        for r in role_details {
            let (Some(arn), Some(id), Some(name), Some(created)) = (r.arn, r.role_id, r.role_name, r.create_date)
            else {
                return Err(missing("RoleDetail.Arn, RoleId, RoleName or CreateDate"));
            };
            let document = r.assume_role_policy_document.unwrap_or_default();
            let principals = trusted_principals(&document).map_err(|problem| {
                tracing::warn!(role = %arn, problem, "cannot read the role's trust policy");
                missing("a readable AssumeRolePolicyDocument")
            })?;
            trusted.extend(principals.into_iter().map(|(kind, value)| TrustedPrincipal {
                role_arn: arn.clone(),
                kind,
                value,
            }));
            let last_used = r.role_last_used.and_then(|u| u.last_used_date).map(|d| date(op, &d)).transpose()?;
            roles.push(IamRole { arn, id, name, created: date(op, &created)?, last_used });
        }
        roles.sort_by(|a, b| a.arn.cmp(&b.arn));

        Ok(Details {
            groups,
            group_members: sorted_unique(vec![group_members]),
            roles,
            trusted: sorted_unique(vec![trusted]),
        })
    }

    /// Every access key of `users` with its last use: ListAccessKeys per user, GetAccessKeyLastUsed per key.
    async fn access_keys(&self, users: &[IamUser]) -> Result<Vec<AccessKey>, ConnectorError> {
        let per_user = bounded(users, |user| async move {
            let listed = list_all(
                &self.limits,
                &self.timing,
                LIST_ACCESS_KEYS,
                |marker| self.iam.list_access_keys().user_name(&user.name).max_items(PAGE).set_marker(marker).send(),
                |out| (out.access_key_metadata, next_marker(out.is_truncated, out.marker)),
            );
            // None: the user was deleted since ListUsers.
            let Some(listed) = found(listed.await)? else {
                return Ok(Vec::new());
            };
            let mut keys = Vec::new();
            for k in listed {
                let (Some(id), Some(status), Some(created)) = (k.access_key_id, k.status, k.create_date) else {
                    return Err(ConnectorError::MalformedResponse {
                        operation: LIST_ACCESS_KEYS.name,
                        field: "AccessKeyId, Status or CreateDate",
                    });
                };
                keys.push(AccessKey {
                    id,
                    user_arn: user.arn.clone(),
                    status: status.as_str().to_string(),
                    created: date(LIST_ACCESS_KEYS, &created)?,
                    last_used: None,
                    last_used_service: None,
                    last_used_region: None,
                });
            }
            Ok(keys)
        })
        .await?;
        let keys: Vec<AccessKey> = per_user.into_iter().flatten().collect();
        let mut keys = bounded(keys, |key| self.with_last_use(key)).await?;
        keys.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(keys)
    }

    async fn with_last_use(&self, key: AccessKey) -> Result<AccessKey, ConnectorError> {
        let op = GET_ACCESS_KEY_LAST_USED;
        let out = call_retried(&self.limits, &self.timing, op, || {
            self.iam.get_access_key_last_used().access_key_id(&key.id).send()
        })
        .await?;
        let Some(used) = out.access_key_last_used else {
            return Ok(key);
        };
        // AWS answers "N/A" for the service and region of a key never used.
        let known = |s: String| (s != "N/A" && !s.is_empty()).then_some(s);
        Ok(AccessKey {
            last_used: used.last_used_date.as_ref().map(|d| date(op, d)).transpose()?,
            last_used_service: known(used.service_name),
            last_used_region: known(used.region),
            ..key
        })
    }
}

impl IamSnapshot {
    /// The snapshot made of the [`Part::Iam`] parts of `parts`, sorted.
    pub fn from_parts(parts: impl IntoIterator<Item = Part>) -> IamSnapshot {
        let mut snap = IamSnapshot::default();
        for part in parts {
            if let Part::Iam(account) = part {
                snap.extend(account);
            }
        }
        snap.sort();
        snap
    }

    /// Adds another account's rows.
    fn extend(&mut self, other: IamSnapshot) {
        self.account_aliases.extend(other.account_aliases);
        self.users.extend(other.users);
        self.groups.extend(other.groups);
        self.group_members.extend(other.group_members);
        self.roles.extend(other.roles);
        self.trusted.extend(other.trusted);
        self.access_keys.extend(other.access_keys);
        self.skipped.extend(other.skipped);
    }

    /// Puts every list in the documented order.
    fn sort(&mut self) {
        self.account_aliases.sort();
        self.users.sort_by(|a, b| a.arn.cmp(&b.arn));
        self.groups.sort_by(|a, b| a.arn.cmp(&b.arn));
        self.group_members.sort();
        self.roles.sort_by(|a, b| a.arn.cmp(&b.arn));
        self.trusted.sort();
        self.access_keys.sort_by(|a, b| a.id.cmp(&b.id));
        self.skipped.sort();
    }
}

/// IAM's "more pages" signal, as the NextToken the paging helper follows.
pub(crate) fn next_marker(is_truncated: bool, marker: Option<String>) -> Option<String> {
    if is_truncated { marker } else { None }
}

fn date(op: Op, d: &DateTime) -> Result<String, ConnectorError> {
    d.fmt(DateTimeFormat::DateTime)
        .map_err(|_| ConnectorError::MalformedResponse { operation: op.name, field: "a date within RFC 3339's range" })
}

/// The `(kind, value)` principals that the `Allow` statements of a trust policy name, sorted and each once.
///
/// IAM returns policy documents URL-encoded (RFC 3986); moto returns them as plain JSON. An encoded document
/// starts with `%7B`, never with `{`, so a document starting with `{` is taken as it is.
pub(crate) fn trusted_principals(document: &str) -> Result<Vec<(String, String)>, String> {
    let text = document.trim();
    let decoded = if text.starts_with('{') {
        text.to_string()
    } else {
        percent_encoding::percent_decode_str(text)
            .decode_utf8()
            .map_err(|e| format!("the URL-encoded document is not UTF-8: {e}"))?
            .into_owned()
    };
    let policy: Value = serde_json::from_str(&decoded).map_err(|e| format!("the document is not JSON: {e}"))?;
    let statements = match &policy["Statement"] {
        Value::Array(list) => list.iter().collect(),
        one @ Value::Object(_) => vec![one],
        _ => return Err("the document has no Statement".into()),
    };
    let mut found = BTreeSet::new();
    for s in statements.into_iter().filter(|s| s["Effect"] == "Allow") {
        match &s["Principal"] {
            // "*" alone means every AWS principal.
            Value::String(any) => {
                found.insert(("AWS".to_string(), any.clone()));
            }
            Value::Object(kinds) => {
                for (kind, values) in kinds {
                    let values = match values {
                        Value::String(v) => vec![v.as_str()],
                        Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
                        other => return Err(format!("the {kind} principal is neither a string nor a list: {other}")),
                    };
                    found.extend(values.into_iter().map(|v| (kind.clone(), v.to_string())));
                }
            }
            // An Allow without Principal (NotPrincipal, or none) lets nobody assume the role by name.
            _ => {}
        }
    }
    Ok(found.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }

    #[test]
    fn reads_every_principal_kind_from_encoded_and_plain_documents() {
        let plain = r#"{"Version":"2012-10-17","Statement":[
            {"Effect":"Allow","Principal":{"AWS":"arn:aws:iam::111122223333:root",
              "Service":["lambda.amazonaws.com","ec2.amazonaws.com"]},"Action":"sts:AssumeRole"},
            {"Effect":"Allow","Principal":{"Federated":"arn:aws:iam::123456789012:saml-provider/Okta"},
              "Action":"sts:AssumeRoleWithSAML"},
            {"Effect":"Deny","Principal":{"AWS":"arn:aws:iam::444455556666:root"},"Action":"sts:AssumeRole"}]}"#;
        let expected = pairs(&[
            ("AWS", "arn:aws:iam::111122223333:root"),
            ("Federated", "arn:aws:iam::123456789012:saml-provider/Okta"),
            ("Service", "ec2.amazonaws.com"),
            ("Service", "lambda.amazonaws.com"),
        ]);
        assert_eq!(trusted_principals(plain), Ok(expected.clone()));

        // As IAM sends it: every reserved character percent-encoded.
        let encoded: String = plain
            .bytes()
            .map(|b| if b.is_ascii_alphanumeric() { (b as char).to_string() } else { format!("%{b:02X}") })
            .collect();
        assert!(encoded.starts_with("%7B"));
        assert_eq!(trusted_principals(&encoded), Ok(expected));
    }

    #[test]
    fn a_single_statement_and_a_bare_star_are_understood() {
        let doc = r#"{"Statement":{"Effect":"Allow","Principal":"*","Action":"sts:AssumeRole"}}"#;
        assert_eq!(trusted_principals(doc), Ok(pairs(&[("AWS", "*")])));
        let none = r#"{"Statement":[{"Effect":"Allow","NotPrincipal":{"AWS":"x"},"Action":"sts:AssumeRole"}]}"#;
        assert_eq!(trusted_principals(none), Ok(vec![]));
    }

    #[test]
    fn malformed_documents_are_errors_that_say_why() {
        assert!(trusted_principals("%7Bnot json").is_err_and(|e| e.contains("not JSON")));
        assert!(trusted_principals("%FF%FE").is_err_and(|e| e.contains("UTF-8")));
        assert!(trusted_principals(r#"{"Version":"2012-10-17"}"#).is_err_and(|e| e.contains("no Statement")));
        let bad = r#"{"Statement":[{"Effect":"Allow","Principal":{"AWS":7}}]}"#;
        assert!(trusted_principals(bad).is_err_and(|e| e.contains("AWS principal")));
    }

    #[test]
    fn markers_are_followed_only_while_truncated() {
        assert_eq!(next_marker(true, Some("m".into())), Some("m".into()));
        assert_eq!(next_marker(false, Some("m".into())), None);
    }
}
