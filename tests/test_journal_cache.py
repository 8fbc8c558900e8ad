"""Journal index cache (``<journal_dir>/.index/``): an open that replays the cache answers every query exactly as
an open that reads every line (``index_cache=False``), after appends by another process, a torn last line,
retention, rewritten files, corrupt or foreign-version entries and runs that cannot be replayed per file.
Clocks are injected; nothing sleeps."""

from __future__ import annotations

import logging
import multiprocessing
import os
import random
import shutil
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from collections.abc import Callable
from typing import Any

import msgspec
import pytest

from zmi_reconciler import journal as journal_module
from zmi_reconciler.journal import Journal

T0 = datetime(2026, 3, 27, 22, 0, tzinfo=timezone.utc)
DEAD_PID = 2**22 + 12345  # above the usual pid_max: never a live process


class Clock:
    def __init__(self, now: datetime = T0) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def advance(self, **delta: float) -> None:
        self.now += timedelta(**delta)


def answers(journal: Journal) -> dict[str, Any]:
    """Every query answer of ``journal`` (all schedules, all runs with tasks and logs)."""
    out: dict[str, Any] = {"schedule_ids": journal.schedule_ids()}
    run_ids: list[str] = []
    for sid in out["schedule_ids"]:
        everything = journal.runs(sid, per_page=10_000)
        run_ids += [run["run_id"] for run in everything]
        out[sid] = {
            "runs": everything,
            "pages": [journal.runs(sid, page=p, per_page=2) for p in (1, 2, 3)],
            "succeeded": journal.runs(sid, status="succeeded", per_page=3),
            "not_running": journal.runs(sid, status=["failed", "interrupted", "partial"], page=2, per_page=1),
            "count": journal.count_runs(sid),
            "count_failed": journal.count_runs(sid, status="failed"),
            "last_run": journal.last_run(sid),
            "last_run_details": journal.last_run(sid, details=True),
            "last_slot": journal.last_slot(sid),
            "last_success": journal.last_success(sid),
            "running_since": journal.running_since(sid),
        }
    out["get_run"] = {rid: journal.get_run(rid) for rid in sorted(set(run_ids))}
    out["open"] = sorted((run.run_id, run.pid, run.positions[0]) for run in journal._runs.values()
                         if run.status == journal_module.RUNNING)
    return out


def assert_same(directory: Path, clock: Clock, **kwargs: Any) -> Journal:
    """Open ``directory`` cold and cached; both answer the same; returns the cached one."""
    cold = Journal(directory, clock=clock, index_cache=False, **kwargs)
    cached = Journal(directory, clock=clock, **kwargs)
    expected = answers(cold)
    assert answers(cached) == expected
    assert expected["schedule_ids"]  # not trivially equal
    return cached


def _run(journal: Journal, clock: Clock, schedule: str, status: str | None, trigger: str = "scheduled",
         tasks: int = 2, pid: int | None = None) -> str:
    """One run; ``status`` None leaves it running (no run_finished)."""
    slot = clock().replace(second=0, microsecond=0)
    run_id = f"{schedule}@{clock():%Y%m%dT%H%M%S%f}"
    fields: dict[str, Any] = {"pid": pid} if pid is not None else {}
    journal.append("run_started", schedule=schedule, run_id=run_id, trigger=trigger,
                   scheduled_for=slot if trigger != "manual" else None, content_hash="h1", **fields)
    for index in range(tasks):
        journal.append("task_started", schedule=schedule, run_id=run_id, index=index, task="calculate_days")
        clock.advance(seconds=20)
        journal.append("task_log", schedule=schedule, run_id=run_id, index=index, task="calculate_days",
                       level="info", message=f"batch {index}")
        if status is not None:
            journal.append("task_finished", schedule=schedule, run_id=run_id, index=index, task="calculate_days",
                           status="succeeded" if status == "succeeded" else "failed", duration_ms=20000,
                           result={"days": index}, error=None)
    if status is not None:
        clock.advance(seconds=1)
        journal.append("run_finished", schedule=schedule, run_id=run_id, status=status)
    clock.advance(minutes=7)
    return run_id


def _history(directory: Path, clock: Clock) -> Journal:
    """Three UTC days: runs across midnight, skipped/missed slots, manual runs, failures, an open run."""
    journal = Journal(directory, clock=clock, index_cache=False)
    statuses = ["succeeded", "failed", "succeeded", "partial"]
    for n in range(40):
        sid = ("nightly", "hourly", "manual")[n % 3]
        _run(journal, clock, sid, statuses[n % 4], trigger="manual" if sid == "manual" else "scheduled")
        if n % 7 == 0:
            journal.append("run_skipped", schedule="hourly", run_id=f"hourly@skip{n}", trigger="scheduled",
                           scheduled_for=clock() + timedelta(minutes=1), reason="overlap")
        if n % 11 == 0:
            journal.append("run_missed", schedule="quiet", scheduled_for=clock() - timedelta(hours=1))
        clock.advance(hours=1, minutes=13)
    _run(journal, clock, "nightly", None, pid=DEAD_PID)  # crashed mid-run
    journal.close()
    return journal


def _history_with_entries(directory: Path) -> tuple[Clock, list[Path]]:
    """:func:`_history` plus the cache entries a cached open writes for it (sorted by day)."""
    clock = Clock()
    _history(directory, clock)
    Journal(directory, clock=clock).close()
    return clock, sorted((directory / ".index").glob("*.idx"))


