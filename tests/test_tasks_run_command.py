"""run_command: allowlisted argv, no shell, output to the journal, exit status, cancellation kills."""

from __future__ import annotations

import os
import signal
import sys
import threading
import time
from datetime import datetime, timezone

import pytest

from zmi_reconciler.tasks import run_command
from zmi_reconciler.tasks.base import TaskCancelled, TaskContext, TaskFailed

from test_runner_support import make_settings

PY = sys.executable


def ctx_for(tmp_path, commands, logs):
    settings = make_settings(tmp_path, commands=commands)
    return TaskContext(settings=settings, schedule_id="s", run_id="s@1", task_index=0, task_name="run_command",
                       scheduled_for=datetime(2026, 1, 1, tzinfo=timezone.utc),
                       log=lambda message, level="info", **f: logs.append((message, level, f.get("stream"))))


def test_output_lines_go_to_the_log_and_exit_zero_succeeds(tmp_path):
    logs: list = []
    code = "import sys; print('one'); print('two'); print('warn', file=sys.stderr)"
    ctx = ctx_for(tmp_path, {"hello": [PY, "-c", code]}, logs)
    result = run_command.run(ctx, run_command.Params(command="hello"))
    assert (result.command, result.exit_code, result.stdout_lines, result.stderr_lines) == ("hello", 0, 2, 1)
    out = [(m, lvl, s) for m, lvl, s in logs if s]
    assert sorted(out) == [("one", "info", "stdout"), ("two", "info", "stdout"), ("warn", "warning", "stderr")]


def test_nonzero_exit_fails_with_the_code(tmp_path):
    ctx = ctx_for(tmp_path, {"bad": [PY, "-c", "import sys; sys.exit(3)"]}, [])
    with pytest.raises(TaskFailed, match="exited with status 3") as info:
        run_command.run(ctx, run_command.Params(command="bad"))
    assert info.value.result.exit_code == 3


def test_unknown_name_lists_the_allowlist(tmp_path):
    ctx = ctx_for(tmp_path, {"b": ["true"], "a": ["true"]}, [])
    with pytest.raises(TaskFailed, match=r"not in the server's allowlist.*allowlisted: a, b"):
        run_command.run(ctx, run_command.Params(command="rm"))


def test_no_shell_metacharacters_are_interpreted(tmp_path):
    logs: list = []
    ctx = ctx_for(tmp_path, {"echo": [PY, "-c", "import sys; print(sys.argv[1:])", "$(id) ; ls *"]}, logs)
    run_command.run(ctx, run_command.Params(command="echo"))
    assert ("['$(id) ; ls *']", "info", "stdout") in logs


def test_cancel_terminates_the_process(tmp_path):
    logs: list = []
    code = "import time; print('started', flush=True); time.sleep(60)"
    ctx = ctx_for(tmp_path, {"sleep": [PY, "-c", code]}, logs)
    threading.Timer(0.3, ctx.cancel.set).start()
    began = time.monotonic()
    with pytest.raises(TaskCancelled, match="stopped"):
        run_command.run(ctx, run_command.Params(command="sleep"))
    assert time.monotonic() - began < 5
    assert ("started", "info", "stdout") in logs


@pytest.mark.skipif(run_command.process_start(os.getpid()) is None, reason="needs Linux /proc")
def test_cancel_ends_processes_the_command_started_too(tmp_path, monkeypatch):
    """A process the command started that ignores SIGTERM gets SIGKILL after the grace (only the command itself
    was watched: the helper outlived the cancelled run)."""
    monkeypatch.setattr(run_command, "KILL_AFTER", 0.5)
    member = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    code = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', %r]); "
            "print('started', flush=True); time.sleep(60)" % member)
    records: list = []
    settings = make_settings(tmp_path, commands={"pair": [PY, "-c", code]})
    ctx = TaskContext(settings=settings, schedule_id="s", run_id="s@1", task_index=0, task_name="run_command",
                      scheduled_for=datetime(2026, 1, 1, tzinfo=timezone.utc),
                      log=lambda message, level="info", **f: records.append((message, f)))
    threading.Timer(0.8, ctx.cancel.set).start()
    with pytest.raises(TaskCancelled):
        run_command.run(ctx, run_command.Params(command="pair"))
    pid = next(f["command_pid"] for m, f in records if m.startswith("started pair"))
    assert not run_command._group_alive(pid)


def test_missing_executable_fails(tmp_path):
    ctx = ctx_for(tmp_path, {"nope": [str(tmp_path / "does-not-exist")]}, [])
    with pytest.raises(TaskFailed, match="could not start"):
        run_command.run(ctx, run_command.Params(command="nope"))


