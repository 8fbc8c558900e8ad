"""Shared helpers of the task tests (no tests here): settings on a temp data dir, a task context with a
fixed clock and a log collector, a small store with master data."""

from __future__ import annotations

import threading
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any, Callable
from zoneinfo import ZoneInfo

from zmi_reconciler.config import Settings
from zmi_reconciler.tasks.base import TaskContext
from zmi_reconciler.tna.models import ARBZG_BREAKS, DayPlan, WeekPlan
from zmi_reconciler.tna.store import Employee, NewBooking, Store, local_to_utc

BERLIN = ZoneInfo("Europe/Berlin")


def make_settings(tmp_path: Path, **overrides: Any) -> Settings:
    """Settings on ``tmp_path/data`` (absolute, zone Europe/Berlin)."""
    values: dict[str, Any] = {"data_dir": tmp_path / "data", "schedules_dir": tmp_path / "schedules.d"}
    values.update(overrides)
    settings = Settings.model_validate(values)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    return settings


class Clock:
    """A settable clock (aware UTC)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class LogCollector:
    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def __call__(self, message: str, level: str = "info", **fields: Any) -> None:
        self.records.append({"message": message, "level": level, **fields})

    @property
    def messages(self) -> list[str]:
        return [r["message"] for r in self.records]


def make_ctx(settings: Settings, task_name: str, clock: Callable[[], datetime], *, journal: Any = None,
             cancel: threading.Event | None = None, open_store: Callable[[], Any] | None = None,
             schedule_id: str = "nightly") -> TaskContext:
    now = clock()
    return TaskContext(settings=settings, schedule_id=schedule_id, run_id=f"{schedule_id}@test", task_index=0,
                       task_name=task_name, scheduled_for=now, log=LogCollector(), clock=clock,
                       cancel=cancel or threading.Event(), journal=journal,
                       open_store=open_store or (lambda: Store.open(settings.database_path, zone=settings.zone,
                                                                     clock=clock)))


def local(y: int, m: int, d: int, hh: int, mm: int = 0, ss: int = 0) -> datetime:
    """Berlin wall clock -> aware UTC."""
    return local_to_utc(datetime(y, m, d, hh, mm, ss), BERLIN)


def seed_plans(store: Store) -> None:
    """Day plan STD (8 h target, ArbZG breaks) Monday..Friday, week plan STD."""
    store.upsert_day_plan(DayPlan(code="STD", name="Standard", target_minutes=480, breaks=ARBZG_BREAKS))
    store.upsert_week_plan(WeekPlan(code="STD", name="Mo-Fr", mon="STD", tue="STD", wed="STD", thu="STD",
                                    fri="STD"))


def seed_small_store(path: Path, clock: Callable[[], datetime] | None = None) -> dict[str, int]:
    """Two employees with plans and a week of bookings, one queued message; returns ids by personnel number."""
    clock = clock or (lambda: datetime(2026, 4, 20, 10, 0, tzinfo=timezone.utc))
    with Store.open(path, zone=BERLIN, clock=clock) as store:
        seed_plans(store)
        ids = {}
        for number, first, pin in (("1001", "Anna", "42"), ("1002", "Ben", "43")):
            ids[number], _ = store.upsert_employee(Employee(number, first, "Test", pin=pin, week_plan="STD",
                                                            email=f"{first.lower()}@example.org",
                                                            entry_date=date(2025, 1, 1)))
        bookings = []
        for day in range(13, 18):
            for emp in ids.values():
                bookings.append(NewBooking(emp, local(2026, 4, day, 8), "come", "demo"))
                bookings.append(NewBooking(emp, local(2026, 4, day, 16, 30), "go", "demo"))
        store.add_bookings(bookings)
        store.enqueue_message("anna@example.org", "hello", "body")
    return ids


def dump_tables(path: Path) -> dict[str, list[tuple]]:
    """Every row of every table, sorted (to compare databases by content)."""
    import sqlite3

    conn = sqlite3.connect(path)
    try:
        names = [r[0] for r in conn.execute(
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")]
        return {n: sorted(conn.execute(f'SELECT * FROM "{n}"').fetchall(), key=repr) for n in names}
    finally:
        conn.close()
