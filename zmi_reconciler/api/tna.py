"""The API's view of the tna store: employees, daily and monthly values, unassigned bookings (read), month
closing (write).

:class:`TnaService` opens the store for each call and closes it again (``open_store``, default
``Store.open(settings.database_path, zone=settings.zone)``): SQLite connections then never cross threads,
and the nightly tasks' writes (their own connections, WAL) are visible to the next request. Dates are local
dates in the server's zone (``settings.default_timezone``); "today" comes from the app's clock.
Errors: :class:`~.problems.NotFound` for unknown personnel numbers, :class:`~.problems.InvalidRequest` (422)
for dates and months that do not parse or ranges that are too long.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING

from zmi_reconciler.api.models import (ClosingResult, DayBooking, DayOverview, DayValue, EmployeeClosing,
                                       EmployeeDays, EmployeeInfo, EmployeeList, EmployeeMonths, MonthValue,
                                       UnassignedBookings, UnassignedItem, UnassignedPin)
from zmi_reconciler.api.problems import FieldError, InvalidRequest, NotFound
from zmi_reconciler.config import Settings
from zmi_reconciler.tasks.base import utc_now

if TYPE_CHECKING:  # the store (sqlite3, migrations) is imported on the first request, not before /readyz
    from zmi_reconciler.tna.models import DailyValue
    from zmi_reconciler.tna.store import Employee, StoredBooking, Store

#: Longest range of ``GET /employees/{n}/daily-values`` in days (inclusive; a leap year).
MAX_RANGE_DAYS = 366


def invalid(param: str, message: str) -> InvalidRequest:
    """A 422 naming one query parameter or body field."""
    return InvalidRequest(f"{param}: {message}", [FieldError(path=param, line=0, column=0, code="E400",
                                                             message=message)])


def parse_date(param: str, text: str | None) -> date | None:
    """``YYYY-MM-DD`` -> date (None stays None); 422 otherwise."""
    if text is None:
        return None
    try:
        if len(text) != 10:
            raise ValueError
        return date.fromisoformat(text)
    except ValueError:
        raise invalid(param, f"{text!r} is not a date (YYYY-MM-DD)") from None


def parse_month(param: str, text: str) -> tuple[int, int]:
    """``YYYY-MM`` -> (year, month); 422 otherwise."""
    year, sep, month = text.partition("-")
    if not (sep and len(year) == 4 and year.isdigit() and len(month) == 2 and month.isdigit()
            and 1 <= int(month) <= 12 and int(year) >= 1):
        raise invalid(param, f"{text!r} is not a month (YYYY-MM)")
    return int(year), int(month)


def _natural(ident: str) -> tuple[int, int, str]:
    """Sort key: numeric identifiers by value (``77`` before ``1007``), then the others as text."""
    return (0, int(ident), "") if ident.isdigit() else (1, 0, ident)


class TnaService:
    """Employees, daily values, monthly values and month closing for the API (see the module docstring)."""

    def __init__(self, settings: Settings, open_store: Callable[[], Store] | None = None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self.settings = settings
        self.zone = settings.zone
        self.clock = clock
        self._open = open_store or self._open_default

    def _open_default(self) -> "Store":
        from zmi_reconciler.tna.store import Store

        return Store.open(self.settings.database_path, zone=self.zone)

    @contextmanager
    def store(self) -> Iterator[Store]:
        """The store for one call, closed afterwards."""
        store = self._open()
        try:
            yield store
        finally:
            store.close()

    def today(self) -> date:
        """The local date now (server zone)."""
        return self.clock().astimezone(self.zone).date()

    # reads -------------------------------------------------------------------------------------------------

    def employees(self) -> EmployeeList:
        today = self.today()
        with self.store() as store:
            return EmployeeList(items=[self._employee(e, today) for e in store.employees()])

    def employee_days(self, personnel_number: str, from_text: str | None, to_text: str | None) -> EmployeeDays:
        """Daily values with bookings of ``from..to`` (inclusive). Default ``to``: today; default ``from``:
        the first of ``to``'s month. 422 when ``from`` > ``to`` or the range exceeds :data:`MAX_RANGE_DAYS`."""
        end = parse_date("to", to_text) or self.today()
        start = parse_date("from", from_text) or end.replace(day=1)
        if start > end:
            raise invalid("from", f"{start} is after to={end}")
        if (end - start).days + 1 > MAX_RANGE_DAYS:
            raise invalid("to", f"the range {start}..{end} is longer than {MAX_RANGE_DAYS} days")
        with self.store() as store:
            employee = self._find(store, personnel_number)
            values = store.daily_values(start, end, [employee.id])  # type: ignore[list-item]
            items = self._day_values(store, values, {employee.id: employee})  # type: ignore[dict-item]
        return EmployeeDays(personnel_number=employee.personnel_number, from_date=start, to_date=end, items=items)

    def day_overview(self, day_text: str | None, errors_only: bool) -> DayOverview:
        """Every employee's daily value of one date (default: yesterday, the last final day)."""
        day = parse_date("date", day_text) or self.today() - timedelta(days=1)
        with self.store() as store:
            employees = {e.id: e for e in store.employees()}
            values = [v for v in store.daily_values(day, day) if v.errors or not errors_only]
            items = self._day_values(store, values, employees)  # type: ignore[arg-type]
        items.sort(key=lambda item: item.personnel_number)
        return DayOverview(date=day, errors_only=errors_only, items=items)

    def employee_months(self, personnel_number: str, year: int | None) -> EmployeeMonths:
        """The calculated monthly values of ``year`` (default: this year), January first."""
        year = year or self.today().year
        with self.store() as store:
            employee = self._find(store, personnel_number)
            found = [store.monthly_value(employee.id, year, month) for month in range(1, 13)]  # type: ignore[arg-type]
        items = [MonthValue(**{k: getattr(v, k) for k in MonthValue.model_fields}) for v in found if v is not None]
        return EmployeeMonths(personnel_number=employee.personnel_number, year=year, items=items)

    def unassigned_bookings(self, pin: str | None = None) -> UnassignedBookings:
        """Bookings of PINs / personnel numbers that match no employee (kept by the importer, attached when
        the employee is added), with a per-PIN summary. Order: PINs before personnel numbers, numeric ones
        by value (77 before 1007), then by time. ``pin``: only this PIN or personnel number (a PIN is
        compared like the importer does: leading zeros of a numeric PIN do not count)."""
        with self.store() as store:
            rows = store.unassigned()
        if pin is not None:
            from zmi_reconciler.tna.store import normalize_pin

            wanted = pin.strip()
            rows = [b for b in rows if b.ident == (normalize_pin(wanted) if b.ident_kind == "pin" else wanted)]
        rows.sort(key=lambda b: (b.ident_kind != "pin", _natural(b.ident), b.at))
        items = [UnassignedItem(pin=b.ident, kind=b.ident_kind, local_time=b.at.astimezone(self.zone),  # type: ignore[arg-type]
                                date=b.local_date or b.at.astimezone(self.zone).date(),
                                direction=b.direction, source=b.source)  # type: ignore[arg-type]
                 for b in rows]
        summary: dict[tuple[str, str], UnassignedPin] = {}
        for item in items:
            entry = summary.get((item.kind, item.pin))
            if entry is None:
                summary[(item.kind, item.pin)] = UnassignedPin(pin=item.pin, kind=item.kind, bookings=1,
                                                               first=item.local_time, last=item.local_time)
            else:
                entry.bookings += 1
                entry.first = min(entry.first, item.local_time)
                entry.last = max(entry.last, item.local_time)
        return UnassignedBookings(total=len(items), summary=list(summary.values()), items=items)

    # closing -----------------------------------------------------------------------------------------------

    def close(self, through: str, numbers: list[str] | None) -> ClosingResult:
        """Close every month up to and including ``through`` (YYYY-MM) for the employees (ZMI month closing)."""
        year, month = parse_month("through", through)
        return self._closing(numbers, lambda store, ids: store.close_through(year, month, ids))

    def reopen(self, first: str, numbers: list[str] | None) -> ClosingResult:
        """Reopen ``first`` (YYYY-MM) and every later month for the employees."""
        year, month = parse_month("from", first)
        return self._closing(numbers, lambda store, ids: store.reopen_from(year, month, ids))

    def _closing(self, numbers: list[str] | None, change: Callable[[Store, list[int] | None], int]) -> ClosingResult:
        with self.store() as store:
            if numbers is None:
                ids = None
            else:
                ids = [self._find(store, n).id for n in dict.fromkeys(numbers)]  # 404 before any change
            moved = change(store, ids)  # type: ignore[arg-type]
            wanted = None if ids is None else set(ids)
            items = [EmployeeClosing(personnel_number=e.personnel_number, closed_through=e.closed_through)
                     for e in store.employees() if wanted is None or e.id in wanted]
        return ClosingResult(moved=moved, items=items)

    # helpers -----------------------------------------------------------------------------------------------

    @staticmethod
    def _find(store: Store, personnel_number: str) -> Employee:
        employee = store.employee_by_number(personnel_number)
        if employee is None:
            raise NotFound(f"no employee with personnel number {personnel_number!r}")
        return employee

    @staticmethod
    def _employee(e: Employee, today: date) -> EmployeeInfo:
        return EmployeeInfo(personnel_number=e.personnel_number, name=e.name, week_plan=e.week_plan,
                            entry_date=e.entry_date, exit_date=e.exit_date, active=e.active_between(today, today),
                            closed_through=e.closed_through)

    def _day_values(self, store: Store, values: list[DailyValue], employees: dict[int, Employee]) -> list[DayValue]:
        """API daily values with each day's bookings (one indexed query for all days)."""
        bookings = store.bookings_on_days((int(v.employee_id), v.date) for v in values)
        items = []
        for v in values:
            employee = employees.get(int(v.employee_id))
            if employee is None:  # deleted between the two reads
                continue
            items.append(DayValue(
                personnel_number=employee.personnel_number, name=employee.name, date=v.date, gross=v.gross,
                breaks=v.breaks, net=v.net, target=v.target, difference=v.difference, overtime=v.overtime,
                undertime=v.undertime, capped=v.capped, errors=list(v.errors), provisional=v.provisional,
                holiday_category=v.holiday_category,
                bookings=[self._booking(b) for b in bookings.get((int(v.employee_id), v.date), [])]))
        return items

    def _booking(self, b: StoredBooking) -> DayBooking:
        return DayBooking(time=f"{b.at.astimezone(self.zone):%H:%M}", direction=b.direction,  # type: ignore[arg-type]
                          source=b.source)
