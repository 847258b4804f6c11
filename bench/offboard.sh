#!/usr/bin/env bash
# 1,000 people with a grant and a `cone login` session each are deleted in Identity Center, and a sync is asked
# for (aws.revoke_sessions on). Prints, from the sync's last read of AWS, when a leaver's session is refused, when
# the deny policy is written and when the last DeleteAccountAssignment is sent, the rate of Identity Center calls
# meanwhile (the default budget is 20 a second, so 1,000 removals take at least 50 s), and how many leavers the deny
# policy can name. Targets: every session revoked within 1 s of the sync; removals at the full rate budget.
#
#   bench/offboard.sh                                 SQLite, 1,000 leavers, AWS's default rate
#   GRANTS=200 STORES="sqlite postgres" bench/offboard.sh
source "$(dirname "$0")/setup-lib.sh"
echo "load before: $(uptime)"
for store in ${STORES:-sqlite}; do
    flag=; [[ "$store" == postgres ]] && flag=--postgres
    echo "$store, CONE_AWS_SSO_RATE=${CONE_AWS_SSO_RATE:-20 (the default)}:"
    "$setup" offboard $flag --grants "${GRANTS:-1000}"
done
echo "load after: $(uptime)"
