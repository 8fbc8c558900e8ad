"""Shared helpers of the runner/runs tests (no tests here): a settable clock, test tasks that record what
they did, and schedules whose task list names those test tasks."""

from __future__ import annotations

import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from zmi_reconciler.config import Settings
from zmi_reconciler.journal import Journal
from zmi_reconciler.runner import Runner
from zmi_reconciler.schema import Schedule
from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskSpec

UTC = timezone.utc


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)


class FakeClock:
    """A wall clock the test moves by hand; ``monotonic`` advances with it unless ``step_wall`` is used."""

    def __init__(self, start: datetime) -> None:
        self.now = start
        self.mono = 1000.0
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            return self.now

    def monotonic(self) -> float:
        with self._lock:
            return self.mono

    def set(self, instant: datetime) -> None:
        with self._lock:
            self.mono += (instant - self.now).total_seconds()
            self.now = instant

    def advance(self, seconds: float) -> None:
        self.set(self.now + timedelta(seconds=seconds))

    def step_wall(self, seconds: float) -> None:
        """Step only the wall clock (an NTP step or an admin's ``date -s``)."""
        with self._lock:
            self.now += timedelta(seconds=seconds)


class Recorder:
    """Test tasks. ``params`` of an entry is a dict; ``name`` labels the call in :attr:`calls`."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, datetime]] = []  # (run_id, name, scheduled_for)
        self.lock = threading.Lock()
        self.release = threading.Event()
        self.started = threading.Event()

    def record(self, ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
        with self.lock:
            self.calls.append((ctx.run_id, params.get("name", ctx.task_name), ctx.scheduled_for))
        ctx.log(f"did {params.get('name')}")
        return {"done": 1}

    def fail(self, ctx: TaskContext, params: dict[str, Any]) -> None:
        self.record(ctx, params)
        raise TaskFailed("boom", result={"done": 0})

    def crash(self, ctx: TaskContext, params: dict[str, Any]) -> None:
        raise ZeroDivisionError("division by zero")

    def block(self, ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
        """Cooperative long task: runs until ``release`` is set, checking cancellation between units."""
        self.record(ctx, params)
        self.started.set()
        while not self.release.wait(0.005):
            ctx.check_cancelled()
        return {"done": 1}

    def hang(self, ctx: TaskContext, params: dict[str, Any]) -> dict[str, Any]:
        """Ignores cancellation entirely until ``release`` is set."""
        self.record(ctx, params)
        self.started.set()
        self.release.wait(30)
        return {"done": 1}

    def registry(self) -> dict[str, TaskSpec]:
        return {name: TaskSpec(name=name, zmi_name=name, description=name, run=getattr(self, name))
                for name in ("record", "fail", "crash", "block", "hang")}

    def names(self, run_id: str | None = None) -> list[str]:
        with self.lock:
            return [name for rid, name, _ in self.calls if run_id is None or rid == run_id]


def entry(task: str, name: str | None = None, *, timeout: float = 3600, on_error: str = "stop",
          enabled: bool = True) -> SimpleNamespace:
    """A task entry naming a test task (same attributes as the schema's task entry models)."""
    return SimpleNamespace(task=task, params={"name": name or task}, timeout=timeout, on_error=on_error,
                           enabled=enabled)


def make_schedule(timing: dict[str, Any], tasks: list[SimpleNamespace] | None = None, **fields: Any) -> Schedule:
    """A validated :class:`Schedule` whose task list is then replaced by test task entries."""
    sched = Schedule.model_validate({"name": "test", "timing": timing, "tasks": [{"task": "alive_check"}],
                                     **fields})
    sched.tasks = tasks if tasks is not None else [entry("record")]
    return sched


def make_settings(tmp_path: Path, **fields: Any) -> Settings:
    return Settings(data_dir=tmp_path, schedules_dir=tmp_path / "schedules.d", **fields)


def make_runner(tmp_path: Path, clock: FakeClock, recorder: Recorder, *, journal: Journal | None = None,
                **kwargs: Any) -> Runner:
    settings = kwargs.pop("settings", None) or make_settings(tmp_path)
    journal = journal or Journal(tmp_path / "journal", clock=clock)
    kwargs.setdefault("cancel_grace", 0.2)
    return Runner(settings, journal, clock, monotonic=clock.monotonic, registry=recorder.registry(), **kwargs)


def events(journal: Journal, event: str | None = None, schedule: str | None = None) -> list[dict[str, Any]]:
    return [e for e in journal.iter_events()
            if (event is None or e["event"] == event) and (schedule is None or e.get("schedule") == schedule)]


def wait_for(predicate, timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.002)
    return predicate()


def wait_idle(runner: Runner, timeout: float = 5.0) -> None:
    """Wait until no run of this runner is active (runs execute on real worker threads)."""
    assert wait_for(lambda: not runner.active_runs(), timeout), f"runs still active: {runner.active_runs()}"
