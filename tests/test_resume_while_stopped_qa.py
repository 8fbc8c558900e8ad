"""QA of b8fc685: a schedule paused when the last server stopped and resumed in its file while none ran fires from
now (SPEC 3.3: "A paused schedule neither runs nor records missed fires; on resume the next fire is computed from
now"), decided by its last good copy (``Reconciler._paused_at_last_stop``, ``Runner.apply(paused_since=...)``).

Each server life is a real :class:`Runner`, :class:`Journal` and :class:`Reconciler` on one data dir, driven by a
:class:`FakeClock` (``Life``); ``serve``'s start-up order (defer_seeding / hold_writes, two passes, seed) is
replayed by ``Life.start(deferred=True)``. The schedules fire every 15 minutes on the epoch grid; the first life
runs the 09:00 slot, pauses ``r`` at 09:05, runs the others' slots and stops at 10:00 (UTC); the next starts
at 12:05. Defects found are at the end of the file (fixed since).
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from zmi_reconciler import lastgood
from zmi_reconciler.api.files import etag_for
from zmi_reconciler.api.service import ScheduleService
from zmi_reconciler.config import Settings
from zmi_reconciler.journal import Journal
from zmi_reconciler.lastgood import LastGoodStore
from zmi_reconciler.reconcile import Reconciler
from zmi_reconciler.runner import Runner
from zmi_reconciler.tasks.base import TaskSpec

from test_runner_support import FakeClock, utc, wait_idle

UTC = timezone.utc
EVERY_15 = ("name: {name}\ntiming: {{type: minutes, every: 15}}\ncatch_up: {catch_up}\n{extra}"
            "tasks:\n  - task: alive_check\n")
MANUAL = "name: {name}\ntiming: {{type: manual}}\n{extra}tasks:\n  - task: alive_check\n"

START = utc(2026, 5, 1, 8, 55)
PAUSED_AT = utc(2026, 5, 1, 9, 5)
STOPPED_AT = utc(2026, 5, 1, 10, 0)
RESTART = utc(2026, 5, 1, 12, 5)
DOWNTIME = [f"{h:02d}:{m:02d}" for h in (10, 11, 12) for m in (0, 15, 30, 45)
            if (10, 0) < (h, m) < (12, 5)]  # 10:15 ... 12:00: the slots a downtime 10:00-12:05 misses


def text(name: str = "R", extra: str = "", catch_up: str = "1d") -> str:
    return EVERY_15.format(name=name, extra=extra, catch_up=catch_up)


def _done(ctx: Any, params: Any) -> dict[str, Any]:
    return {"done": 1}


REGISTRY = {"alive_check": TaskSpec(name="alive_check", zmi_name="alive_check", description="test", run=_done)}


class Life:
    """One server process on ``root`` (schedules.d/ and var/), driven by ``clock``."""

    def __init__(self, root: Path, clock: FakeClock) -> None:
        self.clock = clock
        self.folder = root / "schedules.d"
        self.folder.mkdir(exist_ok=True)
        self.settings = Settings(data_dir=root / "var", schedules_dir=self.folder)
        self.journal = Journal(self.settings.journal_path, clock=clock)
        self.runner = Runner(self.settings, self.journal, clock, monotonic=clock.monotonic, registry=REGISTRY,
                             cancel_grace=0.2)
        self.rec = Reconciler(self.settings, self.runner, self.journal, clock=clock)
        self.before = len(list(self.journal.iter_events()))

    def start(self, deferred: bool = False, between: Any = None) -> None:
        """The first pass(es) of a start; ``deferred``: serve's order, ``between`` called between its passes."""
        if deferred:
            self.runner.defer_seeding()
            self.rec.hold_writes()
        self.rec.reconcile_all()
        if between is not None:
            between()
        if deferred:
            self.rec.reconcile_all()
            self.rec.release_writes()
            self.runner.seed()
        assert self.rec.last_good.flush(10)

    def reconcile(self) -> None:
        self.rec.reconcile_all()
        assert self.rec.last_good.flush(10)

    def tick(self, at: datetime | None = None) -> None:
        if at is not None:
            self.clock.set(at)
        self.runner.run_once()
        wait_idle(self.runner)

    def stop(self) -> None:
        self.runner.stop(0)
        assert self.rec.last_good.flush(10)
        self.journal.close()

    def events(self, sid: str | None = None, *names: str) -> list[dict[str, Any]]:
        return [e for e in list(self.journal.iter_events())[self.before:]
                if (sid is None or e.get("schedule") == sid) and (not names or e["event"] in names)]

    def slots(self, sid: str) -> list[tuple[str, str]]:
        """(trigger or "missed", HH:MM) of the scheduled slots this life journaled for ``sid``."""
        return [(e.get("trigger", "missed") if e["event"] == "run_started" else "missed", e["scheduled_for"][11:16])
                for e in self.events(sid, "run_started", "run_missed")]

    def loaded(self, sid: str) -> dict[str, Any]:
        return self.events(sid, "schedule_loaded")[-1]

    def next_fire(self, sid: str) -> datetime | None:
        return self.runner.status(sid)["next_fire"]

    def service(self) -> ScheduleService:
        return ScheduleService(self.settings, self.runner, self.rec, self.journal, clock=self.clock)

    def set_enabled(self, sid: str, enabled: bool) -> None:
        """The API's pause/resume endpoint (writes the file's ``enabled`` and reconciles)."""
        data = (self.folder / f"{sid}.yaml").read_bytes()
        self.service().set_enabled(sid, enabled, etag_for(data))
        assert self.rec.last_good.flush(10)


