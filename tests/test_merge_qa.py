"""QA of Journal._merge_side: where the first build meets the second builder it takes all the child's files at
once. Every open with a first build must answer, warn and save a cache exactly like a cold open."""

from __future__ import annotations

import logging
import random
import multiprocessing
import os
import shutil
from pathlib import Path
from typing import Any, Callable

import pytest

from test_first_build_qa import NOW, _end, _line, _run, _sent_all, _start, _task, _ts, _warnings
from test_journal_cache import Clock, _spy_entries, answers
from zmi_reconciler import journal as journal_module
from zmi_reconciler.journal import Journal

pytestmark = pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")


def _slot(day: int, hh: int, mm: int, sid: str, event: str = "run_skipped") -> bytes:
    return _line(ts=_ts(day, hh, mm), event=event, schedule=sid, scheduled_for=_ts(day, hh, mm), reason="overlap")


def _chain_journal(directory: Path) -> list[int]:
    """Six days: runs of the first days ending in later ones, ids named before they start, interrupts after ends,
    slots and successes spread over both parts, schedules only on one side."""
    directory.mkdir(parents=True, exist_ok=True)
    days = {
        1: [_run(1, 8, 0, "srv@1"), _start(1, 23, 59, "a@1"), _task(1, 23, 59, "a@1")],
        2: [_task(2, 0, 1, "a@1", 1), _start(2, 23, 50, "b@1"), _slot(2, 22, 0, "c"), _run(2, 9, 0, "srv@2", "failed"),
            _start(2, 23, 55, "x@1"), _end(2, 23, 56, "x@1", "succeeded")],
        3: [_task(3, 0, 0, "b@1"), _end(3, 0, 5, "b@1", "succeeded"), _run(3, 1, 0, "c@1"),
            _end(3, 2, 0, "late@1", "failed"),  # late@1 starts on day 5
            _start(3, 3, 0, "r@3"), _line(ts=_ts(3, 3, 1), event="run_interrupted", schedule="x", run_id="x@1"),
            _task(3, 4, 0, "a@1", 2), _slot(3, 5, 0, "srv", "run_missed")],
        4: [_task(4, 0, 0, "r@3"), _line(ts=_ts(4, 0, 1), event="run_interrupted", schedule="r", run_id="r@3"),
            _slot(4, 6, 0, "a", "run_missed"), _task(4, 7, 0, "late@1"), _run(4, 8, 0, "c@2", "partial"),
            _end(4, 9, 0, "a@1", "partial")],
        5: [_end(5, 0, 0, "r@3", "failed"), _start(5, 1, 0, "late@1", "manual"), _run(5, 2, 0, "ch@1"),
            _start(5, 23, 0, "span@5"), _end(5, 23, 1, "a@1", "succeeded")],  # a@1 ended a second time
        6: [_task(6, 0, 0, "span@5"), _end(6, 0, 1, "late@1", "succeeded"), _start(6, 1, 0, "open@1"),
            _task(6, 1, 1, "open@1"), _run(6, 2, 0, "d@1"), _slot(6, 3, 0, "c"), _end(6, 4, 0, "span@5", "succeeded")],
    }
    for day, parts in days.items():
        (directory / f"2026-03-{day:02d}.jsonl").write_bytes(b"".join(parts))
    return _ordinals(directory)


def _ordinals(directory: Path) -> list[int]:
    from datetime import date
    return sorted(date.fromisoformat(p.stem).toordinal() for p in directory.glob("*.jsonl"))


def _cold_copy(directory: Path, name: str) -> Path:
    copy = directory.parent / name
    shutil.rmtree(copy, ignore_errors=True)
    shutil.copytree(directory, copy, ignore=shutil.ignore_patterns(".index", ".lock*"))
    return copy


