"""Set an organisation's quota overrides as the platform's operator (the schema owner).

Usage: MIGRATION_DATABASE_URL=postgresql://owner@host/rag .venv/bin/python scripts/set_quota.py \\
           --org <org id> [--documents N] [--chunks N] [--stored-bytes N] [--queries-per-day N] \\
           [--queries-per-minute N]

Each value is a non-negative integer, or `default` to go back to the configured default; limits not
named keep their value. Prints the organisation's overrides as stored (null: the default applies).
In AWS the migrate function does the same (`{"task": "set_quota", ...}`, see README "Quotas and usage"):
the database is reachable only from the VPC.
"""

from __future__ import annotations

import argparse
import json
import os
import sys

from ragcore.quotas import OVERRIDE_COLUMNS, set_overrides


def _limit(text: str) -> int | None:
    if text == "default":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"expected a non-negative integer or 'default', got {text!r}")
    return int(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--org", required=True, help="the organisation's id")
    options = {name: "--" + name.replace("_", "-") for name in OVERRIDE_COLUMNS}
    for name, option in options.items():
        parser.add_argument(option, dest=name, type=_limit, default=argparse.SUPPRESS)
    args = vars(parser.parse_args(argv))
    org = args.pop("org")
    owner_url = os.environ.get("MIGRATION_DATABASE_URL", "")
    if not owner_url:
        parser.error("MIGRATION_DATABASE_URL must name the database as its schema owner")
    if not args:
        parser.error(f"name at least one limit: {', '.join(options.values())}")
    try:
        stored = set_overrides(owner_url, org, args)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(stored))
    return 0


if __name__ == "__main__":
    sys.exit(main())
