"""``zmi-reconciler import-bookings FILE [--format text|json]``: import one terminal export into the tna store
and print the import report (lines, new, duplicates, collapsed, unassigned, rejected with line numbers).

Exit codes: 0 imported (unknown PINs are not an error: they are kept unassigned), 1 some lines were
rejected (the rest is imported), 2 settings or I/O error.
"""

from __future__ import annotations

import argparse
import json
import sys

from zmi_reconciler.config import ConfigError, settings_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="ZKTeco ATTLOG (.dat) or CSV export")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="report format")
    parser.add_argument("--input-format", choices=("auto", "attlog", "csv"), default="auto",
                        help="file format (default: by content)")
    parser.add_argument("--debounce", type=int, metavar="SECONDS", default=None,
                        help="double-tap window (default: server setting debounce_seconds, 60)")
    direction = parser.add_mutually_exclusive_group()
    direction.add_argument("--direction-from-file", dest="direction_from_file", action="store_true", default=None,
                           help="trust the file's come/go (ATTLOG state, CSV direction)")
    direction.add_argument("--alternate", dest="direction_from_file", action="store_false",
                           help="alternate come/go per employee and day")


def run(args: argparse.Namespace) -> int:
    from zmi_reconciler.tna.importer import UnreadableFileError, import_file
    from zmi_reconciler.tna.store import Store

    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"zmi-reconciler: {exc}", file=sys.stderr)
        return 2
    debounce = settings.debounce_seconds if args.debounce is None else args.debounce
    if debounce < 0:
        print("zmi-reconciler: --debounce must not be negative", file=sys.stderr)
        return 2
    from_file = settings.direction_from_file if args.direction_from_file is None else args.direction_from_file
    try:
        with Store.open(settings.database_path, zone=settings.zone) as store:
            report = import_file(store, args.file, file_format=args.input_format, debounce_seconds=debounce,
                                 direction_from_file=from_file)
    except UnreadableFileError as exc:
        print(f"zmi-reconciler: {exc}", file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps(report.to_dict(), indent=2, ensure_ascii=False))
    else:
        print(report.to_text())
        if report.new:
            print(f"The changed days are calculated by the next calculate_days run (schedule terminal-import every "
                  f"2 minutes, nightly at 05:00), or now: zmi-reconciler run terminal-import --task calculate_days")
    return 1 if report.rejected else 0
