"""Execution of one run (SPEC section 4): the schedule's tasks top to bottom, journaled.

A run is described by a :class:`RunRequest` (what to run and why) and tracked by a :class:`RunHandle` (live
state shared with the runner: cancel event, done event, "closed" flag). :func:`execute_run` does the work in
the calling thread and returns a :class:`RunOutcome`; the runner calls it on its worker pool, ``zmi-reconciler
run`` calls it directly.

Journal events written here (every one carries ``schedule`` and ``run_id``; task events ``index`` and ``task``):
``run_started`` (trigger, scheduled_for, content_hash), ``task_started``, ``task_log`` (from ``ctx.log``),
``task_finished`` (status, duration_ms, result, error) and ``run_finished`` (status, duration_ms) -- or
``run_interrupted`` (reason ``shutdown``) when the server stops the run.

Statuses. Task: ``succeeded | failed | skipped | timed_out``. Run: ``succeeded`` (no task failed or timed out),
``failed`` (stopped by a failure with ``on_error: stop``, or every task that ran failed), ``partial``
(failures with ``on_error: continue`` and at least one success), ``interrupted`` (server shutdown here; a
crash is closed by ``Journal.close_interrupted`` at the next start).

Timeout design: cooperative cancellation with abandonment. Every task body runs on a thread of its own (a
reused daemon thread from :class:`TaskThreads`, never shared with another task while it runs); the
run's thread (a pool worker) waits for it for at most ``timeout`` seconds of monotonic time. At the timeout
the task's ``ctx.cancel`` event is set; well-behaved tasks call ``ctx.check_cancelled()`` between units of
work (``run_command`` kills its child process) and end within ``cancel_grace`` seconds. A task that ignores
the event is *abandoned*: it is recorded ``timed_out`` at once, its thread is left to finish on its own (its
later ``ctx.log`` calls go to the process log only, never into a closed run) and the run goes on without
it. We chose this over a subprocess per run because tasks share the process's SQLite store, settings and
journal, and because a subprocess per run would cost ~100 ms of interpreter start per run on fast timings;
the price is that Python cannot kill a thread, so an abandoned task keeps its CPU/IO until it returns.
"""

from __future__ import annotations

import logging
import queue
import secrets
import threading
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any, Callable, Mapping

from pydantic import BaseModel

from zmi_reconciler.tasks.base import TaskCancelled, TaskContext, TaskFailed, TaskSpec, utc_now

if TYPE_CHECKING:  # pragma: no cover
    from zmi_reconciler.config import Settings

log = logging.getLogger("zmi_reconciler.runs")

TRIGGERS = ("scheduled", "catch_up", "manual")
#: Seconds a cancelled task gets to notice ``ctx.cancel`` before it is abandoned.
DEFAULT_CANCEL_GRACE = 5.0


def slot_stamp(instant: datetime) -> str:
    """Aware instant -> ``20261129T040000Z`` (UTC, seconds)."""
    t = instant.astimezone(timezone.utc)
    return f"{t.year:04d}{t.month:02d}{t.day:02d}T{t.hour:02d}{t.minute:02d}{t.second:02d}Z"


def scheduled_run_id(schedule_id: str, slot: datetime) -> str:
    """Deterministic id of the run of ``slot`` (scheduled or catch-up): ``nightly@20261129T040000Z``."""
    return f"{schedule_id}@{slot_stamp(slot)}"


def manual_run_id(schedule_id: str, now: datetime) -> str:
    """Id of a manual run: ``nightly@manual-20261129T040000Z-3f9a1c`` (UTC time plus a random suffix)."""
    return f"{schedule_id}@manual-{slot_stamp(now)}-{secrets.token_hex(3)}"


def iso_utc(instant: datetime) -> str:
    """Aware instant -> ISO 8601 in UTC with ms and ``Z`` (the journal's format)."""
    t = instant.astimezone(timezone.utc)
    return (f"{t.year:04d}-{t.month:02d}-{t.day:02d}T{t.hour:02d}:{t.minute:02d}:{t.second:02d}."
            f"{t.microsecond // 1000:03d}Z")


@dataclass(frozen=True)
class RunRequest:
    """What to run. ``scheduled_for`` is the slot (aware UTC), the trigger instant for manual runs;
    ``task_indexes`` (0-based, ascending) limits a manual run to some tasks, None = all."""

    schedule_id: str
    schedule: Any  # zmi_reconciler.schema.Schedule (or a test double with .tasks)
    content_hash: str
    trigger: str
    scheduled_for: datetime
    run_id: str
    task_indexes: tuple[int, ...] | None = None


