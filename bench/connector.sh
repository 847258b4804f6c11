#!/usr/bin/env bash
# Time from an auto-approved request to its grant, with the connector embedded in cone-server and with cone-aws serve
# as its own process (aws.connector: external), on one sandbox, side by side. ROUNDS (30) requests each;
# STORE=postgres for PostgreSQL.
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-target}"
cargo build --release --quiet -p cone-server -p idc-emulator -p cone -p cone-cli -p cone-testkit -p cone-aws --bins
args=(connector --rounds "${ROUNDS:-30}")
[[ "${STORE:-sqlite}" == postgres ]] && args+=(--postgres)
"$CARGO_TARGET_DIR/release/cone-bench-setup" "${args[@]}"
