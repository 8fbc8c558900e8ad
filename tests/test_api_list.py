"""GET /schedules (``ScheduleService.list_json``): the cached per-item encoding answers byte for byte what the
straightforward encoding (one ``runner.status`` and one dict per schedule, encoded as a whole) answers, before
and after every kind of change: runs (active, finished, by another writer), edits, pause, degraded and never
valid files, deletion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest

from test_api_support import close_env, make_env
from zmi_reconciler.api.models import error_from_finding, run_summary_dict
from zmi_reconciler.api.service import ScheduleService
from zmi_reconciler.journal import Journal

DAILY = """\
name: Daily {n}
timezone: Europe/Berlin
timing: {{type: daily, at: "0{n}:30"}}
tasks:
  - task: backup_database
    params: {{keep: 3}}
  - task: calculate_days
"""
HELD = """\
name: Held
timing: {type: manual}
tasks:
  - task: alive_check
"""


def reference_list_json(service: ScheduleService) -> bytes:
    """The list as built before the per-item cache (kept here as the oracle)."""
    runner = service.runner
    service.poll_journal()
    items = []
    for schedule_id, state in sorted(service._states().items()):
        schedule = state.schedule
        file_hash = getattr(state, "file_hash", None) or state.content_hash
        runner_status = None
        if schedule is not None and runner is not None:
            try:
                runner_status = runner.status(schedule_id)
            except KeyError:
                pass
        last, last_success = service._last_run(schedule_id)
        errors = [error_from_finding(f).model_dump() for f in state.findings
                  if f.severity == "error"] if state.degraded else []
        items.append({
            "id": schedule_id,
            "name": schedule.name if schedule is not None else None,
            "timing": schedule.timing.type if schedule is not None else None,
            "etag": f'"{file_hash}"' if file_hash else None,
            "status": {
                "enabled": schedule is not None and schedule.enabled,
                "loaded": schedule is not None,
                "degraded": state.degraded or schedule is None,
                "errors": errors,
                "next_fire": runner_status["next_fire"] if runner_status else None,
                "active_run": runner_status["active_run"] if runner_status else None,
                "queued": bool(runner_status["queued"]) if runner_status else False,
                "last_run": run_summary_dict(last) if last else None,
                "last_success": last_success,
            }})
    return msgspec.json.encode({"items": items})


@pytest.fixture
def env(tmp_path: Path):
    e = make_env(tmp_path)
    yield e
    close_env(e)


def _same(service: ScheduleService) -> dict[str, Any]:
    body = service.list_json()
    assert body == reference_list_json(service)
    return msgspec.json.decode(body)


def test_list_matches_the_reference_encoding_through_changes(env) -> None:
    service = ScheduleService(env.settings, env.runner, env.reconciler, env.journal, clock=env.clock)
    assert _same(service) == {"items": []}
    for n in range(4):
        (env.schedules / f"daily-{n}.yaml").write_text(DAILY.format(n=n), encoding="utf-8")
    (env.schedules / "held.yaml").write_text(HELD, encoding="utf-8")
    (env.schedules / "never.yaml").write_text("name: x\ntiming: {type: daily, at: '99:00'}\ntasks: []\n")
    env.reconciler.reconcile_now()
    first = _same(service)
    assert [i["id"] for i in first["items"]] == ["daily-0", "daily-1", "daily-2", "daily-3", "held", "never"]
    assert first["items"][0]["status"]["next_fire"] is not None
    assert first["items"][5]["status"]["degraded"] is True and first["items"][5]["status"]["errors"]
    parts = {sid: entry[3] for sid, entry in service._items.items()}
    _same(service)
    assert all(service._items[sid][3] is part for sid, part in parts.items())  # nothing changed: reused

    # an active run, then its end (last run, last success)
    run_id = env.runner.trigger("held", None)
    assert env.gate.started.wait(10)
    active = _same(service)
    assert active["items"][4]["status"]["active_run"] == run_id
    assert service._items["daily-0"][3] is parts["daily-0"]
    env.gate.release.set()
    assert env.runner.wait_run(run_id, 10)
    done = _same(service)
    assert done["items"][4]["status"]["last_run"]["run_id"] == run_id
    assert done["items"][4]["status"]["active_run"] is None
    env.runner.trigger("daily-1", None)
    env.wait_idle("daily-1")
    assert _same(service)["items"][1]["status"]["last_success"] is not None

    # another process's journal lines naming a schedule
    other = Journal(env.settings.journal_path, clock=env.clock, index_cache=False)
    other.append("run_started", schedule="daily-2", run_id="daily-2@cli", trigger="manual")
    other.append("run_finished", schedule="daily-2", run_id="daily-2@cli", status="failed")
    assert _same(service)["items"][2]["status"]["last_run"]["status"] == "failed"

    # pause by file edit, a previously valid file turning invalid (degraded, still loaded), deletion
    text = (env.schedules / "daily-3.yaml").read_text()
    (env.schedules / "daily-3.yaml").write_text(text + "enabled: false\n", encoding="utf-8")
    (env.schedules / "daily-0.yaml").write_text(text.replace('"03:30"', '"25:00"'), encoding="utf-8")
    (env.schedules / "never.yaml").unlink()
    env.reconciler.reconcile_now()
    final = _same(service)
    by_id = {i["id"]: i for i in final["items"]}
    assert "never" not in by_id
    assert by_id["daily-3"]["status"]["enabled"] is False
    assert by_id["daily-0"]["status"]["degraded"] is True and by_id["daily-0"]["status"]["loaded"] is True
    assert by_id["daily-0"]["status"]["errors"][0]["path"] == "timing.at"


def test_list_without_runner_or_journal_matches_the_reference(env) -> None:
    service = ScheduleService(env.settings, None, env.reconciler, None, clock=env.clock)
    (env.schedules / "daily-1.yaml").write_text(DAILY.format(n=1), encoding="utf-8")
    env.reconciler.reconcile_now()
    items = _same(service)["items"]
    assert items[0]["status"]["next_fire"] is None and items[0]["status"]["last_run"] is None
    assert items[0]["etag"].startswith('"')
