"""Calculation models of the tna domain (SPEC section 7, ZMI manual rules): pure, immutable values.

These frozen dataclasses are what :mod:`zmi_reconciler.tna.calc_day` and :mod:`zmi_reconciler.tna.calc_month`
consume and produce; the store (:mod:`zmi_reconciler.tna.store`) persists and loads them field by field.
No SQL and no I/O here.

Units everywhere: **integer minutes** for durations and balances; **local minute of day** (0..1439, in the
server's default zone) for times of day. ``__post_init__`` validates and raises ``ValueError`` for values that
break these rules, so a model that exists is always usable by the calculation.
"""

from __future__ import annotations

import datetime as dt
import re
from dataclasses import dataclass
from typing import Literal, TypeAlias

MINUTES_PER_DAY = 1440

Direction: TypeAlias = Literal["come", "go"]
BreakKind: TypeAlias = Literal["fixed", "variable", "minimum"]
NoBookingRule: TypeAlias = Literal["deduct_target", "take_over_target", "no_evaluation"]
DayChangeRule: TypeAlias = Literal["none", "auto_complete_midnight"]
CreditType: TypeAlias = Literal["no_evaluation", "complete", "after_threshold", "no_carry"]
EmployeeId: TypeAlias = int | str

DIRECTIONS: tuple[str, ...] = ("come", "go")
BREAK_KINDS: tuple[str, ...] = ("fixed", "variable", "minimum")
NO_BOOKING_RULES: tuple[str, ...] = ("deduct_target", "take_over_target", "no_evaluation")
DAY_CHANGE_RULES: tuple[str, ...] = ("none", "auto_complete_midnight")
CREDIT_TYPES: tuple[str, ...] = ("no_evaluation", "complete", "after_threshold", "no_carry")

# Error codes of a daily value (DailyValue.errors).
MISSING_GO = "MISSING_GO"          # a come without a following go, on a final day
MISSING_COME = "MISSING_COME"      # a go without a preceding come, on a final day
NO_BOOKINGS = "NO_BOOKINGS"        # no bookings on a final working day whose plan says "no evaluation"
ERROR_CODES: tuple[str, ...] = (MISSING_GO, MISSING_COME, NO_BOOKINGS)

_HHMM_RE = re.compile(r"^\s*(\d{1,2}):(\d{2})\s*$")


def parse_hhmm(text: str) -> int:
    """``"HH:MM"`` (local wall clock) -> minute of day 0..1440; ``"24:00"`` is allowed as the end of a window.

    Raises ``ValueError`` for anything else.
    """
    m = _HHMM_RE.match(text)
    if not m or int(m.group(2)) > 59:
        raise ValueError(f"expected a time HH:MM, got {text!r}")
    minute = int(m.group(1)) * 60 + int(m.group(2))
    if minute > MINUTES_PER_DAY:
        raise ValueError(f"time {text!r} is after 24:00")
    return minute


def format_hhmm(minute: int) -> str:
    """Minute of day -> ``"HH:MM"`` (1440 -> ``"24:00"``)."""
    return f"{minute // 60:02d}:{minute % 60:02d}"


