#!/usr/bin/env bash
# `cone-aws sync` (Organizations on) of a synthetic organisation seeded into moto by bench/seed_org.py, once at
# the default Identity Center rate (20 calls/s, AWS's quota) and once at a high one, which shows what the connector
# and moto cost by themselves. Prints, per run, the AWS calls by action against the fewest the data needs, the wall
# time, the share of the Identity Center rate budget used, and the peak RSS (GNU time).
# Targets: calls <= 1.05x the minimum; >= 90 % of the budget used at the default rate.
#
#   bench/aws-sync.sh                                      200 accounts x 20 permission sets, 2,000 users, ...
#   ACCOUNTS=20 USERS=200 ASSIGNMENTS=500 RATES=1000 bench/aws-sync.sh
#
# Sizes (env): ACCOUNTS, PERMISSION_SETS, USERS, IDC_GROUPS, ASSIGNMENTS (see bench/seed_org.py). RATES: the
# Identity Center rates to sync at, in calls/s (default "20 1000").
set -euo pipefail
cd "$(dirname "$0")/.."

source bench/moto-lib.sh
cargo build --release --quiet -p cone-aws
cone_aws=$(realpath "${CARGO_TARGET_DIR:-target}/release/cone-aws")

start_moto

echo "load before: $(uptime)"
seed_start=$(date +%s.%N)
.venv/bin/python bench/seed_org.py "$endpoint" >"$work/seed.json"
echo "seeded in $(echo "$(date +%s.%N) - $seed_start" | bc) s"

export AWS_ENDPOINT_URL="$endpoint" AWS_ACCESS_KEY_ID=testing AWS_SECRET_ACCESS_KEY=testing AWS_REGION=us-east-1
unset BATON_ROLE_ARN BATON_EXTERNAL_ID BATON_GLOBAL_AWS_ORGS_ENABLED CONE_AWS_SYNC_IAM BATON_SYNC_SECRETS
read -ra rates <<<"${RATES:-20 1000}"
for rate in "${rates[@]}"; do
    start=$(date +%s.%N)
    /usr/bin/time -v -o "$work/time.$rate" "$cone_aws" sync --out "$work/sync.$rate.sqlite" --stats \
        --global-aws-orgs-enabled true --sso-rate "$rate" >"$work/stats.$rate.json" 2>"$work/stderr.$rate"
    echo "$(date +%s.%N) - $start" | bc >"$work/wall.$rate"
    tail -n 1 "$work/stderr.$rate"
done

# A sync killed (SIGKILL) half-way through its wall time at the last rate, then run again: it resumes from its journal.
rate=${rates[-1]}
"$cone_aws" sync --out "$work/resumed.sqlite" --global-aws-orgs-enabled true --sso-rate "$rate" 2>/dev/null &
killed=$!
sleep "$(echo "$(cat "$work/wall.$rate") / 2" | bc -l)"
kill -9 "$killed"
wait "$killed" 2>/dev/null || true
start=$(date +%s.%N)
"$cone_aws" sync --out "$work/resumed.sqlite" --stats --global-aws-orgs-enabled true --sso-rate "$rate" \
    >"$work/stats.resumed.json" 2>"$work/stderr.resumed"
echo "$(date +%s.%N) - $start" | bc >"$work/wall.resumed"
"$cone_aws" diff "$work/sync.$rate.sqlite" "$work/resumed.sqlite" >/dev/null \
    || { echo "the resumed sync's file differs from the whole sync's" >&2; exit 1; }

.venv/bin/python - "$work" "${rates[@]}" <<'PY'
import json, re, sys

work, rates = sys.argv[1], sys.argv[2:]
seed = json.load(open(f"{work}/seed.json"))
sizes, m = seed["sizes"], seed["minimum"]
print("organisation: " + ", ".join(f"{n} {k.replace('_', ' ')}" for k, n in sizes.items()))

# What each action (or group of actions that read the same data two ways) must cost at least, on moto.
PROVISIONING = ("sso:ListAccountsForProvisionedPermissionSet", "sso:ListPermissionSetsProvisionedToAccount")
ASSIGNMENTS = ("sso:ListAccountAssignments", "sso:ListAccountAssignmentsForPrincipal")
floor = {k: v for k, v in m.items() if ":" in k}
floor[" + ".join(PROVISIONING)] = m["provisioning (moto)"]
floor[" + ".join(ASSIGNMENTS)] = min(m["assignments by (account, permission set)"], m["assignments by principal"])
aws_total = sum(floor.values()) - m["provisioning (moto)"] + m["provisioning (AWS)"]

for rate in rates:
    calls = json.load(open(f"{work}/stats.{rate}.json"))["calls"]
    wall = float(open(f"{work}/wall.{rate}").read())
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", open(f"{work}/time.{rate}").read())[1])
    print(f"\nCONE_AWS_SSO_RATE={rate}: wall {wall:.1f} s, peak RSS {rss / 1024:.1f} MB")
    print(f"  {'action':<82} {'calls':>6} {'minimum':>7}")
    made = 0
    for key, least in floor.items():
        n = sum(calls.get(a, 0) for a in key.split(" + "))
        made += n
        print(f"  {key:<82} {n:>6} {least:>7}")
    others = {a: n for a, n in calls.items() if not any(a in k.split(" + ") for k in floor)}
    for a, n in others.items():
        made += n
        print(f"  {a:<82} {n:>6} {0:>7}")
    least = sum(floor.values())
    idc = sum(n for a, n in calls.items() if a.startswith(("sso:", "identitystore:")))
    print(f"  calls / minimum: {made} / {least} = {made / least:.3f}x (target <= 1.05x; on AWS the minimum is {aws_total})")
    print(f"  Identity Center budget used: {idc} calls / ({wall:.1f} s x {rate}/s) = {100 * idc / (wall * int(rate)):.1f} %"
          + (" (target >= 90 %)" if rate == "20" else ""))

rate = rates[-1]
whole = sum(json.load(open(f"{work}/stats.{rate}.json"))["calls"].values())
stats = json.load(open(f"{work}/stats.resumed.json"))
resumed, wall = sum(stats["calls"].values()), float(open(f"{work}/wall.resumed").read())
print(f"\nkilled half-way at {rate}/s, then run again: {resumed} calls (the whole sync {whole}), wall {wall:.1f} s, "
      f"{stats['resumed']['units']} units from the journal and {stats['resumed']['read']} read; same file as the whole sync")
PY
echo "load after: $(uptime)"
