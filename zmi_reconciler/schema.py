"""The schedule file model (SPEC section 2): pydantic v2, ``extra="forbid"`` everywhere.

A schedule file ``schedules.d/<id>.yaml`` holds one :class:`Schedule`. ``timing`` is a discriminated union
on ``type``; every task entry is a discriminated union on ``task`` whose ``params`` model comes from the
task catalog (:mod:`zmi_reconciler.tasks.catalog`). Unknown or unavailable tasks are rejected by
:func:`_check_task_name` with an error listing the valid names or saying why the task is unavailable.

Units: ``timeout`` and ``catch_up`` are durations, parsed to integer seconds (``90s``, ``10m``, ``2h``, ``1d``
or a plain integer of seconds). Wall-clock times are strings ``HH:MM`` in the schedule's zone.
"""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import (BaseModel, BeforeValidator, ConfigDict, Field, WithJsonSchema, create_model,
                      field_validator, model_validator)
from pydantic_core import PydanticCustomError

from zmi_reconciler.tasks import catalog

SCHEDULE_ID_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_DURATION_RE = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_duration(value: Any) -> int:
    """Duration -> integer seconds. Accepts an int (seconds) or ``"<n>[s|m|h|d]"``; raises ``ValueError``."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 90s, 10m, 2h, 1d or integer seconds, got a boolean")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("a duration must not be negative")
        return value
    if isinstance(value, str):
        m = _DURATION_RE.match(value)
        if m:
            return int(m.group(1)) * _UNIT_SECONDS[m.group(2)]
    raise ValueError(f"expected a duration such as 90s, 10m, 2h, 1d or integer seconds, got {value!r}")


def format_duration(seconds: int) -> str:
    """Integer seconds -> the shortest exact duration string (``3600`` -> ``1h``)."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


_DURATION_SCHEMA = {
    "anyOf": [
        {"type": "integer", "minimum": 0, "description": "seconds"},
        {"type": "string", "pattern": r"^\s*\d+\s*[smhd]?\s*$", "description": "number with unit s, m, h or d"},
    ],
    "examples": ["30m", "2h", 90],
}

#: Duration in seconds (int), written as ``90s``/``10m``/``2h``/``1d`` or integer seconds.
Duration = Annotated[int, BeforeValidator(parse_duration), WithJsonSchema(_DURATION_SCHEMA)]

HHMM = Annotated[str, Field(pattern=r"^([01]\d|2[0-3]):[0-5]\d$", description="local wall-clock time HH:MM",
                            examples=["05:00"])]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]


class _Strict(BaseModel):
    # strict: a YAML string or boolean is not an integer (`every: "5"`, `every: true`), as the JSON Schema says
    model_config = ConfigDict(extra="forbid", strict=True)


class SecondsTiming(_Strict):
    """Every N real seconds on a grid anchored at the Unix epoch (SPEC 3.1)."""

    type: Literal["seconds"]
    every: int = Field(ge=1, le=86400, description="seconds between fires, 1..86400")


class MinutesTiming(_Strict):
    """Every N real minutes on a grid anchored at the Unix epoch (SPEC 3.1)."""

    type: Literal["minutes"]
    every: int = Field(ge=1, le=1440, description="minutes between fires, 1..1440")


class HoursTiming(_Strict):
    """Wall-clock slots at hours 0, N, 2N, ... (< 24) of each local day at ``minute`` (SPEC 3.1)."""

    type: Literal["hours"]
    every: int = Field(ge=1, le=24, description="hours between slots, 1..24")
    minute: int = Field(default=0, ge=0, le=59, description="minute after the hour, 0..59")


class DailyTiming(_Strict):
    """Every day at one or more local times (SPEC 3.2, RFC 5545 gap/fold rules)."""

    type: Literal["daily"]
    at: Union[HHMM, list[HHMM]] = Field(description="HH:MM or a list of them")

    @field_validator("at")
    @classmethod
    def _non_empty_unique(cls, value: str | list[str]) -> str | list[str]:
        if isinstance(value, list):
            if not value:
                raise ValueError("at least one time is required")
            if len(set(value)) != len(value):
                raise ValueError("times must not repeat")
        return value

    @property
    def times(self) -> list[str]:
        """``at`` as a sorted list."""
        return sorted([self.at] if isinstance(self.at, str) else self.at)


