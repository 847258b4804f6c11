//! The connector as the workers use it: in this process (`aws.connector: embedded`, the default) or a
//! `cone-aws serve` elsewhere (`external`), which takes each operation as a [`Call`] through
//! `services::connector` and answers it. The operations and their answers are the same either way.

use std::sync::Arc;

use cone_aws::denial::Wanted;
use cone_aws::remote::{Call, decode};
use cone_aws::{Assignment, Change, Connector, ConnectorError, Features, NewIamUser, NewIdcUser, SqlSpool, Synced};
use serde::de::DeserializeOwned;

use crate::services::connector;
use crate::state::AppState;

#[derive(Clone)]
pub enum Aws {
    Embedded(Arc<Connector>),
    External(AppState),
}

impl Aws {
    async fn run<T: DeserializeOwned>(&self, call: Call) -> Result<T, ConnectorError> {
        decode(match self {
            Aws::Embedded(c) => c.execute(&call).await?,
            Aws::External(s) => connector::call(s, &call, None).await?,
        })
    }

    /// The Identity Center sync into `spool`; the embedded connector resumes from the store's journal.
    pub async fn sync_into(&self, s: &AppState, spool: &SqlSpool) -> Result<Synced, ConnectorError> {
        match self {
            Aws::Embedded(c) => c.sync_into(s.db.sync_journal(), spool).await,
            Aws::External(s) => decode(connector::call(s, &Call::Sync, Some(spool.run())).await?),
        }
    }

    pub async fn sync_iam_into(&self, features: &Features, spool: &SqlSpool) -> Result<(), ConnectorError> {
        match self {
            Aws::Embedded(c) => c.sync_iam_into(features, spool).await,
            Aws::External(s) => {
                decode(connector::call(s, &Call::SyncIam { features: *features }, Some(spool.run())).await?)
            }
        }
    }

    pub async fn assign(&self, assignment: &Assignment) -> Result<(), ConnectorError> {
        self.run(Call::Assign { assignment: assignment.clone() }).await
    }

    /// The deletion's AWS request id, if AWS made one.
    pub async fn unassign(&self, assignment: &Assignment) -> Result<Option<String>, ConnectorError> {
        self.run(Call::Unassign { assignment: assignment.clone() }).await
    }

    pub async fn identity_store_id(&self) -> Result<String, ConnectorError> {
        self.run(Call::IdentityStoreId).await
    }

    pub async fn is_idc_group_member(&self, store: &str, group: &str, user: &str) -> Result<bool, ConnectorError> {
        let (store, group, user) = (store.into(), group.into(), user.into());
        self.run(Call::IsIdcGroupMember { store, group, user }).await
    }

    pub async fn add_idc_group_member(&self, store: &str, group: &str, user: &str) -> Result<Change, ConnectorError> {
        let (store, group, user) = (store.into(), group.into(), user.into());
        self.run(Call::AddIdcGroupMember { store, group, user }).await
    }

    pub async fn remove_idc_group_member(
        &self,
        store: &str,
        group: &str,
        user: &str,
    ) -> Result<Change, ConnectorError> {
        let (store, group, user) = (store.into(), group.into(), user.into());
        self.run(Call::RemoveIdcGroupMember { store, group, user }).await
    }

    pub async fn create_owned_iam_user(&self, account: &str, user: &NewIamUser) -> Result<Change, ConnectorError> {
        self.run(Call::CreateOwnedIamUser { account: account.into(), user: user.clone() }).await
    }

    pub async fn is_iam_group_member(&self, account: &str, group: &str, user: &str) -> Result<bool, ConnectorError> {
        let (account, group, user) = (account.into(), group.into(), user.into());
        self.run(Call::IsIamGroupMember { account, group, user }).await
    }

    pub async fn add_iam_group_member(&self, account: &str, group: &str, user: &str) -> Result<Change, ConnectorError> {
        let (account, group, user) = (account.into(), group.into(), user.into());
        self.run(Call::AddIamGroupMember { account, group, user }).await
    }

    pub async fn remove_iam_group_member(
        &self,
        account: &str,
        group: &str,
        user: &str,
    ) -> Result<Change, ConnectorError> {
        let (account, group, user) = (account.into(), group.into(), user.into());
        self.run(Call::RemoveIamGroupMember { account, group, user }).await
    }

    pub async fn delete_owned_iam_user(
        &self,
        account: &str,
        user: &str,
        owner: &str,
    ) -> Result<Change, ConnectorError> {
        let (account, user, owner) = (account.into(), user.into(), owner.into());
        self.run(Call::DeleteOwnedIamUser { account, user, owner }).await
    }

    pub async fn disable_owned_iam_user(
        &self,
        account: &str,
        user: &str,
        owner: &str,
    ) -> Result<Change, ConnectorError> {
        let (account, user, owner) = (account.into(), user.into(), owner.into());
        self.run(Call::DisableOwnedIamUser { account, user, owner }).await
    }

    pub async fn deactivate_access_key(&self, account: &str, user: &str, key: &str) -> Result<Change, ConnectorError> {
        let (account, user, key) = (account.into(), user.into(), key.into());
        self.run(Call::DeactivateAccessKey { account, user, key }).await
    }

    /// The user's id, and whether this call made it.
    pub async fn create_owned_idc_user(
        &self,
        store: &str,
        user: &NewIdcUser,
    ) -> Result<(Change, String), ConnectorError> {
        self.run(Call::CreateOwnedIdcUser { store: store.into(), user: user.clone() }).await
    }

    /// `user` is an id, or a user name when the id was never learnt.
    pub async fn delete_owned_idc_user(&self, store: &str, user: &str) -> Result<Change, ConnectorError> {
        self.run(Call::DeleteOwnedIdcUser { store: store.into(), user: user.into() }).await
    }

    pub async fn keep_denial(&self, wanted: Option<Wanted>) -> Result<(), ConnectorError> {
        self.run(Call::KeepDenial { wanted }).await
    }
}
