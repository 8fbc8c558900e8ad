"""tna store: schema migrations, master data, bookings, change tracking, closing, outbox, task state."""

import sqlite3
from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from zmi_reconciler.tna import migrations
from zmi_reconciler.tna.models import ARBZG_BREAKS, BreakRule, DailyValue, DayPlan, MonthlyValue, WeekPlan
from zmi_reconciler.tna.store import (ClosedMonthError, DuplicateBookingError, Employee, NewBooking,
                                      NotFoundError, Store, UnassignedBooking, check_database_file, local_to_utc,
                                      normalize_pin, utc_text)

BERLIN = ZoneInfo("Europe/Berlin")
NOW = datetime(2026, 4, 20, 10, 0, tzinfo=timezone.utc)


def local(y, m, d, hh, mm=0, ss=0):
    return local_to_utc(datetime(y, m, d, hh, mm, ss), BERLIN)


@pytest.fixture
def store(tmp_path):
    with Store.open(tmp_path / "tna.sqlite3", zone=BERLIN, clock=lambda: NOW) as s:
        yield s


@pytest.fixture
def emp(store):
    emp_id, _ = store.upsert_employee(Employee("1001", "Anna", "Berg", pin="42"))
    return emp_id


def directions(store, emp_id, day):
    return [b.direction for b in store.bookings_between(day, day, [emp_id]).get(emp_id, [])]


# --- schema ---------------------------------------------------------------------------------------------

def test_open_creates_latest_schema_in_wal_mode(tmp_path):
    path = tmp_path / "sub" / "tna.sqlite3"
    with Store.open(path, zone=BERLIN) as store:
        assert store.schema_version == migrations.LATEST_VERSION == 3
        assert store.connection.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.connection.execute("PRAGMA busy_timeout").fetchone()[0] == 10_000
        assert set(store.table_counts()) >= {"employees", "day_plans", "week_plans", "holidays", "bookings",
                                             "unassigned_bookings", "daily_values", "monthly_values", "outbox",
                                             "task_state", "dirty_days"}
    with pytest.raises(sqlite3.ProgrammingError):
        store.employees()  # closed by the context manager


def test_v1_database_upgrades_in_place_and_keeps_its_data(tmp_path):
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrations.migrate(conn, target=1) == [1]
    conn.execute("INSERT INTO employees (personnel_number, pin, created_at, updated_at) "
                 "VALUES ('7', '7', 'x', 'x')")
    conn.execute("INSERT INTO bookings (employee_id, original_at, local_date, direction, direction_source, "
                 "source, created_at, updated_at) VALUES (1, '2026-03-02T07:00:00Z', '2026-03-02', 'come', "
                 "'alternate', 'manual', 'x', 'x')")
    conn.close()

    with Store.open(path, zone=BERLIN) as store:
        assert store.schema_version == 3
        assert [e.personnel_number for e in store.employees()] == ["7"]
        # days booked before change tracking existed are dirty once, so they get calculated
        assert store.dirty_days_since(0) == ([(1, date(2026, 3, 2))], 1)
        assert store.closed_through(1) is None
        assert store.enqueue_message("a@example.org", "s", "b", dedup_key="k") is not None


def test_daily_values_of_one_day_use_the_date_index(tmp_path):
    with Store.open(tmp_path / "tna.sqlite3", zone=BERLIN) as store:
        plan = store.connection.execute(
            "EXPLAIN QUERY PLAN SELECT * FROM daily_values WHERE date BETWEEN ? AND ? ORDER BY employee_id, date",
            ("2026-03-02", "2026-03-02")).fetchall()
        assert any("daily_values_by_date" in row[-1] for row in plan), plan


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "new.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    with pytest.raises(migrations.SchemaTooNewError, match="99"):
        Store.open(path, zone=BERLIN)


def test_reopening_an_up_to_date_store_applies_nothing(tmp_path):
    path = tmp_path / "t.sqlite3"
    Store.open(path, zone=BERLIN).close()
    conn = sqlite3.connect(path, isolation_level=None)
    assert migrations.migrate(conn) == []
    conn.close()


