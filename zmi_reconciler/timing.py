"""Pure timing math (SPEC 3.1-3.2): when does a schedule fire? No dependency on the ``schedule`` library.

Every function takes a timing model from :mod:`zmi_reconciler.schema`, the schedule's effective zone
(:class:`zoneinfo.ZoneInfo`) and aware datetimes; fires are returned as aware UTC datetimes.

Rules, in short:

* ``seconds`` / ``minutes``: a grid of real elapsed time anchored at the Unix epoch; DST never shifts it.
* ``hours``: wall-clock slots at hours 0, N, 2N, ... (< 24) of each local day at ``minute``. N = 1 means
  every real hour: a wall time that occurs twice (fall back) fires twice, one that does not exist
  (spring forward) not at all. N > 1: a slot that does not exist fires at the first instant after the gap
  (the transition itself); a slot that occurs twice fires once, at its first occurrence.
* ``daily`` / ``weekly`` / ``monthly``: RFC 5545 section 3.3.5 wall-clock rules. A nonexistent local time is
  read with the UTC offset from before the gap, i.e. it fires shifted forward by the gap length (02:30 on a
  spring-forward day in Europe/Berlin fires at 03:30 CEST); an ambiguous local time fires once, at the first
  occurrence (PEP 495 ``fold=0``). ``monthly`` day N in a month without day N fires on its last day
  (``short_month: last_day``) or not at all (``skip``).

:func:`fire_notes` and :func:`lint_notes` explain gap/fold fires (W003) and short months (W004); :func:`describe`
summarises a timing in one line.

Calendar timings are computed one local day at a time and merged in UTC order, so jumping far ahead costs
one step per candidate day (per month for ``monthly``); interval timings are O(1) per fire.
"""

from __future__ import annotations

import calendar
import heapq
from collections.abc import Iterator
from functools import lru_cache
from typing import NamedTuple
from datetime import date, datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

from zmi_reconciler.schema import WEEKDAYS

UTC = timezone.utc
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_DAY = timedelta(days=1)
_LAST_DATE = date.max - timedelta(days=3)
_MONTH_NAMES = ("January", "February", "March", "April", "May", "June", "July", "August", "September",
                "October", "November", "December")

# Event kinds (one event per scheduled wall time; see _day_events).
NORMAL = "normal"          # the wall time exists exactly once
GAP_SHIFT = "gap_shift"    # calendar: nonexistent, fires shifted forward by the gap length (RFC 5545)
GAP_AFTER = "gap_after"    # hours N > 1: nonexistent, fires at the first instant after the gap
GAP_NONE = "gap_none"      # hours N = 1: nonexistent, no fire
FOLD_ONCE = "fold_once"    # occurs twice, fires once at the first occurrence
FOLD_FIRST = "fold_first"  # hours N = 1: occurs twice, fires at both; this is the first
FOLD_SECOND = "fold_second"  # ... and this the second


class _Event(NamedTuple):
    """One scheduled wall time on one local day.

    ``at``: the UTC instant it fires (for ``GAP_NONE``, which never fires, the instant used for ordering);
    ``wall``: the nominal local wall time (naive); ``short_month``: monthly day N moved to a month's last day.
    """

    at: datetime
    wall: datetime
    kind: str
    short_month: bool = False

    @property
    def fires(self) -> bool:
        return self.kind != GAP_NONE


def _require_aware(value: datetime, name: str) -> datetime:
    """Return ``value`` converted to UTC; raise ``ValueError`` for a naive datetime."""
    if not isinstance(value, datetime):
        raise TypeError(f"{name} must be a datetime, got {type(value).__name__}")
    if value.tzinfo is None or value.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime (got naive {value.isoformat()})")
    return value.astimezone(UTC)


def _interval_seconds(timing) -> int | None:
    """Grid period in seconds for ``seconds``/``minutes`` timings, else None."""
    if timing.type == "seconds":
        return int(timing.every)
    if timing.type == "minutes":
        return int(timing.every) * 60
    return None


