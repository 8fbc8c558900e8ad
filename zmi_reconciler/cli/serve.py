"""``zmi-reconciler serve``: the runner, the reconciler and the HTTP API in one process.

Start: logging to stderr (text or JSON lines), the schedule files loaded and the tna store synchronised
(master data, holidays), the API app built, the schedules reconciled into the runner (its seeding from the journal,
the pass's journal events and last good copies wait), the journal opened and runs of a previous process that never
finished closed with ``run_interrupted`` (``Journal.close_interrupted``), a second pass for edits made meanwhile,
the passes' events and copies written and the runner seeded (it finds the fires missed while the server was down),
then the runner loop, the folder watcher and the API; the journal's index cache is written
:data:`INDEX_SAVE_DELAY` seconds later (or at stop). A start stopped before that writes nothing.

Stop: SIGTERM or SIGINT stops the API and the watcher, the runner fires nothing new, running tasks get
``shutdown_grace_seconds`` to finish, then their cancel events are set and runs that are still going are
recorded ``run_interrupted``. A second SIGINT/SIGTERM (a second or more after the first) during the grace period
exits at once (the next start closes the unfinished runs). Exit code 0 after a clean stop, 2 for a settings error or a port in use.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import signal
import sys
import threading
import time
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

from zmi_reconciler.logging_setup import setup_logging

if TYPE_CHECKING:
    from zmi_reconciler.config import Settings
    from zmi_reconciler.journal import _ColdBuild

log = logging.getLogger("zmi_reconciler.serve")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--host", help="API listen address (env ZMI_HOST, default 127.0.0.1)")
    parser.add_argument("--port", type=int, help="API port (env ZMI_PORT, default 8080)")
    parser.add_argument("--log-format", choices=("text", "json"), help="stderr log format (env ZMI_LOG_FORMAT)")
    parser.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR (env ZMI_LOG_LEVEL, default INFO)")


def run(args: argparse.Namespace) -> int:
    # A first index build starts before the settings are read: they import pydantic (a quarter second); the
    # guess of the journal folder is checked against the real settings in _serve (a wrong guess: cancelled).
    from zmi_reconciler.journal import Journal

    guess = journal_path_guess(args)
    first_build = Journal.start_first_build(guess) if guess is not None else None
    from zmi_reconciler.config import ConfigError, settings_from_args

    try:
        settings = settings_from_args(args)
        settings.log_format = getattr(args, "log_format", None) or settings.log_format  # flags win
        settings.log_level = getattr(args, "log_level", None) or settings.log_level
        setup_logging(settings.log_format, settings.log_level)
    except (ConfigError, ValueError) as exc:
        if first_build is not None:
            first_build.cancel()
        print(f"zmi-reconciler: {exc}", file=sys.stderr)
        return 2
    return serve(settings, first_build=first_build)


def journal_path_guess(args: argparse.Namespace, environ: dict[str, str] | None = None) -> Path | None:
    """The journal folder as :func:`zmi_reconciler.config.load_settings` will resolve it (``--data-dir`` >
    ``ZMI_DATA_DIR`` > the settings file's ``data_dir`` > ``var``; ``journal_dir`` of the file, relative to the
    data dir), read without the settings model, so that a first index build can start before pydantic is
    imported. Absolute. None when the settings file cannot be read (the real load reports it). Only a guess:
    :func:`serve` compares it with the settings."""
    environ = os.environ if environ is None else environ
    config = getattr(args, "config", None)
    path = Path(config) if config else Path(environ.get("ZMI_CONFIG") or "zmi-reconciler.toml")
    values: dict[str, Any] = {}
    if config or environ.get("ZMI_CONFIG") or path.exists():
        import tomllib

        try:
            values = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError):
            return None
    data_dir = getattr(args, "data_dir", None) or environ.get("ZMI_DATA_DIR") or values.get("data_dir") or "var"
    journal_dir = values.get("journal_dir") or "journal"
    if not isinstance(data_dir, str) or not isinstance(journal_dir, str):
        return None
    journal = Path(journal_dir)
    return (journal if journal.is_absolute() else Path(data_dir).absolute() / journal).absolute()


def serve(settings: Settings, stop: threading.Event | None = None,
          first_build: _ColdBuild | None = None) -> int:
    """Run until ``stop`` is set or SIGTERM/SIGINT arrives (signals only when called in the main thread).

    Start-up order (the API answers within seconds even for a journal of a million events, SPEC 10): when the
    journal needs a first index build (no cache yet, or a new cache format), a forked process starts reading
    its files at once, newest first; meanwhile this process imports the API, loads the schedule files,
    synchronises the tna store and builds the API app (on the journal object, not yet read: ``defer_open``), then
    reads the files oldest first until it meets the other process and takes what that one built
    (:meth:`Journal.start_first_build`, :class:`zmi_reconciler.journal._ColdBuild`). ``first_build``:
    that process when the caller started it earlier (:func:`run`, from :func:`journal_path_guess`); used when it
    reads ``settings.journal_path``, else cancelled. The caller's build is cancelled on every path. Without a
    first build (a restart: the index comes from its cache) a forked process loads the schedule files instead
    (:class:`zmi_reconciler.reconcile.Preloading`)."""
    started = time.perf_counter()
    gc_was_enabled = gc.isenabled()
    gc.disable()  # start-up only allocates (imports, schedules, index); collections would just cost time
    try:
        return _serve(settings, stop, started, first_build)
    finally:
        if first_build is not None:  # (a no-op when the journal used it)
            first_build.cancel()
        if gc_was_enabled:
            gc.enable()


def _serve(settings: Settings, stop: threading.Event | None, started: float,
           early_build: _ColdBuild | None) -> int:
    from zmi_reconciler.journal import Journal
    from zmi_reconciler.locks import StoreBusyError, acquire_server_lock

    stop = stop or threading.Event()
    restore = _install_signal_handlers(stop)
    try:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # One server per data dir: a second runner would fire every schedule twice, and `restore` must see us.
        server_lock = acquire_server_lock(settings)
    except (OSError, StoreBusyError) as exc:
        log.error("cannot start: %s", exc)
        restore()
        return 2
    # Work that needs no journal comes first, so that it overlaps the second index builder (if any).
    if early_build is not None and early_build.directory == settings.journal_path.absolute():
        first_build: _ColdBuild | None = early_build
    else:
        if early_build is not None:
            early_build.cancel()
        first_build = Journal.start_first_build(settings.journal_path)
    preloading = None
    try:
        from zmi_reconciler.reconcile import Preloading, Reconciler, preload
        from zmi_reconciler.runner import Runner

        # The schedule files: without a first index build the second CPU is free, so a child loads them.
        preloading = Preloading.start(settings.schedules_dir) if first_build is None else None
        _import_api()
        preloaded = preload(settings.schedules_dir) if preloading is None else None
        _sync_store(settings)
        # The index cache is written later (_save_index_soon), not on the path to answering HTTP.
        journal = Journal(settings.journal_path, retention_days=settings.journal_retention_days,
                          save_at_open=False, first_build=first_build, defer_open=True)
        runner = Runner(settings, journal)
        if preloading is not None:
            preloaded = preloading.result()
            if preloaded is None:
                preloaded = preload(settings.schedules_dir)
        reconciler = Reconciler(settings, runner, journal, preloaded=preloaded)
        app = _create_app(settings, runner, reconciler, journal)  # needs the objects, not the journal's content
        server = _api_server(settings, app)
        # The schedule files are reconciled before the journal is read (the runner's seeding from the journal and
        # what the pass writes wait for it), so that reading it is the last thing before serving; a second pass
        # after it takes the edits made meanwhile (it reads nothing again when there were none).
        runner.defer_seeding()
        reconciler.hold_writes()
        reconciler.reconcile_all()
        if stop.is_set():  # SIGTERM/SIGINT while loading (systemd stopping us): do not read the journal first
            journal.close()  # never opened: writes nothing, ends a second index builder
            log.info("stopped during start-up")
            server_lock.release()
            restore()
            return 0
        journal.open()
        # A killed server cannot stop its commands: end what still runs of them before their runs are closed (and
        # before anything new starts); nothing to wait for unless a command outlived its server.
        orphaned = journal.orphaned_runs()
        _stop_leftover_commands(journal, orphaned)
        # What is left to close; looked for again after a stop of leftovers (a CLI run may have ended meanwhile).
        interrupted = journal.close_interrupted() if orphaned else []
        reconciler.reconcile_all()
        reconciler.release_writes()
        runner.seed()
    except (OSError, ValueError) as exc:
        log.error("cannot start: %s", exc)
        server_lock.release()
        restore()
        return 2
    except BaseException:
        server_lock.release()
        restore()
        raise
    finally:
        if first_build is not None:  # used by the journal by now, or never: do not leave it waiting
            first_build.cancel()
        if preloading is not None:
            preloading.cancel()
    if interrupted:
        log.warning("closed %d run(s) of a previous process as interrupted", len(interrupted))
    if stop.is_set():  # SIGTERM/SIGINT during start-up: stop before anything fires or listens
        log.info("stopped during start-up")
        journal.close()
        server_lock.release()
        restore()
        return 0
    runner.start()
    watcher = threading.Thread(target=reconciler.watch, args=(stop,), kwargs={"reconciled": True},
                               name="zmi-reconciler-watch", daemon=True)
    watcher.start()
    threading.Thread(target=_save_index_soon, args=(journal, stop), name="zmi-journal-index-save",
                     daemon=True).start()
    log.info("serving %d schedule(s) from %s; journal %s; started in %.2f s", len(runner.schedule_ids()),
             settings.schedules_dir, settings.journal_path, time.perf_counter() - started)
    code = 0
    # Everything loaded so far (modules, models, the journal's per-schedule lists) stays for the life of the
    # process: out of the collector's reach it is never scanned again (full collections stay short, SPEC 10 p99).
    gc.freeze()
    gc.enable()
    try:
        code = _serve_api(settings, server, stop)
    finally:
        stop.set()
        log.info("stopping: running tasks get %.0f s", settings.shutdown_grace_seconds)
        given_up = runner.stop(settings.shutdown_grace_seconds)
        if given_up:
            log.warning("recorded as interrupted: %s", ", ".join(given_up))
        watcher.join(timeout=5)
        close = getattr(journal, "close", None)
        if close is not None:
            close()
        server_lock.release()
        restore()
        log.info("stopped")
    return code


#: Seconds after start at which the journal's index cache is written: after the start-up burst (clients
#: reconnecting, catch-up runs), since writing it holds the journal for a moment (about 0.3 s for a million events).
#: A server stopped earlier writes it at stop; one killed earlier just builds the index from the lines again.
INDEX_SAVE_DELAY = 30.0


def _save_index_soon(journal: Any, stop: threading.Event) -> None:
    """Write the journal's index cache :data:`INDEX_SAVE_DELAY` seconds after start (or at once on an early
    stop), so that the next start replays it instead of reading every line."""
    stop.wait(INDEX_SAVE_DELAY)
    try:
        journal.save_index()
    except Exception:  # the cache only saves time at the next start
        log.exception("journal: writing the index cache failed")


def _stop_leftover_commands(journal: Any, run_ids: list[str]) -> None:
    """:func:`zmi_reconciler.tasks.run_command.stop_leftovers` for the runs about to be closed as interrupted
    (before their ``run_interrupted``: a server killed meanwhile finds them again at its next start)."""
    if not run_ids:
        return
    try:
        from zmi_reconciler.tasks.run_command import stop_leftovers

        stop_leftovers(journal, run_ids)
    except Exception:  # a failure here must not take the server down; the runs are closed next all the same
        log.exception("stopping the commands of interrupted runs failed")


def _sync_store(settings: Settings) -> None:
    """Apply the master data file and fill region holidays (:mod:`zmi_reconciler.tna.sync`). A broken master
    data file is logged with file:line:col and leaves the store as it was; the server starts anyway."""
    import sqlite3
    from datetime import datetime

    from zmi_reconciler.tna.masterdata import MasterDataError
    from zmi_reconciler.tna.store import Store
    from zmi_reconciler.tna.sync import sync_store

    try:
        with Store.open(settings.database_path, zone=settings.zone) as store:
            result = sync_store(settings, store, datetime.now(settings.zone).date())
    except MasterDataError as exc:
        for problem in exc.problems:
            log.error("master data not applied: %s", problem)
        return
    except (OSError, ValueError, sqlite3.Error) as exc:  # e.g. a damaged database file: tasks will say so too
        log.error("tna store %s not synchronised: %s", settings.database_path, exc)
        return
    if result.masterdata is not None:
        md = result.masterdata
        log.info("master data %s: %d day plans, %d week plans, %d employees, %d unassigned bookings attached",
                 settings.masterdata_path, md.day_plans, md.week_plans, md.employees, md.attached)
    for year, count in result.holidays_added.items():
        log.info("holidays %s %d: %d added", settings.holiday_region, year, count)


def _import_api() -> None:
    """Import the API early, while a second index builder works (see :func:`serve`); a build without the API
    package is fine here (:func:`_serve_api` says so)."""
    try:
        # What the app's lifespan and uvicorn's loop setup import first (~15 + 12 ms, on the path to serving).
        import anyio._backends._asyncio  # noqa: F401
        import anyio.streams.memory  # noqa: F401
        import uvicorn  # noqa: F401
        import uvicorn.loops.auto  # noqa: F401

        import zmi_reconciler.api.app  # noqa: F401
    except ImportError:
        pass


# --------------------------------------------------------------------------------------------------------------
# HOOK (H7, API): serve the HTTP API until ``stop`` is set. Without the API package it just waits for ``stop``.
def _create_app(settings: Settings, runner: Any, reconciler: Any, journal: Any) -> Any:
    """The Litestar app on the live objects, or None when this build has no API package."""
    try:
        from zmi_reconciler.api.app import create_app
    except ImportError:
        return None
    return create_app(settings, runner, reconciler, journal, freeze_gc=True)


def _api_server(settings: Settings, app: Any) -> Any:
    """The uvicorn server for ``app`` with its config loaded (protocol classes imported, the app wrapped), so that
    serving it later takes no more than binding the port; None without the API package."""
    if app is None:
        return None
    import uvicorn

    from zmi_reconciler.api.head import HeadAsGet

    config = uvicorn.Config(HeadAsGet(app), host=settings.host, port=settings.port, log_config=None,
                            access_log=False, lifespan="on")
    config.load()
    return uvicorn.Server(config)


def _serve_api(settings: Settings, server: Any, stop: threading.Event) -> int:
    if server is None:
        log.warning("API not available in this build; running runner and reconciler only")
        stop.wait()
        return 0

    def exit_on_stop() -> None:
        stop.wait()
        server.should_exit = True

    threading.Thread(target=exit_on_stop, name="zmi-api-stop", daemon=True).start()
    log.info("API on http://%s:%d/api/v1", settings.host, settings.port)
    try:
        # uvicorn catches SIGTERM/SIGINT while it serves and re-raises them afterwards, which reaches our
        # handlers (they set ``stop``).
        server.run()
    except SystemExit as exc:  # uvicorn exits when it cannot bind
        log.error("API stopped: exit %s (port %d in use?)", exc.code, settings.port)
        return 2
    if not server.started and not stop.is_set():
        log.error("API could not start on %s:%d", settings.host, settings.port)
        return 2
    return 0
# --------------------------------------------------------------------------------------------------------------


#: A second SIGTERM/SIGINT exits at once only when it comes at least this many seconds after the first: a signal
#: sent to a process group reaches the server twice within milliseconds when its parent passes it on (GNU make
#: under `make run`), and that must not cut the running tasks' grace period short.
SECOND_SIGNAL_SECONDS = 1.0


def _install_signal_handlers(stop: threading.Event):
    """SIGTERM/SIGINT set ``stop``; a second one (:data:`SECOND_SIGNAL_SECONDS` or more later) exits at once.
    Returns a function restoring the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    received: list[float] = []  # monotonic time of the first signal

    def handler(signum: int, frame: FrameType | None) -> None:
        name = signal.Signals(signum).name
        if stop.is_set() and received:
            if time.monotonic() - received[0] < SECOND_SIGNAL_SECONDS:
                log.info("%s again right away (a signal to the process group, passed on): still shutting down",
                         name)
                return
            log.error("second %s: exiting without waiting for running tasks", name)
            logging.shutdown()
            import os

            os._exit(128 + signum)
        received.append(time.monotonic())
        log.info("%s received: shutting down", name)
        stop.set()

    old = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, previous in old.items():
            signal.signal(sig, previous)

    return restore
