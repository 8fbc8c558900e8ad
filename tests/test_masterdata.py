"""Master data YAML: validation with file:line:col, round trip, applying to the store."""

from datetime import date, datetime, timezone
from zoneinfo import ZoneInfo

import pytest

from zmi_reconciler.tna.masterdata import (MasterDataError, apply_masterdata, dump_masterdata, load_masterdata,
                                           load_masterdata_text)
from zmi_reconciler.tna.models import ARBZG_BREAKS, BreakRule, DayPlan, WeekPlan
from zmi_reconciler.tna.store import Store, UnassignedBooking

GOOD = """\
day_plans:
  - code: STD
    name: Standard
    target: "8:00"
    breaks:
      - {kind: minimum, after: "6:00", minutes: 30}
      - {kind: minimum, after: "9:00", minutes: 15}
      - {kind: variable, start: "12:00", end: "12:30"}
    max_net: 600
    no_bookings: deduct_target
  - code: FRI
    target: 360
    breaks: [{kind: minimum, after: 300, minutes: 30, minutes_difference: true}]
    holiday_credit: {2: "3:00"}
week_plans:
  - code: W5
    days: {mon: STD, tue: STD, wed: STD, thu: STD, fri: FRI}
employees:
  - personnel_number: 1001
    pin: " 0042"
    first_name: Anna
    last_name: Berg
    email: anna@example.org
    supervisor_email: lead@example.org
    entry_date: 2021-04-01
    week_plan: W5
    credit: {type: complete, monthly_cap: "10:00", upper_limit: "30:00", lower_limit: "-10:00"}
    flextime_initial: -90
  - personnel_number: "1002"
    exit_date: 2019-06-30
"""


def test_good_file_loads_into_calculation_models(tmp_path):
    f = tmp_path / "masterdata.yaml"
    f.write_text(GOOD)
    md = load_masterdata(f)
    std, fri = md.day_plans
    assert std == DayPlan("STD", "Standard", 480, (*ARBZG_BREAKS, BreakRule.variable("12:00", "12:30")),
                          max_net_minutes=600)
    assert fri.breaks == (BreakRule.minimum(300, 30, minutes_difference=True),) and fri.holiday_credit(2) == 180
    assert md.week_plans == [WeekPlan("W5", "", "STD", "STD", "STD", "STD", "FRI")]
    anna, left = md.employees
    assert (anna.personnel_number, anna.pin, anna.entry_date, anna.credit_rule.kind) == (
        "1001", "0042", date(2021, 4, 1), "complete")
    assert (anna.credit_monthly_cap, anna.credit_upper_limit, anna.credit_lower_limit, anna.flextime_initial) == (
        600, 1800, -600, -90)
    assert (left.personnel_number, left.exit_date, left.week_plan) == ("1002", date(2019, 6, 30), None)


def test_errors_carry_file_line_and_column():
    text = """\
day_plans:
  - code: STD
    target: "8:00"
    max_net: "ten"
    breaks:
      - {kind: fixed, start: "12:00", end: "11:00"}
employees:
  - personnel_number: "1"
    entry_date: 2020-13-01
    colour: blue
"""
    with pytest.raises(MasterDataError) as info:
        load_masterdata_text(text, "md.yaml")
    assert [str(p) for p in info.value.problems] == [
        "md.yaml:4:14: day_plans[0].max_net: expected minutes or H:MM, got 'ten'",
        "md.yaml:6:9: day_plans[0].breaks[0]: break end 11:00 is not after its start 12:00",
        "md.yaml:9:17: employees[0].entry_date: Input should be a valid date or datetime, month value is "
        "outside expected range of 1-12",
        "md.yaml:10:13: employees[0].colour: Extra inputs are not permitted",
    ]


def test_cross_references_and_duplicates_are_reported_with_positions():
    text = """\
day_plans:
  - {code: STD, target: 480}
week_plans:
  - code: W
    days: {mon: STD, tue: NOPE}
employees:
  - {personnel_number: "1", pin: "42", week_plan: W}
  - {personnel_number: "1", pin: "042", week_plan: X}
"""
    with pytest.raises(MasterDataError) as info:
        load_masterdata_text(text, "md.yaml")
    assert [(p.line, p.column, p.path) for p in info.value.problems] == [
        (5, 27, "week_plans[0].days.tue"), (8, 24, "employees[1].personnel_number"), (8, 34, "employees[1].pin"),
        (8, 52, "employees[1].week_plan")]
    assert "unknown day plan 'NOPE'" in str(info.value)


def test_yaml_syntax_error_has_a_position():
    with pytest.raises(MasterDataError) as info:
        load_masterdata_text("day_plans:\n  - code: [STD\n", "md.yaml")
    [problem] = info.value.problems
    assert problem.line == 3 and "YAML syntax" in problem.message
    with pytest.raises(MasterDataError, match="expected a mapping"):
        load_masterdata_text("- 1\n", "md.yaml")


def test_dump_round_trips():
    md = load_masterdata_text(GOOD)
    assert load_masterdata_text(dump_masterdata(md, header="# generated\n")) == md


def test_apply_upserts_and_attaches_unassigned_bookings():
    md = load_masterdata_text(GOOD)
    with Store.open(":memory:", zone=ZoneInfo("Europe/Berlin")) as store:
        at = datetime(2026, 4, 1, 6, 0, tzinfo=timezone.utc)
        store.add_unassigned([UnassignedBooking("pin", "42", at, None, "terminal:a.dat")])
        result = apply_masterdata(store, md)
        assert (result.day_plans, result.week_plans, result.employees, result.attached) == (2, 1, 2, 1)
        again = apply_masterdata(store, md)
        assert (again.employees, again.attached) == (2, 0)
        assert [e.personnel_number for e in store.employees()] == ["1001", "1002"]
        assert set(store.day_plans()) == {"STD", "FRI"} and store.employee_by_number("1001").pin == "42"
