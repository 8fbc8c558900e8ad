"""Durable file-system changes: what survives a power cut after a write, a rename or an unlink."""

from __future__ import annotations

import os
from pathlib import Path


def fsync_dir(directory: Path) -> None:
    """fsync ``directory`` so that a rename, a new file or an unlink in it survives a crash (POSIX: the entry
    lives in the directory, not in the file). A no-op where directories cannot be opened or synced (Windows,
    some network file systems)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
