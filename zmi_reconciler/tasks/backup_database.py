"""``backup_database`` ("Tabellen sichern"): online backup of the tna store into a verified ZIP.

How a backup is made (never a plain copy of the live file, which may be mid-write and misses the WAL):

1. :meth:`Store.snapshot_to <zmi_reconciler.tna.store.Store.snapshot_to>`: a read transaction on the live
   store pins one snapshot; inside it the rows per table are counted and SQLite's online backup API copies
   that snapshot into a temp database in the backup dir. Writers are not blocked (WAL).
2. The copy is zipped (``tna.sqlite3`` plus ``manifest.json`` with the row counts, schema version and UTC
   time) into a temp file next to the target.
3. Verification (``verify: true``) unpacks the database from the ZIP just written, checks it with
   :func:`~zmi_reconciler.tna.store.check_database_file` (``PRAGMA integrity_check``, rows per table) and
   compares the row count of every table with the live counts of step 1.
4. Only a verified ZIP replaces the target (``os.replace``, atomic on one file system). A failed backup
   leaves the previous file of that name intact and raises :class:`TaskFailed`.

Names: ``naming: weekday`` -> ``zmi-mon.zip`` .. ``zmi-sun.zip`` by the run's local date (server zone), a
7-file rotation as the ZMI Server does; ``naming: timestamp`` -> ``zmi-<schedule>-20261129T040000Z.zip`` (UTC;
a second backup of the schedule within the same second gets ``-2``, ``-3``, ... before ``.zip`` instead of
replacing the first) and only the newest ``keep`` timestamped files *of that schedule* stay: an on-demand
schedule's backups are never rotated away by another schedule's. (Ids are lower case, the stamp's T and Z upper
case: names cannot clash.)
Timestamped files without a schedule (``zmi-<UTC>.zip``, written before 2026-11-30) are never deleted.

:func:`verify_backup_zip` and :func:`extract_database` are shared with ``zmi-reconciler restore``.
"""

from __future__ import annotations

import json
import os
import re
import sqlite3
import tempfile
import time
import zipfile
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from zmi_reconciler.durable import fsync_dir
from zmi_reconciler.tasks._common import utc_stamp
from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec

DB_MEMBER = "tna.sqlite3"
MANIFEST_MEMBER = "manifest.json"
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
_STAMP = r"\d{8}T\d{6}Z"


class Params(TaskParams):
    naming: Literal["weekday", "timestamp"] = Field(
        default="weekday",
        description="`weekday`: 7-file rotation as ZMI does; `timestamp`: keep this schedule's newest `keep`")
    keep: int = Field(default=7, ge=1, le=3650, description="backups kept with `naming: timestamp`")
    verify: bool = Field(default=True, description="unpack, PRAGMA integrity_check and compare row counts")


class Result(TaskResult):
    file: str = ""
    bytes: int = 0
    seconds: float = 0.0
    verified: bool = False
    deleted: int = 0


class BackupError(Exception):
    """A backup ZIP is unusable (missing member, failed integrity check, row counts differ)."""


def extract_database(zip_path: Path, directory: Path) -> tuple[Path, dict[str, Any]]:
    """Unpack the database of a backup ZIP into ``directory``; returns ``(db file, manifest dict)``.

    Raises :class:`BackupError` when the file is not a ZIP or lacks the database.
    """
    try:
        with zipfile.ZipFile(zip_path) as zf:
            names = zf.namelist()
            if DB_MEMBER not in names:
                raise BackupError(f"{zip_path}: no {DB_MEMBER} inside (members: {', '.join(names) or 'none'})")
            manifest = json.loads(zf.read(MANIFEST_MEMBER)) if MANIFEST_MEMBER in names else {}
            target = directory / DB_MEMBER
            with zf.open(DB_MEMBER) as src, open(target, "wb") as dst:
                while chunk := src.read(1 << 20):
                    dst.write(chunk)
    except (zipfile.BadZipFile, zipfile.LargeZipFile, json.JSONDecodeError) as exc:
        raise BackupError(f"{zip_path}: not a readable backup ZIP: {exc}") from exc
    return target, manifest


def verify_backup_zip(zip_path: Path, expected_counts: dict[str, int] | None = None,
                      work_dir: Path | None = None) -> dict[str, int]:
    """Unpack ``zip_path``, run ``PRAGMA integrity_check`` and compare the row counts per table with
    ``expected_counts`` (default: the counts in the ZIP's manifest). Returns the counts of the copy.

    Raises :class:`BackupError` naming the first problem.
    """
    from zmi_reconciler.tna.store import check_database_file  # lazy: `validate` loads the catalog, not the store

    with tempfile.TemporaryDirectory(dir=work_dir, prefix=".zmi-verify-") as tmp:
        db, manifest = extract_database(zip_path, Path(tmp))
        try:
            problems, counts = check_database_file(db)
        except sqlite3.DatabaseError as exc:
            raise BackupError(f"{zip_path}: cannot read the database: {exc}") from exc
        if problems:
            raise BackupError(f"{zip_path}: integrity check failed: {'; '.join(problems[:5])}")
    expected = expected_counts if expected_counts is not None else manifest.get("row_counts")
    if expected is not None and counts != expected:
        diff = {t: (expected.get(t), counts.get(t)) for t in sorted(set(expected) | set(counts))
                if expected.get(t) != counts.get(t)}
        raise BackupError(f"{zip_path}: row counts differ from the live store (table: live, copy): {diff}")
    return counts


