"""The last good version of a schedule survives a restart (SPEC 5, ``zmi_reconciler.lastgood``): a file that is
broken when the server starts runs its persisted last good version, degraded with the file's errors; fixing the
file replaces the copy, deleting it removes the copy; without a copy (or with one that does not validate any
more, or is damaged) the schedule is not run, as before. Copies are written atomically and only when they
change, and a start whose files are all valid reads none."""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from zmi_reconciler import lastgood
from zmi_reconciler.config import Settings
from zmi_reconciler.journal import Journal
from zmi_reconciler.lastgood import LastGoodStore
from zmi_reconciler.reconcile import Change, Reconciler, preload

from test_reconcile import ALIVE, BROKEN_NIGHTLY, NIGHTLY, FakeRunner

FRIDAY = datetime(2026, 3, 27, 17, 30, 15, 250000, tzinfo=timezone.utc)
MONDAY = datetime(2026, 3, 30, 6, 0, tzinfo=timezone.utc)


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class Server:
    """One process life: a runner, a journal and a reconciler on ``tmp_path``; :meth:`restart` starts the next."""

    def __init__(self, tmp_path: Path, now: datetime, preload_files: bool = False,
                 commands: dict[str, list[str]] | None = None) -> None:
        self.folder = tmp_path / "schedules.d"
        self.settings = Settings(data_dir=tmp_path / "var", schedules_dir=self.folder, commands=commands or {})
        self.tmp_path = tmp_path
        self.now = now
        self.runner = FakeRunner()
        self.journal = Journal(tmp_path / "var" / "journal", clock=lambda: self.now)
        preloaded = preload(self.folder) if preload_files else None
        self.rec = Reconciler(self.settings, self.runner, self.journal, clock=lambda: self.now, preloaded=preloaded)

    def reconcile(self) -> list[Change]:
        changes = self.rec.reconcile_all()
        assert self.rec.last_good.flush(10)
        return changes

    def restart(self, now: datetime, preload_files: bool = False,
                commands: dict[str, list[str]] | None = None) -> "Server":
        self.journal.close()
        return Server(self.tmp_path, now, preload_files, commands)

    def events(self, *names: str) -> list[dict[str, Any]]:
        return [e for e in self.journal.iter_events() if e["event"] in names]

    def copies(self) -> list[str]:
        directory = self.settings.last_good_path
        return sorted(os.listdir(directory)) if directory.exists() else []


def _first_server(tmp_path: Path, now: datetime = FRIDAY) -> Server:
    (tmp_path / "schedules.d").mkdir()
    return Server(tmp_path, now)


def test_broken_file_at_start_runs_the_last_good_version_and_reports_the_errors(tmp_path: Path) -> None:
    friday = _first_server(tmp_path)
    path = friday.folder / "nightly.yaml"
    path.write_text(NIGHTLY)
    friday.reconcile()
    good = _sha(NIGHTLY.encode())
    assert friday.copies() == [f"nightly.20260327T173015.250000Z.{good}.yaml"]
    assert (friday.settings.last_good_path / friday.copies()[0]).read_text() == NIGHTLY
    path.write_text(BROKEN_NIGHTLY)  # the Friday evening push ...
    assert friday.reconcile() == [Change("nightly", "invalid")]
    assert friday.copies() == [f"nightly.20260327T173015.250000Z.{good}.yaml"]  # an invalid file is no copy

    monday = friday.restart(MONDAY)  # ... and a restart over the weekend
    assert monday.reconcile() == [Change("nightly", "loaded"), Change("nightly", "invalid")]
    assert monday.runner.calls == [("apply", "nightly", good)]
    assert monday.runner.schedules["nightly"].timing.at == "05:00"
    st = monday.rec.state("nightly")
    assert st is not None and st.running and st.degraded and st.restored
    assert st.content_hash == good and st.file_hash == _sha(BROKEN_NIGHTLY.encode())
    assert st.loaded_at == FRIDAY  # running since Friday, not since the restart
    assert st.file == path
    assert [(f.path, f.line, f.column, f.code) for f in st.findings if f.severity == "error"] == [
        ("timing.at", 2, 27, "E020")]
    loaded = monday.events("schedule_loaded")[-1]
    assert (loaded["schedule"], loaded["file"], loaded["content_hash"], loaded["enabled"]) == (
        "nightly", str(path), good, True)
    assert loaded["restored_from"] == str(monday.settings.last_good_path / monday.copies()[0])
    assert loaded["loaded_at"] == "2026-03-27T17:30:15.250Z"
    invalid = monday.events("schedule_invalid")[-1]
    assert (invalid["file"], invalid["line"], invalid["column"], invalid["code"]) == (str(path), 2, 27, "E020")
    assert invalid["running_hash"] == good and invalid["running_since"] == "2026-03-27T17:30:15.250Z"
    assert monday.reconcile() == []  # the same broken file is reported once, the copy is not touched
    assert monday.runner.calls == [("apply", "nightly", good)]

    path.write_text(NIGHTLY.replace("05:00", "05:30"))  # fixed: the new version replaces the copy
    assert monday.reconcile() == [Change("nightly", "updated")]
    fixed = _sha(NIGHTLY.replace("05:00", "05:30").encode())
    assert monday.runner.calls[-1] == ("apply", "nightly", fixed)
    st = monday.rec.state("nightly")
    assert st is not None and not st.degraded and not st.restored and st.loaded_at == MONDAY
    assert monday.copies() == [f"nightly.20260330T060000.000000Z.{fixed}.yaml"]


