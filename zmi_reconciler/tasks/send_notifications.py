"""``send_notifications`` ("Push Notifications versenden"): delivers the outbox over SMTP."""

from __future__ import annotations

from pydantic import Field

from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec


class Params(TaskParams):
    max_attempts: int = Field(default=5, ge=1, le=100, description="attempts per message before it is parked")
    batch: int = Field(default=500, ge=1, le=100_000, description="messages per run at most")


class Result(TaskResult):
    sent: int = 0
    failed: int = 0
    parked: int = 0
    remaining: int = 0


def run(ctx: TaskContext, params: Params) -> Result:
    raise TaskFailed("send_notifications is not implemented yet")


SPEC = TaskSpec(
    name="send_notifications",
    zmi_name="Push Notifications versenden",
    description="Delivers queued messages (e-mail over SMTP); failures stay queued with their attempt count.",
    params_model=Params, result_model=Result, run=run,
)
