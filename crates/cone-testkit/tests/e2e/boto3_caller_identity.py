"""boto3 with a profile cone wrote: the interop suite's boto3 cell (crates/cone-testkit/tests/interop.rs).

Usage: python boto3_caller_identity.py PROFILE. Prints one JSON line with the boto3 version and the caller
identity; endpoints come from the environment (AWS_ENDPOINT_URL_STS), as for any boto3 program.
"""

import json
import sys

import boto3

session = boto3.Session(profile_name=sys.argv[1])
identity = session.client("sts").get_caller_identity()
print(json.dumps({"boto3": boto3.__version__, "Account": identity["Account"], "Arn": identity["Arn"]}))
