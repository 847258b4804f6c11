#!/usr/bin/env bash
# The web console's pages as a signed-in person loads them: the catalog, my requests (with an active grant) and the
# approvals page, each fetched by 16 connections for 10 s after a warm-up, from a release cone-server on SQLite.
# Prints requests/s and p50/p99 per page; the target is p99 <= 50 ms (a page that feels instant), measured beside
# /healthz under the same load, the floor of this machine and load tool.
#
#   bench/console.sh
#   DURATION=30s bench/console.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/server-lib.sh
source bench/server-lib.sh

echo "load before: $(uptime)"
echo "target for each page: p99 <= 50ms"
# shellcheck disable=SC2119 # no arguments: SQLite
start_setup
base=$(field URL)
printf 'wrk.headers["Cookie"] = "%s"\n' "$(field COOKIE)" > "$work/cookie.lua"
for page in /console /console/requests /console/inbox /healthz; do
    # Every answer must be the page itself, not the sign-in page it redirects to.
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $(field COOKIE)" "$base$page")
    [[ "$status" == 200 ]] || { echo "$page answered $status, not 200" >&2; exit 1; }
    wrk -t2 -c16 -d3s -s "$work/cookie.lua" "$base$page" > /dev/null
    wrk -t2 -c16 -d"${DURATION:-10s}" --latency -s "$work/cookie.lua" "$base$page" > "$work/wrk.out"
    grep -q 'Non-2xx' "$work/wrk.out" && { cat "$work/wrk.out" >&2; echo "$page: some answers were not 2xx" >&2; exit 1; }
    awk -v label="$page" '
        /^ +50%/ {p50 = $2} /^ +99%/ {p99 = $2} /^Requests\/sec/ {rps = $2}
        END {printf "%-18s %6.0f req/s, p50 %s, p99 %s\n", label, rps, p50, p99}
    ' "$work/wrk.out"
done
echo "load after: $(uptime)"
