"""tna service: store + pure calculation (days, months, day change, closing, carry forward)."""

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from zmi_reconciler.tna import service
from zmi_reconciler.tna.importer import import_text
from zmi_reconciler.tna.models import ARBZG_BREAKS, DayPlan, MonthlyValue, WeekPlan
from zmi_reconciler.tna.store import ClosedMonthError, Employee, NewBooking, Store, local_to_utc

BERLIN = ZoneInfo("Europe/Berlin")


def at(y, m, d, hh, mm=0):
    return local_to_utc(datetime(y, m, d, hh, mm), BERLIN)


@pytest.fixture
def store():
    with Store.open(":memory:", zone=BERLIN, clock=lambda: datetime(2026, 4, 1, tzinfo=timezone.utc)) as s:
        s.upsert_day_plan(DayPlan("STD", target_minutes=480, breaks=ARBZG_BREAKS))
        s.upsert_day_plan(DayPlan("FRI", target_minutes=360, breaks=ARBZG_BREAKS))
        s.upsert_day_plan(DayPlan("NIGHT", target_minutes=480, day_change="auto_complete_midnight"))
        s.upsert_week_plan(WeekPlan("W", mon="STD", tue="STD", wed="STD", thu="STD", fri="FRI"))
        s.upsert_week_plan(WeekPlan("WN", *["NIGHT"] * 5))
        yield s


def employee(store, number="1", **kw):
    return store.upsert_employee(Employee(number, pin=number, week_plan=kw.pop("week_plan", "W"), **kw))[0]


def test_month_through_a_date_with_carry_in(store):
    emp = employee(store, flextime_initial=120)
    store.add_bookings([NewBooking(emp, at(2026, 3, 2, 8)), NewBooking(emp, at(2026, 3, 2, 16, 30)),
                        NewBooking(emp, at(2026, 3, 3, 7)), NewBooking(emp, at(2026, 3, 3, 16, 30)),
                        NewBooking(emp, at(2026, 3, 4, 8)), NewBooking(emp, at(2026, 3, 4, 12)),
                        NewBooking(emp, at(2026, 3, 4, 12, 30))])
    mv = service.recalculate_month(store, emp, 2026, 3, through=date(2026, 3, 4), today=date(2026, 3, 5))
    # Sun 1 free; Mon 510/30/480 +-0; Tue 570/45/525 +45; Wed 240 net, MISSING_GO, -240
    assert (mv.gross, mv.breaks, mv.net, mv.target) == (1320, 75, 1245, 1440)
    assert (mv.overtime, mv.undertime, mv.flextime_start, mv.flextime_change, mv.flextime_carry) == (
        45, 240, 120, -195, -75)
    assert mv.error_days == 1 and store.monthly_value(emp, 2026, 3) == mv
    wed = store.daily_value(emp, date(2026, 3, 4))
    assert (wed.net, wed.errors, wed.provisional) == (240, ("MISSING_GO",), False)


def test_today_is_provisional_and_final_days_report_errors(store):
    emp = employee(store)
    store.add_bookings([NewBooking(emp, at(2026, 3, 4, 8))])
    counts = service.recalculate_days(store, [(emp, date(2026, 3, 4))], today=date(2026, 3, 4))
    assert (counts.days_calculated, counts.error_days) == (1, 0)
    assert store.daily_value(emp, date(2026, 3, 4)).provisional
    counts = service.recalculate_days(store, [(emp, date(2026, 3, 4))], today=date(2026, 3, 5))
    assert counts.error_days == 1 and counts.errors[0].errors == ("MISSING_GO",)


def test_night_shift_imported_with_alternating_directions_is_split_at_midnight(store):
    emp = employee(store, "7", week_plan="WN")
    report = import_text(store, "7\t2026-03-24 07:00:00\t1\t0\t0\n7\t2026-03-23 20:00:00\t1\t0\t0\n", "n.dat")
    assert report.new == 2
    days, mark = store.dirty_days_since(0)
    counts = service.recalculate_days(store, service.with_neighbours(days), today=date(2026, 3, 30))
    assert counts.error_days == 0
    d23, d24 = store.daily_value(emp, date(2026, 3, 23)), store.daily_value(emp, date(2026, 3, 24))
    assert (d23.gross, d24.gross) == (240, 420)
    assert mark > 0 and store.dirty_days_since(mark) == ([], mark)


def test_holidays_credit_per_category(store):
    emp = employee(store)
    store.replace_holidays("DE-BY", [(date(2026, 4, 3), "Karfreitag", 1), (date(2026, 12, 24), "Heiligabend", 2)],
                           [2026])
    service.recalculate_days(store, [(emp, date(2026, 4, 3)), (emp, date(2026, 12, 24))], today=date(2027, 1, 1))
    fri, thu = store.daily_value(emp, date(2026, 4, 3)), store.daily_value(emp, date(2026, 12, 24))
    assert (fri.net, fri.difference, fri.holiday_category) == (360, 0, 1)  # Friday plan: 360
    assert (thu.net, thu.difference) == (240, -240)


