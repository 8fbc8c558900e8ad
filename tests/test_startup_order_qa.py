"""QA of the start-up order of ``serve`` (86f3f33, 625e3e2): the schedule files are reconciled before the
journal is read (``Runner.defer_seeding``/``seed``, ``Reconciler.hold_writes``/``release_writes``).

The contract: a server that starts behaves as before the change (journal opened, runs of a killed server closed,
then the schedules reconciled and seeded). Runner-level tests compare the old order (``apply`` with the journal
read) with the new one (``defer_seeding``, ``apply``, ``seed``) on identical journals; ``serve`` runs in process
(the API replaced by a function that waits for a condition) and once as a real process.
"""

from __future__ import annotations

import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

import pytest

from zmi_reconciler.cli import serve as serve_module
from zmi_reconciler.config import Settings
from zmi_reconciler.journal import Journal
from zmi_reconciler.lastgood import LastGoodStore

from test_runner_support import FakeClock, Recorder, make_runner, make_schedule, utc, wait_idle

UTC = timezone.utc


# ----------------------------------------------------------------------------------------------- helpers
def _all_events(journal_dir: Path) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for path in sorted(journal_dir.glob("*.jsonl")):
        for raw in path.read_bytes().splitlines():
            if raw.strip():
                out.append(json.loads(raw))
    return out


def _iso(instant: datetime) -> str:
    return instant.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def _rid(sid: str, slot: datetime) -> str:
    return f"{sid}@{slot.astimezone(UTC):%Y%m%dT%H%M%SZ}"


ALIVE_EVERY_15 = ("name: {name}\ntiming: {{type: minutes, every: 15}}\ncatch_up: 1d\n{extra}"
                  "tasks:\n  - task: alive_check\n")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    (tmp_path / "schedules.d").mkdir()
    return Settings(data_dir=tmp_path / "var", schedules_dir=tmp_path / "schedules.d", port=1,
                    shutdown_grace_seconds=2)


def _serve(settings: Settings, monkeypatch: pytest.MonkeyPatch, stop: threading.Event | None = None,
           until: Callable[[dict[str, Any]], bool] | None = None, deadline: float = 10.0) -> tuple[int, dict]:
    """``serve`` in process without the HTTP API: ``_serve_api`` polls ``until(objects)`` (runner, reconciler,
    journal) up to ``deadline`` seconds, then returns (a clean stop)."""
    objects: dict[str, Any] = {}

    def create_app(s: Settings, runner: Any, reconciler: Any, journal: Any) -> None:
        objects.update(runner=runner, reconciler=reconciler, journal=journal)
        return None

    def fake_api(s: Settings, server: Any, stop_event: threading.Event) -> int:
        objects["served"] = True
        end = time.monotonic() + deadline
        while until is not None and time.monotonic() < end:
            if until(objects):
                objects["until"] = True
                break
            time.sleep(0.02)
        return 0

    with monkeypatch.context() as m:
        m.setattr(serve_module, "_create_app", create_app)
        m.setattr(serve_module, "_serve_api", fake_api)
        code = serve_module.serve(settings, stop or threading.Event())
    objects["reconciler"].last_good.flush(5)
    return code, objects


