"""``zmi-reconciler import-bookings``: prints the report, exit codes."""

import json
from datetime import date

from zmi_reconciler.cli import main
from zmi_reconciler.tna.store import Employee, Store


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

    export.write_text("42\t2026-04-01 08:00:00\t1\t0\t0\n")
    assert main(["import-bookings", str(export), "--data-dir", str(data)]) == 0
    assert "1 lines, 0 new, 1 duplicates" in capsys.readouterr().out
    with Store.open(data / "tna.sqlite3") as store:
        assert len(store.bookings_between(date(2026, 4, 1), date(2026, 4, 1))[emp]) == 2


def test_import_bookings_missing_file_is_exit_2(tmp_path, capsys):
    assert main(["import-bookings", str(tmp_path / "nope.dat"), "--data-dir", str(tmp_path)]) == 2
    assert "cannot read" in capsys.readouterr().err
