"""The runner: fires schedules on time and executes their runs (SPEC 3.3 and 4), on the ``schedule`` library.

How the library is used (and where we deliberately step around it):

* One private :class:`schedule.Scheduler` per runner, never the module-level default.
* :class:`TimingJob` subclasses :class:`schedule.Job`. Its ``next_run`` is an aware UTC instant from
  :func:`zmi_reconciler.timing.next_fire`; ``should_run`` compares it with the runner's injected clock, and
  ``_schedule_next_run`` asks the timing module instead of the library's naive local-time arithmetic. (The
  library's own ``every().day.at("02:30", "Europe/Berlin")`` computes the next run with naive local times and
  runs that job twice on the day after the spring change, at 01:30 and 02:30; our job cannot, because the
  instant comes from the RFC 5545 rules in ``timing``.)
* Exactly one loop thread calls ``run_pending()``. It sleeps until the earliest ``next_run`` or until a
  wake-up event (apply, remove, trigger, a finished run that releases a queued one) -- never a fixed tick and
  never a negative sleep. The sleep is capped at :attr:`Runner.max_sleep` seconds so a stepped wall clock is
  noticed soon even when the next fire is far away.
* ``TimingJob.run`` does not execute tasks: it classifies the due slots and hands a run to a worker pool
  (``settings.worker_threads`` threads), so a 20-minute task never delays another schedule. Everything it does
  is wrapped: a schedule that raises is logged and rescheduled, never retried on every tick (the library alone
  would retry a raising job forever without moving ``next_run``).
* Manual-only schedules are never registered with the library; manual runs never call ``job.run()`` (it would
  move the timing).

Missed fires (SPEC 3.3). When a job is due, every slot from its ``next_run`` up to now is looked at. The latest
slot runs as ``scheduled`` if it is at most :attr:`Runner.misfire_grace` seconds old, else as ``catch_up`` if
within the schedule's ``catch_up`` window; every other slot gets a ``run_missed`` record. This one rule covers a
restart (each schedule's ``next_run`` is seeded from ``Journal.last_slot`` the first time this process sees it),
a stalled loop and a wall clock stepped forward (e.g. 5 h: no burst, catch-up rules). For very long downtimes
of fast timings only the newest :data:`MAX_MISSED_RECORDS` slots get their own ``run_missed`` record; the
older ones are summed up in a single ``run_missed`` record with ``summary: true``, ``count``, ``first_slot`` and
``last_slot`` (``scheduled_for`` = ``last_slot``), so a week down with an every-second timing writes ~100 lines,
not 600,000.

A wall clock stepped back (e.g. 2 h) never runs a slot twice: ``next_run`` values are instants and only move
forward, and every schedule remembers the last slot it handled, so a replaced or resumed schedule continues
after ``max(now, last slot)``. Jumps are detected by comparing wall-clock and monotonic progress between loop
iterations and logged.

Pause (``enabled: false``) unregisters the job: no runs, no missed records; resume computes the next fire from
``max(now, last slot)`` (no burst). Overlap: at most one run per schedule; a fire while one is active is skipped
(``run_skipped`` reason ``overlap``) or, with ``overlap: queue``, kept as the one waiting run. This holds across
processes: a run of the schedule that the journal shows ``running`` in another live process (a CLI ``run``)
counts as active (:meth:`Journal.active_elsewhere`, the pid rule of ``close_interrupted``), but such a run
cannot be queued behind (its end is not signalled to this process), so a fire then is always skipped with
reason ``overlap`` and a manual trigger raises :class:`OverlapError`, whatever ``overlap`` says. Exclusion windows
and ``skip_holidays`` (``holidays`` package, ``settings.holiday_region`` such as ``DE-BY``) give ``run_skipped``
with reason ``excluded`` / ``holiday``.
"""

from __future__ import annotations

import collections
import gc
import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, time as dtime, timedelta, timezone
from typing import TYPE_CHECKING, Any, Callable, Iterable, Mapping
from zoneinfo import ZoneInfo

import schedule as schedule_lib

from zmi_reconciler import timing as timing_math
from zmi_reconciler.runs import (DEFAULT_CANCEL_GRACE, RunHandle, RunRequest, TaskThreads, execute_run, iso_utc,
                                 manual_run_id, run_started_fields, scheduled_run_id)
from zmi_reconciler.tasks import catalog
from zmi_reconciler.tasks.base import TaskSpec, utc_now

if TYPE_CHECKING:  # pragma: no cover
    from zmi_reconciler.config import Settings
    from zmi_reconciler.schema import Schedule

log = logging.getLogger("zmi_reconciler.runner")