def test_a_valid_file_at_restart_keeps_its_copy_and_its_since(tmp_path: Path, monkeypatch) -> None:
    """The copy already holds the bytes: nothing is written or read, and the version runs since it first loaded;
    a file edited while the server was down replaces its copy (read once before: was that version paused?)."""
    friday = _first_server(tmp_path)
    (friday.folder / "nightly.yaml").write_text(NIGHTLY)
    (friday.folder / "alive.yaml").write_text(ALIVE)
    friday.reconcile()
    before = {name: os.stat(friday.settings.last_good_path / name).st_ino for name in friday.copies()}
    (friday.folder / "alive.yaml").write_text(ALIVE.replace("every: 5", "every: 10"))  # while down

    writes: list[str] = []
    real_write = lastgood._atomic_write
    monkeypatch.setattr(lastgood, "_atomic_write", lambda path, data: (writes.append(path.name),
                                                                       real_write(path, data)))
    reads: list[Any] = []
    real_read = LastGoodStore.read
    monkeypatch.setattr(LastGoodStore, "read", lambda self, copy: (reads.append(copy), real_read(self, copy))[1])
    monday = friday.restart(MONDAY)
    assert monday.reconcile() == [Change("alive", "loaded"), Change("nightly", "loaded")]
    assert [copy.schedule_id for copy in reads] == ["alive"]
    assert [name.split(".")[0] for name in writes] == ["alive"]
    assert monday.rec.state("nightly").loaded_at == FRIDAY  # type: ignore[union-attr]
    assert monday.rec.state("alive").loaded_at == MONDAY  # type: ignore[union-attr]
    nightly = [name for name in monday.copies() if name.startswith("nightly.")]
    assert os.stat(monday.settings.last_good_path / nightly[0]).st_ino == before[nightly[0]]
    assert len(monday.copies()) == 2


def test_deleting_the_file_removes_the_copy_also_while_the_server_is_down(tmp_path: Path) -> None:
    server = _first_server(tmp_path)
    for sid in ("nightly", "alive", "backup"):
        (server.folder / f"{sid}.yaml").write_text(NIGHTLY)
    server.reconcile()
    assert [name.split(".")[0] for name in server.copies()] == ["alive", "backup", "nightly"]
    (server.folder / "alive.yaml").unlink()
    assert server.reconcile() == [Change("alive", "removed")]
    assert [name.split(".")[0] for name in server.copies()] == ["backup", "nightly"]

    backup_copy = server.settings.last_good_path / server.copies()[0]
    (server.folder / "backup.yaml").unlink()  # deleted while down ...
    (server.folder / "nightly.yaml").write_text(BROKEN_NIGHTLY)
    monday = server.restart(MONDAY)
    assert monday.reconcile() == [Change("backup", "removed"), Change("nightly", "loaded"),
                                  Change("nightly", "invalid")]
    assert [name.split(".")[0] for name in monday.copies()] == ["nightly"]  # ... its copy goes at the start
    removed = monday.events("schedule_removed")[-1]  # ... and the journal says it went
    assert (removed["schedule"], removed["file"], removed["content_hash"], removed["deleted_while_stopped"],
            removed["last_good"], removed["ts"]) == ("backup", None, _sha(NIGHTLY.encode()), True, str(backup_copy),
                                                     "2026-03-30T06:00:00.000Z")
    assert monday.reconcile() == []
    assert len(monday.restart(MONDAY).events("schedule_removed")) == 2  # once: alive's and backup's
    assert "backup" not in monday.rec.states() and "backup" not in monday.runner.schedules
    (monday.folder / "backup.yaml").write_text(BROKEN_NIGHTLY)  # a new file of that id never ran: not run
    assert monday.reconcile() == [Change("backup", "invalid")]
    assert not monday.rec.state("backup").running  # type: ignore[union-attr]

    (monday.folder / "nightly.yaml").unlink()  # a restored schedule's file deleted: removed, copy too
    assert monday.reconcile() == [Change("nightly", "removed")]
    assert monday.runner.calls[-1] == ("remove", "nightly", None)
    assert monday.copies() == []


