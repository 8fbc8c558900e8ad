"""Reconciler (SPEC 5): add / change / delete / invalid-then-fixed / pause-resume against a recording fake
runner, unchanged schedules untouched (no apply, next fire unchanged), editor temp files ignored, a folder that
disappears, and a real watchfiles round trip."""

from __future__ import annotations

import os
import shutil
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from zmi_reconciler import timing
from zmi_reconciler.config import Settings
from zmi_reconciler.journal import Journal
from zmi_reconciler.reconcile import Change, Reconciler

NOW = datetime(2026, 3, 28, 12, 0, tzinfo=timezone.utc)

NIGHTLY = """\
name: Nightly processing
timing: {type: daily, at: "05:00"}
tasks:
  - task: calculate_days
"""
ALIVE = """\
# heartbeat
name: Alive
timing:
  type: minutes
  every: 5
tasks:
  - task: alive_check
"""
BROKEN_NIGHTLY = """\
name: Nightly processing
timing: {type: daily, at: "25:00"}
tasks:
  - task: calculate_days
"""


class FakeRunner:
    """Records apply/remove calls and the next fire each applied schedule would have (from the timing math)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        self.schedules: dict[str, Any] = {}
        self.next_fire: dict[str, datetime | None] = {}
        self.paused_since: dict[str, Any] = {}  # applied with paused_since

    def apply(self, schedule_id: str, schedule: Any, content_hash: str, paused_since: Any = None) -> None:
        self.calls.append(("apply", schedule_id, content_hash))
        if paused_since is not None:
            self.paused_since[schedule_id] = paused_since
        self.schedules[schedule_id] = schedule
        self.next_fire[schedule_id] = timing.next_fire(schedule.timing, ZoneInfo("Europe/Berlin"), NOW)

    def remove(self, schedule_id: str) -> None:
        self.calls.append(("remove", schedule_id, None))
        self.schedules.pop(schedule_id, None)
        self.next_fire.pop(schedule_id, None)


@pytest.fixture()
def env(tmp_path: Path) -> tuple[Path, FakeRunner, Journal, Reconciler]:
    folder = tmp_path / "schedules.d"
    folder.mkdir()
    settings = Settings(data_dir=tmp_path / "var", schedules_dir=folder)
    runner = FakeRunner()
    journal = Journal(tmp_path / "var" / "journal", clock=lambda: NOW)
    return folder, runner, journal, Reconciler(settings, runner, journal, clock=lambda: NOW)


def _events(journal: Journal, *names: str) -> list[dict[str, Any]]:
    return [e for e in journal.iter_events() if not names or e["event"] in names]


def test_held_journal_events_are_written_in_order_when_released(env) -> None:
    """serve reconciles before the journal is read: the pass's events wait (hold_writes) and follow what the
    journal's open records (release_writes), in the order they happened; later ones are written at once."""
    folder, runner, journal, rec = env
    (folder / "nightly.yaml").write_text(NIGHTLY)
    (folder / "broken.yaml").write_text("name: [\n")
    rec.hold_writes()
    assert rec.reconcile_all() == [Change("broken", "invalid"), Change("nightly", "loaded")]
    (folder / "alive.yaml").write_text(ALIVE)
    rec.reconcile_all()
    assert _events(journal) == [] and sorted(runner.schedules) == ["alive", "nightly"]
    journal.append("run_interrupted", schedule="nightly", run_id="nightly@old")  # what the open writes first
    rec.release_writes()
    rec.release_writes()  # idempotent
    assert [(e["event"], e["schedule"]) for e in _events(journal)] == [
        ("run_interrupted", "nightly"), ("schedule_invalid", "broken"), ("schedule_loaded", "nightly"),
        ("schedule_loaded", "alive")]
    (folder / "alive.yaml").unlink()
    rec.reconcile_all()
    assert _events(journal)[-1]["event"] == "schedule_removed"


