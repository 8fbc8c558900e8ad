"""``run_command`` ("Eigene Funktion"): runs a command from the server's allowlist, never from the file."""

from __future__ import annotations

from pydantic import Field

from zmi_reconciler.tasks.base import TaskContext, TaskFailed, TaskParams, TaskResult, TaskSpec


class Params(TaskParams):
    command: str = Field(pattern=r"^[A-Za-z0-9_.-]{1,64}$",
                         description="name of a command in the server setting `commands` (the allowlist)")


class Result(TaskResult):
    command: str = ""
    exit_code: int = 0
    stdout_lines: int = 0
    stderr_lines: int = 0


def run(ctx: TaskContext, params: Params) -> Result:
    raise TaskFailed("run_command is not implemented yet")


SPEC = TaskSpec(
    name="run_command",
    zmi_name="Eigene Funktion",
    description="Runs a command that the server config allowlists by name (argv, no shell); output to the journal.",
    params_model=Params, result_model=Result, run=run,
)
