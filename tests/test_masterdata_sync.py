from datetime import date

from zmi_reconciler.cli import main
from zmi_reconciler.config import load_settings
from zmi_reconciler.tna.store import Store
from zmi_reconciler.tna.sync import ensure_holidays, sync_store

MD = """\
day_plans:
  - code: STD
    name: Standard
    target: "8:00"
    breaks:
      - {kind: minimum, after: "6:00", minutes: 30}
week_plans:
  - code: W5
    name: Mon-Fri
    days: {mon: STD, tue: STD, wed: STD, thu: STD, fri: STD}
employees:
  - personnel_number: "1000"
    pin: "1000"
    first_name: Ada
    last_name: Lovelace
    entry_date: 2020-01-01
    week_plan: W5
"""


def _settings(tmp_path):
    (tmp_path / "empty.toml").write_text("")  # a settings file without settings (./zmi-reconciler.toml not read)
    return load_settings(None, overrides={"data_dir": tmp_path}, environ={"ZMI_CONFIG": str(tmp_path / "empty.toml")})


def test_sync_applies_masterdata_and_fills_holidays_once(tmp_path):
    settings = _settings(tmp_path)
    settings.masterdata_path.write_text(MD)
    with Store.open(settings.database_path, zone=settings.zone) as store:
        result = sync_store(settings, store, date(2026, 11, 29))
        assert result.masterdata.employees == 1 and result.masterdata.day_plans == 1
        # DE-BY 2026: 13 public holidays in the holidays package (incl. Mariä Himmelfahrt, Allerheiligen)
        assert set(result.holidays_added) == {2026, 2027}
        hol = store.holidays_between(date(2026, 1, 1), date(2026, 12, 31))
        assert date(2026, 12, 25) in hol and date(2026, 11, 1) in hol and hol[date(2026, 12, 25)].category == 1
        assert date(2026, 12, 24) not in hol
        assert [e.personnel_number for e in store.employees()] == ["1000"]
        # a second sync leaves years that have holidays alone (hand-edited half days survive)
        store.replace_holidays("DE-BY", [(date(2026, 12, 24), "Heiligabend", 2)], [])
        assert ensure_holidays(store, "DE-BY", [2026, 2027]) == {}
        assert store.holidays_between(date(2026, 12, 24), date(2026, 12, 24))[date(2026, 12, 24)].category == 2


def test_masterdata_cli_check_reports_file_line_col_and_writes_nothing(tmp_path, capsys):
    bad = tmp_path / "md.yaml"
    bad.write_text(MD.replace('target: "8:00"', "target: lots"))
    code = main(["masterdata", str(bad), "--data-dir", str(tmp_path)])
    err = capsys.readouterr().err
    assert code == 1
    assert f"{bad}:4:13: day_plans[0].target: expected minutes or H:MM" in err
    assert not (tmp_path / "tna.sqlite3").exists()


def test_masterdata_cli_applies(tmp_path, capsys):
    good = tmp_path / "md.yaml"
    good.write_text(MD)
    assert main(["masterdata", str(good), "--check", "--data-dir", str(tmp_path)]) == 0
    assert main(["masterdata", str(good), "--data-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert "applied 1 day plans, 1 week plans, 1 employees" in out
    with Store.open(tmp_path / "tna.sqlite3") as store:
        assert store.employee_by_number("1000") is not None
