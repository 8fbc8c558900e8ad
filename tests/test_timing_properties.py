"""Property tests of the timing math (hypothesis): ordering, strictness, consistency, grids."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone
from functools import lru_cache
from itertools import islice
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from zmi_reconciler.schema import (WEEKDAYS, DailyTiming, HoursTiming, MinutesTiming, MonthlyTiming, SecondsTiming,
                                   WeeklyTiming)
from zmi_reconciler.timing import iter_fires, next_fire

UTC = timezone.utc
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# Zones with whole-hour, half-hour and 45-minute offsets, 30-minute DST (Lord_Howe), midnight transitions
# (Santiago, Havana) and a zone without DST.
ZONES = [ZoneInfo(k) for k in ("UTC", "Europe/Berlin", "America/New_York", "Europe/London", "Australia/Lord_Howe",
                               "America/Santiago", "America/Havana", "Asia/Kolkata", "Pacific/Chatham",
                               "America/St_Johns")]
WHOLE_HOUR_ZONES = [ZoneInfo(k) for k in ("UTC", "Europe/Berlin", "America/New_York", "Europe/London")]

hhmm = st.builds(lambda h, m: f"{h:02d}:{m:02d}", st.integers(0, 23), st.sampled_from([0, 1, 15, 30, 45, 59]))
interval_timings = st.one_of(
    st.builds(SecondsTiming, type=st.just("seconds"), every=st.integers(1, 86400)),
    st.builds(MinutesTiming, type=st.just("minutes"), every=st.integers(1, 1440)),
)
wall_timings = st.one_of(
    st.builds(HoursTiming, type=st.just("hours"), every=st.integers(1, 24), minute=st.integers(0, 59)),
    st.builds(DailyTiming, type=st.just("daily"), at=hhmm),
    st.builds(DailyTiming, type=st.just("daily"), at=st.lists(hhmm, min_size=1, max_size=4, unique=True)),
    st.builds(WeeklyTiming, type=st.just("weekly"), at=hhmm,
              days=st.lists(st.sampled_from(WEEKDAYS), min_size=1, max_size=7, unique=True)),
    st.builds(MonthlyTiming, type=st.just("monthly"), at=hhmm,
              day=st.one_of(st.integers(1, 31), st.just("last")), short_month=st.sampled_from(["last_day", "skip"])),
)
zones = st.sampled_from(ZONES)


@lru_cache(maxsize=None)
def _transitions(zone: ZoneInfo, year: int) -> tuple[datetime, ...]:
    """UTC instants (to 30 minutes) where ``zone``'s offset changes during ``year``: a plain day-by-day scan,
    then half-hour steps through each day whose offset differs at both ends."""
    found = []
    day = datetime(year, 1, 1, tzinfo=UTC)
    while day.year == year:
        nxt = day + timedelta(days=1)
        if day.astimezone(zone).utcoffset() != nxt.astimezone(zone).utcoffset():
            u = day
            while u < nxt:
                if u.astimezone(zone).utcoffset() != (u + timedelta(minutes=30)).astimezone(zone).utcoffset():
                    found.append(u + timedelta(minutes=30))
                u += timedelta(minutes=30)
        day = nxt
    return tuple(found)


@st.composite
def zoned_afters(draw, zone_list=tuple(ZONES)):
    """(zone, after): any instant 1975..2090, or (half the time) one within 36 h of an offset change of the zone."""
    zone = draw(st.sampled_from(zone_list))
    if draw(st.booleans()):
        return zone, draw(st.datetimes(min_value=datetime(1975, 1, 1), max_value=datetime(2090, 12, 31),
                                       timezones=st.just(UTC)))
    near = _transitions(zone, draw(st.integers(1975, 2090))) or (datetime(2000, 1, 1, tzinfo=UTC),)
    base = draw(st.sampled_from(near))
    return zone, base + timedelta(seconds=draw(st.integers(-36 * 3600, 36 * 3600)))


COUNT = 12


@settings(max_examples=150, deadline=None)
@given(t=st.one_of(interval_timings, wall_timings), za=zoned_afters())
def test_fires_strictly_increasing_after_and_consistent(t, za):
    zone, after = za
    got = list(islice(iter_fires(t, zone, after), COUNT))
    assert len(got) == COUNT
    assert all(f.tzinfo is UTC for f in got)
    assert got[0] > after
    assert all(a < b for a, b in zip(got, got[1:]))
    assert next_fire(t, zone, after) == got[0]
    # Restarting from any fire continues with the rest: the generator's merge has no state of its own.
    for i in (0, COUNT // 2):
        assert list(islice(iter_fires(t, zone, got[i]), COUNT - i - 1)) == got[i + 1:]
    # The zone in which `after` is given does not matter.
    assert next_fire(t, zone, after.astimezone(zone)) == got[0]


@settings(max_examples=150, deadline=None)
@given(t=interval_timings, za=zoned_afters())
def test_interval_fires_on_the_epoch_grid(t, za):
    zone, after = za
    period = t.every if t.type == "seconds" else t.every * 60
    got = list(islice(iter_fires(t, zone, after), 5))
    for f in got:
        assert (f - EPOCH) % timedelta(seconds=period) == timedelta(0)
    assert got[0] - after <= timedelta(seconds=period)
    assert all(b - a == timedelta(seconds=period) for a, b in zip(got, got[1:]))


def _slots(t) -> list[time]:
    if t.type == "hours":
        return [time(h, t.minute) for h in range(0, 24, t.every)]
    if t.type == "daily":
        return [time.fromisoformat(x) for x in t.times]
    return [time.fromisoformat(t.at)]


def _nonexistent(day: date, slot: time, zone: ZoneInfo) -> bool:
    wall = datetime.combine(day, slot, tzinfo=zone)
    return wall.astimezone(UTC).astimezone(zone).replace(tzinfo=None) != wall.replace(tzinfo=None)


@settings(max_examples=150, deadline=None)
@given(t=wall_timings, za=zoned_afters())
def test_wall_fires_are_at_a_slot_or_out_of_a_gap(t, za):
    zone, after = za
    slots = _slots(t)
    for f in islice(iter_fires(t, zone, after), COUNT):
        local = f.astimezone(zone)
        if local.time().replace(tzinfo=None) in slots:
            if not (t.type == "hours" and t.every == 1):
                assert local.fold == 0  # a time that occurs twice fires at its first occurrence
            continue
        assert any(_nonexistent(d, s, zone) for d in (local.date(), local.date() - timedelta(days=1)) for s in slots)


@settings(max_examples=100, deadline=None)
@given(t=st.builds(DailyTiming, type=st.just("daily"), at=hhmm), za=zoned_afters())
def test_daily_fires_once_per_local_day(t, za):
    zone, after = za
    days = [f.astimezone(zone).date() for f in islice(iter_fires(t, zone, after), COUNT)]
    assert all(b - a == timedelta(days=1) for a, b in zip(days, days[1:]))


@settings(max_examples=100, deadline=None)
@given(minute=st.integers(0, 59), za=zoned_afters(tuple(WHOLE_HOUR_ZONES)))
def test_hourly_every_1_is_every_real_hour(minute, za):
    zone, after = za
    t = HoursTiming(type="hours", every=1, minute=minute)
    got = list(islice(iter_fires(t, zone, after), 30))
    assert all(b - a == timedelta(hours=1) for a, b in zip(got, got[1:]))


def _existing_readings(wall: datetime, zone: ZoneInfo) -> list[datetime]:
    """UTC instants whose local wall time in ``zone`` is ``wall`` (0, 1 or 2 of them), straight from zoneinfo."""
    found = []
    for fold in (0, 1):
        u = wall.replace(tzinfo=zone, fold=fold).astimezone(UTC)
        if u.astimezone(zone).replace(tzinfo=None) == wall and u not in found:
            found.append(u)
    return found


@settings(max_examples=150, deadline=None)
@given(at=hhmm, za=zoned_afters())
def test_daily_matches_the_rfc5545_reading_day_by_day(at, za):
    zone, after = za
    # Independent oracle: the fold=0 reading of <day> <at> is RFC 5545's instant (gap: offset before the gap,
    # fold: first occurrence). Build it for a run of local days and compare.
    t = DailyTiming(type="daily", at=at)
    start = after.astimezone(zone).date() - timedelta(days=1)
    expected = sorted({datetime.combine(start + timedelta(days=i), time.fromisoformat(at), tzinfo=zone)
                       .astimezone(UTC) for i in range(COUNT + 3)})
    expected = [e for e in expected if e > after][:COUNT]
    assert list(islice(iter_fires(t, zone, after), COUNT)) == expected


@settings(max_examples=100, deadline=None)
@given(minute=st.integers(0, 59), za=zoned_afters())
def test_hourly_every_1_matches_existing_wall_times(minute, za):
    zone, after = za
    # Independent oracle: every instant whose local wall time is HH:<minute> (both folds, gaps none).
    t = HoursTiming(type="hours", every=1, minute=minute)
    start = after.astimezone(zone).date() - timedelta(days=1)
    expected = sorted({u for i in range(4) for h in range(24)
                       for u in _existing_readings(datetime.combine(start + timedelta(days=i), time(h, minute)), zone)})
    expected = [e for e in expected if e > after][:COUNT]
    assert list(islice(iter_fires(t, zone, after), COUNT)) == expected


@settings(max_examples=60, deadline=None)
@given(t=wall_timings, za=zoned_afters())
def test_lint_names_every_dst_fire_of_the_window(t, za):
    zone, after = za
    from zmi_reconciler.timing import fire_notes, lint_notes

    end = after + timedelta(days=60)
    w003 = [m for code, m in lint_notes(t, zone, after, days=60) if code == "W003"]
    for f in iter_fires(t, zone, after):
        if f > end:
            break
        for note in fire_notes(t, zone, f):
            if "DST" in note:
                head = note.split(" in ")[0]  # "02:30 does not exist on 2026-03-29"
                assert any(m.startswith(head) for m in w003), (note, w003)
