//! Test and sandbox support: the real processes (moto, the emulator, cone-server) on free loopback ports,
//! each stopped by PID when its handle is dropped, and the seeded sandbox organisation.

mod process;
pub use process::{Child, Moto, target_bin, venv_bin, workspace_root};

pub mod console;
pub mod faults;
pub mod scim;

mod postgres;
pub use postgres::Postgres;

mod seed;
pub mod slack;
pub mod smtp;
pub use seed::{SandboxOrg, moto_sdk_config, seed_sandbox};

mod sandbox;
pub use sandbox::{Got, START_URL, Sandbox, Store, password};
