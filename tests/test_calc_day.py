"""Daily calculation: the ZMI manual's worked examples (issue 4) and edge cases, table-driven."""

from __future__ import annotations

import datetime as dt

import pytest

from zmi_reconciler.tna.calc_day import (DayChange, calculate_day, calculate_days, day_change_context,
                                         is_final, pair_bookings, required_minimum_break, shift_parts)
from zmi_reconciler.tna.models import (ARBZG_BREAKS, MISSING_COME, MISSING_GO, NO_BOOKINGS, Booking, BreakRule,
                                       DayPlan)

DAY = dt.date(2026, 3, 23)


def shift(*times: str) -> list[Booking]:
    """Alternating come/go bookings from "HH:MM" strings, starting with a come."""
    return [Booking.at(t, "come" if i % 2 == 0 else "go") for i, t in enumerate(times)]


def plan(**kw) -> DayPlan:
    return DayPlan(code="P", target_minutes=kw.pop("target_minutes", 480), **kw)


PLAIN = plan()
ARBZG = plan(breaks=ARBZG_BREAKS)
MIN_DIFF = plan(breaks=(BreakRule.minimum(300, 30, minutes_difference=True),))
MIN_NO_DIFF = plan(breaks=(BreakRule.minimum(300, 30),))
FIXED = plan(breaks=(BreakRule.fixed("12:00", "12:30", 30),))
VARIABLE = plan(breaks=(BreakRule.variable("12:00", "12:30", 30),))
CAPPED = plan(breaks=ARBZG_BREAKS, max_net_minutes=600)

# (id, plan, bookings, expected gross, breaks, net, difference, capped)
WORKED_EXAMPLES = [
    ("plain 08:00-16:30", PLAIN, shift("08:00", "16:30"), 510, 0, 510, 30, 0),
    ("arbzg 07:00-16:30", ARBZG, shift("07:00", "16:30"), 570, 45, 525, 45, 0),
    ("arbzg 08:00-14:00 exactly 6h", ARBZG, shift("08:00", "14:00"), 360, 0, 360, -120, 0),
    ("arbzg 08:00-14:01", ARBZG, shift("08:00", "14:01"), 361, 30, 331, -149, 0),
    ("minimum with minutes difference", MIN_DIFF, shift("08:00", "13:10"), 310, 10, 300, -180, 0),
    ("minimum without minutes difference", MIN_NO_DIFF, shift("08:00", "13:10"), 310, 30, 280, -200, 0),
    ("fixed, nothing booked", FIXED, shift("08:00", "17:00"), 540, 30, 510, 30, 0),
    ("variable, nothing booked", VARIABLE, shift("08:00", "17:00"), 540, 30, 510, 30, 0),
    ("variable, booked 12:00-12:20", VARIABLE, shift("08:00", "12:00", "12:20", "17:00"), 540, 20, 520, 40, 0),
    ("max net 600 with arbzg", CAPPED, shift("06:00", "17:30"), 690, 45, 600, 120, 45),
]


@pytest.mark.parametrize("plan_, bookings, gross, breaks, net, difference, capped",
                         [case[1:] for case in WORKED_EXAMPLES], ids=[case[0] for case in WORKED_EXAMPLES])
def test_worked_examples(plan_, bookings, gross, breaks, net, difference, capped):
    value = calculate_day(7, DAY, bookings, plan_, final=True)
    assert (value.gross, value.breaks, value.net, value.difference, value.capped) == (
        gross, breaks, net, difference, capped)
    assert value.target == 480
    assert (value.overtime, value.undertime) == (max(difference, 0), max(-difference, 0))
    assert value.errors == ()
    assert not value.provisional
    assert (value.employee_id, value.date) == (7, DAY)


def test_missing_go_on_final_day():
    value = calculate_day(1, DAY, shift("08:00", "12:00", "12:30"), PLAIN, final=True)
    assert (value.gross, value.net, value.difference, value.undertime) == (240, 240, -240, 240)
    assert value.errors == (MISSING_GO,)
    assert not value.provisional


def test_open_come_on_the_day_itself_is_provisional_without_error():
    value = calculate_day(1, DAY, shift("08:00", "12:00", "12:30"), PLAIN, final=False)
    assert value.net == 240
    assert value.errors == ()
    assert value.provisional


