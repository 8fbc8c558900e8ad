"""The journal index keeps the runs of a cache entry or of a second builder's entry encoded (one array per
schedule and day) until a query needs them. Whatever query comes first, and whatever happens to the journal
while runs are still encoded (appends of the same day and schedule, a run id started again, retention, saves),
every answer equals a cold open's. Clocks are injected; nothing sleeps."""

from __future__ import annotations

import multiprocessing
import shutil
from datetime import date
from pathlib import Path
from typing import Any, Callable

import msgspec
import pytest

from test_journal_cache import Clock, _child_took_all, _history, _run, answers
from zmi_reconciler import journal as journal_module
from zmi_reconciler.journal import Journal


def _cached(tmp_path: Path) -> tuple[Clock, Journal]:
    """:func:`_history` with its cache entries written, reopened from them (runs still encoded)."""
    clock = Clock()
    _history(tmp_path, clock)
    Journal(tmp_path, clock=clock).close()  # writes the entries
    return clock, Journal(tmp_path, clock=clock)


def _pending_days(journal: Journal, sid: str) -> list[int]:
    entry = journal._schedules.get(sid)
    return [] if entry is None else [day for day, _, _ in entry.pending]


def test_a_cached_open_decodes_only_runs_that_did_not_end_in_their_file(tmp_path: Path) -> None:
    clock, cached = _cached(tmp_path)
    cold = Journal(tmp_path, clock=clock, index_cache=False)
    everything = {run_id for run_id in cold._runs}
    assert cached._pending | set(cached._runs) == everything  # every run: pending or decoded, none twice
    assert not cached._pending & set(cached._runs)
    assert len(cached._pending) > 30
    # decoded at open: the groups with a run still running at the end of its file (a later line may end it)
    assert all(any(run.finish_pos is None or run.positions[-1] >> 40 != run.positions[0] >> 40
                   for run in cached._schedules[run.schedule].runs) for run in cached._runs.values())
    assert cached.orphaned_runs() == cold.orphaned_runs() != []
    # the number of runs needs no decoding
    for sid in cold.schedule_ids():
        before = _pending_days(cached, sid)
        assert cached.count_runs(sid) == cold.count_runs(sid)
        assert _pending_days(cached, sid) == before


def test_last_run_decodes_only_the_newest_day_of_its_schedule(tmp_path: Path) -> None:
    clock, cached = _cached(tmp_path)
    cold = Journal(tmp_path, clock=clock, index_cache=False)
    for sid in cold.schedule_ids():
        before = _pending_days(cached, sid)
        assert cached.last_run(sid) == cold.last_run(sid)
        after = _pending_days(cached, sid)
        decoded = [run.positions[0] >> 40 for run in cached._schedules[sid].runs]
        if before and (not decoded or max(decoded) <= before[-1]):
            assert after == before[:len(after)] and len(after) >= len(before) - 1
    assert any(_pending_days(cached, sid) for sid in cold.schedule_ids())  # older days still encoded
    assert answers(cached) == answers(cold)


def _first_queries(journal: Journal) -> dict[str, Callable[[], Any]]:
    run_ids = sorted(Journal(journal.directory, clock=journal._clock, index_cache=False)._runs)
    return {
        "get_run of the oldest run": lambda: journal.get_run(run_ids[0]),
        "get_run of an unknown id": lambda: journal.get_run("hourly@nope"),
        "runs with a status": lambda: journal.runs("hourly", status="failed", per_page=3),
        "count_runs with a status": lambda: journal.count_runs("nightly", status=["failed", "partial"]),
        "active_elsewhere": lambda: journal.active_elsewhere("nightly"),
        "last_run with details": lambda: journal.last_run("manual", details=True),
        "close_interrupted": lambda: journal.close_interrupted(),
        "save_index": lambda: journal.save_index(),
    }


@pytest.mark.parametrize("first", ["get_run of the oldest run", "get_run of an unknown id", "runs with a status",
                                   "count_runs with a status", "active_elsewhere", "last_run with details",
                                   "close_interrupted", "save_index"])
def test_whatever_query_comes_first_every_answer_equals_a_cold_open(tmp_path: Path, first: str) -> None:
    clock, cached = _cached(tmp_path)
    cold = Journal(tmp_path, clock=clock, index_cache=False)
    if first == "close_interrupted":  # (it writes: the cold open is asked what it would close, before)
        expected = cold.orphaned_runs()
        assert expected
    else:
        expected = _first_queries(cold)[first]()
    got = _first_queries(cached)[first]()
    if first != "save_index":
        assert got == expected
    cold = Journal(tmp_path, clock=clock, index_cache=False)
    assert answers(cached) == answers(cold)
    assert answers(Journal(tmp_path, clock=clock)) == answers(cold)  # and from what it saved


