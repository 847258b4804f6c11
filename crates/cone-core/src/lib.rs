//! Cone's pure logic: request catalogs, profile naming, `~/.aws/config` editing, policy decisions, request and form
//! validation, the lifecycles of tasks, grants, jobs and the IAM users Cone creates, who is who after a sync, who is told what, and who reviews what access. No I/O, no async, no clock:
//! time arrives as an argument.

pub mod account;
pub mod awsconfig;
pub mod catalog;
pub mod condition;
pub mod document;
pub mod duration;
pub mod form;
pub mod grant;
pub mod identity;
pub mod job;
pub mod naming;
pub mod notify;
pub mod policy;
pub mod request;
pub mod review;
pub mod sessions;
pub mod task;