# --- time -----------------------------------------------------------------------------------------------

@pytest.mark.parametrize("wall, expected_utc", [
    (datetime(2026, 7, 1, 8, 0), "2026-07-01T06:00:00Z"),          # summer time
    (datetime(2026, 1, 5, 8, 0), "2026-01-05T07:00:00Z"),          # winter time
    (datetime(2026, 3, 29, 2, 30), "2026-03-29T01:30:00Z"),        # gap: read as CET, i.e. 03:30 CEST
    (datetime(2026, 10, 25, 2, 30), "2026-10-25T00:30:00Z"),       # fold: first occurrence (CEST)
])
def test_local_to_utc_is_deterministic_across_dst(wall, expected_utc):
    assert utc_text(local_to_utc(wall, BERLIN)) == expected_utc


def test_normalize_pin():
    assert [normalize_pin(p) for p in (" 0042", "42 ", "0", "000", "A7")] == ["42", "42", "0", "0", "A7"]


# --- master data ----------------------------------------------------------------------------------------

def test_plans_round_trip(store):
    plan = DayPlan("STD", "standard", target_minutes=480, breaks=(*ARBZG_BREAKS, BreakRule.fixed("12:00", "12:30")),
                   max_net_minutes=600, day_change="auto_complete_midnight")
    store.upsert_day_plan(plan)
    store.upsert_week_plan(WeekPlan("W5", "five days", "STD", "STD", "STD", "STD", "STD", None, None))
    assert store.day_plans() == {"STD": plan}
    assert store.week_plans()["W5"].day_plan_code(date(2026, 4, 25)) is None  # Saturday
    with pytest.raises(sqlite3.IntegrityError):
        store.upsert_week_plan(WeekPlan("BAD", mon="NOPE"))


def test_employee_upsert_updates_by_personnel_number(store):
    first, _ = store.upsert_employee(Employee("1001", "Anna", "Berg", pin="0042", credit_type="complete",
                                              credit_monthly_cap=600, entry_date=date(2020, 1, 1)))
    again, _ = store.upsert_employee(Employee("1001", "Anna", "Kurz", pin="42", exit_date=date(2026, 3, 31)))
    assert first == again
    e = store.employee(first)
    assert (e.last_name, e.pin, e.entry_date, e.exit_date) == ("Kurz", "42", None, date(2026, 3, 31))
    assert e.active_between(date(2026, 3, 1), date(2026, 3, 31))
    assert not e.active_between(date(2026, 4, 1), date(2026, 4, 30))
    assert store.employee_by_number("1001").id == first and store.employee_by_number("9") is None
    with pytest.raises(NotFoundError):
        store.employee(999)


# --- bookings and change tracking -----------------------------------------------------------------------

def test_bookings_mark_days_dirty_with_a_monotonic_watermark(store, emp):
    assert store.dirty_days_since(0) == ([], 0)
    [b1, b2] = store.add_bookings([NewBooking(emp, local(2026, 4, 1, 8)), NewBooking(emp, local(2026, 4, 1, 16))])
    days, mark1 = store.dirty_days_since(0)
    assert days == [(emp, date(2026, 4, 1))] and mark1 > 0
    assert store.dirty_days_since(mark1) == ([], mark1)

    store.edit_booking(b2, at=local(2026, 4, 2, 0, 30))  # moved across midnight: both days dirty
    days, mark2 = store.dirty_days_since(mark1)
    assert days == [(emp, date(2026, 4, 1)), (emp, date(2026, 4, 2))] and mark2 > mark1
    edited = store.booking(b2)
    assert edited.original_at == local(2026, 4, 1, 16) and edited.at == local(2026, 4, 2, 0, 30)
    assert edited.local_date == date(2026, 4, 2)

    store.delete_booking(b1)
    days, mark3 = store.dirty_days_since(mark2)
    assert days == [(emp, date(2026, 4, 1))] and mark3 > mark2
    assert store.bookings_between(date(2026, 4, 1), date(2026, 4, 1)) == {}
    assert store.booking(b1).deleted


