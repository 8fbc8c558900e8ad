"""Terminal export import: ATTLOG (both layouts), CSV, idempotency, double taps, directions, unknown PINs."""

from datetime import date, datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from zmi_reconciler.tna.importer import UnreadableFileError, import_file, import_text, parse
from zmi_reconciler.tna.store import Employee, Store, utc_text

BERLIN = ZoneInfo("Europe/Berlin")
SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
SAMPLE = SHARED_DATA / "attlog-sample.dat"

# Figures of attlog-sample.dat, worked out with awk (not with the importer):
#   awk -F'\t' '{pin=$1+0; n[pin]++; split($2,a,/[- :]/); t=mktime(a[1]" "a[2]" "a[3]" "a[4]" "a[5]" "a[6]);
#     if (pin in last && t-last[pin]<=60) c[pin]++; else {last[pin]=t; k[pin]++}}
#     END{for (p in n) print p, n[p], k[p]}' attlog-sample.dat
# PIN -> (lines, bookings kept after collapsing taps within 60 s of the last kept one)
SAMPLE_PINS = {
    "1000": (59, 46), "1007": (62, 61), "1014": (61, 61), "1021": (29, 29), "1028": (30, 29), "1035": (40, 33),
    "1042": (27, 14), "1049": (29, 29), "1056": (29, 23), "1063": (13, 13), "1070": (14, 14), "1077": (30, 30),
    "1084": (27, 27), "1091": (53, 32), "1098": (44, 43), "1105": (5, 3), "1112": (6, 6), "1119": (2, 2),
}
SAMPLE_LINES = 560
SAMPLE_KEPT = 495
SAMPLE_COLLAPSED = 65


@pytest.fixture
def store():
    with Store.open(":memory:", zone=BERLIN, clock=lambda: datetime(2026, 12, 1, tzinfo=timezone.utc)) as s:
        yield s


def add(store, number, pin=None, **kw):
    return store.upsert_employee(Employee(number, pin=pin, **kw))[0]


def bookings(store, emp_id, day):
    return [(b.at.astimezone(BERLIN).strftime("%H:%M:%S"), b.direction)
            for b in store.bookings_between(day, day, [emp_id]).get(emp_id, [])]


def counts(report):
    return (report.lines, report.new, report.duplicates, report.collapsed, report.unassigned, len(report.rejected))


# --- the shared real-world sample -----------------------------------------------------------------------