# --- the task ------------------------------------------------------------------------------------------

def backup_name(params: Params, ctx: TaskContext) -> str:
    """File name for this run: ``zmi-<mon..sun>.zip`` (local date in the server zone) or
    ``zmi-<schedule id>-<UTC YYYYmmddTHHMMSSZ>.zip``."""
    now = ctx.clock()
    if params.naming == "weekday":
        return f"zmi-{WEEKDAYS[now.astimezone(ctx.settings.zone).weekday()]}.zip"
    return f"zmi-{ctx.schedule_id}-{utc_stamp(now)}.zip"


def _write_zip(db: Path, target: Path, manifest: dict[str, Any]) -> None:
    with zipfile.ZipFile(target, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=6) as zf:
        zf.write(db, DB_MEMBER)
        zf.writestr(MANIFEST_MEMBER, json.dumps(manifest, indent=2, sort_keys=True))
    with open(target, "rb") as fh:
        os.fsync(fh.fileno())


def _free_name(target: Path) -> Path:
    """``target`` (``zmi-<schedule>-<UTC>.zip``), or when a backup of that name exists (a second backup of the
    schedule within one second) the first free ``zmi-<schedule>-<UTC>-<n>.zip``, n = 2, 3, ... Runs of one
    schedule do not overlap (the runner's overlap rule, the journal's cross-process check), so no other writer
    takes the name between this look and the rename."""
    candidate, number = target, 1
    while candidate.exists():
        number += 1
        candidate = target.with_name(f"{target.stem}-{number}{target.suffix}")
    return candidate


def prune(directory: Path, keep: int, schedule_id: str) -> list[Path]:
    """Delete the timestamped backups of ``schedule_id`` (``zmi-<schedule_id>-<UTC>.zip``) beyond its newest
    ``keep``; returns the deleted paths. Other schedules' backups, weekday files and anything else in the
    directory are never touched."""
    own = re.compile(rf"^zmi-{re.escape(schedule_id)}-({_STAMP})(?:-([1-9]\d{{0,5}}))?\.zip$")
    found = [(m, p) for p in directory.iterdir() if p.is_file() and (m := own.match(p.name))]
    # oldest first: by stamp, then by the number of a second backup in the same second (none counts as 1)
    stamped = [p for m, p in sorted(found, key=lambda mp: (mp[0].group(1), int(mp[0].group(2) or 1)))]
    doomed = stamped[:-keep] if keep else stamped
    for path in doomed:
        path.unlink()
    return doomed


def run(ctx: TaskContext, params: Params) -> Result:
    """Back up the tna store (see the module doc). Raises :class:`TaskFailed` when the copy cannot be
    made or verified (the previous file of that name stays)."""
    started = time.monotonic()
    directory = Path(ctx.settings.backup_path)
    directory.mkdir(parents=True, exist_ok=True)
    name = backup_name(params, ctx)
    target = directory / name
    ctx.check_cancelled()
    with tempfile.TemporaryDirectory(dir=directory, prefix=".zmi-backup-") as tmp:
        copy = Path(tmp) / DB_MEMBER
        try:
            store = ctx.store()
        except sqlite3.Error as exc:
            raise TaskFailed(f"cannot open the tna store {ctx.settings.database_path}: {exc}") from exc
        try:
            counts = store.snapshot_to(copy)
            schema_version = store.schema_version
        except sqlite3.Error as exc:
            raise TaskFailed(f"online backup of {ctx.settings.database_path} failed: {exc}") from exc
        finally:
            store.close()
        ctx.log(f"snapshot copied: {sum(counts.values())} rows in {len(counts)} tables")
        ctx.check_cancelled()
        staging = Path(tmp) / (name + ".part")
        manifest = {"created_at": utc_stamp(ctx.clock()), "schema_version": schema_version,
                    "row_counts": counts, "source": str(ctx.settings.database_path)}
        _write_zip(copy, staging, manifest)
        ctx.check_cancelled()
        verified = False
        if params.verify:
            try:
                verify_backup_zip(staging, counts, work_dir=Path(tmp))
            except BackupError as exc:
                raise TaskFailed(f"backup verification failed, {target.name} not replaced: {exc}") from exc
            verified = True
        if params.naming == "timestamp":
            target = _free_name(target)
        os.replace(staging, target)
    fsync_dir(directory)
    deleted = prune(directory, params.keep, ctx.schedule_id) if params.naming == "timestamp" else []
    for path in deleted:
        ctx.log(f"deleted old backup {path.name} (keep {params.keep})")
    size = target.stat().st_size
    seconds = round(time.monotonic() - started, 3)
    ctx.log(f"backup written: {target.name}, {size} bytes, verified={verified}")
    return Result(file=str(target), bytes=size, seconds=seconds, verified=verified, deleted=len(deleted))


SPEC = TaskSpec(
    name="backup_database",
    zmi_name="Tabellen sichern",
    description="Consistent online backup of the tna store into a ZIP in the backup dir, verified.",
    params_model=Params, result_model=Result, run=run,
)
