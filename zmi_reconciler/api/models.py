"""Request and response models of the API (separate from the domain models in schema/journal/runner).

A schedule's ``spec`` is the document as written in its file (plain JSON data, defaults not filled in), so
GET -> edit -> PUT round-trips without adding defaults to the file; the OpenAPI document describes it with
the file schema (:class:`zmi_reconciler.schema.Schedule`). Instants are aware UTC datetimes (ISO 8601).
"""

# No ``from __future__ import annotations`` in this module: pydantic would have to evaluate every field
# annotation from its string at import, a few ms of the server's start-up.

import datetime as _dt
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema

from zmi_reconciler.api.problems import FieldError

#: Placeholder replaced by a ``$ref`` to the Schedule component when the OpenAPI document is finished.
SCHEDULE_REF = {"x-ref": "Schedule"}
#: A schedule document (plain data), documented as the file schema.
SpecDocument = Annotated[dict[str, Any], WithJsonSchema(SCHEDULE_REF)]
ScheduleId = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$", examples=["nightly"],
                                  description="schedule id = file stem in schedules.d")]

RunStatus = Literal["running", "succeeded", "failed", "partial", "interrupted"]
TaskStatus = Literal["running", "succeeded", "failed", "skipped", "timed_out", "interrupted"]


class _Out(BaseModel):
    # Response models are built on first use, not at import (~10 ms of start-up); GET /schedules, the hot
    # path, encodes plain data and needs none of them.
    model_config = ConfigDict(extra="forbid", defer_build=True)


class RunSummary(_Out):
    """One run as listed: trigger, slot, start/end (UTC), status (``running`` until it ends)."""

    run_id: str = Field(examples=["nightly@20261129T040000Z"])
    schedule: str
    trigger: str | None = Field(description="scheduled | catch_up | manual")
    status: str = Field(description="running | succeeded | failed | partial | interrupted")
    scheduled_for: datetime | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None


class TaskRun(_Out):
    """One task of a run: position, catalog name, status, duration (ms), result counts, error message."""

    index: int = Field(ge=0)
    task: str | None
    status: str = Field(description="succeeded | failed | skipped | timed_out | running | interrupted")
    started_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: int | None = None
    result: dict[str, Any] | None = None
    error: str | None = None


class LogLine(_Out):
    """A ``task_log`` record: time, task position, level, message (and any extra fields under ``fields``)."""

    ts: datetime | None
    index: int | None = None
    task: str | None = None
    level: str = "info"
    message: str = ""
    fields: dict[str, Any] = Field(default_factory=dict)


class RunDetail(RunSummary):
    """One run with its tasks in order and its log lines."""

    tasks: list[TaskRun]
    logs: list[LogLine]


class RunPage(_Out):
    """A page of runs, newest first."""

    items: list[RunSummary]
    page: int
    per_page: int
    total: int = Field(description="runs matching the filter in the retained journal")


class ScheduleStatus(_Out):
    """Observed state (runner, reconciler, journal): never written to the file."""

    enabled: bool
    loaded: bool = Field(description="the runner has a valid version of this schedule")
    degraded: bool = Field(description="the file is invalid; the last good version (if any) keeps running")
    errors: list[FieldError] = Field(default_factory=list, description="why the file is invalid")
    next_fire: datetime | None = None
    active_run: str | None = None
    queued: bool = False
    last_run: RunSummary | None = None
    last_success: datetime | None = None


class ScheduleSummary(_Out):
    """A schedule in the list."""

    id: ScheduleId
    name: str | None
    timing: str | None = Field(description="timing type", examples=["daily"])
    etag: str | None = Field(description="ETag of the file as last loaded")
    status: ScheduleStatus


class ScheduleList(_Out):
    items: list[ScheduleSummary]