@pytest.mark.skipif(not SAMPLE.exists(), reason=f"shared sample {SAMPLE} is absent (CI has ../shared/data)")
def test_sample_with_unknown_pins_is_kept_unassigned_then_attached(store):
    assert sum(n for n, _ in SAMPLE_PINS.values()) == SAMPLE_LINES
    assert sum(k for _, k in SAMPLE_PINS.values()) == SAMPLE_KEPT == SAMPLE_LINES - SAMPLE_COLLAPSED

    report = import_file(store, SAMPLE)
    assert report.format == "attlog"
    assert counts(report) == (SAMPLE_LINES, 0, 0, SAMPLE_COLLAPSED, SAMPLE_KEPT, 0)
    assert report.unknown == {pin: kept for pin, (_, kept) in SAMPLE_PINS.items()}
    assert len(store.unassigned()) == SAMPLE_KEPT

    attached = {pin: store.upsert_employee(Employee(f"P{pin}", pin=pin))[1].attached for pin in SAMPLE_PINS}
    assert attached == report.unknown
    assert store.unassigned() == []

    again = import_file(store, SAMPLE)
    assert counts(again) == (SAMPLE_LINES, 0, SAMPLE_KEPT, SAMPLE_COLLAPSED, 0, 0)
    assert (again.unknown, again.unknown_pins, again.still_unassigned) == ({}, {}, 0)  # all attached now


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"shared sample {SAMPLE} is absent (CI has ../shared/data)")
def test_sample_imported_twice_reports_its_unknown_pins_both_times(store):
    kept = {pin: k for pin, (_, k) in SAMPLE_PINS.items()}
    first = import_file(store, SAMPLE)
    assert len(first.unknown_pins) == 18 and list(first.unknown_pins) == sorted(SAMPLE_PINS)
    assert first.unknown_pins == kept == first.unknown
    assert first.still_unassigned == SAMPLE_KEPT == first.unassigned

    again = import_file(store, SAMPLE)
    assert counts(again) == (SAMPLE_LINES, 0, SAMPLE_KEPT, SAMPLE_COLLAPSED, 0, 0)
    assert (again.unknown, again.unassigned) == ({}, 0)  # nothing stored now ...
    assert again.unknown_pins == kept and again.still_unassigned == SAMPLE_KEPT  # ... but all still unassigned
    assert len(store.unassigned()) == SAMPLE_KEPT
    text = again.to_text().splitlines()
    assert text[1] == "unknown PINs (still unassigned; bookings in this file): " + ", ".join(
        f"{pin} ({k})" for pin, k in sorted(kept.items()))
    assert text[-1] == ("495 bookings of unknown PINs are kept unassigned; add the employees to the master data "
                        "(zmi-reconciler masterdata FILE) and they attach automatically")

    # one employee added: its PIN drops out of the list, the others stay
    store.upsert_employee(Employee("P1007", pin="1007"))
    third = import_file(store, SAMPLE)
    assert third.unknown_pins == {pin: k for pin, k in kept.items() if pin != "1007"}
    assert third.still_unassigned == SAMPLE_KEPT - 61 and third.duplicates == SAMPLE_KEPT


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"shared sample {SAMPLE} is absent (CI has ../shared/data)")
def test_sample_with_known_employees_imports_every_kept_tap(store):
    ids = {pin: add(store, f"P{pin}", pin) for pin in SAMPLE_PINS}
    report = import_file(store, SAMPLE)
    assert counts(report) == (SAMPLE_LINES, SAMPLE_KEPT, 0, SAMPLE_COLLAPSED, 0, 0)
    stored = store.bookings_between(date(2026, 10, 1), date(2026, 11, 30))
    assert {pin: len(stored[ids[pin]]) for pin in SAMPLE_PINS} == {p: k for p, (_, k) in SAMPLE_PINS.items()}
    # first line of the file: 1000, 2026-10-09 17:08:59 local (CEST) = 15:08:59 UTC
    assert utc_text(stored[ids["1000"]][0].at) == "2026-10-09T15:08:59Z"
    # 1042 double tapped at 07:41:30/07:41:32 on 10 Oct: one booking, a come
    assert bookings(store, ids["1042"], date(2026, 10, 10)) == [("07:41:30", "come")]
    # 1000 on 10 Oct: 07:44:34 (07:44:36 collapsed) and 17:29:51 -> come, go
    assert bookings(store, ids["1000"], date(2026, 10, 10)) == [("07:44:34", "come"), ("17:29:51", "go")]
    assert report.days == sum(len({b.local_date for b in items}) for items in stored.values())


# --- formats --------------------------------------------------------------------------------------------

def test_attlog_both_layouts_and_padded_pins(store):
    emp = add(store, "1001", "42")
    text = ("  42\t2026-04-01 08:00:00\t1\t0\t0\n"
            "0042\tAnna Berg\t2026-04-01 12:00:00\t1\t1\n"
            "42\t2026-04-01 12:30:00\t1\t0\t0\t0\t0\n"
            "\n"
            "42\tAnna Berg\t2026-04-01 16:45:10\t15\t1\n")
    report = import_text(store, text, "attlog.dat")
    assert counts(report) == (4, 4, 0, 0, 0, 0)
    assert bookings(store, emp, date(2026, 4, 1)) == [
        ("08:00:00", "come"), ("12:00:00", "go"), ("12:30:00", "come"), ("16:45:10", "go")]
    assert store.bookings_between(date(2026, 4, 1), date(2026, 4, 1))[emp][0].source == "terminal:attlog.dat"


def test_csv_with_header_semicolons_and_directions_from_file(store):
    emp = add(store, "P-7", "7")
    text = ("personnel_number;timestamp;direction\n"
            "P-7;2026-04-01 08:00;come\n"
            "P-7;01.04.2026 08:30:00;K\n"
            "P-7;2026-04-01T17:00:00;go\n")
    report = import_text(store, text, "x.csv", direction_from_file=True)
    assert report.format == "csv" and counts(report) == (3, 3, 0, 0, 0, 0)
    assert bookings(store, emp, date(2026, 4, 1)) == [("08:00:00", "come"), ("08:30:00", "come"), ("17:00:00", "go")]


