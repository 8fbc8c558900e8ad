"""Prometheus metrics for ``GET /metrics`` (text exposition format, ``prometheus_client``).

Counters and histograms count what the journal records *since this process started* (Prometheus handles
counter resets): the journal day files (SPEC 4, ``<journal_dir>/YYYY-MM-DD.jsonl``) are tailed from their
size at start, and new complete lines are read at each scrape. Gauges are read at scrape time from the
runner (next fire, active run) and the journal index (last success).

Metrics (label ``schedule`` is the schedule id):
- ``zmi_runs_total{schedule,status}``: runs that ended (succeeded, failed, partial, interrupted)
- ``zmi_task_duration_seconds{task}``: histogram of task durations (``task_finished.duration_ms``)
- ``zmi_fire_lag_seconds``: histogram of ``run_started.ts - scheduled_for`` for scheduled and catch-up runs
- ``zmi_runs_missed_total{schedule}``, ``zmi_runs_skipped_total{schedule,reason}``
- ``zmi_last_success_timestamp_seconds{schedule}``, ``zmi_next_fire_timestamp_seconds{schedule}`` (Unix s)
- ``zmi_schedule_degraded{schedule}`` (1 = the file is invalid), ``zmi_schedule_enabled{schedule}``
- ``zmi_active_runs``: runs executing now
"""

from __future__ import annotations

import json
import logging
import re
import threading
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

# prometheus_client is imported when the metrics are first needed (first journal line observed or first
# scrape), not at import: it is not needed before /readyz and costs ~25 ms of every server start.
if TYPE_CHECKING:
    from prometheus_client.core import GaugeMetricFamily

log = logging.getLogger("zmi_reconciler.api")
#: The exposition format's media type; Litestar appends "; charset=utf-8" to a text/* type itself.
CONTENT_TYPE = "text/plain; version=0.0.4"
_DAY_FILE = re.compile(r"^\d{4}-\d{2}-\d{2}\.jsonl$")
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 60.0)
_DURATION_BUCKETS = (0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)