@dataclass
class TaskOutcome:
    """One task's record: ``status`` in ``succeeded | failed | skipped | timed_out``; ``duration_ms`` integer."""

    index: int
    task: str
    status: str
    duration_ms: int = 0
    result: dict[str, Any] = field(default_factory=dict)
    error: str | None = None


@dataclass
class RunOutcome:
    """A run's end: ``status`` in ``succeeded | failed | partial | interrupted``."""

    run_id: str
    status: str
    tasks: list[TaskOutcome]
    duration_ms: int


class RunHandle:
    """Live state of one run, shared between its worker thread and the runner.

    ``cancel`` is set on shutdown (the current task's ``ctx.cancel`` too); ``done`` is set once the run has
    ended (or was given up); :meth:`close` decides who writes the run's last journal line, so a run given up
    at shutdown never gets a ``run_finished`` after its ``run_interrupted``.
    """

    def __init__(self, request: RunRequest) -> None:
        self.request = request
        self.outcome: RunOutcome | None = None
        self.future: Any = None  # the worker pool future, set by the runner
        self._lock = threading.RLock()
        self._closed = False
        self._task_cancel: threading.Event | None = None
        self._events: dict[str, threading.Event] = {}

    def _event(self, name: str) -> threading.Event:
        # Created on first use: the runner makes hundreds of handles per second in its loop thread, most of
        # whose events are only ever touched by the worker that runs them.
        event = self._events.get(name)
        if event is None:
            with self._lock:
                event = self._events.get(name)
                if event is None:
                    event = self._events[name] = threading.Event()
        return event

    @property
    def cancel(self) -> threading.Event:
        """Set on shutdown."""
        return self._event("cancel")

    @property
    def done(self) -> threading.Event:
        """Set once the run has ended or was given up."""
        return self._event("done")

    @property
    def _wake(self) -> threading.Event:
        return self._event("wake")

    @property
    def run_id(self) -> str:
        return self.request.run_id

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> bool:
        """Mark the run's record closed; True for the first caller only (that caller writes the last line)."""
        with self._lock:
            if self._closed:
                return False
            self._closed = True
            return True

    def request_cancel(self) -> None:
        """Shutdown: set the run's and the current task's cancel events and wake the run's thread."""
        with self._lock:
            self.cancel.set()
            if self._task_cancel is not None:
                self._task_cancel.set()
        self._wake.set()

    def _begin_task(self, task_cancel: threading.Event) -> None:
        with self._lock:
            self._task_cancel = task_cancel
            if self.cancel.is_set():
                task_cancel.set()


class TaskThreads:
    """Reusable daemon threads for task bodies (starting a thread costs ~0.4 ms on small machines).

    An idle thread takes the next task; when none is idle a new one starts -- there is no upper bound, so a
    task abandoned after its timeout only ever occupies its own thread. Idle threads exit after
    ``idle_seconds``.
    """

    def __init__(self, idle_seconds: float = 60.0) -> None:
        self._idle_seconds = idle_seconds
        self._lock = threading.Lock()
        self._idle = 0
        self._queue: queue.SimpleQueue[tuple[str, Callable[[], None]]] = queue.SimpleQueue()

    def spawn(self, name: str, fn: Callable[[], None]) -> None:
        """Run ``fn()`` on an idle thread or a new daemon thread named ``name``."""
        with self._lock:
            if self._idle > 0:
                self._idle -= 1
                self._queue.put((name, fn))
                return
        threading.Thread(target=self._work, args=(name, fn), name=name, daemon=True).start()

    def _work(self, name: str, fn: Callable[[], None]) -> None:
        while True:
            threading.current_thread().name = name
            try:
                fn()
            except BaseException:  # noqa: BLE001 - fn reports its own errors; a thread must not die silently
                log.exception("task thread %s failed", name)
            with self._lock:
                self._idle += 1
            try:
                name, fn = self._queue.get(timeout=self._idle_seconds)
            except queue.Empty:
                with self._lock:
                    try:  # a task handed to "some idle thread" just before our timeout is ours to run
                        name, fn = self._queue.get_nowait()
                    except queue.Empty:
                        self._idle -= 1
                        return


def _new_thread(name: str, fn: Callable[[], None]) -> None:
    threading.Thread(target=fn, name=name, daemon=True).start()


