"""Process logging to stderr as text or JSON lines (``--log-format`` / ``ZMI_LOG_FORMAT``).

JSON lines come from ``python-json-logger``: one object per record with ``ts`` (UTC ISO 8601), ``level``,
``logger`` and ``message`` plus any ``extra=`` fields and ``exc_info`` as text. Text lines are
``2026-11-29T04:00:00.123Z INFO    zmi_reconciler.runner: message`` (UTC). The journal is separate: this is
the operator's log, the journal is the record of runs.
"""

from __future__ import annotations

import logging
import sys
import time
from typing import IO

_MARK = "_zmi_reconciler_handler"


class _UtcFormatter(logging.Formatter):
    converter = time.gmtime

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", self.converter(record.created))
        return f"{stamp}.{int(record.msecs):03d}Z"


def _json_formatter() -> logging.Formatter:
    try:
        from pythonjsonlogger.json import JsonFormatter
    except ImportError:  # python-json-logger < 3.1
        from pythonjsonlogger.jsonlogger import JsonFormatter  # type: ignore[no-redef]

    class _Json(JsonFormatter):
        def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
            return _UtcFormatter.formatTime(self, record, datefmt)  # type: ignore[arg-type]

    return _Json("%(asctime)s %(levelname)s %(name)s %(message)s",
                 rename_fields={"asctime": "ts", "levelname": "level", "name": "logger"})


def setup_logging(fmt: str = "text", level: str | int = "INFO", stream: IO[str] | None = None,
                  exclusive: bool = False) -> logging.Handler:
    """Send all logging to ``stream`` (default stderr) as ``text`` or ``json`` lines at ``level``.

    Replaces a handler installed by an earlier call (idempotent); ``exclusive`` also removes every other root
    handler (a framework that configured logging behind our back). Returns the handler. Raises ``ValueError``
    for an unknown format or level.
    """
    if fmt not in ("text", "json"):
        raise ValueError(f"unknown log format {fmt!r} (expected text or json)")
    level_no = logging.getLevelName(level.upper()) if isinstance(level, str) else level
    if not isinstance(level_no, int):
        raise ValueError(f"unknown log level {level!r}")
    root = logging.getLogger()
    for old in [h for h in root.handlers if exclusive or getattr(h, _MARK, False)]:
        root.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    setattr(handler, _MARK, True)
    handler.setFormatter(_json_formatter() if fmt == "json"
                         else _UtcFormatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))
    root.addHandler(handler)
    root.setLevel(level_no)
    return handler