def test_same_instant_twice_is_a_duplicate(store, emp):
    store.add_bookings([NewBooking(emp, local(2026, 4, 1, 8))])
    with pytest.raises(DuplicateBookingError):
        store.add_bookings([NewBooking(emp, local(2026, 4, 1, 8))])


def test_alternation_is_recomputed_when_bookings_arrive_out_of_order(store, emp):
    store.add_bookings([NewBooking(emp, local(2026, 4, 1, 8)), NewBooking(emp, local(2026, 4, 1, 16))])
    assert directions(store, emp, date(2026, 4, 1)) == ["come", "go"]
    store.add_bookings([NewBooking(emp, local(2026, 4, 1, 12)), NewBooking(emp, local(2026, 4, 1, 12, 30))])
    assert directions(store, emp, date(2026, 4, 1)) == ["come", "go", "come", "go"]
    # a manual direction steers the alternating bookings after it
    first = store.bookings_between(date(2026, 4, 1), date(2026, 4, 1))[emp][0]
    store.edit_booking(first.id, direction="go")
    assert directions(store, emp, date(2026, 4, 1)) == ["go", "come", "go", "come"]


def test_night_shift_continues_across_midnight_only_with_the_day_change_rule(store):
    store.upsert_day_plan(DayPlan("NIGHT", target_minutes=480, day_change="auto_complete_midnight"))
    store.upsert_day_plan(DayPlan("DAY", target_minutes=480))
    store.upsert_week_plan(WeekPlan("WN", *["NIGHT"] * 7))
    store.upsert_week_plan(WeekPlan("WD", *["DAY"] * 7))
    night, _ = store.upsert_employee(Employee("1", pin="1", week_plan="WN"))
    day, _ = store.upsert_employee(Employee("2", pin="2", week_plan="WD"))
    for e in (night, day):
        # the go arrives first (out of order), then the come of the evening before
        store.add_bookings([NewBooking(e, local(2026, 3, 24, 7))])
        store.add_bookings([NewBooking(e, local(2026, 3, 23, 20))])
    assert directions(store, night, date(2026, 3, 24)) == ["go"]
    assert directions(store, day, date(2026, 3, 24)) == ["come"]  # a lone come the day before stays lone
    # the 24th's booking flipped when the 23rd's come arrived, so the 24th is dirty (again)
    _, mark = store.dirty_days_since(0)
    store.add_bookings([NewBooking(night, local(2026, 3, 23, 19))])  # an earlier come: 23rd is come, go
    assert directions(store, night, date(2026, 3, 23)) == ["come", "go"]
    assert directions(store, night, date(2026, 3, 24)) == ["come"]
    assert store.dirty_days_since(mark)[0] == [(night, date(2026, 3, 23)), (night, date(2026, 3, 24))]
    store.delete_booking(store.bookings_between(date(2026, 3, 23), date(2026, 3, 23))[night][0].id)
    assert directions(store, night, date(2026, 3, 24)) == ["go"]
    # the next shift: 24 Mar 22:00 to 25 Mar 06:00
    store.add_bookings([NewBooking(night, local(2026, 3, 25, 6))])
    store.add_bookings([NewBooking(night, local(2026, 3, 24, 22))])
    assert directions(store, night, date(2026, 3, 24)) == ["go", "come"]
    assert directions(store, night, date(2026, 3, 25)) == ["go"]
    # more than MAX_SHIFT_HOURS (16 h) after the come: a new come, not the end of a shift
    store.add_bookings([NewBooking(night, local(2026, 3, 27, 22)), NewBooking(night, local(2026, 3, 28, 16))])
    assert directions(store, night, date(2026, 3, 28)) == ["come"]


