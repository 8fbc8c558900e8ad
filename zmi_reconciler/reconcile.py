"""The reconciler: keeps the runner in line with the files in ``schedules.d/`` (SPEC section 5).

Level-triggered, like a Kubernetes controller: :meth:`Reconciler.reconcile_all` compares the whole folder
(desired state) with what the runner was given (observed state) and is idempotent; file-system events only say
*when* to look, so a missed or coalesced event never leaves a difference behind. Each file is ``stat``-ed; only
files whose stat changed are read and hashed (SHA-256 of the bytes), and only files whose hash changed are
parsed. The difference, by content hash:

* new valid file -> ``runner.apply`` + ``schedule_loaded``;
* changed valid file -> ``runner.apply`` + ``schedule_updated`` (``schedule_paused`` / ``schedule_resumed``
  when ``enabled`` flipped; both when more than ``enabled`` changed). A run in progress finishes with the old
  definition (the runner's business);
* deleted file -> ``runner.remove`` + ``schedule_removed``; also, once, for a file deleted while no server ran
  when its last good copy says the schedule ran (``deleted_while_stopped``, ``file`` null);
* unchanged file -> nothing; ``runner.apply`` is not called, so its next fire does not move;
* invalid file -> the last good version keeps running, the schedule is ``degraded`` with the findings and
  ``schedule_invalid`` is journaled (once per distinct file content). A file that was never valid is not run.
  Fixing the file clears ``degraded`` (``schedule_updated``, or ``schedule_loaded`` if it never ran). A file
  whose ``run_command`` names a command outside this server's allowlist (E031, :func:`lint.command_errors`) is
  invalid like any other: such a version could never run, so it is not loaded.

The last good version outlives the process: every version that loads is copied to ``<data_dir>/last-good/``
(:mod:`zmi_reconciler.lastgood`; a copy already named for those bytes is only checked, in the background, and
rewritten when damaged), and the copy goes when the file goes. When this process first sees a schedule (the
first pass after a start) and its file is invalid, the copy is loaded as if it had been running all along:
``runner.apply`` + ``schedule_loaded`` (with ``restored_from`` and the copy's ``loaded_at``), then
``schedule_invalid`` as above, so the schedule runs, degraded, with the file's errors. A copy that cannot be used
(damaged or unreadable, no longer valid -- say the schema changed with an upgrade -- or naming a command outside
the allowlist, E031) is not run and is removed, with a warning: the schedule is then not run, as without a copy,
and the copy's errors join the status (``ScheduleState.refused``, ``last_good_errors`` of ``schedule_invalid``).

``loaded_at`` (the API's ``running_since``) is since when the running version has run without interruption as
far as the data dir tells: a server restart is no interruption (the copy keeps the instant), but a time in which
this server ran without the version is one. That is why an unusable copy is removed rather than kept: a later
start whose file holds those bytes again must not claim they ran all along, and a version that loads while its
schedule was not running (in this process) gets a fresh copy stamped now, whatever copy exists.

Files that are not ``*.yaml``/``*.yml``, dotfiles and subfolders are ignored, which covers editor swap and
backup files (``.x.yaml.swp``, ``x.yaml~``, ``.#x.yaml``, vim's ``4913`` probe). A half-written file is
invalid, so at worst it shows as degraded until the write completes; the watcher's debounce usually hides it.
Two files with one id (``x.yaml`` and ``x.yml``) make that schedule invalid (E030) until one goes.

A missing folder is taken as "no information", not as "delete everything": schedules keep running, a warning
is logged, and :meth:`Reconciler.watch` polls until the folder exists again, then reconciles it as a whole.
The API's own writes go through the same path (:meth:`Reconciler.reconcile_now`).
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import stat
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import watchfiles

from zmi_reconciler import forked
from zmi_reconciler.lastgood import LastGoodStore
from zmi_reconciler.lint import command_errors
from zmi_reconciler.loader import Finding, LoadResult, is_schedule_file_name, load_schedule_file, load_schedule_text
from zmi_reconciler.runs import iso_utc
from zmi_reconciler.tasks.base import utc_now

if TYPE_CHECKING:  # pragma: no cover
    from zmi_reconciler.config import Settings
    from zmi_reconciler.schema import Schedule

log = logging.getLogger(__name__)

#: Files whose mtime is this close to the scan are hashed even when their stat looks unchanged: a second write
#: within the file system's timestamp granularity can keep size and mtime (git's "racy clean" problem).
RACY_SECONDS = 2.0
#: Watcher: group changes for at most this long (ms) and yield once no change came for ``WATCH_STEP_MS``.
WATCH_DEBOUNCE_MS = 100
WATCH_STEP_MS = 50
#: Watcher: wake up this often (ms) without events to check that the folder is still the one watched ...
WATCH_TICK_MS = 250
#: ... and reconcile anyway this often (ms), a safety net for lost events (cheap: one stat per file).
WATCH_SAFETY_MS = 5000
#: How often (seconds) a missing folder is looked for.
MISSING_FOLDER_POLL_SECONDS = 0.5

_UNREADABLE = "unreadable"
_SchedulesDirStat = tuple[int, int]  # (st_dev, st_ino)
_FileStat = tuple[int, int, int, int]  # (st_ino, st_size, st_mtime_ns, st_ctime_ns)


def preload(directory: Path) -> dict[str, LoadResult]:
    """Load and validate every schedule file of ``directory`` (path -> :class:`LoadResult`), before a runner
    exists: ``serve`` does it while a forked process builds the journal index. Pass the result to
    :class:`Reconciler` as ``preloaded``: its first pass takes a result whose content hash still matches the file
    and loads the file again otherwise. The same files as a pass looks at; {} when the folder is missing."""
    directory = Path(directory)
    try:
        paths = sorted(entry.path for entry in _schedule_entries(directory))
    except OSError:
        return {}
    return {path: load_schedule_file(Path(path), root=directory) for path in paths}


class Preloading:
    """:func:`preload` in a forked process, for a start where the second CPU has nothing else to do (a restart:
    the journal index comes from its cache), while this process imports the API and opens the journal. The
    results come back pickled (~0.1 s for 1,000 files instead of ~0.45 s for loading them). Any failure of the
    child (no ``fork``, a crash, :attr:`TIMEOUT`) only means the caller loads the files itself."""

    TIMEOUT = 60.0  # seconds :meth:`result` waits

    def __init__(self, directory: Path, process: Any, conn: Any) -> None:
        self.directory = directory
        self._process = process
        self._conn = conn

    @classmethod
    def start(cls, directory: Path) -> Preloading | None:
        """Fork the child for ``directory``; None when ``fork`` is missing or fails."""
        child = forked.start(_preload_child, (str(directory),), "zmi-preload")
        return None if child is None else cls(Path(directory), *child)

    def result(self) -> dict[str, LoadResult] | None:
        """What :func:`preload` returned in the child (path -> result), or None when the child failed."""
        import pickle

        try:
            if not self._conn.poll(self.TIMEOUT):
                log.warning("reconcile: loading the schedule files in a second process took longer than %.0f s; "
                            "loading them here", self.TIMEOUT)
                return None
            rows = pickle.loads(self._conn.recv_bytes())
            return {path: dataclasses.replace(result, file=Path(result.file)) for path, result in rows}
        except (EOFError, OSError, pickle.UnpicklingError, AttributeError, TypeError, ValueError) as exc:
            self._process.join(1.0)
            log.warning("reconcile: the process loading the schedule files %s; loading them here",
                        forked.describe_end(self._process, exc))
            return None
        finally:
            self.cancel()

    def cancel(self) -> None:
        """Stop the child (idempotent)."""
        forked.stop(self._process, self._conn)


def _preload_child(conn: Any, directory: str, parent_end: Any) -> None:
    """Body of :class:`Preloading`'s process. ``parent_end`` (the pipe's reading end, inherited) is closed so that
    a send to a parent killed meanwhile fails instead of blocking forever; the server's signal handlers
    (inherited) are reset: SIGTERM ends the child, a Ctrl-C is the parent's business."""
    import pickle
    import signal

    parent_end.close()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    logging.disable(logging.CRITICAL)
    try:
        rows = [(path, dataclasses.replace(result, file=str(result.file)))  # a str unpickles 10x faster
                for path, result in preload(Path(directory)).items()]
        conn.send_bytes(pickle.dumps(rows, protocol=pickle.HIGHEST_PROTOCOL))
    except OSError:  # the server is gone (killed during start-up): nobody to tell, nothing to print
        pass
    finally:
        conn.close()


