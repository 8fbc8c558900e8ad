"""Table-driven tests of the timing math (SPEC 3.1-3.2).

Every expected instant was worked out by hand from the rules and the zones' offsets, never by calling the
code under test:
  Europe/Berlin  CET +01:00 / CEST +02:00; 2026-03-29 01:00Z (02:00 -> 03:00), 2026-10-25 01:00Z (03:00 -> 02:00)
                 2027-03-28, 2028-03-26 spring forward
  America/New_York  EST -05:00 / EDT -04:00; 2026-03-08 07:00Z (02:00 -> 03:00), 2026-11-01 06:00Z (02:00 -> 01:00)
  Europe/London  GMT +00:00 / BST +01:00; 2026-03-29 01:00Z (01:00 -> 02:00)
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from itertools import islice
from zoneinfo import ZoneInfo

import pytest
from pydantic import TypeAdapter

from zmi_reconciler.schema import Timing
from zmi_reconciler.timing import fire_notes, iter_fires, lint_notes, next_fire

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LONDON = ZoneInfo("Europe/London")
_TIMING = TypeAdapter(Timing)


def timing(**fields):
    return _TIMING.validate_python(fields)


def utc(text: str) -> datetime:
    """'2026-03-29T01:30' -> aware UTC datetime."""
    return datetime.fromisoformat(text).replace(tzinfo=timezone.utc)


def fires(t, zone, after: str, count: int) -> list[datetime]:
    return list(islice(iter_fires(t, zone, utc(after)), count))


# (id, timing fields, zone, after (UTC), expected fires (UTC))
TABLE = [
    # --- daily 02:30 in Europe/Berlin across both transitions
    ("berlin-daily-0230-spring", dict(type="daily", at="02:30"), BERLIN, "2026-03-27T12:00",
     ["2026-03-28T01:30",    # 02:30 CET
      "2026-03-29T01:30",    # 02:30 does not exist -> 03:30 CEST (RFC 5545: shifted by the gap)
      "2026-03-30T00:30",    # 02:30 CEST again
      "2026-03-31T00:30"]),
    ("berlin-daily-0230-fall", dict(type="daily", at="02:30"), BERLIN, "2026-10-24T12:00",
     ["2026-10-25T00:30",    # first occurrence, CEST; the CET one (01:30Z) does not fire
      "2026-10-26T01:30",    # 02:30 CET
      "2026-10-27T01:30"]),
    # --- hours every 1: every real hour
    ("berlin-hourly-spring", dict(type="hours", every=1), BERLIN, "2026-03-28T23:30",
     ["2026-03-29T00:00",    # 01:00 CET
      "2026-03-29T01:00",    # 03:00 CEST; 02:00 does not exist, no fire
      "2026-03-29T02:00"]),  # 04:00 CEST
    ("berlin-hourly-fall", dict(type="hours", every=1), BERLIN, "2026-10-24T22:30",
     ["2026-10-24T23:00",    # 01:00 CEST
      "2026-10-25T00:00",    # 02:00 CEST
      "2026-10-25T01:00",    # 02:00 CET: the repeated hour fires again
      "2026-10-25T02:00",    # 03:00 CET
      "2026-10-25T03:00"]),
    ("berlin-hourly-minute30-spring", dict(type="hours", every=1, minute=30), BERLIN, "2026-03-29T00:00",
     ["2026-03-29T00:30",    # 01:30 CET
      "2026-03-29T01:30",    # 03:30 CEST (02:30 skipped)
      "2026-03-29T02:30"]),
    # --- hours every 2
    ("berlin-2h-spring", dict(type="hours", every=2), BERLIN, "2026-03-28T20:30",
     ["2026-03-28T21:00",    # 22:00 CET
      "2026-03-28T23:00",    # 00:00 CET on the 29th
      "2026-03-29T01:00",    # 02:00 does not exist -> first instant after the gap, 03:00 CEST
      "2026-03-29T02:00",    # 04:00 CEST
      "2026-03-29T04:00"]),  # 06:00 CEST
    ("berlin-2h-minute30-spring", dict(type="hours", every=2, minute=30), BERLIN, "2026-03-28T23:00",
     ["2026-03-28T23:30",    # 00:30 CET
      "2026-03-29T01:00",    # 02:30 does not exist -> 03:00 CEST (first instant after the gap, not 03:30)
      "2026-03-29T02:30"]),  # 04:30 CEST
    ("berlin-2h-fall", dict(type="hours", every=2), BERLIN, "2026-10-24T20:30",
     ["2026-10-24T22:00",    # 00:00 CEST on the 25th
      "2026-10-25T00:00",    # 02:00 CEST, first occurrence only
      "2026-10-25T03:00",    # 04:00 CET
      "2026-10-25T05:00"]),  # 06:00 CET
    # --- minutes every 10: real time, unaffected by DST
    ("berlin-10min-spring", dict(type="minutes", every=10), BERLIN, "2026-03-29T00:45",
     ["2026-03-29T00:50", "2026-03-29T01:00", "2026-03-29T01:10", "2026-03-29T01:20"]),
    ("berlin-10min-fall", dict(type="minutes", every=10), BERLIN, "2026-10-25T00:45",
     ["2026-10-25T00:50", "2026-10-25T01:00", "2026-10-25T01:10", "2026-10-25T01:20"]),
    # --- America/New_York 2026-03-08
    ("ny-daily-0100-spring", dict(type="daily", at="01:00"), NEW_YORK, "2026-03-06T12:00",
     ["2026-03-07T06:00",    # 01:00 EST
      "2026-03-08T06:00",    # 01:00 EST, before the gap: normal
      "2026-03-09T05:00"]),  # 01:00 EDT
    ("ny-daily-0215-spring", dict(type="daily", at="02:15"), NEW_YORK, "2026-03-06T12:00",
     ["2026-03-07T07:15",    # 02:15 EST
      "2026-03-08T07:15",    # 02:15 does not exist -> 03:15 EDT
      "2026-03-09T06:15",    # 02:15 EDT: normal time again the day after
      "2026-03-10T06:15"]),
    ("ny-daily-0130-fall", dict(type="daily", at="01:30"), NEW_YORK, "2026-10-31T12:00",
     ["2026-11-01T05:30",    # 01:30 EDT, first occurrence; 01:30 EST (06:30Z) does not fire
      "2026-11-02T06:30"]),  # 01:30 EST
    # --- Europe/London 2026-03-29
    ("london-daily-0100-spring", dict(type="daily", at="01:00"), LONDON, "2026-03-27T12:00",
     ["2026-03-28T01:00",    # 01:00 GMT
      "2026-03-29T01:00",    # 01:00 does not exist -> 02:00 BST
      "2026-03-30T00:00",    # 01:00 BST
      "2026-03-31T00:00"]),
    ("london-daily-0215-spring", dict(type="daily", at="02:15"), LONDON, "2026-03-27T12:00",
     ["2026-03-28T02:15",    # 02:15 GMT
      "2026-03-29T01:15",    # 02:15 BST exists (the gap is 01:00-02:00)
      "2026-03-30T01:15"]),
    # --- daily with a list of times (unsorted in the file)
    ("berlin-daily-list", dict(type="daily", at=["17:00", "05:00", "12:30"]), BERLIN, "2026-06-01T04:00",
     ["2026-06-01T10:30", "2026-06-01T15:00", "2026-06-02T03:00", "2026-06-02T10:30"]),
    ("berlin-daily-list-spring", dict(type="daily", at=["02:15", "02:45", "03:15"]), BERLIN, "2026-03-29T00:00",
     ["2026-03-29T01:15",    # 02:15 -> 03:15 CEST, and the real 03:15 CEST is the same instant: fires once
      "2026-03-29T01:45",    # 02:45 -> 03:45 CEST
      "2026-03-30T00:15"]),  # 02:15 CEST the next day
    # --- monthly day 31 across 2026 (Berlin, 05:00 local)
    ("monthly-31-last-day", dict(type="monthly", day=31, at="05:00"), BERLIN, "2026-01-01T00:00",
     ["2026-01-31T04:00", "2026-02-28T04:00", "2026-03-31T03:00", "2026-04-30T03:00", "2026-05-31T03:00",
      "2026-06-30T03:00", "2026-07-31T03:00", "2026-08-31T03:00", "2026-09-30T03:00", "2026-10-31T04:00",
      "2026-11-30T04:00", "2026-12-31T04:00", "2027-01-31T04:00"]),
    ("monthly-31-skip", dict(type="monthly", day=31, at="05:00", short_month="skip"), BERLIN, "2026-01-01T00:00",
     ["2026-01-31T04:00", "2026-03-31T03:00", "2026-05-31T03:00", "2026-07-31T03:00", "2026-08-31T03:00",
      "2026-10-31T04:00", "2026-12-31T04:00", "2027-01-31T04:00"]),
    # --- monthly last day, across the leap February of 2028
    ("monthly-last-2028", dict(type="monthly", day="last", at="18:00"), BERLIN, "2028-01-01T00:00",
     ["2028-01-31T17:00", "2028-02-29T17:00", "2028-03-31T16:00", "2028-04-30T16:00"]),
    ("monthly-last-2027", dict(type="monthly", day="last", at="18:00"), BERLIN, "2027-01-01T00:00",
     ["2027-01-31T17:00", "2027-02-28T17:00", "2027-03-31T16:00"]),
    # --- Feb 29: day 29 fires on Feb 29 2028, skips (or moves) February 2027
    ("monthly-29-skip-2027", dict(type="monthly", day=29, at="12:00", short_month="skip"), BERLIN,
     "2026-12-01T00:00",
     ["2026-12-29T11:00", "2027-01-29T11:00", "2027-03-29T10:00"]),
    ("monthly-29-last-day-2027", dict(type="monthly", day=29, at="12:00"), BERLIN, "2027-01-15T00:00",
     ["2027-01-29T11:00", "2027-02-28T11:00", "2027-03-29T10:00"]),
    ("monthly-29-skip-2028", dict(type="monthly", day=29, at="12:00", short_month="skip"), BERLIN,
     "2027-12-01T00:00",
     ["2027-12-29T11:00", "2028-01-29T11:00", "2028-02-29T11:00", "2028-03-29T10:00"]),
    # --- weekly on several days (listed out of order); 2026-03-25 is a Wednesday
    ("weekly-mon-wed-fri", dict(type="weekly", days=["fri", "mon", "wed"], at="09:00"), BERLIN, "2026-03-25T12:00",
     ["2026-03-27T08:00",    # Fri 09:00 CET
      "2026-03-30T07:00",    # Mon 09:00 CEST
      "2026-04-01T07:00", "2026-04-03T07:00", "2026-04-06T07:00"]),
    ("weekly-sun-gap", dict(type="weekly", days=["sun"], at="02:30"), BERLIN, "2026-03-20T00:00",
     ["2026-03-22T01:30",    # 02:30 CET
      "2026-03-29T01:30",    # 03:30 CEST
      "2026-04-05T00:30"]),  # 02:30 CEST
    # --- interval grids anchored at the epoch (2026-01-01T00:00Z = 1767225600 s = 20454 days, 20454 = 7 * 2922)
    ("seconds-7", dict(type="seconds", every=7), BERLIN, "2026-01-01T00:00:03.500000",
     ["2026-01-01T00:00:07", "2026-01-01T00:00:14", "2026-01-01T00:00:21"]),
    ("minutes-7-next-day", dict(type="minutes", every=7), BERLIN, "2026-01-02T00:00",
     # 86400 mod 420 = 300: midnight of the 2nd lies 300 s past a grid point, the next one is 120 s later
     ["2026-01-02T00:02", "2026-01-02T00:09"]),
    ("minutes-1440", dict(type="minutes", every=1440), NEW_YORK, "2026-03-07T12:00",
     ["2026-03-08T00:00", "2026-03-09T00:00", "2026-03-10T00:00"]),
]


@pytest.mark.parametrize("fields,zone,after,expected", [row[1:] for row in TABLE], ids=[row[0] for row in TABLE])
def test_fire_table(fields, zone, after, expected):
    t = timing(**fields)
    assert fires(t, zone, after, len(expected)) == [utc(e) for e in expected]
    assert next_fire(t, zone, utc(after)) == utc(expected[0])


def test_minutes_every_10_count_over_the_fall_back_night():
    # 00:00Z..02:00Z spans the repeated hour 02:00-03:00 local; real time still gives 12 fires in 2 hours.
    t = timing(type="minutes", every=10)
    got = [f for f in islice(iter_fires(t, BERLIN, utc("2026-10-24T23:59:59")), 20) if f < utc("2026-10-25T02:00")]
    assert len(got) == 12
    assert got[0] == utc("2026-10-25T00:00") and got[-1] == utc("2026-10-25T01:50")


@pytest.mark.parametrize("fields,after,expected", [
    (dict(type="daily", at="05:00"), "2026-06-01T03:00", "2026-06-02T03:00"),
    (dict(type="hours", every=3, minute=15), "2026-06-01T04:15", "2026-06-01T07:15"),   # 06:15 -> 09:15 CEST
    (dict(type="seconds", every=7), "2026-01-01T00:00", "2026-01-01T00:00:07"),
    (dict(type="minutes", every=5), "2026-06-01T10:05", "2026-06-01T10:10"),
    (dict(type="monthly", day=1, at="00:00"), "2026-05-31T22:00", "2026-06-30T22:00"),
    (dict(type="weekly", days=["mon"], at="09:00"), "2026-06-01T07:00", "2026-06-08T07:00"),
])
def test_fire_exactly_at_after_is_not_returned(fields, after, expected):
    t = timing(**fields)
    assert next_fire(t, BERLIN, utc(after)) == utc(expected)
    assert next_fire(t, BERLIN, utc(after) - timedelta(microseconds=1)) == utc(after)


def test_after_in_another_zone_is_the_same_instant():
    t = timing(type="daily", at="02:30")
    after_local = datetime(2026, 3, 29, 2, 0, tzinfo=ZoneInfo("Asia/Tokyo"))  # 2026-03-28T17:00Z
    assert next_fire(t, BERLIN, after_local) == utc("2026-03-29T01:30")
    assert next_fire(t, BERLIN, after_local).tzinfo is timezone.utc


def test_naive_after_is_rejected():
    with pytest.raises(ValueError, match="aware"):
        next_fire(timing(type="daily", at="05:00"), BERLIN, datetime(2026, 1, 1))
    with pytest.raises(ValueError, match="aware"):
        iter_fires(timing(type="seconds", every=1), BERLIN, datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        fire_notes(timing(type="daily", at="05:00"), BERLIN, datetime(2026, 1, 1))
    with pytest.raises(ValueError):
        lint_notes(timing(type="daily", at="05:00"), BERLIN, datetime(2026, 1, 1))


def test_manual_never_fires():
    t = timing(type="manual")
    assert next_fire(t, BERLIN, utc("2026-01-01T00:00")) is None
    assert list(iter_fires(t, BERLIN, utc("2026-01-01T00:00"))) == []
    assert fire_notes(t, BERLIN, utc("2026-01-01T00:00")) == []
    assert lint_notes(t, BERLIN, utc("2026-01-01T00:00")) == []


def test_seconds_jump_far_ahead_is_direct():
    # 2100-01-01T00:00Z = 4102444800 s since the epoch; 4102444800 = 7 * 586063542 + 6 -> next grid point +1 s.
    t = timing(type="seconds", every=7)
    assert next_fire(t, BERLIN, utc("2100-01-01T00:00")) == utc("2100-01-01T00:00:01")


def test_monthly_skip_jumps_over_many_short_months():
    # day 30, skip: February is skipped every year; from Feb 1st the next fire is March 30th.
    t = timing(type="monthly", day=30, at="08:00", short_month="skip")
    assert next_fire(t, BERLIN, utc("2027-02-01T00:00")) == utc("2027-03-30T06:00")  # 08:00 CEST (after 03-28)


# --- notes -----------------------------------------------------------------------------------------------

def test_fire_notes_gap_calendar():
    t = timing(type="daily", at="02:30")
    assert fire_notes(t, BERLIN, utc("2026-03-29T01:30")) == [
        "02:30 does not exist on 2026-03-29 in Europe/Berlin (DST gap): fires at 03:30 CEST"]
    assert fire_notes(t, BERLIN, utc("2026-03-30T00:30")) == []
    assert fire_notes(t, BERLIN, utc("2026-03-30T00:31")) == []  # not a fire at all


def test_fire_notes_fold_calendar():
    t = timing(type="daily", at="01:30")
    assert fire_notes(t, NEW_YORK, utc("2026-11-01T05:30")) == [
        "01:30 occurs twice on 2026-11-01 in America/New_York (DST fold): fires once, at the first occurrence (EDT)"]


def test_fire_notes_hourly():
    t = timing(type="hours", every=1)
    first = fire_notes(t, BERLIN, utc("2026-10-25T00:00"))
    second = fire_notes(t, BERLIN, utc("2026-10-25T01:00"))
    assert len(first) == 1 and "02:00 occurs twice on 2026-10-25" in first[0] and "first (CEST)" in first[0]
    assert len(second) == 1 and "second (CET)" in second[0]
    t2 = timing(type="hours", every=2)
    assert fire_notes(t2, BERLIN, utc("2026-03-29T01:00")) == [
        "02:00 does not exist on 2026-03-29 in Europe/Berlin (DST gap): fires at 03:00 CEST, "
        "the first instant after the gap"]


def test_fire_notes_short_month():
    t = timing(type="monthly", day=31, at="05:00")
    assert fire_notes(t, BERLIN, utc("2026-04-30T03:00")) == [
        "day 31 does not exist in April 2026: fires on its last day, 2026-04-30 (short_month: last_day)"]
    assert fire_notes(t, BERLIN, utc("2026-05-31T03:00")) == []


def test_interval_timings_have_no_notes():
    t = timing(type="minutes", every=10)
    assert fire_notes(t, BERLIN, utc("2026-03-29T01:00")) == []
    assert lint_notes(t, BERLIN, utc("2026-01-01T00:00")) == []


def test_lint_notes_daily_gap_and_fold():
    notes = lint_notes(timing(type="daily", at="02:30"), BERLIN, utc("2026-01-01T00:00"))
    assert [code for code, _ in notes] == ["W003", "W003"]
    assert "02:30 does not exist on 2026-03-29" in notes[0][1] and "03:30 CEST" in notes[0][1]
    assert "02:30 occurs twice on 2026-10-25" in notes[1][1] and "first occurrence" in notes[1][1]


def test_lint_notes_window_and_quiet_times():
    # 05:00 never touches a transition; a short window that ends before the gap finds nothing either.
    assert lint_notes(timing(type="daily", at="05:00"), BERLIN, utc("2026-01-01T00:00")) == []
    assert lint_notes(timing(type="daily", at="02:30"), BERLIN, utc("2026-01-01T00:00"), days=30) == []
    # weekly on Mondays at 02:30 never lands on the Sunday transitions
    assert lint_notes(timing(type="weekly", days=["mon"], at="02:30"), BERLIN, utc("2026-01-01T00:00")) == []


def test_lint_notes_hourly_reports_skipped_and_doubled_hour():
    notes = lint_notes(timing(type="hours", every=1, minute=30), BERLIN, utc("2026-01-01T00:00"))
    assert len(notes) == 2
    assert "02:30 does not exist on 2026-03-29" in notes[0][1] and "no fire" in notes[0][1]
    assert "02:30 occurs twice on 2026-10-25" in notes[1][1] and "both occurrences" in notes[1][1]


@pytest.mark.parametrize("fields,start,expect", [
    (dict(type="monthly", day=31, at="05:00"), "2026-01-01T00:00",
     ["February, April, June, September and November", "last_day", "next: 2026-02-28"]),
    (dict(type="monthly", day=31, at="05:00", short_month="skip"), "2026-03-01T00:00",
     ["February, April, June, September and November", "no fire", "next skipped: April 2026"]),
    (dict(type="monthly", day=29, at="05:00"), "2028-03-01T00:00",
     ["February of common years", "next: 2029-02-28"]),
    (dict(type="monthly", day=30, at="05:00", short_month="skip"), "2026-01-01T00:00",
     ["does not exist in February:", "next skipped: February 2026"]),
])
def test_lint_notes_w004(fields, start, expect):
    notes = lint_notes(timing(**fields), BERLIN, utc(start))
    w004 = [m for code, m in notes if code == "W004"]
    assert len(w004) == 1
    for part in expect:
        assert part in w004[0]


@pytest.mark.parametrize("day", [1, 28, "last"])
def test_lint_notes_no_w004_for_days_every_month_has(day):
    notes = lint_notes(timing(type="monthly", day=day, at="05:00"), BERLIN, utc("2026-01-01T00:00"))
    assert notes == []


@pytest.mark.parametrize("fields,text", [
    (dict(type="seconds", every=1), "every second"),
    (dict(type="minutes", every=10), "every 10 minutes"),
    (dict(type="hours", every=1), "every hour at minute 0"),
    (dict(type="hours", every=2, minute=30), "every 2 hours at minute 30 (slots from 00:30 local)"),
    (dict(type="daily", at=["17:00", "05:00"]), "daily at 05:00, 17:00"),
    (dict(type="weekly", days=["fri", "mon"], at="09:00"), "weekly on mon, fri at 09:00"),
    (dict(type="monthly", day=31, at="05:00", short_month="skip"), "monthly on day 31 at 05:00 (short months: skip)"),
    (dict(type="monthly", day="last", at="05:00"), "monthly on the last day at 05:00"),
    (dict(type="manual"), "manual (only when triggered)"),
])
def test_describe(fields, text):
    from zmi_reconciler.timing import describe

    assert describe(timing(**fields)) == text
