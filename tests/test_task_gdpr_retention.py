"""gdpr_retention: leavers' data and old sent messages are deleted; dry_run counts; the journal gets counts only."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta, timezone

import pytest

from zmi_reconciler.tasks import gdpr_retention as task
from zmi_reconciler.tna.models import DailyValue, MonthlyValue
from zmi_reconciler.tna.store import Employee, NewBooking, Store

from test_task_helpers import Clock, local, make_ctx, make_settings, seed_plans

NOW = datetime(2026, 10, 12, 4, 0, tzinfo=timezone.utc)


@pytest.fixture
def env(tmp_path):
    settings = make_settings(tmp_path)
    clock = Clock(NOW)
    with Store.open(settings.database_path, zone=settings.zone, clock=clock) as store:
        seed_plans(store)
        ids = {}
        # left 2023-10-11: more than 3 years before 2026-10-12; left 2023-10-12: exactly 3 years, kept
        for number, name, left in (("1", "Old", date(2023, 10, 11)), ("2", "Edge", date(2023, 10, 12)),
                                   ("3", "Here", None)):
            ids[name], _ = store.upsert_employee(Employee(number, name, "T", pin=number, email=f"{name}@x.org",
                                                          exit_date=left, week_plan="STD"))
        for name, day in (("Old", date(2023, 10, 2)), ("Edge", date(2023, 10, 2)), ("Here", date(2026, 10, 1))):
            emp = ids[name]
            b1, _ = store.add_bookings([NewBooking(emp, local(day.year, day.month, day.day, 8), "come", "t"),
                                        NewBooking(emp, local(day.year, day.month, day.day, 16), "go", "t")])
            store.delete_booking(b1)  # soft-deleted bookings are personal data too
            store.save_daily_values([DailyValue(emp, day, net=480)])
            store.save_monthly_values([MonthlyValue(emp, day.year, day.month, net=480)])
        store.close_through(2023, 10, [ids["Old"]])
        old_sent = store.enqueue_message("Old@x.org", "s", "b")
        new_sent = store.enqueue_message("Here@x.org", "s", "b")
        store.enqueue_message("Here@x.org", "unsent", "b")
        store.mark_sent(old_sent, NOW - timedelta(days=91))
        store.mark_sent(new_sent, NOW - timedelta(days=89))
    return settings, clock, ids


def run(settings, clock, **params):
    ctx = make_ctx(settings, "gdpr_retention", clock)
    return task.run(ctx, task.Params(**params)), ctx


def test_dry_run_counts_without_deleting(env):
    settings, clock, _ = env
    before = Store.open(settings.database_path, zone=settings.zone)
    counts = before.table_counts()
    before.close()
    result, _ = run(settings, clock, dry_run=True, delete_employees=True)
    assert result.model_dump() == {"employees": 1, "bookings": 2, "daily_values": 1, "monthly_values": 1,
                                   "employee_records": 1, "outbox_messages": 1, "dry_run": True}
    with Store.open(settings.database_path, zone=settings.zone) as store:
        assert store.table_counts() == counts


def test_deletes_leavers_data_and_old_sent_messages(env):
    settings, clock, ids = env
    result, ctx = run(settings, clock)
    assert result.model_dump() == {"employees": 1, "bookings": 2, "daily_values": 1, "monthly_values": 1,
                                   "employee_records": 0, "outbox_messages": 1, "dry_run": False}
    with Store.open(settings.database_path, zone=settings.zone) as store:
        everything = date(2000, 1, 1), date(2030, 1, 1)
        assert set(store.bookings_between(*everything, include_deleted=True)) == {ids["Edge"], ids["Here"]}
        assert {v.employee_id for v in store.daily_values(*everything)} == {ids["Edge"], ids["Here"]}
        assert store.monthly_value(ids["Old"], 2023, 10) is None
        assert store.monthly_value(ids["Edge"], 2023, 10) is not None
        assert [e.personnel_number for e in store.employees()] == ["1", "2", "3"]  # records kept by default
        assert sorted(m.subject for m in store.outbox()) == ["s", "unsent"]
        assert store.dirty_days_since(0)[0] and all(e != ids["Old"] for e, _ in store.dirty_days_since(0)[0])
    # the journal gets counts, never who
    logged = json.dumps(ctx.log.records)
    assert "Old" not in logged and "x.org" not in logged


def test_delete_employees_removes_the_master_record(env):
    settings, clock, ids = env
    result, _ = run(settings, clock, delete_employees=True)
    assert result.employee_records == 1
    with Store.open(settings.database_path, zone=settings.zone) as store:
        assert [e.personnel_number for e in store.employees()] == ["2", "3"]
    again, _ = run(settings, clock, delete_employees=True)
    assert (again.employees, again.bookings, again.outbox_messages) == (0, 0, 0)


def test_unsent_messages_are_never_deleted(env):
    settings, clock, _ = env
    clock.now = NOW + timedelta(days=3650)
    run(settings, clock, outbox_days=1)
    with Store.open(settings.database_path, zone=settings.zone) as store:
        assert [m.subject for m in store.outbox()] == ["unsent"]


def test_years_before_handles_leap_day():
    assert task.years_before(date(2028, 2, 29), 3) == date(2025, 2, 28)
    assert task.years_before(date(2026, 10, 12), 3) == date(2023, 10, 12)
