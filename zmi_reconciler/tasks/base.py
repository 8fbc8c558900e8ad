"""The task protocol: every catalog entry is a :class:`TaskSpec` with a params model, a result model and a
``run(ctx, params) -> result`` function (SPEC section 6).

A task module (``tasks/<name>.py``) defines ``Params``, ``Result`` and ``SPEC``; :mod:`.catalog` registers it
with one line. Heavy imports (SQLite store, SMTP, HTTP) happen inside ``run`` so that loading the catalog for
``validate`` stays cheap.

Failure contract: a task that cannot do its job raises :class:`TaskFailed` (or any exception); it never
returns a result that pretends success. Long tasks call ``ctx.check_cancelled()`` between units of work;
it raises :class:`TaskCancelled` once the run's timeout or shutdown has been signalled.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Callable

from pydantic import BaseModel, ConfigDict

from zmi_reconciler.clock import utc_now  # noqa: F401  (re-exported: tasks use tasks.base.utc_now)

if TYPE_CHECKING:  # pragma: no cover
    from zmi_reconciler.config import Settings


class TaskParams(BaseModel):
    """Base of every task's params model: unknown keys are errors (``extra="forbid"``), and values are
    validated strictly, as the published JSON Schema says (``strict=True``, like the schedule model): a
    quoted number (``keep: "7"``) is no integer or number, ``0``/``1`` or ``"yes"`` no boolean.

    Dates, which YAML and JSON can only give as text, use
    :data:`zmi_reconciler.tasks._common.IsoDate` (an ISO ``YYYY-MM-DD`` string or a ``date``).
    """

    model_config = ConfigDict(extra="forbid", strict=True)


class NoParams(TaskParams):
    """Params model of tasks that take none."""


class TaskResult(BaseModel):
    """Base of every task's result model (counts the task produced; journaled in ``task_finished``)."""

    # Built when the task first runs rather than when the catalog is imported (start-up and validate need none).
    model_config = ConfigDict(extra="forbid", defer_build=True)


class TaskFailed(Exception):
    """The task could not do its job; the message is journaled as the task's error. ``result`` may carry
    the counts reached before the failure."""

    def __init__(self, message: str, result: BaseModel | dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.result = result


class TaskCancelled(Exception):
    """Raised by :meth:`TaskContext.check_cancelled` once the run's cancel event is set (timeout/shutdown)."""


@dataclass
class TaskContext:
    """What a task gets besides its params.

    - ``settings``: the server :class:`~zmi_reconciler.config.Settings` (data paths, allowlist, smtp, ...).
    - ``log``: ``log(message, level="info", **fields)`` appends a ``task_log`` event to the journal.
    - ``clock``: returns the current instant as an aware UTC datetime (tests inject a fixed clock).
    - ``cancel``: set when the task's timeout expires or the server shuts down.
    - ``scheduled_for``: the slot (aware UTC) this run belongs to; the trigger instant for manual runs.
    """

    settings: "Settings"
    schedule_id: str
    run_id: str
    task_index: int
    task_name: str
    scheduled_for: datetime
    trigger: str = "manual"
    log: Callable[..., None] = field(default=lambda message, level="info", **fields: None)
    clock: Callable[[], datetime] = utc_now
    cancel: threading.Event = field(default_factory=threading.Event)
    logger: logging.Logger = field(default_factory=lambda: logging.getLogger("zmi_reconciler.task"))
    #: Opens the tna store (``zmi_reconciler.tna.store.Store``); injected so tests can hand in their own.
    open_store: Callable[[], Any] | None = None
    #: Journal reader for tasks that look at other runs (alive_check ``expect``); None outside the runner.
    journal: Any = None

    def check_cancelled(self) -> None:
        """Raise :class:`TaskCancelled` if the run was cancelled (timeout or shutdown)."""
        if self.cancel.is_set():
            raise TaskCancelled(f"task {self.task_name} cancelled")

    def store(self) -> Any:
        """Open the tna store configured for this server (caller closes it)."""
        if self.open_store is not None:
            return self.open_store()
        from zmi_reconciler.tna.store import Store

        return Store.open(self.settings.database_path, zone=self.settings.zone)


RunFunction = Callable[[TaskContext, Any], "BaseModel | dict[str, Any]"]


@dataclass(frozen=True)
class TaskSpec:
    """One entry of the task catalog.

    ``name`` is the key used in schedule files; ``zmi_name`` the ZMI Server's German name; ``available``
    False means validation rejects the task with ``unavailable_reason``. ``lint(params) -> list[str]``
    returns W005 hints for params that are legal but odd.
    """

    name: str
    zmi_name: str
    description: str
    params_model: type[TaskParams] = NoParams
    result_model: type[TaskResult] | None = None
    run: RunFunction | None = None
    available: bool = True
    unavailable_reason: str | None = None
    lint: Callable[[Any], list[str]] | None = None
