"""The last good version of each schedule file, kept on disk so that it outlives the process (SPEC 5).

While a schedule file is invalid the reconciler keeps its last valid version running. In memory that lasts only
as long as the process; :class:`LastGoodStore` keeps a copy of that version under ``<data_dir>/last-good/``, so
a server that starts (after a restart or a crash) with a broken file runs the version it ran before instead of
nothing.

Layout: one file per schedule id holding the exact bytes of the version, named
``<id>.<loaded_at>.<sha256>.yaml``: ``loaded_at`` is the UTC instant since which the version runs
(``YYYYMMDDTHHMMSS.ffffffZ``; server restarts do not count as an interruption), ``sha256`` the hex digest of the
bytes (the schedule's content hash). The name says everything the reconciler needs without opening the file, so
the start-up path lists the folder once and reads no copy; :data:`CHECK_DELAY_SECONDS` later a background thread
checks that each copy of a loaded version still holds the bytes its name promises and has a damaged one rewritten
under the same name (:meth:`LastGoodStore.keep`). An operator can copy a copy back into ``schedules.d/<id>.yaml``.

Writes are atomic: a temp file (a dotfile) in the folder, fsync, rename to the copy's name, then the id's older
copy is removed; the folder is fsynced once the queue is drained. A crash leaves the old copy, the new one, or
both (the newer one is used, the older removed with the next change), and at most a temp file (removed when
the folder is next listed); never a partial file under a copy's name. The bytes are checked against the hash
in the name before use (a damaged copy is not used; the reconciler then removes it, see
:mod:`zmi_reconciler.reconcile`).

Writes and removals are queued and done by a writer thread, so that a start that writes many copies (the first
start after an upgrade: 1,000 files at 1-2 ms per fsync) does not delay serving. Queued changes are visible to
:meth:`LastGoodStore.get`, :meth:`LastGoodStore.read` and :meth:`LastGoodStore.ids` at once;
:meth:`LastGoodStore.flush` waits until they are on disk. The writer thread is not a daemon, so a clean exit
waits for queued copies; a crash within moments of a load can lose that newest copy, and a restart with a broken
file then runs the copy before it (an older good version), never a partial one.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from hashlib import sha256
from pathlib import Path

from zmi_reconciler.durable import fsync_dir
from zmi_reconciler.schema import is_valid_id

log = logging.getLogger(__name__)

#: Seconds after :meth:`LastGoodStore.keep` found a copy already named for a version's bytes until a background
#: thread reads it to check them: after the start-up burst (reading 1,000 copies while the server starts would cost
#: its reconcile pass ~0.1 s in GIL contention). A process that ends earlier leaves the check to the next start.
CHECK_DELAY_SECONDS = 30.0

_STAMP_FORMAT = "%Y%m%dT%H%M%S.%fZ"
_SUFFIX = ".yaml"
_TEMP_SUFFIX = ".tmp"
#: ``<id>.<YYYYMMDD>T<HHMMSS>.<ffffff>Z.<sha256>.yaml``: one match per name, no strptime (1,000 names at start).
_NAME_RE = re.compile(r"([a-z0-9][a-z0-9_-]{0,62})\.(\d{4})(\d\d)(\d\d)T(\d\d)(\d\d)(\d\d)\.(\d{6})Z\."
                      r"([0-9a-f]{64})\.yaml")


@dataclass(frozen=True)
class LastGood:
    """One persisted last good version: its id, the SHA-256 hex digest of its bytes, the aware UTC instant it was
    first loaded, and where the copy is (or will be once the queue is written): ``directory`` / ``name``."""

    schedule_id: str
    content_hash: str
    loaded_at: datetime
    directory: Path
    name: str

    @property
    def path(self) -> Path:
        """The copy's file."""
        return self.directory / self.name


