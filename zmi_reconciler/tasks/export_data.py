"""``export_data`` ("Datenexport", payroll): monthly values to CSV or DATEV LODAS ASCII."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from zmi_reconciler.tasks._common import MonthSelector
from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec

CsvColumn = Literal["personnel_number", "name", "target", "net", "overtime", "undertime", "carry", "error_days"]


class Params(TaskParams):
    format: Literal["csv", "datev_lodas"] = "csv"
    month: MonthSelector = "previous"
    columns: list[CsvColumn] = Field(
        default_factory=lambda: ["personnel_number", "name", "target", "net", "overtime", "undertime", "carry",
                                 "error_days"], min_length=1)
    filename: str = Field(default="{format}-{month}.{ext}",
                          description="file name pattern in the export dir: {format} {month} {ext} {timestamp}")
    allow_open: bool = Field(default=False, description="allow exporting a month that is not closed")
    consultant_number: int | None = Field(default=None, ge=1000, le=9_999_999, description="DATEV Beraternummer")
    client_number: int | None = Field(default=None, ge=1, le=99999, description="DATEV Mandantennummer")
    wage_types: dict[str, int] = Field(
        default_factory=dict,
        description="DATEV wage type (Lohnart) per value: keys net, overtime, undertime, carry")


class Result(TaskResult):
    file: str = ""
    employees: int = 0
    bytes: int = 0


def run(ctx: TaskContext, params: Params) -> Result:
    raise TaskFailed("export_data is not implemented yet")


def lint(params: Params) -> list[str]:
    if params.month == "current":
        return ["exports the current, unfinished month; payroll usually needs `month: previous`"]
    return []


SPEC = TaskSpec(
    name="export_data",
    zmi_name="Datenexport (Lohn)",
    description="Writes the monthly values of a month to a payroll file (CSV or DATEV LODAS ASCII).",
    params_model=Params, result_model=Result, run=run, lint=lint,
)