class ScheduleDetail(_Out):
    """One schedule: the document as written (``spec``, null while the file is invalid), its YAML text
    (``source``), ETag and status, and the definition that runs (``running_spec``: the last valid version, so a
    degraded schedule shows what keeps running)."""

    id: ScheduleId
    file: str = Field(description="file name in schedules.d", examples=["nightly.yaml"])
    etag: str
    spec: Annotated[dict[str, Any] | None, WithJsonSchema({"anyOf": [SCHEDULE_REF, {"type": "null"}]})]
    source: str = Field(description="the file's text")
    status: ScheduleStatus
    running_spec: Annotated[dict[str, Any] | None, WithJsonSchema({"anyOf": [SCHEDULE_REF, {"type": "null"}]}),
                            Field(description="the definition the runner holds: the same document as spec when "
                                              "the file runs as written; while the file is invalid the last valid "
                                              "version, which keeps running, as parsed (durations in seconds), "
                                              "fields not written left out; null when no version was ever "
                                              "valid")] = None
    running_content_hash: str | None = Field(
        default=None, description="SHA-256 hex of the file bytes of running_spec (differs from the file's while "
                                  "degraded); null with running_spec")
    running_since: datetime | None = Field(
        default=None, description="since when the version of running_spec has run without interruption (UTC): a "
                                  "server restart does not interrupt it (a server started with an invalid file runs "
                                  "the last good version it kept in the data dir), a time in which the server ran "
                                  "without it does; null with running_spec")


class ScheduleCreate(BaseModel):
    """POST /schedules body: the new id and the schedule document."""

    model_config = ConfigDict(extra="forbid")
    id: ScheduleId
    spec: SpecDocument


class TriggerRequest(BaseModel):
    """POST /schedules/{id}/runs body (optional): run only these task indexes (0-based, file order)."""

    model_config = ConfigDict(extra="forbid")
    tasks: list[Annotated[int, Field(ge=0)]] | None = Field(default=None, examples=[[0, 2]])


class RunAccepted(_Out):
    """202: the run was started (or queued); follow ``location``."""

    run_id: str
    schedule: str
    location: str = Field(examples=["/api/v1/runs/nightly@manual-20261129T101500Z-ab12"])


class Fire(_Out):
    """One upcoming fire: UTC instant, local wall time with offset, DST/short-month notes."""

    at: datetime
    local: str = Field(examples=["2026-03-29T03:30:00+02:00"])
    notes: list[str] = Field(default_factory=list)


class Preview(_Out):
    schedule: str
    timezone: str
    enabled: bool
    fires: list[Fire]


class TaskInfo(_Out):
    """A task catalog entry."""

    name: str
    zmi_name: str
    description: str
    params: dict[str, Any] = Field(description="JSON Schema of the task's params")
    available: bool
    reason: str | None = Field(default=None, description="why the task is not available")


class Finding(_Out):
    """A validation finding (error or warning) with position and field path."""

    severity: Literal["error", "warning"]
    code: str
    path: str
    line: int
    column: int
    message: str


class ValidationReport(_Out):
    valid: bool
    findings: list[Finding]


class Health(_Out):
    model_config = ConfigDict(defer_build=False)  # built at import, like Readiness: probes answer at once
    status: Literal["ok"]


class Readiness(_Out):
    model_config = ConfigDict(defer_build=False)
    status: Literal["ready", "starting"]
    schedules: int


# --- time and attendance (read-only views of the tna store, plus month closing) -------------------------

PersonnelNumber = Annotated[str, Field(description="personnel number", examples=["1001"])]
YearMonth = Annotated[str, Field(pattern=r"^[0-9]{4}-(0[1-9]|1[0-2])$", examples=["2026-03"],
                                 description="a month as YYYY-MM")]
_MIN = "integer minutes"


class EmployeeInfo(_Out):
    """An employee's master data as the clerk sees it, with the month closing."""

    personnel_number: PersonnelNumber
    name: str = Field(description="first and last name")
    week_plan: str | None = Field(description="week plan code")
    entry_date: _dt.date | None
    exit_date: _dt.date | None
    active: bool = Field(description="employed today (entry_date <= today <= exit_date, local date)")
    closed_through: YearMonth | None = Field(description="last closed month (YYYY-MM); null: none closed")


class EmployeeList(_Out):
    items: list[EmployeeInfo] = Field(description="ordered by personnel number")


class DayBooking(_Out):
    """A booking of the day (not deleted; edited time if edited)."""

    time: str = Field(pattern=r"^[0-2][0-9]:[0-5][0-9]$", examples=["08:00"],
                      description="local wall-clock time HH:MM in the server's zone")
    direction: Literal["come", "go"]
    source: str = Field(description="where it came from: terminal file name, manual, demo, ...")