@dataclass(frozen=True)
class ScheduleState:
    """What the reconciler knows about one schedule id (the file stem).

    - ``schedule``: the definition the runner runs (the last valid version), or None if the file was never valid.
    - ``content_hash``: SHA-256 hex of the file bytes of that running definition (None with ``schedule``).
    - ``file``: the file the id was last seen in; ``file_hash``: SHA-256 hex of its bytes as last read (differs
      from ``content_hash`` while degraded).
    - ``degraded``: the file on disk is invalid (``findings`` holds its errors); a previous valid version may
      still run (``schedule`` not None) or nothing runs.
    - ``findings``: loader findings of the last read (errors when degraded; warnings otherwise), E031 included,
      followed by ``refused``.
    - ``loaded_at``: since when the running definition has run without interruption: when it was loaded, kept
      across restarts by its persisted copy (:mod:`zmi_reconciler.lastgood`; a restart is no interruption, a
      time in which a server ran without it is); ``checked_at``: when the file was last read. Both aware UTC.
    - ``restored``: the running definition came from the persisted last good version because the file was
      invalid when this process first saw it.
    - ``refused``: errors of the persisted last good version, which was not run (and was removed) because of
      them, as findings whose ``file`` is the copy and whose message says so; kept while nothing runs.

    Immutable: every change stores a new object, so :meth:`Reconciler.states` hands out snapshots cheaply.
    """

    schedule_id: str
    file: Path
    schedule: "Schedule | None" = None
    content_hash: str | None = None
    file_hash: str | None = None
    degraded: bool = False
    findings: tuple[Finding, ...] = ()
    loaded_at: datetime | None = None
    checked_at: datetime | None = None
    restored: bool = False
    refused: tuple[Finding, ...] = ()

    @property
    def running(self) -> bool:
        """True when the runner holds a definition of this schedule."""
        return self.schedule is not None


