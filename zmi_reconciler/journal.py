"""The journal: an append-only JSON-lines record of everything that happened (SPEC section 4).

Layout: ``<journal_dir>/YYYY-MM-DD.jsonl``, one file per UTC day; each line one JSON object with ``ts``
(UTC, milliseconds, ISO 8601 with ``Z``) and ``event`` followed by the event's fields. Datetimes in fields are
written as ISO 8601 UTC with ``Z``.

Writing: every event is one whole line, written with a single ``os.write`` on an ``O_APPEND`` descriptor while
holding a thread lock and a cross-process lock (``flock`` on ``<journal_dir>/.journal.lock``), so a CLI ``run``
in another process can write the same journal. The lock file stays open and ``fcntl.flock`` blocks in the kernel:
the ``filelock`` package reopens the file and polls on every acquire (about 250 us each), too slow for a few
thousand events a second. ``run_finished`` and ``run_interrupted`` are fsynced.
A file that ends in a torn line (crash mid-write) is terminated with a newline before the next append, so the
torn line stays one invalid line and never swallows the next event.

Reading: :class:`Journal` builds an in-memory index at open (one pass over the retained files, or a replay of
the index cache in ``<journal_dir>/.index/`` plus what the files gained since; a first build of many files shares
them with a forked second process, see :class:`_ColdBuild`) and keeps it up
to date on every append and before every query (it re-reads from the last known offset of the newest files, so
lines appended by another process show up; the cost when nothing changed is a ``stat``). Only run-level lines
(``run_*`` events) are decoded to build the index; task lines (the bulk) are not looked at. Runs that come from a
cache entry or a second builder stay encoded per schedule and day until a query needs them. Per run the index keeps a
small summary plus the positions (day, byte offset) of its run-level lines; task results and logs are loaded from
disk on demand by :meth:`Journal.get_run`, which reads the lines naming the run from its ``run_started`` to its
last run-level line (to the end of the journal while it runs). Invalid lines are skipped with a warning naming
``file:line`` (a damaged task line that still starts like the journal's own lines is not decoded at open: it is
skipped with that warning when its run's details are read); a torn last line is skipped with a warning and is
never fatal.
"""

from __future__ import annotations

import bisect
import dataclasses
import fcntl
import gc
import json
import logging
import os
import re
import signal
import sys
import threading
import time
import zlib
from itertools import accumulate, chain
from operator import attrgetter, itemgetter
from collections.abc import Callable, Iterable, Iterator
from datetime import date, datetime, timedelta, timezone
from enum import Enum
from pathlib import Path
from typing import Any, Literal, get_args

import msgspec

from zmi_reconciler import forked
from zmi_reconciler.clock import utc_now
from zmi_reconciler.durable import fsync_dir

log = logging.getLogger(__name__)

EVENTS = frozenset({
    "schedule_loaded", "schedule_updated", "schedule_removed", "schedule_invalid", "schedule_paused",
    "schedule_resumed", "run_started", "task_started", "task_log", "task_finished", "run_finished",
    "run_skipped", "run_missed", "run_interrupted",
})
#: Events after which the file is fsynced (the record of a run's end must survive a power cut).
FSYNC_EVENTS = frozenset({"run_finished", "run_interrupted"})
#: Triggers whose ``scheduled_for`` counts as a consumed slot (manual runs do not move the timing).
SLOT_TRIGGERS = frozenset({"scheduled", "catch_up"})
RUNNING = "running"
INTERRUPTED = "interrupted"
#: Events that say whether a schedule runs (see :func:`_life_of`): kept in the index per schedule.
LIFE_EVENTS = frozenset({"schedule_loaded", "schedule_paused", "schedule_resumed", "schedule_removed"})

_FILE_RE = re.compile(r"^(\d{4}-\d{2}-\d{2})\.jsonl$")
_LOCK_NAME = ".journal.lock"
_OFFSET_BITS = 40  # a position is day_ordinal << 40 | byte offset (files up to 1 TiB)
_OFFSET_MASK = (1 << _OFFSET_BITS) - 1
_READ_CHUNK = 16 << 20  # a typical day file in one read: no copy of a chunk onto the previous one's tail
_INDEX_KEYS = frozenset({"ts", "event", "schedule", "run_id", "pid"})
_CACHE_DIR = ".index"
_CACHE_VERSION = 6  # 6: a CRC-32 of the whole entry after it; 5: with the schedules' life (pause, resume, removal);
# 4: runs per schedule as separate arrays, with run ids; 3: runs as index entries grouped by schedule; 2: run-level
# positions; 1: every line
_CACHE_SUFFIX = ".idx"
_TAIL_BYTES = 64


def iso_utc(value: datetime, *, ms: bool = False) -> str:
    """Aware datetime -> ISO 8601 UTC with ``Z``. Naive values are taken as UTC.

    ``ms`` True always writes milliseconds (``2026-11-29T04:00:00.000Z``); otherwise milliseconds appear only
    when the instant has a fractional second.
    """
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    value = value.astimezone(timezone.utc)
    if ms or value.microsecond:
        return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"
    return value.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_utc(value: str) -> datetime:
    """RFC 3339 instant (``Z`` or offset; naive taken as UTC) -> aware UTC datetime. Read exactly as the index's
    decoder reads instants in bulk (msgspec): ``T`` or a space, ``Z``/``z``, fractions beyond microseconds
    rounded; so a line means the same whichever way it is read. Raises ``ValueError``."""
    return _as_utc(_to_datetime(value, datetime))


_to_datetime = msgspec.convert
_UTC = timezone.utc


def _json_default(value: Any) -> Any:
    if isinstance(value, datetime):
        return iso_utc(value)
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, timedelta):
        return value.total_seconds()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Enum):
        return value.value
    if hasattr(value, "model_dump"):
        return value.model_dump(mode="json")
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    raise TypeError(f"journal: cannot serialise {type(value).__name__}")


def encode_event(record: dict[str, Any]) -> bytes:
    """One event -> one line of UTF-8 JSON ending in ``\\n`` (no newline inside; datetimes as ISO UTC)."""
    text = json.dumps(record, default=_json_default, separators=(",", ":"), ensure_ascii=False)
    return text.encode("utf-8") + b"\n"


class _Head(msgspec.Struct, gc=False):
    """The fields the index needs from a line; everything else is skipped by the decoder. Instants stay
    strings here and are parsed only for the few events that need them (run start/end, slots)."""

    ts: str
    event: str
    schedule: str | None = None
    run_id: str | None = None
    trigger: str | None = None
    scheduled_for: str | None = None
    status: str | None = None
    pid: int | None = None
    enabled: Any = None  # (schedule_loaded; any JSON: only True and False mean something, see _life_of)


_HEAD = msgspec.json.Decoder(_Head)
_HEADS = msgspec.json.Decoder(list[_Head])


_RunEvent = Literal["run_started", "run_finished", "run_skipped", "run_missed", "run_interrupted"]
#: Run statuses and triggers as the runner writes them. Typed as literals so that the decoders give every run the
#: same string objects (memory, no intern); a file with a run of another status or trigger is not cached (see _derive).
_RunStatus = Literal["running", "succeeded", "failed", "partial", "interrupted", "unknown"]
_Trigger = Literal["scheduled", "catch_up", "manual"]
_CACHEABLE_STATUSES = frozenset(get_args(_RunStatus))
_CACHEABLE_TRIGGERS = frozenset(get_args(_Trigger)) | {None}


class _RunHead(msgspec.Struct, gc=False):
    """:class:`_Head` of a run-level line with the instants parsed by the decoder (in C), for the first build;
    a value the decoder refuses (an instant it cannot parse, a status or trigger the runner does not write) sends
    the chunk down the path that decodes :class:`_Head` and warns per line.
    ``event`` is a run-level event: a line found by a nested ``"event":"run_..."`` (a task result's own key)
    decodes to its top-level event, which fails here, so that chunk is read on the full path too."""

    ts: datetime
    event: _RunEvent
    schedule: str | None = None
    run_id: str | None = None
    trigger: _Trigger | None = None
    scheduled_for: datetime | None = None
    status: _RunStatus | None = None
    pid: int | None = None


_RUN_HEADS = msgspec.json.Decoder(list[_RunHead])


def _as_utc(value: datetime) -> datetime:
    """A decoded instant as :func:`parse_utc` gives it (naive taken as UTC, offsets converted to UTC). Raises
    ``ValueError`` for one that leaves the datetime range in UTC (``0001-01-01T00:00:00+01:00``)."""
    tz = value.tzinfo
    if tz is _UTC:
        return value
    if tz is None:
        return value.replace(tzinfo=_UTC)
    try:
        return value.astimezone(_UTC)
    except OverflowError:
        raise ValueError(f"{value.isoformat()} is out of range in UTC") from None


_PLUS_ONE = (1).__add__
_RUN_EVENT = b'"event":"run_'  # how the journal's own writer starts a run-level event
_SCHEDULE_EVENT = b'"event":"schedule_'  # ... and a schedule's (LIFE_EVENTS among them)
#: Bytes searched per call for :data:`_RUN_EVENT` (below CPython's 30,000-byte threshold for a two-way search).
_FIND_WINDOW = 16384
#: An escape anywhere in an event value, or a \u escape in a key ("\u0065vent" decodes to "event"); the other
#: escapes stand for characters an event name or the key does not have. A key: a string followed by a colon
#: (JSON whitespace allowed before it).
_ESCAPED_EVENT = re.compile(rb'"event":"[^"\\]*\\|\\u[0-9a-fA-F]{4}[^"]*"[ \t\r]*:')


def _max(current: datetime | None, value: datetime) -> datetime:
    return value if current is None or value > current else current


#: A schedule's life as the journal tells it, the effect of its lifecycle events on whether it runs: ("off", ts)
#: it stopped running then (paused, removed, loaded paused); ("on", ts) it runs again since then (resumed, or loaded
#: enabled after it was off); ("on_if_off", ts) loaded enabled: it runs since then if it was off before, else
#: nothing changed (a start of a server that ran it, a new file). None: no such event.
_Life = tuple[str, datetime]


def _life_of(head: _Head) -> str | None:
    """The kind of life event a line is (see :data:`_Life`), or None."""
    event = head.event
    if event == "schedule_paused" or event == "schedule_removed":
        return "off"
    if event == "schedule_resumed":
        return "on"
    if event == "schedule_loaded":
        if head.enabled is False:
            return "off"
        if head.enabled is True:
            return "on_if_off"
    return None


def _life_then(older: _Life | None, newer: _Life | None) -> _Life | None:
    """The life after ``older`` then ``newer`` (each the effect of a stretch of the journal, in order):
    associative, so per-file summaries fold like the lines themselves."""
    if newer is None:
        return older
    if newer[0] != "on_if_off" or older is None:
        return newer
    return ("on", newer[1]) if older[0] == "off" else older


class _Run(msgspec.Struct, array_like=True, gc=False, eq=False):
    """Index entry of one run: summary fields (aware UTC datetimes), the positions of its run-level lines
    (``run_started`` first; task lines are not indexed, see :meth:`Journal._lines_of`) and the
    position of the event that ended it (``finish_pos``, None while running). ``pid`` is the writer of
    ``run_started`` (only consulted while the run is ``running``).

    A msgspec struct so that the index cache decodes runs straight into index entries (see :class:`_IndexCache`;
    they stay encoded until a query needs them, see :class:`_ScheduleIndex`);
    ``gc=False`` (an entry holds no reference cycle) and ``positions`` a tuple of ints, which the collector stops
    tracking: a server's hundreds of thousands of runs add nothing to a garbage collection (fire lag, SPEC 10)."""

    run_id: str
    schedule: str
    trigger: _Trigger | None
    scheduled_for: datetime | None
    started_at: datetime
    pid: int | None
    positions: tuple[int, ...]
    status: _RunStatus = RUNNING
    finished_at: datetime | None = None
    finish_pos: int | None = None

    @classmethod
    def from_head(cls, head: _Head, pos: int) -> _Run:
        """From a ``run_started`` line. Raises ``ValueError`` for a malformed instant."""
        run_id: str = head.run_id  # type: ignore[assignment]
        scheduled_for = parse_utc(head.scheduled_for) if head.scheduled_for is not None else None
        return cls(run_id, sys.intern(head.schedule or run_id.partition("@")[0]),
                   sys.intern(head.trigger) if head.trigger else None, scheduled_for, parse_utc(head.ts),
                   _pid(head.pid), (pos,))

    def summary(self) -> dict[str, Any]:
        finished = self.finished_at
        duration = None if finished is None else (finished - self.started_at) // _MS
        return {
            "run_id": self.run_id, "schedule": self.schedule, "trigger": self.trigger,
            "scheduled_for": self.scheduled_for, "started_at": self.started_at, "finished_at": finished,
            "status": self.status, "duration_ms": duration,
        }


