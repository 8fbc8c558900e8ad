"""Cross-file checks (E030) and lint warnings W001-W005."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from zmi_reconciler import timing as timing_math
from zmi_reconciler.lint import _may_need_notes, _transition_windows, lint
from zmi_reconciler.loader import load_paths, load_schedule_text
from zmi_reconciler.schema import DailyTiming, HoursTiming, WeeklyTiming
from zmi_reconciler.tasks import catalog

NOW = datetime(2026, 1, 10, 12, 0, tzinfo=timezone.utc)


def schedule(timing: str = '{type: daily, at: "05:00"}', tasks: str = "  - task: calculate_days\n",
             name: str = "S", extra: str = "") -> str:
    return f"name: {name}\n{extra}timing: {timing}\ntasks:\n{tasks}"


def lint_texts(*texts: str, names: tuple[str, ...] | None = None, zone: str = "Europe/Berlin"):
    names = names or tuple(f"s{i}.yaml" for i in range(len(texts)))
    results = [load_schedule_text(t, n) for t, n in zip(texts, names)]
    assert all(r.errors == [] for r in results), [r.errors for r in results]
    return lint(results, zone, now=NOW)


def summary(findings):
    return [(f.file, f.line, f.column, f.code, f.path) for f in findings]


def test_clean_schedule_has_no_warnings():
    assert lint_texts(schedule()) == []


def test_w001_calculation_before_backup():
    tasks = "  - task: calculate_days\n  - task: calculate_months\n  - task: backup_database\n" \
            "  - task: send_notifications\n"
    findings = lint_texts(schedule(tasks=tasks))
    assert summary(findings) == [("s0.yaml", 4, 11, "W001", "tasks[0].task"),
                                 ("s0.yaml", 5, 11, "W001", "tasks[1].task")]
    assert findings[0].severity == "warning"
    assert findings[0].message.startswith("calculate_days runs before backup_database (tasks[2]); the ZMI manual "
                                          "recommends the backup first")


@pytest.mark.parametrize("tasks", [
    "  - task: backup_database\n  - task: calculate_days\n",          # backup first
    "  - task: calculate_days\n  - task: calculate_months\n",         # no backup at all
    "  - task: import_bookings\n  - task: backup_database\n",         # no calculation before the backup
])
def test_w001_not_raised(tasks):
    assert lint_texts(schedule(tasks=tasks)) == []


def test_w002_shared_name():
    findings = lint_texts(schedule(name="Nightly"), schedule(name="Nightly"), schedule(name="Other"),
                          names=("a.yaml", "b.yaml", "c.yaml"))
    assert summary(findings) == [("a.yaml", 1, 7, "W002", "name"), ("b.yaml", 1, 7, "W002", "name")]
    assert findings[0].message == "'Nightly' is also the name of b.yaml; give each schedule its own name"


def test_w003_daily_in_gap_and_fold():
    findings = lint_texts(schedule(timing='\n  type: daily\n  at: "02:30"'))
    assert summary(findings) == [("s0.yaml", 4, 7, "W003", "timing.at")] * 2
    gap, fold = (f.message for f in findings)
    assert gap.startswith("02:30 does not exist on 2026-03-29 in Europe/Berlin (DST gap): fires at 03:30 CEST")
    assert fold.startswith("02:30 occurs twice on 2026-10-25 in Europe/Berlin (DST fold)")


def test_w003_points_at_the_list_entry():
    findings = lint_texts(schedule(timing='\n  type: daily\n  at: ["05:00", "02:15"]'))
    assert {(f.code, f.path, f.line, f.column) for f in findings} == {("W003", "timing.at[1]", 4, 17)}


def test_w003_uses_the_schedule_zone():
    text = schedule(timing='{type: daily, at: "02:30"}', extra="timezone: America/New_York\n")
    findings = lint_texts(text)
    assert [f.code for f in findings] == ["W003"]  # New York's fold is 01:00-02:00: only the gap applies
    assert "2026-03-08 in America/New_York" in findings[0].message


def test_w003_default_zone_applies_and_utc_has_none():
    text = schedule(timing='{type: daily, at: "02:30"}')
    assert lint_texts(text, zone="UTC") == []
    assert [f.code for f in lint_texts(text, zone="Europe/Berlin")] == ["W003", "W003"]


def test_w003_hours_points_at_every_without_minute():
    findings = lint_texts(schedule(timing="{type: hours, every: 1}"))
    assert [(f.code, f.path) for f in findings] == [("W003", "timing.every")] * 2
    assert "no fire that hour" in findings[0].message


def test_w003_not_for_intervals_or_manual():
    assert lint_texts(schedule(timing="{type: minutes, every: 1}", name="A"),
                      schedule(timing="{type: manual}", name="B"),
                      schedule(timing="{type: seconds, every: 7}", name="C")) == []


def test_w004_monthly_day_31():
    findings = lint_texts(schedule(timing='\n  type: monthly\n  day: 31\n  at: "05:00"'))
    assert summary(findings) == [("s0.yaml", 4, 8, "W004", "timing.day")]
    assert "February, April, June, September and November" in findings[0].message


@pytest.mark.parametrize("day", [1, 28, "last"])
def test_w004_not_for_safe_days(day):
    assert lint_texts(schedule(timing=f'{{type: monthly, day: {day}, at: "05:00"}}')) == []


def test_w005_task_hint_at_params():
    tasks = "  - task: export_data\n    params: {month: current}\n"
    findings = lint_texts(schedule(tasks=tasks))
    assert summary(findings) == [("s0.yaml", 5, 13, "W005", "tasks[0].params")]
    spec = catalog.REGISTRY["export_data"]
    (hint,) = spec.lint(spec.params_model(month="current"))  # the task's own wording
    assert findings[0].message == f"export_data: {hint}"
    assert "current" in hint


def test_lint_skips_files_with_errors():
    results = [load_schedule_text("name: x\ntiming: {type: daily, at: '02:30'}\ntasks: []\n", "x.yaml")]
    assert lint(results, "Europe/Berlin", now=NOW) == []


def test_e030_same_id_in_one_folder(tmp_path: Path):
    for name in ("x.yaml", "x.yml"):
        (tmp_path / name).write_text(schedule(name=name), encoding="utf-8")
    findings = lint(load_paths([tmp_path]), "Europe/Berlin", now=NOW)
    assert [(Path(f.file).name, f.line, f.column, f.code, f.severity) for f in findings] == [
        ("x.yaml", 1, 1, "E030", "error"), ("x.yml", 1, 1, "E030", "error")]
    assert "also defined by x.yml" in findings[0].message


def test_same_id_in_different_folders_is_fine(tmp_path: Path):
    for folder in ("a", "b"):
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "x.yaml").write_text(schedule(name=folder), encoding="utf-8")
    assert lint(load_paths([tmp_path / "a", tmp_path / "b"]), "Europe/Berlin", now=NOW) == []


# The pre-check that skips the year walk must never hide a W003 that timing.lint_notes would report.


def test_transition_windows_berlin():
    assert _transition_windows("Europe/Berlin", NOW.date()) == (
        (datetime(2026, 3, 29, 1, 59), datetime(2026, 3, 29, 3, 1)),
        (datetime(2026, 10, 25, 1, 59), datetime(2026, 10, 25, 3, 1)))
    assert _transition_windows("UTC", NOW.date()) == ()


@pytest.mark.parametrize("zone", ["Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "Europe/London"])
def test_precheck_never_hides_a_dst_note(zone):
    tz = ZoneInfo(zone)
    timings = [DailyTiming(type="daily", at=f"{h:02d}:{m:02d}") for h in range(0, 4) for m in (0, 1, 29, 30, 59)]
    timings += [WeeklyTiming(type="weekly", days=["sun"], at="02:30")]
    timings += [HoursTiming(type="hours", every=n, minute=m) for n in (1, 2, 5) for m in (0, 30)]
    for timing in timings:
        notes = [c for c, _ in timing_math.lint_notes(timing, tz, NOW) if c == "W003"]
        if notes:
            assert _may_need_notes(timing, zone, NOW), (zone, timing)


# E031: run_command against the server's allowlist, only when it is known

SYNC = schedule(tasks="  - task: backup_database\n  - task: run_command\n    params: {command: sync-hrr}\n")


def test_e031_command_missing_from_a_known_allowlist():
    results = [load_schedule_text(SYNC, "sync.yaml")]
    findings = lint(results, "Europe/Berlin", now=NOW, commands={"sync-hr": ["/opt/hr/bin/sync"], "b": ["true"]})
    assert [(f.line, f.column, f.code, f.severity, f.path) for f in findings] == [
        (6, 23, "E031", "error", "tasks[1].params.command")]
    assert findings[0].message == ("can never run: command 'sync-hrr' is not in the server's allowlist (setting "
                                   "`commands`); allowlisted: b, sync-hr; did you mean 'sync-hr'?")


def test_e031_empty_allowlist_says_none_are_configured():
    (finding,) = lint([load_schedule_text(SYNC, "sync.yaml")], "Europe/Berlin", now=NOW, commands={})
    assert finding.code == "E031" and finding.message.endswith("allowlisted: none are configured")


def test_e031_not_when_allowlisted_or_the_allowlist_is_unknown():
    results = [load_schedule_text(SYNC, "sync.yaml")]
    assert lint(results, "Europe/Berlin", now=NOW, commands={"sync-hrr": ["true"]}) == []
    assert lint(results, "Europe/Berlin", now=NOW) == []  # CI without server settings: nothing to say