def _first_life(root: Path, clock: FakeClock, files: dict[str, str], pause: tuple[str, ...] = ("r",),
                via: str = "file", delete: tuple[str, ...] = (), before_pause: Any = None) -> Life:
    """Life one: ``files`` load at 08:55, run 09:00; at 09:05 ``pause`` is paused (file edit or API) and the files
    of ``delete`` are deleted; the others run every slot until the stop at 10:00."""
    clock.set(START)
    one = Life(root, clock)
    for name, body in files.items():
        (one.folder / name).write_text(body)
    one.start()
    one.tick(utc(2026, 5, 1, 9, 0))
    clock.set(PAUSED_AT)
    if before_pause is not None:
        before_pause(one)
    for sid in pause:
        if via == "api":
            one.set_enabled(sid, False)
        else:
            path = next(one.folder.glob(f"{sid}.y*ml"))
            path.write_text(path.read_text().replace("tasks:", "enabled: false\ntasks:", 1))
    for sid in delete:
        (one.folder / f"{sid}.yaml").unlink()
    one.reconcile()
    assert all(one.events(sid, "schedule_removed") for sid in delete)
    assert all(one.events(sid, "schedule_paused") for sid in pause)
    for minute in (15, 30, 45, 60):  # the enabled ones run each slot
        one.tick(utc(2026, 5, 1, 9, 0) + timedelta(minutes=minute))
    for sid in pause:
        assert [s for s in one.slots(sid) if s[1] > "09:05"] == []  # paused: nothing ran, nothing was missed
    one.stop()
    return one


def _next(root: Path, clock: FakeClock, at: datetime = RESTART) -> Life:
    clock.set(at)
    return Life(root, clock)


def _resume_in_file(path: Path, how: str = "flag") -> None:
    """An operator's edit while no server runs: ``flag`` turns enabled: false into enabled: true, ``drop`` removes
    the line (enabled by default)."""
    body = path.read_text()
    assert "enabled: false\n" in body
    path.write_text(body.replace("enabled: false\n", "enabled: true\n" if how == "flag" else ""))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


