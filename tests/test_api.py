"""API tests (SPEC 8, issue 6): create/trigger/logs, pause/resume, ETag 412/428, byte-exact write-back,
401/403, 409 on overlap, 422 with field paths per timing type, ids such as ``../x``, validate, catalog,
preview, metrics, body limit. Real journal, runner and reconciler; small registered test tasks."""

from __future__ import annotations

import difflib
import hashlib
import json
import os
import stat
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from litestar.testing import TestClient

from test_api_support import READ, SPEC_EXAMPLE, WRITE, close_env, make_env

NIGHTLY = {
    "name": "Nightly processing",
    "timing": {"type": "manual"},
    "tasks": [
        {"task": "backup_database", "params": {"keep": 3}},
        {"task": "calculate_days"},
        {"task": "calculate_months", "params": {"month": "previous"}},
        {"task": "send_notifications", "on_error": "continue"},
    ],
}


@pytest.fixture
def env(tmp_path: Path):
    e = make_env(tmp_path)
    yield e
    close_env(e)


@pytest.fixture
def client(env):
    with TestClient(env.app) as c:
        yield c


def _reconcile(env) -> None:
    env.reconciler.reconcile_now()


def _put_file(env, name: str, text: str) -> Path:
    path = env.schedules / name
    path.write_text(text, encoding="utf-8")
    _reconcile(env)
    return path


def _changed_lines(before: str, after: str) -> list[str]:
    return [line for line in difflib.unified_diff(before.splitlines(), after.splitlines(), lineterm="", n=0)
            if line[:1] in "+-" and not line.startswith(("+++", "---"))]


# ---------------------------------------------------------------------------------------------- the story
def test_create_trigger_and_read_logs_in_task_order(env, client):
    r = client.post("/api/v1/schedules", json={"id": "nightly", "spec": NIGHTLY}, headers=WRITE)
    assert r.status_code == 201, r.text
    assert r.headers["location"] == "/api/v1/schedules/nightly"
    text = (env.schedules / "nightly.yaml").read_text()
    assert text.startswith("# yaml-language-server: $schema=../openapi/schedule.schema.json\n")
    assert r.headers["etag"] == r.json()["etag"]
    assert r.json()["status"]["loaded"] is True
    before = client.get("/api/v1/schedules", headers=READ).json()["items"]
    assert before[0]["status"]["last_run"] is None  # cached until a journal line names the schedule

    r = client.post("/api/v1/schedules/nightly/runs", params={"wait": 10}, headers=WRITE)
    assert r.status_code == 200, r.text
    run = r.json()
    assert r.headers["location"] == f"/api/v1/runs/{run['run_id']}"
    assert run["run_id"].startswith("nightly@manual-")
    assert run["trigger"] == "manual"
    assert run["status"] == "partial"  # send_notifications failed with on_error: continue
    assert [(t["index"], t["task"], t["status"]) for t in run["tasks"]] == [
        (0, "backup_database", "succeeded"), (1, "calculate_days", "succeeded"),
        (2, "calculate_months", "succeeded"), (3, "send_notifications", "failed")]
    assert run["tasks"][0]["result"] == {"files": 1, "keep": 3}
    assert run["tasks"][3]["error"] == "smtp refused"
    assert [(log["index"], log["message"]) for log in run["logs"]] == [
        (0, "backup kept 3"), (1, "days calculated"), (2, "months calculated")]
    assert run["logs"][2]["fields"] == {"month": "previous"}

    same = client.get(f"/api/v1/runs/{run['run_id']}", headers=READ).json()
    assert same == run
    last = client.get("/api/v1/schedules/nightly/runs/last", headers=READ).json()
    assert last["run_id"] == run["run_id"]
    page = client.get("/api/v1/schedules/nightly/runs", headers=READ).json()
    assert [item["run_id"] for item in page["items"]] == [run["run_id"]] and page["total"] == 1

    listing = client.get("/api/v1/schedules", headers=READ).json()["items"]
    assert [(s["id"], s["name"], s["status"]["last_run"]["status"]) for s in listing] == [
        ("nightly", "Nightly processing", "partial")]


def test_trigger_subset_of_tasks_202_then_run(env, client):
    client.post("/api/v1/schedules", json={"id": "nightly", "spec": NIGHTLY}, headers=WRITE)
    r = client.post("/api/v1/schedules/nightly/runs", json={"tasks": [1, 2]}, headers=WRITE)
    assert r.status_code == 202, r.text
    run_id = r.json()["run_id"]
    assert env.runner.wait_run(run_id, 10)
    run = client.get(f"/api/v1/runs/{run_id}", headers=READ).json()
    assert run["status"] == "succeeded"
    assert [t["task"] for t in run["tasks"] if t["status"] != "skipped"] == ["calculate_days", "calculate_months"]
    r = client.post("/api/v1/schedules/nightly/runs", json={"tasks": [9]}, headers=WRITE)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "tasks[0]"


