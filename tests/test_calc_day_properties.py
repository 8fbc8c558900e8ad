"""Daily calculation: invariants over arbitrary bookings and plans (hypothesis)."""

from __future__ import annotations

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from zmi_reconciler.tna.calc_day import DayChange, calculate_day
from zmi_reconciler.tna.models import MINUTES_PER_DAY, Booking, BreakRule, DayPlan

DAY = dt.date(2026, 3, 23)

bookings_st = st.lists(st.builds(Booking, st.integers(0, MINUTES_PER_DAY - 1), st.sampled_from(["come", "go"])),
                       max_size=8)


@st.composite
def window_rule(draw, kind):
    start = draw(st.integers(0, MINUTES_PER_DAY - 1))
    end = draw(st.integers(start + 1, MINUTES_PER_DAY))
    return BreakRule(kind, draw(st.integers(0, end - start)), start, end)


break_st = st.one_of(window_rule("fixed"), window_rule("variable"),
                     st.builds(BreakRule.minimum, st.integers(0, 720), st.integers(0, 60), st.booleans()))

plan_st = st.builds(
    DayPlan, code=st.just("P"), target_minutes=st.integers(0, 600), breaks=st.lists(break_st, max_size=4),
    max_net_minutes=st.none() | st.integers(0, 720),
    no_booking_rule=st.sampled_from(["deduct_target", "take_over_target", "no_evaluation"]))


@given(bookings_st, st.none() | plan_st, st.none() | st.sampled_from([1, 2, 3]), st.booleans())
def test_daily_value_invariants(bookings, plan, holiday, final):
    value = calculate_day(1, DAY, bookings, plan, holiday_category=holiday, final=final)
    assert value.net == value.gross - value.breaks - value.capped + value.credited
    assert value.difference == value.net - value.target
    assert value.overtime - value.undertime == value.difference
    assert min(value.overtime, value.undertime) == 0
    assert 0 <= value.presence <= value.gross <= MINUTES_PER_DAY
    assert value.breaks >= value.gross - value.presence  # booked breaks are part of the breaks
    assert value.net - value.credited >= 0
    assert value.capped >= 0 and value.credited >= 0
    if plan is not None and plan.max_net_minutes is not None:
        assert value.net - value.credited <= plan.max_net_minutes
    assert value.provisional is not final
    if not final:
        assert value.errors == ()


@given(st.lists(st.integers(0, MINUTES_PER_DAY - 1), min_size=2, max_size=8, unique=True).map(sorted))
def test_complete_pairs_have_no_errors_and_presence_is_the_paired_time(minutes):
    minutes = minutes[: len(minutes) // 2 * 2]
    bookings = [Booking(m, "come" if i % 2 == 0 else "go") for i, m in enumerate(minutes)]
    value = calculate_day(1, DAY, bookings, DayPlan("P", target_minutes=480))
    assert value.errors == ()
    assert value.presence == sum(minutes[i + 1] - minutes[i] for i in range(0, len(minutes), 2))
    assert value.gross == minutes[-1] - minutes[0]


@given(st.integers(1, MINUTES_PER_DAY - 1), st.integers(0, MINUTES_PER_DAY - 1))
def test_auto_complete_splits_a_night_shift_into_the_two_days(come, go):
    night = DayPlan("N", target_minutes=480, day_change="auto_complete_midnight")
    first = calculate_day(1, DAY, [Booking(come, "come")], night, day_change=DayChange(continues=True))
    second = calculate_day(1, DAY + dt.timedelta(days=1), [Booking(go, "go")], night,
                           day_change=DayChange(carried_in=True))
    assert first.gross + second.gross == MINUTES_PER_DAY - come + go
    assert first.errors == second.errors == ()


@given(st.integers(0, 900), st.integers(0, 720), st.integers(1, 60))
def test_minutes_difference_never_deducts_more_than_the_plain_rule(presence, after, minutes):
    bookings = [Booking(0, "come"), Booking(min(presence, MINUTES_PER_DAY - 1), "go")]
    with_diff = DayPlan("D", breaks=(BreakRule.minimum(after, minutes, True),))
    plain = DayPlan("P", breaks=(BreakRule.minimum(after, minutes),))
    a, b = calculate_day(1, DAY, bookings, with_diff), calculate_day(1, DAY, bookings, plain)
    assert a.breaks <= b.breaks
    assert a.net >= b.net
    if a.presence > after:  # minutes difference never pushes net below the threshold
        assert a.net >= after


@given(st.lists(st.integers(0, MINUTES_PER_DAY - 1), min_size=2, max_size=10, unique=True).map(sorted),
       plan_st)
def test_a_day_between_two_night_shifts_has_one_off_time_gap(minutes, plan):
    # go, come, go, ..., come: carried in at 00:00 and continuing past 24:00
    minutes = minutes[: len(minutes) // 2 * 2]
    bookings = [Booking(m, "go" if i % 2 == 0 else "come") for i, m in enumerate(minutes)]
    value = calculate_day(1, DAY, bookings, plan, day_change=DayChange(carried_in=True, continues=True))
    gaps = [minutes[i + 1] - minutes[i] for i in range(0, len(minutes), 2)]
    assert value.presence == MINUTES_PER_DAY - sum(gaps)
    assert value.gross == MINUTES_PER_DAY - max(gaps)  # the longest gap separates the shifts: off time
    assert value.breaks >= value.gross - value.presence
    assert value.net == value.gross - value.breaks - value.capped + value.credited
    assert value.errors == ()
