"""``alive_check`` ("Alive-Datensatz senden"): heartbeat file, monitoring URL, deadline alerts.

1. Heartbeat: ``<data_dir>/alive.json`` = ``{"schedule", "run_id", "ts"}`` (``ts`` UTC ISO 8601), written
   atomically (temporary file + ``os.replace``), plus a ``task_log`` record in the journal. The ``ts`` of the
   previous heartbeat is read first: it is "the last alive".
2. Expectations: each ``{schedule, by}`` whose deadline ``by`` has passed today must have a succeeded run
   finished today -- both in the *expected schedule's* zone (its file in ``schedules_dir``; the server's default
   zone when it has none or cannot be read), from the journal's ``last_success``. A success that came after the
   deadline still counts (the alert is about a calculation that has not finished). Each missed one is logged,
   counted, and queued once per schedule, day and deadline as an e-mail to the server setting
   ``alert_email`` (outbox, delivered by ``send_notifications``; without ``alert_email`` the alert is only
   journaled). Missed expectations fail the task (after the URL call).
3. URL (``params.url``, else the server setting ``alive_url``; none = skipped), healthchecks.io / Uptime Kuma
   "push" style: ``method`` GET (default) or POST (with a short plain-text summary as body), timeout
   ``timeout_seconds``. When a run of any schedule ended ``failed``, ``partial`` or ``interrupted`` since the
   last alive (the last 24 h when there was none), or an expectation was missed, the failure URL is called
   instead: ``fail_url`` if given, else the URL with ``/fail`` appended to its path -- the healthchecks.io
   convention (``https://hc-ping.com/<uuid>/fail``). For Uptime Kuma set ``fail_url`` to the push URL with
   ``?status=down``. A transport error or a non-2xx answer fails the task.
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import BaseModel, ConfigDict, Field

from zmi_reconciler.tasks._common import HHMM
from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec


class Expectation(BaseModel):
    """``schedule`` must have a succeeded run today (schedule's local date) by ``by`` (local HH:MM)."""

    model_config = ConfigDict(extra="forbid", strict=True)  # like TaskParams
    schedule: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    by: HHMM


class Params(TaskParams):
    url: str | None = Field(default=None, description="monitoring URL (healthchecks / Uptime Kuma); "
                                                      "default: server setting alive_url",
                            pattern=r"^https?://")
    fail_url: str | None = Field(default=None, pattern=r"^https?://",
                                 description="URL called instead when runs failed since the last alive or an "
                                             "expectation was missed; default: the URL with /fail appended")
    method: Literal["GET", "POST"] = Field(default="GET", description="HTTP method of the monitoring call")
    expect: list[Expectation] = Field(default_factory=list)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class Result(TaskResult):
    heartbeat_file: str = ""
    url_called: bool = False
    expectations_checked: int = 0
    expectations_failed: int = 0
    failed_runs: int = 0
    url_reported: Literal["", "ok", "fail"] = ""
    alerts_queued: int = 0


def write_heartbeat(path: Path, record: dict) -> None:
    """Write ``record`` as JSON to ``path`` atomically (readers see the old or the new file, never half)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".alive.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(record, handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def run(ctx: TaskContext, params: Params) -> Result:
    """Heartbeat, expectations, monitoring call (see the module doc). Raises :class:`TaskFailed` (with the
    result) when the URL call fails or an expectation was missed."""
    now = ctx.clock().astimezone(timezone.utc)
    result = Result()
    path = ctx.settings.data_dir / "alive.json"
    last_alive = read_last_alive(path)
    write_heartbeat(path, {"schedule": ctx.schedule_id, "run_id": ctx.run_id,
                           "ts": now.isoformat(timespec="milliseconds").replace("+00:00", "Z")})
    result.heartbeat_file = str(path)
    ctx.log("heartbeat written", file=str(path))
    failed = _check_expectations(ctx, params.expect, now, result)
    if failed:
        result.alerts_queued = _queue_alerts(ctx, failed, now)
    url = params.url or ctx.settings.alive_url
    if url:
        result.failed_runs = failed_runs_since(ctx.journal, last_alive or now - timedelta(hours=24), ctx.run_id)
        bad = bool(result.failed_runs or failed)
        target = (params.fail_url or fail_url(url)) if bad else url
        body = (f"{result.failed_runs} failed run(s) since the last alive; "
                f"{len(failed)} missed expectation(s)") if bad else "ok"
        _call(target, params.timeout_seconds, params.method, body)
        result.url_called = True
        result.url_reported = "fail" if bad else "ok"
        ctx.log("monitoring URL called" + (" (failure)" if bad else ""), url=target)
    if failed:
        raise TaskFailed("expected schedule(s) without a succeeded run today by their deadline: "
                         + ", ".join(f"{e.schedule} (by {e.by})" for e in failed), result=result)
    return result


def read_last_alive(path: Path) -> datetime | None:
    """``ts`` of the heartbeat file (aware UTC), None when missing or unreadable."""
    try:
        return datetime.fromisoformat(json.loads(path.read_text(encoding="utf-8"))["ts"].replace("Z", "+00:00"))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def failed_runs_since(journal: Any, since: datetime, own_run_id: str = "") -> int:
    """Runs of any schedule that ended ``failed``, ``partial`` or ``interrupted`` after ``since`` (aware)."""
    if journal is None:
        return 0
    count = 0
    for schedule_id in journal.schedule_ids():
        page = 1
        while True:
            runs = journal.runs(schedule_id, page=page, per_page=100, status=("failed", "partial", "interrupted"))
            recent = [r for r in runs if r["finished_at"] is not None and r["finished_at"] > since
                      and r["run_id"] != own_run_id]
            count += len(recent)
            if len(runs) < 100 or len(recent) < len(runs):
                break
            page += 1
    return count


def fail_url(url: str) -> str:
    """healthchecks.io failure endpoint: ``/fail`` appended to the URL's path (query string kept)."""
    import httpx

    parsed = httpx.URL(url)
    return str(parsed.copy_with(path=parsed.path.rstrip("/") + "/fail"))


def _call(url: str, timeout: float, method: str = "GET", body: str = "") -> None:
    import httpx

    try:
        if method == "POST":
            response = httpx.post(url, content=body.encode(), timeout=timeout, follow_redirects=True,
                                  headers={"Content-Type": "text/plain; charset=utf-8"})
        else:
            response = httpx.get(url, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise TaskFailed(f"monitoring URL {url} not reachable: {exc}") from exc
    if not response.is_success:
        raise TaskFailed(f"monitoring URL {url} answered HTTP {response.status_code}")


def schedule_zone(ctx: TaskContext, schedule_id: str) -> ZoneInfo:
    """The zone of schedule ``schedule_id`` from its file in ``schedules_dir``; the server zone otherwise."""
    from zmi_reconciler.loader import load_schedule_file

    for suffix in (".yaml", ".yml"):
        path = Path(ctx.settings.schedules_dir) / f"{schedule_id}{suffix}"
        if path.is_file():
            loaded = load_schedule_file(path)
            if loaded.schedule is not None:
                return loaded.schedule.zone(ctx.settings.default_timezone)
    return ctx.settings.zone


def _queue_alerts(ctx: TaskContext, missed: list[Expectation], now: datetime) -> int:
    """Queue one alert per missed expectation to ``settings.alert_email`` (deduplicated); returns how many
    were new."""
    recipient = ctx.settings.alert_email
    if not recipient:
        ctx.log("no alert_email configured: the missed deadline is only recorded in the journal", level="warning")
        return 0
    from zmi_reconciler.notify import deadline_alert

    queued = 0
    store = ctx.store()
    try:
        for item in missed:
            zone = schedule_zone(ctx, item.schedule)
            last = ctx.journal.last_success(item.schedule) if ctx.journal is not None else None
            message = deadline_alert(recipient=recipient, schedule_id=item.schedule,
                                     local_day=now.astimezone(zone).date(), by=item.by, zone=zone.key,
                                     last_success=last.astimezone(zone).strftime("%d.%m.%Y %H:%M") if last else None)
            if store.enqueue_message(message.recipient, message.subject, message.body,
                                     dedup_key=message.dedup_key) is not None:
                queued += 1
    finally:
        store.close()
    return queued


def _record_started_after(journal: Any, deadline: datetime) -> bool:
    """True when the journal's first event is later than ``deadline``: the server did not exist at the deadline
    (a fresh install), so a missed expectation today says nothing about the expected schedule."""
    first = journal.first_event_time()
    return first is None or first > deadline


def _check_expectations(ctx: TaskContext, expect: list[Expectation], now: datetime,
                        result: Result) -> list[Expectation]:
    failed: list[Expectation] = []
    for item in expect:
        ctx.check_cancelled()
        zone = schedule_zone(ctx, item.schedule)
        local_now = now.astimezone(zone)
        hours, minutes = map(int, item.by.split(":"))
        if local_now.time() < time(hours, minutes):
            continue  # deadline not reached yet today
        deadline = datetime.combine(local_now.date(), time(hours, minutes), tzinfo=zone)
        if ctx.journal is not None and _record_started_after(ctx.journal, deadline):
            ctx.log(f"schedule {item.schedule}: not checked today, this server's journal starts after the "
                    f"{item.by} deadline (fresh install)", expected_schedule=item.schedule, by=item.by)
            continue
        result.expectations_checked += 1
        last = ctx.journal.last_success(item.schedule) if ctx.journal is not None else None
        if last is None or last.astimezone(zone).date() != local_now.date():
            result.expectations_failed += 1
            failed.append(item)
            ctx.log(f"schedule {item.schedule} has no succeeded run today by {item.by}", level="warning",
                    expected_schedule=item.schedule, by=item.by)
    return failed


SPEC = TaskSpec(
    name="alive_check",
    zmi_name="Alive-Datensatz senden",
    description="Writes a heartbeat, optionally calls a monitoring URL, and alerts when an expected schedule "
                "has not succeeded by a deadline.",
    params_model=Params, result_model=Result, run=run,
)