def test_runs_paged_newest_first_and_filtered(env, client):
    client.post("/api/v1/schedules", json={"id": "nightly", "spec": NIGHTLY}, headers=WRITE)
    ids = []
    for minute in range(3):
        env.clock.now = datetime(2026, 3, 28, 12, minute, tzinfo=timezone.utc)
        ids.append(client.post("/api/v1/schedules/nightly/runs", params={"wait": 10},
                               json={"tasks": [0]} if minute == 1 else None, headers=WRITE).json()["run_id"])
    page1 = client.get("/api/v1/schedules/nightly/runs", params={"per_page": 2}, headers=READ).json()
    page2 = client.get("/api/v1/schedules/nightly/runs", params={"per_page": 2, "page": 2}, headers=READ).json()
    assert [r["run_id"] for r in page1["items"] + page2["items"]] == ids[::-1]
    assert page1["total"] == 3
    ok = client.get("/api/v1/schedules/nightly/runs", params={"status": "succeeded"}, headers=READ).json()
    assert [r["run_id"] for r in ok["items"]] == [ids[1]] and ok["total"] == 1


def test_pause_stops_fires_and_resume_starts_them_again(env, client):
    spec = {"name": "Every minute", "timing": {"type": "minutes", "every": 1},
            "tasks": [{"task": "calculate_days"}]}
    etag = client.post("/api/v1/schedules", json={"id": "minutely", "spec": spec}, headers=WRITE).headers["etag"]
    base = env.clock.now

    def fire_at(seconds: int) -> None:
        env.clock.now = base + timedelta(seconds=seconds)
        env.runner.tick(env.clock.now)
        env.wait_idle("minutely")

    fire_at(60)
    assert [r["trigger"] for r in env.journal.runs("minutely")] == ["scheduled"]

    r = client.post("/api/v1/schedules/minutely/pause", headers={**WRITE, "If-Match": etag})
    assert r.status_code == 200, r.text
    assert r.json()["status"]["enabled"] is False and r.json()["spec"]["enabled"] is False
    for seconds in (120, 180, 240):
        fire_at(seconds)
    assert len(env.journal.runs("minutely")) == 1  # nothing ran while paused
    assert client.get("/api/v1/schedules/minutely", headers=READ).json()["status"]["next_fire"] is None

    r = client.post("/api/v1/schedules/minutely/resume", headers={**WRITE, "If-Match": r.headers["etag"]})
    assert r.status_code == 200 and r.json()["status"]["enabled"] is True
    fire_at(300)
    runs = env.journal.runs("minutely")
    assert len(runs) == 2 and runs[0]["scheduled_for"] == base + timedelta(seconds=300)


# ---------------------------------------------------------------------------------------------- concurrency
def test_if_match_required_stale_and_git_pull(env, client):
    path = _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    etag = client.get("/api/v1/schedules/nightly", headers=READ).headers["etag"]
    for method in ("put", "patch"):
        r = client.request(method.upper(), "/api/v1/schedules/nightly", json={"enabled": False}, headers=WRITE)
        assert r.status_code == 428 and r.headers["content-type"] == "application/problem+json"
    for action in ("pause", "resume"):
        assert client.post(f"/api/v1/schedules/nightly/{action}", headers=WRITE).status_code == 428
    assert client.delete("/api/v1/schedules/nightly", headers=WRITE).status_code == 428
    r = client.patch("/api/v1/schedules/nightly", json={"enabled": False},
                     headers={**WRITE, "If-Match": '"0000"'})
    assert r.status_code == 412

    # someone pulls a change from git: the ETag the client holds is stale now
    path.write_text(SPEC_EXAMPLE.replace('at: "05:00"', 'at: "05:30"'))
    r = client.post("/api/v1/schedules/nightly/pause", headers={**WRITE, "If-Match": etag})
    assert r.status_code == 412
    assert 'at: "05:30"' in path.read_text() and "enabled: true" in path.read_text()

    fresh = client.get("/api/v1/schedules/nightly", headers=READ).headers["etag"]
    assert fresh != etag
    r = client.post("/api/v1/schedules/nightly/pause", headers={**WRITE, "If-Match": fresh})
    assert r.status_code == 200 and r.headers["etag"] not in (etag, fresh)
    assert client.get("/api/v1/schedules/nightly", headers=READ).headers["etag"] == r.headers["etag"]


def test_an_unquoted_or_weak_etag_of_the_current_file_gets_412_that_says_so(env, client):
    """RFC 9110 If-Match compares strong, quoted tags: the current hash unquoted or as W/ does not match, and the
    412 says why instead of claiming the file changed (it did not)."""
    path = _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    etag = client.get("/api/v1/schedules/nightly", headers=READ).headers["etag"]
    for sent in (etag.strip('"'), "W/" + etag):
        r = client.post("/api/v1/schedules/nightly/pause", headers={**WRITE, "If-Match": sent})
        assert r.status_code == 412
        detail = r.json()["detail"]
        assert "changed" not in detail and "quoted" in detail and etag in detail, detail
    assert path.read_text() == SPEC_EXAMPLE
    r = client.post("/api/v1/schedules/nightly/pause", headers={**WRITE, "If-Match": '"0000"'})
    assert r.status_code == 412 and "changed since that ETag" in r.json()["detail"]


def test_delete_needs_current_etag_and_removes_the_schedule(env, client):
    _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    etag = client.get("/api/v1/schedules/nightly", headers=READ).headers["etag"]
    assert client.delete("/api/v1/schedules/nightly", headers={**WRITE, "If-Match": '"x"'}).status_code == 412
    assert client.delete("/api/v1/schedules/nightly", headers={**WRITE, "If-Match": etag}).status_code == 204
    assert not (env.schedules / "nightly.yaml").exists()
    assert client.get("/api/v1/schedules", headers=READ).json()["items"] == []
    assert client.get("/api/v1/schedules/nightly", headers=READ).status_code == 404