def test_missing_come_and_double_come():
    bookings = [Booking.at("07:00", "go"), *shift("08:00", "12:00"), Booking.at("13:00", "come"),
                *shift("13:30", "17:00")]
    pairs, errors = pair_bookings(bookings)
    assert pairs == [(480, 720), (810, 1020)]
    assert errors == [MISSING_COME, MISSING_GO]
    value = calculate_day(1, DAY, bookings, PLAIN, final=True)
    assert value.errors == (MISSING_COME, MISSING_GO)
    assert (value.presence, value.gross, value.net) == (450, 540, 450)


def test_bookings_are_paired_in_time_order_whatever_the_input_order():
    bookings = list(reversed(shift("08:00", "12:00", "12:30", "16:30")))
    assert calculate_day(1, DAY, bookings, PLAIN).net == 480


NIGHT = plan(day_change="auto_complete_midnight")


def test_auto_complete_at_midnight_splits_the_shift():
    mon, tue = [Booking.at("20:00", "come")], [Booking.at("07:00", "go")]
    mon_change = day_change_context([], mon, tue, None, NIGHT, NIGHT)
    tue_change = day_change_context(mon, tue, [], NIGHT, NIGHT, NIGHT)
    assert mon_change == DayChange(carried_in=False, continues=True)
    assert tue_change == DayChange(carried_in=True, continues=False)
    first = calculate_day(1, dt.date(2026, 3, 23), mon, NIGHT, day_change=mon_change)
    second = calculate_day(1, dt.date(2026, 3, 24), tue, NIGHT, day_change=tue_change)
    assert (first.gross, first.net, first.errors) == (240, 240, ())
    assert (second.gross, second.net, second.errors) == (420, 420, ())


def test_without_day_change_rule_the_night_shift_is_two_errors():
    mon, tue = [Booking.at("20:00", "come")], [Booking.at("07:00", "go")]
    assert day_change_context([], mon, tue, None, PLAIN, PLAIN) == DayChange()
    assert calculate_day(1, DAY, mon, PLAIN).errors == (MISSING_GO,)
    assert calculate_day(1, DAY, tue, PLAIN).errors == (MISSING_COME,)


def test_free_come_day_uses_the_go_days_plan_for_day_change():
    sun, mon = [Booking.at("22:00", "come")], [Booking.at("06:00", "go")]
    assert day_change_context([], sun, mon, None, None, NIGHT).continues
    assert day_change_context(sun, mon, [], None, NIGHT, PLAIN).carried_in
    assert not day_change_context(sun, mon, [], PLAIN, NIGHT, PLAIN).carried_in


def test_day_change_contradicting_the_bookings_is_rejected():
    with pytest.raises(ValueError, match="first booking to be a go"):
        calculate_day(1, DAY, shift("08:00", "16:00"), NIGHT, day_change=DayChange(carried_in=True))
    with pytest.raises(ValueError, match="last booking to be a come"):
        calculate_day(1, DAY, shift("08:00", "16:00"), NIGHT, day_change=DayChange(continues=True))


def test_calculate_days_links_neighbours_and_marks_today_provisional():
    bookings = {dt.date(2026, 3, 23): [Booking.at("20:00", "come")],
                dt.date(2026, 3, 24): [Booking.at("07:00", "go"), Booking.at("20:00", "come")]}
    values = calculate_days(1, [dt.date(2026, 3, 23), dt.date(2026, 3, 24)], bookings,
                            plan_for=lambda d: NIGHT, holiday_for=lambda d: None, today=dt.date(2026, 3, 24))
    assert [(v.gross, v.errors, v.provisional) for v in values] == [(240, (), False), (420, (), True)]


NIGHT_ARBZG = plan(day_change="auto_complete_midnight", breaks=ARBZG_BREAKS)
NIGHT_FIXED_3AM = plan(day_change="auto_complete_midnight",
                       breaks=(BreakRule.fixed("03:00", "03:30"), *ARBZG_BREAKS))
BOTH = DayChange(carried_in=True, continues=True)
CARRIED_IN = DayChange(carried_in=True)


def night(*times: str) -> list[Booking]:
    """A day that starts with the go of last night's shift: go, come, go, ..., from "HH:MM" strings."""
    return [Booking.at(t, "go" if i % 2 == 0 else "come") for i, t in enumerate(times)]


