"""Runner: firing on the schedule library with an injected clock (SPEC 3.3, issue 3 item 1-2).

Time is a :class:`FakeClock`; the tests call ``runner.run_once()`` / ``runner.tick(now)`` themselves instead of
starting the loop thread, so nothing sleeps. Runs still execute on the runner's real worker threads.
"""

from __future__ import annotations

import logging
import subprocess
import threading
from datetime import timedelta

import pytest

from zmi_reconciler.journal import Journal
from zmi_reconciler.runner import MAX_MISSED_RECORDS, MISFIRE_GRACE_SECONDS, OverlapError, Runner, TimingJob, in_exclude_window

from test_runner_support import (FakeClock, Recorder, entry, events, make_runner, make_schedule, make_settings,
                                 utc, wait_for, wait_idle)

EVERY_MINUTE = {"type": "minutes", "every": 1}


@pytest.fixture
def rec() -> Recorder:
    r = Recorder()
    yield r
    r.release.set()  # never leave a blocked test task behind


def fire(runner: Runner, clock: FakeClock, instant, wait: bool = True) -> None:
    """Move the clock to ``instant`` and do one loop iteration; by default wait until the started runs are done
    (they run on real worker threads; without the wait a fast fake clock would make them overlap)."""
    clock.set(instant)
    runner.run_once()
    if wait:
        wait_idle(runner)


def started(journal: Journal, schedule: str | None = None) -> list[dict]:
    return events(journal, "run_started", schedule)


def test_tasks_run_top_to_bottom_backup_first(tmp_path, rec):
    clock = FakeClock(utc(2026, 11, 29, 3, 0))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("nightly", make_schedule({"type": "daily", "at": "05:00"},
                                          [entry("record", "backup"), entry("record", "calculate")]), "h1")
    fire(runner, clock, utc(2026, 11, 29, 4, 0))  # 05:00 Europe/Berlin (CET)
    wait_idle(runner)
    assert rec.names() == ["backup", "calculate"]
    tasks = [(e["event"], e["index"]) for e in events(runner.journal) if e["event"] in ("task_started", "task_finished")]
    assert tasks == [("task_started", 0), ("task_finished", 0), ("task_started", 1), ("task_finished", 1)]
    run = started(runner.journal)[0]
    assert run["run_id"] == "nightly@20261129T040000Z"
    assert (run["trigger"], run["scheduled_for"], run["content_hash"]) == ("scheduled", "2026-11-29T04:00:00.000Z", "h1")
    assert events(runner.journal, "run_finished")[0]["status"] == "succeeded"


def test_manual_run_executes_immediately_and_manual_timing_is_never_registered(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("adhoc", make_schedule({"type": "manual"}), "h")
    assert runner._scheduler.get_jobs() == []
    assert runner.status("adhoc")["next_fire"] is None
    run_id = runner.trigger("adhoc")  # no tick, no loop thread: the worker pool runs it
    assert runner.wait_run(run_id, 5)
    assert run_id.startswith("adhoc@manual-20260501T100000Z-") and len(run_id.rsplit("-", 1)[1]) == 6
    assert rec.names(run_id) == ["record"]
    assert started(runner.journal)[0]["trigger"] == "manual"
    assert runner._scheduler.get_jobs() == []


def test_manual_trigger_does_not_move_the_timing(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 30))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("m", make_schedule(EVERY_MINUTE), "h")
    assert runner.status("m")["next_fire"] == utc(2026, 5, 1, 10, 1)
    assert runner.wait_run(runner.trigger("m"), 5)
    assert runner.status("m")["next_fire"] == utc(2026, 5, 1, 10, 1)
    wait_idle(runner)
    fire(runner, clock, utc(2026, 5, 1, 10, 1))
    wait_idle(runner)
    assert [e["trigger"] for e in started(runner.journal)] == ["manual", "scheduled"]


def test_trigger_selected_tasks_and_errors(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("s", make_schedule({"type": "manual"}, [entry("record", "a"), entry("record", "b", enabled=False),
                                                         entry("record", "c")]), "h")
    run_id = runner.trigger("s", [2, 1])
    assert runner.wait_run(run_id, 5)
    assert rec.names(run_id) == ["b", "c"]  # schedule order; an explicitly chosen disabled task runs
    with pytest.raises(KeyError):
        runner.trigger("nope")
    with pytest.raises(ValueError):
        runner.trigger("s", [3])


def test_paused_schedule_no_runs_no_missed_records_no_burst_on_resume(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 30))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("p", make_schedule(EVERY_MINUTE), "v1")
    fire(runner, clock, utc(2026, 5, 1, 10, 1))
    wait_idle(runner)
    runner.apply("p", make_schedule(EVERY_MINUTE, enabled=False), "v2-paused")
    assert runner.status("p")["paused"] and runner.status("p")["next_fire"] is None
    for minute in range(2, 40):
        fire(runner, clock, utc(2026, 5, 1, 10, minute))
    wait_idle(runner)
    assert len(started(runner.journal)) == 1
    assert events(runner.journal, "run_missed") == []
    clock.set(utc(2026, 5, 1, 10, 39, 10))
    runner.apply("p", make_schedule(EVERY_MINUTE), "v3-resumed")
    assert runner.status("p")["next_fire"] == utc(2026, 5, 1, 10, 40)
    runner.run_once()
    fire(runner, clock, utc(2026, 5, 1, 10, 40))
    wait_idle(runner)
    assert [e["scheduled_for"] for e in started(runner.journal)] == ["2026-05-01T10:01:00.000Z",
                                                                     "2026-05-01T10:40:00.000Z"]
    assert events(runner.journal, "run_missed") == [] and events(runner.journal, "run_skipped") == []


