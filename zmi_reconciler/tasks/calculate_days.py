"""``calculate_days`` ("Tage mit neuen Buchungen berechnen").

Scopes (the run's local date ``today`` is ``ctx.clock()`` in the server zone; days before it are final):

- ``new_bookings`` (default): every (employee, day) whose bookings changed since this task's last success
  (:meth:`~zmi_reconciler.tna.store.Store.dirty_days_since` after the watermark kept in task state under
  :data:`WATERMARK_KEY`), with the day before and after each (a shift across midnight links them), plus
  yesterday for every active employee, so a lone come becomes MISSING_GO and days without bookings get their
  value once they are final. Days after ``today`` are left out. The watermark is shared by every schedule
  (it records which changes the store's daily values already reflect) and advances only when the whole run
  succeeded.
- ``yesterday``: yesterday for every active employee.
- ``range``: ``from``..``to`` (inclusive local dates) for every employee employed on each day.

Days in closed months are skipped and counted (ZMI month closing); days outside an employee's entry..exit
dates are left out. The work is done per employee batch (one transaction each, cancellation checked between
batches), by :func:`zmi_reconciler.tna.service.recalculate_days`.

Notifications (``notify: true``): for each *final* day with an error a message to the employee and to the
supervisor (if set) is queued in the outbox, once per (employee, day, error set): see
:mod:`zmi_reconciler.notify`. Error days without any address are logged as a warning.

Failure: days the calculation refuses (inconsistent master data) keep their old value; the task saves the
others and then fails naming them, without advancing the watermark.
"""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, model_validator

from zmi_reconciler.tasks._common import IsoDate
from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec

WATERMARK_KEY = "calculate_days.watermark"
#: Employees per transaction / cancellation check.
BATCH_EMPLOYEES = 50


class Params(TaskParams):
    """``scope``: ``new_bookings`` (dirty days since the last success plus yesterday for every active
    employee), ``yesterday``, or ``range`` with ``from``/``to`` (local dates, inclusive)."""

    scope: Literal["new_bookings", "yesterday", "range"] = "new_bookings"
    from_date: IsoDate | None = Field(default=None, alias="from")
    to_date: IsoDate | None = Field(default=None, alias="to")
    notify: bool = Field(default=True, description="queue a notification for each final day with an error")

    model_config = {"populate_by_name": True, "extra": "forbid"}

    @model_validator(mode="after")
    def _range_needs_dates(self) -> "Params":
        if self.scope == "range":
            if self.from_date is None or self.to_date is None:
                raise ValueError("scope 'range' needs 'from' and 'to' dates (YYYY-MM-DD)")
            if self.from_date > self.to_date:
                raise ValueError("'from' must not be after 'to'")
            if (self.to_date - self.from_date).days > 3660:
                raise ValueError("a range may span at most 10 years")
        elif self.from_date is not None or self.to_date is not None:
            raise ValueError("'from'/'to' are only allowed with scope 'range'")
        return self


class Result(TaskResult):
    days_calculated: int = 0
    employees: int = 0
    error_days: int = 0
    skipped_closed: int = 0
    notifications_queued: int = 0
    days_changed: int = 0
    days_failed: int = 0


def local_today(ctx: TaskContext) -> dt.date:
    """The run's local date in the server zone."""
    return ctx.clock().astimezone(ctx.settings.zone).date()


def days_in_scope(store, params: Params, today: dt.date) -> tuple[set[tuple[int, dt.date]], int, int]:
    """``(days, new_watermark, changed)``: the (employee id, local date) pairs to calculate, the watermark to
    store after success (unchanged for scopes other than ``new_bookings``) and how many changed days the
    change tracking reported."""
    from zmi_reconciler.tna import service

    yesterday = today - dt.timedelta(days=1)
    mark = int(store.get_state(WATERMARK_KEY, 0) or 0)
    if params.scope == "yesterday":
        return set(service.active_employee_days(store, yesterday)), mark, 0
    if params.scope == "range":
        assert params.from_date is not None and params.to_date is not None
        days: set[tuple[int, dt.date]] = set()
        employees = store.active_employees(params.from_date, params.to_date)
        day = params.from_date
        while day <= params.to_date:
            days.update((e.id, day) for e in employees if e.active_between(day, day))
            day += dt.timedelta(days=1)
        return days, mark, 0
    dirty, new_mark = store.dirty_days_since(mark)
    days = {(e, d) for e, d in service.with_neighbours(dirty) if d <= today}
    days.update(service.active_employee_days(store, yesterday))
    return days, new_mark, len(dirty)