class _RunJournal:
    """Journal writes of one run; silent once the handle is closed by someone else."""

    def __init__(self, journal: Any, handle: RunHandle) -> None:
        self._journal = journal
        self._handle = handle
        self._base = {"schedule": handle.request.schedule_id, "run_id": handle.request.run_id}

    def write(self, event: str, **fields: Any) -> None:
        if self._handle.closed:
            return
        try:
            self._journal.append(event, **self._base, **fields)
        except Exception:  # the journal failing must not kill the run; the process log still has it
            log.exception("journal append failed: %s %s", event, self._base["run_id"])

    def finish(self, event: str, **fields: Any) -> bool:
        if not self._handle.close():
            return False
        try:
            self._journal.append(event, **self._base, **fields)
        except Exception:
            log.exception("journal append failed: %s %s", event, self._base["run_id"])
        return True


def _result_dict(result: Any) -> dict[str, Any]:
    if result is None:
        return {}
    if isinstance(result, BaseModel):
        return result.model_dump(mode="json")
    if isinstance(result, Mapping):
        return dict(result)
    return {"value": repr(result)}


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, TaskFailed):
        return str(exc) or type(exc).__name__
    return f"{type(exc).__name__}: {exc}"


def run_status(outcomes: list[TaskOutcome], stopped: bool) -> str:
    """Run status from its task outcomes (SPEC 4). ``stopped``: a failure with ``on_error: stop`` ended it."""
    bad = [o for o in outcomes if o.status in ("failed", "timed_out")]
    good = [o for o in outcomes if o.status == "succeeded"]
    if not bad:
        return "succeeded"
    if stopped or not good:
        return "failed"
    return "partial"


def run_started_fields(request: RunRequest) -> dict[str, Any]:
    """The ``run_started`` event's fields for ``request`` (the runner may write it at dispatch, batched)."""
    return {"schedule": request.schedule_id, "run_id": request.run_id, "trigger": request.trigger,
            "scheduled_for": iso_utc(request.scheduled_for), "content_hash": request.content_hash,
            "tasks": [i for i, _ in _selected(request)]}


def _selected(request: RunRequest) -> list[tuple[int, Any]]:
    entries = list(enumerate(request.schedule.tasks))
    if request.task_indexes is not None:
        wanted = set(request.task_indexes)
        entries = [(i, e) for i, e in entries if i in wanted]
    return entries


def execute_run(handle: RunHandle, *, settings: "Settings", journal: Any, registry: Mapping[str, TaskSpec],
                clock: Callable[[], datetime] = utc_now, cancel_grace: float = DEFAULT_CANCEL_GRACE,
                open_store: Callable[[], Any] | None = None, started_written: bool = False,
                spawn: Callable[[str, Callable[[], None]], None] = _new_thread) -> RunOutcome:
    """Run ``handle.request`` in this thread and journal it; returns the outcome (never raises for task errors).

    Tasks not listed in ``task_indexes`` are left out (not journaled). A task with ``enabled: false`` is
    ``skipped`` unless it was selected explicitly; after a failure with ``on_error: stop`` the remaining tasks
    are ``skipped``. Each task gets ``entry.timeout`` seconds (see the module docstring for how a timeout
    stops it). Sets ``handle.outcome`` and ``handle.done``. ``started_written``: the caller has journaled
    ``run_started`` already (see :func:`run_started_fields`). ``spawn(name, fn)`` starts a task body on a
    thread (default: a new daemon thread; the runner passes :meth:`TaskThreads.spawn`).
    """
    req = handle.request
    rj = _RunJournal(journal, handle)
    started = time.monotonic()
    entries = _selected(req)
    if not started_written:
        fields = run_started_fields(req)
        del fields["schedule"], fields["run_id"]
        rj.write("run_started", **fields)
    outcomes: list[TaskOutcome] = []
    stopped_by: TaskOutcome | None = None
    try:
        for index, entry in entries:
            if handle.cancel.is_set():
                break
            if stopped_by is not None:
                outcomes.append(_skip(rj, index, entry, f"task {stopped_by.index} ({stopped_by.task}) "
                                                         f"{stopped_by.status} with on_error: stop"))
                continue
            if not entry.enabled and req.task_indexes is None:
                outcomes.append(_skip(rj, index, entry, "task disabled (enabled: false)"))
                continue
            outcome = _run_task(handle, rj, index, entry, settings=settings, journal=journal, registry=registry,
                                clock=clock, cancel_grace=cancel_grace, open_store=open_store, spawn=spawn)
            outcomes.append(outcome)
            if outcome.status in ("failed", "timed_out") and entry.on_error == "stop" and not handle.cancel.is_set():
                stopped_by = outcome
        duration_ms = int((time.monotonic() - started) * 1000)
        if handle.cancel.is_set():
            status = "interrupted"
            rj.finish("run_interrupted", status=status, reason="shutdown", duration_ms=duration_ms)
        else:
            status = run_status(outcomes, stopped=stopped_by is not None)
            rj.finish("run_finished", status=status, duration_ms=duration_ms)
        handle.outcome = RunOutcome(req.run_id, status, outcomes, duration_ms)
        return handle.outcome
    finally:
        handle.done.set()


