//! The connector against moto, in one test binary so that the AWS SDK is linked once: `moto` (sync), `iam` (the IAM
//! sync), `provision` (users and memberships), `faults` (the same behind a fault-injecting proxy) and `cli` (the
//! `cone-aws` binary).

mod cli;
mod common;
mod faults;
mod iam;
mod moto;
mod provision;