def _interval_fires(period: int, after: datetime) -> Iterator[datetime]:
    """Epoch-anchored grid ``k * period`` seconds, strictly after ``after`` (UTC); O(1) per fire."""
    delta = after - _EPOCH
    whole = delta.days * 86400 + delta.seconds  # floor of the real elapsed seconds (microseconds >= 0)
    # Grid points are whole seconds, so the first one strictly after the real instant is (floor // p + 1) * p.
    k = whole // period + 1
    step = timedelta(seconds=period)
    try:
        current = _EPOCH + timedelta(seconds=k * period)
        while True:
            yield current
            current += step
    except OverflowError:
        return


@lru_cache(maxsize=65536)
def _classify(wall: datetime, zone: ZoneInfo) -> tuple[str, datetime, datetime]:
    """Classify a naive local wall time: ``("normal"|"gap"|"fold", first, second)``.

    ``first``/``second`` are the UTC readings with ``fold=0``/``fold=1`` (PEP 495). For a gap, ``fold=0``
    uses the offset from before the transition, which is exactly RFC 5545's reading of a nonexistent time;
    for a fold, ``fold=0`` is the first occurrence. Cached: only days touched by a transition get here.
    """
    first = wall.replace(tzinfo=zone).astimezone(UTC)
    second = wall.replace(tzinfo=zone, fold=1).astimezone(UTC)
    if first == second:
        return "normal", first, second
    if first < second:
        return "fold", first, second
    return "gap", first, second


@lru_cache(maxsize=4096)
def _gap_end(lo: datetime, hi: datetime, zone: ZoneInfo) -> datetime:
    """The transition instant (first instant after the gap) in ``(lo, hi]``, found to the second.

    ``lo`` lies before the transition, ``hi`` at or after it (the two readings of a nonexistent wall time).
    """
    off_lo = lo.astimezone(zone).utcoffset()
    while hi - lo > timedelta(seconds=1):
        mid = lo + (hi - lo) / 2
        mid = mid.replace(microsecond=0)
        if mid <= lo:
            break
        if mid.astimezone(zone).utcoffset() == off_lo:
            lo = mid
        else:
            hi = mid
    return hi


def _wall_times(timing) -> list[timedelta]:
    """Local wall times of one day (as offsets from local midnight) for hours/daily/weekly/monthly timings."""
    if timing.type == "hours":
        hhmm = [(h, timing.minute) for h in range(0, 24, timing.every)]
    elif timing.type == "daily":
        hhmm = [(int(t[:2]), int(t[3:])) for t in timing.times]
    else:
        hhmm = [(int(timing.at[:2]), int(timing.at[3:]))]
    return [timedelta(hours=h, minutes=m) for h, m in hhmm]


_PROBES = tuple(time(h) for h in (0, 6, 12, 18))


@lru_cache(maxsize=16384)
def _uniform_offset(zone: ZoneInfo, day: date) -> timedelta | None:
    """The UTC offset in force for the whole local ``day``, or None when a transition touches the day.

    Probes both readings (``fold`` 0 and 1) of 00:00, 06:00, 12:00, 18:00 and the next 00:00: one transition
    always changes some probe; two transitions less than six hours apart on one day (none in tzdata since
    1970) would go unseen. Cached: every schedule in a zone shares the same days.
    """
    offset = datetime.combine(day, time(), tzinfo=zone).utcoffset()
    probes = [datetime.combine(day, t, tzinfo=zone) for t in _PROBES]
    probes.append(datetime.combine(day + _ONE_DAY, time(), tzinfo=zone))
    for probe in probes:
        if probe.utcoffset() != offset or probe.replace(fold=1).utcoffset() != offset:
            return None
    return offset


@lru_cache(maxsize=1024)
def _transition_days(zone: ZoneInfo, year: int) -> tuple[date, ...]:
    """Local days of ``year`` touched by a UTC offset change in ``zone`` (cached per zone and year)."""
    day, end = date(year, 1, 1), date(year + 1, 1, 1)
    found = []
    while day < end:
        if _uniform_offset(zone, day) is None:
            found.append(day)
        day += _ONE_DAY
    return tuple(found)