def test_paused_at_start_then_resumed_does_not_catch_up(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 30))
    journal = Journal(tmp_path / "journal", clock=clock)
    journal.append("run_missed", schedule="p", run_id="p@20260501T080000Z", scheduled_for=utc(2026, 5, 1, 8, 0))
    runner = make_runner(tmp_path, clock, rec, journal=journal)
    runner.apply("p", make_schedule(EVERY_MINUTE, enabled=False, catch_up="1d"), "v1")
    clock.set(utc(2026, 5, 1, 10, 30, 30))
    runner.apply("p", make_schedule(EVERY_MINUTE, catch_up="1d"), "v2")
    runner.run_once()
    wait_idle(runner)
    assert started(journal) == [] and len(events(journal, "run_missed")) == 1
    assert runner.status("p")["next_fire"] == utc(2026, 5, 1, 10, 31)


def test_every_10_seconds_with_a_3_second_task_stays_on_the_grid(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 1))

    def three_seconds(ctx, params):  # "takes" 3 s of the fake clock
        end = ctx.scheduled_for + timedelta(seconds=3)
        finished = threading.Event()
        while ctx.clock() < end:
            finished.wait(0.001)
        return {}

    runner = make_runner(tmp_path, clock, rec)
    runner._registry = {**runner._registry, "three": rec.registry()["record"].__class__(
        name="three", zmi_name="three", description="3 s", run=three_seconds)}
    runner.apply("grid", make_schedule({"type": "seconds", "every": 10}, [entry("three")]), "h")
    assert runner.seconds_until_next() == 9.0
    for k in range(1, 31):
        slot = utc(2026, 5, 1, 10, 0, 0) + timedelta(seconds=10 * k)
        clock.set(slot)
        assert runner.run_once() == 0.0 or runner.seconds_until_next() == 10.0
        assert runner.status("grid")["next_fire"] == slot + timedelta(seconds=10)
        assert wait_for(lambda: len(started(runner.journal)) == k)
        clock.advance(3)
        wait_idle(runner)
        assert runner.seconds_until_next() == 7.0  # the next fire is on the grid, not 10 s after the end
    runs = started(runner.journal)
    assert len(runs) == 30
    slots = [r["scheduled_for"] for r in runs]
    assert slots[0] == "2026-05-01T10:00:10.000Z" and slots[-1] == "2026-05-01T10:05:00.000Z"
    assert all(r["ts"] == r["scheduled_for"] for r in runs)  # started at the due instant, no drift
    assert {e["status"] for e in events(runner.journal, "run_finished")} == {"succeeded"}


def test_a_raising_schedule_does_not_starve_another(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 0, ))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("bad", make_schedule({"type": "seconds", "every": 1}, [entry("crash")]), "h")
    runner.apply("good", make_schedule({"type": "seconds", "every": 5}), "h")
    for s in range(1, 21):
        fire(runner, clock, utc(2026, 5, 1, 10, 0, s))
        wait_idle(runner)
    good = started(runner.journal, "good")
    assert [r["scheduled_for"][17:19] for r in good] == ["05", "10", "15", "20"]
    assert all(r["ts"] == r["scheduled_for"] for r in good)
    bad = events(runner.journal, "run_finished", "bad")
    assert len(bad) == 20 and {b["status"] for b in bad} == {"failed"}
    err = events(runner.journal, "task_finished", "bad")[0]["error"]
    assert err == "ZeroDivisionError: division by zero"


def test_a_schedule_whose_firing_raises_is_rescheduled_not_retried_every_tick(tmp_path, rec, monkeypatch, caplog):
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 0))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("bad", make_schedule({"type": "seconds", "every": 1}), "h")
    runner.apply("good", make_schedule({"type": "seconds", "every": 2}), "h")
    real_fire = runner._fire

    def broken_fire(state, slot, trigger):
        if state.schedule_id == "bad":
            raise RuntimeError("broken schedule")
        real_fire(state, slot, trigger)

    monkeypatch.setattr(runner, "_fire", broken_fire)
    with caplog.at_level(logging.ERROR, logger="zmi_reconciler.runner"):
        for s in range(1, 7):
            fire(runner, clock, utc(2026, 5, 1, 10, 0, s))
            wait_idle(runner)
            assert runner.status("bad")["next_fire"] == utc(2026, 5, 1, 10, 0, s + 1)
    assert len(started(runner.journal, "good")) == 3
    assert sum("broken schedule" in r.exc_text for r in caplog.records if r.exc_text) == 6


