"""``zmi-reconciler quickstart`` (what ``make run`` calls): demo data on first start, then ``serve``.

When the data dir holds no tna store yet, it seeds the demo (master data, holidays, employees) and drops the
demo terminal export into the inbox, where the example ``terminal-import`` schedule picks it up. It then
prints where things are and what will happen next, and runs :mod:`zmi_reconciler.cli.serve` with the same
arguments. An existing data dir is never touched.

Without a mail server configured (no ``ZMI_MAIL_TRANSPORT``, no ``[smtp]`` in the settings file),
``send_notifications`` writes ``.eml`` files into ``<data_dir>/mail`` instead of failing against localhost:25
(see :func:`wants_mail_folder`).
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping
from datetime import datetime, timezone
from pathlib import Path

from zmi_reconciler.cli import serve
from zmi_reconciler.config import DEFAULT_CONFIG_FILE, ConfigError, Settings, SmtpSettings, settings_from_args


def add_arguments(parser: argparse.ArgumentParser) -> None:
    serve.add_arguments(parser)


def seed_if_empty(settings: Settings) -> list[str]:
    """Seed demo data when ``settings.database_path`` does not exist; returns lines describing what was done,
    among them the export's patterns with their dates (``5006: lone come on YYYY-MM-DD``: the demo's day with
    a booking error, which the README's ``daily-values?date=`` example asks for)."""
    if settings.database_path.exists():
        return [f"data dir {settings.data_dir} already has a tna store: using it as it is"]
    from zmi_reconciler.tna.demo import seed_demo
    from zmi_reconciler.tna.store import Store

    today = datetime.now(settings.zone).date()
    export = settings.inbox_path / "demo-attlog.dat"
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    with Store.open(settings.database_path, zone=settings.zone) as store:
        result = seed_demo(store, settings.data_dir, export, today=today, region=settings.holiday_region)
    return [
        f"seeded demo data into {settings.database_path}: {result.employees} employees, "
        f"{result.holidays} holidays ({settings.holiday_region})",
        f"master data: {result.masterdata_path}",
        f"dropped a demo terminal export into the inbox: {result.export_path} ({result.lines} lines):",
        *(f"  - {pattern}" for pattern in result.patterns),
    ]


def wants_mail_folder(settings: Settings, environ: Mapping[str, str]) -> bool:
    """True when the demo should deliver mail into the ``.eml`` folder (``ZMI_MAIL_TRANSPORT=folder``): the
    environment sets no ``ZMI_MAIL_TRANSPORT`` and ``settings.smtp`` is all defaults (no ``[smtp]`` configured,
    so SMTP would go to localhost:25, which a first install rarely has)."""
    return not environ.get("ZMI_MAIL_TRANSPORT") and settings.smtp == SmtpSettings()


STARTER_CONFIG = """\
# zmi-reconciler settings, written by `make run` (zmi-reconciler quickstart) on the first start; edit freely.
# Every setting: zmi_reconciler/config.py. ZMI_* environment variables and flags override this file.

# default_timezone = "Europe/Berlin"
# holiday_region = "DE-BY"
# alert_email = "hr-it@example.com"

[smtp]
# No mail server yet: notifications are written as .eml files into <data_dir>/mail/.
# To send real mail: transport = "smtp" plus host, port, security (plain|starttls|ssl), username, password, sender.
transport = "folder"

# [commands]                     # the run_command allowlist: name = argv (no shell)
# sync-hr = ["/opt/hr/bin/sync", "--quiet"]
"""


def write_starter_config(config_arg: str | None, environ: Mapping[str, str], cwd: Path) -> Path | None:
    """Write :data:`STARTER_CONFIG` to ``cwd/zmi-reconciler.toml`` when no settings file is in use (no
    ``--config``, no ``ZMI_CONFIG``, none in ``cwd``) and return its path; else None. The file makes the demo's
    choices (mail into a folder) visible and shared by ``serve`` and ``run``, and is where the admin edits them."""
    path = cwd / DEFAULT_CONFIG_FILE
    if config_arg or environ.get("ZMI_CONFIG") or path.exists():
        return None
    path.write_text(STARTER_CONFIG, encoding="utf-8")
    return path


def upcoming(settings: Settings, now_utc: datetime, limit: int = 8) -> list[str]:
    """One line per schedule of ``settings.schedules_dir``, soonest first: id, timing, next fire (local time of
    the schedule's zone); invalid files are named with their first error. Read from the files as they are now."""
    from zmi_reconciler.loader import load_paths
    from zmi_reconciler.timing import describe, next_fire

    rows: list[tuple[datetime, str]] = []
    never = datetime.max.replace(tzinfo=timezone.utc)
    for result in load_paths([settings.schedules_dir]) if settings.schedules_dir.is_dir() else []:
        schedule = result.schedule
        if schedule is None:
            first = result.errors[0].text() if result.errors else "invalid"
            rows.append((never, f"{result.schedule_id}: not loaded: {first}"))
            continue
        zone = schedule.zone(settings.default_timezone)
        fire = next_fire(schedule.timing, zone, now_utc) if schedule.enabled else None
        when = (f"; {fire.astimezone(zone):next %a %Y-%m-%d %H:%M %Z}" if fire is not None
                else "; paused" if not schedule.enabled else "")
        tasks = " -> ".join(entry.task for entry in schedule.tasks)
        rows.append((fire or never, f"{result.schedule_id} ({describe(schedule.timing)}{when}): {tasks}"))
    rows.sort(key=lambda row: row[0])
    return [text for _, text in rows[:limit]]


def run(args: argparse.Namespace) -> int:
    from zmi_reconciler.locks import StoreBusyError, acquire_server_lock

    try:
        settings = settings_from_args(args)
        acquire_server_lock(settings).release()  # refuse before seeding or printing anything misleading
    except (ConfigError, StoreBusyError, OSError) as exc:
        print(f"zmi-reconciler: {exc}", file=sys.stderr)
        return 2
    starter = write_starter_config(getattr(args, "config", None), os.environ, Path.cwd())
    if starter is not None:
        settings = settings_from_args(args)
        print(f"quickstart: wrote settings {starter} (mail goes to {settings.mail_path}/*.eml until you "
              "configure [smtp])", flush=True)
    for line in seed_if_empty(settings):
        print(f"quickstart: {line}", flush=True)
    if wants_mail_folder(settings, os.environ):
        os.environ["ZMI_MAIL_TRANSPORT"] = "folder"  # serve.run loads the settings again, with this
        print(f"quickstart: mail     no SMTP server configured: messages are written to {settings.mail_path}/*.eml "
              "(configure [smtp] in zmi-reconciler.toml to send)", flush=True)
    url = f"http://{settings.host}:{settings.port}"
    token = settings.data_dir / "admin.token"
    schedules = "\n".join(f"                     {line}" for line in upcoming(settings, datetime.now(timezone.utc)))
    print(f"""quickstart: API      {url}/api/v1/schedules   (docs: {url}/schema)
quickstart: token    {token} (written at first start; send as 'Authorization: Bearer <token>')
quickstart: journal  {settings.journal_path}/<UTC date>.jsonl
quickstart: next     schedules from {settings.schedules_dir}:
{schedules}
                     Run one now:  curl -X POST -H "Authorization: Bearer $(cat {token})" \\
                                   '{url}/api/v1/schedules/nightly/runs?wait=60'
quickstart: stop     Ctrl-C (running tasks get {settings.shutdown_grace_seconds:.0f} s to finish)""", flush=True)
    return serve.run(args)