# Days of a night-shift worker split by "Tageswechsel: automatisch vervollständigen um Mitternacht".
# NIGHT plans have target 480. (id, plan, bookings, day change, gross, presence, breaks, net, difference)
NIGHT_DAYS = [
    # 00:00-06:00 end of last night + 20:00-24:00 start of tonight: 06:00-20:00 is off time, not a break
    ("two shifts, no rules", NIGHT, night("06:00", "20:00"), BOTH, 600, 600, 0, 600, 120),
    # ArbZG per shift: 360 (not > 360) and 240 -> nothing; as one 600 presence it would be 45
    ("two shifts, arbzg 6h + 4h", NIGHT_ARBZG, night("06:00", "20:00"), BOTH, 600, 600, 0, 600, 120),
    # 420 after midnight needs 30 on its own; the 240 evening part nothing (as one 660 presence: 45)
    ("two shifts, arbzg 7h + 4h", NIGHT_ARBZG, night("07:00", "20:00"), BOTH, 660, 660, 30, 630, 150),
    # booked break 22:00-22:30 inside tonight's part stays a break (the split is at the longest gap)
    ("booked break in the evening part", NIGHT, night("06:00", "20:00", "22:00", "22:30"), BOTH,
     600, 570, 30, 570, 90),
    ("booked break in the evening part, arbzg", NIGHT_ARBZG, night("06:00", "20:00", "22:00", "22:30"), BOTH,
     600, 570, 30, 570, 90),
    # booked break 02:00-02:15 after midnight belongs to last night's shift: 405 presence -> 30 required,
    # 15 booked, 15 deducted; the evening part 240 needs nothing
    ("booked break in the carried-in part, arbzg", NIGHT_ARBZG, night("02:00", "02:15", "07:00", "20:00"), BOTH,
     660, 645, 30, 630, 150),
    # the fixed 03:00-03:30 break lies in last night's part and covers its 30 minutes requirement
    ("fixed break in the carried-in part, arbzg", NIGHT_FIXED_3AM, night("07:00", "20:00"), BOTH,
     660, 660, 30, 630, 150),
    # the last night of the week: only the carried-in part
    ("only carried in 6h", NIGHT, night("06:00"), CARRIED_IN, 360, 360, 0, 360, -120),
    ("only carried in 6h, arbzg", NIGHT_ARBZG, night("06:00"), CARRIED_IN, 360, 360, 0, 360, -120),
    ("only carried in 7h, arbzg", NIGHT_ARBZG, night("07:00"), CARRIED_IN, 420, 420, 30, 390, -90),
    ("only carried in, booked break 02:00-02:15, arbzg", NIGHT_ARBZG, night("02:00", "02:15", "07:00"),
     CARRIED_IN, 420, 405, 30, 390, -90),
]


@pytest.mark.parametrize("plan_, bookings, change, gross, presence, breaks, net, difference",
                         [c[1:] for c in NIGHT_DAYS], ids=[c[0] for c in NIGHT_DAYS])
def test_night_shift_days_count_no_break_between_two_shifts(plan_, bookings, change, gross, presence, breaks,
                                                            net, difference):
    value = calculate_day(1, DAY, bookings, plan_, day_change=change)
    assert (value.gross, value.presence, value.breaks, value.net, value.difference) == (
        gross, presence, breaks, net, difference)
    assert value.target == 480
    assert (value.errors, value.capped, value.credited) == ((), 0, 0)


def test_shift_parts_split_only_between_a_carried_in_and_a_continuing_pair():
    pairs = [(0, 120), (135, 420), (1200, 1320), (1350, 1440)]
    assert shift_parts(pairs, BOTH) == [[(0, 120), (135, 420)], [(1200, 1320), (1350, 1440)]]
    assert shift_parts(pairs, CARRIED_IN) == [pairs]
    assert shift_parts(pairs, DayChange(continues=True)) == [pairs]
    assert shift_parts(pairs) == [pairs]
    assert shift_parts([], BOTH) == []
    # equally long gaps: the earliest separates the shifts; a zero gap (go and come at 06:00) still splits
    assert shift_parts([(0, 60), (120, 180), (240, 1440)], BOTH) == [[(0, 60)], [(120, 180), (240, 1440)]]
    assert shift_parts([(0, 360), (360, 1440)], BOTH) == [[(0, 360)], [(360, 1440)]]