def test_a_20_minute_task_does_not_delay_an_every_minute_schedule(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 30))
    runner = make_runner(tmp_path, clock, rec, workers=2)
    runner.apply("long", make_schedule({"type": "daily", "at": "12:01"}, [entry("block", timeout=1800)]), "h")
    runner.apply("fast", make_schedule(EVERY_MINUTE), "h")
    for minute in range(1, 21):
        fire(runner, clock, utc(2026, 5, 1, 10, minute), wait=False)  # 12:01 CEST = 10:01 UTC starts the long run
        assert wait_for(lambda: len(started(runner.journal, "fast")) == minute)
        assert wait_for(lambda: runner.status("fast")["active_run"] is None)
        assert len(events(runner.journal, "run_finished", "fast")) == minute
    assert rec.started.is_set() and runner.status("long")["active_run"] == "long@20260501T100100Z"
    fast = started(runner.journal, "fast")
    assert all(r["ts"] == r["scheduled_for"] for r in fast)
    rec.release.set()
    assert runner.wait_run("long@20260501T100100Z", 5)


def test_overlap_skip_records_the_fire_and_manual_trigger_gets_409(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 30))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("o", make_schedule(EVERY_MINUTE, [entry("block")]), "h")
    fire(runner, clock, utc(2026, 5, 1, 10, 1), wait=False)
    assert rec.started.wait(5)
    fire(runner, clock, utc(2026, 5, 1, 10, 2), wait=False)
    skipped = events(runner.journal, "run_skipped")
    assert [(s["run_id"], s["reason"], s["active_run_id"]) for s in skipped] == [
        ("o@20260501T100200Z", "overlap", "o@20260501T100100Z")]
    with pytest.raises(OverlapError) as info:
        runner.trigger("o")
    assert info.value.active_run_id == "o@20260501T100100Z"
    rec.release.set()
    wait_idle(runner)
    fire(runner, clock, utc(2026, 5, 1, 10, 3))
    wait_idle(runner)
    assert [r["run_id"] for r in started(runner.journal)] == ["o@20260501T100100Z", "o@20260501T100300Z"]


@pytest.fixture
def other_process():
    """A live process that is not this one (its pid stands for a CLI ``run`` writing the same journal)."""
    proc = subprocess.Popen(["sleep", "60"])
    yield proc
    proc.kill()
    proc.wait()


@pytest.mark.parametrize("overlap", ["skip", "queue"])
def test_a_run_active_in_another_process_blocks_trigger_and_fires_until_it_finishes(tmp_path, rec, other_process,
                                                                                    overlap):
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 30))
    journal = Journal(tmp_path / "journal", clock=clock, refresh_interval=0)
    runner = make_runner(tmp_path, clock, rec, journal=journal)
    runner.apply("x", make_schedule(EVERY_MINUTE, [entry("record")], overlap=overlap), "h")
    cli = Journal(tmp_path / "journal", clock=clock)  # the CLI's own journal object on the same folder
    cli.append("run_started", schedule="x", run_id="x@manual-20260501T100020Z", trigger="manual",
               scheduled_for="2026-05-01T10:00:20Z", pid=other_process.pid)
    with pytest.raises(OverlapError) as info:
        runner.trigger("x")
    assert (info.value.active_run_id, info.value.other_pid) == ("x@manual-20260501T100020Z", other_process.pid)
    fire(runner, clock, utc(2026, 5, 1, 10, 1))
    assert [(s["run_id"], s["reason"], s["active_run_id"], s["active_pid"])
            for s in events(journal, "run_skipped")] == [
        ("x@20260501T100100Z", "overlap", "x@manual-20260501T100020Z", other_process.pid)]
    assert started(journal, "x") == started(cli, "x")  # only the CLI's run_started
    assert len(started(journal, "x")) == 1 and runner.status("x")["queued"] is False
    cli.append("run_finished", schedule="x", run_id="x@manual-20260501T100020Z", status="succeeded")
    fire(runner, clock, utc(2026, 5, 1, 10, 2))
    manual = runner.trigger("x")
    assert runner.wait_run(manual, 5)
    assert [r["run_id"] for r in started(journal, "x")][1:] == ["x@20260501T100200Z", manual]


def test_a_run_left_running_by_a_dead_process_does_not_block(tmp_path, rec, other_process):
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 30))
    journal = Journal(tmp_path / "journal", clock=clock, refresh_interval=0)
    runner = make_runner(tmp_path, clock, rec, journal=journal)
    runner.apply("x", make_schedule({"type": "manual"}, [entry("record")]), "h")
    other_process.kill()
    other_process.wait()
    journal.append("run_started", schedule="x", run_id="x@manual-20260501T100020Z", trigger="manual",
                   pid=other_process.pid)
    assert runner.wait_run(runner.trigger("x"), 5)


def test_overlap_queue_keeps_at_most_one_waiting_run(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 30))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("q", make_schedule(EVERY_MINUTE, [entry("block")], overlap="queue"), "h")
    fire(runner, clock, utc(2026, 5, 1, 10, 1), wait=False)
    assert rec.started.wait(5)
    fire(runner, clock, utc(2026, 5, 1, 10, 2), wait=False)  # queued
    assert runner.status("q")["queued"] is True
    fire(runner, clock, utc(2026, 5, 1, 10, 3), wait=False)  # the queue place is taken: skipped
    with pytest.raises(OverlapError):
        runner.trigger("q")
    assert [(s["run_id"], s["reason"]) for s in events(runner.journal, "run_skipped")] == [
        ("q@20260501T100300Z", "overlap")]
    rec.release.set()
    assert runner.wait_run("q@20260501T100200Z", 5)
    runs = started(runner.journal)
    assert [(r["run_id"], r["trigger"]) for r in runs] == [("q@20260501T100100Z", "scheduled"),
                                                          ("q@20260501T100200Z", "scheduled")]
    assert runner.status("q")["queued"] is False


def test_manual_trigger_queues_with_overlap_queue(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 30))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("q", make_schedule({"type": "manual"}, [entry("block")], overlap="queue"), "h")
    first = runner.trigger("q")
    assert rec.started.wait(5)
    second = runner.trigger("q")
    assert runner.status("q") | {"last_slot": None} == {
        "next_fire": None, "active_run": first, "queued": True, "queued_run": second, "paused": False,
        "last_slot": None, "content_hash": "h"}
    assert not runner.wait_run(second, 0.05)
    rec.release.set()
    assert runner.wait_run(second, 5)
    assert [r["run_id"] for r in started(runner.journal)] == [first, second]


def test_exclusion_window_spanning_midnight(tmp_path, rec):
    clock = FakeClock(utc(2026, 11, 29, 22, 35))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("x", make_schedule({"type": "minutes", "every": 10}, exclude=[{"from": "23:50", "to": "00:10"}],
                                    timezone="Europe/Berlin"), "h")
    for minute in (40, 50):  # 23:40, 23:50 CET
        fire(runner, clock, utc(2026, 11, 29, 22, minute))
    for minute in (0, 10):  # 00:00, 00:10 CET
        fire(runner, clock, utc(2026, 11, 29, 23, minute))
    wait_idle(runner)
    assert [r["run_id"] for r in started(runner.journal)] == ["x@20261129T224000Z", "x@20261129T231000Z"]
    assert [(s["run_id"], s["reason"]) for s in events(runner.journal, "run_skipped")] == [
        ("x@20261129T225000Z", "excluded"), ("x@20261129T230000Z", "excluded")]


@pytest.mark.parametrize(("local", "inside"), [("23:49", False), ("23:50", True), ("00:09", True), ("00:10", False)])
def test_exclusion_window_is_half_open(local, inside):
    from datetime import time as dtime
    from types import SimpleNamespace
    h, m = map(int, local.split(":"))
    assert in_exclude_window([SimpleNamespace(from_="23:50", to="00:10")], dtime(h, m)) is inside


def test_holiday_skip_uses_the_server_region(tmp_path, rec):
    clock = FakeClock(utc(2026, 1, 5, 12, 0))
    runner = make_runner(tmp_path, clock, rec, settings=make_settings(tmp_path, holiday_region="DE-BY"))
    runner.apply("h", make_schedule({"type": "daily", "at": "05:00"}, skip_holidays=True), "h")
    runner.apply("plain", make_schedule({"type": "daily", "at": "05:00"}), "h")
    fire(runner, clock, utc(2026, 1, 6, 4, 0))  # Epiphany: a public holiday in Bavaria
    fire(runner, clock, utc(2026, 1, 7, 4, 0))
    wait_idle(runner)
    skipped = events(runner.journal, "run_skipped")
    assert [(s["run_id"], s["reason"]) for s in skipped] == [("h@20260106T040000Z", "holiday")]
    assert skipped[0]["holiday"] in ("Epiphany", "Heilige Drei Könige")
    assert [r["run_id"] for r in started(runner.journal, "h")] == ["h@20260107T040000Z"]
    assert len(started(runner.journal, "plain")) == 2


def test_holiday_region_of_another_state_does_not_skip(tmp_path, rec):
    clock = FakeClock(utc(2026, 1, 5, 12, 0))
    runner = make_runner(tmp_path, clock, rec, settings=make_settings(tmp_path, holiday_region="DE-NW"))
    runner.apply("h", make_schedule({"type": "daily", "at": "05:00"}, skip_holidays=True), "h")
    fire(runner, clock, utc(2026, 1, 6, 4, 0))
    wait_idle(runner)
    assert len(started(runner.journal)) == 1 and events(runner.journal, "run_skipped") == []


def _previous_life(tmp_path, rec, clock, sid, schedule, slot):
    """A first server process that ran ``slot`` and then went down."""
    runner = make_runner(tmp_path, clock, rec)
    clock.set(slot - timedelta(seconds=1))
    runner.apply(sid, schedule, "h")
    clock.set(slot)
    runner.run_once()
    wait_idle(runner)
    runner.stop(0)
    assert [r["run_id"] for r in started(runner.journal)] == [f"{sid}@{slot:%Y%m%dT%H%M%SZ}"]
    return runner


def test_catch_up_after_a_3_hour_downtime(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 8, 0))
    sched = make_schedule({"type": "minutes", "every": 15}, catch_up="1h")
    _previous_life(tmp_path, rec, clock, "c", sched, utc(2026, 5, 1, 9, 0))
    clock.set(utc(2026, 5, 1, 12, 5))  # down from 09:00 to 12:05 UTC: slots 09:15 ... 12:00 were missed
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("c", sched, "h")
    runner.run_once()
    wait_idle(runner)
    runs = started(runner.journal)
    assert [(r["run_id"], r["trigger"]) for r in runs] == [("c@20260501T090000Z", "scheduled"),
                                                          ("c@20260501T120000Z", "catch_up")]
    missed = [m["scheduled_for"][11:16] for m in events(runner.journal, "run_missed")]
    assert missed == ["09:15", "09:30", "09:45", "10:00", "10:15", "10:30", "10:45", "11:00", "11:15", "11:30",
                      "11:45"]
    assert runner.status("c")["next_fire"] == utc(2026, 5, 1, 12, 15)
    runner.run_once()  # nothing twice
    wait_idle(runner)
    assert len(started(runner.journal)) == 2 and len(events(runner.journal, "run_missed")) == 11


def test_deferred_seeding_catches_up_as_an_apply_with_the_journal_read(tmp_path, rec):
    """serve reconciles before the journal is read: apply() after defer_seeding() keeps the schedule without a
    journal query or a next fire; seed() then gives what apply() gives (the same catch-up and missed records);
    a schedule removed or changed meanwhile is seeded as it is then (or not at all)."""
    clock = FakeClock(utc(2026, 5, 1, 8, 0))
    sched = make_schedule({"type": "minutes", "every": 15}, catch_up="1h")
    _previous_life(tmp_path, rec, clock, "c", sched, utc(2026, 5, 1, 9, 0))
    clock.set(utc(2026, 5, 1, 12, 5))
    runner = make_runner(tmp_path, clock, rec)
    queried: list[str] = []
    real_last_slot = runner.journal.last_slot
    runner.journal.last_slot = lambda sid: queried.append(sid) or real_last_slot(sid)
    runner.defer_seeding()
    runner.apply("c", make_schedule({"type": "minutes", "every": 15}), "h0")
    runner.apply("c", sched, "h")  # changed before the seeding: seeded as it is now
    runner.apply("gone", make_schedule(EVERY_MINUTE), "g")
    runner.remove("gone")
    runner.apply("new", make_schedule({"type": "daily", "at": "05:00"}), "n")
    assert queried == [] and runner._scheduler.get_jobs() == []
    assert runner.status("c")["next_fire"] is None and runner.status("c")["content_hash"] == "h"
    runner.run_once()  # a tick before the seeding fires nothing
    wait_idle(runner)
    assert len(started(runner.journal)) == 1
    runner.seed()
    assert sorted(queried) == ["c", "new"] and runner.schedule_ids() == ["c", "new"]
    assert runner.status("c")["last_slot"] == utc(2026, 5, 1, 9, 0)
    assert runner.status("new")["next_fire"] == utc(2026, 5, 2, 3, 0)  # 05:00 CEST after now
    runner.run_once()
    wait_idle(runner)
    assert [(r["run_id"], r["trigger"]) for r in started(runner.journal)] == [
        ("c@20260501T090000Z", "scheduled"), ("c@20260501T120000Z", "catch_up")]
    assert len(events(runner.journal, "run_missed")) == 11
    assert runner.status("c")["next_fire"] == utc(2026, 5, 1, 12, 15)
    runner.seed()  # idempotent: nothing seeded twice
    runner.apply("later", make_schedule(EVERY_MINUTE), "l")  # after the seeding: registered at once
    assert runner.status("later")["next_fire"] == utc(2026, 5, 1, 12, 6)


def test_missed_fires_outside_catch_up_are_only_recorded(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 9, 0))
    sched = make_schedule({"type": "minutes", "every": 15})  # catch_up default 0 for interval timings
    _previous_life(tmp_path, rec, clock, "c", sched, utc(2026, 5, 1, 9, 0))
    clock.set(utc(2026, 5, 1, 12, 5))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("c", sched, "h")
    runner.run_once()
    wait_idle(runner)
    assert len(started(runner.journal)) == 1 and len(events(runner.journal, "run_missed")) == 12


def test_very_long_downtime_of_a_fast_timing_writes_a_summary(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 9, 0))
    sched = make_schedule({"type": "seconds", "every": 1})
    _previous_life(tmp_path, rec, clock, "fast", sched, utc(2026, 5, 1, 9, 0))
    clock.set(utc(2026, 5, 8, 9, 0, 0, ) + timedelta(milliseconds=500))  # one week, 604,800 slots
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("fast", sched, "h")
    runner.run_once()
    wait_idle(runner)
    missed = events(runner.journal, "run_missed")
    assert len(missed) == MAX_MISSED_RECORDS + 1
    summary = missed[0]
    assert summary["summary"] is True and summary["first_slot"] == "2026-05-01T09:00:01.000Z"
    assert summary["count"] + MAX_MISSED_RECORDS + 1 == 7 * 86400  # + the slot that runs now
    runs = started(runner.journal)
    assert runs[-1]["run_id"] == "fast@20260508T090000Z" and runs[-1]["trigger"] == "scheduled"
    assert missed[-1]["scheduled_for"] == "2026-05-08T08:59:59.000Z"


def test_misfire_grace_a_fire_found_late_runs_on_time_up_to_10_s_then_counts_as_missed(tmp_path, rec):
    """Up to the grace a late fire is an ordinary `scheduled` run; beyond it the catch-up rules decide: an
    interval timing (catch_up default 0) records `run_missed`, a daily one (default 12h) runs as `catch_up`."""
    assert MISFIRE_GRACE_SECONDS == 10.0
    grace = timedelta(seconds=MISFIRE_GRACE_SECONDS)
    clock = FakeClock(utc(2026, 5, 1, 4, 59, 30))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("m", make_schedule(EVERY_MINUTE), "h1")
    runner.apply("d", make_schedule({"type": "daily", "at": "05:00"}, timezone="UTC"), "h2")
    fire(runner, clock, utc(2026, 5, 1, 5, 0) + grace)  # both exactly 10 s late
    fire(runner, clock, utc(2026, 5, 1, 5, 1) + grace + timedelta(milliseconds=1))
    assert sorted((r["run_id"], r["trigger"]) for r in started(runner.journal)) == [
        ("d@20260501T050000Z", "scheduled"), ("m@20260501T050000Z", "scheduled")]
    assert [m["run_id"] for m in events(runner.journal, "run_missed")] == ["m@20260501T050100Z"]
    fire(runner, clock, utc(2026, 5, 2, 5, 0, 11))  # daily: 11 s late, within catch_up 12h
    assert started(runner.journal, "d")[-1]["trigger"] == "catch_up"


def test_new_schedule_without_history_does_not_catch_up(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 12, 5))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("new", make_schedule({"type": "daily", "at": "05:00"}), "h")
    runner.run_once()
    assert started(runner.journal) == [] and events(runner.journal, "run_missed") == []


def test_removed_and_readded_schedule_does_not_record_the_gap_as_missed(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 30))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("r", make_schedule(EVERY_MINUTE), "h")
    fire(runner, clock, utc(2026, 5, 1, 10, 1))
    runner.remove("r")
    fire(runner, clock, utc(2026, 5, 1, 11, 0, 30))
    runner.apply("r", make_schedule(EVERY_MINUTE), "h")
    runner.run_once()
    wait_idle(runner)
    assert len(started(runner.journal)) == 1 and events(runner.journal, "run_missed") == []
    with pytest.raises(KeyError):
        Runner.status(runner, "gone")


def test_wall_clock_stepped_back_2_hours_runs_no_slot_twice(tmp_path, rec, caplog):
    clock = FakeClock(utc(2026, 5, 1, 11, 55, 30))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("m", make_schedule({"type": "minutes", "every": 10}), "h")
    runner.apply("d", make_schedule({"type": "daily", "at": "12:00"}), "h")  # 10:00 UTC
    runner.run_once()
    fire(runner, clock, utc(2026, 5, 1, 12, 0))
    wait_idle(runner)
    assert len(started(runner.journal)) == 1  # m at 12:00 (d ran before our start)
    with caplog.at_level(logging.WARNING, logger="zmi_reconciler.runner"):
        clock.step_wall(-2 * 3600)
        runner.run_once()
    assert any("stepped back" in r.message for r in caplog.records)
    runner.apply("m", make_schedule({"type": "minutes", "every": 10}, description="edited"), "h2")
    for minute in range(0, 121, 5):  # 10:00 .. 12:00 again, across d's 10:00 UTC slot
        clock.step_wall(0 if minute == 0 else 300)
        runner.run_once()
        wait_idle(runner)
    runs = [r["run_id"] for r in started(runner.journal)]
    assert runs == ["m@20260501T120000Z"]
    clock.step_wall(600)
    runner.run_once()
    wait_idle(runner)
    assert [r["run_id"] for r in started(runner.journal)] == ["m@20260501T120000Z", "m@20260501T121000Z"]
    assert events(runner.journal, "run_missed") == []


def test_wall_clock_stepped_forward_5_hours_follows_catch_up_rules_without_burst(tmp_path, rec, caplog):
    clock = FakeClock(utc(2026, 5, 1, 1, 59, 30))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("m", make_schedule(EVERY_MINUTE), "h")
    runner.apply("d", make_schedule({"type": "daily", "at": "07:00"}), "h")  # 05:00 UTC, catch_up 12h
    fire(runner, clock, utc(2026, 5, 1, 2, 0))
    wait_idle(runner)
    with caplog.at_level(logging.WARNING, logger="zmi_reconciler.runner"):
        clock.step_wall(5 * 3600 + 10)  # 07:00:10 UTC
        runner.run_once()
        wait_idle(runner)
    assert any("stepped forward" in r.message for r in caplog.records)
    runs = [(r["run_id"], r["trigger"]) for r in started(runner.journal)]
    assert runs == [("m@20260501T020000Z", "scheduled"), ("m@20260501T070000Z", "scheduled"),
                    ("d@20260501T050000Z", "catch_up")]
    missed = events(runner.journal, "run_missed", "m")  # 02:01 .. 06:59: a summary and the newest 100
    assert len(missed) == MAX_MISSED_RECORDS + 1
    assert missed[0]["count"] + MAX_MISSED_RECORDS == 299 and missed[0]["first_slot"] == "2026-05-01T02:01:00.000Z"
    assert missed[-1]["scheduled_for"] == "2026-05-01T06:59:00.000Z"
    runner.run_once()
    wait_idle(runner)
    assert len(started(runner.journal)) == 3  # no burst afterwards
    assert runner.status("m")["next_fire"] == utc(2026, 5, 1, 7, 1)