def test_runs_appended_to_a_day_whose_runs_are_encoded_keep_file_order_in_answers_and_the_cache(
        tmp_path: Path) -> None:
    """The newest day's runs are encoded; the server appends runs of the same schedule to that day; then they are
    decoded (a query) and the day's entry is derived again (a save): both keep the runs in file order."""
    clock, cached = _cached(tmp_path)
    newest = max(cached._ordinals)
    sid = next(sid for sid in cached.schedule_ids() if newest in _pending_days(cached, sid))
    for _ in range(3):
        _run(cached, clock, sid, "succeeded")
    assert clock().date().toordinal() == newest  # (the same day file)
    assert newest in _pending_days(cached, sid)
    cold = Journal(tmp_path, clock=clock, index_cache=False)
    assert cached.last_run(sid) == cold.last_run(sid)  # the appended one, not the encoded day's last
    assert cached.runs(sid, per_page=1000) == cold.runs(sid, per_page=1000)
    assert cached.save_index() >= 1
    assert answers(Journal(tmp_path, clock=clock)) == answers(cold)

    # Saved before anything decoded them: the day is decoded for its new entry, in file order too.
    clock2, second = _cached(tmp_path / "again")
    for _ in range(2):
        _run(second, clock2, sid, "failed")
    assert newest in _pending_days(second, sid)
    assert second.save_index() >= 1
    assert answers(Journal(tmp_path / "again", clock=clock2)) == answers(
        Journal(tmp_path / "again", clock=clock2, index_cache=False))


def test_a_run_id_started_again_replaces_its_encoded_run_as_reading_the_lines_would(tmp_path: Path) -> None:
    clock, cached = _cached(tmp_path)
    cold_ids = Journal(tmp_path, clock=clock, index_cache=False)._runs
    old = next(run_id for run_id in sorted(cached._pending) if cold_ids[run_id].status == "failed")
    sid = old.partition("@")[0]
    cached.append("run_started", schedule=sid, run_id=old, trigger="manual", scheduled_for=None)
    cached.append("run_finished", schedule=sid, run_id=old, status="succeeded")
    cold = Journal(tmp_path, clock=clock, index_cache=False)
    assert cached.get_run(old)["status"] == cold.get_run(old)["status"] == "succeeded"
    assert answers(cached) == answers(cold)
    cached.close()
    assert answers(Journal(tmp_path, clock=clock)) == answers(cold)


def test_a_cache_entry_that_names_an_encoded_run_id_again_is_decoded_in_order(tmp_path: Path) -> None:
    """A later file starts a run id an earlier file started too (cache entries of both): the later one wins by
    id, both stay in the schedule's runs, as reading the lines gives."""
    clock = Clock()
    journal = Journal(tmp_path, clock=clock, index_cache=False)
    _run(journal, clock, "nightly", "failed")
    run_id = next(iter(journal._runs))
    clock.advance(days=1)
    journal.append("run_started", schedule="nightly", run_id=run_id, trigger="manual", scheduled_for=None)
    journal.append("run_finished", schedule="nightly", run_id=run_id, status="succeeded")
    _run(journal, clock, "nightly", "succeeded")
    Journal(tmp_path, clock=clock).close()
    cold = Journal(tmp_path, clock=clock, index_cache=False)
    cached = Journal(tmp_path, clock=clock)
    assert cached.count_runs("nightly") == cold.count_runs("nightly") == 3
    assert answers(cached) == answers(cold)


def test_retention_drops_encoded_runs_with_their_files(tmp_path: Path) -> None:
    clock, cached = _cached(tmp_path)
    oldest = min(cached._ordinals)
    assert any(oldest in _pending_days(cached, sid) for sid in ("hourly", "nightly", "manual"))
    cached.retention_days = 1
    deleted = cached.apply_retention()
    assert deleted
    assert all(day >= min(cached._ordinals) for sid in cached._schedules for day in _pending_days(cached, sid))
    cold = Journal(tmp_path, clock=clock, index_cache=False, retention_days=1)
    assert cached._pending | set(cached._runs) == set(cold._runs)
    assert answers(cached) == answers(cold)