def test_create_existing_is_409(env, client):
    _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    r = client.post("/api/v1/schedules", json={"id": "nightly", "spec": NIGHTLY}, headers=WRITE)
    assert r.status_code == 409
    assert (env.schedules / "nightly.yaml").read_text() == SPEC_EXAMPLE


# ---------------------------------------------------------------------------------------------- write-back
def test_patch_enabled_changes_exactly_one_line(env, client):
    path = _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    os.chmod(path, 0o640)
    etag = client.get("/api/v1/schedules/nightly", headers=READ).headers["etag"]
    r = client.patch("/api/v1/schedules/nightly", json={"enabled": False}, headers={**WRITE, "If-Match": etag},)
    assert r.status_code == 200, r.text
    after = path.read_text()
    assert _changed_lines(SPEC_EXAMPLE, after) == [
        "-enabled: true                        # false = paused; nothing else changes",
        "+enabled: false                       # false = paused; nothing else changes"]
    assert len(after.splitlines()) == len(SPEC_EXAMPLE.splitlines())
    assert stat.S_IMODE(path.stat().st_mode) == 0o640
    assert [p.name for p in env.schedules.iterdir()] == ["nightly.yaml"]  # no temp file left

    r = client.post("/api/v1/schedules/nightly/resume", headers={**WRITE, "If-Match": r.headers["etag"]})
    assert path.read_text() == SPEC_EXAMPLE  # byte for byte back


def test_a_merge_patch_into_one_task_says_that_lists_are_replaced_whole(env, client):
    """RFC 7396: a merge patch replaces a list whole, so {"tasks": [{"params": {...}}]} leaves one task without
    its name; the 422 says why, and how to do it (the whole list, or PUT), next to the field errors."""
    path = _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    etag = client.get("/api/v1/schedules/nightly", headers=READ).headers["etag"]
    r = client.patch("/api/v1/schedules/nightly", json={"tasks": [{"params": {"keep": 3}}]},
                     headers={**WRITE, "If-Match": etag})
    assert r.status_code == 422, r.text
    body = r.json()
    assert any(e["code"] == "E022" and e["path"].startswith("tasks") for e in body["errors"])
    assert "replaces a list whole" in body["detail"] and "'tasks'" in body["detail"]
    assert path.read_text() == SPEC_EXAMPLE
    r = client.patch("/api/v1/schedules/nightly", json={"timing": {"at": "99:00"}},
                     headers={**WRITE, "If-Match": etag})
    assert r.status_code == 422 and "list" not in r.json()["detail"]  # no list in the patch: no such hint


def test_a_problem_has_one_title_per_status_whichever_layer_refused(env, client):
    """A bad query parameter (refused by Litestar) and a body that is no JSON (refused by us) are both 400 "Bad
    request"; a route Litestar does not know is 404 "Not found"."""
    _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    bad_query = client.get("/api/v1/schedules/nightly/preview", params={"count": "many"}, headers=READ)
    bad_json = client.post("/api/v1/schedules", content=b"{", headers={**WRITE, "Content-Type": "application/json"})
    assert (bad_query.status_code, bad_json.status_code) == (400, 400), (bad_query.text, bad_json.text)
    assert bad_query.json()["title"] == bad_json.json()["title"] == "Bad request"
    assert client.get("/api/v1/nothing-here", headers=READ).json()["title"] == "Not found"


def test_head_answers_as_get_without_content(env):
    """RFC 9110 9.3.2: HEAD on a GET route gives the GET's status and headers (the ETag a client reads before a
    write, Content-Length) and no content; auth applies as for the GET; other methods are untouched."""
    from zmi_reconciler.api.head import HeadAsGet

    _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    with TestClient(HeadAsGet(env.app)) as client:
        get = client.get("/api/v1/schedules/nightly", headers=READ)
        head = client.head("/api/v1/schedules/nightly", headers=READ)
        assert (head.status_code, head.content) == (200, b"")
        assert head.headers["etag"] == get.headers["etag"]
        assert head.headers["content-length"] == str(len(get.content))
        assert client.head("/api/v1/schedules/nightly").status_code == 401
        assert client.head("/api/v1/schedules/nope", headers=READ).status_code == 404
        assert client.head("/api/v1/healthz").status_code == 200
        r = client.post("/api/v1/schedules/nightly/pause", headers={**WRITE, "If-Match": head.headers["etag"]})
        assert r.status_code == 200  # a write with the ETag a HEAD read
    with TestClient(env.app) as bare:
        assert bare.head("/api/v1/healthz").status_code == 405  # what the wrapper is for


def test_put_keeps_comments_order_quoting_and_blank_lines(env, client):
    path = _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    got = client.get("/api/v1/schedules/nightly", headers=READ)
    spec = got.json()["spec"]
    spec["timing"]["at"] = "06:15"
    spec["tasks"][2]["params"]["month"] = "previous"
    spec["tasks"].append({"task": "alive_check"})
    del spec["description"]
    r = client.put("/api/v1/schedules/nightly", json=spec, headers={**WRITE, "If-Match": got.headers["etag"]})
    assert r.status_code == 200, r.text
    assert _changed_lines(SPEC_EXAMPLE, path.read_text()) == [
        "-description: Backup first, then days and months, then notify.",
        '-  at: "05:00"', '+  at: "06:15"',
        "-    params: {month: current}", "+    params: {month: previous}",
        "+  - task: alive_check"]
    # the same document again: no write, same ETag
    again = client.put("/api/v1/schedules/nightly", json=r.json()["spec"],
                       headers={**WRITE, "If-Match": r.headers["etag"]})
    assert again.status_code == 200 and again.headers["etag"] == r.headers["etag"]


