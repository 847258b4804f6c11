//! The store: every SQL statement of the server, split by subject, written once for both backends through sqlx's
//! `Any` driver (`$N` placeholders, which SQLite accepts too). SQLite in WAL mode is the embedded default;
//! PostgreSQL serves several replicas. Nothing outside this module sees the pool.

mod access;
mod accounts;
mod audit;
mod cache;
mod catalog;
mod connector;
mod counts;
mod denials;
mod drift;
mod grants;
mod iam;
mod identities;
mod lifecycle;
mod listen;
mod notifications;
mod outbox;
mod pool;
mod reviews;
mod rows;
mod sessions;
mod tasks;
#[cfg(test)]
pub mod testing;
#[cfg(test)]
mod tests;

pub use access::{Applied, ConfigVersionRow};
pub use accounts::{AccountNeed, CreatedAccountRow};
#[cfg(test)]
pub use audit::record;
pub use audit::{AUDIT_BATCH, AuditFilter, AuditRow, audit_hash};
pub use connector::ClaimedCall;
pub use counts::Counts;
pub use drift::{DriftFilter, DriftRecord, Repair};
pub use iam::{AccessKeyFilter, AccessKeyRow, IamUserRow};
pub use listen::forward_changes;
pub use notifications::{Audiences, NotificationRow};
pub use outbox::{DeliveryRow, DeliveryState, rfc3339};
#[cfg(test)]
pub use pool::Backend;
pub use pool::Db;
pub use reviews::{AccessRow, CampaignRow, ItemFilter, ItemRow, NewCampaign, NewItem, REVIEW_SCHEDULE, Refusal};
pub use rows::{EntitlementRow, GrantRow, JobRow, USER_SERVICE, UserRow};
pub use sessions::{ApiTokenRow, DevicePoll, NewApiToken, TokenOwner, TokensOf};
pub use tasks::{EventRow, Narrow, NewTask, Placement, States, TaskFilter, TaskRow};