def test_unassigned_bookings_attach_when_the_employee_appears(store):
    at1, at2, at3 = local(2026, 4, 1, 8), local(2026, 4, 1, 8, 0, 30), local(2026, 4, 1, 16)
    assert store.add_unassigned([UnassignedBooking("pin", "77", a, None, "terminal:x") for a in (at1, at2, at3)]) == 3
    assert store.add_unassigned([UnassignedBooking("pin", "77", at1, None, "terminal:x")]) == 0
    emp_id, attached = store.upsert_employee(Employee("5", pin="077"), debounce_seconds=60)
    assert (attached.attached, attached.collapsed) == (2, 1)
    assert store.unassigned() == []
    assert directions(store, emp_id, date(2026, 4, 1)) == ["come", "go"]
    assert store.dirty_days_since(0)[0] == [(emp_id, date(2026, 4, 1))]


# --- closing --------------------------------------------------------------------------------------------

def test_close_through_and_reopen_from(store, emp):
    [feb] = store.add_bookings([NewBooking(emp, local(2026, 2, 10, 8))])
    store.save_monthly_values([MonthlyValue(emp, 2026, m, flextime_carry=720) for m in (1, 2, 3)])
    assert store.close_through(2026, 3) == 1
    assert store.closed_through(emp) == (2026, 3)
    assert [store.is_closed(emp, date(2026, m, 1)) for m in (1, 2, 3, 4)] == [True, True, True, False]
    assert [store.monthly_value(emp, 2026, m).closed for m in (1, 2, 3)] == [True, True, True]

    with pytest.raises(ClosedMonthError, match="2026-02 is closed"):
        store.edit_booking(feb, at=local(2026, 2, 10, 9))
    with pytest.raises(ClosedMonthError):
        store.delete_booking(feb)
    with pytest.raises(ClosedMonthError):
        store.add_bookings([NewBooking(emp, local(2026, 3, 31, 8))])
    with pytest.raises(ClosedMonthError):
        store.save_monthly_values([MonthlyValue(emp, 2026, 3)])
    with pytest.raises(ClosedMonthError):
        store.save_daily_values([DailyValue(emp, date(2026, 3, 2))])
    assert store.close_through(2026, 1) == 0  # closing never moves back

    assert store.reopen_from(2026, 2) == 1
    assert store.closed_through(emp) == (2026, 1)
    assert [store.monthly_value(emp, 2026, m).closed for m in (1, 2, 3)] == [True, False, False]
    store.edit_booking(feb, at=local(2026, 2, 10, 9))  # open again
    assert store.reopen_from(2025, 1) == 1 and store.closed_through(emp) == (2024, 12)
    assert store.reopen_from(1, 1) == 1 and store.closed_through(emp) is None  # from the first month: none closed
    assert [store.monthly_value(emp, 2026, m).closed for m in (1, 2, 3)] == [False, False, False]


# --- values ---------------------------------------------------------------------------------------------

def test_daily_and_monthly_values_round_trip(store, emp):
    dv = DailyValue(emp, date(2026, 4, 1), gross=510, breaks=30, net=480, target=480, errors=("MISSING_GO",),
                    provisional=True, holiday_category=2, presence=500, credited=10)
    store.save_daily_values([dv])
    assert store.daily_value(emp, date(2026, 4, 1)) == dv
    store.save_daily_values([DailyValue(emp, date(2026, 4, 1), net=1)])
    assert store.daily_values(date(2026, 4, 1), date(2026, 4, 30)) == [DailyValue(emp, date(2026, 4, 1), net=1)]
    mv = MonthlyValue(emp, 2026, 4, gross=1, flextime_start=2, flextime_carry=3, error_days=1)
    store.save_monthly_values([mv])
    assert store.monthly_value(emp, 2026, 4) == mv and store.monthly_values(2026, 4) == [mv]
    assert store.monthly_value(emp, 2026, 5) is None


# --- outbox and task state ------------------------------------------------------------------------------