def _day_events(timing, zone: ZoneInfo, day: date, times: list[timedelta], short_month: bool) -> list[_Event]:
    """The events of one local day (unsorted; several may share a UTC instant)."""
    offset = _uniform_offset(zone, day)
    midnight = datetime.combine(day, time())
    if offset is not None:  # fast path: no transition today, every wall time exists exactly once
        midnight_utc = (midnight - offset).replace(tzinfo=UTC)
        return [_Event(midnight_utc + t, midnight + t, NORMAL, short_month) for t in times]
    events = []
    hourly = timing.type == "hours"
    for t in times:
        wall = midnight + t
        kind, first, second = _classify(wall, zone)
        if kind == "normal":
            events.append(_Event(first, wall, NORMAL, short_month))
        elif kind == "fold":
            if hourly and timing.every == 1:
                events.append(_Event(first, wall, FOLD_FIRST))
                events.append(_Event(second, wall, FOLD_SECOND))
            else:
                events.append(_Event(first, wall, FOLD_ONCE, short_month))
        elif hourly and timing.every == 1:
            events.append(_Event(first, wall, GAP_NONE))
        elif hourly:
            events.append(_Event(_gap_end(second, first, zone), wall, GAP_AFTER))
        else:
            events.append(_Event(first, wall, GAP_SHIFT, short_month))
    return events


def _candidate_days(timing, start: date) -> Iterator[tuple[date, bool]]:
    """Local dates from ``start`` on that carry fires, with a flag for a monthly day moved to the month end."""
    if timing.type == "monthly":
        year, month = start.year, start.month
        while year <= _LAST_DATE.year - 1:
            length = calendar.monthrange(year, month)[1]
            if timing.day == "last":
                yield date(year, month, length), False
            elif timing.day <= length:
                yield date(year, month, timing.day), False
            elif timing.short_month == "last_day":
                yield date(year, month, length), True
            month += 1
            if month == 13:
                year, month = year + 1, 1
        return
    wanted = None
    if timing.type == "weekly":
        wanted = {WEEKDAYS.index(d) for d in timing.days}
    day = start
    while day < _LAST_DATE:
        if wanted is None or day.weekday() in wanted:
            yield day, False
        day += _ONE_DAY


def _is_candidate(timing, day: date) -> tuple[bool, bool]:
    """Whether local ``day`` carries fires of a wall-clock timing, and whether it is a moved monthly day."""
    if timing.type == "weekly":
        return WEEKDAYS[day.weekday()] in timing.days, False
    if timing.type != "monthly":
        return True, False
    length = calendar.monthrange(day.year, day.month)[1]
    if timing.day == "last":
        return day.day == length, False
    if timing.day <= length:
        return day.day == timing.day, False
    return timing.short_month == "last_day" and day.day == length, True


def _earliest_reading(day: date, zone: ZoneInfo) -> datetime:
    """The earliest UTC reading of local ``day`` 00:00 (either fold): no event of ``day`` or later is earlier.

    Later wall times of a day read later; a fall-back moves the clock back only past walls that then repeat
    (the first reading counts), and a gap only moves fires forward.
    """
    midnight = datetime.combine(day, time(), tzinfo=zone)
    return min(midnight.astimezone(UTC), midnight.replace(fold=1).astimezone(UTC))


def _iter_events(timing, zone: ZoneInfo, after: datetime) -> Iterator[_Event]:
    """Events of a wall-clock timing strictly after ``after`` (UTC), ascending by ``at``.

    Firing events that fall on an instant already fired are dropped (a slot fires once). Candidate local days
    are generated in order from the day before ``after``'s local date (an event of an earlier day lies before
    ``after``) and merged through a heap; after day D, events earlier than the earliest reading of D+1 00:00
    are final (:func:`_earliest_reading`), so a day's fires are released as soon as the day is computed.
    """
    times = _wall_times(timing)
    local = after.astimezone(zone).date()
    start = local - _ONE_DAY if local > date.min else local
    heap: list[tuple[datetime, int, _Event]] = []
    seq = 0
    last_fire: datetime | None = None

    def release(bound: datetime | None) -> Iterator[_Event]:
        nonlocal last_fire
        while heap and (bound is None or heap[0][0] < bound):
            event = heapq.heappop(heap)[2]
            if event.fires:
                if last_fire is not None and event.at <= last_fire:
                    continue
                last_fire = event.at
            yield event

    try:
        for day, short in _candidate_days(timing, start):
            for event in _day_events(timing, zone, day, times, short):
                if event.at > after:
                    heapq.heappush(heap, (event.at, seq, event))
                    seq += 1
            if heap:
                yield from release(_earliest_reading(day + _ONE_DAY, zone))
    except OverflowError:
        pass
    yield from release(None)


