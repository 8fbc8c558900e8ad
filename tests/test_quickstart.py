import argparse
import os
import re

from zmi_reconciler.cli import quickstart
from zmi_reconciler.cli.quickstart import seed_if_empty, wants_mail_folder
from zmi_reconciler.config import load_settings
from zmi_reconciler.tna.store import Store


def _no_file(tmp_path) -> str:
    """ZMI_CONFIG naming an empty settings file: no settings from a file (./zmi-reconciler.toml is not read;
    a named file that is missing is an error)."""
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    return str(empty)


def test_first_start_seeds_demo_and_drops_export_then_never_again(tmp_path):
    settings = load_settings(None, overrides={"data_dir": tmp_path / "var"},
                             environ={"ZMI_CONFIG": _no_file(tmp_path)})
    lines = seed_if_empty(settings)
    export = settings.inbox_path / "demo-attlog.dat"
    assert export.exists() and export.read_text().count("\n") > 100
    assert any("seeded demo data" in line for line in lines)
    # the day with the demo's booking error, which the README's daily-values?date= example needs
    (lone,) = [line for line in lines if "lone come on" in line]
    assert re.fullmatch(r"  - 5006: lone come on \d{4}-\d{2}-\d{2} \(go forgotten\)", lone)
    assert settings.masterdata_path.exists()
    with Store.open(settings.database_path, zone=settings.zone) as store:
        assert len(store.employees()) == 10
    before = settings.database_path.stat().st_mtime_ns
    export.unlink()
    assert seed_if_empty(settings) == [f"data dir {settings.data_dir} already has a tna store: using it as it is"]
    assert not export.exists() and settings.database_path.stat().st_mtime_ns == before


def test_mail_folder_only_without_smtp_settings_or_env(tmp_path):
    absent = {"ZMI_CONFIG": _no_file(tmp_path)}
    defaults = load_settings(None, overrides={"data_dir": tmp_path}, environ=absent)
    assert wants_mail_folder(defaults, absent) is True
    assert wants_mail_folder(defaults, {**absent, "ZMI_MAIL_TRANSPORT": ""}) is True  # empty counts as unset
    for value in ("smtp", "folder"):  # the operator chose: leave it
        env = {**absent, "ZMI_MAIL_TRANSPORT": value}
        assert wants_mail_folder(load_settings(None, environ=env), env) is False
    cfg = tmp_path / "zmi.toml"
    cfg.write_text('[smtp]\nhost = "mail.example.com"\n')
    assert wants_mail_folder(load_settings(cfg, environ={}), {}) is False


def test_run_switches_to_mail_folder_before_serving(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ZMI_CONFIG", _no_file(tmp_path))
    monkeypatch.setenv("ZMI_MAIL_TRANSPORT", "")
    monkeypatch.delenv("ZMI_MAIL_TRANSPORT")  # restored (removed) after the test, though run() sets it
    seen = {}

    def fake_serve(args):
        seen["settings"] = quickstart.settings_from_args(args)
        return 0

    monkeypatch.setattr(quickstart.serve, "run", fake_serve)
    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "tna.sqlite3").touch()  # an existing store: no demo seeding
    args = argparse.Namespace(config=None, data_dir=str(tmp_path / "var"), schedules_dir=None, host=None, port=None)
    assert quickstart.run(args) == 0
    assert os.environ["ZMI_MAIL_TRANSPORT"] == "folder"
    assert seen["settings"].smtp.transport == "folder"
    assert (f"quickstart: mail     no SMTP server configured: messages are written to {tmp_path / 'var' / 'mail'}"
            "/*.eml (configure [smtp] in zmi-reconciler.toml to send)") in capsys.readouterr().out.splitlines()


def test_upcoming_lists_schedules_soonest_first_with_local_next_fire(tmp_path):
    from datetime import datetime, timezone

    from zmi_reconciler.cli.quickstart import upcoming

    sched = tmp_path / "schedules.d"
    sched.mkdir()
    (sched / "a.yaml").write_text('name: A\ntiming: {type: daily, at: "05:00"}\ntasks:\n  - task: calculate_days\n')
    (sched / "b.yaml").write_text("name: B\ntiming: {type: minutes, every: 2}\ntasks:\n  - task: import_bookings\n")
    (sched / "c.yaml").write_text("name: C\ntiming: {type: manual}\ntasks:\n  - task: backup_database\n")
    (sched / "d.yaml").write_text("name: D\ntiming: {type: hourly}\ntasks: []\n")
    settings = load_settings(None, overrides={"data_dir": tmp_path / "var", "schedules_dir": sched},
                             environ={"ZMI_CONFIG": _no_file(tmp_path)})
    lines = upcoming(settings, datetime(2026, 11, 29, 12, 1, tzinfo=timezone.utc))
    assert lines[0].startswith("b (") and "next Sun 2026-11-29 13:02 CET" in lines[0]
    assert lines[1].startswith("a (") and "next Mon 2026-11-30 05:00 CET" in lines[1]
    assert lines[2] == "c (manual (only when triggered)): backup_database"
    assert lines[3].startswith("d: not loaded: ") and "E025" in lines[3]


def test_starter_config_is_written_once_and_makes_mail_go_to_the_folder(tmp_path):
    from zmi_reconciler.cli.quickstart import write_starter_config

    written = write_starter_config(None, {}, tmp_path)
    assert written == tmp_path / "zmi-reconciler.toml"
    settings = load_settings(written, overrides={"data_dir": tmp_path / "var"}, environ={})
    assert settings.smtp.transport == "folder" and settings.mail_path == tmp_path / "var" / "mail"
    written.write_text("port = 9\n")
    assert write_starter_config(None, {}, tmp_path) is None and written.read_text() == "port = 9\n"
    other = tmp_path / "elsewhere"
    other.mkdir()
    assert write_starter_config("my.toml", {}, other) is None
    assert write_starter_config(None, {"ZMI_CONFIG": "x.toml"}, other) is None
    assert not (other / "zmi-reconciler.toml").exists()
