"""Master data kept in git like the schedules: day plans, week plans and employees in one YAML file
(``masterdata.yaml``), validated with pydantic, errors reported as ``file:line:col: path: message``.

Format (durations are minutes as an integer or ``"H:MM"``, e.g. ``480`` or ``"8:00"``; limits may exceed
24 h, ``lower_limit`` may be negative ``"-10:00"``; times of day are ``"HH:MM"`` local)::

    day_plans:
      - code: STD
        name: Standard day
        target: "8:00"
        breaks:                                   # fixed | variable: a window; minimum: after X minutes
          - {kind: minimum, after: "6:00", minutes: 30}      # ArbZG section 4
          - {kind: minimum, after: "9:00", minutes: 15}
          - {kind: variable, start: "12:00", end: "12:30"}
          - {kind: minimum, after: 300, minutes: 30, minutes_difference: true}
        max_net: "10:00"                          # optional
        no_bookings: deduct_target                # | take_over_target | no_evaluation
        day_change: none                          # | auto_complete_midnight
        holiday_credit: {1: "8:00", 2: "4:00"}    # optional, default: category 1 full, 2 half target
    week_plans:
      - code: W5
        days: {mon: STD, tue: STD, wed: STD, thu: STD, fri: FRI}   # a missing day is free
    employees:
      - personnel_number: "1001"
        pin: "1001"                               # terminal PIN (optional)
        first_name: Anna
        last_name: Berg
        email: anna.berg@example.org
        supervisor_email: lead@example.org
        entry_date: 2021-04-01
        exit_date: null
        week_plan: W5
        credit: {type: complete, monthly_cap: "10:00", upper_limit: "30:00"}
        flextime_initial: 0

Applying the file upserts plans by code and employees by personnel number; nothing is deleted (employees
who left keep an ``exit_date``; removing their data is the ``gdpr_retention`` task's job).
"""

from __future__ import annotations

import io
import re
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.constructor import RoundTripConstructor
from ruamel.yaml.scalarstring import DoubleQuotedScalarString
from ruamel.yaml.error import MarkedYAMLError

from zmi_reconciler.tna import models
from zmi_reconciler.tna.store import Employee, Store, normalize_pin

class _Constructor(RoundTripConstructor):
    """Round-trip constructor that keeps dates as text, so pydantic validates them with a position
    (ruamel's own timestamp parsing raises a bare ValueError for 2020-13-01)."""


_Constructor.add_constructor("tag:yaml.org,2002:timestamp", _Constructor.construct_yaml_str)

_DURATION_RE = re.compile(r"^\s*(-?)(\d+):([0-5]\d)\s*$")


def _minutes(value: Any) -> Any:
    """``480`` or ``"8:00"`` (also ``"-10:00"``) -> minutes; anything else is left for pydantic to reject."""
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if not m:
            raise ValueError(f"expected minutes or H:MM, got {value!r}")
        minutes = int(m.group(2)) * 60 + int(m.group(3))
        return -minutes if m.group(1) else minutes
    return value


def _time_of_day(value: Any) -> Any:
    if isinstance(value, str):
        return models.parse_hhmm(value)
    return value


Minutes = Annotated[int, BeforeValidator(_minutes), Field(ge=0)]
SignedMinutes = Annotated[int, BeforeValidator(_minutes)]
TimeOfDay = Annotated[int, BeforeValidator(_time_of_day), Field(ge=0, le=1440)]
Code = Annotated[str, Field(min_length=1, max_length=40, pattern=r"^[A-Za-z0-9_.-]+$")]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class BreakSpec(_Model):
    kind: Literal["fixed", "variable", "minimum"]
    minutes: Minutes | None = None
    start: TimeOfDay | None = None
    end: TimeOfDay | None = None
    after: Minutes | None = None
    minutes_difference: bool = False

    def to_model(self) -> models.BreakRule:
        if self.kind == "minimum":
            if self.after is None or self.minutes is None:
                raise ValueError("a minimum break needs 'after' and 'minutes'")
            return models.BreakRule.minimum(self.after, self.minutes, self.minutes_difference)
        if self.start is None or self.end is None:
            raise ValueError(f"a {self.kind} break needs 'start' and 'end'")
        if self.end <= self.start:
            raise ValueError(f"break end {models.format_hhmm(self.end)} is not after its start "
                             f"{models.format_hhmm(self.start)}")
        factory = models.BreakRule.fixed if self.kind == "fixed" else models.BreakRule.variable
        return factory(self.start, self.end, self.minutes)

    @model_validator(mode="after")
    def _valid(self) -> "BreakSpec":
        self.to_model()
        return self