def test_csv_without_header_and_explicit_offset(store):
    emp = add(store, "9")
    report = import_text(store, "9,2026-04-01T06:00:00+00:00\n9,2026-04-01 16:00:00,go\n", "y.csv")
    assert counts(report) == (2, 2, 0, 0, 0, 0)
    assert bookings(store, emp, date(2026, 4, 1)) == [("08:00:00", "come"), ("16:00:00", "go")]


def test_direction_from_attlog_state_when_configured(store):
    emp = add(store, "1", "1")
    text = "1\t2026-04-01 08:00:00\t1\t1\t0\n1\t2026-04-01 12:00:00\t1\t3\t0\n1\t2026-04-01 16:00:00\t1\t9\t0\n"
    import_text(store, text, "a.dat", direction_from_file=True)
    # state 1 = check-out -> go; 3 = break-in -> come; 9 unknown -> alternates after the come -> go
    assert [d for _, d in bookings(store, emp, date(2026, 4, 1))] == ["go", "come", "go"]


def test_malformed_lines_are_reported_and_the_rest_imports(store):
    emp = add(store, "1", "1")
    text = ("1\t2026-04-01 08:00:00\t1\t0\t0\n"
            "garbage line without tabs\n"
            "1\t2026-13-01 08:00:00\t1\t0\t0\n"
            "1 2\t2026-04-01 09:00:00\t1\t0\t0\n"
            "1\t2026-04-01\t1\t0\t0\n"
            "1\t2026-04-01 16:00:00\t1\t0\t0\n")
    report = import_text(store, text, "bad.dat", file_format="attlog")
    assert counts(report) == (6, 2, 0, 0, 0, 4)
    assert [r.line for r in report.rejected] == [2, 3, 4, 5]
    assert "no date/time" in report.rejected[0].reason
    assert "invalid PIN" in report.rejected[2].reason
    assert len(store.bookings_between(date(2026, 4, 1), date(2026, 4, 1))[emp]) == 2
    assert "line 4: invalid PIN '1 2'" in report.to_text()


def test_csv_malformed_fields_and_directions(store):
    add(store, "1")
    report = import_text(store, "1,2026-04-01 08:00,sideways\n1\n1,yesterday\n1,2026-04-01 09:00,go,x\n", "c.csv")
    assert [(r.line, r.reason.split(" ")[0]) for r in report.rejected] == [
        (1, "unknown"), (2, "expected"), (3, "bad"), (4, "expected")]


def test_unreadable_files(tmp_path, store):
    with pytest.raises(UnreadableFileError, match="cannot read"):
        import_file(store, tmp_path / "missing.dat")
    binary = tmp_path / "x.dat"
    binary.write_bytes(b"\x00\x01\x02")
    with pytest.raises(UnreadableFileError, match="binary"):
        import_file(store, binary)


def test_latin1_names_are_accepted(tmp_path, store):
    add(store, "1", "1")
    f = tmp_path / "l.dat"
    f.write_bytes("1\tJürgen Müller\t2026-04-01 08:00:00\t1\t0\n".encode("latin-1"))
    assert counts(import_file(store, f)) == (1, 1, 0, 0, 0, 0)


# --- rules ----------------------------------------------------------------------------------------------

def test_importing_twice_adds_nothing_and_deleted_bookings_stay_deleted(store):
    emp = add(store, "1", "1")
    text = "1\t2026-04-01 08:00:00\t1\t0\t0\n1\t2026-04-01 08:00:30\t1\t0\t0\n1\t2026-04-01 16:00:00\t1\t0\t0\n"
    assert counts(import_text(store, text, "a.dat")) == (3, 2, 0, 1, 0, 0)
    _, mark = store.dirty_days_since(0)
    assert counts(import_text(store, text, "a.dat")) == (3, 0, 2, 1, 0, 0)
    assert store.dirty_days_since(mark) == ([], mark)  # nothing changed, nothing to recalculate
    first = store.bookings_between(date(2026, 4, 1), date(2026, 4, 1))[emp][0]
    store.delete_booking(first.id)
    assert counts(import_text(store, text, "a.dat")) == (3, 0, 2, 1, 0, 0)
    assert bookings(store, emp, date(2026, 4, 1)) == [("16:00:00", "come")]