def iter_fires(timing, zone: ZoneInfo, after_utc: datetime) -> Iterator[datetime]:
    """Fires strictly after ``after_utc``, ascending, as aware UTC datetimes (endless; empty for manual).

    ``after_utc`` may be any aware datetime (it is converted to UTC); a fire exactly at ``after_utc`` is not
    returned. Raises ``ValueError`` for a naive datetime. Rules: SPEC 3.1-3.2, RFC 5545 (see module doc).
    """
    after = _require_aware(after_utc, "after_utc")
    if timing.type == "manual":
        return iter(())
    period = _interval_seconds(timing)
    if period is not None:
        return _interval_fires(period, after)
    return (event.at for event in _iter_events(timing, zone, after) if event.fires)


def next_fire(timing, zone: ZoneInfo, after_utc: datetime) -> datetime | None:
    """The first fire strictly after ``after_utc`` (aware) as an aware UTC datetime; None for manual.

    Raises ``ValueError`` for a naive datetime. Same rules as :func:`iter_fires`.
    """
    return next(iter_fires(timing, zone, after_utc), None)


# --------------------------------------------------------------------------------------------- notes


def _hhmm(value: datetime | time) -> str:
    return f"{value.hour:02d}:{value.minute:02d}"


def _local(at: datetime, zone: ZoneInfo) -> datetime:
    return at.astimezone(zone)


def _event_note(event: _Event, zone: ZoneInfo, for_lint: bool = False) -> str | None:
    """Human text for a gap/fold event, or None for a plain one."""
    wall = _hhmm(event.wall)
    day = event.wall.date().isoformat()
    local = _local(event.at, zone)
    if event.kind == GAP_SHIFT:
        return (f"{wall} does not exist on {day} in {zone.key} (DST gap): "
                f"fires at {_hhmm(local)} {local.tzname()}")
    if event.kind == GAP_AFTER:
        return (f"{wall} does not exist on {day} in {zone.key} (DST gap): "
                f"fires at {_hhmm(local)} {local.tzname()}, the first instant after the gap")
    if event.kind == GAP_NONE:
        return (f"{wall} does not exist on {day} in {zone.key} (DST gap): "
                f"no fire that hour (every real hour; the clock skips it)")
    if event.kind == FOLD_ONCE:
        return (f"{wall} occurs twice on {day} in {zone.key} (DST fold): "
                f"fires once, at the first occurrence ({local.tzname()})")
    if event.kind in (FOLD_FIRST, FOLD_SECOND):
        first, second = _classify(event.wall, zone)[1:]
        names = f"{_local(first, zone).tzname()} and {_local(second, zone).tzname()}"
        if for_lint:
            return f"{wall} occurs twice on {day} in {zone.key} (DST fold): fires at both occurrences ({names})"
        which = "first" if event.kind == FOLD_FIRST else "second"
        return (f"{wall} occurs twice on {day} in {zone.key} (DST fold): fires at both occurrences "
                f"({names}); this is the {which} ({local.tzname()})")
    return None


def _short_month_note(timing, event: _Event) -> str:
    d = event.wall.date()
    return (f"day {timing.day} does not exist in {_MONTH_NAMES[d.month - 1]} {d.year}: "
            f"fires on its last day, {d.isoformat()} (short_month: last_day)")


def fire_notes(timing, zone: ZoneInfo, fire_utc: datetime) -> list[str]:
    """Human notes for one fire: shifted out of a DST gap, lying in a fold, or moved to a month's last day.

    ``fire_utc`` is an aware datetime, normally one returned by :func:`iter_fires`. Returns ``[]`` for a
    plain fire, for interval and manual timings, and for an instant that is not a fire. Raises
    ``ValueError`` for a naive datetime. Example: ``"02:30 does not exist on 2026-03-29 in Europe/Berlin
    (DST gap): fires at 03:30 CEST"``.
    """
    fire = _require_aware(fire_utc, "fire_utc")
    if timing.type == "manual" or _interval_seconds(timing) is not None:
        return []
    notes: list[str] = []
    for event in _iter_events(timing, zone, fire - timedelta(microseconds=1)):
        if event.at > fire:
            break
        if not event.fires:
            continue
        if event.short_month:
            notes.append(_short_month_note(timing, event))
        text = _event_note(event, zone)
        if text:
            notes.append(text)
    return notes