def test_missing_folder_at_start_keeps_the_copies(tmp_path: Path) -> None:
    server = _first_server(tmp_path)
    (server.folder / "nightly.yaml").write_text(NIGHTLY)
    server.reconcile()
    (server.folder / "nightly.yaml").rename(tmp_path / "nightly.yaml")
    server.folder.rmdir()
    monday = server.restart(MONDAY)
    assert monday.reconcile() == []  # "no information": nothing is removed
    assert len(monday.copies()) == 1
    monday.folder.mkdir()
    (monday.folder / "nightly.yaml").write_text(BROKEN_NIGHTLY)
    assert monday.reconcile() == [Change("nightly", "loaded"), Change("nightly", "invalid")]


def test_without_a_copy_a_broken_file_at_start_is_not_run(tmp_path: Path) -> None:
    server = _first_server(tmp_path, MONDAY)
    (server.folder / "nightly.yaml").write_text(BROKEN_NIGHTLY)
    assert server.reconcile() == [Change("nightly", "invalid")]
    st = server.rec.state("nightly")
    assert st is not None and st.degraded and not st.running and not st.restored and st.loaded_at is None
    assert server.runner.calls == []
    assert server.events("schedule_invalid")[0]["running_hash"] is None
    assert server.events("schedule_loaded") == []
    assert server.copies() == []


def _plant_copy(server: Server, sid: str, text: str, loaded_at: datetime = FRIDAY) -> Path:
    data = text.encode()
    directory = server.settings.last_good_path
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{sid}.{loaded_at.strftime('%Y%m%dT%H%M%S.%fZ')}.{_sha(data)}.yaml"
    path.write_bytes(data)
    return path


def test_a_copy_that_no_longer_validates_is_not_run_and_removed_with_a_warning(tmp_path: Path, caplog) -> None:
    """After an upgrade that changed the schema a copy may be invalid: it is not run, a warning says why, its
    errors join the status, and it is removed (the schedule does not run from now on, so the copy could no longer
    say since when it runs)."""
    server = _first_server(tmp_path, MONDAY)
    copy = _plant_copy(server, "nightly", NIGHTLY.replace("daily", "fortnightly"))  # an older release's timing
    (server.folder / "nightly.yaml").write_text(BROKEN_NIGHTLY)
    with caplog.at_level(logging.WARNING, logger="zmi_reconciler.reconcile"):
        assert server.reconcile() == [Change("nightly", "invalid")]
    st = server.rec.state("nightly")
    assert server.runner.calls == [] and st is not None and not st.running and st.degraded
    warning = [r.getMessage() for r in caplog.records if "does not validate any more" in r.getMessage()]
    assert len(warning) == 1 and str(copy) in warning[0] and "E025" in warning[0] and "line 2" in warning[0]
    assert "removed" in warning[0]
    assert not copy.exists() and server.copies() == []
    assert [(f.file, f.code, f.path, f.line) for f in st.findings] == [
        (str(server.folder / "nightly.yaml"), "E020", "timing.at", 2), (str(copy), "E025", "timing.type", 2)]
    assert st.findings[1].message.startswith(f"the last good version ({copy.name}, loaded 2026-03-27T17:30:15.250Z) "
                                             "is not run either and was removed: unknown timing type")
    invalid = server.events("schedule_invalid")[-1]
    assert (invalid["code"], [e["code"] for e in invalid["errors"]]) == ("E020", ["E020"])
    assert [(e["file"], e["code"]) for e in invalid["last_good_errors"]] == [(str(copy), "E025")]
    (server.folder / "nightly.yaml").write_text(NIGHTLY.replace("05:00", "25:01"))  # still broken: still said
    assert server.reconcile() == [Change("nightly", "invalid")]
    assert [f.code for f in server.rec.state("nightly").findings] == ["E020", "E025"]  # type: ignore[union-attr]
    (server.folder / "nightly.yaml").write_text(NIGHTLY)
    assert server.reconcile() == [Change("nightly", "loaded")]
    assert server.copies() == [f"nightly.20260330T060000.000000Z.{_sha(NIGHTLY.encode())}.yaml"]


def test_a_damaged_copy_is_ignored_with_a_warning(tmp_path: Path, caplog) -> None:
    server = _first_server(tmp_path, MONDAY)
    copy = _plant_copy(server, "nightly", NIGHTLY)
    copy.write_bytes(NIGHTLY.encode()[:20])  # torn by a disk fault: no longer the bytes its name promises
    (server.folder / "nightly.yaml").write_text(BROKEN_NIGHTLY)
    with caplog.at_level(logging.WARNING, logger="zmi_reconciler.reconcile"):
        assert server.reconcile() == [Change("nightly", "invalid")]
    assert server.runner.calls == []
    assert any("damaged copy" in r.getMessage() and str(copy) in r.getMessage() for r in caplog.records)


def test_a_damaged_copy_is_replaced_when_the_file_is_fixed_back_to_its_bytes(tmp_path: Path, caplog) -> None:
    """The QA trial: a copy damaged while the server is down, the file broken too. The start cannot use the copy
    (correct); it removes it, so fixing the file back to exactly those bytes writes a sound copy, running since
    the fix (the schedule did not run in between), which the next restart with a broken file runs."""
    friday = _first_server(tmp_path)
    path = friday.folder / "nightly.yaml"
    path.write_text(NIGHTLY)
    friday.reconcile()
    damaged = friday.settings.last_good_path / friday.copies()[0]
    with damaged.open("a") as handle:
        handle.write("# appended by hand\n")
    path.write_text(BROKEN_NIGHTLY)

    monday = friday.restart(MONDAY)
    with caplog.at_level(logging.WARNING, logger="zmi_reconciler.reconcile"):
        assert monday.reconcile() == [Change("nightly", "invalid")]
    assert monday.runner.calls == [] and monday.copies() == []  # not run, and the damaged copy is gone
    assert any("damaged copy" in r.getMessage() and "removed" in r.getMessage() for r in caplog.records)
    fixed_at = MONDAY + timedelta(hours=2)
    monday.now = fixed_at
    path.write_text(NIGHTLY)  # fixed back to exactly the bytes of the damaged copy
    assert monday.reconcile() == [Change("nightly", "loaded")]
    good = _sha(NIGHTLY.encode())
    assert monday.copies() == [f"nightly.20260330T080000.000000Z.{good}.yaml"]
    assert (monday.settings.last_good_path / monday.copies()[0]).read_text() == NIGHTLY
    assert monday.rec.state("nightly").loaded_at == fixed_at  # type: ignore[union-attr]

    path.write_text(BROKEN_NIGHTLY)
    tuesday = monday.restart(MONDAY + timedelta(days=1))
    assert tuesday.reconcile() == [Change("nightly", "loaded"), Change("nightly", "invalid")]
    assert tuesday.runner.calls == [("apply", "nightly", good)]
    assert tuesday.rec.state("nightly").loaded_at == fixed_at  # type: ignore[union-attr]


def test_a_version_that_did_not_run_at_a_start_runs_since_its_next_load(tmp_path: Path) -> None:
    """running_since is since when the version has run without interruption: a restart that could not run it
    (file broken, copy damaged) interrupts it, so fixing the file while the server is down again does not bring
    back the old instant."""
    friday = _first_server(tmp_path)
    path = friday.folder / "nightly.yaml"
    path.write_text(NIGHTLY)
    friday.reconcile()
    (friday.settings.last_good_path / friday.copies()[0]).write_text(NIGHTLY.replace("05:00", "06:00"))
    path.write_text(BROKEN_NIGHTLY)
    monday = friday.restart(MONDAY)
    assert monday.reconcile() == [Change("nightly", "invalid")]
    path.write_text(NIGHTLY)  # fixed while down
    tuesday = monday.restart(MONDAY + timedelta(days=1))
    assert tuesday.reconcile() == [Change("nightly", "loaded")]
    assert tuesday.rec.state("nightly").loaded_at == MONDAY + timedelta(days=1)  # type: ignore[union-attr]
    assert tuesday.copies() == [f"nightly.20260331T060000.000000Z.{_sha(NIGHTLY.encode())}.yaml"]