def test_put_with_defaults_and_durations_as_returned_adds_nothing(env, client):
    path = _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    got = client.get("/api/v1/schedules/nightly", headers=READ)
    spec = got.json()["spec"]
    spec["tasks"][0]["timeout"] = 1800  # "30m" as seconds
    r = client.put("/api/v1/schedules/nightly", json=spec, headers={**WRITE, "If-Match": got.headers["etag"]})
    assert r.status_code == 200 and path.read_text() == SPEC_EXAMPLE


def test_put_yaml_body(env, client):
    path = _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    etag = client.get("/api/v1/schedules/nightly", headers=READ).headers["etag"]
    body = SPEC_EXAMPLE.replace("overlap: skip", "overlap: queue")
    r = client.put("/api/v1/schedules/nightly", content=body,
                   headers={**WRITE, "If-Match": etag, "Content-Type": "application/yaml"})
    assert r.status_code == 200, r.text
    assert _changed_lines(SPEC_EXAMPLE, path.read_text()) == [
        "-overlap: skip                        # skip | queue", "+overlap: queue                       # skip | queue"]


# ---------------------------------------------------------------------------------------------- validation
INVALID_TIMINGS = [
    ({"type": "seconds", "every": 0}, "timing.every"),
    ({"type": "minutes", "every": 1441}, "timing.every"),
    ({"type": "hours", "every": 2, "minute": 60}, "timing.minute"),
    ({"type": "daily", "at": "25:00"}, "timing.at"),
    ({"type": "weekly", "days": ["mon", "xyz"], "at": "06:00"}, "timing.days[1]"),
    ({"type": "monthly", "day": 32, "at": "06:00"}, "timing.day"),
    ({"type": "manual", "every": 5}, "timing.every"),
    ({"type": "yearly"}, "timing.type"),
]


@pytest.mark.parametrize(("timing", "field"), INVALID_TIMINGS, ids=[t["type"] for t, _ in INVALID_TIMINGS])
def test_422_names_the_field_for_each_timing_type(env, client, timing, field):
    spec = {"name": "x", "timing": timing, "tasks": [{"task": "calculate_days", "timeout": "nope"}]}
    r = client.post("/api/v1/schedules", json={"id": "bad", "spec": spec}, headers=WRITE)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    errors = r.json()["errors"]
    paths = [e["path"] for e in errors]
    assert field in paths and "tasks[0].timeout" in paths  # every error, not only the first
    assert all(e["line"] >= 1 and e["column"] >= 1 for e in errors)
    assert not (env.schedules / "bad.yaml").exists()


def test_invalid_put_writes_nothing(env, client):
    path = _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    etag = client.get("/api/v1/schedules/nightly", headers=READ).headers["etag"]
    r = client.patch("/api/v1/schedules/nightly", json={"timing": {"at": "5 o'clock"}, "overlap": "maybe"},
                     headers={**WRITE, "If-Match": etag})
    assert r.status_code == 422
    errors = {e["path"]: (e["line"], e["column"]) for e in r.json()["errors"]}
    assert set(errors) == {"timing.at", "overlap"}
    assert errors["timing.at"][0] == 8  # the line in the file that would have been written
    assert path.read_text() == SPEC_EXAMPLE


@pytest.mark.parametrize("raw", ["..%2Fx", "..%2F..%2Fetc%2Fpasswd", "UPPER", "-x", "a" * 64])
def test_illegal_ids_are_404_and_touch_nothing(env, client, tmp_path, raw):
    before = sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*"))
    for method in ("GET", "PUT", "PATCH", "DELETE"):
        r = client.request(method, f"/api/v1/schedules/{raw}", json=NIGHTLY, headers={**WRITE, "If-Match": "*"})
        assert r.status_code in (404, 422), (method, r.status_code)
    r = client.post(f"/api/v1/schedules/{raw}/runs", headers=WRITE)
    assert r.status_code == 404
    assert sorted(p.relative_to(tmp_path) for p in tmp_path.rglob("*")) == before


def test_create_with_illegal_id_is_422(env, client, tmp_path):
    r = client.post("/api/v1/schedules", json={"id": "../x", "spec": NIGHTLY}, headers=WRITE)
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "id"
    assert not (tmp_path / "x.yaml").exists() and list(env.schedules.iterdir()) == []


def test_validate_yaml_and_json(env, client):
    bad = "name: x\ntiming:\n  type: daily\n  at: '24:00'\ntasks:\n  - task: calculate_days\n    keep: 1\n"
    r = client.post("/api/v1/validate", content=bad, headers={**READ, "Content-Type": "application/yaml"})
    assert r.status_code == 200
    report = r.json()
    assert report["valid"] is False
    assert {(f["path"], f["line"], f["severity"]) for f in report["findings"]} >= {
        ("timing.at", 4, "error"), ("tasks[0].keep", 7, "error")}
    r = client.post("/api/v1/validate", json=NIGHTLY, headers=READ)
    assert r.json()["valid"] is True
    codes = [f["code"] for f in r.json()["findings"]]
    assert all(c.startswith("W") for c in codes)
    assert list(env.schedules.iterdir()) == []


