"""``import_bookings`` ("Buchungsdaten aus Terminal holen", file based): terminal export files from the inbox.

The folder read is ``settings.inbox_path`` (``<data_dir>/inbox`` by default) or ``subdir`` below it (one
folder per terminal; it may not leave the inbox: :func:`~zmi_reconciler.config.confined_path`). Every regular
file in that folder whose name matches ``pattern`` (dotfiles and ``*.error.txt`` excluded) is imported with
:mod:`zmi_reconciler.tna.importer` (ZKTeco ATTLOG or CSV, idempotent, double taps collapsed, unknown PINs kept
unassigned), oldest modification first, then moved:

- to ``processed/`` (below the folder read) when it was imported; if some lines were rejected, their line
  numbers and reasons are written next to it as ``<name>.error.txt``;
- to ``failed/`` with ``<name>.error.txt`` (the reason) when it cannot be read (binary, undecodable, I/O) or
  every data line of it was rejected. Then the task fails at the end (after the other files were imported)
  unless ``fail_on_bad_file: false``.

A name that exists already in ``processed/`` / ``failed/`` gets the run's UTC time added (``a.dat`` ->
``a.20261129T040000Z.dat``), so nothing is overwritten.

Files still being written are left for the next run: modified less than ``settle_seconds`` (default 2) ago
by the file system's clock, or changed in size / modification time while they were read. A store error
(``sqlite3.Error`` / ``StoreError``: database locked, disk full) leaves the file in the inbox and fails the task:
the file is retried next time. Any other exception while importing a file (an importer bug) moves it to
``failed/`` with the exception in ``<name>.error.txt``, so one such file cannot block the inbox.
"""

from __future__ import annotations

import fnmatch
import os
import sqlite3
import time
from pathlib import Path
from typing import Literal

from pydantic import Field

from zmi_reconciler.tasks._common import utc_stamp
from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec

PROCESSED = "processed"
FAILED = "failed"
ERROR_SUFFIX = ".error.txt"


class Params(TaskParams):
    """Which inbox files to read. ``subdir`` is relative to the inbox and may not leave it."""

    pattern: str = Field(default="*", description="glob of file names in the inbox", examples=["*.dat"],
                         pattern=r"^[^/\\]+$")
    subdir: str | None = Field(default=None, description="folder below the inbox (per terminal)")
    format: Literal["auto", "attlog", "csv"] = Field(default="auto", description="file format; auto by content")
    debounce_seconds: int | None = Field(default=None, ge=0, le=3600,
                                         description="double-tap window; default: server setting (60 s)")
    direction_from_file: bool | None = Field(default=None,
                                             description="trust the file's come/go column; default: server setting")
    settle_seconds: float = Field(default=2.0, ge=0, le=3600,
                                  description="files modified less than this many seconds ago are left for "
                                              "the next run (still being written)")
    fail_on_bad_file: bool = Field(default=True,
                                   description="fail the task (after importing the other files) when a file "
                                               "went to failed/")


class Result(TaskResult):
    files: int = 0
    files_failed: int = 0
    files_deferred: int = 0
    lines: int = 0
    bookings_new: int = 0
    bookings_duplicate: int = 0
    bookings_collapsed: int = 0
    bookings_unassigned: int = 0
    lines_rejected: int = 0
    #: bookings of unknown PINs in the imported files that are unassigned now, stored by this run or earlier
    bookings_still_unassigned: int = 0


class _Deferred(Exception):
    """The file changed while it was read; try again next run."""


def inbox_folder(ctx: TaskContext, params: Params) -> Path:
    """The folder this run reads (created if missing). Raises :class:`TaskFailed` for a ``subdir`` that
    leaves the inbox."""
    from zmi_reconciler.config import PathEscapeError, confined_path

    inbox = Path(ctx.settings.inbox_path)
    inbox.mkdir(parents=True, exist_ok=True)
    if params.subdir is None:
        return inbox.resolve()
    try:
        folder = confined_path(inbox, params.subdir)
    except PathEscapeError as exc:
        raise TaskFailed(f"subdir: {exc}") from exc
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def candidates(folder: Path, pattern: str) -> list[Path]:
    """Regular files directly in ``folder`` matching ``pattern``, oldest modification first (then by name);
    dotfiles and ``*.error.txt`` are never candidates."""
    found = []
    for entry in os.scandir(folder):
        name = entry.name
        if name.startswith(".") or name.endswith(ERROR_SUFFIX) or not fnmatch.fnmatchcase(name, pattern):
            continue
        if entry.is_file(follow_symlinks=False) or entry.is_symlink():
            found.append(Path(entry.path))
    return sorted(found, key=lambda p: (p.lstat().st_mtime_ns, p.name))


def read_settled(path: Path, settle_seconds: float, now: float) -> bytes | None:
    """The file's bytes, or None when it is still being written (modified less than ``settle_seconds``
    before ``now`` (epoch seconds, file system clock) or changed while it was read)."""
    before = path.stat()
    if now - before.st_mtime < settle_seconds:
        return None
    data = path.read_bytes()
    after = path.stat()
    if (after.st_size, after.st_mtime_ns) != (before.st_size, before.st_mtime_ns) or len(data) != after.st_size:
        return None
    return data