# ------------------------------------------------------------------------------------------------ what held
@pytest.mark.parametrize("how", ["flag", "drop"])
@pytest.mark.parametrize("deferred", [False, True])
@pytest.mark.parametrize("via", ["file", "api"])
def test_paused_at_stop_and_resumed_in_the_file_fires_from_now(tmp_path: Path, clock: FakeClock, how: str,
                                                               deferred: bool, via: str) -> None:
    """Paused (by a file edit or the API's pause) when the server stopped, resumed in the file while stopped:
    no run_missed, no catch-up, resumed_while_stopped, the next fire after the start; an enabled schedule
    (e) in the same folder still catches up its downtime."""
    _first_life(tmp_path, clock, {"r.yaml": text(), "e.yaml": text("E")}, via=via)
    _resume_in_file(tmp_path / "schedules.d" / "r.yaml", how)
    two = _next(tmp_path, clock)
    two.start(deferred=deferred)
    two.tick()
    assert two.loaded("r").get("resumed_while_stopped") is True and two.loaded("r")["enabled"] is True
    assert "resumed_while_stopped" not in two.loaded("e")
    assert two.slots("r") == []
    assert two.next_fire("r") == utc(2026, 5, 1, 12, 15)
    assert two.rec.state("r").loaded_at == RESTART  # type: ignore[union-attr]
    assert two.slots("e") == [("missed", s) for s in DOWNTIME[:-1]] + [
        ("catch_up", "12:00")]
    two.tick(utc(2026, 5, 1, 12, 15))
    assert two.slots("r") == [("scheduled", "12:15")]
    two.stop()


@pytest.mark.parametrize("resume", ["file", "api"])
def test_paused_at_stop_still_paused_at_start_then_resumed_in_the_new_process(tmp_path: Path, clock: FakeClock,
                                                                              resume: str) -> None:
    """Still paused at the start: nothing runs, nothing is missed, the copy is not read; a resume later in the
    new process (file edit or API) fires from then on."""
    _first_life(tmp_path, clock, {"r.yaml": text()})
    two = _next(tmp_path, clock)
    reads: list[str] = []
    real_read = two.rec.last_good.read
    two.rec.last_good.read = lambda copy: (reads.append(copy.schedule_id), real_read(copy))[1]  # type: ignore
    two.start()
    two.tick()
    two.tick(utc(2026, 5, 1, 12, 30))
    assert reads == [] and two.slots("r") == [] and two.next_fire("r") is None
    assert "resumed_while_stopped" not in two.loaded("r")
    clock.set(utc(2026, 5, 1, 12, 40))
    if resume == "api":
        two.set_enabled("r", True)
    else:
        _resume_in_file(two.folder / "r.yaml")
        two.reconcile()
    assert two.events("r", "schedule_resumed")
    two.tick()
    assert two.slots("r") == [] and two.next_fire("r") == utc(2026, 5, 1, 12, 45)
    two.tick(utc(2026, 5, 1, 12, 45))
    assert two.slots("r") == [("scheduled", "12:45")]
    two.stop()


def test_paused_at_stop_and_the_file_invalid_at_start_runs_the_paused_copy(tmp_path: Path,
                                                                           clock: FakeClock) -> None:
    """The file broke while stopped: its last good copy (paused) is restored and does not run or record missed
    fires; fixing the file to enabled later resumes it from then on."""
    _first_life(tmp_path, clock, {"r.yaml": text()})
    path = tmp_path / "schedules.d" / "r.yaml"
    path.write_text(path.read_text().replace("enabled: false", "enabled: true").replace("every: 15", "every: 0"))
    two = _next(tmp_path, clock)
    two.start()
    assert two.loaded("r").get("restored_from") and two.loaded("r")["enabled"] is False
    assert two.events("r", "schedule_invalid")
    two.tick()
    two.tick(utc(2026, 5, 1, 12, 30))
    assert two.slots("r") == [] and two.runner.status("r")["paused"]
    clock.set(utc(2026, 5, 1, 12, 40))
    path.write_text(text(extra="enabled: true\n"))
    two.reconcile()
    two.tick()
    assert two.slots("r") == [] and two.next_fire("r") == utc(2026, 5, 1, 12, 45)
    two.stop()


