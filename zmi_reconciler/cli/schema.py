"""``zmi-reconciler schema``: print the JSON Schema (draft-07) of a schedule file.

Editors validate ``schedules.d/*.yaml`` against it through the modeline
``# yaml-language-server: $schema=../openapi/schedule.schema.json``. yaml-language-server reads draft-07, so
pydantic's 2020-12 output is converted: ``$defs`` -> ``definitions``, ``$ref`` siblings moved into ``allOf``
(draft-07 ignores keywords next to ``$ref``). The committed copy is ``openapi/schedule.schema.json``;
regenerate it with ``make openapi`` or ``zmi-reconciler schema > openapi/schedule.schema.json``.
"""

from __future__ import annotations

import argparse
import json
from typing import Any

DRAFT_07 = "http://json-schema.org/draft-07/schema#"
SCHEMA_ID = "https://github.com/zmi-reconciler/zmi-reconciler/openapi/schedule.schema.json"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--indent", type=int, default=2, help="JSON indentation (default 2)")


def schedule_schema() -> dict[str, Any]:
    """The draft-07 JSON Schema of one schedule file, generated from :class:`zmi_reconciler.schema.Schedule`."""
    from zmi_reconciler.schema import Schedule

    raw = Schedule.model_json_schema(by_alias=True, mode="validation")
    definitions = raw.pop("$defs", {})
    converted: dict[str, Any] = {"$schema": DRAFT_07, "$id": SCHEMA_ID}
    converted.update(_to_draft_07(raw))
    if definitions:
        converted["definitions"] = {name: _to_draft_07(d) for name, d in sorted(definitions.items())}
    return converted


def _to_draft_07(node: Any) -> Any:
    if isinstance(node, list):
        return [_to_draft_07(item) for item in node]
    if not isinstance(node, dict):
        return node
    out = {key: _to_draft_07(value) for key, value in node.items()}
    ref = out.get("$ref")
    if isinstance(ref, str):
        ref = ref.replace("#/$defs/", "#/definitions/")
        if len(out) > 1:  # draft-07 ignores siblings of $ref: keep them by wrapping the reference
            del out["$ref"]
            out["allOf"] = [{"$ref": ref}]
        else:
            out["$ref"] = ref
    mapping = out.get("discriminator", {}).get("mapping") if isinstance(out.get("discriminator"), dict) else None
    if mapping:
        out["discriminator"]["mapping"] = {k: v.replace("#/$defs/", "#/definitions/") for k, v in mapping.items()}
    return out


def render(indent: int = 2) -> str:
    """The schema as the text committed in ``openapi/schedule.schema.json`` (ends with a newline)."""
    return json.dumps(schedule_schema(), indent=indent, ensure_ascii=False) + "\n"


def run(args: argparse.Namespace) -> int:
    print(render(args.indent), end="")
    return 0
