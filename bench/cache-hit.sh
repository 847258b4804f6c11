#!/usr/bin/env bash
# `cone aws credentials` on a cache hit, side by side in one hyperfine run with
#   floor         a minimal Rust binary, built here with `rustc -O`, that reads the cache file and prints it;
#   aws-sso-util  `aws-sso-util credential-process` (PyPI, from .venv) on a native SSO profile;
#   aws v2        `aws configure export-credentials` (Debian's AWS CLI v2) on the same native SSO profile.
# All four answer from the same AWS CLI cache file. Then the peak RSS of each (GNU time), and an
# `aws sts get-caller-identity` against moto with static keys, through cone, and through the floor as a
# credential_process (what any credential_process costs botocore).
# Targets: cone ≤ 1.5× the floor, ≥ 300× faster than aws-sso-util, peak RSS ≤ 10 MB, the `aws` call within 2 %.
#
#   bench/cache-hit.sh            builds cone in release mode first
#   CONE=/path/to/cone bench/cache-hit.sh
set -euo pipefail
cd "$(dirname "$0")/.."
repo=$PWD

if ! command -v hyperfine >/dev/null; then
    echo "installing hyperfine (Debian package)" >&2
    apt-get install -y -qq hyperfine >/dev/null
fi
# The AWS CLI v1, moto and aws-sso-util come from .venv, as for the tests; v2 from Debian.
for tool in .venv/bin/aws-sso-util .venv/bin/moto_server /usr/bin/aws /usr/bin/time; do
    [[ -x $tool ]] || { echo "$tool is missing: run \`cargo xtask test\` once, which installs it" >&2; exit 1; }
done
if [[ -z "${CONE:-}" ]]; then
    cargo build --release --quiet -p cone
    CONE="${CARGO_TARGET_DIR:-target}/release/cone"
fi
CONE=$(realpath "$CONE")

home=$(mktemp -d)
moto_pid=
cleanup() {
    [[ -n "$moto_pid" ]] && kill "$moto_pid" 2>/dev/null
    rm -rf "$home"
}
trap cleanup EXIT

cat > "$home/floor.rs" <<'RS'
use std::io::Write;
fn main() {
    let path = std::env::args().nth(1).expect("usage: floor FILE");
    let body = std::fs::read(path).expect("read");
    std::io::stdout().write_all(&body).expect("write");
}
RS
rustc -O -o "$home/floor" "$home/floor.rs"

start_url="https://d-0000000000.awsapps.com/start"
mkdir -p "$home/.aws/cli/cache" "$home/.aws/sso/cache" "$home/.conductorone"
cat > "$home/.conductorone/config.yaml" <<YAML
server: http://127.0.0.1:9
aws:
  sso_start_url: $start_url
  sso_region: us-east-1
  region: us-east-1
YAML
cat > "$home/.aws/config" <<INI
[profile bench]
credential_process = $CONE aws credentials bench
cone_app_id = aws
cone_entitlement_id = 111111111111|arn:aws:sso:::permissionSet/ssoins-1/ps-1
cone_account_id = 111111111111
cone_role_name = ReadOnlyAccess
region = us-east-1

[profile native]
sso_start_url = $start_url
sso_region = us-east-1
sso_account_id = 111111111111
sso_role_name = ReadOnlyAccess
region = us-east-1

[profile static]
region = us-east-1

[profile floor]
credential_process = $home/floor $home/process.json
region = us-east-1
INI
cat > "$home/.aws/credentials" <<INI
[static]
aws_access_key_id = AKIABENCHSTATIC00000
aws_secret_access_key = static-secret
INI
# The file name is the AWS CLI's: sha1 of the sorted, compact JSON key; cone, botocore and aws-sso-util all use it.
key="{\"accountId\":\"111111111111\",\"roleName\":\"ReadOnlyAccess\",\"startUrl\":\"$start_url\"}"
cache="$home/.aws/cli/cache/$(printf '%s' "$key" | sha1sum | cut -d' ' -f1).json"
expires=$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%SZ)
printf '{"ProviderType":"sso","Credentials":{"AccessKeyId":"ASIABENCH","SecretAccessKey":"s","SessionToken":"t","Expiration":"%s","AccountId":"111111111111"}}' \
    "$expires" > "$cache"
# What a credential_process prints, for the floor's profile.
printf '{"Version":1,"AccessKeyId":"ASIABENCH","SecretAccessKey":"s","SessionToken":"t","Expiration":"%s"}' "$expires" \
    > "$home/process.json"
# A valid Identity Center token, so no tool stops at "sign in first" before it looks at its credential cache.
printf '{"startUrl":"%s","region":"us-east-1","accessToken":"bench","expiresAt":"%s"}' "$start_url" "$expires" \
    > "$home/.aws/sso/cache/$(printf '%s' "$start_url" | sha1sum | cut -d' ' -f1).json"

