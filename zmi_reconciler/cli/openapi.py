"""``zmi-reconciler openapi``: print the API's OpenAPI 3.1 document (committed as ``openapi/openapi.json``;
regenerate with ``make openapi`` or ``zmi-reconciler openapi > openapi/openapi.json``)."""

from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--output", "-o", metavar="FILE", help="write to FILE instead of stdout")


def run(args: argparse.Namespace) -> int:
    from zmi_reconciler.api.app import openapi_json

    text = openapi_json()
    if args.output:
        with open(args.output, "w", encoding="utf-8") as handle:
            handle.write(text)
    else:
        sys.stdout.write(text)
    return 0
