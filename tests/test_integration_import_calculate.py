"""The ticket's integration test: a schedule with ``import_bookings`` then ``calculate_days``, fired by the real
runner (injected clock) on a temp data dir. Dropping ``../shared/data/attlog-sample.dat`` into the inbox gives
its bookings, then daily values for every employee-day in the file, MISSING_GO where an employee has a lone
come on a past day, and the matching notifications.

Expected numbers come from a small independent parser of the file below (not from the code under test):
double taps within 60 s of the last kept tap collapse; directions alternate per employee and day starting with
come (the plan has no day change rule); a final day with an odd number of bookings ends with a lone come.
"""

from __future__ import annotations

import os
import shutil
import time
from collections import defaultdict
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest

from zmi_reconciler.journal import Journal
from zmi_reconciler.runner import Runner
from zmi_reconciler.schema import Schedule
from zmi_reconciler.tna.store import Employee, Store

from test_task_helpers import make_settings, seed_plans

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "attlog-sample.dat"
pytestmark = pytest.mark.skipif(not SAMPLE.exists(), reason=f"sample terminal export {SAMPLE} is absent "
                                                            "(the repo's sibling 'shared' data dir)")

# Monday 2026-11-16 20:00 Berlin: the file's last taps (that morning) are today, so provisional
START = datetime(2026, 11, 16, 18, 58, tzinfo=timezone.utc)
TODAY = date(2026, 11, 16)
DEBOUNCE = timedelta(seconds=60)


class FakeClock:
    def __init__(self, now: datetime) -> None:
        self.now = now
        self.mono = 1000.0

    def __call__(self) -> datetime:
        return self.now

    def monotonic(self) -> float:
        return self.mono

    def set(self, instant: datetime) -> None:
        self.mono += (instant - self.now).total_seconds()
        self.now = instant


def expected_from_file(path: Path) -> dict[tuple[str, date], int]:
    """Kept bookings per (PIN, local date), by the rules in the module docstring."""
    taps: dict[str, list[datetime]] = defaultdict(list)
    for line in path.read_text().splitlines():
        if line.strip():
            pin, stamp = line.split("\t")[:2]
            taps[pin.strip()].append(datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S"))
    kept: dict[tuple[str, date], int] = defaultdict(int)
    for pin, instants in taps.items():
        last = None
        for t in sorted(instants):
            if last is not None and t - last <= DEBOUNCE:
                continue
            last = t
            kept[(pin, t.date())] += 1
    return dict(kept)


def test_dropped_terminal_file_becomes_bookings_daily_values_and_notifications(tmp_path):
    kept = expected_from_file(SAMPLE)
    pins = sorted({pin for pin, _ in kept})
    lone_come_days = {k for k, n in kept.items() if n % 2 == 1 and k[1] < TODAY}
    assert len(pins) >= 10 and lone_come_days  # the sample is what this test is about

    settings = make_settings(tmp_path)
    supervised = set(pins[::2])
    with Store.open(settings.database_path, zone=settings.zone) as store:
        seed_plans(store)
        for pin in pins:
            store.upsert_employee(Employee(f"P{pin}", "Emp", pin, pin=pin, week_plan="STD",
                                           entry_date=date(2026, 1, 1), email=f"e{pin}@example.org",
                                           supervisor_email="lead@example.org" if pin in supervised else None))
        ids = {e.pin: e.id for e in store.employees()}

    clock = FakeClock(START)
    journal = Journal(settings.journal_path, clock=clock)
    runner = Runner(settings, journal, clock, monotonic=clock.monotonic, workers=2)
    schedule = Schedule.model_validate({
        "name": "Terminal import", "timezone": "Europe/Berlin", "timing": {"type": "minutes", "every": 5},
        "tasks": [{"task": "import_bookings", "params": {"pattern": "*.dat"}}, {"task": "calculate_days"}]})
    runner.apply("terminal", schedule, "hash-1")
    try:
        # the terminal drops its export; it finished writing a while ago
        settings.inbox_path.mkdir(parents=True, exist_ok=True)
        dropped = settings.inbox_path / "attlog.dat"
        shutil.copyfile(SAMPLE, dropped)
        os.utime(dropped, (time.time() - 30, time.time() - 30))

        clock.set(datetime(2026, 11, 16, 19, 0, tzinfo=timezone.utc))  # the 20:00 slot of the 5-minute grid
        runner.run_once()
        run_id = "terminal@20261116T190000Z"
        assert runner.wait_run(run_id, timeout=60)
        outcome = runner.run_outcome(run_id)
    finally:
        runner.stop(grace_seconds=5)

    assert outcome.status == "succeeded", [(t.task, t.status, t.error) for t in outcome.tasks]
    imported, calculated = outcome.tasks
    assert imported.result["files"] == 1 and imported.result["files_failed"] == 0
    assert imported.result["bookings_new"] == sum(kept.values())
    assert imported.result["bookings_collapsed"] == len(SAMPLE.read_text().splitlines()) - sum(kept.values())
    assert imported.result["bookings_unassigned"] == 0
    assert (settings.inbox_path / "processed" / "attlog.dat").exists() and not dropped.exists()

    # days: every file day with its neighbours (never after today) plus yesterday for every employee
    wanted = {(pin, d + timedelta(days=k)) for pin, d in kept for k in (-1, 0, 1)}
    wanted = {(pin, d) for pin, d in wanted if d <= TODAY} | {(pin, TODAY - timedelta(days=1)) for pin in pins}
    assert calculated.result["days_calculated"] == len(wanted)
    assert calculated.result["error_days"] == len(lone_come_days)
    expected_messages = len(lone_come_days) + sum(1 for pin, _ in lone_come_days if pin in supervised)
    assert calculated.result["notifications_queued"] == expected_messages

    with Store.open(settings.database_path, zone=settings.zone) as store:
        stored = store.bookings_between(date(2026, 10, 1), date(2026, 11, 30))
        per_day = {(pin, d): sum(1 for b in stored.get(ids[pin], []) if b.local_date == d) for pin, d in kept}
        assert per_day == kept
        values = {(v.employee_id, v.date): v for v in store.daily_values(date(2026, 10, 1), date(2026, 11, 30))}
        for pin, day in kept:
            value = values[(ids[pin], day)]
            if (pin, day) in lone_come_days:
                assert value.errors == ("MISSING_GO",), (pin, day)
            else:
                assert "MISSING_GO" not in value.errors, (pin, day)
            assert value.provisional == (day == TODAY)
        with_errors = {(v.employee_id, v.date) for v in values.values() if v.errors}
        assert with_errors == {(ids[pin], d) for pin, d in lone_come_days}
        outbox = store.outbox()
        assert len(outbox) == expected_messages
        to_employees = sorted(m.recipient for m in outbox if m.recipient != "lead@example.org")
        assert to_employees == sorted(f"e{pin}@example.org" for pin, _ in lone_come_days)

    # a second slot finds no new file and queues nothing again
    runner = Runner(settings, journal, clock, monotonic=clock.monotonic, workers=2)
    runner.apply("terminal", schedule, "hash-1")
    try:
        clock.set(datetime(2026, 11, 16, 19, 5, tzinfo=timezone.utc))
        runner.run_once()
        assert runner.wait_run("terminal@20261116T190500Z", timeout=60)
        second = runner.run_outcome("terminal@20261116T190500Z")
    finally:
        runner.stop(grace_seconds=5)
    assert second.status == "succeeded"
    assert second.tasks[0].result["files"] == 0
    assert second.tasks[1].result["notifications_queued"] == 0
    assert second.tasks[1].result["days_calculated"] == len(pins)  # only yesterday for everyone