def _start_and_stop(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> tuple[int, dict]:
    """A full start (journal read, runner seeded) stopped right after the seeding, before anything fires."""
    from zmi_reconciler.runner import Runner

    stop = threading.Event()
    real_seed = Runner.seed

    def seed_then_stop(self: Runner) -> None:
        stop.set()
        real_seed(self)

    with monkeypatch.context() as m:
        m.setattr(Runner, "seed", seed_then_stop)
        return _serve(settings, monkeypatch, stop)


# ------------------------------------------------------------------------ runner: old order == new order
def _prepare(tmp_path: Path, clock: FakeClock, rec: Recorder, lines: list[tuple[str, dict[str, Any]]]) -> Journal:
    journal = Journal(tmp_path / "journal", clock=clock)
    for event, fields in lines:
        journal.append(event, **fields)
    return journal


def _both_orders(tmp_path: Path, start: datetime, now: datetime, lines: list[tuple[str, dict[str, Any]]],
                 steps: list[tuple[str, Any]], ticks: int = 2) -> tuple[list, list, dict, dict]:
    """Run ``steps`` (("apply", (sid, sched, hash)) / ("remove", sid)) on two runners with identical journals:
    old order (plain apply), new order (defer_seeding, steps, seed). Returns the journal events each wrote after
    ``start`` (without ts) and each runner's statuses."""
    results = []
    for order in ("old", "new"):
        rec = Recorder()
        clock = FakeClock(start)
        journal = _prepare(tmp_path / order, clock, rec, lines)
        before = len(list(journal.iter_events()))
        clock.set(now)
        runner = make_runner(tmp_path / order, clock, rec, journal=journal)
        if order == "new":
            runner.defer_seeding()
        for kind, arg in steps:
            if kind == "apply":
                runner.apply(*arg)
            else:
                runner.remove(arg)
        if order == "new":
            runner.seed()
        for _ in range(ticks):
            runner.run_once()
            wait_idle(runner)
        evs = [{k: v for k, v in e.items() if k not in ("ts", "duration_ms", "pid")}
               for e in list(journal.iter_events())[before:]]
        # runs execute on worker threads: two runs' events interleave either way; each run's stay in order
        evs.sort(key=lambda e: (e.get("schedule", ""), e.get("run_id", "")))
        statuses = {sid: {k: runner.status(sid).get(k) for k in ("next_fire", "last_slot", "content_hash")}
                    for sid in runner.schedule_ids()}
        runner.stop(0)
        rec.release.set()
        results.append((evs, statuses))
    (old_evs, old_st), (new_evs, new_st) = results
    return old_evs, new_evs, old_st, new_st


def _ran(sid: str, slot: datetime, trigger: str = "scheduled") -> list[tuple[str, dict[str, Any]]]:
    rid = _rid(sid, slot)
    return [("run_started", dict(schedule=sid, run_id=rid, trigger=trigger, scheduled_for=_iso(slot),
                                 content_hash="h")),
            ("run_finished", dict(schedule=sid, run_id=rid, status="succeeded"))]


def test_a_downtime_across_the_spring_forward_gives_the_same_catch_up_and_missed_records(tmp_path: Path) -> None:
    """daily 02:30 Europe/Berlin (does not exist on 2026-03-29: 03:30 CEST) and hourly slots, down from Friday
    to Monday: the same run_missed and catch_up in both orders, and the catch-up is the Monday slot."""
    daily = make_schedule({"type": "daily", "at": "02:30"}, catch_up="2d")
    hourly = make_schedule({"type": "hours", "every": 1, "minute": 30}, catch_up="3h")
    lines = _ran("d", utc(2026, 3, 27, 1, 30)) + _ran("h", utc(2026, 3, 28, 22, 30))
    old, new, old_st, new_st = _both_orders(
        tmp_path, utc(2026, 3, 27, 1, 0), utc(2026, 3, 30, 2, 0), lines,
        [("apply", ("d", daily, "h")), ("apply", ("h", hourly, "h"))])
    assert old == new and old_st == new_st
    missed_d = [e["scheduled_for"] for e in new if e["event"] == "run_missed" and e["schedule"] == "d"]
    assert missed_d == ["2026-03-28T01:30:00.000Z", "2026-03-29T01:30:00.000Z"]  # 02:30 CET, 03:30 CEST
    runs = [(e["run_id"], e["trigger"]) for e in new if e["event"] == "run_started"]
    assert ("d@20260330T003000Z", "catch_up") in runs and ("h@20260330T013000Z", "catch_up") in runs


def test_a_journal_whose_last_slot_is_in_the_future_is_seeded_alike(tmp_path: Path) -> None:
    """A last slot after now (the clock went back, or a journal copied from another machine): no catch-up, no
    missed records, the next fire after that slot, in both orders."""
    sched = make_schedule({"type": "minutes", "every": 15}, catch_up="1h")
    future = utc(2026, 5, 1, 14, 0)
    old, new, old_st, new_st = _both_orders(
        tmp_path, utc(2026, 5, 1, 13, 0), utc(2026, 5, 1, 12, 5), _ran("c", future), [("apply", ("c", sched, "h"))])
    assert old == new == [] and old_st == new_st
    assert new_st["c"]["next_fire"] == utc(2026, 5, 1, 14, 15) and new_st["c"]["last_slot"] == future


def test_apply_twice_remove_and_reapply_before_the_seeding_match_the_old_order(tmp_path: Path) -> None:
    """Sequences the old order handled with the journal read: the same hash twice (no-op), remove then apply
    again (known to this process: not seeded again, no catch-up), a paused and a manual schedule (never fire,
    never record missed fires)."""
    sched = make_schedule({"type": "minutes", "every": 15}, catch_up="1h")
    paused = make_schedule({"type": "minutes", "every": 15}, catch_up="1h", enabled=False)
    manual = make_schedule({"type": "manual"})
    lines = _ran("a", utc(2026, 5, 1, 9, 0)) + _ran("r", utc(2026, 5, 1, 9, 0)) + _ran("p", utc(2026, 5, 1, 9, 0)) \
        + _ran("m", utc(2026, 5, 1, 9, 0))
    old, new, old_st, new_st = _both_orders(
        tmp_path, utc(2026, 5, 1, 8, 0), utc(2026, 5, 1, 12, 5), lines,
        [("apply", ("a", sched, "h")), ("apply", ("a", sched, "h")),
         ("apply", ("r", sched, "h")), ("remove", "r"), ("apply", ("r", sched, "h2")),
         ("apply", ("p", paused, "h")), ("apply", ("m", manual, "h"))])
    assert old == new and old_st == new_st
    assert {e["schedule"] for e in new} == {"a"}  # r: not seeded again; p and m: nothing at all
    assert new_st["p"]["next_fire"] is None and new_st["m"]["next_fire"] is None
    assert new_st["r"]["next_fire"] == utc(2026, 5, 1, 12, 15)


def test_seed_twice_and_seed_without_defer_do_nothing(tmp_path: Path) -> None:
    rec = Recorder()
    clock = FakeClock(utc(2026, 5, 1, 8, 0))
    journal = _prepare(tmp_path, clock, rec, _ran("c", utc(2026, 5, 1, 9, 0)))
    clock.set(utc(2026, 5, 1, 12, 5))
    runner = make_runner(tmp_path, clock, rec, journal=journal)
    runner.seed()  # without defer_seeding: nothing to seed, apply() is not deferred afterwards
    runner.defer_seeding()
    runner.defer_seeding()  # twice: the first one's schedules are not forgotten
    runner.apply("c", make_schedule({"type": "minutes", "every": 15}, catch_up="1h"), "h")
    runner.seed()
    first = runner.status("c")["next_fire"]
    runner.seed()
    assert runner.status("c")["next_fire"] == first == utc(2026, 5, 1, 9, 15)  # the first slot after the last one
    assert len(runner._scheduler.get_jobs()) == 1
    runner.run_once()
    wait_idle(runner)
    runner.run_once()
    wait_idle(runner)
    started = [e["trigger"] for e in journal.iter_events() if e["event"] == "run_started"]
    assert started == ["scheduled", "catch_up"]
    runner.stop(0)


# --------------------------------------------------------------------------- serve in process
def _keep_last_good(settings: Settings, sid: str, text: str, loaded_at: datetime) -> None:
    store = LastGoodStore(settings.last_good_path)
    data = text.encode()
    store.keep(sid, data, hashlib.sha256(data).hexdigest(), loaded_at)
    assert store.flush(5)


# Found by QA, fixed since: a stop (SIGTERM) or an open error during start-up now comes after the reconcile: the
# last-good copy of a file deleted while stopped is discarded but its held schedule_removed (deleted_while_stopped)
# is dropped, so no start ever journals it
@pytest.mark.parametrize("how", ["sigterm_while_loading", "journal_open_fails"])
def test_an_aborted_start_does_not_lose_the_deleted_while_stopped_record(
        settings: Settings, monkeypatch: pytest.MonkeyPatch, how: str) -> None:
    text = ALIVE_EVERY_15.format(name="Gone", extra="")
    _keep_last_good(settings, "gone", text, datetime.now(UTC) - timedelta(days=1))  # it ran before; file deleted
    if how == "sigterm_while_loading":
        stop = threading.Event()
        stop.set()  # SIGTERM while the API was imported / the files loaded (test_serve_startup does the same)
        code, _ = _serve(settings, monkeypatch, stop)
        assert code == 0
    else:
        def broken_open(self: Journal) -> None:
            raise OSError("journal disk not mounted yet")

        with monkeypatch.context() as m:
            m.setattr(Journal, "open", broken_open)
            code, _ = _serve(settings, monkeypatch)
        assert code == 2
    assert _all_events(settings.journal_path) == []  # nothing journaled by the aborted start (as before)
    code, _ = _start_and_stop(settings, monkeypatch)
    assert code == 0
    removed = [e for e in _all_events(settings.journal_path) if e["event"] == "schedule_removed"]
    assert [(e["schedule"], e.get("deleted_while_stopped")) for e in removed] == [("gone", True)]


# Found by QA, fixed since: a start stopped during loading (before the journal is read) now writes the last-good
# copy of a new file stamped then, so the next start claims running_since from a start that never ran it
def test_an_aborted_start_does_not_stamp_running_since(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    (settings.schedules_dir / "fresh.yaml").write_text(ALIVE_EVERY_15.format(name="Fresh", extra=""))
    stop = threading.Event()
    stop.set()
    assert _serve(settings, monkeypatch, stop)[0] == 0
    before_real_start = datetime.now(UTC)
    code, objects = _start_and_stop(settings, monkeypatch)
    assert code == 0
    loaded_at = objects["reconciler"].state("fresh").loaded_at
    assert loaded_at >= before_real_start, f"running since {loaded_at}, before this start ({before_real_start})"


def _previous_life(settings: Settings, sid: str, slots_ago: int = 8) -> datetime:
    """Journal of an earlier server: ``sid`` (every 15 minutes) ran ``slots_ago`` slots before now."""
    now = datetime.now(UTC)
    grid = now.replace(minute=now.minute - now.minute % 15, second=0, microsecond=0)
    slot = grid - timedelta(minutes=15 * slots_ago)
    journal = Journal(settings.journal_path, index_cache=False)
    for event, fields in _ran(sid, slot):
        journal.append(event, **fields)
    journal.close()
    return slot


def _runs_and_missed(settings: Settings, sid: str, after: datetime) -> list[tuple[str, str]]:
    return [(e["event"], e["run_id"]) for e in _all_events(settings.journal_path)
            if e["event"] in ("run_started", "run_missed") and e.get("schedule") == sid
            and e.get("scheduled_for", "") > _iso(after)]


# Found by QA, fixed since: a schedule file paused/deleted/made manual while the journal is read at start-up still
# fires its catch-up and records run_missed from the version read before the journal (the old order read the file
# after the journal: never fired)
@pytest.mark.parametrize("edit", ["paused", "deleted", "manual"])
def test_an_edit_while_the_journal_is_read_is_what_runs(settings: Settings, monkeypatch: pytest.MonkeyPatch,
                                                         edit: str) -> None:
    path = settings.schedules_dir / "c.yaml"
    path.write_text(ALIVE_EVERY_15.format(name="C", extra=""))
    slot = _previous_life(settings, "c")
    real_open = Journal.open

    def open_after_an_edit(self: Journal) -> None:  # an operator's `git pull` while a big journal is read
        if edit == "paused":
            path.write_text(ALIVE_EVERY_15.format(name="C", extra="enabled: false\n"))
        elif edit == "manual":
            path.write_text("name: C\ntiming: {type: manual}\ntasks:\n  - task: alive_check\n")
        else:
            path.unlink()
        real_open(self)

    def settled(o: dict[str, Any]) -> bool:  # the watcher has seen the edit and no run is going
        state = o["reconciler"].state("c")
        seen = (state is None if edit == "deleted" else
                state is not None and state.schedule is not None and (
                    not state.schedule.enabled if edit == "paused" else state.schedule.timing.type == "manual"))
        return seen and not o["runner"].active_runs()

    monkeypatch.setattr(Journal, "open", open_after_an_edit)
    code, objects = _serve(settings, monkeypatch, until=settled)
    assert code == 0 and objects.get("until"), "the watcher never picked the edit up"
    assert _runs_and_missed(settings, "c", slot) == []


def test_a_full_start_keeps_the_order_restores_and_catches_up(settings: Settings,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    """In process, the whole contract once: run_interrupted of the killed server first, then the schedule_*
    events of this start (each once), a broken file runs its last good version (schedule_loaded restored_from,
    then schedule_invalid), the catch-up of the downtime with run_missed for the other slots, paused and manual
    schedules never fire, and every enabled timed schedule has a next fire once serving."""
    folder = settings.schedules_dir
    (folder / "c.yaml").write_text(ALIVE_EVERY_15.format(name="C", extra=""))
    (folder / "p.yaml").write_text(ALIVE_EVERY_15.format(name="P", extra="enabled: false\n"))
    (folder / "m.yaml").write_text("name: M\ntiming: {type: manual}\ntasks:\n  - task: alive_check\n")
    good_b = ALIVE_EVERY_15.format(name="B", extra="")
    (folder / "b.yaml").write_text("name: B\ntiming: {type: minutes, every: often}\n")
    _keep_last_good(settings, "b", good_b, datetime.now(UTC) - timedelta(days=2))
    slot = _previous_life(settings, "c", slots_ago=4)
    for sid in ("p", "m", "b"):
        _previous_life(settings, sid, slots_ago=4)
    journal = Journal(settings.journal_path, index_cache=False)
    journal.append("run_started", schedule="m", run_id="m@manual-killed", trigger="manual", pid=2**22 + 4321)
    journal.close()
    before = len(_all_events(settings.journal_path))

    def settled(o: dict[str, Any]) -> bool:  # the catch-ups of c and b ran
        finished = {e["schedule"] for e in _all_events(settings.journal_path)[before:] if e["event"] == "run_finished"}
        return {"b", "c"} <= finished and not o["runner"].active_runs()

    statuses: dict[str, Any] = {}

    def settled_and_status(o: dict[str, Any]) -> bool:
        if not statuses:
            statuses.update({sid: o["runner"].status(sid) for sid in o["runner"].schedule_ids()})
        return settled(o)

    code, objects = _serve(settings, monkeypatch, until=settled_and_status)
    assert code == 0 and objects.get("until")
    new = _all_events(settings.journal_path)[before:]
    names = [(e["event"], e.get("schedule")) for e in new]
    assert names[0] == ("run_interrupted", "m")
    schedule_events = [n for n in names if n[0].startswith("schedule_")]
    assert names[1:1 + len(schedule_events)] == schedule_events  # right after the run_interrupted, before runs
    assert sorted(schedule_events) == sorted([("schedule_loaded", s) for s in "bcmp"] + [("schedule_invalid", "b")])
    b_loaded = next(e for e in new if e["event"] == "schedule_loaded" and e["schedule"] == "b")
    assert b_loaded["restored_from"] and b_loaded["content_hash"] == hashlib.sha256(good_b.encode()).hexdigest()
    assert names.index(("schedule_loaded", "b")) < names.index(("schedule_invalid", "b"))
    assert not any(e.get("schedule") in ("p", "m") and e["event"] in ("run_started", "run_missed") for e in new)
    for sid in ("c", "b"):  # the degraded b runs its last good version and catches up like c
        started = [(e["trigger"]) for e in new if e["event"] == "run_started" and e["schedule"] == sid]
        missed = [e for e in new if e["event"] == "run_missed" and e["schedule"] == sid]
        assert started[:1] in (["catch_up"], ["scheduled"]) and len(missed) >= 3, (sid, started, missed)
        assert len({e["run_id"] for e in new if e.get("schedule") == sid and e["event"] in (
            "run_started", "run_missed")}) == len(started) + len(missed)  # no slot twice
    assert statuses["c"]["next_fire"] is not None and statuses["b"]["next_fire"] is not None
    assert statuses["p"]["next_fire"] is None and statuses["m"]["next_fire"] is None
    assert slot < datetime.now(UTC)


def test_a_stop_during_the_reconcile_pass_writes_nothing_and_fires_nothing(
        settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTERM arriving in the middle of the start-up pass: exit 0, the journal untouched (the held events are
    not half written), nothing fires; the next start journals the pass once."""
    from zmi_reconciler import reconcile

    (settings.schedules_dir / "c.yaml").write_text(ALIVE_EVERY_15.format(name="C", extra=""))
    _previous_life(settings, "c")
    before = _all_events(settings.journal_path)
    stop = threading.Event()
    real_pass = reconcile.Reconciler.reconcile_all

    def pass_with_a_signal(self: Any) -> Any:
        out = real_pass(self)
        stop.set()
        return out

    with monkeypatch.context() as m:
        m.setattr(reconcile.Reconciler, "reconcile_all", pass_with_a_signal)
        m.setattr(Journal, "open", lambda self: pytest.fail("the journal is not read for a stop"))
        code, objects = _serve(settings, monkeypatch, stop)
    assert code == 0 and "served" not in objects
    assert _all_events(settings.journal_path) == before
    code, _ = _start_and_stop(settings, monkeypatch)
    after = _all_events(settings.journal_path)[len(before):]
    assert [(e["event"], e["schedule"]) for e in after] == [("schedule_loaded", "c")]


# --------------------------------------------------------------------------- a real server process
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_real_server_after_a_downtime(tmp_path: Path) -> None:
    """``python -m zmi_reconciler serve`` on a data dir whose journal an earlier process wrote (a run it left
    open, a schedule that missed slots): right after /readyz every enabled timed schedule has next_fire, the
    journal order holds, an edit right after the start is picked up, SIGTERM exits 0 without a traceback."""
    import httpx

    folder = tmp_path / "schedules.d"
    folder.mkdir()
    (folder / "c.yaml").write_text(ALIVE_EVERY_15.format(name="C", extra=""))
    (folder / "d.yaml").write_text("name: D\ntiming: {type: daily, at: \"05:00\"}\ntasks:\n  - task: alive_check\n")
    (folder / "p.yaml").write_text(ALIVE_EVERY_15.format(name="P", extra="enabled: false\n"))
    settings = Settings(data_dir=tmp_path / "var", schedules_dir=folder, port=1)
    slot = _previous_life(settings, "c", slots_ago=3)
    journal = Journal(settings.journal_path, index_cache=False)
    journal.append("run_started", schedule="d", run_id="d@manual-killed", trigger="manual", pid=2**22 + 4321)
    journal.close()
    before = len(_all_events(settings.journal_path))
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZMI_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "zmi_reconciler", "serve", "--data-dir", str(tmp_path / "var"),
         "--schedules-dir", str(folder), "--port", str(port)],
        env=env, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")
            assert time.monotonic() < deadline, "no /readyz within 30 s"
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            time.sleep(0.02)
        token = (tmp_path / "var" / "admin.token").read_text().strip()
        headers = {"Authorization": f"Bearer {token}"}
        body = httpx.get(f"{base}/schedules", headers=headers, timeout=5).json()
        items = body["items"] if isinstance(body, dict) else body
        fires = {item["id"]: item["status"]["next_fire"] for item in items}
        assert fires["c"] and fires["d"] and fires["p"] is None, fires
        assert datetime.fromisoformat(fires["c"].replace("Z", "+00:00")) > slot  # not the slot of the last life
        (folder / "c.yaml").write_text(ALIVE_EVERY_15.format(name="C edited", extra=""))  # right after the start
        deadline = time.monotonic() + 15
        while not any(e["event"] == "schedule_updated" and e["schedule"] == "c"
                      for e in _all_events(settings.journal_path)[before:]):
            assert time.monotonic() < deadline, "the edit right after the start was not picked up"
            assert proc.poll() is None
            time.sleep(0.05)
        deadline = time.monotonic() + 15
        while not any(e["event"] == "run_finished" and e["schedule"] == "c"
                      for e in _all_events(settings.journal_path)[before:]):
            assert time.monotonic() < deadline, "the catch-up did not finish"
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(20) == 0
        stderr = proc.stderr.read().decode(errors="replace")
        assert "Traceback" not in stderr, stderr[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
    new = _all_events(settings.journal_path)[before:]
    names = [(e["event"], e.get("schedule")) for e in new]
    assert names[0] == ("run_interrupted", "d")
    assert sorted(names[1:4]) == [("schedule_loaded", "c"), ("schedule_loaded", "d"), ("schedule_loaded", "p")]
    assert names.count(("schedule_loaded", "c")) == 1
    assert not any(e.get("schedule") == "p" and e["event"].startswith("run_") for e in new)
    c_runs = [e for e in new if e.get("schedule") == "c" and e["event"] in ("run_started", "run_missed")]
    assert len({e["run_id"] for e in c_runs}) == len(c_runs) >= 3  # missed slots + the catch-up, none twice
    assert all(e["scheduled_for"] > _iso(slot) for e in c_runs)


# Found by QA, fixed since: 625e3e2: close_interrupted(orphaned) only re-checks the runs orphaned_runs gave, so a
# CLI run whose process dies while serve stops leftover commands is never closed run_interrupted by this start (the
# old close_interrupted() looked at every run again)
def test_a_cli_run_that_dies_during_the_start_is_closed_by_it(settings: Settings,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    cli = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        journal = Journal(settings.journal_path, index_cache=False)
        journal.append("run_started", schedule="x", run_id="x@manual-killed", trigger="manual", pid=2**22 + 4321)
        journal.append("run_started", schedule="y", run_id="y@manual-cli", trigger="manual", pid=cli.pid)
        journal.close()

        def stop_leftovers(j: Any, run_ids: list[str]) -> None:  # takes a moment; meanwhile the CLI run dies
            assert run_ids == ["x@manual-killed"]
            cli.kill()
            cli.wait(10)

        with monkeypatch.context() as m:
            m.setattr(serve_module, "_stop_leftover_commands", stop_leftovers)
            assert _start_and_stop(settings, monkeypatch)[0] == 0
    finally:
        if cli.poll() is None:
            cli.kill()
            cli.wait(10)
    journal = Journal(settings.journal_path, index_cache=False)
    assert journal.get_run("x@manual-killed")["status"] == "interrupted"
    assert journal.get_run("y@manual-cli")["status"] == "interrupted"


def test_a_schedule_resumed_in_its_file_while_stopped_fires_from_now(settings: Settings,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    """SPEC 3.3: a paused schedule records no missed fires and resumes from now. Paused when the last server
    stopped (its last good copy says ``enabled: false``) and resumed in its file while none ran (a git pull and a
    restart): no run_missed, no catch-up burst for the paused time, schedule_loaded says so, next fire after now.
    An enabled schedule edited while stopped (e) still catches up its downtime."""
    folder = settings.schedules_dir
    slot = _previous_life(settings, "r", slots_ago=4)
    _previous_life(settings, "e", slots_ago=4)
    paused_at = slot + timedelta(minutes=5)  # r paused after its last run (the copy is that version, loaded then)
    _keep_last_good(settings, "r", ALIVE_EVERY_15.format(name="R", extra="enabled: false\n"), paused_at)
    _keep_last_good(settings, "e", ALIVE_EVERY_15.format(name="E", extra=""), paused_at)
    (folder / "r.yaml").write_text(ALIVE_EVERY_15.format(name="R", extra="enabled: true\n"))
    (folder / "e.yaml").write_text(ALIVE_EVERY_15.format(name="E", extra="description: edited while stopped\n"))
    before = len(_all_events(settings.journal_path))
    started = datetime.now(UTC)

    def settled(o: dict[str, Any]) -> bool:
        done = {e["schedule"] for e in _all_events(settings.journal_path)[before:] if e["event"] == "run_finished"}
        return "e" in done and not o["runner"].active_runs()

    code, objects = _serve(settings, monkeypatch, until=settled)
    assert code == 0 and objects.get("until")
    new = _all_events(settings.journal_path)[before:]
    loaded = {e["schedule"]: e for e in new if e["event"] == "schedule_loaded"}
    assert loaded["r"].get("resumed_while_stopped") is True and "resumed_while_stopped" not in loaded["e"]
    assert not [e for e in new if e.get("schedule") == "r" and e["event"] in ("run_started", "run_missed")]
    assert len([e for e in new if e.get("schedule") == "e" and e["event"] == "run_missed"]) >= 3
    next_fire = objects["runner"].status("r")["next_fire"]
    assert next_fire is not None and next_fire > started