def test_inactive_and_unknown_employees_are_skipped(store):
    emp = employee(store, entry_date=date(2026, 3, 10), exit_date=date(2026, 3, 20))
    counts = service.recalculate_days(store, [(emp, date(2026, 3, 9)), (emp, date(2026, 3, 10)),
                                              (emp, date(2026, 3, 21)), (999, date(2026, 3, 10))],
                                      today=date(2026, 4, 1))
    assert (counts.days_calculated, counts.skipped_inactive) == (1, 2)
    assert service.active_employee_days(store, date(2026, 3, 9)) == []
    assert service.active_employee_days(store, date(2026, 3, 10)) == [(emp, date(2026, 3, 10))]


def test_closing_skips_recalculation_and_reopening_carries_february_into_march(store):
    emp = employee(store)
    [feb10] = store.add_bookings([NewBooking(emp, at(2026, 2, 10, 8))])
    store.save_monthly_values([MonthlyValue(emp, 2026, 2, flextime_change=720, flextime_carry=720)])
    store.close_through(2026, 3)
    assert [store.is_closed(emp, date(2026, m, 1)) for m in (1, 2, 3)] == [True, True, True]

    counts = service.recalculate_months(store, 2026, 3, through=date(2026, 3, 31), today=date(2026, 4, 1))
    assert (counts.months_calculated, counts.skipped_closed) == (0, 1)
    assert service.recalculate_month(store, emp, 2026, 3, date(2026, 3, 31), date(2026, 4, 1)) is None
    days = service.recalculate_days(store, [(emp, date(2026, 3, 2))], today=date(2026, 4, 1))
    assert (days.days_calculated, days.skipped_closed) == (0, 1)
    with pytest.raises(ClosedMonthError):
        store.edit_booking(feb10, at=at(2026, 2, 10, 9))

    store.reopen_from(2026, 2)
    assert [store.is_closed(emp, date(2026, m, 1)) for m in (1, 2, 3)] == [True, False, False]
    march = service.recalculate_month(store, emp, 2026, 3, date(2026, 3, 31), date(2026, 4, 1))
    assert march.flextime_start == 720
    assert march.target == 22 * 480 - 4 * 120  # 18 Mon-Thu at 480 + 4 Fridays at 360 (deduct target)
    assert march.flextime_carry == 720 - march.target


def test_recalculating_a_month_carries_forward_into_later_open_months(store):
    emp = employee(store)
    store.add_bookings([NewBooking(emp, at(2026, 2, 2, 8)), NewBooking(emp, at(2026, 2, 2, 18))])
    service.recalculate_month(store, emp, 2026, 2, date(2026, 2, 28), date(2026, 4, 1))
    march = service.recalculate_month(store, emp, 2026, 3, date(2026, 3, 31), date(2026, 4, 1))
    feb_before = store.monthly_value(emp, 2026, 2)
    assert march.flextime_start == feb_before.flextime_carry

    [b] = [b.id for b in store.bookings_between(date(2026, 2, 2), date(2026, 2, 2))[emp] if b.direction == "go"]
    store.delete_booking(b)  # Feb 2 loses its go: -480 instead of +75 (600 presence - 45 break - 480)
    counts = service.recalculate_months(store, 2026, 2, date(2026, 2, 28), date(2026, 4, 1), [emp])
    assert counts.carried_forward == 1
    feb = store.monthly_value(emp, 2026, 2)
    assert feb.flextime_carry == feb_before.flextime_carry - 555
    later = store.monthly_value(emp, 2026, 3)
    assert later.flextime_start == feb.flextime_carry
    assert later.flextime_carry == feb.flextime_carry + march.flextime_change


def test_local_minutes_on_normal_and_dst_days():
    minute_of = service._LocalMinutes(BERLIN)
    assert minute_of("2026-03-02", "2026-03-02T07:00:00Z") == 8 * 60          # CET
    assert minute_of("2026-07-01", "2026-06-30T22:30:00Z") == 30              # CEST, previous UTC day
    assert minute_of("2026-03-29", "2026-03-29T00:30:00Z") == 90              # before the gap: 01:30 CET
    assert minute_of("2026-03-29", "2026-03-29T01:30:00Z") == 3 * 60 + 30     # after: 03:30 CEST
    assert minute_of("2026-10-25", "2026-10-25T00:30:00Z") == 2 * 60 + 30     # 02:30 CEST
    assert minute_of("2026-10-25", "2026-10-25T01:30:00Z") == 2 * 60 + 30     # 02:30 CET, the second time
    assert minute_of.offsets == {"2026-03-02": 60, "2026-07-01": 120, "2026-03-29": None, "2026-10-25": None}