def test_consecutive_nights_through_calculate_days():
    # Mon 20:00 - Tue 06:00, Tue 20:00 - Wed 06:00, one of them with a booked break 23:00-23:30
    mon, tue, wed = dt.date(2026, 3, 23), dt.date(2026, 3, 24), dt.date(2026, 3, 25)
    bookings = {mon: [Booking.at("20:00", "come")],
                tue: night("06:00", "20:00", "23:00", "23:30"),
                wed: [Booking.at("06:00", "go")]}
    values = calculate_days(1, [mon, tue, wed], bookings, plan_for=lambda d: NIGHT_ARBZG,
                            holiday_for=lambda d: None, today=dt.date(2026, 3, 26))
    assert [(v.gross, v.presence, v.breaks, v.net, v.difference, v.errors) for v in values] == [
        (240, 240, 0, 240, -240, ()), (600, 570, 30, 570, 90, ()), (360, 360, 0, 360, -120, ())]


# (id, no-booking rule, final, net, target, difference, errors)
NO_BOOKING_CASES = [
    ("deduct target", "deduct_target", True, 0, 480, -480, ()),
    ("take over target", "take_over_target", True, 480, 480, 0, ()),
    ("no evaluation", "no_evaluation", True, 0, 0, 0, (NO_BOOKINGS,)),
    ("no evaluation, not final", "no_evaluation", False, 0, 0, 0, ()),
]


@pytest.mark.parametrize("rule, final, net, target, difference, errors",
                         [c[1:] for c in NO_BOOKING_CASES], ids=[c[0] for c in NO_BOOKING_CASES])
def test_days_without_bookings(rule, final, net, target, difference, errors):
    value = calculate_day(1, DAY, [], plan(no_booking_rule=rule), final=final)
    assert (value.net, value.target, value.difference, value.errors) == (net, target, difference, errors)
    assert value.gross == value.breaks == value.presence == 0


@pytest.mark.parametrize("category, net, difference", [(1, 480, 0), (2, 240, -240), (3, 0, -480)])
def test_holiday_credit_by_category(category, net, difference):
    value = calculate_day(1, DAY, [], plan(no_booking_rule="no_evaluation"), holiday_category=category)
    assert (value.net, value.target, value.difference, value.credited) == (net, 480, difference, net)
    assert value.errors == ()
    assert value.holiday_category == category


def test_holiday_credit_is_configurable_and_adds_to_worked_time():
    half_day = plan(holiday_credit_cat2=300)
    value = calculate_day(1, DAY, shift("08:00", "11:00"), half_day, holiday_category=2)
    assert (value.presence, value.credited, value.net, value.difference) == (180, 300, 480, 0)
    with pytest.raises(ValueError, match="holiday category"):
        calculate_day(1, DAY, [], PLAIN, holiday_category=4)


def test_free_day_bookings_are_overtime():
    value = calculate_day(1, DAY, shift("09:00", "13:00"), None)
    assert (value.target, value.net, value.overtime, value.breaks) == (0, 240, 240, 0)
    assert calculate_day(1, DAY, [], None).errors == ()


SATURDAY = dt.date(2026, 3, 28)

# Free day (no day plan): target 0, ArbZG §4 minimum breaks. (id, bookings, gross, presence, breaks, net)
FREE_DAYS = [
    ("07:44-17:29 over 9 h", shift("07:44", "17:29"), 585, 585, 45, 540),
    ("08:00-14:00 exactly 6 h", shift("08:00", "14:00"), 360, 360, 0, 360),
    ("08:00-14:01 over 6 h", shift("08:00", "14:01"), 361, 361, 30, 331),
    ("08:00-17:01 over 9 h", shift("08:00", "17:01"), 541, 541, 45, 496),
    ("booked 30 inside 7 h presence", shift("08:00", "12:00", "12:30", "15:30"), 450, 420, 30, 420),
    ("booked 20 inside 7 h presence", shift("08:00", "12:00", "12:20", "15:20"), 440, 420, 30, 410),
    ("no bookings", [], 0, 0, 0, 0),
]


@pytest.mark.parametrize("bookings, gross, presence, breaks, net", [c[1:] for c in FREE_DAYS],
                         ids=[c[0] for c in FREE_DAYS])
def test_free_day_applies_arbzg_minimum_breaks(bookings, gross, presence, breaks, net):
    value = calculate_day(1, SATURDAY, bookings, None)
    assert (value.gross, value.presence, value.breaks, value.net) == (gross, presence, breaks, net)
    assert (value.target, value.difference, value.overtime, value.undertime) == (0, net, net, 0)
    assert (value.capped, value.credited, value.errors) == (0, 0, ())


