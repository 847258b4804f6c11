"""Seeds a synthetic organisation into a fresh moto server and prints, as JSON, its sizes and the fewest AWS calls
a full sync of it can make (see bench/README.md, "aws-sync", for the formula).

    .venv/bin/python bench/seed_org.py http://127.0.0.1:PORT

With INTO_EXISTING=1 it adds to the organisation and Identity Center instance moto already holds (the sandbox's of
`cone-bench-setup check --org`). Sizes come from the environment: ACCOUNTS (member accounts), PERMISSION_SETS (each provisioned to every
account), USERS, IDC_GROUPS (GROUPS is taken by bash), ASSIGNMENTS. Every user is in one group, and the first BIG_GROUP users also in one large
group, so that ListGroupMemberships pages; the first BIG_PAIR users are assigned the first permission set in the
first account, so that ListAccountAssignments pages; the other assignments are spread at random (seeded), a tenth
of them to groups.
"""

import json
import math
import os
import random
import sys
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import boto3
from botocore.config import Config

# AWS's documented maximum MaxResults per call (the botocore service models say the same).
MAX_PAGE = {"ListAccounts": 20}
DEFAULT_MAX_PAGE = 100  # every Identity Center list call the sync makes
# Calls in flight while seeding: moto serves each request on its own thread, and boto3 clients are thread-safe.
WORKERS = 8


def size(name, default):
    value = os.environ.get(name, str(default))
    if not value.isdigit():
        sys.exit(f"seed_org: {name}={value!r} is not a whole number")
    return int(value)


def pages(n, op):
    """Calls to list n items: at least one, even for none."""
    return max(1, math.ceil(n / MAX_PAGE.get(op, DEFAULT_MAX_PAGE)))


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: seed_org.py MOTO_ENDPOINT")
    endpoint = sys.argv[1]
    n_accounts = size("ACCOUNTS", 200)
    n_sets = size("PERMISSION_SETS", 20)
    n_users = size("USERS", 2000)
    n_groups = max(1, size("IDC_GROUPS", 50))
    n_assignments = size("ASSIGNMENTS", 5000)
    big_group = min(size("BIG_GROUP", 250), n_users)
    big_pair = min(size("BIG_PAIR", 150), n_users)

    # moto's threaded server now and then answers 500 to a write when the machine is busy: retry those.
    config = Config(max_pool_connections=WORKERS, retries={"max_attempts": 4, "mode": "standard"})
    session = boto3.session.Session(
        aws_access_key_id="testing", aws_secret_access_key="testing", region_name="us-east-1"
    )
    org = session.client("organizations", endpoint_url=endpoint, config=config)
    sso = session.client("sso-admin", endpoint_url=endpoint, config=config)
    ids = session.client("identitystore", endpoint_url=endpoint, config=config)
    pool = ThreadPoolExecutor(WORKERS)

    def each(f, items):
        return list(pool.map(f, items))

    # INTO_EXISTING=1 adds to an organisation moto already holds (the sandbox's), rather than starting one.
    if os.environ.get("INTO_EXISTING") != "1":
        org.create_organization(FeatureSet="ALL")
    accounts = each(
        lambda i: org.create_account(AccountName=f"acct-{i:04}", Email=f"acct-{i:04}@example.com")[
            "CreateAccountStatus"
        ]["AccountId"],
        range(n_accounts),
    )
    instance = sso.list_instances()["Instances"][0]
    instance_arn, store = instance["InstanceArn"], instance["IdentityStoreId"]

    def permission_set(i):
        arn = sso.create_permission_set(InstanceArn=instance_arn, Name=f"ps-{i:02}", SessionDuration="PT1H")[
            "PermissionSet"
        ]["PermissionSetArn"]
        sso.provision_permission_set(
            InstanceArn=instance_arn, PermissionSetArn=arn, TargetType="ALL_PROVISIONED_ACCOUNTS"
        )
        return arn

    sets = each(permission_set, range(n_sets))
    users = each(
        lambda i: ids.create_user(
            IdentityStoreId=store,
            UserName=f"user{i:05}",
            DisplayName=f"User {i}",
            Name={"GivenName": "User", "FamilyName": str(i)},
            Emails=[{"Value": f"user{i:05}@example.com", "Primary": True}],
        )["UserId"],
        range(n_users),
    )
    groups = each(
        lambda i: ids.create_group(IdentityStoreId=store, DisplayName=f"group-{i:03}")["GroupId"], range(n_groups)
    )
    members = [(groups[i % n_groups], u) for i, u in enumerate(users)]
    if n_groups > 1:
        members += [(groups[0], u) for i, u in enumerate(users[:big_group]) if i % n_groups != 0]
    each(
        lambda m: ids.create_group_membership(IdentityStoreId=store, GroupId=m[0], MemberId={"UserId": m[1]}),
        members,
    )

    # Unique (account, permission set, principal) triples: moto stores duplicates and then pages them forever.
    rng = random.Random(5)
    wanted = set()
    if accounts and sets:
        wanted = {(accounts[0], sets[0], "USER", u) for u in users[:big_pair]}
    capacity = len(accounts) * len(sets) * (len(users) + len(groups))
    while len(wanted) < min(n_assignments, capacity):
        kind, pool_ = ("GROUP", groups) if rng.random() < 0.1 else ("USER", users)
        wanted.add((rng.choice(accounts), rng.choice(sets), kind, rng.choice(pool_)))
    each(
        lambda a: sso.create_account_assignment(
            InstanceArn=instance_arn,
            TargetId=a[0],
            TargetType="AWS_ACCOUNT",
            PermissionSetArn=a[1],
            PrincipalType=a[2],
            PrincipalId=a[3],
        ),
        sorted(wanted),
    )

    all_accounts = n_accounts + 1  # the management account is listed too
    per_pair = Counter((a[0], a[1]) for a in wanted)
    per_principal = Counter((a[2], a[3]) for a in wanted)
    per_group = Counter(g for g, _ in members)
    # Every permission set is provisioned to every account, each one's list holding all of the other kind.
    provisioning_aws = min(n_sets * pages(all_accounts, ""), all_accounts * pages(n_sets, ""))
    by_pair = sum(pages(per_pair[(a, s)], "") for a in [*accounts, "management"] for s in sets)
    by_principal = sum(pages(per_principal[("USER", u)], "") for u in users) + sum(
        pages(per_principal[("GROUP", g)], "") for g in groups
    )
    minimum = {
        "sso:ListInstances": 1,
        "organizations:ListAccounts": pages(all_accounts, "ListAccounts"),
        "sso:ListPermissionSets": pages(n_sets, ""),
        "sso:DescribePermissionSet": n_sets,
        "identitystore:ListUsers": pages(n_users, ""),
        "identitystore:ListGroups": pages(n_groups, ""),
        "identitystore:ListGroupMemberships": sum(pages(per_group[g], "") for g in groups),
        # moto answers ListAccountsForProvisionedPermissionSet wrongly (its own account only), so on moto the
        # provisioning can only be read per account: one unpaged ListPermissionSetsProvisionedToAccount each.
        "provisioning (AWS)": provisioning_aws,
        "provisioning (moto)": all_accounts,
        "assignments by (account, permission set)": by_pair,
        "assignments by principal": by_principal,
    }
    print(
        json.dumps(
            {
                "sizes": {
                    "accounts": all_accounts,
                    "permission_sets": n_sets,
                    "users": n_users,
                    "groups": n_groups,
                    "memberships": len(members),
                    "assignments": len(wanted),
                },
                "minimum": minimum,
            }
        )
    )


if __name__ == "__main__":
    main()
