"""QA of the shared first build (d4f2492, d4dcc7e): the open takes day files from the oldest end, a forked second
builder from the newest, each read alone and streamed back with its orphan lines. Whatever happens, a first build
must answer like a cold open (``index_cache=False``), warn about invalid lines with the same file:line, survive a
failing or killed builder with one log line, never hang and never leave a process behind, and the cache it writes
must replay to the same answers.

Tests that exposed a bug (fixed since) say what went wrong in their docstring. Hangs are checked in a forked
process with a deadline (the hung process is killed by its pid); nothing sleeps to decide a result."""

from __future__ import annotations

import functools
import json
import logging
import multiprocessing
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import pytest

from test_journal_cache import Clock, answers
from zmi_reconciler import journal as journal_module
from zmi_reconciler.journal import Journal

DEAD_PID = 2**22 + 12345
NOW = datetime(2026, 3, 6, 12, 0, tzinfo=timezone.utc)
_REAL_CHILD = journal_module._cold_build_child
_FORK = multiprocessing.get_context("fork")

pytestmark = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")


# ---------------------------------------------------------------------------------------------------- helpers
def _ts(day: int, hh: int, mm: int, ss: int = 0) -> str:
    return f"2026-03-{day:02d}T{hh:02d}:{mm:02d}:{ss:02d}.000Z"


def _line(**fields: Any) -> bytes:
    return json.dumps(fields, separators=(",", ":")).encode() + b"\n"


def _start(day: int, hh: int, mm: int, run_id: str, trigger: str = "scheduled", pid: int = DEAD_PID) -> bytes:
    sid = run_id.partition("@")[0]
    slot = _ts(day, hh, mm) if trigger != "manual" else None
    return _line(ts=_ts(day, hh, mm), event="run_started", schedule=sid, run_id=run_id, trigger=trigger,
                 scheduled_for=slot, pid=pid)


def _task(day: int, hh: int, mm: int, run_id: str, n: int = 0) -> bytes:
    return (_line(ts=_ts(day, hh, mm), event="task_started", schedule=run_id.partition("@")[0], run_id=run_id,
                  index=n, task="calculate_days")
            + _line(ts=_ts(day, hh, mm, 30), event="task_log", schedule=run_id.partition("@")[0], run_id=run_id,
                    index=n, task="calculate_days", level="info", message=f"batch {n} of {run_id}"))


def _end(day: int, hh: int, mm: int, run_id: str, status: str = "succeeded", event: str = "run_finished") -> bytes:
    return _line(ts=_ts(day, hh, mm), event=event, schedule=run_id.partition("@")[0], run_id=run_id, status=status)


def _run(day: int, hh: int, mm: int, run_id: str, status: str = "succeeded", trigger: str = "scheduled") -> bytes:
    return _start(day, hh, mm, run_id, trigger) + _task(day, hh, mm + 1, run_id) + _end(day, hh, mm + 2, run_id,
                                                                                       status)


def _hostile_journal(directory: Path) -> list[int]:
    """Six day files full of what a first build finds hard; returns their day ordinals (oldest first)."""
    days: dict[int, bytes] = {}
    days[1] = b"".join([
        _run(1, 8, 0, "a@1"),
        _run(1, 9, 0, "x@reused", "failed", trigger="manual"),   # the id starts again on 03-04 and 03-05
        _run(1, 10, 0, "twice@1"),                               # ended again on 03-02
        _run(1, 11, 0, "int@1"),                                 # interrupted on 03-03 after its end here
        _start(1, 23, 58, "m@1"), _task(1, 23, 59, "m@1"),       # across midnight, ends on 03-02
        _start(1, 23, 59, "long@1"),                             # ends two files later (03-03)
    ])
    days[2] = b"".join([
        _task(2, 0, 0, "m@1", 1), _end(2, 0, 1, "m@1"),
        _task(2, 0, 2, "long@1", 1),
        _end(2, 1, 0, "gone@1", "failed"),                       # its start was deleted by retention
        _line(ts=_ts(2, 2, 0), event="run_skipped", schedule="b", run_id="b@s1", scheduled_for=_ts(2, 2, 0),
              reason="overlap"),
        _line(ts=_ts(2, 2, 1), event="run_missed", schedule="c", scheduled_for=_ts(2, 1, 0)),
        b"\n",                                                   # a blank line
        (b'{"ts": "' + _ts(2, 3, 0).encode() + b'", "event": "run_started", "schedule": "sp", "run_id": "sp@1",'
         b' "trigger": "manual"}\n'),                            # hand-written with spaces; ends with a bad ts on 03-04
        _end(2, 4, 0, "twice@1", "failed"),                      # ended twice, in another file
        _run(2, 5, 0, "a@2", "partial"),
        _start(2, 23, 59, "chain@1"), _task(2, 23, 59, "chain@1"),  # started here, lines on 03-03, end on 03-05
    ])
    days[3] = b"".join([
        _task(3, 0, 1, "long@1", 2), _end(3, 0, 5, "long@1", "failed"),
        _line(ts=_ts(3, 1, 0), event="run_interrupted", schedule="int", run_id="int@1", reason="shutdown"),
        (b'{"ts":"' + _ts(3, 2, 0).encode() + b'","event":"\\u0072un_started","schedule":"esc","run_id":"esc@1",'
         b'"trigger":"manual"}\n'),                              # an escape at the start of the event
        _end(3, 2, 1, "esc@1"),
        b'{"ts":"2026-03-03T02:02:00.000Z","event":"task_log","run_id":"esc@1",\n',  # not JSON
        _start(3, 3, 0, "f@1"), _end(3, 3, 1, "f@1", "cancelled"),  # a status the runner never writes
        _run(3, 4, 0, "w@1", trigger="webhook"),                     # a trigger the runner never writes
        _task(3, 5, 0, "chain@1", 1),
        _start(3, 23, 59, "long2@1"),                            # ends on 03-05, two files later
        _line(ts=_ts(3, 23, 59, 30), event="run_finished", schedule="gone", run_id="gone@2", status="failed"),
    ])
    days[4] = b"".join([
        _line(ts="2026-03-04T25:00:00Z", event="run_finished", schedule="sp", run_id="sp@1", status="failed"),
        _run(4, 1, 0, "x@reused", "succeeded", trigger="manual"),  # an id of 03-01 started again
        _task(4, 2, 0, "gone@1"),
        _line(ts=_ts(4, 3, 0), event="run_interrupted", schedule="gone", run_id="gone@2"),
        _run(4, 4, 0, "a@3", "failed", trigger="catch_up"),
        _task(4, 5, 0, "long2@1", 1),
    ])
    days[5] = b"".join([
        _end(5, 0, 30, "long2@1", "partial"),
        _end(5, 1, 0, "chain@1"),
        _line(ts=_ts(5, 2, 0), event="run_skipped", schedule="b", scheduled_for="not an instant"),
        _run(5, 3, 0, "x@reused", "failed", trigger="manual"),   # and again, after the meeting point
        _end(5, 4, 0, "int@1", "failed"),                         # a third end of a run ended twice already
        _run(5, 5, 0, "a@4"),
    ])
    days[6] = b"".join([
        _run(6, 1, 0, "a@5", "failed"),
        _start(6, 2, 0, "open@1"), _task(6, 2, 1, "open@1"),     # still running (its writer is dead)
        b'{"ts":"2026-03-06T03:00:00.000Z","event":"run_fin',    # torn last line
    ])
    for day, data in days.items():
        (directory / f"2026-03-{day:02d}.jsonl").write_bytes(data)
    return _ordinals(directory)


