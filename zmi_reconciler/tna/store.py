"""The tna store: SQLite (WAL) behind one class; every SQL statement of the tna domain lives here or in
:mod:`.migrations`, so a PostgreSQL store can follow with the same methods.

Time: instants are aware UTC datetimes in Python and UTC text in the database; every booking also
carries its *local date* in the store's zone (the server's default zone), which is what days, months,
closing and change tracking are keyed by. Durations are integer minutes. Plans and values are the
calculation's own models (:mod:`.models`); employees and bookings have record types defined here.

Concurrency: one :class:`Store` object may be shared by threads (a lock serialises its connection);
several processes may open the same file (WAL, ``busy_timeout``). Writes run in ``BEGIN IMMEDIATE``
transactions (:meth:`Store.transaction`), so a read-then-write (the importer's debounce) is atomic.
"""

from __future__ import annotations

import contextlib
from bisect import bisect_left, insort
import json
import sqlite3
import threading
from dataclasses import dataclass, field, fields
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable, Iterable, Iterator, Mapping, Sequence
from zoneinfo import ZoneInfo

from zmi_reconciler.tna import migrations
from zmi_reconciler.tna.models import BreakRule, CreditRule, DailyValue, DayPlan, MonthlyValue, WeekPlan

BUSY_TIMEOUT_MS = 10_000
DIRECTIONS = ("come", "go")
#: Day change: the longest gap between a come and the next day's first booking that still continues a shift.
MAX_SHIFT_HOURS = 16


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


# --- errors ---------------------------------------------------------------------------------------------


class StoreError(Exception):
    """Base of the store's domain errors (the CLI and API turn them into messages / 409 / 422)."""


class ClosedMonthError(StoreError):
    """A write touches a closed month (bookings of closed months are read-only, ZMI month closing)."""

    def __init__(self, employee_id: int, day: date, closed_through: str) -> None:
        super().__init__(f"employee {employee_id}: {day:%Y-%m} is closed (closed through {closed_through}); "
                         f"bookings of {day.isoformat()} are read-only until the month is reopened")
        self.employee_id = employee_id
        self.day = day


class NotFoundError(StoreError, KeyError):
    """A referenced employee, booking or plan does not exist."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateBookingError(StoreError):
    """A booking of this employee at this instant exists already (the idempotency key)."""


# --- time helpers ---------------------------------------------------------------------------------------


def utc_text(instant: datetime) -> str:
    """Aware datetime -> ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds). Raises ValueError for naive input."""
    if instant.tzinfo is None:
        raise ValueError(f"naive datetime {instant!r}: instants must be timezone-aware")
    return instant.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(text: str) -> datetime:
    """Inverse of :func:`utc_text`: an aware UTC datetime."""
    return datetime.fromisoformat(text)


def local_to_utc(local: datetime, zone: ZoneInfo) -> datetime:
    """A terminal's naive local wall-clock time -> aware UTC instant, deterministically (PEP 495 ``fold=0``).

    - Ambiguous times (DST end, e.g. 02:30 on the last Sunday of October in Europe/Berlin occurs twice):
      the *first* occurrence (summer time) is taken. Terminals do not record which one they meant.
    - Non-existent times (DST start, 02:30 on the last Sunday of March): read with the offset before the
      gap, i.e. shifted forward by the gap length (02:30 -> 03:30 CEST).
    An already aware ``local`` is only converted.
    """
    if local.tzinfo is not None:
        return local.astimezone(timezone.utc)
    return local.replace(tzinfo=zone, fold=0).astimezone(timezone.utc)


def normalize_pin(pin: str) -> str:
    """Terminal PINs as the store compares them: surrounding blanks removed and, for numeric PINs, leading
    zeros dropped (terminals pad PINs differently: ``0042`` and ``42`` are the same person)."""
    pin = pin.strip()
    if pin.isdigit():
        return pin.lstrip("0") or "0"
    return pin


def month_key(year: int, month: int) -> str:
    return f"{year:04d}-{month:02d}"


# --- records --------------------------------------------------------------------------------------------


@dataclass
class Employee:
    """One employee's master data. ``id`` is assigned by the store. ``credit_*`` are the monthly credit
    settings (:class:`~.models.CreditRule`, minutes; :attr:`credit_rule` builds it). ``flextime_initial`` is
    the carry before the first calculated month. ``closed_through`` (``YYYY-MM``) is read-only here; change
    it with :meth:`Store.close_through` / :meth:`Store.reopen_from`."""

    personnel_number: str
    first_name: str = ""
    last_name: str = ""
    pin: str | None = None
    email: str | None = None
    supervisor_email: str | None = None
    entry_date: date | None = None
    exit_date: date | None = None
    week_plan: str | None = None
    credit_type: str = "no_evaluation"
    credit_monthly_cap: int | None = None
    credit_upper_limit: int | None = None
    credit_lower_limit: int | None = None
    credit_threshold: int = 0
    flextime_initial: int = 0
    id: int | None = None
    closed_through: str | None = None

    @property
    def name(self) -> str:
        return f"{self.first_name} {self.last_name}".strip()

    @property
    def credit_rule(self) -> CreditRule:
        """The employee's :class:`~.models.CreditRule` (raises ValueError for inconsistent settings)."""
        return CreditRule(kind=self.credit_type, monthly_cap=self.credit_monthly_cap,  # type: ignore[arg-type]
                          upper_limit=self.credit_upper_limit, lower_limit=self.credit_lower_limit,
                          threshold=self.credit_threshold)

    def active_between(self, start: date, end: date) -> bool:
        """True when the employment overlaps ``start..end`` (inclusive local dates)."""
        return (self.entry_date is None or self.entry_date <= end) and (
            self.exit_date is None or self.exit_date >= start)

    def is_closed(self, day: date) -> bool:
        """True when ``day``'s month is closed for this employee."""
        return self.closed_through is not None and f"{day:%Y-%m}" <= self.closed_through


_EMPLOYEE_COLUMNS = ("personnel_number", "first_name", "last_name", "pin", "email", "supervisor_email",
                     "entry_date", "exit_date", "week_plan", "credit_type", "credit_monthly_cap",
                     "credit_upper_limit", "credit_lower_limit", "credit_threshold", "flextime_initial")


@dataclass(frozen=True)
class Holiday:
    day: date
    name: str
    category: int  # 1 full day, 2 half day (ZMI holiday categories)
    region: str


@dataclass(frozen=True)
class StoredBooking:
    """A booking as stored. ``at`` is the effective instant (edited if edited, else original), aware UTC;
    ``local_date`` is ``at``'s date in the store zone. ``direction``: ``come`` | ``go``."""

    id: int
    employee_id: int
    at: datetime
    original_at: datetime
    edited_at: datetime | None
    local_date: date
    direction: str
    direction_source: str
    source: str
    deleted: bool = False


@dataclass(frozen=True)
class NewBooking:
    """A booking to insert. ``direction`` None means: alternate per employee and day."""

    employee_id: int
    at: datetime  # aware
    direction: str | None = None
    source: str = "manual"


