"""``export_data`` ("Datenexport", payroll): monthly values of a month to CSV or DATEV LODAS ASCII.

Which month: ``month`` (``previous`` by default; ``current`` / ``YYYY-MM``) relative to the run's local date.
The month must be closed (ZMI month closing) for every employee with a monthly value; an open month needs
``allow_open: true``, else the task fails saying so (payroll should not get values that may still change).
Values are the stored monthly values (``calculate_months`` writes them); a month without any fails.

``csv``: one header line and one line per employee (ordered by personnel number), columns as configured
(``personnel_number``, ``name``, ``target``, ``net``, ``overtime``, ``undertime``, ``carry`` (flextime
balance at the month end), ``error_days``), separator ``;``, UTF-8 with BOM (spreadsheet programs in German
locales open it directly). Durations with ``units: hours`` (default) as hours with two decimals and a
decimal comma (``168,50``), with ``units: minutes`` as integer minutes.

``datev_lodas``: the DATEV LODAS ASCII import file (:mod:`zmi_reconciler.datev`): ``consultant_number``
(Beraternummer), ``client_number`` (Mandantennummer) and ``wage_types`` (value -> the client's Lohnart; keys
``target``, ``net``, ``overtime``, ``undertime``, ``carry``) are required. Personnel numbers must be numeric.

The file name comes from ``filename`` with ``{format}``, ``{month}`` (``YYYY-MM``), ``{ext}`` (csv / txt) and
``{timestamp}`` (UTC); it must stay inside the export dir (:func:`~zmi_reconciler.config.confined_path`). The
file is written to a temp file in that dir, fsynced, then renamed over the target (atomic).
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from zmi_reconciler.tasks._common import MonthSelector, resolve_month, utc_stamp
from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec

CsvColumn = Literal["personnel_number", "name", "target", "net", "overtime", "undertime", "carry", "error_days"]
WageValue = Literal["target", "net", "overtime", "undertime", "carry"]
_MINUTE_COLUMNS = {"target": "target", "net": "net", "overtime": "overtime", "undertime": "undertime",
                   "carry": "flextime_carry"}


class Params(TaskParams):
    format: Literal["csv", "datev_lodas"] = "csv"
    month: MonthSelector = "previous"
    columns: list[CsvColumn] = Field(
        default_factory=lambda: ["personnel_number", "name", "target", "net", "overtime", "undertime", "carry",
                                 "error_days"], min_length=1)
    units: Literal["hours", "minutes"] = Field(
        default="hours", description="CSV durations as hours with two decimals and a decimal comma, or minutes")
    filename: str = Field(default="{format}-{month}.{ext}",
                          description="file name pattern in the export dir: {format} {month} {ext} {timestamp}")
    allow_open: bool = Field(default=False, description="allow exporting a month that is not closed")
    consultant_number: int | None = Field(default=None, ge=1000, le=9_999_999, description="DATEV Beraternummer")
    client_number: int | None = Field(default=None, ge=1, le=99999, description="DATEV Mandantennummer")
    wage_types: dict[WageValue, int] = Field(
        default_factory=dict,
        description="DATEV wage type (Lohnart, 1..9999) per value: keys target, net, overtime, undertime, carry")

    @model_validator(mode="after")
    def _datev_needs_numbers(self) -> "Params":
        if self.format == "datev_lodas":
            missing = [n for n in ("consultant_number", "client_number") if getattr(self, n) is None]
            if missing:
                raise ValueError(f"format datev_lodas needs {' and '.join(missing)}")
            if not self.wage_types:
                raise ValueError("format datev_lodas needs wage_types (e.g. {net: 1000, overtime: 1100})")
        for key, wage_type in self.wage_types.items():
            if not 1 <= wage_type <= 9999:
                raise ValueError(f"wage_types.{key}: a DATEV Lohnart is 1..9999, not {wage_type}")
        return self


class Result(TaskResult):
    file: str = ""
    employees: int = 0
    bytes: int = 0


def hours(minutes: int) -> str:
    """Minutes -> hours with two decimals and a decimal comma (the CSV's and LODAS's number format)."""
    from zmi_reconciler.datev import hours_text

    return hours_text(minutes)


def target_path(ctx: TaskContext, params: Params, month_text: str) -> Path:
    """The confined export file path; raises :class:`TaskFailed` for a bad pattern or a path that leaves
    the export dir."""
    from zmi_reconciler.config import PathEscapeError, confined_path

    ext = "csv" if params.format == "csv" else "txt"
    try:
        name = params.filename.format(format=params.format, month=month_text, ext=ext,
                                      timestamp=utc_stamp(ctx.clock()))
    except (KeyError, IndexError, ValueError) as exc:
        raise TaskFailed(f"filename {params.filename!r}: unknown or bad placeholder {exc}; "
                         "use {format} {month} {ext} {timestamp}") from exc
    root = Path(ctx.settings.export_path)
    root.mkdir(parents=True, exist_ok=True)
    try:
        path = confined_path(root, name)
    except PathEscapeError as exc:
        raise TaskFailed(f"filename: {exc}") from exc
    if path == root.resolve() or name.endswith(("/", os.sep)):
        raise TaskFailed(f"filename {params.filename!r} names no file")
    return path


def write_atomically(path: Path, data: bytes) -> None:
    """Write ``data`` to a temp file next to ``path``, fsync, rename over ``path``."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".part")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def csv_bytes(rows: list[tuple], params: Params) -> bytes:
    """rows: ``(employee, monthly value)`` pairs -> the CSV file (see the module doc)."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(params.columns)
    for employee, value in rows:
        line = []
        for column in params.columns:
            if column == "personnel_number":
                line.append(employee.personnel_number)
            elif column == "name":
                line.append(employee.name)
            elif column == "error_days":
                line.append(value.error_days)
            else:
                minutes = getattr(value, _MINUTE_COLUMNS[column])
                line.append(hours(minutes) if params.units == "hours" else minutes)
        writer.writerow(line)
    return out.getvalue().encode("utf-8-sig")


def lodas_bytes(rows: list[tuple], params: Params, year: int, month: int) -> bytes:
    """rows -> the DATEV LODAS file. Raises :class:`TaskFailed` for non-numeric personnel numbers."""
    from zmi_reconciler.datev import ENCODING, Movement, lodas_text

    bad = [e.personnel_number for e, _ in rows if not (e.personnel_number.isdigit() and len(e.personnel_number) <= 7)]
    if bad:
        raise TaskFailed(f"DATEV LODAS needs numeric personnel numbers (1..7 digits); not: {', '.join(bad[:20])}")
    movements = [Movement(e.personnel_number, wage_type, getattr(v, _MINUTE_COLUMNS[key]))
                 for e, v in rows for key, wage_type in params.wage_types.items()]
    assert params.consultant_number is not None and params.client_number is not None
    text = lodas_text(consultant_number=params.consultant_number, client_number=params.client_number,
                      year=year, month=month, movements=movements,
                      comment=f"zmi-reconciler: Monatswerte {month:02d}/{year:04d}")
    return text.encode(ENCODING, errors="replace")


def run(ctx: TaskContext, params: Params) -> Result:
    """Export the month (see the module doc); returns file, employees and bytes. Raises
    :class:`TaskFailed` for an open month without ``allow_open``, a month without values, a bad file name."""
    today = ctx.clock().astimezone(ctx.settings.zone).date()
    year, month = resolve_month(params.month, today)
    month_text = f"{year:04d}-{month:02d}"
    path = target_path(ctx, params, month_text)
    store = ctx.store()
    try:
        values = store.monthly_values(year, month)
        employees = {e.id: e for e in store.employees()}
    finally:
        store.close()
    if not values:
        raise TaskFailed(f"no monthly values for {month_text}; run calculate_months for it first")
    open_ones = [employees[int(v.employee_id)].personnel_number for v in values if not v.closed]
    if open_ones and not params.allow_open:
        raise TaskFailed(f"{month_text} is not closed for {len(open_ones)} employee(s) "
                         f"({', '.join(sorted(open_ones)[:10])}); close the month or set allow_open: true")
    ctx.check_cancelled()
    rows = sorted(((employees[int(v.employee_id)], v) for v in values), key=lambda r: r[0].personnel_number)
    data = csv_bytes(rows, params) if params.format == "csv" else lodas_bytes(rows, params, year, month)
    ctx.check_cancelled()
    write_atomically(path, data)
    if open_ones:
        ctx.log(f"{month_text} exported while open for {len(open_ones)} employee(s) (allow_open)", level="warning")
    ctx.log(f"{params.format} export of {month_text}: {len(rows)} employees, {len(data)} bytes -> {path.name}")
    return Result(file=str(path), employees=len(rows), bytes=len(data))


def lint(params: Params) -> list[str]:
    if params.month == "current":
        return ["exports the current, unfinished month; payroll usually needs `month: previous`"]
    return []


SPEC = TaskSpec(
    name="export_data",
    zmi_name="Datenexport (Lohn)",
    description="Writes the monthly values of a month to a payroll file (CSV or DATEV LODAS ASCII).",
    params_model=Params, result_model=Result, run=run, lint=lint,
)
