"""E031 in the reconciler (SPEC 5, ``lint.command_errors``): a ``run_command`` whose command is not in the
server's allowlist (setting ``commands``) can never run, so the file is invalid like any other error of it: the
schedule is degraded with the E031 finding at ``tasks[i].params.command``, ``schedule_invalid`` is journaled and
that version is not loaded; a last good version that names the same command is not restored either (it could not
run), which the status and the journal say."""

from __future__ import annotations

import logging
import sys
from datetime import timedelta
from pathlib import Path

from zmi_reconciler.reconcile import Change

from test_lastgood import FRIDAY, MONDAY, Server, _sha

HELLO = """\
name: Hello
timing: {type: minutes, every: 5}
tasks:
  - task: calculate_days
  - task: run_command
    params: {command: hello}
"""
COMMANDS = {"hello": [sys.executable, "-c", "print(1)"]}
NOT_ALLOWED = "can never run: command 'hello' is not in the server's allowlist (setting `commands`); allowlisted: "


def _server(tmp_path: Path, commands: dict[str, list[str]] | None, preload_files: bool = False) -> Server:
    (tmp_path / "schedules.d").mkdir(exist_ok=True)
    return Server(tmp_path, FRIDAY, preload_files=preload_files, commands=commands)


def _where(findings) -> list[tuple[str, int, int, str, str, str]]:
    return [(f.file, f.line, f.column, f.path, f.code, f.severity) for f in findings]


def test_a_command_outside_the_allowlist_is_an_error_of_the_file(tmp_path: Path, caplog) -> None:
    server = _server(tmp_path, {"sync-hr": ["/bin/true"]})
    path = server.folder / "hello.yaml"
    path.write_text(HELLO)
    with caplog.at_level(logging.WARNING, logger="zmi_reconciler.reconcile"):
        assert server.reconcile() == [Change("hello", "invalid")]
    assert server.runner.calls == [] and server.copies() == []  # not loaded, so no last good version either
    st = server.rec.state("hello")
    assert st is not None and st.degraded and not st.running
    assert _where(st.findings) == [(str(path), 6, 23, "tasks[1].params.command", "E031", "error")]
    assert st.findings[0].message == NOT_ALLOWED + "sync-hr"
    invalid = server.events("schedule_invalid")
    assert [(e["file"], e["line"], e["column"], e["path"], e["code"], e["running_hash"]) for e in invalid] == [
        (str(path), 6, 23, "tasks[1].params.command", "E031", None)]
    assert "last_good_errors" not in invalid[0]
    assert any("E031" in r.getMessage() and f"{path}:6:23" in r.getMessage() for r in caplog.records)
    assert server.reconcile() == []  # said once

    allowed = server.restart(MONDAY, commands=COMMANDS)  # the command is added to the allowlist
    assert allowed.reconcile() == [Change("hello", "loaded")]
    assert allowed.runner.calls == [("apply", "hello", _sha(HELLO.encode()))]


def test_preloaded_results_are_checked_against_the_allowlist(tmp_path: Path) -> None:
    (tmp_path / "schedules.d").mkdir()
    (tmp_path / "schedules.d" / "hello.yaml").write_text(HELLO)
    server = _server(tmp_path, {}, preload_files=True)
    assert server.reconcile() == [Change("hello", "invalid")]
    assert server.runner.calls == []
    assert [f.code for f in server.rec.state("hello").findings] == ["E031"]  # type: ignore[union-attr]


def test_an_edit_to_a_command_outside_the_allowlist_keeps_the_last_good_version(tmp_path: Path) -> None:
    server = _server(tmp_path, COMMANDS)
    path = server.folder / "hello.yaml"
    path.write_text(HELLO)
    assert server.reconcile() == [Change("hello", "loaded")]
    copies = server.copies()
    path.write_text(HELLO.replace("command: hello", "command: hullo"))
    assert server.reconcile() == [Change("hello", "invalid")]
    st = server.rec.state("hello")
    assert st is not None and st.degraded and st.running and st.content_hash == _sha(HELLO.encode())
    assert [(f.path, f.code) for f in st.findings] == [("tasks[1].params.command", "E031")]
    assert st.findings[0].message.endswith("allowlisted: hello; did you mean 'hello'?")
    assert server.runner.calls == [("apply", "hello", _sha(HELLO.encode()))]
    assert server.copies() == copies  # the version that cannot run is no last good version
    path.write_text(HELLO)
    assert server.reconcile() == [Change("hello", "updated")]
    assert server.events("schedule_updated")[-1]["degraded_cleared"] is True


