//! Cone end to end, in one test binary so that the AWS SDK is linked once: moto, the Identity Center emulator,
//! cone-server and the `cone` CLI as separate processes on free loopback ports, driven by the real AWS clients, a
//! browser and the typed API client. Needs `cargo build --workspace --bins` (the harness refuses binaries older than
//! their sources) and the `.venv` that `cargo xtask test` prepares.

mod authz;
mod config;
mod flow;
mod forms;
mod groups;
mod iam;
mod interop;
mod openapi;
mod ops;
mod people;
mod policy;
mod server;
mod tokens;
mod web;
