#!/usr/bin/env bash
# `cone aws credentials` on a cache hit, side by side with `cat` of the same cache file (the floor: one
# process that reads one file and prints it). Prints the mean times and their ratio; the target is ≤ 1.5×.
#
#   bench/cache-hit.sh            builds cone in release mode first
#   CONE=/path/to/cone bench/cache-hit.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v hyperfine >/dev/null; then
    echo "installing hyperfine (Debian package)" >&2
    apt-get install -y -qq hyperfine >/dev/null
fi
if [[ -z "${CONE:-}" ]]; then
    cargo build --release --quiet -p cone
    CONE="${CARGO_TARGET_DIR:-target}/release/cone"
fi

home=$(mktemp -d)
trap 'rm -rf "$home"' EXIT
start_url="https://d-0000000000.awsapps.com/start"
mkdir -p "$home/.aws/cli/cache" "$home/.conductorone"
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
INI
# The file name is the AWS CLI's: sha1 of the sorted, compact JSON key.
key="{\"accountId\":\"111111111111\",\"roleName\":\"ReadOnlyAccess\",\"startUrl\":\"$start_url\"}"
cache="$home/.aws/cli/cache/$(printf '%s' "$key" | sha1sum | cut -d' ' -f1).json"
expires=$(date -u -d '+2 hours' +%Y-%m-%dT%H:%M:%SZ)
printf '{"ProviderType":"sso","Credentials":{"AccessKeyId":"ASIABENCH","SecretAccessKey":"s","SessionToken":"t","Expiration":"%s","AccountId":"111111111111"}}' \
    "$expires" > "$cache"

export HOME="$home" AWS_CONFIG_FILE="$home/.aws/config"
"$CONE" aws credentials bench | grep -q ASIABENCH || { echo "cone did not answer from the cache" >&2; exit 1; }

hyperfine --shell=none --warmup 50 --runs 1000 --export-json "$home/result.json" \
    -n cat "cat $cache" -n cone "$CONE aws credentials bench" >&2
python3 - "$home/result.json" <<'PY'
import json, sys
r = {x["command"]: x for x in json.load(open(sys.argv[1]))["results"]}
cat, cone = r["cat"]["mean"], r["cone"]["mean"]
print(f"cache hit: cone {cone*1e3:.2f} ms, cat {cat*1e3:.2f} ms, ratio {cone/cat:.2f}x (target <= 1.5x)")
PY
