"""``alive_check`` ("Alive-Datensatz senden"): heartbeat file, monitoring URL, deadline alerts.

1. Heartbeat: ``<data_dir>/alive.json`` = ``{"schedule", "run_id", "ts"}`` (``ts`` UTC ISO 8601), written
   atomically (temporary file + ``os.replace``), plus a ``task_log`` record in the journal.
2. URL (``params.url``, else the server setting ``alive_url``; none = skipped): one HTTP GET with
   ``timeout_seconds``; a transport error or a non-2xx answer fails the task.
3. Expectations: each ``{schedule, by}`` whose deadline ``by`` (local time of the server's default zone) has
   passed today must have a succeeded run finished today (same zone) -- from the journal's ``last_success``.
   Missed ones fail the task with their names, which is the alert (journal, API, notifications).
"""

from __future__ import annotations

import json
import os
import tempfile
from datetime import datetime, time, timezone
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field

from zmi_reconciler.tasks._common import HHMM
from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec


class Expectation(BaseModel):
    """``schedule`` must have a succeeded run today (schedule's local date) by ``by`` (local HH:MM)."""

    model_config = ConfigDict(extra="forbid")
    schedule: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]{0,62}$")
    by: HHMM


class Params(TaskParams):
    url: str | None = Field(default=None, description="monitoring URL (healthchecks / Uptime Kuma); "
                                                      "default: server setting alive_url",
                            pattern=r"^https?://")
    expect: list[Expectation] = Field(default_factory=list)
    timeout_seconds: float = Field(default=10.0, gt=0, le=120)


class Result(TaskResult):
    heartbeat_file: str = ""
    url_called: bool = False
    expectations_checked: int = 0
    expectations_failed: int = 0


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
    now = ctx.clock().astimezone(timezone.utc)
    result = Result()
    path = ctx.settings.data_dir / "alive.json"
    write_heartbeat(path, {"schedule": ctx.schedule_id, "run_id": ctx.run_id,
                           "ts": now.isoformat(timespec="milliseconds").replace("+00:00", "Z")})
    result.heartbeat_file = str(path)
    ctx.log("heartbeat written", file=str(path))
    url = params.url or ctx.settings.alive_url
    if url:
        _call(url, params.timeout_seconds)
        result.url_called = True
        ctx.log("monitoring URL called", url=url)
    failed = _check_expectations(ctx, params.expect, now, result)
    if failed:
        raise TaskFailed("expected schedule(s) without a succeeded run today by their deadline: "
                         + ", ".join(failed), result=result)
    return result


def _call(url: str, timeout: float) -> None:
    import httpx

    try:
        response = httpx.get(url, timeout=timeout, follow_redirects=True)
    except httpx.HTTPError as exc:
        raise TaskFailed(f"monitoring URL {url} not reachable: {exc}") from exc
    if not response.is_success:
        raise TaskFailed(f"monitoring URL {url} answered HTTP {response.status_code}")


def _check_expectations(ctx: TaskContext, expect: list[Expectation], now: datetime, result: Result) -> list[str]:
    zone = ctx.settings.zone
    local_now = now.astimezone(zone)
    failed: list[str] = []
    for item in expect:
        hours, minutes = map(int, item.by.split(":"))
        if local_now.time() < time(hours, minutes):
            continue  # deadline not reached yet today
        result.expectations_checked += 1
        last = ctx.journal.last_success(item.schedule) if ctx.journal is not None else None
        if last is None or last.astimezone(zone).date() != local_now.date():
            result.expectations_failed += 1
            failed.append(f"{item.schedule} (by {item.by})")
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