class DayValue(_Out):
    """One employee's daily value ("Tageswert") of a local date. Durations are integer minutes."""

    personnel_number: PersonnelNumber
    name: str
    date: _dt.date = Field(description="local date")
    gross: int = Field(description=f"{_MIN}: presence plus booked breaks")
    breaks: int = Field(description=f"{_MIN}: booked plus deducted breaks")
    net: int = Field(description=f"{_MIN}: gross - breaks - capped + credited")
    target: int = Field(description=f"{_MIN}: target time of the day plan")
    difference: int = Field(description=f"{_MIN}: net - target")
    overtime: int = Field(ge=0, description=f"{_MIN}: max(difference, 0)")
    undertime: int = Field(ge=0, description=f"{_MIN}: max(-difference, 0)")
    capped: int = Field(ge=0, description=f"{_MIN}: worked time cut by the plan's max net time")
    errors: list[str] = Field(description="MISSING_GO, MISSING_COME, NO_BOOKINGS (only once the day is final)",
                              examples=[["MISSING_GO"]])
    provisional: bool = Field(description="the day is not final yet (today or later): no booking errors yet")
    holiday_category: int | None = Field(description="1 full, 2 half, 3 other holiday; null: no holiday")
    bookings: list[DayBooking] = Field(description="the day's bookings in time order")


class EmployeeDays(_Out):
    """One employee's daily values of a date range (only calculated days are listed)."""

    personnel_number: PersonnelNumber
    from_date: _dt.date = Field(description="first local date of the range (inclusive)")
    to_date: _dt.date = Field(description="last local date of the range (inclusive)")
    items: list[DayValue]


class DayOverview(_Out):
    """All employees' daily values of one local date ("who forgot to book" with ``errors_only``)."""

    date: _dt.date
    errors_only: bool
    items: list[DayValue] = Field(description="ordered by personnel number")


class MonthValue(_Out):
    """An employee's monthly value ("Monatswert"). All values integer minutes (flextime: ZMI Gleitzeit)."""

    year: int
    month: int = Field(ge=1, le=12)
    gross: int = Field(description=f"{_MIN}: sum of the days")
    breaks: int = Field(description=f"{_MIN}: sum of the days")
    net: int = Field(description=f"{_MIN}: sum of the days")
    target: int = Field(description=f"{_MIN}: sum of the days")
    overtime: int = Field(description=f"{_MIN}: sum of the days")
    undertime: int = Field(description=f"{_MIN}: sum of the days")
    difference: int = Field(description=f"{_MIN}: overtime - undertime")
    flextime_start: int = Field(description=f"{_MIN}: the previous month's carry (or the initial balance)")
    flextime_change: int = Field(description=f"{_MIN}: the month's difference")
    flextime_carry: int = Field(description=f"{_MIN}: start + change after the employee's credit rule")
    forfeited: int = Field(description=f"{_MIN}: start + change - carry (what the credit rule took away)")
    error_days: int = Field(ge=0, description="days with at least one error")
    closed: bool = Field(description="the month is closed (never recalculated)")


class EmployeeMonths(_Out):
    """An employee's calculated months of a year (months never calculated are absent)."""

    personnel_number: PersonnelNumber
    year: int
    items: list[MonthValue]


IdentKind = Literal["pin", "personnel_number"]


class UnassignedItem(_Out):
    """A terminal booking whose PIN (ATTLOG) or personnel number (CSV) matches no employee: kept, and
    attached when an employee with that PIN / number is added to the master data."""

    pin: str = Field(description="the PIN (or, for `kind` personnel_number, the personnel number) as booked",
                     examples=["1007"])
    kind: IdentKind = Field(description="pin: from an ATTLOG export; personnel_number: from a CSV export")
    local_time: datetime = Field(description="the booking's local time in the server's zone, with its UTC offset",
                                 examples=["2026-10-09T17:33:57+02:00"])
    date: _dt.date = Field(description="local date")
    direction: Literal["come", "go"] | None = Field(
        description="the file's direction if trusted; null: come/go alternate once attached")
    source: str = Field(description="where it came from: terminal:<file name>", examples=["terminal:attlog.dat"])


