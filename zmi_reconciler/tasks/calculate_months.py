"""``calculate_months`` ("Monate berechnen (Alle MA)" / "ganzer Monat").

``month``: ``current`` | ``previous`` | ``YYYY-MM``, relative to the run's local date (``ctx.clock()`` in the
server zone). ``through``: ``yesterday`` (days of the month up to yesterday; for a past month that is the
whole month, on the 1st of the current month none) or ``month_end`` (the whole month, days after today as
provisional values). For every employee employed during the month the month's daily values are recalculated
first, then the monthly values (sums, flextime start = previous month's carry, credit rule), by
:func:`zmi_reconciler.tna.service.recalculate_months`; later open months get their flextime start/carry
carried forward. Employees whose month is closed are skipped and counted (closed months are never
recalculated). Work is done in batches of employees, each one transaction, with a cancellation check between.
Days the calculation refuses fail the task after the rest was saved.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field

from zmi_reconciler.tasks._common import MonthSelector, resolve_month
from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec

BATCH_EMPLOYEES = 50


class Params(TaskParams):
    month: MonthSelector = "current"
    through: Literal["yesterday", "month_end"] = Field(
        default="yesterday", description="evaluate days up to yesterday or the whole month")


class Result(TaskResult):
    month: str = ""
    employees: int = 0
    months_calculated: int = 0
    skipped_closed: int = 0
    days_calculated: int = 0
    error_days: int = 0
    carried_forward: int = 0


def run(ctx: TaskContext, params: Params) -> Result:
    """Calculate one month for all employees employed in it (see the module doc); returns the counts.
    Raises :class:`TaskFailed` when days were refused, :class:`TaskCancelled` between batches."""
    from zmi_reconciler.tna import service

    today = ctx.clock().astimezone(ctx.settings.zone).date()
    year, month = resolve_month(params.month, today)
    first, last = service.month_bounds(year, month)
    through = last if params.through == "month_end" else today - dt.timedelta(days=1)
    result = Result(month=f"{year:04d}-{month:02d}")
    failed: list[str] = []
    store = ctx.store()
    try:
        employees = [e.id for e in store.active_employees(first, last) if e.id is not None]
        for start in range(0, len(employees), BATCH_EMPLOYEES):
            ctx.check_cancelled()
            counts = service.recalculate_months(store, year, month, through, today,
                                                employees[start:start + BATCH_EMPLOYEES])
            result.employees += counts.employees + counts.skipped_closed
            result.months_calculated += counts.months_calculated
            result.skipped_closed += counts.skipped_closed
            result.days_calculated += counts.days.days_calculated
            result.error_days += counts.days.error_days
            result.carried_forward += counts.carried_forward
            failed.extend(counts.days.failed)
    finally:
        store.close()
    ctx.log(f"{result.month} through {min(through, last) if through >= first else 'none'}: "
            f"{result.months_calculated} of {result.employees} employees calculated, "
            f"{result.skipped_closed} closed skipped, {result.days_calculated} days, {result.error_days} error days")
    if failed:
        for line in failed[:50]:
            ctx.log(f"not calculated: {line}", level="error")
        raise TaskFailed(f"{len(failed)} day(s) could not be calculated (first: {failed[0]})", result)
    return result


def lint(params: Params) -> list[str]:
    """W005 hints: none so far (every combination of month and through is a sensible job)."""
    return []


SPEC = TaskSpec(
    name="calculate_months",
    zmi_name="Monate berechnen (Alle MA / ganzer Monat)",
    description="Monthly values for all active employees of a month; closed months are skipped.",
    params_model=Params, result_model=Result, run=run, lint=lint,
)
