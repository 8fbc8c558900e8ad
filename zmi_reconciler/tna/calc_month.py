"""Monthly evaluation (ZMI "Monatsberechnung"): a month's daily values -> :class:`MonthlyValue`.

Pure functions, no I/O; all values integer minutes.

- Sums of the daily values: gross, breaks, net, target, overtime, undertime, difference; ``error_days`` counts
  days with at least one error.
- Flextime: ``flextime_start`` = the previous month's carry (:func:`flextime_start_after`);
  ``flextime_change`` = the month's difference (sum of daily differences); ``flextime_carry`` = start + the
  change as credited by the employee's :class:`~zmi_reconciler.tna.models.CreditRule` (:func:`credit_change`);
  ``forfeited`` = start + change - carry.
- Closing is data: ``closed`` is passed through; the store refuses to recalculate closed months.
"""

from __future__ import annotations

from collections.abc import Iterable

from zmi_reconciler.tna.models import CreditRule, DailyValue, EmployeeId, MonthlyValue

_SUMMED = ("gross", "breaks", "net", "target", "overtime", "undertime", "difference")


def _credited(change: int, rule: CreditRule) -> int:
    """The part of ``change`` a credit rule books to the account before the balance limits."""
    if change <= 0:
        return change  # undertime is always taken in full
    if rule.kind == "after_threshold":
        change = max(0, change - rule.threshold)
    if rule.monthly_cap is not None:
        change = min(change, rule.monthly_cap)
    return change


def credit_change(start: int, change: int, rule: CreditRule) -> tuple[int, int]:
    """Apply ``rule`` to a month -> ``(carry, forfeited)``, minutes; ``forfeited = start + change - carry``.

    - ``no_evaluation``: carry = start + change (ZMI "keine Bewertung": taken over unchanged).
    - ``complete``: a positive change is credited up to ``monthly_cap``; then the balance is held within
      ``lower_limit``..``upper_limit``. Example (issue 4): start 1500, change +720, cap 600, upper limit 1800
      -> 1500 + 600 = 2100 -> carry 1800, forfeited 420.
    - ``after_threshold``: of a positive change only the part above ``threshold`` is credited (then
      ``monthly_cap`` and the limits as for ``complete``); a negative change is taken in full. Example:
      threshold 600, start 1000: +480 -> 1000, +900 -> 1300, -120 -> 880.
    - ``no_carry``: carry 0 (everything is forfeited, also a negative balance).

    The upper limit ("Jahreshöchstgrenze") is read as a cap on the flextime balance, checked every month
    (that is what the manual's example computes); it is applied even when the start was already above it.
    """
    if rule.kind == "no_evaluation":
        carry = start + change
    elif rule.kind == "no_carry":
        carry = 0
    else:
        carry = start + _credited(change, rule)
        if rule.upper_limit is not None:
            carry = min(carry, rule.upper_limit)
        if rule.lower_limit is not None:
            carry = max(carry, rule.lower_limit)
    return carry, start + change - carry


def flextime_start_after(previous: MonthlyValue | None) -> int:
    """Flextime start of a month = the previous month's carry; 0 when there is no previous month."""
    return previous.flextime_carry if previous is not None else 0


def evaluate_month(employee_id: EmployeeId, year: int, month: int, days: Iterable[DailyValue],
                   flextime_start: int, rule: CreditRule = CreditRule(), *, closed: bool = False) -> MonthlyValue:
    """Sum one employee's daily values of ``year``-``month`` and credit the change -> :class:`MonthlyValue`.

    ``days``: the month's daily values (missing days count as zero; evaluate "through yesterday" by passing
    only those). ``flextime_start``: the previous month's carry (:func:`flextime_start_after`). ``rule``: the
    employee's credit settings. ``closed`` is copied to the result.
    Raises ``ValueError`` when a daily value belongs to another employee or month, or a date appears twice.
    """
    days = list(days)
    seen = set()
    for value in days:
        if value.employee_id != employee_id:
            raise ValueError(f"daily value of employee {value.employee_id!r} in the month of {employee_id!r}")
        if (value.date.year, value.date.month) != (year, month):
            raise ValueError(f"daily value of {value.date} is not in {year}-{month:02d}")
        if value.date in seen:
            raise ValueError(f"two daily values for {value.date}")
        seen.add(value.date)
    sums = {name: sum(getattr(v, name) for v in days) for name in _SUMMED}
    change = sums["difference"]
    carry, forfeited = credit_change(flextime_start, change, rule)
    return MonthlyValue(employee_id=employee_id, year=year, month=month, **sums,
                        flextime_start=flextime_start, flextime_change=change, flextime_carry=carry,
                        forfeited=forfeited, error_days=sum(1 for v in days if v.errors), closed=closed)


__all__ = ["credit_change", "evaluate_month", "flextime_start_after"]
