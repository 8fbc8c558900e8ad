"""``zmi-reconciler next``: lookup by id or file, --after/--count/--format, exit codes (SPEC section 9).

Expected instants are worked out by hand (Europe/Berlin CET +01:00 / CEST +02:00, spring forward 2026-03-29,
fall back 2026-10-25; America/New_York EST -05:00 / EDT -04:00, spring forward 2026-03-08).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from zmi_reconciler.cli import main

NIGHTLY = """\
name: Nightly
timezone: Europe/Berlin
timing: {type: daily, at: "02:30"}
tasks:
  - task: calculate_days
"""


@pytest.fixture
def sched_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)  # no stray ./zmi-reconciler.toml
    for var in ("ZMI_DEFAULT_TIMEZONE", "ZMI_SCHEDULES_DIR", "ZMI_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    d = tmp_path / "schedules.d"
    d.mkdir()
    (d / "nightly.yaml").write_text(NIGHTLY, encoding="utf-8")
    return d


def run_next(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["next", *argv])
    out = capsys.readouterr()
    return code, out.out, out.err


def test_json_lists_local_offsets_across_the_gap(sched_dir, capsys):
    code, out, _ = run_next(capsys, str(sched_dir / "nightly.yaml"), "--after", "2026-03-27T12:00:00Z",
                            "--count", "4", "--format", "json")
    assert code == 0
    assert json.loads(out) == ["2026-03-28T02:30:00+01:00", "2026-03-29T03:30:00+02:00",
                               "2026-03-30T02:30:00+02:00", "2026-03-31T02:30:00+02:00"]


def test_id_is_looked_up_in_schedules_dir_and_default_count_is_5(sched_dir, capsys):
    code, out, _ = run_next(capsys, "nightly", "--schedules-dir", str(sched_dir), "--after", "2026-10-24T12:00Z",
                            "--format", "json")
    assert code == 0
    assert json.loads(out) == ["2026-10-25T02:30:00+02:00", "2026-10-26T02:30:00+01:00",
                               "2026-10-27T02:30:00+01:00", "2026-10-28T02:30:00+01:00",
                               "2026-10-29T02:30:00+01:00"]


def test_yml_suffix_and_default_zone_from_settings(sched_dir, capsys, monkeypatch):
    (sched_dir / "nightly.yaml").unlink()
    (sched_dir / "payroll.yml").write_text(
        'name: Payroll\ntiming: {type: daily, at: "02:15"}\ntasks:\n  - task: calculate_days\n', encoding="utf-8")
    monkeypatch.setenv("ZMI_DEFAULT_TIMEZONE", "America/New_York")
    code, out, _ = run_next(capsys, "payroll", "--schedules-dir", str(sched_dir), "--after", "2026-03-07T12:00Z",
                            "--count", "2", "--format", "json")
    assert code == 0
    assert json.loads(out) == ["2026-03-08T03:15:00-04:00", "2026-03-09T02:15:00-04:00"]


def test_text_shows_local_offset_abbreviation_utc_and_notes(sched_dir, capsys):
    code, out, _ = run_next(capsys, str(sched_dir / "nightly.yaml"), "--after", "2026-03-28T12:00Z", "--count", "2")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "nightly: Nightly - daily at 02:30, zone Europe/Berlin"
    assert lines[1] == "  fires after 2026-03-28T13:00:00+01:00:"
    assert lines[2] == "  2026-03-29 Sun 03:30:00 +02:00 CEST   (2026-03-29T01:30:00Z)"
    assert lines[3] == ("      note: 02:30 does not exist on 2026-03-29 in Europe/Berlin (DST gap): "
                        "fires at 03:30 CEST")
    assert lines[4] == "  2026-03-30 Mon 02:30:00 +02:00 CEST   (2026-03-30T00:30:00Z)"
    assert len(lines) == 5


def test_after_without_offset_is_local_time_and_exact_fire_is_excluded(sched_dir, capsys):
    # 2026-03-29T03:30 local Berlin is the shifted fire itself (01:30Z): it is not listed.
    code, out, _ = run_next(capsys, str(sched_dir / "nightly.yaml"), "--after", "2026-03-29T03:30",
                            "--count", "1", "--format", "json")
    assert code == 0
    assert json.loads(out) == ["2026-03-30T02:30:00+02:00"]


def test_hourly_fall_back_lists_the_repeated_hour_twice(sched_dir, capsys):
    f = sched_dir / "hourly.yaml"
    f.write_text("name: Hourly\ntimezone: Europe/Berlin\ntiming: {type: hours, every: 1}\n"
                 "tasks:\n  - task: calculate_days\n", encoding="utf-8")
    code, out, _ = run_next(capsys, str(f), "--after", "2026-10-24T23:30Z", "--count", "3", "--format", "json")
    assert code == 0
    assert json.loads(out) == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00",
                               "2026-10-25T03:00:00+01:00"]


def test_manual_schedule_never_fires(sched_dir, capsys):
    f = sched_dir / "adhoc.yaml"
    f.write_text("name: Ad hoc\ntiming: {type: manual}\ntasks:\n  - task: calculate_days\n", encoding="utf-8")
    code, out, _ = run_next(capsys, str(f), "--after", "2026-01-01T00:00Z")
    assert code == 0
    assert "never fires by itself" in out
    code, out, _ = run_next(capsys, str(f), "--format", "json")
    assert code == 0 and json.loads(out) == []


def test_paused_schedule_says_so(sched_dir, capsys):
    f = sched_dir / "paused.yaml"
    f.write_text(NIGHTLY.replace("name: Nightly", "name: Paused\nenabled: false"), encoding="utf-8")
    code, out, _ = run_next(capsys, str(f), "--after", "2026-06-01T00:00Z", "--count", "1")
    assert code == 0
    assert "paused (enabled: false)" in out
    assert "  2026-06-01 Mon 02:30:00 +02:00 CEST   (2026-06-01T00:30:00Z)" in out.splitlines()


def test_invalid_file_exits_1_with_findings(sched_dir, capsys):
    f = sched_dir / "broken.yaml"
    f.write_text('name: Broken\ntiming: {type: daily, at: "25:00"}\ntasks:\n  - task: calculate_days\n',
                 encoding="utf-8")
    code, out, err = run_next(capsys, str(f), "--after", "2026-01-01T00:00Z")
    assert code == 1
    assert out == ""
    # loader finding, formatted like `validate`: file:line:col: severity CODE message (the value "25:00")
    assert err.startswith(f"{f}:2:27: error E")
    assert "'25:00'" in err


@pytest.mark.parametrize("argv,message", [
    (["nope"], "unknown schedule id 'nope'"),
    (["missing/file.yaml"], "no such schedule file"),
    (["nightly", "--after", "yesterday"], "--after: not an ISO 8601"),
    (["nightly", "--count", "0"], "--count must be between 1 and"),
])
def test_usage_errors_exit_2(sched_dir, capsys, argv, message):
    code, out, err = run_next(capsys, *argv, "--schedules-dir", str(sched_dir))
    assert code == 2
    assert out == ""
    assert message in err


def test_warnings_do_not_stop_next(sched_dir, capsys):
    # calculate_days before backup_database is lint W001 material, not an error: fires are still listed.
    f = sched_dir / "order.yaml"
    f.write_text('name: Order\ntimezone: UTC\ntiming: {type: weekly, days: [sat, mon], at: "23:59"}\n'
                 'tasks:\n  - task: calculate_days\n  - task: backup_database\n', encoding="utf-8")
    code, out, _ = run_next(capsys, str(f), "--after", "2026-06-01T00:00Z", "--count", "3", "--format", "json")
    assert code == 0
    # 2026-06-01 is a Monday
    assert json.loads(out) == ["2026-06-01T23:59:00+00:00", "2026-06-06T23:59:00+00:00", "2026-06-08T23:59:00+00:00"]


@pytest.mark.parametrize("after", ["0001-01-01T00:00", "0001-01-01T00:00Z", "9999-12-31T23:59:59Z",
                                   "1969-12-31T23:59:59Z", "2101-01-01T00:00:00Z", "2101-01-01T01:30+01:00"])
def test_after_outside_1970_to_2100_is_a_usage_error(sched_dir, capsys, after):
    # 0001-01-01T00:00 (Berlin) and 9999-12-31 overflowed datetime (traceback); 0001-01-01T00:00Z listed nothing
    code, out, err = run_next(capsys, "nightly", "--after", after, "--schedules-dir", str(sched_dir))
    assert (code, out) == (2, "")
    assert err == f"zmi-reconciler next: --after must be between 1970 and 2100, got {after!r}\n"


def test_after_at_the_ends_of_the_range_lists_fires(sched_dir, capsys):
    code, out, _ = run_next(capsys, "nightly", "--after", "1970-01-01T00:00Z", "-n", "1", "--format", "json",
                            "--schedules-dir", str(sched_dir))
    assert (code, json.loads(out)) == (0, ["1970-01-01T02:30:00+01:00"])
    code, out, _ = run_next(capsys, "nightly", "--after", "2100-12-31T23:59:59Z", "-n", "1", "--format", "json",
                            "--schedules-dir", str(sched_dir))
    assert (code, json.loads(out)) == (0, ["2101-01-01T02:30:00+01:00"])


def test_overflow_inside_the_timing_math_is_reported_not_a_traceback(sched_dir, capsys, monkeypatch):
    from zmi_reconciler import timing

    def overflowing(*_args):
        raise OverflowError("date value out of range")
        yield  # pragma: no cover

    monkeypatch.setattr(timing, "iter_fires", overflowing)
    code, out, err = run_next(capsys, "nightly", "--after", "2026-01-01T00:00Z", "--schedules-dir", str(sched_dir))
    assert (code, out) == (2, "")
    assert "beyond the supported date range" in err
