"""``zmi-reconciler demo``: seed demo master data and holidays into the tna store and write a terminal export.

The master data goes to ``<data_dir>/masterdata.yaml``, the ATTLOG export to ``--export`` (default:
``<inbox>/demo-attlog.dat``, where the ``import_bookings`` task picks it up). Exit codes: 0 seeded,
1 refused because data exists (use ``--force``), 2 settings error.
"""

from __future__ import annotations

import argparse
import sys
from datetime import date, datetime
from pathlib import Path

from zmi_reconciler.config import ConfigError, settings_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--export", metavar="PATH", help="where to write the ATTLOG export "
                                                         "(default: <inbox>/demo-attlog.dat)")
    parser.add_argument("--seed", type=int, default=42, help="random seed (default 42)")
    parser.add_argument("--weeks", type=int, default=2, choices=range(1, 9), metavar="N",
                        help="weeks of bookings before today (1-8, default 2)")
    parser.add_argument("--today", type=date.fromisoformat, metavar="YYYY-MM-DD",
                        help="the date the data is relative to (default: today in the server zone)")
    parser.add_argument("--force", action="store_true", help="overwrite existing master data / export")


def run(args: argparse.Namespace) -> int:
    from zmi_reconciler.tna.demo import DemoExistsError, seed_demo
    from zmi_reconciler.tna.store import Store

    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"zmi-reconciler: {exc}", file=sys.stderr)
        return 2
    today = args.today or datetime.now(settings.zone).date()
    export = Path(args.export) if args.export else settings.inbox_path / "demo-attlog.dat"
    try:
        with Store.open(settings.database_path, zone=settings.zone) as store:
            result = seed_demo(store, settings.data_dir, export, today=today, region=settings.holiday_region,
                               seed=args.seed, weeks=args.weeks, force=args.force)
    except DemoExistsError as exc:
        print(f"zmi-reconciler: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        print(f"zmi-reconciler: {exc}", file=sys.stderr)
        return 2
    print(f"master data: {result.masterdata_path} ({result.employees} employees)")
    print(f"holidays:    {result.holidays} ({settings.holiday_region}, {today.year}-{today.year + 1})")
    print(f"export:      {result.export_path} ({result.lines} lines)")
    for pattern in result.patterns:
        print(f"  - {pattern}")
    return 0