def decode(data: bytes, name: str) -> str:
    """Bytes of a terminal export -> text, by the importer's rule (UTF-8 with optional BOM, else Latin-1).
    Raises :class:`~zmi_reconciler.tna.importer.UnreadableFileError` for binary data."""
    from zmi_reconciler.tna.importer import UnreadableFileError

    if b"\x00" in data[:4096]:
        raise UnreadableFileError(f"{name}: binary file, not a terminal export")
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def move_to(path: Path, folder: Path, stamp: str, error_text: str | None = None) -> Path:
    """Move ``path`` into ``folder`` (created), never overwriting; write ``<name>.error.txt`` beside it when
    ``error_text`` is given. Returns the new path."""
    folder.mkdir(exist_ok=True)
    target = folder / path.name
    if target.exists() or target.is_symlink():
        target = folder / f"{path.stem}.{stamp}{path.suffix}"
        n = 1
        while target.exists():
            target = folder / f"{path.stem}.{stamp}-{n}{path.suffix}"
            n += 1
    os.replace(path, target)
    if error_text is not None:
        (folder / (target.name + ERROR_SUFFIX)).write_text(error_text, encoding="utf-8")
    return target


def run(ctx: TaskContext, params: Params) -> Result:
    """Import every settled inbox file (see the module doc); returns the counts. Raises
    :class:`TaskFailed` for a bad ``subdir``, a store error, or (with ``fail_on_bad_file``) when a file went
    to ``failed/``; the result reached so far rides on the exception."""
    from zmi_reconciler.config import PathEscapeError, confined_path
    from zmi_reconciler.tna.importer import UnreadableFileError, import_text
    from zmi_reconciler.tna.store import StoreError

    settings = ctx.settings
    folder = inbox_folder(ctx, params)
    debounce = settings.debounce_seconds if params.debounce_seconds is None else params.debounce_seconds
    trust = settings.direction_from_file if params.direction_from_file is None else params.direction_from_file
    stamp = utc_stamp(ctx.clock())
    result = Result()
    failed_names: list[str] = []
    files = candidates(folder, params.pattern)
    if not files:
        ctx.log(f"inbox {folder}: no files matching {params.pattern!r}")
        return result
    store = ctx.store()
    try:
        for path in files:
            ctx.check_cancelled()
            try:
                confined_path(folder, path.name)
            except PathEscapeError:
                move_to(path, folder / FAILED, stamp, f"{path.name}: symbolic link leaving the inbox; not read\n")
                result.files_failed += 1
                failed_names.append(path.name)
                ctx.log(f"{path.name}: symbolic link leaving the inbox, moved to {FAILED}/", level="warning")
                continue
            try:
                data = read_settled(path, params.settle_seconds, time.time())
            except OSError as exc:
                ctx.log(f"{path.name}: cannot read now ({exc.strerror or exc}); left for the next run",
                        level="warning")
                result.files_deferred += 1
                continue
            if data is None:
                ctx.log(f"{path.name}: still being written; left for the next run")
                result.files_deferred += 1
                continue
            try:
                text = decode(data, path.name)
            except UnreadableFileError as exc:
                move_to(path, folder / FAILED, stamp, f"{exc}\n")
                result.files_failed += 1
                failed_names.append(path.name)
                ctx.log(f"{path.name}: {exc}; moved to {FAILED}/", level="warning")
                continue
            try:
                report = import_text(store, text, path.name, file_format=params.format, debounce_seconds=debounce,
                                     direction_from_file=trust)
            except (sqlite3.Error, StoreError) as exc:  # store failure: the file stays for the next run
                raise TaskFailed(f"{path.name}: import failed, file left in the inbox: "
                                 f"{type(exc).__name__}: {exc}", result) from exc
            except Exception as exc:  # noqa: BLE001 - a file that breaks the importer must not block the inbox
                reason = f"{path.name}: import failed: {type(exc).__name__}: {exc}"
                move_to(path, folder / FAILED, stamp, reason + "\n")
                result.files_failed += 1
                failed_names.append(path.name)
                ctx.log(f"{reason}; moved to {FAILED}/", level="error")
                continue
            result.lines += report.lines
            result.lines_rejected += len(report.rejected)
            if report.lines and len(report.rejected) == report.lines:
                move_to(path, folder / FAILED, stamp, f"{path.name}: every line was rejected\n" + _rejected(report))
                result.files_failed += 1
                failed_names.append(path.name)
                ctx.log(f"{path.name}: all {report.lines} lines rejected; moved to {FAILED}/", level="warning")
                continue
            result.files += 1
            result.bookings_new += report.new
            result.bookings_duplicate += report.duplicates
            result.bookings_collapsed += report.collapsed
            result.bookings_unassigned += report.unassigned
            move_to(path, folder / PROCESSED, stamp, _rejected(report) if report.rejected else None)
            ctx.log(f"{path.name} ({report.format}): {report.lines} lines, {report.new} new, "
                    f"{report.duplicates} duplicate, {report.collapsed} collapsed, {report.unassigned} unassigned, "
                    f"{len(report.rejected)} rejected", file=path.name, days=report.days)
            result.bookings_still_unassigned += report.still_unassigned
            if report.unknown_pins:  # also on a re-import: those bookings are still unassigned
                ctx.log(f"{path.name}: unknown PINs / personnel numbers kept unassigned: "
                        + ", ".join(f"{k} ({n})" for k, n in report.unknown_pins.items())
                        + f". {report.unassigned_hint()}", level="warning")
    finally:
        store.close()
    if failed_names and params.fail_on_bad_file:
        raise TaskFailed(f"{len(failed_names)} file(s) moved to {FAILED}/: {', '.join(failed_names)}", result)
    return result


def _rejected(report: object) -> str:
    lines = [f"line {r.line}: {r.reason}" + (f"  [{r.text}]" if r.text else "")
             for r in getattr(report, "rejected")]
    return "\n".join(lines) + "\n"


SPEC = TaskSpec(
    name="import_bookings",
    zmi_name="Buchungsdaten aus Terminal holen",
    description="Reads terminal export files (ZKTeco ATTLOG, CSV) from the inbox, stores bookings idempotently "
                "and moves each file to processed/ or failed/ with a reason.",
    params_model=Params, result_model=Result, run=run,
)
