"""Demo data (``zmi-reconciler demo``): a realistic small company, deterministic for a seed and a date.

What :func:`seed_demo` creates:

- master data (written to ``<data_dir>/masterdata.yaml`` and applied to the store): day plan ``STD``
  (8:00 target, ArbZG section 4 minimum breaks 30 min after 6 h and 15 more after 9 h, max net 10:00),
  ``FRI`` (short Friday, 6:00), ``NIGHT`` (8:00, auto-complete at midnight); week plans ``W5`` (Mon-Thu
  STD, Fri FRI, weekend free) and ``WN`` (night shifts Mon-Fri); ten employees, one with a supervisor
  email, one who left years ago, mixed credit types;
- holidays of ``region`` (``holidays`` package, e.g. ``DE-BY``) for the current and the next year,
  category 1; in Germany also 24 and 31 December as half days (category 2), as many companies do;
- a ZKTeco ATTLOG export (``PIN<TAB>datetime<TAB>verify<TAB>state<TAB>workcode``, state 0 come / 1 go)
  of the last ``weeks`` weeks up to yesterday, written to the caller's path, with the patterns of real
  files: double taps, a lone come (forgotten go), a Saturday shift, night shifts across midnight, lunch
  breaks, and one tap of a badge not assigned to anyone (PIN 5999).

Personnel numbers and PINs are 5001-5010 (unknown badge 5999): a range real terminal exports rarely use
(they tend to start at 1, 100 or 1000), so importing a real export into a demo store does not book its
people onto demo employees. The sample export in ``shared/data/attlog-sample.dat`` uses 1000-1119.

Nothing is overwritten without ``force``: an existing master data file or export, or a store that already
has employees, raises :class:`DemoExistsError`.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from pathlib import Path

from zmi_reconciler.tna import models
from zmi_reconciler.tna.masterdata import MasterData, apply_masterdata, dump_masterdata
from zmi_reconciler.tna.store import Employee, Store
from zmi_reconciler.tna.sync import region_holidays

MASTERDATA_FILE = "masterdata.yaml"
#: A badge no demo employee has (demo PINs are 5001-5010; see the module doc for why this range).
UNKNOWN_PIN = "5999"


class DemoExistsError(Exception):
    """Demo data would overwrite existing data; rerun with ``force``."""


@dataclass
class DemoResult:
    masterdata_path: Path
    export_path: Path
    employees: int = 0
    holidays: int = 0
    lines: int = 0
    double_taps: int = 0
    patterns: list[str] = field(default_factory=list)


# (personnel number = PIN, first, last, week plan, credit type, role)
_PEOPLE = (
    ("5001", "Anna", "Berger", "W5", "complete", ""),
    ("5002", "Ben", "Schulz", "W5", "complete", ""),
    ("5003", "Clara", "Fischer", "W5", "after_threshold", ""),
    ("5004", "David", "Wagner", "WN", "no_evaluation", "night"),
    ("5005", "Eva", "Becker", "W5", "complete", "saturday"),
    ("5006", "Felix", "Hoffmann", "W5", "complete", "lone_come"),
    ("5007", "Greta", "Schäfer", "W5", "no_evaluation", ""),
    ("5008", "Hannah", "Koch", "W5", "no_carry", ""),
    ("5009", "Jonas", "Richter", "W5", "complete", ""),
    ("5010", "Klaus", "Neumann", "W5", "complete", "left"),
)


def demo_masterdata(today: date) -> MasterData:
    """The demo's plans and employees (entry dates relative to ``today``)."""
    std = models.DayPlan("STD", "Standard day 8 h", 480, models.ARBZG_BREAKS, max_net_minutes=600)
    fri = models.DayPlan("FRI", "Short Friday 6 h", 360, models.ARBZG_BREAKS, max_net_minutes=600)
    night = models.DayPlan("NIGHT", "Night shift 8 h", 480, models.ARBZG_BREAKS, max_net_minutes=600,
                           day_change="auto_complete_midnight")
    weeks = [models.WeekPlan("W5", "Mon-Thu 8 h, Fri 6 h", "STD", "STD", "STD", "STD", "FRI"),
             models.WeekPlan("WN", "Night shifts Mon-Fri", *["NIGHT"] * 5)]
    employees = []
    for index, (number, first, last, week, credit, role) in enumerate(_PEOPLE):
        e = Employee(number, first, last, pin=number, email=f"{first.lower()}.{_ascii(last).lower()}@example.com",
                     entry_date=date(today.year - 6, 1, 1) if index < 4 else date(today.year - 2, 4, 1),
                     week_plan=week, credit_type=credit)
        if credit in ("complete", "after_threshold"):
            e.credit_monthly_cap, e.credit_upper_limit = 600, 2400
        if credit == "after_threshold":
            e.credit_threshold = 300
        if role == "lone_come":
            e.supervisor_email = "anna.berger@example.com"
        if role == "left":
            e.entry_date, e.exit_date, e.email = date(today.year - 12, 3, 1), date(today.year - 3, 6, 30), None
        employees.append(e)
    return MasterData([std, fri, night], weeks, employees)


