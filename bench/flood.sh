#!/usr/bin/env bash
# alice asks for administrator access for 20 s, bob approves, it is granted and ends: once on a quiet server, then
# again while the sign-in endpoints are flooded from loopback (device-code starts, token polls for made-up codes,
# wrong passwords for made-up names; by default 5,000, 5,000 and 1,000 a second, open loop, at most 256 requests
# in flight each). Prints each step's time and cone-server's peak memory side by side, and what the flood sent and
# how it was answered. The flood and the server share the machine's cores.
#
#   bench/flood.sh                                  SQLite, the rates above
#   STORES="sqlite postgres" RATES=2000,2000,500 bench/flood.sh
source "$(dirname "$0")/setup-lib.sh"
echo "load before: $(uptime)"
for store in ${STORES:-sqlite}; do
    flag=; [[ "$store" == postgres ]] && flag=--postgres
    echo "$store:"
    "$setup" flood $flag --rates "${RATES:-5000,5000,1000}" 2>&1 | grep -E '^flood:|bench-setup'
done
echo "load after: $(uptime)"
