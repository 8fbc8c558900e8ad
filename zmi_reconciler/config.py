"""Server settings: ``zmi-reconciler.toml`` (or ``--config FILE``), overridden by ``ZMI_*`` environment
variables, overridden by command-line flags (SPEC section 9).

Relative directories (inbox, backup, export, journal) are resolved against the data dir; user-given paths
(task params, API input) go through :func:`confined_path`, which refuses anything that leaves its root.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator

DEFAULT_CONFIG_FILE = "zmi-reconciler.toml"


class ConfigError(Exception):
    """The settings file or an override is invalid; the message names the setting and what was expected."""


class SmtpSettings(BaseModel):
    """Outgoing mail for ``send_notifications``. ``security``: ``plain`` | ``starttls`` | ``ssl``.

    ``transport``: ``smtp`` (default) sends over the server below; ``folder`` needs no server and writes each
    message as an RFC 5322 ``.eml`` file into ``folder`` (a demo or first install; like Django's file e-mail
    backend or a Postfix pickup folder). Environment override: ``ZMI_MAIL_TRANSPORT``.
    """

    model_config = ConfigDict(extra="forbid")
    #: ``smtp``: deliver over SMTP (host, port, ...); ``folder``: write ``.eml`` files into ``folder``.
    transport: Literal["smtp", "folder"] = "smtp"
    #: Where ``transport = "folder"`` writes the ``.eml`` files; relative to data_dir unless absolute
    #: (:attr:`Settings.mail_path`). Created when missing.
    folder: Path = Path("mail")
    host: str = "localhost"
    port: int = 25
    security: Literal["plain", "starttls", "ssl"] = "plain"
    username: str | None = None
    password: str | None = None
    sender: str = "zmi-reconciler@localhost"
    timeout_seconds: float = 30.0
    #: PEM file of CAs to trust for ``starttls``/``ssl`` besides the system store (a company CA).
    ca_file: Path | None = None


class ApiToken(BaseModel):
    """One API token, stored only as its SHA-256 hex digest. ``role``: ``read`` or ``write`` (write implies read)."""

    model_config = ConfigDict(extra="forbid")
    name: str
    sha256: str = Field(pattern=r"^[0-9a-f]{64}$")
    role: Literal["read", "write"] = "read"


class Settings(BaseModel):
    """All server settings. Directories are absolute after :func:`load_settings`."""

    model_config = ConfigDict(extra="forbid")

    data_dir: Path = Path("var")
    schedules_dir: Path = Path("schedules.d")
    host: str = "127.0.0.1"
    port: int = 8080
    default_timezone: str = "Europe/Berlin"
    #: ``holidays`` package region: country code, optionally ``-`` subdivision (``DE-BY``, ``DE-NW``).
    holiday_region: str = "DE-BY"
    log_format: Literal["text", "json"] = "text"
    log_level: str = "INFO"
    journal_retention_days: int = Field(default=90, ge=1)
    #: Seconds a running task gets after SIGTERM before it is recorded as interrupted.
    shutdown_grace_seconds: float = Field(default=30.0, ge=0)
    worker_threads: int = Field(default=8, ge=1, le=256)
    #: Relative to data_dir unless absolute.
    inbox_dir: Path = Path("inbox")
    backup_dir: Path = Path("backups")
    export_dir: Path = Path("exports")
    journal_dir: Path = Path("journal")
    database: Path = Path("tna.sqlite3")
    #: Master data (day plans, week plans, employees) kept in git like the schedules; applied by ``serve`` at
    #: start and by ``zmi-reconciler masterdata``. Relative to data_dir unless absolute.
    masterdata_file: Path = Path("masterdata.yaml")
    #: Terminal import: double taps of one employee within this many seconds collapse to one booking.
    debounce_seconds: int = Field(default=60, ge=0)
    #: Terminal import: take come/go from the file's state column (True) or alternate per employee and day.
    direction_from_file: bool = False
    alive_url: str | None = None
    #: Recipient of operator alerts (``alive_check`` ``expect`` deadlines); None: alerts are only journaled.
    alert_email: str | None = None
    #: ``run_command`` allowlist: name -> argv list. Schedules name a key; they never carry a command.
    commands: dict[str, list[str]] = Field(default_factory=dict)
    tokens: list[ApiToken] = Field(default_factory=list)
    smtp: SmtpSettings = Field(default_factory=SmtpSettings)
    #: Largest accepted request body of the API, bytes.
    max_request_bytes: int = 262_144

    @field_validator("default_timezone")
    @classmethod
    def _zone_exists(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown IANA time zone {value!r}") from exc
        return value

    @field_validator("commands")
    @classmethod
    def _argv_non_empty(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for name, argv in value.items():
            if not argv:
                raise ValueError(f"command {name!r} has an empty argv")
        return value

    def under_data(self, path: Path) -> Path:
        """Resolve a configured directory/file against ``data_dir`` (absolute paths are kept)."""
        return path if path.is_absolute() else self.data_dir / path

    @property
    def inbox_path(self) -> Path:
        return self.under_data(self.inbox_dir)

    @property
    def backup_path(self) -> Path:
        return self.under_data(self.backup_dir)

    @property
    def export_path(self) -> Path:
        return self.under_data(self.export_dir)

    @property
    def journal_path(self) -> Path:
        return self.under_data(self.journal_dir)

    @property
    def database_path(self) -> Path:
        return self.under_data(self.database)

    @property
    def masterdata_path(self) -> Path:
        return self.under_data(self.masterdata_file)

    @property
    def last_good_path(self) -> Path:
        """``<data_dir>/last-good``: the persisted last good version of each schedule file
        (:mod:`zmi_reconciler.lastgood`)."""
        return self.data_dir / "last-good"

    @property
    def mail_path(self) -> Path:
        """The ``.eml`` folder of ``smtp.transport = "folder"`` (``smtp.folder`` resolved against data_dir)."""
        return self.under_data(self.smtp.folder)

    @property
    def zone(self) -> ZoneInfo:
        return ZoneInfo(self.default_timezone)


_ENV: dict[str, str] = {
    "ZMI_DATA_DIR": "data_dir",
    "ZMI_SCHEDULES_DIR": "schedules_dir",
    "ZMI_HOST": "host",
    "ZMI_PORT": "port",
    "ZMI_DEFAULT_TIMEZONE": "default_timezone",
    "ZMI_HOLIDAY_REGION": "holiday_region",
    "ZMI_LOG_FORMAT": "log_format",
    "ZMI_LOG_LEVEL": "log_level",
    "ZMI_ALIVE_URL": "alive_url",
    "ZMI_JOURNAL_RETENTION_DAYS": "journal_retention_days",
    "ZMI_MASTERDATA_FILE": "masterdata_file",
}


def load_settings(config_file: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Load settings: file < environment < ``overrides`` (flags; ``None`` values are ignored).

    ``config_file`` None means ``./zmi-reconciler.toml`` when it exists. Raises :class:`ConfigError` with the
    setting's name when a value is invalid or the named file is missing/unreadable.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    path = Path(config_file) if config_file else Path(environ.get("ZMI_CONFIG", DEFAULT_CONFIG_FILE))
    if config_file or path.exists():
        import tomllib  # lazy: only a settings file needs it (Settings() and the API do not)

        try:
            values.update(tomllib.loads(path.read_text(encoding="utf-8")))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: settings file not found") from exc
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read settings: {exc}") from exc
    for var, key in _ENV.items():
        if var in environ and environ[var] != "":
            values[key] = environ[var]
    if environ.get("ZMI_MAIL_TRANSPORT"):  # nested: [smtp] transport; the file's other [smtp] keys are kept
        smtp = values.get("smtp", {})
        if isinstance(smtp, dict):
            values["smtp"] = {**smtp, "transport": environ["ZMI_MAIL_TRANSPORT"]}
    values.update({k: v for k, v in (overrides or {}).items() if v is not None})
    try:
        settings = Settings.model_validate(values)
    except ValueError as exc:
        raise ConfigError(f"invalid settings ({path}): {exc}") from exc
    settings.data_dir = settings.data_dir.absolute()
    settings.schedules_dir = settings.schedules_dir.absolute()
    return settings


def settings_from_args(args: Any) -> Settings:
    """Settings for a CLI command: ``--config``, ``--data-dir``, ``--schedules-dir`` and command flags."""
    overrides = {
        "data_dir": getattr(args, "data_dir", None),
        "schedules_dir": getattr(args, "schedules_dir", None),
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
    }
    return load_settings(getattr(args, "config", None), overrides)


class PathEscapeError(ValueError):
    """A user-given path leaves its configured root (``..``, an absolute path, or a symlink out)."""


def confined_path(root: Path, user_path: str | os.PathLike[str]) -> Path:
    """Join ``user_path`` to ``root`` and refuse results outside ``root`` (after resolving symlinks).

    Returns the resolved absolute path. Raises :class:`PathEscapeError` naming both paths.
    """
    root_resolved = Path(root).resolve()
    candidate = (root_resolved / Path(user_path)).resolve()
    if candidate != root_resolved and root_resolved not in candidate.parents:
        raise PathEscapeError(f"path {str(user_path)!r} leaves its root {str(root)!r}")
    return candidate