class WeeklyTiming(_Strict):
    """The given weekdays at a local time (SPEC 3.2)."""

    type: Literal["weekly"]
    days: list[Weekday] = Field(min_length=1, description="weekdays mon..sun")
    at: HHMM

    @field_validator("days")
    @classmethod
    def _unique(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise ValueError("weekdays must not repeat")
        return value


class MonthlyTiming(_Strict):
    """Day N (or ``last``) of each month at a local time; ``short_month`` decides months without day N."""

    type: Literal["monthly"]
    day: Union[Annotated[int, Field(ge=1, le=31)], Literal["last"]] = Field(description="1..31 or `last`")
    at: HHMM
    short_month: Literal["last_day", "skip"] = Field(
        default="last_day", description="months without `day`: fire on their last day, or skip them")


class ManualTiming(_Strict):
    """Only when triggered (API or ``zmi-reconciler run``)."""

    type: Literal["manual"]


Timing = Annotated[
    Union[SecondsTiming, MinutesTiming, HoursTiming, DailyTiming, WeeklyTiming, MonthlyTiming, ManualTiming],
    Field(discriminator="type"),
]
CALENDAR_TYPES = frozenset({"daily", "weekly", "monthly"})
#: Every ``timing.type``, in the order the SPEC lists them.
TIMING_TYPES: tuple[str, ...] = ("seconds", "minutes", "hours", "daily", "weekly", "monthly", "manual")


class ExcludeWindow(_Strict):
    """A wall-clock window without fires (ZMI "Ausschlusszeiten"); ``to`` before ``from`` spans midnight.
    The window is half-open: ``from`` <= t < ``to``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)
    from_: HHMM = Field(alias="from")
    to: HHMM

    @model_validator(mode="after")
    def _not_empty(self) -> "ExcludeWindow":
        if self.from_ == self.to:
            raise ValueError(f"'from' and 'to' are both {self.to}: the window would exclude nothing; "
                             "to exclude a whole day pause the schedule (enabled: false) instead")
        return self


def _task_entry_model(spec: catalog.TaskSpec) -> type[BaseModel]:
    """The model of one task entry (``task: <name>`` with that task's params); a module attribute
    ``Task_<name>`` too, so that loaded schedules can be pickled (``serve`` loads them in a second process)."""
    model = create_model(
        f"Task_{spec.name}",
        __module__=__name__,
        __config__=ConfigDict(extra="forbid", strict=True, title=f"task {spec.name}"),
        __doc__=f"{spec.zmi_name}: {spec.description}",
        task=(Literal[spec.name], Field(description=spec.zmi_name)),
        params=(spec.params_model, Field(default_factory=spec.params_model)),
        timeout=(Duration, Field(default=3600, description="stop the task after this long (default 1h)")),
        on_error=(Literal["stop", "continue"], Field(default="stop",
                                                     description="what a failure does to the remaining tasks")),
        enabled=(bool, Field(default=True, description="false switches this one task off")),
    )
    globals()[model.__name__] = model
    return model


_ENTRY_MODELS = {name: _task_entry_model(spec) for name, spec in catalog.REGISTRY.items() if spec.available}


def _check_task_name(value: Any) -> Any:
    """Reject unknown and unavailable task names with a message a user can act on (before the union runs)."""
    if isinstance(value, dict):
        name = value.get("task")
        if name is None:
            raise PydanticCustomError("missing_task", "missing key 'task' (the task's catalog name)")
        if not isinstance(name, str) or name not in catalog.REGISTRY:
            raise PydanticCustomError(
                "unknown_task", "unknown task '{name}'; valid tasks: {valid}",
                {"name": name, "valid": ", ".join(catalog.available_names())})
        spec = catalog.REGISTRY[name]
        if not spec.available:
            raise PydanticCustomError("unavailable_task", "task '{name}' is not available: {reason}",
                                      {"name": name, "reason": spec.unavailable_reason})
    return value


TaskEntry = Annotated[
    Union[tuple(_ENTRY_MODELS.values())],  # type: ignore[misc]
    Field(discriminator="task"),
    BeforeValidator(_check_task_name),
]


class Schedule(_Strict):
    """One schedule file (SPEC section 2). The id is the file stem, not a field."""

    model_config = ConfigDict(extra="forbid", title="zmi-reconciler schedule",
                              json_schema_extra={"$comment": "schedules.d/<id>.yaml, id ^[a-z0-9][a-z0-9_-]{0,62}$"})

    name: str = Field(min_length=1, max_length=200, description="display name")
    description: str | None = Field(default=None, max_length=2000)
    enabled: bool = Field(default=True, description="false = paused; nothing else changes")
    timezone: str | None = Field(default=None, description="IANA zone; default: server setting default_timezone",
                                 examples=["Europe/Berlin"])
    timing: Timing
    catch_up: Duration | None = Field(
        default=None, description="run the latest missed fire once if within this window; "
                                  "default 0 for seconds/minutes/hours, 12h for calendar timings")
    overlap: Literal["skip", "queue"] = Field(default="skip", description="a fire while a run is active")
    exclude: list[ExcludeWindow] = Field(default_factory=list, description="wall-clock windows without fires")
    skip_holidays: bool = Field(default=False, description="no fires on public holidays of the server's region")
    tasks: list[TaskEntry] = Field(min_length=1, description="run top to bottom")  # type: ignore[valid-type]

    @field_validator("name")
    @classmethod
    def _name_not_blank(cls, value: str) -> str:
        """A name of only spaces, tabs or line breaks (``"\\r\\n"``) shows as nothing; kept as written otherwise."""
        if not value.strip():
            raise PydanticCustomError("blank_text", "must contain a non-space character")
        return value

    @field_validator("timezone")
    @classmethod
    def _zone_exists(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"unknown IANA time zone {value!r} (expected a key such as Europe/Berlin)") from None
        return value

    def zone(self, default: str) -> ZoneInfo:
        """The effective zone: ``timezone`` or the server's ``default``."""
        return ZoneInfo(self.timezone or default)

    def catch_up_seconds(self) -> int:
        """Effective catch-up window in seconds (SPEC 3.3 defaults)."""
        if self.catch_up is not None:
            return self.catch_up
        return 12 * 3600 if self.timing.type in CALENDAR_TYPES else 0


def is_valid_id(schedule_id: str) -> bool:
    """True when ``schedule_id`` is a legal schedule id (file stem)."""
    return bool(SCHEDULE_ID_RE.fullmatch(schedule_id))  # fullmatch: "$" would accept a final "\n"
