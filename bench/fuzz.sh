#!/usr/bin/env bash
# Runs each fuzz target of crates/cone-fuzz under libFuzzer (cargo fuzz, nightly) for SECS seconds, one target per
# core at a time, niced so that other work on the machine keeps its share. New inputs that reach new code go into
# crates/cone-fuzz/fuzz/corpus/<target>/, which `cargo xtask test` replays; a crash stops its target and leaves the
# input in fuzz/artifacts/<target>/. Prints per target: runs, executions, new corpus entries, crash or not.
#
#   bench/fuzz.sh                    every target, 30 minutes each
#   SECS=60 bench/fuzz.sh form caches
set -euo pipefail
cd "$(dirname "$0")/../crates/cone-fuzz"

rustup toolchain list | grep -q '^nightly' || rustup toolchain install nightly --profile minimal
command -v cargo-fuzz >/dev/null || cargo install cargo-fuzz --locked --version 0.13.1
targets=("$@")
[[ ${#targets[@]} -gt 0 ]] || targets=(aws_config document caches form condition api_bodies)
secs="${SECS:-1800}"
jobs="${JOBS:-$(nproc)}"
cargo +nightly fuzz build -O
logs=$(mktemp -d)

run() {
    local t=$1 before
    before=$(ls "fuzz/corpus/$t" | wc -l)
    if nice -n 19 cargo +nightly fuzz run -O "$t" -- -max_total_time="$secs" -rss_limit_mb=2048 -timeout=10 \
        -print_final_stats=1 >"$logs/$t.log" 2>&1; then
        outcome="no crash"
    else
        outcome="CRASH: $(grep -m1 -o 'artifacts/[^ ]*' "$logs/$t.log" || echo "see $logs/$t.log")"
    fi
    printf '%-11s %6ss  %12s execs  %4s new inputs  %s\n' "$t" "$secs" \
        "$(grep -m1 -o 'stat::number_of_executed_units: *[0-9]*' "$logs/$t.log" | grep -o '[0-9]*$' || echo '?')" \
        "$(($(ls "fuzz/corpus/$t" | wc -l) - before))" "$outcome"
}

echo "load before: $(uptime)"
for t in "${targets[@]}"; do
    while [[ $(jobs -r | wc -l) -ge $jobs ]]; do wait -n || true; done
    run "$t" &
done
wait
echo "load after: $(uptime)"
echo "logs: $logs"
