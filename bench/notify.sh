#!/usr/bin/env bash
# 1,000 requests filed at once, each waiting for bob → bob's email about each, through a real SMTP server (aiosmtpd
# with STARTTLS and AUTH, read back). Prints the messages delivered a second and p50/p99/max from each request's
# filing to the SMTP server accepting its message.
#
#   bench/notify.sh                              SQLite, 1,000 requests
#   REQUESTS=200 STORES="sqlite postgres" bench/notify.sh
source "$(dirname "$0")/setup-lib.sh"
echo "load before: $(uptime)"
for store in ${STORES:-sqlite}; do
    flag=; [[ "$store" == postgres ]] && flag=--postgres
    echo "$store:"
    "$setup" notify $flag --grants "${REQUESTS:-1000}"
done
echo "load after: $(uptime)"