def test_double_taps_collapse_against_the_kept_booking_also_across_files(store):
    emp = add(store, "1", "1")
    import_text(store, "1\t2026-04-01 08:00:00\t1\t0\t0\n", "a.dat")
    report = import_text(store, "1\t2026-04-01 07:59:10\t1\t0\t0\n"   # 50 s before the stored one
                                "1\t2026-04-01 08:01:00\t1\t0\t0\n"   # exactly 60 s after: still a double tap
                                "1\t2026-04-01 08:01:01\t1\t0\t0\n"   # 61 s after the kept booking: new
                                "1\t2026-04-01 08:01:30\t1\t0\t0\n",  # 29 s after the new one
                         "b.dat")
    assert counts(report) == (4, 1, 0, 3, 0, 0)
    assert bookings(store, emp, date(2026, 4, 1)) == [("08:00:00", "come"), ("08:01:01", "go")]
    report = import_text(store, "1\t2026-04-01 12:00:00\t1\t0\t0\n1\t2026-04-01 12:00:20\t1\t0\t0\n", "c.dat",
                         debounce_seconds=0)
    assert counts(report) == (2, 2, 0, 0, 0, 0)


def test_out_of_order_bookings_recompute_the_days_directions(store):
    emp = add(store, "1", "1")
    import_text(store, "1\t2026-04-01 12:00:00\t1\t0\t0\n1\t2026-04-01 16:00:00\t1\t0\t0\n", "late.dat")
    assert [d for _, d in bookings(store, emp, date(2026, 4, 1))] == ["come", "go"]
    import_text(store, "1\t2026-04-01 08:00:00\t1\t0\t0\n1\t2026-04-01 11:30:00\t1\t0\t0\n", "early.dat")
    assert bookings(store, emp, date(2026, 4, 1)) == [
        ("08:00:00", "come"), ("11:30:00", "go"), ("12:00:00", "come"), ("16:00:00", "go")]


def test_unknown_personnel_number_from_csv_attaches_by_number(store):
    report = import_text(store, "X9,2026-04-01 08:00\nX9,2026-04-01 17:00\n", "u.csv")
    assert (report.unassigned, report.unknown, report.unknown_pins, report.still_unassigned) == (
        2, {"X9": 2}, {"X9": 2}, 2)
    assert report.to_text().splitlines()[-1].startswith("2 bookings of unknown personnel numbers are kept")
    emp, attached = store.upsert_employee(Employee("X9"))
    assert attached.attached == 2
    assert bookings(store, emp, date(2026, 4, 1)) == [("08:00:00", "come"), ("17:00:00", "go")]


def test_unknown_pin_whose_taps_all_collapse_is_still_listed(store):
    import_text(store, "77\t2026-04-01 08:00:00\t1\t0\t0\n", "a.dat")
    report = import_text(store, "77\t2026-04-01 08:00:20\t1\t0\t0\n"   # 20 s after the stored unassigned one
                                "42\t2026-04-01 09:00:00\t1\t0\t0\n", "b.dat")
    assert counts(report) == (2, 0, 0, 1, 1, 0)
    assert (report.unknown, report.unknown_pins, report.still_unassigned) == ({"42": 1}, {"42": 1, "77": 0}, 1)
    assert report.to_text().splitlines()[1:] == [
        "unknown PINs (still unassigned; bookings in this file): 42 (1), 77 (0)",
        "1 booking of unknown PINs is kept unassigned; add the employees to the master data "
        "(zmi-reconciler masterdata FILE) and they attach automatically"]


def test_known_pins_only_give_no_unassigned_hint(store):
    add(store, "1", "1")
    report = import_text(store, "1\t2026-04-01 08:00:00\t1\t0\t0\n", "a.dat")
    assert (report.unknown_pins, report.still_unassigned) == ({}, 0)
    assert report.to_text() == ("a.dat (attlog): 1 lines, 1 new, 0 duplicates, 0 collapsed double taps, "
                                "0 unassigned, 0 rejected")


def test_terminal_times_across_dst_are_deterministic(store):
    emp = add(store, "1", "1")
    text = ("1\t2026-03-29 02:30:00\t1\t0\t0\n"     # does not exist: read as 03:30 CEST
            "1\t2026-10-25 02:30:00\t1\t0\t0\n")    # exists twice: the first (CEST) one
    assert counts(import_text(store, text, "dst.dat")) == (2, 2, 0, 0, 0, 0)
    stored = store.bookings_between(date(2026, 3, 1), date(2026, 10, 31))[emp]
    assert [utc_text(b.at) for b in stored] == ["2026-03-29T01:30:00Z", "2026-10-25T00:30:00Z"]
    assert [b.local_date for b in stored] == [date(2026, 3, 29), date(2026, 10, 25)]