export HOME="$home" AWS_CONFIG_FILE="$home/.aws/config" AWS_SHARED_CREDENTIALS_FILE="$home/.aws/credentials"
unset AWS_PROFILE AWS_ACCESS_KEY_ID AWS_SECRET_ACCESS_KEY AWS_SESSION_TOKEN
floor=("$home/floor" "$cache")
cone=("$CONE" aws credentials bench)
ssoutil=("$repo/.venv/bin/aws-sso-util" credential-process --profile native)
awsv2=(/usr/bin/aws configure export-credentials --profile native)
for cmd in floor cone ssoutil awsv2; do
    declare -n argv=$cmd
    "${argv[@]}" | grep -q ASIABENCH || { echo "$cmd did not answer from the cache: ${argv[*]}" >&2; exit 1; }
done

echo "timing the cache hit (hyperfine: each command at least 30 runs and 3 s)" >&2
hyperfine --shell=none --warmup 10 --min-runs 30 --export-json "$home/result.json" \
    -n floor "${floor[*]}" -n cone "${cone[*]}" -n aws-sso-util "${ssoutil[*]}" -n "aws v2" "${awsv2[*]}" >&2

# Peak RSS of one run of each, from GNU time (a forking parent's RSS would leak into getrusage's figure).
rss() {
    /usr/bin/time -f %M -o "$home/rss" "$@" >/dev/null
    cat "$home/rss"
}
rss_floor=$(rss "${floor[@]}") rss_cone=$(rss "${cone[@]}")
rss_ssoutil=$(rss "${ssoutil[@]}") rss_awsv2=$(rss "${awsv2[@]}")

# A whole `aws` call, through cone and with static keys, against moto (STS answers any key).
port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$repo/.venv/bin/moto_server" -H 127.0.0.1 -p "$port" >"$home/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 100); do
    curl -fs "http://127.0.0.1:$port/moto-api/" >/dev/null 2>&1 && break
    sleep 0.1
done
call=(/usr/bin/aws sts get-caller-identity --endpoint-url "http://127.0.0.1:$port" --profile)
for profile in static bench floor; do
    "${call[@]}" "$profile" | grep -q '"Account"' || { echo "aws --profile $profile failed against moto" >&2; exit 1; }
done
# Static keys, cone, and the floor as a credential_process (which isolates what botocore's process provider costs),
# in rounds that rotate which goes first, so that a change in the machine's load falls on all three alike (hyperfine
# would run all of one and then all of the next).
echo "timing an aws call with static keys, through cone and through the floor (CLI v2, moto), ${ROUNDS:=40} rounds" >&2
python3 - "$home/call.json" "$ROUNDS" "${call[@]}" <<'PY'
import json, subprocess, sys, time
out, rounds, call = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
times = {"static": [], "bench": [], "floor": []}
for i in range(rounds):
    order = list(times)[i % 3:] + list(times)[:i % 3]
    for profile in order:
        start = time.perf_counter()
        subprocess.run(call + [profile], stdout=subprocess.DEVNULL, check=True)
        times[profile].append(time.perf_counter() - start)
json.dump(times, open(out, "w"))
PY

python3 - "$home/result.json" "$home/call.json" "$rss_floor" "$rss_cone" "$rss_ssoutil" "$rss_awsv2" <<'PY'
import json, statistics, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
c = json.load(open(sys.argv[2]))
rss = dict(zip(["floor", "cone", "aws-sso-util", "aws v2"], (int(v) / 1024 for v in sys.argv[3:7])))
cone = r["cone"]["mean"]
print("cache hit, mean ± sd (runs), peak RSS:")
for name in ["floor", "cone", "aws-sso-util", "aws v2"]:
    x = r[name]
    print(f"  {name:13} {x['mean']*1e3:8.2f} ms ± {x['stddev']*1e3:6.2f} ({len(x['times'])} runs)  {rss[name]:6.1f} MB")
print(f"cone / floor:          {cone / r['floor']['mean']:6.2f}x   (target <= 1.5x)")
print(f"aws-sso-util / cone:   {r['aws-sso-util']['mean'] / cone:6.0f}x   (target >= 300x)")
print(f"aws v2 / cone:         {r['aws v2']['mean'] / cone:6.0f}x")
print(f"cone peak RSS:         {rss['cone']:6.1f} MB (target <= 10 MB)")
s, k, f = (statistics.median(c[p]) for p in ("static", "bench", "floor"))
print(f"aws sts get-caller-identity (CLI v2, moto), median of {len(c['static'])} rounds: static keys {s*1e3:.0f} ms, "
      f"through cone {k*1e3:.0f} ms ({(k / s - 1) * 100:+.1f} %, target within 2 %), "
      f"through the floor {f*1e3:.0f} ms ({(f / s - 1) * 100:+.1f} %)")
PY
