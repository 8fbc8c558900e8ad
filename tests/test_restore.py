"""zmi-reconciler restore: backup -> damage -> restore -> the same rows; refusal while a server holds the
store; unusable ZIPs change nothing."""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import pytest

from zmi_reconciler.cli import main
from zmi_reconciler.locks import StoreBusyError, acquire_server_lock, server_lock_path
from zmi_reconciler.tasks import backup_database
from zmi_reconciler.tna.store import Store, check_database_file

from test_task_helpers import Clock, dump_tables, make_ctx, make_settings, seed_small_store

MONDAY = datetime(2026, 4, 20, 3, 0, tzinfo=timezone.utc)


@pytest.fixture
def setup(tmp_path):
    settings = make_settings(tmp_path)
    seed_small_store(settings.database_path)
    result = backup_database.run(make_ctx(settings, "backup_database", Clock(MONDAY)), backup_database.Params())
    return settings, Path(result.file), dump_tables(settings.database_path)


def restore_cli(settings, *args):
    return main(["restore", "--data-dir", str(settings.data_dir), *args])


def test_deleted_rows_come_back(setup, capsys):
    settings, zip_path, before = setup
    with Store.open(settings.database_path, zone=settings.zone) as store:
        store.connection.execute("DELETE FROM bookings WHERE id % 2 = 0")
        store.connection.execute("DELETE FROM outbox")
    assert dump_tables(settings.database_path) != before

    assert restore_cli(settings, str(zip_path), "--yes") == 0
    assert dump_tables(settings.database_path) == before
    out = capsys.readouterr().out
    assert "restored" in out and "before-restore" in out
    # the damaged database was kept aside, with its deletions
    kept = settings.database_path.with_name("tna.sqlite3.before-restore")
    assert kept.exists()
    with Store.open(kept, zone=settings.zone) as old:
        assert old.table_counts()["bookings"] == 10
        assert old.table_counts()["outbox"] == 0


def test_corrupted_bytes_come_back_by_bare_name_from_the_backup_dir(setup, monkeypatch):
    settings, zip_path, before = setup
    data = bytearray(settings.database_path.read_bytes())
    for offset in range(4096, min(len(data), 4096 * 4)):  # trash pages 2..4
        data[offset] = 0xA5
    settings.database_path.write_bytes(bytes(data))
    for suffix in ("-wal", "-shm"):
        Path(f"{settings.database_path}{suffix}").unlink(missing_ok=True)
    assert check_database_file(settings.database_path)[0] != []  # really damaged

    monkeypatch.chdir(settings.data_dir.parent)
    assert restore_cli(settings, zip_path.name, "--yes") == 0
    assert dump_tables(settings.database_path) == before
    assert check_database_file(settings.database_path)[0] == []


def test_refuses_while_a_server_holds_the_store(setup, capsys):
    settings, zip_path, before = setup
    with Store.open(settings.database_path, zone=settings.zone) as store:
        store.connection.execute("DELETE FROM bookings")
    damaged = dump_tables(settings.database_path)
    server = acquire_server_lock(settings)  # what `serve` holds for its lifetime
    try:
        assert restore_cli(settings, str(zip_path), "--yes") == 1
        assert "server holds the store" in capsys.readouterr().err
        assert dump_tables(settings.database_path) == damaged
        with pytest.raises(StoreBusyError, match=str(server_lock_path(settings))):
            acquire_server_lock(settings)
    finally:
        server.release()
    assert restore_cli(settings, str(zip_path), "--yes") == 0
    assert dump_tables(settings.database_path) == before


def test_unusable_zip_changes_nothing(setup, tmp_path, capsys):
    settings, zip_path, before = setup
    bad = tmp_path / "bad.zip"
    bad.write_bytes(b"PK not really a zip")
    assert restore_cli(settings, str(bad), "--yes") == 1
    assert "not a readable backup ZIP" in capsys.readouterr().err
    assert dump_tables(settings.database_path) == before
    assert not settings.database_path.with_name("tna.sqlite3.before-restore").exists()