@pytest.mark.parametrize("edit", ["faster", "catch_up_window", "daily", "renamed_to_yml", "duplicate_then_fixed"])
def test_paused_at_stop_and_resumed_with_other_edits(tmp_path: Path, clock: FakeClock, edit: str) -> None:
    """Resumed and otherwise edited while stopped (timing every 5 minutes, a catch_up window that would cover
    the downtime, a daily timing whose slot of today passed in the downtime, r.yaml renamed to r.yml, two files
    for one id at the start and one removed later)."""
    _first_life(tmp_path, clock, {"r.yaml": text()})
    path = tmp_path / "schedules.d" / "r.yaml"
    body = path.read_text().replace("enabled: false\n", "")
    if edit == "faster":
        body = body.replace("every: 15", "every: 5")
    elif edit == "catch_up_window":
        body = body.replace("catch_up: 1d", "catch_up: 3h")
    elif edit == "daily":  # default catch_up 12h of a calendar timing: today's 08:00 would be caught up
        body = body.replace("{type: minutes, every: 15}", '{type: daily, at: "08:00"}').replace("catch_up: 1d\n", "")
    if edit == "renamed_to_yml":
        path.unlink()
        path = path.with_suffix(".yml")
    elif edit == "duplicate_then_fixed":
        path.with_suffix(".yml").write_text(body)
    path.write_text(body)
    two = _next(tmp_path, clock)
    two.start()
    two.tick()
    assert two.slots("r") == []
    if edit == "duplicate_then_fixed":  # E030: the paused copy is restored; one file removed: resumed from now
        assert two.loaded("r")["enabled"] is False and two.next_fire("r") is None
        path.with_suffix(".yml").unlink()
        two.reconcile()
        assert two.events("r", "schedule_resumed")
    else:
        assert two.loaded("r").get("resumed_while_stopped") is True
        assert two.loaded("r")["file"] == str(path)
    two.tick()
    assert two.slots("r") == []
    if edit == "daily":
        assert two.next_fire("r") > utc(2026, 5, 2) and two.runner.journal.last_slot("r") == utc(2026, 5, 1, 9, 0)
    else:
        assert two.next_fire("r") == utc(2026, 5, 1, 12, 10 if edit == "faster" else 15)
    two.stop()


@pytest.mark.parametrize("case", ["paused_timed_to_manual", "paused_manual_to_timed"])
def test_a_manual_schedule_paused_at_stop(tmp_path: Path, clock: FakeClock, case: str) -> None:
    """A manual schedule never fires; a paused timed schedule resumed as manual (and later given a timing in the
    new process), or a paused manual one resumed with a timing, fire from now."""
    body = MANUAL.format(name="R", extra="") if case == "paused_manual_to_timed" else text()
    _first_life(tmp_path, clock, {"r.yaml": body})
    path = tmp_path / "schedules.d" / "r.yaml"
    path.write_text(MANUAL.format(name="R", extra="") if case == "paused_timed_to_manual" else text())
    two = _next(tmp_path, clock)
    two.start()
    two.tick()
    assert two.slots("r") == []
    if case == "paused_timed_to_manual":
        assert two.next_fire("r") is None
        clock.set(utc(2026, 5, 1, 12, 40))
        path.write_text(text())
        two.reconcile()
        two.tick()
        assert two.slots("r") == [] and two.next_fire("r") == utc(2026, 5, 1, 12, 45)
    else:
        assert two.loaded("r").get("resumed_while_stopped") is True
        assert two.next_fire("r") == utc(2026, 5, 1, 12, 15)
    two.stop()


@pytest.mark.parametrize("damage", ["bytes", "dangling_symlink", "no_longer_valid"])
def test_a_damaged_or_unusable_paused_copy_leaves_the_decision_to_the_journal(tmp_path: Path, clock: FakeClock,
                                                                              damage: str) -> None:
    """As documented: a copy whose bytes do not match its name, that cannot be read or does not validate gives
    no answer; the journal decides: r was paused at 09:05 (schedule_paused) and loaded enabled again now, so it
    fires from now with no missed fires (was, before the journal kept life events: a catch-up of 12:00 from the
    last slot); nothing crashes, the copy is replaced."""
    _first_life(tmp_path, clock, {"r.yaml": text()})
    settings = Settings(data_dir=tmp_path / "var", schedules_dir=tmp_path / "schedules.d")
    [copy] = list(settings.last_good_path.iterdir())
    if damage == "bytes":
        copy.write_bytes(copy.read_bytes().replace(b"every: 15", b"every: 30"))
    elif damage == "dangling_symlink":
        copy.unlink()
        copy.symlink_to(tmp_path / "nowhere")
    else:  # a paused version the schema does not take any more, stored under its own hash
        bad = text(extra="enabled: false\n").replace("every: 15", "every: 99999").encode()
        copy.unlink()
        name = copy.name.rsplit(".", 2)[0] + f".{hashlib.sha256(bad).hexdigest()}.yaml"
        (copy.parent / name).write_bytes(bad)
    _resume_in_file(tmp_path / "schedules.d" / "r.yaml")
    two = _next(tmp_path, clock)
    two.start()
    two.tick()
    assert "resumed_while_stopped" not in two.loaded("r")
    assert two.slots("r") == []
    assert two.next_fire("r") == utc(2026, 5, 1, 12, 15)
    new = hashlib.sha256((tmp_path / "schedules.d" / "r.yaml").read_bytes()).hexdigest()
    assert [p.name.split(".")[-2] for p in settings.last_good_path.iterdir() if not p.name.startswith(".")] == [new]
    two.stop()


def test_enabled_at_stop_and_paused_while_stopped_neither_runs_nor_misses(tmp_path: Path,
                                                                          clock: FakeClock) -> None:
    """The opposite edit: nothing runs, nothing is recorded missed; a resume in the new process fires from then."""
    _first_life(tmp_path, clock, {"r.yaml": text()}, pause=())
    path = tmp_path / "schedules.d" / "r.yaml"
    path.write_text(text(extra="enabled: false\n"))
    two = _next(tmp_path, clock)
    two.start(deferred=True)
    two.tick()
    two.tick(utc(2026, 5, 1, 12, 30))
    assert two.slots("r") == [] and "resumed_while_stopped" not in two.loaded("r")
    clock.set(utc(2026, 5, 1, 12, 40))
    path.write_text(text())
    two.reconcile()
    two.tick()
    assert two.slots("r") == [] and two.next_fire("r") == utc(2026, 5, 1, 12, 45)
    two.stop()


def test_two_restarts_in_a_row_after_a_fire_catch_up_the_second_downtime(tmp_path: Path,
                                                                         clock: FakeClock) -> None:
    """Life two resumes from now and runs 12:15; its copy is now the enabled version: life three (after a
    downtime 12:20-13:05) is seeded from the journal again and catches up (no resumed_while_stopped)."""
    _first_life(tmp_path, clock, {"r.yaml": text()})
    _resume_in_file(tmp_path / "schedules.d" / "r.yaml")
    two = _next(tmp_path, clock)
    two.start(deferred=True)
    two.tick()
    two.tick(utc(2026, 5, 1, 12, 15))
    assert two.slots("r") == [("scheduled", "12:15")]
    clock.set(utc(2026, 5, 1, 12, 20))
    two.stop()
    three = _next(tmp_path, clock, utc(2026, 5, 1, 13, 5))
    three.start(deferred=True)
    three.tick()
    assert "resumed_while_stopped" not in three.loaded("r")
    assert three.slots("r") == [("missed", "12:30"), ("missed", "12:45"), ("catch_up", "13:00")]
    three.stop()


def test_a_file_that_appears_after_the_start_with_a_paused_copy(tmp_path: Path, clock: FakeClock) -> None:
    """The folder is missing at the start (copies are kept: no information) and comes back, resumed, after
    the runner was seeded: the paused copy still says it was paused at the stop, so it fires from now."""
    _first_life(tmp_path, clock, {"r.yaml": text()})
    folder = tmp_path / "schedules.d"
    _resume_in_file(folder / "r.yaml")
    folder.rename(tmp_path / "away")
    two = _next(tmp_path, clock)
    folder.rmdir()  # (Life made it)
    two.start(deferred=True)
    assert two.rec.folder_missing and two.rec.last_good.ids() == {"r"}
    two.tick()
    clock.set(utc(2026, 5, 1, 12, 20))
    (tmp_path / "away").rename(folder)
    two.reconcile()
    two.tick()
    assert two.loaded("r").get("resumed_while_stopped") is True
    assert two.slots("r") == [] and two.next_fire("r") == utc(2026, 5, 1, 12, 30)
    two.stop()


def test_many_schedules_read_only_the_copies_of_files_changed_and_enabled(tmp_path: Path, clock: FakeClock,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """60 schedules: 15 paused at the stop and resumed in the file (fire from now), 15 paused and still paused
    (nothing), 10 enabled and edited while stopped (catch up), 10 untouched (catch up), 5 paused while stopped,
    5 without a copy (catch up). Only the 25 copies of files changed and enabled now are read."""
    groups = {"res": 15, "still": 15, "edit": 10, "same": 10, "newly": 5, "nocopy": 5}
    ids = {g: [f"{g}{i:02d}" for i in range(n)] for g, n in groups.items()}
    files = {f"{sid}.yaml": text(sid.upper()) for g in ids for sid in ids[g]}
    _first_life(tmp_path, clock, files, pause=tuple(ids["res"] + ids["still"]))
    folder = tmp_path / "schedules.d"
    for sid in ids["res"]:
        _resume_in_file(folder / f"{sid}.yaml")
    for sid in ids["edit"]:
        (folder / f"{sid}.yaml").write_text(text(sid.upper(), extra="description: edited\n"))
    for sid in ids["newly"]:
        (folder / f"{sid}.yaml").write_text(text(sid.upper(), extra="enabled: false\n"))
    settings = Settings(data_dir=tmp_path / "var", schedules_dir=folder)
    for copy in settings.last_good_path.iterdir():
        if copy.name.split(".")[0] in ids["nocopy"]:
            copy.unlink()
    reads: list[str] = []
    real_read = LastGoodStore.read
    monkeypatch.setattr(LastGoodStore, "read", lambda self, copy: (reads.append(copy.schedule_id),
                                                                   real_read(self, copy))[1])
    two = _next(tmp_path, clock)
    two.start(deferred=True)
    assert sorted(reads) == sorted(ids["res"] + ids["edit"])
    two.tick()
    catch = [("missed", s) for s in DOWNTIME[:-1]] + [("catch_up", "12:00")]
    for g in ("edit", "same", "nocopy"):
        for sid in ids[g]:
            assert two.slots(sid) == catch, sid
    for g in ("res", "still", "newly"):
        for sid in ids[g]:
            assert two.slots(sid) == [], sid
            assert (two.loaded(sid).get("resumed_while_stopped") is True) == (g == "res"), sid
    assert {sid for sid in two.runner.schedule_ids() if two.next_fire(sid) is not None} == set(
        ids["res"] + ids["edit"] + ids["same"] + ids["nocopy"])
    two.stop()


# ---------------------------------------------------------------------------- bugs (fixed, see comments)
# Was a strict xfail until the journal index kept the schedules' life events (Journal.running_since): after a resume
# (in the file while stopped, or in process) the journal's last slot stays the one before the pause until the next
# fire; a restart before that fire seeds from it and records the paused time as run_missed (and may catch up a
# paused slot)
@pytest.mark.parametrize("resumed", ["while_stopped", "in_process"])
def test_a_restart_before_the_first_fire_after_a_resume_records_no_missed_fires_for_the_paused_time(
        tmp_path: Path, clock: FakeClock, resumed: str) -> None:
    """Life two resumes r (in its file while stopped: resumed_while_stopped; or through the API) and stops at
    12:10, before r's next fire 12:15. Life three at 12:40: the copy is the enabled version now, the journal
    decides, and its last slot is still 09:00 (before the pause): only 12:15 passed while r was enabled and no
    server ran. Expected: run_missed 12:15 and a catch-up of 12:30. Actual: run_missed for every slot 09:15 ...
    12:00 as well, the time r was paused (and with a daily timing the catch-up could be a paused slot)."""
    _first_life(tmp_path, clock, {"r.yaml": text()})
    if resumed == "while_stopped":
        _resume_in_file(tmp_path / "schedules.d" / "r.yaml")
    two = _next(tmp_path, clock)
    two.start(deferred=True)
    if resumed == "in_process":
        two.set_enabled("r", True)
        assert two.events("r", "schedule_resumed")
    two.tick()
    assert two.slots("r") == [] and two.next_fire("r") == utc(2026, 5, 1, 12, 15)
    clock.set(utc(2026, 5, 1, 12, 10))
    two.stop()
    three = _next(tmp_path, clock, utc(2026, 5, 1, 12, 40))
    three.start(deferred=True)
    three.tick()
    assert three.slots("r") == [("missed", "12:15"), ("catch_up", "12:30")]
    three.stop()


# Was a strict xfail until the journal index kept the schedules' life events (Journal.running_since): serve's
# deferred seeding: a schedule paused at the first pass and resumed before the second (an edit while the journal is
# read) is seeded from the journal by seed() as if first seen, so its paused time is recorded run_missed and caught
# up; applied in the old order it would fire from now
@pytest.mark.parametrize("first_pass", ["paused_file", "invalid_file_paused_copy"])
def test_a_resume_while_the_journal_is_read_at_start_fires_from_now(tmp_path: Path, clock: FakeClock,
                                                                    first_pass: str) -> None:
    """Paused at the stop; the start's first pass sees it paused (or its file broken: the paused copy is
    restored); the operator resumes it while the journal is read (between the passes). Expected: as a resume in
    a running server, the next fire from now, no run_missed. Actual: seed() seeds it from the journal's 09:00
    slot: run_missed 09:15 ... 11:45 and a catch-up of 12:00."""
    _first_life(tmp_path, clock, {"r.yaml": text()})
    path = tmp_path / "schedules.d" / "r.yaml"
    if first_pass == "invalid_file_paused_copy":
        path.write_text("name: [\n")
    two = _next(tmp_path, clock)
    two.start(deferred=True, between=lambda: path.write_text(text(extra="enabled: true\n")))
    assert two.events("r", "schedule_resumed")
    two.tick()
    assert two.slots("r") == []
    assert two.next_fire("r") == utc(2026, 5, 1, 12, 15)
    two.stop()


# Was a strict xfail until the journal index kept the schedules' life events (Journal.running_since): the decision
# rests on the last good copy alone: a copy that lags the file (its write failed, or the server was killed before
# the writer thread wrote it) makes a paused schedule record run_missed for its paused time, although the journal
# says schedule_paused
@pytest.mark.parametrize("lag", ["write_failed", "killed_before_the_write"])
def test_a_pause_whose_copy_was_not_written_records_no_missed_fires(tmp_path: Path, clock: FakeClock,
                                                                    monkeypatch: pytest.MonkeyPatch, lag: str) -> None:
    """Life one pauses r at 09:05 but the copy of the paused version is not written: a full or read-only
    last-good folder (logged, the schedule keeps running), or a kill -9 before the writer thread wrote it (here:
    the store held, never released). The journal has schedule_paused. Resumed in the file while stopped.
    Expected (SPEC 3.3): no run_missed for the paused time 09:15 ... 10:00. Actual: every slot since 09:00 is
    recorded missed (the copy is the enabled version: the journal's last slot decides)."""
    real_write = lastgood._atomic_write

    def failing_for_paused(path: Path, data: bytes) -> None:
        if b"enabled: false" in data:
            raise OSError(28, "No space left on device")
        real_write(path, data)

    if lag == "write_failed":
        monkeypatch.setattr(lastgood, "_atomic_write", failing_for_paused)
        _first_life(tmp_path, clock, {"r.yaml": text()})
        monkeypatch.setattr(lastgood, "_atomic_write", real_write)
    else:
        _first_life(tmp_path, clock, {"r.yaml": text()}, before_pause=lambda one: one.rec.last_good.hold())
    _resume_in_file(tmp_path / "schedules.d" / "r.yaml")
    two = _next(tmp_path, clock)
    two.start(deferred=True)
    two.tick()
    paused_time = {"09:15", "09:30", "09:45", "10:00"}
    assert not [s for s in two.slots("r") if s[1] in paused_time]
    two.stop()


def test_a_resume_whose_copy_was_not_written_still_catches_up_a_later_downtime(tmp_path: Path, clock: FakeClock,
                                                                               monkeypatch: pytest.MonkeyPatch
                                                                               ) -> None:
    """Life two (from a paused stop, still paused) resumes r through the API at 12:10 but the copy write fails
    (the paused copy stays); r runs 12:15 ... 13:00; the server dies at 13:05 and restarts at 14:05 with the file
    unchanged. Expected: the downtime's slots are missed and 14:00 is caught up (catch_up 1d), as for any
    enabled schedule. Was (b8fc685): resumed_while_stopped, next fire 14:15, no catch-up; fixed: the runner takes
    the copy's evidence only while the journal has no slot after the copy was loaded (r ran 12:15 ... 13:00)."""
    _first_life(tmp_path, clock, {"r.yaml": text()})
    two = _next(tmp_path, clock)
    two.start(deferred=True)
    real_write = lastgood._atomic_write

    def failing(path: Path, data: bytes) -> None:
        raise OSError(13, "Permission denied")

    monkeypatch.setattr(lastgood, "_atomic_write", failing)
    clock.set(utc(2026, 5, 1, 12, 10))
    two.set_enabled("r", True)
    for minute in range(15, 61, 15):
        two.tick(utc(2026, 5, 1, 12, 0) + timedelta(minutes=minute))
    assert [s[0] for s in two.slots("r")] == ["scheduled"] * 4
    monkeypatch.setattr(lastgood, "_atomic_write", real_write)
    clock.set(utc(2026, 5, 1, 13, 5))
    two.stop()
    three = _next(tmp_path, clock, utc(2026, 5, 1, 14, 5))
    three.start(deferred=True)
    three.tick()
    assert three.slots("r") == [("missed", "13:15"), ("missed", "13:30"), ("missed", "13:45"),
                                ("catch_up", "14:00")]
    three.stop()


# Was a strict xfail until the journal index kept the schedules' life events (Journal.running_since): known gap: a
# schedule deleted in a running server (schedule_removed, its copy removed) and created again while stopped is
# seeded from the journal: the time it did not exist in a running server is recorded as run_missed (the index does
# not keep schedule_removed)
def test_a_schedule_deleted_in_a_running_server_and_created_again_while_stopped(tmp_path: Path,
                                                                                clock: FakeClock) -> None:
    """Life one runs r at 09:00, r's file is deleted at 09:05 (schedule_removed, copy removed), the server runs
    on without r until 10:00. r.yaml is created again while stopped. Expected: no run_missed for 09:15 ... 10:00
    (r did not exist while a server ran). Actual: every slot since 09:00 is recorded missed."""
    _first_life(tmp_path, clock, {"r.yaml": text()}, pause=(), delete=("r",))
    (tmp_path / "schedules.d" / "r.yaml").write_text(text())
    two = _next(tmp_path, clock)
    two.start(deferred=True)
    two.tick()
    assert not [s for s in two.slots("r") if s[1] in {"09:15", "09:30", "09:45", "10:00"}]
    two.stop()