class LastGoodStore:
    """The copies under ``directory`` (created on the first write). Thread-safe.

    Never raises for I/O trouble while queueing or writing: a folder that cannot be listed counts as empty and a
    copy that cannot be written is logged as a warning (the schedule keeps running; only a restart with a broken
    file would miss that version). :meth:`read` raises, since its caller decides what to do without a copy.
    """

    def __init__(self, directory: Path, check_delay: float = CHECK_DELAY_SECONDS) -> None:
        self.directory = Path(directory)
        self.check_delay = check_delay
        self._lock = threading.Condition()
        self._index: dict[str, LastGood] | None = None  # what is on disk: id -> newest copy (listed lazily)
        self._stale: dict[str, list[Path]] = {}  # id -> older copies on disk (left by a crash), removed next write
        self._pending: dict[str, tuple[LastGood, bytes] | None] = {}  # id -> copy to write, or None: remove
        self._writer: threading.Thread | None = None
        self._held = False  # hold(): changes are queued, not written
        self._checks: dict[str, tuple[LastGood, bytes]] = {}  # id -> copy whose bytes are to be checked, and them
        self._checker: threading.Timer | None = None

    # ------------------------------------------------------------------ reading
    def get(self, schedule_id: str) -> LastGood | None:
        """The newest copy of ``schedule_id`` (a queued one included), or None."""
        with self._lock:
            if schedule_id in self._pending:
                queued = self._pending[schedule_id]
                return queued[0] if queued is not None else None
            return self._listed().get(schedule_id)

    def ids(self) -> set[str]:
        """Ids that have a copy (queued changes included). The first call lists the folder; later calls do not
        touch the disk."""
        with self._lock:
            ids = set(self._listed())
            for schedule_id, queued in self._pending.items():
                if queued is None:
                    ids.discard(schedule_id)
                else:
                    ids.add(schedule_id)
            return ids

    def read(self, copy: LastGood) -> bytes:
        """The bytes of ``copy`` (from memory while its write is queued). Raises ``OSError`` when the file cannot
        be read and ``ValueError`` when its bytes do not match the hash in its name (a damaged copy)."""
        with self._lock:
            queued = self._pending.get(copy.schedule_id)
            if queued is not None and queued[0] == copy:
                return queued[1]
        data = copy.path.read_bytes()
        if sha256(data).hexdigest() != copy.content_hash:
            raise ValueError(f"{copy.path}: the bytes do not match the SHA-256 in the file name (damaged copy)")
        return data

    # ------------------------------------------------------------------ writing
    def keep(self, schedule_id: str, data: bytes, content_hash: str, loaded_at: datetime,
             fresh: bool = False) -> LastGood:
        """Make ``data`` (whose SHA-256 hex is ``content_hash``) the last good version of ``schedule_id``, running
        since ``loaded_at`` (aware), and return its copy.

        When the newest copy is named for these bytes and not ``fresh``, that copy (with its earlier
        ``loaded_at``) is returned and nothing is read now: :attr:`check_delay` seconds later a background thread
        checks its bytes, and a copy whose bytes differ (a disk fault, an edit by hand) is rewritten under the same
        name by the writer, with a warning; one that holds them is not touched. ``fresh``: the version starts
        running anew now (it did not run before, say while its file was invalid), so a new copy stamped
        ``loaded_at`` replaces even a copy of the same bytes. Otherwise the write is queued and the new copy
        returned. Raises ``ValueError`` for an id that is not a legal schedule id (its name could not be parsed
        back)."""
        with self._lock:
            current = self.get(schedule_id)
            if current is not None and current.content_hash == content_hash and not fresh:
                queued = self._pending.get(schedule_id)
                if queued is None or queued[0] != current:  # (a queued write of it compares the bytes anyway)
                    self._check_later(schedule_id, current, data)
                return current
            if not is_valid_id(schedule_id):
                raise ValueError(f"not a schedule id: {schedule_id!r}")
            instant = loaded_at.astimezone(timezone.utc)
            name = f"{schedule_id}.{instant.strftime(_STAMP_FORMAT)}.{content_hash}{_SUFFIX}"
            copy = LastGood(schedule_id, content_hash, instant, self.directory, name)
            self._queue(schedule_id, (copy, bytes(data)))
            return copy

    def discard(self, schedule_id: str) -> None:
        """Remove every copy of ``schedule_id`` (queued); nothing happens when it has none."""
        with self._lock:
            if self.get(schedule_id) is None and schedule_id not in self._stale:
                return  # no copy, or its removal is queued already
            self._queue(schedule_id, None)

    def hold(self) -> None:
        """Queue the coming changes without writing them until :meth:`release` (reads see them all the same);
        a process that ends before that writes none of them (``serve`` stopped during start-up)."""
        with self._lock:
            self._held = True

    def release(self) -> None:
        """Write what :meth:`hold` kept back, and the next changes at once again. Idempotent."""
        with self._lock:
            self._held = False
            if self._pending and self._writer is None:
                self._start_writer()

    def flush(self, timeout: float | None = None) -> bool:
        """Check the copies whose check is still waiting (see :meth:`keep`) now, then wait until every queued
        change is on disk (or ``timeout`` seconds passed); True when done. Changes held back (:meth:`hold`) are
        not waited for."""
        with self._lock:
            if self._checker is not None:
                self._checker.cancel()
                self._checker = None
        self._check()
        with self._lock:
            return self._lock.wait_for(lambda: self._writer is None, timeout)

    def _check_later(self, schedule_id: str, copy: LastGood, data: bytes) -> None:
        """Have ``copy``'s bytes compared with ``data`` :attr:`check_delay` seconds from now (caller holds the
        lock). A daemon timer: a process that ends first just leaves the check to its next start."""
        self._checks[schedule_id] = (copy, bytes(data))
        if self._checker is None:
            self._checker = threading.Timer(self.check_delay, self._check)
            self._checker.name = "zmi-last-good-check"
            self._checker.daemon = True
            self._checker.start()

    def _check(self) -> None:
        """Compare each copy waiting for its check with the bytes it should hold; queue a rewrite (same name) for
        one that differs and is still the id's copy."""
        with self._lock:
            checks, self._checks = self._checks, {}
            if self._checker is not None and self._checker is threading.current_thread():
                self._checker = None
        for schedule_id, (copy, data) in checks.items():
            if _bytes_of(copy.path) == data:
                continue
            with self._lock:
                if schedule_id not in self._pending and self.get(schedule_id) == copy:
                    self._queue(schedule_id, (copy, data))

    def _queue(self, schedule_id: str, change: tuple[LastGood, bytes] | None) -> None:
        self._pending.pop(schedule_id, None)  # to the end: changes are written in the order they were made
        self._pending[schedule_id] = change
        if self._writer is None and not self._held:
            self._start_writer()

    def _start_writer(self) -> None:
        self._writer = threading.Thread(target=self._drain, name="zmi-last-good-writer", daemon=False)
        self._writer.start()

    def _drain(self) -> None:
        """The writer thread: applies queued changes oldest first, fsyncs the folder, exits when idle."""
        written = False
        while True:
            with self._lock:
                if not self._pending:
                    if not written:
                        self._writer = None
                        self._lock.notify_all()
                        return
                    item = None
                else:
                    item = next(iter(self._pending.items()))
            if item is None:
                fsync_dir(self.directory)
                written = False
                continue
            schedule_id, change = item
            try:
                written = self._apply(schedule_id, change) or written
            except Exception as exc:  # the schedule keeps running; only a restart with a broken file would miss it
                log.warning("last good version of %s not %s in %s: %s", schedule_id,
                            "kept" if change is not None else "removed", self.directory, exc)
                written = True
            with self._lock:
                if schedule_id in self._pending and self._pending[schedule_id] is change:
                    del self._pending[schedule_id]  # (a newer change of the id stays queued)

    def _apply(self, schedule_id: str, change: tuple[LastGood, bytes] | None) -> bool:
        """Write (or remove) one id's copy; True when the folder changed (it needs an fsync). A copy whose file
        already holds exactly the bytes is left alone."""
        with self._lock:
            listed = self._listed()
            old = [c.path for c in [listed.get(schedule_id)] if c is not None] + self._stale.get(schedule_id, [])
        changed = False
        if change is not None:
            copy, data = change
            old = [p for p in old if p != copy.path]
            held = _bytes_of(copy.path)
            if held != data:
                if held is not None:
                    log.warning("the last good version %s did not hold the bytes its name promises (damaged copy); "
                                "rewritten", copy.path)
                if not self.directory.is_dir():
                    self.directory.mkdir(parents=True, exist_ok=True)
                    fsync_dir(self.directory.parent)
                _atomic_write(copy.path, data)
                changed = True
        left = []
        for path in old:
            try:
                path.unlink()
                changed = True
            except FileNotFoundError:
                pass
            except OSError as exc:  # tried again with the id's next change
                log.warning("cannot remove the old last good version %s: %s", path, exc)
                left.append(path)
        with self._lock:
            if left:
                self._stale[schedule_id] = left
            else:
                self._stale.pop(schedule_id, None)
            if change is not None:
                listed[schedule_id] = change[0]
            else:
                listed.pop(schedule_id, None)
        return changed

    def _listed(self) -> dict[str, LastGood]:
        """The copies on disk by id, from one listing of the folder the first time (caller holds the lock). Stale
        temp files of an interrupted write are removed; names that are no copy's are left alone."""
        if self._index is not None:
            return self._index
        index: dict[str, LastGood] = {}
        try:
            with os.scandir(self.directory) as entries:
                names = [entry.name for entry in entries]
        except FileNotFoundError:
            names = []
        except OSError as exc:
            log.warning("cannot list the last good versions in %s: %s; a schedule whose file is broken at this "
                        "start is not run", self.directory, exc)
            names = []
        for name in names:
            if name.startswith(".") and name.endswith(_TEMP_SUFFIX):
                try:
                    os.unlink(self.directory / name)
                except OSError:
                    pass
                continue
            copy = _parse_name(self.directory, name)
            if copy is None:
                continue
            newest = index.get(copy.schedule_id)
            if newest is not None:  # two copies of one id: a crash between a write and the removal
                older, copy = (newest, copy) if copy.loaded_at > newest.loaded_at else (copy, newest)
                self._stale.setdefault(copy.schedule_id, []).append(older.path)
            index[copy.schedule_id] = copy
        self._index = index
        return index


def _bytes_of(path: Path) -> bytes | None:
    """The bytes of ``path``; None when there is no such file or it cannot be read (it is then written anew)."""
    try:
        return path.read_bytes()
    except OSError:
        return None


def _parse_name(directory: Path, name: str) -> LastGood | None:
    """``<id>.<YYYYMMDDTHHMMSS.ffffffZ>.<sha256>.yaml`` -> :class:`LastGood`; None for any other name."""
    match = _NAME_RE.fullmatch(name)
    if match is None:
        return None
    schedule_id, *stamp, digest = match.groups()
    try:
        instant = datetime(*map(int, stamp), tzinfo=timezone.utc)  # type: ignore[misc]
    except ValueError:  # no such day or time
        return None
    return LastGood(schedule_id, digest, instant, directory, name)


def _atomic_write(path: Path, data: bytes) -> None:
    """Temp file next to ``path`` (``.<name>.tmp``), fsync, rename over ``path``. Raises ``OSError``; on failure
    nothing exists under ``path`` that was not there before, and the temp file is removed. One writer per folder
    (the writer thread of the one server of a data dir), so the temp name needs no randomness."""
    tmp = path.with_name(f".{path.name}{_TEMP_SUFFIX}")
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_BINARY", 0), 0o600)
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise
