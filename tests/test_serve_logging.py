"""Logging setup for serve/run: text or JSON lines on stderr, UTC timestamps, idempotent."""

from __future__ import annotations

import io
import json
import logging

import pytest

from zmi_reconciler.logging_setup import setup_logging


@pytest.fixture(autouse=True)
def _restore_root():
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_json_lines_with_extra_fields_and_exceptions():
    out = io.StringIO()
    setup_logging("json", "INFO", out)
    logging.getLogger("zmi_reconciler.x").info("run %s started", "a@1", extra={"run_id": "a@1"})
    try:
        raise KeyError("k")
    except KeyError:
        logging.getLogger("zmi_reconciler.y").exception("broken")
    logging.getLogger("zmi_reconciler.x").debug("not shown")
    first, second = [json.loads(line) for line in out.getvalue().splitlines()]
    assert {k: first[k] for k in ("level", "logger", "message", "run_id")} == {
        "level": "INFO", "logger": "zmi_reconciler.x", "message": "run a@1 started", "run_id": "a@1"}
    assert first["ts"].endswith("Z") and len(first["ts"]) == 24
    assert second["level"] == "ERROR" and "KeyError: 'k'" in second["exc_info"]


def test_text_lines_and_repeated_setup_does_not_duplicate():
    out = io.StringIO()
    setup_logging("text", "INFO", out)
    setup_logging("text", "WARNING", out)
    logging.getLogger("a").warning("once")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and lines[0].endswith("WARNING a: once") and lines[0][23] == "Z"


def test_exclusive_removes_foreign_handlers():
    foreign = logging.StreamHandler(io.StringIO())
    logging.getLogger().addHandler(foreign)
    setup_logging("text", "INFO", io.StringIO(), exclusive=True)
    assert foreign not in logging.getLogger().handlers and len(logging.getLogger().handlers) == 1


@pytest.mark.parametrize(("fmt", "level"), [("xml", "INFO"), ("text", "LOUD")])
def test_bad_format_or_level(fmt, level):
    with pytest.raises(ValueError):
        setup_logging(fmt, level, io.StringIO())


def test_the_api_keeps_our_log_handler_and_logs_an_unhandled_error_through_it(tmp_path, monkeypatch):
    """create_app must not install Litestar's logging (it replaced the root handlers: serve's JSON lines would
    turn into Litestar's format for every record after it); an unhandled error in a request still reaches ours."""
    from litestar.testing import TestClient

    from test_api_support import READ, close_env, make_env

    out = io.StringIO()
    setup_logging("json", "INFO", out)
    handlers = logging.getLogger().handlers[:]
    env = make_env(tmp_path)
    try:
        assert logging.getLogger().handlers == handlers

        def broken(self):
            raise RuntimeError("disk on fire")

        monkeypatch.setattr(type(env.app.state.service), "list_json", broken)
        with TestClient(env.app) as client:
            response = client.get("/api/v1/schedules", headers=READ)
        assert response.status_code == 500 and "disk on fire" not in response.text
        assert logging.getLogger().handlers == handlers
    finally:
        close_env(env)
    records = [json.loads(line) for line in out.getvalue().splitlines()]
    errors = [r for r in records if r["level"] == "ERROR"]
    assert len(errors) == 1 and errors[0]["message"].startswith("unhandled error on GET")
    assert "RuntimeError: disk on fire" in errors[0]["exc_info"]
