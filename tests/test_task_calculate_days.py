"""calculate_days: scopes, watermark, closed months, notifications once per (employee, day, error set)."""

from __future__ import annotations

import threading
from datetime import date, datetime, timezone

import pytest

from zmi_reconciler.tasks import calculate_days as task
from zmi_reconciler.tasks.base import TaskCancelled, TaskFailed
from zmi_reconciler.tna.store import Employee, NewBooking, Store

from test_task_helpers import Clock, local, make_ctx, make_settings, seed_plans

# Monday 2026-10-12 06:00 Berlin: today = 12th, yesterday = Sunday 11th (free day in plan STD)
NOW = datetime(2026, 10, 12, 4, 0, tzinfo=timezone.utc)


@pytest.fixture
def env(tmp_path):
    settings = make_settings(tmp_path)
    clock = Clock(NOW)
    with Store.open(settings.database_path, zone=settings.zone, clock=clock) as store:
        seed_plans(store)
        ids = {}
        for number, first, email, boss in (("1001", "Anna", "anna@example.org", "boss@example.org"),
                                           ("1002", "Ben", "ben@example.org", None),
                                           ("1003", "Cara", None, None)):
            ids[first], _ = store.upsert_employee(Employee(number, first, "Test", pin=number[-2:], week_plan="STD",
                                                           email=email, supervisor_email=boss,
                                                           entry_date=date(2025, 1, 1)))
        store.add_bookings([
            NewBooking(ids["Anna"], local(2026, 10, 9, 8), "come", "terminal:x"),        # lone come -> MISSING_GO
            NewBooking(ids["Ben"], local(2026, 10, 9, 8), "come", "terminal:x"),
            NewBooking(ids["Ben"], local(2026, 10, 9, 16, 30), "go", "terminal:x"),
        ])
    return settings, clock, ids


def run(settings, clock, cancel=None, **params):
    ctx = make_ctx(settings, "calculate_days", clock, cancel=cancel)
    return task.run(ctx, task.Params.model_validate(params)), ctx


def open_store(settings, clock):
    return Store.open(settings.database_path, zone=settings.zone, clock=clock)


def test_new_bookings_calculates_changed_days_neighbours_and_yesterday(env):
    settings, clock, ids = env
    result, _ = run(settings, clock)
    # Anna, Ben: 8th..11th (changed day 9th, its neighbours, yesterday 11th); Cara: yesterday only
    assert (result.days_calculated, result.employees, result.days_changed) == (9, 3, 2)
    assert (result.error_days, result.notifications_queued, result.skipped_closed) == (1, 2, 0)
    with open_store(settings, clock) as store:
        anna = store.daily_value(ids["Anna"], date(2026, 10, 9))
        assert anna.errors == ("MISSING_GO",) and not anna.provisional
        ben = store.daily_value(ids["Ben"], date(2026, 10, 9))
        assert ben.errors == () and ben.net == 480 and ben.breaks == 30
        assert store.daily_value(ids["Cara"], date(2026, 10, 9)) is None
        assert store.get_state(task.WATERMARK_KEY) == 1
        recipients = sorted(m.recipient for m in store.outbox())
        assert recipients == ["anna@example.org", "boss@example.org"]
        subject = [m.subject for m in store.outbox() if m.recipient == "anna@example.org"][0]
        assert "09.10.2026" in subject


def test_second_run_only_does_yesterday_and_queues_nothing_again(env):
    settings, clock, ids = env
    run(settings, clock)
    result, _ = run(settings, clock)
    assert (result.days_calculated, result.days_changed, result.notifications_queued) == (3, 0, 0)
    with open_store(settings, clock) as store:
        assert len(store.outbox()) == 2


