#!/usr/bin/env bash
# Peak RSS of `cone-aws sync` as the organisation's assignments grow: the same organisation (bench/seed_org.py) seeded
# once per size in ASSIGNMENTS_SIZES into its own moto, each synced at a high Identity Center rate under GNU time. The
# sync streams memberships and assignments to storage (cone_aws::spool), so its peak should barely move with them;
# BASELINE=path/to/an/older/cone-aws runs that binary on the same organisations, side by side.
#
#   bench/sync-memory.sh                                   2,000 users; 5,000 then 20,000 assignments
#   ASSIGNMENTS_SIZES="5000 40000" BASELINE=/tmp/cone-aws-before bench/sync-memory.sh
#
# The other sizes (ACCOUNTS, PERMISSION_SETS, USERS, IDC_GROUPS) are bench/seed_org.py's, from the environment.
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/moto-lib.sh
cargo build --release --quiet -p cone-aws
binaries=("$(realpath "${CARGO_TARGET_DIR:-target}/release/cone-aws")")
[[ -n "${BASELINE:-}" ]] && binaries+=("$(realpath "$BASELINE")")

export AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
unset BATON_ROLE_ARN BATON_EXTERNAL_ID BATON_GLOBAL_AWS_ORGS_ENABLED CONE_AWS_SYNC_IAM BATON_SYNC_SECRETS
echo "load before: $(uptime)"
printf '%-12s %-12s %-12s %s\n' assignments "peak RSS" wall binary
for size in ${ASSIGNMENTS_SIZES:-5000 20000}; do
    start_moto
    ASSIGNMENTS=$size .venv/bin/python bench/seed_org.py "$endpoint" >/dev/null
    for bin in "${binaries[@]}"; do
        rm -f "$work"/sync.*
        start=$(date +%s.%N)
        AWS_ENDPOINT_URL="$endpoint" /usr/bin/time -v -o "$work/time" "$bin" sync --out "$work/sync.sqlite" --fresh \
            --global-aws-orgs-enabled true --sso-rate 1000 2>"$work/stderr" \
            || { cat "$work/stderr" >&2; exit 1; }
        wall=$(echo "$(date +%s.%N) - $start" | bc)
        rss=$(sed -n 's/.*Maximum resident set size (kbytes): //p' "$work/time")
        rows=$(.venv/bin/python -c 'import sqlite3, sys
print(sqlite3.connect(sys.argv[1]).execute("SELECT count(*) FROM assignments").fetchone()[0])' "$work/sync.sqlite")
        printf '%-12s %-12s %-12s %s\n' "$rows" "$(echo "scale=1; $rss / 1024" | bc) MB" "$(printf '%.1f' "$wall") s" "$bin"
    done
    kill "$moto_pid"
    wait "$moto_pid" 2>/dev/null || true
    moto_pid=
done
echo "load after: $(uptime)"
