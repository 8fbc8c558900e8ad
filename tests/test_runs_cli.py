"""``zmi-reconciler run ID [--task N]``: in process, journaled, exit code from the run's status."""

from __future__ import annotations

import json
import sys

import pytest

from zmi_reconciler.cli import main
from zmi_reconciler.journal import Journal


@pytest.fixture
def setup(tmp_path, monkeypatch):
    for var in ("ZMI_DATA_DIR", "ZMI_SCHEDULES_DIR", "ZMI_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    sd = tmp_path / "schedules.d"
    sd.mkdir()
    (sd / "job.yaml").write_text(
        "name: Job\ntiming: {type: daily, at: '05:00'}\ntasks:\n"
        "  - task: alive_check\n"
        "  - task: run_command\n    params: {command: ok}\n"
        "  - task: run_command\n    params: {command: bad}\n    on_error: continue\n")
    (sd / "broken.yaml").write_text("name: Broken\ntiming: {type: daily}\ntasks: []\n")
    cfg = tmp_path / "zmi.toml"
    py = json.dumps(sys.executable)
    cfg.write_text(f'[commands]\nok = [{py}, "-c", "print(42)"]\nbad = [{py}, "-c", "raise SystemExit(4)"]\n')
    base = ["--config", str(cfg), "--data-dir", str(tmp_path / "var"), "--schedules-dir", str(sd)]
    return tmp_path, base


def test_partial_run_exits_1_and_is_journaled_as_manual(setup, capsys):
    tmp_path, base = setup
    assert main(["run", "job", *base]) == 1
    out = capsys.readouterr().out
    assert "partial" in out and "exited with status 4" in out
    journal = Journal(tmp_path / "var" / "journal")
    run = journal.last_run("job")
    assert (run["trigger"], run["status"]) == ("manual", "partial")
    assert run["run_id"].startswith("job@manual-")
    assert (tmp_path / "var" / "alive.json").exists()


def test_selected_tasks_by_index_and_name_exit_0(setup, capsys):
    tmp_path, base = setup
    assert main(["run", "job", "--task", "0", "--task", "1", "--format", "json", *base]) == 0
    outcome = json.loads(capsys.readouterr().out)
    assert outcome["status"] == "succeeded" and [t["index"] for t in outcome["tasks"]] == [0, 1]
    assert main(["run", "job", "--task", "run_command", *base]) == 1  # both run_command entries, one fails


def test_usage_errors_exit_2(setup, capsys):
    _, base = setup
    assert main(["run", "nope", *base]) == 2
    assert main(["run", "broken", *base]) == 2
    assert "broken.yaml:" in capsys.readouterr().err
    assert main(["run", "job", "--task", "7", *base]) == 2


def test_refuses_while_a_live_process_has_a_run_active(setup, capsys):
    tmp_path, base = setup
    journal = Journal(tmp_path / "var" / "journal")
    journal.append("run_started", schedule="job", run_id="job@other", trigger="manual",
                   scheduled_for="2026-01-01T00:00:00Z", pid=1)  # pid 1 is alive
    assert main(["run", "job", "--task", "0", *base]) == 1
    assert "active run job@other" in capsys.readouterr().err
    assert main(["run", "job", "--task", "0", "--force", *base]) == 0