def test_free_day_through_calculate_days():
    week = {SATURDAY: shift("07:44", "17:29")}
    [value] = calculate_days(1, [SATURDAY], week, plan_for=lambda d: None, holiday_for=lambda d: None,
                             today=dt.date(2026, 3, 30))
    assert (value.gross, value.breaks, value.net, value.target, value.difference) == (585, 45, 540, 0, 540)


def test_holiday_without_plan_keeps_plain_evaluation():
    value = calculate_day(1, SATURDAY, shift("07:44", "17:29"), None, holiday_category=1)
    assert (value.gross, value.breaks, value.net, value.credited, value.difference) == (585, 0, 585, 0, 585)


def test_free_come_day_night_shift_split_by_go_days_plan_gets_arbzg_per_part():
    # Sunday free, Monday NIGHT: Sunday 17:00 come -> Monday 02:00 go. Monday's plan splits it at midnight;
    # Sunday's part 17:00-24:00 (420) is a free-day part -> 30 minimum break; Monday's 120 -> none.
    sun_day, mon_day = dt.date(2026, 3, 22), dt.date(2026, 3, 23)
    sun, mon = [Booking.at("17:00", "come")], [Booking.at("02:00", "go")]
    plans = {sun_day: None, mon_day: NIGHT}
    values = calculate_days(1, [sun_day, mon_day], {sun_day: sun, mon_day: mon}, plan_for=plans.get,
                            holiday_for=lambda d: None, today=dt.date(2026, 3, 30))
    assert [(v.gross, v.breaks, v.net, v.target, v.errors) for v in values] == [
        (420, 30, 390, 0, ()), (120, 0, 120, 480, ())]


# ArbZG §4 edges: presence -> required minimum break
@pytest.mark.parametrize("presence, required", [(0, 0), (359, 0), (360, 0), (361, 30), (540, 30), (541, 45),
                                                (700, 45)])
def test_arbzg_thresholds_are_strict(presence, required):
    assert required_minimum_break(ARBZG_BREAKS, presence) == required


@pytest.mark.parametrize("end, breaks, net", [("14:00", 0, 360), ("14:01", 30, 331), ("17:00", 30, 510),
                                              ("17:01", 45, 496)])
def test_arbzg_edges_through_calculate_day(end, breaks, net):
    value = calculate_day(1, DAY, shift("08:00", end), ARBZG)
    assert (value.breaks, value.net) == (breaks, net)


def test_booked_breaks_count_toward_minimum_breaks():
    # 08:00-12:00, 12:20-17:00: presence 520 > 360 -> 30 required, 20 booked, 10 deducted
    value = calculate_day(1, DAY, shift("08:00", "12:00", "12:20", "17:00"), ARBZG)
    assert (value.gross, value.presence, value.breaks, value.net) == (540, 520, 30, 510)
    # a booked break of 45 covers the requirement completely
    value = calculate_day(1, DAY, shift("08:00", "12:00", "12:45", "17:00"), ARBZG)
    assert (value.breaks, value.net) == (45, 495)


def test_fixed_break_is_deducted_regardless_of_a_booked_break():
    # booked 12:00-12:20 inside the fixed window: the remaining 10 minutes of the window are still deducted
    value = calculate_day(1, DAY, shift("08:00", "12:00", "12:20", "17:00"), FIXED)
    assert (value.gross, value.breaks, value.net) == (540, 30, 510)


def test_window_breaks_only_deduct_the_presence_in_the_window():
    assert calculate_day(1, DAY, shift("08:00", "12:10"), FIXED).breaks == 10
    assert calculate_day(1, DAY, shift("08:00", "11:00"), FIXED).breaks == 0
    assert calculate_day(1, DAY, shift("08:00", "11:00"), VARIABLE).breaks == 0


def test_variable_break_stays_when_the_booked_break_is_outside_its_window():
    value = calculate_day(1, DAY, shift("08:00", "10:00", "10:15", "17:00"), VARIABLE)
    assert (value.gross, value.breaks, value.net) == (540, 45, 495)


def test_fixed_and_minimum_together():
    both = plan(breaks=(BreakRule.fixed("12:00", "12:30"), *ARBZG_BREAKS))
    # presence 600: fixed 30 covers the 30 after 6 h; the 15 after 9 h is added
    value = calculate_day(1, DAY, shift("07:00", "17:00"), both)
    assert (value.breaks, value.net) == (45, 555)


def test_is_final_from_the_next_day_on():
    assert is_final(DAY, DAY + dt.timedelta(days=1))
    assert not is_final(DAY, DAY)
