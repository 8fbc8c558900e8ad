"""Process locks on the data dir.

``serve`` holds :func:`server_lock` for its whole life; offline maintenance that replaces the tna store
(``zmi-reconciler restore``) takes the same lock without waiting and refuses when it is held, so a restore
never swaps the database under a running server (and a server cannot start in the middle of a restore).

The lock is an OS file lock (``fcntl.flock`` / ``LockFileEx`` via the ``filelock`` package) on
``<data_dir>/server.lock``: the kernel drops it when the holding process dies, so a crashed server never
leaves a stale lock behind. The file itself stays; its presence means nothing.
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


def server_lock(settings: "Settings") -> filelock.FileLock:
    """The (not yet acquired) server lock of ``settings.data_dir``; creates the data dir if needed.

    Use it as ``with acquire_server_lock(settings): ...`` or call ``acquire(timeout=0)`` yourself.
    """
    path = server_lock_path(settings)
    path.parent.mkdir(parents=True, exist_ok=True)
    return filelock.FileLock(path, thread_local=False)


def acquire_server_lock(settings: "Settings") -> filelock.FileLock:
    """Take the server lock without waiting and return it (held; release with ``.release()`` or a ``with``).

    Raises :class:`StoreBusyError` naming the lock file when another process holds it.
    """
    lock = server_lock(settings)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        raise StoreBusyError(f"a zmi-reconciler server holds the store (lock {lock.lock_file}); "
                             "stop it first") from None
    return lock
