"""The real clock, in a module of its own so that low-level modules (the journal) can use it without importing
the task framework. Everything that keeps time takes a ``clock`` callable defaulting to :func:`utc_now`, so tests
inject their own."""

from __future__ import annotations

from datetime import datetime, timezone


def utc_now() -> datetime:
    """The real clock: an aware UTC datetime."""
    return datetime.now(timezone.utc)
