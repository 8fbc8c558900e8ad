"""export_data: CSV and DATEV LODAS files of a month's values; closed-month rule; confined atomic writes."""

from __future__ import annotations

from datetime import date, datetime, timezone

import pytest

from zmi_reconciler import datev
from zmi_reconciler.tasks import export_data as task
from zmi_reconciler.tasks.base import TaskFailed
from zmi_reconciler.tna.models import MonthlyValue
from zmi_reconciler.tna.store import Employee, Store

from test_task_helpers import Clock, make_ctx, make_settings

NOW = datetime(2026, 10, 12, 4, 0, tzinfo=timezone.utc)  # previous month: 2026-09


@pytest.fixture
def env(tmp_path):
    settings = make_settings(tmp_path)
    clock = Clock(NOW)
    with Store.open(settings.database_path, zone=settings.zone, clock=clock) as store:
        a, _ = store.upsert_employee(Employee("1002", "Ben", "Cho", entry_date=date(2025, 1, 1)))
        b, _ = store.upsert_employee(Employee("1001", "Anna", "Berg", entry_date=date(2025, 1, 1)))
        store.save_monthly_values([
            MonthlyValue(a, 2026, 9, net=9630, target=10560, overtime=0, undertime=930, flextime_carry=-930,
                         error_days=2),
            MonthlyValue(b, 2026, 9, net=10590, target=10560, overtime=30, undertime=0, flextime_carry=7460),
        ])
    return settings, clock


def close(settings):
    with Store.open(settings.database_path, zone=settings.zone) as store:
        store.close_through(2026, 9)


def run(settings, clock, **params):
    return task.run(make_ctx(settings, "export_data", clock), task.Params(**params))


def test_open_month_needs_allow_open(env):
    settings, clock = env
    with pytest.raises(TaskFailed, match="2026-09 is not closed for 2 employee\\(s\\).*allow_open: true"):
        run(settings, clock)
    assert not list(settings.export_path.glob("*"))
    result = run(settings, clock, allow_open=True)
    assert result.employees == 2


def test_csv_in_hours_with_decimal_comma(env):
    settings, clock = env
    close(settings)
    result = run(settings, clock)
    path = settings.export_path / "csv-2026-09.csv"
    assert result.file == str(path.resolve())
    data = path.read_bytes()
    assert result.bytes == len(data)
    assert data.startswith(b"\xef\xbb\xbf")
    assert data.decode("utf-8-sig").split("\r\n") == [
        "personnel_number;name;target;net;overtime;undertime;carry;error_days",
        "1001;Anna Berg;176,00;176,50;0,50;0,00;124,33;0",
        "1002;Ben Cho;176,00;160,50;0,00;15,50;-15,50;2",
        "",
    ]


def test_csv_columns_and_minutes(env):
    settings, clock = env
    close(settings)
    run(settings, clock, columns=["personnel_number", "carry"], units="minutes", filename="payroll/{month}.csv")
    text = (settings.export_path / "payroll" / "2026-09.csv").read_text(encoding="utf-8-sig")
    assert text.splitlines() == ["personnel_number;carry", "1001;7460", "1002;-930"]


def test_datev_lodas_file(env):
    settings, clock = env
    close(settings)
    result = run(settings, clock, format="datev_lodas", consultant_number=1234567, client_number=42,
                 wage_types={"net": 1000, "overtime": 1100, "undertime": 1200})
    path = settings.export_path / "datev_lodas-2026-09.txt"
    assert result.file == str(path.resolve()) and result.employees == 2
    text = path.read_bytes().decode("cp1252")
    lines = text.split("\r\n")
    assert lines[:9] == ["[Allgemein]", "Ziel=LODAS", "Version_SST=1.0", "BeraterNr=1234567", "MandantenNr=42",
                         "Feldtrennzeichen=;", "Zahlenkomma=,", "Datumsformat=TT/MM/JJJJ", "Kommentarzeichen=*"]
    assert ("10;u_lod_bwd_buchung_standard;abrechnung_zeitraum#bwd;pnr#bwd;la_eigene#bwd;bs_nr#bwd;"
            "bs_wert_butab#bwd;") in lines
    body = lines[lines.index("[Bewegungsdaten]") + 1:]
    assert body == [
        "10;01/09/2026;1001;1000;1;176,50;",
        "10;01/09/2026;1001;1100;1;0,50;",
        "10;01/09/2026;1002;1000;1;160,50;",
        "10;01/09/2026;1002;1200;1;15,50;",   # zero values (Anna's undertime, Ben's overtime) are left out
        "",
    ]


def test_datev_needs_numbers_and_wage_types():
    with pytest.raises(ValueError, match="consultant_number and client_number"):
        task.Params(format="datev_lodas", wage_types={"net": 1000})
    with pytest.raises(ValueError, match="needs wage_types"):
        task.Params(format="datev_lodas", consultant_number=1234, client_number=1)
    with pytest.raises(ValueError, match="1..9999"):
        task.Params(wage_types={"net": 10000})
    with pytest.raises(ValueError):
        task.Params(wage_types={"bonus": 1})


def test_datev_refuses_non_numeric_personnel_numbers(env):
    settings, clock = env
    with Store.open(settings.database_path, zone=settings.zone) as store:
        emp, _ = store.upsert_employee(Employee("A-7", "X", "Y"))
        store.save_monthly_values([MonthlyValue(emp, 2026, 9, net=60)])
    with pytest.raises(TaskFailed, match="numeric personnel numbers.*A-7"):
        run(settings, clock, format="datev_lodas", consultant_number=1234, client_number=1,
            wage_types={"net": 1000}, allow_open=True)


def test_month_without_values_fails(env):
    settings, clock = env
    with pytest.raises(TaskFailed, match="no monthly values for 2026-10"):
        run(settings, clock, month="current", allow_open=True)


@pytest.mark.parametrize("pattern", ["../{month}.csv", "/tmp/x.csv", "a/../../b.csv"])
def test_filename_may_not_leave_the_export_dir(env, pattern):
    settings, clock = env
    with pytest.raises(TaskFailed, match="leaves its root"):
        run(settings, clock, filename=pattern, allow_open=True)


def test_filename_with_unknown_placeholder_fails(env):
    settings, clock = env
    with pytest.raises(TaskFailed, match="placeholder"):
        run(settings, clock, filename="{employee}.csv", allow_open=True)


def test_rewrite_is_atomic_and_leaves_no_temp_files(env):
    settings, clock = env
    close(settings)
    run(settings, clock)
    run(settings, clock, units="minutes")
    assert [p.name for p in settings.export_path.iterdir()] == ["csv-2026-09.csv"]
    assert "10590" in (settings.export_path / "csv-2026-09.csv").read_text(encoding="utf-8-sig")


@pytest.mark.parametrize("minutes, text", [(0, "0,00"), (1, "0,02"), (30, "0,50"), (7460, "124,33"),
                                           (1455, "24,25"), (-930, "-15,50"), (10590, "176,50")])
def test_hours_text(minutes, text):
    assert datev.hours_text(minutes) == text


def test_lint_warns_about_the_current_month():
    assert task.lint(task.Params(month="current"))
    assert task.lint(task.Params()) == []
