"""alive_check url/expect extensions (H8): /fail suffix after failed runs, POST, fail_url, deadline alerts in
the outbox (once), the expected schedule's own zone. Against a local http.server in a thread."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from zmi_reconciler.journal import Journal
from zmi_reconciler.tasks import alive_check
from zmi_reconciler.tasks.base import TaskFailed
from zmi_reconciler.tna.store import Store

from test_task_helpers import Clock, make_ctx, make_settings


def utc(*args):
    return datetime(*args, tzinfo=timezone.utc)


class Monitor(BaseHTTPRequestHandler):
    hits: list = []

    def _answer(self, body: bytes = b"") -> None:
        type(self).hits.append((self.command, self.path, body.decode()))
        self.send_response(200)
        self.end_headers()

    def do_GET(self):  # noqa: N802
        self._answer()

    def do_POST(self):  # noqa: N802
        self._answer(self.rfile.read(int(self.headers.get("Content-Length", 0))))

    def log_message(self, *args):
        pass


@pytest.fixture
def monitor():
    server = HTTPServer(("127.0.0.1", 0), Monitor)
    Monitor.hits = []
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}", Monitor.hits
    server.shutdown()
    server.server_close()


def record_run(journal, clock, schedule, status, at, run_id=None):
    clock.now = at - timedelta(minutes=1)
    run_id = run_id or f"{schedule}@{at:%H%M%S}"
    journal.append("run_started", schedule=schedule, run_id=run_id, trigger="scheduled", scheduled_for=clock.now)
    clock.now = at
    journal.append("run_finished", schedule=schedule, run_id=run_id, status=status)


@pytest.fixture
def env(tmp_path):
    settings = make_settings(tmp_path, alert_email="ops@example.org")
    clock = Clock(utc(2026, 4, 1, 8, 0))
    journal = Journal(settings.journal_path, clock=clock)
    journal.append("schedule_loaded", schedule="alive")  # the server has kept a record for a month
    clock.now = utc(2026, 5, 1, 8, 0)
    return settings, clock, journal


def run(settings, clock, journal, **params):
    return alive_check.run(make_ctx(settings, "alive_check", clock, journal=journal, schedule_id="alive"),
                           alive_check.Params(**params))


def test_failed_run_since_the_last_alive_reports_fail_once(env, monitor):
    settings, clock, journal = env
    url, hits = monitor
    clock.now = utc(2026, 5, 1, 8, 0)
    assert run(settings, clock, journal, url=url + "/ping/abc").url_reported == "ok"
    record_run(journal, clock, "nightly", "failed", utc(2026, 5, 1, 8, 10))
    record_run(journal, clock, "import", "succeeded", utc(2026, 5, 1, 8, 11))
    clock.now = utc(2026, 5, 1, 8, 15)
    result = run(settings, clock, journal, url=url + "/ping/abc")
    assert (result.failed_runs, result.url_reported) == (1, "fail")
    clock.now = utc(2026, 5, 1, 8, 20)
    assert run(settings, clock, journal, url=url + "/ping/abc").url_reported == "ok"  # nothing new since
    assert [p for _, p, _ in hits] == ["/ping/abc", "/ping/abc/fail", "/ping/abc"]


def test_without_a_previous_heartbeat_the_last_24_hours_count(env, monitor):
    settings, clock, journal = env
    url, hits = monitor
    record_run(journal, clock, "old", "failed", utc(2026, 4, 29, 8, 0))
    record_run(journal, clock, "partial-one", "partial", utc(2026, 4, 30, 20, 0))
    clock.now = utc(2026, 5, 1, 8, 0)
    result = run(settings, clock, journal, url=url)
    assert result.failed_runs == 1 and hits[0][1] == "/fail"


def test_post_and_explicit_fail_url(env, monitor):
    settings, clock, journal = env
    url, hits = monitor
    record_run(journal, clock, "nightly", "interrupted", utc(2026, 5, 1, 7, 0))
    clock.now = utc(2026, 5, 1, 8, 0)
    run(settings, clock, journal, url=url + "/api/push/XYZ?status=up", fail_url=url + "/api/push/XYZ?status=down",
        method="POST")
    assert hits == [("POST", "/api/push/XYZ?status=down", "1 failed run(s) since the last alive; 0 missed expectation(s)")]


def test_fail_suffix_keeps_the_query_string():
    assert alive_check.fail_url("https://hc-ping.com/abc-123?rid=7") == "https://hc-ping.com/abc-123/fail?rid=7"
    assert alive_check.fail_url("https://hc-ping.com/abc-123/") == "https://hc-ping.com/abc-123/fail"


def test_missed_deadline_queues_one_alert_and_fails(env, monitor):
    settings, clock, journal = env
    url, hits = monitor
    record_run(journal, clock, "nightly", "succeeded", utc(2026, 4, 30, 4, 0))  # yesterday only
    clock.now = utc(2026, 5, 1, 5, 0)  # 07:00 Berlin
    params = dict(url=url, expect=[{"schedule": "nightly", "by": "06:00"}])
    with pytest.raises(TaskFailed, match=r"nightly \(by 06:00\)") as info:
        run(settings, clock, journal, **params)
    assert (info.value.result.alerts_queued, info.value.result.url_reported) == (1, "fail")
    clock.now = utc(2026, 5, 1, 5, 30)
    with pytest.raises(TaskFailed) as again:
        run(settings, clock, journal, **params)
    assert again.value.result.alerts_queued == 0  # the same deadline is alerted once
    with Store.open(settings.database_path, zone=settings.zone) as store:
        [message] = store.outbox()
    assert message.recipient == "ops@example.org"
    assert "nightly" in message.subject and "06:00" in message.subject
    assert "30.04.2026 06:00" in message.body  # last success, local time
    assert [p for _, p, _ in hits] == ["/fail", "/fail"]


def test_without_alert_email_the_alert_is_only_journaled(tmp_path):
    settings = make_settings(tmp_path)
    clock = Clock(utc(2026, 4, 1, 5, 0))
    journal = Journal(settings.journal_path, clock=clock)
    journal.append("schedule_loaded", schedule="nightly")
    clock.now = utc(2026, 5, 1, 5, 0)
    ctx = make_ctx(settings, "alive_check", clock, journal=journal)
    with pytest.raises(TaskFailed) as info:
        alive_check.run(ctx, alive_check.Params(expect=[{"schedule": "nightly", "by": "06:00"}]))
    assert info.value.result.alerts_queued == 0
    assert any("no alert_email" in m for m in ctx.log.messages)
    assert not settings.database_path.exists()  # the store was not even opened


def test_the_expected_schedule_zone_decides_today(env):
    settings, clock, journal = env
    settings.schedules_dir.mkdir(parents=True)
    (settings.schedules_dir / "ny.yaml").write_text(
        'name: NY\ntimezone: America/New_York\ntiming: {type: daily, at: "02:00"}\ntasks:\n  - task: calculate_days\n')
    for sid in ("ny", "berlin"):  # both succeeded 2026-04-30 21:00 UTC: 23:00 in Berlin, 17:00 in New York
        record_run(journal, clock, sid, "succeeded", utc(2026, 4, 30, 21, 0))
    clock.now = utc(2026, 5, 1, 3, 0)  # Berlin: 1 May 05:00; New York: 30 April 23:00
    with pytest.raises(TaskFailed) as info:
        run(settings, clock, journal, expect=[{"schedule": "ny", "by": "04:00"}, {"schedule": "berlin", "by": "04:00"}])
    assert str(info.value).endswith("berlin (by 04:00)")
    assert (info.value.result.expectations_checked, info.value.result.expectations_failed) == (2, 1)


def test_a_fresh_install_after_the_deadline_is_not_alerted_today_but_the_next_day(tmp_path):
    settings = make_settings(tmp_path, alert_email="ops@example.org")
    clock = Clock(utc(2026, 5, 1, 8, 0))  # installed 10:00 Berlin, after the 06:00 deadline
    journal = Journal(settings.journal_path, clock=clock)
    journal.append("schedule_loaded", schedule="nightly")
    ctx = make_ctx(settings, "alive_check", clock, journal=journal)
    result = alive_check.run(ctx, alive_check.Params(expect=[{"schedule": "nightly", "by": "06:00"}]))
    assert (result.expectations_checked, result.expectations_failed) == (0, 0)
    assert any("fresh install" in m for m in ctx.log.messages)
    clock.now = utc(2026, 5, 2, 8, 0)  # the next day nightly still has not succeeded: alert
    with pytest.raises(TaskFailed, match=r"nightly \(by 06:00\)"):
        alive_check.run(make_ctx(settings, "alive_check", clock, journal=journal),
                        alive_check.Params(expect=[{"schedule": "nightly", "by": "06:00"}]))
