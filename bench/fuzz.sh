#!/usr/bin/env bash
# Runs each fuzz target of crates/cone-fuzz under libFuzzer (cargo fuzz, nightly) for SECS seconds, JOBS targets at
# a time (default: one per core), niced so that other work on the machine keeps its share. New inputs go to
# fuzz/new/<target>/ (not kept in git); at the end those that reach code the saved corpus does not are merged into
# crates/cone-fuzz/fuzz/corpus/<target>/, which `cargo xtask test` replays. A crash stops its target and leaves the
# input in fuzz/artifacts/<target>/: fix it, and move the input into the corpus as found-<what>.
# Prints per target: executions, inputs merged into the corpus, crash or not.
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
    local t=$1 outcome
    mkdir -p "fuzz/new/$t"
    if nice -n 19 cargo +nightly fuzz run -O "$t" "fuzz/new/$t" "fuzz/corpus/$t" -- -max_total_time="$secs" \
        -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 >"$logs/$t.log" 2>&1; then
        outcome="no crash"
    else
        outcome="CRASH: $(grep -m1 -o 'artifacts/[^ ]*' "$logs/$t.log" || echo "see $logs/$t.log")"
    fi
    local before
    before=$(ls "fuzz/corpus/$t" | wc -l)
    nice -n 19 cargo +nightly fuzz run -O "$t" "fuzz/corpus/$t" "fuzz/new/$t" -- -merge=1 >"$logs/$t.merge.log" 2>&1
    printf '%-11s %6ss  %12s execs  %4s inputs merged into the corpus  %s\n' "$t" "$secs" \
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