def lint_notes(timing, zone: ZoneInfo, start_utc: datetime, days: int = 366) -> list[tuple[str, str]]:
    """Lint warnings for a timing over the ``days`` days after ``start_utc`` (aware): ``[(code, message)]``.

    * ``W003`` (SPEC 2): a fire lands in a DST gap or fold; the message names the local time, the date and
      what happens (RFC 5545 shift, first instant after the gap, fires once, fires twice, no fire).
    * ``W004``: ``monthly`` day 29..31; the message names the months without that day and what
      ``short_month`` does there, with the first affected month after ``start_utc``.

    Raises ``ValueError`` for a naive ``start_utc`` or ``days`` < 1.
    """
    start = _require_aware(start_utc, "start_utc")
    if days < 1:
        raise ValueError("days must be >= 1")
    if timing.type == "manual" or _interval_seconds(timing) is not None:
        return []
    end = start + timedelta(days=days)
    found: list[tuple[str, str]] = []
    seen: set[tuple[datetime, str]] = set()
    times = _wall_times(timing)
    first_day = start.astimezone(zone).date() - _ONE_DAY
    last_day = end.astimezone(zone).date() + _ONE_DAY
    # Only days touched by a transition can hold a gap or fold: look at those, not at every fire.
    for year in range(first_day.year, last_day.year + 1):
        for day in _transition_days(zone, year):
            if not first_day <= day <= last_day:
                continue
            wanted, short = _is_candidate(timing, day)
            if not wanted:
                continue
            for event in sorted(_day_events(timing, zone, day, times, short), key=lambda e: e.at):
                if event.kind == NORMAL or not start < event.at <= end:
                    continue
                key = (event.wall, event.kind.split("_")[0])
                if key in seen:
                    continue
                seen.add(key)
                text = _event_note(event, zone, for_lint=True)
                if event.kind in (GAP_SHIFT, GAP_AFTER):
                    text += f"; other days fire at {_hhmm(event.wall)}"
                found.append(("W003", text))
    if timing.type == "monthly" and timing.day != "last" and timing.day >= 29:
        found.append(("W004", _short_month_lint(timing, start.astimezone(zone).date())))
    return found


def _short_month_lint(timing, start: date) -> str:
    n = timing.day
    if n == 29:
        months = "February of common years (not leap years)"
    elif n == 30:
        months = "February"
    else:
        months = "February, April, June, September and November"
    year, month = start.year, start.month
    for _ in range(60):
        length = calendar.monthrange(year, month)[1]
        if length < n:
            break
        month += 1
        if month == 13:
            year, month = year + 1, 1
    first = f"{_MONTH_NAMES[month - 1]} {year}"
    if timing.short_month == "last_day":
        return (f"monthly day {n} does not exist in {months}: with short_month: last_day those months fire on "
                f"their last day (next: {date(year, month, length).isoformat()})")
    return (f"monthly day {n} does not exist in {months}: with short_month: skip those months have no fire "
            f"(next skipped: {first})")


def describe(timing) -> str:
    """A one-line English summary of a timing (``"daily at 02:30"``, ``"every 2 hours at minute 30"``)."""
    kind = timing.type
    if kind == "manual":
        return "manual (only when triggered)"
    if kind in ("seconds", "minutes"):
        unit = kind[:-1] if timing.every == 1 else kind
        return f"every {timing.every} {unit}" if timing.every != 1 else f"every {unit}"
    if kind == "hours":
        if timing.every == 1:
            return f"every hour at minute {timing.minute}"
        return f"every {timing.every} hours at minute {timing.minute} (slots from 00:{timing.minute:02d} local)"
    if kind == "daily":
        return f"daily at {', '.join(timing.times)}"
    if kind == "weekly":
        days = sorted(timing.days, key=WEEKDAYS.index)
        return f"weekly on {', '.join(days)} at {timing.at}"
    day = "the last day" if timing.day == "last" else f"day {timing.day}"
    extra = ""
    if timing.day != "last" and timing.day >= 29:
        extra = f" (short months: {timing.short_month.replace('_', ' ')})"
    return f"monthly on {day} at {timing.at}{extra}"
