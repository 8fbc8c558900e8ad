"""Monthly evaluation: the ZMI manual's worked examples (issue 4), credit types and invariants."""

from __future__ import annotations

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from zmi_reconciler.tna.calc_day import calculate_day
from zmi_reconciler.tna.calc_month import credit_change, evaluate_month, flextime_start_after
from zmi_reconciler.tna.models import ARBZG_BREAKS, Booking, CreditRule, DailyValue, DayPlan, MonthlyValue


def shift(*times: str) -> list[Booking]:
    return [Booking.at(t, "come" if i % 2 == 0 else "go") for i, t in enumerate(times)]


def test_month_of_the_first_second_and_seventh_example():
    plain, arbzg = DayPlan("P", target_minutes=480), DayPlan("A", target_minutes=480, breaks=ARBZG_BREAKS)
    days = [calculate_day(1, dt.date(2026, 3, 2), shift("08:00", "16:30"), plain),
            calculate_day(1, dt.date(2026, 3, 3), shift("07:00", "16:30"), arbzg),
            calculate_day(1, dt.date(2026, 3, 4), shift("08:00", "12:00", "12:30"), plain, final=True)]
    value = evaluate_month(1, 2026, 3, days, flextime_start=120)
    assert value == MonthlyValue(
        employee_id=1, year=2026, month=3, gross=1320, breaks=45, net=1275, target=1440, overtime=75,
        undertime=240, difference=-165, flextime_start=120, flextime_change=-165, flextime_carry=-45,
        forfeited=0, error_days=1, closed=False)


COMPLETE = CreditRule("complete", monthly_cap=600, upper_limit=1800)
THRESHOLD = CreditRule("after_threshold", threshold=600)

# (id, rule, start, change, carry, forfeited)
CREDIT_CASES = [
    ("complete: cap and upper limit", COMPLETE, 1500, 720, 1800, 420),
    ("complete: below the cap", COMPLETE, 0, 500, 500, 0),
    ("complete: cap only", COMPLETE, 0, 720, 600, 120),
    ("complete: negative change in full", COMPLETE, 1500, -900, 600, 0),
    ("complete: no cap, no limit", CreditRule("complete"), 100, 5000, 5100, 0),
    ("complete: lower limit", CreditRule("complete", lower_limit=-600), -500, -300, -600, -200),
    ("after threshold: +480", THRESHOLD, 1000, 480, 1000, 480),
    ("after threshold: +900", THRESHOLD, 1000, 900, 1300, 600),
    ("after threshold: -120", THRESHOLD, 1000, -120, 880, 0),
    ("after threshold: exactly the threshold", THRESHOLD, 1000, 600, 1000, 600),
    ("after threshold with cap", CreditRule("after_threshold", threshold=600, monthly_cap=100), 0, 900, 100, 800),
    ("no carry", CreditRule("no_carry"), 1000, 480, 0, 1480),
    ("no carry, negative balance", CreditRule("no_carry"), -200, 50, 0, -150),
    ("no evaluation", CreditRule(), 120, -165, -45, 0),
    ("no evaluation ignores caps", CreditRule(monthly_cap=10, upper_limit=20), 1500, 720, 2220, 0),
]


@pytest.mark.parametrize("rule, start, change, carry, forfeited", [c[1:] for c in CREDIT_CASES],
                         ids=[c[0] for c in CREDIT_CASES])
def test_credit_types(rule, start, change, carry, forfeited):
    assert credit_change(start, change, rule) == (carry, forfeited)


def test_evaluate_month_applies_the_credit_rule_and_keeps_closed():
    days = [DailyValue(1, dt.date(2026, 1, d), net=480 + 240, target=480, difference=240, overtime=240)
            for d in (5, 6, 7)]
    value = evaluate_month(1, 2026, 1, days, 1500, COMPLETE, closed=True)
    assert (value.flextime_change, value.flextime_carry, value.forfeited, value.closed) == (720, 1800, 420, True)
    assert (value.overtime, value.undertime, value.error_days) == (720, 0, 0)


def test_empty_month_carries_the_start():
    value = evaluate_month("E1", 2026, 2, [], flextime_start=720)
    assert (value.flextime_start, value.flextime_change, value.flextime_carry, value.target) == (720, 0, 720, 0)


def test_flextime_start_is_the_previous_carry():
    february = MonthlyValue("E1", 2026, 2, flextime_carry=720)
    assert flextime_start_after(february) == 720
    assert flextime_start_after(None) == 0


@pytest.mark.parametrize("value, message", [
    (DailyValue(2, dt.date(2026, 3, 1)), "employee"),
    (DailyValue(1, dt.date(2026, 4, 1)), "not in 2026-03"),
])
def test_foreign_daily_values_are_rejected(value, message):
    with pytest.raises(ValueError, match=message):
        evaluate_month(1, 2026, 3, [value], 0)


def test_duplicate_days_are_rejected():
    day = DailyValue(1, dt.date(2026, 3, 1))
    with pytest.raises(ValueError, match="two daily values"):
        evaluate_month(1, 2026, 3, [day, day], 0)


@pytest.mark.parametrize("kwargs, message", [
    ({"kind": "sometimes"}, "credit type"),
    ({"kind": "complete", "monthly_cap": -1}, "monthly_cap"),
    ({"kind": "complete", "lower_limit": 60}, "lower_limit"),
    ({"kind": "complete", "upper_limit": -100, "lower_limit": -50}, "exceed"),
])
def test_invalid_credit_rules_are_rejected(kwargs, message):
    with pytest.raises(ValueError, match=message):
        CreditRule(**kwargs)


rule_st = st.builds(CreditRule, kind=st.sampled_from(["no_evaluation", "complete", "after_threshold", "no_carry"]),
                    monthly_cap=st.none() | st.integers(0, 3000), upper_limit=st.none() | st.integers(0, 6000),
                    threshold=st.integers(0, 1200))
minutes_st = st.integers(-10_000, 10_000)


@given(rule_st, minutes_st, minutes_st)
def test_credit_invariants(rule, start, change):
    carry, forfeited = credit_change(start, change, rule)
    assert carry + forfeited == start + change
    if rule.kind in ("complete", "after_threshold"):
        if change > 0 and (rule.upper_limit is None or start <= rule.upper_limit):
            assert start <= carry <= start + change  # positive change: credit between nothing and all
        if rule.upper_limit is not None:
            assert carry <= rule.upper_limit
    if rule.kind == "no_carry":
        assert carry == 0


@given(st.lists(st.tuples(st.integers(0, 700), st.integers(0, 600)), max_size=28), minutes_st)
def test_month_sums_match_the_days(pairs, start):
    days = [DailyValue(1, dt.date(2026, 2, i + 1), net=net, target=target, difference=net - target,
                       overtime=max(net - target, 0), undertime=max(target - net, 0))
            for i, (net, target) in enumerate(pairs)]
    value = evaluate_month(1, 2026, 2, days, start)
    assert value.difference == value.overtime - value.undertime == value.net - value.target
    assert value.flextime_carry == start + value.flextime_change
