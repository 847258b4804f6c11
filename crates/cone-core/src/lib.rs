//! Cone's pure logic: request catalogs, profile naming, `~/.aws/config` editing, policy decisions, request and form
//! validation, and the lifecycles of tasks, grants and jobs. No I/O, no async, no clock: time arrives as an argument.

pub mod awsconfig;
pub mod catalog;
pub mod document;
pub mod duration;
pub mod form;
pub mod grant;
pub mod job;
pub mod naming;
pub mod policy;
pub mod request;
pub mod task;