def test_tasks_catalog(client):
    tasks = {t["name"]: t for t in client.get("/api/v1/tasks", headers=READ).json()}
    assert tasks["backup_database"]["available"] is True
    assert tasks["backup_database"]["params"]["type"] == "object"
    assert tasks["backup_database"]["zmi_name"]
    assert tasks["terminal_set_time"]["available"] is False
    assert "terminal" in tasks["terminal_set_time"]["reason"]


def test_preview_has_dst_notes(env, client):
    spec = {"name": "DST", "timezone": "Europe/Berlin", "timing": {"type": "daily", "at": "02:30"},
            "tasks": [{"task": "calculate_days"}]}
    client.post("/api/v1/schedules", json={"id": "dst", "spec": spec}, headers=WRITE)
    r = client.get("/api/v1/schedules/dst/preview", params={"count": 2, "after": "2026-03-28T12:00:00Z"},
                   headers=READ)
    assert r.status_code == 200, r.text
    fires = r.json()["fires"]
    assert [f["local"] for f in fires] == ["2026-03-29T03:30:00+02:00", "2026-03-30T02:30:00+02:00"]
    assert "DST gap" in fires[0]["notes"][0] and fires[1]["notes"] == []


# ---------------------------------------------------------------------------------------------- auth, limits
def test_401_without_or_with_unknown_token_and_403_for_read_token(env, client):
    r = client.get("/api/v1/schedules")
    assert r.status_code == 401 and r.headers["www-authenticate"].startswith("Bearer")
    assert r.headers["content-type"] == "application/problem+json" and r.json()["status"] == 401
    assert client.get("/api/v1/schedules", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/api/v1/schedules", headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.get("/api/v1/schedules", headers=READ).status_code == 200
    r = client.post("/api/v1/schedules", json={"id": "x", "spec": NIGHTLY}, headers=READ)
    assert r.status_code == 403 and not (env.schedules / "x.yaml").exists()
    assert client.get("/api/v1/metrics").status_code == 401
    assert client.get("/api/v1/healthz").json() == {"status": "ok"}
    assert client.get("/api/v1/readyz").json()["status"] == "ready"
    assert client.get("/schema/openapi.json").status_code == 200


def test_admin_token_created_on_first_start(tmp_path):
    from zmi_reconciler.api.auth import TokenStore
    from zmi_reconciler.config import Settings

    settings = Settings(data_dir=tmp_path / "var", schedules_dir=tmp_path / "s")
    store = TokenStore.load(settings)
    token_file = tmp_path / "var" / "admin.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    stored = (tmp_path / "var" / "tokens.json").read_text()
    assert token not in stored and json.loads(stored)[0]["role"] == "write"
    assert store.authenticate(token).role == "write"
    again = TokenStore.load(settings)  # second start: no new token
    assert token_file.read_text().strip() == token and again.authenticate(token) is not None


def test_body_limit_413(tmp_path):
    from test_api_support import make_env as make

    env = make(tmp_path, max_request_bytes=1024)
    try:
        with TestClient(env.app) as client:
            r = client.post("/api/v1/validate", content="x" * 5000,
                            headers={**READ, "Content-Type": "application/yaml"})
            assert r.status_code == 413 and r.headers["content-type"] == "application/problem+json"
            assert r.json()["title"] == "Request body too large" and "detail" not in r.json()  # no phrase again
    finally:
        close_env(env)


def test_overlap_is_409_naming_the_active_run(env, client):
    spec = {"name": "slow", "timing": {"type": "manual"}, "tasks": [{"task": "alive_check"}]}
    client.post("/api/v1/schedules", json={"id": "slow", "spec": spec}, headers=WRITE)
    first = client.post("/api/v1/schedules/slow/runs", headers=WRITE).json()["run_id"]
    assert env.gate.started.wait(10)
    r = client.post("/api/v1/schedules/slow/runs", headers=WRITE)
    assert r.status_code == 409, r.text
    assert r.json()["active_run"] == first and first in r.json()["detail"]
    assert "(overlap: skip)" in r.json()["detail"]
    assert client.get("/api/v1/schedules/slow", headers=READ).json()["status"]["active_run"] == first
    env.gate.release.set()
    assert env.runner.wait_run(first, 10)


def test_overlap_queue_full_409_states_the_real_overlap_setting(env, client):
    spec = {"name": "slow", "timing": {"type": "manual"}, "overlap": "queue", "tasks": [{"task": "alive_check"}]}
    client.post("/api/v1/schedules", json={"id": "slowq", "spec": spec}, headers=WRITE)
    first = client.post("/api/v1/schedules/slowq/runs", headers=WRITE).json()["run_id"]
    assert env.gate.started.wait(10)
    queued = client.post("/api/v1/schedules/slowq/runs", headers=WRITE)
    assert queued.status_code == 202, queued.text
    r = client.post("/api/v1/schedules/slowq/runs", headers=WRITE)
    assert r.status_code == 409, r.text
    assert r.json()["active_run"] == first
    assert r.json()["detail"] == (f"run {first} of 'slowq' is active (overlap: queue, the one queue place is taken)")
    env.gate.release.set()
    assert env.runner.wait_run(queued.json()["run_id"], 10)


def test_metrics_count_runs_and_show_next_fire(env, client):
    spec = {"name": "Daily", "timing": {"type": "daily", "at": "05:00"}, "tasks": [{"task": "calculate_days"}]}
    client.post("/api/v1/schedules", json={"id": "daily", "spec": spec}, headers=WRITE)
    client.post("/api/v1/schedules/daily/runs", params={"wait": 10}, headers=WRITE)
    response = client.get("/api/v1/metrics", headers=READ)
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"  # one charset
    text = response.text
    assert "_created" not in text  # prometheus_client's creation-time gauges: noise in the 0.0.4 text format
    assert 'zmi_runs_total{schedule="daily",status="succeeded"} 1.0' in text
    assert 'zmi_task_duration_seconds_count{task="calculate_days"} 1.0' in text
    next_fire = datetime(2026, 3, 29, 3, 0, tzinfo=timezone.utc).timestamp()
    assert _metric(text, 'zmi_next_fire_timestamp_seconds{schedule="daily"}') == next_fire
    assert _metric(text, 'zmi_last_success_timestamp_seconds{schedule="daily"}') == env.clock.now.timestamp()


def _metric(text: str, name: str) -> float | None:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[-1])
    return None


