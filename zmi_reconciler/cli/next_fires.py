"""``zmi-reconciler next ID|FILE [--count N] [--after ISO-8601] [--format text|json]`` (SPEC section 9).

Prints the next fires of one schedule, computed by :mod:`zmi_reconciler.timing` in the schedule's effective
zone (its ``timezone`` or the server's ``default_timezone``).

* ``ID`` is looked up as ``<schedules_dir>/<ID>.yaml`` (or ``.yml``); anything that looks like a path
  (has a separator or a ``.yaml``/``.yml`` suffix, or names an existing file) is read as ``FILE``.
* ``--after``: ISO 8601 instant; without an offset it is read as local time in the schedule's zone.
  Default: now. Fires exactly at ``--after`` are not listed.
* text: one line per fire (local time, offset, zone abbreviation, UTC) followed by DST notes;
  json: a list of ISO 8601 instants with their local offset (``"2026-03-29T03:30:00+02:00"``).

Exit codes: 0 listed (also for a manual schedule, which never fires by itself), 1 the file is invalid
(its findings are printed), 2 usage errors (bad ``--after`` or ``--count``, ``--after`` outside 1970..2100, unknown id,
unreadable settings).
"""

from __future__ import annotations

import argparse
import json
import sys
from datetime import datetime, timezone
from itertools import islice
from pathlib import Path
from zoneinfo import ZoneInfo

from zmi_reconciler import timing as timing_math
from zmi_reconciler.config import ConfigError, settings_from_args
from zmi_reconciler.loader import load_schedule_file
from zmi_reconciler.schema import Schedule

MAX_COUNT = 10_000


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("target", metavar="ID|FILE", help="schedule id (looked up in the schedules dir) or a file")
    parser.add_argument("--count", "-n", type=int, default=5, help=f"how many fires to list (1..{MAX_COUNT}, "
                                                                   "default 5)")
    parser.add_argument("--after", metavar="ISO-8601",
                        help="list fires strictly after this instant (default: now); without an offset it is "
                             "local time in the schedule's zone")
    parser.add_argument("--format", choices=("text", "json"), default="text")


class UsageError(Exception):
    """Bad arguments: exit code 2."""


def resolve_target(target: str, schedules_dir: Path) -> Path:
    """``ID`` -> ``<schedules_dir>/<ID>.yaml|.yml``; a path-like ``FILE`` -> that path. Raises :class:`UsageError`."""
    path = Path(target)
    looks_like_path = ("/" in target or "\\" in target or path.suffix in (".yaml", ".yml") or path.is_file())
    if looks_like_path:
        if not path.is_file():
            raise UsageError(f"no such schedule file: {target}")
        return path
    for suffix in (".yaml", ".yml"):
        candidate = schedules_dir / f"{target}{suffix}"
        if candidate.is_file():
            return candidate
    raise UsageError(f"unknown schedule id {target!r}: no {target}.yaml or {target}.yml in {schedules_dir}")


#: ``--after`` must lie in these UTC years: fires are computed in zoneinfo zones, whose rules (and Python's
#: ``datetime`` range at year 1 / 9999) make instants far outside meaningless or overflowing.
MIN_YEAR = 1970
MAX_YEAR = 2100


def parse_after(text: str | None, zone: ZoneInfo) -> datetime:
    """``--after`` -> aware UTC datetime (naive input is local time in ``zone``). Raises :class:`UsageError`,
    also for an instant outside the years :data:`MIN_YEAR`..:data:`MAX_YEAR` (UTC)."""
    if text is None:
        return datetime.now(timezone.utc)
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise UsageError(f"--after: not an ISO 8601 date or date-time: {text!r} "
                         "(for example 2026-03-29T00:00:00+01:00)") from None
    if value.tzinfo is None:
        value = value.replace(tzinfo=zone)
    try:
        value = value.astimezone(timezone.utc)
    except OverflowError:
        value = None
    if value is None or not MIN_YEAR <= value.year <= MAX_YEAR:
        raise UsageError(f"--after must be between {MIN_YEAR} and {MAX_YEAR}, got {text!r}")
    return value


def load(path: Path) -> tuple[Schedule | None, list[str]]:
    """Load one schedule file: ``(schedule, error lines)``; schedule is None when the file is invalid.

    Uses :func:`zmi_reconciler.loader.load_schedule_file` (line/column findings); error lines are formatted
    ``file:line:col: error CODE message`` like ``validate``. Warnings do not stop ``next``.
    """
    result = load_schedule_file(path)
    errors = [f"{f.file}:{f.line}:{f.column}: {f.severity} {f.code} {f.message}"
              for f in result.findings if f.severity == "error"]
    if errors or result.schedule is None:
        return None, errors or [f"{path}: invalid schedule file"]
    return result.schedule, []


def _fire_line(fire: datetime, zone: ZoneInfo) -> str:
    local = fire.astimezone(zone)
    offset = local.isoformat()[-6:]
    return (f"{local:%Y-%m-%d %a %H:%M:%S} {offset} {local.tzname():<6} "
            f"({fire:%Y-%m-%dT%H:%M:%S}Z)")


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        if not 1 <= args.count <= MAX_COUNT:
            raise UsageError(f"--count must be between 1 and {MAX_COUNT}, got {args.count}")
        path = resolve_target(args.target, settings.schedules_dir)
    except (UsageError, ConfigError) as exc:
        print(f"zmi-reconciler next: {exc}", file=sys.stderr)
        return 2
    schedule, errors = load(path)
    if schedule is None:
        for line in errors:
            print(line, file=sys.stderr)
        return 1
    zone = schedule.zone(settings.default_timezone)
    try:
        after = parse_after(args.after, zone)
    except UsageError as exc:
        print(f"zmi-reconciler next: {exc}", file=sys.stderr)
        return 2
    try:
        fires = list(islice(timing_math.iter_fires(schedule.timing, zone, after), args.count))
        notes = {fire: timing_math.fire_notes(schedule.timing, zone, fire) for fire in fires}
    except OverflowError:  # fires beyond datetime's range (year 9999)
        print(f"zmi-reconciler next: fires after {after.isoformat()} are beyond the supported date range",
              file=sys.stderr)
        return 2
    if args.format == "json":
        print(json.dumps([f.astimezone(zone).isoformat() for f in fires]))
        return 0
    print(f"{path.stem}: {schedule.name} - {timing_math.describe(schedule.timing)}, zone {zone.key}")
    if schedule.timing.type == "manual":
        print("  manual schedule: never fires by itself; start it with `zmi-reconciler run "
              f"{path.stem}` or the API")
        return 0
    if not schedule.enabled:
        print("  paused (enabled: false): these fires will not run until the schedule is enabled")
    print(f"  fires after {after.astimezone(zone).isoformat(timespec='seconds')}:")
    for fire in fires:
        print("  " + _fire_line(fire, zone))
        for note in notes[fire]:
            print(f"      note: {note}")
    return 0
