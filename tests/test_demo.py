"""``zmi-reconciler demo``: deterministic seed data with the patterns of real terminal files."""

from collections import defaultdict
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from zmi_reconciler.cli import main
from zmi_reconciler.tna import service
from zmi_reconciler.tna.demo import DemoExistsError, seed_demo
from zmi_reconciler.tna.importer import import_file
from zmi_reconciler.tna.masterdata import load_masterdata
from zmi_reconciler.tna.store import Store

BERLIN = ZoneInfo("Europe/Berlin")
SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "attlog-sample.dat"
TODAY = date(2026, 3, 26)  # a Thursday; the export covers 12-25 March 2026


def seed(tmp_path: Path, name: str = "a", **kw):
    store = Store.open(tmp_path / name / "tna.sqlite3", zone=BERLIN)
    result = seed_demo(store, tmp_path / name, tmp_path / name / "inbox" / "demo.dat", today=TODAY, **kw)
    return store, result


def taps(path: Path):
    """(pin, local datetime, state) of every ATTLOG line."""
    out = []
    for line in path.read_text().splitlines():
        pin, when, verify, state, workcode = line.split("\t")
        out.append((pin, datetime.fromisoformat(when), state))
    return out


def test_same_seed_and_date_give_identical_files(tmp_path):
    s1, r1 = seed(tmp_path, "a")
    s2, r2 = seed(tmp_path, "b")
    s3, r3 = seed(tmp_path, "c", seed=7)
    assert r1.export_path.read_bytes() == r2.export_path.read_bytes()
    assert r1.masterdata_path.read_bytes() == r2.masterdata_path.read_bytes()
    assert r1.export_path.read_bytes() != r3.export_path.read_bytes()
    for s in (s1, s2, s3):
        s.close()


def test_master_data_plans_employees_and_holidays(tmp_path):
    store, result = seed(tmp_path)
    md = load_masterdata(result.masterdata_path)
    plans = {p.code: p for p in md.day_plans}
    assert [(b.after_minutes, b.minutes) for b in plans["STD"].breaks] == [(360, 30), (540, 15)]  # ArbZG
    assert plans["FRI"].target_minutes < plans["STD"].target_minutes
    assert plans["NIGHT"].day_change == "auto_complete_midnight"
    w5 = {w.code: w for w in md.week_plans}["W5"]
    assert w5.days[:5] == ("STD", "STD", "STD", "STD", "FRI") and w5.days[5:] == (None, None)
    assert len(md.employees) == 10 == len(store.employees())
    assert sum(1 for e in md.employees if e.supervisor_email) == 1
    [left] = [e for e in md.employees if e.exit_date]
    assert left.exit_date.year <= TODAY.year - 2
    holidays = store.holidays_between(date(2026, 1, 1), date(2027, 12, 31))
    assert holidays[date(2026, 1, 6)].category == 1 and holidays[date(2027, 1, 6)].category == 1  # Epiphany (BY)
    assert holidays[date(2026, 12, 24)].category == 2
    assert result.holidays == len(holidays)
    store.close()


def test_export_has_the_patterns_of_real_files(tmp_path):
    store, result = seed(tmp_path)
    rows = taps(result.export_path)
    assert [r[1] for r in rows] == sorted(r[1] for r in rows)  # in time order, as a terminal writes
    assert min(r[1].date() for r in rows) >= date(2026, 3, 12) and max(r[1].date() for r in rows) < TODAY
    by_pin = defaultdict(list)
    for pin, when, state in rows:
        by_pin[pin].append((when, state))
    # double taps: the same PIN again within a few seconds
    doubles = sum(1 for items in by_pin.values() for a, b in zip(items, items[1:]) if (b[0] - a[0]).seconds <= 8)
    assert doubles == result.double_taps > 0
    # a Saturday shift
    assert any(when.weekday() == 5 for pin, when, _ in rows if pin == "5005")
    # a night shift: a come in the evening and the go on the next morning
    night = by_pin["5004"]
    assert any(a[1] == "0" and b[1] == "1" and b[0].date() == a[0].date() + timedelta(days=1)
               and a[0].hour >= 21 and b[0].hour < 7 for a, b in zip(night, night[1:]))
    # a lone come: one day of 5006 with a single booking
    per_day = defaultdict(int)
    for when, _ in by_pin["5006"]:
        per_day[when.date()] += 1
    assert 1 in per_day.values()
    assert "5999" in by_pin and "5010" not in by_pin  # unknown badge; the one who left books nothing
    store.close()


def test_export_imports_and_calculates(tmp_path):
    store, result = seed(tmp_path)
    report = import_file(store, result.export_path)
    assert report.lines == result.lines
    assert (report.collapsed, report.unassigned, report.rejected) == (result.double_taps, 1, [])
    assert report.new == result.lines - result.double_taps - 1
    days, _ = store.dirty_days_since(0)
    counts = service.recalculate_days(store, service.with_neighbours(days), today=TODAY)
    assert counts.failed == []
    # only the lone come is an error; the night shifts are split at midnight without errors
    assert [(store.employee(v.employee_id).personnel_number, v.errors) for v in counts.errors] == [
        ("5006", ("MISSING_GO",))]
    store.close()


def test_demo_pins_are_outside_the_usual_terminal_range(tmp_path):
    store, result = seed(tmp_path)
    numbers = sorted(e.personnel_number for e in store.employees())
    assert numbers == [str(n) for n in range(5001, 5011)]
    assert sorted(e.pin for e in store.employees()) == numbers
    assert {pin for pin, _, _ in taps(result.export_path)} - set(numbers) == {"5999"}
    store.close()


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"shared sample {SAMPLE} is absent (CI has ../shared/data)")
def test_real_sample_imported_into_the_demo_store_books_nothing_onto_demo_employees(tmp_path):
    # the sample uses PINs 1000..1119 (step 7); none may match a demo employee (PIN 1007 once hit Greta)
    store, _ = seed(tmp_path)
    report = import_file(store, SAMPLE)
    assert (report.new, report.days, report.unassigned) == (0, 0, 495)
    assert len(report.unknown) == 18 and store.bookings_between(date(2026, 1, 1), date(2026, 12, 31)) == {}
    assert store.dirty_days_since(0)[0] == []  # nothing for calculate_days (and its e-mails) to pick up
    store.close()


def test_existing_data_is_not_overwritten_without_force(tmp_path):
    store, result = seed(tmp_path)
    before = result.masterdata_path.read_text()
    with pytest.raises(DemoExistsError, match="--force"):
        seed_demo(store, tmp_path / "a", tmp_path / "other.dat", today=TODAY)
    assert not (tmp_path / "other.dat").exists() and result.masterdata_path.read_text() == before
    again = seed_demo(store, tmp_path / "a", result.export_path, today=TODAY, seed=3, force=True)
    assert again.export_path.read_text() != ""
    store.close()


def test_cli_demo_writes_into_the_inbox_and_refuses_a_second_time(tmp_path, capsys):
    data = tmp_path / "var"
    assert main(["demo", "--data-dir", str(data), "--today", "2026-03-26"]) == 0
    out = capsys.readouterr().out
    assert (data / "inbox" / "demo-attlog.dat").exists() and (data / "masterdata.yaml").exists()
    assert "10 employees" in out
    assert main(["demo", "--data-dir", str(data), "--today", "2026-03-26"]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["demo", "--data-dir", str(data), "--today", "2026-03-26", "--force",
                 "--export", str(tmp_path / "x.dat")]) == 0
    assert (tmp_path / "x.dat").exists()