def test_without_yes_and_without_a_terminal_it_does_not_restore(setup, monkeypatch, capsys):
    settings, zip_path, _ = setup
    with Store.open(settings.database_path, zone=settings.zone) as store:
        store.connection.execute("DELETE FROM outbox")
    monkeypatch.setattr("sys.stdin", open("/dev/null"))
    assert restore_cli(settings, str(zip_path)) == 1
    assert "pass --yes" in capsys.readouterr().err
    with Store.open(settings.database_path, zone=settings.zone) as store:
        assert store.table_counts()["outbox"] == 0


def test_missing_file_is_a_usage_error(setup, capsys):
    settings, _, _ = setup
    assert restore_cli(settings, "zmi-nope.zip", "--yes") == 2
    assert "no such file" in capsys.readouterr().err


def test_restore_into_an_empty_data_dir(setup, tmp_path):
    settings, zip_path, before = setup
    fresh = make_settings(tmp_path / "fresh")
    assert restore_cli(fresh, str(zip_path), "--yes") == 0
    assert dump_tables(fresh.database_path) == before


def test_two_servers_with_their_own_data_dirs_cannot_share_a_journal_or_a_store(tmp_path):
    """server.lock guards a data dir; its journal folder and tna database are locked too, so
    a second server pointed at the same journal (it would fire every schedule and write the same run ids) or
    the same store is refused. Nothing stays held after a refusal."""
    from zmi_reconciler.config import Settings

    shared = tmp_path / "shared"
    first = Settings(data_dir=tmp_path / "a", journal_dir=shared / "journal", database=shared / "tna.sqlite3")
    same_journal = Settings(data_dir=tmp_path / "b", journal_dir=shared / "journal")
    same_store = Settings(data_dir=tmp_path / "c", database=shared / "tna.sqlite3")
    elsewhere = Settings(data_dir=tmp_path / "d")
    held = acquire_server_lock(first)
    try:
        with pytest.raises(StoreBusyError, match="holds this journal folder"):
            acquire_server_lock(same_journal)
        with pytest.raises(StoreBusyError, match="holds this tna database"):
            acquire_server_lock(same_store)
        acquire_server_lock(elsewhere).release()
        assert (shared / "journal" / ".server.lock").exists() and (shared / "tna.sqlite3.server.lock").exists()
    finally:
        held.release()
    # the refused ones kept nothing (their data dir locks were let go) and the shared ones are free again
    with acquire_server_lock(same_journal) as lock_b, acquire_server_lock(same_store) as lock_c:
        assert [len(lock_b.locks), len(lock_c.locks)] == [3, 3]


def test_a_second_server_naming_the_journal_or_store_inside_a_running_servers_data_dir_is_refused(tmp_path):
    """The default layout (journal and store inside the data dir) is locked as well: a second server or a
    restore pointed at them from a data dir of its own is refused (QA: it started, and restore replaced the
    running server's store)."""
    from zmi_reconciler.config import Settings

    running = Settings(data_dir=tmp_path / "var")
    held = acquire_server_lock(running)
    try:
        with pytest.raises(StoreBusyError, match="holds this journal folder"):
            acquire_server_lock(Settings(data_dir=tmp_path / "other", journal_dir=running.journal_path))
        with pytest.raises(StoreBusyError, match="holds this tna database"):
            acquire_server_lock(Settings(data_dir=tmp_path / "other2", database=running.database_path))
        running.database_path.touch()
        (tmp_path / "link.sqlite3").symlink_to(running.database_path)  # QA: a symlink got around the lock
        with pytest.raises(StoreBusyError, match="holds this tna database"):
            acquire_server_lock(Settings(data_dir=tmp_path / "other3", database=tmp_path / "link.sqlite3"))
    finally:
        held.release()
