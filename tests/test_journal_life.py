"""The journal index keeps each schedule's life events (``schedule_loaded``/``_paused``/``_resumed``/``_removed``)
so that a start knows whether a schedule ran when the last server stopped (SPEC 3.3, :meth:`Journal.running_since`):
read from the lines (fast and full path), appended live, replayed from the cache and taken from a second builder
alike. Clocks are injected; nothing sleeps."""

from __future__ import annotations

import json
import multiprocessing
import shutil
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from test_journal_cache import Clock, _child_took_all, _run, answers
from zmi_reconciler import journal as journal_module
from zmi_reconciler.journal import Journal

T = datetime(2026, 3, 27, 22, 0, tzinfo=timezone.utc)


def _life(journal: Journal, clock: Clock, sid: str, event: str, **fields: Any) -> datetime:
    at = clock()
    journal.append(event, schedule=sid, **fields)
    clock.advance(minutes=5)
    return at


def test_running_since_follows_pauses_resumes_removals_and_loads(tmp_path: Path) -> None:
    clock = Clock(T)
    journal = Journal(tmp_path, clock=clock)
    assert journal.running_since("a") is None
    _life(journal, clock, "a", "schedule_loaded", enabled=True)  # a start of a server that ran it: says nothing
    assert journal.running_since("a") is None
    paused = _life(journal, clock, "a", "schedule_paused")
    assert journal.running_since("a") == (False, paused)
    resumed = _life(journal, clock, "a", "schedule_resumed")
    assert journal.running_since("a") == (True, resumed)
    _life(journal, clock, "a", "schedule_loaded", enabled=True)  # a later start: it still runs since the resume
    assert journal.running_since("a") == (True, resumed)
    removed = _life(journal, clock, "a", "schedule_removed", file=None)
    assert journal.running_since("a") == (False, removed)
    again = _life(journal, clock, "a", "schedule_loaded", enabled=True)  # created again: runs since then
    assert journal.running_since("a") == (True, again)
    off = _life(journal, clock, "a", "schedule_loaded", enabled=False)  # a start with it paused in its file
    assert journal.running_since("a") == (False, off)
    _life(journal, clock, "a", "schedule_loaded", enabled="yes")  # not a boolean: says nothing
    _life(journal, clock, "a", "schedule_updated")
    _life(journal, clock, "b", "schedule_paused")
    assert journal.running_since("a") == (False, off)
    assert Journal(tmp_path, clock=clock, index_cache=False).running_since("a") == (False, off)
    assert Journal(tmp_path, clock=clock).running_since("b") is not None


def _history(directory: Path, clock: Clock) -> dict[str, Any]:
    """Four days: runs, life events spread over the days (a pause on one day, the resume on the next, a removal
    and a re-creation across midnight, loads of every start), then the expected answers of a cold open."""
    journal = Journal(directory, clock=clock, index_cache=False)
    for day in range(4):
        for sid in ("a", "b", "c", "d"):
            _life(journal, clock, sid, "schedule_loaded", enabled=not (sid == "d" and day == 2))
            _run(journal, clock, sid, "succeeded")
        if day == 0:
            _life(journal, clock, "a", "schedule_paused")
        if day == 1:
            _life(journal, clock, "a", "schedule_resumed")
            _life(journal, clock, "b", "schedule_removed")
        if day == 2:
            _life(journal, clock, "b", "schedule_loaded", enabled=True)
        if day == 3:
            _life(journal, clock, "c", "schedule_paused")
        clock.advance(hours=23)
    journal.close()
    return answers(Journal(directory, clock=clock, index_cache=False))


def test_the_cache_and_every_path_that_reads_lines_keep_the_same_life(tmp_path: Path) -> None:
    clock = Clock(T)
    expected = _history(tmp_path, clock)
    assert expected["a"]["running_since"][0] is True and expected["c"]["running_since"][0] is False
    assert expected["b"]["running_since"][0] is True  # removed, then created again
    assert expected["d"]["running_since"][0] is True  # paused at one start, enabled at the next: on since then
    Journal(tmp_path, clock=clock).close()  # writes the entries
    assert answers(Journal(tmp_path, clock=clock)) == expected  # replayed from the cache
    # the full path (a chunk with a blank line decodes every line) reads the same life
    day = sorted(tmp_path.glob("*.jsonl"))[1]
    day.write_bytes(b"\n" + day.read_bytes())
    shutil.rmtree(tmp_path / ".index")
    assert answers(Journal(tmp_path, clock=clock, index_cache=False)) == answers(Journal(tmp_path, clock=clock))


def test_a_damaged_life_line_is_skipped_with_a_warning_naming_it(tmp_path: Path,
                                                                caplog: pytest.LogCaptureFixture) -> None:
    clock = Clock(T)
    journal = Journal(tmp_path, clock=clock)
    paused = _life(journal, clock, "a", "schedule_paused")
    journal.close()
    [path] = tmp_path.glob("*.jsonl")
    with path.open("ab") as handle:
        handle.write(json.dumps({"ts": "not a time", "event": "schedule_resumed", "schedule": "a"},
                                separators=(",", ":")).encode() + b"\n")
    caplog.set_level("WARNING", logger="zmi_reconciler.journal")
    assert Journal(tmp_path, clock=clock, index_cache=False).running_since("a") == (False, paused)
    assert any(f"{path}:2: invalid line skipped" in r.getMessage() for r in caplog.records)


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
@pytest.mark.parametrize("split", [1, 2, 3])
def test_a_second_builders_files_fold_their_life_in_day_order(tmp_path: Path, split: int,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """The child reads the newest files first; their life effects still apply oldest day first (a pause in one
    file and the resume in the next is "on", the other way round "off")."""
    monkeypatch.setattr(Journal, "PARALLEL_BUILD_BYTES", 1)
    clock = Clock(T)
    expected = _history(tmp_path, clock)
    shutil.rmtree(tmp_path / ".index", ignore_errors=True)
    days = sorted(datetime.fromisoformat(p.stem).date().toordinal() for p in tmp_path.glob("*.jsonl"))
    build = journal_module._ColdBuild.start(tmp_path, days[split:])
    assert build is not None
    _child_took_all(build)
    built = Journal(tmp_path, clock=clock, first_build=build)
    assert answers(built) == expected
    assert answers(Journal(tmp_path, clock=clock)) == expected  # from the entries it saved


def test_an_invalid_life_line_among_journal_lines_is_warned_about_and_the_others_count(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Lines in the writer's format take the fast path (only run and life lines decoded): a life line that is not
    valid JSON is skipped with a warning naming file:line, as on the full path, and the valid ones still count."""
    clock = Clock(T)
    journal = Journal(tmp_path, clock=clock)
    _run(journal, clock, "a", "succeeded")
    resumed = _life(journal, clock, "a", "schedule_resumed")
    journal.close()
    [path] = tmp_path.glob("*.jsonl")
    lines = path.read_bytes().splitlines(keepends=True)
    bad = b'{"ts":"2026-03-27T23:00:00.000Z","event":"schedule_paused","schedule":"a",}\n'  # a trailing comma
    path.write_bytes(b"".join(lines) + bad)
    caplog.set_level("WARNING", logger="zmi_reconciler.journal")
    for cached in (False, True, True):
        caplog.clear()
        assert Journal(tmp_path, clock=clock, index_cache=cached).running_since("a") == (True, resumed)
        assert any(f"{path}:{len(lines) + 1}: invalid line skipped" in r.getMessage() for r in caplog.records)