def test_a_copy_damaged_while_its_file_stays_valid_is_rewritten_in_the_background(tmp_path: Path, monkeypatch,
                                                                                   caplog) -> None:
    """A start with a valid file reads no copy on its way (the name says the bytes); the writer thread then checks
    the copy's bytes and rewrites a damaged one under the same name, so a later restart with a broken file runs
    it, since the first load (the version ran all along)."""
    friday = _first_server(tmp_path)
    path = friday.folder / "nightly.yaml"
    path.write_text(NIGHTLY)
    (friday.folder / "alive.yaml").write_text(ALIVE)
    friday.reconcile()
    names = friday.copies()
    damaged = friday.settings.last_good_path / names[1]
    assert damaged.name.startswith("nightly.")
    damaged.write_bytes(NIGHTLY.encode()[:20])
    sound = friday.settings.last_good_path / names[0]
    sound_inode = sound.stat().st_ino

    reads: list[Any] = []
    real_read, real_bytes_of = LastGoodStore.read, lastgood._bytes_of
    monkeypatch.setattr(LastGoodStore, "read", lambda self, copy: (reads.append(copy), real_read(self, copy))[1])
    monkeypatch.setattr(lastgood, "_bytes_of", lambda p: (reads.append(p.name), real_bytes_of(p))[1])
    writes: list[str] = []
    real_write = lastgood._atomic_write
    monkeypatch.setattr(lastgood, "_atomic_write", lambda p, data: (writes.append(p.name), real_write(p, data)))
    monday = friday.restart(MONDAY)
    with caplog.at_level(logging.WARNING, logger="zmi_reconciler.lastgood"):
        assert monday.rec.reconcile_all() == [Change("alive", "loaded"), Change("nightly", "loaded")]
        assert reads == [] and writes == []  # nothing read on the start-up path: the check comes later ...
        assert monday.rec.last_good.flush(10)  # ... (flush does it now)
    assert sorted(reads) == sorted(names) + [damaged.name]  # both checked, the damaged one again before writing
    assert writes == [damaged.name]  # the sound copy is not rewritten
    assert monday.copies() == names and damaged.read_text() == NIGHTLY and sound.stat().st_ino == sound_inode
    assert any(str(damaged) in r.getMessage() and "damaged copy" in r.getMessage() for r in caplog.records)
    assert monday.rec.state("nightly").loaded_at == FRIDAY  # type: ignore[union-attr]

    path.write_text(BROKEN_NIGHTLY)
    tuesday = monday.restart(MONDAY + timedelta(days=1))
    assert tuesday.reconcile() == [Change("alive", "loaded"), Change("nightly", "loaded"),
                                   Change("nightly", "invalid")]
    assert tuesday.runner.calls[-1] == ("apply", "nightly", _sha(NIGHTLY.encode()))
    assert tuesday.rec.state("nightly").loaded_at == FRIDAY  # type: ignore[union-attr]


def test_a_paused_last_good_version_stays_paused(tmp_path: Path) -> None:
    friday = _first_server(tmp_path)
    path = friday.folder / "nightly.yaml"
    path.write_text("enabled: false\n" + NIGHTLY)
    friday.reconcile()
    path.write_text("enabled: true\n" + BROKEN_NIGHTLY)  # a resume together with a broken edit
    monday = friday.restart(MONDAY)
    assert monday.reconcile() == [Change("nightly", "loaded"), Change("nightly", "invalid")]
    assert monday.runner.schedules["nightly"].enabled is False
    assert monday.events("schedule_loaded")[-1]["enabled"] is False


def test_preloaded_start_restores_too(tmp_path: Path) -> None:
    """serve loads the files before the reconciler exists (``preload``); the first pass restores all the same."""
    friday = _first_server(tmp_path)
    (friday.folder / "nightly.yaml").write_text(NIGHTLY)
    (friday.folder / "alive.yaml").write_text(ALIVE)
    friday.reconcile()
    (friday.folder / "nightly.yaml").write_text(BROKEN_NIGHTLY)
    monday = friday.restart(MONDAY, preload_files=True)
    assert monday.reconcile() == [Change("alive", "loaded"), Change("nightly", "loaded"), Change("nightly", "invalid")]
    assert monday.runner.calls == [("apply", "alive", _sha(ALIVE.encode())),
                                   ("apply", "nightly", _sha(NIGHTLY.encode()))]


