"""Checks across schedule files and lint warnings (SPEC section 2).

* ``E030`` (error): two files of one folder define the same schedule id (``x.yaml`` and ``x.yml``).
* ``E031`` (error): a ``run_command`` task names a command that is not in the server's allowlist (setting
  ``commands``), so it can never run. Only when the caller knows the allowlist (``commands`` given: ``validate``
  with a settings file, the server itself); without it nothing is said, as a schedules repository's CI
  usually has no server settings.
* ``W001``: a calculation task (``calculate_days`` / ``calculate_months``) runs before ``backup_database``
  in the same schedule. The ZMI manual recommends backing up first, so that a calculation that goes wrong
  can be undone from the backup taken just before it.
* ``W002``: two schedules share a ``name`` (the UI and notifications would not tell them apart).
* ``W003``: a fire lands in a DST gap or fold within the next 366 days; the message says what happens
  (from :func:`zmi_reconciler.timing.lint_notes`, RFC 5545 rules).
* ``W004``: ``monthly`` day 29..31; the message says which months lack that day and what ``short_month`` does.
* ``W005``: a task's params are legal but odd (the task's own ``TaskSpec.lint`` hints).

Warnings leave ``validate`` at exit 0 unless ``--strict``. Only schedules that loaded without errors are
linted (E031, W001..W005); E030 looks at every file.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence
from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from zoneinfo import ZoneInfo

from zmi_reconciler import timing as timing_math
from zmi_reconciler.loader import Finding, LoadResult, PathTuple, path_str
from zmi_reconciler.tasks import catalog
from zmi_reconciler.tasks.run_command import allowlist_problem

CALCULATION_TASKS = ("calculate_days", "calculate_months")
LINT_DAYS = 366


def lint(results: list[LoadResult], default_timezone: str, now: datetime | None = None,
         commands: Mapping[str, Sequence[str]] | None = None) -> list[Finding]:
    """Cross-file checks, E031 and W001-W005 for loaded files; ``now`` (aware, default: the real clock) starts
    the 366-day window of W003/W004. ``commands``: the server's ``run_command`` allowlist (name -> argv) when
    known; None skips E031. Returns findings sorted by file, line, column."""
    now = now or datetime.now(timezone.utc)
    findings = _duplicate_ids(results) + _duplicate_names(results)
    for result in results:
        if result.schedule is None:
            continue
        if commands is not None:
            findings += command_errors(result, commands)
        findings += _backup_first(result)
        findings += _timing_notes(result, default_timezone, now)
        findings += _task_hints(result)
    findings.sort(key=lambda f: (f.file, f.line, f.column, f.code))
    return findings


def _warning(result: LoadResult, path: PathTuple, code: str, message: str, key: bool = False) -> Finding:
    line, column = result.where(path, key=key)
    return Finding(str(result.file), line, column, path_str(path), code, "warning", message)


def _duplicate_ids(results: list[LoadResult]) -> list[Finding]:
    groups: dict[tuple[str, str], list[LoadResult]] = defaultdict(list)
    for result in results:
        groups[(str(result.file.parent.absolute()), result.schedule_id)].append(result)
    findings = []
    for (_, schedule_id), group in groups.items():
        if len({r.file.name for r in group}) < 2:
            continue
        for result in group:
            others = ", ".join(sorted(r.file.name for r in group if r.file.name != result.file.name))
            findings.append(Finding(str(result.file), 1, 1, "", "E030", "error",
                                    f"schedule id '{schedule_id}' is also defined by {others}; the id is the file "
                                    "name without extension, keep only one of the files"))
    return findings


def _duplicate_names(results: list[LoadResult]) -> list[Finding]:
    by_name: dict[str, list[LoadResult]] = defaultdict(list)
    for result in results:
        if result.schedule is not None:
            by_name[result.schedule.name].append(result)
    findings = []
    for name, group in by_name.items():
        if len(group) < 2:
            continue
        for result in group:
            others = ", ".join(str(r.file) for r in group if r is not result)
            findings.append(_warning(result, ("name",), "W002",
                                     f"'{name}' is also the name of {others}; give each schedule its own name"))
    return findings


def command_errors(result: LoadResult, commands: Mapping[str, Sequence[str]]) -> list[Finding]:
    """E031 for each ``run_command`` task of a loaded ``result`` whose command is not in ``commands`` (the
    server's allowlist, name -> argv); [] when all can run. Used by :func:`lint` and by the API's writes."""
    findings = []
    for index, entry in enumerate(result.schedule.tasks):  # type: ignore[union-attr]
        problem = allowlist_problem(entry.params.command, commands) if entry.task == "run_command" else None
        if problem is not None:
            path: PathTuple = ("tasks", index, "params", "command")
            line, column = result.where(path)
            findings.append(Finding(str(result.file), line, column, path_str(path), "E031", "error",
                                    f"can never run: {problem}"))
    return findings


def _backup_first(result: LoadResult) -> list[Finding]:
    tasks = result.schedule.tasks  # type: ignore[union-attr]
    names = [t.task for t in tasks]
    if "backup_database" not in names:
        return []
    backup = names.index("backup_database")
    return [
        _warning(result, ("tasks", index, "task"), "W001",
                 f"{name} runs before backup_database (tasks[{backup}]); the ZMI manual recommends the backup "
                 "first, so a calculation that goes wrong can be undone from it: move backup_database up")
        for index, name in enumerate(names[:backup]) if name in CALCULATION_TASKS
    ]


def _task_hints(result: LoadResult) -> list[Finding]:
    findings = []
    for index, entry in enumerate(result.schedule.tasks):  # type: ignore[union-attr]
        spec = catalog.REGISTRY[entry.task]
        if spec.lint is None:
            continue
        path: PathTuple = ("tasks", index, "params") if ("tasks", index, "params") in result.positions \
            else ("tasks", index, "task")
        for hint in spec.lint(entry.params):
            findings.append(_warning(result, path, "W005", f"{entry.task}: {hint}"))
    return findings


def _timing_notes(result: LoadResult, default_timezone: str, now: datetime) -> list[Finding]:
    schedule = result.schedule
    assert schedule is not None
    timing = schedule.timing
    zone_key = schedule.timezone or default_timezone
    if not _may_need_notes(timing, zone_key, now):
        return []
    findings = []
    for code, message in _lint_notes(timing.model_dump_json(), type(timing), zone_key, now.date()):
        findings.append(_warning(result, _note_path(result, code, message), code, message))
    return findings


@lru_cache(maxsize=4096)
def _lint_notes(timing_json: str, model: type, zone_key: str, start: date) -> tuple[tuple[str, str], ...]:
    """timing.lint_notes, cached: many schedules share a timing (daily 05:00) and the walk over a year of
    fires is the expensive part of ``validate``."""
    timing = model.model_validate_json(timing_json)
    start_utc = datetime.combine(start, time(), tzinfo=timezone.utc)
    return tuple(timing_math.lint_notes(timing, ZoneInfo(zone_key), start_utc, days=LINT_DAYS))


def _note_path(result: LoadResult, code: str, message: str) -> PathTuple:
    timing = result.schedule.timing  # type: ignore[union-attr]
    if code == "W004":
        return ("timing", "day")
    if timing.type == "daily" and isinstance(timing.at, list) and message[:5] in timing.at:
        return ("timing", "at", timing.at.index(message[:5]))
    if timing.type in ("daily", "weekly", "monthly"):
        return ("timing", "at")
    if timing.type == "hours":
        return ("timing", "minute") if ("timing", "minute") in result.positions else ("timing", "every")
    return ("timing",)


# A cheap pre-check so that only timings near a DST transition pay for the full year walk.


def _may_need_notes(timing, zone_key: str, now: datetime) -> bool:
    if timing.type == "monthly":
        return True  # W004, and the walk is only twelve fires
    if timing.type not in ("daily", "weekly", "hours"):
        return False
    windows = _transition_windows(zone_key, now.date())
    if not windows:
        return False
    minutes = _wall_minutes(timing)
    for lo, hi in windows:
        day = lo.date()
        while day <= hi.date():
            midnight = datetime.combine(day, time())
            for minute in minutes:
                if lo <= midnight + timedelta(minutes=minute) < hi:
                    return True
            day += timedelta(days=1)
    return False


def _wall_minutes(timing) -> list[int]:
    if timing.type == "hours":
        return [h * 60 + timing.minute for h in range(0, 24, timing.every)]
    times = timing.times if timing.type == "daily" else [timing.at]
    return [int(t[:2]) * 60 + int(t[3:]) for t in times]


@lru_cache(maxsize=256)
def _transition_windows(zone_key: str, start: date) -> tuple[tuple[datetime, datetime], ...]:
    """Local wall-clock windows (naive, half-open) that are skipped or repeated by a UTC offset change in
    ``zone_key`` within :data:`LINT_DAYS` (+2) days after ``start``."""
    zone = ZoneInfo(zone_key)
    step = timedelta(hours=6)
    at = datetime.combine(start - timedelta(days=1), time(), tzinfo=timezone.utc)
    end = at + timedelta(days=LINT_DAYS + 3)
    windows = []
    offset = at.astimezone(zone).utcoffset()
    while at < end:
        nxt = at + step
        new_offset = nxt.astimezone(zone).utcoffset()
        if new_offset != offset:
            lo, hi = int(at.timestamp()), int(nxt.timestamp())  # offset changes in (lo, hi]
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if datetime.fromtimestamp(mid, timezone.utc).astimezone(zone).utcoffset() == offset:
                    lo = mid
                else:
                    hi = mid
            instant = datetime.fromtimestamp(hi, timezone.utc).replace(tzinfo=None)
            old_wall, new_wall = instant + offset, instant + new_offset  # type: ignore[operator]
            margin = timedelta(minutes=1)  # a filter: being generous costs only time
            windows.append((min(old_wall, new_wall) - margin, max(old_wall, new_wall) + margin))
            offset = new_offset
        at = nxt
    return tuple(windows)
