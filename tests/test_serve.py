"""``serve`` end to end, as a real process: SIGKILL mid-run and restart, SIGTERM with a grace period.

The schedule runs an allowlisted ``run_command`` that prints its pid and sleeps; the test polls the journal
(with deadlines, no fixed sleeps) and kills stray children in the end.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from zmi_reconciler.journal import Journal

pytestmark = pytest.mark.slow

SLEEPER = "import os, time; print(os.getpid(), flush=True); time.sleep(120)"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _events(journal_dir: Path) -> list[dict]:
    out = []
    for path in sorted(journal_dir.glob("*.jsonl")):
        for raw in path.read_bytes().splitlines():
            out.append(json.loads(raw))  # every line must be whole JSON: the journal stays readable
    return out


def _poll(journal_dir: Path, predicate, deadline_s: float, proc: subprocess.Popen):
    deadline = time.monotonic() + deadline_s
    while time.monotonic() < deadline:
        evs = _events(journal_dir) if journal_dir.exists() else []
        found = predicate(evs)
        if found:
            return found
        if proc.poll() is not None:
            pytest.fail(f"serve exited early with {proc.returncode}: {proc.stderr.read().decode()[-3000:]}")
        time.sleep(0.05)
    pytest.fail(f"condition not met within {deadline_s} s; journal: {_events(journal_dir)[-10:]}")


@pytest.fixture
def server_dir(tmp_path):
    (tmp_path / "schedules.d").mkdir()
    (tmp_path / "schedules.d" / "slow.yaml").write_text(
        "name: Slow\n"
        "timing: {type: seconds, every: 3}\n"
        "catch_up: 5m\n"
        "tasks:\n"
        "  - task: run_command\n"
        "    params: {command: sleeper}\n"
        "    timeout: 2m\n")
    (tmp_path / "zmi.toml").write_text(
        "shutdown_grace_seconds = 0.5\n"
        "[commands]\n"
        f"sleeper = [{json.dumps(sys.executable)}, \"-c\", {json.dumps(SLEEPER)}]\n")
    children: list[int] = []
    yield tmp_path, children
    for pid in children:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _serve(tmp_path: Path) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZMI_")}
    return subprocess.Popen(
        [sys.executable, "-m", "zmi_reconciler", "serve", "--config", str(tmp_path / "zmi.toml"),
         "--data-dir", str(tmp_path / "var"), "--schedules-dir", str(tmp_path / "schedules.d"),
         "--port", str(_free_port())],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _running_child(run_id):
    def find(evs):
        for e in evs:
            if e["event"] == "task_log" and e.get("stream") == "stdout" and (run_id is None or e["run_id"] == run_id):
                return e["run_id"], int(e["message"])
        return None
    return find


def test_sigkill_mid_run_then_restart_records_interrupted_and_never_reruns_the_slot(server_dir):
    tmp_path, children = server_dir
    journal_dir = tmp_path / "var" / "journal"
    first = _serve(tmp_path)
    try:
        killed_run, child = _poll(journal_dir, _running_child(None), 30, first)
        children.append(child)
    finally:
        first.kill()  # SIGKILL: no chance to write anything
        first.wait(10)
    assert not any(e["event"] in ("run_finished", "run_interrupted") and e["run_id"] == killed_run
                   for e in _events(journal_dir))

    second = _serve(tmp_path)
    try:
        _poll(journal_dir, lambda evs: any(e["event"] == "run_interrupted" and e["run_id"] == killed_run
                                           for e in evs), 30, second)
        new_run, child2 = _poll(journal_dir, lambda evs: next(
            ((e["run_id"], int(e["message"])) for e in evs if e["event"] == "task_log" and e.get("stream") == "stdout"
             and e["run_id"] != killed_run), None), 30, second)
        children.append(child2)
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(10)

    evs = _events(journal_dir)
    started = [e["run_id"] for e in evs if e["event"] == "run_started"]
    assert len(started) == len(set(started)), "a slot ran twice"
    assert started[0] == killed_run and new_run in started
    interrupted = {e["run_id"]: e for e in evs if e["event"] == "run_interrupted"}
    assert interrupted[killed_run].get("reason") != "shutdown"  # found at the next start (the process died)
    assert interrupted[new_run]["reason"] == "shutdown"  # SIGTERM: grace, then cancelled and recorded
    killed_slot = next(e["scheduled_for"] for e in evs if e["event"] == "run_started" and e["run_id"] == killed_run)
    later = [e for e in evs if e.get("scheduled_for") == killed_slot and e["event"] != "run_interrupted"]
    assert [e["event"] for e in later] == ["run_started"]  # neither re-run nor recorded missed
    journal = Journal(journal_dir)
    assert journal.last_run("slow")["run_id"] == new_run
    assert journal.get_run(killed_run)["status"] == "interrupted"
    with pytest.raises(ProcessLookupError):  # the cancelled command's process was killed
        for _ in range(100):
            os.kill(child2, 0)
            time.sleep(0.05)