def test_daily_0230_berlin_runs_once_on_the_day_after_the_spring_change(tmp_path, rec):
    # The library's own `every().day.at("02:30", "Europe/Berlin")` computes next_run with naive local times and
    # fires twice on 2026-03-30 (01:30 and 02:30 CEST) after the 03:30 fire of the change day. Ours follows
    # RFC 5545 via timing.next_fire: 03:30 CEST on the change day (the gap), 02:30 CEST on every other day.
    clock = FakeClock(utc(2026, 3, 28, 12, 0))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("dst", make_schedule({"type": "daily", "at": "02:30"}, timezone="Europe/Berlin"), "h")
    t = clock()
    while t < utc(2026, 4, 1):  # every 10 minutes for three days
        t += timedelta(minutes=10)
        fire(runner, clock, t)
    wait_idle(runner)
    slots = [r["scheduled_for"] for r in started(runner.journal)]
    assert slots == ["2026-03-29T01:30:00.000Z",  # 03:30 CEST: 02:30 does not exist on the change day
                     "2026-03-30T00:30:00.000Z",  # 02:30 CEST, exactly once
                     "2026-03-31T00:30:00.000Z"]


def test_timeout_stops_the_task_and_the_runner_stays_responsive(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0))
    runner = make_runner(tmp_path, clock, rec, cancel_grace=0.2)
    runner.apply("slow", make_schedule({"type": "manual"}, [entry("block", timeout=0.2),
                                                            entry("record", "after", on_error="continue")]), "h")
    runner.apply("other", make_schedule({"type": "manual"}), "h")
    run_id = runner.trigger("slow")
    assert rec.started.wait(5)
    other = runner.trigger("other")  # the server answers and runs other work meanwhile
    assert runner.wait_run(other, 2)
    assert runner.wait_run(run_id, 5)
    finished = events(runner.journal, "task_finished", "slow")
    assert finished[0]["status"] == "timed_out" and "timed out after 0.2 s; stopped" in finished[0]["error"]
    assert finished[1]["status"] == "skipped"  # on_error: stop of the timed-out task
    assert events(runner.journal, "run_finished", "slow")[0]["status"] == "failed"


def test_a_task_ignoring_cancellation_is_abandoned_and_the_run_does_not_wait(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0))
    runner = make_runner(tmp_path, clock, rec, cancel_grace=0.1)
    runner.apply("h", make_schedule({"type": "manual"}, [entry("hang", timeout=0.2, on_error="continue"),
                                                         entry("record", "next")]), "h")
    run_id = runner.trigger("h")
    assert runner.wait_run(run_id, 3)
    assert not rec.release.is_set()  # the hung task is still running
    finished = events(runner.journal, "task_finished", "h")
    assert [f["status"] for f in finished] == ["timed_out", "succeeded"]
    assert "abandoned" in finished[0]["error"]
    assert events(runner.journal, "run_finished", "h")[0]["status"] == "partial"


def test_stop_gives_a_grace_period_then_records_interrupted(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0))
    runner = make_runner(tmp_path, clock, rec, cancel_grace=0.1)
    runner.apply("coop", make_schedule({"type": "manual"}, [entry("block")]), "h")
    runner.apply("deaf", make_schedule({"type": "manual"}, [entry("hang")]), "h")
    coop, deaf = runner.trigger("coop"), runner.trigger("deaf")
    assert wait_for(lambda: len(rec.calls) == 2)
    assert runner.stop(grace_seconds=0.05) == []  # both run threads ended the runs themselves
    interrupted = {e["run_id"]: e for e in events(runner.journal, "run_interrupted")}
    assert set(interrupted) == {coop, deaf} and interrupted[deaf]["reason"] == "shutdown"
    tasks = {e["run_id"]: e["error"] for e in events(runner.journal, "task_finished")}
    assert tasks[coop] == "interrupted by server shutdown"
    assert tasks[deaf].startswith("interrupted by server shutdown; did not stop within 0.1 s and was abandoned")
    assert events(runner.journal, "run_finished") == []
    assert runner.journal.last_run("coop")["status"] == "interrupted"
    with pytest.raises(RuntimeError):
        runner.trigger("coop")


def test_stop_lets_short_runs_finish(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("a", make_schedule({"type": "manual"}, [entry("block")]), "h")
    run_id = runner.trigger("a")
    assert rec.started.wait(5)
    threading.Timer(0.05, rec.release.set).start()
    assert runner.stop(grace_seconds=5) == []
    assert runner.wait_run(run_id, 0)
    assert events(runner.journal, "run_finished")[0]["status"] == "succeeded"


def test_apply_same_hash_is_a_noop_and_replace_keeps_the_running_run(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 30))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("r", make_schedule(EVERY_MINUTE, [entry("block", "old")]), "v1")
    job = runner._scheduler.get_jobs()[0]
    clock.set(utc(2026, 5, 1, 10, 0, 50))
    runner.apply("r", make_schedule({"type": "minutes", "every": 5}), "v1")  # same hash: untouched
    assert runner._scheduler.get_jobs() == [job] and job.next_run == utc(2026, 5, 1, 10, 1)
    fire(runner, clock, utc(2026, 5, 1, 10, 1), wait=False)
    assert rec.started.wait(5)
    runner.apply("r", make_schedule({"type": "minutes", "every": 5}, [entry("record", "new")]), "v2")
    assert runner.status("r")["active_run"] == "r@20260501T100100Z"
    assert runner.status("r")["next_fire"] == utc(2026, 5, 1, 10, 5)
    rec.release.set()
    wait_idle(runner)
    fire(runner, clock, utc(2026, 5, 1, 10, 5))
    wait_idle(runner)
    assert rec.names() == ["old", "new"]
    assert events(runner.journal, "run_finished")[0]["status"] == "succeeded"
    assert [r["content_hash"] for r in started(runner.journal)] == ["v1", "v2"]


