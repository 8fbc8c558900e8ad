"""``zmi-reconciler import-bookings``: prints the report, exit codes."""

import json
from datetime import date
from pathlib import Path

import pytest

from zmi_reconciler.cli import main
from zmi_reconciler.tna.store import Employee, Store

SAMPLE = Path(__file__).resolve().parents[2] / "shared" / "data" / "attlog-sample.dat"
# PIN -> bookings kept after collapsing double taps (worked out with awk, see test_importer.py)
SAMPLE_KEPT = {
    "1000": 46, "1007": 61, "1014": 61, "1021": 29, "1028": 29, "1035": 33, "1042": 14, "1049": 29, "1056": 23,
    "1063": 13, "1070": 14, "1077": 30, "1084": 27, "1091": 32, "1098": 43, "1105": 3, "1112": 6, "1119": 2,
}
HINT = ("495 bookings of unknown PINs are kept unassigned; add the employees to the master data "
        "(zmi-reconciler masterdata FILE) and they attach automatically")


def test_import_bookings_prints_json_report_and_is_idempotent(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ZMI_DATA_DIR", raising=False)
    data = tmp_path / "var"
    with Store.open(data / "tna.sqlite3") as store:
        emp, _ = store.upsert_employee(Employee("1001", pin="42"))
    export = tmp_path / "attlog.dat"
    export.write_text("42\t2026-04-01 08:00:00\t1\t0\t0\n42\t2026-04-01 08:00:05\t1\t0\t0\n"
                      "77\t2026-04-01 09:00:00\t1\t0\t0\nbroken\n42\t2026-04-01 16:00:00\t1\t0\t0\n")
    assert main(["import-bookings", str(export), "--format", "json", "--data-dir", str(data)]) == 1
    report = json.loads(capsys.readouterr().out)
    assert {k: report[k] for k in ("lines", "new", "duplicates", "collapsed", "unassigned")} == {
        "lines": 5, "new": 2, "duplicates": 0, "collapsed": 1, "unassigned": 1}
    assert report["rejected"] == [{"line": 4, "reason": report["rejected"][0]["reason"], "text": "broken"}]
    assert report["unknown"] == {"77": 1}
    assert (report["unknown_pins"], report["still_unassigned"], report["days"]) == ({"77": 1}, 1, 1)

    export.write_text("42\t2026-04-01 08:00:00\t1\t0\t0\n")
    assert main(["import-bookings", str(export), "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "1 lines, 0 new, 1 duplicates" in out and "unassigned;" not in out  # no unknown PIN in this file
    with Store.open(data / "tna.sqlite3") as store:
        assert len(store.bookings_between(date(2026, 4, 1), date(2026, 4, 1))[emp]) == 2


def test_import_bookings_missing_file_is_exit_2(tmp_path, capsys):
    assert main(["import-bookings", str(tmp_path / "nope.dat"), "--data-dir", str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err


@pytest.mark.skipif(not SAMPLE.exists(), reason=f"shared sample {SAMPLE} is absent (CI has ../shared/data)")
def test_sample_into_an_empty_store_twice_lists_the_unknown_pins_both_times(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ZMI_DATA_DIR", raising=False)
    data = tmp_path / "var"
    assert main(["import-bookings", str(SAMPLE), "--format", "json", "--data-dir", str(data)]) == 0
    first = json.loads(capsys.readouterr().out)
    assert list(first) == ["file", "format", "lines", "new", "duplicates", "collapsed", "unassigned", "rejected",
                           "unknown", "days", "unknown_pins", "still_unassigned"]  # old keys first, unchanged
    assert (first["new"], first["unassigned"], first["still_unassigned"]) == (0, 495, 495)
    assert first["unknown"] == SAMPLE_KEPT and first["unknown_pins"] == SAMPLE_KEPT

    assert main(["import-bookings", str(SAMPLE), "--format", "json", "--data-dir", str(data)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert (again["new"], again["duplicates"], again["unassigned"], again["unknown"]) == (0, 495, 0, {})
    assert again["unknown_pins"] == SAMPLE_KEPT and again["still_unassigned"] == 495

    assert main(["import-bookings", str(SAMPLE), "--data-dir", str(data)]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[0] == (f"{SAMPLE} (attlog): 560 lines, 0 new, 495 duplicates, 65 collapsed double taps, "
                        "0 unassigned, 0 rejected")
    assert lines[1] == "unknown PINs (still unassigned; bookings in this file): " + ", ".join(
        f"{pin} ({n})" for pin, n in SAMPLE_KEPT.items())
    assert lines[-1] == HINT and len(lines) == 3