def test_initial_load_applies_every_valid_file_and_journals_it(env) -> None:
    folder, runner, journal, rec = env
    (folder / "nightly.yaml").write_text(NIGHTLY)
    (folder / "alive.yml").write_text(ALIVE)
    assert not rec.ready
    changes = rec.reconcile_all()
    assert rec.ready
    assert changes == [Change("alive", "loaded"), Change("nightly", "loaded")]
    assert sorted(c[1] for c in runner.calls if c[0] == "apply") == ["alive", "nightly"]
    states = rec.states()
    assert set(states) == {"alive", "nightly"}
    st = states["nightly"]
    assert st.schedule is not None and st.schedule.name == "Nightly processing"
    assert not st.degraded and st.findings == () and st.running
    assert st.file == folder / "nightly.yaml"
    assert st.content_hash == st.file_hash
    assert st.loaded_at == NOW
    loaded = _events(journal, "schedule_loaded")
    assert [(e["schedule"], e["file"], e["enabled"]) for e in loaded] == [
        ("alive", str(folder / "alive.yml"), True), ("nightly", str(folder / "nightly.yaml"), True)]
    assert loaded[1]["content_hash"] == st.content_hash
    # A second pass without edits does nothing at all.
    assert rec.reconcile_all() == []
    assert len(runner.calls) == 2


def test_preloading_in_a_second_process_gives_what_preload_gives(tmp_path: Path) -> None:
    """serve's restart path loads the schedule files in a forked child; the parent gets the same results
    (schedule models with their task entry classes, findings with positions, hashes, bytes, Path files)."""
    from zmi_reconciler.reconcile import Preloading, preload

    folder = tmp_path / "schedules.d"
    folder.mkdir()
    (folder / "nightly.yaml").write_text(NIGHTLY)
    (folder / "alive.yaml").write_text(ALIVE)
    (folder / "broken.yaml").write_text("name: Broken\ntiming: {type: daily, at: \"25:00\"}\ntasks: []\n")
    here = preload(folder)
    job = Preloading.start(folder)
    assert job is not None
    there = job.result()
    assert there is not None and sorted(there) == sorted(here)
    for path, result in here.items():
        other = there[path]
        assert isinstance(other.file, Path) and other.file == result.file
        assert (other.schedule, other.findings, other.content_hash, other.data, other.positions) == (
            result.schedule, result.findings, result.content_hash, result.data, result.positions)
    assert there[str(folder / "broken.yaml")].schedule is None and there[str(folder / "broken.yaml")].errors
    assert type(there[str(folder / "nightly.yaml")].schedule.tasks[0]).__name__ == "Task_calculate_days"
    missing = Preloading.start(tmp_path / "missing")
    assert missing is not None and missing.result() == {}


def test_a_failed_preloading_child_means_loading_here(tmp_path: Path, monkeypatch, caplog) -> None:
    import multiprocessing

    from zmi_reconciler import reconcile as reconcile_module

    def crash(conn: Any, directory: str, parent_end: Any) -> None:
        parent_end.close()
        conn.close()  # dies without sending anything
        raise SystemExit(3)

    monkeypatch.setattr(reconcile_module, "_preload_child", crash)
    job = reconcile_module.Preloading.start(tmp_path)
    assert job is not None and job.result() is None
    assert "loading them here" in caplog.text
    assert multiprocessing.active_children() == []


def test_preloaded_results_are_used_while_the_file_is_unchanged(tmp_path: Path, monkeypatch) -> None:
    """``serve`` loads the files before the runner exists (``preload``); the first pass takes those results,
    but reads a file again that changed in between, and a file added in between is loaded as usual."""
    from zmi_reconciler import reconcile as reconcile_module
    from zmi_reconciler.reconcile import preload

    folder = tmp_path / "schedules.d"
    folder.mkdir()
    (folder / "nightly.yaml").write_text(NIGHTLY)
    (folder / "alive.yaml").write_text(ALIVE)
    (folder / ".hidden.yaml").write_text(NIGHTLY)
    (folder / "notes.txt").write_text("x")
    an_hour_ago = time.time() - 3600
    os.utime(folder / "nightly.yaml", (an_hour_ago, an_hour_ago))  # not "racy": its stat can be trusted
    preloaded = preload(folder)
    assert sorted(Path(p).name for p in preloaded) == ["alive.yaml", "nightly.yaml"]
    assert preload(tmp_path / "missing") == {}
    (folder / "alive.yaml").write_text(ALIVE.replace("every: 5", "every: 10"))  # a git pull in between
    (folder / "backup.yaml").write_text(NIGHTLY.replace("Nightly processing", "Backup"))
    loaded: list[str] = []
    real_load = reconcile_module.load_schedule_file

    def spy(path: Path, **kwargs: Any) -> Any:
        loaded.append(path.name)
        return real_load(path, **kwargs)

    monkeypatch.setattr(reconcile_module, "load_schedule_file", spy)
    runner = FakeRunner()
    rec = Reconciler(Settings(data_dir=tmp_path / "var", schedules_dir=folder), runner,
                     Journal(tmp_path / "var" / "journal", clock=lambda: NOW), clock=lambda: NOW, preloaded=preloaded)
    opened: list[str] = []
    real_open = os.open

    def open_spy(path: Any, *args: Any, **kwargs: Any) -> int:
        opened.append(os.path.basename(str(path)))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr(os, "open", open_spy)
    assert rec.reconcile_all() == [Change("alive", "loaded"), Change("backup", "loaded"), Change("nightly", "loaded")]
    monkeypatch.setattr(os, "open", real_open)
    assert sorted(loaded) == ["alive.yaml", "backup.yaml"]  # nightly came from the preload
    assert "nightly.yaml" not in opened and "alive.yaml" in opened  # not even read again to hash it
    assert runner.schedules["alive"].timing.every == 10
    assert rec.state("nightly").schedule.name == "Nightly processing"  # type: ignore[union-attr]
    (folder / "nightly.yaml").write_text(NIGHTLY.replace("05:00", "05:30"))
    assert rec.reconcile_all() == [Change("nightly", "updated")]  # later edits: read as always
    assert loaded[-1] == "nightly.yaml"


