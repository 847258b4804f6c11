# Sourced by the server benchmarks that drive a release cone-server with wrk: installs wrk, builds, and starts
# `cone-bench-setup check` (stopped by PID when the script exits), whose output lines `field NAME` reads.
# `need_oha` installs oha, for the scripts that also measure at a fixed offered rate.
# shellcheck shell=bash

if ! command -v wrk >/dev/null; then
    echo "installing wrk (Debian package)" >&2
    apt-get install -y -qq wrk >/dev/null || { apt-get update -qq >/dev/null && apt-get install -y -qq wrk >/dev/null; }
fi

# Debian packages no open-loop load tool (wrk2, oha). Pinned so that runs compare and the output the scripts read
# keeps its shape; building it takes about ten minutes, once.
oha_version=1.16.0
need_oha() {
    PATH="$PATH:${CARGO_HOME:-$HOME/.cargo}/bin"
    command -v oha >/dev/null && return
    echo "installing oha $oha_version (cargo install, once)" >&2
    cargo install --locked --quiet oha --version "$oha_version"
}

cargo build --release --quiet -p cone-server -p idc-emulator -p cone -p cone-cli -p cone-testkit --bins
setup="${CARGO_TARGET_DIR:-target}/release/cone-bench-setup"

work=$(mktemp -d)
pid=
cleanup() {
    [[ -n "$pid" ]] && kill -INT "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

# Starts `cone-bench-setup check ARGS` and waits until it is READY.
start_setup() {
    "$setup" check "$@" > "$work/setup.out" 2> "$work/setup.err" &
    pid=$!
    until grep -q '^READY' "$work/setup.out"; do
        kill -0 "$pid" 2>/dev/null || { cat "$work/setup.err" >&2; exit 1; }
        sleep 0.5
    done
}

stop_setup() {
    kill -INT "$pid"
    wait "$pid" || true
    pid=
}

field() { sed -n "s/^$1 //p" "$work/setup.out"; }

# Writes the wrk script that sends the setup's cookie and bearer token with every request: alice's, or with
# `auth_script ADMIN_` carol's (an administrator's).
auth_script() {
    who=${1:-}
    printf 'wrk.headers["Cookie"] = "%s"\nwrk.headers["Authorization"] = "Bearer %s"\n' "$(field "${who}COOKIE")" \
        "$(field "${who}TOKEN")" > "$work/cookie.lua"
}

# Loads PAGE for 10 s with 16 connections, unmeasured. A server just started opens its database connections as load
# first needs them, each with a cold page cache: at the organisation's size the first seconds of load show p99 of
# 0.3 to 0.8 s that later loads never do (measured: 819 ms, then 27 ms on the same page a few seconds later).
warm_up() {
    wrk -t2 -c16 -d10s -s "$work/cookie.lua" "$(field URL)$1" > /dev/null
}

# Loads PAGE of the setup's server with 16 connections (3 s of warm-up, then DURATION, 10 s by default) as the
# person `auth_script` chose, and prints requests/s, p50 and p99. Every answer must be the page itself (200), not the
# sign-in page it redirects to.
measure() {
    local page=$1 base status
    base=$(field URL)
    status=$(curl -s -o /dev/null -w '%{http_code}' -H "Cookie: $(field "${who:-}COOKIE")" \
        -H "Authorization: Bearer $(field "${who:-}TOKEN")" "$base$page")
    [[ "$status" == 200 ]] || { echo "$page answered $status, not 200" >&2; exit 1; }
    wrk -t2 -c16 -d3s -s "$work/cookie.lua" "$base$page" > /dev/null
    wrk -t2 -c16 -d"${DURATION:-10s}" --latency -s "$work/cookie.lua" "$base$page" > "$work/wrk.out"
    grep -q 'Non-2xx' "$work/wrk.out" && { cat "$work/wrk.out" >&2; echo "$page: some answers were not 2xx" >&2; exit 1; }
    awk -v label="$page" '
        /^ +50%/ {p50 = $2} /^ +99%/ {p99 = $2} /^Requests\/sec/ {rps = $2}
        END {printf "%-60s %6.0f req/s, p50 %s, p99 %s\n", label, rps, p50, p99}
    ' "$work/wrk.out"
}
