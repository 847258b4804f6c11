//! The connector's work as data, so that it can run in another process: a [`Call`] is one operation of the
//! [`Connector`], [`Connector::execute`] runs it, and its answer (a JSON value, or a [`Failure`]) crosses the wire
//! back. cone-server runs every call this way, in its own process (the embedded connector) or through a connector in
//! service mode (`cone-aws serve`), which streams a sync's parts back as it reads them.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::denial::Wanted;
use crate::journal::Journal;
use crate::spool::Sink;
use crate::{Assignment, Connector, ConnectorError, Features, NewIamUser, NewIdcUser};

/// One operation of the connector. The IAM ones name the member account whose IAM they change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum Call {
    /// The Identity Center sync, its parts put into the sink; answers [`crate::Synced`].
    Sync,
    /// The IAM sync, its parts put into the sink.
    SyncIam {
        features: Features,
    },
    Assign {
        assignment: Assignment,
    },
    /// Answers the deletion's AWS request id, if AWS made one.
    Unassign {
        assignment: Assignment,
    },
    IdentityStoreId,
    IsIdcGroupMember {
        store: String,
        group: String,
        user: String,
    },
    AddIdcGroupMember {
        store: String,
        group: String,
        user: String,
    },
    RemoveIdcGroupMember {
        store: String,
        group: String,
        user: String,
    },
    CreateOwnedIamUser {
        account: String,
        user: NewIamUser,
    },
    IsIamGroupMember {
        account: String,
        group: String,
        user: String,
    },
    AddIamGroupMember {
        account: String,
        group: String,
        user: String,
    },
    RemoveIamGroupMember {
        account: String,
        group: String,
        user: String,
    },
    DeleteOwnedIamUser {
        account: String,
        user: String,
        owner: String,
    },
    DisableOwnedIamUser {
        account: String,
        user: String,
        owner: String,
    },
    DeactivateAccessKey {
        account: String,
        user: String,
        key: String,
    },
    /// Answers the user's id and whether this call made it.
    CreateOwnedIdcUser {
        store: String,
        user: NewIdcUser,
    },
    DeleteOwnedIdcUser {
        store: String,
        user: String,
    },
    /// Makes Cone's service control policy in AWS Organizations deny what `wanted` says; `None` removes it.
    KeepDenial {
        wanted: Option<Wanted>,
    },
}

impl Call {
    /// Whether the call changes AWS: a connector with provisioning off refuses these.
    pub fn writes(&self) -> bool {
        !matches!(
            self,
            Call::Sync
                | Call::SyncIam { .. }
                | Call::IdentityStoreId
                | Call::IsIdcGroupMember { .. }
                | Call::IsIamGroupMember { .. }
        )
    }
}

/// A failed call as it crosses the wire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// What happened and what to do, as the connector said it.
    pub message: String,
    pub retryable: bool,
    #[serde(default)]
    pub not_created_by_cone: bool,
}

impl From<&ConnectorError> for Failure {
    fn from(e: &ConnectorError) -> Failure {
        Failure { message: e.to_string(), retryable: e.is_retryable(), not_created_by_cone: e.is_not_created_by_cone() }
    }
}

impl From<Failure> for ConnectorError {
    fn from(f: Failure) -> ConnectorError {
        ConnectorError::Remote {
            message: f.message,
            retryable: f.retryable,
            not_created_by_cone: f.not_created_by_cone,
        }
    }
}

/// A call's answer on the wire: the value the operation returned, or why it failed.
pub type Answer = Result<Value, Failure>;

/// A call a host claimed (`POST /api/v1/connector/calls/next`): run it, renewing the lease within `lease_secs`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Claimed {
    pub id: i64,
    pub call: Call,
    pub lease_secs: i64,
}

/// One part of a sync, numbered by the host from 0 (`POST /api/v1/connector/calls/{id}/parts`).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PartPost {
    pub seq: i64,
    pub part: crate::Part,
}

/// A read or write of the journal of a sync a host runs (`POST /api/v1/connector/calls/{id}/journal`), which the
/// server keeps, so that a sync one connector left unfinished resumes where it stopped on any connector. A recall
/// answers `[body, recorded_at]` or null, a record null.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum JournalPost {
    Recall { unit: String, since: i64, until: i64 },
    Record { unit: String, body: String, at: i64 },
}

/// A call's answer as the caller wants it.
pub fn decode<T: DeserializeOwned>(answer: Value) -> Result<T, ConnectorError> {
    serde_json::from_value(answer).map_err(|e| ConnectorError::Remote {
        message: format!(
            "the connector's answer could not be read ({e}); run the same version of cone-aws as of cone-server"
        ),
        retryable: false,
        not_created_by_cone: false,
    })
}