def test_a_last_good_version_naming_the_same_command_is_not_restored(tmp_path: Path, caplog) -> None:
    """The command is taken off the allowlist while the server is down: the file is invalid (E031) and its last
    good version, naming the same command, could not run either. It is not loaded but removed; the status lists
    its error after the file's, and once the command is back the version runs since then, not since Friday."""
    friday = _server(tmp_path, COMMANDS)
    path = friday.folder / "hello.yaml"
    path.write_text(HELLO)
    friday.reconcile()
    copy = friday.settings.last_good_path / friday.copies()[0]

    monday = friday.restart(MONDAY, commands={})
    with caplog.at_level(logging.WARNING, logger="zmi_reconciler.reconcile"):
        assert monday.reconcile() == [Change("hello", "invalid")]
    assert monday.runner.calls == [] and monday.copies() == []
    assert [e["ts"] for e in monday.events("schedule_loaded")] == ["2026-03-27T17:30:15.250Z"]  # Friday's only
    st = monday.rec.state("hello")
    assert st is not None and st.degraded and not st.running and not st.restored
    assert _where(st.findings) == [(str(path), 6, 23, "tasks[1].params.command", "E031", "error"),
                                   (str(copy), 6, 23, "tasks[1].params.command", "E031", "error")]
    assert st.findings[1].message == (f"the last good version ({copy.name}, loaded 2026-03-27T17:30:15.250Z) is not "
                                      f"run either and was removed: {NOT_ALLOWED}none are configured")
    invalid = monday.events("schedule_invalid")[-1]
    assert (invalid["code"], invalid["running_hash"]) == ("E031", None)
    assert [(e["file"], e["code"]) for e in invalid["last_good_errors"]] == [(str(copy), "E031")]
    assert any("names a command outside the allowlist" in r.getMessage() and str(copy) in r.getMessage()
               for r in caplog.records)

    tuesday = monday.restart(MONDAY + timedelta(days=1), commands=COMMANDS)  # the command is back
    assert tuesday.reconcile() == [Change("hello", "loaded")]
    assert tuesday.rec.state("hello").loaded_at == MONDAY + timedelta(days=1)  # type: ignore[union-attr]


def test_a_broken_file_restores_a_last_good_version_whose_command_is_allowed(tmp_path: Path) -> None:
    """Only a copy that has E031 itself is refused: a file that names an unknown command while its last good
    version names an allowlisted one runs that version, degraded with the file's E031."""
    friday = _server(tmp_path, COMMANDS)
    path = friday.folder / "hello.yaml"
    path.write_text(HELLO)
    friday.reconcile()
    path.write_text(HELLO.replace("command: hello", "command: sync-hr"))
    monday = friday.restart(MONDAY, commands=COMMANDS)
    assert monday.reconcile() == [Change("hello", "loaded"), Change("hello", "invalid")]
    st = monday.rec.state("hello")
    assert st is not None and st.running and st.restored and st.degraded and st.loaded_at == FRIDAY
    assert _where(st.findings) == [(str(path), 6, 23, "tasks[1].params.command", "E031", "error")]


def test_api_status_shows_the_command_outside_the_allowlist(tmp_path: Path) -> None:
    from litestar.testing import TestClient

    from test_api_support import READ, close_env, make_env

    (tmp_path / "schedules.d").mkdir()
    (tmp_path / "schedules.d" / "hello.yaml").write_text(HELLO)
    env = make_env(tmp_path, commands={"sync-hr": ["/bin/true"]})
    try:
        with TestClient(env.app) as client:
            detail = client.get("/api/v1/schedules/hello", headers=READ).json()
        status = detail["status"]
        assert (status["loaded"], status["degraded"], status["next_fire"]) == (False, True, None)
        assert [(e["path"], e["line"], e["column"], e["code"], e["message"]) for e in status["errors"]] == [
            ("tasks[1].params.command", 6, 23, "E031", NOT_ALLOWED + "sync-hr")]
        assert detail["running_since"] is None and detail["running_content_hash"] is None
    finally:
        close_env(env)