def test_jobs_are_timing_jobs_on_a_private_scheduler(tmp_path, rec):
    import schedule as schedule_lib
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 30))
    runner = make_runner(tmp_path, clock, rec)
    runner.apply("a", make_schedule(EVERY_MINUTE), "h")
    assert schedule_lib.get_jobs() == []  # never the module-level default scheduler
    (job,) = runner._scheduler.get_jobs()
    assert isinstance(job, TimingJob) and job.next_run.tzinfo is not None
    assert runner.seconds_until_next() == 30.0
    clock.set(utc(2026, 5, 1, 10, 5))  # overdue: sleep is 0, never negative
    assert runner.seconds_until_next() == 0.0
    runner.remove("a")
    assert runner._scheduler.get_jobs() == [] and runner.seconds_until_next() is None
    assert runner.run_once() == Runner.max_sleep


def test_the_loop_thread_fires_on_the_real_clock(tmp_path):
    rec = Recorder()
    settings = make_settings(tmp_path)
    journal = Journal(tmp_path / "journal")
    runner = Runner(settings, journal, registry=rec.registry())
    runner.apply("tick", make_schedule({"type": "seconds", "every": 1}), "h")
    runner.start()
    try:
        assert wait_for(lambda: len(rec.calls) >= 2, timeout=4)
    finally:
        runner.stop(1)
    runs = started(journal)
    lags = [(_parse(r["ts"]) - _parse(r["scheduled_for"])).total_seconds() for r in runs]
    assert all(0 <= lag < 0.5 for lag in lags), lags


def _parse(text):
    from zmi_reconciler.journal import parse_utc
    return parse_utc(text)


def test_a_journal_without_append_many_still_gets_every_run_started(tmp_path, rec):
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 30))
    real = Journal(tmp_path / "journal", clock=clock)

    class PlainJournal:  # only the minimal interface: append and last_slot
        append = staticmethod(real.append)
        last_slot = staticmethod(real.last_slot)

    runner = make_runner(tmp_path, clock, rec, journal=PlainJournal())
    for i in range(3):
        runner.apply(f"s{i}", make_schedule(EVERY_MINUTE), "h")
    fire(runner, clock, utc(2026, 5, 1, 10, 1))
    assert sorted(r["run_id"] for r in started(real)) == [f"s{i}@20260501T100100Z" for i in range(3)]
    assert len(events(real, "run_finished")) == 3


def test_unknown_holiday_region_runs_instead_of_never(tmp_path, rec, caplog):
    clock = FakeClock(utc(2026, 1, 5, 12, 0))
    runner = make_runner(tmp_path, clock, rec, settings=make_settings(tmp_path, holiday_region="XX-YY"))
    runner.apply("h", make_schedule({"type": "daily", "at": "05:00"}, skip_holidays=True), "h")
    with caplog.at_level(logging.ERROR, logger="zmi_reconciler.runner"):
        fire(runner, clock, utc(2026, 1, 6, 4, 0))
    assert len(started(runner.journal)) == 1
    assert any("unknown holiday region 'XX-YY'" in r.message for r in caplog.records)


@pytest.mark.parametrize("deferred", [False, True], ids=["apply", "defer_seeding + seed"])
def test_a_schedule_paused_at_the_last_stop_and_resumed_since_fires_from_now(tmp_path, rec, deferred):
    """paused_since (the reconciler's evidence: the version that ran at the last stop was paused, loaded then):
    without a slot after it, no catch-up and no run_missed for the slots since the last one, next fire after now;
    with a slot after it (the evidence lags a resume that did run), the journal decides as for any schedule."""
    clock = FakeClock(utc(2026, 5, 1, 8, 0))
    sched = make_schedule({"type": "minutes", "every": 15}, catch_up="1h")
    _previous_life(tmp_path, rec, clock, "c", sched, utc(2026, 5, 1, 9, 0))
    second = make_runner(tmp_path, clock, rec)  # d ran at 11:00 in a later life
    clock.set(utc(2026, 5, 1, 10, 59, 59))
    second.apply("d", sched, "h2")
    clock.set(utc(2026, 5, 1, 11, 0))
    second.run_once()
    wait_idle(second)
    second.stop(0)
    clock.set(utc(2026, 5, 1, 12, 5))
    runner = make_runner(tmp_path, clock, rec)
    if deferred:
        runner.defer_seeding()
    runner.apply("c", sched, "h", paused_since=utc(2026, 5, 1, 9, 5))  # paused 09:05, nothing ran since
    runner.apply("d", sched, "h2", paused_since=utc(2026, 5, 1, 9, 5))  # ran at 11:00: the copy lags a resume
    if deferred:
        runner.seed()
    assert runner.status("c")["next_fire"] == utc(2026, 5, 1, 12, 15) and runner.status("c")["last_slot"] is None
    assert runner.status("d")["last_slot"] == utc(2026, 5, 1, 11, 0)
    runner.run_once()
    wait_idle(runner)
    assert [(r["schedule"], r["trigger"]) for r in started(runner.journal)] == [
        ("c", "scheduled"), ("d", "scheduled"), ("d", "catch_up")]
    assert [m["schedule"] for m in events(runner.journal, "run_missed")] == ["d"] * 3  # 11:15, 11:30, 11:45