def _skip(rj: _RunJournal, index: int, entry: Any, reason: str) -> TaskOutcome:
    rj.write("task_finished", index=index, task=entry.task, status="skipped", duration_ms=0, result={},
             error=None, reason=reason)
    return TaskOutcome(index, entry.task, "skipped", error=None)


def _run_task(handle: RunHandle, rj: _RunJournal, index: int, entry: Any, *, settings: "Settings", journal: Any,
              registry: Mapping[str, TaskSpec], clock: Callable[[], datetime], cancel_grace: float,
              open_store: Callable[[], Any] | None, spawn: Callable[[str, Callable[[], None]], None]
              ) -> TaskOutcome:
    req = handle.request
    name = entry.task
    spec = registry.get(name)
    task_cancel = threading.Event()
    abandoned = threading.Event()
    task_log = logging.getLogger(f"zmi_reconciler.task.{name}")

    def ctx_log(message: str, level: str = "info", **fields: Any) -> None:
        level_no = logging.getLevelName(str(level).upper())
        task_log.log(level_no if isinstance(level_no, int) else logging.INFO, "%s [%s #%d] %s",
                     req.run_id, name, index, message)
        if not abandoned.is_set():
            rj.write("task_log", index=index, task=name, level=level, message=str(message), **fields)

    ctx = TaskContext(settings=settings, schedule_id=req.schedule_id, run_id=req.run_id, task_index=index,
                      task_name=name, scheduled_for=req.scheduled_for, trigger=req.trigger, log=ctx_log,
                      clock=clock, cancel=task_cancel, logger=task_log, open_store=open_store, journal=journal)
    rj.write("task_started", index=index, task=name)
    started = time.monotonic()

    def finished(status: str, result: Any = None, error: str | None = None) -> TaskOutcome:
        outcome = TaskOutcome(index, name, status, int((time.monotonic() - started) * 1000),
                              _result_dict(result), error)
        rj.write("task_finished", index=index, task=name, status=status, duration_ms=outcome.duration_ms,
                 result=outcome.result, error=error)
        return outcome

    if spec is None or spec.run is None or not spec.available:
        why = "unknown task" if spec is None else (spec.unavailable_reason or "task has no implementation")
        return finished("failed", error=f"task {name!r} cannot run: {why}")

    box: dict[str, Any] = {}
    task_done = threading.Event()

    def target() -> None:
        try:
            box["result"] = spec.run(ctx, entry.params)
        except BaseException as exc:  # noqa: BLE001 - everything a task raises is its failure
            box["error"] = exc
        finally:
            task_done.set()
            handle._wake.set()

    handle._begin_task(task_cancel)
    handle._wake.clear()
    spawn(f"task {req.run_id}#{index}", target)
    timeout = float(entry.timeout)
    deadline = started + timeout
    while not task_done.is_set():
        if handle.cancel.is_set():  # shutdown: the task's cancel event is already set
            note = "interrupted by server shutdown"
            if not task_done.wait(cancel_grace):
                abandoned.set()
                note += f"; did not stop within {cancel_grace:g} s and was abandoned"
            return finished("failed", box.get("result"), note)
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            task_cancel.set()
            if task_done.wait(cancel_grace):
                note = f"timed out after {timeout:g} s; stopped"
            else:
                abandoned.set()
                note = (f"timed out after {timeout:g} s; did not stop within {cancel_grace:g} s "
                        f"and was abandoned (its thread may still be running)")
            log.warning("run %s task %d (%s): %s", req.run_id, index, name, note)
            err = box.get("error")
            return finished("timed_out", getattr(err, "result", None) or box.get("result"), note)
        handle._wake.wait(remaining)
        handle._wake.clear()
    if "error" in box:
        exc = box["error"]
        if isinstance(exc, TaskCancelled) and handle.cancel.is_set():
            return finished("failed", None, "interrupted by server shutdown")
        if not isinstance(exc, TaskFailed):
            log.error("run %s task %d (%s) raised", req.run_id, index, name, exc_info=exc)
        return finished("failed", getattr(exc, "result", None), _error_text(exc))
    return finished("succeeded", box.get("result"))
