import os
from pathlib import Path

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


def _no_file(tmp_path) -> str:
    """ZMI_CONFIG naming an empty settings file: no settings from a file (./zmi-reconciler.toml is not read)."""
    empty = tmp_path / "empty.toml"
    empty.write_text("")
    return str(empty)


def test_missing_file_named_by_zmi_config_is_an_error_too(tmp_path):
    """A typo in ZMI_CONFIG must not start a server on default settings and a fresh data dir (QA)."""
    with pytest.raises(ConfigError, match="absent.toml: settings file not found"):
        load_settings(None, environ={"ZMI_CONFIG": str(tmp_path / "absent.toml")})


def test_invalid_zone_names_the_setting(tmp_path):
    with pytest.raises(ConfigError, match="Mars/Olympus"):
        load_settings(None, environ={"ZMI_DEFAULT_TIMEZONE": "Mars/Olympus", "ZMI_CONFIG": _no_file(tmp_path)})


def test_unknown_setting_rejected(tmp_path):
    cfg = tmp_path / "zmi.toml"
    cfg.write_text("prot = 1\n")
    with pytest.raises(ConfigError, match="prot"):
        load_settings(cfg, environ={})


def test_dirs_resolve_under_data_dir(tmp_path):
    s = load_settings(None, overrides={"data_dir": tmp_path}, environ={"ZMI_CONFIG": _no_file(tmp_path)})
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
    absent = {"ZMI_CONFIG": _no_file(tmp_path)}
    s = load_settings(None, overrides={"data_dir": tmp_path}, environ={**absent, "ZMI_MAIL_TRANSPORT": "folder"})
    assert (s.smtp.transport, s.mail_path) == ("folder", tmp_path / "mail")
    cfg = tmp_path / "zmi.toml"
    cfg.write_text(f'[smtp]\ntransport = "folder"\nfolder = "{tmp_path / "pickup"}"\n')
    assert load_settings(cfg, overrides={"data_dir": tmp_path / "var"}, environ={}).mail_path == tmp_path / "pickup"


def test_empty_zmi_config_counts_as_unset(tmp_path, monkeypatch):
    """`ZMI_CONFIG=` read the folder '.' ("cannot read settings: '.' is a directory") while an empty
    ZMI_DATA_DIR was ignored; now both are unset: ./zmi-reconciler.toml when it exists, else the defaults."""
    from zmi_reconciler.config import config_file_path

    monkeypatch.chdir(tmp_path)
    assert config_file_path(None, {"ZMI_CONFIG": ""}) == Path("zmi-reconciler.toml")
    assert load_settings(None, environ={"ZMI_CONFIG": ""}).port == 8080
    (tmp_path / "zmi-reconciler.toml").write_text("port = 9001\n")
    assert load_settings(None, environ={"ZMI_CONFIG": "", "ZMI_DATA_DIR": ""}).port == 9001
    assert load_settings(None, environ={"ZMI_CONFIG": ""}).data_dir == tmp_path / "var"


def test_settings_errors_are_one_line_each_with_where_and_no_pydantic_dump(tmp_path):
    cfg = tmp_path / "zmi.toml"
    cfg.write_text('port = "abc"\nprot = 1\n\n[smtp]\nhost = "mail"\nsecurity = "tls"\n'
                   '[[tokens]]\nname = "ci"\nsha256 = "zz"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, overrides={"host": None}, environ={"ZMI_DEFAULT_TIMEZONE": "Mars/Olympus"})
    assert str(info.value).splitlines() == [
        "invalid settings (5 problems):",  # the file's in file order (QA), then the environment's
        f"{cfg}:1: port: expected an integer, got 'abc'",
        f"{cfg}:2: unknown setting 'prot'; did you mean 'port'?",
        f"{cfg}:6: smtp.security: expected 'plain', 'starttls' or 'ssl', got 'tls'",
        f"{cfg}:9: tokens[0].sha256: expected text matching ^[0-9a-f]{{64}}$, got 'zz'",
        "ZMI_DEFAULT_TIMEZONE: default_timezone: unknown IANA time zone 'Mars/Olympus'",
    ]
    assert "pydantic" not in str(info.value) and "input_value" not in str(info.value)


def test_settings_errors_name_the_table_the_flag_or_the_variable(tmp_path):
    cfg = tmp_path / "zmi.toml"
    cfg.write_text('[commands]\nsync = []\n[[tokens]]\nrole = "read"\n')
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    assert str(info.value).splitlines() == [
        "invalid settings (3 problems):",
        f"{cfg}:1: commands: command 'sync' has an empty argv",
        f"{cfg}:3: tokens[0].name: missing (required)",
        f"{cfg}:3: tokens[0].sha256: missing (required)",
    ]
    with pytest.raises(ConfigError) as info:
        load_settings(None, overrides={"port": "x"}, environ={"ZMI_CONFIG": _no_file(tmp_path)})
    assert str(info.value) == "invalid settings: command line: port: expected an integer, got 'x'"
    with pytest.raises(ConfigError) as info:
        load_settings(None, environ={"ZMI_CONFIG": _no_file(tmp_path), "ZMI_MAIL_TRANSPORT": "pigeon"})
    assert str(info.value) == ("invalid settings: ZMI_MAIL_TRANSPORT: smtp.transport: expected 'smtp' or 'folder', "
                               "got 'pigeon'")
    with pytest.raises(ConfigError, match="is a directory, expected a TOML file"):
        load_settings(tmp_path, environ={})


def test_relative_dirs_are_relative_to_the_working_directory_not_the_settings_file(tmp_path, monkeypatch):
    """What the README's "Relative paths" says: a relative data_dir in a settings file elsewhere lands in the
    working directory; the other paths are relative to the data dir."""
    etc, cwd = tmp_path / "etc", tmp_path / "home"
    etc.mkdir(), cwd.mkdir()
    (etc / "zmi.toml").write_text('data_dir = "var"\nschedules_dir = "schedules.d"\nbackup_dir = "bk"\n')
    monkeypatch.chdir(cwd)
    s = load_settings(None, environ={"ZMI_CONFIG": str(etc / "zmi.toml")})
    assert (s.data_dir, s.schedules_dir, s.backup_path) == (cwd / "var", cwd / "schedules.d", cwd / "var" / "bk")
    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    settings_section = readme[readme.index("## Settings"):].split("\n## ", 1)[0]
    assert "relative to the **current working directory of the process**, not to the settings file" in \
        settings_section


def test_ports_outside_0_65535_are_settings_errors(tmp_path):
    """QA: port = 99999 got as far as bind() and ended in an OverflowError traceback."""
    cfg = tmp_path / "zmi.toml"
    cfg.write_text("port = 99999\n[smtp]\nport = -1\n")
    with pytest.raises(ConfigError) as info:
        load_settings(cfg, environ={})
    text = str(info.value)
    assert f"{cfg}:1: port:" in text and f"{cfg}:3: smtp.port:" in text and "65535" in text
    cfg.write_text("port = true\n")  # QA: served on port 1
    with pytest.raises(ConfigError, match=r"zmi.toml:1: port: expected a port number, got True"):
        load_settings(cfg, environ={})
    assert load_settings(None, overrides={"data_dir": tmp_path},
                         environ={"ZMI_CONFIG": _no_file(tmp_path), "ZMI_PORT": "8081"}).port == 8081