def test_same_error_set_is_not_notified_twice_but_a_new_one_is(env):
    settings, clock, ids = env
    run(settings, clock)
    with open_store(settings, clock) as store:
        [go] = store.add_bookings([NewBooking(ids["Anna"], local(2026, 10, 9, 17), "go", "manual")])
    result, _ = run(settings, clock)
    assert (result.error_days, result.notifications_queued) == (0, 0)
    with open_store(settings, clock) as store:
        store.delete_booking(go)  # MISSING_GO again: the same error set as before
        store.add_bookings([NewBooking(ids["Ben"], local(2026, 10, 8, 17), "go", "manual")])  # lone go
    result, _ = run(settings, clock)
    assert result.error_days == 2
    assert result.notifications_queued == 1  # Ben's MISSING_COME; Anna's MISSING_GO was sent before
    with open_store(settings, clock) as store:
        assert sorted(m.recipient for m in store.outbox()) == ["anna@example.org", "ben@example.org",
                                                               "boss@example.org"]


def test_notify_false_queues_nothing(env):
    settings, clock, _ = env
    result, _ = run(settings, clock, notify=False)
    assert (result.error_days, result.notifications_queued) == (1, 0)


def test_today_is_provisional_and_never_notified(env):
    settings, clock, ids = env
    with open_store(settings, clock) as store:
        store.add_bookings([NewBooking(ids["Cara"], local(2026, 10, 12, 5, 30), "come", "terminal:x")])
    result, _ = run(settings, clock)
    with open_store(settings, clock) as store:
        today = store.daily_value(ids["Cara"], date(2026, 10, 12))
        assert today.provisional and today.errors == ()
        assert store.daily_value(ids["Cara"], date(2026, 10, 13)) is None  # no future days
    assert result.error_days == 1


def test_yesterday_scope(env):
    settings, clock, _ = env
    result, _ = run(settings, clock, scope="yesterday")
    assert (result.days_calculated, result.employees, result.error_days) == (3, 3, 0)
    with open_store(settings, clock) as store:
        assert store.get_state(task.WATERMARK_KEY) is None  # only new_bookings moves the watermark


def test_range_scope_skips_closed_months(env):
    settings, clock, ids = env
    with open_store(settings, clock) as store:
        store.close_through(2026, 9)
    result, _ = run(settings, clock, scope="range", **{"from": "2026-09-28", "to": "2026-10-09"})
    assert result.skipped_closed == 3 * 3  # 28..30 September for three employees
    assert result.days_calculated == 9 * 3
    assert result.error_days == 1


def test_inactive_employee_days_are_left_out(env):
    settings, clock, ids = env
    with open_store(settings, clock) as store:
        store.upsert_employee(Employee("1004", "Dan", "Left", exit_date=date(2026, 10, 5), week_plan="STD"))
    result, _ = run(settings, clock, scope="range", **{"from": "2026-10-01", "to": "2026-10-09"})
    assert result.days_calculated == 9 * 3 + 5


def test_failed_days_fail_the_task_and_keep_the_watermark(env, monkeypatch):
    settings, clock, _ = env
    from zmi_reconciler.tna import service

    real = service.recalculate_days

    def refusing(store, days, today):
        counts = real(store, days, today)
        counts.failed.append("1001 2026-10-09: plan is inconsistent")
        return counts

    monkeypatch.setattr(service, "recalculate_days", refusing)
    with pytest.raises(TaskFailed, match="could not be calculated") as info:
        run(settings, clock)
    assert info.value.result.days_failed == 1
    with open_store(settings, clock) as store:
        assert store.get_state(task.WATERMARK_KEY) is None
    monkeypatch.setattr(service, "recalculate_days", real)
    result, _ = run(settings, clock)
    assert result.days_changed == 2  # the same changes again, since the failed run did not move the mark


def test_cancelled_run_keeps_the_watermark(env):
    settings, clock, _ = env
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(TaskCancelled):
        run(settings, clock, cancel=cancel)
    with open_store(settings, clock) as store:
        assert store.get_state(task.WATERMARK_KEY) is None
        assert store.daily_values(date(2026, 10, 1), date(2026, 10, 31)) == []


@pytest.mark.parametrize("params, message", [
    ({"scope": "range"}, "needs 'from' and 'to'"),
    ({"scope": "range", "from": "2026-10-09", "to": "2026-10-01"}, "must not be after"),
    ({"scope": "yesterday", "from": "2026-10-01"}, "only allowed with scope 'range'"),
])
def test_params_validation(params, message):
    with pytest.raises(ValueError, match=message):
        task.Params.model_validate(params)
