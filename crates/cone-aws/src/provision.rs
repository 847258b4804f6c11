//! Provisioning beyond account assignments (`cone-aws provision`): Identity Center group membership and users, IAM
//! group membership and users.
//!
//! Each change is a step that looks, then writes only what is missing, retried whole while it fails transiently
//! (`retry::with_retries`), so a step run again, or retried after AWS acted but its answer was lost, finds the work
//! done ([`Change::AlreadyInPlace`]) instead of doing it twice. Looks inside a step make one attempt, so retries do
//! not multiply. IAM's CreateUser is its own look: it answers `EntityAlreadyExists` for a name in use. Removing
//! what is absent (a membership, a user, the user or group it names) succeeds: the state asked for holds. Adding
//! to or with a user or group that does not exist is [`ConnectorError::NoSuchPrincipal`].
//!
//! Against moto 5.2.1, which answers a call it does not implement with an HTTP 500 HTML page (no error code):
//! - GetGroupMembershipId: the membership is found by paging ListGroupMemberships instead (one call on AWS).
//! - ListServiceSpecificCredentials: a user's service-specific credentials (CodeCommit git credentials among them)
//!   are taken to be none. Should a user on some other endpoint still hold some, DeleteUser fails with
//!   `DeleteConflict`, saying so.
//! - GetUser never reports a permissions boundary, so removing one is not exercised against moto.
//! - CreateGroupMembership stores a duplicate instead of answering ConflictException; the look prevents it.

use std::future::Future;

use aws_sdk_iam::types::{StatusType, Tag};
use aws_sdk_identitystore::types::{AlternateIdentifier, Email, MemberId, Name, UniqueAttribute};
use aws_sdk_ssoadmin::config::http::HttpResponse;
use aws_sdk_ssoadmin::error::{ProvideErrorMetadata, SdkError};
use aws_smithy_types::Document;

use crate::Connector;
use crate::connector::found;
use crate::error::{ConnectorError, Op};
use crate::iam::next_marker;
use crate::paging::{call, call_retried, list_all};
use crate::retry::{Timing, with_retries};

const GET_USER_ID: Op = Op::identitystore("GetUserId");
const GET_GROUP_ID: Op = Op::identitystore("GetGroupId");
const GET_MEMBERSHIP_ID: Op = Op::identitystore("GetGroupMembershipId");
const LIST_GROUP_MEMBERSHIPS: Op = Op::identitystore("ListGroupMemberships");
const LIST_MEMBERSHIPS_FOR_MEMBER: Op = Op::identitystore("ListGroupMembershipsForMember");
const CREATE_MEMBERSHIP: Op = Op::identitystore("CreateGroupMembership");
const DELETE_MEMBERSHIP: Op = Op::identitystore("DeleteGroupMembership");
const CREATE_IDC_USER: Op = Op::identitystore("CreateUser");
const DELETE_IDC_USER: Op = Op::identitystore("DeleteUser");
const DESCRIBE_IDC_USER: Op = Op::identitystore("DescribeUser");

const LIST_GROUPS_FOR_USER: Op = Op::iam("ListGroupsForUser");
const ADD_USER_TO_GROUP: Op = Op::iam("AddUserToGroup");
const REMOVE_USER_FROM_GROUP: Op = Op::iam("RemoveUserFromGroup");
const CREATE_IAM_USER: Op = Op::iam("CreateUser");
const TAG_USER: Op = Op::iam("TagUser");
const GET_IAM_USER: Op = Op::iam("GetUser");
const DELETE_LOGIN_PROFILE: Op = Op::iam("DeleteLoginProfile");
const LIST_ACCESS_KEYS: Op = Op::iam("ListAccessKeys");
const DELETE_ACCESS_KEY: Op = Op::iam("DeleteAccessKey");
const UPDATE_ACCESS_KEY: Op = Op::iam("UpdateAccessKey");
const LIST_SIGNING_CERTIFICATES: Op = Op::iam("ListSigningCertificates");
const DELETE_SIGNING_CERTIFICATE: Op = Op::iam("DeleteSigningCertificate");
const LIST_SSH_KEYS: Op = Op::iam("ListSSHPublicKeys");
const DELETE_SSH_KEY: Op = Op::iam("DeleteSSHPublicKey");
const LIST_SERVICE_CREDENTIALS: Op = Op::iam("ListServiceSpecificCredentials");
const DELETE_SERVICE_CREDENTIAL: Op = Op::iam("DeleteServiceSpecificCredential");
const LIST_MFA_DEVICES: Op = Op::iam("ListMFADevices");
const DEACTIVATE_MFA_DEVICE: Op = Op::iam("DeactivateMFADevice");
const DELETE_VIRTUAL_MFA_DEVICE: Op = Op::iam("DeleteVirtualMFADevice");
const LIST_USER_POLICIES: Op = Op::iam("ListUserPolicies");
const DELETE_USER_POLICY: Op = Op::iam("DeleteUserPolicy");
const LIST_ATTACHED_POLICIES: Op = Op::iam("ListAttachedUserPolicies");
const DETACH_USER_POLICY: Op = Op::iam("DetachUserPolicy");
const DELETE_BOUNDARY: Op = Op::iam("DeleteUserPermissionsBoundary");
const DELETE_IAM_USER: Op = Op::iam("DeleteUser");

