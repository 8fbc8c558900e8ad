"""`zmi-reconciler validate`: output formats, exit codes, default path, --strict, --explain."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from zmi_reconciler.cli import main
from zmi_reconciler.cli.validate import github_annotation
from zmi_reconciler.loader import Finding

GOOD = 'name: Good\ntiming: {type: daily, at: "05:00"}\ntasks:\n  - task: backup_database\n'
BAD = 'name: Bad\ntiming: {type: daily, at: "25:00"}\ntasks:\n  - task: backup_database\n'
WARN = 'name: Warn\ntiming: {type: monthly, day: 31, at: "05:00"}\ntasks:\n  - task: backup_database\n'
NOW = ["--now", "2026-01-10T12:00:00Z"]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch, tmp_path):
    for var in list(os.environ):
        if var.startswith("ZMI_") or var == "GITHUB_ACTIONS":
            monkeypatch.delenv(var)
    monkeypatch.chdir(tmp_path)


def make(folder: Path, **files: str) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for name, text in files.items():
        (folder / f"{name}.yaml").write_text(text, encoding="utf-8")
    return folder


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(["validate", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_valid_folder_exit_0(capsys, tmp_path):
    folder = make(tmp_path / "s", good=GOOD, other=GOOD.replace("Good", "Other"))
    code, out, _ = run(capsys, str(folder), *NOW)
    assert (code, out) == (0, "2 files checked: 0 errors, 0 warnings\n")


def test_errors_text_format_exit_1(capsys):
    make(Path("s"), bad=BAD, good=GOOD)
    code, out, _ = run(capsys, "s", *NOW)
    assert code == 1
    assert out.splitlines() == [
        "s/bad.yaml:2:27: error E020 timing.at: expected a local time HH:MM (00:00..23:59), got '25:00'",
        "2 files checked: 1 error, 0 warnings",
    ]


def test_warnings_pass_unless_strict(capsys):
    make(Path("s"), warn=WARN)
    code, out, _ = run(capsys, "s", *NOW)
    assert code == 0
    assert out.startswith("s/warn.yaml:2:30: warning W004 timing.day: monthly day 31 does not exist in February")
    assert run(capsys, "s", "--strict", *NOW)[0] == 1


def test_json_format(capsys):
    make(Path("s"), bad=BAD, warn=WARN)
    code, out, _ = run(capsys, "s", "--format", "json", *NOW)
    assert code == 1
    findings = json.loads(out)
    assert [(f["file"], f["line"], f["column"], f["path"], f["code"], f["severity"]) for f in findings] == [
        ("s/bad.yaml", 2, 27, "timing.at", "E020", "error"),
        ("s/warn.yaml", 2, 30, "timing.day", "W004", "warning"),
    ]
    assert set(findings[0]) == {"file", "line", "column", "path", "code", "severity", "message"}


def test_json_format_when_valid_is_empty_list(capsys):
    make(Path("s"), good=GOOD)
    assert run(capsys, "s", "--format", "json", *NOW)[:2] == (0, "[]\n")


def test_github_format(capsys):
    make(Path("s"), bad=BAD, warn=WARN)
    code, out, _ = run(capsys, "s", "--format", "github", *NOW)
    assert code == 1
    lines = out.splitlines()
    # properties escape ':' and ','; the message part only '%', CR and LF (GitHub workflow command rules)
    assert lines[0] == ("::error file=s/bad.yaml,line=2,col=27,title=E020::timing.at: expected a local time HH:MM "
                        "(00:00..23:59), got '25:00'")
    assert lines[1].startswith("::warning file=s/warn.yaml,line=2,col=30,title=W004::timing.day: monthly day 31")
    assert len(lines) == 2


def test_github_format_is_automatic_on_actions(capsys, monkeypatch):
    make(Path("s"), bad=BAD)
    monkeypatch.setenv("GITHUB_ACTIONS", "true")
    assert run(capsys, "s", *NOW)[1].startswith("::error file=s/bad.yaml,line=2,col=27,title=E020::")
    assert run(capsys, "s", "--format", "text", *NOW)[1].startswith("s/bad.yaml:2:27: error E020")


def test_github_annotation_escaping():
    finding = Finding("a,b:c.yaml", 3, 4, "name", "E020", "error", "50% done\nnext line")
    assert github_annotation(finding) == \
        "::error file=a%2Cb%3Ac.yaml,line=3,col=4,title=E020::name: 50%25 done%0Anext line"


def test_missing_path_exit_2(capsys):
    code, out, err = run(capsys, "does-not-exist")
    assert code == 2 and out == ""
    assert "does-not-exist: no such file or directory" in err


def test_unreadable_file_exit_2(capsys, tmp_path):
    (tmp_path / "gone.yaml").symlink_to(tmp_path / "missing.yaml")
    code, out, _ = run(capsys, "gone.yaml")
    assert code == 2
    assert out.startswith("gone.yaml:1:1: error E001 cannot read")


def test_bad_settings_file_exit_2(capsys):
    code, _, err = run(capsys, "--config", "nope.toml")
    assert code == 2 and "settings file not found" in err


SYNC = 'name: Sync\ntiming: {type: daily, at: "05:00"}\ntasks:\n  - task: run_command\n    params: {command: sync-hrr}\n'
E031 = ("s/sync.yaml:5:23: error E031 tasks[0].params.command: can never run: command 'sync-hrr' is not in the "
        "server's allowlist (setting `commands`); allowlisted: sync-hr; did you mean 'sync-hr'?")


def test_run_command_outside_the_allowlist_of_the_settings_file_is_an_error(capsys):
    make(Path("s"), sync=SYNC)
    Path("zmi-reconciler.toml").write_text('[commands]\nsync-hr = ["/opt/hr/bin/sync"]\n', encoding="utf-8")
    code, out, _ = run(capsys, "s", *NOW)
    assert (code, out.splitlines()) == (1, [E031, "1 file checked: 1 error, 0 warnings"])


def test_run_command_is_not_checked_without_a_settings_file(capsys):
    """CI of a schedules repository has no server settings: the allowlist is unknown, nothing is said."""
    make(Path("s"), sync=SYNC)
    assert run(capsys, "s", *NOW)[:2] == (0, "1 file checked: 0 errors, 0 warnings\n")


def test_run_command_allowlist_from_config_flag_and_env(capsys, monkeypatch, tmp_path):
    make(Path("s"), sync=SYNC)
    (tmp_path / "ok.toml").write_text('[commands]\nsync-hrr = ["true"]\n', encoding="utf-8")
    (tmp_path / "other.toml").write_text('[commands]\nsync-hr = ["true"]\n', encoding="utf-8")
    assert run(capsys, "s", "--config", str(tmp_path / "ok.toml"), *NOW)[0] == 0
    assert run(capsys, "s", "--config", str(tmp_path / "other.toml"), *NOW)[1].splitlines()[0] == E031
    monkeypatch.setenv("ZMI_CONFIG", str(tmp_path / "other.toml"))
    assert run(capsys, "s", *NOW)[1].splitlines()[0] == E031
    monkeypatch.setenv("ZMI_CONFIG", str(tmp_path / "missing.toml"))  # a named file must exist, as --config's
    code, _, err = run(capsys, "s", *NOW)
    assert code == 2 and "missing.toml: settings file not found" in err


def test_empty_zmi_config_is_unset_for_the_allowlist_too(capsys, monkeypatch):
    """`ZMI_CONFIG=` is no settings file (it was read as the folder '.': exit 2): without
    ./zmi-reconciler.toml nothing is said about commands, with it that file's allowlist counts."""
    make(Path("s"), sync=SYNC)
    monkeypatch.setenv("ZMI_CONFIG", "")
    assert run(capsys, "s", *NOW)[:2] == (0, "1 file checked: 0 errors, 0 warnings\n")
    Path("zmi-reconciler.toml").write_text('[commands]\nsync-hr = ["/opt/hr/bin/sync"]\n', encoding="utf-8")
    assert run(capsys, "s", *NOW)[1].splitlines()[0] == E031


