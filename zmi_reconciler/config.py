"""Server settings: ``zmi-reconciler.toml`` (or ``--config FILE``), overridden by ``ZMI_*`` environment
variables, overridden by command-line flags (SPEC section 9).

Relative ``data_dir`` and ``schedules_dir`` are resolved against the current working directory of the process
(not the settings file's folder); the other relative paths (inbox, backup, export, journal, database, master
data, mail folder) against the data dir. User-given paths (task params, API input) go through
:func:`confined_path`, which refuses anything that leaves its root.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal, get_args, get_origin
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

DEFAULT_CONFIG_FILE = "zmi-reconciler.toml"



def _no_bool(value: Any) -> Any:
    """TOML ``port = true`` is no port number (pydantic's lax mode would read it as 1)."""
    if isinstance(value, bool):
        raise ValueError(f"expected a port number, got {value!r}")
    return value


#: A TCP port: an integer (text from a ``ZMI_*`` variable is converted), never a boolean.
Port = Annotated[int, BeforeValidator(_no_bool)]

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
    port: Port = Field(default=25, ge=1, le=65535)
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
    port: Port = Field(default=8080, ge=0, le=65535)  # 0: any free port
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


def config_file_path(config_file: str | os.PathLike[str] | None = None,
                     environ: Mapping[str, str] | None = None) -> Path:
    """The settings file :func:`load_settings` reads: ``config_file`` (``--config``), else ``ZMI_CONFIG``, else
    ``./zmi-reconciler.toml``. An empty ``ZMI_CONFIG=`` counts as unset, like the other ``ZMI_*`` variables."""
    environ = os.environ if environ is None else environ
    return Path(config_file) if config_file else Path(environ.get("ZMI_CONFIG") or DEFAULT_CONFIG_FILE)


def load_settings(config_file: str | os.PathLike[str] | None = None, overrides: dict[str, Any] | None = None,
                  environ: dict[str, str] | None = None) -> Settings:
    """Load settings: file < environment < ``overrides`` (flags; ``None`` values are ignored).

    The file is :func:`config_file_path`; ``./zmi-reconciler.toml`` is optional, a named one (``--config`` or
    ``ZMI_CONFIG``) must exist: a typo must not start a server on default settings and a fresh data dir.
    Relative ``data_dir`` and ``schedules_dir`` are made absolute against the current working directory (not
    the settings file's folder); the other paths are relative to ``data_dir``. Raises :class:`ConfigError`
    when the named file is missing or unreadable, or with one line per invalid value naming where it was set
    (``file:line``, the environment variable or the command line), the setting and what was expected.
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    origins: dict[str, str] = {}
    text = ""
    path = config_file_path(config_file, environ)
    if config_file or environ.get("ZMI_CONFIG") or path.exists():  # a named file (flag or variable) must exist
        import tomllib  # lazy: only a settings file needs it (Settings() and the API do not)

        try:
            text = path.read_text(encoding="utf-8")
            values.update(tomllib.loads(text))
        except FileNotFoundError as exc:
            raise ConfigError(f"{path}: settings file not found") from exc
        except IsADirectoryError as exc:
            raise ConfigError(f"{path}: cannot read settings: is a directory, expected a TOML file") from exc
        except OSError as exc:
            raise ConfigError(f"{path}: cannot read settings: {exc.strerror or exc}") from exc
        except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
            raise ConfigError(f"{path}: cannot read settings: {exc}") from exc
        origins = {key: str(path) for key in values}
    for var, key in _ENV.items():
        if var in environ and environ[var] != "":
            values[key] = environ[var]
            origins[key] = var
    if environ.get("ZMI_MAIL_TRANSPORT"):  # nested: [smtp] transport; the file's other [smtp] keys are kept
        smtp = values.get("smtp", {})
        if isinstance(smtp, dict):
            values["smtp"] = {**smtp, "transport": environ["ZMI_MAIL_TRANSPORT"]}
            origins.setdefault("smtp", "ZMI_MAIL_TRANSPORT")
            origins["smtp.transport"] = "ZMI_MAIL_TRANSPORT"
    for key, value in (overrides or {}).items():
        if value is not None:
            values[key] = value
            origins[key] = "command line"
    try:
        settings = Settings.model_validate(values)
    except ValidationError as exc:
        problems = sorted((_problem(err, origins, path, text) for err in exc.errors(include_url=False)),
                          key=lambda problem: _problem_order(problem, path))
        head = "invalid settings:" if len(problems) == 1 else f"invalid settings ({len(problems)} problems):"
        raise ConfigError("\n".join([head + " " + problems[0]] if len(problems) == 1 else [head, *problems])) \
            from None
    settings.data_dir = settings.data_dir.absolute()
    settings.schedules_dir = settings.schedules_dir.absolute()
    return settings


_EXPECTED = {"int_type": "an integer", "int_parsing": "an integer", "int_from_float": "a whole number",
             "float_type": "a number", "float_parsing": "a number", "bool_type": "true or false",
             "bool_parsing": "true or false", "string_type": "text", "list_type": "a list",
             "dict_type": "a table", "model_type": "a table", "path_type": "a path (text)"}


def _problem_order(problem: str, path: Path) -> tuple[int, int]:
    """Sort key of a :func:`_problem` line: the settings file's problems first, by line, then the environment's,
    then the command line's (pydantic reports them in field order)."""
    prefix = f"{path}:"
    if problem.startswith(prefix):
        line = problem[len(prefix):].split(":", 1)[0]
        return (0, int(line)) if line.isdigit() else (0, 0)
    return (2, 0) if problem.startswith("command line:") else (1, 0)


def _problem(err: Any, origins: dict[str, str], path: Path, text: str) -> str:
    """One pydantic error as ``<where>: <setting>: <what is wrong>`` (no pydantic dump, no URL)."""
    loc = tuple(err["loc"])
    setting = ".".join(str(p) if not isinstance(p, int) else f"[{p}]" for p in loc).replace(".[", "[")
    kind, ctx, value = err["type"], err.get("ctx") or {}, err.get("input")
    origin = origins.get(".".join(str(p) for p in loc[:2])) or origins.get(str(loc[0])) if loc else None
    if origin == str(path):
        line = _toml_line(text, loc)
        origin = f"{path}:{line}" if line else str(path)
    where = origin or str(path)
    got = f", got {value!r}" if isinstance(value, (str, int, float, bool)) else ""
    if kind == "extra_forbidden":
        model: Any = Settings
        for part in loc[:-1]:  # the model that holds the unknown key: Settings, SmtpSettings or ApiToken
            field = model.model_fields.get(part) if isinstance(part, str) else None
            inner = field.annotation if field is not None else None
            inner = (get_args(inner) or (None,))[0] if get_origin(inner) is list else inner
            model = inner if isinstance(inner, type) and issubclass(inner, BaseModel) else model
        allowed = list(getattr(model, "model_fields", {}))
        close = difflib.get_close_matches(str(loc[-1]), allowed, n=1)
        hint = f"; did you mean '{close[0]}'?" if close else ""
        return f"{where}: unknown setting '{setting}'{hint}"
    if kind == "missing":
        return f"{where}: {setting}: missing (required)"
    if kind in _EXPECTED:
        what = f"expected {_EXPECTED[kind]}{got}"
    elif kind in ("literal_error", "enum"):
        what = f"expected {ctx.get('expected')}{got}"
    elif kind == "string_pattern_mismatch":
        what = f"expected text matching {ctx.get('pattern')}{got}"
    elif kind in ("greater_than_equal", "less_than_equal", "greater_than", "less_than"):
        op, bound = {"greater_than_equal": (">=", "ge"), "less_than_equal": ("<=", "le"),
                     "greater_than": (">", "gt"), "less_than": ("<", "lt")}[kind]
        what = f"expected a value {op} {ctx.get(bound)}{got}"
    elif kind in ("value_error", "assertion_error"):
        what = re.sub(r"^(Value|Assertion) error, ", "", err["msg"])
    else:
        what = f"{err['msg']}{got}"
    return f"{where}: {setting}: {what}"


_TABLE = re.compile(r"^\[\s*([A-Za-z0-9_.\"' -]+?)\s*\]\s*(#.*)?$")
_ARRAY_TABLE = re.compile(r"^\[\[\s*([A-Za-z0-9_.\"' -]+?)\s*\]\]\s*(#.*)?$")
_KEY = re.compile(r"^([A-Za-z0-9_-]+|\"[^\"]*\"|'[^']*')\s*(?:\.\s*[A-Za-z0-9_-]+\s*)*=")


def _toml_line(text: str, loc: tuple[Any, ...]) -> int | None:
    """1-based line of the key at ``loc`` (``("smtp", "port")``, ``("tokens", 0, "sha256")``) in the TOML
    ``text``, or of its nearest table or key above it; None when not found. A line scan, not a TOML parser:
    enough to point at a setting."""
    table: tuple[Any, ...] = ()
    arrays: dict[str, int] = {}
    best: tuple[int, int] | None = None  # (matched length of loc, line)
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        header = _ARRAY_TABLE.match(line)
        if header:
            name = header.group(1).strip("\"'")
            arrays[name] = arrays.get(name, -1) + 1
            table = (name, arrays[name])
        else:
            header = _TABLE.match(line)
            if header:
                table = tuple(part.strip().strip("\"'") for part in header.group(1).split("."))
        if header:
            if loc[:len(table)] == table and (best is None or len(table) > best[0]):
                best = (len(table), number)
            continue
        key = _KEY.match(line)
        if key:
            dotted = line.split("=", 1)[0]
            full = table + tuple(part.strip().strip("\"'") for part in dotted.split("."))
            if loc[:len(full)] == full and (best is None or len(full) > best[0]):
                best = (len(full), number)
    return best[1] if best else None


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