/// What a provisioning call found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Change {
    /// The connector changed AWS.
    Made,
    /// AWS was already as asked (perhaps by an earlier attempt whose answer was lost); nothing was changed.
    AlreadyInPlace,
}

/// An Identity Center user to create. IAM Identity Center requires the display name and both names.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewIdcUser {
    pub user_name: String,
    pub display_name: String,
    pub given_name: String,
    pub family_name: String,
    /// Recorded as the primary work email.
    pub email: Option<String>,
}

/// The tag on an IAM user Cone created for a person: its value is the person's Identity Center user id.
pub const OWNER_TAG: &str = "cone:identity";

/// The user type of an Identity Center user Cone created for a person who signs in to Cone with a password
/// (identity-store users carry no tags; the user type is a free attribute that administrators see).
pub const OWNER_USER_TYPE: &str = "cone";

/// An IAM user Cone creates for a person (cone-server's `aws.account_provisioning`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct NewIamUser {
    pub name: String,
    /// `/cone/` or another path that starts and ends with `/`.
    pub path: String,
    /// The person's Identity Center user id, the value of [`OWNER_TAG`].
    pub owner: String,
    pub tags: Vec<(String, String)>,
}

/// One part of IAM user `$name`'s cleanup (builders of different calls share no trait): list with `$list`
/// (`Marker`-paged, its items taken by `$items` from the answer `$out`), then delete each `$id` with `$delete`.
macro_rules! clear_listed {
    ($c:expr, $name:expr, $list_op:expr, $list:ident, |$out:ident| $items:expr, $delete_op:expr, |$id:ident| $delete:expr) => {
        $c.clear(
            $delete_op,
            || {
                $c.look(
                    $list_op,
                    |marker| $c.iam.$list().user_name($name).set_marker(marker).send(),
                    |$out| ($items.collect(), next_marker($out.is_truncated, $out.marker)),
                )
            },
            |$id: String| call(&$c.limits, $delete_op, $delete.send()),
        )
    };
}

impl Connector {
    /// The identity store of the first IAM Identity Center instance, the one `sync` reads.
    pub async fn identity_store_id(&self) -> Result<String, ConnectorError> {
        Ok(self.instance().await?.1)
    }

    /// Makes identity-store user `user` a member of group `group` (each a name or an id) in `store`.
    pub async fn add_idc_group_member(&self, store: &str, group: &str, user: &str) -> Result<Change, ConnectorError> {
        let group_id =
            self.idc_group(store, group).await.map_err(naming(|| format!("Identity Center group `{group}`")))?;
        let user_id = self.idc_user(store, user).await.map_err(naming(|| format!("Identity Center user `{user}`")))?;
        with_retries(&self.timing, CREATE_MEMBERSHIP, || async {
            if self.membership_id(store, &group_id, &user_id).await?.is_some() {
                return Ok(Change::AlreadyInPlace);
            }
            let request = self
                .ids
                .create_group_membership()
                .identity_store_id(store)
                .group_id(&group_id)
                .member_id(MemberId::UserId(user_id.clone()))
                .send();
            call(&self.limits, CREATE_MEMBERSHIP, request)
                .await
                .map_err(naming(|| format!("Identity Center group `{group}` or user `{user}`")))?;
            Ok(Change::Made)
        })
        .await
    }

    /// Whether identity-store user `user_id` is a member of group `group_id` in `store` (a look).
    pub async fn is_idc_group_member(
        &self,
        store: &str,
        group_id: &str,
        user_id: &str,
    ) -> Result<bool, ConnectorError> {
        Ok(self.membership_id(store, group_id, user_id).await?.is_some())
    }