def _require(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _check_minutes(name: str, value: int | None, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    _require(isinstance(value, int) and not isinstance(value, bool) and value >= 0,
             f"{name} must be a non-negative integer of minutes, got {value!r}")


@dataclass(frozen=True, slots=True)
class Booking:
    """One come or go terminal booking as the calculation sees it.

    ``minute``: local minute of day 0..1439 (seconds already truncated). ``direction``: ``"come"`` or ``"go"``.
    Bookings of one day are paired in time order; equal minutes keep their input order.
    Build from a local (aware or naive) datetime with :meth:`at`.
    """

    minute: int
    direction: Direction

    def __post_init__(self) -> None:
        _require(isinstance(self.minute, int) and 0 <= self.minute < MINUTES_PER_DAY,
                 f"booking minute must be 0..1439, got {self.minute!r}")
        _require(self.direction in DIRECTIONS, f"direction must be 'come' or 'go', got {self.direction!r}")

    @classmethod
    def at(cls, local: dt.datetime | dt.time | str, direction: Direction) -> "Booking":
        """Booking at a LOCAL wall-clock time (datetime or time; seconds are dropped; ``"HH:MM"`` accepted)."""
        if isinstance(local, str):
            return cls(parse_hhmm(local), direction)
        return cls(local.hour * 60 + local.minute, direction)


@dataclass(frozen=True, slots=True)
class BreakRule:
    """One break rule of a day plan (ZMI manual, "Pausen" in the day plan).

    - ``fixed`` ("feste Pause"): window ``start``..``end`` (local minutes of day). Deducted whenever presence
      overlaps the window, regardless of booked breaks: the deduction is the overlap of the presence with the
      window, at most ``minutes``.
    - ``variable`` ("variable Pause"): same window; deducted (overlap with presence, at most ``minutes``) only
      if the employee booked no break (a gap between two come/go pairs) that overlaps the window. A booked
      break in the window replaces it.
    - ``minimum`` ("Mindestpause nach X Minuten"): when the day's presence is STRICTLY longer than
      ``after_minutes``, the day's total break (booked + fixed + variable + minimum) must reach the required
      amount; the missing part is deducted. Several minimum rules add up (ArbZG §4: 30 after 360, 15 more
      after 540). With ``minutes_difference`` ("Minuten Differenz") only the presence beyond the threshold
      is required, up to ``minutes`` (presence 310, after 300, 30 min -> 10).

    ``minutes`` for fixed/variable defaults to the window length when built with :meth:`fixed` /
    :meth:`variable`. Raises ``ValueError`` for incomplete or inconsistent rules.
    """

    kind: BreakKind
    minutes: int
    start: int | None = None
    end: int | None = None
    after_minutes: int | None = None
    minutes_difference: bool = False

    def __post_init__(self) -> None:
        _require(self.kind in BREAK_KINDS, f"break kind must be one of {BREAK_KINDS}, got {self.kind!r}")
        _check_minutes("break minutes", self.minutes)
        if self.kind == "minimum":
            _check_minutes("after_minutes", self.after_minutes)
            _require(self.start is None and self.end is None, "a minimum break has no start/end window")
        else:
            _require(self.start is not None and self.end is not None,
                     f"a {self.kind} break needs a start and an end")
            assert self.start is not None and self.end is not None
            _require(0 <= self.start < self.end <= MINUTES_PER_DAY,
                     f"break window must satisfy 0 <= start < end <= 1440, got {self.start}..{self.end}")
            _require(self.minutes <= self.end - self.start,
                     f"break minutes {self.minutes} exceed the window {self.end - self.start}")
            _require(self.after_minutes is None and not self.minutes_difference,
                     f"after_minutes/minutes_difference only apply to minimum breaks, not {self.kind}")

    @classmethod
    def fixed(cls, start: int | str, end: int | str, minutes: int | None = None) -> "BreakRule":
        """Fixed break in the window (minutes of day or ``"HH:MM"``); ``minutes`` defaults to the window."""
        s, e = _minute(start), _minute(end)
        return cls("fixed", e - s if minutes is None else minutes, s, e)

    @classmethod
    def variable(cls, start: int | str, end: int | str, minutes: int | None = None) -> "BreakRule":
        """Variable break in the window; ``minutes`` defaults to the window length."""
        s, e = _minute(start), _minute(end)
        return cls("variable", e - s if minutes is None else minutes, s, e)

    @classmethod
    def minimum(cls, after_minutes: int, minutes: int, minutes_difference: bool = False) -> "BreakRule":
        """Minimum break: ``minutes`` once presence is strictly longer than ``after_minutes``."""
        return cls("minimum", minutes, after_minutes=after_minutes, minutes_difference=minutes_difference)


def _minute(value: int | str) -> int:
    return parse_hhmm(value) if isinstance(value, str) else value


ARBZG_BREAKS: tuple[BreakRule, ...] = (BreakRule.minimum(360, 30), BreakRule.minimum(540, 15))
"""ArbZG §4 as minimum breaks: 30 min after more than 6 h, 15 more after more than 9 h."""


@dataclass(frozen=True, slots=True)
class DayPlan:
    """A day plan ("Tagesplan"): the rules one calendar day is evaluated with.

    - ``target_minutes``: target time ("Sollzeit").
    - ``breaks``: :class:`BreakRule` s, evaluated together (see there).
    - ``max_net_minutes``: maximum net time ("maximale Nettoarbeitszeit"); worked net above it is cut and
      reported as ``capped``. ``None`` = no limit.
    - ``no_booking_rule`` ("Tage ohne Buchungen"): ``deduct_target`` -> net 0, difference -target;
      ``take_over_target`` -> net = target, difference 0; ``no_evaluation`` -> error NO_BOOKINGS (final days),
      target 0, difference 0 until someone corrects the day.
    - ``day_change`` ("Tageswechsel"): ``none`` -> a come left open at midnight is MISSING_GO;
      ``auto_complete_midnight`` -> an open come followed by a go on the next day is split at 24:00 (the shift
      is ended at 24:00 on the come day and begins at 00:00 on the next day). The rule of the come day's plan
      decides (see :func:`zmi_reconciler.tna.calc_day.day_change_context`).
    - ``holiday_credit_cat1/2/3`` ("Feiertagsgutschrift Kategorie 1/2/3"): minutes credited on a holiday of
      that category; ``None`` = the default share of the target: category 1 full target, category 2 half
      (integer division), category 3 nothing.
    """

    code: str
    name: str = ""
    target_minutes: int = 0
    breaks: tuple[BreakRule, ...] = ()
    max_net_minutes: int | None = None
    no_booking_rule: NoBookingRule = "deduct_target"
    day_change: DayChangeRule = "none"
    holiday_credit_cat1: int | None = None
    holiday_credit_cat2: int | None = None
    holiday_credit_cat3: int | None = None

    def __post_init__(self) -> None:
        _require(bool(self.code), "a day plan needs a code")
        _check_minutes("target_minutes", self.target_minutes)
        _check_minutes("max_net_minutes", self.max_net_minutes, allow_none=True)
        for name in ("holiday_credit_cat1", "holiday_credit_cat2", "holiday_credit_cat3"):
            _check_minutes(name, getattr(self, name), allow_none=True)
        _require(self.no_booking_rule in NO_BOOKING_RULES,
                 f"no_booking_rule must be one of {NO_BOOKING_RULES}, got {self.no_booking_rule!r}")
        _require(self.day_change in DAY_CHANGE_RULES,
                 f"day_change must be one of {DAY_CHANGE_RULES}, got {self.day_change!r}")
        if not isinstance(self.breaks, tuple):  # accept lists from loaders, keep the model hashable
            object.__setattr__(self, "breaks", tuple(self.breaks))
        _require(all(isinstance(b, BreakRule) for b in self.breaks), "breaks must be BreakRule values")

    def holiday_credit(self, category: int) -> int:
        """Minutes credited on a holiday of ``category`` (1, 2 or 3); raises ``ValueError`` for others."""
        defaults = {1: self.target_minutes, 2: self.target_minutes // 2, 3: 0}
        _require(category in defaults, f"holiday category must be 1, 2 or 3, got {category!r}")
        configured = getattr(self, f"holiday_credit_cat{category}")
        return defaults[category] if configured is None else configured


@dataclass(frozen=True, slots=True)
class WeekPlan:
    """A week plan ("Wochenplan"): one day plan code per weekday, ``None`` for a free day (target 0).

    :meth:`day_plan_code` picks the code for a date (Monday = ``mon``).
    """

    code: str
    name: str = ""
    mon: str | None = None
    tue: str | None = None
    wed: str | None = None
    thu: str | None = None
    fri: str | None = None
    sat: str | None = None
    sun: str | None = None

    def __post_init__(self) -> None:
        _require(bool(self.code), "a week plan needs a code")

    @property
    def days(self) -> tuple[str | None, ...]:
        """The seven day plan codes, Monday first."""
        return (self.mon, self.tue, self.wed, self.thu, self.fri, self.sat, self.sun)

    def day_plan_code(self, day: dt.date) -> str | None:
        """Day plan code for ``day`` (``None`` = free day)."""
        return self.days[day.weekday()]


@dataclass(frozen=True, slots=True)
class CreditRule:
    """Employee-level monthly credit settings ("Art der Gutschrift", ZMI monthly evaluation).

    ``kind``:
    - ``no_evaluation`` ("keine Bewertung"): the month's change is carried 1:1: carry = start + change.
    - ``complete`` ("Gleitzeitübertrag komplett"): a positive change is credited up to ``monthly_cap``
      (None = no cap); a negative change is always taken in full.
    - ``after_threshold`` ("Gleitzeitübertrag nach Schwelle"): of a positive change only the part above
      ``threshold`` is credited (then capped by ``monthly_cap`` if set); a negative change is taken in full.
    - ``no_carry`` ("kein Übertrag"): the carry is always 0.
    For ``complete`` and ``after_threshold``, ``upper_limit`` ("Jahreshöchstgrenze") caps the resulting
    flextime balance (carry) and ``lower_limit`` (a negative number of minutes, optional) floors it.
    Whatever the rule takes away is reported as ``forfeited`` (= start + change - carry).
    """

    kind: CreditType = "no_evaluation"
    monthly_cap: int | None = None
    upper_limit: int | None = None
    lower_limit: int | None = None
    threshold: int = 0

    def __post_init__(self) -> None:
        _require(self.kind in CREDIT_TYPES, f"credit type must be one of {CREDIT_TYPES}, got {self.kind!r}")
        _check_minutes("monthly_cap", self.monthly_cap, allow_none=True)
        _check_minutes("threshold", self.threshold)
        _require(self.upper_limit is None or isinstance(self.upper_limit, int), "upper_limit must be minutes")
        _require(self.lower_limit is None or (isinstance(self.lower_limit, int) and self.lower_limit <= 0),
                 f"lower_limit must be zero or negative minutes, got {self.lower_limit!r}")
        if self.upper_limit is not None and self.lower_limit is not None:
            _require(self.lower_limit <= self.upper_limit, "lower_limit must not exceed upper_limit")


@dataclass(frozen=True, slots=True)
class DailyValue:
    """The evaluation of one employee's local calendar day ("Tageswert"). All durations integer minutes.

    Contract fields (COORDINATION.md): ``employee_id``, ``date`` (local), ``gross``, ``breaks``, ``net``,
    ``target``, ``difference`` (= net - target), ``overtime`` (= max(difference, 0)), ``undertime``
    (= max(-difference, 0)), ``capped`` (worked minutes cut by the max net time), ``errors`` (codes:
    MISSING_GO, MISSING_COME, NO_BOOKINGS), ``provisional`` (day not final yet: no booking errors reported),
    ``holiday_category`` (1/2/3 or None).

    Added by H3 (persist them too):
    - ``presence``: minutes inside come/go pairs (the time actually booked present).
    - ``credited``: minutes credited without presence (holiday credit, "take over target").
    ``gross`` = presence + booked breaks (gaps between consecutive pairs); ``breaks`` = booked breaks +
    deducted breaks. Invariant: ``net = gross - breaks - capped + credited``.
    """

    employee_id: EmployeeId
    date: dt.date
    gross: int = 0
    breaks: int = 0
    net: int = 0
    target: int = 0
    difference: int = 0
    overtime: int = 0
    undertime: int = 0
    capped: int = 0
    errors: tuple[str, ...] = ()
    provisional: bool = False
    holiday_category: int | None = None
    presence: int = 0
    credited: int = 0

    def __post_init__(self) -> None:
        if not isinstance(self.errors, tuple):  # accept a list (e.g. from JSON), keep it immutable
            object.__setattr__(self, "errors", tuple(self.errors))

    @property
    def has_error(self) -> bool:
        """True when the day carries at least one error code."""
        return bool(self.errors)


@dataclass(frozen=True, slots=True)
class MonthlyValue:
    """The evaluation of one employee's month ("Monatswert"). All values integer minutes.

    Sums of the month's daily values: ``gross``, ``breaks``, ``net``, ``target``, ``overtime``, ``undertime``,
    ``difference`` (= overtime - undertime). Flextime: ``flextime_start`` (= the previous month's carry),
    ``flextime_change`` (= difference), ``flextime_carry`` (start + change after the :class:`CreditRule`),
    ``forfeited`` (= start + change - carry; what the credit rule took away, negative if it cancelled
    undertime). ``error_days``: days with at least one error. ``closed``: month closing flag; closed months are
    never recalculated (enforced by the store, this is data only).
    """

    employee_id: EmployeeId
    year: int
    month: int
    gross: int = 0
    breaks: int = 0
    net: int = 0
    target: int = 0
    overtime: int = 0
    undertime: int = 0
    difference: int = 0
    flextime_start: int = 0
    flextime_change: int = 0
    flextime_carry: int = 0
    forfeited: int = 0
    error_days: int = 0
    closed: bool = False

    def __post_init__(self) -> None:
        _require(1 <= self.month <= 12, f"month must be 1..12, got {self.month!r}")


__all__ = [
    "ARBZG_BREAKS", "Booking", "BreakRule", "CreditRule", "CreditType", "DailyValue", "DayPlan", "Direction",
    "EmployeeId", "ERROR_CODES", "MINUTES_PER_DAY", "MISSING_COME", "MISSING_GO", "MonthlyValue", "NO_BOOKINGS",
    "WeekPlan", "format_hhmm", "parse_hhmm",
]