def _ascii(text: str) -> str:
    return text.replace("ä", "ae").replace("ö", "oe").replace("ü", "ue").replace("ß", "ss")


def demo_holidays(region: str, years: list[int]) -> list[tuple[date, str, int]]:
    """Public holidays of ``region`` (:func:`zmi_reconciler.tna.sync.region_holidays`, category 1); in Germany
    also 24 and 31 December as half days (category 2), as many companies do. Raises ValueError for an
    unknown region."""
    result = {d: (d, name, category) for d, name, category in region_holidays(region, years)}
    if region.partition("-")[0] == "DE":
        for year in years:
            for day, name in ((date(year, 12, 24), "Heiligabend (half day)"),
                              (date(year, 12, 31), "Silvester (half day)")):
                result.setdefault(day, (day, name, 2))
    return sorted(result.values())


def demo_export(masterdata: MasterData, today: date, holiday_dates: set[date], seed: int = 42, weeks: int = 2
                ) -> tuple[list[str], int, list[str]]:
    """ATTLOG lines (sorted by time, like a terminal writes them) for the ``weeks`` weeks before ``today``;
    returns ``(lines, double taps, patterns)``. Deterministic for ``seed`` and ``today``."""
    rng = random.Random(seed)
    start = today - timedelta(days=7 * weeks)
    taps: list[tuple[datetime, str, int]] = []
    double_taps = 0
    patterns: list[str] = []
    active = [e for e in masterdata.employees if e.active_between(start, today)]
    days = [start + timedelta(days=k) for k in range((today - start).days)]
    workdays = [d for d in days if d.weekday() < 5 and d not in holiday_dates]
    for e in active:
        role = next(p[5] for p in _PEOPLE if p[0] == e.personnel_number)
        if role == "night":
            for d in days[:-1]:  # shifts Sun-Thu evening to Mon-Fri morning
                if d.weekday() in (6, 0, 1, 2, 3) and d + timedelta(days=1) not in holiday_dates:
                    come = _around(rng, d, time(21, 50), 15)
                    go = _around(rng, d + timedelta(days=1), time(6, 0), 12)
                    taps += [(come, e.pin, 0), (go, e.pin, 1)]
            patterns.append(f"{e.pin}: night shifts across midnight (22:00-06:00)")
            continue
        lone_day = workdays[len(workdays) // 2] if role == "lone_come" and workdays else None
        for d in workdays:
            target = 360 if d.weekday() == 4 else 480
            come = _around(rng, d, time(7, 0), 90)
            taps.append((come, e.pin, 0))
            if d == lone_day:
                patterns.append(f"{e.pin}: lone come on {d} (go forgotten)")
                continue
            worked = timedelta(minutes=target + rng.randint(-20, 70))
            if rng.random() < 0.5:
                lunch = _around(rng, d, time(12, 0), 45)
                back = lunch + timedelta(minutes=rng.randint(30, 45), seconds=rng.randint(0, 59))
                taps += [(lunch, e.pin, 1), (back, e.pin, 0)]
                go = come + worked + (back - lunch)
            else:
                go = come + worked + timedelta(minutes=30 if target > 360 else 0)
            taps.append((go, e.pin, 1))
        if role == "saturday":
            saturday = max(d for d in days if d.weekday() == 5)
            taps += [(datetime.combine(saturday, time(8, 2, 11)), e.pin, 0),
                     (datetime.combine(saturday, time(12, 31, 40)), e.pin, 1)]
            patterns.append(f"{e.pin}: Saturday shift on {saturday}")
    # double taps: the terminal records the same person again a few seconds later
    extra = []
    for when, pin, state in taps:
        if rng.random() < 0.06:
            extra.append((when + timedelta(seconds=rng.randint(1, 8)), pin, state))
    double_taps = len(extra)
    patterns.append(f"{double_taps} double taps (1-8 s)")
    if workdays:
        extra.append((datetime.combine(workdays[-1], time(9, 14, 3)), UNKNOWN_PIN, 0))
        patterns.append(f"{UNKNOWN_PIN}: a badge not assigned to any employee")
    lines = [f"{pin}\t{when:%Y-%m-%d %H:%M:%S}\t1\t{state}\t0" for when, pin, state in sorted(taps + extra)]
    return lines, double_taps, patterns


def _around(rng: random.Random, day: date, start: time, spread_minutes: int) -> datetime:
    """A local wall-clock time on ``day`` between ``start`` and ``start + spread_minutes`` (with seconds)."""
    return datetime.combine(day, start) + timedelta(minutes=rng.randint(0, spread_minutes),
                                                    seconds=rng.randint(0, 59))


def seed_demo(store: Store, data_dir: Path, export_path: Path, *, today: date, region: str = "DE-BY",
              seed: int = 42, weeks: int = 2, force: bool = False) -> DemoResult:
    """Write the demo master data file and export, and seed the store (master data and holidays).

    ``today``: the local date the data is relative to (the export ends yesterday). Raises
    :class:`DemoExistsError` (nothing written) when the master data file or the export exists or the store
    has employees, unless ``force``; ValueError for an unknown holiday region.
    """
    md_path = Path(data_dir) / MASTERDATA_FILE
    export_path = Path(export_path)
    if not force:
        existing = [str(p) for p in (md_path, export_path) if p.exists()]
        if store.employees():
            existing.append(f"{store.path or 'the tna store'} (has employees)")
        if existing:
            raise DemoExistsError("demo data would overwrite existing data: " + ", ".join(existing)
                                  + "; use --force to overwrite")
    years = [today.year, today.year + 1]
    holiday_rows = demo_holidays(region, years)
    masterdata = demo_masterdata(today)
    lines, double_taps, patterns = demo_export(masterdata, today, {d for d, _, _ in holiday_rows}, seed, weeks)

    md_path.parent.mkdir(parents=True, exist_ok=True)
    header = (f"# Demo master data written by `zmi-reconciler demo` (seed {seed}, {today}).\n"
              "# Day plans, week plans and employees; keep this file in git and edit it like the schedules.\n")
    _write_atomic(md_path, dump_masterdata(masterdata, header))
    export_path.parent.mkdir(parents=True, exist_ok=True)
    _write_atomic(export_path, "\n".join(lines) + "\n")
    with store.transaction():
        apply_masterdata(store, masterdata)
        store.replace_holidays(region, holiday_rows, years)
    return DemoResult(md_path, export_path, employees=len(masterdata.employees), holidays=len(holiday_rows),
                      lines=len(lines), double_taps=double_taps, patterns=patterns)


def _write_atomic(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)