#: Newest missed slots of one gap that get their own ``run_missed`` record; older ones are summed up.
MAX_MISSED_RECORDS = 100
#: Seconds a fire may be found late and still run as ``scheduled``; later it is missed (``catch_up`` within
#: the schedule's window, else ``run_missed``). Default of :attr:`Runner.misfire_grace`; the README cites it.
MISFIRE_GRACE_SECONDS = 10.0
#: Finished run handles kept for :meth:`Runner.wait_run` / :meth:`Runner.run_outcome`.
_KEEP_FINISHED = 10_000


class OverlapError(Exception):
    """A manual trigger while a run of the schedule is active (and no queue place is free).

    ``active_run_id`` names the active run (the API answers 409 with it). ``queue_full``: the schedule has
    ``overlap: queue`` and its one queue place is taken. ``other_pid``: the active run belongs to another live
    process (a CLI ``run``), seen in the journal; None for a run of this runner."""

    def __init__(self, schedule_id: str, active_run_id: str, *, queue_full: bool = False,
                 other_pid: int | None = None) -> None:
        where = f" (in process {other_pid})" if other_pid is not None else ""
        super().__init__(f"schedule {schedule_id!r} has an active run: {active_run_id}{where}")
        self.schedule_id = schedule_id
        self.active_run_id = active_run_id
        self.queue_full = queue_full
        self.other_pid = other_pid


class RunnerStopped(RuntimeError):
    """A trigger after :meth:`Runner.stop` was called."""


class TimingJob(schedule_lib.Job):
    """A ``schedule.Job`` whose fires come from :mod:`zmi_reconciler.timing` and are aware UTC instants.

    ``after`` is the instant the next fire is computed from (strictly after it). The job never runs tasks
    itself: ``run()`` asks the runner to handle the due slot(s) and then moves ``next_run`` forward.
    """

    def __init__(self, runner: "Runner", state: "_ScheduleState", after: datetime) -> None:
        super().__init__(interval=1, scheduler=runner._scheduler)
        self.unit = "seconds"  # unused by our overrides; keeps the library's __str__/__repr__ working
        self._runner = runner
        self.state = state
        self.after = after
        self.precomputed: datetime | None = None  # next_fire(after) when _on_due already knows it
        self.tag(state.schedule_id)

    def _schedule_next_run(self) -> None:
        if self.precomputed is not None and self.precomputed > self.after:
            self.next_run, self.precomputed = self.precomputed, None
            return
        self.precomputed = None
        self.next_run = timing_math.next_fire(self.state.schedule.timing, self.state.zone, self.after)

    @property
    def should_run(self) -> bool:
        return self.next_run is not None and self._runner._tick_now >= self.next_run

    def run(self) -> Any:
        try:
            self._runner._on_due(self)
        except Exception:
            log.exception("schedule %s: handling the due fire failed", self.state.schedule_id)
            if self.next_run is not None and self.after < self.next_run:
                self.after = self.next_run  # never retry the same slot on every tick
        try:
            self._schedule_next_run()
        except Exception:
            log.exception("schedule %s: cannot compute the next fire; unregistered", self.state.schedule_id)
            return schedule_lib.CancelJob
        if self.next_run is None:
            return schedule_lib.CancelJob
        return None

    def __repr__(self) -> str:
        return f"TimingJob({self.state.schedule_id}, next_run={self.next_run})"

    __str__ = __repr__


class _ScheduleState:
    """What the runner knows about one schedule (the current definition and its job)."""

    __slots__ = ("schedule_id", "schedule", "content_hash", "zone", "job", "last_slot")

    def __init__(self, schedule_id: str, schedule: "Schedule", content_hash: str, zone: ZoneInfo,
                 last_slot: datetime | None) -> None:
        self.schedule_id = schedule_id
        self.schedule = schedule
        self.content_hash = content_hash
        self.zone = zone
        self.job: TimingJob | None = None
        self.last_slot = last_slot  # latest slot handled (run, skipped or missed), aware UTC


def _parse_hhmm(text: str) -> dtime:
    hours, minutes = text.split(":")
    return dtime(int(hours), int(minutes))


def in_exclude_window(windows: Iterable[Any], local: dtime) -> bool:
    """True when the local wall time ``local`` lies in one of the half-open windows ``from <= t < to``
    (``to`` before ``from`` spans midnight; ``from == to`` is an empty window)."""
    for window in windows:
        start, end = _parse_hhmm(window.from_), _parse_hhmm(window.to)
        if start < end:
            if start <= local < end:
                return True
        elif start > end and (local >= start or local < end):
            return True
    return False


def holiday_calendar(region: str) -> Any:
    """``holidays`` calendar for ``DE-BY`` style regions (country, optional ``-`` subdivision).

    Raises ``ValueError`` naming the region when the package does not know it."""
    import holidays

    country, _, subdiv = region.partition("-")
    try:
        return holidays.country_holidays(country.upper(), subdiv=subdiv.upper() or None)
    except (NotImplementedError, KeyError, ValueError) as exc:
        raise ValueError(f"unknown holiday region {region!r} (expected e.g. DE-BY): {exc}") from None


