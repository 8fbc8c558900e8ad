"""backup_database: online snapshot into a verified ZIP, weekday rotation, timestamp pruning, failures."""

from __future__ import annotations

import json
import sqlite3
import threading
import zipfile
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from zmi_reconciler.tasks import backup_database as task
from zmi_reconciler.tasks.base import TaskCancelled, TaskFailed
from zmi_reconciler.tna.store import Store

from test_task_helpers import Clock, dump_tables, make_ctx, make_settings, seed_small_store

# Monday 2026-04-20 05:00 Berlin (03:00 UTC)
MONDAY = datetime(2026, 4, 20, 3, 0, tzinfo=timezone.utc)


@pytest.fixture
def settings(tmp_path):
    s = make_settings(tmp_path)
    seed_small_store(s.database_path)
    return s


def test_weekday_backup_is_a_verified_zip_with_the_same_rows(settings):
    ctx = make_ctx(settings, "backup_database", Clock(MONDAY))
    result = task.run(ctx, task.Params())
    target = settings.backup_path / "zmi-mon.zip"
    assert result.file == str(target)
    assert result.verified is True
    assert result.bytes == target.stat().st_size > 0
    assert result.seconds >= 0
    with zipfile.ZipFile(target) as zf:
        assert sorted(zf.namelist()) == ["manifest.json", "tna.sqlite3"]
        manifest = json.loads(zf.read("manifest.json"))
        restored = settings.data_dir / "unpacked.sqlite3"
        restored.write_bytes(zf.read("tna.sqlite3"))
    assert manifest["row_counts"]["bookings"] == 20
    assert manifest["row_counts"]["employees"] == 2
    assert dump_tables(restored) == dump_tables(settings.database_path)
    # nothing left behind in the backup dir but the ZIP
    assert [p.name for p in settings.backup_path.iterdir()] == ["zmi-mon.zip"]


