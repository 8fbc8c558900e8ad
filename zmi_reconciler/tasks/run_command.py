"""``run_command`` ("Eigene Funktion"): runs a command from the server's allowlist, never from the file.

``params.command`` names an entry of the server setting ``commands`` (name -> argv list). The argv is started
with :class:`subprocess.Popen` as a list (``shell=False``: no shell, no word splitting, no globbing), stdin
closed, working directory the data dir, in its own process group. Every stdout/stderr line goes to the journal
as a ``task_log`` record (``stream`` ``stdout``/``stderr``; lines longer than 4,000 characters are cut).
Exit status 0 -> succeeded, anything else -> failed with the code (or the signal). When the run's cancel event
is set (timeout, shutdown) the process group gets SIGTERM, then SIGKILL after 5 s.

The ``task_log`` line ``started ...`` records the command's ``command_pid`` and ``command_start`` (its start time
in clock ticks since boot, Linux ``/proc``): a server killed with SIGKILL cannot stop its commands, so the next
start calls :func:`stop_leftovers` for the runs it is about to close as interrupted, which ends each such process
group (the leader still the same process: same pid and start time; or its members after the leader ended), so that
a re-trigger does not run a side effect twice.

A name missing from the allowlist fails the task (:func:`allowlist_problem`); ``zmi-reconciler validate``
reports it earlier, as E031, when it can read the server's settings file.
"""

from __future__ import annotations

import difflib
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from typing import IO, Any

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
    try:
        proc = subprocess.Popen(list(argv), shell=False, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, cwd=cwd, start_new_session=True)
    except OSError as exc:
        raise TaskFailed(f"command {params.command!r} could not start: {exc}", result=result) from exc
    ctx.log(f"started {params.command}: {argv!r} as pid {proc.pid}", command_pid=proc.pid,
            command_start=process_start(proc.pid))
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
    """SIGTERM the command's process group, SIGKILL what is left of it (the command or any process it started)
    after :data:`KILL_AFTER` seconds."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)  # start_new_session: the group id is the child's pid
    except ProcessLookupError:
        proc.wait()
        return
    deadline = time.monotonic() + KILL_AFTER
    while time.monotonic() < deadline:
        if proc.poll() is not None and not _group_alive(proc.pid):
            return
        time.sleep(0.05)
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def process_start(pid: int) -> int | None:
    """The start time of process ``pid`` in clock ticks since boot (``/proc/<pid>/stat`` field 22): with the pid
    it names one process, even after the pid is reused. None where ``/proc`` is missing or the process is gone
    (a zombie counts as gone: it runs nothing, and a container's init may never reap it)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as handle:
            fields = handle.read().rsplit(b")", 1)[1].split()
        return None if fields[0] == b"Z" else int(fields[19])
    except (OSError, IndexError, ValueError):
        return None


def stop_leftovers(journal: Any, run_ids: Iterable[str], grace: float = KILL_AFTER) -> list[tuple[str, int]]:
    """End the commands of ``run_ids`` (runs of a killed server, about to be closed as interrupted) that still
    run: for every ``task_log`` of such a run with ``command_pid`` and ``command_start`` whose process is still
    that process (same start time), or whose group outlived it, the process group gets SIGTERM and SIGKILL for
    what is left after ``grace`` seconds. Each one is logged (warning) and journaled as a ``task_log`` of its
    run. Returns (run id, pid) of those ended. A command whose start time was not recorded (no ``/proc``) is left
    alone and logged."""
    import logging

    log = logging.getLogger(__name__)
    ended: list[tuple[str, int]] = []
    for run_id in run_ids:
        run = journal.get_run(run_id)
        for line in (run or {}).get("logs", []):
            pid, start = line.get("command_pid"), line.get("command_start")
            if not isinstance(pid, int) or pid <= 0:
                continue
            if not isinstance(start, int):
                log.warning("run %s: command pid %d of the interrupted run may still run (its start time was not "
                            "recorded, so it is not stopped)", run_id, pid)
                continue
            now = process_start(pid)
            if now is not None and now != start:
                continue  # the pid is another process by now
            if now is None and not _group_alive(pid):
                continue  # the command and its group are gone
            # The leader, or members of its group after the leader ended (Linux does not reuse a pid while a
            # process group of that id exists, so the group is still the command's).
            _end_group(pid, grace)
            message = (f"command pid {pid} of this run outlived its server (killed); stopped at the next start "
                       f"(SIGTERM to its process group, SIGKILL after {grace:.0f} s)")
            log.warning("run %s: %s", run_id, message)
            journal.append("task_log", schedule=run["schedule"], run_id=run_id, index=line.get("index"),
                           task=line.get("task"), level="warning", message=message)
            ended.append((run_id, pid))
    return ended


def _group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` has a member that is not a zombie (Linux ``/proc``; elsewhere: any)."""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    try:
        names = os.listdir("/proc")
    except OSError:
        return True
    for name in names:
        if not name.isdigit():
            continue
        try:
            with open(f"/proc/{name}/stat", "rb") as handle:
                fields = handle.read().rsplit(b")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if len(fields) > 2 and fields[2] == str(pgid).encode() and fields[0] != b"Z":
            return True
    return False


def _end_group(pgid: int, grace: float) -> None:
    """SIGTERM process group ``pgid`` (start_new_session: the command's), SIGKILL what is left of it after
    ``grace`` seconds, wait up to 1 s more. Not our children any more: polled, not waited for."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 1.0)):
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            return
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline:
            if not _group_alive(pgid):
                return
            time.sleep(0.05)


SPEC = TaskSpec(
    name="run_command",
    zmi_name="Eigene Funktion",
    description="Runs a command that the server config allowlists by name (argv, no shell); output to the journal.",
    params_model=Params, result_model=Result, run=run,
)
