"""import_bookings: inbox files -> bookings; processed/ and failed/ with reasons; unsettled files wait."""

from __future__ import annotations

import os
import threading
import time
from datetime import date, datetime, timezone

import pytest

from zmi_reconciler.tasks import import_bookings as task
from zmi_reconciler.tasks.base import TaskCancelled, TaskFailed
from zmi_reconciler.tna.store import Employee, Store

from test_task_helpers import Clock, make_ctx, make_settings, seed_plans

NOW = datetime(2026, 10, 12, 4, 0, tzinfo=timezone.utc)

ATTLOG = (
    "42\t2026-10-09 07:58:00\t1\t0\t0\n"
    "42\t2026-10-09 07:58:20\t1\t0\t0\n"      # double tap (20 s) -> collapsed
    "42\t2026-10-09 16:30:00\t1\t0\t0\n"
    "43\t2026-10-09 08:05:00\t1\t0\t0\n"
    "999\t2026-10-09 08:10:00\t1\t0\t0\n"     # unknown PIN -> unassigned
)


@pytest.fixture
def settings(tmp_path):
    s = make_settings(tmp_path)
    with Store.open(s.database_path, zone=s.zone) as store:
        seed_plans(store)
        store.upsert_employee(Employee("1001", "Anna", "Berg", pin="42", week_plan="STD", entry_date=date(2025, 1, 1)))
        store.upsert_employee(Employee("1002", "Ben", "Cho", pin="43", week_plan="STD", entry_date=date(2025, 1, 1)))
    return s


def drop(folder, name, content, age=60.0):
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    then = time.time() - age
    os.utime(path, (then, then))
    return path


def run(settings, cancel=None, **params):
    ctx = make_ctx(settings, "import_bookings", Clock(NOW), cancel=cancel)
    return task.run(ctx, task.Params(**params)), ctx


def bookings(settings):
    with Store.open(settings.database_path, zone=settings.zone) as store:
        return store.bookings_between(date(2026, 10, 1), date(2026, 10, 31))


def test_attlog_file_is_imported_and_moved_to_processed(settings):
    inbox = settings.inbox_path
    drop(inbox, "attlog.dat", ATTLOG)
    result, ctx = run(settings)
    assert result.model_dump() == {
        "files": 1, "files_failed": 0, "files_deferred": 0, "lines": 5, "bookings_new": 3,
        "bookings_duplicate": 0, "bookings_collapsed": 1, "bookings_unassigned": 1, "lines_rejected": 0,
        "bookings_still_unassigned": 1}
    assert not (inbox / "attlog.dat").exists()
    assert (inbox / "processed" / "attlog.dat").read_text() == ATTLOG
    assert not list((inbox / "processed").glob("*.error.txt"))
    stored = bookings(settings)
    assert sorted(len(v) for v in stored.values()) == [1, 2]
    assert any("unknown PINs" in m and "999 (1)" in m for m in ctx.log.messages)


def test_same_file_again_counts_duplicates_and_does_not_overwrite(settings):
    inbox = settings.inbox_path
    drop(inbox, "attlog.dat", ATTLOG)
    run(settings)
    drop(inbox, "attlog.dat", ATTLOG)
    result, ctx = run(settings)
    # the unknown PIN's booking is a duplicate of the stored unassigned one, and still unassigned
    assert (result.bookings_new, result.bookings_duplicate, result.bookings_collapsed,
            result.bookings_unassigned, result.bookings_still_unassigned) == (0, 4, 1, 0, 1)
    assert any(m.startswith("attlog.dat: unknown PINs / personnel numbers kept unassigned: 999 (1). 1 booking of "
                            "unknown PINs is kept unassigned; add the employees") for m in ctx.log.messages)
    assert sorted(p.name for p in (inbox / "processed").iterdir()) == ["attlog.20261012T040000Z.dat", "attlog.dat"]
    assert sum(len(v) for v in bookings(settings).values()) == 3


def test_csv_with_rejected_lines_goes_to_processed_with_an_error_file(settings):
    drop(settings.inbox_path, "export.csv",
         "personnel_number;timestamp;direction\n1001;2026-10-09 08:00;come\n1002;not a time;go\n1001;2026-10-09 17:00;go\n")
    result, _ = run(settings)
    assert (result.files, result.lines, result.bookings_new, result.lines_rejected) == (1, 3, 2, 1)
    error = (settings.inbox_path / "processed" / "export.csv.error.txt").read_text()
    assert error.startswith("line 3:")


def test_binary_and_all_rejected_files_go_to_failed_and_the_task_fails_after_the_rest(settings):
    inbox = settings.inbox_path
    drop(inbox, "a-binary.dat", b"\x00\x01\x02PK\x00", age=300)
    drop(inbox, "b-garbage.csv", "hello world\nthis is not an export\n", age=200)
    drop(inbox, "c-good.dat", ATTLOG, age=100)
    with pytest.raises(TaskFailed, match="2 file\\(s\\) moved to failed/: a-binary.dat, b-garbage.csv") as info:
        run(settings)
    result = info.value.result
    assert (result.files, result.files_failed, result.bookings_new) == (1, 2, 3)
    failed = inbox / "failed"
    assert sorted(p.name for p in failed.iterdir()) == [
        "a-binary.dat", "a-binary.dat.error.txt", "b-garbage.csv", "b-garbage.csv.error.txt"]
    assert "binary file" in (failed / "a-binary.dat.error.txt").read_text()
    assert "every line was rejected" in (failed / "b-garbage.csv.error.txt").read_text()
    assert (inbox / "processed" / "c-good.dat").exists()


