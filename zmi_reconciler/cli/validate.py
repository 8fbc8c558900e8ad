"""``zmi-reconciler validate [PATH...]``: check schedule files for CI and pre-commit (SPEC section 9).

Output formats (``--format``):

* ``text`` (default): ``file:line:col: error|warning CODE path: message``, then a summary line.
* ``json``: a list of findings ``{file, line, column, path, code, severity, message}``.
* ``github``: workflow commands (``::error file=...,line=...,col=...,title=CODE::message``) that GitHub turns
  into annotations on the pull request; chosen automatically when ``GITHUB_ACTIONS=true``.

Exit codes: 0 no errors (warnings allowed unless ``--strict``), 1 findings, 2 usage or I/O error (a path that
does not exist, a file that cannot be read, no schedule files at all in the given folders, invalid settings).

``run_command`` tasks are checked against the server's allowlist (setting ``commands``, E031: a command that
is not allowlisted can never run) when a settings file is in use, found as ``serve`` finds it (``--config``,
``ZMI_CONFIG``, ``./zmi-reconciler.toml``). Without one the allowlist is unknown, as in a schedules repository's
CI, and nothing is said about commands.

``--explain`` prints each valid schedule's effective zone and next 5 fires, flagging DST gaps and folds,
month-end shifts and fires inside ``exclude`` windows. It goes to stdout with text output and to stderr
otherwise, so that JSON stays machine-readable.

This command imports only the loader, the models and the timing math (no Litestar, no SQLite), so that CI
validates 1,000 files in well under two seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path
from typing import TextIO

# pydantic scans every installed distribution's entry points for plugins when the first model is built;
# validate needs none and must start fast in CI (an explicit setting in the environment still wins).
os.environ.setdefault("PYDANTIC_DISABLE_PLUGINS", "__all__")

from zmi_reconciler.config import ConfigError, Settings, config_file_path, settings_from_args  # noqa: E402
from zmi_reconciler.loader import Finding, LoadResult, load_paths  # noqa: E402

EXPLAIN_FIRES = 5


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("paths", nargs="*", metavar="PATH",
                        help="schedule files or folders (default: the schedules dir from the settings)")
    parser.add_argument("--format", choices=("text", "json", "github"), default=None,
                        help="output format (default: github when GITHUB_ACTIONS=true, else text)")
    parser.add_argument("--strict", action="store_true", help="warnings fail too (exit 1)")
    parser.add_argument("--explain", action="store_true",
                        help="print each schedule's zone and next 5 fires, flagging DST gaps and folds")
    parser.add_argument("--now", metavar="ISO-8601", type=_aware_instant, default=None,
                        help="treat this instant as now (reproducible --explain and DST warnings)")


#: ``--now`` must lie in these UTC years (zone rules and ``datetime``'s range; like ``next --after``).
MIN_YEAR = 1970
MAX_YEAR = 2100


def _aware_instant(value: str) -> datetime:
    """``--now`` -> aware UTC datetime; raises ``ArgumentTypeError`` (exit 2) for no offset or a year outside
    :data:`MIN_YEAR`..:data:`MAX_YEAR`."""
    try:
        instant = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an ISO 8601 instant such as 2026-03-28T12:00:00Z, "
                                         f"got {value!r}") from None
    if instant.tzinfo is None:
        raise argparse.ArgumentTypeError(f"the instant needs a UTC offset or Z: {value!r}")
    try:
        instant = instant.astimezone(timezone.utc)
    except OverflowError:
        instant = None
    if instant is None or not MIN_YEAR <= instant.year <= MAX_YEAR:
        raise argparse.ArgumentTypeError(f"--now must be between {MIN_YEAR} and {MAX_YEAR}, got {value!r}")
    return instant


def run(args: argparse.Namespace) -> int:
    try:
        settings = settings_from_args(args)
    except ConfigError as exc:
        print(f"zmi-reconciler validate: {exc}", file=sys.stderr)
        return 2
    paths = [Path(p) for p in args.paths] or [_display_path(settings.schedules_dir)]
    try:
        results = load_paths(paths)
    except FileNotFoundError as exc:
        print(f"zmi-reconciler validate: {exc}", file=sys.stderr)
        return 2
    if not results:  # a mistyped or empty folder must not pass CI with "0 files checked"
        where = ", ".join(str(p) for p in paths)
        print(f"zmi-reconciler validate: no schedule files (*.yaml, *.yml) found in {where}", file=sys.stderr)
        return 2
    now = args.now or datetime.now(timezone.utc)
    from zmi_reconciler.lint import lint

    try:
        findings = [f for r in results for f in r.findings] + lint(
            results, settings.default_timezone, now=now, commands=known_allowlist(args, settings))
    except OverflowError:  # timing math beyond datetime's range: a usage problem, not a traceback
        print(f"zmi-reconciler validate: --now {now.isoformat()} is beyond the supported date range",
              file=sys.stderr)
        return 2
    findings.sort(key=lambda f: (f.file, f.line, f.column, f.code))
    fmt = args.format or ("github" if os.environ.get("GITHUB_ACTIONS") == "true" else "text")
    try:
        _print(findings, fmt, len(results), sys.stdout)
        if args.explain:
            explain(results, settings.default_timezone, now, sys.stdout if fmt == "text" else sys.stderr)
        sys.stdout.flush()
    except BrokenPipeError:  # `validate | head`: the reader left; the exit code still tells the result
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except OverflowError:
        print(f"zmi-reconciler validate: --now {now.isoformat()} is beyond the supported date range",
              file=sys.stderr)
        return 2
    return exit_code(findings, args.strict)


def known_allowlist(args: argparse.Namespace, settings: Settings,
                    environ: Mapping[str, str] = os.environ) -> dict[str, list[str]] | None:
    """``settings.commands`` (the ``run_command`` allowlist, name -> argv) when the settings came with a file,
    else None (unknown).

    The allowlist lives only in the settings file (no environment variable sets it), so without a file the
    default empty allowlist says nothing about the server. The file is the one ``load_settings`` reads:
    ``--config``, else ``ZMI_CONFIG``, else ``./zmi-reconciler.toml`` when it exists.
    """
    config = getattr(args, "config", None)
    named = config or environ.get("ZMI_CONFIG")
    return settings.commands if named or config_file_path(None, environ).exists() else None


def _display_path(path: Path) -> Path:
    """The settings' absolute schedules dir, shown relative to the working directory when inside it."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path