def test_weekday_name_follows_the_local_date_and_rotates(settings):
    # 23:30 UTC on Sunday is already Monday 01:30 in Berlin
    ctx = make_ctx(settings, "backup_database", Clock(datetime(2026, 4, 19, 23, 30, tzinfo=timezone.utc)))
    assert task.run(ctx, task.Params()).file.endswith("zmi-mon.zip")
    names = set()
    for day in range(7):
        clock = Clock(MONDAY + timedelta(days=day))
        names.add(Path(task.run(make_ctx(settings, "backup_database", clock), task.Params()).file).name)
    assert names == {f"zmi-{d}.zip" for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    # the next Monday replaces the first file instead of adding an eighth
    task.run(make_ctx(settings, "backup_database", Clock(MONDAY + timedelta(days=7))), task.Params())
    assert len(list(settings.backup_path.glob("zmi-*.zip"))) == 7


def test_timestamp_naming_keeps_the_newest(settings):
    settings.backup_path.mkdir(parents=True)
    (settings.backup_path / "zmi-mon.zip").write_bytes(b"weekday file, never pruned")
    (settings.backup_path / "notes.txt").write_text("unrelated")
    files = []
    for hour in range(5):
        clock = Clock(MONDAY + timedelta(hours=hour))
        result = task.run(make_ctx(settings, "backup_database", clock), task.Params(naming="timestamp", keep=3))
        files.append(Path(result.file).name)
    assert files[0] == "zmi-nightly-20260420T030000Z.zip"
    assert result.deleted == 1
    left = sorted(p.name for p in settings.backup_path.iterdir())
    assert left == sorted(files[2:] + ["zmi-mon.zip", "notes.txt"])


def test_timestamp_rotation_keeps_other_schedules_backups(settings):
    """Each schedule rotates its own timestamped backups: a copy of backup-now running every minute must not
    delete the backups backup-now took before risky work (nor files of older versions without a schedule)."""
    settings.backup_path.mkdir(parents=True)
    legacy = settings.backup_path / "zmi-20260101T000000Z.zip"
    legacy.write_bytes(b"written before backups carried their schedule")
    params = task.Params(naming="timestamp", keep=2)
    before_risky_work = [Path(task.run(make_ctx(settings, "backup_database", Clock(MONDAY + timedelta(minutes=m)),
                                                schedule_id="backup-now"), params).file).name for m in range(2)]
    copies = [task.run(make_ctx(settings, "backup_database", Clock(MONDAY + timedelta(hours=1, minutes=m)),
                                schedule_id="my-backup"), params) for m in range(4)]
    assert [c.deleted for c in copies] == [0, 0, 1, 1]
    left = sorted(p.name for p in settings.backup_path.iterdir())
    assert left == sorted(before_risky_work + [Path(c.file).name for c in copies[2:]] + [legacy.name])
    assert before_risky_work[0] == "zmi-backup-now-20260420T030000Z.zip"


def test_backup_sees_one_snapshot_while_another_connection_writes(settings):
    """Counts and copy come from the same snapshot even when rows are added concurrently."""
    stop = threading.Event()

    def writer():
        conn = sqlite3.connect(settings.database_path, timeout=10)
        i = 0
        while not stop.is_set():
            conn.execute("INSERT INTO task_state (key, value, updated_at) VALUES (?, '1', 'x')", (f"k{i}",))
            conn.commit()
            i += 1
        conn.close()

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        for i in range(5):
            clock = Clock(MONDAY + timedelta(minutes=i))
            result = task.run(make_ctx(settings, "backup_database", clock), task.Params(naming="timestamp"))
            assert result.verified  # verification compares the copy with the counts of its snapshot
    finally:
        stop.set()
        thread.join()


def test_verification_failure_fails_the_task_and_keeps_the_old_file(settings, monkeypatch):
    ctx = make_ctx(settings, "backup_database", Clock(MONDAY))
    task.run(ctx, task.Params())
    old = (settings.backup_path / "zmi-mon.zip").read_bytes()

    real_snapshot = Store.snapshot_to

    def lying_snapshot(self, target):
        counts = real_snapshot(self, target)
        counts["bookings"] += 1  # pretend the live store had one more row than the copy
        return counts

    monkeypatch.setattr(Store, "snapshot_to", lying_snapshot)
    with pytest.raises(TaskFailed, match="row counts differ"):
        task.run(make_ctx(settings, "backup_database", Clock(MONDAY)), task.Params())
    assert (settings.backup_path / "zmi-mon.zip").read_bytes() == old
    assert [p.name for p in settings.backup_path.iterdir()] == ["zmi-mon.zip"]


def test_unreadable_store_fails_visibly(tmp_path):
    settings = make_settings(tmp_path)
    settings.database_path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(TaskFailed, match="cannot open the tna store"):
        task.run(make_ctx(settings, "backup_database", Clock(MONDAY)), task.Params())
    assert not list(settings.backup_path.glob("*.zip"))


def test_cancelled_before_start(settings):
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(TaskCancelled):
        task.run(make_ctx(settings, "backup_database", Clock(MONDAY), cancel=cancel), task.Params())
    assert not list(settings.backup_path.glob("*.zip"))


def test_verify_detects_a_corrupted_zip(settings):
    result = task.run(make_ctx(settings, "backup_database", Clock(MONDAY)), task.Params())
    path = Path(result.file)
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    with pytest.raises(task.BackupError):
        task.verify_backup_zip(path)


def test_backup_of_a_store_open_in_this_process(settings):
    """The live store may be open (WAL, uncheckpointed writes) in another Store object."""
    with Store.open(settings.database_path, zone=settings.zone) as live:
        live.set_state("marker", {"x": 1})
        result = task.run(make_ctx(settings, "backup_database", Clock(MONDAY)), task.Params())
        assert result.verified
        with zipfile.ZipFile(result.file) as zf:
            assert json.loads(zf.read("manifest.json"))["row_counts"]["task_state"] == 1


def test_two_timestamped_backups_within_one_second_keep_both_and_prune_in_order(settings):
    """A second backup of the schedule in the same second (two manual runs) gets -2 instead of replacing the first;
    pruning counts it as the newer."""
    clock = Clock(MONDAY)
    params = task.Params(naming="timestamp", keep=2)
    first = Path(task.run(make_ctx(settings, "backup_database", clock), params).file)
    second = Path(task.run(make_ctx(settings, "backup_database", clock), params).file)
    stem = f"zmi-{make_ctx(settings, 'backup_database', clock).schedule_id}-20260420T030000Z"
    assert (first.name, second.name) == (f"{stem}.zip", f"{stem}-2.zip")
    assert first.exists() and second.exists() and first.read_bytes() != b""
    third = Path(task.run(make_ctx(settings, "backup_database", clock), params).file)
    assert third.name == f"{stem}-3.zip"
    assert not first.exists() and second.exists() and third.exists()  # keep 2: the oldest of the three went
    clock.now = MONDAY + timedelta(seconds=1)  # a later second sorts after every backup of the earlier one
    fourth = Path(task.run(make_ctx(settings, "backup_database", clock), params).file)
    assert fourth.name.endswith("030001Z.zip")
    assert sorted(p.name for p in settings.backup_path.glob("zmi-*.zip")) == [third.name, fourth.name]
