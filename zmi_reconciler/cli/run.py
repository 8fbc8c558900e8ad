"""``zmi-reconciler run ID [--task N]``: run one schedule now, in this process, journaled (trigger ``manual``).

``ID`` is a schedule id (``schedules.d/<ID>.yaml`` or ``.yml``) or a path to a schedule file. ``--task`` (may be
repeated) runs only those tasks: a 0-based index as in the journal, or a task name (all entries with that
name). The run is written to the same journal as the server's (under its cross-process lock); when the journal
shows a run of this schedule still active in a live process (the server or another ``run``), the command
refuses (exit 1) unless ``--force``. Ctrl-C cancels the running task cooperatively (recorded interrupted).

Prints a summary (``--format json``: the outcome as JSON). Exit code: 0 only when the run succeeded; 1 when it
failed, was partial or interrupted, or overlapped an active run; 2 for usage, settings or an invalid file.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
from dataclasses import asdict
from pathlib import Path

from zmi_reconciler.config import ConfigError, Settings, settings_from_args
from zmi_reconciler.logging_setup import setup_logging


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("id", metavar="ID", help="schedule id (file stem in the schedules dir) or a schedule file")
    parser.add_argument("--task", action="append", metavar="N",
                        help="run only this task: 0-based index or task name (repeatable)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="summary format")
    parser.add_argument("--force", action="store_true", help="run even when the journal shows an active run")
    parser.add_argument("--log-format", choices=("text", "json"), help="stderr log format")


def _schedule_file(settings: Settings, ident: str) -> Path | None:
    given = Path(ident)
    if given.suffix in (".yaml", ".yml") and given.is_file():
        return given
    for suffix in (".yaml", ".yml"):
        candidate = settings.schedules_dir / f"{ident}{suffix}"
        if candidate.is_file():
            return candidate
    return None


def _task_indexes(schedule, selectors: list[str] | None) -> tuple[int, ...] | None:
    if not selectors:
        return None
    n = len(schedule.tasks)
    chosen: set[int] = set()
    for sel in selectors:
        if sel.isdigit():
            index = int(sel)
            if index >= n:
                raise ValueError(f"--task {sel}: the schedule has tasks 0..{n - 1}")
            chosen.add(index)
        else:
            matches = [i for i, entry in enumerate(schedule.tasks) if entry.task == sel]
            if not matches:
                names = ", ".join(entry.task for entry in schedule.tasks)
                raise ValueError(f"--task {sel}: no such task in this schedule ({names})")
            chosen.update(matches)
    return tuple(sorted(chosen))


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
        setup_logging(args.log_format or settings.log_format, settings.log_level)
    except (ConfigError, ValueError) as exc:
        print(f"zmi-reconciler: {exc}", file=sys.stderr)
        return 2
    from zmi_reconciler.journal import Journal
    from zmi_reconciler.loader import load_schedule_file
    from zmi_reconciler.runs import RunHandle, RunRequest, execute_run, manual_run_id
    from zmi_reconciler.tasks import catalog
    from zmi_reconciler.tasks.base import utc_now

    path = _schedule_file(settings, args.id)
    if path is None:
        print(f"zmi-reconciler: no schedule {args.id!r} in {settings.schedules_dir}", file=sys.stderr)
        return 2
    result = load_schedule_file(path)
    if result.schedule is None:
        for finding in result.errors:
            print(finding.text(), file=sys.stderr)
        return 2
    schedule_id = result.schedule_id
    try:
        indexes = _task_indexes(result.schedule, args.task)
    except ValueError as exc:
        print(f"zmi-reconciler: {exc}", file=sys.stderr)
        return 2
    journal = Journal(settings.journal_path, retention_days=settings.journal_retention_days)
    journal.close_interrupted()  # only runs of dead processes; a live server's runs are left alone
    last = journal.last_run(schedule_id)
    if last is not None and last.get("status") == "running" and not args.force:
        print(f"zmi-reconciler: schedule {schedule_id} has an active run {last['run_id']} (use --force to run "
              f"anyway)", file=sys.stderr)
        return 1
    now = utc_now()
    handle = RunHandle(RunRequest(schedule_id, result.schedule, result.content_hash, "manual", now,
                                  manual_run_id(schedule_id, now), indexes))
    restore = _cancel_on_interrupt(handle)
    try:
        outcome = execute_run(handle, settings=settings, journal=journal, registry=catalog.REGISTRY)
    finally:
        restore()
        journal.close()
    if args.format == "json":
        print(json.dumps(asdict(outcome), indent=2))
    else:
        print(f"run {outcome.run_id}: {outcome.status} in {outcome.duration_ms / 1000:.1f} s")
        for task in outcome.tasks:
            line = f"  {task.index:>2} {task.task:<20} {task.status:<10} {task.duration_ms / 1000:6.1f} s"
            if task.result:
                line += "  " + ", ".join(f"{k}={v}" for k, v in task.result.items())
            if task.error:
                line += f"  error: {task.error}"
            print(line)
    return 0 if outcome.status == "succeeded" else 1


def _cancel_on_interrupt(handle):
    """Ctrl-C / SIGTERM cancel the run cooperatively; a second one falls back to the default behaviour."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        print("zmi-reconciler: cancelling the run (again to abort)", file=sys.stderr)
        for sig, previous in old.items():
            signal.signal(sig, previous)
        handle.request_cancel()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGINT, signal.SIGTERM)}

    def restore():
        for sig, previous in old.items():
            signal.signal(sig, previous)

    return restore