_MS = timedelta(milliseconds=1)


class _ScheduleIndex:
    """One schedule's part of the index: ``runs`` (decoded index entries, in file order: by their first
    position), ``pending`` (groups of its runs still encoded as they came from a cache entry or a second
    builder: day ordinal, the msgpack array of the runs of that day, their number; oldest day first, decoded
    by :meth:`Journal._materialize` when a query needs them), the latest slot and success (aware UTC), its life
    (:data:`_Life`)."""

    __slots__ = ("runs", "pending", "last_slot", "last_success", "life")

    def __init__(self) -> None:
        self.runs: list[_Run] = []
        self.pending: list[tuple[int, msgspec.Raw, int]] = []
        self.last_slot: datetime | None = None
        self.last_success: datetime | None = None
        self.life: _Life | None = None


class _FileState:
    """How far one day file has been read: byte offset after the last complete line, and its line count.

    For the index cache (see :class:`_IndexCache`): ``life`` the effect of this file's life events per schedule
    (:data:`_Life`); ``slots`` holds this file's ``run_skipped``/``run_missed``
    slot maximum per schedule; ``orphans`` the run ids of lines that named a run not (yet) known, ``orphan_lines``
    those lines (position and head, in file order: a second builder's entry carries them, see
    :class:`_Built`); ``uncacheable``
    is set when the file's lines cannot be replayed from a cache entry exactly (a run started twice, ended
    twice, or a line of a run before its ``run_started``); such a file is read in full at every open.
    ``saved``: ``offset`` as of the cache entry on disk (-1: none, -2: not known yet). ``pending``: the schedule
    ids whose runs of this file may still be encoded (:class:`_ScheduleIndex`; for
    :meth:`Journal._materialize_day`). ``lazy``: a second builder's entry, not written yet, that is what
    :meth:`Journal._derive` would write for the file's first ``lazy.offset`` bytes (a file without lines of runs of
    earlier files), written as it came.
    """

    __slots__ = ("day", "path", "name", "offset", "lines", "torn_warned", "slots", "life", "orphans",
                 "orphan_lines", "uncacheable", "saved", "pending", "lazy")

    def __init__(self, day: date, path: Path) -> None:
        self.day = day
        self.path = path
        self.name = str(path)
        self.offset = 0
        self.lines = 0
        self.torn_warned = False
        self.slots: dict[str, datetime] = {}
        self.life: dict[str, _Life] = {}
        self.orphans: set[str] = set()
        self.orphan_lines: list[tuple[int, _Head]] = []
        self.uncacheable = False
        self.saved = -2  # unknown: an entry may be on disk
        self.pending: list[str] = []
        self.lazy: _IndexCache | None = None


class _CachedMore(msgspec.Struct, array_like=True, gc=False):
    """A run started in an earlier file: its positions in this file and its end if it is here (``status`` None
    while it did not end in this file)."""

    run_id: str
    status: _RunStatus | None
    finished_at: datetime | None
    finish_pos: int | None
    positions: tuple[int, ...]


class _CacheFields(msgspec.Struct, array_like=True, gc=False):
    """Cache entry ``<journal_dir>/.index/<day>.idx`` (msgpack, then the CRC-32 of those bytes, 4 bytes big-endian: an
    entry damaged anywhere is read as corrupt at open, see :func:`_sealed`): what the index takes from one day
    file's first ``offset`` bytes, valid while the file is the same (``ino``, ``size``, ``mtime_ns``) or only grew
    (same ``ino``, larger), and the ``tail`` bytes before ``offset`` are unchanged (:meth:`Journal._describes`);
    then only the rest is read.

    ``starts``: the runs started in the file, one msgpack array of index entries (:class:`_Run`) per schedule, kept
    encoded (``msgspec.Raw``) until a query needs them (see :class:`_ScheduleIndex`). ``groups``: schedule id,
    number of runs and whether one of them is ``running`` at the end of this file, in the order of ``starts``; file
    order within a group; positions in this file, the end only when it is in this file. ``ids``: the run ids, group
    after group (an index takes the runs without decoding them). ``more``: runs started in an earlier file.
    ``last_slots``/``successes``: per schedule the latest slot (scheduled or catch-up start) and the latest
    ``succeeded`` end among ``starts``. ``slots``: per schedule the latest ``run_skipped``/``run_missed`` slot of
    the file. ``life``: per schedule the effect of the file's life events (:data:`_Life`). Replaying entries oldest
    file first (:meth:`Journal._replay`) gives the same index as reading the lines."""

    version: int
    ino: int
    size: int
    mtime_ns: int
    offset: int
    lines: int
    tail: bytes
    groups: list[tuple[str, int, bool]]
    ids: list[str]
    more: list[_CachedMore]
    last_slots: dict[str, datetime]
    successes: dict[str, datetime]
    slots: dict[str, datetime]
    orphans: list[str]
    life: dict[str, tuple[str, datetime]]


class _IndexCache(_CacheFields):
    """:class:`_CacheFields` as the index reads and writes it: the groups of runs encoded."""

    starts: list[msgspec.Raw]


class _BuiltCache(_CacheFields):
    """:class:`_CacheFields` as a second builder sends it: the groups of runs as index entries, encoded in one
    go."""

    starts: list[list[_Run]]


def _sealed(data: bytes) -> bytes:
    """A cache entry's bytes as written: ``data`` and its CRC-32 (zlib), 4 bytes big-endian."""
    return data + zlib.crc32(data).to_bytes(4, "big")


def _unsealed(data: bytes) -> memoryview | None:
    """The entry bytes of a cache file (see :func:`_sealed`), or None when its check fails (damaged, cut, or
    written by a format without it)."""
    if len(data) < 4 or zlib.crc32(memoryview(data)[:-4]) != int.from_bytes(data[-4:], "big"):
        return None
    return memoryview(data)[:-4]


_CACHE_ENCODER = msgspec.msgpack.Encoder()
assert len(_IndexCache.__struct_fields__) == 16  # a msgpack array 16: the entry starts with these four bytes
assert _IndexCache.__struct_fields__ == _BuiltCache.__struct_fields__
_CACHE_HEADER = b"\xdc\x00\x10" + bytes((_CACHE_VERSION,))
_RUN_ID = attrgetter("run_id")
_STATUS = attrgetter("status")
_TRIGGER = attrgetter("trigger")
_DAY = itemgetter(0)
_CACHE_DECODER = msgspec.msgpack.Decoder(_IndexCache)
_RUNS_DECODER = msgspec.msgpack.Decoder(list[_Run])
_FIRST_POSITION = attrgetter("positions")  # (a tuple of ints compares by its first: run starts never share one)


