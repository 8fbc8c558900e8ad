"""Process locks of a server: its data dir, its journal folder and its tna database.

``serve`` holds :func:`acquire_server_lock` for its whole life; offline maintenance that replaces the tna store
(``zmi-reconciler restore``) takes the same locks without waiting and refuses when one is held, so a restore
never swaps the database under a running server (and a server cannot start in the middle of a restore).

Each lock is an OS file lock (``fcntl.flock`` / ``LockFileEx`` via the ``filelock`` package) on
``<data_dir>/server.lock``, ``<journal>/.server.lock`` and ``<database>.server.lock``: the kernel drops it
when the holding process dies, so a crashed server never leaves a stale lock behind. The files themselves
stay; their presence means nothing.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import filelock

if TYPE_CHECKING:  # pragma: no cover
    from zmi_reconciler.config import Settings

SERVER_LOCK_NAME = "server.lock"


class StoreBusyError(RuntimeError):
    """Another process (a running ``serve``) holds the server lock of this data dir."""


def server_lock_path(settings: "Settings") -> Path:
    """``<data_dir>/server.lock``."""
    return Path(settings.data_dir) / SERVER_LOCK_NAME


class ServerLock:
    """The held locks of one server: its data dir's, its journal folder's and its tna database's (two servers
    with their own data dirs must not share one journal or one store: both would fire every schedule and write
    the same run ids; a restore must not replace a store a server uses). ``release()`` (idempotent) or a
    ``with`` block."""

    def __init__(self, locks: list[filelock.FileLock]) -> None:
        self.locks = locks

    @property
    def lock_file(self) -> str:
        """The data dir's lock file."""
        return self.locks[0].lock_file

    def release(self) -> None:
        for lock in reversed(self.locks):
            if lock.is_locked:
                lock.release()

    def __enter__(self) -> ServerLock:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def acquire_server_lock(settings: "Settings") -> ServerLock:
    """Take the server lock without waiting and return it (held; release with ``.release()`` or a ``with``):
    ``<data_dir>/server.lock``, ``<journal>/.server.lock`` and ``<database>.server.lock``.

    Raises :class:`StoreBusyError` naming the lock file when another process holds one (nothing stays held).
    """
    journal = Path(settings.journal_path).resolve()  # (a symlink to another server's journal or store is it)
    database = Path(settings.database_path).resolve()
    # All three, also where journal and database lie in the data dir: another server (or restore) may name them
    # from a data dir of its own.
    paths = [server_lock_path(settings), journal / f".{SERVER_LOCK_NAME}",
             database.with_name(f"{database.name}.{SERVER_LOCK_NAME}")]
    held: list[filelock.FileLock] = []
    for path in paths:
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = filelock.FileLock(path, thread_local=False)
        try:
            lock.acquire(timeout=0)
        except filelock.Timeout:
            ServerLock(held).release()
            what = "the store" if path == paths[0] else (
                "this journal folder" if path.parent == journal else "this tna database")
            raise StoreBusyError(f"a zmi-reconciler server holds {what} (lock {path}); stop it first") from None
        held.append(lock)
    return ServerLock(held)
