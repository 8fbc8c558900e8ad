import json

from zmi_reconciler.cli import main


def test_tasks_json_lists_catalog_with_params_and_unavailable_reasons(capsys):
    assert main(["tasks", "--format", "json"]) == 0
    entries = {e["name"]: e for e in json.loads(capsys.readouterr().out)}
    assert entries["backup_database"]["available"] is True
    assert entries["backup_database"]["zmi_name"] == "Tabellen sichern"
    assert set(entries["backup_database"]["params_schema"]["properties"]) == {"naming", "keep", "verify"}
    assert entries["calculate_days"]["params_schema"]["properties"].keys() >= {"scope", "from", "to"}
    assert entries["terminal_set_time"]["available"] is False
    assert "terminal communication" in entries["terminal_set_time"]["reason"]


def test_tasks_text_marks_unavailable(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    assert "import_bookings" in out
    assert "terminal_send_accounts" in out and "[not available:" in out


def test_unknown_command_is_usage_error(capsys):
    try:
        code = main(["no-such-command"])
    except SystemExit as exc:
        code = exc.code
    assert code == 2
