"""``zmi-reconciler tasks [--format text|json]``: the task catalog (SPEC section 6)."""

from __future__ import annotations

import argparse
import json

from zmi_reconciler.tasks.catalog import REGISTRY


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--format", choices=("text", "json"), default="text")


def catalog_entries() -> list[dict]:
    """The catalog as plain dicts: name, zmi_name, description, available, reason, params_schema (JSON Schema)."""
    return [
        {
            "name": spec.name,
            "zmi_name": spec.zmi_name,
            "description": spec.description,
            "available": spec.available,
            "reason": spec.unavailable_reason,
            "params_schema": spec.params_model.model_json_schema(by_alias=True),
        }
        for spec in REGISTRY.values()
    ]


def run(args: argparse.Namespace) -> int:
    entries = catalog_entries()
    if args.format == "json":
        print(json.dumps(entries, indent=2, ensure_ascii=False))
        return 0
    for e in entries:
        state = "" if e["available"] else f"  [not available: {e['reason']}]"
        print(f"{e['name']:<28} {e['zmi_name']}{state}")
        params = e["params_schema"].get("properties", {})
        if e["available"] and params:
            print(f"{'':<28} params: {', '.join(params)}")
    return 0