class UnassignedPin(_Out):
    """How many unassigned bookings one unknown PIN / personnel number has, and their local time span."""

    pin: str = Field(examples=["1007"])
    kind: IdentKind
    bookings: int = Field(ge=1)
    first: datetime = Field(description="local time of the earliest booking (with UTC offset)")
    last: datetime = Field(description="local time of the latest booking (with UTC offset)")


class UnassignedBookings(_Out):
    """Bookings of unknown PINs / personnel numbers (``GET /unassigned-bookings``)."""

    total: int = Field(ge=0, description="number of bookings listed in `items`")
    summary: list[UnassignedPin] = Field(description="per PIN / personnel number: PINs first, numeric ones by "
                                                     "value (77 before 1007)")
    items: list[UnassignedItem] = Field(description="in the order of `summary`, then by time")


class ClosingRequest(BaseModel):
    """POST /closing body: close every month up to and including ``through``."""

    model_config = ConfigDict(extra="forbid")
    through: YearMonth
    employees: list[PersonnelNumber] | None = Field(default=None, description="personnel numbers; default all")


class ReopenRequest(BaseModel):
    """POST /closing/reopen body: reopen ``from`` and every later month (the closing moves to the month before)."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: YearMonth = Field(alias="from")
    employees: list[PersonnelNumber] | None = Field(default=None, description="personnel numbers; default all")


class EmployeeClosing(_Out):
    personnel_number: PersonnelNumber
    closed_through: YearMonth | None


class ClosingResult(_Out):
    """The closing of every employee the request named (all when it named none)."""

    moved: int = Field(ge=0, description="employees whose closing changed")
    items: list[EmployeeClosing]


def error_from_finding(finding: Any) -> FieldError:
    """A loader finding (``path``, ``line``, ``column``, ``code``, ``message``) as a :class:`FieldError`."""
    return FieldError(path=finding.path or "", line=max(int(finding.line or 0), 0),
                      column=max(int(finding.column or 0), 0), code=finding.code or "E000",
                      message=finding.message)


_SUMMARY_KEYS = ("run_id", "schedule", "trigger", "status", "scheduled_for", "started_at", "finished_at",
                 "duration_ms")
_SUMMARY_KEY_SET = frozenset(_SUMMARY_KEYS)


def run_summary_dict(data: dict[str, Any]) -> dict[str, Any]:
    """Journal run summary dict -> plain data in the shape of :class:`RunSummary` (no validation)."""
    if data.keys() == _SUMMARY_KEY_SET and data["status"]:
        return data  # the journal's summary has exactly this shape
    out = {k: data.get(k) for k in _SUMMARY_KEYS}
    out["status"] = str(out["status"] or "running")
    return out


def run_summary(data: dict[str, Any]) -> RunSummary:
    """Journal run summary dict -> :class:`RunSummary`."""
    return RunSummary(**{k: data.get(k) for k in RunSummary.model_fields if k in data or k == "trigger"}
                      | {"status": str(data.get("status") or "running")})


def run_detail(data: dict[str, Any]) -> RunDetail:
    """Journal ``get_run`` dict -> :class:`RunDetail` (extra task fields dropped, extra log fields kept)."""
    tasks = [TaskRun(**{k: t.get(k) for k in TaskRun.model_fields if k in t}
                     | {"status": str(t.get("status") or "running"),
                        "result": t.get("result") if isinstance(t.get("result"), dict) else None,
                        "error": None if t.get("error") is None else str(t.get("error"))})
             for t in data.get("tasks", [])]
    logs = []
    for entry in data.get("logs", []):
        known = {"ts", "index", "task", "level", "message"}
        logs.append(LogLine(ts=entry.get("ts"), index=entry.get("index"), task=entry.get("task"),
                            level=str(entry.get("level") or "info"), message=str(entry.get("message") or ""),
                            fields={k: v for k, v in entry.items() if k not in known}))
    summary = run_summary(data)
    return RunDetail(**summary.model_dump(), tasks=tasks, logs=logs)
