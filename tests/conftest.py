"""Suite-wide fixtures."""

from __future__ import annotations

import logging
from collections.abc import Iterator

import pytest

from zmi_reconciler.logging_setup import _MARK


@pytest.fixture(autouse=True)
def _no_stderr_handler_left_behind() -> Iterator[None]:
    """A command called in-process (``main(["run", ...])``) installs its stderr handler on the root logger, on the
    stream pytest captured for that test and closes after it; left in place, every later test's warnings went to a
    closed file ("--- Logging error ---" on stderr). Removed after the test, with the root level it set."""
    root = logging.getLogger()
    before, level = {id(handler) for handler in root.handlers}, root.level
    yield
    for handler in list(root.handlers):
        if getattr(handler, _MARK, False) and id(handler) not in before:
            root.removeHandler(handler)
    root.setLevel(level)