def test_bad_now_is_usage_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["validate", "--now", "yesterday"])
    assert exc.value.code == 2
    assert "expected an ISO 8601 instant" in capsys.readouterr().err


def test_default_path_is_schedules_dir_setting(capsys, monkeypatch):
    make(Path("schedules.d"), bad=BAD)
    assert run(capsys, *NOW)[1].startswith("schedules.d/bad.yaml:2:27: error E020")
    make(Path("elsewhere"), good=GOOD)
    assert run(capsys, "--schedules-dir", "elsewhere", *NOW)[:2] == (0, "1 file checked: 0 errors, 0 warnings\n")
    monkeypatch.setenv("ZMI_SCHEDULES_DIR", "elsewhere")
    assert run(capsys, *NOW)[0] == 0


def test_several_paths_files_and_folders(capsys):
    make(Path("a"), good=GOOD)
    make(Path("b"), bad=BAD)
    code, out, _ = run(capsys, "a", "b/bad.yaml", *NOW)
    assert code == 1 and out.endswith("2 files checked: 1 error, 0 warnings\n")


def test_explain_flags_dst_gap(capsys):
    text = 'name: Gap\ntimezone: Europe/Berlin\ntiming: {type: daily, at: "02:30"}\ntasks: [{task: backup_database}]\n'
    make(Path("s"), gap=text)
    code, out, _ = run(capsys, "s", "--explain", "--now", "2026-03-27T12:00:00Z")
    assert code == 0  # W003 is a warning
    explain = out[out.index("s/gap.yaml: 'Gap'"):].splitlines()
    assert explain[:5] == [
        "s/gap.yaml: 'Gap' - daily at 02:30",
        "  zone: Europe/Berlin (timezone)",
        "  2026-03-28T02:30:00+01:00 Sat CET",
        "  2026-03-29T03:30:00+02:00 Sun CEST  <- 02:30 does not exist on 2026-03-29 in Europe/Berlin (DST gap): "
        "fires at 03:30 CEST",
        "  2026-03-30T02:30:00+02:00 Mon CEST",
    ]
    assert len(explain) == 7


