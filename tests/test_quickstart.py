import argparse
import os

from zmi_reconciler.cli import quickstart
from zmi_reconciler.cli.quickstart import seed_if_empty, wants_mail_folder
from zmi_reconciler.config import load_settings
from zmi_reconciler.tna.store import Store


def test_first_start_seeds_demo_and_drops_export_then_never_again(tmp_path):
    settings = load_settings(None, overrides={"data_dir": tmp_path / "var"},
                             environ={"ZMI_CONFIG": str(tmp_path / "absent")})
    lines = seed_if_empty(settings)
    export = settings.inbox_path / "demo-attlog.dat"
    assert export.exists() and export.read_text().count("\n") > 100
    assert any("seeded demo data" in line for line in lines)
    assert settings.masterdata_path.exists()
    with Store.open(settings.database_path, zone=settings.zone) as store:
        assert len(store.employees()) == 10
    before = settings.database_path.stat().st_mtime_ns
    export.unlink()
    assert seed_if_empty(settings) == [f"data dir {settings.data_dir} already has a tna store: using it as it is"]
    assert not export.exists() and settings.database_path.stat().st_mtime_ns == before


def test_mail_folder_only_without_smtp_settings_or_env(tmp_path):
    absent = {"ZMI_CONFIG": str(tmp_path / "absent")}
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
    monkeypatch.setenv("ZMI_CONFIG", str(tmp_path / "absent"))
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