def queue_day_errors(ctx: TaskContext, store, values) -> int:
    """Queue the notifications for final daily values with errors; returns how many were new."""
    from zmi_reconciler.notify import day_error_messages

    employees = {e.id: e for e in store.employees()}
    queued = 0
    unroutable = []
    for value in values:
        if value.provisional or not value.errors:
            continue
        emp = employees.get(int(value.employee_id))
        if emp is None:
            continue
        messages = day_error_messages(employee_id=emp.id, personnel_number=emp.personnel_number, name=emp.name,
                                      day=value.date, errors=value.errors, employee_email=emp.email,
                                      supervisor_email=emp.supervisor_email)
        if not messages:
            unroutable.append(f"{emp.personnel_number} {value.date.isoformat()}")
        for m in messages:
            if store.enqueue_message(m.recipient, m.subject, m.body, dedup_key=m.dedup_key) is not None:
                queued += 1
    if unroutable:
        ctx.log(f"{len(unroutable)} error day(s) without an e-mail address to notify: "
                + ", ".join(unroutable[:20]) + (" ..." if len(unroutable) > 20 else ""), level="warning")
    return queued


def run(ctx: TaskContext, params: Params) -> Result:
    """Calculate the days in scope (see the module doc) and return the counts. Raises :class:`TaskFailed`
    when days were refused by the calculation (watermark not advanced) and :class:`TaskCancelled` between
    employee batches."""
    from zmi_reconciler.tna import service

    today = local_today(ctx)
    result = Result()
    store = ctx.store()
    try:
        days, new_mark, changed = days_in_scope(store, params, today)
        result.days_changed = changed
        per_employee: dict[int, list[dt.date]] = {}
        for emp, day in days:
            per_employee.setdefault(emp, []).append(day)
        employees = sorted(per_employee)
        failed: list[str] = []
        for start in range(0, len(employees), BATCH_EMPLOYEES):
            ctx.check_cancelled()
            batch = employees[start:start + BATCH_EMPLOYEES]
            with store.transaction():
                counts = service.recalculate_days(store, [(e, d) for e in batch for d in per_employee[e]], today)
                if params.notify:
                    result.notifications_queued += queue_day_errors(ctx, store, counts.errors)
            result.days_calculated += counts.days_calculated
            result.error_days += counts.error_days
            result.skipped_closed += counts.skipped_closed
            result.employees += counts.employees  # batches are disjoint by employee
            failed.extend(counts.failed)
        result.days_failed = len(failed)
        ctx.log(f"scope {params.scope}: {result.days_calculated} days of {result.employees} employees calculated, "
                f"{result.error_days} with errors, {result.skipped_closed} in closed months skipped, "
                f"{result.notifications_queued} notifications queued", today=today.isoformat(),
                changed=changed)
        if failed:
            for line in failed[:50]:
                ctx.log(f"not calculated: {line}", level="error")
            raise TaskFailed(f"{len(failed)} day(s) could not be calculated (first: {failed[0]}); "
                             "their old values stay", result)
        if params.scope == "new_bookings":
            store.set_state(WATERMARK_KEY, new_mark)
    finally:
        store.close()
    return result


SPEC = TaskSpec(
    name="calculate_days",
    zmi_name="Tage mit neuen Buchungen berechnen",
    description="Recalculates every (employee, day) whose bookings changed since the task's last success, plus "
                "yesterday for all active employees; skips closed months.",
    params_model=Params, result_model=Result, run=run,
)
