"""``gdpr_retention`` ("DSGVO"): deletes data past its retention period (GDPR Art. 5(1)(e), storage limitation;
Art. 17 erasure once the purpose has ended).

- Employees who left more than ``left_years`` years ago (exit date before the run's local date minus that
  many calendar years; 29 February counts back to 28 February): their bookings (soft-deleted ones too), daily
  values, monthly values and change-tracking rows are deleted, and with ``delete_employees: true`` their
  master record as well (default: the record stays, e.g. for the personnel file's own retention). Month
  closing does not protect data from this deliberate deletion.
- Outbox messages *sent* more than ``outbox_days`` days ago are deleted. Unsent and parked messages are
  never deleted (nothing is lost before it was delivered).

``dry_run: true`` only counts. The journal gets counts only, never names, personnel numbers or addresses.
Work is done per batch of employees (one transaction each, cancellation checked between batches).
"""

from __future__ import annotations

from datetime import date, timedelta

from pydantic import Field

from zmi_reconciler.tasks.base import TaskContext, TaskParams, TaskResult, TaskSpec

BATCH_EMPLOYEES = 100


class Params(TaskParams):
    left_years: int = Field(default=3, ge=1, le=50,
                            description="delete bookings, daily and monthly values of employees who left "
                                        "more than this many years ago")
    outbox_days: int = Field(default=90, ge=1, le=3650, description="delete sent messages older than this")
    delete_employees: bool = Field(default=False, description="also delete the employees' master records")
    dry_run: bool = False


class Result(TaskResult):
    employees: int = 0
    bookings: int = 0
    daily_values: int = 0
    monthly_values: int = 0
    employee_records: int = 0
    outbox_messages: int = 0
    dry_run: bool = False


def years_before(day: date, years: int) -> date:
    """The same calendar day ``years`` years earlier (29 February -> 28 February)."""
    try:
        return day.replace(year=day.year - years)
    except ValueError:
        return day.replace(year=day.year - years, day=28)


def run(ctx: TaskContext, params: Params) -> Result:
    """Delete (or with ``dry_run`` count) what is past its retention period; returns the counts."""
    now = ctx.clock()
    today = now.astimezone(ctx.settings.zone).date()
    left_before = years_before(today, params.left_years)
    sent_before = now - timedelta(days=params.outbox_days)
    result = Result(dry_run=params.dry_run)
    store = ctx.store()
    try:
        leavers = [e.id for e in store.employees_left_before(left_before) if e.id is not None]
        result.employees = len(leavers)
        for start in range(0, len(leavers), BATCH_EMPLOYEES):
            ctx.check_cancelled()
            counts = store.purge_employee_data(leavers[start:start + BATCH_EMPLOYEES],
                                               delete_employees=params.delete_employees, dry_run=params.dry_run)
            result.bookings += counts["bookings"]
            result.daily_values += counts["daily_values"]
            result.monthly_values += counts["monthly_values"]
            result.employee_records += counts["employees"]
        ctx.check_cancelled()
        result.outbox_messages = store.delete_sent_messages(sent_before, dry_run=params.dry_run)
    finally:
        store.close()
    verb = "would delete" if params.dry_run else "deleted"
    ctx.log(f"{verb}: data of {result.employees} employees who left before {left_before.isoformat()} "
            f"({result.bookings} bookings, {result.daily_values} daily values, {result.monthly_values} monthly "
            f"values, {result.employee_records} master records); {result.outbox_messages} messages sent before "
            f"{sent_before:%Y-%m-%d}")
    return result


SPEC = TaskSpec(
    name="gdpr_retention",
    zmi_name="DSGVO Löschung",
    description="Deletes bookings and values of employees who left N years ago and sent messages older than N days.",
    params_model=Params, result_model=Result, run=run,
)
