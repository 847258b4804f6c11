#!/usr/bin/env bash
# The web console's pages as a signed-in person loads them: the catalog, my requests (with an active grant) and the
# approvals page, each fetched by 16 connections for 10 s after a warm-up, from a release cone-server on SQLite.
# Prints requests/s and p50/p99 per page; the target is p99 <= 50 ms (a page that feels instant), measured beside
# /healthz under the same load, the floor of this machine and load tool.
#
# ORG=1 first adds bench/seed_org.py's organisation to the sandbox (200 accounts, 20 permission sets each, 2,000
# people; ACCOUNTS, PERMISSION_SETS and USERS change it) and also measures a catalog search and the API's catalog,
# whole and searched.
#
#   bench/console.sh
#   ORG=1 bench/console.sh
#   DURATION=30s bench/console.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/server-lib.sh
source bench/server-lib.sh

echo "load before: $(uptime)"
echo "target for each page: p99 <= 50ms"
pages=(/console /console/requests /console/inbox /healthz)
if [[ "${ORG:-}" == 1 ]]; then
    start_setup --org
    # Three words that name one account's one permission set.
    pages=(/console "/console?q=acct+0150+ps-07" /api/v1/entitlements "/api/v1/entitlements?q=acct+0150+ps-07"
        /console/requests /console/inbox /healthz)
else
    # shellcheck disable=SC2119 # no arguments: SQLite
    start_setup
fi
base=$(field URL)
# The console reads the cookie, the API the bearer token.
printf 'wrk.headers["Cookie"] = "%s"\nwrk.headers["Authorization"] = "Bearer %s"\n' "$(field COOKIE)" "$(field TOKEN)" \
    > "$work/cookie.lua"
for page in "${pages[@]}"; do
    # Every answer must be the page itself, not the sign-in page it redirects to.
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $(field COOKIE)" -H "Authorization: Bearer $(field TOKEN)" "$base$page")
    [[ "$status" == 200 ]] || { echo "$page answered $status, not 200" >&2; exit 1; }
    wrk -t2 -c16 -d3s -s "$work/cookie.lua" "$base$page" > /dev/null
    wrk -t2 -c16 -d"${DURATION:-10s}" --latency -s "$work/cookie.lua" "$base$page" > "$work/wrk.out"
    grep -q 'Non-2xx' "$work/wrk.out" && { cat "$work/wrk.out" >&2; echo "$page: some answers were not 2xx" >&2; exit 1; }
    awk -v label="$page" '
        /^ +50%/ {p50 = $2} /^ +99%/ {p99 = $2} /^Requests\/sec/ {rps = $2}
        END {printf "%-40s %6.0f req/s, p50 %s, p99 %s\n", label, rps, p50, p99}
    ' "$work/wrk.out"
done
echo "load after: $(uptime)"
