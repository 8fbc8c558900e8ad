import os

import pytest

from zmi_reconciler.config import ConfigError, PathEscapeError, confined_path, load_settings


def test_file_then_env_then_flags(tmp_path):
    cfg = tmp_path / "zmi.toml"
    cfg.write_text('port = 9000\nhost = "0.0.0.0"\ndefault_timezone = "Europe/London"\n'
                   '[commands]\nhello = ["echo", "hi"]\n')
    s = load_settings(cfg, overrides={"host": "127.0.0.2", "port": None}, environ={"ZMI_PORT": "9100"})
    assert s.port == 9100            # env beats file
    assert s.host == "127.0.0.2"     # flag beats file
    assert s.default_timezone == "Europe/London"
    assert s.commands == {"hello": ["echo", "hi"]}
    assert s.data_dir.is_absolute()


def test_missing_named_config_file_is_an_error(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", environ={})


def test_invalid_zone_names_the_setting(tmp_path):
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        load_settings(None, environ={"ZMI_DEFAULT_TIMEZONE": "Mars/Olympus", "ZMI_CONFIG": str(tmp_path / "x")})


def test_unknown_setting_rejected(tmp_path):
    cfg = tmp_path / "zmi.toml"
    cfg.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(cfg, environ={})


def test_dirs_resolve_under_data_dir(tmp_path):
    s = load_settings(None, overrides={"data_dir": tmp_path}, environ={"ZMI_CONFIG": str(tmp_path / "absent")})
    assert s.inbox_path == tmp_path / "inbox"
    assert s.journal_path == tmp_path / "journal"
    assert s.database_path == tmp_path / "tna.sqlite3"


def test_confined_path_refuses_escapes(tmp_path):
    root = tmp_path / "exports"
    root.mkdir()
    assert confined_path(root, "a/b.csv") == (root / "a" / "b.csv").resolve()
    for bad in ("../x", "/etc/passwd", "a/../../x"):
        with pytest.raises(PathEscapeError):
            confined_path(root, bad)
    os.symlink(tmp_path, root / "link")
    with pytest.raises(PathEscapeError):
        confined_path(root, "link/secret")


def test_mail_transport_env_override_keeps_the_files_smtp_keys(tmp_path):
    cfg = tmp_path / "zmi.toml"
    cfg.write_text('[smtp]\nhost = "mail.example.com"\nport = 587\n')
    s = load_settings(cfg, environ={"ZMI_MAIL_TRANSPORT": "folder"})
    assert (s.smtp.transport, s.smtp.host, s.smtp.port) == ("folder", "mail.example.com", 587)
    assert load_settings(cfg, environ={}).smtp.transport == "smtp"
    with pytest.raises(ConfigError, match="transport"):
        load_settings(cfg, environ={"ZMI_MAIL_TRANSPORT": "pigeon"})


def test_mail_folder_resolves_under_data_dir(tmp_path):
    absent = {"ZMI_CONFIG": str(tmp_path / "absent")}
    s = load_settings(None, overrides={"data_dir": tmp_path}, environ={**absent, "ZMI_MAIL_TRANSPORT": "folder"})
    assert (s.smtp.transport, s.mail_path) == ("folder", tmp_path / "mail")
    cfg = tmp_path / "zmi.toml"
    cfg.write_text(f'[smtp]\ntransport = "folder"\nfolder = "{tmp_path / "pickup"}"\n')
    assert load_settings(cfg, overrides={"data_dir": tmp_path / "var"}, environ={}).mail_path == tmp_path / "pickup"
