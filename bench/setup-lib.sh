# Sourced by the benchmarks that run `cone-bench-setup` (expiry, offboard, flood): moves to the checkout's root and
# builds in release mode what it starts; `$setup` is the binary.
# shellcheck shell=bash
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

setup="${CARGO_TARGET_DIR:-target}/release/cone-bench-setup"
cargo build --release --quiet -p cone-server -p idc-emulator -p cone -p cone-cli -p cone-testkit --bins
