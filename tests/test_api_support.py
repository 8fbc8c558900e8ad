"""Shared set-up for the API tests (no tests here): a temp schedules dir and data dir, the real journal and
runner with small registered test tasks, a reconciler, tokens, and a Litestar TestClient."""

from __future__ import annotations

import hashlib
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any


from zmi_reconciler.api.app import create_app
from zmi_reconciler.api.auth import Token, TokenStore
from zmi_reconciler.config import Settings
from zmi_reconciler.journal import Journal
from zmi_reconciler.reconcile import Reconciler
from zmi_reconciler.runner import Runner
from zmi_reconciler.tasks import catalog
from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskSpec

WRITE_TOKEN = "write-token-for-tests"
READ_TOKEN = "read-token-for-tests"
WRITE = {"Authorization": f"Bearer {WRITE_TOKEN}"}
READ = {"Authorization": f"Bearer {READ_TOKEN}"}

#: The SPEC section 2 example, byte for byte (comments aligned, quoted times, flow maps).
SPEC_EXAMPLE = """\
# yaml-language-server: $schema=../openapi/schedule.schema.json
name: Nightly processing             # required, 1..200 chars
description: Backup first, then days and months, then notify.
enabled: true                        # false = paused; nothing else changes
timezone: Europe/Berlin              # IANA key; default: server setting default_timezone
timing:
  type: daily
  at: "05:00"
catch_up: 12h                        # see 3.3; duration or 0
overlap: skip                        # skip | queue
exclude:                             # optional wall-clock windows with no fires (ZMI "Ausschlusszeiten")
  - {from: "23:50", to: "00:10"}
skip_holidays: false                 # true: no fires on public holidays of the server's holiday region
tasks:
  - task: backup_database
    params: {keep: 7}
    timeout: 30m                     # optional, default 1h

  - task: calculate_days
  - task: calculate_months
    params: {month: current}
  - task: send_notifications
    on_error: continue               # stop (default) | continue
    enabled: true                    # a single task can be switched off
"""


class Clock:
    """A settable clock (aware UTC)."""

    def __init__(self, now: datetime) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now


class Gate:
    """Lets a test hold a task open (overlap tests) and see that it started."""

    def __init__(self) -> None:
        self.started = threading.Event()
        self.release = threading.Event()


def _test_tasks(gate: Gate) -> dict[str, TaskSpec]:
    """Catalog names (so schedules validate) bound to small test functions that log and return counts."""

    def backup(ctx: TaskContext, params: Any) -> dict[str, Any]:
        ctx.log(f"backup kept {params.keep}")
        return {"files": 1, "keep": params.keep}

    def days(ctx: TaskContext, params: Any) -> dict[str, Any]:
        ctx.log("days calculated")
        return {"days": 30}

    def months(ctx: TaskContext, params: Any) -> dict[str, Any]:
        ctx.log("months calculated", month=params.month)
        return {"months": 1}

    def notify(ctx: TaskContext, params: Any) -> dict[str, Any]:
        raise TaskFailed("smtp refused")

    def alive(ctx: TaskContext, params: Any) -> dict[str, Any]:
        gate.started.set()
        ctx.log("holding")
        gate.release.wait(10)
        return {"held": 1}

    fns = {"backup_database": backup, "calculate_days": days, "calculate_months": months,
           "send_notifications": notify, "alive_check": alive}
    registry = dict(catalog.REGISTRY)
    for name, fn in fns.items():
        base = catalog.REGISTRY[name]
        registry[name] = TaskSpec(name=name, zmi_name=base.zmi_name, description=base.description,
                                  params_model=base.params_model, run=fn)
    return registry


@dataclass
class Env:
    settings: Settings
    clock: Clock
    journal: Journal
    runner: Runner
    reconciler: Reconciler
    app: Any
    gate: Gate
    closers: list[Any] = field(default_factory=list)

    @property
    def schedules(self) -> Path:
        return self.settings.schedules_dir

    def wait_idle(self, schedule_id: str, timeout: float = 10.0) -> None:
        """Wait until the schedule has no active run (runs execute on the runner's pool)."""
        import time

        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if not self.runner.status(schedule_id)["active_run"]:
                return
            time.sleep(0.01)
        raise AssertionError(f"{schedule_id} still running")


def make_env(tmp_path: Path, now: datetime | None = None, **settings_overrides: Any) -> Env:
    """A fresh environment in ``tmp_path``; the caller closes ``env.runner`` (see ``close_env``)."""
    (tmp_path / "schedules.d").mkdir(exist_ok=True)
    settings = Settings(data_dir=tmp_path / "var", schedules_dir=tmp_path / "schedules.d",
                        default_timezone="Europe/Berlin", **settings_overrides)
    settings.data_dir.mkdir(exist_ok=True)
    clock = Clock(now or datetime(2026, 3, 28, 12, 0, tzinfo=timezone.utc))
    journal = Journal(settings.journal_path, clock=clock)
    gate = Gate()
    runner = Runner(settings, journal, clock=clock, registry=_test_tasks(gate), workers=4)
    reconciler = Reconciler(settings, runner, journal, clock=clock)
    reconciler.reconcile_all()
    tokens = TokenStore([Token("writer", hashlib.sha256(WRITE_TOKEN.encode()).hexdigest(), "write"),
                         Token("reader", hashlib.sha256(READ_TOKEN.encode()).hexdigest(), "read")])
    app = create_app(settings, runner, reconciler, journal, clock=clock, tokens=tokens)
    return Env(settings, clock, journal, runner, reconciler, app, gate)


def close_env(env: Env) -> None:
    env.gate.release.set()
    env.runner.stop(grace_seconds=2)
    env.journal.close()