@dataclass(frozen=True)
class UnassignedBooking:
    """A terminal booking whose PIN / personnel number matched no employee (kept, reported, attached later)."""

    ident_kind: str  # 'pin' | 'personnel_number'
    ident: str
    at: datetime  # aware UTC
    direction: str | None
    source: str
    local_date: date | None = None
    id: int | None = None


@dataclass(frozen=True)
class OutboxMessage:
    id: int
    recipient: str
    subject: str
    body: str
    created_at: datetime
    attempts: int
    last_error: str | None
    sent_at: datetime | None
    next_attempt_at: datetime
    dedup_key: str | None


@dataclass
class AttachResult:
    """What :meth:`Store.upsert_employee` did with unassigned bookings of the employee's PIN/number."""

    attached: int = 0
    collapsed: int = 0
    duplicates: int = 0
    kept_closed: int = 0


# --- the store ------------------------------------------------------------------------------------------


class Store:
    """The tna store. Open with :meth:`open`; use as a context manager or call :meth:`close`.

    ``zone`` is the zone of local dates (the server's default zone); ``clock`` returns aware UTC "now"
    for created/updated stamps (tests inject one).
    """

    def __init__(self, conn: sqlite3.Connection, zone: ZoneInfo, path: Path | None,
                 clock: Callable[[], datetime] = utc_now) -> None:
        self._conn = conn
        self.zone = zone
        self.path = path
        self.clock = clock
        self._lock = threading.RLock()
        self._depth = 0

    # lifecycle ------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, path: str | Path, zone: ZoneInfo | None = None,
             clock: Callable[[], datetime] = utc_now) -> "Store":
        """Open (create) the store at ``path`` (``":memory:"`` for a throw-away store), switch on WAL,
        ``busy_timeout`` and foreign keys, and migrate the schema to the latest version in place.

        ``zone`` defaults to Europe/Berlin. Raises :class:`~.migrations.SchemaTooNewError` for a database
        written by a newer version, ``sqlite3.DatabaseError`` for a file that is not a database.
        """
        zone = zone or ZoneInfo("Europe/Berlin")
        memory = str(path) == ":memory:"
        if not memory:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                               timeout=BUSY_TIMEOUT_MS / 1000)
        try:
            conn.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if not memory:
                conn.execute("PRAGMA journal_mode = WAL")
            conn.execute("PRAGMA synchronous = NORMAL")
            conn.execute("PRAGMA foreign_keys = ON")
            migrations.migrate(conn)
        except BaseException:
            conn.close()
            raise
        return cls(conn, zone, None if memory else Path(path), clock)

    def close(self) -> None:
        """Close the connection (idempotent)."""
        with self._lock:
            self._conn.close()  # later calls raise sqlite3.ProgrammingError (closed database)

    def __enter__(self) -> "Store":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def schema_version(self) -> int:
        with self._lock:
            return migrations.current_version(self._conn)

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection, for tests only (production code goes through the methods of this class)."""
        return self._conn

    @contextlib.contextmanager
    def transaction(self) -> Iterator[None]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT`` (rollback on error). Nested calls join the outer transaction.
        Holds the store's lock, so other threads using this object wait."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._depth = 0
                self._conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._conn.execute("COMMIT")

    def _now(self) -> str:
        return utc_text(self.clock())

    def _local_date(self, instant: datetime) -> date:
        return instant.astimezone(self.zone).date()

    def _query(self, sql: str, params: Sequence[Any] | Mapping[str, Any] = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def table_counts(self) -> dict[str, int]:
        """Rows per user table, ``{table name: row count}`` (tests compare stores with it)."""
        with self._lock:
            return _table_counts(self._conn)

    # master data: plans ---------------------------------------------------------------------------------

    def upsert_day_plan(self, plan: DayPlan) -> None:
        """Insert or replace ``plan`` (by code); its rules are stored as JSON."""
        definition = {f.name: getattr(plan, f.name) for f in fields(plan) if f.name not in ("code", "name")}
        definition["breaks"] = [{f.name: getattr(b, f.name) for f in fields(b)} for b in plan.breaks]
        with self.transaction():
            self._conn.execute(
                "INSERT INTO day_plans (code, name, definition, updated_at) VALUES (?, ?, ?, ?) "
                "ON CONFLICT (code) DO UPDATE SET name = excluded.name, definition = excluded.definition, "
                "updated_at = excluded.updated_at",
                (plan.code, plan.name, json.dumps(definition, sort_keys=True), self._now()))

    def day_plans(self) -> dict[str, DayPlan]:
        """All day plans by code."""
        result = {}
        for code, name, text in self._query("SELECT code, name, definition FROM day_plans"):
            definition = json.loads(text)
            breaks = tuple(BreakRule(**b) for b in definition.pop("breaks", ()))
            result[code] = DayPlan(code=code, name=name, breaks=breaks, **definition)
        return result

    def upsert_week_plan(self, plan: WeekPlan) -> None:
        """Insert or replace ``plan`` (by code). Raises ``sqlite3.IntegrityError`` for an unknown day plan."""
        with self.transaction():
            self._conn.execute(
                "INSERT INTO week_plans (code, name, mon, tue, wed, thu, fri, sat, sun, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (code) DO UPDATE SET name = excluded.name, "
                "mon = excluded.mon, tue = excluded.tue, wed = excluded.wed, thu = excluded.thu, "
                "fri = excluded.fri, sat = excluded.sat, sun = excluded.sun, updated_at = excluded.updated_at",
                (plan.code, plan.name, *plan.days, self._now()))

    def week_plans(self) -> dict[str, WeekPlan]:
        """All week plans by code."""
        return {r[0]: WeekPlan(*r) for r in self._query(
            "SELECT code, name, mon, tue, wed, thu, fri, sat, sun FROM week_plans")}

    # master data: employees -----------------------------------------------------------------------------

    def upsert_employee(self, employee: Employee, *, debounce_seconds: int = 60) -> tuple[int, AttachResult]:
        """Insert or update the employee with ``employee.personnel_number``; returns ``(id, attached)``.

        The PIN is normalised (:func:`normalize_pin`). Unassigned bookings of the employee's PIN or
        personnel number are attached in the same transaction (debounced against the employee's
        bookings; ones in closed months stay unassigned). Raises ``sqlite3.IntegrityError`` when the PIN
        belongs to another employee or the week plan does not exist.
        """
        values = {c: getattr(employee, c) for c in _EMPLOYEE_COLUMNS}
        values["pin"] = normalize_pin(employee.pin) if employee.pin else None
        for key in ("entry_date", "exit_date"):
            values[key] = values[key].isoformat() if values[key] else None
        now = self._now()
        cols = ", ".join(_EMPLOYEE_COLUMNS)
        marks = ", ".join("?" for _ in _EMPLOYEE_COLUMNS)
        updates = ", ".join(f"{c} = excluded.{c}" for c in _EMPLOYEE_COLUMNS[1:])
        with self.transaction():
            self._conn.execute(
                f"INSERT INTO employees ({cols}, created_at, updated_at) VALUES ({marks}, ?, ?) "
                f"ON CONFLICT (personnel_number) DO UPDATE SET {updates}, updated_at = excluded.updated_at",
                (*values.values(), now, now))
            emp_id = self._conn.execute("SELECT id FROM employees WHERE personnel_number = ?",
                                        (employee.personnel_number,)).fetchone()[0]
            attached = self._attach_unassigned(emp_id, values["pin"], employee.personnel_number,
                                               debounce_seconds)
        return emp_id, attached

    def employees(self) -> list[Employee]:
        """All employees, ordered by personnel number."""
        return [self._employee(r) for r in self._query(
            f"SELECT id, {', '.join(_EMPLOYEE_COLUMNS)}, closed_through FROM employees ORDER BY personnel_number")]

    def employee(self, employee_id: int) -> Employee:
        """One employee by id; raises :class:`NotFoundError`."""
        rows = self._query(f"SELECT id, {', '.join(_EMPLOYEE_COLUMNS)}, closed_through FROM employees "
                           "WHERE id = ?", (employee_id,))
        if not rows:
            raise NotFoundError(f"no employee with id {employee_id}")
        return self._employee(rows[0])

    def employee_by_number(self, personnel_number: str) -> Employee | None:
        rows = self._query(f"SELECT id, {', '.join(_EMPLOYEE_COLUMNS)}, closed_through FROM employees "
                           "WHERE personnel_number = ?", (personnel_number,))
        return self._employee(rows[0]) if rows else None

    def active_employees(self, start: date, end: date) -> list[Employee]:
        """Employees whose employment overlaps ``start..end`` (inclusive local dates)."""
        return [e for e in self.employees() if e.active_between(start, end)]

    @staticmethod
    def _employee(row: Sequence[Any]) -> Employee:
        data = dict(zip(("id", *_EMPLOYEE_COLUMNS, "closed_through"), row))
        for key in ("entry_date", "exit_date"):
            data[key] = date.fromisoformat(data[key]) if data[key] else None
        return Employee(**data)

    # holidays -------------------------------------------------------------------------------------------

    def replace_holidays(self, region: str, holidays: Iterable[tuple[date, str, int]],
                         years: Iterable[int]) -> int:
        """Replace the holidays of ``years`` with ``(date, name, category)`` tuples of ``region``; returns
        how many were written. Category 1 = full day, 2 = half day (ZMI)."""
        rows = [(d.isoformat(), n, c, region) for d, n, c in holidays]
        with self.transaction():
            for year in years:
                self._conn.execute("DELETE FROM holidays WHERE date BETWEEN ? AND ?",
                                   (f"{year:04d}-01-01", f"{year:04d}-12-31"))
            self._conn.executemany(
                "INSERT INTO holidays (date, name, category, region) VALUES (?, ?, ?, ?) ON CONFLICT (date) "
                "DO UPDATE SET name = excluded.name, category = excluded.category, region = excluded.region",
                rows)
        return len(rows)

    def holidays_between(self, start: date, end: date) -> dict[date, Holiday]:
        """Holidays in ``start..end`` (inclusive) by date."""
        return {date.fromisoformat(d): Holiday(date.fromisoformat(d), n, c, r) for d, n, c, r in self._query(
            "SELECT date, name, category, region FROM holidays WHERE date BETWEEN ? AND ?",
            (start.isoformat(), end.isoformat()))}

    # bookings: reads ------------------------------------------------------------------------------------

    _BOOKING_COLS = ("b.id, b.employee_id, b.original_at, b.edited_at, b.local_date, b.direction, "
                     "b.direction_source, b.source, b.deleted_at")

    @staticmethod
    def _booking(row: Sequence[Any]) -> StoredBooking:
        bid, emp, orig, edited, day, direction, dsource, source, deleted = row
        original_at = parse_utc(orig)
        edited_at = parse_utc(edited) if edited else None
        return StoredBooking(bid, emp, edited_at or original_at, original_at, edited_at,
                             date.fromisoformat(day), direction, dsource, source, deleted is not None)

    def booking(self, booking_id: int) -> StoredBooking:
        """One booking (also a deleted one); raises :class:`NotFoundError`."""
        rows = self._query(f"SELECT {self._BOOKING_COLS} FROM bookings b WHERE b.id = ?", (booking_id,))
        if not rows:
            raise NotFoundError(f"no booking with id {booking_id}")
        return self._booking(rows[0])

    def bookings_between(self, start: date, end: date, employee_ids: Iterable[int] | None = None,
                         include_deleted: bool = False) -> dict[int, list[StoredBooking]]:
        """Bookings with local date in ``start..end`` per employee id, each list ordered by instant."""
        sql = f"SELECT {self._BOOKING_COLS} FROM bookings b WHERE b.local_date BETWEEN ? AND ?"
        if not include_deleted:
            sql += " AND b.deleted_at IS NULL"
        wanted = set(employee_ids) if employee_ids is not None else None
        result: dict[int, list[StoredBooking]] = {}
        for row in self._query(sql, (start.isoformat(), end.isoformat())):
            if wanted is None or row[1] in wanted:
                result.setdefault(row[1], []).append(self._booking(row))
        for items in result.values():
            items.sort(key=lambda b: (b.at, b.id))
        return result

    @contextlib.contextmanager
    def _temp_days(self, pairs: Iterable[tuple[int, str]]) -> Iterator[str]:
        """Fill the connection's temp table ``wanted_days (employee_id, local_date)`` for a join; yields its
        name. Temp tables never take the database's write lock. Joins use ``CROSS JOIN`` so SQLite loops
        over the wanted rows and searches the bookings index (left alone, it scans all bookings)."""
        with self._lock:
            conn = self._conn
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_days "
                         "(employee_id INTEGER, local_date TEXT, PRIMARY KEY (employee_id, local_date))")
            conn.execute("DELETE FROM temp.wanted_days")
            conn.executemany("INSERT OR IGNORE INTO temp.wanted_days VALUES (?, ?)", pairs)
            try:
                yield "temp.wanted_days"
            finally:
                conn.execute("DELETE FROM temp.wanted_days")

    @contextlib.contextmanager
    def _temp_ids(self, ids: Iterable[int]) -> Iterator[str]:
        """Like :meth:`_temp_days` for a set of employee ids (``temp.wanted_ids (employee_id)``)."""
        with self._lock:
            conn = self._conn
            conn.execute("CREATE TEMP TABLE IF NOT EXISTS wanted_ids (employee_id INTEGER PRIMARY KEY)")
            conn.execute("DELETE FROM temp.wanted_ids")
            conn.executemany("INSERT OR IGNORE INTO temp.wanted_ids VALUES (?)", [(i,) for i in ids])
            try:
                yield "temp.wanted_ids"
            finally:
                conn.execute("DELETE FROM temp.wanted_ids")

    def bookings_on_days(self, days: Iterable[tuple[int, date]]) -> dict[tuple[int, date], list[StoredBooking]]:
        """Non-deleted bookings of the given ``(employee_id, local date)`` pairs, each list by instant.
        Pairs without bookings are absent. One query for any number of days (temp table join)."""
        result: dict[tuple[int, date], list[StoredBooking]] = {}
        with self._temp_days((e, d.isoformat()) for e, d in days) as wanted:
            rows = self._conn.execute(
                f"SELECT {self._BOOKING_COLS} FROM {wanted} w CROSS JOIN bookings b "
                "ON b.employee_id = w.employee_id AND b.local_date = w.local_date "
                "WHERE b.deleted_at IS NULL").fetchall()
        for row in rows:
            b = self._booking(row)
            result.setdefault((b.employee_id, b.local_date), []).append(b)
        for items in result.values():
            items.sort(key=lambda b: (b.at, b.id))
        return result

    _CALC_COLS = "b.employee_id, b.local_date, COALESCE(b.edited_at, b.original_at) AS at, b.direction"
    _CALC_ORDER = " ORDER BY b.employee_id, b.local_date, at, b.id"

    def calc_rows_between(self, start: date, end: date) -> list[tuple[int, str, str, str]]:
        """The calculation's lean read: ``(employee_id, 'YYYY-MM-DD' local date, effective instant as UTC
        text, direction)`` of the non-deleted bookings in ``start..end``, ordered by employee, date, instant.
        No objects are built, so a month of 90,000 bookings loads in a fraction of a second."""
        return self._query(f"SELECT {self._CALC_COLS} FROM bookings b WHERE b.local_date BETWEEN ? AND ? "
                           f"AND b.deleted_at IS NULL{self._CALC_ORDER}", (start.isoformat(), end.isoformat()))

    def calc_rows_on_days(self, days: Iterable[tuple[int, date]]) -> list[tuple[int, str, str, str]]:
        """:meth:`calc_rows_between` for a set of ``(employee_id, local date)`` pairs (temp table join)."""
        with self._temp_days((e, d.isoformat()) for e, d in days) as wanted:
            return self._conn.execute(
                f"SELECT {self._CALC_COLS} FROM {wanted} w CROSS JOIN bookings b ON b.employee_id = w.employee_id "
                f"AND b.local_date = w.local_date WHERE b.deleted_at IS NULL{self._CALC_ORDER}").fetchall()

    def known_instants(self, employee_ids: Iterable[int], start: datetime, end: datetime
                       ) -> dict[int, list[datetime]]:
        """Original instants of all bookings (deleted ones too) of the employees in ``start..end`` (aware),
        sorted: what the importer debounces against, so a deleted booking is not re-imported."""
        ids = set(employee_ids)
        result: dict[int, list[datetime]] = {e: [] for e in ids}
        with self._temp_ids(ids) as wanted:
            rows = self._conn.execute(
                f"SELECT b.employee_id, b.original_at FROM {wanted} w CROSS JOIN bookings b "
                "ON b.employee_id = w.employee_id AND b.original_at BETWEEN ? AND ?",
                (utc_text(start), utc_text(end))).fetchall()
        for emp, orig in rows:
            result[emp].append(parse_utc(orig))
        for items in result.values():
            items.sort()
        return result

    # bookings: writes -----------------------------------------------------------------------------------

    def add_bookings(self, bookings: Iterable[NewBooking]) -> list[int]:
        """Insert bookings in one transaction; returns their ids. Marks each (employee, local date) dirty
        and re-derives alternating directions of those days. Raises :class:`ClosedMonthError` (nothing
        written) when one falls in a closed month, :class:`DuplicateBookingError` for an existing
        employee + instant."""
        items = list(bookings)
        now = self._now()
        with self.transaction():
            closed = self._closed_through_map()
            rows = []
            for b in items:
                day = self._local_date(b.at)
                self._check_open(b.employee_id, day, closed)
                if b.direction is not None and b.direction not in DIRECTIONS:
                    raise ValueError(f"direction must be 'come' or 'go', not {b.direction!r}")
                rows.append((b.employee_id, utc_text(b.at), day.isoformat(), b.direction or "come",
                             "alternate" if b.direction is None else
                             ("manual" if b.source == "manual" else "file"), b.source, now, now))
            start_id = self._conn.execute("SELECT COALESCE(MAX(id), 0) FROM bookings").fetchone()[0]
            try:
                self._conn.executemany(
                    "INSERT INTO bookings (employee_id, original_at, local_date, direction, direction_source, "
                    "source, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)", rows)
            except sqlite3.IntegrityError as exc:
                if "UNIQUE" in str(exc):
                    raise DuplicateBookingError(f"a booking at the same instant exists already: {exc}") from exc
                raise
            days = {(r[0], r[2]) for r in rows}
            self._mark_dirty(days)
            self._realternate(days)
            ids = [r[0] for r in self._conn.execute(
                "SELECT id FROM bookings WHERE id > ? ORDER BY id", (start_id,))]
        return ids

    def edit_booking(self, booking_id: int, at: datetime | None = None, direction: str | None = None) -> StoredBooking:
        """Edit a booking's instant (the original is kept) and/or direction (then fixed, ``manual``).
        Both the old and the new local date become dirty. Raises :class:`ClosedMonthError` when either
        date is in a closed month, :class:`NotFoundError` for an unknown or deleted booking."""
        if direction is not None and direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'come' or 'go', not {direction!r}")
        with self.transaction():
            old = self.booking(booking_id)
            if old.deleted:
                raise NotFoundError(f"booking {booking_id} is deleted")
            closed = self._closed_through_map()
            self._check_open(old.employee_id, old.local_date, closed)
            new_at = at if at is not None else old.at
            new_day = self._local_date(new_at)
            self._check_open(old.employee_id, new_day, closed)
            edited = None if new_at == old.original_at else utc_text(new_at)
            self._conn.execute(
                "UPDATE bookings SET edited_at = ?, local_date = ?, direction = ?, direction_source = ?, "
                "updated_at = ? WHERE id = ?",
                (edited, new_day.isoformat(), direction or old.direction,
                 "manual" if direction else old.direction_source, self._now(), booking_id))
            days = {(old.employee_id, old.local_date.isoformat()), (old.employee_id, new_day.isoformat())}
            self._mark_dirty(days)
            self._realternate(days)
            return self.booking(booking_id)

    def delete_booking(self, booking_id: int) -> None:
        """Soft-delete a booking (kept for audit and idempotency: a re-import does not bring it back).
        Raises :class:`ClosedMonthError` / :class:`NotFoundError`."""
        with self.transaction():
            old = self.booking(booking_id)
            if old.deleted:
                return
            self._check_open(old.employee_id, old.local_date, self._closed_through_map())
            self._conn.execute("UPDATE bookings SET deleted_at = ?, updated_at = ? WHERE id = ?",
                               (self._now(), self._now(), booking_id))
            days = {(old.employee_id, old.local_date.isoformat())}
            self._mark_dirty(days)
            self._realternate(days)

    def _realternate(self, days: set[tuple[int, str]]) -> None:
        """Re-derive ``alternate`` directions of the given days (and of following days they affect).

        Walking a day's bookings by instant, an alternating booking gets ``come`` after nothing or a ``go``,
        else ``go``; bookings with a direction from the file or a manual edit keep theirs and steer the ones
        after them. Day change (ZMI "Tageswechsel"): the walk starts as if after a ``come`` when the previous
        day ends with a come, the come day's plan (else the go day's) says ``auto_complete_midnight`` and the
        day's first booking is at most :data:`MAX_SHIFT_HOURS` after that come; so the morning booking of a
        night shift is a go. The day after each given day is re-derived too, and further days while the
        last direction of a day flips; days whose directions changed are marked dirty.
        """
        if not days:
            return
        auto_complete = self._auto_complete_lookup()
        around = {(e, (date.fromisoformat(d) + k * timedelta(days=1)).isoformat())
                  for e, d in days for k in (-1, 0, 1)}
        cache: dict[tuple[int, date], list[list[Any]]] = {
            (e, date.fromisoformat(d)): [] for e, d in around}
        with self._temp_days(around) as wanted:
            for row in self._conn.execute(
                    "SELECT b.employee_id, b.local_date, COALESCE(b.edited_at, b.original_at), b.id, b.direction, "
                    f"b.direction_source FROM {wanted} w CROSS JOIN bookings b ON b.employee_id = w.employee_id "
                    "AND b.local_date = w.local_date WHERE b.deleted_at IS NULL"):
                cache[(row[0], date.fromisoformat(row[1]))].append(list(row[2:]))
        for items in cache.values():
            items.sort()

        def day_rows(emp: int, day: date) -> list[list[Any]]:
            if (emp, day) not in cache:
                cache[(emp, day)] = sorted(list(r) for r in self._conn.execute(
                    "SELECT COALESCE(edited_at, original_at), id, direction, direction_source FROM bookings "
                    "WHERE employee_id = ? AND local_date = ? AND deleted_at IS NULL", (emp, day.isoformat())))
            return cache.get((emp, day), [])

        updates: list[tuple[str, int]] = []
        flipped: set[tuple[int, str]] = set()
        per_employee: dict[int, set[date]] = {}
        for emp, d in days:  # a changed day may change how the next one starts
            day = date.fromisoformat(d)
            per_employee.setdefault(emp, set()).update((day, day + timedelta(days=1)))
        for emp, pending in per_employee.items():
            while pending:
                day = min(pending)
                pending.discard(day)
                rows = day_rows(emp, day)
                if not rows:
                    continue
                before_last = rows[-1][2]
                previous = None
                prev_rows = day_rows(emp, day - timedelta(days=1))
                if (prev_rows and prev_rows[-1][2] == "come" and auto_complete(emp, day - timedelta(days=1), day)
                        and parse_utc(rows[0][0]) - parse_utc(prev_rows[-1][0]) <= timedelta(hours=MAX_SHIFT_HOURS)):
                    previous = "come"
                for row in rows:
                    if row[3] == "alternate":
                        wanted = "go" if previous == "come" else "come"
                        if wanted != row[2]:
                            row[2] = wanted
                            updates.append((wanted, row[1]))
                            flipped.add((emp, day.isoformat()))
                    previous = row[2]
                if rows[-1][2] != before_last:
                    pending.add(day + timedelta(days=1))
        if updates:
            self._conn.executemany("UPDATE bookings SET direction = ? WHERE id = ?", updates)
            self._mark_dirty(flipped - days)  # a direction changed: that day needs recalculating too

    def _auto_complete_lookup(self) -> Callable[[int, date, date], bool]:
        """``f(employee_id, come_day, go_day)``: does the day change rule split a shift across this midnight?
        The come day's plan decides; on a free come day, the go day's plan (as :mod:`.calc_day` does)."""
        week = {code: days for code, *days in self._conn.execute(
            "SELECT code, mon, tue, wed, thu, fri, sat, sun FROM week_plans")}
        splitting = {code for code, text in self._conn.execute("SELECT code, definition FROM day_plans")
                     if json.loads(text).get("day_change") == "auto_complete_midnight"}
        plan_of = {e: w for e, w in self._conn.execute("SELECT id, week_plan FROM employees")}

        def lookup(emp: int, come_day: date, go_day: date) -> bool:
            days = week.get(plan_of.get(emp))
            if not days or not splitting:
                return False
            plan = days[come_day.weekday()] or days[go_day.weekday()]
            return plan in splitting

        return lookup

    # unassigned bookings --------------------------------------------------------------------------------

    def known_unassigned(self, idents: Iterable[tuple[str, str]], start: datetime, end: datetime
                         ) -> dict[tuple[str, str], list[datetime]]:
        """Stored unassigned instants per ``(ident_kind, ident)`` in ``start..end``, sorted."""
        wanted = set(idents)
        result: dict[tuple[str, str], list[datetime]] = {k: [] for k in wanted}
        for kind, ident, orig in self._query(
                "SELECT ident_kind, ident, original_at FROM unassigned_bookings WHERE original_at BETWEEN ? AND ?",
                (utc_text(start), utc_text(end))):
            if (kind, ident) in wanted:
                result[(kind, ident)].append(parse_utc(orig))
        for items in result.values():
            items.sort()
        return result

    def add_unassigned(self, bookings: Iterable[UnassignedBooking]) -> int:
        """Keep bookings of unknown PINs / personnel numbers; duplicates (same ident + instant) are ignored.
        Returns how many rows were added."""
        now = self._now()
        rows = [(b.ident_kind, b.ident, utc_text(b.at), self._local_date(b.at).isoformat(), b.direction,
                 b.source, now) for b in bookings]
        with self.transaction():
            before = self._conn.total_changes
            self._conn.executemany(
                "INSERT OR IGNORE INTO unassigned_bookings (ident_kind, ident, original_at, local_date, direction, "
                "source, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)", rows)
            return self._conn.total_changes - before

    def unassigned(self) -> list[UnassignedBooking]:
        """All unassigned bookings, ordered by ident and instant."""
        return [UnassignedBooking(k, i, parse_utc(o), d, s, date.fromisoformat(ld), bid) for bid, k, i, o, ld, d, s in
                self._query("SELECT id, ident_kind, ident, original_at, local_date, direction, source "
                            "FROM unassigned_bookings ORDER BY ident_kind, ident, original_at")]

    def _attach_unassigned(self, employee_id: int, pin: str | None, personnel_number: str,
                           debounce_seconds: int) -> AttachResult:
        result = AttachResult()
        rows = self._conn.execute(
            "SELECT id, original_at, direction, source FROM unassigned_bookings WHERE "
            "(ident_kind = 'pin' AND ident = ?) OR (ident_kind = 'personnel_number' AND ident = ?) "
            "ORDER BY original_at", (pin or "", personnel_number)).fetchall()
        if not rows:
            return result
        closed = self._closed_through_map().get(employee_id)
        known = sorted(parse_utc(r[0]) for r in self._conn.execute(
            "SELECT original_at FROM bookings WHERE employee_id = ?", (employee_id,)))
        window = timedelta(seconds=debounce_seconds)
        new: list[NewBooking] = []
        done: list[tuple[int]] = []
        for uid, orig, direction, source in rows:
            at = parse_utc(orig)
            if closed is not None and f"{self._local_date(at):%Y-%m}" <= closed:
                result.kept_closed += 1
                continue
            done.append((uid,))
            verdict = debounce_verdict(known, at, window)
            if verdict == "duplicate":
                result.duplicates += 1
            elif verdict == "collapsed":
                result.collapsed += 1
            else:
                insort(known, at)
                new.append(NewBooking(employee_id, at, direction, source))
        if new:
            self.add_bookings(new)
        self._conn.executemany("DELETE FROM unassigned_bookings WHERE id = ?", done)
        result.attached = len(new)
        return result

    # change tracking ------------------------------------------------------------------------------------

    def _mark_dirty(self, days: Iterable[tuple[int, str]]) -> None:
        """Mark ``(employee_id, 'YYYY-MM-DD')`` days dirty with the next sequence number (inside a write
        transaction, so the sequence is monotonic across transactions)."""
        seq = self._conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM dirty_days").fetchone()[0]
        self._conn.executemany(
            "INSERT INTO dirty_days (employee_id, local_date, seq) VALUES (?, ?, ?) "
            "ON CONFLICT (employee_id, local_date) DO UPDATE SET seq = excluded.seq",
            [(e, d, seq) for e, d in days])

    def dirty_days_since(self, watermark: int = 0) -> tuple[list[tuple[int, date]], int]:
        """Days whose bookings changed (insert, edit, delete) after ``watermark``: returns
        ``([(employee_id, local date), ...] sorted, new_watermark)``. Pass ``new_watermark`` next time;
        with nothing new it equals ``watermark``. 0 means "since the beginning"."""
        with self._lock:
            rows = self._conn.execute(  # no ORDER BY: it would make SQLite scan the primary key, not seq
                "SELECT employee_id, local_date, seq FROM dirty_days WHERE seq > ?", (watermark,)).fetchall()
        new_mark = max((r[2] for r in rows), default=watermark)
        return sorted((e, date.fromisoformat(d)) for e, d, _ in rows), new_mark

    # closing --------------------------------------------------------------------------------------------

    def _closed_through_map(self) -> dict[int, str]:
        return {e: c for e, c in self._conn.execute(
            "SELECT id, closed_through FROM employees WHERE closed_through IS NOT NULL")}

    @staticmethod
    def _check_open(employee_id: int, day: date, closed: Mapping[int, str]) -> None:
        through = closed.get(employee_id)
        if through is not None and f"{day:%Y-%m}" <= through:
            raise ClosedMonthError(employee_id, day, through)

    def close_through(self, year: int, month: int, employee_ids: Iterable[int] | None = None) -> int:
        """Close every month up to and including ``year-month`` (ZMI Monatsabschluss) for the employees
        (all when None). A later closing never moves an employee's closing back. Sets the ``closed``
        flag of the stored monthly values. Returns the number of employees whose closing moved."""
        key = month_key(year, month)
        with self.transaction():
            ids = self._ids(employee_ids)
            moved = 0
            for emp in ids:
                cur = self._conn.execute(
                    "UPDATE employees SET closed_through = ?, updated_at = ? WHERE id = ? AND "
                    "(closed_through IS NULL OR closed_through < ?)", (key, self._now(), emp, key))
                moved += cur.rowcount
                self._sync_closed_flags(emp)
        return moved

    def reopen_from(self, year: int, month: int, employee_ids: Iterable[int] | None = None) -> int:
        """Reopen ``year-month`` and every later month for the employees (all when None): their closing
        moves back to the month before (none closed when ``year-month`` is 0001-01). Returns the number of
        employees whose closing moved."""
        previous = None if (year, month) == (1, 1) else (
            month_key(year, month - 1) if month > 1 else month_key(year - 1, 12))
        key = month_key(year, month)
        with self.transaction():
            ids = self._ids(employee_ids)
            moved = 0
            for emp in ids:
                cur = self._conn.execute(
                    "UPDATE employees SET closed_through = ?, updated_at = ? WHERE id = ? AND closed_through >= ?",
                    (previous, self._now(), emp, key))
                moved += cur.rowcount
                self._sync_closed_flags(emp)
        return moved

    def _ids(self, employee_ids: Iterable[int] | None) -> list[int]:
        if employee_ids is None:
            return [r[0] for r in self._conn.execute("SELECT id FROM employees ORDER BY id")]
        ids = list(employee_ids)
        for emp in ids:
            if not self._conn.execute("SELECT 1 FROM employees WHERE id = ?", (emp,)).fetchone():
                raise NotFoundError(f"no employee with id {emp}")
        return ids

    def _sync_closed_flags(self, employee_id: int) -> None:
        self._conn.execute(
            "UPDATE monthly_values SET closed = CASE WHEN printf('%04d-%02d', year, month) <= "
            "COALESCE((SELECT closed_through FROM employees WHERE id = ?), '') THEN 1 ELSE 0 END "
            "WHERE employee_id = ?", (employee_id, employee_id))

    def closed_through(self, employee_id: int) -> tuple[int, int] | None:
        """``(year, month)`` of the employee's last closed month, or None."""
        rows = self._query("SELECT closed_through FROM employees WHERE id = ?", (employee_id,))
        if not rows:
            raise NotFoundError(f"no employee with id {employee_id}")
        if rows[0][0] is None:
            return None
        y, m = rows[0][0].split("-")
        return int(y), int(m)

    def is_closed(self, employee_id: int, day: date) -> bool:
        """True when ``day``'s month is closed for the employee."""
        through = self.closed_through(employee_id)
        return through is not None and (day.year, day.month) <= through

    # daily and monthly values --------------------------------------------------------------------------

    _DAILY_COLS = ("employee_id", "date", "gross", "breaks", "net", "target", "difference", "overtime",
                   "undertime", "capped", "errors", "provisional", "holiday_category", "presence", "credited")
    _MONTHLY_COLS = ("employee_id", "year", "month", "gross", "breaks", "net", "target", "overtime", "undertime",
                     "difference", "flextime_start", "flextime_change", "flextime_carry", "forfeited",
                     "error_days", "closed")

    def save_daily_values(self, values: Iterable[DailyValue]) -> int:
        """Upsert daily values in one transaction (one ``executemany``); returns how many. Raises
        :class:`ClosedMonthError` (nothing written) when one lies in a closed month."""
        rows = []
        now = self._now()
        with self.transaction():
            closed = self._closed_through_map()
            for v in values:
                self._check_open(int(v.employee_id), v.date, closed)
                rows.append((v.employee_id, v.date.isoformat(), v.gross, v.breaks, v.net, v.target, v.difference,
                             v.overtime, v.undertime, v.capped, ",".join(v.errors), int(v.provisional),
                             v.holiday_category, v.presence, v.credited, now))
            self._upsert("daily_values", self._DAILY_COLS, 2, rows)
        return len(rows)

    def _upsert(self, table: str, cols: Sequence[str], key_len: int, rows: list[tuple]) -> None:
        """Insert ``rows`` (values of ``cols`` then ``calculated_at``) into a value table, replacing rows with
        the same key (the first ``key_len`` columns). Caller holds the transaction."""
        updates = ", ".join(f"{c} = excluded.{c}" for c in (*cols[key_len:], "calculated_at"))
        self._conn.executemany(
            f"INSERT INTO {table} ({', '.join(cols)}, calculated_at) VALUES ({', '.join('?' * (len(cols) + 1))}) "
            f"ON CONFLICT ({', '.join(cols[:key_len])}) DO UPDATE SET {updates}", rows)

    def _daily(self, row: Sequence[Any]) -> DailyValue:
        data = dict(zip(self._DAILY_COLS, row))
        data["date"] = date.fromisoformat(data["date"])
        data["errors"] = tuple(e for e in data["errors"].split(",") if e)
        data["provisional"] = bool(data["provisional"])
        return DailyValue(**data)

    def daily_values(self, start: date, end: date, employee_ids: Iterable[int] | None = None) -> list[DailyValue]:
        """Stored daily values in ``start..end`` (inclusive local dates), ordered by employee and date.
        With ``employee_ids`` only their rows are read (temp table join on the primary key: one employee's
        year is a few ms, not a scan of every employee's rows)."""
        span = (start.isoformat(), end.isoformat())
        if employee_ids is None:
            rows = self._query(f"SELECT {', '.join(self._DAILY_COLS)} FROM daily_values WHERE date BETWEEN ? AND ? "
                               "ORDER BY employee_id, date", span)
        else:
            cols = ", ".join(f"v.{c}" for c in self._DAILY_COLS)
            with self._temp_ids(employee_ids) as wanted:
                rows = self._conn.execute(
                    f"SELECT {cols} FROM {wanted} w CROSS JOIN daily_values v ON v.employee_id = w.employee_id "
                    "WHERE v.date BETWEEN ? AND ? ORDER BY v.employee_id, v.date", span).fetchall()
        return [self._daily(r) for r in rows]

    def daily_value(self, employee_id: int, day: date) -> DailyValue | None:
        values = self.daily_values(day, day, [employee_id])
        return values[0] if values else None

    def save_monthly_values(self, values: Iterable[MonthlyValue]) -> int:
        """Upsert monthly values; the ``closed`` flag is taken from the employee's closing, not the value.
        Raises :class:`ClosedMonthError` (nothing written) for a closed month: closed months are never
        recalculated (ZMI month closing)."""
        rows = []
        now = self._now()
        with self.transaction():
            closed = self._closed_through_map()
            for v in values:
                self._check_open(int(v.employee_id), date(v.year, v.month, 1), closed)
                rows.append((*(getattr(v, c) for c in self._MONTHLY_COLS[:-1]), 0, now))
            self._upsert("monthly_values", self._MONTHLY_COLS, 3, rows)
        return len(rows)

    def _monthly(self, row: Sequence[Any]) -> MonthlyValue:
        data = dict(zip(self._MONTHLY_COLS, row))
        data["closed"] = bool(data["closed"])
        return MonthlyValue(**data)

    def monthly_value(self, employee_id: int, year: int, month: int) -> MonthlyValue | None:
        """The stored monthly value, or None when the month was never calculated."""
        rows = self._query(f"SELECT {', '.join(self._MONTHLY_COLS)} FROM monthly_values WHERE employee_id = ? "
                           "AND year = ? AND month = ?", (employee_id, year, month))
        return self._monthly(rows[0]) if rows else None

    def monthly_values(self, year: int, month: int) -> list[MonthlyValue]:
        """All stored monthly values of a month, ordered by employee id."""
        return [self._monthly(r) for r in self._query(
            f"SELECT {', '.join(self._MONTHLY_COLS)} FROM monthly_values WHERE year = ? AND month = ? "
            "ORDER BY employee_id", (year, month))]

    # retention and backup -------------------------------------------------------------------------------

    def employees_left_before(self, cutoff: date) -> list[Employee]:
        """Employees whose exit date lies before ``cutoff`` (candidates for ``gdpr_retention``)."""
        return [e for e in self.employees() if e.exit_date is not None and e.exit_date < cutoff]

    def delete_sent_messages(self, before: datetime, dry_run: bool = False) -> int:
        """Delete outbox messages sent before ``before`` (aware); returns how many (would be) deleted."""
        with self.transaction():
            if dry_run:
                return self._conn.execute("SELECT COUNT(*) FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?",
                                          (utc_text(before),)).fetchone()[0]
            return self._conn.execute("DELETE FROM outbox WHERE sent_at IS NOT NULL AND sent_at < ?",
                                      (utc_text(before),)).rowcount

    def snapshot_to(self, target: str | Path) -> dict[str, int]:
        """Copy one consistent snapshot of the whole database into the new database file ``target`` with
        SQLite's online backup API; returns ``{table name: row count}`` of that same snapshot.

        One deferred read transaction pins the snapshot while the rows are counted and the pages copied, so
        counts and copy agree even while other connections write (WAL: writers are not blocked). The copy
        is switched to rollback-journal mode, a self-contained single file (``backup_database`` zips it).
        Must not be called inside :meth:`transaction`. Raises ``sqlite3.Error`` when the copy fails.
        """
        with self._lock:
            dest = sqlite3.connect(str(target))
            try:
                self._conn.execute("BEGIN")  # deferred: the first read pins the snapshot for counts and copy
                try:
                    counts = _table_counts(self._conn)
                    self._conn.backup(dest)
                finally:
                    self._conn.execute("COMMIT")
                dest.execute("PRAGMA journal_mode = DELETE")
            finally:
                dest.close()
        return counts

    # task state -----------------------------------------------------------------------------------------

    def get_state(self, key: str, default: Any = None) -> Any:
        """A task's stored value (JSON-decoded), e.g. the ``calculate_days`` watermark."""
        rows = self._query("SELECT value FROM task_state WHERE key = ?", (key,))
        return json.loads(rows[0][0]) if rows else default

    def set_state(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under ``key``."""
        with self.transaction():
            self._conn.execute(
                "INSERT INTO task_state (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT (key) "
                "DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at",
                (key, json.dumps(value), self._now()))

    # outbox ---------------------------------------------------------------------------------------------

    def enqueue_message(self, recipient: str, subject: str, body: str, dedup_key: str | None = None) -> int | None:
        """Queue a message; returns its id, or None when a message with ``dedup_key`` exists already."""
        now = self._now()
        with self.transaction():
            cur = self._conn.execute(
                "INSERT OR IGNORE INTO outbox (recipient, subject, body, created_at, next_attempt_at, dedup_key) "
                "VALUES (?, ?, ?, ?, ?, ?)", (recipient, subject, body, now, now, dedup_key))
            return cur.lastrowid if cur.rowcount else None

    _OUTBOX_COLS = ("id, recipient, subject, body, created_at, attempts, last_error, sent_at, next_attempt_at, "
                    "dedup_key")

    @staticmethod
    def _message(row: Sequence[Any]) -> OutboxMessage:
        mid, rcpt, subj, body, created, attempts, err, sent, nxt, key = row
        return OutboxMessage(mid, rcpt, subj, body, parse_utc(created), attempts, err,
                             parse_utc(sent) if sent else None, parse_utc(nxt), key)

    def due_messages(self, now: datetime | None = None, limit: int = 500, max_attempts: int | None = None
                     ) -> list[OutboxMessage]:
        """Unsent messages whose ``next_attempt_at`` has come, oldest first; with ``max_attempts`` only
        those with fewer attempts (the rest are parked)."""
        sql = f"SELECT {self._OUTBOX_COLS} FROM outbox WHERE sent_at IS NULL AND next_attempt_at <= ?"
        params: list[Any] = [utc_text(now or self.clock())]
        if max_attempts is not None:
            sql += " AND attempts < ?"
            params.append(max_attempts)
        return [self._message(r) for r in self._query(sql + " ORDER BY id LIMIT ?", (*params, limit))]

    def outbox(self) -> list[OutboxMessage]:
        """Every message, oldest first."""
        return [self._message(r) for r in self._query(f"SELECT {self._OUTBOX_COLS} FROM outbox ORDER BY id")]

    def mark_sent(self, message_id: int, at: datetime | None = None) -> None:
        with self.transaction():
            self._conn.execute("UPDATE outbox SET sent_at = ?, attempts = attempts + 1, last_error = NULL "
                               "WHERE id = ?", (utc_text(at or self.clock()), message_id))

    def mark_failed(self, message_id: int, error: str, retry_at: datetime) -> None:
        """Record a failed attempt; the message stays queued until ``retry_at`` (aware)."""
        with self.transaction():
            self._conn.execute("UPDATE outbox SET attempts = attempts + 1, last_error = ?, next_attempt_at = ? "
                               "WHERE id = ?", (error, utc_text(retry_at), message_id))

    def outbox_counts(self, max_attempts: int) -> dict[str, int]:
        """Outbox totals (added by H8 for ``send_notifications``): ``sent``; ``queued`` (unsent, fewer than
        ``max_attempts`` attempts, due now or later); ``parked`` (unsent, attempts used up: kept, never
        deleted, delivered again only with a higher ``max_attempts``)."""
        row = self._query(
            "SELECT COALESCE(SUM(sent_at IS NOT NULL), 0), COALESCE(SUM(sent_at IS NULL AND attempts < ?), 0), "
            "COALESCE(SUM(sent_at IS NULL AND attempts >= ?), 0) FROM outbox", (max_attempts, max_attempts))[0]
        return {"sent": row[0], "queued": row[1], "parked": row[2]}

    # retention (DSGVO) ----------------------------------------------------------------------------------
    # Added by H8 for ``gdpr_retention``. Deleting is deliberate here, so closed months are no obstacle.

    def purge_employee_data(self, employee_ids: Iterable[int], *, delete_employees: bool = False,
                            dry_run: bool = False) -> dict[str, int]:
        """Delete the bookings (soft-deleted ones too), daily values, monthly values and change-tracking
        rows of the employees, and with ``delete_employees`` their master record; in one transaction.
        Returns the rows per kind (``bookings``, ``daily_values``, ``monthly_values``, ``employees``);
        ``dry_run`` only counts them."""
        ids = sorted(set(employee_ids))
        counts = {"bookings": 0, "daily_values": 0, "monthly_values": 0, "employees": 0}
        if not ids:
            return counts
        marks = ", ".join("?" for _ in ids)
        tables = [("bookings", "bookings"), ("daily_values", "daily_values"), ("monthly_values", "monthly_values")]
        with self.transaction():
            for key, table in tables:
                counts[key] = self._conn.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE employee_id IN ({marks})", ids).fetchone()[0]
            if delete_employees:
                counts["employees"] = self._conn.execute(
                    f"SELECT COUNT(*) FROM employees WHERE id IN ({marks})", ids).fetchone()[0]
            if dry_run:
                return counts
            for table in ("dirty_days", "bookings", "daily_values", "monthly_values"):
                self._conn.execute(f"DELETE FROM {table} WHERE employee_id IN ({marks})", ids)
            if delete_employees:
                self._conn.execute(f"DELETE FROM employees WHERE id IN ({marks})", ids)
        return counts


# --- debounce (shared by the importer and the attach path) ----------------------------------------------

def _table_counts(conn: sqlite3.Connection) -> dict[str, int]:
    """Rows per user table of ``conn`` (in its current transaction, if any), ``{table name: row count}``."""
    names = [r[0] for r in conn.execute(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name")]
    return {n: conn.execute(f'SELECT COUNT(*) FROM "{n}"').fetchone()[0] for n in names}


def check_database_file(path: str | Path) -> tuple[list[str], dict[str, int]]:
    """Check the database FILE ``path`` (opened read-only, never migrated or written): returns
    ``(problems, counts)``.

    ``problems`` are the ``PRAGMA integrity_check`` messages, empty when it says ``ok`` (or the error text
    when the file cannot be checked at all, e.g. not a database); ``counts`` is ``{table name: row count}``
    of the user tables, ``{}`` when there are problems. Raises ``sqlite3.DatabaseError`` when a file that
    passed the check cannot be counted. Used by ``backup_database`` (verification) and ``restore``.
    """
    try:
        conn = sqlite3.connect(f"file:{Path(path)}?mode=ro", uri=True)
    except sqlite3.DatabaseError as exc:
        return [str(exc)], {}
    try:
        try:
            rows = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        except sqlite3.DatabaseError as exc:
            return [str(exc)], {}
        if rows != ["ok"]:
            return rows, {}
        return [], _table_counts(conn)
    finally:
        conn.close()


def debounce_verdict(known: list[datetime], at: datetime, window: timedelta) -> str:
    """Classify a terminal tap against the sorted instants ``known`` of the same employee:
    ``duplicate`` (same instant), ``collapsed`` (a known instant within ``window``, inclusive: a double
    tap), or ``new``. The caller inserts ``new`` instants into ``known``; so a tap is compared with the
    taps that were *kept*, and a burst longer than the window yields one booking per window."""
    i = bisect_left(known, at)
    if i < len(known) and known[i] == at:
        return "duplicate"
    if i < len(known) and known[i] - at <= window:
        return "collapsed"
    if i > 0 and at - known[i - 1] <= window:
        return "collapsed"
    return "new"
