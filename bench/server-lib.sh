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
