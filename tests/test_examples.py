"""The shipped schedules.d/ examples, the committed JSON Schema and the pre-commit hook definition."""

from __future__ import annotations

import json
import re
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from zmi_reconciler.cli.schema import DRAFT_07, render, schedule_schema
from zmi_reconciler.lint import lint
from zmi_reconciler.loader import load_paths, load_schedule_text

REPO = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((REPO / "schedules.d").glob("*.yaml"))
SCHEMA_FILE = REPO / "openapi" / "schedule.schema.json"
MODELINE = "# yaml-language-server: $schema=../openapi/schedule.schema.json"


def committed_schema() -> dict:
    return json.loads(SCHEMA_FILE.read_text(encoding="utf-8"))


def test_committed_schema_is_current():
    assert SCHEMA_FILE.read_text(encoding="utf-8") == render(), (
        "openapi/schedule.schema.json is stale: run `make openapi` or "
        "`zmi-reconciler schema > openapi/schedule.schema.json` and commit the result")


def test_schema_is_draft_07():
    schema = committed_schema()
    assert schema["$schema"] == DRAFT_07
    jsonschema.Draft7Validator.check_schema(schema)
    text = SCHEMA_FILE.read_text(encoding="utf-8")
    assert "$defs" not in text and "#/definitions/DailyTiming" in text
    assert schema["additionalProperties"] is False
    assert set(schema["required"]) == {"name", "timing", "tasks"}


def test_schema_command_prints_the_schema(capsys):
    from zmi_reconciler.cli import main

    assert main(["schema"]) == 0
    assert json.loads(capsys.readouterr().out) == schedule_schema()


def test_examples_cover_the_recommended_setup():
    by_id = {r.schedule_id: r.schedule for r in load_paths([REPO / "schedules.d"])}
    tasks = {i: [t.task for t in s.tasks] for i, s in by_id.items()}
    assert tasks["nightly"] == ["backup_database", "calculate_days", "calculate_months", "send_notifications"]
    assert by_id["nightly"].timing.type == "daily" and by_id["nightly"].timing.at == "05:00"
    assert tasks["terminal-import"] == ["import_bookings", "calculate_days"]
    assert (by_id["terminal-import"].timing.type, by_id["terminal-import"].timing.every) == ("minutes", 2)
    window = by_id["terminal-import"].exclude[0]
    assert window.from_ < "05:00" < window.to  # the import pauses around the 05:00 backup
    assert tasks["payroll-export"][-1] == "export_data"
    assert by_id["payroll-export"].tasks[-1].params.month == "previous"
    assert (by_id["payroll-export"].timing.type, by_id["payroll-export"].timing.day) == ("monthly", 1)
    assert tasks["alive"] == ["alive_check"] and by_id["alive"].timing.every == 5
    assert any(s.timing.type == "manual" for s in by_id.values())


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_is_valid_and_lint_clean(path):
    result = load_paths([path])[0]
    assert result.findings == []
    now = datetime(2026, 3, 1, tzinfo=timezone.utc)  # a window that contains both DST changes
    assert lint([result], "Europe/Berlin", now=now) == []


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_has_modeline(path):
    assert path.read_text(encoding="utf-8").splitlines()[0] == MODELINE


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.name for p in EXAMPLES])
def test_example_validates_against_json_schema(path):
    data = YAML(typ="safe").load(path.read_text(encoding="utf-8"))
    jsonschema.Draft7Validator(committed_schema()).validate(data)


def test_examples_folder_validates_as_a_whole(capsys):
    from zmi_reconciler.cli import main

    code = main(["validate", str(REPO / "schedules.d"), "--strict", "--now", "2026-03-01T00:00:00Z"])
    assert code == 0, capsys.readouterr().out


@pytest.mark.parametrize("document", [
    {"name": "x", "timing": {"type": "daily", "at": "05:00"}, "tasks": [{"task": "backup_database"}], "x": 1},
    {"name": "x", "timing": {"type": "cron"}, "tasks": [{"task": "backup_database"}]},
    {"name": "x", "timing": {"type": "daily", "at": "25:00"}, "tasks": [{"task": "backup_database"}]},
    {"name": "x", "timing": {"type": "manual"}, "tasks": [{"task": "backup_database", "params": {"keep": 0}}]},
    {"name": "x", "timing": {"type": "manual"}, "tasks": [{"task": "terminal_set_time"}]},
    {"name": "x", "timing": {"type": "manual"}, "tasks": []},
])
def test_json_schema_rejects_what_the_model_rejects(document):
    assert list(jsonschema.Draft7Validator(committed_schema()).iter_errors(document))
    assert load_schedule_text(json.dumps(document), "x.yaml").errors


def test_pre_commit_hook_definition():
    hooks = YAML(typ="safe").load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    (hook,) = hooks
    assert hook["id"] == "zmi-reconciler-validate"
    assert hook["language"] == "python"
    assert hook["entry"] == "zmi-reconciler validate"
    pattern = re.compile(hook["files"])
    assert pattern.search("schedules.d/nightly.yaml") and pattern.search("schedules.d/a.yml")
    assert not pattern.search("other/nightly.yaml") and not pattern.search("schedules.d/readme.md")
