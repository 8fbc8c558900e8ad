"""calculate_months: month selection relative to the local run date, through, closed months, results."""

from __future__ import annotations

import threading
from datetime import date, datetime, timezone

import pytest

from zmi_reconciler.tasks import calculate_months as task
from zmi_reconciler.tasks._common import resolve_month
from zmi_reconciler.tasks.base import TaskCancelled
from zmi_reconciler.tna.store import Employee, NewBooking, Store

from test_task_helpers import Clock, local, make_ctx, make_settings, seed_plans

# Wednesday 2026-10-14 05:00 Berlin
NOW = datetime(2026, 10, 14, 3, 0, tzinfo=timezone.utc)


@pytest.fixture
def env(tmp_path):
    settings = make_settings(tmp_path)
    clock = Clock(NOW)
    with Store.open(settings.database_path, zone=settings.zone, clock=clock) as store:
        seed_plans(store)
        ids = {}
        for number, first, entry, leave in (("1001", "Anna", date(2025, 1, 1), None),
                                            ("1002", "Ben", date(2025, 1, 1), None),
                                            ("1003", "Gone", date(2025, 1, 1), date(2026, 9, 15))):
            ids[first], _ = store.upsert_employee(Employee(number, first, "T", week_plan="STD", entry_date=entry,
                                                           exit_date=leave, flextime_initial=60))
        # Anna is present 8:00-17:30 (570 min) on Thursday 1st and Friday 2nd of October: ArbZG breaks 30 + 15,
        # net 525 each
        store.add_bookings([NewBooking(ids["Anna"], local(2026, 10, d, h, m), direction, "t")
                            for d in (1, 2) for h, m, direction in ((8, 0, "come"), (17, 30, "go"))])
    return settings, clock, ids


def run(settings, clock, cancel=None, **params):
    return task.run(make_ctx(settings, "calculate_months", clock, cancel=cancel), task.Params(**params))


@pytest.mark.parametrize("selector, today, expected", [
    ("current", date(2026, 10, 14), (2026, 10)),
    ("previous", date(2026, 10, 14), (2026, 9)),
    ("previous", date(2026, 1, 1), (2025, 12)),
    ("2025-02", date(2026, 10, 14), (2025, 2)),
])
def test_resolve_month(selector, today, expected):
    assert resolve_month(selector, today) == expected


def test_current_month_through_yesterday(env):
    settings, clock, ids = env
    result = run(settings, clock)
    # Gone left in September: only Anna and Ben; days 1..13 October
    assert (result.month, result.employees, result.months_calculated, result.days_calculated) == (
        "2026-10", 2, 2, 26)
    with Store.open(settings.database_path, zone=settings.zone) as store:
        anna = store.monthly_value(ids["Anna"], 2026, 10)
        ben = store.monthly_value(ids["Ben"], 2026, 10)
        assert store.monthly_value(ids["Gone"], 2026, 10) is None
        assert store.daily_value(ids["Anna"], date(2026, 10, 14)) is None  # today is not part of it
    # 9 working days (1,2,5..9,12,13) of 480 target; Anna worked 2 x 525, Ben nothing
    assert (anna.target, anna.net, anna.flextime_start) == (9 * 480, 2 * 525, 60)
    assert anna.flextime_change == 2 * 525 - 9 * 480
    assert anna.flextime_carry == 60 + anna.flextime_change
    assert (ben.net, ben.target) == (0, 9 * 480)


def test_month_end_takes_the_whole_month(env):
    settings, clock, ids = env
    result = run(settings, clock, through="month_end")
    assert result.days_calculated == 2 * 31
    with Store.open(settings.database_path, zone=settings.zone) as store:
        assert store.monthly_value(ids["Ben"], 2026, 10).target == 22 * 480  # working days in October 2026


def test_previous_month_includes_the_leaver_and_skips_closed(env):
    settings, clock, ids = env
    with Store.open(settings.database_path, zone=settings.zone) as store:
        store.close_through(2026, 9, [ids["Ben"]])
    result = run(settings, clock, month="previous")
    assert (result.month, result.employees, result.months_calculated, result.skipped_closed) == ("2026-09", 3, 2, 1)
    with Store.open(settings.database_path, zone=settings.zone) as store:
        assert store.monthly_value(ids["Ben"], 2026, 9) is None
        gone = store.monthly_value(ids["Gone"], 2026, 9)
        assert gone.target == 11 * 480  # working days 1..15 September 2026


def test_recalculating_september_carries_into_october(env):
    settings, clock, ids = env
    run(settings, clock)  # October first: start = flextime_initial (no September yet)
    result = run(settings, clock, month="2026-09")
    assert result.carried_forward == 3 - 1  # Anna, Ben (Gone has no October value)
    with Store.open(settings.database_path, zone=settings.zone) as store:
        sept = store.monthly_value(ids["Anna"], 2026, 9)
        octo = store.monthly_value(ids["Anna"], 2026, 10)
        assert octo.flextime_start == sept.flextime_carry


def test_cancelled(env):
    settings, clock, _ = env
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(TaskCancelled):
        run(settings, clock, cancel=cancel)


def test_bad_month_selector_is_rejected():
    with pytest.raises(ValueError):
        task.Params(month="2026-13")