def _spy_fits(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """Record what :meth:`Journal._fits` answers for each entry of a second builder, in order."""
    fits: list[bool] = []
    real_fits = Journal._fits

    def spy(self: Journal, entry: Any) -> bool:
        fits.append(real_fits(self, entry))
        return fits[-1]

    monkeypatch.setattr(Journal, "_fits", spy)
    return fits


def _entries(directory: Path) -> dict[str, int]:
    return {p.name: p.stat().st_mtime_ns for p in sorted((directory / ".index").glob("*.idx"))}


def test_cached_open_answers_like_a_cold_open_and_replays_entries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    _history(tmp_path, clock)
    days = sorted(p.name for p in tmp_path.glob("*.jsonl"))
    assert len(days) >= 3
    first = Journal(tmp_path, clock=clock)  # builds from the lines, writes the entries
    assert sorted(_entries(tmp_path)) == [d.replace(".jsonl", ".idx") for d in days]
    read: list[str] = []
    real_read_new = Journal._read_new

    def spy(self: Journal, state: Any) -> None:
        before = state.offset
        real_read_new(self, state)
        if state.offset != before:
            read.append(state.path.name)

    expected = answers(Journal(tmp_path, clock=clock, index_cache=False))
    monkeypatch.setattr(Journal, "_read_new", spy)
    cached = Journal(tmp_path, clock=clock)
    assert read == []  # every file came from its entry
    assert answers(cached) == expected == answers(first)
    # the cache folder is not a journal file: full scans see the same events
    assert list(cached.iter_events()) == list(Journal(tmp_path, clock=clock, index_cache=False).iter_events())


def test_appends_by_another_process_are_read_from_the_cached_offset(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    clock = Clock()
    _history(tmp_path, clock)
    Journal(tmp_path, clock=clock).close()
    before = _entries(tmp_path)
    ctx = multiprocessing.get_context("fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn")
    proc = ctx.Process(target=_other_process, args=(str(tmp_path), clock.now))
    proc.start()
    proc.join(timeout=60)
    assert proc.exitcode == 0
    assert _entries(tmp_path) == before  # that process wrote no entry (index_cache off)
    last_day = sorted(tmp_path.glob("*.jsonl"))[-1]
    read: list[tuple[str, int]] = []
    real_read_new = Journal._read_new

    def spy(self: Journal, state: Any) -> None:
        start = state.offset
        real_read_new(self, state)
        if state.offset != start:
            read.append((state.path.name, start))

    expected = answers(Journal(tmp_path, clock=clock, index_cache=False))
    monkeypatch.setattr(Journal, "_read_new", spy)
    cached = Journal(tmp_path, clock=clock)
    assert answers(cached) == expected
    assert [name for name, _ in read] == [last_day.name]  # only the grown file,
    assert read[0][1] > 0  # from where its entry ended
    assert cached.last_run("other")["status"] == "succeeded"  # type: ignore[index]
    read.clear()  # the open wrote the grown file's entry again: the next open reads nothing
    assert answers(Journal(tmp_path, clock=clock)) == expected
    assert read == []


def _other_process(directory: str, now: datetime) -> None:
    clock = Clock(now)
    journal = Journal(Path(directory), clock=clock, index_cache=False)
    _run(journal, clock, "other", "succeeded")
    _run(journal, clock, "nightly", "failed")
    journal.append("run_missed", schedule="quiet", scheduled_for=clock() + timedelta(days=1))


def test_torn_last_line_then_completed_by_a_later_append(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    journal = _history(tmp_path, clock)
    Journal(tmp_path, clock=clock).close()
    path = sorted(tmp_path.glob("*.jsonl"))[-1]
    whole = (b'{"ts":"2026-03-30T03:00:00.000Z","event":"run_started","schedule":"torn","run_id":"torn@1",'
             b'"trigger":"manual"}')
    with open(path, "ab") as handle:
        handle.write(whole[:40])
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    cached = assert_same(tmp_path, clock)
    torn = [r.getMessage() for r in caplog.records if "incomplete last line" in r.getMessage()]
    assert len(torn) == 2 and torn[0] == torn[1]  # cold and cached warn alike
    assert cached.count_runs("torn") == 0
    # the torn line's key (bigger file) was saved with the offset before it; a later append ends the torn line
    journal.append("run_started", schedule="late", run_id="late@1", trigger="manual")
    journal.close()
    cached = assert_same(tmp_path, clock)
    assert cached.last_run("late")["status"] == "running"  # type: ignore[index]


def test_close_interrupted_after_a_cached_open_matches_a_cold_open(tmp_path: Path) -> None:
    clock = Clock()
    journal = _history(tmp_path, clock)
    _run(journal, clock, "cli", None, trigger="manual", pid=os.getppid())  # a live process: left alone
    Journal(tmp_path, clock=clock).close()
    cold_dir, warm_dir = tmp_path / "cold", tmp_path / "warm"
    for target in (cold_dir, warm_dir):
        shutil.copytree(tmp_path, target, ignore=shutil.ignore_patterns("cold", "warm"))
    shutil.rmtree(cold_dir / ".index")
    assert (warm_dir / ".index").is_dir()
    cold = Journal(cold_dir, clock=clock, index_cache=False)
    warm = Journal(warm_dir, clock=clock)
    closed = cold.close_interrupted()
    assert closed and warm.close_interrupted() == closed
    assert all(not rid.startswith("cli@") for rid in closed)
    assert answers(warm) == answers(cold)
    assert answers(Journal(warm_dir, clock=clock)) == answers(Journal(cold_dir, clock=clock, index_cache=False))


def test_retention_deletes_entries_with_their_files(tmp_path: Path) -> None:
    clock = Clock()
    journal = _history(tmp_path, clock)
    cached = Journal(tmp_path, clock=clock, retention_days=1)
    days = sorted(p.name for p in tmp_path.glob("*.jsonl"))
    deleted = cached.apply_retention()
    assert deleted and all(p.name in days for p in deleted)
    assert sorted(_entries(tmp_path)) == sorted(d.replace(".jsonl", ".idx") for d in days
                                                if tmp_path / d not in deleted)
    reopened = assert_same(tmp_path, clock, retention_days=1)
    assert reopened.schedule_ids()
    # Retention by another process (file gone, entry left behind): the entry is ignored and swept.
    del journal
    clock.advance(days=1)
    victim = sorted(tmp_path.glob("*.jsonl"))[0]
    victim.unlink()
    assert victim.name.replace(".jsonl", ".idx") in _entries(tmp_path)
    assert_same(tmp_path, clock)
    assert victim.name.replace(".jsonl", ".idx") not in _entries(tmp_path)


def test_rewritten_or_replaced_file_is_read_in_full(tmp_path: Path) -> None:
    clock = Clock()
    _history(tmp_path, clock)
    Journal(tmp_path, clock=clock).close()
    path = sorted(tmp_path.glob("*.jsonl"))[1]
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:-5]))  # shrank (same inode)
    assert_same(tmp_path, clock)
    replacement = path.with_suffix(".new")
    replacement.write_bytes(b"".join(lines[:-9] + lines[-9:-8] * 3))  # new inode, grown past the entry
    os.replace(replacement, path)
    assert_same(tmp_path, clock)
    data = bytearray(path.read_bytes())  # same size and inode, changed before the entry's offset
    data[-20:-19] = b"X" if data[-20:-19] != b"X" else b"Y"
    with open(path, "r+b") as handle:
        handle.write(bytes(data))
    os.utime(path, ns=(path.stat().st_atime_ns, path.stat().st_mtime_ns + 1_000_000))
    assert_same(tmp_path, clock)