def test_run_ids_of_another_form_are_found_while_encoded(tmp_path: Path) -> None:
    """Hand-written lines whose run ids do not start with their schedule id (``<schedule>@...`` is the runner's
    form): get_run still finds them."""
    clock = Clock()
    journal = Journal(tmp_path, clock=clock, index_cache=False)
    journal.append("run_started", schedule="import", run_id="legacy-7", trigger="manual", scheduled_for=None)
    journal.append("run_finished", schedule="import", run_id="legacy-7", status="succeeded")
    _run(journal, clock, "import", "failed")
    Journal(tmp_path, clock=clock).close()
    cached = Journal(tmp_path, clock=clock)
    assert "legacy-7" in cached._pending
    assert cached.get_run("legacy-7")["status"] == "succeeded"
    assert answers(cached) == answers(Journal(tmp_path, clock=clock, index_cache=False))


@pytest.mark.skipif("fork" not in multiprocessing.get_all_start_methods(), reason="needs fork")
def test_a_second_builders_entries_stay_encoded_and_are_saved_as_they_came(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A first build takes the child's runs without decoding them, and its save writes those entries as they
    came (no decoding either); the saved cache answers like a cold open."""
    monkeypatch.setattr(Journal, "PARALLEL_BUILD_BYTES", 1)
    clock = Clock()
    _history(tmp_path, clock)
    shutil.rmtree(tmp_path / ".index", ignore_errors=True)
    days = sorted(Journal(tmp_path, clock=clock, index_cache=False)._ordinals)
    build = journal_module._ColdBuild.start(tmp_path, days[1:])
    assert build is not None
    _child_took_all(build)
    decoded: list[tuple[str, int | None]] = []
    real = Journal._materialize

    def spy(self: Journal, schedule_id: str, day: int | None = None, newest: bool = False,
            before: int | None = None) -> None:
        decoded.append((schedule_id, day))
        real(self, schedule_id, day=day, newest=newest, before=before)

    monkeypatch.setattr(Journal, "_materialize", spy)
    built = Journal(tmp_path, clock=clock, first_build=build, save_at_open=False)
    cold = Journal(tmp_path, clock=clock, index_cache=False)
    assert len(built._pending) > len(cold._runs) // 2
    at_open = list(decoded)
    assert all(day is not None for _, day in at_open)  # only groups with a running run, by day
    assert built.save_index() == len(days)
    assert decoded == at_open  # the save decoded nothing: the child's entries went out as they came
    newest = (tmp_path / ".index" / f"{date.fromordinal(days[-1]).isoformat()}.idx").read_bytes()
    assert msgspec.msgpack.decode(newest[:-4])[0] == journal_module._CACHE_VERSION
    assert answers(built) == answers(cold)
    assert answers(Journal(tmp_path, clock=clock)) == answers(cold)


def test_a_day_without_runs_of_a_schedule_leaves_its_newest_run_where_it_is(tmp_path: Path) -> None:
    """last_run compares the newest decoded run's day with the newest encoded day: a schedule whose newest run
    was decoded (by an append) while older days stay encoded answers with it."""
    clock, cached = _cached(tmp_path)
    clock.advance(days=2)
    _run(cached, clock, "nightly", "partial")
    assert _pending_days(cached, "nightly")
    cold = Journal(tmp_path, clock=clock, index_cache=False)
    assert cached.last_run("nightly") == cold.last_run("nightly")
    assert cached.last_run("nightly")["status"] == "partial"
    assert _pending_days(cached, "nightly")  # nothing decoded for it
    assert answers(cached) == answers(cold)


def test_a_cache_entry_damaged_anywhere_is_read_as_corrupt_and_the_file_read_in_full(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The whole entry is checked (CRC-32 after its bytes), not only its runs: a flipped bit in a schedule's latest
    success, slot, a run id or a running flag would otherwise change answers (and the runner's seeding) silently,
    at every open."""
    import logging

    clock = Clock()
    _history(tmp_path, clock)
    Journal(tmp_path, clock=clock).close()
    expected = answers(Journal(tmp_path, clock=clock, index_cache=False))
    [entry, *_] = sorted((tmp_path / ".index").glob("*.idx"))
    good = entry.read_bytes()
    caplog.set_level(logging.INFO, logger="zmi_reconciler.journal")
    for at in sorted({5, 17, len(good) // 7, len(good) // 3, len(good) // 2, len(good) - 30, len(good) - 2}):
        damaged = bytearray(good)
        damaged[at] ^= 0x02
        entry.write_bytes(bytes(damaged))
        caplog.clear()
        assert answers(Journal(tmp_path, clock=clock, save_at_open=False)) == expected, at
        assert any(f"{entry} is corrupt" in r.getMessage() for r in caplog.records), at
