"""Field types shared by several tasks' params models."""

from __future__ import annotations

import re
from datetime import date, datetime
from typing import Annotated, Any

from pydantic import BeforeValidator, Field
from pydantic_core import PydanticCustomError

#: ``current`` | ``previous`` | ``YYYY-MM``: the month a task works on, relative to the run's local date.
MonthSelector = Annotated[
    str,
    Field(pattern=r"^(current|previous|\d{4}-(0[1-9]|1[0-2]))$",
          description="`current`, `previous` or a month as `YYYY-MM`", examples=["previous", "2026-10"]),
]
HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="local wall-clock time HH:MM",
                            examples=["05:30"])]

_ISO_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


def parse_iso_date(value: Any) -> date:
    """A params date: ``YYYY-MM-DD`` text (how YAML and JSON carry dates) or a ``date`` -> ``date``.

    Raises ``PydanticCustomError`` (type ``date_parsing``) for anything else: a number (pydantic's lax mode
    would read it as a Unix timestamp), a boolean, a datetime or text in another form.
    """
    if isinstance(value, date) and not isinstance(value, datetime):
        return value
    if isinstance(value, str) and _ISO_DATE.match(value):
        try:
            return date.fromisoformat(value)
        except ValueError:
            pass
    raise PydanticCustomError("date_parsing", "expected a date YYYY-MM-DD")


#: A local date in task params, written ``YYYY-MM-DD`` (the params models are strict otherwise; see
#: :class:`zmi_reconciler.tasks.base.TaskParams`).
IsoDate = Annotated[date, BeforeValidator(parse_iso_date)]


def utc_stamp(instant: datetime) -> str:
    """Aware instant -> ``20261129T040000Z`` (UTC, whole seconds): file names of backups and moved files."""
    from datetime import timezone

    return instant.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")


def resolve_month(selector: str, today: date) -> tuple[int, int]:
    """A :data:`MonthSelector` -> ``(year, month)``: ``current`` is ``today``'s month (the run's local
    date), ``previous`` the month before, ``YYYY-MM`` itself. Raises ValueError for anything else."""
    if selector == "current":
        return today.year, today.month
    if selector == "previous":
        return (today.year - 1, 12) if today.month == 1 else (today.year, today.month - 1)
    year, _, month = selector.partition("-")
    if not (year.isdigit() and month.isdigit() and 1 <= int(month) <= 12):
        raise ValueError(f"month must be current, previous or YYYY-MM, not {selector!r}")
    return int(year), int(month)