def test_add_change_delete_leave_unchanged_schedule_untouched(env) -> None:
    folder, runner, journal, rec = env
    (folder / "nightly.yaml").write_text(NIGHTLY)
    rec.reconcile_all()
    nightly_fire = runner.next_fire["nightly"]
    assert nightly_fire == datetime(2026, 3, 29, 3, 0, tzinfo=timezone.utc)  # 05:00 CEST on the change day
    runner.calls.clear()

    (folder / "alive.yaml").write_text(ALIVE)  # add
    assert rec.reconcile_all() == [Change("alive", "loaded")]
    assert [c[:2] for c in runner.calls] == [("apply", "alive")]

    (folder / "alive.yaml").write_text(ALIVE.replace("every: 5", "every: 10"))  # change
    assert rec.reconcile_all() == [Change("alive", "updated")]
    assert runner.schedules["alive"].timing.every == 10
    updated = _events(journal, "schedule_updated")
    assert len(updated) == 1
    assert updated[0]["previous_hash"] != updated[0]["content_hash"]
    assert updated[0]["content_hash"] == rec.state("alive").content_hash  # type: ignore[union-attr]

    (folder / "alive.yaml").unlink()  # delete
    assert rec.reconcile_all() == [Change("alive", "removed")]
    assert runner.calls[-1] == ("remove", "alive", None)
    assert "alive" not in rec.states()
    assert [e["schedule"] for e in _events(journal, "schedule_removed")] == ["alive"]

    # The unchanged schedule was never re-applied, so its next fire did not move.
    assert [c for c in runner.calls if c[1] == "nightly"] == []
    assert runner.next_fire["nightly"] == nightly_fire


def test_invalid_file_keeps_last_good_version_until_fixed(env) -> None:
    folder, runner, journal, rec = env
    path = folder / "nightly.yaml"
    path.write_text(NIGHTLY)
    rec.reconcile_all()
    good = rec.state("nightly")
    assert good is not None and good.content_hash
    runner.calls.clear()

    path.write_text(BROKEN_NIGHTLY)
    assert rec.reconcile_all() == [Change("nightly", "invalid")]
    assert runner.calls == []  # the last good version keeps running
    st = rec.state("nightly")
    assert st is not None
    assert st.degraded and st.running
    assert st.content_hash == good.content_hash and st.file_hash != good.content_hash
    assert st.schedule.timing.at == "05:00"  # type: ignore[union-attr]
    assert [f.path for f in st.findings if f.severity == "error"] == ["timing.at"]
    invalid = _events(journal, "schedule_invalid")
    assert len(invalid) == 1
    assert (invalid[0]["file"], invalid[0]["line"], invalid[0]["path"]) == (str(path), 2, "timing.at")
    assert invalid[0]["column"] == 27 and invalid[0]["code"] == "E020"
    assert "HH:MM" in invalid[0]["message"] and "25:00" in invalid[0]["message"]
    assert [e["path"] for e in invalid[0]["errors"]] == ["timing.at"]
    assert invalid[0]["running_hash"] == good.content_hash
    assert rec.reconcile_all() == []  # the same broken content is journaled once

    path.write_text(NIGHTLY.replace("05:00", "05:30"))  # fixed (with a new time)
    assert rec.reconcile_all() == [Change("nightly", "updated")]
    st = rec.state("nightly")
    assert st is not None and not st.degraded and st.findings == ()
    assert runner.calls == [("apply", "nightly", st.content_hash)]
    assert runner.schedules["nightly"].timing.at == "05:30"


