"""Pure timing math (SPEC 3.1-3.2): when does a schedule fire? No dependency on the ``schedule`` library.

Implemented by the timing issue; signatures are the contract the runner and the CLI use.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import datetime
from zoneinfo import ZoneInfo


def next_fire(timing, zone: ZoneInfo, after_utc: datetime) -> datetime | None:
    """The first fire strictly after ``after_utc`` (aware) as an aware UTC datetime; None for manual."""
    raise NotImplementedError


def iter_fires(timing, zone: ZoneInfo, after_utc: datetime) -> Iterator[datetime]:
    """Fires strictly after ``after_utc``, ascending, as aware UTC datetimes (endless; empty for manual)."""
    raise NotImplementedError
