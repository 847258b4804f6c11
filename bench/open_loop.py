"""Summarises one open-loop oha run (`-q RATE --latency-correction -w --output-format json --db-url DB`).

    python3 bench/open_loop.py LABEL RATE OHA_JSON OHA_DB

Fails unless every request was answered 200. Prints the rate achieved (answers over the time from the first request
due to the last answer) and p50/p99/p99.9 latency measured from when each request was due: the k-th request oha
schedules is due at k / RATE after its start. oha's own correction measures from when its sender task woke up to
schedule the request, which is later than due whenever that task runs late (its timer ticks in whole milliseconds,
and it shares two cores with the server), so its figures omit that delay; the database holds each request's
schedule and end, so the delay is added back here and reported as "sender late". That delay is the load tool's,
not the server's: the latency printed is what a client sending on schedule would see, plus it.
"""

import json
import sqlite3
import sys

label, rate, json_path, db_path = sys.argv[1], float(sys.argv[2]), sys.argv[3], sys.argv[4]
with open(json_path) as f:
    report = json.load(f)
statuses, errors = report["statusCodeDistribution"], report["errorDistribution"]
if set(statuses) != {"200"} or errors:
    sys.exit(f"{label}: not every answer was 200: statuses {statuses}, errors {errors}")

# Stored relative to oha's start; only successes are stored, which after the check above is every request. Ties
# (requests scheduled in the same timer tick) are in the order they were sent.
rows = sqlite3.connect(db_path).execute(
    "SELECT start_latency_correction, start, end FROM oha ORDER BY start_latency_correction, start"
).fetchall()
if len(rows) != statuses["200"]:
    sys.exit(f"{label}: oha stored {len(rows)} requests of {statuses['200']}")
latency = sorted(end - k / rate for k, (_, _, end) in enumerate(rows))
late = sorted(scheduled - k / rate for k, (scheduled, _, _) in enumerate(rows))


def pct(values, p):
    return values[min(len(values) - 1, int(len(values) * p / 100))] * 1000


done = len(rows) / max(end for _, _, end in rows)
print(
    f"{label} at {rate:.0f} req/s offered: {done:.0f} req/s done, p50 {pct(latency, 50):.2f}ms, "
    f"p99 {pct(latency, 99):.2f}ms, p99.9 {pct(latency, 99.9):.2f}ms "
    f"(oha's sender late by p50 {pct(late, 50):.2f}ms, p99 {pct(late, 99):.2f}ms, p99.9 {pct(late, 99.9):.2f}ms)"
)
if done < 0.98 * rate:
    print(f"{label}: {done:.0f} req/s done is short of the {rate:.0f} offered", file=sys.stderr)