def test_degraded_file_is_listed_with_errors(env, client):
    _put_file(env, "broken.yaml", "name: x\ntiming: {type: daily, at: '99:00'}\ntasks: [{task: calculate_days}]\n")
    item = client.get("/api/v1/schedules", headers=READ).json()["items"][0]
    assert item["id"] == "broken" and item["status"]["degraded"] is True
    assert item["status"]["errors"][0]["path"] == "timing.at"
    detail = client.get("/api/v1/schedules/broken", headers=READ).json()
    assert detail["spec"] is None and "99:00" in detail["source"]
    assert client.post("/api/v1/schedules/broken/runs", headers=WRITE).status_code == 409


def test_degraded_schedule_shows_the_running_definition(env, client):
    good = "name: keep\ntiming: {type: daily, at: '05:00'}\ntasks: [{task: calculate_days}]\n"
    path = _put_file(env, "deg.yaml", good)
    detail = client.get("/api/v1/schedules/deg", headers=READ).json()
    running = {"name": "keep", "timing": {"type": "daily", "at": "05:00"}, "tasks": [{"task": "calculate_days"}]}
    good_hash = hashlib.sha256(good.encode()).hexdigest()
    assert (detail["spec"], detail["running_spec"], detail["running_content_hash"]) == (running, running, good_hash)
    _put_file(env, "deg.yaml", good.replace("05:00", "99:00"))
    detail = client.get("/api/v1/schedules/deg", headers=READ).json()
    assert detail["status"]["degraded"] is True and detail["spec"] is None and "99:00" in detail["source"]
    assert (detail["running_spec"], detail["running_content_hash"]) == (running, good_hash)
    assert hashlib.sha256(path.read_bytes()).hexdigest() != good_hash


def test_a_file_that_runs_as_written_shows_the_same_running_definition(env, client):
    """spec and running_spec of a file that runs as written are the same document (12h, 30m as written), not
    the parsed model beside it (43200, 1800: a new user took that for a difference between the two)."""
    text = ("name: keep\ntiming: {type: daily, at: '05:00'}\ncatch_up: 12h\n"
            "tasks: [{task: calculate_days, timeout: 30m}]\n")
    _put_file(env, "dur.yaml", text)
    detail = client.get("/api/v1/schedules/dur", headers=READ).json()
    assert detail["spec"]["catch_up"] == "12h" and detail["spec"]["tasks"][0]["timeout"] == "30m"
    assert detail["running_spec"] == detail["spec"]
    _put_file(env, "dur.yaml", text.replace("05:00", "99:00"))  # degraded: what runs, as parsed
    detail = client.get("/api/v1/schedules/dur", headers=READ).json()
    assert detail["spec"] is None and detail["running_spec"]["catch_up"] == 43200


def test_never_valid_schedule_has_no_running_definition(env, client):
    _put_file(env, "never.yaml", "name: x\ntiming: {type: daily, at: '99:00'}\ntasks: [{task: calculate_days}]\n")
    detail = client.get("/api/v1/schedules/never", headers=READ).json()
    assert (detail["spec"], detail["running_spec"], detail["running_content_hash"]) == (None, None, None)


def _pause_with_etag(client, schedule_id: str):
    etag = client.get(f"/api/v1/schedules/{schedule_id}", headers=READ).headers["etag"]
    return client.post(f"/api/v1/schedules/{schedule_id}/pause", headers={**WRITE, "If-Match": etag})


