"""Benchmark: ``calculate_days`` on 1,000 employees x 1 month (SPEC section 10: full recalculation
<= 5 s; incremental after 500 new bookings <= 300 ms).

Seeds a file-backed tna store (WAL) with a day plan with ArbZG breaks, 1,000 employees and about 90,000
bookings of one month (four bookings per working day: come, lunch go, lunch come, go), then times:

- **full**: :func:`service.recalculate_days` over every (employee, day) of the month (30,000 days);
- **incremental**: 500 new bookings arrive (an ATTLOG import, timed separately), then what the
  ``calculate_days`` task does: :meth:`Store.dirty_days_since` + :func:`service.recalculate_days` of the
  dirty days and their neighbours.
- **months** (for information): :func:`service.recalculate_months` of the month for everyone.

Prints the median of ``--repeat`` runs (wall clock and this process's CPU time, which tells a loaded
machine from a slow path) and the targets; the exit code says whether the wall-clock targets were met. Usage:
``python bench/calculate.py [--employees N] [--repeat R] [--quick]``
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import tempfile
import time
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from zmi_reconciler.tna import service
from zmi_reconciler.tna.importer import import_text
from zmi_reconciler.tna.models import ARBZG_BREAKS, DayPlan, WeekPlan
from zmi_reconciler.tna.store import Employee, NewBooking, Store, local_to_utc

FULL_TARGET_S = 5.0
INCREMENTAL_TARGET_MS = 300.0
ZONE = ZoneInfo("Europe/Berlin")
YEAR, MONTH = 2026, 3
TODAY = date(2026, 4, 1)


def seed(store: Store, employees: int, rng: random.Random) -> int:
    store.upsert_day_plan(DayPlan("STD", "8 h", 480, ARBZG_BREAKS, max_net_minutes=600))
    store.upsert_day_plan(DayPlan("FRI", "6 h", 360, ARBZG_BREAKS, max_net_minutes=600))
    store.upsert_week_plan(WeekPlan("W5", "", "STD", "STD", "STD", "STD", "FRI"))
    with store.transaction():
        for i in range(employees):
            store.upsert_employee(Employee(f"{10000 + i}", pin=f"{10000 + i}", week_plan="W5",
                                           credit_type="complete", credit_monthly_cap=600))
    ids = [e.id for e in store.employees()]
    first, last = service.month_bounds(YEAR, MONTH)
    bookings = []
    day = first
    while day <= last:
        if day.weekday() < 5:
            for emp in ids:
                come = datetime.combine(day, datetime.min.time()) + timedelta(minutes=rng.randint(420, 540))
                lunch = come + timedelta(minutes=rng.randint(200, 280))
                back = lunch + timedelta(minutes=rng.randint(25, 45))
                go = back + timedelta(minutes=rng.randint(180, 300))
                bookings += [NewBooking(emp, local_to_utc(t.replace(second=rng.randint(0, 59)), ZONE))
                             for t in (come, lunch, back, go)]
        day += timedelta(days=1)
    store.add_bookings(bookings)
    return len(bookings)


def new_bookings_export(rng: random.Random, employees: int, count: int) -> str:
    """``count`` new ATTLOG lines: late corrections on earlier days of the month for random employees."""
    lines = []
    for _ in range(count // 2):
        pin = 10000 + rng.randrange(employees)
        day = date(YEAR, MONTH, rng.randint(2, 27))
        start = datetime.combine(day, datetime.min.time()) + timedelta(minutes=rng.randint(600, 660),
                                                                       seconds=rng.randint(0, 59))
        for t in (start, start + timedelta(minutes=rng.randint(10, 20))):
            lines.append(f"{pin}\t{t:%Y-%m-%d %H:%M:%S}\t1\t0\t0")
    return "\n".join(sorted(lines, key=lambda l: l.split("\t")[1])) + "\n"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--employees", type=int, default=1000)
    parser.add_argument("--new", type=int, default=500, help="new bookings for the incremental run")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="one repeat")
    args = parser.parse_args()
    repeat = 1 if args.quick else args.repeat
    rng = random.Random(4)
    with tempfile.TemporaryDirectory() as tmp:
        with Store.open(Path(tmp) / "tna.sqlite3", zone=ZONE) as store:
            started = time.perf_counter()
            n = seed(store, args.employees, rng)
            print(f"seeded {args.employees} employees, {n} bookings in {time.perf_counter() - started:.1f} s")
            first, last = service.month_bounds(YEAR, MONTH)
            all_days = [(e.id, first + timedelta(days=k)) for e in store.employees()
                        for k in range((last - first).days + 1)]
            _, watermark = store.dirty_days_since(0)

            full, full_cpu = [], []
            for _ in range(repeat):
                started, cpu = time.perf_counter(), time.process_time()
                counts = service.recalculate_days(store, all_days, TODAY)
                full.append(time.perf_counter() - started)
                full_cpu.append(time.process_time() - cpu)
            print(f"full recalculation: {counts.days_calculated} days, {counts.error_days} error days: "
                  f"median {statistics.median(full):.2f} s wall, {statistics.median(full_cpu):.2f} s CPU "
                  f"(target <= {FULL_TARGET_S:.0f} s)")

            incremental, incremental_cpu, imports = [], [], []
            for _ in range(repeat):
                text = new_bookings_export(rng, args.employees, args.new)
                started = time.perf_counter()
                report = import_text(store, text, "bench.dat")
                imports.append(time.perf_counter() - started)
                started, cpu = time.perf_counter(), time.process_time()
                days, watermark = store.dirty_days_since(watermark)
                counts = service.recalculate_days(store, service.with_neighbours(days), TODAY)
                incremental.append(time.perf_counter() - started)
                incremental_cpu.append(time.process_time() - cpu)
            print(f"incremental after {report.lines} new bookings ({report.new} new, {len(days)} dirty days, "
                  f"{counts.days_calculated} recalculated with neighbours): median "
                  f"{statistics.median(incremental) * 1000:.0f} ms wall, "
                  f"{statistics.median(incremental_cpu) * 1000:.0f} ms CPU (target <= {INCREMENTAL_TARGET_MS:.0f} ms); "
                  f"the import itself {statistics.median(imports) * 1000:.0f} ms")

            started = time.perf_counter()
            months = service.recalculate_months(store, YEAR, MONTH, last, TODAY)
            print(f"months (days + monthly values): {months.months_calculated} employees in "
                  f"{time.perf_counter() - started:.2f} s (information)")
    ok = statistics.median(full) <= FULL_TARGET_S and statistics.median(incremental) * 1000 <= INCREMENTAL_TARGET_MS
    print("targets met" if ok else "TARGETS MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
