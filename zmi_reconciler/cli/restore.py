"""``zmi-reconciler restore FILE [--yes]``: restore the tna store from a ``backup_database`` ZIP.

Steps: take the server lock without waiting (refuse, exit 1, while ``serve`` holds the store: see
:mod:`zmi_reconciler.locks`); verify the ZIP (unpack, ``PRAGMA integrity_check``, row counts against its
manifest); ask for confirmation unless ``--yes`` (refuse without a terminal); move the current database
(and its ``-wal``/``-shm`` files) aside as ``<db>.before-restore`` (an earlier one is replaced); move the
unpacked copy into place (``os.replace``); open it once as a store to check its schema version.

``FILE`` is a path; a bare name that does not exist in the working directory is looked up in the backup dir
(``zmi-mon.zip``). Exit codes: 0 restored, 1 refused or the ZIP is unusable, 2 usage / I/O error.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

from zmi_reconciler.config import ConfigError, settings_from_args
from zmi_reconciler.locks import StoreBusyError, acquire_server_lock
from zmi_reconciler.tasks.backup_database import BackupError, extract_database, verify_backup_zip

SIDE_SUFFIXES = ("", "-wal", "-shm")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("file", metavar="FILE", help="backup ZIP (path, or a file name in the backup dir)")
    parser.add_argument("--yes", action="store_true", help="do not ask for confirmation")


def _resolve(file: str, backup_dir: Path) -> Path:
    path = Path(file)
    if not path.exists() and path.name == file and (backup_dir / file).exists():
        return backup_dir / file
    return path


def _confirm(zip_path: Path, db: Path) -> bool:
    if not sys.stdin.isatty():
        print("zmi-reconciler restore: no terminal to confirm on; pass --yes", file=sys.stderr)
        return False
    answer = input(f"Replace {db} with the backup {zip_path}? The current database is kept as "
                   f"{db.name}.before-restore. [y/N] ")
    return answer.strip().lower() in ("y", "yes")


def restore(zip_path: Path, db: Path) -> dict[str, int]:
    """Replace ``db`` by the database in ``zip_path`` (verified first); the current files are moved to
    ``<db>.before-restore`` (+ ``-wal``/``-shm``). Returns the restored row counts per table.

    The caller holds the server lock. Raises :class:`BackupError` (nothing changed) for an unusable ZIP.
    """
    counts = verify_backup_zip(zip_path, work_dir=db.parent)
    db.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=db.parent, prefix=".zmi-restore-") as tmp:
        copy, _ = extract_database(zip_path, Path(tmp))
        before = db.with_name(db.name + ".before-restore")
        for suffix in SIDE_SUFFIXES:
            old = Path(f"{before}{suffix}")
            if old.exists():
                old.unlink()
        for suffix in SIDE_SUFFIXES:
            current = Path(f"{db}{suffix}")
            if current.exists():
                os.replace(current, Path(f"{before}{suffix}"))
        os.replace(copy, db)
    return counts


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"zmi-reconciler restore: {exc}", file=sys.stderr)
        return 2
    zip_path = _resolve(args.file, settings.backup_path)
    if not zip_path.is_file():
        print(f"zmi-reconciler restore: {zip_path}: no such file", file=sys.stderr)
        return 2
    db = settings.database_path
    try:
        lock = acquire_server_lock(settings)
    except StoreBusyError as exc:
        print(f"zmi-reconciler restore: refused: {exc}", file=sys.stderr)
        return 1
    try:
        try:
            verify_backup_zip(zip_path, work_dir=db.parent if db.parent.exists() else None)
        except BackupError as exc:
            print(f"zmi-reconciler restore: refused: {exc}", file=sys.stderr)
            return 1
        if not args.yes and not _confirm(zip_path, db):
            print("zmi-reconciler restore: not restored", file=sys.stderr)
            return 1
        try:
            counts = restore(zip_path, db)
        except BackupError as exc:
            print(f"zmi-reconciler restore: refused: {exc}", file=sys.stderr)
            return 1
        from zmi_reconciler.tna.store import Store

        Store.open(db, zone=settings.zone).close()  # schema check and in-place migration of an older backup
    except OSError as exc:
        print(f"zmi-reconciler restore: {exc}", file=sys.stderr)
        return 2
    finally:
        lock.release()
    print(f"restored {db} from {zip_path}: {sum(counts.values())} rows in {len(counts)} tables; "
          f"previous database kept as {db.name}.before-restore")
    return 0