class DayPlanSpec(_Model):
    code: Code
    name: str = ""
    target: Minutes = 0
    breaks: list[BreakSpec] = Field(default_factory=list)
    max_net: Minutes | None = None
    no_bookings: Literal["deduct_target", "take_over_target", "no_evaluation"] = "deduct_target"
    day_change: Literal["none", "auto_complete_midnight"] = "none"
    holiday_credit: dict[Literal[1, 2, 3], Minutes] = Field(default_factory=dict)

    def to_model(self) -> models.DayPlan:
        return models.DayPlan(
            code=self.code, name=self.name, target_minutes=self.target, breaks=tuple(b.to_model() for b in self.breaks),
            max_net_minutes=self.max_net, no_booking_rule=self.no_bookings, day_change=self.day_change,
            holiday_credit_cat1=self.holiday_credit.get(1), holiday_credit_cat2=self.holiday_credit.get(2),
            holiday_credit_cat3=self.holiday_credit.get(3))

    @model_validator(mode="after")
    def _valid(self) -> "DayPlanSpec":
        self.to_model()
        return self


class WeekDays(_Model):
    mon: Code | None = None
    tue: Code | None = None
    wed: Code | None = None
    thu: Code | None = None
    fri: Code | None = None
    sat: Code | None = None
    sun: Code | None = None


class WeekPlanSpec(_Model):
    code: Code
    name: str = ""
    days: WeekDays

    def to_model(self) -> models.WeekPlan:
        return models.WeekPlan(self.code, self.name, **self.days.model_dump())


class CreditSpec(_Model):
    type: Literal["no_evaluation", "complete", "after_threshold", "no_carry"] = "no_evaluation"
    monthly_cap: Minutes | None = None
    upper_limit: SignedMinutes | None = None
    lower_limit: SignedMinutes | None = None
    threshold: Minutes = 0

    @model_validator(mode="after")
    def _valid(self) -> "CreditSpec":
        models.CreditRule(self.type, self.monthly_cap, self.upper_limit, self.lower_limit, self.threshold)
        return self


class EmployeeSpec(_Model):
    personnel_number: Annotated[str, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v),
                                Field(min_length=1, max_length=40, pattern=r"^[0-9A-Za-z][0-9A-Za-z_-]*$")]
    pin: Annotated[str | None, BeforeValidator(lambda v: str(v) if isinstance(v, int) else v),
                   Field(default=None, pattern=r"^\s*[0-9A-Za-z]+\s*$")] = None
    first_name: str = ""
    last_name: str = ""
    email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    supervisor_email: str | None = Field(default=None, pattern=r"^[^@\s]+@[^@\s]+$")
    entry_date: date | None = None
    exit_date: date | None = None
    week_plan: Code | None = None
    credit: CreditSpec = Field(default_factory=CreditSpec)
    flextime_initial: SignedMinutes = 0

    @model_validator(mode="after")
    def _dates(self) -> "EmployeeSpec":
        if self.entry_date and self.exit_date and self.exit_date < self.entry_date:
            raise ValueError("exit_date is before entry_date")
        return self

    def to_record(self) -> Employee:
        return Employee(
            personnel_number=self.personnel_number, pin=self.pin.strip() if self.pin else None,
            first_name=self.first_name, last_name=self.last_name, email=self.email,
            supervisor_email=self.supervisor_email, entry_date=self.entry_date, exit_date=self.exit_date,
            week_plan=self.week_plan, credit_type=self.credit.type, credit_monthly_cap=self.credit.monthly_cap,
            credit_upper_limit=self.credit.upper_limit, credit_lower_limit=self.credit.lower_limit,
            credit_threshold=self.credit.threshold, flextime_initial=self.flextime_initial)


class MasterDataFile(_Model):
    """The whole file (all sections optional)."""

    day_plans: list[DayPlanSpec] = Field(default_factory=list)
    week_plans: list[WeekPlanSpec] = Field(default_factory=list)
    employees: list[EmployeeSpec] = Field(default_factory=list)


@dataclass(frozen=True)
class Problem:
    """One error in a master data file: 1-based ``line``/``column``, ``path`` like ``employees[2].pin``."""

    file: str
    line: int
    column: int
    path: str
    message: str

    def __str__(self) -> str:
        where = f"{self.path}: " if self.path else ""
        return f"{self.file}:{self.line}:{self.column}: {where}{self.message}"