def test_fixing_back_to_the_running_content_clears_degraded_without_apply(env) -> None:
    folder, runner, journal, rec = env
    path = folder / "nightly.yaml"
    path.write_text(NIGHTLY)
    rec.reconcile_all()
    path.write_text(BROKEN_NIGHTLY)
    rec.reconcile_all()
    runner.calls.clear()
    path.write_text(NIGHTLY)
    assert rec.reconcile_all() == [Change("nightly", "updated")]
    assert runner.calls == []
    assert not rec.state("nightly").degraded  # type: ignore[union-attr]
    assert _events(journal, "schedule_updated")[-1]["degraded_cleared"] is True


def test_never_valid_file_is_not_run_and_loads_once_fixed(env) -> None:
    folder, runner, journal, rec = env
    (folder / "nightly.yaml").write_text(BROKEN_NIGHTLY)
    assert rec.reconcile_all() == [Change("nightly", "invalid")]
    st = rec.state("nightly")
    assert st is not None and st.degraded and not st.running and st.content_hash is None
    assert runner.calls == []
    assert _events(journal, "schedule_invalid")[0]["running_hash"] is None
    (folder / "nightly.yaml").write_text(NIGHTLY)
    assert rec.reconcile_all() == [Change("nightly", "loaded")]
    assert [c[:2] for c in runner.calls] == [("apply", "nightly")]
    # Deleting a never-valid file removes nothing from the runner.
    (folder / "other.yaml").write_text("name: [unclosed\n")
    rec.reconcile_all()
    (folder / "other.yaml").unlink()
    assert rec.reconcile_all() == []
    assert "other" not in rec.states()
    assert ("remove", "other", None) not in runner.calls


def test_pause_and_resume_are_journaled_and_applied(env) -> None:
    folder, runner, journal, rec = env
    path = folder / "nightly.yaml"
    path.write_text(NIGHTLY)
    rec.reconcile_all()
    path.write_text("enabled: false\n" + NIGHTLY)
    assert rec.reconcile_all() == [Change("nightly", "paused")]
    assert runner.schedules["nightly"].enabled is False
    path.write_text("enabled: true\n" + NIGHTLY)
    assert rec.reconcile_all() == [Change("nightly", "resumed")]
    assert runner.schedules["nightly"].enabled is True
    # Pausing and changing the time at once says both.
    path.write_text("enabled: false\n" + NIGHTLY.replace("05:00", "06:00"))
    assert rec.reconcile_all() == [Change("nightly", "paused"), Change("nightly", "updated")]
    assert [e["event"] for e in _events(journal) if e["event"] != "schedule_loaded"] == [
        "schedule_paused", "schedule_resumed", "schedule_paused", "schedule_updated"]
    assert len([c for c in runner.calls if c[0] == "apply"]) == 4


def test_editor_files_are_ignored_and_duplicates_are_invalid(env) -> None:
    folder, runner, journal, rec = env
    (folder / "nightly.yaml").write_text(NIGHTLY)
    for junk in (".nightly.yaml.swp", "nightly.yaml~", ".#nightly.yaml", "4913", "notes.txt", ".hidden.yaml"):
        (folder / junk).write_text("garbage: [")
    (folder / "sub").mkdir()
    (folder / "sub" / "x.yaml").write_text(NIGHTLY)
    assert rec.reconcile_all() == [Change("nightly", "loaded")]
    assert set(rec.states()) == {"nightly"}

    (folder / "nightly.yml").write_text(NIGHTLY)
    assert rec.reconcile_all() == [Change("nightly", "invalid")]
    st = rec.state("nightly")
    assert st is not None and st.degraded and st.running
    assert {f.code for f in st.findings} == {"E030"}
    assert rec.reconcile_all() == []
    (folder / "nightly.yml").unlink()
    assert rec.reconcile_all() == [Change("nightly", "updated")]
    assert not rec.state("nightly").degraded  # type: ignore[union-attr]
    assert [c[0] for c in runner.calls] == ["apply"]


def test_rename_with_same_content_changes_nothing_but_the_file(env) -> None:
    folder, runner, journal, rec = env
    (folder / "nightly.yaml").write_text(NIGHTLY)
    rec.reconcile_all()
    os.rename(folder / "nightly.yaml", folder / "nightly.yml")
    assert rec.reconcile_all() == []
    assert rec.state("nightly").file == folder / "nightly.yml"  # type: ignore[union-attr]
    assert len(runner.calls) == 1