def test_explain_fold_exclusions_manual_and_paused(capsys):
    make(Path("s"),
         fold='name: Fold\nenabled: false\ntiming: {type: hours, every: 1, minute: 30}\n'
              'exclude: [{from: "02:00", to: "02:45"}]\ntasks: [{task: backup_database}]\n',
         man="name: Manual\ntiming: {type: manual}\ntasks: [{task: backup_database}]\n")
    code, out, _ = run(capsys, "s", "--explain", "--now", "2026-10-24T23:45:00Z")
    lines = out.splitlines()
    start = lines.index("s/fold.yaml: 'Fold' - every hour at minute 30")
    assert lines[start + 1:start + 8] == [
        "  zone: Europe/Berlin (server default_timezone)",
        "  paused (enabled: false): no fires until enabled again",
        "  2026-10-25T02:30:00+02:00 Sun CEST  <- 02:30 occurs twice on 2026-10-25 in Europe/Berlin (DST fold): "
        "fires at both occurrences (CEST and CET); this is the first (CEST); inside exclude window 02:00-02:45: "
        "recorded as skipped, not run",
        "  2026-10-25T02:30:00+01:00 Sun CET  <- 02:30 occurs twice on 2026-10-25 in Europe/Berlin (DST fold): "
        "fires at both occurrences (CEST and CET); this is the second (CET); inside exclude window 02:00-02:45: "
        "recorded as skipped, not run",
        "  2026-10-25T03:30:00+01:00 Sun CET",
        "  2026-10-25T04:30:00+01:00 Sun CET",
        "  2026-10-25T05:30:00+01:00 Sun CET",
    ]
    assert "s/man.yaml: 'Manual' - manual (only when triggered)" in lines
    assert "  fires only when triggered (API or `zmi-reconciler run`)" in lines