def _first_build(directory: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, k: int,
                 change: Callable[[], None] | None = None, merge: bool | None = True
                 ) -> tuple[Journal, dict[str, Any], list[str]]:
    """Child reads days[k:] alone (and has sent them), ``change`` alters the files, then the open meets it.
    Asserts the open answers and warns as a cold open; returns the journal, the cold answers and warnings."""
    monkeypatch.setattr(Journal, "PARALLEL_BUILD_BYTES", 1)
    caplog.set_level(logging.INFO, logger="zmi_reconciler.journal")
    shutil.rmtree(directory / ".index", ignore_errors=True)
    days = _ordinals(directory)
    build = journal_module._ColdBuild.start(directory, days[k:])
    assert build is not None
    _sent_all(build)
    if change is not None:
        change()
    caplog.clear()
    expected = answers(Journal(directory, clock=Clock(NOW), index_cache=False))
    warned = _warnings(caplog)
    merged: list[int] = []
    _spy_entries(monkeypatch, merged)
    built = Journal(directory, clock=Clock(NOW), first_build=build)
    if merge is True:
        assert merged == days[k:], "the open did not take the child's part at once"
    elif merge is False:
        assert merged == []
    assert answers(built) == expected
    assert _warnings(caplog) == warned
    return built, expected, warned


def _reopen_same(directory: Path, expected: dict[str, Any], warned: list[str] | None,
                 caplog: pytest.LogCaptureFixture) -> None:
    caplog.clear()
    assert answers(Journal(directory, clock=Clock(NOW))) == expected  # from the entries the open saved
    if warned is not None:
        assert _warnings(caplog) == warned


@pytest.fixture(autouse=True)
def _no_builder_left() -> Any:
    yield
    assert multiprocessing.active_children() == []


# ------------------------------------------------------------------------------------------------ the merge holds
@pytest.mark.parametrize("k", [1, 2, 3, 4, 5])
def test_runs_crossing_child_days_at_every_meeting_point(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, k: int) -> None:
    directory = tmp_path / "j"
    _chain_journal(directory)
    built, expected, warned = _first_build(directory, monkeypatch, caplog, k)
    assert expected["get_run"]["late@1"]["status"] == "succeeded"
    assert expected["get_run"]["a@1"]["status"] == "succeeded"
    assert expected["get_run"]["r@3"]["status"] == "failed"
    assert expected["c"]["last_slot"] is not None
    _reopen_same(directory, expected, warned, caplog)
    # orphaned runs and close_interrupted, compared with a cold open of a copy
    cold_dir = _cold_copy(directory, "cold")
    cold = Journal(cold_dir, clock=Clock(NOW), index_cache=False)
    assert built.orphaned_runs() == cold.orphaned_runs() == ["open@1"]
    assert built.close_interrupted() == cold.close_interrupted()
    assert answers(built) == answers(cold)
    # appends by the same journal: a run of an older file ends, new runs, a new day
    for journal in (built, cold):
        clock = Clock(NOW)
        journal._clock = clock
        journal.append("run_finished", schedule="span", run_id="span@5", status="failed")  # ended twice
        journal.append("run_started", schedule="c", run_id="c@9", trigger="scheduled", scheduled_for=NOW)
        journal.append("run_finished", schedule="c", run_id="c@9", status="succeeded")
        clock.advance(days=1)
        journal.append("run_started", schedule="ch", run_id="ch@9", trigger="manual", pid=1)
        journal.close()
    assert answers(built) == answers(cold)
    expected = answers(Journal(directory, clock=Clock(NOW), index_cache=False))
    assert answers(built) == expected
    _reopen_same(directory, expected, None, caplog)


