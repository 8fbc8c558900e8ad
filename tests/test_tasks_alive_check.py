"""alive_check: heartbeat file, monitoring URL, expectations."""

from __future__ import annotations

import json
import threading
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from zmi_reconciler.journal import Journal
from zmi_reconciler.tasks import alive_check
from zmi_reconciler.tasks.base import TaskContext, TaskFailed

from test_runner_support import FakeClock, make_settings, utc


def ctx_for(tmp_path, clock, journal=None, logs=None, **settings):
    logs = [] if logs is None else logs
    return TaskContext(settings=make_settings(tmp_path, **settings), schedule_id="alive", run_id="alive@X",
                       task_index=0, task_name="alive_check", scheduled_for=clock(), clock=clock, journal=journal,
                       log=lambda message, level="info", **f: logs.append((message, level)))


def test_heartbeat_file_and_log(tmp_path):
    logs: list = []
    clock = FakeClock(utc(2026, 5, 1, 10, 0, 0))
    result = alive_check.run(ctx_for(tmp_path, clock, logs=logs), alive_check.Params())
    data = json.loads((tmp_path / "alive.json").read_text())
    assert data == {"schedule": "alive", "run_id": "alive@X", "ts": "2026-05-01T10:00:00.000Z"}
    assert result.heartbeat_file == str(tmp_path / "alive.json") and not result.url_called
    assert logs == [("heartbeat written", "info")]
    assert [p.name for p in tmp_path.iterdir()] == ["alive.json"]  # no temp file left behind


class _Handler(BaseHTTPRequestHandler):
    status = 200
    hits: list = []

    def do_GET(self):  # noqa: N802
        type(self).hits.append(self.path)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def monitor():
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    _Handler.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", _Handler
    server.shutdown()


def test_url_called_from_settings(tmp_path, monitor):
    url, handler = monitor
    clock = FakeClock(utc(2026, 5, 1, 10, 0))
    result = alive_check.run(ctx_for(tmp_path, clock, alive_url=url + "/ping/abc"), alive_check.Params())
    assert result.url_called and handler.hits == ["/ping/abc"]


def test_url_error_fails(tmp_path, monitor):
    url, handler = monitor
    handler.status = 503
    try:
        with pytest.raises(TaskFailed, match="HTTP 503"):
            alive_check.run(ctx_for(tmp_path, FakeClock(utc(2026, 5, 1))), alive_check.Params(url=url))
    finally:
        handler.status = 200


def test_expectations_after_their_deadline(tmp_path):
    clock = FakeClock(utc(2026, 4, 30, 5, 0))
    journal = Journal(tmp_path / "journal", clock=clock)
    journal.append("schedule_loaded", schedule="nightly")  # the server kept a record before today's deadlines
    clock.set(utc(2026, 5, 1, 5, 0))  # 07:00 Europe/Berlin
    for sid, status in (("nightly", "succeeded"), ("import", "failed")):
        journal.append("run_started", schedule=sid, run_id=f"{sid}@1", trigger="scheduled",
                       scheduled_for=utc(2026, 5, 1, 3, 0))
        journal.append("run_finished", schedule=sid, run_id=f"{sid}@1", status=status)
    params = alive_check.Params(expect=[{"schedule": "nightly", "by": "06:00"}, {"schedule": "import", "by": "06:30"},
                                        {"schedule": "later", "by": "08:00"}])
    with pytest.raises(TaskFailed, match=r"import \(by 06:30\)$") as info:
        alive_check.run(ctx_for(tmp_path, clock, journal), params)
    result = info.value.result
    assert (result.expectations_checked, result.expectations_failed) == (2, 1)
    assert (tmp_path / "alive.json").exists()  # the heartbeat is written even when an expectation fails
