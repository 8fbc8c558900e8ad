"""``serve`` start-up with a journal that needs a first index build (a forked second builder is running while
the server imports the API, loads schedules and syncs the store): an error on the way, a stop requested on the
way, a damaged store. In process, with ``Journal.PARALLEL_BUILD_BYTES`` lowered so that a small journal forks."""

from __future__ import annotations

import logging
import multiprocessing
import threading
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from zmi_reconciler.cli import serve as serve_module
from zmi_reconciler.config import Settings
from zmi_reconciler.journal import Journal
from zmi_reconciler.locks import acquire_server_lock


@pytest.fixture
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setattr(Journal, "PARALLEL_BUILD_BYTES", 1)
    (tmp_path / "schedules.d").mkdir()
    (tmp_path / "schedules.d" / "nightly.yaml").write_text(
        "name: Nightly\ntiming: {type: daily, at: \"05:00\"}\ntasks:\n  - task: calculate_days\n")
    settings = Settings(data_dir=tmp_path / "var", schedules_dir=tmp_path / "schedules.d", port=1)
    journal = Journal(settings.journal_path, clock=lambda: now, index_cache=False)
    now = datetime.now(timezone.utc) - timedelta(days=3)
    for day in range(3):  # three day files: a second builder starts
        now += timedelta(days=1)
        journal.append("run_started", schedule="nightly", run_id=f"nightly@{day}", trigger="manual")
        journal.append("run_finished", schedule="nightly", run_id=f"nightly@{day}", status="succeeded")
    journal.close()
    return settings