def _ordinals(directory: Path) -> list[int]:
    return sorted(datetime.fromisoformat(p.stem).date().toordinal() for p in directory.glob("*.jsonl"))


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The per-line warnings of the records so far (invalid and torn lines), sorted, then cleared."""
    out = sorted(r.getMessage() for r in caplog.records
                 if r.name == "zmi_reconciler.journal" and "skipped" in r.getMessage())
    caplog.clear()
    return out


def _builder_lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "second index builder" in r.getMessage()]


def _took_all(build: Any, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while build._bounds[1] > build._bounds[0] and build._process.is_alive():
        assert time.monotonic() < deadline, "the second builder took nothing"
        time.sleep(0.002)


def _sent_all(build: Any) -> None:
    """Wait until the builder read and sent every day it took (it ends then; small entries fit in the pipe)."""
    _took_all(build)
    deadline = time.monotonic() + 30
    while build._process.is_alive():
        assert time.monotonic() < deadline
        time.sleep(0.002)


def _cold(directory: Path, caplog: pytest.LogCaptureFixture) -> tuple[dict[str, Any], list[str]]:
    caplog.clear()
    expected = answers(Journal(directory, clock=Clock(NOW), index_cache=False))
    return expected, _warnings(caplog)


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rpartition(")")[2].split()[0] in ("Z", "X")
    except FileNotFoundError:
        return True


def _wait_gone(pid: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while not _gone(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def _finishes(target: Any, args: tuple[Any, ...], timeout: float) -> int | None:
    """Run ``target`` in a forked process; its exit code, or None when it was still running after ``timeout``
    seconds (then it is killed, by its pid, with the processes it forked)."""
    proc = _FORK.Process(target=target, args=args, daemon=False)
    proc.start()
    deadline = time.monotonic() + timeout
    while proc.is_alive() and time.monotonic() < deadline:  # (not join: a forked builder may hold its sentinel)
        time.sleep(0.005)
    if proc.is_alive():
        import psutil

        try:
            kids = psutil.Process(proc.pid).children(recursive=True)
        except psutil.Error:
            kids = []
        for kid in kids:  # (first: a live builder holds the process's sentinel, join would wait for it)
            try:
                kid.kill()
            except psutil.Error:
                pass
        proc.kill()
        proc.join(10)
        return None
    return proc.exitcode


def _big_journal(directory: Path, runs: int = 3000) -> list[int]:
    """Two day files whose entries are far beyond a pipe's 64 KiB."""
    for day in (1, 2):
        lines = [_run(day, (n // 50) % 24, n % 50, f"s{n % 9}@{day}-{n}", ("succeeded", "failed")[n % 2])
                 for n in range(runs // 2)]
        (directory / f"2026-03-{day:02d}.jsonl").write_bytes(b"".join(lines))
    return _ordinals(directory)


@pytest.fixture(autouse=True)
def _small_threshold(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Journal, "PARALLEL_BUILD_BYTES", 1)


@pytest.fixture(autouse=True)
def _no_builder_left() -> Any:
    yield
    assert multiprocessing.active_children() == []


# ---------------------------------------------------------------------------------------------------- holds
def test_every_meeting_point_answers_and_warns_like_a_cold_open(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Runs across midnight at and beyond the meeting point, ids reused on both sides, ends twice, an interrupt
    after an end, lines of runs whose start is gone, invalid/blank/torn/hand-written lines, foreign statuses and
    triggers: for every split (the child takes days[split:] before the open) and racing from the open."""
    caplog.set_level(logging.INFO, logger="zmi_reconciler.journal")
    days = _hostile_journal(tmp_path)
    expected, warned = _cold(tmp_path, caplog)
    assert len(warned) >= 4  # invalid JSON, bad instants, the torn last line
    for split in range(len(days) + 1):
        shutil.rmtree(tmp_path / ".index", ignore_errors=True)
        build = journal_module._ColdBuild.start(tmp_path, days[split:])
        assert build is not None
        _took_all(build)
        built = Journal(tmp_path, clock=Clock(NOW), first_build=build)
        assert answers(built) == expected, f"split {split}"
        assert _warnings(caplog) == warned, f"split {split}"
        assert not build._process.is_alive()
        reopened = Journal(tmp_path, clock=Clock(NOW))  # from the entries the first build saved
        assert answers(reopened) == expected, f"split {split}, reopened"
        assert _warnings(caplog) == warned
    for _ in range(3):  # racing: the open forks its own builder
        shutil.rmtree(tmp_path / ".index")
        assert answers(Journal(tmp_path, clock=Clock(NOW))) == expected
        assert _warnings(caplog) == warned
    assert _builder_lines(caplog) == []


@pytest.mark.parametrize("seed", range(4))
def test_random_hostile_histories_at_random_meeting_points(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, seed: int) -> None:
    """Random day files of runs, odd lines and reused ids, cut at random meeting points."""
    rng = random.Random(seed)
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    ids: list[str] = []
    files: dict[int, list[bytes]] = {}
    for n in range(400):
        day = 1 + n * 6 // 400
        hh, mm = (n * 3) % 24, n % 50
        roll = rng.random()
        if roll < 0.3 or not ids:
            run_id = f"{rng.choice('abc')}@{n}" if rng.random() < 0.9 or not ids else rng.choice(ids)
            ids.append(run_id)
            files.setdefault(day, []).append(_start(day, hh, mm, run_id, rng.choice(["scheduled", "manual"])))
        elif roll < 0.55:
            files.setdefault(day, []).append(_task(day, hh, mm, rng.choice(ids)))
        elif roll < 0.8:
            files.setdefault(day, []).append(_end(day, hh, mm, rng.choice(ids[-20:]), rng.choice(
                ["succeeded", "failed", "partial", "cancelled"]), rng.choice(["run_finished"] * 3 + ["run_interrupted"])))
        elif roll < 0.85:
            files.setdefault(day, []).append(_end(day, hh, mm, f"gone@{rng.randrange(3)}", "failed"))
        elif roll < 0.9:
            files.setdefault(day, []).append(rng.choice([
                b"\n", b'{"ts":"2026-03-0\n', b'{"ts": "2026-03-01T00:00:00Z", "event": "run_missed", "schedule": "q",'
                b' "scheduled_for": "2026-03-01T00:00:00Z"}\n',
                _line(ts="2026-03-01T99:00:00Z", event="run_finished", run_id=rng.choice(ids), status="failed")]))
        else:
            files.setdefault(day, []).append(_line(ts=_ts(day, hh, mm), event="run_skipped", schedule="b",
                                                   scheduled_for=_ts(day, hh, mm)))
    for day, lines in files.items():
        (tmp_path / f"2026-03-{day:02d}.jsonl").write_bytes(b"".join(lines))
    days = _ordinals(tmp_path)
    expected, warned = _cold(tmp_path, caplog)
    for split in rng.sample(range(len(days) + 1), 3):
        shutil.rmtree(tmp_path / ".index", ignore_errors=True)
        build = journal_module._ColdBuild.start(tmp_path, days[split:])
        _took_all(build)
        assert answers(Journal(tmp_path, clock=Clock(NOW), first_build=build)) == expected
        assert _warnings(caplog) == warned
        assert answers(Journal(tmp_path, clock=Clock(NOW))) == expected
        caplog.clear()


def test_close_interrupted_and_full_scans_after_a_first_build(tmp_path: Path) -> None:
    """What serve does right after the open (orphaned_runs, close_interrupted) and the full scans, on copies."""
    source = tmp_path / "source"
    source.mkdir()
    days = _hostile_journal(source)
    for split in (0, 2, 4):
        cold_dir, built_dir = tmp_path / f"cold{split}", tmp_path / f"built{split}"
        shutil.copytree(source, cold_dir)
        shutil.copytree(source, built_dir)
        cold = Journal(cold_dir, clock=Clock(NOW), index_cache=False)
        build = journal_module._ColdBuild.start(built_dir, days[split:])
        _took_all(build)
        built = Journal(built_dir, clock=Clock(NOW), first_build=build)
        assert built.orphaned_runs() == cold.orphaned_runs()
        assert built.close_interrupted() == cold.close_interrupted() != []
        assert list(built.iter_events()) == list(cold.iter_events())
        assert built.first_event_time() == cold.first_event_time()
        assert answers(built) == answers(cold)
        built.close()
        assert answers(Journal(built_dir, clock=Clock(NOW))) == answers(Journal(cold_dir, clock=Clock(NOW),
                                                                                index_cache=False))


@pytest.mark.parametrize("shape", ["one day", "two days", "empty day between", "only empty days",
                                   "cache folder is a file"])
def test_tiny_journals(tmp_path: Path, caplog: pytest.LogCaptureFixture, shape: str) -> None:
    if shape == "only empty days":
        (tmp_path / "2026-03-01.jsonl").write_bytes(b"")
        assert Journal.start_first_build(tmp_path) is None  # nothing to read: no fork
        assert answers(Journal(tmp_path, clock=Clock(NOW)))["schedule_ids"] == []
        return
    (tmp_path / "2026-03-01.jsonl").write_bytes(_run(1, 8, 0, "a@1") + _start(1, 23, 59, "a@2"))
    if shape == "cache folder is a file":
        (tmp_path / ".index").write_text("not a folder")
    if shape != "one day":
        if shape == "empty day between":
            (tmp_path / "2026-03-02.jsonl").write_bytes(b"")
        (tmp_path / "2026-03-03.jsonl").write_bytes(_end(3, 0, 1, "a@2", "failed") + _run(3, 1, 0, "b@1"))
    expected, warned = _cold(tmp_path, caplog)
    build = Journal.start_first_build(tmp_path)
    assert build is not None and build.days == [d for d in _ordinals(tmp_path)
                                                if (tmp_path / f"{date.fromordinal(d)}.jsonl").stat().st_size]
    _took_all(build)
    assert answers(Journal(tmp_path, clock=Clock(NOW), first_build=build)) == expected
    if shape != "cache folder is a file":
        shutil.rmtree(tmp_path / ".index")
    assert answers(Journal(tmp_path, clock=Clock(NOW))) == expected  # racing
    assert answers(Journal(tmp_path, clock=Clock(NOW))) == expected  # cached


def test_a_big_single_file_read_in_many_chunks(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """One day file of a few thousand runs with odd lines here and there, read in 4 KiB chunks (lines across
    chunk boundaries, chunks that take the full path and chunks that do not), by the builder alone; then the
    same after lines were appended between the builder's read and the open."""
    monkeypatch.setattr(journal_module, "_READ_CHUNK", 4096)
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    rng = random.Random(7)
    lines = [_start(1, 23, 59, "night@1")]
    for n in range(500):
        lines.append(_run(2, (n // 60) % 24, n % 50, f"s{n % 5}@{n}", rng.choice(["succeeded", "failed"])))
        if n % 97 == 0:
            lines.append(rng.choice([b"\n", b'{"ts":"2026-03-02T0\n', (
                b'{"ts": "2026-03-02T10:00:00Z", "event": "run_finished", "run_id": "night@1", "status": "failed"}\n'),
                b'{"ts":"2026-03-02T10:00:00Z","event":"\\u0072un_missed","schedule":"q",'
                b'"scheduled_for":"2026-03-02T09:00:00Z"}\n']))
    (tmp_path / "2026-03-01.jsonl").write_bytes(lines[0])
    (tmp_path / "2026-03-02.jsonl").write_bytes(b"".join(lines[1:]))
    days = _ordinals(tmp_path)
    for grow in (False, True):
        expected, warned = _cold(tmp_path, caplog)
        shutil.rmtree(tmp_path / ".index", ignore_errors=True)
        build = journal_module._ColdBuild.start(tmp_path, days[1:])
        if not grow:
            _sent_all(build)
        else:
            _took_all(build)
            build._conn.poll(30)  # (it read the file: its entry is on the way)
            with open(tmp_path / "2026-03-02.jsonl", "ab") as handle:
                handle.write(b"".join(lines[1:200]).replace(b"@", b"@again-") + b'{"ts":\n')
            expected, warned = _cold(tmp_path, caplog)
        assert answers(Journal(tmp_path, clock=Clock(NOW), first_build=build)) == expected
        assert _warnings(caplog) == warned
        assert answers(Journal(tmp_path, clock=Clock(NOW))) == expected


def test_a_failed_fork_means_the_open_reads_the_files_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    days = _hostile_journal(tmp_path)
    expected, warned = _cold(tmp_path, caplog)

    def no_fork() -> int:
        raise BlockingIOError(11, "Resource temporarily unavailable")

    monkeypatch.setattr(os, "fork", no_fork)
    assert journal_module._ColdBuild.start(tmp_path, days) is None
    assert Journal.start_first_build(tmp_path) is None
    assert answers(Journal(tmp_path, clock=Clock(NOW))) == expected


def _kill_outside_its_lock(build: Any, sig: int) -> None:
    """Signal the builder at a moment it does not hold the shared bounds (the tests below take the other moments)."""
    lock = build._bounds.get_lock()
    assert lock.acquire(timeout=10)
    try:
        try:
            os.kill(build._process.pid, sig)
        except ProcessLookupError:  # it had sent everything and ended
            pass
        build._process.join(10)
    finally:
        lock.release()


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["SIGKILL", "SIGTERM"])
def test_builder_killed_at_many_moments(tmp_path: Path, caplog: pytest.LogCaptureFixture, sig: int) -> None:
    """Killed before it took anything, after each day it took, mid-message (a partial message in the pipe): the
    open reads the rest itself, logs at most one line naming the signal, and leaves no process."""
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    days = _hostile_journal(tmp_path)
    expected, warned = _cold(tmp_path, caplog)
    name = signal.Signals(sig).name
    for took in range(len(days) + 1):
        shutil.rmtree(tmp_path / ".index", ignore_errors=True)
        build = journal_module._ColdBuild.start(tmp_path, days)
        deadline = time.monotonic() + 30
        while len(days) - build._bounds[1] < took and build._process.is_alive():
            assert time.monotonic() < deadline
            time.sleep(0.0005)
        _kill_outside_its_lock(build, sig)
        assert answers(Journal(tmp_path, clock=Clock(NOW), first_build=build)) == expected, took
        assert _warnings(caplog) == warned
        said = _builder_lines(caplog)
        assert len(said) <= 1 and all(f"was ended by {name}; reading the files here" in m for m in said), said
        caplog.clear()
    # mid-message: killed after sending half a message (the rest never comes)
    caplog.clear()
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(journal_module, "_cold_build_child", functools.partial(_dies_mid_message, sig))
        build = journal_module._ColdBuild.start(tmp_path, days)
        build._process.join(30)
        assert answers(Journal(tmp_path, clock=Clock(NOW), first_build=build)) == expected
    assert [m for m in _builder_lines(caplog)] == [
        f"journal: the second index builder was ended by {name}; reading the files here"]


def _dies_mid_message(sig: int, conn: Any, directory: str, days: list[int], bounds: Any,
                      parent_end: Any = None) -> None:
    def send_half_then_die(data: bytes) -> None:
        conn._send(len(data).to_bytes(4, "big", signed=True))  # (multiprocessing's own header)
        conn._send(data[:len(data) // 2])
        os.kill(os.getpid(), sig)

    conn.send_bytes = send_half_then_die
    _REAL_CHILD(conn, directory, days, bounds, parent_end)


def _takes_then_hangs(conn: Any, directory: str, days: list[int], bounds: Any, parent_end: Any = None) -> None:
    with bounds.get_lock():
        bounds[1] = 2  # took all but the two oldest days
    threading.Event().wait(60)  # stopped (SIGSTOP, a debugger, a frozen cgroup), starved: alive and silent


def test_a_stopped_builder_is_given_up_after_its_timeout(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> None:
    """Alive but silent (stopped, starved) after it took days and before it sent one: the open waits TIMEOUT, says
    so once, kills it and reads the files itself."""
    monkeypatch.setattr(journal_module._ColdBuild, "TIMEOUT", 0.3)
    monkeypatch.setattr(journal_module, "_cold_build_child", _takes_then_hangs)
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    days = _hostile_journal(tmp_path)
    expected, warned = _cold(tmp_path, caplog)
    build = journal_module._ColdBuild.start(tmp_path, days)
    deadline = time.monotonic() + 30
    while build._bounds[1] != 2:
        assert time.monotonic() < deadline
        time.sleep(0.002)
    try:
        assert answers(Journal(tmp_path, clock=Clock(NOW), first_build=build)) == expected
    finally:
        if build._process.is_alive():
            os.kill(build._process.pid, signal.SIGKILL)
            build._process.join(10)
    assert _builder_lines(caplog) == ["journal: the second index builder sent nothing for 0 s; reading the files here"]
    assert _warnings(caplog) == warned
    assert not build._process.is_alive()


@pytest.mark.parametrize("change", ["appended", "truncated", "deleted", "replaced", "new day between",
                                    "emptied", "torn line completed"])
def test_day_files_changed_between_start_first_build_and_the_open(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, change: str) -> None:
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    (tmp_path / "2026-03-01.jsonl").write_bytes(_run(1, 8, 0, "a@1") + _start(1, 23, 59, "x@1"))
    (tmp_path / "2026-03-03.jsonl").write_bytes(_task(3, 0, 0, "x@1") + _run(3, 1, 0, "b@1") + _start(3, 2, 0, "y@1"))
    (tmp_path / "2026-03-04.jsonl").write_bytes(_end(4, 0, 0, "y@1") + _end(4, 0, 1, "x@1", "partial")
                                                + _run(4, 1, 0, "c@1") + b'{"ts":"2026-03-04T02:00:00.000Z","ev')
    build = Journal.start_first_build(tmp_path)
    assert build is not None
    _sent_all(build)
    d3, d4 = tmp_path / "2026-03-03.jsonl", tmp_path / "2026-03-04.jsonl"
    if change == "appended":
        with open(d3, "ab") as handle:  # (a CLI run writing while serve starts; an odd line: warned with its number)
            handle.write(_end(3, 5, 0, "y@1", "failed") + b"\n" + _run(3, 6, 0, "b@2") + b'{"ts":"2026-03-03T07\n'
                         + _end(3, 7, 1, "x@1", "failed"))
    elif change == "truncated":
        data = d3.read_bytes()
        with open(d3, "r+b") as handle:
            handle.truncate(len(data) // 2)
    elif change == "deleted":
        d3.unlink()
    elif change == "replaced":
        tmp = d4.with_suffix(".tmp")
        tmp.write_bytes(d4.read_bytes().replace(b"c@1", b"d@1"))
        os.replace(tmp, d4)
    elif change == "new day between":
        (tmp_path / "2026-03-02.jsonl").write_bytes(_end(2, 0, 0, "x@1", "failed") + _run(2, 1, 0, "n@1"))
    elif change == "emptied":
        d4.write_bytes(b"")
    else:
        with open(d4, "ab") as handle:
            handle.write(b'ent":"run_finished","schedule":"c","run_id":"c@1","status":"failed"}\n')
    expected, warned = _cold(tmp_path, caplog)
    assert answers(Journal(tmp_path, clock=Clock(NOW), first_build=build)) == expected
    assert _warnings(caplog) == warned
    assert answers(Journal(tmp_path, clock=Clock(NOW))) == expected


def _settings(tmp_path: Path) -> Any:
    from zmi_reconciler.config import Settings

    settings = Settings(data_dir=tmp_path / "var", schedules_dir=tmp_path / "schedules.d", port=1)
    settings.journal_path.mkdir(parents=True)
    return settings


def _lock_is_free(settings: Any) -> bool:
    from zmi_reconciler.locks import StoreBusyError, acquire_server_lock

    try:
        acquire_server_lock(settings).release()
    except StoreBusyError:
        return False
    return True


def _serve_starts_then_dies(settings: Any, days: list[int], pid_path: str) -> None:
    """A server killed (SIGKILL) during start-up while its builder works; it holds the server lock, as _serve does
    when it starts the builder itself (run()'s early guess was not the journal)."""
    from zmi_reconciler.locks import acquire_server_lock

    held = acquire_server_lock(settings)
    build = journal_module._ColdBuild.start(settings.journal_path, days)
    Path(pid_path).write_text(str(build._process.pid))
    _took_all(build)
    os.kill(os.getpid(), signal.SIGKILL)
    held.release()  # (never reached; keeps the lock referenced until the kill)


def test_a_killed_server_leaves_no_builder_and_its_lock_free(tmp_path: Path) -> None:
    settings = _settings(tmp_path)
    days = _big_journal(settings.journal_path)
    pid_path = tmp_path / "builder.pid"
    assert _finishes(_serve_starts_then_dies, (settings, days, str(pid_path)), 60) == -signal.SIGKILL
    pid = int(pid_path.read_text())
    assert _wait_gone(pid, 10), "the builder of a killed server stayed behind"
    assert _lock_is_free(settings)  # (a restart can take the server lock)


def _serve_cmd(tmp_path: Path) -> list[str]:
    code = ("import sys; from zmi_reconciler.journal import Journal; Journal.PARALLEL_BUILD_BYTES = 1; "
            "from zmi_reconciler.cli import main; sys.exit(main(sys.argv[1:]))")
    return [sys.executable, "-c", code, "serve", "--data-dir", str(tmp_path / "var"),
            "--schedules-dir", str(tmp_path / "schedules.d"), "--port", "0", "--log-level", "INFO"]


@pytest.mark.parametrize("how", ["SIGTERM at once", "SIGTERM", "SIGTERM to the group", "SIGKILL"])
def test_serve_stopped_during_start_up_leaves_no_builder(tmp_path: Path, how: str) -> None:
    """A real ``serve`` (its builder blocked on a send until the open reads) stopped while it starts: at once
    (the builder is forked before the signal handlers exist: ended by the signal) or once it logs (handlers in
    place: exit 0). No traceback, no builder left."""
    import psutil

    (tmp_path / "schedules.d").mkdir()
    journal_dir = tmp_path / "var" / "journal"
    journal_dir.mkdir(parents=True)
    _big_journal(journal_dir)
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZMI_")}
    env["PYTHONPATH"] = str(Path(journal_module.__file__).resolve().parents[1])
    proc = subprocess.Popen(_serve_cmd(tmp_path), env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            start_new_session=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(raw.decode() for raw in proc.stderr), daemon=True)
    reader.start()
    builders: list[int] = []
    try:
        deadline = time.monotonic() + 30
        while not builders:  # the forked builder shows up first thing
            assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)[-2000:]
            builders = [c.pid for c in psutil.Process(proc.pid).children() if c.status() != "zombie"]
            time.sleep(0.002)
        if how != "SIGTERM at once":
            while not any("zmi_reconciler.serve" in line for line in lines):  # logging and handlers are set up
                assert proc.poll() is None and time.monotonic() < deadline, "".join(lines)[-2000:]
                time.sleep(0.002)
        if how.startswith("SIGTERM"):
            (os.killpg if how.endswith("group") else os.kill)(proc.pid, signal.SIGTERM)
        else:
            proc.kill()
        code = proc.wait(30)
        reader.join(10)
        err = "".join(lines)
        assert "Traceback" not in err, err[-3000:]
        if how == "SIGTERM at once":
            assert code in (0, -signal.SIGTERM)
        elif how != "SIGKILL":
            assert code == 0, err[-3000:]
            assert "stopped" in err
        for pid in builders:
            assert _wait_gone(pid, 10), f"builder {pid} stayed behind ({how})"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        for pid in builders:
            if not _gone(pid):
                os.kill(pid, signal.SIGKILL)


# ---------------------------------------------------------------------------------------------------- breaks
class _DiesInsideItsLock:
    """The builder's shared bounds, whose process is killed (SIGKILL: OOM killer, kill -9, a crash) right after
    it took a day, i.e. while it holds the bounds' lock (the real builder code runs around it)."""

    def __init__(self, real: Any) -> None:
        self._real = real

    def get_lock(self) -> Any:
        return self._real.get_lock()

    def __getitem__(self, index: int) -> int:
        return self._real[index]

    def __setitem__(self, index: int, value: int) -> None:
        self._real[index] = value
        os.kill(os.getpid(), signal.SIGKILL)


def _dies_holding_the_lock(conn: Any, directory: str, days: list[int], bounds: Any, parent_end: Any = None) -> None:
    _REAL_CHILD(conn, directory, days, _DiesInsideItsLock(bounds), parent_end)


def _open_after_the_builder_died(directory: str, days: list[int]) -> None:
    build = journal_module._ColdBuild.start(Path(directory), days)
    build._process.join(30)
    expected = answers(Journal(Path(directory), clock=Clock(NOW), index_cache=False))
    os._exit(0 if answers(Journal(Path(directory), clock=Clock(NOW), first_build=build)) == expected else 1)


def test_a_builder_killed_inside_its_critical_section_does_not_hang_the_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A builder killed while it holds the shared bounds lock never gives it back: claim() waited for it forever
    (no timeout); it now looks at the child between short waits and reads what the child did not send."""
    monkeypatch.setattr(journal_module, "_cold_build_child", _dies_holding_the_lock)
    days = _hostile_journal(tmp_path)
    assert _finishes(_open_after_the_builder_died, (str(tmp_path), days), 1.5) == 0, "the open hung"


class _AnnouncesItsWait:
    """The builder's shared bounds, announcing (a file) each time the builder is about to take their lock."""

    def __init__(self, real: Any, path: str) -> None:
        self._real = real
        self._path = path

    def get_lock(self) -> Any:
        Path(self._path).touch()
        return self._real.get_lock()

    def __getitem__(self, index: int) -> int:
        return self._real[index]

    def __setitem__(self, index: int, value: int) -> None:
        self._real[index] = value


def _dies_inside_claim(directory: str, days: list[int], pid_path: str) -> None:
    """A server killed (SIGKILL) inside _ColdBuild.claim, i.e. while it holds the bounds lock, at a moment its
    builder waits for that lock (it checked that its parent lives just before)."""
    waiting = Path(pid_path + ".waiting")
    real_start = journal_module.forked.start

    def announcing(conn: Any, directory: str, days: list[int], bounds: Any, parent_end: Any = None) -> None:
        _REAL_CHILD(conn, directory, days, _AnnouncesItsWait(bounds, str(waiting)), parent_end)

    def start_with_the_lock_held(target: Any, args: Any, name: str) -> Any:
        args[2].get_lock().acquire()  # the open claims its first day before the builder took one
        return real_start(announcing, args, name)

    journal_module.forked.start = start_with_the_lock_held  # (this process only)
    build = journal_module._ColdBuild.start(Path(directory), days)
    Path(pid_path).write_text(str(build._process.pid))
    deadline = time.monotonic() + 30
    while not waiting.exists() and time.monotonic() < deadline:  # the builder waits for the lock now
        time.sleep(0.001)
    os.kill(os.getpid(), signal.SIGKILL)


def _serve_dies_inside_claim(settings: Any, days: list[int], pid_path: str) -> None:
    from zmi_reconciler.locks import acquire_server_lock

    held = acquire_server_lock(settings)  # as _serve, which starts the builder itself when run()'s guess was not it
    _dies_inside_claim(str(settings.journal_path), days, pid_path)
    held.release()  # (never reached)


def test_a_server_killed_inside_claim_leaves_no_builder(tmp_path: Path) -> None:
    """A server killed while it holds the bounds lock: its builder waited for the lock forever (an orphan that never
    exits); it now waits in short steps and ends once its parent is gone."""
    settings = _settings(tmp_path)
    days = _hostile_journal(settings.journal_path)
    pid_path = tmp_path / "builder.pid"
    assert _finishes(_serve_dies_inside_claim, (settings, days, str(pid_path)), 30) == -signal.SIGKILL
    pid = int(pid_path.read_text())
    try:
        gone = _wait_gone(pid, 1)
        assert _lock_is_free(settings)  # (it holds no lock of the server: a restart starts; it just stays forever)
    finally:
        if not _gone(pid):
            os.kill(pid, signal.SIGKILL)  # the builder this test started
    assert gone, "the builder of a killed server is still there"


def _hangs_mid_message(conn: Any, directory: str, days: list[int], bounds: Any, parent_end: Any = None) -> None:
    def send_half_then_hang(data: bytes) -> None:
        deadline = time.monotonic() + 30
        while bounds[1] > bounds[0] and time.monotonic() < deadline:  # (the builder's other thread takes the days)
            time.sleep(0.001)
        conn._send(len(data).to_bytes(4, "big", signed=True))  # (multiprocessing's own header)
        conn._send(data[:len(data) // 2])
        threading.Event().wait(60)  # stopped (SIGSTOP, a debugger, a frozen cgroup), starved: alive and silent

    conn.send_bytes = send_half_then_hang
    _REAL_CHILD(conn, directory, days, bounds, parent_end)


def _open_with_a_stuck_builder(directory: str, days: list[int]) -> None:
    build = journal_module._ColdBuild.start(Path(directory), days)
    _took_all(build)
    try:
        Journal(Path(directory), clock=Clock(NOW), first_build=build)
    finally:
        if build._process.is_alive():
            os.kill(build._process.pid, signal.SIGKILL)
    os._exit(0)


def test_a_builder_stuck_mid_message_is_given_up_after_its_timeout(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A builder stopped in the middle of a message: the open waited in recv_bytes() forever (TIMEOUT only covered
    a builder that sent nothing); messages are now read by a thread and the open waits at most TIMEOUT."""
    monkeypatch.setattr(journal_module._ColdBuild, "TIMEOUT", 0.3)
    monkeypatch.setattr(journal_module, "_cold_build_child", _hangs_mid_message)
    days = _hostile_journal(tmp_path)
    assert _finishes(_open_with_a_stuck_builder, (str(tmp_path), days), 1.5) == 0, "the open hung"


def test_a_pid_beyond_64_bits_does_not_break_the_first_build(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """A run_started with a pid beyond 64 bits made the cache write raise OverflowError (msgpack); such a pid now
    counts as none."""
    (tmp_path / "2026-03-01.jsonl").write_bytes(_run(1, 8, 0, "a@1"))
    (tmp_path / "2026-03-02.jsonl").write_bytes(_start(2, 6, 0, "big@1", pid=2**64) + _end(2, 6, 1, "big@1"))
    expected, _ = _cold(tmp_path, caplog)
    assert expected["big"]["count"] == 1
    build = journal_module._ColdBuild.start(tmp_path, _ordinals(tmp_path)[1:])
    _took_all(build)
    assert answers(Journal(tmp_path, clock=Clock(NOW), first_build=build)) == expected


def test_a_pid_beyond_64_bits_in_an_orphan_line_does_not_crash_the_builder(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, capfd: pytest.CaptureFixture[str]) -> None:
    """The same pid in a line of an earlier file's run crashed the builder when it encoded the line for the open."""
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    days = _hostile_journal(tmp_path)
    with open(tmp_path / "2026-03-04.jsonl", "ab") as handle:  # an end of a run of 03-02, with the writer's pid
        handle.write(_line(ts=_ts(4, 9, 0), event="run_finished", schedule="a", run_id="a@2", status="failed",
                           pid=2**64))
    expected, warned = _cold(tmp_path, caplog)
    build = journal_module._ColdBuild.start(tmp_path, days[1:])
    _took_all(build)
    assert answers(Journal(tmp_path, clock=Clock(NOW), first_build=build)) == expected  # holds
    assert _warnings(caplog) == warned  # holds
    assert "Traceback" not in capfd.readouterr().err and _builder_lines(caplog) == []


def test_an_instant_that_overflows_utc_is_skipped_with_a_warning(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """0001-01-01T00:00:00+01:00 raised OverflowError out of the open (cold or not); it is an invalid line now."""
    caplog.set_level(logging.WARNING, logger="zmi_reconciler.journal")
    days = _hostile_journal(tmp_path)
    with open(tmp_path / "2026-03-05.jsonl", "ab") as handle:
        handle.write(_line(ts="0001-01-01T00:00:00+01:00", event="run_finished", schedule="a", run_id="a@4",
                           status="failed"))
    lines = len((tmp_path / "2026-03-05.jsonl").read_bytes().splitlines())
    build = journal_module._ColdBuild.start(tmp_path, days[2:])
    _took_all(build)
    try:
        built = Journal(tmp_path, clock=Clock(NOW), first_build=build)
    finally:
        build.cancel()
    assert built.get_run("a@4")["status"] == "succeeded"  # type: ignore[index]
    assert any(f"2026-03-05.jsonl:{lines}: invalid line skipped" in m for m in _warnings(caplog))
    expected, _ = _cold(tmp_path, caplog)
    assert answers(built) == expected


def test_a_hand_written_escape_inside_the_event_name(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """"r\\u0075n_started": the fast path only refused an escape right after '"event":"', so whether the line
    counted depended on the other lines of its chunk; any \\u escape in an event value now sends it to the full path."""
    (tmp_path / "2026-03-01.jsonl").write_bytes(_run(1, 8, 0, "a@1") + _start(1, 23, 59, "a@2"))
    d2 = tmp_path / "2026-03-02.jsonl"
    d2.write_bytes(_end(2, 0, 1, "a@2") + _run(2, 8, 0, "a@3")
                   + b'{"ts":"2026-03-02T09:00:00.000Z","event":"r\\u0075n_started","schedule":"hand",'
                     b'"run_id":"hand@1","trigger":"manual"}\n' + _task(2, 9, 0, "hand@1") + _end(2, 9, 1, "hand@1"))
    build = journal_module._ColdBuild.start(tmp_path, _ordinals(tmp_path)[1:])
    _sent_all(build)
    with open(d2, "ab") as handle:  # while serve imports its API: a blank line (or any odd line) is appended
        handle.write(b"\n")
    expected, _ = _cold(tmp_path, caplog)
    assert expected["hand"]["count"] == 1
    assert answers(Journal(tmp_path, clock=Clock(NOW), first_build=build)) == expected


def test_without_posix_semaphores_the_open_reads_the_files_itself(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """Without sem_open (AWS Lambda, no /dev/shm) the shared bounds raised OSError out of Journal(); now no
    second builder starts and the open reads the files itself."""
    import errno
    import multiprocessing.sharedctypes

    days = _hostile_journal(tmp_path)
    expected, _ = _cold(tmp_path, caplog)

    def no_semaphores(*args: Any, **kwargs: Any) -> Any:
        raise OSError(errno.ENOSYS, "Function not implemented")

    monkeypatch.setattr(multiprocessing.sharedctypes, "Array", no_semaphores)
    assert answers(Journal(tmp_path, clock=Clock(NOW))) == expected
    assert journal_module._ColdBuild.start(tmp_path, days) is None