def test_the_started_line_records_the_commands_pid_and_start_time(tmp_path):
    records: list = []
    settings = make_settings(tmp_path, commands={"hello": [PY, "-c", "print('hi')"]})
    ctx = TaskContext(settings=settings, schedule_id="s", run_id="s@1", task_index=0, task_name="run_command",
                      scheduled_for=datetime(2026, 1, 1, tzinfo=timezone.utc),
                      log=lambda message, level="info", **f: records.append((message, f)))
    run_command.run(ctx, run_command.Params(command="hello"))
    started = [(m, f) for m, f in records if m.startswith("started hello")]
    assert len(started) == 1 and isinstance(started[0][1]["command_pid"], int)
    if run_command.process_start(os.getpid()) is not None:  # Linux /proc
        assert isinstance(started[0][1]["command_start"], int) and started[0][1]["command_start"] > 0


def _leftover(tmp_path, code: str, start_offset: int = 0):
    """A journal whose server was killed while run s@1's command (``code``, in its own session) ran."""
    import subprocess

    from zmi_reconciler.journal import Journal

    journal = Journal(tmp_path / "journal")
    proc = subprocess.Popen([PY, "-c", code], start_new_session=True)
    time.sleep(0.3)  # (the child installs its signal handlers)
    journal.append("run_started", schedule="s", run_id="s@1", trigger="manual", pid=2**22 + 12345)  # dead pid
    journal.append("task_started", schedule="s", run_id="s@1", index=0, task="run_command")
    journal.append("task_log", schedule="s", run_id="s@1", index=0, task="run_command", level="info",
                   message="started", command_pid=proc.pid,
                   command_start=(run_command.process_start(proc.pid) or 0) + start_offset)
    assert journal.orphaned_runs() == ["s@1"]  # what serve hands to stop_leftovers before it closes them
    return journal, proc


@pytest.mark.skipif(run_command.process_start(os.getpid()) is None, reason="needs Linux /proc")
def test_a_command_that_outlived_its_killed_server_is_stopped_at_the_next_start(tmp_path):
    """QA: kill -9 of serve left the command running while the run was recorded interrupted; a re-trigger could
    run its side effect twice. The next start ends the process group (SIGTERM; SIGKILL for one ignoring it)."""
    journal, proc = _leftover(tmp_path, "import time; time.sleep(60)")
    assert run_command.stop_leftovers(journal, ["s@1"], grace=2) == [("s@1", proc.pid)]
    assert proc.wait(timeout=5) == -signal.SIGTERM
    assert journal.close_interrupted() == ["s@1"]
    notes = [line for line in journal.get_run("s@1")["logs"] if "outlived its server" in line["message"]]
    assert [(n["index"], n["task"], n["level"]) for n in notes] == [(0, "run_command", "warning")]  # shown by the API

    stubborn = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    journal, proc = _leftover(tmp_path / "2", stubborn)
    assert run_command.stop_leftovers(journal, ["s@1"], grace=0.5) == [("s@1", proc.pid)]
    assert proc.wait(timeout=5) == -signal.SIGKILL


def _pgrp(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            return int(handle.read().rsplit(b")", 1)[1].split()[2])
    except (OSError, IndexError, ValueError):
        return None


@pytest.mark.skipif(run_command.process_start(os.getpid()) is None, reason="needs Linux /proc")
def test_the_whole_group_is_ended_also_members_that_ignore_sigterm_or_outlived_the_leader(tmp_path):
    """QA: a group member ignoring SIGTERM survived (only the leader was watched), and a group whose leader had
    ended was skipped."""
    member = "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(60)"
    leader = ("import subprocess, sys, time; subprocess.Popen([sys.executable, '-c', %r]); time.sleep(60)" % member)
    journal, proc = _leftover(tmp_path, leader)
    time.sleep(0.5)  # the member is up
    group = [p for p in os.listdir("/proc") if p.isdigit() and _pgrp(int(p)) == proc.pid]
    assert len(group) == 2
    assert run_command.stop_leftovers(journal, ["s@1"], grace=0.5) == [("s@1", proc.pid)]
    proc.wait(timeout=5)
    assert not run_command._group_alive(proc.pid)

    ends_first = ("import subprocess, sys; subprocess.Popen([sys.executable, '-c', %r])" % member)
    journal, proc = _leftover(tmp_path / "2", ends_first)
    proc.wait(timeout=5)  # the leader is gone (reaped), its member still runs
    assert run_command._group_alive(proc.pid)
    assert run_command.stop_leftovers(journal, ["s@1"], grace=0.5) == [("s@1", proc.pid)]
    assert not run_command._group_alive(proc.pid)


@pytest.mark.skipif(run_command.process_start(os.getpid()) is None, reason="needs Linux /proc")
def test_a_reused_pid_is_not_stopped(tmp_path):
    """Another process that got the pid (another start time) is none of ours."""
    journal, proc = _leftover(tmp_path, "import time; time.sleep(60)", start_offset=1)
    try:
        assert run_command.stop_leftovers(journal, ["s@1"], grace=0.5) == []
        assert proc.poll() is None
    finally:
        proc.kill()
        proc.wait()