class MasterDataError(ValueError):
    """The master data file is invalid; ``problems`` lists every error with its position."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("\n".join(str(p) for p in problems))
        self.problems = problems


@dataclass
class MasterData:
    """Validated master data as the store's and the calculation's types."""

    day_plans: list[models.DayPlan] = field(default_factory=list)
    week_plans: list[models.WeekPlan] = field(default_factory=list)
    employees: list[Employee] = field(default_factory=list)


@dataclass
class ApplyResult:
    day_plans: int = 0
    week_plans: int = 0
    employees: int = 0
    attached: int = 0


# --- loading --------------------------------------------------------------------------------------------


def load_masterdata(path: str | Path) -> MasterData:
    """Read and validate a master data file. Raises :class:`MasterDataError` (every problem with
    file:line:col) for invalid content, ``OSError`` when the file cannot be read."""
    return load_masterdata_text(Path(path).read_text(encoding="utf-8"), str(path))


def load_masterdata_text(text: str, filename: str = "<masterdata>") -> MasterData:
    """Validate master data YAML text; see :func:`load_masterdata`."""
    try:
        yaml = YAML(typ="rt")
        yaml.Constructor = _Constructor
        data = yaml.load(text)
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        raise MasterDataError([Problem(filename, line, col, "", f"YAML syntax: {exc.problem or exc}")]) from None
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise MasterDataError([Problem(filename, 1, 1, "", "expected a mapping with day_plans, week_plans, "
                                                           "employees")])
    try:
        parsed = MasterDataFile.model_validate(_plain(data))
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            path = tuple(p for p in err["loc"] if not (isinstance(p, str) and ("[" in p or "function" in p)))
            line, col = _position(data, path)
            message = err["msg"].removeprefix("Value error, ")
            problems.append(Problem(filename, line, col, _path_str(path), message))
        raise MasterDataError(sorted(problems, key=lambda p: (p.line, p.column))) from None
    problems = _cross_check(parsed, data, filename)
    if problems:
        raise MasterDataError(problems)
    return MasterData([d.to_model() for d in parsed.day_plans], [w.to_model() for w in parsed.week_plans],
                      [e.to_record() for e in parsed.employees])


def _plain(node: Any) -> Any:
    """ruamel's commented containers -> plain dicts/lists (pydantic then sees ordinary values)."""
    if isinstance(node, dict):
        return {k: _plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [_plain(v) for v in node]
    return node


def _position(data: Any, path: tuple[Any, ...]) -> tuple[int, int]:
    """1-based line/column of the deepest node of ``path`` that exists in the ruamel tree."""
    line, col = 1, 1
    node = data
    for part in path:
        lc = getattr(node, "lc", None)
        if isinstance(node, dict) and part in node and lc is not None:
            pos = lc.value(part) if not isinstance(node[part], (dict, list)) else lc.key(part)
            line, col = pos[0] + 1, pos[1] + 1
            node = node[part]
        elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node) and lc is not None:
            line, col = lc.item(part)[0] + 1, lc.item(part)[1] + 1
            node = node[part]
        else:
            break
    return line, col


def _path_str(path: tuple[Any, ...]) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _cross_check(parsed: MasterDataFile, data: Any, filename: str) -> list[Problem]:
    """Unique codes / numbers / PINs, and references to plans defined in the same file."""
    problems: list[Problem] = []

    def problem(path: tuple[Any, ...], message: str) -> None:
        line, col = _position(data, path)
        problems.append(Problem(filename, line, col, _path_str(path), message))

    def unique(section: str, key: str, values: list[str | None]) -> None:
        seen: dict[str, int] = {}
        for i, value in enumerate(values):
            if value is None:
                continue
            if value in seen:
                problem((section, i, key), f"duplicate {key} {value!r} (first at {section}[{seen[value]}])")
            seen.setdefault(value, i)

    unique("day_plans", "code", [d.code for d in parsed.day_plans])
    unique("week_plans", "code", [w.code for w in parsed.week_plans])
    unique("employees", "personnel_number", [e.personnel_number for e in parsed.employees])
    unique("employees", "pin", [normalize_pin(e.pin) if e.pin else None for e in parsed.employees])
    day_codes = {d.code for d in parsed.day_plans}
    for i, week in enumerate(parsed.week_plans):
        for day, code in week.days.model_dump().items():
            if code is not None and code not in day_codes:
                problem(("week_plans", i, "days", day), f"unknown day plan {code!r}")
    week_codes = {w.code for w in parsed.week_plans}
    for i, emp in enumerate(parsed.employees):
        if emp.week_plan is not None and emp.week_plan not in week_codes:
            problem(("employees", i, "week_plan"), f"unknown week plan {emp.week_plan!r}")
    return sorted(problems, key=lambda p: (p.line, p.column))