@dataclass(frozen=True)
class Change:
    """One thing :meth:`Reconciler.reconcile_all` did: ``action`` is ``loaded | updated | removed | invalid |
    paused | resumed``."""

    schedule_id: str
    action: str


class Reconciler:
    """Keeps ``runner`` in line with ``settings.schedules_dir`` and journals every change.

    ``runner`` needs ``apply(schedule_id, schedule, content_hash)`` and ``remove(schedule_id)``; ``journal``
    needs ``append(event, **fields)``. ``clock`` returns aware UTC datetimes. All public methods are
    thread-safe (one lock around a reconcile). ``last_good`` holds the persisted last good versions
    (``settings.last_good_path``); its writes happen in the background (``last_good.flush()`` waits for them).
    """

    def __init__(self, settings: "Settings", runner: Any, journal: Any,
                 clock: Callable[[], datetime] = utc_now, preloaded: dict[str, LoadResult] | None = None) -> None:
        self.settings = settings
        self._preloaded = dict(preloaded or {})  # path -> result of preload(); used once, if still current
        self.directory = Path(settings.schedules_dir)
        self.runner = runner
        self.journal = journal
        self._clock = clock
        self._lock = threading.RLock()
        self._states: dict[str, ScheduleState] = {}
        self._stats: dict[str, tuple[_FileStat, str]] = {}  # path -> (stat, sha256 of its bytes)
        self._folder_missing = False
        self._reconciled = threading.Event()
        self._pending: list[tuple[str, dict[str, Any]]] | None = None  # events of the pass in progress
        self._held: list[tuple[str, dict[str, Any]]] | None = None  # events kept back (hold_writes)
        self.last_good = LastGoodStore(settings.last_good_path)

    # ------------------------------------------------------------------ queries
    def states(self) -> dict[str, ScheduleState]:
        """Per schedule id its current :class:`ScheduleState` (immutable snapshots; the dict is a copy)."""
        with self._lock:
            return dict(self._states)

    def state(self, schedule_id: str) -> ScheduleState | None:
        """One schedule's current state, or None if no file has that id."""
        with self._lock:
            return self._states.get(schedule_id)

    @property
    def ready(self) -> bool:
        """True once the folder has been reconciled at least once (``/readyz``)."""
        return self._reconciled.is_set()

    @property
    def folder_missing(self) -> bool:
        """True while ``schedules_dir`` does not exist (schedules keep running)."""
        return self._folder_missing

    # ------------------------------------------------------------------ reconciling
    def reconcile_now(self) -> list[Change]:
        """Reconcile at once, e.g. right after the API wrote a file; same path as any edit."""
        return self.reconcile_all()

    def reconcile_all(self) -> list[Change]:
        """Compare the folder with what runs and apply the difference; returns what changed (in id order).

        Never raises for file content; runner or journal failures are logged and do not stop the others.
        """
        with self._lock:
            files = self._scan()
            if files is None:
                self._reconciled.set()
                return []
            changes: list[Change] = []
            outermost = self._pending is None  # (an RLock: a nested pass leaves the flush to the outer one)
            if outermost:
                self._pending = []
            try:
                # ids with a copy but no file and no state (deleted while the server was down): the copy goes
                for sid in sorted(set(files) | set(self._states) | self.last_good.ids()):
                    try:
                        self._reconcile_one(sid, files.get(sid, []), changes)
                    except Exception:  # one schedule's trouble must not stop the others
                        log.exception("reconcile: schedule %s failed", sid)
            finally:
                if outermost:
                    self._flush_journal()
            self._reconciled.set()
            return changes

    def _scan(self) -> dict[str, list[str]] | None:
        """Schedule file paths of the folder grouped by id (sorted by name); None (and a warning once) if the
        folder is missing."""
        try:
            entries = _schedule_entries(self.directory)
        except (FileNotFoundError, NotADirectoryError):
            if not self._folder_missing:
                log.warning("reconcile: %s does not exist; schedules keep running until it is back",
                            self.directory)
            self._folder_missing = True
            return None
        if self._folder_missing:
            log.info("reconcile: %s is back", self.directory)
        self._folder_missing = False
        files: dict[str, list[str]] = {}
        for entry in sorted(entries, key=lambda e: e.name):
            files.setdefault(entry.name.rpartition(".")[0], []).append(entry.path)
        present = {entry.path for entry in entries}
        for gone in self._stats.keys() - present:
            del self._stats[gone]
        return files

    def _reconcile_one(self, sid: str, paths: list[str], changes: list[Change]) -> None:
        state = self._states.get(sid)
        if not paths:
            if state is not None:
                self._removed(state, changes)
            else:
                self._removed_while_stopped(sid, changes)
            self.last_good.discard(sid)
            return
        if len(paths) > 1:
            self._duplicate(sid, [Path(p) for p in paths], state, changes)
            return
        path = paths[0]
        preloaded = self._preloaded.get(path)
        if preloaded is not None and preloaded.stat_key is not None and path not in self._stats:
            self._stats[path] = (preloaded.stat_key, preloaded.content_hash)  # read at start-up: not again
        digest = self._hash_if_changed(path) or _UNREADABLE
        if state is not None and state.file_hash == digest and str(state.file) == path:
            return  # untouched: the runner is not called, its next fire does not move
        result = self._preloaded.pop(path, None)
        if result is None or result.content_hash != digest:
            result = load_schedule_file(Path(path), root=self.directory)
        result = self._checked(result)
        self._stats_seen(path, result.content_hash)
        if result.schedule is None:
            self._invalid(sid, result, state, changes)
            if digest == _UNREADABLE:  # journal an unreadable file once, not on every pass
                self._states[sid] = dataclasses.replace(self._states[sid], file_hash=_UNREADABLE)
        else:
            self._valid(sid, result, state, changes)

    def _hash_if_changed(self, path: str) -> str | None:
        """SHA-256 of the file if it may have changed since the last read, else the cached hash; None when it
        cannot be read or is not a regular file (the loader will report why, E001/E015, without opening a
        FIFO)."""
        try:
            st = os.stat(path)
        except OSError:
            self._stats.pop(path, None)
            return None
        key: _FileStat = (st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)
        cached = self._stats.get(path)
        if cached is not None and cached[0] == key and time.time() - st.st_mtime_ns / 1e9 >= RACY_SECONDS:
            return cached[1]
        if not stat.S_ISREG(st.st_mode):  # a FIFO/socket/device: never open it (open() on a FIFO blocks)
            self._stats.pop(path, None)
            return None
        try:
            fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
            with open(fd, "rb") as handle:
                if not stat.S_ISREG(os.fstat(handle.fileno()).st_mode):  # swapped after the stat
                    return None
                digest = hashlib.sha256(handle.read()).hexdigest()
        except OSError:
            return None
        self._stats[path] = (key, digest)
        return digest

    def _stats_seen(self, path: str, digest: str) -> None:
        cached = self._stats.get(path)
        if cached is not None and cached[1] != digest:  # changed between our read and the loader's
            self._stats[path] = ((0, 0, 0, 0), digest)

    def _checked(self, result: LoadResult) -> LoadResult:
        """``result`` with E031 (:func:`lint.command_errors`) for each ``run_command`` whose command is not in
        this server's allowlist (``settings.commands``); such a result has errors, so no schedule, like any
        invalid file. Unchanged when it has no schedule or every command is allowlisted."""
        if result.schedule is None:
            return result
        errors = command_errors(result, self.settings.commands)
        if not errors:
            return result
        findings = sorted([*result.findings, *errors], key=lambda f: (f.line, f.column, f.code))
        return dataclasses.replace(result, schedule=None, findings=findings)

    def _valid(self, sid: str, result: LoadResult, state: ScheduleState | None, changes: list[Change]) -> None:
        schedule = result.schedule
        assert schedule is not None
        now = self._clock()
        previous = state.schedule if state is not None else None
        running_hash = state.content_hash if state is not None else None
        loaded_at = state.loaded_at if state is not None else None
        common = {"schedule": sid, "file": str(result.file), "content_hash": result.content_hash}
        extra: dict[str, Any] = {}
        if previous is None or running_hash != result.content_hash:
            paused_since = None
            if state is None:  # first seen by this process: was it paused when the last server stopped?
                paused_since, extra = self._paused_at_last_stop(sid, result)
            self.runner.apply(sid, schedule, result.content_hash, paused_since=paused_since)
            loaded_at = now
        if result.data:
            # First seen by this process (a start): a copy of these bytes says since when they run, as a restart
            # is no interruption. Seen here but not running until now: they run from now on, whatever a copy says.
            fresh = state is not None and previous is None
            loaded_at = self.last_good.keep(sid, result.data, result.content_hash, loaded_at or now,
                                            fresh=fresh).loaded_at
        if previous is None:
            self._journal("schedule_loaded", changes, "loaded", enabled=schedule.enabled, **common, **extra)
        elif running_hash != result.content_hash:
            common["previous_hash"] = running_hash
            flipped = previous.enabled != schedule.enabled
            if flipped:
                event = "schedule_resumed" if schedule.enabled else "schedule_paused"
                self._journal(event, changes, event.removeprefix("schedule_"), **common)
            if not flipped or _differs_beyond_enabled(previous, schedule):
                self._journal("schedule_updated", changes, "updated", **common)
        elif state is not None and state.degraded:  # fixed back to exactly the running version: nothing to apply
            self._journal("schedule_updated", changes, "updated", degraded_cleared=True, **common)
        self._states[sid] = ScheduleState(sid, result.file, schedule, result.content_hash, result.content_hash,
                                          False, tuple(result.findings), loaded_at, now)

    def _invalid(self, sid: str, result: LoadResult, state: ScheduleState | None, changes: list[Change]) -> None:
        if state is None:  # first seen by this process (a start): the persisted last good version runs
            state = self._restore(sid, result, changes)
        running = state.schedule if state is not None else None
        running_hash = state.content_hash if state is not None else None
        refused = state.refused if state is not None and running is None else ()
        findings = tuple(result.findings) + refused
        # Journal once per distinct (file content, findings): a file the loader does not read (a symlink out of
        # the folder, E004) has another hash here than the reconciler's own read, so it is re-checked each pass.
        repeated = (state is not None and state.degraded and state.file == result.file
                    and state.file_hash == result.content_hash and state.findings == findings)
        loaded_at = state.loaded_at if state is not None else None
        self._states[sid] = ScheduleState(sid, result.file, running, running_hash, result.content_hash, True,
                                          findings, loaded_at, self._clock(),
                                          restored=state is not None and state.restored, refused=refused)
        if repeated:
            return
        errors = result.errors or result.findings
        first = errors[0] if errors else Finding(str(result.file), 1, 1, "", "E000", "error", "invalid file")
        extra = {"last_good_errors": [f.to_dict() for f in refused]} if refused else {}
        self._journal("schedule_invalid", changes, "invalid", schedule=sid, file=first.file, line=first.line,
                      column=first.column, path=first.path, code=first.code, message=first.message,
                      errors=[f.to_dict() for f in errors], file_hash=result.content_hash,
                      running_hash=running_hash, running_since=iso_utc(loaded_at) if running and loaded_at else None,
                      **extra)
        if running is not None:
            log.warning("schedule %s: %s is invalid; the last good version (%s, loaded %s) keeps running: %s",
                        sid, result.file, running_hash, iso_utc(loaded_at) if loaded_at else "?", first.text())
        else:
            log.warning("schedule %s: %s is invalid and not run%s: %s", sid, result.file,
                        " (its last good version cannot run either)" if refused else "", first.text())

    def _paused_at_last_stop(self, sid: str, result: LoadResult) -> tuple[datetime | None, dict[str, Any]]:
        """For a valid file this process sees for the first time: since when the version that ran when the previous
        server stopped was paused (its last good copy's ``loaded_at``), when that copy is paused and the file is
        enabled, i.e. it was resumed while no server ran; else None. The runner then fires it from now unless the
        journal recorded a slot after that instant (a copy that lags a resume: :meth:`Runner.apply`), and
        ``schedule_loaded`` says ``resumed_while_stopped``. The copy is read only when its bytes differ from the
        file's and the file is enabled; no copy, or one that cannot be read: None (the journal decides, so that no
        catch-up is lost)."""
        copy = self.last_good.get(sid)
        if copy is None or copy.content_hash == result.content_hash:
            return None, {}
        if result.schedule is None or not result.schedule.enabled:
            return None, {}  # (not registered while paused; a later resume fires from now anyway)
        try:
            ran = load_schedule_text(self.last_good.read(copy), Path(result.file).name).schedule
        except (OSError, ValueError):
            return None, {}
        if ran is None or ran.enabled:
            return None, {}
        return copy.loaded_at, {"resumed_while_stopped": True}

    def _restore(self, sid: str, result: LoadResult, changes: list[Change]) -> ScheduleState | None:
        """Hand the persisted last good version of ``sid`` to the runner (``schedule_loaded``) and return its
        state. None when there is no copy. A copy that cannot be run (damaged or unreadable, no longer valid, or
        E031: a command outside the allowlist) is removed with a warning, since the schedule does not run from
        now on and a copy claims since when it runs; the returned state then runs nothing and carries the copy's
        errors (``refused``), if any."""
        copy = self.last_good.get(sid)
        if copy is None:
            return None
        try:
            data = self.last_good.read(copy)
        except (OSError, ValueError) as exc:
            log.warning("schedule %s: the persisted last good version cannot be used and is removed: %s", sid, exc)
            self.last_good.discard(sid)
            return None
        # Named like the file, so the id checks out; checked against the allowlist like the file.
        loaded = self._checked(load_schedule_text(data, Path(result.file).name))
        if loaded.schedule is None:
            errors = loaded.errors or loaded.findings
            first = errors[0]
            why = "names a command outside the allowlist" if first.code == "E031" else "does not validate any more"
            log.warning("schedule %s: the persisted last good version %s %s; it is not run and is removed "
                        "(line %d column %d: %s %s %s)", sid, copy.path, why, first.line, first.column, first.code,
                        first.path, first.message)
            self.last_good.discard(sid)
            refused = tuple(dataclasses.replace(f, file=str(copy.path), severity="error", message=(
                f"the last good version ({copy.name}, loaded {iso_utc(copy.loaded_at)}) is not run either and was "
                f"removed: {f.message}")) for f in errors)
            return ScheduleState(sid, result.file, findings=refused, checked_at=self._clock(), refused=refused)
        schedule = loaded.schedule
        self.runner.apply(sid, schedule, copy.content_hash)
        self._journal("schedule_loaded", changes, "loaded", schedule=sid, file=str(result.file),
                      content_hash=copy.content_hash, enabled=schedule.enabled, restored_from=str(copy.path),
                      loaded_at=iso_utc(copy.loaded_at))
        log.info("schedule %s: %s is invalid at start; its last good version %s (loaded %s) runs, from %s",
                 sid, result.file, copy.content_hash, iso_utc(copy.loaded_at), copy.path)
        return ScheduleState(sid, result.file, schedule, copy.content_hash, copy.content_hash, False,
                             tuple(loaded.findings), copy.loaded_at, self._clock(), restored=True)

    def _duplicate(self, sid: str, paths: list[Path], state: ScheduleState | None, changes: list[Change]) -> None:
        digests = [self._hash_if_changed(str(p)) for p in paths]
        fingerprint = "+".join(f"{p.name}:{d}" for p, d in zip(paths, digests))
        if state is not None and state.degraded and state.file_hash == fingerprint:
            return
        names = " and ".join(p.name for p in paths)
        findings = [Finding(str(p), 1, 1, "", "E030", "error",
                            f"schedule id {sid!r} is defined by {names}; keep one file") for p in paths]
        result = LoadResult(sid, paths[0], None, findings, fingerprint, b"")
        self._invalid(sid, result, state, changes)

    def _removed_while_stopped(self, sid: str, changes: list[Change]) -> None:
        """``schedule_removed`` for an id this process never saw whose last good copy is still there: its file
        was deleted while no server ran (the copy says the schedule ran then). Journaled once: the caller removes
        the copy. ``file`` is null (the copy does not tell ``.yaml`` from ``.yml``); ``content_hash`` is the
        version that ran last, ``last_good`` the copy."""
        copy = self.last_good.get(sid)
        if copy is None:
            return
        self._journal("schedule_removed", changes, "removed", schedule=sid, file=None, content_hash=copy.content_hash,
                      deleted_while_stopped=True, last_good=str(copy.path))
        log.info("schedule %s: its file was deleted while the server was stopped; last good version %s removed",
                 sid, copy.path)

    def _removed(self, state: ScheduleState, changes: list[Change]) -> None:
        sid = state.schedule_id
        if state.schedule is not None:
            self.runner.remove(sid)
            self._journal("schedule_removed", changes, "removed", schedule=sid, file=str(state.file),
                          content_hash=state.content_hash)
        del self._states[sid]

    def _journal(self, event: str, changes: list[Change], action: str, **fields: Any) -> None:
        changes.append(Change(fields["schedule"], action))
        log.info("reconcile: %s %s", event, fields["schedule"])
        if self._pending is not None:  # inside reconcile_all: written in one go at the end of the pass
            self._pending.append((event, fields))
            return
        if self._held is not None:
            self._held.append((event, fields))
            return
        try:
            self.journal.append(event, **fields)
        except Exception:
            log.exception("journal: cannot record %s of %s", event, fields.get("schedule"))

    def hold_writes(self) -> None:
        """Keep what the coming passes write back until :meth:`release_writes`: their journal events and the
        changes of the last good copies (``serve`` reconciles before the journal has been read at start-up: the
        events follow what the open records, and a start stopped before it serves leaves no trace, as before)."""
        with self._lock:
            if self._held is None:
                self._held = []
            self.last_good.hold()

    def release_writes(self) -> None:
        """Write the events and copies kept back since :meth:`hold_writes`, in order, and write the next ones at
        once again. Idempotent."""
        with self._lock:
            held, self._held = self._held, None
            if held:
                self._pending = held
                self._flush_journal()
            self.last_good.release()

    def _flush_journal(self) -> None:
        """Write the events of this pass, in the order they happened, with one ``Journal.append_many`` (one lock
        round and one write instead of one per event: 1,000 ``schedule_loaded`` at start). A journal without
        ``append_many`` gets them one by one. If the batch fails, each event is tried on its own so one bad
        event does not lose the others; failures are logged as before. Kept back while held (hold_writes)."""
        pending, self._pending = self._pending or [], None
        if self._held is not None:
            self._held += pending
            return
        if not pending:
            return
        append_many = getattr(self.journal, "append_many", None)
        if append_many is not None and len(pending) > 1:
            try:
                append_many(pending)
                return
            except Exception:
                log.exception("journal: cannot record %d reconcile event(s) at once; trying one by one",
                              len(pending))
        for event, fields in pending:
            try:
                self.journal.append(event, **fields)
            except Exception:
                log.exception("journal: cannot record %s of %s", event, fields.get("schedule"))

    # ------------------------------------------------------------------ watching
    def watch(self, stop: threading.Event, reconciled: bool = False) -> None:
        """Reconcile, then watch the folder until ``stop`` is set (blocking; run it in a thread).

        ``reconciled``: the caller has just reconciled (``serve`` at start-up), so the first pass is left out;
        the watcher's first wake-up (an event, or :data:`WATCH_TICK_MS` later) reconciles anyway and catches any
        edit since. Saves a pass over every file while the API starts.

        Events are debounced (``WATCH_DEBOUNCE_MS``) and only say *when* to reconcile the whole folder.
        Without events the watcher still wakes every ``WATCH_TICK_MS`` to check that the folder is the one being
        watched, and reconciles every ``WATCH_SAFETY_MS`` anyway; a deleted folder is polled for until it is
        back, a replaced one is watched anew. Never raises; errors are logged and retried.
        """
        while not stop.is_set():
            try:
                identity = self._folder_identity()
                if identity is None:
                    self.reconcile_all()  # records the missing folder once
                    stop.wait(MISSING_FOLDER_POLL_SECONDS)
                    continue
                if not reconciled:
                    self.reconcile_all()
                reconciled = False
                self._watch_folder(stop, identity)
            except Exception:
                log.exception("reconcile: watching %s failed; retrying", self.directory)
                stop.wait(MISSING_FOLDER_POLL_SECONDS)

    def _watch_folder(self, stop: threading.Event, identity: _SchedulesDirStat) -> None:
        root = str(self.directory)

        def relevant(change: watchfiles.Change, path: str) -> bool:
            return path == root or _relevant(change, path)  # the folder itself: deleted or moved away

        # The watcher exists only once the generator first waits, so the first wake-up (an event or a tick)
        # reconciles again: an edit between the caller's reconcile and the watcher's start is not lost.
        pending = True
        idle_ms = 0
        for events in watchfiles.watch(self.directory, watch_filter=relevant, debounce=WATCH_DEBOUNCE_MS,
                                       step=WATCH_STEP_MS, stop_event=stop, rust_timeout=WATCH_TICK_MS,
                                       yield_on_timeout=True, raise_interrupt=False, recursive=False,
                                       ignore_permission_denied=True):
            if stop.is_set():
                return
            if self._folder_identity() != identity:
                return  # deleted or replaced: the caller polls and watches the new folder
            idle_ms += WATCH_TICK_MS
            if events or pending or idle_ms >= WATCH_SAFETY_MS:
                if events:
                    log.debug("reconcile: %d file event(s) in %s", len(events), self.directory)
                self.reconcile_all()
                pending, idle_ms = False, 0

    def _folder_identity(self) -> _SchedulesDirStat | None:
        try:
            st = os.stat(self.directory)
        except OSError:
            return None
        return (st.st_dev, st.st_ino)


def _schedule_entries(directory: Path) -> list[os.DirEntry[str]]:
    """The schedule files of ``directory`` (``*.yaml``/``*.yml``, no dotfiles, no folders), unsorted. Raises
    ``OSError`` when the folder cannot be listed."""
    with os.scandir(directory) as it:
        return [entry for entry in it if is_schedule_file_name(entry.name) and not _is_dir(entry)]


def _is_dir(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_dir()
    except OSError:
        return False


def _relevant(change: watchfiles.Change, path: str) -> bool:
    """Events worth a reconcile: schedule files, plus Kubernetes ConfigMap swaps (``..data`` symlinks, whose
    files are symlinks into them). Swap, backup and temp files of editors are not schedule file names."""
    name = os.path.basename(path)
    return is_schedule_file_name(name) or name.startswith("..")


def _differs_beyond_enabled(old: "Schedule", new: "Schedule") -> bool:
    return old.model_dump(exclude={"enabled"}) != new.model_dump(exclude={"enabled"})