fn encode(answer: impl Serialize) -> Result<Value, ConnectorError> {
    serde_json::to_value(answer).map_err(|e| ConnectorError::Remote {
        message: format!("cannot write the answer down: {e}"),
        retryable: false,
        not_created_by_cone: false,
    })
}

impl Call {
    /// A sync, whose parts go to a sink ([`Connector::execute_sync`]) rather than into the answer.
    pub fn is_sync(&self) -> bool {
        matches!(self, Call::Sync | Call::SyncIam { .. })
    }
}

impl Connector {
    /// Runs a sync call: resumes from `journal` and puts the parts into `sink`.
    pub async fn execute_sync(
        &self,
        call: &Call,
        journal: &dyn Journal,
        sink: &dyn Sink,
    ) -> Result<Value, ConnectorError> {
        match call {
            Call::Sync => encode(self.sync_into(journal, sink).await?),
            Call::SyncIam { features } => encode(self.sync_iam_into(features, sink).await?),
            _ => self.execute(call).await,
        }
    }

    /// Runs any other call. (A sync's future is kept apart: it holds its journal and sink across awaits in a way
    /// that keeps it from being sent to another thread, which the other calls' futures are.)
    pub async fn execute(&self, call: &Call) -> Result<Value, ConnectorError> {
        match call {
            Call::Sync | Call::SyncIam { .. } => Err(ConnectorError::Remote {
                message: "a sync runs with its journal and sink (execute_sync)".into(),
                retryable: false,
                not_created_by_cone: false,
            }),
            Call::Assign { assignment } => encode(self.assign(assignment).await?),
            Call::Unassign { assignment } => encode(self.unassign(assignment).await?),
            Call::IdentityStoreId => encode(self.identity_store_id().await?),
            Call::IsIdcGroupMember { store, group, user } => {
                encode(self.is_idc_group_member(store, group, user).await?)
            }
            Call::AddIdcGroupMember { store, group, user } => {
                encode(self.add_idc_group_member(store, group, user).await?)
            }
            Call::RemoveIdcGroupMember { store, group, user } => {
                encode(self.remove_idc_group_member(store, group, user).await?)
            }
            Call::CreateOwnedIamUser { account, user } => {
                encode(self.in_account(account).await?.create_owned_iam_user(user).await?)
            }
            Call::IsIamGroupMember { account, group, user } => {
                encode(self.in_account(account).await?.is_iam_group_member(group, user).await?)
            }
            Call::AddIamGroupMember { account, group, user } => {
                encode(self.in_account(account).await?.add_iam_group_member(group, user).await?)
            }
            Call::RemoveIamGroupMember { account, group, user } => {
                encode(self.in_account(account).await?.remove_iam_group_member(group, user).await?)
            }
            Call::DeleteOwnedIamUser { account, user, owner } => {
                encode(self.in_account(account).await?.delete_owned_iam_user(user, owner).await?)
            }
            Call::DisableOwnedIamUser { account, user, owner } => {
                encode(self.in_account(account).await?.disable_owned_iam_user(user, owner).await?)
            }
            Call::DeactivateAccessKey { account, user, key } => {
                encode(self.in_account(account).await?.deactivate_access_key(user, key).await?)
            }
            Call::CreateOwnedIdcUser { store, user } => encode(self.create_owned_idc_user(store, user).await?),
            Call::DeleteOwnedIdcUser { store, user } => encode(self.delete_owned_idc_user(store, user).await?),
            Call::KeepDenial { wanted } => encode(self.keep_denial(wanted.as_ref()).await?),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Principal;

    #[test]
    fn calls_and_failures_cross_the_wire_unchanged() {
        let assignment = Assignment {
            instance_arn: "arn:aws:sso:::instance/ssoins-1".into(),
            account_id: "111122223333".into(),
            permission_set_arn: "arn:aws:sso:::permissionSet/ssoins-1/ps-1".into(),
            principal: Principal::User("u-1".into()),
        };
        let call = Call::Assign { assignment };
        let wire = serde_json::to_string(&call).unwrap();
        assert!(wire.starts_with(r#"{"op":"assign","assignment":{"#), "{wire}");
        assert_eq!(serde_json::from_str::<Call>(&wire).unwrap(), call);
        assert!(call.writes() && !Call::Sync.writes() && !Call::IdentityStoreId.writes());

        let e = ConnectorError::NotCreatedByCone {
            user: "IAM user `alice`".into(),
            mark: "the tag cone:identity=u-1".into(),
            next: "Rename it.",
        };
        let back = ConnectorError::from(Failure::from(&e));
        assert_eq!(back.to_string(), e.to_string());
        assert!(back.is_not_created_by_cone() && !back.is_retryable());
        assert!(matches!(decode::<bool>(Value::String("yes".into())), Err(ConnectorError::Remote { .. })));
    }
}