# --- applying and writing -------------------------------------------------------------------------------


def apply_masterdata(store: Store, masterdata: MasterData, *, debounce_seconds: int = 60) -> ApplyResult:
    """Upsert the master data into ``store`` in one transaction (plans by code, employees by personnel
    number); unassigned bookings of new PINs attach (:meth:`Store.upsert_employee`)."""
    result = ApplyResult()
    with store.transaction():
        for plan in masterdata.day_plans:
            store.upsert_day_plan(plan)
        for week in masterdata.week_plans:
            store.upsert_week_plan(week)
        for employee in masterdata.employees:
            _, attached = store.upsert_employee(employee, debounce_seconds=debounce_seconds)
            result.attached += attached.attached
    result.day_plans = len(masterdata.day_plans)
    result.week_plans = len(masterdata.week_plans)
    result.employees = len(masterdata.employees)
    return result


def _hmm(minutes: int) -> str:
    """Minutes -> quoted ``"H:MM"`` (quoted: YAML 1.1 readers would take 8:00 as a base-60 number)."""
    sign = "-" if minutes < 0 else ""
    return DoubleQuotedScalarString(f"{sign}{abs(minutes) // 60}:{abs(minutes) % 60:02d}")


def _flow(mapping: dict[str, Any]) -> CommentedMap:
    flow = CommentedMap(mapping)
    flow.fa.set_flow_style()
    return flow


def dump_masterdata(masterdata: MasterData, header: str = "") -> str:
    """The YAML text of ``masterdata`` in the format :func:`load_masterdata` reads (round trip)."""
    day_plans = []
    for p in masterdata.day_plans:
        entry: dict[str, Any] = {"code": p.code, "name": p.name, "target": _hmm(p.target_minutes)}
        breaks = []
        for b in p.breaks:
            if b.kind == "minimum":
                item: dict[str, Any] = {"kind": "minimum", "after": _hmm(b.after_minutes or 0), "minutes": b.minutes}
                if b.minutes_difference:
                    item["minutes_difference"] = True
            else:
                item = {"kind": b.kind, "start": DoubleQuotedScalarString(models.format_hhmm(b.start or 0)),
                        "end": DoubleQuotedScalarString(models.format_hhmm(b.end or 0)), "minutes": b.minutes}
            breaks.append(_flow(item))
        if breaks:
            entry["breaks"] = breaks
        if p.max_net_minutes is not None:
            entry["max_net"] = _hmm(p.max_net_minutes)
        entry["no_bookings"] = p.no_booking_rule
        entry["day_change"] = p.day_change
        credit = {c: getattr(p, f"holiday_credit_cat{c}") for c in (1, 2, 3)}
        if any(v is not None for v in credit.values()):
            entry["holiday_credit"] = {c: _hmm(v) for c, v in credit.items() if v is not None}
        day_plans.append(entry)
    week_plans = [{"code": w.code, "name": w.name,
                   "days": _flow({d: c for d, c in zip(("mon", "tue", "wed", "thu", "fri", "sat", "sun"), w.days)
                                  if c})}
                  for w in masterdata.week_plans]
    employees = []
    for e in masterdata.employees:
        entry = {"personnel_number": e.personnel_number, "pin": e.pin, "first_name": e.first_name,
                 "last_name": e.last_name, "email": e.email, "supervisor_email": e.supervisor_email,
                 "entry_date": e.entry_date, "exit_date": e.exit_date, "week_plan": e.week_plan}
        entry = {k: v for k, v in entry.items() if v is not None}
        credit: dict[str, Any] = {"type": e.credit_type}
        for key, value in (("monthly_cap", e.credit_monthly_cap), ("upper_limit", e.credit_upper_limit),
                           ("lower_limit", e.credit_lower_limit)):
            if value is not None:
                credit[key] = _hmm(value)
        if e.credit_threshold:
            credit["threshold"] = _hmm(e.credit_threshold)
        entry["credit"] = _flow(credit)
        if e.flextime_initial:
            entry["flextime_initial"] = e.flextime_initial
        employees.append(entry)
    yaml = YAML()
    yaml.default_flow_style = False
    yaml.indent(mapping=2, sequence=4, offset=2)
    out = io.StringIO()
    yaml.dump({"day_plans": day_plans, "week_plans": week_plans, "employees": employees}, out)
    return header + out.getvalue()