def test_outbox_dedup_retry_and_sent(store):
    m1 = store.enqueue_message("a@example.org", "day error", "body", dedup_key="err:1:2026-04-01")
    assert store.enqueue_message("a@example.org", "day error", "body", dedup_key="err:1:2026-04-01") is None
    m2 = store.enqueue_message("b@example.org", "s", "b")
    store.mark_failed(m1, "connection refused", retry_at=datetime(2026, 4, 20, 11, 0, tzinfo=timezone.utc))
    assert [m.id for m in store.due_messages()] == [m2]
    later = datetime(2026, 4, 20, 11, 0, tzinfo=timezone.utc)
    assert [m.id for m in store.due_messages(later)] == [m1, m2]
    assert store.due_messages(later, max_attempts=1) == [store.due_messages(later)[1]]
    store.mark_sent(m2)
    [msg1, msg2] = store.outbox()
    assert (msg1.attempts, msg1.last_error, msg1.sent_at) == (1, "connection refused", None)
    assert (msg2.attempts, msg2.sent_at) == (1, NOW)


def test_task_state(store):
    assert store.get_state("calculate_days:watermark", 0) == 0
    store.set_state("calculate_days:watermark", 17)
    store.set_state("calculate_days:watermark", {"seq": 18})
    assert store.get_state("calculate_days:watermark") == {"seq": 18}


def test_failed_transaction_rolls_back(store):
    with pytest.raises(RuntimeError):
        with store.transaction():
            store.upsert_employee(Employee("1"))
            raise RuntimeError("boom")
    assert store.employees() == []


# --- retention and backup -------------------------------------------------------------------------------

def test_purge_employee_data_removes_all_their_rows(store, emp):
    other, _ = store.upsert_employee(Employee("2002", exit_date=date(2020, 1, 31)))
    [b] = store.add_bookings([NewBooking(emp, local(2026, 4, 1, 8)), NewBooking(other, local(2026, 4, 1, 8))])[:1]
    store.delete_booking(b)
    store.save_daily_values([DailyValue(emp, date(2026, 4, 1))])
    store.save_monthly_values([MonthlyValue(emp, 2026, 4)])
    assert [e.id for e in store.employees_left_before(date(2023, 1, 1))] == [other]
    expected = {"bookings": 1, "daily_values": 1, "monthly_values": 1, "employees": 1}
    assert store.purge_employee_data([emp], delete_employees=True, dry_run=True) == expected
    assert store.employee(emp).id == emp
    assert store.purge_employee_data([emp], delete_employees=True) == expected
    with pytest.raises(NotFoundError):
        store.employee(emp)
    assert store.table_counts()["bookings"] == 1  # the other employee's booking stays
    assert store.dirty_days_since(0)[0] == [(other, date(2026, 4, 1))]


def test_delete_sent_messages(store):
    old = store.enqueue_message("a@example.org", "s", "b")
    store.enqueue_message("b@example.org", "s", "b")  # never sent: kept
    store.mark_sent(old, at=datetime(2026, 1, 1, tzinfo=timezone.utc))
    cutoff = datetime(2026, 2, 1, tzinfo=timezone.utc)
    assert store.delete_sent_messages(cutoff, dry_run=True) == 1
    assert store.delete_sent_messages(cutoff) == 1
    assert [m.recipient for m in store.outbox()] == ["b@example.org"]


def test_backup_is_a_consistent_single_file_copy(store, emp, tmp_path):
    store.add_bookings([NewBooking(emp, local(2026, 4, 1, 8))])
    target = tmp_path / "copy.sqlite3"
    counts = store.snapshot_to(target)
    assert counts == store.table_counts()
    assert counts["bookings"] == 1
    assert check_database_file(target) == ([], counts)  # healthy, same rows
    raw = sqlite3.connect(target)
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "delete"  # a single file, no -wal
    raw.close()
    with Store.open(target, zone=BERLIN) as copy:
        assert copy.table_counts() == store.table_counts()
