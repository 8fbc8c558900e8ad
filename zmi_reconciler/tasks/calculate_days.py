"""``calculate_days`` ("Tage mit neuen Buchungen berechnen")."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, model_validator

from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec


class Params(TaskParams):
    """``scope``: ``new_bookings`` (dirty days since the last success plus yesterday for every active
    employee), ``yesterday``, or ``range`` with ``from``/``to`` (local dates, inclusive)."""

    scope: Literal["new_bookings", "yesterday", "range"] = "new_bookings"
    from_date: dt.date | None = Field(default=None, alias="from")
    to_date: dt.date | None = Field(default=None, alias="to")
    notify: bool = Field(default=True, description="queue a notification for each final day with an error")

    model_config = {"populate_by_name": True, "extra": "forbid"}

    @model_validator(mode="after")
    def _range_needs_dates(self) -> "Params":
        if self.scope == "range":
            if self.from_date is None or self.to_date is None:
                raise ValueError("scope 'range' needs 'from' and 'to' dates (YYYY-MM-DD)")
            if self.from_date > self.to_date:
                raise ValueError("'from' must not be after 'to'")
        elif self.from_date is not None or self.to_date is not None:
            raise ValueError("'from'/'to' are only allowed with scope 'range'")
        return self


class Result(TaskResult):
    days_calculated: int = 0
    employees: int = 0
    error_days: int = 0
    skipped_closed: int = 0
    notifications_queued: int = 0


def run(ctx: TaskContext, params: Params) -> Result:
    raise TaskFailed("calculate_days is not implemented yet")


SPEC = TaskSpec(
    name="calculate_days",
    zmi_name="Tage mit neuen Buchungen berechnen",
    description="Recalculates every (employee, day) whose bookings changed since the task's last success, plus "
                "yesterday for all active employees; skips closed months.",
    params_model=Params, result_model=Result, run=run,
)
