"""Schedule model: every timing type valid and invalid (exact path and line:col), durations, zones, defaults."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import pytest

from zmi_reconciler.loader import load_schedule_text
from zmi_reconciler.schema import (Schedule, format_duration, is_valid_id, parse_duration)


def doc(timing: str) -> str:
    """A schedule whose timing block starts on line 3 (``timing:``), its fields on lines 4.."""
    return f"# modeline\nname: t\ntiming:\n{timing}tasks: [{{task: calculate_days}}]\n"


VALID_TIMINGS = [
    "  type: seconds\n  every: 1\n",
    "  type: seconds\n  every: 86400\n",
    "  type: minutes\n  every: 1440\n",
    "  type: hours\n  every: 24\n",
    "  type: hours\n  every: 2\n  minute: 59\n",
    '  type: daily\n  at: "00:00"\n',
    '  type: daily\n  at: ["23:59", "05:00"]\n',
    '  type: weekly\n  days: [mon, sun]\n  at: "12:30"\n',
    '  type: monthly\n  day: last\n  at: "05:00"\n',
    '  type: monthly\n  day: 31\n  at: "05:00"\n  short_month: skip\n',
    "  type: manual\n",
]


@pytest.mark.parametrize("timing", VALID_TIMINGS)
def test_valid_timings(timing):
    result = load_schedule_text(doc(timing), "t.yaml")
    assert result.findings == []
    assert result.schedule is not None


# (timing block, line, column, code, path, message)
INVALID_TIMINGS = [
    ("  type: seconds\n  every: 0\n", 5, 10, "E020", "timing.every",
     "expected a value >= 1 (seconds between fires, 1..86400), got 0"),
    ("  type: seconds\n  every: 86401\n", 5, 10, "E020", "timing.every",
     "expected a value <= 86400 (seconds between fires, 1..86400), got 86401"),
    ("  type: seconds\n", 3, 1, "E022", "timing.every", "missing required key 'every' (seconds between fires, 1..86400)"),
    ("  type: minutes\n  every: 1441\n", 5, 10, "E020", "timing.every",
     "expected a value <= 1440 (minutes between fires, 1..1440), got 1441"),
    ("  type: minutes\n  every: five\n", 5, 10, "E020", "timing.every", "expected an integer, got 'five'"),
    ("  type: minutes\n  every: 5\n  at: '05:00'\n", 6, 3, "E021", "timing.at",
     "unknown key 'at' (allowed: type, every)"),
    ("  type: hours\n  every: 25\n", 5, 10, "E020", "timing.every",
     "expected a value <= 24 (hours between slots, 1..24), got 25"),
    ("  type: hours\n  every: 2\n  minute: 60\n", 6, 11, "E020", "timing.minute",
     "expected a value <= 59 (minute after the hour, 0..59), got 60"),
    ("  type: hours\n  every: 2\n  minutes: 5\n", 6, 3, "E021", "timing.minutes",
     "unknown key 'minutes'; did you mean 'minute'? (allowed: type, every, minute)"),
    ('  type: daily\n  at: "24:00"\n', 5, 7, "E020", "timing.at",
     "expected a local time HH:MM (00:00..23:59), got '24:00'"),
    ("  type: daily\n  at: 5\n", 5, 7, "E020", "timing.at", "expected HH:MM or a list of them, got 5"),
    ('  type: daily\n  at: ["05:00", "5:00"]\n', 5, 17, "E020", "timing.at[1]",
     "expected a local time HH:MM (00:00..23:59), got '5:00'; write \"05:00\" (a time is HH:MM with a two-digit hour)"),
    ("  type: daily\n  at: []\n", 5, 7, "E020", "timing.at", "at least one time is required"),
    ('  type: daily\n  at: ["05:00", "05:00"]\n', 5, 7, "E020", "timing.at", "times must not repeat"),
    ("  type: daily\n", 3, 1, "E022", "timing.at", "missing required key 'at' (HH:MM or a list of them)"),
    ('  type: weekly\n  days: [mon, funday]\n  at: "05:00"\n', 5, 15, "E020", "timing.days[1]",
     "expected 'mon', 'tue', 'wed', 'thu', 'fri', 'sat' or 'sun', got 'funday'"),
    ('  type: weekly\n  days: []\n  at: "05:00"\n', 5, 9, "E020", "timing.days", "expected at least 1 item, got 0"),
    ('  type: weekly\n  days: [mon, mon]\n  at: "05:00"\n', 5, 9, "E020", "timing.days",
     "weekdays must not repeat"),
    ('  type: weekly\n  days: mon\n  at: "05:00"\n', 5, 9, "E020", "timing.days", "expected a list, got 'mon'"),
    ("  type: weekly\n  days: [fri]\n", 3, 1, "E022", "timing.at",
     "missing required key 'at' (local wall-clock time HH:MM)"),
    ('  type: monthly\n  day: 32\n  at: "05:00"\n', 5, 8, "E020", "timing.day",
     "expected a value <= 31 (1..31 or `last`), got 32"),
    ('  type: monthly\n  day: 0\n  at: "05:00"\n', 5, 8, "E020", "timing.day",
     "expected a value >= 1 (1..31 or `last`), got 0"),
    ('  type: monthly\n  day: first\n  at: "05:00"\n', 5, 8, "E020", "timing.day",
     "expected 1..31 or `last`, got 'first'"),
    ('  type: monthly\n  day: 31\n  at: "05:00"\n  short_month: first_day\n', 7, 16, "E020", "timing.short_month",
     "expected 'last_day' or 'skip', got 'first_day'"),
    ("  type: manual\n  every: 5\n", 5, 3, "E021", "timing.every", "unknown key 'every' (allowed: type)"),
    ("  type: cron\n", 4, 9, "E025", "timing.type",
     "unknown timing type 'cron'; expected one of: seconds, minutes, hours, daily, weekly, monthly, manual"),
    ("  every: 5\n", 3, 1, "E022", "timing.type",
     "missing required key 'type' (one of: seconds, minutes, hours, daily, weekly, monthly, manual)"),
]


@pytest.mark.parametrize("timing, line, column, code, path, message", INVALID_TIMINGS,
                         ids=[f"{t[4]}-{t[3]}-{i}" for i, t in enumerate(INVALID_TIMINGS)])
def test_invalid_timings(timing, line, column, code, path, message):
    result = load_schedule_text(doc(timing), "t.yaml")
    assert [(f.line, f.column, f.code, f.path, f.message) for f in result.findings] == \
           [(line, column, code, path, message)]
    assert result.schedule is None


def test_timing_as_scalar():
    result = load_schedule_text("name: t\ntiming: daily\ntasks: [{task: calculate_days}]\n", "t.yaml")
    assert [(f.line, f.column, f.code, f.path) for f in result.findings] == [(2, 9, "E012", "timing")]


BASE = 'name: t\ntiming: {type: daily, at: "05:00"}\ntasks: [{task: calculate_days}]\n'


@pytest.mark.parametrize("extra, line, column, path, message", [
    ("timezone: Mars/Base\n", 4, 11, "timezone",
     "unknown IANA time zone 'Mars/Base' (expected a key such as Europe/Berlin)"),
    ("timezone: ../../etc/passwd\n", 4, 11, "timezone",
     "unknown IANA time zone '../../etc/passwd' (expected a key such as Europe/Berlin)"),
    ("catch_up: 3 weeks\n", 4, 11, "catch_up",
     "expected a duration such as 90s, 10m, 2h, 1d or integer seconds, got '3 weeks'"),
    ("catch_up: -5\n", 4, 11, "catch_up", "a duration must not be negative"),
    ("overlap: parallel\n", 4, 10, "overlap", "expected 'skip' or 'queue', got 'parallel'"),
    ("enabled: maybe\n", 4, 10, "enabled", "expected true or false, got 'maybe'"),
    ("exclude:\n  - {from: '23:50', to: '24:10'}\n", 5, 25, "exclude[0].to",
     "expected a local time HH:MM (00:00..23:59), got '24:10'"),
    ("exclude:\n  - {from: '23:50'}\n", 5, 5, "exclude[0].to", "missing required key 'to' (local wall-clock time HH:MM)"),
    ("name2: x\n", 4, 1, "name2", "unknown key 'name2'; did you mean 'name'? (allowed: name, description, enabled, "
                                  "timezone, timing, catch_up, overlap, exclude, skip_holidays, tasks)"),
])
def test_schedule_field_errors(extra, line, column, path, message):
    result = load_schedule_text(BASE + extra, "t.yaml")
    assert [(f.line, f.column, f.path, f.message) for f in result.findings] == [(line, column, path, message)]


def test_empty_name_and_empty_tasks():
    result = load_schedule_text('name: ""\ntiming: {type: manual}\ntasks: []\n', "t.yaml")
    assert [(f.line, f.column, f.path, f.message) for f in result.findings] == [
        (1, 7, "name", "must not be empty"), (3, 8, "tasks", "expected at least 1 item, got 0")]


@pytest.mark.parametrize("name", ['"\\r\\n"', '"   "', '"\\t"'])
def test_blank_name_is_rejected(name):
    result = load_schedule_text(f"name: {name}\ntiming: {{type: manual}}\ntasks:\n  - task: calculate_days\n",
                                "t.yaml")
    assert [(f.line, f.column, f.code, f.path) for f in result.findings] == [(1, 7, "E020", "name")]
    assert result.findings[0].message.startswith("must contain a non-space character, got ")


def test_name_is_kept_as_written():
    result = load_schedule_text('name: "  Nightly "\ntiming: {type: manual}\ntasks:\n  - task: calculate_days\n',
                                "t.yaml")
    assert result.findings == [] and result.schedule is not None and result.schedule.name == "  Nightly "


def test_task_entry_fields():
    text = "name: t\ntiming: {type: manual}\ntasks:\n  - task: calculate_days\n    timeout: 1h30\n" \
           "    on_error: ignore\n    enabled: nope\n"
    result = load_schedule_text(text, "t.yaml")
    assert [(f.line, f.column, f.path) for f in result.findings] == [
        (5, 14, "tasks[0].timeout"), (6, 15, "tasks[0].on_error"), (7, 14, "tasks[0].enabled")]
    assert result.findings[1].message == "expected 'stop' or 'continue', got 'ignore'"


def test_defaults_and_helpers():
    schedule = Schedule.model_validate({"name": "n", "timing": {"type": "daily", "at": ["12:00", "05:00"]},
                                        "tasks": [{"task": "backup_database"}]})
    assert schedule.enabled is True and schedule.overlap == "skip" and schedule.exclude == []
    assert schedule.timing.times == ["05:00", "12:00"]
    assert schedule.catch_up_seconds() == 12 * 3600  # calendar timing default
    assert schedule.zone("Europe/Berlin") == ZoneInfo("Europe/Berlin")
    task = schedule.tasks[0]
    assert (task.timeout, task.on_error, task.enabled, task.params.keep) == (3600, "stop", True, 7)
    interval = Schedule.model_validate({"name": "n", "timing": {"type": "minutes", "every": 5},
                                        "timezone": "America/New_York", "tasks": [{"task": "alive_check"}]})
    assert interval.catch_up_seconds() == 0
    assert interval.zone("Europe/Berlin") == ZoneInfo("America/New_York")


@pytest.mark.parametrize("value, seconds", [(90, 90), ("90s", 90), ("10m", 600), ("2h", 7200), ("1d", 86400),
                                            ("45", 45), (" 5 m ", 300), (0, 0)])
def test_parse_duration(value, seconds):
    assert parse_duration(value) == seconds


@pytest.mark.parametrize("value", ["1w", "1.5h", "", "h", True, -1, None, 2.5])
def test_parse_duration_rejects(value):
    with pytest.raises(ValueError):
        parse_duration(value)


@pytest.mark.parametrize("seconds, text", [(3600, "1h"), (86400, "1d"), (90, "90s"), (600, "10m"), (0, "0s")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


def test_is_valid_id():
    assert is_valid_id("nightly") and is_valid_id("a-b_c9") and is_valid_id("x" * 63)
    assert not is_valid_id("Nightly") and not is_valid_id("_x") and not is_valid_id("x" * 64)
    assert not is_valid_id("a.b") and not is_valid_id("")


def test_empty_exclude_window():
    result = load_schedule_text(BASE + "exclude:\n  - {from: '05:00', to: '05:00'}\n", "t.yaml")
    assert [(f.line, f.column, f.code, f.path) for f in result.findings] == [(5, 5, "E020", "exclude[0]")]
    assert result.findings[0].message.startswith("'from' and 'to' are both 05:00: the window would exclude nothing")


def test_exclude_window_may_span_midnight():
    result = load_schedule_text(BASE + "exclude:\n  - {from: '23:50', to: '00:10'}\n", "t.yaml")
    assert result.findings == []
    assert (result.schedule.exclude[0].from_, result.schedule.exclude[0].to) == ("23:50", "00:10")
