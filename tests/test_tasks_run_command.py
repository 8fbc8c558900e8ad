"""run_command: allowlisted argv, no shell, output to the journal, exit status, cancellation kills."""

from __future__ import annotations

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


def test_missing_executable_fails(tmp_path):
    ctx = ctx_for(tmp_path, {"nope": [str(tmp_path / "does-not-exist")]}, [])
    with pytest.raises(TaskFailed, match="could not start"):
        run_command.run(ctx, run_command.Params(command="nope"))
