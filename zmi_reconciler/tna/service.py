"""Orchestration: load from the :class:`~.store.Store`, evaluate with the pure calculation
(:mod:`.calc_day`, :mod:`.calc_month`), save back. The ``calculate_days`` / ``calculate_months`` tasks are
thin wrappers around :func:`recalculate_days` and :func:`recalculate_months`.

Rules applied here (ZMI manual, SPEC section 7):

- a day is *final* when it lies before ``today`` (the local date of the run); before that its value is
  provisional and carries no booking errors;
- a day is evaluated with its neighbours' bookings, so a shift across midnight is split by the day change
  rule (:func:`~.calc_day.day_change_context`); changing a day's bookings therefore also recalculates the
  day before and the day after;
- closed months are never recalculated: their days and months are skipped and counted;
- a month's flextime start is the previous month's carry (the employee's ``flextime_initial`` when no
  previous month was calculated); recalculating a month updates the start and carry of the later,
  already calculated, open months of that employee (their sums stay as they are).

Bookings are converted to local minutes of day in the store's zone (seconds dropped). On the day DST ends
the hour 02:00-03:00 occurs twice; bookings keep their instant order, their minutes are wall-clock minutes.
"""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta
from typing import Callable, Iterable
from zoneinfo import ZoneInfo

from zmi_reconciler.tna import calc_day, calc_month
from zmi_reconciler.tna.models import Booking, DailyValue, DayPlan, MonthlyValue
from zmi_reconciler.tna.store import Employee, Store, parse_utc

ONE_DAY = timedelta(days=1)
#: Above this many days one range query beats the per-day join.
_RANGE_QUERY_DAYS = 2000


@dataclass
class DayCounts:
    """Result of :func:`recalculate_days`. ``error_days``: final days with at least one error;
    ``errors``: those daily values (for notifications); ``failed``: ``"employee date: message"`` for days
    the calculation refused (inconsistent data), which keep their old value."""

    days_calculated: int = 0
    employees: int = 0
    error_days: int = 0
    skipped_closed: int = 0
    skipped_inactive: int = 0
    errors: list[DailyValue] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)


@dataclass
class MonthCounts:
    """Result of :func:`recalculate_months`: months written, closed months skipped, later open months
    whose flextime start/carry were carried forward, the values written."""

    employees: int = 0
    months_calculated: int = 0
    skipped_closed: int = 0
    carried_forward: int = 0
    days: DayCounts = field(default_factory=DayCounts)
    values: list[MonthlyValue] = field(default_factory=list)


class _Context:
    """Plans, holidays and employees loaded once per recalculation."""

    def __init__(self, store: Store, start: date, end: date) -> None:
        self.employees: dict[int, Employee] = {e.id: e for e in store.employees() if e.id is not None}
        self.week_plans = store.week_plans()
        self.day_plans = store.day_plans()
        self.holidays = {d: h.category for d, h in store.holidays_between(start - ONE_DAY, end + ONE_DAY).items()}

    def plan_for(self, employee: Employee) -> Callable[[date], DayPlan | None]:
        """The employee's day plan of a date (None: free day, no week plan, or an unknown code)."""
        week = self.week_plans.get(employee.week_plan) if employee.week_plan else None
        by_weekday = tuple(self.day_plans.get(code) if code else None for code in week.days) if week else (None,) * 7

        def plan(day: date) -> DayPlan | None:
            return by_weekday[day.weekday()]

        return plan

    def holiday_for(self, day: date) -> int | None:
        return self.holidays.get(day)