def test_explain_with_json_keeps_stdout_machine_readable(capsys):
    make(Path("s"), good=GOOD)
    code, out, err = run(capsys, "s", "--format", "json", "--explain", *NOW)
    assert json.loads(out) == []
    assert "s/good.yaml: 'Good' - daily at 05:00" in err


def test_subprocess_python_m_and_no_heavy_imports(tmp_path):
    make(tmp_path / "s", bad=BAD, good=GOOD)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZMI_") and k != "GITHUB_ACTIONS"}
    proc = subprocess.run([sys.executable, "-m", "zmi_reconciler", "validate", "s", "--format", "json", *NOW],
                          cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1, proc.stderr
    assert [(f["file"], f["code"]) for f in json.loads(proc.stdout)] == [("s/bad.yaml", "E020")]
    heavy = ["litestar", "uvicorn", "httpx", "watchfiles", "schedule", "zmi_reconciler.tna.store",
             "zmi_reconciler.api.app", "zmi_reconciler.runner", "zmi_reconciler.journal"]
    probe = ("import sys; from zmi_reconciler.cli import main; code = main(['validate', 's']); "
             f"print(code, sorted(set(sys.modules) & set({heavy!r})))")
    proc = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, env=env, capture_output=True, text=True,
                          timeout=60)
    assert proc.stdout.splitlines()[-1] == "1 []", proc.stderr


@pytest.mark.parametrize("files", [{}, {"notes.txt": "x", ".hidden.yaml": GOOD}])
def test_folder_without_schedule_files_is_an_io_error(capsys, tmp_path, files):
    """Like actionlint without workflows: a mistyped or empty folder must not pass CI as "0 files checked"."""
    folder = tmp_path / "empty"
    folder.mkdir()
    for name, text in files.items():
        (folder / name).write_text(text, encoding="utf-8")
    code, out, err = run(capsys, str(folder), *NOW)
    assert (code, out) == (2, "")
    assert err == f"zmi-reconciler validate: no schedule files (*.yaml, *.yml) found in {folder}\n"


def test_explicit_valid_file_still_exits_0(capsys):
    make(Path("s"), good=GOOD)
    assert run(capsys, "s/good.yaml", *NOW)[:2] == (0, "1 file checked: 0 errors, 0 warnings\n")


@pytest.mark.parametrize("now", ["9999-12-31T23:59Z", "9999-12-31T23:59:59+00:00", "0001-01-01T00:00Z",
                                 "1969-12-31T23:59:59Z", "2101-01-01T00:00:00Z"])
def test_now_outside_1970_to_2100_is_a_usage_error(capsys, tmp_path, now):
    # 9999-12-31T23:59Z used to overflow datetime in the DST lint (traceback)
    make(tmp_path / "s", good=GOOD, warn=WARN)
    with pytest.raises(SystemExit) as exc:
        main(["validate", "s", "--explain", "--now", now])
    assert exc.value.code == 2
    assert f"--now must be between 1970 and 2100, got {now!r}" in capsys.readouterr().err


def test_now_at_the_end_of_the_range_explains(capsys, tmp_path):
    make(tmp_path / "s", good=GOOD)
    code, out, _ = run(capsys, "s", "--explain", "--now", "2100-12-31T23:59:59Z")
    assert code == 0
    assert "  2101-01-01T05:00:00+01:00 Sat CET\n" in out


def test_overflow_in_the_timing_math_is_exit_2_not_a_traceback(capsys, tmp_path, monkeypatch):
    from zmi_reconciler import timing

    def overflowing(*_args):
        raise OverflowError("date value out of range")
        yield  # pragma: no cover

    monkeypatch.setattr(timing, "iter_fires", overflowing)
    make(tmp_path / "s", good=GOOD)
    code, _, err = run(capsys, "s", "--explain", *NOW)
    assert code == 2
    assert err == "zmi-reconciler validate: --now 2026-01-10T12:00:00+00:00 is beyond the supported date range\n"
