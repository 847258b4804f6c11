#!/usr/bin/env bash
# The web console's pages as a signed-in person loads them: the catalog, my requests (with an active grant) and the
# approvals page, each fetched by 16 connections for 10 s after a warm-up, from a release cone-server on SQLite.
# Prints requests/s and p50/p99 per page; the target is p99 <= 50 ms (a page that feels instant), measured beside
# /healthz under the same load, the floor of this machine and load tool.
#
# ORG=1 first adds bench/seed_org.py's organisation to the sandbox (200 accounts, 20 permission sets each, 2,000
# people; ACCOUNTS, PERMISSION_SETS and USERS change it) and also measures a catalog search and the API's catalog,
# whole and searched, and an administrator's lists (the audit log, drift, grants).
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
auth_script
warm_up /console
for page in "${pages[@]}"; do
    measure "$page"
done
if [[ "${ORG:-}" == 1 ]]; then
    # An administrator's lists: the audit log (all, and one person's), drift, every grant.
    auth_script ADMIN_
    for page in /console/audit "/console/audit?user=alice" /api/v1/audit?order=newest /console/drift /api/v1/drift \
        /console/grants; do
        measure "$page"
    done
fi
echo "load after: $(uptime)"