class _LocalMinutes:
    """UTC instant text + its local date -> local minute of day in ``zone``. The UTC offset is looked up
    once per local date and reused when the date has no DST transition (same offset at both midnights);
    on transition days every booking is converted on its own. So 90,000 bookings need few datetimes."""

    def __init__(self, zone: ZoneInfo) -> None:
        self.zone = zone
        self.offsets: dict[str, int | None] = {}

    def _offset_at_midnight(self, day: date) -> timedelta | None:
        return datetime.combine(day, time(0), tzinfo=self.zone).utcoffset()

    def __call__(self, day_text: str, at: str) -> int:
        if day_text not in self.offsets:
            day = date.fromisoformat(day_text)
            here, there = self._offset_at_midnight(day), self._offset_at_midnight(day + ONE_DAY)
            self.offsets[day_text] = int(here.total_seconds() // 60) if here is not None and here == there else None
        offset = self.offsets[day_text]
        if offset is None:
            local = parse_utc(at).astimezone(self.zone)
            return local.hour * 60 + local.minute
        return (int(at[11:13]) * 60 + int(at[14:16]) + offset) % 1440


def recalculate_days(store: Store, days: Iterable[tuple[int, date]], today: date) -> DayCounts:
    """Recalculate the daily values of ``(employee_id, local date)`` pairs and save them in one transaction.

    ``today``: the run's local date (days before it are final). Days in closed months are skipped
    (``skipped_closed``), as are days outside the employee's entry..exit dates (``skipped_inactive``) and
    unknown employee ids. Callers that track changed days (:meth:`Store.dirty_days_since`) should pass
    :func:`with_neighbours` of them, since a shift across midnight links a day to the next.
    Returns :class:`DayCounts`; raises only for store failures.
    """
    counts = DayCounts()
    wanted = sorted(set(days))
    if not wanted:
        return counts
    ctx = _Context(store, min(d for _, d in wanted), max(d for _, d in wanted))
    per_employee: dict[int, list[date]] = defaultdict(list)
    for emp_id, day in wanted:
        employee = ctx.employees.get(emp_id)
        if employee is None:
            continue
        if employee.is_closed(day):
            counts.skipped_closed += 1
        elif not employee.active_between(day, day):
            counts.skipped_inactive += 1
        else:
            per_employee[emp_id].append(day)
    if not per_employee:
        return counts
    bookings = _load_bookings(store, per_employee)
    values: list[DailyValue] = []
    for emp_id, emp_days in per_employee.items():
        employee = ctx.employees[emp_id]
        by_day = bookings.get(emp_id, {})
        plan_for = ctx.plan_for(employee)
        try:
            computed = calc_day.calculate_days(emp_id, emp_days, by_day, plan_for, ctx.holiday_for, today)
        except ValueError:  # find the bad day; the others are still calculated
            computed = []
            for day in emp_days:
                try:
                    computed += calc_day.calculate_days(emp_id, [day], by_day, plan_for, ctx.holiday_for, today)
                except ValueError as exc:
                    counts.failed.append(f"{employee.personnel_number} {day}: {exc}")
        values += computed
        counts.errors += [v for v in computed if v.errors]
    store.save_daily_values(values)
    counts.days_calculated = len(values)
    counts.employees = len({v.employee_id for v in values})
    counts.error_days = len(counts.errors)
    return counts


def _load_bookings(store: Store, per_employee: dict[int, list[date]]) -> dict[int, dict[date, list[Booking]]]:
    """The calculation's bookings of the wanted days and their neighbours, per employee and local date."""
    needed = {(e, d + k * ONE_DAY) for e, ds in per_employee.items() for d in ds for k in (-1, 0, 1)}
    if len(needed) > _RANGE_QUERY_DAYS:
        rows = store.calc_rows_between(min(d for _, d in needed), max(d for _, d in needed))
    else:
        rows = store.calc_rows_on_days(needed)
    minute_of = _LocalMinutes(store.zone)
    dates: dict[str, date] = {}
    result: dict[int, dict[date, list[Booking]]] = {}
    for emp, day_text, at, direction in rows:
        per_day = result.get(emp)
        if per_day is None:
            if emp not in per_employee:
                continue
            per_day = result[emp] = {}
        day = dates.get(day_text)
        if day is None:
            day = dates[day_text] = date.fromisoformat(day_text)
        per_day.setdefault(day, []).append(Booking(minute_of(day_text, at), direction))  # type: ignore[arg-type]
    return result


def with_neighbours(days: Iterable[tuple[int, date]]) -> set[tuple[int, date]]:
    """``days`` plus the day before and after each: the days whose values a booking change can affect
    (auto-complete at midnight links a come day to the go day)."""
    return {(e, d + k * ONE_DAY) for e, d in days for k in (-1, 0, 1)}


def active_employee_days(store: Store, day: date) -> list[tuple[int, date]]:
    """``(employee_id, day)`` for every employee employed on ``day`` (for "yesterday for all")."""
    return [(e.id, day) for e in store.active_employees(day, day) if e.id is not None]


def month_bounds(year: int, month: int) -> tuple[date, date]:
    """First and last local date of a month."""
    first = date(year, month, 1)
    nxt = date(year + (month == 12), month % 12 + 1, 1)
    return first, nxt - ONE_DAY


def recalculate_months(store: Store, year: int, month: int, through: date, today: date,
                       employee_ids: Iterable[int] | None = None) -> MonthCounts:
    """Recalculate ``year-month`` for the employees (default: all employed during the month): first the
    month's daily values from its first day through ``through`` (inclusive, clipped to the month; e.g.
    yesterday or the month end), then the monthly values (sums, flextime start = previous month's carry,
    credit rule of the employee). Closed months are skipped (``skipped_closed``). Later open months that were
    calculated before get their flextime start and carry carried forward. Returns :class:`MonthCounts`.
    """
    first, last = month_bounds(year, month)
    end = min(through, last)
    if employee_ids is None:
        employees = store.active_employees(first, last)
    else:
        employees = [store.employee(e) for e in employee_ids]
    counts = MonthCounts()
    open_employees = []
    for employee in employees:
        if employee.is_closed(first):
            counts.skipped_closed += 1
        else:
            open_employees.append(employee)
    if not open_employees:
        return counts
    with store.transaction():
        days = [(e.id, first + k * ONE_DAY) for e in open_employees for k in range((end - first).days + 1)]
        counts.days = recalculate_days(store, days, today) if end >= first else DayCounts()
        daily: dict[int, list[DailyValue]] = defaultdict(list)
        for value in store.daily_values(first, end, [e.id for e in open_employees]):
            daily[int(value.employee_id)].append(value)
        prev_first = month_bounds(*((year - 1, 12) if month == 1 else (year, month - 1)))[0]
        values = []
        for employee in open_employees:
            assert employee.id is not None
            previous = store.monthly_value(employee.id, prev_first.year, prev_first.month)
            start = previous.flextime_carry if previous is not None else employee.flextime_initial
            values.append(calc_month.evaluate_month(employee.id, year, month, daily[employee.id], start,
                                                    employee.credit_rule))
        store.save_monthly_values(values)
        for value, employee in zip(values, open_employees):
            counts.carried_forward += _carry_forward(store, value, employee)
    counts.employees = len(values)
    counts.months_calculated = len(values)
    counts.values = values
    return counts


def recalculate_month(store: Store, employee_id: int, year: int, month: int, through: date,
                      today: date) -> MonthlyValue | None:
    """One employee's month (see :func:`recalculate_months`); None when the month is closed.
    Raises :class:`~.store.NotFoundError` for an unknown employee."""
    counts = recalculate_months(store, year, month, through, today, [employee_id])
    return counts.values[0] if counts.values else None


def _carry_forward(store: Store, value: MonthlyValue, employee: Employee) -> int:
    """Update flextime start/carry of the employee's later stored open months; returns how many changed."""
    changed = 0
    carry = value.flextime_carry
    year, month = value.year, value.month
    while True:
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
        later = store.monthly_value(employee.id, year, month)  # type: ignore[arg-type]
        if later is None or employee.is_closed(date(year, month, 1)):
            return changed
        if later.flextime_start == carry:
            return changed
        new_carry, forfeited = calc_month.credit_change(carry, later.flextime_change, employee.credit_rule)
        store.save_monthly_values([dataclasses.replace(later, flextime_start=carry, flextime_carry=new_carry,
                                                       forfeited=forfeited, closed=False)])
        changed += 1
        carry = new_carry
