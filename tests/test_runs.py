"""Execution of one run (SPEC 4): order, on_error, enabled, statuses, ids, journal events."""

from __future__ import annotations

import re

import pytest

from zmi_reconciler.journal import Journal
from zmi_reconciler.runs import (RunHandle, RunRequest, execute_run, manual_run_id, run_status, scheduled_run_id,
                                 TaskOutcome)

from test_runner_support import FakeClock, Recorder, entry, events, make_schedule, make_settings, utc


def run(tmp_path, tasks, *, trigger="scheduled", indexes=None, rec=None):
    rec = rec or Recorder()
    clock = FakeClock(utc(2026, 11, 29, 4, 0))
    journal = Journal(tmp_path / "journal", clock=clock)
    sched = make_schedule({"type": "daily", "at": "05:00"}, tasks)
    slot = utc(2026, 11, 29, 4, 0)
    handle = RunHandle(RunRequest("nightly", sched, "abc", trigger, slot, scheduled_run_id("nightly", slot), indexes))
    outcome = execute_run(handle, settings=make_settings(tmp_path), journal=journal, registry=rec.registry(),
                          clock=clock, cancel_grace=0.1)
    assert handle.done.is_set() and handle.outcome is outcome
    return outcome, journal, rec


def statuses(outcome):
    return [t.status for t in outcome.tasks]


def test_run_ids():
    slot = utc(2026, 11, 29, 4, 0)
    assert scheduled_run_id("nightly", slot) == "nightly@20261129T040000Z"
    rid = manual_run_id("nightly", utc(2026, 11, 29, 4, 0, 7))
    assert re.fullmatch(r"nightly@manual-20261129T040007Z-[0-9a-f]{6}", rid)
    assert rid != manual_run_id("nightly", utc(2026, 11, 29, 4, 0, 7))


def test_all_succeed_and_the_journal_has_every_event(tmp_path):
    outcome, journal, rec = run(tmp_path, [entry("record", "backup"), entry("record", "calculate")])
    assert outcome.status == "succeeded" and statuses(outcome) == ["succeeded", "succeeded"]
    assert rec.names() == ["backup", "calculate"]
    evs = [(e["event"], e.get("index")) for e in events(journal)]
    assert evs == [("run_started", None), ("task_started", 0), ("task_log", 0), ("task_finished", 0),
                   ("task_started", 1), ("task_log", 1), ("task_finished", 1), ("run_finished", None)]
    for e in events(journal):
        assert e["schedule"] == "nightly" and e["run_id"] == "nightly@20261129T040000Z"
    first = events(journal, "task_finished")[0]
    assert (first["task"], first["status"], first["result"], first["error"]) == ("record", "succeeded", {"done": 1}, None)
    assert isinstance(first["duration_ms"], int)
    log = events(journal, "task_log")[0]
    assert (log["message"], log["level"], log["task"]) == ("did backup", "info", "record")


def test_on_error_stop_skips_the_rest(tmp_path):
    outcome, journal, rec = run(tmp_path, [entry("record", "a"), entry("fail", "b"), entry("record", "c")])
    assert statuses(outcome) == ["succeeded", "failed", "skipped"] and outcome.status == "failed"
    assert rec.names() == ["a", "b"]
    finished = events(journal, "task_finished")
    assert finished[1]["error"] == "boom" and finished[1]["result"] == {"done": 0}
    assert finished[2]["reason"] == "task 1 (fail) failed with on_error: stop"
    assert events(journal, "run_finished")[0]["status"] == "failed"


def test_on_error_continue_gives_partial(tmp_path):
    outcome, _, rec = run(tmp_path, [entry("fail", "a", on_error="continue"), entry("record", "b")])
    assert statuses(outcome) == ["failed", "succeeded"] and outcome.status == "partial"
    assert rec.names() == ["a", "b"]


def test_every_task_failing_with_continue_is_failed(tmp_path):
    outcome, _, _ = run(tmp_path, [entry("fail", on_error="continue"), entry("crash", on_error="continue")])
    assert outcome.status == "failed"
    assert outcome.tasks[1].error == "ZeroDivisionError: division by zero"


def test_disabled_task_is_skipped(tmp_path):
    outcome, journal, rec = run(tmp_path, [entry("record", "a", enabled=False), entry("record", "b")])
    assert statuses(outcome) == ["skipped", "succeeded"] and outcome.status == "succeeded"
    assert rec.names() == ["b"]
    assert events(journal, "task_finished")[0]["reason"] == "task disabled (enabled: false)"
    assert [e["index"] for e in events(journal, "task_started")] == [1]


def test_selected_tasks_only(tmp_path):
    outcome, journal, rec = run(tmp_path, [entry("record", "a"), entry("record", "b"), entry("record", "c")],
                                trigger="manual", indexes=(1,))
    assert [t.index for t in outcome.tasks] == [1] and rec.names() == ["b"]
    assert events(journal, "run_started")[0]["tasks"] == [1]


def test_unknown_task_fails_cleanly(tmp_path):
    outcome, journal, _ = run(tmp_path, [entry("no_such_task")])
    assert outcome.status == "failed"
    assert "cannot run: unknown task" in events(journal, "task_finished")[0]["error"]


def test_timeout_of_a_cooperative_task(tmp_path):
    rec = Recorder()
    outcome, journal, _ = run(tmp_path, [entry("block", timeout=0.1, on_error="continue"), entry("record", "b")],
                              rec=rec)
    assert statuses(outcome) == ["timed_out", "succeeded"] and outcome.status == "partial"
    assert events(journal, "task_finished")[0]["error"] == "timed out after 0.1 s; stopped"


@pytest.mark.parametrize(("outcomes", "stopped", "expected"), [
    ([], False, "succeeded"),
    (["succeeded", "skipped"], False, "succeeded"),
    (["succeeded", "failed"], True, "failed"),
    (["succeeded", "timed_out"], False, "partial"),
    (["failed", "timed_out"], False, "failed"),
    (["skipped"], False, "succeeded"),
])
def test_run_status_table(outcomes, stopped, expected):
    tasks = [TaskOutcome(i, "t", s) for i, s in enumerate(outcomes)]
    assert run_status(tasks, stopped) == expected