def test_bad_file_does_not_fail_the_task_when_told_so(settings):
    drop(settings.inbox_path, "x.dat", b"\x00\x00")
    result, _ = run(settings, fail_on_bad_file=False)
    assert result.files_failed == 1


def test_file_still_being_written_is_left_for_the_next_run(settings):
    inbox = settings.inbox_path
    fresh = drop(inbox, "fresh.dat", ATTLOG, age=0.0)
    drop(inbox, "old.dat", "43\t2026-10-08 08:00:00\t1\t0\t0\n")
    result, ctx = run(settings)
    assert (result.files, result.files_deferred) == (1, 1)
    assert fresh.exists()
    assert any("still being written" in m for m in ctx.log.messages)
    old = time.time() - 10
    os.utime(fresh, (old, old))
    result, _ = run(settings)
    assert (result.files, result.bookings_new) == (1, 3)


def test_file_changing_while_read_is_deferred(settings, monkeypatch):
    path = drop(settings.inbox_path, "growing.dat", ATTLOG)
    real = type(path).read_bytes

    def read_and_grow(self):
        data = real(self)
        with open(self, "ab") as fh:
            fh.write(b"43\t2026-10-09 17:00:00\t1\t0\t0\n")
        return data

    monkeypatch.setattr(type(path), "read_bytes", read_and_grow)
    assert task.read_settled(path, 2.0, time.time()) is None


def test_pattern_and_subdir(settings):
    drop(settings.inbox_path / "terminal-1", "attlog.dat", ATTLOG)
    drop(settings.inbox_path / "terminal-1", "readme.txt", "not an export")
    result, _ = run(settings, subdir="terminal-1", pattern="*.dat")
    assert result.files == 1
    assert (settings.inbox_path / "terminal-1" / "processed" / "attlog.dat").exists()
    assert (settings.inbox_path / "terminal-1" / "readme.txt").exists()


@pytest.mark.parametrize("subdir", ["../outside", "/etc", "a/../../b"])
def test_subdir_may_not_leave_the_inbox(settings, subdir):
    with pytest.raises(TaskFailed, match="leaves its root"):
        run(settings, subdir=subdir)


def test_symlink_out_of_the_inbox_is_not_read(settings, tmp_path):
    secret = tmp_path / "secret.dat"
    secret.write_text(ATTLOG)
    settings.inbox_path.mkdir(parents=True)
    (settings.inbox_path / "link.dat").symlink_to(secret)
    with pytest.raises(TaskFailed, match="link.dat"):
        run(settings)
    assert secret.exists()
    assert bookings(settings) == {}


def test_empty_inbox_is_created_and_reports_nothing(settings):
    result, ctx = run(settings)
    assert result.model_dump() == task.Result().model_dump()
    assert settings.inbox_path.is_dir()


def test_cancellation_between_files(settings):
    drop(settings.inbox_path, "a.dat", ATTLOG)
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(TaskCancelled):
        run(settings, cancel=cancel)
    assert (settings.inbox_path / "a.dat").exists()


# --- QA: a file that breaks the importer must not block the inbox ------------------------------------------


def test_overflowing_timestamp_is_a_rejected_line_and_the_rest_imports(settings):
    inbox = settings.inbox_path
    drop(inbox, "a-overflow.csv", "1001,0001-01-01 00:00,go\n1001,2026-10-09 08:00,come\n", age=200)
    drop(inbox, "b-good.dat", ATTLOG, age=100)
    result, _ = run(settings)
    assert (result.files, result.files_failed, result.lines, result.lines_rejected, result.bookings_new) == (
        2, 0, 7, 1, 4)
    assert (inbox / "processed" / "a-overflow.csv.error.txt").read_text().startswith("line 1: bad timestamp: year 1")
    assert sorted(p.name for p in inbox.iterdir() if p.is_file()) == []


def test_unexpected_importer_error_moves_the_file_to_failed_and_the_rest_imports(settings, monkeypatch):
    from zmi_reconciler.tna import importer

    real = importer.import_text

    def broken(store, text, filename, **kw):
        if filename == "a-bad.csv":
            raise OverflowError("date value out of range")
        return real(store, text, filename, **kw)

    monkeypatch.setattr(importer, "import_text", broken)
    inbox = settings.inbox_path
    drop(inbox, "a-bad.csv", "1001,2026-10-09 08:00,come\n", age=200)
    drop(inbox, "b-good.dat", ATTLOG, age=100)
    with pytest.raises(TaskFailed, match=r"1 file\(s\) moved to failed/: a-bad.csv") as info:
        run(settings)
    result = info.value.result
    assert (result.files, result.files_failed, result.bookings_new) == (1, 1, 3)
    assert sorted(p.name for p in (inbox / "failed").iterdir()) == ["a-bad.csv", "a-bad.csv.error.txt"]
    assert (inbox / "failed" / "a-bad.csv.error.txt").read_text() == (
        "a-bad.csv: import failed: OverflowError: date value out of range\n")
    assert (inbox / "processed" / "b-good.dat").exists()
    # the next run is not blocked: nothing left in the inbox
    result, _ = run(settings)
    assert (result.files, result.files_failed) == (0, 0)


def test_store_error_leaves_the_file_in_the_inbox_for_a_retry(settings, monkeypatch):
    import sqlite3

    from zmi_reconciler.tna import importer

    def locked(store, text, filename, **kw):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(importer, "import_text", locked)
    path = drop(settings.inbox_path, "a.dat", ATTLOG)
    with pytest.raises(TaskFailed, match="a.dat: import failed, file left in the inbox: OperationalError"):
        run(settings)
    assert path.exists() and not (settings.inbox_path / "failed").exists()
