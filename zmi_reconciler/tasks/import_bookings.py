"""``import_bookings`` ("Buchungsdaten aus Terminal holen", file based): terminal export files from the inbox."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec


class Params(TaskParams):
    """Which inbox files to read. ``subdir`` is relative to the inbox and may not leave it."""

    pattern: str = Field(default="*", description="glob of file names in the inbox", examples=["*.dat"])
    subdir: str | None = Field(default=None, description="folder below the inbox (per terminal)")
    format: Literal["auto", "attlog", "csv"] = Field(default="auto", description="file format; auto by content")
    debounce_seconds: int | None = Field(default=None, ge=0, le=3600,
                                         description="double-tap window; default: server setting (60 s)")
    direction_from_file: bool | None = Field(default=None,
                                             description="trust the file's come/go column; default: server setting")


class Result(TaskResult):
    files: int = 0
    files_failed: int = 0
    lines: int = 0
    bookings_new: int = 0
    bookings_duplicate: int = 0
    bookings_collapsed: int = 0
    bookings_unassigned: int = 0
    lines_rejected: int = 0


def run(ctx: TaskContext, params: Params) -> Result:
    raise TaskFailed("import_bookings is not implemented yet")


SPEC = TaskSpec(
    name="import_bookings",
    zmi_name="Buchungsdaten aus Terminal holen",
    description="Reads terminal export files (ZKTeco ATTLOG, CSV) from the inbox, stores bookings idempotently "
                "and moves each file to processed/ or failed/ with a reason.",
    params_model=Params, result_model=Result, run=run,
)