    /// Ends `user`'s membership of `group` (each a name or an id) in `store`.
    pub async fn remove_idc_group_member(
        &self,
        store: &str,
        group: &str,
        user: &str,
    ) -> Result<Change, ConnectorError> {
        let (Some(group_id), Some(user_id)) =
            (found(self.idc_group(store, group).await)?, found(self.idc_user(store, user).await)?)
        else {
            return Ok(Change::AlreadyInPlace);
        };
        with_retries(&self.timing, DELETE_MEMBERSHIP, || async {
            match self.membership_id(store, &group_id, &user_id).await? {
                Some(id) => self.delete_membership(store, id).await,
                None => Ok(Change::AlreadyInPlace),
            }
        })
        .await
    }

    /// Creates the identity-store user unless one with its user name exists (which is left as it is).
    pub async fn create_idc_user(&self, store: &str, user: &NewIdcUser) -> Result<Change, ConnectorError> {
        Ok(self.create_idc_user_typed(store, user, None).await?.0)
    }

    /// Creates the Identity Center user a person who signs in to Cone with a password gets, of user type
    /// [`OWNER_USER_TYPE`]; answers its id. A user of that name and type counts as created (an earlier attempt
    /// whose answer was lost); any other is [`ConnectorError::NotCreatedByCone`] and is left as it is.
    pub async fn create_owned_idc_user(
        &self,
        store: &str,
        user: &NewIdcUser,
    ) -> Result<(Change, String), ConnectorError> {
        self.create_idc_user_typed(store, user, Some(OWNER_USER_TYPE)).await
    }