def test_a_duplicate_id_at_start_runs_the_last_good_version(tmp_path: Path) -> None:
    """x.yaml and x.yml at once (E030) is one more way to be invalid: as during a process life, the last good
    version runs; a rename to .yml keeps the id and the copy."""
    friday = _first_server(tmp_path)
    (friday.folder / "nightly.yaml").write_text(NIGHTLY)
    friday.reconcile()
    (friday.folder / "nightly.yml").write_text(ALIVE)
    monday = friday.restart(MONDAY)
    assert monday.reconcile() == [Change("nightly", "loaded"), Change("nightly", "invalid")]
    assert {f.code for f in monday.rec.state("nightly").findings} == {"E030"}  # type: ignore[union-attr]
    (monday.folder / "nightly.yaml").unlink()  # the other file wins: an update, a new copy
    assert monday.reconcile() == [Change("nightly", "updated")]
    assert monday.copies() == [f"nightly.20260330T060000.000000Z.{_sha(ALIVE.encode())}.yaml"]


# ---------------------------------------------------------------------------------------------- the store itself
def test_store_writes_atomically_and_keeps_the_old_copy_when_a_write_fails(tmp_path: Path, monkeypatch,
                                                                              caplog) -> None:
    store = LastGoodStore(tmp_path / "last-good")
    first = store.keep("nightly", b"v1", _sha(b"v1"), FRIDAY)
    assert store.flush(10)

    def failing_fsync(fd: int) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(lastgood.os, "fsync", failing_fsync)
    with caplog.at_level(logging.WARNING, logger="zmi_reconciler.lastgood"):
        store.keep("nightly", b"v2 " * 1000, _sha(b"v2 " * 1000), MONDAY)
        assert store.flush(10)
    monkeypatch.undo()
    assert sorted(os.listdir(store.directory)) == [first.path.name]  # no partial copy, no temp file left
    assert first.path.read_bytes() == b"v1"
    assert store.get("nightly") == first
    assert any("No space left" in r.getMessage() for r in caplog.records)
    # The next start sees the old copy.
    reopened = LastGoodStore(tmp_path / "last-good")
    assert reopened.get("nightly") == first and reopened.read(first) == b"v1"


def test_held_changes_are_seen_but_not_written_until_released(tmp_path: Path) -> None:
    """serve holds what its start-up pass changes until it serves: reads see the changes, the disk does not,
    and a process that ends before release() leaves the copies as they were."""
    store = LastGoodStore(tmp_path / "last-good")
    old = store.keep("gone", b"g", _sha(b"g"), FRIDAY)
    assert store.flush(10)
    store.hold()
    new = store.keep("nightly", b"v1", _sha(b"v1"), MONDAY)
    store.discard("gone")
    assert store.get("nightly") == new and store.read(new) == b"v1" and store.ids() == {"nightly"}
    assert store.flush(0.5)  # nothing is being written
    assert sorted(os.listdir(store.directory)) == [old.path.name]
    assert LastGoodStore(tmp_path / "last-good").ids() == {"gone"}  # what a later start would find
    store.release()
    store.release()  # idempotent
    assert store.flush(10)
    assert sorted(os.listdir(store.directory)) == [new.path.name]
    store.keep("nightly", b"v2", _sha(b"v2"), MONDAY + timedelta(hours=1))  # written at once again
    assert store.flush(10) and LastGoodStore(tmp_path / "last-good").get("nightly").content_hash == _sha(b"v2")


def test_store_listing_cleans_up_after_a_crash(tmp_path: Path) -> None:
    """A crash can leave a temp file and, between the rename and the removal, two copies of an id."""
    directory = tmp_path / "last-good"
    directory.mkdir()
    (directory / ".nightly.abc123.tmp").write_bytes(b"half")
    older = directory / f"nightly.20260327T173015.250000Z.{_sha(b'old')}.yaml"
    newer = directory / f"nightly.20260330T060000.000000Z.{_sha(b'new')}.yaml"
    older.write_bytes(b"old")
    newer.write_bytes(b"new")
    (directory / "notes.txt").write_text("an operator's note")
    store = LastGoodStore(directory)
    copy = store.get("nightly")
    assert copy is not None and copy.path == newer and copy.loaded_at == MONDAY
    assert store.read(copy) == b"new"
    assert store.ids() == {"nightly"}
    assert not (directory / ".nightly.abc123.tmp").exists()
    store.keep("nightly", b"newest", _sha(b"newest"), MONDAY + timedelta(days=1))
    assert store.flush(10)
    assert sorted(os.listdir(directory)) == [f"nightly.20260331T060000.000000Z.{_sha(b'newest')}.yaml", "notes.txt"]
    store.discard("nightly")
    assert store.get("nightly") is None and store.ids() == set()  # at once, before the writer ran
    assert store.flush(10)
    assert os.listdir(directory) == ["notes.txt"]