class Journal:
    """Append-only journal with an in-memory run index. Thread-safe; several processes may append at once.

    ``directory``: the journal folder (created if missing). ``retention_days``: :meth:`apply_retention` deletes
    day files older than this many days. ``clock``: returns the current instant as an aware UTC datetime.
    ``refresh_interval``: queries look for lines of other processes at most this often (seconds).
    Construction (or :meth:`open`, with ``defer_open``) reads every retained file once (invalid lines are
    skipped with a warning), or with ``index_cache`` replays the per-file cache entries in
    ``<directory>/.index/`` written by an earlier open and reads only what the files gained since (see
    :class:`_IndexCache`); the entries are written at open, by :meth:`close`, and at most every
    ``index_save_interval`` seconds by a query (never by an append).

    Run summaries (from :meth:`runs`, :meth:`last_run`) are dicts with ``run_id``, ``schedule``, ``trigger``,
    ``scheduled_for`` (aware UTC or None), ``started_at``, ``finished_at`` (None while running), ``status``
    (``running`` until ``run_finished``/``run_interrupted``, then the recorded status) and ``duration_ms``.
    """

    #: A first build reads files without a cache entry in two processes (see :meth:`_start_cold_build`) once
    #: they hold at least this many bytes; below it a second process costs more than it saves.
    PARALLEL_BUILD_BYTES = 32 << 20

    def __init__(self, directory: Path, retention_days: int = 90,
                 clock: Callable[[], datetime] = utc_now, refresh_interval: float = 0.02,
                 index_cache: bool = True, index_save_interval: float = 600.0, save_at_open: bool = True,
                 parallel_build: bool = True, first_build: _ColdBuild | None = None, defer_open: bool = False
                 ) -> None:
        self.directory = Path(directory)
        self.index_cache = index_cache
        self.parallel_build = parallel_build
        self._save_at_open = save_at_open
        self.index_save_interval = index_save_interval
        self._cache_dir = self.directory / _CACHE_DIR
        self._saved_at = time.monotonic()
        self._cache_write_warned = False
        self._old_cache_noted = False
        self._cache_read_warned = False
        self._damaged_warned: set[tuple[str, int]] = set()
        self.retention_days = retention_days
        self.refresh_interval = refresh_interval
        self._clock = clock
        self._refreshed_at = float("-inf")
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.RLock()
        self._flock = _ProcessLock(self.directory / _LOCK_NAME)
        self._empty_index()
        self._write_fd: int | None = None
        self._write_day: date | None = None
        self._first_build = first_build
        self._opened = False
        if not defer_open:
            self.open()

    def open(self) -> None:
        """Read the journal into the index (construction does it unless ``defer_open``; then call this before
        the first append or query: ``serve`` builds its API meanwhile). Idempotent."""
        with self._lock:
            if self._opened:
                return
            self._opened = True
            first_build, self._first_build = self._first_build, None
            gc_was_enabled = gc.isenabled()
            gc.disable()  # the first pass creates ~1 object per event; collections during it only cost time
            try:
                if self.index_cache:
                    self._open_cached(first_build)
                else:
                    if first_build is not None:
                        first_build.cancel()
                    self._scan_directory()
            finally:
                if gc_was_enabled:
                    gc.enable()

    def _empty_index(self) -> None:
        self._files: dict[int, _FileState] = {}  # day ordinal -> state
        self._ordinals: list[int] = []  # sorted keys of _files
        self._runs: dict[str, _Run] = {}  # decoded runs by id
        self._pending: set[str] = set()  # ids of the runs still encoded (_ScheduleIndex.pending)
        self._schedules: dict[str, _ScheduleIndex] = {}

    # ------------------------------------------------------------------ writing
    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        """Append one event and return the record as written (``ts`` first, then ``event`` and ``fields``).

        ``ts`` is the clock's instant (UTC, ms). ``run_started`` gets the writer's ``pid`` unless given, so
        :meth:`close_interrupted` can tell a crashed run from one another live process is still running.
        Unknown event names are written but logged as a warning. Raises ``OSError`` when the disk refuses.
        """
        if event not in EVENTS:
            log.warning("journal: unknown event %r", event)
        now = self._clock()
        record: dict[str, Any] = {"ts": iso_utc(now, ms=True), "event": event, **fields}
        if event == "run_started":
            record.setdefault("pid", os.getpid())
        line = encode_event(record)
        head = _HEAD.decode(line)
        day = now.astimezone(timezone.utc).date()
        with self._lock, self._flock:
            fd, state = self._writer(day)
            self._catch_up(state)  # lines another process appended since our last look
            if os.fstat(fd).st_size > state.offset:
                # Nobody writes while we hold the lock, so bytes after the last newline are a crashed
                # writer's half line: end it so it stays one invalid line instead of swallowing ours.
                _write_all(fd, b"\n")
                self._read_new(state)
            offset = state.offset
            _write_all(fd, line)
            if event in FSYNC_EVENTS:
                os.fsync(fd)
            state.offset += len(line)
            state.lines += 1
            if event.startswith("run_") or event in LIFE_EVENTS:  # task lines: found by _details when asked
                try:
                    self._index(head, (day.toordinal() << _OFFSET_BITS) | offset, state)
                except ValueError as exc:  # written as given; only the index cannot use it
                    log.warning("journal: %s:%d: %s not indexed: %s", state.path, state.lines, event, exc)
        return record

    def append_many(self, events: Iterable[tuple[str, dict[str, Any]]]) -> list[dict[str, Any]]:
        """Append several events under one lock and with one write; same rules as :meth:`append`, one ``ts``
        (the clock's instant at the call) for all. Returns the records as written, in order.

        Used by the runner to journal the ``run_started`` of every run due in the same instant in one go
        (500 schedules firing in the same second cost one lock round and one write instead of 500).
        """
        now = self._clock()
        ts = iso_utc(now, ms=True)
        records: list[dict[str, Any]] = []
        lines: list[bytes] = []
        for event, fields in events:
            if event not in EVENTS:
                log.warning("journal: unknown event %r", event)
            record: dict[str, Any] = {"ts": ts, "event": event, **fields}
            if event == "run_started":
                record.setdefault("pid", os.getpid())
            records.append(record)
            lines.append(encode_event(record))
        if not lines:
            return records
        heads = [_HEAD.decode(line) for line in lines]
        day = now.astimezone(timezone.utc).date()
        with self._lock, self._flock:
            fd, state = self._writer(day)
            self._catch_up(state)
            if os.fstat(fd).st_size > state.offset:  # a crashed writer's half line: see append()
                _write_all(fd, b"\n")
                self._read_new(state)
            _write_all(fd, b"".join(lines))
            if any(head.event in FSYNC_EVENTS for head in heads):
                os.fsync(fd)
            for head, line in zip(heads, lines):
                offset = state.offset
                state.offset += len(line)
                state.lines += 1
                if not head.event.startswith("run_") and head.event not in LIFE_EVENTS:
                    continue
                try:
                    self._index(head, (day.toordinal() << _OFFSET_BITS) | offset, state)
                except ValueError as exc:
                    log.warning("journal: %s:%d: %s not indexed: %s", state.path, state.lines, head.event, exc)
        return records

    def _writer(self, day: date) -> tuple[int, _FileState]:
        """The append descriptor for ``day`` (opened on first use, rotated at UTC midnight). Caller holds locks."""
        if not self._opened:  # (a deferred open: index what is there before adding to it)
            self.open()
        known = day.toordinal() in self._files
        state = self._state_for(day)
        if self._write_day != day or self._write_fd is None:
            if not known:  # a new day: first pick up files other processes created since the last scan
                self._scan_directory()
            self._close_writer()
            new_file = not state.path.exists()
            fd = os.open(state.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
            if new_file:
                fsync_dir(self.directory)
            self._write_fd, self._write_day = fd, day
        return self._write_fd, state

    def _catch_up(self, state: _FileState) -> None:
        """Index what other processes appended to the file before ``state``'s (a run started there just before
        midnight) and then to ``state``'s own file, in file order, as a fresh open would read them."""
        index = bisect.bisect_left(self._ordinals, state.day.toordinal())
        if index:
            self._read_new(self._files[self._ordinals[index - 1]])
        self._read_new(state)

    def _close_writer(self) -> None:
        if self._write_fd is not None:
            os.close(self._write_fd)
        self._write_fd, self._write_day = None, None

    def close(self) -> None:
        """Save the index cache and close the append descriptor (the index stays usable; a later append
        reopens)."""
        with self._lock:
            if self._first_build is not None:  # never opened: do not leave a second builder waiting
                self._first_build.cancel()
                self._first_build = None
            self.save_index()
            self._close_writer()

    # ------------------------------------------------------------------ reading and indexing
    def _state_for(self, day: date) -> _FileState:
        state = self._files.get(day.toordinal())
        if state is None:
            state = _FileState(day, self.directory / f"{day.isoformat()}.jsonl")
            self._files[day.toordinal()] = state
            bisect.insort(self._ordinals, day.toordinal())
        return state

    def _scan_directory(self) -> None:
        """Register day files not known yet (sorted by day) and read every file's new lines."""
        self._register_files()
        for ordinal in self._ordinals:
            self._read_new(self._files[ordinal])

    def _register_files(self) -> None:
        try:
            names = os.listdir(self.directory)
        except FileNotFoundError:
            return
        for name in sorted(names):
            m = _FILE_RE.match(name)
            if m:
                try:
                    self._state_for(date.fromisoformat(m.group(1)))
                except ValueError:
                    continue

    # ------------------------------------------------------------------ index cache
    def _open_cached(self, build: _ColdBuild | None = None) -> None:
        """First build: per file (oldest first) replay its valid cache entry, then read what the file gained
        since; drop entries of files that are gone; write the entries that changed (unless ``save_at_open`` is
        off: then the owner calls :meth:`save_index` when it suits, e.g. once a server is up).

        Files without a valid entry are read here; when they are many (a first start, an upgrade of the cache
        format, a restored journal), a forked process reads them too, newest first, while this one reads them
        oldest first (``build``, from :meth:`start_first_build`, or started here); where they meet, the entries
        it built are replayed: the same index, in about half the time, however the work falls between the two."""
        try:
            self._register_files()
            states = [self._files[ordinal] for ordinal in self._ordinals]
            entries = [self._cache_entry(state) for state in states]
            if build is None:
                build = self._start_cold_build(states, entries)
            self._read_all(states, entries, build)
        finally:
            if build is not None:  # (after an error, or when its files are gone: never leave the child waiting)
                build.cancel()
        self._sweep_cache()
        if self._save_at_open:
            self.save_index()

    def _read_all(self, states: list[_FileState], entries: list[_IndexCache | None],
                  build: _ColdBuild | None) -> None:
        for number, (state, entry) in enumerate(zip(states, entries)):
            if entry is not None:
                self._replay(state, entry)
            elif build is not None and not build.claim(state.day.toordinal()):
                if self._merge_side(build, states[number:], entries[number:]):
                    return
                built = build.entry(state.day.toordinal())  # the second builder has it (waits for it)
                if built is not None and self._fits(built) and self._describes(state, built.entry):
                    self._replay_built(state, built)
            self._read_new(state)

    def _merge_side(self, build: _ColdBuild, states: list[_FileState], entries: list[_IndexCache | None]) -> bool:
        """Where the open meets the second builder: take all it built for ``states`` (the rest of the files, in
        order) at once, as replaying its entries one by one would (:meth:`_replay_built`), and read what the files
        gained since. False, with nothing changed, unless every one of them is the child's with an entry that fits
        (no run id of the index or of another of its files started again) and describes the file, and only the
        newest grew; then the entries are replayed one by one (the caller goes on)."""
        side = build.side()
        if side is None or side.clash or any(entries):
            return False
        if sorted(side.built) != [state.day.toordinal() for state in states]:  # (a file it read is gone, ...)
            return False
        built: list[_Received] = []
        for number, state in enumerate(states):
            one = side.built.get(state.day.toordinal())
            if one is None or one.entry is None or not self._describes(state, one.entry):
                return False
            if number < len(states) - 1 and os.stat(state.name).st_size != one.entry.size:
                return False  # an older file that grew: its new lines go before the newer files' (read in order)
            built.append(one)
        if not side.ids.isdisjoint(self._runs.keys()) or not side.ids.isdisjoint(self._pending):
            return False
        if len(side.ids) > len(self._pending):  # insert the smaller into the larger
            side.ids |= self._pending
            self._pending = side.ids
        else:
            self._pending |= side.ids
        schedule = self._schedule
        for sid, days in side.groups.items():
            days.sort(key=_DAY)
            schedule(sid).pending += days
        self._take_maxima(side.last_slots, side.successes)  # (ids as decoded: interned once, not once per file)
        for state, one in zip(states, built):
            entry = one.entry
            state.offset = entry.offset
            state.saved = -2  # not on disk yet
            state.lines = entry.lines
            state.slots = {sys.intern(sid): slot for sid, slot in entry.slots.items()}
            self._take_life(state, entry.life)
            self._keep_pending(state, entry, [group[0] for group in entry.groups])
            state.lazy = None if one.orphan_lines else entry
        for state, one in zip(states, built):  # their lines of runs of earlier files, in file order
            day = state.day.toordinal()
            for pos, head in one.orphan_lines:
                run = self._run(head.run_id)  # type: ignore[arg-type]
                if run is not None and run.positions[0] >> _OFFSET_BITS > day:  # started in a later file:
                    state.orphans.add(head.run_id)  # type: ignore[arg-type]  # unknown when this line was written
                    continue
                self._apply_orphan_line(state, pos, head)
        for state in states:
            self._read_new(state)
        return True

    def _start_cold_build(self, states: list[_FileState],
                          entries: list[_IndexCache | None]) -> _ColdBuild | None:
        """Fork a process that shares the reading of the files without a valid entry (see :class:`_ColdBuild`);
        None when that does not pay (see :func:`_plan_cold_build`) or the fork fails."""
        if not self.parallel_build:
            return None
        sizes = []
        for state, entry in zip(states, entries):
            try:
                sizes.append(0 if entry is not None else os.stat(state.name).st_size)
            except OSError:
                sizes.append(0)
        days = _plan_cold_build([state.day.toordinal() for state in states], sizes, self.PARALLEL_BUILD_BYTES)
        return _ColdBuild.start(self.directory, days) if days else None

    @classmethod
    def start_first_build(cls, directory: Path) -> _ColdBuild | None:
        """Start the second builder of a first build before opening the journal, so that it works while the
        caller does other things first (``serve`` imports the API and reads the schedule files): pass the result
        as ``first_build``. It reads the files to read newest first until it meets the open, which reads them
        oldest first (:class:`_ColdBuild`): the earlier it starts, the more it reads. Files count as to be read
        when their cache entry is missing or of another format (a guess from the entry's first bytes; the open
        checks properly). None when it does not pay (see :func:`_plan_cold_build`) or ``fork`` is missing."""
        directory = Path(directory)
        try:
            names = sorted(name for name in os.listdir(directory) if _FILE_RE.match(name))
        except OSError:
            return None
        ordinals, sizes = [], []
        for name in names:
            try:
                ordinal = date.fromisoformat(name[:10]).toordinal()
                size = os.stat(directory / name).st_size
            except (ValueError, OSError):
                continue
            try:
                with open(directory / _CACHE_DIR / f"{name[:10]}{_CACHE_SUFFIX}", "rb") as handle:
                    if handle.read(len(_CACHE_HEADER)) == _CACHE_HEADER:
                        size = 0
            except OSError:
                pass
            ordinals.append(ordinal)
            sizes.append(size)
        days = _plan_cold_build(ordinals, sizes, cls.PARALLEL_BUILD_BYTES)
        return _ColdBuild.start(directory, days) if days else None

    def _fits(self, built: _Received) -> bool:
        """Whether an entry built apart from this index (by :class:`_ColdBuild`, which read the file alone)
        replays as reading the file now would: it starts no run id this index knows already (a restarted run
        id; its lines of runs started earlier come with it, see :meth:`_replay_built`)."""
        ids = built.entry.ids  # type: ignore[union-attr]
        return self._runs.keys().isdisjoint(ids) and self._pending.isdisjoint(ids)

    def _replay_built(self, state: _FileState, built: _Received) -> None:
        """Replay a second builder's entry: the entry, then its lines of runs it did not see start (runs of
        earlier files, or runs whose start is gone) as reading them would take them (:meth:`_index`)."""
        entry = built.entry
        entry.orphans = []  # orphans only of the file read alone: the lines say what they are here
        self._replay(state, entry, shared=built.shared)
        state.saved = -2  # not on disk yet
        state.lazy = None if built.orphan_lines or not state.pending else entry
        for pos, head in built.orphan_lines:
            self._apply_orphan_line(state, pos, head)

    def _apply_orphan_line(self, state: _FileState, pos: int, head: _Head) -> None:
        """Index a line a second builder could not (its run started in an earlier file) as reading it would."""
        try:
            self._index(head, pos, state)
        except ValueError as exc:
            state.uncacheable = True  # keeps the warning at every open
            try:
                with open(state.path, "rb") as handle:
                    number = handle.read(pos & _OFFSET_MASK).count(b"\n") + 1
            except OSError:
                number = 0
            log.warning("journal: %s:%d: invalid line skipped: %s", state.path, number, exc)

    def _cache_path(self, state: _FileState) -> Path:
        return self._cache_dir / f"{state.day.isoformat()}{_CACHE_SUFFIX}"

    def _cache_entry(self, state: _FileState) -> _IndexCache | None:
        """The cache entry of ``state``'s file if it still describes the file's first ``offset`` bytes."""
        path = self._cache_path(state)
        try:
            data = path.read_bytes()
        except FileNotFoundError:
            return None
        except OSError as exc:
            if not self._cache_read_warned:  # (once: a .index that is a file fails for every day file alike)
                self._cache_read_warned = True
                log.warning("journal: index cache %s unreadable (%s); reading the day files without it", path,
                            exc)
            return None
        body = _unsealed(data)
        try:
            if body is None:
                raise msgspec.DecodeError("it fails its check")
            entry = _CACHE_DECODER.decode(body)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            version = None
            try:  # (an older format has no check after its bytes)
                raw = msgspec.msgpack.decode(data if body is None else body)
                version = raw[0] if isinstance(raw, list) and raw and isinstance(raw[0], int) else None
            except msgspec.DecodeError:
                pass
            if version is not None and version != _CACHE_VERSION:
                self._version_mismatch(path, version, state)
            else:
                log.warning("journal: index cache %s is corrupt (%s); reading %s in full", path, exc, state.path)
            return None
        if entry.version != _CACHE_VERSION:
            self._version_mismatch(path, entry.version, state)
            return None
        return entry if self._describes(state, entry) else None

    @staticmethod
    def _describes(state: _FileState, entry: _IndexCache) -> bool:
        """Whether ``entry`` still describes the first ``entry.offset`` bytes of ``state``'s file: the same inode,
        not smaller, unchanged or only appended to (append-only), and the ``tail`` bytes before the offset the
        same (a file rewritten in place with the same size and time would otherwise pass)."""
        try:
            st = os.stat(state.name)
        except OSError:
            return False
        if st.st_ino != entry.ino or st.st_size < entry.size or entry.offset > entry.size:
            return False
        if st.st_size == entry.size and st.st_mtime_ns != entry.mtime_ns:
            return False
        try:
            with open(state.path, "rb") as handle:
                handle.seek(entry.offset - len(entry.tail))
                return handle.read(len(entry.tail)) == entry.tail
        except OSError:
            return False

    def _version_mismatch(self, path: Path, version: Any, state: _FileState) -> None:
        """An entry of an older cache format (after an upgrade: noted once per open) or of an unknown one."""
        if isinstance(version, int) and 0 < version < _CACHE_VERSION:
            if not self._old_cache_noted:
                self._old_cache_noted = True
                log.info("journal: index cache in %s has format %d, this version writes %d; rebuilding it",
                         self._cache_dir, version, _CACHE_VERSION)
            return
        log.warning("journal: index cache %s has version %s, not %d; reading %s in full",
                    path, version, _CACHE_VERSION, state.path)

    def _take_maxima(self, last_slots: dict[str, datetime], successes: dict[str, datetime]) -> None:
        """Fold per-schedule latest slots and latest successes (schedule id -> aware UTC) into the index: each
        schedule keeps the later of its own and the given one; ids are interned (one string object per id)."""
        schedule, intern = self._schedule, sys.intern
        for sid, slot in last_slots.items():
            entry = schedule(intern(sid))
            entry.last_slot = _max(entry.last_slot, slot)
        for sid, finished in successes.items():
            entry = schedule(intern(sid))
            entry.last_success = _max(entry.last_success, finished)

    def _replay(self, state: _FileState, entry: _IndexCache, shared: bool = False) -> None:
        """Apply a cache entry of ``state``'s file to the index (as reading its first ``offset`` bytes would).
        ``shared``: its group ids are interned already (:func:`_share_schedule_ids`).

        Its runs stay encoded (pending, see :class:`_ScheduleIndex`) unless one of their ids is in the index
        already (a run id started again: then they are decoded and replace the older run by id, as reading the
        lines would); groups with a run that did not end in the file are decoded at once (a later line may end
        it; :meth:`_orphaned_runs` looks at decoded runs only)."""
        ids = entry.ids
        runs = self._runs
        pending = self._pending
        schedule = self._schedule
        day = state.day.toordinal()
        intern = sys.intern
        sids = [group[0] for group in entry.groups] if shared else [intern(group[0]) for group in entry.groups]
        if runs.keys().isdisjoint(ids) and pending.isdisjoint(ids):
            for sid, raw, group in zip(sids, entry.starts, entry.groups):
                schedule(sid).pending.append((day, raw, group[1]))
            pending.update(ids)
            self._keep_pending(state, entry, sids)
        else:
            for run_id in ids:  # the older runs of those ids first, so that the newer replace them by id
                if run_id in pending:
                    self._run(run_id)
            for sid, raw in zip(sids, entry.starts):
                group = _RUNS_DECODER.decode(raw)
                for run in group:  # one string object per schedule id, as reading the lines gives (memory)
                    run.schedule = sid
                schedule(sid).runs.extend(group)
                runs.update(zip(map(_RUN_ID, group), group))
        self._take_maxima(entry.last_slots, entry.successes)
        orphans = state.orphans
        orphans.update(entry.orphans)
        for more in entry.more:
            run = self._run(more.run_id)  # type: ignore[assignment]
            if run is None:  # its run_started was in a file deleted since
                orphans.add(more.run_id)
                continue
            run.positions += more.positions
            if more.status is not None:
                run.status = more.status
                run.finished_at = more.finished_at
                run.finish_pos = more.finish_pos
                if run.status == "succeeded":
                    sched = schedule(run.schedule)
                    sched.last_success = _max(sched.last_success, more.finished_at)  # type: ignore[arg-type]
        for sid, slot in entry.slots.items():
            sid = intern(sid)
            state.slots[sid] = slot
            sched = schedule(sid)
            sched.last_slot = _max(sched.last_slot, slot)
        self._take_life(state, entry.life)
        state.offset = state.saved = entry.offset
        state.lines = entry.lines

    def _keep_pending(self, state: _FileState, entry: _IndexCache, sids: list[str]) -> None:
        """After ``entry``'s groups went pending (schedule ids ``sids``, interned): note them on ``state`` and
        decode at once the groups with a run still running at the end of the file (a later line may end it;
        :meth:`_orphaned_runs` looks at decoded runs only)."""
        state.pending = sids
        day = state.day.toordinal()
        for sid, (_, _, running) in zip(sids, entry.groups):
            if running:
                self._materialize(sid, day=day)

    def _take_life(self, state: _FileState, life: dict[str, tuple[str, datetime]]) -> None:
        """Fold a file's life effects (:data:`_Life`, as a cache entry has them) into the index, after what
        it holds (files in order), and keep them as the file's."""
        for sid, (kind, when) in life.items():
            self._fold_life(state, sys.intern(sid), (kind, when))

    def _fold_life(self, state: _FileState, schedule_id: str, effect: _Life) -> None:
        """Apply one life effect (of a line, or a file's) after what the index and ``state``'s file hold."""
        state.life[schedule_id] = _life_then(state.life.get(schedule_id), effect)  # type: ignore[assignment]
        entry = self._schedule(schedule_id)
        entry.life = _life_then(entry.life, effect)

    def _run(self, run_id: str) -> _Run | None:
        """The index entry of ``run_id``, or None. When it is pending (:class:`_ScheduleIndex`), the schedule its
        id names (``<schedule>@...``, as the runner writes them) is decoded, and every schedule when that is
        not the one."""
        run = self._runs.get(run_id)
        if run is None and run_id in self._pending:
            self._materialize(run_id.partition("@")[0])
            run = self._runs.get(run_id)
            if run is None:  # an id of another form (hand-written lines)
                for sid in [sid for sid, entry in self._schedules.items() if entry.pending]:
                    self._materialize(sid)
                run = self._runs.get(run_id)
        return run

    def _materialize(self, schedule_id: str, day: int | None = None, newest: bool = False,
                     before: int | None = None) -> None:
        """Decode pending runs of ``schedule_id`` (see :class:`_ScheduleIndex`) into the index: all of them, or
        only those of ``day`` (ordinal), of days ``before`` an ordinal, or the newest day's (``newest``)."""
        entry = self._schedules.get(schedule_id)
        if entry is None or not entry.pending:
            return
        pending = entry.pending
        if newest:
            take, keep = pending[-1:], pending[:-1]
        elif day is not None:
            take = [group for group in pending if group[0] == day]
            keep = [group for group in pending if group[0] != day]
        elif before is not None:
            take = [group for group in pending if group[0] < before]
            keep = [group for group in pending if group[0] >= before]
        else:
            take, keep = pending, []
        if not take:
            return
        decoded: list[_Run] = []
        for _, raw, _ in take:  # (oldest day first: in file order; all decoded before anything changes)
            decoded += _RUNS_DECODER.decode(raw)
        entry.pending = keep
        runs = self._runs
        unpend = self._pending.discard
        for run in decoded:
            run.schedule = schedule_id  # one string object per schedule id (memory)
            unpend(run.run_id)
            runs[run.run_id] = run
        if not decoded:
            return
        have = entry.runs
        if not have or decoded[0].positions > have[-1].positions:
            have += decoded
        else:
            entry.runs = sorted(have + decoded, key=_FIRST_POSITION)

    def _materialize_day(self, state: _FileState) -> None:
        """Decode every pending run of ``state``'s file (before its cache entry is derived from the index)."""
        day = state.day.toordinal()
        for sid in state.pending:
            self._materialize(sid, day=day)
        state.pending = []

    def save_index(self) -> int:
        """Write the cache entry of every file whose index grew since its entry was written (atomically: temp
        file and rename) and delete the entries of files that cannot be cached; returns the number written.
        A write error is logged once and otherwise ignored (the cache only saves time). Nothing before
        :meth:`open` (a deferred open that never happened)."""
        if not self.index_cache or not self._opened:
            return 0
        with self._lock:
            self._saved_at = time.monotonic()
            self._scan_directory()  # the entries describe the files as they are, read in order
            todo: list[_FileState] = []
            for ordinal in self._ordinals:
                state = self._files[ordinal]
                if state.uncacheable:
                    if state.saved != -1:
                        _unlink(self._cache_path(state))
                        state.saved = -1
                elif state.offset != state.saved and state.offset > 0:
                    todo.append(state)
            if not todo:
                return 0
            written = 0
            as_read: list[tuple[_FileState, _IndexCache]] = []
            derive: list[_FileState] = []
            for state in todo:
                lazy, state.lazy = state.lazy, None
                if lazy is not None and lazy.offset == state.offset:
                    as_read.append((state, lazy))  # written as it came, its runs still encoded
                else:
                    self._materialize_day(state)
                    derive.append(state)
            derived = as_read + (self._derive(derive) if derive else [])
            for state in todo:
                if state.uncacheable and state.saved != -1:  # found by _derive (a status the format lacks)
                    _unlink(self._cache_path(state))
                    state.saved = -1
            for state, entry in derived:
                try:
                    self._cache_dir.mkdir(exist_ok=True)
                    path = self._cache_path(state)
                    tmp = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.tmp")
                    tmp.write_bytes(_sealed(_CACHE_ENCODER.encode(entry)))
                    os.replace(tmp, path)
                except OSError as exc:
                    if not self._cache_write_warned:
                        self._cache_write_warned = True
                        log.warning("journal: cannot write the index cache in %s: %s", self._cache_dir, exc)
                    return written
                state.saved = entry.offset
                written += 1
            return written

    def _derive(self, states: list[_FileState]) -> list[tuple[_FileState, _IndexCache]]:
        """Cache entries for ``states`` (cacheable files whose runs are decoded: :meth:`_materialize_day`) from
        the in-memory index."""
        wanted = {state.day.toordinal(): state for state in states}
        low = min(wanted)
        starts: dict[int, dict[str, list[_Run]]] = {o: {} for o in wanted}
        mores: dict[int, list[_CachedMore]] = {o: [] for o in wanted}
        replace = msgspec.structs.replace
        statuses, triggers, slot_triggers = _CACHEABLE_STATUSES, _CACHEABLE_TRIGGERS, SLOT_TRIGGERS
        foreign: set[int] = set()  # files with a run of a status or trigger the cache format does not know

        for run in self._runs.values():
            positions = run.positions
            last = positions[-1] >> _OFFSET_BITS
            if last < low:
                continue
            first = positions[0] >> _OFFSET_BITS
            if run.status not in statuses or run.trigger not in triggers:
                foreign.update(range(first, last + 1))
            if first == last:  # the common case: the whole run (and its end, if any) in one file
                if first in wanted:
                    groups = starts[first]
                    group = groups.get(run.schedule)
                    if group is None:
                        groups[run.schedule] = [run]
                    else:
                        group.append(run)
                continue
            finish = run.finish_pos
            finish_day = -1 if finish is None else finish >> _OFFSET_BITS
            for ordinal in range(max(first, low), last + 1):
                if ordinal not in wanted:
                    continue
                lo = bisect.bisect_left(positions, ordinal << _OFFSET_BITS)
                hi = bisect.bisect_left(positions, (ordinal + 1) << _OFFSET_BITS)
                if lo == hi:
                    continue
                ended = finish_day == ordinal
                if ordinal == first:
                    part = replace(run, positions=positions[lo:hi]) if ended else replace(
                        run, positions=positions[lo:hi], status=RUNNING, finished_at=None, finish_pos=None)
                    starts[ordinal].setdefault(run.schedule, []).append(part)
                else:
                    mores[ordinal].append(_CachedMore(
                        run.run_id, run.status if ended else None, run.finished_at if ended else None,
                        finish if ended else None, positions[lo:hi]))
        out = []
        for ordinal, state in wanted.items():
            if ordinal in foreign:
                state.uncacheable = True  # read in full at every open, as a file with lines that cannot be replayed
                continue
            described = _described(state)
            if described is None:
                continue
            st, tail = described
            out.append((state, _entry_of(state, st, tail, starts[ordinal], mores[ordinal])))
        return out

    def _entry_alone(self, state: _FileState) -> _BuiltCache | None:
        """:meth:`_derive` for an index that holds ``state``'s file only (a second builder's, see
        :class:`_ColdBuild`): every run started in it, so the runs are the per-schedule lists as they are.
        ``last_slots`` holds each schedule's ``last_slot`` with its skipped and missed slots (``slots`` has
        those too: a replay takes the maximum of both). None when a run has a status or trigger the cache format
        does not know, or the file changed meanwhile (the parent reads it then)."""
        groups: list[tuple[str, int, bool]] = []
        ids: list[str] = []
        starts: list[list[_Run]] = []
        last_slots: dict[str, datetime] = {}
        successes: dict[str, datetime] = {}
        for sid, entry in self._schedules.items():
            runs = entry.runs  # (in file order: a file read alone)
            if runs:
                groups.append((sid, len(runs), RUNNING in map(_STATUS, runs)))
                ids += map(_RUN_ID, runs)
                starts.append(runs)
            if entry.last_slot is not None:
                last_slots[sid] = entry.last_slot
            if entry.last_success is not None:
                successes[sid] = entry.last_success
        if not _CACHEABLE_STATUSES.issuperset(map(_STATUS, chain.from_iterable(starts))) or not (
                _CACHEABLE_TRIGGERS.issuperset(map(_TRIGGER, chain.from_iterable(starts)))):
            return None
        described = _described(state)
        if described is None:
            return None
        st, tail = described
        return _BuiltCache(_CACHE_VERSION, st.st_ino, st.st_size, st.st_mtime_ns, state.offset, state.lines, tail,
                           groups, ids, [], last_slots, successes, dict(state.slots), sorted(state.orphans),
                           dict(state.life), starts)

    def _sweep_cache(self) -> None:
        """Delete cache entries whose day file is gone, and temp files of crashed writers (older than 1 h)."""
        try:
            names = os.listdir(self._cache_dir)
        except OSError:
            return
        known = {f"{state.day.isoformat()}{_CACHE_SUFFIX}" for state in self._files.values()}
        for name in names:
            path = self._cache_dir / name
            if name.endswith(_CACHE_SUFFIX) and not name.startswith(".") and name not in known:
                _unlink(path)
            elif name.endswith(".tmp"):
                try:
                    if time.time() - path.stat().st_mtime > 3600:
                        _unlink(path)
                except OSError:
                    pass

    def _read_new(self, state: _FileState) -> None:
        """Index complete lines appended to ``state``'s file since its offset. Caller holds ``self._lock``."""
        try:
            size = os.stat(state.name).st_size
        except FileNotFoundError:
            return
        if size < state.offset:
            log.warning("journal: %s shrank from %d to %d bytes; reading it again", state.path, state.offset, size)
            state.offset = state.lines = 0
        if size == state.offset:
            return
        base_pos = state.day.toordinal() << _OFFSET_BITS
        with open(state.path, "rb") as handle:
            handle.seek(state.offset)
            remaining = size - state.offset
            pending = b""
            while remaining > 0:
                chunk = handle.read(min(_READ_CHUNK, remaining))
                if not chunk:
                    break
                remaining -= len(chunk)
                data = pending + chunk
                end = data.rfind(b"\n")
                if end < 0:
                    pending = data
                    continue
                pending = data[end + 1:]
                self._ingest(state, data, end, base_pos)
        if pending and not state.torn_warned:
            state.torn_warned = True
            log.warning("journal: %s:%d: incomplete last line (%d bytes) skipped (torn write, or a write in progress)",
                        state.path, state.lines + 1, len(pending))

    def _ingest(self, state: _FileState, data: bytes, end: int, base_pos: int) -> None:
        """Index the complete lines ``data[:end]`` (``end`` is the index of the last newline).

        Only run-level lines (``run_*`` events) feed the index; task lines are found again by :meth:`_details`
        when a run's details are asked for. Fast path (lines as :func:`encode_event` writes them: one
        ``"event":"`` key per line, right after the ``ts`` value, no other ``"event"`` string, no ``\\u`` escape in
        its value or a key): the ``run_*`` lines are found with byte searches and only they are decoded. Any other
        chunk (hand-written
        lines, invalid or blank lines, a terminated torn line without its event, a result with an ``event`` key)
        takes the full path: every line decoded, invalid ones warned about. Both read instants alike (see
        :func:`parse_utc`). The format is checked by per-chunk counts, so one known gap: a line without its event
        (torn, hand-written) in the same chunk as a result holding ``"...Z","event":"`` of its own (a journal record
        inside a result) balances them; that line is skipped without a warning (the index is the same as the full
        path's; see tests/test_scan_qa.py)."""
        offset = state.offset
        nlines = data.count(b"\n", 0, end + 1)
        lines = self._run_lines(data, end, nlines)
        if lines is None:
            self._ingest_all(state, data, end, base_pos)
            return
        starts, raws = lines
        try:
            heads: list[_RunHead] = _RUN_HEADS.decode(b"[" + b",".join(raws) + b"]")
        except (msgspec.DecodeError, msgspec.ValidationError):
            self._ingest_all(state, data, end, base_pos)
            return
        if len(heads) != len(raws):  # a line of several comma-joined objects ('{...},{...}'): not one event
            self._ingest_all(state, data, end, base_pos)
            return
        index = self._index
        runs = self._runs
        runs_get = runs.get
        pending = self._pending
        schedules = self._schedules
        schedule = self._schedule
        orphans = state.orphans
        utc = _UTC
        as_utc = _as_utc
        intern = sys.intern
        new_run = _Run
        slot_triggers = SLOT_TRIGGERS
        # The common lines (a run's first start, its first end) inline; everything else through _index, which
        # does the same for them (instants are parsed before anything changes, so a ValueError changes nothing).
        # Statuses and triggers are literals of _RunHead: the same string objects for every run already.
        for head, pos, raw in zip(heads, map((base_pos | offset).__add__, starts), raws):
            try:
                event = head.event
                run_id = head.run_id
                if event == "run_finished" and run_id:
                    run = runs_get(run_id)
                    if run is not None and run.finish_pos is None:
                        finished_at = head.ts
                        if finished_at.tzinfo is not utc:
                            finished_at = as_utc(finished_at)
                        run.positions += (pos,)
                        run.status = status = head.status or "unknown"
                        run.finished_at = finished_at
                        run.finish_pos = pos
                        if status == "succeeded":
                            entry = schedules.get(run.schedule) or schedule(run.schedule)
                            if entry.last_success is None or finished_at > entry.last_success:
                                entry.last_success = finished_at
                        continue
                elif (event == "run_started" and run_id and run_id not in runs and run_id not in orphans
                      and run_id not in pending):
                    slot = head.scheduled_for
                    if slot is not None and slot.tzinfo is not utc:
                        slot = as_utc(slot)
                    started_at = head.ts
                    if started_at.tzinfo is not utc:
                        started_at = as_utc(started_at)
                    sid = intern(head.schedule or run_id.partition("@")[0])
                    trigger = head.trigger
                    pid = head.pid
                    if pid is not None and not 0 < pid <= _MAX_PID:
                        pid = None
                    run = runs[run_id] = new_run(run_id, sid, trigger, slot, started_at, pid, (pos,))
                    entry = schedules.get(sid) or schedule(sid)
                    entry.runs.append(run)
                    if slot is not None and trigger in slot_triggers and (entry.last_slot is None
                                                                          or slot > entry.last_slot):
                        entry.last_slot = slot
                    continue
                index(_HEAD.decode(raw), pos, state)  # the rest: instants as strings, as _index wants
            except ValueError as exc:
                state.uncacheable = True  # keeps the warning at every open
                number = state.lines + 1 + data.count(b"\n", 0, (pos & _OFFSET_MASK) - offset)
                log.warning("journal: %s:%d: invalid line skipped: %s", state.path, number, exc)
        # Life events (schedule_loaded, _paused, _resumed, _removed: one per schedule and start, a few per edit), in
        # file order, decoded in one call (per line when one of them is not a valid line).
        starts, raws = _lines_containing(data, end, _SCHEDULE_EVENT)
        if raws:
            try:
                lives: list[_Head | None] = _HEADS.decode(b"[" + b",".join(raws) + b"]")
                if len(lives) != len(raws):
                    raise msgspec.DecodeError("not one object per line")
            except (msgspec.DecodeError, msgspec.ValidationError):
                lives = [self._decode_line(state, state.lines + 1 + data.count(b"\n", 0, start), raw)
                         for start, raw in zip(starts, raws)]
            for start, head in zip(starts, lives):
                if head is None or head.event not in LIFE_EVENTS:  # (invalid: warned; or one named in a value)
                    continue
                try:
                    index(head, base_pos | (offset + start), state)
                except ValueError as exc:
                    state.uncacheable = True
                    number = state.lines + 1 + data.count(b"\n", 0, start)
                    log.warning("journal: %s:%d: invalid line skipped: %s", state.path, number, exc)
        state.offset = offset + end + 1
        state.lines += nlines
        state.torn_warned = False

    @staticmethod
    def _run_lines(data: bytes, end: int, nlines: int) -> tuple[list[int], list[bytes]] | None:
        """Start offsets and bytes of the ``run_*`` lines in ``data[:end]``, or None when the chunk is not
        in the journal's own line format (see :meth:`_ingest`)."""
        # One "event" token per line, written as the writer does: a key with a string value right after the "ts"
        # value (...Z","event":"; no spaces, no \u escape in it): then no run-level line escapes the search below.
        # A task result's own {"event":...} is not after a "ts" value: it no longer balances a line without its
        # event (such a chunk takes the full path, which warns about that line). A "event":"run_..." nested in
        # another line's value is found too; that line decodes to its own event, which _RunHead refuses.
        if data.count(b'Z","event":"', 0, end) != nlines or data.count(b'"event"', 0, end) != nlines:
            return None
        # An escape in an event value could spell "run_" without those bytes, one in a key "event" (only \u can:
        # the others stand for characters an event name or key does not have), so the (rare) chunks with one are
        # looked at closer. A backslash first: a one-byte search is a memchr (0.03 s per 190 MiB, b"\\u" 0.2 s).
        if (data.find(b"\\", 0, end) >= 0 and data.find(b"\\u", 0, end) >= 0
                and _ESCAPED_EVENT.search(data, 0, end) is not None):
            return None
        return _lines_containing(data, end, _RUN_EVENT)

    def _ingest_all(self, state: _FileState, data: bytes, end: int, base_pos: int) -> None:
        """:meth:`_ingest` decoding every line (invalid lines are skipped with a warning naming ``file:line``)."""
        lines = data[:end].split(b"\n")
        try:  # one decoder call per chunk; any bad line sends the chunk down the per-line path
            heads: list[_Head | None] = _HEADS.decode(b"[" + b",".join(lines) + b"]")
            if len(heads) != len(lines):  # a line of several comma-joined objects: decoded per line, it is invalid
                raise msgspec.DecodeError("not one object per line")
        except (msgspec.DecodeError, msgspec.ValidationError):
            heads = [self._decode_line(state, state.lines + number, line) for number, line in enumerate(lines, 1)]
        offset = state.offset
        # Start positions of the lines, computed in C: pos_k = base | offset + sum(len(line_i) + 1 for i < k).
        starts = accumulate(map(_PLUS_ONE, map(len, lines)), initial=base_pos | offset)
        index = self._index
        for head, pos in zip(heads, starts):
            if head is None or not (head.event.startswith("run_") or head.event in LIFE_EVENTS):
                continue
            try:
                index(head, pos, state)
            except ValueError as exc:
                state.uncacheable = True  # keeps the warning at every open
                number = state.lines + 1 + data.count(b"\n", 0, (pos & _OFFSET_MASK) - offset)
                log.warning("journal: %s:%d: invalid line skipped: %s", state.path, number, exc)
        state.offset = offset + end + 1
        state.lines += len(lines)
        state.torn_warned = False

    @staticmethod
    def _decode_line(state: _FileState, number: int, line: bytes) -> _Head | None:
        if not line.strip():
            return None
        try:
            return _HEAD.decode(line)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            state.uncacheable = True  # keeps the warning at every open
            log.warning("journal: %s:%d: invalid line skipped: %s", state.path, number, exc)
            return None

    def _schedule(self, schedule_id: str) -> _ScheduleIndex:
        entry = self._schedules.get(schedule_id)
        if entry is None:
            entry = self._schedules[schedule_id] = _ScheduleIndex()
        return entry

    def _index(self, head: _Head, pos: int, state: _FileState) -> None:
        """Add one event (at ``pos`` in ``state``'s file) to the index. Raises ``ValueError`` for a malformed
        instant (nothing is changed)."""
        event = head.event
        if event == "run_started" and head.run_id:
            run = _Run.from_head(head, pos)
            old = self._run(run.run_id)
            if old is not None or run.run_id in state.orphans:  # cannot be replayed per file: see _FileState
                state.uncacheable = True
                if old is not None:  # every file with a line of the replaced run
                    for ordinal in {p >> _OFFSET_BITS for p in old.positions}:
                        self._uncacheable(ordinal << _OFFSET_BITS)
            self._runs[run.run_id] = run
            entry = self._schedule(run.schedule)
            entry.runs.append(run)
            if run.trigger in SLOT_TRIGGERS and run.scheduled_for is not None:
                entry.last_slot = _max(entry.last_slot, run.scheduled_for)
            return
        if event in LIFE_EVENTS:
            kind = _life_of(head)
            if kind is not None and head.schedule:
                self._fold_life(state, sys.intern(head.schedule), (kind, parse_utc(head.ts)))
            return
        if event in ("run_skipped", "run_missed"):
            if head.schedule and head.scheduled_for is not None:
                slot = parse_utc(head.scheduled_for)
                schedule = sys.intern(head.schedule)
                entry = self._schedule(schedule)
                entry.last_slot = _max(entry.last_slot, slot)
                state.slots[schedule] = _max(state.slots.get(schedule), slot)
            return
        if not head.run_id:
            return
        run = self._run(head.run_id)
        if run is None:
            state.orphans.add(head.run_id)
            head.pid = _pid(head.pid)  # (the line travels from a second builder: msgpack takes 64 bits)
            state.orphan_lines.append((pos, head))
            return
        if event == "run_finished":
            finished_at = parse_utc(head.ts)
            if run.finish_pos is not None:  # ended twice
                state.uncacheable = True
                self._uncacheable(run.finish_pos)
            run.positions += (pos,)
            run.status = sys.intern(head.status or "unknown")
            run.finished_at = finished_at
            run.finish_pos = pos
            if run.status == "succeeded":
                entry = self._schedule(run.schedule)
                entry.last_success = _max(entry.last_success, finished_at)
        elif event == "run_interrupted" and run.status == RUNNING:
            finished_at = parse_utc(head.ts)
            run.positions += (pos,)
            run.status = INTERRUPTED
            run.finished_at = finished_at
            run.finish_pos = pos
        else:
            run.positions += (pos,)

    def _uncacheable(self, pos: int) -> None:
        state = self._files.get(pos >> _OFFSET_BITS)
        if state is not None:
            state.uncacheable = True

    def refresh(self, force: bool = False) -> None:
        """Pick up lines other processes appended (newest two known files and today's file).

        Called by every query, at most once per ``refresh_interval`` seconds (monotonic) unless ``force``: lines
        of another process may show up that much later; this process's own appends are indexed at once.
        """
        if not self._opened:
            self.open()
        now = time.monotonic()
        if not force and now - self._refreshed_at < self.refresh_interval:
            return
        self._refreshed_at = now
        with self._lock:
            for ordinal in self._ordinals[-2:]:
                self._read_new(self._files[ordinal])
            today = self._clock().astimezone(timezone.utc).date()
            if today.toordinal() not in self._files and os.path.exists(
                    os.path.join(self.directory, f"{today.isoformat()}.jsonl")):
                self._scan_directory()
            if self.index_cache and now - self._saved_at >= self.index_save_interval:
                self.save_index()

    # ------------------------------------------------------------------ queries
    def runs(self, schedule_id: str, page: int = 1, per_page: int = 50,
             status: str | Iterable[str] | None = None) -> list[dict[str, Any]]:
        """Run summaries of ``schedule_id``, newest first; ``page`` is 1-based. ``status`` filters (one status or
        several). Returns ``[]`` past the last page or for an unknown schedule. Raises ``ValueError`` for
        ``page`` < 1 or ``per_page`` < 1."""
        if page < 1 or per_page < 1:
            raise ValueError("page and per_page must be >= 1")
        wanted = _status_set(status)
        with self._lock:
            self.refresh()
            entry = self._schedules.get(schedule_id)
            if entry is None:
                return []
            self._materialize(schedule_id)
            skip = (page - 1) * per_page
            if wanted is None:
                end = len(entry.runs) - skip
                return [run.summary() for run in reversed(entry.runs[max(end - per_page, 0):max(end, 0)])]
            out: list[dict[str, Any]] = []
            for run in reversed(entry.runs):
                if run.status in wanted:
                    if skip:
                        skip -= 1
                        continue
                    out.append(run.summary())
                    if len(out) == per_page:
                        break
            return out

    def count_runs(self, schedule_id: str, status: str | Iterable[str] | None = None) -> int:
        """Number of runs of ``schedule_id`` in the retained journal (optionally only those with ``status``)."""
        wanted = _status_set(status)
        with self._lock:
            self.refresh()
            entry = self._schedules.get(schedule_id)
            if entry is None:
                return 0
            if wanted is None:
                return len(entry.runs) + sum(count for _, _, count in entry.pending)
            self._materialize(schedule_id)
            return sum(1 for run in entry.runs if run.status in wanted)

    def last_run(self, schedule_id: str, details: bool = False) -> dict[str, Any] | None:
        """The newest run of ``schedule_id`` (by start): its summary, or with ``details`` the full
        :meth:`get_run` record. None when the schedule has no retained run."""
        with self._lock:
            self.refresh()
            entry = self._schedules.get(schedule_id)
            if entry is None:
                return None
            runs, pending = entry.runs, entry.pending
            if pending and (not runs or runs[-1].positions[0] >> _OFFSET_BITS < pending[-1][0]):
                self._materialize(schedule_id, newest=True)  # the newest run is the last of that day's
                runs = entry.runs
            if not runs:
                return None
            run = runs[-1]
            return self._details(run) if details else run.summary()

    def active_elsewhere(self, schedule_id: str, lookback: int = 16) -> dict[str, Any] | None:
        """The newest run of ``schedule_id`` that is still ``running`` in the journal and whose ``run_started``
        was written by another live process (a CLI ``run`` next to the server, or another server): its summary
        plus ``pid``; None when there is none. The same liveness rule as :meth:`close_interrupted` (a run of
        this process, a run without ``pid`` or with a dead ``pid`` does not count). Looks at the newest
        ``lookback`` runs of the schedule, from the in-memory index (refresh throttled as for every query).
        Added by H6 (runner) for the cross-process overlap check (SPEC 3.3)."""
        me = os.getpid()
        with self._lock:
            self.refresh()
            entry = self._schedules.get(schedule_id)
            if entry is None:
                return None
            self._materialize(schedule_id)
            for run in reversed(entry.runs[-lookback:]):
                if run.status == RUNNING and run.pid is not None and run.pid != me and _pid_alive(run.pid):
                    out = run.summary()
                    out["pid"] = run.pid
                    return out
        return None

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """One run with its tasks and logs, or None if unknown (or deleted by retention).

        The summary keys plus every other field of ``run_started``/``run_finished`` (e.g. ``content_hash``,
        ``error``), ``tasks``: list by ``index`` of dicts ``index``, ``task``, ``status``, ``started_at``,
        ``finished_at``, ``duration_ms``, ``result``, ``error`` (and any further ``task_finished`` fields; a task
        that never finished has status ``running``, or ``interrupted`` in an interrupted run), and ``logs``:
        the ``task_log`` records in order with ``ts`` as an aware UTC datetime. Reads the run's lines from disk:
        those naming the run from its ``run_started`` to its last run-level line (``run_finished``,
        ``run_interrupted``), or to the end of the journal while it runs; a task line written after the run's end
        (a task that outlived the shutdown grace) is not part of it.
        """
        with self._lock:
            self.refresh()
            run = self._run(run_id)
            return None if run is None else self._details(run)

    def last_slot(self, schedule_id: str) -> datetime | None:
        """Latest ``scheduled_for`` recorded for ``schedule_id`` by a scheduled or catch-up ``run_started``, a
        ``run_skipped`` or a ``run_missed`` (aware UTC); None if none is retained. The runner seeds missed-fire
        detection from it (SPEC 3.3)."""
        with self._lock:
            self.refresh()
            entry = self._schedules.get(schedule_id)
            return None if entry is None else entry.last_slot

    def running_since(self, schedule_id: str) -> tuple[bool, datetime] | None:
        """What the journal's life events say about whether ``schedule_id`` runs: (False, when) it stopped running
        then (``schedule_paused``, ``schedule_removed``, ``schedule_loaded`` with ``enabled`` false), (True, when)
        it runs again since then (``schedule_resumed``, or ``schedule_loaded`` with ``enabled`` after it had
        stopped); None when they say nothing (no such event, or only loads of a schedule that ran). Instants aware
        UTC. The runner seeds missed-fire detection with it (SPEC 3.3: a paused schedule records no missed fires
        and resumes from now)."""
        with self._lock:
            self.refresh()
            entry = self._schedules.get(schedule_id)
            life = None if entry is None else entry.life
            if life is None or life[0] == "on_if_off":
                return None
            return life[0] == "on", life[1]

    def last_success(self, schedule_id: str) -> datetime | None:
        """When the latest run of ``schedule_id`` with status ``succeeded`` finished (aware UTC), or None."""
        with self._lock:
            self.refresh()
            entry = self._schedules.get(schedule_id)
            return None if entry is None else entry.last_success

    def schedule_ids(self) -> list[str]:
        """Schedule ids that have run records in the retained journal, sorted."""
        with self._lock:
            self.refresh()
            return sorted(self._schedules)

    def _details(self, run: _Run) -> dict[str, Any]:
        out = run.summary()
        tasks: dict[int, dict[str, Any]] = {}
        logs: list[dict[str, Any]] = []
        for record in self._lines_of(run):
            event = record.get("event")
            if record.get("run_id") != run.run_id:
                continue
            if event in ("run_started", "run_finished"):
                for key, value in record.items():
                    if key not in _INDEX_KEYS and key not in out:
                        out[key] = value
            elif event in ("task_started", "task_finished") and isinstance(record.get("index"), int):
                task = tasks.setdefault(record["index"], {
                    "index": record["index"], "task": record.get("task"), "status": None, "started_at": None,
                    "finished_at": None, "duration_ms": None, "result": None, "error": None})
                if event == "task_started":
                    task["started_at"] = _parse_or_none(record.get("ts"))
                else:
                    task["finished_at"] = _parse_or_none(record.get("ts"))
                    for key, value in record.items():
                        if key not in _INDEX_KEYS and key not in ("index",):
                            task[key] = value
            elif event == "task_log":
                entry = {k: v for k, v in record.items() if k not in ("event", "schedule", "run_id")}
                entry["ts"] = _parse_or_none(record.get("ts"))
                logs.append(entry)
        for task in tasks.values():
            if task["status"] is None:
                task["status"] = INTERRUPTED if run.status == INTERRUPTED else RUNNING
        out["tasks"] = [tasks[i] for i in sorted(tasks)]
        out["logs"] = logs
        return out

    def _lines_of(self, run: _Run) -> Iterator[dict[str, Any]]:
        """The valid lines naming ``run``'s id, in file order, from its ``run_started`` to its last run-level line
        (inclusive; to the end of the journal while it is running). The index keeps only the positions of
        run-level lines: the task lines in between are found here with a byte search for the quoted run id
        (every line is decoded when the id could be written escaped). A line naming the run that is not valid
        JSON (a torn write that a later append terminated) is skipped with a warning, once per line and process
        (the open does not decode task lines, so it is noticed here)."""
        run_id = run.run_id
        positions = run.positions
        first = positions[0]
        last = None if run.finish_pos is None else max(positions)
        needle: bytes | None = None
        if run_id.isascii() and run_id.isprintable() and not any(c in run_id for c in '"\\/'):
            needle = b'"' + run_id.encode() + b'"'
        first_day = first >> _OFFSET_BITS
        last_day = None if last is None else last >> _OFFSET_BITS
        for ordinal in self._ordinals[bisect.bisect_left(self._ordinals, first_day):]:
            if last_day is not None and ordinal > last_day:
                break
            state = self._files[ordinal]
            start = first & _OFFSET_MASK if ordinal == first_day else 0
            final = last_day is not None and ordinal == last_day
            stop = (last & _OFFSET_MASK) if final else state.offset  # type: ignore[operator]
            try:
                with open(state.path, "rb") as handle:
                    handle.seek(start)
                    region = handle.read(max(stop - start, 0))
                    if final:
                        region += handle.readline()
            except OSError:
                continue
            damaged: list[int] = []
            yield from _records(region, needle, run_id, damaged)
            for offset in damaged:
                self._warn_damaged(state, start + offset, run_id)

    def _warn_damaged(self, state: _FileState, offset: int, run_id: str) -> None:
        key = (state.name, offset)
        if key in self._damaged_warned:
            return
        self._damaged_warned.add(key)
        try:
            with open(state.path, "rb") as handle:
                number = handle.read(offset).count(b"\n") + 1
        except OSError:
            number = 0
        log.warning("journal: %s:%d: damaged line of run %s skipped (not valid JSON)", state.path, number, run_id)

    def first_event_time(self) -> datetime | None:
        """``ts`` (aware UTC) of the oldest retained event, or None for an empty journal: roughly when this
        server started keeping a record (install time, until retention removes the first files)."""
        for event in self.iter_events():
            try:
                return parse_utc(event["ts"])
            except (KeyError, TypeError, ValueError):
                continue
        return None

    def iter_events(self) -> Iterator[dict[str, Any]]:
        """Every valid event of the retained files, oldest first, as dicts (``ts`` left as the ISO string).

        A full scan, for tools and tests; queries use the index instead.
        """
        with self._lock:
            self.refresh(force=True)
            paths = [self._files[o].path for o in self._ordinals]
        for path in paths:
            try:
                handle = open(path, "rb")
            except FileNotFoundError:
                continue
            with handle:
                for number, raw in enumerate(handle, start=1):
                    if not raw.endswith(b"\n"):
                        break
                    try:
                        record = json.loads(raw)
                    except ValueError:
                        log.warning("journal: %s:%d: invalid line skipped", path, number)
                        continue
                    if isinstance(record, dict):
                        yield record

    # ------------------------------------------------------------------ recovery and retention
    def orphaned_runs(self) -> list[str]:
        """Run ids :meth:`close_interrupted` would close now (``running``, and not by another live process),
        oldest first: ``serve`` stops their leftover commands before it closes them."""
        with self._lock:
            return [run.run_id for run in self._orphaned_runs()]

    def _orphaned_runs(self, run_ids: Iterable[str] | None = None) -> list[_Run]:
        self.refresh(force=True)
        me = os.getpid()
        if run_ids is None:
            running = sorted((run for run in self._runs.values() if run.status == RUNNING),
                             key=lambda run: run.positions[0])
        else:
            running = [run for run in map(self._run, run_ids) if run is not None and run.status == RUNNING]
        return [run for run in running if not (run.pid is not None and run.pid != me and _pid_alive(run.pid))]

    def close_interrupted(self, run_ids: Iterable[str] | None = None) -> list[str]:
        """Close runs that have ``run_started`` but no ``run_finished`` with a ``run_interrupted`` event
        (fields ``schedule``, ``run_id``, ``trigger``, ``scheduled_for``); returns their run ids, oldest first.

        Call at start, before this process starts runs. A run whose recorded ``pid`` belongs to another live
        process (a CLI ``run`` next to the server) is left alone. ``run_ids``: the runs :meth:`orphaned_runs`
        gave (checked again, in that order) instead of a look at every run of the index.
        """
        closed: list[str] = []
        with self._lock:
            for run in self._orphaned_runs(run_ids):
                self.append("run_interrupted", schedule=run.schedule, run_id=run.run_id, trigger=run.trigger,
                            scheduled_for=run.scheduled_for)
                closed.append(run.run_id)
        if closed:
            log.warning("journal: %d run(s) without run_finished closed as interrupted: %s",
                        len(closed), ", ".join(closed))
        return closed

    def apply_retention(self) -> list[Path]:
        """Delete day files older than ``retention_days`` (a file for day D goes once D < today - retention_days,
        today by the clock in UTC) and drop their runs from the index; returns the deleted paths.

        ``last_slot``/``last_success`` are kept, so a long-idle schedule does not look never-run.
        """
        if not self._opened:
            self.open()
        today = self._clock().astimezone(timezone.utc).date()
        cutoff = (today - timedelta(days=self.retention_days)).toordinal()
        deleted: list[Path] = []
        with self._lock, self._flock:
            self._scan_directory()
            for ordinal in list(self._ordinals):
                if ordinal >= cutoff:
                    break
                state = self._files.pop(ordinal)
                self._ordinals.remove(ordinal)
                if self._write_day is not None and self._write_day.toordinal() == ordinal:
                    self._close_writer()
                _unlink(self._cache_path(state))
                try:
                    state.path.unlink()
                except FileNotFoundError:
                    continue
                deleted.append(state.path)
            if deleted or any(run.positions[0] >> _OFFSET_BITS < cutoff for run in self._runs.values()) or any(
                    entry.pending and entry.pending[0][0] < cutoff for entry in self._schedules.values()):
                self._drop_runs_before(cutoff)
        for path in deleted:
            log.info("journal: retention deleted %s", path)
        return deleted

    def _drop_runs_before(self, cutoff: int) -> None:
        for sid, entry in self._schedules.items():  # (decoded to drop them: their ids must go too)
            if entry.pending and entry.pending[0][0] < cutoff:
                self._materialize(sid, before=cutoff)
        self._runs = {rid: run for rid, run in self._runs.items() if run.positions[0] >> _OFFSET_BITS >= cutoff}
        for entry in self._schedules.values():
            entry.runs = [run for run in entry.runs if run.positions[0] >> _OFFSET_BITS >= cutoff]


def _lines_containing(data: bytes, end: int, needle: bytes) -> tuple[list[int], list[bytes]]:
    """Start offsets and bytes (without the newline) of the lines of ``data[:end + 1]`` that contain
    ``needle``, in order."""
    find = data.find
    rfind = data.rfind
    starts: list[int] = []
    raws: list[bytes] = []
    add_start = starts.append
    add_raw = raws.append
    # Searched in windows: CPython sets up its two-way search per call on a long haystack (the rest of the
    # chunk), more than the search itself costs between two matches; in a short one it does not.
    window = max(_FIND_WINDOW, 2 * len(needle))  # (each window holds a whole match and moves on)
    back = len(needle) - 1  # a match may straddle a window's end
    # Where the first match is, in one call: for a needle most chunks lack (a schedule's event) that is the
    # whole search, and one long search costs less than its windows.
    pos = find(needle, 0, end)
    if pos < 0:
        return starts, raws
    while True:
        stop = pos + window
        if stop < end:
            i = find(needle, pos, stop)
            if i < 0:
                pos = stop - back
                continue
        else:
            i = find(needle, pos, end)
            if i < 0:
                return starts, raws
        ls = rfind(b"\n", 0, i) + 1
        pos = find(b"\n", i, end + 1)
        add_start(ls)
        add_raw(data[ls:pos])


def _entry_of(state: _FileState, st: os.stat_result, tail: bytes, runs: dict[str, list[_Run]],
              more: list[_CachedMore]) -> _IndexCache:
    """The cache entry of ``state``'s file (``st`` and ``tail`` from :func:`_described`): ``runs`` the runs
    started in it per schedule id (their positions in it; sorted here into file order), ``more`` the runs of
    earlier files."""
    groups: list[tuple[str, int, bool]] = []
    ids: list[str] = []
    starts: list[msgspec.Raw] = []
    encode = _CACHE_ENCODER.encode
    for sid, group in runs.items():
        group.sort(key=_FIRST_POSITION)  # (in order already, unless decoded after a later run was indexed)
        groups.append((sid, len(group), RUNNING in map(_STATUS, group)))
        starts.append(msgspec.Raw(encode(group)))
        ids += map(_RUN_ID, group)
    last_slots: dict[str, datetime] = {}
    successes: dict[str, datetime] = {}
    slot_triggers = SLOT_TRIGGERS
    for sid, group in runs.items():
        slot = finished = None
        for run in group:
            when = run.scheduled_for
            if when is not None and run.trigger in slot_triggers and (slot is None or when > slot):
                slot = when
            if run.status == "succeeded" and run.finish_pos is not None:
                when = run.finished_at
                if finished is None or when > finished:  # type: ignore[operator]
                    finished = when
        if slot is not None:
            last_slots[sid] = slot
        if finished is not None:
            successes[sid] = finished
    return _IndexCache(_CACHE_VERSION, st.st_ino, st.st_size, st.st_mtime_ns, state.offset, state.lines, tail,
                       groups, ids, more, last_slots, successes, dict(state.slots), sorted(state.orphans),
                       dict(state.life), starts)


class _Built(msgspec.Struct, array_like=True, gc=False):
    """What a second builder sends per file: the day (ordinal), its cache entry when the file could be cached
    (None: the parent reads it itself) and the lines of runs it did not see start (position and head, in file
    order; :meth:`Journal._replay_built`). ``day`` 0 ends the stream. The parent reads it as :class:`_Received`."""

    day: int
    entry: _BuiltCache | None = None
    orphan_lines: list[tuple[int, _Head]] = []
    shared: bool = False  # (never set by the sender: see _Received)


class _Received(msgspec.Struct, array_like=True, gc=False):
    """:class:`_Built` as the parent decodes it: the entry's runs left encoded (:class:`_IndexCache`)."""

    day: int
    entry: _IndexCache | None = None
    orphan_lines: list[tuple[int, _Head]] = []
    #: Set by the parent on receipt (:func:`_share_schedule_ids`): the entry's group ids are interned.
    shared: bool = False


def _share_schedule_ids(built: _Received) -> None:
    """Prepare a received entry for a quick replay, while the parent waits for the child anyway: its groups get
    the interned schedule ids (one string object per id, as reading the lines gives)."""
    entry = built.entry
    if entry is None:
        return
    intern = sys.intern
    entry.groups = [(intern(sid), count, running) for sid, count, running in entry.groups]
    built.shared = True


_BUILT_ENCODER = msgspec.msgpack.Encoder()
_BUILT_DECODER = msgspec.msgpack.Decoder(_Received)


class _Side:
    """A second builder's entries merged as they arrive (by its receiver thread, while the open reads its own
    files), so that the open can take them all at once where the two meet (:meth:`Journal._merge_side`) instead of
    replaying entry by entry: the run ids, per schedule its runs of each day (still encoded), the
    latest slot and success per schedule. ``clash``: a run id started in two of its files (then the entries are
    replayed one by one)."""

    def __init__(self) -> None:
        self.built: dict[int, _Received] = {}  # by day
        self.ids: set[str] = set()
        self.groups: dict[str, list[tuple[int, msgspec.Raw, int]]] = {}
        self.last_slots: dict[str, datetime] = {}
        self.successes: dict[str, datetime] = {}
        self.clash = False

    def add(self, built: _Received) -> None:
        self.built[built.day] = built
        entry = built.entry
        if entry is None:
            return
        ids = self.ids
        before = len(ids)
        ids.update(entry.ids)
        self.clash = self.clash or len(ids) != before + len(entry.ids)
        groups = self.groups
        day = built.day
        for (sid, count, _), raw in zip(entry.groups, entry.starts):  # (ids interned: _share_schedule_ids)
            days = groups.get(sid)
            if days is None:
                groups[sid] = [(day, raw, count)]
            else:
                days.append((day, raw, count))
        for maxima, values in ((self.last_slots, entry.last_slots), (self.last_slots, entry.slots),
                               (self.successes, entry.successes)):
            get = maxima.get
            for sid, when in values.items():
                current = get(sid)
                if current is None or when > current:
                    maxima[sid] = when


class _ColdBuild:
    """A forked process that builds index cache entries for journal files on its own (a first build's second
    CPU). It and the open share the files to read like a deque: the open takes them from the oldest end (it must
    index them in order), the child from the newest end, each file read alone (as a journal holding only it
    would), and sends every entry as soon as it is built, with the file's lines of runs it did not see start
    (:class:`_Built`). They meet wherever their speeds put them; no split is guessed in advance. The child logs
    nothing: a file with invalid lines is not cached, so the parent reads it and warns; a torn last line is read
    by the parent too. Any failure of the child only means the parent reads the files it did not deliver, and
    neither side can hang the other: the shared lock is taken in short waits that watch the other process (one
    killed while holding it never gives it back), and a thread reads the messages, so the open waits at most
    :attr:`TIMEOUT` for the next one however the child stops."""

    TIMEOUT = 120.0  # seconds the parent waits for the next entry before reading the files itself
    #: Seconds between looks at the child while the parent waits for the shared bounds' lock: a child killed while
    #: it held the lock never gives it back.
    LOCK_WAIT = 0.05

    def __init__(self, directory: Path, days: list[int], process: Any, conn: Any, bounds: Any) -> None:
        #: The journal folder it reads (absolute) and its days (ordinals, oldest first).
        self.directory = directory
        self.days = days
        self._number = {ordinal: number for number, ordinal in enumerate(days)}
        self._process = process
        self._conn = conn
        #: Shared [next day number of the parent, one past the child's next]: taken under its lock.
        self._bounds = bounds
        self._cond = threading.Condition()
        self._built: dict[int, _Received] = {}  # by day, as received (the receiver thread adds, the open takes)
        self._ended = False  # no more entries come: all sent, the child failed, or it was stopped
        self._stopped = False  # cancel() was called
        self._failure: BaseException | None = None  # why the stream ended early (logged once)
        self._complete = False  # the child sent its end
        self._side = _Side()  # what it sent, merged as it arrives (the receiver thread's until the end)
        self._arrived = time.monotonic()
        # Messages are read by a thread: a child stuck in the middle of one (stopped, starved) holds up only it,
        # and the open's wait stays bounded by TIMEOUT.
        self._receiver = threading.Thread(target=self._receive, name="zmi-journal-index-receive", daemon=True)
        self._receiver.start()

    @classmethod
    def start(cls, directory: Path, days: list[int]) -> _ColdBuild | None:
        """Fork the child for ``days`` (day ordinals, oldest first); None when ``fork`` is missing or fails."""
        import multiprocessing

        if "fork" not in multiprocessing.get_all_start_methods():
            return None
        try:  # a lock in shared memory: needs POSIX semaphores (missing where /dev/shm is, e.g. AWS Lambda)
            bounds = multiprocessing.get_context("fork").Array("q", [0, len(days)])
        except (OSError, ImportError) as exc:
            log.info("journal: no second index builder (%s); reading the files here", exc)
            return None
        child = forked.start(_cold_build_child, (str(directory), days, bounds), "zmi-journal-index")
        return None if child is None else cls(Path(directory).absolute(), days, *child, bounds)

    def claim(self, ordinal: int) -> bool:
        """Take day ``ordinal`` for the parent: True when it reads the file itself (the child has not taken it,
        or it is not one of the child's days, or the child ended without sending it); False when the child has
        or had it (:meth:`entry`)."""
        number = self._number.get(ordinal)
        if number is None:
            return True
        lock = self._bounds.get_lock()
        deadline = time.monotonic() + self.TIMEOUT
        while not self._ended:
            if lock.acquire(timeout=self.LOCK_WAIT):
                try:
                    if number >= self._bounds[1]:
                        return False
                    self._bounds[0] = max(self._bounds[0], number + 1)
                    return True
                finally:
                    lock.release()
            if not self._process.is_alive() or time.monotonic() > deadline:  # (it may have died holding it)
                self.cancel()
        with self._cond:
            return ordinal not in self._built

    def _receive(self) -> None:
        failure: BaseException | None = None
        try:
            while True:
                built = _BUILT_DECODER.decode(self._conn.recv_bytes())
                if not built.day:  # all sent
                    break
                _share_schedule_ids(built)
                self._side.add(built)
                with self._cond:
                    self._built[built.day] = built
                    self._arrived = time.monotonic()
                    self._cond.notify_all()
            complete = True
        except Exception as exc:  # EOF, a pipe error, an undecodable message, the pipe closed under it
            failure, complete = exc, False
        with self._cond:
            self._ended = True
            self._complete = complete
            if not self._stopped:
                self._failure = failure
            self._cond.notify_all()

    def side(self) -> _Side | None:
        """Once the child has sent everything (waits for it, at most :attr:`TIMEOUT` between two entries): what
        it sent, merged (:class:`_Side`); None when it ended otherwise (failed, stopped, given up on)."""
        started = time.monotonic()
        with self._cond:
            while not self._ended:
                left = self.TIMEOUT - (time.monotonic() - max(self._arrived, started))
                if left <= 0:
                    break
                self._cond.wait(left)
            complete = self._ended and self._complete and not self._stopped
        return self._side if complete else None

    def entry(self, ordinal: int) -> _Received | None:
        """What the child sent for day ``ordinal`` (waits for it), or None: the file could not be cached, the
        child failed, or it sent nothing for :attr:`TIMEOUT` seconds (then it is stopped)."""
        started = time.monotonic()
        timed_out = False
        with self._cond:
            while ordinal not in self._built and not self._ended:
                left = self.TIMEOUT - (time.monotonic() - max(self._arrived, started))
                if left <= 0:
                    timed_out = True
                    break
                self._cond.wait(left)
            built = self._built.pop(ordinal, None)
        if timed_out:
            log.warning("journal: the second index builder sent nothing for %.0f s; reading the files here",
                        self.TIMEOUT)
            self.cancel()
        self._log_failure()
        return built if built is not None and built.entry is not None else None

    def _log_failure(self) -> None:
        with self._cond:
            failure, self._failure = self._failure, None
        if failure is not None:
            self._process.join(1.0)
            log.warning("journal: the second index builder %s; reading the files here",
                        forked.describe_end(self._process, failure))

    def cancel(self) -> None:
        """Stop the child without waiting for more entries (says why when it had failed). Idempotent."""
        self._log_failure()
        with self._cond:
            self._stopped = True
        if self._process.is_alive():
            self._process.kill()
        self._process.join()
        # The receiver ends at the end of the pipe that the child's end brings; only then is the pipe closed (a
        # read on a closed descriptor number could read another file that got the number meanwhile).
        self._receiver.join(5.0)
        with self._cond:
            self._ended = True
            self._built.clear()  # (the caller may keep this object for the life of the server: serve does)
            self._cond.notify_all()
        if not self._receiver.is_alive():
            self._conn.close()
            self._side = _Side()


def _described(state: _FileState) -> tuple[os.stat_result, bytes] | None:
    """The stat of ``state``'s file and the :data:`_TAIL_BYTES` before its ``offset``, for a cache entry of what
    was read of it; None when the file cannot be read or is shorter than that now."""
    try:
        st = os.stat(state.name)
        with open(state.path, "rb") as handle:
            handle.seek(max(state.offset - _TAIL_BYTES, 0))
            tail = handle.read(min(_TAIL_BYTES, state.offset))
    except OSError:
        return None
    if len(tail) != min(_TAIL_BYTES, state.offset) or st.st_size < state.offset:
        return None
    return st, tail


def _plan_cold_build(ordinals: list[int], sizes: list[int], threshold: int) -> list[int]:
    """The days (ordinals, oldest first) a second builder may read: the files to read (``sizes`` > 0, in the
    order of ``ordinals``); [] when they hold less than ``threshold`` bytes in all or there is one CPU (a second
    process would cost more than it saves)."""
    if (os.cpu_count() or 1) < 2:
        return []
    total = sum(sizes)
    if total <= 0 or total < threshold:
        return []
    return [ordinal for ordinal, size in zip(ordinals, sizes) if size]


def _cold_build_child(conn: Any, directory: str, days: list[int], bounds: Any, parent_end: Any = None) -> None:
    """Body of :class:`_ColdBuild`'s process: takes days from the newest end of ``bounds`` until it meets the
    parent and sends a :class:`_Built` for each (a thread sends, so that a parent busy with its own files never
    holds the reading up), then ``day`` 0. ``parent_end`` (the pipe's reading end, inherited by the fork) is
    closed first, so that sending to a parent that died (kill -9 during start-up) fails at once instead of
    blocking this process forever."""
    import queue

    if parent_end is not None:
        parent_end.close()
    log.disabled = True
    gc.disable()  # as in Journal.__init__: collections during a build only cost time (and the process ends)
    # Not the server's handlers (inherited by fork): SIGTERM ends the builder, a Ctrl-C is the parent's business.
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    outbox: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
    parent = os.getppid()
    gone = threading.Event()

    def send() -> None:
        try:
            while (data := outbox.get()) is not None:
                conn.send_bytes(data)
        except OSError:  # the server is gone (killed during start-up): nobody to tell, nothing to print
            gone.set()

    sender = threading.Thread(target=send, name="zmi-journal-index-send", daemon=True)
    sender.start()
    lock = bounds.get_lock()

    def take() -> int | None:
        """The next day from the newest end; None when the two met or the server is gone (killed during start-up:
        it claims nothing more, and if it died holding the lock, the lock never comes back)."""
        while not lock.acquire(timeout=0.1):
            if gone.is_set() or os.getppid() != parent:
                return None
        try:
            if gone.is_set() or os.getppid() != parent or bounds[1] <= bounds[0]:
                return None
            bounds[1] -= 1
            return days[bounds[1]]
        finally:
            lock.release()

    try:
        while (ordinal := take()) is not None:
            journal = Journal.__new__(Journal)
            journal.directory = Path(directory)
            journal._empty_index()
            state = journal._state_for(date.fromordinal(ordinal))
            journal._read_new(state)
            entry = journal._entry_alone(state) if not state.uncacheable and state.offset > 0 else None
            built = _Built(ordinal) if entry is None else _Built(ordinal, entry, state.orphan_lines)
            outbox.put(_BUILT_ENCODER.encode(built))
        outbox.put(_BUILT_ENCODER.encode(_Built(0)))
    finally:
        outbox.put(None)
        sender.join()
        conn.close()


class _ProcessLock:
    """Exclusive ``flock`` on a lock file kept open; reopened after ``fork`` (a child must not share the
    parent's open file description, or both would hold the lock at once). Use together with a thread lock."""

    def __init__(self, path: Path) -> None:
        self._path = path
        self._fd: int | None = None
        self._pid = 0

    def __enter__(self) -> None:
        if self._fd is None or self._pid != os.getpid():
            self._fd = os.open(self._path, os.O_RDWR | os.O_CREAT, 0o644)
            self._pid = os.getpid()
        fcntl.flock(self._fd, fcntl.LOCK_EX)

    def __exit__(self, *exc: object) -> None:
        assert self._fd is not None
        fcntl.flock(self._fd, fcntl.LOCK_UN)


def _status_set(status: str | Iterable[str] | None) -> frozenset[str] | None:
    if status is None:
        return None
    if isinstance(status, str):
        return frozenset({status})
    return frozenset(status)


def _records(region: bytes, needle: bytes | None, run_id: str,
             damaged: list[int] | None = None) -> Iterator[dict[str, Any]]:
    """The JSON objects among the whole lines of ``region`` whose ``run_id`` is ``run_id``; with ``needle`` only
    lines containing it are decoded, and the start offsets (in ``region``) of those that are not valid JSON are
    appended to ``damaged``."""
    if needle is None:
        lines: Iterable[tuple[int, bytes]] = ((-1, line) for line in region.split(b"\n"))
    else:
        found: list[tuple[int, bytes]] = []
        find = region.find
        rfind = region.rfind
        hit = find(needle)
        while hit >= 0:
            ls = rfind(b"\n", 0, hit) + 1
            le = find(b"\n", hit)
            if le < 0:
                le = len(region)
            found.append((ls, region[ls:le]))
            hit = find(needle, le)
        lines = found
    for start, line in lines:
        try:
            record = json.loads(line)
        except ValueError:
            if start >= 0 and damaged is not None:
                damaged.append(start)
            continue
        if isinstance(record, dict) and record.get("run_id") == run_id:
            yield record


def _parse_or_none(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        return parse_utc(value)
    except ValueError:
        return None


def _unlink(path: Path) -> None:
    try:
        path.unlink()
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("journal: cannot delete %s: %s", path, exc)


def _write_all(fd: int, data: bytes) -> None:
    written = os.write(fd, data)
    while written < len(data):  # only on a full disk or a signal; a regular file write is normally whole
        written += os.write(fd, data[written:])


#: The largest pid taken from a line; another number (0, negative, beyond 64 bits: written by hand) counts as no pid.
_MAX_PID = 2**31 - 1


def _pid(value: int | None) -> int | None:
    """A ``pid`` field as the index keeps it: None unless 1 .. :data:`_MAX_PID` (a negative one would name a
    process group to :func:`_pid_alive`, one beyond 64 bits could not be written to the cache)."""
    return value if value is not None and 0 < value <= _MAX_PID else None


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    return True
