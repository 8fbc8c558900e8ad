"""``run_command`` ("Eigene Funktion"): runs a command from the server's allowlist, never from the file.

``params.command`` names an entry of the server setting ``commands`` (name -> argv list). The argv is started
with :class:`subprocess.Popen` as a list (``shell=False``: no shell, no word splitting, no globbing), stdin
closed, working directory the data dir, in its own process group. Every stdout/stderr line goes to the journal
as a ``task_log`` record (``stream`` ``stdout``/``stderr``; lines longer than 4,000 characters are cut).
Exit status 0 -> succeeded, anything else -> failed with the code (or the signal). When the run's cancel event
is set (timeout, shutdown) the process group gets SIGTERM, then SIGKILL after 5 s.

A name missing from the allowlist fails the task (:func:`allowlist_problem`); ``zmi-reconciler validate``
reports it earlier, as E031, when it can read the server's settings file.
"""

from __future__ import annotations

import difflib
import os
import signal
import subprocess
import threading
from collections.abc import Mapping, Sequence
from typing import IO

from pydantic import Field

from zmi_reconciler.tasks.base import TaskCancelled, TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec


class Params(TaskParams):
    command: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                         description="name of a command in the server setting `commands` (the allowlist)")


class Result(TaskResult):
    command: str = ""
    exit_code: int = 0
    stdout_lines: int = 0
    stderr_lines: int = 0


MAX_LINE = 4000
#: Seconds between SIGTERM and SIGKILL when a command is cancelled.
KILL_AFTER = 5.0
_POLL = 0.05


def allowlist_problem(name: str, commands: Mapping[str, Sequence[str]]) -> str | None:
    """None when ``name`` is a key of ``commands`` (the server setting: name -> argv), else why the command
    cannot run: the message lists the allowlisted names and suggests a close one. Used when the task runs and
    by ``validate`` (E031, :mod:`zmi_reconciler.lint`)."""
    if name in commands:
        return None
    close = difflib.get_close_matches(name, list(commands), n=1)
    allowed = ", ".join(sorted(commands)) or "none are configured"
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"command {name!r} is not in the server's allowlist (setting `commands`); allowlisted: {allowed}{hint}"


def run(ctx: TaskContext, params: Params) -> Result:
    commands = ctx.settings.commands
    problem = allowlist_problem(params.command, commands)
    if problem is not None:
        raise TaskFailed(problem)
    argv = commands[params.command]
    result = Result(command=params.command)
    cwd = ctx.settings.data_dir if ctx.settings.data_dir.is_dir() else None
    ctx.log(f"starting {params.command}: {argv!r}")
    try:
        proc = subprocess.Popen(list(argv), shell=False, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=cwd, start_new_session=True)
    except OSError as exc:
        raise TaskFailed(f"command {params.command!r} could not start: {exc}", result=result) from exc
    counts = {"stdout": 0, "stderr": 0}
    readers = [threading.Thread(target=_pump, args=(stream, name, ctx, counts), daemon=True,
                                name=f"{ctx.run_id} {name}")
               for stream, name in ((proc.stdout, "stdout"), (proc.stderr, "stderr"))]
    for reader in readers:
        reader.start()
    cancelled = False
    while True:
        try:
            proc.wait(timeout=_POLL)
            break
        except subprocess.TimeoutExpired:
            if ctx.cancel.is_set():
                cancelled = True
                _stop(proc)
                break
    for reader in readers:
        reader.join(timeout=KILL_AFTER)
    result.exit_code = proc.returncode
    result.stdout_lines, result.stderr_lines = counts["stdout"], counts["stderr"]
    if cancelled:
        raise TaskCancelled(f"command {params.command!r} stopped (cancelled), exit status {proc.returncode}")
    if proc.returncode != 0:
        how = (f"was killed by signal {-proc.returncode}" if proc.returncode < 0
               else f"exited with status {proc.returncode}")
        raise TaskFailed(f"command {params.command!r} {how}", result=result)
    return result


def _pump(stream: IO[bytes], name: str, ctx: TaskContext, counts: dict[str, int]) -> None:
    with stream:
        for raw in stream:
            line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
            if len(line) > MAX_LINE:
                line = line[:MAX_LINE] + " [cut]"
            counts[name] += 1
            ctx.log(line, level="info" if name == "stdout" else "warning", stream=name)


def _stop(proc: subprocess.Popen) -> None:
    """SIGTERM the command's process group, SIGKILL it after :data:`KILL_AFTER` seconds."""
    for sig, wait in ((signal.SIGTERM, KILL_AFTER), (signal.SIGKILL, KILL_AFTER)):
        try:
            os.killpg(proc.pid, sig)  # start_new_session: the group id is the child's pid
        except ProcessLookupError:
            proc.wait()
            return
        try:
            proc.wait(timeout=wait)
            return
        except subprocess.TimeoutExpired:
            continue


SPEC = TaskSpec(
    name="run_command",
    zmi_name="Eigene Funktion",
    description="Runs a command that the server config allowlists by name (argv, no shell); output to the journal.",
    params_model=Params, result_model=Result, run=run,
)