def test_same_size_rewrite_within_timestamp_granularity_is_seen(env) -> None:
    folder, runner, journal, rec = env
    path = folder / "nightly.yaml"
    path.write_text(NIGHTLY)
    rec.reconcile_all()
    st = os.stat(path)
    path.write_text(NIGHTLY.replace("05:00", "06:00"))  # same size
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))  # and the same mtime
    assert rec.reconcile_all() == [Change("nightly", "updated")]


def test_missing_folder_keeps_schedules_and_comes_back(env, caplog: pytest.LogCaptureFixture) -> None:
    folder, runner, journal, rec = env
    (folder / "nightly.yaml").write_text(NIGHTLY)
    rec.reconcile_all()
    shutil.rmtree(folder)
    assert rec.reconcile_all() == []
    assert rec.folder_missing
    assert "nightly" in rec.states() and runner.calls == [runner.calls[0]]
    folder.mkdir()
    (folder / "alive.yaml").write_text(ALIVE)
    assert rec.reconcile_all() == [Change("alive", "loaded"), Change("nightly", "removed")]
    assert not rec.folder_missing


class _Broken(FakeRunner):
    def apply(self, schedule_id: str, schedule: Any, content_hash: str, paused_since: Any = None) -> None:
        if schedule_id == "bad":
            raise RuntimeError("runner bug")
        super().apply(schedule_id, schedule, content_hash, paused_since)


def test_a_failing_schedule_does_not_stop_the_others(tmp_path: Path) -> None:
    folder = tmp_path / "s"
    folder.mkdir()
    (folder / "bad.yaml").write_text(NIGHTLY)
    (folder / "good.yaml").write_text(NIGHTLY)
    runner = _Broken()
    rec = Reconciler(Settings(data_dir=tmp_path, schedules_dir=folder), runner,
                     Journal(tmp_path / "j", clock=lambda: NOW), clock=lambda: NOW)
    assert rec.reconcile_all() == [Change("good", "loaded")]
    assert list(runner.schedules) == ["good"]


def _wait_for(predicate, deadline: float = 10.0) -> bool:
    end = time.monotonic() + deadline
    while time.monotonic() < end:
        if predicate():
            return True
        time.sleep(0.02)
    return predicate()


def test_watch_applies_edits_and_survives_folder_recreation(env) -> None:
    folder, runner, journal, rec = env
    (folder / "nightly.yaml").write_text(NIGHTLY)
    stop = threading.Event()
    thread = threading.Thread(target=rec.watch, args=(stop,), daemon=True)
    thread.start()
    try:
        assert _wait_for(lambda: "nightly" in runner.schedules)
        (folder / "nightly.yaml").write_text(NIGHTLY.replace("05:00", "04:15"))
        assert _wait_for(lambda: runner.schedules["nightly"].timing.at == "04:15")
        (folder / ".nightly.yaml.swp").write_text("junk")  # ignored
        (folder / "alive.yaml").write_text(ALIVE)
        assert _wait_for(lambda: "alive" in runner.schedules)

        shutil.rmtree(folder)  # the folder goes away ...
        assert _wait_for(lambda: rec.folder_missing)
        assert set(runner.schedules) == {"alive", "nightly"}  # ... schedules keep running
        folder.mkdir()  # ... and comes back with other content
        (folder / "alive.yaml").write_text(ALIVE.replace("every: 5", "every: 15"))
        assert _wait_for(lambda: set(runner.schedules) == {"alive"} and runner.schedules["alive"].timing.every == 15)
        (folder / "nightly.yaml").write_text(NIGHTLY)  # and the new folder is watched
        assert _wait_for(lambda: "nightly" in runner.schedules)
        assert thread.is_alive()
    finally:
        stop.set()
        thread.join(timeout=10)
    assert not thread.is_alive()


