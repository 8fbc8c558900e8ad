"""``calculate_months`` ("Monate berechnen (Alle MA)" / "ganzer Monat")."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from zmi_reconciler.tasks._common import MonthSelector
from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec


class Params(TaskParams):
    month: MonthSelector = "current"
    through: Literal["yesterday", "month_end"] = Field(
        default="yesterday", description="evaluate days up to yesterday or the whole month")


class Result(TaskResult):
    employees: int = 0
    months_calculated: int = 0
    skipped_closed: int = 0


def run(ctx: TaskContext, params: Params) -> Result:
    raise TaskFailed("calculate_months is not implemented yet")


def lint(params: Params) -> list[str]:
    return []


SPEC = TaskSpec(
    name="calculate_months",
    zmi_name="Monate berechnen (Alle MA / ganzer Monat)",
    description="Monthly values for all active employees of a month; closed months are skipped.",
    params_model=Params, result_model=Result, run=run, lint=lint,
)