def test_corrupt_or_other_version_entry_is_ignored_with_a_warning_and_rewritten(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock, entries = _history_with_entries(tmp_path)
    entries[0].write_bytes(b"\x93not msgpack at all")
    raw = msgspec.msgpack.decode(entries[1].read_bytes()[:-4])
    raw[0] = 999
    entries[1].write_bytes(msgspec.msgpack.encode(raw))
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    assert_same(tmp_path, clock)
    messages = [r.getMessage() for r in caplog.records]
    assert any(f"{entries[0]} is corrupt" in m for m in messages)
    assert any(f"{entries[1]} has version 999, not {journal_module._CACHE_VERSION}" in m for m in messages)
    assert msgspec.msgpack.decode(entries[1].read_bytes()[:-4])[0] == journal_module._CACHE_VERSION  # rebuilt
    caplog.clear()
    assert_same(tmp_path, clock)
    assert not [r for r in caplog.records if "index cache" in r.getMessage()]


def test_runs_that_cannot_be_replayed_per_file_keep_the_file_out_of_the_cache(tmp_path: Path) -> None:
    clock = Clock(datetime(2026, 3, 28, 23, 50, tzinfo=timezone.utc))
    journal = Journal(tmp_path, clock=clock, index_cache=False)
    _run(journal, clock, "plain", "succeeded")  # 2026-03-28: ok
    # a task line of a run before its run_started (in the same file): not part of the run, and no obstacle to
    # the cache (the index keeps only run-level lines; task lines are looked up from run_started on)
    journal.append("task_log", schedule="early", run_id="early@1", index=0, task="x", level="info", message="?")
    journal.append("run_started", schedule="early", run_id="early@1", trigger="manual")
    journal.append("run_finished", schedule="early", run_id="early@1", status="succeeded")
    clock.now = datetime(2026, 3, 29, 1, 0, tzinfo=timezone.utc)
    # the same run id started again on the next day, and a run that ends twice
    journal.append("run_started", schedule="plain", run_id="plain@dup", trigger="manual")
    clock.now = datetime(2026, 3, 30, 1, 0, tzinfo=timezone.utc)
    journal.append("run_started", schedule="plain", run_id="plain@dup", trigger="manual")
    journal.append("run_finished", schedule="plain", run_id="plain@dup", status="succeeded")
    clock.now = datetime(2026, 3, 31, 1, 0, tzinfo=timezone.utc)
    journal.append("run_finished", schedule="plain", run_id="plain@dup", status="failed")
    _run(journal, clock, "plain", "succeeded")  # 2026-03-31 itself is otherwise fine
    clock.now = datetime(2026, 4, 1, 1, 0, tzinfo=timezone.utc)
    _run(journal, clock, "plain", "failed")
    journal.close()
    cached = assert_same(tmp_path, clock)
    assert sorted(_entries(tmp_path)) == ["2026-03-28.idx", "2026-04-01.idx"]
    assert cached.get_run("early@1")["logs"] == []  # type: ignore[index]
    assert cached.last_success("plain") == datetime(2026, 3, 31, 1, 0, 41, tzinfo=timezone.utc)
    assert_same(tmp_path, clock)


def test_runs_of_a_status_or_trigger_the_cache_does_not_know_keep_their_file_out_of_the_cache(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A hand-written (or future) status or trigger cannot be decoded by the cache format: the file is read in
    full at every open, without a warning, and answers as a cold open does."""
    clock = Clock(datetime(2026, 3, 28, 9, 0, tzinfo=timezone.utc))
    journal = Journal(tmp_path, clock=clock, index_cache=False)
    _run(journal, clock, "plain", "succeeded")  # 2026-03-28: ok
    clock.now = datetime(2026, 3, 29, 9, 0, tzinfo=timezone.utc)
    _run(journal, clock, "plain", "cancelled")  # a status this version never writes
    clock.now = datetime(2026, 3, 30, 9, 0, tzinfo=timezone.utc)
    _run(journal, clock, "plain", "succeeded", trigger="webhook")  # and a trigger
    clock.now = datetime(2026, 3, 31, 9, 0, tzinfo=timezone.utc)
    _run(journal, clock, "plain", "failed")
    journal.close()
    caplog.set_level(logging.INFO, logger="zmi_reconciler.journal")
    cached = assert_same(tmp_path, clock)
    assert sorted(_entries(tmp_path)) == ["2026-03-28.idx", "2026-03-31.idx"]
    assert [run["status"] for run in cached.runs("plain")] == ["failed", "succeeded", "cancelled", "succeeded"]
    assert cached.runs("plain")[1]["trigger"] == "webhook"
    assert_same(tmp_path, clock)
    assert sorted(_entries(tmp_path)) == ["2026-03-28.idx", "2026-03-31.idx"]
    assert not [r for r in caplog.records if "index cache" in r.getMessage()]


def test_entries_of_an_older_cache_format_are_rebuilt_with_one_info_line(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock, entries = _history_with_entries(tmp_path)
    assert len(entries) >= 3
    for entry in entries:  # as an earlier release left them
        raw = msgspec.msgpack.decode(entry.read_bytes()[:-4])
        raw[0] = journal_module._CACHE_VERSION - 1
        entry.write_bytes(msgspec.msgpack.encode(raw))
    caplog.set_level(logging.INFO, logger="zmi_reconciler.journal")
    assert_same(tmp_path, clock)
    notes = [r for r in caplog.records if "index cache" in r.getMessage()]
    assert [(r.levelno, "rebuilding" in r.getMessage()) for r in notes] == [(logging.INFO, True)]
    assert all(msgspec.msgpack.decode(e.read_bytes()[:-4])[0] == journal_module._CACHE_VERSION for e in entries)


def test_entries_are_written_at_open_close_and_periodically_never_by_appends(tmp_path: Path) -> None:
    clock = Clock()
    _history(tmp_path, clock)
    journal = Journal(tmp_path, clock=clock, index_save_interval=3600)
    before = _entries(tmp_path)
    assert before
    for _ in range(5):
        _run(journal, clock, "nightly", "succeeded")
    assert _entries(tmp_path) == before  # appends and (throttled) queries write nothing
    assert journal.last_run("nightly") is not None
    assert _entries(tmp_path) == before
    journal.close()
    changed = {name for name, mtime in _entries(tmp_path).items() if before.get(name) != mtime}
    assert changed == {sorted(tmp_path.glob("*.jsonl"))[-1].name.replace(".jsonl", ".idx")}
    assert journal.save_index() == 0  # nothing grew since
    periodic = Journal(tmp_path, clock=clock, index_save_interval=0, refresh_interval=0)
    _run(periodic, clock, "hourly", "failed")
    assert periodic.save_index() == 1
    _run(periodic, clock, "hourly", "failed")
    periodic.last_slot("hourly")  # a query past the interval saves
    assert periodic.save_index() == 0
    assert_same(tmp_path, clock)


def test_without_save_at_open_the_owner_writes_the_entries_later(tmp_path: Path) -> None:
    """``serve`` opens with ``save_at_open=False`` (writing entries is not on the path to answering HTTP) and
    calls ``save_index`` once it is up."""
    clock = Clock()
    _history(tmp_path, clock)
    shutil.rmtree(tmp_path / ".index", ignore_errors=True)
    journal = Journal(tmp_path, clock=clock, save_at_open=False)
    assert _entries(tmp_path) == {}
    assert journal.save_index() == len(list(tmp_path.glob("*.jsonl")))
    assert_same(tmp_path, clock)


def test_unwritable_cache_folder_is_logged_once_and_the_journal_works(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock()
    _history(tmp_path, clock)
    (tmp_path / ".index").write_text("a file where the folder should be")
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    journal = assert_same(tmp_path, clock)
    _run(journal, clock, "nightly", "succeeded")
    journal.close()
    assert len([r for r in caplog.records if "cannot write the index cache" in r.getMessage()]) == 1
    # and reading it fails for every day file alike: one warning per open (assert_same opened it once cached)
    assert len([r for r in caplog.records if "unreadable" in r.getMessage()]) == 1


def _random_history(tmp_path: Path, seed: int, clock: Clock, reopen: Callable[[], None] | None) -> None:
    """Random interleavings of runs (some across midnight, some left open, some odd), other writers, torn
    lines and retention; ``reopen`` is called now and then with the journal closed."""
    rng = random.Random(seed)
    journal = Journal(tmp_path, clock=clock, retention_days=3)
    other = Journal(tmp_path, clock=clock, index_cache=False)
    open_runs: list[tuple[str, str]] = []
    for step in range(160):
        writer = journal if rng.random() < 0.7 else other
        sid = rng.choice(["a", "b", "c", "d"])
        roll = rng.random()
        if roll < 0.35:
            run_id = f"{sid}@{step}"
            writer.append("run_started", schedule=sid, run_id=run_id,
                          trigger=rng.choice(["scheduled", "catch_up", "manual"]),
                          scheduled_for=clock().replace(second=0, microsecond=0), pid=DEAD_PID)
            open_runs.append((sid, run_id))
        elif roll < 0.6 and open_runs:
            sid, run_id = rng.choice(open_runs)
            writer.append("task_log", schedule=sid, run_id=run_id, index=0, task="x", level="info", message="m")
        elif roll < 0.8 and open_runs:
            sid, run_id = open_runs.pop(rng.randrange(len(open_runs)))
            writer.append(rng.choice(["run_finished"] * 4 + ["run_interrupted"]), schedule=sid, run_id=run_id,
                          status=rng.choice(["succeeded", "failed", "partial"]))
        elif roll < 0.85:
            writer.append(rng.choice(["run_skipped", "run_missed"]), schedule=sid,
                          scheduled_for=clock() + timedelta(minutes=rng.randrange(-90, 90)))
        elif roll < 0.88:  # an odd line: a run id reused, or a line of an unknown run
            writer.append(rng.choice(["run_started", "task_finished"]), schedule=sid,
                          run_id=f"{sid}@{rng.randrange(step + 1)}", trigger="manual", index=0, status="failed")
        elif roll < 0.9:
            path = tmp_path / f"{clock():%Y-%m-%d}.jsonl"
            with open(path, "ab") as handle:
                handle.write(b'{"ts":"2026-0')  # a crashed writer
        elif roll < 0.95:
            if reopen is not None:
                journal.close()
                reopen()
                journal = Journal(tmp_path, clock=clock, retention_days=3)
        else:
            journal.apply_retention()
        clock.advance(minutes=rng.randrange(1, 240))
    journal.close()


@pytest.mark.parametrize("seed", range(6))
def test_random_histories_with_reopens_match_cold_opens(tmp_path: Path, seed: int) -> None:
    """After every reopen of a random history the cached index equals a cold one."""
    clock = Clock()
    _random_history(tmp_path, seed, clock, lambda: assert_same(tmp_path, clock, retention_days=3))
    assert_same(tmp_path, clock, retention_days=3)


def _child_took_all(build: Any) -> None:
    """Wait until a second builder has taken every day it was given (it started before the open, as in serve)."""
    deadline = time.monotonic() + 30
    while build._bounds[1] > build._bounds[0]:
        assert time.monotonic() < deadline, "the second builder took nothing in 30 s"
        time.sleep(0.002)


def _spy_entries(monkeypatch: pytest.MonkeyPatch, merged: list[int] | None = None) -> list[int]:
    """Record the days the open took from a second builder: merged at once where they met (also in ``merged``),
    or asked for one by one."""
    asked: list[int] = []
    real_entry = journal_module._ColdBuild.entry
    real_merge = Journal._merge_side

    def spy(self: Any, ordinal: int) -> Any:
        asked.append(ordinal)
        return real_entry(self, ordinal)

    def merge_spy(self: Journal, build: Any, states: list[Any], entries: list[Any]) -> bool:
        took = real_merge(self, build, states, entries)
        if took:
            days = [state.day.toordinal() for state in states]
            asked.extend(days)
            if merged is not None:
                merged.extend(days)
        return took

    monkeypatch.setattr(journal_module._ColdBuild, "entry", spy)
    monkeypatch.setattr(Journal, "_merge_side", merge_spy)
    return asked


@pytest.mark.parametrize("seed", range(8))
def test_first_build_in_two_processes_answers_like_a_cold_open(
        tmp_path: Path, seed: int, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first build (no cache entries) shares the files with a second builder; wherever they meet (the child
    started before the open and took the newer files from a random one on; or both racing from the open),
    whatever it sends (runs across the meeting point, run ids reused across it, odd and torn lines) the index
    equals a cold one, and the entries it sends are used."""
    monkeypatch.setattr(Journal, "PARALLEL_BUILD_BYTES", 1)
    asked = _spy_entries(monkeypatch)
    fits = _spy_fits(monkeypatch)
    clock = Clock()
    rng = random.Random(seed)

    def first_build() -> None:
        shutil.rmtree(tmp_path / ".index", ignore_errors=True)
        days = sorted(datetime.fromisoformat(p.stem).date().toordinal() for p in tmp_path.glob("*.jsonl"))
        if len(days) < 2:
            return
        expected = answers(Journal(tmp_path, clock=clock, index_cache=False, retention_days=3))
        split = rng.randrange(1, len(days))
        build = journal_module._ColdBuild.start(tmp_path, days[split:])
        assert build is not None
        _child_took_all(build)
        before = len(asked)
        built = Journal(tmp_path, clock=clock, retention_days=3, first_build=build)
        assert asked[before:] == days[split:]  # the open read the older days itself, and asked for the others
        assert answers(built) == expected
        assert answers(Journal(tmp_path, clock=clock, retention_days=3)) == expected  # from the entries it saved
        shutil.rmtree(tmp_path / ".index")
        assert answers(Journal(tmp_path, clock=clock, retention_days=3)) == expected  # racing from the open

    _random_history(tmp_path, seed, clock, first_build)
    first_build()
    assert True in fits  # entries it sent were replayed


def test_the_open_and_the_second_builder_meet_where_their_speeds_put_them(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No split is planned: the open takes files from the oldest end, the child from the newest. An open that is
    slow on its first file (serve: busy with other work) leaves the rest to the child; a child that never takes a
    file leaves them all to the open. The index is a cold one's either way."""
    monkeypatch.setattr(Journal, "PARALLEL_BUILD_BYTES", 1)
    clock = Clock()
    _history(tmp_path, clock)
    days = sorted(datetime.fromisoformat(p.stem).date().toordinal() for p in tmp_path.glob("*.jsonl"))
    assert len(days) >= 3
    expected = answers(Journal(tmp_path, clock=clock, index_cache=False))
    parent = os.getpid()
    real_read = Journal._read_new
    read: list[int] = []

    def slow_first(self: Journal, state: Any) -> None:
        if os.getpid() == parent and self.directory == tmp_path:
            if not read:
                time.sleep(0.5)  # meanwhile the child takes every other file
            read.append(state.day.toordinal())
        real_read(self, state)

    monkeypatch.setattr(Journal, "_read_new", slow_first)
    merged: list[int] = []
    asked = _spy_entries(monkeypatch, merged)
    shutil.rmtree(tmp_path / ".index", ignore_errors=True)
    assert answers(Journal(tmp_path, clock=clock)) == expected
    assert asked == merged == days[1:]  # all at once where they met
    assert read[0] == days[0]

    def idle(conn: Any, directory: str, days: list[int], bounds: Any, parent_end: Any = None) -> None:
        conn.send_bytes(journal_module._BUILT_ENCODER.encode(journal_module._Built(0)))  # took nothing

    monkeypatch.setattr(journal_module, "_cold_build_child", idle)
    read.clear()
    asked.clear()
    shutil.rmtree(tmp_path / ".index")
    assert answers(Journal(tmp_path, clock=clock)) == expected
    assert asked == [] and read[:len(days)] == days


def _crash(conn: Any, directory: str, days: list[int], bounds: Any, parent_end: Any = None) -> None:
    with bounds.get_lock():
        bounds[1] = bounds[0]  # took every file
    os._exit(3)  # killed, out of memory, ...


def _terminated(conn: Any, directory: str, days: list[int], bounds: Any, parent_end: Any = None) -> None:
    import signal

    with bounds.get_lock():
        bounds[1] = bounds[0]  # took every file
    signal.signal(signal.SIGTERM, signal.SIG_DFL)  # systemd stops a service with SIGTERM to the whole group
    os.kill(os.getpid(), signal.SIGTERM)


@pytest.mark.parametrize(("child", "said"), [(_crash, "exited with code 3"), (_terminated, "was ended by SIGTERM")],
                         ids=["crash", "SIGTERM"])
def test_first_build_reads_the_files_itself_when_the_second_builder_fails(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, child: Any,
        said: str) -> None:
    """The same index as without the child, and a log line that says what happened to it (not "failed ()")."""
    monkeypatch.setattr(Journal, "PARALLEL_BUILD_BYTES", 1)
    monkeypatch.setattr(journal_module, "_cold_build_child", child)
    clock = Clock()
    _history(tmp_path, clock)
    shutil.rmtree(tmp_path / ".index", ignore_errors=True)
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    expected = answers(Journal(tmp_path, clock=clock, index_cache=False))
    build = Journal.start_first_build(tmp_path)
    assert build is not None
    build._process.join(30)  # it took every file and ended before the open (serve starts it early)
    assert answers(Journal(tmp_path, clock=clock, first_build=build)) == expected
    assert any(f"second index builder {said}; reading the files here" in r.getMessage() for r in caplog.records)


def _server_that_dies_at_once(conn: Any, directory: str) -> None:
    """serve killed with SIGKILL as soon as its builder took every day (its entries still to be sent)."""
    import signal

    days = [datetime.fromisoformat(p.stem).date().toordinal() for p in sorted(Path(directory).glob("*.jsonl"))]
    build = journal_module._ColdBuild.start(Path(directory), days)
    assert build is not None
    _child_took_all(build)
    conn.send(build._process.pid)
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to watch the orphaned child")
def test_a_second_builder_whose_parent_died_does_not_stay_behind(tmp_path: Path, capfd) -> None:
    """serve killed with SIGKILL during a first build: the builder's sends fail (nobody reads the pipe) and it
    exits instead of blocking forever on a full pipe, without a BrokenPipeError traceback in the server's log
    (its stderr)."""
    clock = Clock()
    _history(tmp_path, clock)
    journal = Journal(tmp_path, clock=clock, index_cache=False)
    for n in range(2000):  # entries well beyond a pipe's buffer (64 KiB)
        _run(journal, clock, f"s{n % 7}", "succeeded", tasks=0)
    journal.close()
    shutil.rmtree(tmp_path / ".index", ignore_errors=True)
    assert _builder_of_a_killed_server(_server_that_dies_at_once, tmp_path, 30) == "gone"
    assert "Traceback" not in capfd.readouterr().err


def _builder_of_a_killed_server(server: Any, directory: Path, seconds: float) -> str:
    """Run ``server(conn, directory)`` in a forked process that starts a first build, sends the builder's pid and
    kills itself; "gone" when the builder ends within ``seconds`` of that, else "stayed" (then it is killed)."""
    context = multiprocessing.get_context("fork")
    receive, send = context.Pipe(duplex=False)
    process = context.Process(target=server, args=(send, str(directory)))
    process.start()
    assert receive.poll(30)
    child = receive.recv()
    killed = time.monotonic()  # (the server kills itself right after sending; join() would wait for the child
    assert child is not None  # too: it holds the server's sentinel pipe)
    while not _exited(child):
        if time.monotonic() - killed > seconds:
            os.kill(child, 9)
            return "stayed"
        time.sleep(0.02)
    process.join(30)
    assert process.exitcode == -9
    return "gone"


def _exited(pid: int) -> bool:
    """True when ``pid`` is gone or a zombie (a reparented child may wait for a reaper that never comes)."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().rpartition(")")[2].split()[0] == "Z"
    except FileNotFoundError:
        return True


def _server_that_dies(conn: Any, directory: str) -> None:
    """A stand-in for serve: starts a first build whose child is slow per file, tells the test the child's pid,
    and is killed (SIGKILL) while the child still has most of the files to go."""
    import signal

    real_read = Journal._read_new

    def slow(self: Journal, state: Any) -> None:
        time.sleep(0.3)
        real_read(self, state)

    Journal._read_new = slow  # type: ignore[method-assign]  # (in this process and the child it forks)
    days = [datetime.fromisoformat(p.stem).date().toordinal() for p in sorted(Path(directory).glob("*.jsonl"))]
    build = journal_module._ColdBuild.start(Path(directory), days)
    conn.send(build._process.pid if build is not None else None)
    os.kill(os.getpid(), signal.SIGKILL)


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs /proc to watch the orphaned child")
def test_a_second_builder_stops_taking_files_once_its_server_is_killed(tmp_path: Path) -> None:
    """kill -9 of serve during a first build: the child notices (its parent changed) and ends after the file in
    hand instead of reading every file for nobody."""
    clock = Clock()
    journal = Journal(tmp_path, clock=clock, index_cache=False)
    for day in range(10):
        _run(journal, clock, "a", "succeeded")
        clock.advance(days=1)
    journal.close()
    assert len(list(tmp_path.glob("*.jsonl"))) == 10  # 3 s of work for the slowed child
    assert _builder_of_a_killed_server(_server_that_dies, tmp_path, 1.5) == "gone"


def test_second_builder_entries_carry_the_lines_of_runs_of_older_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """The child reads each file alone: the lines of runs it did not see start (the end of a run across the
    meeting point, a line of a run whose start is gone, one with an invalid instant) come with its entry and are
    taken as reading them would (warned about with file:line); a run id restarted after the meeting point makes
    the parent read that file itself; the other entries are replayed."""
    split = datetime(2026, 3, 4).date().toordinal()

    def start_at_split(self: Journal, states: list[Any], entries: list[Any]) -> Any:
        build = journal_module._ColdBuild.start(self.directory, [o for o in self._ordinals if o >= split])
        _child_took_all(build)
        return build

    monkeypatch.setattr(Journal, "_start_cold_build", start_at_split)
    fits = _spy_fits(monkeypatch)
    clock = Clock(datetime(2026, 3, 1, 22, 0, tzinfo=timezone.utc))
    journal = Journal(tmp_path, clock=clock, index_cache=False)
    reused = _run(journal, clock, "a", "succeeded")  # 03-01
    clock.now = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    _run(journal, clock, "a", "succeeded")  # 03-02
    clock.now = datetime(2026, 3, 3, 23, 59, 50, tzinfo=timezone.utc)
    crossing = _run(journal, clock, "a", "succeeded", tasks=1)  # 03-03 -> ends on 03-04, after the split
    clock.now = datetime(2026, 3, 3, 23, 59, 55, tzinfo=timezone.utc)
    journal.append("run_started", schedule="c", run_id="c@1", trigger="manual")  # 03-03, its end is invalid
    _run(journal, clock, "b", "failed")  # 03-04
    clock.now = datetime(2026, 3, 5, 12, 0, tzinfo=timezone.utc)
    journal.append("run_started", schedule="a", run_id=reused, trigger="manual")  # 03-05: an id of 03-01 again
    journal.append("run_finished", schedule="a", run_id=reused, status="failed")
    clock.now = datetime(2026, 3, 6, 12, 0, tzinfo=timezone.utc)
    _run(journal, clock, "b", "succeeded")  # 03-06
    journal.append("run_finished", schedule="d", run_id="d@gone", status="failed")  # its start is gone
    journal.close()
    with open(tmp_path / "2026-03-04.jsonl", "ab") as handle:
        handle.write(b'{"ts":"2026-03-04T25:00:00Z","event":"run_finished","schedule":"c","run_id":"c@1",'
                     b'"status":"failed"}\n')
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    cached = assert_same(tmp_path, clock)
    assert fits == [True, False, True]  # 03-04 (with the crossing run's end), 03-05 (the reused id), 03-06
    assert cached.get_run(crossing)["status"] == "succeeded"  # type: ignore[index]
    assert cached.get_run(reused)["status"] == "failed"  # type: ignore[index]
    assert cached.get_run("c@1")["status"] == "running"  # type: ignore[index]
    assert cached.get_run("d@gone") is None
    assert cached.last_success("b") is not None
    lines = len((tmp_path / "2026-03-04.jsonl").read_bytes().splitlines())
    warned = [r.getMessage() for r in caplog.records if "invalid line skipped" in r.getMessage()]
    assert warned and all(f"2026-03-04.jsonl:{lines}: invalid line skipped" in w for w in warned)
    assert len(warned) == 2  # the cold open and the first build alike


def test_a_second_builder_leaves_a_file_with_a_status_the_cache_does_not_know_to_the_parent(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Its entry could not be decoded by the parent (the cache format has literal statuses and triggers): the
    child sends none for that file and the parent reads it, quietly; the other files come from the child."""
    clock = Clock(datetime(2026, 3, 28, 9, 0, tzinfo=timezone.utc))
    journal = Journal(tmp_path, clock=clock, index_cache=False)
    for day, status in enumerate(["succeeded", "cancelled", "failed"]):
        clock.now = datetime(2026, 3, 28 + day, 9, 0, tzinfo=timezone.utc)
        _run(journal, clock, "plain", status)
    journal.close()
    days = sorted(datetime.fromisoformat(p.stem).date().toordinal() for p in tmp_path.glob("*.jsonl"))
    expected = answers(Journal(tmp_path, clock=clock, index_cache=False))
    build = journal_module._ColdBuild.start(tmp_path, days)
    assert build is not None
    _child_took_all(build)
    caplog.set_level(logging.INFO, logger="zmi_reconciler.journal")
    replayed: list[int] = []
    real = Journal._replay_built

    def spy(self: Journal, state: Any, built: Any) -> None:
        replayed.append(state.day.toordinal())
        real(self, state, built)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Journal, "_replay_built", spy)
        built = Journal(tmp_path, clock=clock, first_build=build)
    assert answers(built) == expected
    assert replayed == [days[0], days[2]]  # the "cancelled" day was read by the parent
    assert not [r for r in caplog.records if "second index builder" in r.getMessage()]


def test_taking_the_second_builders_part_at_once_treats_lines_as_reading_them_in_order_would(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Where they meet, the open takes the child's files at once (_merge_side): a run of the open's part that ends
    two child files later gets its lines in order; a line naming a run id that only starts in a later file stays
    an orphan of its own file (as reading in order leaves it); slots and successes are the latest of both parts."""
    clock = Clock(datetime(2026, 3, 1, 23, 59, tzinfo=timezone.utc))
    journal = Journal(tmp_path, clock=clock, index_cache=False)
    journal.append("run_started", schedule="a", run_id="a@long", trigger="scheduled",
                   scheduled_for=datetime(2026, 3, 1, 23, 59, tzinfo=timezone.utc))  # 03-01: the open's part
    clock.now = datetime(2026, 3, 2, 9, 0, tzinfo=timezone.utc)
    journal.append("task_log", schedule="a", run_id="a@long", index=0, task="x", level="info", message="m")
    _run(journal, clock, "b", "succeeded")  # 03-02
    clock.now = datetime(2026, 3, 3, 9, 0, tzinfo=timezone.utc)
    journal.append("run_finished", schedule="a", run_id="a@long", status="succeeded")  # 03-03: two files later
    journal.append("run_finished", schedule="l", run_id="l@later", status="failed")  # its start is on 03-04
    clock.now = datetime(2026, 3, 4, 9, 0, tzinfo=timezone.utc)
    journal.append("run_started", schedule="l", run_id="l@later", trigger="manual")
    journal.append("run_finished", schedule="l", run_id="l@later", status="succeeded")
    _run(journal, clock, "b", "failed")
    journal.close()
    days = sorted(datetime.fromisoformat(p.stem).date().toordinal() for p in tmp_path.glob("*.jsonl"))
    expected = answers(Journal(tmp_path, clock=clock, index_cache=False))
    build = journal_module._ColdBuild.start(tmp_path, days[1:])
    assert build is not None
    _child_took_all(build)
    merged: list[int] = []
    _spy_entries(monkeypatch, merged)
    built = Journal(tmp_path, clock=clock, first_build=build)
    assert merged == days[1:]
    assert answers(built) == expected
    assert built.get_run("a@long")["status"] == "succeeded"  # type: ignore[index]
    assert built.get_run("l@later")["status"] == "succeeded"  # type: ignore[index]
    assert "l@later" in built._files[days[2]].orphans
    assert answers(Journal(tmp_path, clock=clock)) == expected  # the entries it saved


def test_a_first_build_hands_the_second_builder_every_file_to_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    days = [datetime(2026, 3, day).date().toordinal() for day in range(1, 6)]
    sizes = [100, 300, 200, 0, 400]  # 0: the file has a valid cache entry
    plan = journal_module._plan_cold_build
    assert plan(days, sizes, 1001) == []  # 1,000 bytes to read: under the threshold
    assert plan(days, sizes, 1000) == [days[0], days[1], days[2], days[4]]  # who reads which: see _ColdBuild
    assert plan(days, [0, 0, 0, 0, 0], 0) == []
    monkeypatch.setattr(os, "cpu_count", lambda: 1)
    assert plan(days, sizes, 1000) == []


def test_the_second_builder_takes_days_from_the_newest_end_and_the_open_from_the_oldest(tmp_path: Path) -> None:
    """The shared bounds: a day the child took is not the parent's; a day below them is; days the parent skips
    (files gone, or with a valid entry after all) are not taken by the child afterwards."""
    days = [datetime(2026, 3, day).date().toordinal() for day in range(1, 6)]

    class Alive:  # no process: the test moves the bounds
        def is_alive(self) -> bool:
            return True

    receive, send = multiprocessing.get_context("fork").Pipe(duplex=False)
    bounds = multiprocessing.get_context("fork").Array("q", [0, len(days)])
    build = journal_module._ColdBuild(tmp_path, days, Alive(), receive, bounds)
    build._bounds[1] = 3  # the child took days[4] and days[3]
    assert build.claim(days[0]) and list(build._bounds) == [1, 3]
    assert build.claim(days[2]) and list(build._bounds) == [3, 3]  # days[1] skipped: nobody reads it now
    assert not build.claim(days[3]) and not build.claim(days[4])
    assert build.claim(datetime(2026, 2, 1).date().toordinal())  # not one of its days: the parent's
    send.close()  # (the receiving thread ends)
    build._receiver.join(5)
    assert not build._receiver.is_alive()


def test_a_first_build_started_before_the_open_is_used_by_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``serve`` starts the second builder first and opens the journal later (with ``first_build``): files
    whose entry is missing or of another format are built by it; the index equals a cold one."""
    monkeypatch.setattr(Journal, "PARALLEL_BUILD_BYTES", 1)
    clock, entries = _history_with_entries(tmp_path)
    entries[-1].unlink()  # the newest: missing
    raw = msgspec.msgpack.decode(entries[-2].read_bytes()[:-4])
    raw[0] = journal_module._CACHE_VERSION - 1  # the one before: an older format
    entries[-2].write_bytes(msgspec.msgpack.encode(raw))
    build = Journal.start_first_build(tmp_path)
    assert build is not None
    assert build.days == [datetime.fromisoformat(e.stem).date().toordinal() for e in entries[-2:]]
    _child_took_all(build)
    expected = answers(Journal(tmp_path, clock=clock, index_cache=False))
    merged: list[int] = []
    _spy_entries(monkeypatch, merged)
    assert answers(Journal(tmp_path, clock=clock, first_build=build)) == expected
    assert merged == build.days
    assert Journal.start_first_build(tmp_path) is None  # every entry is current again
    shutil.rmtree(tmp_path / ".index")
    unused = Journal.start_first_build(tmp_path)
    assert unused is not None
    Journal(tmp_path, clock=clock, index_cache=False, first_build=unused)  # stopped, not waited for
    assert not unused._process.is_alive()


@pytest.mark.parametrize("replacement", ["shorter", "same size"])
def test_second_builder_entries_of_a_file_replaced_meanwhile_are_not_used(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, replacement: str) -> None:
    """Between start_first_build and the open (serve imports the API meanwhile) the newest day file is replaced:
    what the builder read of the old file must not be replayed for the new one."""
    monkeypatch.setattr(Journal, "PARALLEL_BUILD_BYTES", 1)
    clock = Clock()
    _history(tmp_path, clock)
    newest = sorted(tmp_path.glob("*.jsonl"))[-1]
    old = newest.read_bytes()
    build = Journal.start_first_build(tmp_path)
    assert build is not None and build.days[-1] == datetime.fromisoformat(newest.stem).date().toordinal()
    build._conn.poll(30)  # the builder has read the old file
    lines = old.split(b"\n")
    new = b"\n".join(line.replace(b"nightly", b"replace") for line in lines)  # same size, other runs
    if replacement == "shorter":
        new = b"\n".join(lines[:len(lines) // 2]) + b"\n"
    tmp = newest.with_suffix(".tmp")
    tmp.write_bytes(new)
    os.replace(tmp, newest)  # a new inode, as a restore or an editor would write it
    expected = answers(Journal(tmp_path, clock=clock, index_cache=False))
    assert answers(Journal(tmp_path, clock=clock, first_build=build)) == expected