def test_schedules_only_on_one_side_and_slots_from_both(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "j"
    directory.mkdir()
    (directory / "2026-03-01.jsonl").write_bytes(_run(1, 1, 0, "srvonly@1") + _run(1, 23, 0, "both@1")
                                                 + _slot(1, 23, 30, "both"))
    (directory / "2026-03-02.jsonl").write_bytes(_run(2, 1, 0, "both@2", "failed") + _slot(2, 2, 0, "skiponly")
                                                 + _run(2, 3, 0, "childonly@1"))
    (directory / "2026-03-03.jsonl").write_bytes(_slot(3, 0, 10, "srvonly", "run_missed") + _run(3, 1, 0, "both@3"))
    built, expected, warned = _first_build(directory, monkeypatch, caplog, 1)
    assert expected["both"]["last_success"] is not None and expected["skiponly"]["last_slot"] is not None
    assert expected["srvonly"]["last_slot"].day == 3
    _reopen_same(directory, expected, warned, caplog)


def test_slots_of_the_child_older_than_the_servers_stay_the_servers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    """last_slot is the max over both parts, whichever side holds the later one (scheduled_for is not ts)."""
    directory = tmp_path / "j"
    directory.mkdir()
    late = _line(ts=_ts(1, 1, 0), event="run_started", schedule="s", run_id="s@1", trigger="catch_up",
                 scheduled_for=_ts(9, 0, 0), pid=12)
    (directory / "2026-03-01.jsonl").write_bytes(late + _end(1, 1, 5, "s@1"))
    (directory / "2026-03-02.jsonl").write_bytes(_run(2, 1, 0, "s@2") + _slot(2, 5, 0, "s"))
    (directory / "2026-03-03.jsonl").write_bytes(_run(3, 1, 0, "s@3", "failed"))
    built, expected, warned = _first_build(directory, monkeypatch, caplog, 1)
    assert expected["s"]["last_slot"].day == 9
    _reopen_same(directory, expected, warned, caplog)


def test_newest_file_grows_between_the_childs_read_and_the_open(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "j"
    _chain_journal(directory)
    newest = directory / "2026-03-06.jsonl"

    def grow() -> None:
        with open(newest, "ab") as handle:
            handle.write(_end(6, 5, 0, "open@1", "failed")      # a run the child read in this file
                         + _end(6, 5, 1, "b@1", "failed")      # a run of the server's part, ended again
                         + _task(6, 5, 2, "r@3")               # a line of a run of an older child file
                         + _start(6, 6, 0, "ch@1")             # an id of an older child file started again
                         + _run(6, 7, 0, "new@1")
                         + b'{"ts":"2026-03-06T08:00:00.000Z","event":"run_fin')  # torn

    built, expected, warned = _first_build(directory, monkeypatch, caplog, 2, grow)
    assert any("incomplete last line" in w for w in warned)
    _reopen_same(directory, expected, warned, caplog)
    with open(newest, "ab") as handle:  # the torn line completed by another writer
        handle.write(b'ished","schedule":"new","run_id":"new@1","status":"failed"}\n')
    built.refresh(force=True)
    again = answers(Journal(directory, clock=Clock(NOW), index_cache=False))
    assert answers(built) == again
    built.close()
    _reopen_same(directory, again, None, caplog)


def test_newest_file_grows_with_an_invalid_line_and_a_run_that_ends_a_hidden_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "j"
    directory.mkdir()
    (directory / "2026-03-01.jsonl").write_bytes(_start(1, 23, 0, "a@1"))
    (directory / "2026-03-02.jsonl").write_bytes(_end(2, 0, 0, "z@1", "failed") + _task(2, 0, 1, "a@1"))
    (directory / "2026-03-03.jsonl").write_bytes(_start(3, 0, 0, "z@1") + _run(3, 1, 0, "b@1"))

    def grow() -> None:
        with open(directory / "2026-03-03.jsonl", "ab") as handle:
            handle.write(_line(ts="2026-03-03T25:00:00Z", event="run_finished", schedule="a", run_id="a@1",
                               status="failed") + b"not json\n" + _end(3, 3, 0, "z@1", "partial"))

    built, expected, warned = _first_build(directory, monkeypatch, caplog, 1, grow)
    assert len(warned) == 2
    _reopen_same(directory, expected, warned, caplog)


@pytest.mark.parametrize("change", ["older grew", "replaced same size", "newer day created", "day between created",
                                    "older deleted", "newest deleted", "newest emptied"])
def test_files_changed_after_the_childs_read(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, change: str) -> None:
    directory = tmp_path / "j"
    _chain_journal(directory)

    def alter() -> None:
        if change == "older grew":
            with open(directory / "2026-03-04.jsonl", "ab") as handle:
                handle.write(_end(4, 23, 0, "late@1", "partial") + _run(4, 23, 10, "c@9") + _end(4, 23, 20, "r@3"))
        elif change == "replaced same size":
            path = directory / "2026-03-05.jsonl"
            tmp = path.with_suffix(".tmp")
            tmp.write_bytes(path.read_bytes().replace(b"ch@1", b"zz@1"))
            os.replace(tmp, path)
        elif change == "newer day created":
            (directory / "2026-03-07.jsonl").write_bytes(_end(7, 0, 0, "open@1") + _run(7, 1, 0, "c@7"))
        elif change == "day between created":
            (directory / "2026-03-02.jsonl").rename(directory / "keep")
            (directory / "2026-03-04.jsonl").rename(directory / "2026-03-02.jsonl")
            (directory / "keep").rename(directory / "2026-03-04.jsonl")
        elif change == "older deleted":
            (directory / "2026-03-04.jsonl").unlink()
        elif change == "newest deleted":
            (directory / "2026-03-06.jsonl").unlink()
        elif change == "newest emptied":
            (directory / "2026-03-06.jsonl").write_bytes(b"")

    built, expected, warned = _first_build(directory, monkeypatch, caplog, 2, alter, merge=None)
    _reopen_same(directory, expected, warned, caplog)


def test_empty_child_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "j"
    directory.mkdir()
    (directory / "2026-03-01.jsonl").write_bytes(_start(1, 23, 0, "a@1"))
    (directory / "2026-03-02.jsonl").write_bytes(_task(2, 0, 0, "a@1"))
    (directory / "2026-03-03.jsonl").write_bytes(b"")
    (directory / "2026-03-04.jsonl").write_bytes(_end(4, 0, 0, "a@1") + _run(4, 1, 0, "b@1"))
    (directory / "2026-03-05.jsonl").write_bytes(b"\n")
    built, expected, warned = _first_build(directory, monkeypatch, caplog, 1, merge=None)
    _reopen_same(directory, expected, warned, caplog)
    built.append("run_started", schedule="b", run_id="b@2", trigger="manual")
    assert answers(built) == answers(Journal(directory, clock=Clock(NOW), index_cache=False))


def test_only_task_lines_in_the_childs_files(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "j"
    directory.mkdir()
    (directory / "2026-03-01.jsonl").write_bytes(_start(1, 23, 0, "a@1") + _start(1, 23, 1, "b@1"))
    (directory / "2026-03-02.jsonl").write_bytes(_task(2, 0, 0, "a@1") + _task(2, 0, 1, "b@1"))
    (directory / "2026-03-03.jsonl").write_bytes(_task(3, 0, 0, "b@1", 1) + _end(3, 0, 1, "a@1")
                                                 + _line(ts=_ts(3, 0, 2), event="run_interrupted", run_id="b@1"))
    (directory / "2026-03-04.jsonl").write_bytes(_end(4, 0, 0, "b@1", "failed") + _task(4, 0, 1, "a@1"))
    built, expected, warned = _first_build(directory, monkeypatch, caplog, 1)
    assert expected["get_run"]["b@1"]["status"] == "failed"
    _reopen_same(directory, expected, warned, caplog)


def test_a_run_id_named_in_child_files_before_and_after_it_starts_in_a_later_one(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    directory = tmp_path / "j"
    directory.mkdir()
    (directory / "2026-03-01.jsonl").write_bytes(_run(1, 1, 0, "s@1"))
    (directory / "2026-03-02.jsonl").write_bytes(_end(2, 0, 0, "q@1", "failed") + _task(2, 0, 1, "q@1"))
    (directory / "2026-03-03.jsonl").write_bytes(_line(ts=_ts(3, 0, 0), event="run_interrupted", run_id="q@1")
                                                 + _run(3, 1, 0, "s@2"))
    (directory / "2026-03-04.jsonl").write_bytes(_start(4, 0, 0, "q@1") + _task(4, 0, 1, "q@1"))
    (directory / "2026-03-05.jsonl").write_bytes(_line(ts=_ts(5, 0, 0), event="run_interrupted", run_id="q@1")
                                                 + _end(5, 0, 1, "q@1", "succeeded"))
    built, expected, warned = _first_build(directory, monkeypatch, caplog, 1)
    assert expected["get_run"]["q@1"]["status"] == "succeeded"
    _reopen_same(directory, expected, warned, caplog)
    cold_dir = _cold_copy(directory, "cold")
    cold = Journal(cold_dir, clock=Clock(NOW), index_cache=False)
    assert built.orphaned_runs() == cold.orphaned_runs()


def _random_days(rng: random.Random, ndays: int) -> dict[int, list[bytes]]:
    days: dict[int, list[bytes]] = {d: [] for d in range(1, ndays + 1)}
    open_runs: list[str] = []
    n = 0
    for d in range(1, ndays + 1):
        for hh in range(0, 23, 2):
            roll = rng.random()
            sid = rng.choice("abc")
            if roll < 0.3:
                n += 1
                days[d].append(_run(d, hh, 0, f"{sid}@{n}", rng.choice(["succeeded", "failed", "partial"]),
                                    rng.choice(["scheduled", "catch_up", "manual"])))
            elif roll < 0.5:
                n += 1
                run_id = f"{sid}@{n}"
                days[d].append(_start(d, hh, 0, run_id, rng.choice(["scheduled", "manual"])))
                open_runs.append(run_id)
            elif roll < 0.7 and open_runs:
                run_id = rng.choice(open_runs)
                if rng.random() < 0.5:
                    days[d].append(_task(d, hh, 1, run_id))
                else:
                    event = rng.choice(["run_finished", "run_finished", "run_interrupted"])
                    days[d].append(_end(d, hh, 1, run_id, rng.choice(["succeeded", "failed"]), event))
            elif roll < 0.8:
                days[d].append(_slot(d, hh, rng.randrange(60), sid, rng.choice(["run_skipped", "run_missed"])))
            elif roll < 0.9:
                future = f"{sid}@f{n + 1000}"
                days[d].append(_end(d, hh, 2, future, "failed"))  # named before it starts (maybe never)
                if rng.random() < 0.5 and d < ndays:
                    later = rng.randrange(d + 1, ndays + 1)
                    days[later].append(_start(later, 23, rng.randrange(60), future, "manual"))
                n += 1
    return days


@pytest.mark.parametrize("seed", range(10))
def test_random_merges(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture,
                       seed: int) -> None:
    rng = random.Random(seed)
    directory = tmp_path / "j"
    directory.mkdir()
    ndays = rng.randrange(3, 7)
    for day, parts in _random_days(rng, ndays).items():
        (directory / f"2026-03-{day:02d}.jsonl").write_bytes(b"".join(parts) or _slot(day, 0, 0, "e"))
    k = rng.randrange(1, ndays)
    grow = None
    if rng.random() < 0.5:
        def grow() -> None:
            more = b"".join(parts for parts in _random_days(rng, ndays)[ndays])
            with open(directory / f"2026-03-{ndays:02d}.jsonl", "ab") as handle:
                handle.write(more.replace(b"@", b"@g") + _end(ndays, 23, 59, "a@1", "failed"))
    built, expected, warned = _first_build(directory, monkeypatch, caplog, k, grow, merge=None)
    _reopen_same(directory, expected, warned, caplog)
    built.append("run_started", schedule="a", run_id="a@new", trigger="scheduled", scheduled_for=NOW)
    built.close()
    expected = answers(Journal(directory, clock=Clock(NOW), index_cache=False))
    assert answers(built) == expected
    _reopen_same(directory, expected, None, caplog)
