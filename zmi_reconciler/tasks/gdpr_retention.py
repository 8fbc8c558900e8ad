"""``gdpr_retention`` ("DSGVO"): deletes data past its retention period."""

from __future__ import annotations

from pydantic import Field

from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec


class Params(TaskParams):
    left_years: int = Field(default=3, ge=1, le=50,
                            description="delete bookings, daily and monthly values of employees who left "
                                        "more than this many years ago")
    outbox_days: int = Field(default=90, ge=1, le=3650, description="delete sent messages older than this")
    dry_run: bool = False


class Result(TaskResult):
    employees: int = 0
    bookings: int = 0
    daily_values: int = 0
    monthly_values: int = 0
    outbox_messages: int = 0
    dry_run: bool = False


def run(ctx: TaskContext, params: Params) -> Result:
    raise TaskFailed("gdpr_retention is not implemented yet")


SPEC = TaskSpec(
    name="gdpr_retention",
    zmi_name="DSGVO Löschung",
    description="Deletes bookings and values of employees who left N years ago and sent messages older than N days.",
    params_model=Params, result_model=Result, run=run,
)
