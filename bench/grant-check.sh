#!/usr/bin/env bash
# The grant check (`GET /api/v1/entitlement`, what `cone aws credentials` asks the server on its slow path) under
# load, with a real bearer token and an active grant, against a release cone-server on SQLite and then on
# PostgreSQL; the target is >= 10,000 req/s and p99 <= 10 ms at 256 connections. Two measurements each:
#  - saturation (wrk, closed loop): 256 connections for 20 s after a 5 s warm-up, as fast as they are answered.
#    Prints requests/s and p50/p99; the latency is then set by how the kernel shares the cores, not by the route.
#  - the target rate (oha, open loop): 256 connections sending 10,000 req/s in all for 20 s after a 5 s warm-up,
#    latency from when each request was due (bench/open_loop.py), so a stall counts for every request it delays.
#    Prints the rate achieved and p50/p99/p99.9.
# The load tool runs on the same machine as the server (and moto, the emulator and PostgreSQL), so both share its
# cores; `/healthz` (no token, no data, a 2-byte answer) under the same load, on the same server, is the floor
# this machine and load tool allow.
#
#   bench/grant-check.sh                 builds in release mode first; installs oha (pinned) if missing
#   STORES=sqlite DURATION=30s RATE=20000 bench/grant-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

# shellcheck source=bench/server-lib.sh
source bench/server-lib.sh
need_oha
rate=${RATE:-10000}
oha_at_rate() {
    oha -c 256 -q "$rate" --latency-correction -w --no-tui -H "Authorization: Bearer $(field TOKEN)" "$@"
}

echo "load before: $(uptime)"
echo "target for the grant check: >= 10000 req/s, p99 <= 10ms"
for store in ${STORES:-sqlite postgres}; do
    flag=; [[ "$store" == postgres ]] && flag=--postgres
    # shellcheck disable=SC2086 # $flag is empty or one word
    start_setup $flag
    url="$(field URL)/api/v1/entitlement?$(python3 -c 'import sys, urllib.parse as u; print(u.urlencode({"app_id": sys.argv[1], "entitlement_id": sys.argv[2]}))' "$(field APP_ID)" "$(field ENTITLEMENT_ID)")"
    printf 'wrk.headers["Authorization"] = "Bearer %s"\n' "$(field TOKEN)" > "$work/auth.lua"
    # Every answer must be the real one, not a fast error.
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $(field TOKEN)" "$url")
    [[ "$status" == 200 ]] || { echo "the grant check answered $status, not 200" >&2; exit 1; }

    wrk -t2 -c256 -d5s -s "$work/auth.lua" "$url" > /dev/null
    for what in check healthz; do
        target_url=$url; [[ $what == healthz ]] && target_url="$(field URL)/healthz"
        wrk -t2 -c256 -d"${DURATION:-20s}" --latency -s "$work/auth.lua" "$target_url" > "$work/wrk.out"
        cat "$work/wrk.out" >&2
        grep -q 'Non-2xx' "$work/wrk.out" && { echo "$store: some answers were not 2xx" >&2; exit 1; }
        awk -v label="$([[ $what == check ]] && echo "grant check on $store" || echo "  /healthz on $store")" '
            /^ +50%/ {p50 = $2} /^ +99%/ {p99 = $2} /^Requests\/sec/ {rps = $2}
            END {printf "%s: %.0f req/s, p50 %s, p99 %s\n", label, rps, p50, p99}
        ' "$work/wrk.out"
    done

    oha_at_rate -z 5s --output-format quiet "$url"
    for what in check healthz; do
        target_url=$url; [[ $what == healthz ]] && target_url="$(field URL)/healthz"
        rm -f "$work/oha.db"
        oha_at_rate -z "${DURATION:-20s}" --output-format json --db-url "$work/oha.db" "$target_url" \
            > "$work/oha.json" 2> "$work/oha.err" || { cat "$work/oha.err" >&2; exit 1; }
        python3 bench/open_loop.py "$([[ $what == check ]] && echo "grant check on $store" || echo "  /healthz on $store")" \
            "$rate" "$work/oha.json" "$work/oha.db"
    done
    stop_setup
done
echo "load after: $(uptime)"