def _forked(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    started: list[object] = []
    real_start = Journal.start_first_build.__func__  # type: ignore[attr-defined]

    def spy(cls: type, directory: Path) -> object:
        build = real_start(cls, directory)
        started.append(build)
        return build

    monkeypatch.setattr(Journal, "start_first_build", classmethod(spy))
    return started


def test_an_error_during_start_up_stops_the_second_builder_and_releases_the_lock(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    started = _forked(monkeypatch)

    def broken(directory: Path) -> dict:
        raise RuntimeError("boom")

    monkeypatch.setattr("zmi_reconciler.reconcile.preload", broken)
    with pytest.raises(RuntimeError, match="boom"):
        serve_module.serve(settings, threading.Event())
    assert started and started[0] is not None
    assert multiprocessing.active_children() == []  # not left waiting for a reader
    acquire_server_lock(settings).release()  # the lock is free again


def test_a_stop_during_start_up_ends_before_anything_fires_or_listens(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    started = _forked(monkeypatch)
    stop = threading.Event()
    stop.set()  # SIGTERM arrived while the index was being built
    monkeypatch.setattr(serve_module, "_serve_api", lambda *args: pytest.fail("the API must not start"))
    monkeypatch.setattr(Journal, "open", lambda self: pytest.fail("the journal is not read for a stop"))
    settings.database_path.parent.mkdir(parents=True, exist_ok=True)
    settings.database_path.write_bytes(b"this is not an SQLite database" * 100)  # damaged: logged, not fatal
    caplog.set_level(logging.INFO, logger="zmi_reconciler.serve")
    assert serve_module.serve(settings, stop) == 0
    assert started and started[0] is not None
    messages = [r.getMessage() for r in caplog.records]
    assert any("not synchronised" in m for m in messages)
    assert "stopped during start-up" in messages
    assert multiprocessing.active_children() == []
    acquire_server_lock(settings).release()
    monkeypatch.undo()
    journal = Journal(settings.journal_path, index_cache=False)
    assert journal.count_runs("nightly") == 3 and journal.last_run("nightly")["status"] == "succeeded"


def test_a_signal_delivered_twice_at_once_keeps_the_grace_period(monkeypatch: pytest.MonkeyPatch) -> None:
    """A SIGTERM to the process group of `make run` reaches the server twice within milliseconds (make passes
    it on): that is one request to stop. A second signal a second or more later still exits at once."""
    import os
    import signal

    class Exited(Exception):
        pass

    def fake_exit(code: int) -> None:
        raise Exited(code)

    monkeypatch.setattr(os, "_exit", fake_exit)
    monkeypatch.setattr(serve_module, "SECOND_SIGNAL_SECONDS", 0.2)
    monkeypatch.setattr(logging, "shutdown", lambda: None)
    stop = threading.Event()
    restore = serve_module._install_signal_handlers(stop)
    try:
        os.kill(os.getpid(), signal.SIGTERM)
        os.kill(os.getpid(), signal.SIGTERM)  # the duplicate
        assert stop.is_set()
        import time

        time.sleep(0.3)
        with pytest.raises(Exited) as exited:
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(0.1)  # (the handler runs between bytecodes of the main thread)
        assert exited.value.args == (128 + signal.SIGTERM,)
    finally:
        restore()


@pytest.mark.parametrize(("flags", "env", "toml"), [
    ({}, {}, None),
    ({"data_dir": "flagged"}, {"ZMI_DATA_DIR": "from-env"}, 'data_dir = "from-file"\n'),
    ({}, {"ZMI_DATA_DIR": "from-env"}, 'data_dir = "from-file"\njournal_dir = "j2"\n'),
    ({}, {"ZMI_DATA_DIR": ""}, 'data_dir = "from-file"\n'),
    ({}, {}, 'journal_dir = "/srv/zmi/journal"\n'),
    ({"config": "elsewhere.toml"}, {}, None),
], ids=["defaults", "flag wins", "env over file", "empty env ignored", "absolute journal_dir", "named file"])
def test_the_early_journal_guess_is_where_the_settings_put_the_journal(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flags: dict, env: dict, toml: str | None) -> None:
    """run() starts a first index build before it reads the settings (pydantic); its guess of the journal
    folder follows the same precedence as load_settings."""
    import argparse
    import os

    from zmi_reconciler.config import settings_from_args

    monkeypatch.chdir(tmp_path)
    for var in ("ZMI_DATA_DIR", "ZMI_CONFIG"):
        monkeypatch.delenv(var, raising=False)
    for var, value in env.items():
        monkeypatch.setenv(var, value)
    if toml is not None:
        (tmp_path / "zmi-reconciler.toml").write_text(toml)
    if "config" in flags:
        (tmp_path / flags["config"]).write_text('data_dir = "named"\n')
    args = argparse.Namespace(config=flags.get("config"), data_dir=flags.get("data_dir"), schedules_dir=None,
                              host=None, port=None)
    guess = serve_module.journal_path_guess(args, dict(os.environ))
    assert guess is not None and guess == settings_from_args(args).journal_path.absolute()


def test_an_unreadable_settings_file_gives_no_guess(tmp_path: Path) -> None:
    import argparse

    (tmp_path / "bad.toml").write_text("data_dir = [unclosed\n")
    args = argparse.Namespace(config=str(tmp_path / "bad.toml"), data_dir=None)
    assert serve_module.journal_path_guess(args, {}) is None


def test_an_early_build_of_another_folder_is_cancelled_and_the_right_one_started(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A wrong guess (the settings put the journal elsewhere) costs the early build, never a wrong index."""
    other = tmp_path / "other-journal"
    now = datetime.now(timezone.utc)
    journal = Journal(other, index_cache=False, clock=lambda: now)
    for day in range(2):  # two day files
        now += timedelta(days=1)
        journal.append("run_started", schedule="x", run_id=f"x@{day}", trigger="manual")
    early = Journal.start_first_build(other)
    assert early is not None and early.directory == other.absolute()
    started = _forked(monkeypatch)
    stop = threading.Event()
    stop.set()
    assert serve_module.serve(settings, stop, first_build=early) == 0
    assert not early._process.is_alive() and early._conn.closed
    assert len(started) == 1 and started[0] is not None and started[0].directory == settings.journal_path
    assert multiprocessing.active_children() == []
    journal = Journal(settings.journal_path, index_cache=False)
    assert journal.schedule_ids() == ["nightly"] and journal.count_runs("nightly") == 3


def test_run_starts_the_build_before_the_settings_and_serve_uses_it(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI path: the build forked from the guess is the one the journal replays (no second fork)."""
    import argparse

    started = _forked(monkeypatch)
    used: list[object] = []

    def fake_serve(s, stop=None, first_build=None):
        used.append(first_build)
        first_build.cancel()
        return 0

    monkeypatch.setattr(serve_module, "serve", fake_serve)
    monkeypatch.delenv("ZMI_DATA_DIR", raising=False)
    monkeypatch.delenv("ZMI_CONFIG", raising=False)
    args = argparse.Namespace(config=None, data_dir=str(settings.data_dir), schedules_dir=str(settings.schedules_dir),
                              host=None, port=None, log_format=None, log_level="WARNING")
    assert serve_module.run(args) == 0
    assert len(started) == 1 and started[0] is not None and used == started
    assert started[0].directory == settings.journal_path.absolute()


def test_a_restart_loads_the_schedule_files_in_a_second_process(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a first index build (the cache is there) the second CPU loads the schedule files; the first
    reconcile pass takes its results (the file is not loaded again in the server process)."""
    from zmi_reconciler import reconcile

    monkeypatch.setattr(Journal, "PARALLEL_BUILD_BYTES", 1 << 40)  # no first build: a restart
    started: list[object] = []
    real_start = reconcile.Preloading.start.__func__  # type: ignore[attr-defined]

    def spy(cls: type, directory: Path) -> object:
        job = real_start(cls, directory)
        started.append(job)
        return job

    monkeypatch.setattr(reconcile.Preloading, "start", classmethod(spy))
    loaded_here: list[str] = []
    real_load = reconcile.load_schedule_file

    def load_spy(path: Path, **kwargs: object) -> object:
        loaded_here.append(Path(path).name)
        return real_load(path, **kwargs)

    monkeypatch.setattr(reconcile, "load_schedule_file", load_spy)
    stop = threading.Event()
    stop.set()
    assert serve_module.serve(settings, stop) == 0
    assert len(started) == 1 and started[0] is not None
    assert loaded_here == []  # the child loaded nightly.yaml (its load_schedule_file ran there)
    assert multiprocessing.active_children() == []


def test_the_commands_of_runs_closed_as_interrupted_are_stopped_first(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """serve hands the runs of a killed server to run_command.stop_leftovers before it closes them (QA: done in
    a thread after the close, a server stopped within the grace left a command running that no later start
    looked at again), and before anything fires."""
    from zmi_reconciler.runner import Runner

    journal = Journal(settings.journal_path, index_cache=False)
    journal.append("run_started", schedule="nightly", run_id="nightly@killed", trigger="manual", pid=2**22 + 12345)
    journal.close()
    handed: list[tuple[list[str], list[str]]] = []
    monkeypatch.setattr(serve_module, "_stop_leftover_commands",
                        lambda j, ids: handed.append((list(ids), j.orphaned_runs())))
    stop = threading.Event()
    real_seed = Runner.seed

    def seed_then_stop(self):  # stop once the journal is read and the runner seeded: before anything fires
        stop.set()
        return real_seed(self)

    monkeypatch.setattr(Runner, "seed", seed_then_stop)
    assert serve_module.serve(settings, stop) == 0
    assert handed == [(["nightly@killed"], ["nightly@killed"])]  # still open when handed over
    assert Journal(settings.journal_path, index_cache=False).last_run("nightly")["status"] == "interrupted"