def test_bookings_in_closed_months_are_rejected_with_their_line(store):
    emp = add(store, "1", "1")
    store.close_through(2026, 3)
    report = import_text(store, "1\t2026-03-31 08:00:00\t1\t0\t0\n1\t2026-04-01 08:00:00\t1\t0\t0\n", "c.dat")
    assert counts(report) == (2, 1, 0, 0, 0, 1)
    assert report.rejected[0].line == 1 and "2026-03 is closed" in report.rejected[0].reason
    assert list(store.bookings_between(date(2026, 3, 1), date(2026, 4, 30))) == [emp]


def test_parse_detects_format_and_counts_lines():
    fmt, lines, taps, rejected = parse("\n1\t2026-04-01 08:00:00\n\n", BERLIN)
    assert (fmt, lines, len(taps), rejected) == ("attlog", 1, 1, [])
    fmt, lines, taps, rejected = parse("1,2026-04-01 08:00\n", BERLIN)
    assert (fmt, lines, taps[0].ident_kind) == ("csv", 1, "personnel_number")


# --- QA: out-of-range years and header detection ----------------------------------------------------------


@pytest.mark.parametrize("stamp", ["0001-01-01 00:00", "01.01.0001 00:30", "9999-12-31 23:59", "1969-12-31 23:00",
                                   "2101-01-01 00:00", "1970-01-01 00:30"])
def test_out_of_range_timestamp_is_a_rejected_line_not_an_overflow(store, stamp):
    # 0001-01-01 00:00 Berlin and 9999-12-31 23:59 Berlin overflowed datetime on the UTC conversion;
    # 1970-01-01 00:30 Berlin is 1969-12-31 23:30 UTC (before 1970 in UTC)
    emp = add(store, "2001")
    text = f"2001,2026-04-01 08:00,come\n2001,{stamp},go\n2001,2026-04-01 16:00,go\n"
    report = import_text(store, text, "y.csv")
    assert (report.lines, report.new, [r.line for r in report.rejected]) == (3, 2, [2])
    assert "out of range (1970..2100)" in report.rejected[0].reason
    assert report.rejected[0].text == f"2001,{stamp},go"
    assert bookings(store, emp, date(2026, 4, 1)) == [("08:00:00", "come"), ("16:00:00", "go")]


def test_out_of_range_timestamp_in_attlog_is_rejected(store):
    add(store, "1", "1")
    text = "1\t0001-01-01 00:00:00\t1\t0\t0\n1\t2026-04-01 08:00:00\t1\t0\t0\n"
    report = import_text(store, text, "a.dat")
    assert (report.lines, report.new, [r.line for r in report.rejected]) == (2, 1, [1])


def test_bounds_of_the_year_range_import(store):
    emp = add(store, "2001")
    report = import_text(store, "2001,1970-01-01 01:00\n2001,2100-12-31 23:59\n", "y.csv")
    assert (report.lines, report.new, report.rejected) == (2, 2, [])
    assert [b.at for b in store.bookings_between(date(1970, 1, 1), date(2100, 12, 31))[emp]] == [
        datetime(1970, 1, 1, 0, 0, tzinfo=timezone.utc), datetime(2100, 12, 31, 22, 59, tzinfo=timezone.utc)]


@pytest.mark.parametrize("line", ["1007,2026-11-20T18:00:00+99:00,go", "1001,20261120T0800,go", "1001,bogus,go"])
def test_single_bad_data_line_is_rejected_not_taken_for_a_header(store, line):
    report = import_text(store, line + "\n", "z.csv")
    assert (report.lines, report.new, report.unassigned, [r.line for r in report.rejected]) == (1, 0, 0, [1])
    assert report.rejected[0].reason.startswith("bad timestamp")


@pytest.mark.parametrize("header", ["personnel_number,timestamp,direction", "Nr;Zeit;Richtung", "who,when,what",
                                    "PIN;Date"])
def test_header_lines_are_still_recognised(store, header):
    add(store, "9")
    sep = ";" if ";" in header else ","
    report = import_text(store, f"{header}\n9{sep}2026-04-01 08:00\n9{sep}bad\n", "h.csv")
    assert (report.lines, report.new, [r.line for r in report.rejected]) == (2, 1, [3])