def test_pausing_a_degraded_schedule_reports_the_file_on_disk_and_what_runs(env, client):
    """QA: with x.yaml broken (`every: "x"` on line 2) and its last good version running, pause answered
    "1 error(s) ... nothing was written" at line 3 (the line in the document after `enabled: false` was
    inserted). The 422 gives the error where it is in the file on disk, says that the last good version keeps
    running and how to stop it; nothing is written."""
    good = "name: x\ntiming: {type: minutes, every: 5}\ntasks: [{task: calculate_days}]\n"
    path = _put_file(env, "x.yaml", good)
    loaded_at = env.reconciler.states()["x"].loaded_at
    broken = good.replace("every: 5", 'every: "x"')
    _put_file(env, "x.yaml", broken)
    r = _pause_with_etag(client, "x")
    assert r.status_code == 422, r.text
    body = r.json()
    assert [(e["path"], e["line"], e["column"], e["code"]) for e in body["errors"]] == [("timing.every", 2, 32, "E020")]
    assert body["errors"][0]["message"] == "expected an integer, got 'x'"
    assert body["detail"] == (
        "pause not applied, nothing was written: x.yaml has 1 error(s) on disk that the pause leaves in place "
        "(lines and columns as in the file on disk). Its last good version keeps running (running since "
        f"{loaded_at.isoformat(timespec='seconds')}). To stop it, fix the file (edit it, or PUT a valid schedule) "
        "or delete it (DELETE /api/v1/schedules/x).")
    assert path.read_text() == broken
    assert env.reconciler.states()["x"].schedule.enabled is True


def test_patch_on_a_degraded_schedule_reports_its_own_errors_apart(env, client):
    """Errors the edit adds keep their place in the edited document; a file that never loaded says so; a PUT
    that fixes the file is written."""
    _put_file(env, "never.yaml", "name: x\ntiming: {type: daily, at: '99:00'}\ntasks: [{task: calculate_days}]\n")
    etag = client.get("/api/v1/schedules/never", headers=READ).headers["etag"]
    r = client.patch("/api/v1/schedules/never", json={"overlap": "sometimes"}, headers={**WRITE, "If-Match": etag})
    assert r.status_code == 422, r.text
    assert [(e["path"], e["line"], e["code"]) for e in r.json()["errors"]] == [("timing.at", 2, "E020"),
                                                                               ("overlap", 3, "E020")]
    assert ("never.yaml has 1 error(s) on disk that the PATCH leaves in place (lines and columns as in the file on "
            "disk), and 1 error(s) that the PATCH adds. No version of it runs (none loaded since this server started, "
            "and no usable last good copy). To change that, "
            "fix the file") in r.json()["detail"]
    r = client.put("/api/v1/schedules/never", json={"name": "x", "timing": {"type": "daily", "at": "09:00"},
                                                    "tasks": [{"task": "calculate_days"}]},
                   headers={**WRITE, "If-Match": etag})
    assert r.status_code == 200, r.text
    assert env.reconciler.states()["never"].degraded is False


def test_pausing_a_file_with_a_syntax_error_points_into_the_file(env, client):
    _put_file(env, "syn.yaml", "name: x\ntiming: {type: manual}\ntasks: [{task: calculate_days}]\n")
    _put_file(env, "syn.yaml", "name: x\ntiming: {type: daily, at: 05:00}\ntasks: [{task: calculate_days}]\n")
    r = _pause_with_etag(client, "syn")
    assert r.status_code == 422, r.text
    (error,) = r.json()["errors"]
    assert (error["line"], error["column"], error["code"]) == (2, 27, "E007")
    assert error["message"].endswith('quote it: at: "05:00"')
    assert "Its last good version keeps running" in r.json()["detail"]


def test_pausing_a_flow_style_file_adds_one_line_and_keeps_the_rest(env, client):
    """`tasks: [{task: x}]` came back as `tasks: [task: x]` (ruamel's compact single-pair form) when the pause
    added `enabled: false`: the untouched line changed too."""
    text = "name: x\ntiming: {type: minutes, every: 5}\ntasks: [{task: calculate_days}, {task: backup_database}]\n"
    path = _put_file(env, "flow.yaml", text)
    assert _pause_with_etag(client, "flow").status_code == 200
    assert _changed_lines(text, path.read_text()) == ["+enabled: false"]


# ---------------------------------------------------------------------------------------------- OpenAPI
def test_committed_openapi_json_is_current():
    from zmi_reconciler.api.app import openapi_json

    committed = Path(__file__).resolve().parents[1] / "openapi" / "openapi.json"
    assert committed.read_text(encoding="utf-8") == openapi_json(), (
        "openapi/openapi.json is stale: regenerate it with `make openapi` "
        "(or `.venv/bin/zmi-reconciler openapi > openapi/openapi.json`) and commit it")


def test_openapi_documents_timings_and_task_params_as_discriminated_unions(client):
    doc = client.get("/schema/openapi.json").json()
    assert doc["openapi"].startswith("3.1")
    schemas = doc["components"]["schemas"]
    timing = schemas["Schedule"]["properties"]["timing"]
    assert timing["discriminator"]["propertyName"] == "type"
    assert set(timing["discriminator"]["mapping"]) == {"seconds", "minutes", "hours", "daily", "weekly", "monthly",
                                                       "manual"}
    tasks = schemas["Schedule"]["properties"]["tasks"]["items"]
    assert tasks["discriminator"]["propertyName"] == "task"
    assert schemas["Task_backup_database"]["properties"]["params"]["$ref"].endswith("backup_database_params")
    assert schemas["ExcludeWindow"]["required"] == ["from", "to"]
    assert all(schemas[name].get("examples") for name in ("Schedule", "DailyTiming", "MonthlyTiming"))
    put = doc["paths"]["/api/v1/schedules/{schedule_id}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"] == "#/components/schemas/Schedule"
    assert {"412", "422", "428"} <= set(put["responses"])
    assert "401" in doc["paths"]["/api/v1/metrics"]["get"]["responses"]  # needs a read token
    assert doc["paths"]["/api/v1/healthz"]["get"]["security"] == []
    assert client.get("/schema").status_code == 200  # interactive docs


