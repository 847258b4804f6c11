#!/usr/bin/env bash
# 1,000 grants ending at the same second → the DeleteAccountAssignment calls cone-server sends to remove their
# assignments (moto behind a timestamping proxy). Prints p50/p99/max from the grants' end to each deletion being
# sent, and the busiest second of Identity Center calls, once with the limit raised (CONE_AWS_SSO_RATE=1000) and once
# at the default of 20 calls/s, which has to be respected: 1,000 deletions then take at least 50 s, so their p99 is
# bounded by the budget, not by Cone. The target is p99 <= 1 s.
#
# SPREAD=SECS has the grants end one after another over SECS seconds instead: with SPREAD=60 at the default rate,
# 1,000 grants need 16.7 deletions a second, under the budget, so each deletion's wait is Cone's alone.
#
#   bench/expiry.sh                        SQLite, 1,000 grants, both rates
#   GRANTS=200 RATES=1000 STORES="sqlite postgres" bench/expiry.sh
#   SPREAD=60 RATES=20 bench/expiry.sh     1,000 grants ending over a minute, at AWS's default budget
#   AWS_LIMITS=10 bench/expiry.sh          with Identity Center's write limits enforced in front of moto: 10
#                                          outstanding writes, each taking WRITE_MS (1000), one per role
source "$(dirname "$0")/setup-lib.sh"
echo "load before: $(uptime)"
for store in ${STORES:-sqlite}; do
    flag=; [[ "$store" == postgres ]] && flag=--postgres
    for rate in ${RATES:-1000 20}; do
        echo "$store, CONE_AWS_SSO_RATE=$rate:"
        CONE_AWS_SSO_RATE=$rate "$setup" expiry $flag --grants "${GRANTS:-1000}" \
            --spread "${SPREAD:-0}" ${AWS_LIMITS:+--aws-limits "$AWS_LIMITS" --write-ms "${WRITE_MS:-1000}"}
    done
done
echo "load after: $(uptime)"