class JournalTail:
    """Reads complete lines appended to the journal day files since construction (or since the last poll)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        #: Set by :meth:`poll` when a day file disappeared (retention) or shrank since the last poll.
        self.files_dropped = False
        self._offsets: dict[str, int] = {}
        for path in self._files():
            try:
                self._offsets[path.name] = path.stat().st_size
            except FileNotFoundError:
                pass

    def _files(self) -> list[Path]:
        try:
            return sorted(p for p in self.directory.iterdir() if _DAY_FILE.match(p.name))
        except FileNotFoundError:
            return []

    def poll(self) -> Iterator[dict[str, Any]]:
        """New events, oldest first; torn or invalid lines are skipped."""
        self.files_dropped = False
        names = set()
        for path in self._files():
            names.add(path.name)
            offset = self._offsets.get(path.name, 0)
            try:
                size = path.stat().st_size
            except FileNotFoundError:
                continue
            if size < offset:  # replaced or truncated: start over
                offset = 0
                self.files_dropped = True
            if size == offset:
                continue
            with open(path, "rb") as handle:
                handle.seek(offset)
                chunk = handle.read(size - offset)
            end = chunk.rfind(b"\n") + 1
            self._offsets[path.name] = offset + end
            for raw in chunk[:end].splitlines():
                try:
                    record = json.loads(raw)
                except ValueError:
                    continue
                if isinstance(record, dict):
                    yield record
        for gone in set(self._offsets) - names:  # retention deleted it
            del self._offsets[gone]
            self.files_dropped = True


def _instant(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


class _StatusCollector:
    """Gauges computed at scrape time from reconciler, runner and journal (a ``prometheus_client`` collector:
    ``collect()`` yields metric families; registered with the registry's ``auto_describe``)."""

    def __init__(self, service: Any) -> None:
        self.service = service

    def collect(self) -> Iterator["GaugeMetricFamily"]:
        from prometheus_client.core import GaugeMetricFamily

        svc = self.service
        last_success = GaugeMetricFamily("zmi_last_success_timestamp_seconds",
                                         "end of the last succeeded run (Unix seconds)", labels=["schedule"])
        next_fire = GaugeMetricFamily("zmi_next_fire_timestamp_seconds", "next scheduled fire (Unix seconds)",
                                      labels=["schedule"])
        degraded = GaugeMetricFamily("zmi_schedule_degraded", "1 when the schedule's file is invalid",
                                     labels=["schedule"])
        enabled = GaugeMetricFamily("zmi_schedule_enabled", "1 when the schedule is enabled (not paused)",
                                    labels=["schedule"])
        active = 0
        for schedule_id, state in sorted(svc._states().items()):
            schedule = getattr(state, "schedule", None)
            is_degraded = bool(getattr(state, "degraded", False)) or schedule is None
            degraded.add_metric([schedule_id], 1.0 if is_degraded else 0.0)
            enabled.add_metric([schedule_id], 1.0 if schedule is not None and schedule.enabled else 0.0)
            success = svc.journal.last_success(schedule_id) if svc.journal is not None else None
            if success is not None:
                last_success.add_metric([schedule_id], success.timestamp())
            if schedule is not None and svc.runner is not None:
                try:
                    status = svc.runner.status(schedule_id) or {}
                except KeyError:
                    status = {}
                if status.get("next_fire") is not None:
                    next_fire.add_metric([schedule_id], status["next_fire"].timestamp())
                active += 1 if status.get("active_run") else 0
        yield last_success
        yield next_fire
        yield degraded
        yield enabled
        runs = GaugeMetricFamily("zmi_active_runs", "runs executing now")
        runs.add_metric([], float(active))
        yield runs


_LAZY = frozenset({"registry", "runs", "missed", "skipped", "task_duration", "fire_lag"})


class Metrics:
    """One registry per app (no global state). The service feeds journal events to :meth:`observe`;
    :meth:`render` asks it to poll the journal first, then returns the exposition text.

    The registry and its counters/histograms (``registry``, ``runs``, ``missed``, ``skipped``,
    ``task_duration``, ``fire_lag``) are created on first use, so ``prometheus_client`` is not imported
    before the server is ready."""

    def __init__(self, service: Any) -> None:
        self._service = service
        self._build_lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        if name not in _LAZY:
            raise AttributeError(name)
        self._build()
        return self.__dict__[name]

    def _build(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram, disable_created_metrics

        # No "<name>_created" gauge per counter and histogram series: the 0.0.4 text format shows them as samples
        # of their own, with the counter's help text (Prometheus does not need them; process-wide setting).
        disable_created_metrics()
        with self._build_lock:
            if "registry" in self.__dict__:
                return
            self._create(CollectorRegistry, Counter, Histogram)

    def _create(self, CollectorRegistry: Any, Counter: Any, Histogram: Any) -> None:  # noqa: N803
        registry = CollectorRegistry(auto_describe=True)
        self.runs = Counter("zmi_runs", "runs that ended, by status", ["schedule", "status"],
                            registry=registry)
        self.missed = Counter("zmi_runs_missed", "fires recorded as missed", ["schedule"], registry=registry)
        self.skipped = Counter("zmi_runs_skipped", "fires recorded as skipped", ["schedule", "reason"],
                               registry=registry)
        self.task_duration = Histogram("zmi_task_duration_seconds", "task durations", ["task"],
                                       buckets=_DURATION_BUCKETS, registry=registry)
        self.fire_lag = Histogram("zmi_fire_lag_seconds", "due time on the grid -> run_started",
                                  buckets=_LAG_BUCKETS, registry=registry)
        registry.register(_StatusCollector(self._service))
        self.registry = registry  # last: its presence marks the set as complete

    def observe(self, record: dict[str, Any]) -> None:
        """Count one journal event."""
        event = record.get("event")
        schedule = str(record.get("schedule") or "")
        if event == "run_finished":
            self.runs.labels(schedule, str(record.get("status") or "unknown")).inc()
        elif event == "run_interrupted":
            self.runs.labels(schedule, "interrupted").inc()
        elif event == "run_missed":
            self.missed.labels(schedule).inc()
        elif event == "run_skipped":
            self.skipped.labels(schedule, str(record.get("reason") or "unknown")).inc()
        elif event == "task_finished" and isinstance(record.get("duration_ms"), (int, float)):
            self.task_duration.labels(str(record.get("task") or "")).observe(record["duration_ms"] / 1000.0)
        elif event == "run_started" and record.get("trigger") in ("scheduled", "catch_up"):
            started, due = _instant(record.get("ts")), _instant(record.get("scheduled_for"))
            if started is not None and due is not None:
                self.fire_lag.observe(max((started - due).total_seconds(), 0.0))

    def render(self) -> bytes:
        """Poll the journal, then the exposition text."""
        from prometheus_client import generate_latest

        self._service.poll_journal()
        return generate_latest(self.registry)
