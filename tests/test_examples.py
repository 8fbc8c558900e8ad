"""The shipped schedules.d/ examples, the committed JSON Schema and the pre-commit hook definition."""

from __future__ import annotations

import json
import re
import subprocess
from datetime import datetime, timezone
from pathlib import Path

import jsonschema
import pytest
from ruamel.yaml import YAML

from zmi_reconciler import loader
from zmi_reconciler.cli.schema import DRAFT_07, render, schedule_schema
from zmi_reconciler.lint import lint
from zmi_reconciler.loader import load_paths, load_schedule_text

REPO = Path(__file__).resolve().parents[1]
#: The shipped examples (the manual's recommended setup). A known list, not the folder: users experiment in
#: schedules.d/ (the README's walkthrough copies backup-now.yaml), and their files are not ours to check.
SHIPPED = ("alive", "backup-now", "nightly", "payroll-export", "terminal-import")
EXAMPLES = [REPO / "schedules.d" / f"{name}.yaml" for name in SHIPPED]
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


def test_shipped_list_is_the_examples_tracked_in_git():
    """SHIPPED names every schedule file git tracks in schedules.d/ (a new example must be added to it)."""
    try:
        listed = subprocess.run(["git", "ls-files", "schedules.d"], cwd=REPO, capture_output=True, text=True,
                                check=True).stdout.split()
    except (OSError, subprocess.CalledProcessError):
        pytest.skip("not a git checkout")
    if not listed:
        pytest.skip("schedules.d is not tracked here (an export without git metadata)")
    assert sorted(Path(p).stem for p in listed if loader.is_schedule_file_name(Path(p).name)) == list(SHIPPED)
    assert all(path.is_file() for path in EXAMPLES)


def test_examples_cover_the_recommended_setup():
    check_recommended_setup(EXAMPLES)


def check_recommended_setup(paths: list[Path]) -> None:
    """The shipped files at ``paths`` are the manual's recommended setup."""
    by_id = {r.schedule_id: r.schedule for r in load_paths(paths)}
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


def test_examples_validate_as_a_whole(capsys):
    """The shipped files together (cross-file checks: W002 same name, E030 same id) pass `validate --strict`."""
    assert validate_strict(EXAMPLES, capsys) == (0, f"{len(EXAMPLES)} files checked: 0 errors, 0 warnings\n")


def validate_strict(paths: list[Path], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """(exit code, output) of `zmi-reconciler validate --strict` on ``paths``."""
    from zmi_reconciler.cli import main

    capsys.readouterr()
    code = main(["validate", *map(str, paths), "--strict", "--now", "2026-03-01T00:00:00Z"])
    return code, capsys.readouterr().out


def test_examples_are_checked_whatever_else_is_in_the_folder(tmp_path, capsys):
    """The README walkthrough (a copy of backup-now.yaml with another timing, then broken) made `make test` fail
    when the checks read the folder (W002 'Backup now' twice; the broken file's schedule None). The checks read
    the shipped files only: here on a copy of the folder with such experiments added."""
    folder = tmp_path / "schedules.d"
    folder.mkdir()
    shipped = [folder / path.name for path in EXAMPLES]
    for path in EXAMPLES:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "my-backup.yaml").write_text((folder / "backup-now.yaml").read_text().replace(
        "  type: manual", "  type: minutes\n  every: 1"))
    (folder / "broken.yaml").write_text("name: Broken\ntiming: {type: minutes, every: \"often\"}\n")
    code, out = validate_strict([folder], capsys)
    assert code == 1 and "W002" in out and "E020" in out  # what a folder-wide check would have failed on
    check_recommended_setup(shipped)
    assert validate_strict(shipped, capsys) == (0, f"{len(shipped)} files checked: 0 errors, 0 warnings\n")


def test_readme_walkthrough_copy_with_its_own_name_keeps_the_folder_valid(tmp_path, capsys):
    """The README tells to give the copy a name of its own; done so, `validate --strict` on the folder passes."""
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    walkthrough = readme[readme.index("### Edit a schedule and watch it reload"):].split("\n### ", 1)[0]
    assert "give it a name of its own (`name: My\nbackup`" in walkthrough
    folder = tmp_path / "schedules.d"
    folder.mkdir()
    for path in EXAMPLES:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "my-backup.yaml").write_text((folder / "backup-now.yaml").read_text().replace(
        "name: Backup now", "name: My backup").replace("  type: manual", "  type: minutes\n  every: 1"))
    assert validate_strict([folder], capsys) == (0, "6 files checked: 0 errors, 0 warnings\n")


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


def test_pre_commit_hook_sees_the_whole_folder(tmp_path):
    """pre-commit passes only the changed files unless told not to; a duplicate id (E030) formed by the one
    changed file with an unchanged one must still fail the hook, as the command pre-commit builds runs it."""
    import shlex
    import subprocess
    import sys

    (hook,) = YAML(typ="safe").load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    folder = tmp_path / "schedules.d"
    folder.mkdir()
    spec = "name: {}\ntiming: {{type: daily, at: '05:00'}}\ntasks: [{{task: calculate_days}}]\n"
    (folder / "nightly.yaml").write_text(spec.format("Nightly"), encoding="utf-8")
    (folder / "nightly.yml").write_text(spec.format("Nightly copy"), encoding="utf-8")  # the change being committed
    changed = ["schedules.d/nightly.yml"]
    entry = shlex.split(hook["entry"])
    assert entry[0] == "zmi-reconciler"
    command = [sys.executable, "-m", "zmi_reconciler", *entry[1:], *hook.get("args", []),
               *(changed if hook.get("pass_filenames", True) else [])]
    done = subprocess.run(command, cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1, done.stdout + done.stderr
    assert "E030" in done.stdout