def test_concurrent_writes_with_one_etag_one_wins(env, client):
    import threading

    _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    etag = client.get("/api/v1/schedules/nightly", headers=READ).headers["etag"]
    service = env.app.state.service
    outcomes: list[str] = []

    def write(value: str) -> None:
        try:
            service.patch("nightly", {"description": value}, etag)
            outcomes.append("ok")
        except Exception as exc:  # PreconditionFailed for the loser
            outcomes.append(type(exc).__name__)

    threads = [threading.Thread(target=write, args=(f"writer {i}",)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes) == ["PreconditionFailed"] * 3 + ["ok"]


def test_readyz_503_until_the_reconciler_has_loaded(env):
    from zmi_reconciler.api.app import create_app
    from zmi_reconciler.api.auth import TokenStore
    from zmi_reconciler.reconcile import Reconciler

    fresh = Reconciler(env.settings, env.runner, env.journal)  # never reconciled
    app = create_app(env.settings, env.runner, fresh, env.journal, tokens=TokenStore([]))
    with TestClient(app) as c:
        r = c.get("/api/v1/readyz")
        assert r.status_code == 503 and r.headers["content-type"] == "application/problem+json"
        fresh.reconcile_all()
        assert c.get("/api/v1/readyz").json() == {"status": "ready", "schedules": 0}


def test_a_run_command_outside_the_allowlist_is_refused_by_writes_and_flagged_by_validate(tmp_path):
    """The server knows its allowlist: POST /validate says E031 and a write is 422 with the field path, as
    `zmi-reconciler validate` with the server's settings file says (a command that could never run)."""
    env = make_env(tmp_path, commands={"sync-hr": ["/usr/bin/true"]})
    try:
        with TestClient(env.app) as client:
            spec = {"name": "HR sync", "timing": {"type": "manual"},
                    "tasks": [{"task": "run_command", "params": {"command": "sync-hrr"}}]}
            report = client.post("/api/v1/validate", json=spec, headers=READ).json()
            assert report["valid"] is False
            assert [(f["code"], f["path"]) for f in report["findings"] if f["severity"] == "error"] == [
                ("E031", "tasks[0].params.command")]
            assert "sync-hr" in report["findings"][0]["message"]
            r = client.post("/api/v1/schedules", json={"id": "hr", "spec": spec}, headers=WRITE)
            assert r.status_code == 422 and r.json()["errors"][0]["code"] == "E031"
            assert r.json()["errors"][0]["path"] == "tasks[0].params.command"
            assert list(env.schedules.iterdir()) == []
            spec["tasks"][0]["params"]["command"] = "sync-hr"
            assert client.post("/api/v1/validate", json=spec, headers=READ).json()["valid"] is True
            assert client.post("/api/v1/schedules", json={"id": "hr", "spec": spec}, headers=WRITE).status_code == 201
    finally:
        close_env(env)


def test_pausing_a_schedule_whose_command_left_the_allowlist_says_what_runs(tmp_path):
    """A file naming a command this server's allowlist lacks does not load here (E031), so writing enabled: false
    into it would change nothing that runs: the pause is refused with what runs (its last good version, still
    firing) and how to stop it, and nothing is written; the same for a file that never loaded. (QA: the pause
    answered 200 while the last good version kept firing.)"""
    env = make_env(tmp_path, commands={"sync-hr": ["/usr/bin/true"]})
    good = ("name: HR sync\ntiming: {type: daily, at: \"05:00\"}\ntasks:\n  - task: run_command\n"
            "    params: {command: sync-hr}\n")
    (env.schedules / "hr.yaml").write_text(good)
    env.reconciler.reconcile_all()
    (env.schedules / "hr.yaml").write_text(good.replace("sync-hr}", "retired}"))
    (env.schedules / "new.yaml").write_text(good.replace("sync-hr}", "retired}"))
    env.reconciler.reconcile_all()
    try:
        with TestClient(env.app) as client:
            detail = client.get("/api/v1/schedules/hr", headers=READ)
            assert detail.json()["spec"] is None  # E031: invalid on this server, as its status says
            assert [e["code"] for e in detail.json()["status"]["errors"]] == ["E031"]
            assert detail.json()["status"]["enabled"] is True  # the last good version still fires
            before = (env.schedules / "hr.yaml").read_bytes()
            r = client.post("/api/v1/schedules/hr/pause", headers={**WRITE, "If-Match": detail.headers["etag"]})
            assert r.status_code == 422, r.text
            assert [(e["code"], e["path"], e["line"]) for e in r.json()["errors"]] == [
                ("E031", "tasks[0].params.command", 5)]
            assert "Its last good version keeps running" in r.json()["detail"]
            assert "delete it" in r.json()["detail"]
            assert (env.schedules / "hr.yaml").read_bytes() == before
            etag = client.get("/api/v1/schedules/new", headers=READ).headers["etag"]
            r = client.post("/api/v1/schedules/new/resume", headers={**WRITE, "If-Match": etag})
            assert r.status_code == 422 and "No version of it runs" in r.json()["detail"]
    finally:
        close_env(env)
