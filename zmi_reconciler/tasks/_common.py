"""Field types shared by several tasks' params models."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import Field

#: ``current`` | ``previous`` | ``YYYY-MM``: the month a task works on, relative to the run's local date.
MonthSelector = Annotated[
    str,
    Field(pattern=r"^(current|previous|\d{4}-(0[1-9]|1[0-2]))$",
          description="`current`, `previous` or a month as `YYYY-MM`", examples=["previous", "2026-10"]),
]
HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="local wall-clock time HH:MM",
                            examples=["05:30"])]


def utc_stamp(instant: datetime) -> str:
    """Aware instant -> ``20261129T040000Z`` (UTC, whole seconds): file names of backups and moved files."""
    from datetime import timezone

    return instant.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
