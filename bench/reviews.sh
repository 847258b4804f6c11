#!/usr/bin/env bash
# Access reviews at an organisation's size: bench/seed_org.py's organisation (200 accounts, 20 permission sets, 2,000
# people) with ASSIGNMENTS direct assignments (20,000 by default, so that a campaign over everything holds about
# 20,000 items with the group memberships), synced by a release cone-server. Creates CAMPAIGNS (3) campaigns of
# everything, each timed; then the reviewer's first page of 100 items (API and console), searched and by
# entitlement, each fetched by 16 connections for 10 s, beside /healthz. Targets: creation <= 5 s, page p99 <= 50 ms.
#
#   bench/reviews.sh
#   STORE=postgres bench/reviews.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/server-lib.sh
source bench/server-lib.sh

export ASSIGNMENTS="${ASSIGNMENTS:-20000}"
echo "load before: $(uptime)"
echo "targets: campaign creation <= 5 s; each page p99 <= 50ms"
flag=; [[ "${STORE:-sqlite}" == postgres ]] && flag=--postgres
start_setup --org --campaigns "${CAMPAIGNS:-3}" $flag
grep '^CAMPAIGN ' "$work/setup.out"
auth_script
pages=("/api/v1/reviews/items?campaign=1&page_size=100" "/api/v1/reviews/items?page_size=100"
    "/api/v1/reviews/items?campaign=1&page_size=100&q=acct-0150" "/api/v1/reviews/items?campaign=1&page_size=100&by=entitlement"
    "/console/reviews?campaign=1" /healthz)
for page in "${pages[@]}"; do
    measure "$page"
done
echo "load after: $(uptime)"
