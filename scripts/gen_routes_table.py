#!/usr/bin/env python3
"""Regenerate deploy/alertmanager/routes.yml from the alert inventory, the rules' `service`
labels and the routing policy.

Usage: .venv/bin/python scripts/gen_routes_table.py [--check]
With --check, exit 1 (printing nothing else) if the file on disk differs from what the policy
yields. Review the diff: the table is the routing contract `tradeguard rules check` enforces.
"""

from __future__ import annotations

import sys

from tradeguard.rulecheck.inventory import load_inventory
from tradeguard.rulecheck.paths import RepoPaths, find_repo_root
from tradeguard.rulecheck.routing import alert_services, render_routes_table
from tradeguard.rulecheck.rules import load_rules


def main(argv: list[str]) -> int:
    paths = RepoPaths(find_repo_root())
    services = alert_services(load_rules(paths.rule_files()))
    text = render_routes_table(load_inventory(paths.inventory), services)
    if "--check" in argv:
        current = paths.routes_table.read_text() if paths.routes_table.exists() else ""
        return 0 if current == text else 1
    paths.routes_table.write_text(text)
    print(f"wrote {paths.routes_table}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
