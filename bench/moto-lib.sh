# Sourced by the sync benchmarks: checks that `cargo xtask test` installed moto into .venv, installs GNU time (for
# peak RSS), makes a scratch folder `$work` (removed on exit), and defines `start_moto`, which starts a moto server on
# a free port, logging to `$work/moto.log`, and sets `moto_pid` and `endpoint` (stopped by PID on exit).
# shellcheck shell=bash

[[ -x .venv/bin/moto_server ]] || { echo ".venv/bin/moto_server is missing: run \`cargo xtask test\` once" >&2; exit 1; }
if [[ ! -x /usr/bin/time ]]; then
    echo "installing GNU time (Debian package)" >&2
    apt-get install -y -qq time >/dev/null
fi

work=$(mktemp -d)
moto_pid=
cleanup() {
    [[ -n "$moto_pid" ]] && kill "$moto_pid" 2>/dev/null
    rm -rf "$work"
}
trap cleanup EXIT

start_moto() {
    local port
    port=$(.venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    .venv/bin/moto_server -H 127.0.0.1 -p "$port" >"$work/moto.log" 2>&1 &
    moto_pid=$!
    endpoint="http://127.0.0.1:$port"
    until .venv/bin/python -c "import urllib.request; urllib.request.urlopen('$endpoint/moto-api/data.json')" 2>/dev/null
    do
        kill -0 "$moto_pid" 2>/dev/null || { echo "moto exited; its log:" >&2; cat "$work/moto.log" >&2; exit 1; }
        sleep 0.2
    done
}
