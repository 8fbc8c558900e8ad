"""The schedule files as the API sees them: id -> path, bytes -> ETag, one lock per file, If-Match checks.

The API edits spec only (files in ``schedules_dir``); status comes from the runner and the journal. Ids are
checked against ``^[a-z0-9][a-z0-9_-]{0,62}$`` before any path is built, so ``../x`` never reaches the file
system. ETag = the quoted SHA-256 hex digest of the file's bytes (the loader's ``content_hash``), so an
edit from outside (git pull, editor) changes it and the next stale API write fails with 412.
"""

from __future__ import annotations

import hashlib
import os
import stat
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from zmi_reconciler import loader
from zmi_reconciler.api.problems import NotFound, PreconditionFailed, PreconditionRequired
from zmi_reconciler.api.yamlio import atomic_write
from zmi_reconciler.durable import fsync_dir
from zmi_reconciler.schema import is_valid_id


def etag_for(data: bytes) -> str:
    """The ETag of file bytes: quoted SHA-256 hex digest."""
    return f'"{hashlib.sha256(data).hexdigest()}"'


def etag_matches(if_match: str, current: str) -> bool:
    """RFC 9110 If-Match: ``*`` or any listed strong tag equal to ``current`` (``W/`` tags never match)."""
    if if_match.strip() == "*":
        return True
    return any(tag.strip() == current for tag in if_match.split(","))


class ScheduleFiles:
    """Reads and writes ``<schedules_dir>/<id>.yaml`` (``.yml`` files are read and written in place)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._locks: dict[str, threading.Lock] = {}
        self._guard = threading.Lock()

    def path(self, schedule_id: str) -> Path:
        """The file of ``schedule_id`` (existing ``.yml`` wins only when no ``.yaml`` exists). Raises
        :class:`NotFound` for an id that is not legal (nothing is touched)."""
        if not is_valid_id(schedule_id):
            raise NotFound(f"no schedule {schedule_id!r} (ids match ^[a-z0-9][a-z0-9_-]{{0,62}}$)")
        yaml_path = self.directory / f"{schedule_id}.yaml"
        yml_path = self.directory / f"{schedule_id}.yml"
        return yml_path if not yaml_path.exists() and yml_path.exists() else yaml_path

    @contextmanager
    def locked(self, schedule_id: str) -> Iterator[None]:
        """Serialize writes to one file (threads of this process)."""
        with self._guard:
            lock = self._locks.setdefault(schedule_id, threading.Lock())
        with lock:
            yield

    def read(self, schedule_id: str) -> tuple[Path, bytes]:
        """``(path, bytes)``; raises :class:`NotFound` when there is no such file. A file that may not be read
        (see :meth:`read_checked`) reads as empty bytes, so its content never reaches a response."""
        path, data, _ = self.read_checked(schedule_id)
        return path, data

    def read_checked(self, schedule_id: str) -> tuple[Path, bytes, list[loader.Finding]]:
        """``(path, bytes, refusals)``. Reads like the loader does for a schedules folder: a symlink whose
        target lies outside ``directory`` (E004), a FIFO/socket/device (E015, never opened, so the request
        cannot block) and a file larger than ``loader.MAX_FILE_BYTES`` (E002) are refused: bytes are empty and
        ``refusals`` holds the loader's finding. Raises :class:`NotFound` when there is no such file."""
        path = self.path(schedule_id)
        name = str(path)

        def refuse(code: str, message: str) -> tuple[Path, bytes, list[loader.Finding]]:
            return path, b"", [loader.Finding(name, 1, 1, "", code, "error", message)]

        if not path.exists() and not path.is_symlink():
            raise NotFound(f"no schedule {schedule_id!r}")
        if path.is_symlink():
            target = path.resolve()
            if self.directory.resolve() not in target.parents:
                return refuse("E004", "symlink points outside the schedules folder; copy the file instead")
        try:
            mode = os.stat(path).st_mode
            if stat.S_ISDIR(mode):
                raise NotFound(f"no schedule {schedule_id!r}")
            if not stat.S_ISREG(mode):
                return refuse("E015", "not a regular file (a FIFO, socket or device); it is not opened")
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
            with open(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):
                    return refuse("E015", "not a regular file (a FIFO, socket or device)")
                data = handle.read(loader.MAX_FILE_BYTES + 1)
        except FileNotFoundError:
            if path.is_symlink():
                return refuse("E001", "cannot read: dangling symlink")
            raise NotFound(f"no schedule {schedule_id!r}") from None
        except OSError as exc:
            return refuse("E001", f"cannot read: {exc.strerror or exc}")
        if len(data) > loader.MAX_FILE_BYTES:
            return refuse("E002", f"file is larger than {loader.MAX_FILE_BYTES // 1024} KiB")
        return path, data, []

    def exists(self, schedule_id: str) -> bool:
        return self.path(schedule_id).is_file()

    @staticmethod
    def check_if_match(if_match: str | None, data: bytes) -> None:
        """428 without If-Match, 412 when it does not name the current bytes (with a hint when it names them
        unquoted or as a weak ``W/`` tag, which RFC 9110's strong comparison never matches)."""
        if if_match is None or not if_match.strip():
            raise PreconditionRequired("send If-Match with the ETag from GET /api/v1/schedules/{id}")
        current = etag_for(data)
        if not etag_matches(if_match, current):
            if any(tag.strip().removeprefix("W/").strip('"') == current.strip('"') for tag in if_match.split(",")):
                raise PreconditionFailed(f"If-Match names the current file, but not as a strong, quoted ETag "
                                         f"(RFC 9110); send it as the ETag header gave it: If-Match: {current}")
            raise PreconditionFailed(f"the file changed since that ETag was read; current ETag is {current}")

    def write(self, schedule_id: str, data: bytes) -> Path:
        """Atomically write the file of ``schedule_id`` (caller holds :meth:`locked`)."""
        path = self.path(schedule_id)
        self.directory.mkdir(parents=True, exist_ok=True)
        atomic_write(path, data)
        return path

    def delete(self, schedule_id: str) -> None:
        """Remove the file (caller holds :meth:`locked`) and fsync the directory."""
        path = self.path(schedule_id)
        try:
            os.unlink(path)
        except FileNotFoundError:
            raise NotFound(f"no schedule {schedule_id!r}") from None
        fsync_dir(self.directory)