def test_store_keep_checks_the_bytes_of_a_copy_it_does_not_rewrite_and_fresh_restamps(tmp_path: Path) -> None:
    store = LastGoodStore(tmp_path / "last-good")
    first = store.keep("nightly", b"v1", _sha(b"v1"), FRIDAY)
    assert store.flush(10)
    first.path.write_bytes(b"v1 and a torn tail")
    assert store.keep("nightly", b"v1", _sha(b"v1"), MONDAY) == first  # the name is right: the instant stays
    assert store.flush(10)
    assert os.listdir(store.directory) == [first.path.name] and first.path.read_bytes() == b"v1"
    again = store.keep("nightly", b"v1", _sha(b"v1"), MONDAY, fresh=True)  # ran anew: a new copy, the old goes
    assert again.loaded_at == MONDAY and store.get("nightly") == again
    assert store.flush(10)
    assert os.listdir(store.directory) == [again.path.name] and again.path.read_bytes() == b"v1"
    assert LastGoodStore(tmp_path / "last-good").get("nightly") == again


def test_store_checks_a_kept_copy_on_its_own_after_the_delay(tmp_path: Path) -> None:
    store = LastGoodStore(tmp_path / "last-good", check_delay=0.2)
    copy = store.keep("nightly", b"v1", _sha(b"v1"), FRIDAY)
    assert store.flush(10)
    copy.path.write_bytes(b"v")
    assert store.keep("nightly", b"v1", _sha(b"v1"), MONDAY) == copy
    assert copy.path.read_bytes() == b"v"  # not yet
    deadline = time.monotonic() + 10
    while copy.path.read_bytes() != b"v1" and time.monotonic() < deadline:
        time.sleep(0.02)
    assert copy.path.read_bytes() == b"v1" and os.listdir(store.directory) == [copy.name]


def test_store_queued_changes_are_seen_before_they_are_written(tmp_path: Path, monkeypatch) -> None:
    store = LastGoodStore(tmp_path / "last-good")
    gate = threading.Event()
    real_write = lastgood._atomic_write
    monkeypatch.setattr(lastgood, "_atomic_write", lambda path, data: (gate.wait(10), real_write(path, data)))
    copy = store.keep("nightly", b"v1", _sha(b"v1"), FRIDAY)
    assert store.get("nightly") == copy and store.read(copy) == b"v1"
    assert store.keep("nightly", b"v1", _sha(b"v1"), MONDAY) == copy  # same bytes: the first instant stays
    assert not store.flush(0.05)
    gate.set()
    assert store.flush(10)
    assert LastGoodStore(tmp_path / "last-good").get("nightly") == copy
    with pytest.raises(ValueError):
        store.keep("../etc", b"x", _sha(b"x"), FRIDAY)


