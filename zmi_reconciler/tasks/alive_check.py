"""``alive_check`` ("Alive-Datensatz senden"): heartbeat file, monitoring URL, deadline alerts."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field

from zmi_reconciler.tasks._common import HHMM
from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec


class Expectation(BaseModel):
    """``schedule`` must have a succeeded run today (schedule's local date) by ``by`` (local HH:MM)."""

    model_config = ConfigDict(extra="forbid")
    schedule: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    by: HHMM


class Params(TaskParams):
    url: str | None = Field(default=None, description="monitoring URL (healthchecks / Uptime Kuma); "
                                                      "default: server setting alive_url",
                            pattern=r"^https?://")
    expect: list[Expectation] = Field(default_factory=list)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class Result(TaskResult):
    heartbeat_file: str = ""
    url_called: bool = False
    expectations_checked: int = 0
    expectations_failed: int = 0


def run(ctx: TaskContext, params: Params) -> Result:
    raise TaskFailed("alive_check is not implemented yet")


SPEC = TaskSpec(
    name="alive_check",
    zmi_name="Alive-Datensatz senden",
    description="Writes a heartbeat, optionally calls a monitoring URL, and alerts when an expected schedule "
                "has not succeeded by a deadline.",
    params_model=Params, result_model=Result, run=run,
)
