"""``backup_database`` ("Tabellen sichern"): online backup of the tna store into a verified ZIP."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec


class Params(TaskParams):
    naming: Literal["weekday", "timestamp"] = Field(
        default="weekday", description="`weekday`: 7-file rotation as ZMI does; `timestamp`: keep the newest `keep`")
    keep: int = Field(default=7, ge=1, le=3650, description="backups kept with `naming: timestamp`")
    verify: bool = Field(default=True, description="unpack, PRAGMA integrity_check and compare row counts")


class Result(TaskResult):
    file: str = ""
    bytes: int = 0
    seconds: float = 0.0
    verified: bool = False
    deleted: int = 0


def run(ctx: TaskContext, params: Params) -> Result:
    raise TaskFailed("backup_database is not implemented yet")


SPEC = TaskSpec(
    name="backup_database",
    zmi_name="Tabellen sichern",
    description="Consistent online backup of the tna store into a ZIP in the backup dir, verified.",
    params_model=Params, result_model=Result, run=run,
)
