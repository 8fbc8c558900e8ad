"""``zmi-reconciler masterdata [FILE] [--check]``: validate and apply master data (day plans, week plans,
employees) to the tna store, and fill the holidays of the configured region.

FILE defaults to the setting ``masterdata_file`` (``<data_dir>/masterdata.yaml``). ``--check`` only
validates (for CI). Exit codes: 0 applied/valid, 1 invalid file (every problem as file:line:col), 2 usage or
I/O error.
"""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path

from zmi_reconciler.config import ConfigError, settings_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", nargs="?", help="master data YAML (default: setting masterdata_file)")
    parser.add_argument("--check", action="store_true", help="validate only; write nothing")


def run(args: argparse.Namespace) -> int:
    from zmi_reconciler.tna.masterdata import MasterDataError, load_masterdata

    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"zmi-reconciler: {exc}", file=sys.stderr)
        return 2
    if args.file:
        settings.masterdata_file = Path(args.file).absolute()
    path = settings.masterdata_path
    try:
        if not path.exists():
            print(f"zmi-reconciler: {path}: no such file", file=sys.stderr)
            return 2
        md = load_masterdata(path)  # validate before the store is even opened
        if args.check:
            print(f"{path}: valid ({len(md.day_plans)} day plans, {len(md.week_plans)} week plans, "
                  f"{len(md.employees)} employees)")
            return 0
        from zmi_reconciler.tna.store import Store
        from zmi_reconciler.tna.sync import sync_store

        settings.data_dir.mkdir(parents=True, exist_ok=True)
        with Store.open(settings.database_path, zone=settings.zone) as store:
            result = sync_store(settings, store, datetime.now(settings.zone).date(), md)
    except MasterDataError as exc:
        for problem in exc.problems:
            print(problem, file=sys.stderr)
        return 1
    except (OSError, ValueError) as exc:
        print(f"zmi-reconciler: {exc}", file=sys.stderr)
        return 2
    applied = result.masterdata
    assert applied is not None
    print(f"{path}: applied {applied.day_plans} day plans, {applied.week_plans} week plans, "
          f"{applied.employees} employees ({applied.attached} unassigned bookings attached)")
    for year, count in result.holidays_added.items():
        print(f"holidays {settings.holiday_region} {year}: {count} added")
    return 0
