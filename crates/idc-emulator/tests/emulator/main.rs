//! The emulator against moto, in one test binary: `protocol` speaks the wire protocol over raw HTTP, `aws_cli`
//! drives it with the real AWS CLI v1.

mod aws_cli;
mod protocol;