    /// Creates an identity-store user, of `user_type` when given, unless one of that name exists (then checked to
    /// be of that type); answers its id.
    async fn create_idc_user_typed(
        &self,
        store: &str,
        user: &NewIdcUser,
        user_type: Option<&str>,
    ) -> Result<(Change, String), ConnectorError> {
        let name = Name::builder()
            .given_name(&user.given_name)
            .family_name(&user.family_name)
            .formatted(format!("{} {}", user.given_name, user.family_name))
            .build();
        let emails = user.email.as_ref().map(|e| vec![Email::builder().value(e).r#type("work").primary(true).build()]);
        with_retries(&self.timing, CREATE_IDC_USER, || async {
            // On AWS a user name in use is a ConflictException, retried like any conflict: this look then ends it.
            if let Some(id) = found(self.user_id_named(store, &user.user_name, &self.timing.once()).await)? {
                if user_type.is_some() {
                    self.owned_idc_user(store, &id).await?;
                }
                return Ok((Change::AlreadyInPlace, id));
            }
            let request = self
                .ids
                .create_user()
                .identity_store_id(store)
                .user_name(&user.user_name)
                .display_name(&user.display_name)
                .name(name.clone())
                .set_emails(emails.clone())
                .set_user_type(user_type.map(str::to_string))
                .send();
            let made = call(&self.limits, CREATE_IDC_USER, request).await?;
            Ok((Change::Made, made.user_id))
        })
        .await
    }

    /// Deletes an Identity Center user [`Connector::create_owned_idc_user`] made (`user`: an id, or a user name), as
    /// [`Connector::delete_idc_user`] does; one of another user type is [`ConnectorError::NotCreatedByCone`] and stays.
    pub async fn delete_owned_idc_user(&self, store: &str, user: &str) -> Result<Change, ConnectorError> {
        let Some(user_id) = found(self.idc_user(store, user).await)? else {
            return Ok(Change::AlreadyInPlace);
        };
        match self.owned_idc_user(store, &user_id).await? {
            true => self.delete_idc_user(store, &user_id).await,
            false => Ok(Change::AlreadyInPlace),
        }
    }

    /// Whether identity-store user `user_id` exists (false if not) with user type [`OWNER_USER_TYPE`]; one without
    /// it is [`ConnectorError::NotCreatedByCone`].
    async fn owned_idc_user(&self, store: &str, user_id: &str) -> Result<bool, ConnectorError> {
        let got = call_retried(&self.limits, &self.timing, DESCRIBE_IDC_USER, || {
            self.ids.describe_user().identity_store_id(store).user_id(user_id).send()
        })
        .await;
        let Some(user) = found(got)? else { return Ok(false) };
        match user.user_type.as_deref() == Some(OWNER_USER_TYPE) {
            true => Ok(true),
            false => Err(ConnectorError::NotCreatedByCone {
                user: format!("Identity Center user `{}`", user.user_name.unwrap_or_default()),
                mark: format!("the user type {OWNER_USER_TYPE}"),
                next: "The next sync links the Cone user of that name to it; request again after it.",
            }),
        }
    }

    /// Deletes identity-store user `user` (a user name or an id) and its group memberships.
    pub async fn delete_idc_user(&self, store: &str, user: &str) -> Result<Change, ConnectorError> {
        let Some(user_id) = found(self.idc_user(store, user).await)? else {
            return Ok(Change::AlreadyInPlace);
        };
        // moto keeps a deleted user's memberships (pointing at nobody); removing them first leaves none behind.
        self.clear(
            DELETE_MEMBERSHIP,
            || {
                self.look(
                    LIST_MEMBERSHIPS_FOR_MEMBER,
                    |token| {
                        self.ids
                            .list_group_memberships_for_member()
                            .identity_store_id(store)
                            .member_id(MemberId::UserId(user_id.clone()))
                            .set_next_token(token)
                            .send()
                    },
                    |out| (out.group_memberships.into_iter().map(|m| m.membership_id).collect(), out.next_token),
                )
            },
            |id: String| self.delete_membership(store, id),
        )
        .await?;
        removed(
            call_retried(&self.limits, &self.timing, DELETE_IDC_USER, || {
                self.ids.delete_user().identity_store_id(store).user_id(&user_id).send()
            })
            .await,
        )
    }

    /// Adds IAM user `user` to IAM group `group`.
    pub async fn add_iam_group_member(&self, group: &str, user: &str) -> Result<Change, ConnectorError> {
        with_retries(&self.timing, ADD_USER_TO_GROUP, || async {
            let groups = self.iam_groups_of(user).await.map_err(naming(|| format!("IAM user `{user}`")))?;
            if groups.iter().any(|g| g == group) {
                return Ok(Change::AlreadyInPlace);
            }
            let request = self.iam.add_user_to_group().group_name(group).user_name(user).send();
            call(&self.limits, ADD_USER_TO_GROUP, request).await.map_err(naming(|| format!("IAM group `{group}`")))?;
            Ok(Change::Made)
        })
        .await
    }

    /// Removes IAM user `user` from IAM group `group`.
    pub async fn remove_iam_group_member(&self, group: &str, user: &str) -> Result<Change, ConnectorError> {
        with_retries(&self.timing, REMOVE_USER_FROM_GROUP, || async {
            // A user that does not exist is in no group.
            let groups = found(self.iam_groups_of(user).await)?.unwrap_or_default();
            if !groups.iter().any(|g| g == group) {
                return Ok(Change::AlreadyInPlace);
            }
            let request = self.iam.remove_user_from_group().group_name(group).user_name(user).send();
            removed(call(&self.limits, REMOVE_USER_FROM_GROUP, request).await)
        })
        .await
    }

    /// Creates IAM user `name` under `path` with `tags` (key, value). A user of that name that exists already
    /// counts as created; the tags are then set on it, so that either way it ends up carrying them.
    pub async fn create_iam_user(
        &self,
        name: &str,
        path: &str,
        tags: &[(String, String)],
    ) -> Result<Change, ConnectorError> {
        let tags = iam_tags(tags)?;
        with_retries(&self.timing, CREATE_IAM_USER, || async {
            let request = self.iam.create_user().user_name(name).path(path).set_tags(tags.clone()).send();
            match call(&self.limits, CREATE_IAM_USER, request).await {
                Ok(_) => Ok(Change::Made),
                Err(e) if e.is_already_exists() => {
                    if tags.is_some() {
                        let request = self.iam.tag_user().user_name(name).set_tags(tags.clone()).send();
                        call(&self.limits, TAG_USER, request).await?;
                    }
                    Ok(Change::AlreadyInPlace)
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Creates the IAM user a person gets, tagged [`OWNER_TAG`] with their id: no password, no keys. A user of that
    /// name carrying the same tag counts as created (an earlier attempt whose answer was lost); any other is
    /// [`ConnectorError::NotCreatedByCone`] and is left as it is.
    pub async fn create_owned_iam_user(&self, user: &NewIamUser) -> Result<Change, ConnectorError> {
        let mut tags = user.tags.clone();
        tags.push((OWNER_TAG.to_string(), user.owner.clone()));
        let tags = iam_tags(&tags)?;
        with_retries(&self.timing, CREATE_IAM_USER, || async {
            let request = self.iam.create_user().user_name(&user.name).path(&user.path).set_tags(tags.clone()).send();
            match call(&self.limits, CREATE_IAM_USER, request).await {
                Ok(_) => Ok(Change::Made),
                Err(e) if e.is_already_exists() => {
                    self.owned(&user.name, &user.owner).await?;
                    Ok(Change::AlreadyInPlace)
                }
                Err(e) => Err(e),
            }
        })
        .await
    }

    /// Deletes an IAM user [`Connector::create_owned_iam_user`] made, as [`Connector::delete_iam_user`] does; one
    /// without the owner's tag is [`ConnectorError::NotCreatedByCone`] and stays.
    pub async fn delete_owned_iam_user(&self, name: &str, owner: &str) -> Result<Change, ConnectorError> {
        match self.owned(name, owner).await? {
            true => self.delete_iam_user(name).await,
            false => Ok(Change::AlreadyInPlace),
        }
    }

    /// Keeps an IAM user [`Connector::create_owned_iam_user`] made but takes away its ways to act: its console
    /// password is deleted and its active access keys are deactivated. One without the owner's tag is
    /// [`ConnectorError::NotCreatedByCone`] and stays as it is.
    pub async fn disable_owned_iam_user(&self, name: &str, owner: &str) -> Result<Change, ConnectorError> {
        if !self.owned(name, owner).await? {
            return Ok(Change::AlreadyInPlace);
        }
        let login = call_retried(&self.limits, &self.timing, DELETE_LOGIN_PROFILE, || {
            self.iam.delete_login_profile().user_name(name).send()
        });
        let login = removed(login.await)?;
        let active = self.look(
            LIST_ACCESS_KEYS,
            |marker| self.iam.list_access_keys().user_name(name).set_marker(marker).send(),
            |out| {
                let keys = out.access_key_metadata.into_iter().filter(|k| k.status == Some(StatusType::Active));
                (keys.filter_map(|k| k.access_key_id).collect(), next_marker(out.is_truncated, out.marker))
            },
        );
        let active = active.await?;
        for id in &active {
            call_retried(&self.limits, &self.timing, UPDATE_ACCESS_KEY, || {
                self.iam.update_access_key().user_name(name).access_key_id(id).status(StatusType::Inactive).send()
            })
            .await?;
        }
        Ok(if login == Change::Made || !active.is_empty() { Change::Made } else { Change::AlreadyInPlace })
    }

    /// Deactivates access key `key` of IAM user `user` (an access review's revocation). A key that is inactive or no
    /// longer exists, or a user that does not, is already as it should be.
    pub async fn deactivate_access_key(&self, user: &str, key: &str) -> Result<Change, ConnectorError> {
        let active = self.look(
            LIST_ACCESS_KEYS,
            |marker| self.iam.list_access_keys().user_name(user).set_marker(marker).send(),
            |out| {
                let keys = out.access_key_metadata.into_iter().filter(|k| k.status == Some(StatusType::Active));
                (keys.filter_map(|k| k.access_key_id).collect::<Vec<_>>(), next_marker(out.is_truncated, out.marker))
            },
        );
        if !found(active.await)?.unwrap_or_default().iter().any(|k| k == key) {
            return Ok(Change::AlreadyInPlace);
        }
        let request =
            || self.iam.update_access_key().user_name(user).access_key_id(key).status(StatusType::Inactive).send();
        removed(call_retried(&self.limits, &self.timing, UPDATE_ACCESS_KEY, request).await)
    }

    /// Whether user `name` exists (false if not) with tag [`OWNER_TAG`] = `owner`; one without it is
    /// [`ConnectorError::NotCreatedByCone`].
    async fn owned(&self, name: &str, owner: &str) -> Result<bool, ConnectorError> {
        let got =
            call_retried(&self.limits, &self.timing, GET_IAM_USER, || self.iam.get_user().user_name(name).send()).await;
        let Some(user) = found(got)?.and_then(|got| got.user) else {
            return Ok(false);
        };
        let tagged = user.tags().iter().any(|t| t.key() == OWNER_TAG && t.value() == owner);
        match tagged {
            true => Ok(true),
            false => Err(ConnectorError::NotCreatedByCone {
                user: format!("IAM user `{name}`"),
                mark: format!("the tag {OWNER_TAG}={owner}"),
                next: "Rename or remove that user, or give the person's groups through Identity Center instead.",
            }),
        }
    }

    /// Whether IAM user `user` is in IAM group `group` (a user that does not exist is in none).
    pub async fn is_iam_group_member(&self, group: &str, user: &str) -> Result<bool, ConnectorError> {
        let groups =
            with_retries(&self.timing, LIST_GROUPS_FOR_USER, || async { found(self.iam_groups_of(user).await) });
        Ok(groups.await?.unwrap_or_default().iter().any(|g| g == group))
    }

    /// Deletes IAM user `name` after removing everything IAM requires gone first (and what would outlive the user):
    /// console password, access keys, signing certificates, SSH public keys, service-specific credentials (CodeCommit
    /// git credentials included), MFA devices (deactivated; virtual ones deleted), inline and attached policies,
    /// group memberships and the permissions boundary. Sign-in and keys go first, so access ends before the rest.
    pub async fn delete_iam_user(&self, name: &str) -> Result<Change, ConnectorError> {
        let got =
            call_retried(&self.limits, &self.timing, GET_IAM_USER, || self.iam.get_user().user_name(name).send()).await;
        let Some(got) = found(got)? else {
            return Ok(Change::AlreadyInPlace);
        };
        let boundary = got.user.and_then(|u| u.permissions_boundary).is_some();
        let login = call_retried(&self.limits, &self.timing, DELETE_LOGIN_PROFILE, || {
            self.iam.delete_login_profile().user_name(name).send()
        });
        removed(login.await)?;
        clear_listed!(
            self,
            name,
            LIST_ACCESS_KEYS,
            list_access_keys,
            |out| out.access_key_metadata.into_iter().filter_map(|k| k.access_key_id),
            DELETE_ACCESS_KEY,
            |id| self.iam.delete_access_key().user_name(name).access_key_id(id)
        )
        .await?;
        clear_listed!(
            self,
            name,
            LIST_SIGNING_CERTIFICATES,
            list_signing_certificates,
            |out| out.certificates.into_iter().map(|c| c.certificate_id),
            DELETE_SIGNING_CERTIFICATE,
            |id| self.iam.delete_signing_certificate().user_name(name).certificate_id(id)
        )
        .await?;
        clear_listed!(
            self,
            name,
            LIST_SSH_KEYS,
            list_ssh_public_keys,
            |out| out.ssh_public_keys.unwrap_or_default().into_iter().map(|k| k.ssh_public_key_id),
            DELETE_SSH_KEY,
            |id| self.iam.delete_ssh_public_key().user_name(name).ssh_public_key_id(id)
        )
        .await?;
        self.clear(
            DELETE_SERVICE_CREDENTIAL,
            || async {
                let listed = self
                    .look(
                        LIST_SERVICE_CREDENTIALS,
                        |marker| self.iam.list_service_specific_credentials().user_name(name).set_marker(marker).send(),
                        |out| {
                            let credentials = out.service_specific_credentials.unwrap_or_default().into_iter();
                            let ids = credentials.map(|c| c.service_specific_credential_id).collect();
                            (ids, next_marker(out.is_truncated, out.marker))
                        },
                    )
                    .await;
                match listed {
                    Err(e) if e.is_not_implemented() => {
                        tracing::warn!(
                            user = name,
                            "the endpoint does not implement ListServiceSpecificCredentials (moto does not); \
                             taking the user to have no service-specific credentials"
                        );
                        Ok(Vec::new())
                    }
                    other => other,
                }
            },
            |id: String| {
                let request =
                    self.iam.delete_service_specific_credential().user_name(name).service_specific_credential_id(id);
                call(&self.limits, DELETE_SERVICE_CREDENTIAL, request.send())
            },
        )
        .await?;
        self.clear(
            DEACTIVATE_MFA_DEVICE,
            || {
                self.look(
                    LIST_MFA_DEVICES,
                    |marker| self.iam.list_mfa_devices().user_name(name).set_marker(marker).send(),
                    |out| {
                        let serials = out.mfa_devices.into_iter().map(|d| d.serial_number).collect();
                        (serials, next_marker(out.is_truncated, out.marker))
                    },
                )
            },
            |serial: String| async move {
                let request = self.iam.deactivate_mfa_device().user_name(name).serial_number(&serial).send();
                found(call(&self.limits, DEACTIVATE_MFA_DEVICE, request).await)?;
                // A virtual device (serial `arn:…:mfa/…`) would outlive its user. It is retried on its own: once
                // deactivated, the device is no longer the user's, so a retry of the step would not see it again.
                if serial.contains(":mfa/") {
                    let deleted = call_retried(&self.limits, &self.timing, DELETE_VIRTUAL_MFA_DEVICE, || {
                        self.iam.delete_virtual_mfa_device().serial_number(&serial).send()
                    });
                    found(deleted.await)?;
                }
                Ok(())
            },
        )
        .await?;
        clear_listed!(
            self,
            name,
            LIST_USER_POLICIES,
            list_user_policies,
            |out| out.policy_names.into_iter(),
            DELETE_USER_POLICY,
            |policy| self.iam.delete_user_policy().user_name(name).policy_name(policy)
        )
        .await?;
        clear_listed!(
            self,
            name,
            LIST_ATTACHED_POLICIES,
            list_attached_user_policies,
            |out| out.attached_policies.unwrap_or_default().into_iter().filter_map(|p| p.policy_arn),
            DETACH_USER_POLICY,
            |arn| self.iam.detach_user_policy().user_name(name).policy_arn(arn)
        )
        .await?;
        self.clear(
            REMOVE_USER_FROM_GROUP,
            || self.iam_groups_of(name),
            |group: String| {
                let request = self.iam.remove_user_from_group().group_name(group).user_name(name).send();
                call(&self.limits, REMOVE_USER_FROM_GROUP, request)
            },
        )
        .await?;
        if boundary {
            let deleted = call_retried(&self.limits, &self.timing, DELETE_BOUNDARY, || {
                self.iam.delete_user_permissions_boundary().user_name(name).send()
            });
            removed(deleted.await)?;
        }
        let deleted =
            call_retried(&self.limits, &self.timing, DELETE_IAM_USER, || self.iam.delete_user().user_name(name).send());
        removed(deleted.await)
    }

    // ---- parts -----------------------------------------------------------------------------------

    /// One part of a cleanup, retried whole: list what is left, delete each item. What is gone already (an item,
    /// or the user whose items these are) counts as deleted.
    async fn clear<T, L, LFut, D, DFut, O>(&self, op: Op, list: L, delete: D) -> Result<(), ConnectorError>
    where
        L: Fn() -> LFut,
        LFut: Future<Output = Result<Vec<T>, ConnectorError>>,
        D: Fn(T) -> DFut,
        DFut: Future<Output = Result<O, ConnectorError>>,
    {
        with_retries(&self.timing, op, || async {
            for item in found(list().await)?.unwrap_or_default() {
                found(delete(item).await)?;
            }
            Ok(())
        })
        .await
    }

    /// A whole listing, each page one attempt: the look inside a step that is retried whole.
    async fn look<T, O, E, S, Fut, P>(&self, op: Op, send: S, page: P) -> Result<Vec<T>, ConnectorError>
    where
        S: Fn(Option<String>) -> Fut,
        Fut: Future<Output = Result<O, SdkError<E, HttpResponse>>>,
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
        P: Fn(O) -> (Vec<T>, Option<String>),
    {
        list_all(&self.limits, &self.timing.once(), op, send, page).await
    }

    /// The names of the IAM groups `user` is in (a look: one attempt per page).
    async fn iam_groups_of(&self, user: &str) -> Result<Vec<String>, ConnectorError> {
        self.look(
            LIST_GROUPS_FOR_USER,
            |marker| self.iam.list_groups_for_user().user_name(user).set_marker(marker).send(),
            |out| (out.groups.into_iter().map(|g| g.group_name).collect(), next_marker(out.is_truncated, out.marker)),
        )
        .await
    }

    /// The id of `user_id`'s membership of `group_id`, if any (a look). GetGroupMembershipId where implemented,
    /// else the group's memberships, paged.
    async fn membership_id(
        &self,
        store: &str,
        group_id: &str,
        user_id: &str,
    ) -> Result<Option<String>, ConnectorError> {
        let request = self
            .ids
            .get_group_membership_id()
            .identity_store_id(store)
            .group_id(group_id)
            .member_id(MemberId::UserId(user_id.to_string()))
            .send();
        match call(&self.limits, GET_MEMBERSHIP_ID, request).await {
            Ok(out) => Ok(Some(out.membership_id)),
            Err(e) if e.is_not_found() => Ok(None),
            Err(e) if e.is_not_implemented() => {
                tracing::debug!("GetGroupMembershipId is not implemented here (moto); paging ListGroupMemberships");
                let ids = self.look(
                    LIST_GROUP_MEMBERSHIPS,
                    |token| {
                        self.ids
                            .list_group_memberships()
                            .identity_store_id(store)
                            .group_id(group_id)
                            .set_next_token(token)
                            .send()
                    },
                    |out| {
                        let ids = out
                            .group_memberships
                            .into_iter()
                            .filter(|m| matches!(&m.member_id, Some(MemberId::UserId(id)) if id == user_id))
                            .map(|m| m.membership_id)
                            .collect();
                        (ids, out.next_token)
                    },
                );
                Ok(ids.await?.into_iter().next())
            }
            Err(e) => Err(e),
        }
    }

    async fn delete_membership(&self, store: &str, id: String) -> Result<Change, ConnectorError> {
        let request = self.ids.delete_group_membership().identity_store_id(store).membership_id(id).send();
        removed(call(&self.limits, DELETE_MEMBERSHIP, request).await)
    }

    /// The id of the identity-store user `name_or_id` names: an id as it is, else the user with that user name.
    /// NotFound when there is none.
    async fn idc_user(&self, store: &str, name_or_id: &str) -> Result<String, ConnectorError> {
        if is_identity_store_id(name_or_id) {
            return Ok(name_or_id.to_string());
        }
        self.user_id_named(store, name_or_id, &self.timing).await
    }

    async fn user_id_named(&self, store: &str, user_name: &str, timing: &Timing) -> Result<String, ConnectorError> {
        let by_name = unique(GET_USER_ID, "userName", user_name)?;
        let out = call_retried(&self.limits, timing, GET_USER_ID, || {
            self.ids.get_user_id().identity_store_id(store).alternate_identifier(by_name.clone()).send()
        });
        Ok(out.await?.user_id)
    }

    /// The id of the identity-store group `name_or_id` names: an id as it is, else the group with that display name.
    /// NotFound when there is none.
    async fn idc_group(&self, store: &str, name_or_id: &str) -> Result<String, ConnectorError> {
        if is_identity_store_id(name_or_id) {
            return Ok(name_or_id.to_string());
        }
        let by_name = unique(GET_GROUP_ID, "displayName", name_or_id)?;
        let out = call_retried(&self.limits, &self.timing, GET_GROUP_ID, || {
            self.ids.get_group_id().identity_store_id(store).alternate_identifier(by_name.clone()).send()
        });
        Ok(out.await?.group_id)
    }
}

/// `tags` as IAM takes them; none is `None`.
fn iam_tags(tags: &[(String, String)]) -> Result<Option<Vec<Tag>>, ConnectorError> {
    let tags = tags
        .iter()
        .map(|(key, value)| Tag::builder().key(key).value(value).build())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| ConnectorError::Rejected {
            operation: CREATE_IAM_USER.name,
            status: None,
            code: "InvalidTag".into(),
            message: e.to_string(),
        })?;
    Ok((!tags.is_empty()).then_some(tags))
}

/// [`Change::Made`] if the delete found its target, [`Change::AlreadyInPlace`] if it was gone.
fn removed<T>(result: Result<T, ConnectorError>) -> Result<Change, ConnectorError> {
    Ok(if found(result)?.is_some() { Change::Made } else { Change::AlreadyInPlace })
}

/// Turns AWS's "not found" into [`ConnectorError::NoSuchPrincipal`] naming `what`; other errors pass.
fn naming(what: impl FnOnce() -> String) -> impl FnOnce(ConnectorError) -> ConnectorError {
    move |e| match e {
        ConnectorError::NotFound { operation, message, .. } => {
            ConnectorError::NoSuchPrincipal { operation, what: what(), message }
        }
        other => other,
    }
}

/// Identifies a user or group by a unique attribute (`userName`, `displayName`).
fn unique(op: Op, path: &str, value: &str) -> Result<AlternateIdentifier, ConnectorError> {
    let attribute =
        UniqueAttribute::builder().attribute_path(path).attribute_value(Document::String(value.into())).build();
    attribute.map(AlternateIdentifier::UniqueAttribute).map_err(|e| ConnectorError::Rejected {
        operation: op.name,
        status: None,
        code: "InvalidIdentifier".into(),
        message: e.to_string(),
    })
}

/// Whether `s` has the form of an identity-store user or group id: a UUID, perhaps after ten hex digits and a dash.
fn is_identity_store_id(s: &str) -> bool {
    let b = s.as_bytes();
    let uuid = match b.len() {
        36 => s,
        47 if b[10] == b'-' && b[..10].iter().all(u8::is_ascii_hexdigit) => &s[11..],
        _ => return false,
    };
    uuid.split('-').map(str::len).eq([8, 4, 4, 4, 12]) && uuid.bytes().all(|c| c == b'-' || c.is_ascii_hexdigit())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identity_store_ids_are_told_from_names() {
        for id in ["e9824dbe-dc26-4238-bf0e-77cd2570602d", "9067729b3d-94f1e788-c2b4-4d6b-9b36-5a1e16b6c2f7"] {
            assert!(is_identity_store_id(id), "{id}");
        }
        for name in
            ["alice", "approvers", "e9824dbe-dc26-4238-bf0e-77cd2570602", "e9824dbe_dc26_4238_bf0e_77cd2570602d"]
        {
            assert!(!is_identity_store_id(name), "{name}");
        }
        // Multi-byte text of an id's length is a name, and does not panic.
        assert!(!is_identity_store_id("ééééééééééééééééééééééé-"));
    }

    #[test]
    fn not_found_names_the_principal() {
        let e = ConnectorError::NotFound {
            operation: "AddUserToGroup",
            code: "NoSuchEntity".into(),
            message: "Group devs not found".into(),
        };
        let e = naming(|| "IAM group `devs`".into())(e);
        let text = e.to_string();
        assert!(matches!(e, ConnectorError::NoSuchPrincipal { .. }), "{e:?}");
        assert!(text.contains("IAM group `devs` does not exist") && text.contains("cone-aws list"), "{text}");
    }
}