def test_watch_after_a_pass_of_the_caller_skips_its_first_pass_but_not_an_edit(env, monkeypatch) -> None:
    """serve reconciles before it starts the watcher: the watcher does not read every file again at once, and an
    edit made between the caller's pass and the watcher's start is still applied (first wake-up)."""
    folder, runner, journal, rec = env
    (folder / "nightly.yaml").write_text(NIGHTLY)
    rec.reconcile_all()
    passes: list[float] = []
    original = rec.reconcile_all

    def counted():
        passes.append(time.monotonic())
        return original()

    monkeypatch.setattr(rec, "reconcile_all", counted)
    (folder / "nightly.yaml").write_text(NIGHTLY.replace("05:00", "04:15"))  # before the watcher exists
    started = time.monotonic()
    stop = threading.Event()
    thread = threading.Thread(target=rec.watch, args=(stop,), kwargs={"reconciled": True}, daemon=True)
    thread.start()
    try:
        assert _wait_for(lambda: runner.schedules["nightly"].timing.at == "04:15")
        assert passes and passes[0] - started >= 0.2  # the first pass is the watcher's wake-up (250 ms tick)
    finally:
        stop.set()
        thread.join(timeout=10)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs os.mkfifo")
def test_fifo_in_folder_is_flagged_without_blocking(env) -> None:
    """open() on a FIFO blocks until a writer comes; the reconciler thread (and with it the API) must not."""
    folder, runner, journal, rec = env
    (folder / "nightly.yaml").write_text(NIGHTLY)
    os.mkfifo(folder / "fifo.yaml")
    out: list[list[Change]] = []
    worker = threading.Thread(target=lambda: out.append(rec.reconcile_all()), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert not worker.is_alive(), "reconcile_all blocked on a FIFO"
    assert out[0] == [Change("fifo", "invalid"), Change("nightly", "loaded")]
    fifo = rec.state("fifo")
    assert fifo is not None and fifo.degraded and not fifo.running
    assert [f.code for f in fifo.findings] == ["E015"]
    assert [c[:2] for c in runner.calls] == [("apply", "nightly")]
    assert rec.reconcile_all() == []  # flagged once, not on every pass
    assert [e["code"] for e in _events(journal, "schedule_invalid")] == ["E015"]


def test_unchanged_invalid_file_is_journaled_once(env, tmp_path) -> None:
    """A symlink out of the folder (E004) is not read by the loader, so its hash never matched the reconciler's
    read and ``schedule_invalid`` was journaled on every pass."""
    folder, runner, journal, rec = env
    outside = tmp_path / "outside.yaml"
    outside.write_text(NIGHTLY)
    (folder / "escape.yaml").symlink_to(outside)
    (folder / "broken.yaml").write_text(BROKEN_NIGHTLY)
    assert rec.reconcile_all() == [Change("broken", "invalid"), Change("escape", "invalid")]
    for _ in range(3):
        assert rec.reconcile_all() == []
    invalid = _events(journal, "schedule_invalid")
    assert sorted((e["schedule"], e["code"]) for e in invalid) == [("broken", "E020"), ("escape", "E004")]
    assert runner.calls == []
    # A change of the findings is journaled again.
    (folder / "broken.yaml").write_text(BROKEN_NIGHTLY.replace("25:00", "26:00"))
    assert rec.reconcile_all() == [Change("broken", "invalid")]
    assert len(_events(journal, "schedule_invalid")) == 3


def test_one_pass_journals_its_events_in_one_batch_in_order(env) -> None:
    folder, runner, journal, rec = env
    (folder / "nightly.yaml").write_text(NIGHTLY)
    (folder / "alive.yml").write_text(ALIVE)
    (folder / "broken.yaml").write_text(BROKEN_NIGHTLY)
    batches: list[list[str]] = []
    singles: list[str] = []
    append_many, append = journal.append_many, journal.append

    def spy_many(events):
        events = list(events)
        batches.append([f"{e}:{f['schedule']}" for e, f in events])
        return append_many(events)

    def spy_one(event, **fields):
        singles.append(f"{event}:{fields['schedule']}")
        return append(event, **fields)

    journal.append_many, journal.append = spy_many, spy_one  # type: ignore[method-assign]
    rec.reconcile_all()
    assert batches == [["schedule_loaded:alive", "schedule_invalid:broken", "schedule_loaded:nightly"]]
    assert singles == []
    assert [f"{e['event']}:{e['schedule']}" for e in _events(journal)] == batches[0]
    # A batch that fails is retried event by event, so the others are still recorded.
    (folder / "alive.yml").unlink()
    (folder / "nightly.yaml").unlink()

    def failing_many(events):
        raise OSError("disk full")

    journal.append_many = failing_many  # type: ignore[method-assign]
    rec.reconcile_all()
    assert singles == ["schedule_removed:alive", "schedule_removed:nightly"]
    assert [e["event"] for e in _events(journal)][-2:] == ["schedule_removed", "schedule_removed"]