def exit_code(findings: list[Finding], strict: bool = False) -> int:
    """2 when a file could not be read (E001), 1 for errors (or warnings with ``strict``), else 0."""
    if any(f.code == "E001" for f in findings):
        return 2
    if any(f.severity == "error" or strict for f in findings):
        return 1
    return 0


def _print(findings: list[Finding], fmt: str, file_count: int, out: TextIO) -> None:
    if fmt == "json":
        json.dump([f.to_dict() for f in findings], out, indent=2, ensure_ascii=False)
        out.write("\n")
        return
    if fmt == "github":
        for f in findings:
            out.write(github_annotation(f) + "\n")
        return
    for f in findings:
        out.write(f.text() + "\n")
    errors = sum(f.severity == "error" for f in findings)
    warnings = len(findings) - errors
    out.write(f"{file_count} file{'s' if file_count != 1 else ''} checked: {errors} error{'s' if errors != 1 else ''}, "
              f"{warnings} warning{'s' if warnings != 1 else ''}\n")


def _escape_data(value: str) -> str:
    return value.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(value: str) -> str:
    return _escape_data(value).replace(":", "%3A").replace(",", "%2C")


def github_annotation(f: Finding) -> str:
    """One GitHub Actions workflow command, e.g. ``::error file=a.yaml,line=3,col=5,title=E020::timing.at: ...``."""
    message = f"{f.path}: {f.message}" if f.path else f.message
    props = ",".join(f"{k}={_escape_property(str(v))}"
                     for k, v in (("file", f.file), ("line", f.line), ("col", f.column), ("title", f.code)))
    return f"::{f.severity} {props}::{_escape_data(message)}"


def explain(results: list[LoadResult], default_timezone: str, now: datetime, out: TextIO) -> None:
    """Per valid schedule: effective zone, timing summary and the next fires after ``now`` with notes."""
    from zoneinfo import ZoneInfo

    from zmi_reconciler import timing as timing_math

    for result in results:
        schedule = result.schedule
        if schedule is None:
            continue
        zone = ZoneInfo(schedule.timezone or default_timezone)
        source = "timezone" if schedule.timezone else "server default_timezone"
        out.write(f"{result.file}: {schedule.name!r} - {timing_math.describe(schedule.timing)}\n")
        out.write(f"  zone: {zone.key} ({source})\n")
        if not schedule.enabled:
            out.write("  paused (enabled: false): no fires until enabled again\n")
        if schedule.timing.type == "manual":
            out.write("  fires only when triggered (API or `zmi-reconciler run`)\n")
            continue
        fires = timing_math.iter_fires(schedule.timing, zone, now)
        for _ in range(EXPLAIN_FIRES):
            fire = next(fires, None)
            if fire is None:
                break
            local = fire.astimezone(zone)
            notes = timing_math.fire_notes(schedule.timing, zone, fire)
            window = _excluded_by(schedule, local)
            if window:
                notes.append(f"inside exclude window {window}: recorded as skipped, not run")
            flag = f"  <- {'; '.join(notes)}" if notes else ""
            out.write(f"  {local.isoformat()} {local.strftime('%a')} {local.tzname()}{flag}\n")


def _excluded_by(schedule, local: datetime) -> str | None:
    """The ``from-to`` text of the exclude window containing the local wall time (half-open), or None."""
    hhmm = local.strftime("%H:%M")
    for window in schedule.exclude:
        start, end = window.from_, window.to
        inside = start <= hhmm < end if start <= end else (hhmm >= start or hhmm < end)
        if inside:
            return f"{start}-{end}"
    return None