# ---------------------------------------------------------------------------------------------- through the API
def test_api_reports_the_restored_version_and_its_writes_keep_and_remove_copies(tmp_path: Path) -> None:
    from litestar.testing import TestClient

    from test_api_support import READ, WRITE, close_env, make_env

    spec = {"name": "Nightly processing", "timing": {"type": "daily", "at": "05:00"},
            "tasks": [{"task": "calculate_days"}]}
    env = make_env(tmp_path, now=FRIDAY)
    try:
        with TestClient(env.app) as client:
            created = client.post("/api/v1/schedules", json={"id": "nightly", "spec": spec}, headers=WRITE)
            assert created.status_code == 201, created.text
        good = created.headers["etag"].strip('"')
        assert env.reconciler.last_good.flush(10)
        directory = env.settings.last_good_path
        assert os.listdir(directory) == [f"nightly.20260327T173015.250000Z.{good}.yaml"]
        assert (directory / os.listdir(directory)[0]).read_bytes() == (env.schedules / "nightly.yaml").read_bytes()
    finally:
        close_env(env)
    path = tmp_path / "schedules.d" / "nightly.yaml"
    path.write_text(path.read_text().replace('"05:00"', '"25:00"'))  # broken while the server is down

    env = make_env(tmp_path, now=MONDAY)
    try:
        with TestClient(env.app) as client:
            detail = client.get("/api/v1/schedules/nightly", headers=READ).json()
            listed = client.get("/api/v1/schedules", headers=READ).json()["items"]
            status = detail["status"]
            assert (status["enabled"], status["loaded"], status["degraded"]) == (True, True, True)
            assert [(e["path"], e["line"], e["column"], e["code"]) for e in status["errors"]] == [
                ("timing.at", 5, 7, "E020")]
            assert status["next_fire"] is not None  # it fires
            assert detail["spec"] is None and detail["etag"] != created.headers["etag"]
            assert detail["running_content_hash"] == good
            assert detail["running_since"] == "2026-03-27T17:30:15.250000Z"
            assert detail["running_spec"]["timing"] == {"type": "daily", "at": "05:00"}
            assert listed[0]["status"] == status

            spec["timing"]["at"] = "05:30"
            fixed = client.put("/api/v1/schedules/nightly", json=spec, headers={**WRITE, "If-Match": detail["etag"]})
            assert fixed.status_code == 200, fixed.text
            assert env.reconciler.last_good.flush(10)
            assert os.listdir(env.settings.last_good_path) == [
                f"nightly.20260330T060000.000000Z.{fixed.headers['etag'].strip(chr(34))}.yaml"]
            assert client.get("/api/v1/schedules/nightly", headers=READ).json()["running_since"] == (
                "2026-03-30T06:00:00Z")
            deleted = client.delete("/api/v1/schedules/nightly", headers={**WRITE, "If-Match": fixed.headers["etag"]})
            assert deleted.status_code == 204
            assert env.reconciler.last_good.flush(10)
            assert os.listdir(env.settings.last_good_path) == []
    finally:
        close_env(env)


# ---------------------------------------------------------------------------------------------- a real restart
@pytest.mark.slow
def test_serve_killed_then_started_with_a_broken_file_fires_the_last_good_version(tmp_path: Path) -> None:
    """The weekend story with real processes: ``serve`` runs a schedule and is killed (no clean stop), the file is
    broken meanwhile, and the next ``serve`` fires the last good version (with its content hash)."""
    import signal
    import sys
    import time

    from test_serve import _events, _poll, _serve

    (tmp_path / "schedules.d").mkdir()
    tick = tmp_path / "schedules.d" / "tick.yaml"
    tick.write_text("name: Tick\ntiming: {type: seconds, every: 1}\ntasks:\n"
                    "  - task: run_command\n    params: {command: hello}\n")
    good = _sha(tick.read_bytes())
    (tmp_path / "zmi.toml").write_text(f"shutdown_grace_seconds = 0.5\n[commands]\n"
                                       f"hello = [{json.dumps(sys.executable)}, \"-c\", \"print(1)\"]\n")
    journal_dir = tmp_path / "var" / "journal"
    copies = tmp_path / "var" / "last-good"
    first = _serve(tmp_path)
    try:
        _poll(journal_dir, lambda evs: any(e["event"] == "run_started" for e in evs), 30, first)
        deadline = time.monotonic() + 10
        while not (copies.exists() and os.listdir(copies)) and time.monotonic() < deadline:
            time.sleep(0.05)
    finally:
        first.kill()
        first.wait(10)
    assert [name.split(".")[-2] for name in os.listdir(copies)] == [good]

    tick.write_text(tick.read_text().replace("every: 1", 'every: "often"'))
    restarted_at = len(_events(journal_dir))
    second = _serve(tmp_path)
    try:
        def fired_again(evs: list[dict[str, Any]]) -> bool:
            return any(e["event"] == "run_started" for e in evs[restarted_at:])

        _poll(journal_dir, fired_again, 30, second)
        second.send_signal(signal.SIGTERM)
        assert second.wait(15) == 0
        stderr = second.stderr.read().decode() if second.stderr else ""
    finally:
        if second.poll() is None:
            second.kill()
            second.wait(10)
    after = _events(journal_dir)[restarted_at:]
    reconciled = [e for e in after if e["event"].startswith("schedule_")]
    assert [(e["event"], e["schedule"]) for e in reconciled] == [("schedule_loaded", "tick"),
                                                                ("schedule_invalid", "tick")]
    assert reconciled[0]["content_hash"] == good and reconciled[0]["restored_from"].startswith(str(copies))
    assert (reconciled[1]["line"], reconciled[1]["path"], reconciled[1]["running_hash"]) == (2, "timing.every", good)
    assert {e["content_hash"] for e in after if e["event"] == "run_started"} == {good}
    assert "keeps running" in stderr and str(tick) in stderr
