"""Daily calculation (ZMI "Tagesberechnung"): one employee's bookings of one local day -> :class:`DailyValue`.

Pure functions, no I/O. All durations integer minutes; times are local minutes of day (0..1440).

Steps of :func:`calculate_day`, in order (ZMI manual rules, SPEC section 7):

1. **Pairing**: bookings in time order; a come pairs with the next go. A come followed by another come, or
   left open at the end of the day, is MISSING_GO; a go without an open come is MISSING_COME. Errors are
   reported only when the day is final (the day after); before that the value is ``provisional``.
   Day change "auto-complete at midnight": a come still open at midnight whose go is on the next day is
   closed at 24:00 and reopened at 00:00 of the next day (:class:`DayChange`, :func:`day_change_context`).
2. **Shifts** (:func:`shift_parts`): the pairs of a day normally form one shift. On a day that both starts
   with a carried-in part (the end of a shift that began the previous day) and ends with a part continuing
   past midnight (the start of a shift that ends the next day), as with the day change "Tageswechsel:
   automatisch vervollständigen um Mitternacht" of a night-shift plan, the day holds parts of two different
   shifts; they are split at the longest gap between the carried-in and the continuing pair.
3. **Presence** = minutes inside pairs; **booked breaks** = gaps between consecutive pairs OF THE SAME SHIFT
   (the gap between two shifts is off time, neither break nor gross); **gross** = per shift, first come to
   last go; summed over the day's shifts.
4. **Breaks** (:class:`~zmi_reconciler.tna.models.BreakRule`), evaluated per shift: fixed (overlap of presence
   with the window, regardless of booked breaks), variable (same, but only when no booked break of the shift
   overlaps the window), minimum (the shift's total break must reach the required minutes once the SHIFT's
   presence on this day is strictly longer than the threshold; booked, fixed and variable breaks of the shift
   count toward it; "minutes difference" requires only the minutes beyond the threshold). A window rule
   deducts at most its minutes per day, in time order across the shifts. ``breaks`` = booked + deducted.
5. **Maximum net time**: worked net above ``max_net_minutes`` is cut and reported as ``capped``.
6. **Credit**: holiday credit per category; on working days without bookings the plan's no-booking rule.
   A **free day** (no day plan, e.g. Saturday/Sunday free in the week plan) is evaluated with the built-in
   :data:`FREE_DAY_PLAN` (target 0, ArbZG §4 minimum breaks, no maximum net), see :func:`calculate_day`.
7. ``net = gross - breaks - capped + credited``; ``difference = net - target``; overtime/undertime split it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass

from zmi_reconciler.tna.models import (ARBZG_BREAKS, MINUTES_PER_DAY, MISSING_COME, MISSING_GO, NO_BOOKINGS,
                                       Booking, BreakRule, DailyValue, DayPlan, EmployeeId)

Interval = tuple[int, int]  # [start, end) in local minutes of day


@dataclass(frozen=True, slots=True)
class DayChange:
    """How a day connects to its neighbours across midnight (ZMI day plan, "Tageswechsel: automatisch
    vervollständigen um Mitternacht").

    ``carried_in``: a come of the previous day is still open; this day's first booking (a go) pairs with
    00:00. ``continues``: this day's last booking (a come) continues past midnight and pairs with 24:00.
    Compute both with :func:`day_change_context`; :func:`calculate_day` raises ``ValueError`` when the
    bookings contradict them (carried in but the first booking is not a go, continuing but the last is no come).
    """

    carried_in: bool = False
    continues: bool = False


NO_DAY_CHANGE = DayChange()

FREE_DAY_PLAN = DayPlan(code="(free)", name="free day (built-in)", target_minutes=0, breaks=ARBZG_BREAKS,
                        max_net_minutes=None, no_booking_rule="deduct_target", day_change="none")
"""Built-in day plan of a free day (no day plan, non-holiday): target 0, ArbZG §4 minimum breaks
(:data:`~zmi_reconciler.tna.models.ARBZG_BREAKS`: 30 min for more than 6 h, 45 min for more than 9 h of
presence), no maximum net time. The no-booking rule is irrelevant (target 0: no bookings -> zero, no error).
Its ``day_change`` is NOT used: :func:`day_change_context` still sees ``None`` for a free day, so the go
day's plan decides whether a shift from a free come day is split at midnight."""


def _ordered(bookings: Iterable[Booking]) -> list[Booking]:
    return sorted(bookings, key=lambda b: b.minute)  # stable: equal minutes keep input order


def _auto_completes(come_day_plan: DayPlan | None, go_day_plan: DayPlan | None) -> bool:
    plan = come_day_plan if come_day_plan is not None else go_day_plan
    return plan is not None and plan.day_change == "auto_complete_midnight"


def day_change_context(previous: Sequence[Booking], current: Sequence[Booking], following: Sequence[Booking],
                       previous_plan: DayPlan | None, plan: DayPlan | None,
                       next_plan: DayPlan | None) -> DayChange:
    """The :class:`DayChange` of a day from its own and its neighbours' bookings and day plans.

    A shift crosses midnight when the come day's last booking is a come and the go day's first booking is a
    go. It is split at midnight when the come day's plan says ``auto_complete_midnight``; when the come day is
    free (no plan), the go day's plan decides. ``following`` may be empty while the next day has no bookings
    yet: the come then stays open (MISSING_GO once the day is final).
    """
    prev, cur, nxt = _ordered(previous), _ordered(current), _ordered(following)
    carried_in = (bool(prev) and bool(cur) and prev[-1].direction == "come" and cur[0].direction == "go"
                  and _auto_completes(previous_plan, plan))
    continues = (bool(cur) and bool(nxt) and cur[-1].direction == "come" and nxt[0].direction == "go"
                 and _auto_completes(plan, next_plan))
    return DayChange(carried_in=carried_in, continues=continues)


def pair_bookings(bookings: Iterable[Booking], day_change: DayChange = NO_DAY_CHANGE
                  ) -> tuple[list[Interval], list[str]]:
    """Pair comes with the next go -> (pairs as [start, end) minute intervals, error codes in order found).

    Error codes: MISSING_GO for each come without a go, MISSING_COME for each go without a come (one code per
    unpaired booking; :func:`calculate_day` reports each code once). Raises ``ValueError`` when
    ``day_change`` contradicts the bookings.
    """
    ordered = _ordered(bookings)
    if day_change.carried_in and (not ordered or ordered[0].direction != "go"):
        raise ValueError("carried_in needs the day's first booking to be a go")
    if day_change.continues and (not ordered or ordered[-1].direction != "come"):
        raise ValueError("continues needs the day's last booking to be a come")
    pairs: list[Interval] = []
    errors: list[str] = []
    open_at: int | None = 0 if day_change.carried_in else None
    for booking in ordered:
        if booking.direction == "come":
            if open_at is not None:
                errors.append(MISSING_GO)
            open_at = booking.minute
        elif open_at is None:
            errors.append(MISSING_COME)
        else:
            pairs.append((open_at, booking.minute))
            open_at = None
    if open_at is not None:
        if day_change.continues:
            pairs.append((open_at, MINUTES_PER_DAY))
        else:
            errors.append(MISSING_GO)
    return pairs, errors


def _overlap(intervals: Iterable[Interval], start: int, end: int) -> int:
    return sum(max(0, min(e, end) - max(s, start)) for s, e in intervals)


def _gaps(pairs: Sequence[Interval]) -> list[Interval]:
    return [(pairs[i][1], pairs[i + 1][0]) for i in range(len(pairs) - 1) if pairs[i + 1][0] > pairs[i][1]]


def shift_parts(pairs: Sequence[Interval], day_change: DayChange = NO_DAY_CHANGE) -> list[list[Interval]]:
    """Group a day's ``pairs`` (from :func:`pair_bookings`, in time order) by shift -> list of shifts.

    Rule (ZMI day change "Tageswechsel: automatisch vervollständigen um Mitternacht" splits a night shift at
    24:00/00:00; the day's parts are then evaluated on their own): a gap between pairs is a booked break
    only when both pairs belong to the same shift. All pairs of a day are one shift, except on a day that is
    both ``carried_in`` (its first pair 00:00-first go ends a shift that began the previous day) and
    ``continues`` (its last pair last come-24:00 starts a shift that ends the next day): the carried-in and
    the continuing pair are then different shifts, and the day is split into two shifts at the LONGEST gap
    between them (the earliest of equally long gaps), so booked breaks after midnight stay with last
    night's shift and booked breaks before midnight with tonight's. That gap is off time.

    Limitation: on a day with only one of the two flags there is no evidence in the bookings of a second
    shift, so the day stays one shift (a separate day shift after a carried-in part has its gap counted as a
    booked break). Returns ``[]`` for no pairs; never raises.
    """
    if not pairs:
        return []
    if not (day_change.carried_in and day_change.continues and len(pairs) >= 2):
        return [list(pairs)]
    boundary = max(range(1, len(pairs)), key=lambda i: (pairs[i][0] - pairs[i - 1][1], -i))
    return [list(pairs[:boundary]), list(pairs[boundary:])]


def _window_deduction(rule: BreakRule, pairs: Sequence[Interval], gaps: Sequence[Interval], budget: int) -> int:
    assert rule.start is not None and rule.end is not None
    if rule.kind == "variable" and _overlap(gaps, rule.start, rule.end) > 0:
        return 0  # a booked break in the window replaces the variable break
    return min(budget, _overlap(pairs, rule.start, rule.end))


def required_minimum_break(rules: Iterable[BreakRule], presence: int) -> int:
    """Total break the minimum rules require for ``presence`` minutes (ZMI "Mindestpause nach X Minuten").

    A rule applies only when presence is STRICTLY longer than ``after_minutes`` (ArbZG §4: exactly 6 h needs
    no break). With ``minutes_difference`` it requires ``min(minutes, presence - after_minutes)``.
    Rules add up (30 after 360 + 15 after 540 -> 45 for presence 570).
    """
    total = 0
    for rule in rules:
        if rule.kind != "minimum":
            continue
        assert rule.after_minutes is not None
        if presence > rule.after_minutes:
            beyond = presence - rule.after_minutes
            total += min(rule.minutes, beyond) if rule.minutes_difference else rule.minutes
    return total


def deducted_breaks(rules: Sequence[BreakRule], pairs: Sequence[Interval],
                    day_change: DayChange = NO_DAY_CHANGE) -> int:
    """Minutes deducted from presence by the plan's break rules for the paired ``pairs`` (see module doc).

    Evaluated per shift (:func:`shift_parts`): the minimum rules look at each shift's presence on this day
    (ArbZG §4 / "Mindestpause" per shift, not per calendar day, so the end of last night's shift and the start
    of tonight's are never added up); booked breaks (gaps between pairs of the shift) are not deducted (they
    are not presence) but count toward the shift's minimum requirement, as do the shift's fixed and variable
    window deductions. A window rule deducts at most its ``minutes`` per day (shared in time order across the
    shifts). Never more than a shift's presence. Returns minutes; never raises.

    Consequence of the midnight split: a night shift's minimum break is judged on each calendar day's part
    of it, never on the whole shift (22:00-06:00 = 120 + 360 minutes -> no minimum break on either day,
    although ArbZG §4 asks 30 for the 8 hours). Plans that must enforce it should use a fixed or variable
    window break inside the shift (e.g. 02:00-02:30).
    """
    budgets = {i: r.minutes for i, r in enumerate(rules) if r.kind != "minimum"}
    total = 0
    for part in shift_parts(pairs, day_change):
        presence = sum(e - s for s, e in part)
        gaps = _gaps(part)
        booked = sum(e - s for s, e in gaps)
        window = 0
        for i, budget in budgets.items():
            taken = _window_deduction(rules[i], part, gaps, budget)
            budgets[i] = budget - taken
            window += taken
        extra = max(0, required_minimum_break(rules, presence) - booked - window)
        total += min(presence, window + extra)
    return total


def _dedupe(codes: Iterable[str]) -> tuple[str, ...]:
    return tuple(dict.fromkeys(codes))


def calculate_day(employee_id: EmployeeId, day: dt.date, bookings: Iterable[Booking], plan: DayPlan | None,
                  *, holiday_category: int | None = None, final: bool = True,
                  day_change: DayChange = NO_DAY_CHANGE) -> DailyValue:
    """Evaluate one employee's local ``day`` -> :class:`DailyValue` (all minutes; rules in the module doc).

    ``bookings``: the day's come/go bookings (any order). ``plan``: the day plan, ``None`` for a free day.
    ``holiday_category``: 1/2/3 on a public holiday
    (credit per :meth:`DayPlan.holiday_credit`, added to any worked time; the no-booking rule does not apply).
    ``final``: the day is over (it is the day after or later; see :func:`is_final`); when False the value is
    provisional and carries no errors. ``day_change``: midnight links from :func:`day_change_context`.

    Days without bookings on a working day (plan with target > 0, no holiday) follow
    ``plan.no_booking_rule``: ``deduct_target`` -> difference -target; ``take_over_target`` -> credited =
    target, difference 0; ``no_evaluation`` -> target 0, difference 0 and NO_BOOKINGS on a final day.
    Raises ``ValueError`` for an invalid holiday category or a ``day_change`` the bookings contradict.

    Free day (``plan`` None, no holiday): evaluated with :data:`FREE_DAY_PLAN` -> target 0, booked time is
    overtime, but the ArbZG §4 minimum breaks apply (30 min for presence strictly over 6 h, 45 min over
    9 h; booked breaks count toward them). Reason: ArbZG §4 requires rest breaks on EVERY working day,
    regardless of the day plan; without it a Saturday shift on a free weekend (week plans with free
    Saturday/Sunday, as in the demo) escaped the legal minimum (07:44-17:29 -> breaks 45, net 540, not 585).
    No maximum net time; no bookings -> all zero, no error. The day change across midnight is unchanged:
    the come day's plan decides whether a shift is split at midnight; if the come day is free, the go day's
    plan decides (:func:`day_change_context`, given the real ``None``). A holiday without a day plan keeps
    the plain evaluation: no credit, no break rules.
    """
    bookings = list(bookings)
    if plan is None and holiday_category is None:
        plan = FREE_DAY_PLAN
    pairs, pairing_errors = pair_bookings(bookings, day_change)
    target = plan.target_minutes if plan is not None else 0
    presence = sum(e - s for s, e in pairs)
    gross = sum(part[-1][1] - part[0][0] for part in shift_parts(pairs, day_change))
    deducted = deducted_breaks(plan.breaks, pairs, day_change) if plan is not None else 0
    worked = presence - deducted
    capped = 0
    if plan is not None and plan.max_net_minutes is not None:
        capped = max(0, worked - plan.max_net_minutes)
    credited = 0
    errors = list(pairing_errors)
    if plan is not None and holiday_category is not None:
        credited = plan.holiday_credit(holiday_category)
    elif plan is not None and not bookings and target > 0:
        if plan.no_booking_rule == "take_over_target":
            credited = target
        elif plan.no_booking_rule == "no_evaluation":
            target = 0
            errors.append(NO_BOOKINGS)
    net = worked - capped + credited
    difference = net - target
    return DailyValue(
        employee_id=employee_id, date=day, gross=gross, breaks=gross - presence + deducted, net=net,
        target=target, difference=difference, overtime=max(difference, 0), undertime=max(-difference, 0),
        capped=capped, errors=_dedupe(errors) if final else (), provisional=not final,
        holiday_category=holiday_category, presence=presence, credited=credited)


def is_final(day: dt.date, today: dt.date) -> bool:
    """A day is final from the next local day on (ZMI: errors are shown the day after)."""
    return day < today


def calculate_days(employee_id: EmployeeId, days: Iterable[dt.date],
                   bookings: Mapping[dt.date, Sequence[Booking]],
                   plan_for: Callable[[dt.date], DayPlan | None],
                   holiday_for: Callable[[dt.date], int | None], today: dt.date) -> list[DailyValue]:
    """Evaluate several days of one employee, linking neighbours across midnight.

    ``bookings`` maps local dates to that day's bookings and must include the day before and the day after
    each requested day when they have bookings (for :func:`day_change_context`). ``plan_for`` and
    ``holiday_for`` return the day plan (None = free) and holiday category (None = no holiday) of a date.
    ``today`` is the current local date: days before it are final. Returns values in the order of ``days``.
    """
    one = dt.timedelta(days=1)
    values = []
    for day in days:
        change = day_change_context(bookings.get(day - one, ()), bookings.get(day, ()),
                                    bookings.get(day + one, ()), plan_for(day - one), plan_for(day),
                                    plan_for(day + one))
        values.append(calculate_day(employee_id, day, bookings.get(day, ()), plan_for(day),
                                    holiday_category=holiday_for(day), final=is_final(day, today),
                                    day_change=change))
    return values


__all__ = ["DayChange", "FREE_DAY_PLAN", "NO_DAY_CHANGE", "calculate_day", "calculate_days", "day_change_context",
           "deducted_breaks", "is_final", "pair_bookings", "required_minimum_break", "shift_parts"]