class Runner:
    """Fires schedules and executes their runs on a worker pool. Thread-safe.

    ``clock`` returns the current instant (aware UTC); ``monotonic`` returns seconds (only differences are
    used, for clock-jump detection). ``registry`` maps task names to specs (default: the catalog).
    ``misfire_grace`` (seconds): a fire found this late still counts as on time. ``cancel_grace`` (seconds):
    how long a cancelled task gets to stop before it is abandoned. ``open_store`` is handed to tasks.

    Interfaces used by the reconciler and the API: :meth:`apply`, :meth:`remove`, :meth:`trigger`,
    :meth:`status`, :meth:`wait_run`; lifecycle: :meth:`start`, :meth:`stop`. Tests drive time themselves with
    :meth:`run_once` / :meth:`tick` instead of :meth:`start`.
    """

    max_sleep = 5.0
    jump_threshold = 2.0
    #: Seconds between full garbage collections the loop runs itself while nothing is due (see run_once).
    idle_gc_interval = 5.0

    def __init__(self, settings: "Settings", journal: Any, clock: Callable[[], datetime] = utc_now, *,
                 monotonic: Callable[[], float] = time.monotonic, registry: Mapping[str, TaskSpec] | None = None,
                 misfire_grace: float = MISFIRE_GRACE_SECONDS, cancel_grace: float = DEFAULT_CANCEL_GRACE,
                 workers: int | None = None, open_store: Callable[[], Any] | None = None) -> None:
        self.settings = settings
        self.journal = journal
        self._clock = clock
        self._monotonic = monotonic
        self._registry = catalog.REGISTRY if registry is None else registry
        self.misfire_grace = timedelta(seconds=misfire_grace)
        self.cancel_grace = cancel_grace
        self._open_store = open_store
        self._scheduler = schedule_lib.Scheduler()
        self._lock = threading.RLock()
        self._states: dict[str, _ScheduleState] = {}
        self._seen: set[str] = set()  # schedules this process has known (journal seeding only on first sight)
        self._paused_since: dict[str, datetime] = {}  # first seen while seeding waits, with paused_since
        self._unseeded: dict[str, _ScheduleState] | None = None  # first seen while seeding waits (defer_seeding)
        self._active: dict[str, RunHandle] = {}
        self._queued: dict[str, RunRequest] = {}
        self._runs: collections.OrderedDict[str, RunHandle] = collections.OrderedDict()
        self._holidays: Any = None
        self._holiday_region = settings.holiday_region
        self._executor = ThreadPoolExecutor(max_workers=workers or settings.worker_threads,
                                            thread_name_prefix="zmi-run")
        self._task_threads = TaskThreads()
        self._to_submit: list[RunHandle] = []
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._stopping = False
        self._thread: threading.Thread | None = None
        self._tick_now: datetime = clock()
        self._last_wall: datetime | None = None
        self._last_mono: float | None = None
        self._last_retention: float | None = None
        self._last_gc = time.monotonic()  # real time, not the injected clock: GC cost is real
        self._gc_seconds = 0.01

    # ------------------------------------------------------------------------------------------ schedules
    def apply(self, schedule_id: str, schedule: "Schedule", content_hash: str,
              paused_since: datetime | None = None) -> None:
        """Add or replace a schedule. The same ``content_hash`` again is a no-op (its next fire does not move).

        A replaced schedule's active run finishes with the old definition; the next fire of the new one is
        computed after ``max(now, last handled slot)``. A schedule this process sees for the first time is
        seeded from ``journal.last_slot`` so fires missed while the server was down are found (catch-up and
        ``run_missed``, SPEC 3.3). ``paused_since`` (aware UTC): the caller's evidence that the version that ran
        when the previous server stopped was paused, loaded at that instant (its last good copy); when the journal
        has no slot after it, the schedule stayed paused until that stop and was resumed while no server ran, so
        its next fire is computed from now with no missed fires (SPEC 3.3: a paused schedule records none and
        resumes from now). A slot after it means the evidence lags (a copy not written): the journal decides.
        Paused (``enabled: false``) and manual schedules are kept but not registered.
        After :meth:`defer_seeding`, a schedule first seen is kept unseeded and unregistered until :meth:`seed`.
        """
        zone = schedule.zone(self.settings.default_timezone)
        with self._lock:
            state = self._states.get(schedule_id)
            if state is not None and state.content_hash == content_hash:
                return
            unseeded = self._unseeded
            if unseeded is not None and (schedule_id in unseeded if state is not None else
                                         schedule_id not in self._seen):
                if state is None:
                    state = self._states[schedule_id] = _ScheduleState(schedule_id, schedule, content_hash, zone,
                                                                       None)
                    self._seen.add(schedule_id)
                    unseeded[schedule_id] = state
                    if paused_since is not None:
                        self._paused_since[schedule_id] = paused_since
                else:
                    state.schedule, state.content_hash, state.zone = schedule, content_hash, zone
                return
            now = self._clock()
            if state is None:
                seeded = None
                if schedule_id not in self._seen:
                    seeded = self._seeded(schedule_id, paused_since)
                state = _ScheduleState(schedule_id, schedule, content_hash, zone, seeded)
                self._states[schedule_id] = state
                after = seeded if seeded is not None else now
            else:
                self._unregister(state)
                state.schedule, state.content_hash, state.zone = schedule, content_hash, zone
                after = max(now, state.last_slot) if state.last_slot else now
            self._seen.add(schedule_id)
            if schedule.enabled and schedule.timing.type != "manual":
                self._register(state, after)
        self._wake.set()

    def defer_seeding(self) -> None:
        """Until :meth:`seed`, :meth:`apply` keeps a schedule it sees for the first time without looking into the
        journal and without registering it (no next fire yet): ``serve`` reconciles the schedule files while the
        journal is still being read at start-up."""
        with self._lock:
            if self._unseeded is None:
                self._unseeded = {}

    def seed(self) -> None:
        """End :meth:`defer_seeding`: each schedule :meth:`apply` took meanwhile (and still holds) is seeded from
        ``journal.last_slot`` and registered, as :meth:`apply` does for a schedule it sees for the first time;
        one without a journal record (or resumed while stopped, see ``paused_since`` of :meth:`apply`) fires after
        now (the time of this call). Idempotent."""
        with self._lock:
            pending, self._unseeded = self._unseeded or {}, None
            paused, self._paused_since = self._paused_since, {}
            now = self._clock()
            for schedule_id, state in pending.items():
                if self._states.get(schedule_id) is not state:
                    continue  # removed meanwhile
                state.last_slot = self._seeded(schedule_id, paused.get(schedule_id))
                if state.schedule.enabled and state.schedule.timing.type != "manual":
                    self._register(state, state.last_slot if state.last_slot is not None else now)
        self._wake.set()

    def remove(self, schedule_id: str) -> None:
        """Forget a schedule: no more fires; an active run finishes; a queued run is dropped. Unknown ids are
        ignored."""
        with self._lock:
            state = self._states.pop(schedule_id, None)
            if state is not None:
                self._unregister(state)
            dropped = self._queued.pop(schedule_id, None)
            if dropped is not None:
                self._forget_unstarted(dropped, "schedule removed")
        self._wake.set()

    def schedule_ids(self) -> list[str]:
        """Ids of the schedules the runner holds, sorted."""
        with self._lock:
            return sorted(self._states)

    def _register(self, state: _ScheduleState, after: datetime) -> None:
        job = TimingJob(self, state, after)
        job._schedule_next_run()
        if job.next_run is None:
            log.warning("schedule %s has no future fire; not registered", state.schedule_id)
            return
        self._scheduler.jobs.append(job)
        state.job = job

    def _unregister(self, state: _ScheduleState) -> None:
        if state.job is not None:
            self._scheduler.cancel_job(state.job)
            state.job = None

    def _seeded(self, schedule_id: str, paused_since: datetime | None) -> datetime | None:
        """Where missed-fire detection of a schedule seen for the first time starts (aware UTC), or None (fires
        from now). The journal decides first: its life events (:meth:`Journal.running_since`) say the schedule
        stopped running (paused, removed) after its last slot: from now; it runs again since an instant after its
        last slot (resumed): from that instant; else its last slot. Without life events: None when it was
        resumed while stopped (``paused_since``, the last good copy's evidence, and no slot recorded after it, see
        :meth:`apply`), else the last slot. SPEC 3.3: a paused schedule records no missed fires and resumes from
        now; fires missed while the server was down are found."""
        slot = self._journal_last_slot(schedule_id)
        try:
            life = self.journal.running_since(schedule_id)
        except Exception:
            log.exception("journal: running_since(%s) failed; seeding from its last slot", schedule_id)
            life = None
        if life is not None:
            running, since = life
            if slot is not None and slot > since:
                return slot  # it ran after that (the journal's slots are the record)
            if running:
                return since
            log.info("schedule %s: not running since %s when the last server stopped (paused or removed); next "
                     "fire from now, no missed fires (SPEC 3.3)", schedule_id, since.isoformat())
            return None
        if paused_since is not None and (slot is None or slot <= paused_since):
            log.info("schedule %s: paused when the last server stopped (since %s) and resumed since; next fire "
                     "from now, no missed fires (SPEC 3.3)", schedule_id, paused_since.isoformat())
            return None
        return slot

    def _journal_last_slot(self, schedule_id: str) -> datetime | None:
        try:
            return self.journal.last_slot(schedule_id)
        except Exception:
            log.exception("journal: last_slot(%s) failed; missed fires before now are not looked for", schedule_id)
            return None

    # ------------------------------------------------------------------------------------------ the loop
    def start(self) -> None:
        """Start the loop thread (idempotent)."""
        with self._lock:
            if self._thread is not None:
                return
            self._thread = threading.Thread(target=self._loop, name="zmi-runner-loop", daemon=True)
            self._thread.start()

    def _loop(self) -> None:
        while not self._stop.is_set():
            self._wake.clear()
            try:
                delay = self.run_once()
            except Exception:
                log.exception("runner loop iteration failed")
                delay = 1.0
            self._wake.wait(delay)

    def run_once(self) -> float:
        """One loop iteration: read the clocks, detect a stepped wall clock, fire what is due; returns the
        seconds to sleep (0 <= s <= :attr:`max_sleep`)."""
        now, mono = self._clock(), self._monotonic()
        if self._last_wall is not None and self._last_mono is not None:
            skew = (now - self._last_wall).total_seconds() - (mono - self._last_mono)
            if abs(skew) > self.jump_threshold:
                direction = "forward" if skew > 0 else "back"
                log.warning("wall clock stepped %s by %.1f s; missed fires follow the catch-up rules, "
                            "no slot runs twice", direction, abs(skew))
        self._last_wall, self._last_mono = now, mono
        self.tick(now)
        self._maybe_retention(mono)
        delay = self.seconds_until_next()
        if self._idle_gc(time.monotonic(), delay):
            delay = self.seconds_until_next()
        return self.max_sleep if delay is None else min(self.max_sleep, delay)

    def _idle_gc(self, mono: float, delay: float | None) -> bool:
        """Run a full garbage collection now, while nothing is due, rather than let the interpreter start one
        at a due instant (with a large heap -- the journal index of a busy server -- a gen-2 collection takes
        100-300 ms and would show up as fire lag). Only when no run is active (a collection stalls every
        thread) and the last one took less than half the idle window.
        """
        if mono - self._last_gc < self.idle_gc_interval or self._active:
            return False
        if delay is not None and delay < 2 * self._gc_seconds + 0.05:
            return False
        started = time.perf_counter()
        gc.collect()
        self._gc_seconds = time.perf_counter() - started
        self._last_gc = mono
        return True

    def tick(self, now: datetime) -> None:
        """Fire every schedule due at ``now`` (aware UTC) via the library's ``run_pending()``."""
        with self._lock:
            if self._stopping:
                return
            self._tick_now = now
            self._scheduler.run_pending()
        self._submit_started()

    def seconds_until_next(self) -> float | None:
        """Seconds from the clock's now to the earliest registered fire (0 when overdue, never negative);
        None when no schedule is registered."""
        with self._lock:
            upcoming = self._scheduler.get_next_run()
        if upcoming is None:
            return None
        return max(0.0, (upcoming - self._clock()).total_seconds())

    def _maybe_retention(self, mono: float) -> None:
        if self._last_retention is not None and mono - self._last_retention < 3600:
            return
        self._last_retention = mono
        apply_retention = getattr(self.journal, "apply_retention", None)
        if apply_retention is not None:
            self._executor.submit(self._safe, apply_retention)

    @staticmethod
    def _safe(fn: Callable[[], Any]) -> None:
        try:
            fn()
        except Exception:
            log.exception("background job %s failed", getattr(fn, "__name__", fn))

    # ------------------------------------------------------------------------------------------ due slots
    def _on_due(self, job: TimingJob) -> None:
        """Called by ``TimingJob.run`` under the lock: classify the slots from ``job.next_run`` to now."""
        state, now = job.state, self._tick_now
        first = job.next_run
        assert first is not None
        count, recent, omitted, following = self._slots_until(state, first, now)
        latest = recent[-1]
        job.after, job.precomputed = latest, following
        state.last_slot = max(state.last_slot, latest) if state.last_slot else latest
        late = now - latest
        if late <= self.misfire_grace:
            trigger: str | None = "scheduled"
        elif late <= timedelta(seconds=state.schedule.catch_up_seconds()):
            trigger = "catch_up"
        else:
            trigger = None
        missed = recent if trigger is None else recent[:-1]
        self._record_missed(state, missed, omitted)
        if trigger is not None:
            self._fire(state, latest, trigger)

    def _slots_until(self, state: _ScheduleState, first: datetime, now: datetime
                     ) -> tuple[int, list[datetime], tuple[int, datetime, datetime] | None, datetime | None]:
        """Slots ``first <= s <= now``: (count, the newest MAX_MISSED_RECORDS + 1 ascending, omitted, next)
        where omitted is (count, first, last) of the older slots or None and next the first slot after now
        when already known (else None). O(1) for seconds/minutes timings."""
        timing = state.schedule.timing
        if now - first < self.misfire_grace:  # the usual case: on time, one slot
            following = timing_math.next_fire(timing, state.zone, first)
            if following is None or following > now:
                return 1, [first], None, following
        keep = MAX_MISSED_RECORDS + 1
        period = {"seconds": 1, "minutes": 60}.get(timing.type)
        if period is not None:
            step = timedelta(seconds=period * timing.every)
            count = int((now - first) / step) + 1
            latest = first + step * (count - 1)
            recent = [latest - step * i for i in range(min(count, keep) - 1, -1, -1)]
            omitted = None if count <= keep else (count - keep, first, recent[0] - step)
            return count, recent, omitted, None
        window: collections.deque[datetime] = collections.deque(maxlen=keep)
        count, slot, oldest_first, last_dropped = 0, first, first, None
        while slot is not None and slot <= now:
            if len(window) == keep:
                last_dropped = window[0]
            window.append(slot)
            count += 1
            slot = timing_math.next_fire(timing, state.zone, slot)
        omitted = None if last_dropped is None else (count - keep, oldest_first, last_dropped)
        return count, list(window), omitted, slot

    def _record_missed(self, state: _ScheduleState, missed: list[datetime],
                       omitted: tuple[int, datetime, datetime] | None) -> None:
        sid = state.schedule_id
        if omitted is not None:
            n, first, last = omitted
            self._journal("run_missed", schedule=sid, run_id=scheduled_run_id(sid, last),
                          scheduled_for=iso_utc(last), summary=True, count=n, first_slot=iso_utc(first),
                          last_slot=iso_utc(last))
        for slot in missed:
            self._journal("run_missed", schedule=sid, run_id=scheduled_run_id(sid, slot),
                          scheduled_for=iso_utc(slot))
        if missed or omitted:
            total = len(missed) + (omitted[0] if omitted else 0)
            log.warning("schedule %s: %d missed fire(s) recorded (latest %s)", sid, total,
                        iso_utc(missed[-1] if missed else omitted[2]))  # type: ignore[index]

    def _fire(self, state: _ScheduleState, slot: datetime, trigger: str) -> None:
        sid, sched = state.schedule_id, state.schedule
        run_id = scheduled_run_id(sid, slot)
        local = slot.astimezone(state.zone)
        if sched.exclude and in_exclude_window(sched.exclude, local.time()):
            self._skipped(sid, run_id, slot, "excluded", trigger=trigger)
            return
        if sched.skip_holidays:
            holiday = self._holiday_name(local)
            if holiday is not None:
                self._skipped(sid, run_id, slot, "holiday", trigger=trigger, holiday=holiday)
                return
        request = RunRequest(sid, sched, state.content_hash, trigger, slot, run_id)
        active = self._active.get(sid)
        if active is None:
            other = self._active_elsewhere(sid)
            if other is not None:
                self._skipped(sid, run_id, slot, "overlap", trigger=trigger, active_run_id=other["run_id"],
                              active_pid=other.get("pid"))
                return
            self._start(request)
        elif sched.overlap == "queue" and sid not in self._queued:
            self._queued[sid] = request
            self._track(RunHandle(request))
            log.info("schedule %s: %s queued behind %s", sid, run_id, active.run_id)
        else:
            self._skipped(sid, run_id, slot, "overlap", trigger=trigger, active_run_id=active.run_id)

    def _active_elsewhere(self, schedule_id: str) -> dict[str, Any] | None:
        """The run of ``schedule_id`` another live process is executing per the journal (summary with ``run_id``
        and ``pid``), else None. Journals without the query, or a failing query, count as none (logged)."""
        query = getattr(self.journal, "active_elsewhere", None)
        if query is None:
            return None
        try:
            return query(schedule_id)
        except Exception:
            log.exception("journal: active_elsewhere(%s) failed; cross-process overlap not checked", schedule_id)
            return None

    def _holiday_name(self, local: datetime) -> str | None:
        """The holiday's name on ``local``'s date in the server's region, else None. An unknown region is
        logged once and treated as "no holidays" (a schedule runs on a holiday rather than never)."""
        if self._holidays is None:
            try:
                self._holidays = holiday_calendar(self._holiday_region)
            except ValueError as exc:
                log.error("skip_holidays ignored: %s", exc)
                self._holidays = {}
        return self._holidays.get(local.date())

    def _skipped(self, sid: str, run_id: str, slot: datetime, reason: str, **fields: Any) -> None:
        self._journal("run_skipped", schedule=sid, run_id=run_id, scheduled_for=iso_utc(slot), reason=reason,
                      **fields)

    def _journal(self, event: str, **fields: Any) -> None:
        try:
            self.journal.append(event, **fields)
        except Exception:
            log.exception("journal append failed: %s %s", event, fields.get("run_id"))

    # ------------------------------------------------------------------------------------------ runs
    def trigger(self, schedule_id: str, task_indexes: list[int] | None = None) -> str:
        """Start a manual run now and return its run id.

        Ignores timing, exclusions, holidays and the paused flag, but not overlap: with a run active this
        raises :class:`OverlapError` naming it, unless the schedule has ``overlap: queue`` and the queue place
        is free (then the run waits and the returned id is the queued run's). A run active in another live
        process per the journal (a CLI ``run``) always raises :class:`OverlapError` (no queueing behind it). ``task_indexes`` (0-based) runs
        only those tasks, in schedule order, even ones with ``enabled: false``. Raises ``KeyError`` for an
        unknown schedule, ``ValueError`` for a bad index, :class:`RunnerStopped` after :meth:`stop`.
        """
        with self._lock:
            if self._stopping:
                raise RunnerStopped("the runner is stopping")
            state = self._states.get(schedule_id)
            if state is None:
                raise KeyError(schedule_id)
            indexes = None
            if task_indexes is not None:
                n = len(state.schedule.tasks)
                bad = [i for i in task_indexes if not (isinstance(i, int) and 0 <= i < n)]
                if bad or not task_indexes:
                    raise ValueError(f"task index out of range 0..{n - 1}: {bad or task_indexes}")
                indexes = tuple(sorted(set(task_indexes)))
            now = self._clock()
            request = RunRequest(schedule_id, state.schedule, state.content_hash, "manual", now,
                                 manual_run_id(schedule_id, now), indexes)
            active = self._active.get(schedule_id)
            if active is not None:
                if state.schedule.overlap == "queue" and schedule_id not in self._queued:
                    self._queued[schedule_id] = request
                    self._track(RunHandle(request))
                    return request.run_id
                raise OverlapError(schedule_id, active.run_id, queue_full=state.schedule.overlap == "queue")
            other = self._active_elsewhere(schedule_id)
            if other is not None:
                raise OverlapError(schedule_id, other["run_id"], other_pid=other.get("pid"))
            self._start(request)
        self._submit_started()
        return request.run_id

    def _track(self, handle: RunHandle) -> RunHandle:
        """Remember a handle for wait_run (bounded: the oldest finished ones are forgotten)."""
        self._runs[handle.run_id] = handle
        while len(self._runs) > _KEEP_FINISHED:
            oldest_id, oldest = next(iter(self._runs.items()))
            if not oldest.done.is_set():
                break
            del self._runs[oldest_id]
        return handle

    def _start(self, request: RunRequest) -> None:
        """Under the lock: mark the run active and put it on the dispatch list; the caller then calls
        :meth:`_submit_started` outside the lock (a queued run keeps its handle)."""
        handle = self._runs.get(request.run_id)
        if handle is None or handle.request is not request:
            handle = self._track(RunHandle(request))
        self._active[request.schedule_id] = handle
        self._to_submit.append(handle)

    def _submit_started(self) -> None:
        """Journal ``run_started`` for every run dispatched since the last call -- in one batch when the journal
        offers ``append_many`` (500 runs due in the same second cost one lock and one write, which keeps the
        fire lag of the last of them low) -- then hand the runs to the worker pool."""
        with self._lock:
            batch, self._to_submit = self._to_submit, []
        if not batch:
            return
        records = [("run_started", run_started_fields(h.request)) for h in batch]
        append_many = getattr(self.journal, "append_many", None)
        try:
            if append_many is not None:
                append_many(records)
            else:
                for event, fields in records:
                    self.journal.append(event, **fields)
        except Exception:
            log.exception("journal: run_started of %d run(s) not written", len(batch))
        for handle in batch:
            try:
                handle.future = self._executor.submit(self._execute, handle)
            except RuntimeError:  # the pool was shut down by stop() meanwhile
                self._never_ran(handle)

    def _never_ran(self, handle: RunHandle) -> None:
        """A dispatched run (``run_started`` written) that no worker will ever execute: close its record."""
        req = handle.request
        if handle.close():
            self._journal("run_interrupted", schedule=req.schedule_id, run_id=req.run_id, trigger=req.trigger,
                          scheduled_for=iso_utc(req.scheduled_for), reason="shutdown", status="interrupted")
        handle.done.set()
        with self._lock:
            if self._active.get(req.schedule_id) is handle:
                del self._active[req.schedule_id]

    def _execute(self, handle: RunHandle) -> None:
        try:
            execute_run(handle, settings=self.settings, journal=self.journal, registry=self._registry,
                        clock=self._clock, cancel_grace=self.cancel_grace, open_store=self._open_store,
                        started_written=True, spawn=self._task_threads.spawn)
        except BaseException:
            log.exception("run %s crashed", handle.run_id)
            handle.done.set()
        finally:
            self._run_ended(handle)

    def _run_ended(self, handle: RunHandle) -> None:
        sid = handle.request.schedule_id
        with self._lock:
            was_active = self._active.get(sid) is handle
            if was_active:
                del self._active[sid]
            queued = self._queued.pop(sid, None) if was_active else None
            if queued is not None:
                if self._stopping or (sid not in self._states and queued.trigger != "manual"):
                    self._forget_unstarted(queued, "runner stopping" if self._stopping else "schedule removed")
                else:
                    self._start(queued)
            idle = not self._active
        self._submit_started()
        if idle:  # the last run ended: the loop may use the quiet moment (see _idle_gc)
            self._wake.set()

    def _forget_unstarted(self, request: RunRequest, why: str) -> None:
        """A queued run that will never start: scheduled slots become ``run_missed``; waiters are released."""
        if request.trigger != "manual":
            self._journal("run_missed", schedule=request.schedule_id, run_id=request.run_id,
                          scheduled_for=iso_utc(request.scheduled_for), reason=why)
        handle = self._runs.get(request.run_id)
        if handle is not None and handle.request is request:
            handle.done.set()
        log.info("queued run %s dropped: %s", request.run_id, why)

    def status(self, schedule_id: str) -> dict[str, Any]:
        """``{next_fire, active_run, queued, queued_run, paused, last_slot, content_hash}`` (instants aware UTC
        or None; ``content_hash`` of the definition the runner holds); ``KeyError`` for an unknown schedule."""
        with self._lock:
            state = self._states[schedule_id]
            active = self._active.get(schedule_id)
            return {
                "next_fire": state.job.next_run if state.job is not None else None,
                "active_run": active.run_id if active is not None else None,
                "queued": schedule_id in self._queued,
                "queued_run": self._queued[schedule_id].run_id if schedule_id in self._queued else None,
                "paused": not state.schedule.enabled,
                "last_slot": state.last_slot,
                "content_hash": state.content_hash,
            }

    def status_rows(self) -> dict[str, tuple[datetime | None, str | None, bool]]:
        """Per schedule id ``(next_fire, active_run, queued)`` as in :meth:`status`, for every schedule under one
        lock (GET /schedules needs 1,000 of these per request; added by H11)."""
        with self._lock:
            active = self._active
            queued = self._queued
            rows = {}
            for schedule_id, state in self._states.items():
                handle = active.get(schedule_id)
                rows[schedule_id] = (state.job.next_run if state.job is not None else None,
                                     handle.run_id if handle is not None else None, schedule_id in queued)
            return rows

    def wait_run(self, run_id: str, timeout: float | None = None) -> bool:
        """Block until run ``run_id`` (started or queued by this runner) has ended; True if it has, False on
        timeout or for a run id this runner does not know."""
        with self._lock:
            handle = self._runs.get(run_id)
        return handle.done.wait(timeout) if handle is not None else False

    def run_outcome(self, run_id: str) -> Any:
        """The :class:`~zmi_reconciler.runs.RunOutcome` of a finished run of this runner, else None."""
        with self._lock:
            handle = self._runs.get(run_id)
        return handle.outcome if handle is not None else None

    def active_runs(self) -> list[str]:
        """Ids of the runs executing now."""
        with self._lock:
            return [h.run_id for h in self._active.values()]

    # ------------------------------------------------------------------------------------------ shutdown
    def stop(self, grace_seconds: float = 30.0) -> list[str]:
        """Stop firing, let active runs finish for up to ``grace_seconds``, then set their cancel events; runs
        still going after :attr:`cancel_grace` more seconds are recorded ``run_interrupted``. Queued scheduled
        runs are recorded ``run_missed``. Returns the ids of the runs given up. Idempotent."""
        with self._lock:
            self._stopping = True
            for sid in list(self._queued):
                self._forget_unstarted(self._queued.pop(sid), "runner stopping")
        self._stop.set()
        self._wake.set()
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(timeout=5)
        self._submit_started()
        with self._lock:
            for handle in list(self._active.values()):
                if handle.future is not None and handle.future.cancel():  # waiting for a worker: never ran
                    self._never_ran(handle)
            handles = list(self._active.values())
        deadline = time.monotonic() + max(0.0, grace_seconds)
        for handle in handles:
            handle.done.wait(max(0.0, deadline - time.monotonic()))
        pending = [h for h in handles if not h.done.is_set()]
        for handle in pending:
            log.warning("run %s still running after %.1f s grace: cancelling", handle.run_id, grace_seconds)
            handle.request_cancel()
        deadline = time.monotonic() + self.cancel_grace + 0.5
        for handle in pending:
            handle.done.wait(max(0.0, deadline - time.monotonic()))
        given_up = []
        for handle in pending:
            if not handle.done.is_set() and handle.close():
                req = handle.request
                self._journal("run_interrupted", schedule=req.schedule_id, run_id=req.run_id, trigger=req.trigger,
                              scheduled_for=iso_utc(req.scheduled_for), reason="shutdown",
                              status="interrupted")
                given_up.append(handle.run_id)
                handle.done.set()
        self._executor.shutdown(wait=False, cancel_futures=True)
        return given_up

