"""QA of the API polish of 2026-11-29: HEAD through ``HeadAsGet``, the 412 hint for a weak or unquoted If-Match,
the 422 hint for merge-patch lists, sentence-case problem titles, the /metrics media type and series, per-schedule
backup names and rotation, and the pre-commit hook that validates the whole folder.

The defects it found (6, strict xfails at first) are fixed; every test pins what holds now."""

from __future__ import annotations

import asyncio
import copy
import hashlib
import json
import os
import shlex
import shutil
import socket
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import jsonschema
import pytest
from litestar.testing import TestClient
from ruamel.yaml import YAML

from test_api import NIGHTLY, _put_file, client, env  # noqa: F401  (fixtures reused)
from test_api_support import READ, SPEC_EXAMPLE, WRITE, close_env, make_env
from zmi_reconciler.api.head import HeadAsGet

REPO = Path(__file__).resolve().parents[1]
WEEKLY = "name: Weekly\ntiming: {type: weekly, days: [mon, fri], at: '06:00'}\ntasks: [{task: calculate_days}]\n"


@pytest.fixture
def head(env):  # noqa: F811
    """A TestClient on the app as serve runs it (wrapped in HeadAsGet)."""
    with TestClient(HeadAsGet(env.app)) as c:
        yield c


def _etag(c, schedule_id: str) -> str:
    return c.get(f"/api/v1/schedules/{schedule_id}", headers=READ).headers["etag"]


def _same_but_body(get, head_response) -> None:
    assert head_response.status_code == get.status_code
    assert head_response.content == b""
    assert dict(head_response.headers) == dict(get.headers), (get.url, head_response.headers, get.headers)


# =============================================================================================== 1. HEAD
def _concrete(path: str) -> str:
    return (path.replace("{schedule_id}", "nightly").replace("{run_id}", "nightly@nope")
            .replace("{personnel_number}", "5006"))


def test_head_on_every_get_route_of_the_openapi_document_is_the_get_without_content(env, head):  # noqa: F811
    _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    head.post("/api/v1/schedules/nightly/runs", params={"wait": 10}, headers=WRITE)
    run_id = head.get("/api/v1/schedules/nightly/runs/last", headers=READ).json()["run_id"]
    doc = head.get("/schema/openapi.json").json()
    gets = [p for p, ops in doc["paths"].items() if "get" in ops]
    assert len(gets) >= 15 and "/api/v1/unassigned-bookings" in gets and "/api/v1/tasks" in gets
    targets = [_concrete(p) for p in gets] + [
        f"/api/v1/runs/{run_id}", "/schema", "/schema/swagger", "/schema/openapi.json",
        "/api/v1/schedules/nightly/runs?per_page=1&status=partial&page=1",
        "/api/v1/schedules/nightly/preview?count=3&after=2026-03-28T12:00:00Z",
        "/api/v1/daily-values?date=2026-03-20&errors=true", "/api/v1/employees/5006/daily-values?from=2026-03-01",
        "/api/v1/schedules/nightly/preview?count=many",  # 400 from Litestar
        "/api/v1/daily-values?date=2026-02-30",  # 422 from us
        "/api/v1/schedules/nope", "/api/v1/schedules/..%2Fx", "/api/v1/nothing-here", "/nothing"]  # 404s
    statuses = set()
    for target in targets:
        for headers in (READ, {}, {"Authorization": "Bearer wrong"}):
            get = head.get(target, headers=headers)
            _same_but_body(get, head.head(target, headers=headers))
            statuses.add(get.status_code)
    assert {200, 400, 401, 404, 422} <= statuses
    # a conditional header changes nothing (no 304 support for GET, and none for HEAD either)
    etag = _etag(head, "nightly")
    for extra in ({"If-None-Match": etag}, {"If-Match": '"stale"'}, {"If-Modified-Since": "Sun, 29 Nov 2026 00:00:00 GMT"}):
        get = head.get("/api/v1/schedules/nightly", headers={**READ, **extra})
        _same_but_body(get, head.head("/api/v1/schedules/nightly", headers={**READ, **extra}))
        assert get.status_code == 200


def test_head_of_the_metrics_and_the_big_openapi_document_keeps_type_and_length(env, head):  # noqa: F811
    for target, headers in (("/api/v1/metrics", READ), ("/schema/openapi.json", {})):
        get = head.get(target, headers=headers)
        response = head.head(target, headers=headers)
        assert response.content == b"" and response.headers["content-length"] == str(len(get.content))
        assert response.headers["content-type"] == get.headers["content-type"]
    assert len(head.get("/schema/openapi.json").content) > 50_000
    assert head.head("/api/v1/metrics", headers=READ).headers["content-type"] == \
        "text/plain; version=0.0.4; charset=utf-8"


def _tree(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_head_on_post_only_routes_is_405_as_for_get_and_never_writes_or_runs(env, head):  # noqa: F811
    _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    etag = _etag(head, "nightly")
    schedules, journal = _tree(env.schedules), _tree(env.settings.journal_path)
    writes = {"/api/v1/schedules/nightly/pause": b"", "/api/v1/schedules/nightly/resume": b"",
              "/api/v1/validate": json.dumps(NIGHTLY).encode(), "/api/v1/closing": b'{"through": "2026-02"}',
              "/api/v1/closing/reopen": b'{"from": "2026-02"}'}
    for target, body in writes.items():
        headers = {**WRITE, "If-Match": etag, "Content-Type": "application/json"}
        get = head.request("GET", target, content=body, headers=headers)
        response = head.request("HEAD", target, content=body, headers=headers)
        assert get.status_code == 405 and get.headers["allow"].startswith(("POST", "OPTIONS"))
        _same_but_body(get, response)
    # POST+GET routes: a HEAD is the GET (a list), not the POST (no run, no new schedule)
    for target, body in (("/api/v1/schedules/nightly/runs?wait=5", b'{"tasks": [0]}'),
                         ("/api/v1/schedules", json.dumps({"id": "new", "spec": NIGHTLY}).encode())):
        response = head.request("HEAD", target, content=body, headers={**WRITE, "Content-Type": "application/json"})
        assert (response.status_code, response.content) == (200, b"")
    # a body far over the request limit: answered as the GET would be (GET handlers never read it)
    big = b"x" * (env.settings.max_request_bytes + 10)
    _same_but_body(head.request("GET", "/api/v1/schedules/nightly", content=big, headers=READ),
                   head.request("HEAD", "/api/v1/schedules/nightly", content=big, headers=READ))
    assert _tree(env.schedules) == schedules and _tree(env.settings.journal_path) == journal
    assert env.journal.runs("nightly") == [] and env.runner.status("nightly")["active_run"] is None
    assert not (env.schedules / "new.yaml").exists()


def _drive(app, scope, messages_in=()):
    """Call an ASGI app once; returns the messages it sent."""
    sent: list[dict] = []
    queue = list(messages_in) or [{"type": "http.request", "body": b"", "more_body": False}]

    async def receive():
        return queue.pop(0) if queue else {"type": "http.disconnect"}

    async def send(message):
        sent.append(message)

    asyncio.run(app(scope, receive, send))
    return sent


def test_head_drops_a_streamed_body_keeps_trailers_and_passes_other_scopes_through():
    seen: list[dict] = []

    async def streaming(scope, receive, send):
        seen.append(scope)
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 200, "trailers": True,
                    "headers": [(b"content-type", b"text/plain"), (b"x-method", scope["method"].encode())]})
        for i in range(50):
            await send({"type": "http.response.body", "body": b"chunk%d" % i, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        await send({"type": "http.response.trailers", "headers": [(b"x-sum", b"1")], "more_trailers": False})

    wrapped = HeadAsGet(streaming)
    base = {"type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "path": "/x", "raw_path": b"/x",
            "query_string": b"q=1", "headers": [], "scheme": "http", "root_path": ""}
    out = _drive(wrapped, {**base, "method": "HEAD"})
    assert [m["type"] for m in out] == ["http.response.start", "http.response.body", "http.response.trailers"]
    assert out[1] == {"type": "http.response.body", "body": b"", "more_body": False}
    assert (b"x-method", b"GET") in out[0]["headers"]
    assert seen[-1]["query_string"] == b"q=1" and seen[-1]["method"] == "GET"
    get = _drive(wrapped, {**base, "method": "GET"})
    assert len(get) == 53 and seen[-1]["method"] == "GET"
    post = {**base, "method": "POST"}
    _drive(wrapped, post)
    assert seen[-1] is post  # untouched, not even copied
    for other in ({"type": "lifespan", "asgi": {"version": "3.0"}}, {"type": "websocket", "path": "/ws"}):
        assert _drive(wrapped, other, [{"type": "lifespan.startup"}]) == []
        assert seen[-1] is other  # no "method" key needed, passed as it is


def test_the_wrapper_exposes_the_litestar_app_and_loads_in_uvicorn(env):  # noqa: F811
    from zmi_reconciler.cli.serve import _api_server

    wrapped = HeadAsGet(env.app)
    assert wrapped.state.service is env.app.state.service
    assert wrapped.openapi_schema is env.app.openapi_schema and wrapped.debug is False
    assert not hasattr(wrapped, "no_such_attribute")
    server = _api_server(env.settings, env.app)
    assert server.config.loaded and server.config.interface == "asgi3"
    inner = server.config.loaded_app
    while not isinstance(inner, HeadAsGet):  # uvicorn's own middleware around it
        inner = inner.app
    assert inner.app is env.app


def test_the_wrapper_can_be_copied():
    async def app(scope, receive, send):
        pass

    wrapped = HeadAsGet(app)
    assert copy.copy(wrapped).app is app


def test_a_405_on_a_get_route_lists_head_in_allow(head):
    response = head.delete("/api/v1/healthz", headers=WRITE)
    assert response.status_code == 405
    assert "HEAD" in [m.strip() for m in response.headers["allow"].split(",")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
def test_a_real_serve_process_answers_curl_head(tmp_path):
    token = "qa-polish-token"
    (tmp_path / "schedules.d").mkdir()
    shutil.copy(REPO / "schedules.d" / "backup-now.yaml", tmp_path / "schedules.d")
    config = tmp_path / "qa.toml"
    config.write_text(f'data_dir = "{tmp_path / "var"}"\nschedules_dir = "{tmp_path / "schedules.d"}"\n'
                      f'[[tokens]]\nname = "qa"\nsha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\n'
                      f'role = "write"\n', encoding="utf-8")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZMI_")}
    with open(tmp_path / "serve.log", "wb") as log:
        child = subprocess.Popen([sys.executable, "-m", "zmi_reconciler", "serve", "--config", str(config),
                                  "--port", str(port)], stderr=log, stdout=log, env=env, cwd=tmp_path)
    base = f"http://127.0.0.1:{port}"
    auth = ["-H", f"Authorization: Bearer {token}"]

    def curl(*args: str) -> tuple[int, dict[str, str], int]:
        """(status, headers, bytes of content curl received)."""
        done = subprocess.run(["curl", "-sS", "--max-time", "10", "-D", str(tmp_path / "headers"), "-o",
                               os.devnull, "-w", "%{size_download}", *args], capture_output=True, timeout=20)
        if done.returncode != 0:
            return 0, {}, 0
        lines = (tmp_path / "headers").read_text("latin-1").strip().splitlines()
        headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
        return int(lines[0].split()[1]), headers, int(done.stdout)

    try:
        deadline = time.monotonic() + 30
        while curl(f"{base}/api/v1/readyz")[0] != 200:
            assert child.poll() is None and time.monotonic() < deadline, (tmp_path / "serve.log").read_text()
            time.sleep(0.05)
        status, headers, body = curl("-I", *auth, f"{base}/api/v1/schedules/backup-now")
        get_status, get_headers, get_body = curl(*auth, f"{base}/api/v1/schedules/backup-now")
        assert (status, body) == (200, 0) and get_status == 200 and get_body > 100
        assert headers["etag"] == get_headers["etag"] and headers["content-length"] == str(get_body)
        assert curl("-I", f"{base}/api/v1/schedules/backup-now")[0] == 401
        assert curl("-I", *auth, f"{base}/api/v1/validate")[0] == 405
        assert curl("-I", *auth, f"{base}/api/v1/schedules/nope")[0] == 404
        metrics = curl("-I", *auth, f"{base}/api/v1/metrics")
        assert metrics[0] == 200 and metrics[1]["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
        assert curl("-I", f"{base}/api/v1/healthz")[0] == 200
        # keep-alive after a HEAD: the next request on the connection is read correctly (no stray body)
        out = subprocess.run(["curl", "-sS", "-I", f"{base}/api/v1/healthz", "--next", "-sS", f"{base}/api/v1/healthz"],
                             capture_output=True, timeout=20).stdout
        assert out.endswith(b'{"status":"ok"}')
        # the ETag a HEAD read is good for a write; the HEADs wrote nothing before it
        text = (tmp_path / "schedules.d" / "backup-now.yaml").read_text()
        assert text == (REPO / "schedules.d" / "backup-now.yaml").read_text()
        status, _, _ = curl("-X", "POST", *auth, "-H", f"If-Match: {headers['etag']}",
                            f"{base}/api/v1/schedules/backup-now/pause")
        assert status == 200
        assert "enabled: false" in (tmp_path / "schedules.d" / "backup-now.yaml").read_text()
    finally:
        child.terminate()
        try:
            child.wait(20)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(5)


# =============================================================================================== 2. If-Match
HASH = "{hash}"
IF_MATCH_CASES = [
    # (If-Match, expected status, expected kind: ok | hint | changed | required)
    ('"{hash}"', 200, "ok"), ('  "{hash}"  ', 200, "ok"), ('\t"{hash}"\t', 200, "ok"), ("*", 200, "ok"),
    (" * ", 200, "ok"), ('"x", "{hash}"', 200, "ok"), ('"x",,"{hash}"', 200, "ok"), ('*, "{hash}"', 200, "ok"),
    ("{hash}", 412, "hint"), ('W/"{hash}"', 412, "hint"), ('W/"{hash}", "x"', 412, "hint"),
    ('"x", {hash}', 412, "hint"), ('{hash},"x"', 412, "hint"), ('"{hash}', 412, "hint"), ('{hash}"', 412, "hint"),
    ("W/{hash}", 412, "hint"),
    ('"x"', 412, "changed"), ('""', 412, "changed"), (",", 412, "changed"), ("W/*", 412, "changed"),
    ('*, "x"', 412, "changed"), ('"{HASH}"', 412, "changed"), ('"{hash}" "x"', 412, "changed"),
    ('"{hash}";q=1', 412, "changed"), ('"x"' * 5000, 412, "changed"),
    ("", 428, "required"), ("   ", 428, "required"),
]


@pytest.mark.parametrize(("sent", "status", "kind"), IF_MATCH_CASES, ids=range(len(IF_MATCH_CASES)))
def test_if_match_forms_on_pause(env, client, sent, status, kind):  # noqa: F811
    path = _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    etag = _etag(client, "nightly")
    digest = etag.strip('"')
    value = sent.replace("{hash}", digest).replace("{HASH}", digest.upper())
    response = client.post("/api/v1/schedules/nightly/pause", headers={**WRITE, "If-Match": value})
    assert response.status_code == status, response.text
    if kind == "ok":
        assert "enabled: false" in path.read_text()
        return
    assert path.read_text() == SPEC_EXAMPLE
    detail = response.json()["detail"]
    if kind == "hint":
        assert "not as a strong, quoted ETag" in detail and etag in detail and "changed" not in detail
    elif kind == "changed":
        assert detail.startswith("the file changed since that ETag was read") and etag in detail
        assert len(detail) < 300  # the long value is not echoed
    else:
        assert response.json()["title"] == "If-Match is required"


def test_the_tag_of_another_file_is_stale_and_put_delete_patch_give_the_same_hint(env, client):  # noqa: F811
    _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    _put_file(env, "other.yaml", SPEC_EXAMPLE.replace("Nightly processing", "Other"))
    etag, other = _etag(client, "nightly"), _etag(client, "other")
    r = client.post("/api/v1/schedules/nightly/pause", headers={**WRITE, "If-Match": other})
    assert r.status_code == 412 and "changed since that ETag" in r.json()["detail"]
    for sent in (etag.strip('"'), "W/" + etag):
        for method, kwargs in (("PUT", {"json": NIGHTLY}), ("PATCH", {"json": {"enabled": False}}), ("DELETE", {})):
            r = client.request(method, "/api/v1/schedules/nightly", headers={**WRITE, "If-Match": sent}, **kwargs)
            assert r.status_code == 412 and "not as a strong, quoted ETag" in r.json()["detail"], (method, sent)
    assert (env.schedules / "nightly.yaml").read_text() == SPEC_EXAMPLE


def test_the_412_title_does_not_claim_a_change_when_the_file_did_not_change(env, client):  # noqa: F811
    _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    etag = _etag(client, "nightly")
    body = client.post("/api/v1/schedules/nightly/pause", headers={**WRITE, "If-Match": "W/" + etag}).json()
    assert "not as a strong, quoted ETag" in body["detail"]
    assert "changed" not in body["title"], body["title"]


# =============================================================================================== 3. merge-patch lists
def _patch(c, schedule_id: str, body):
    return c.patch(f"/api/v1/schedules/{schedule_id}", content=json.dumps(body),
                   headers={**WRITE, "If-Match": _etag(c, schedule_id), "Content-Type": "application/merge-patch+json"})


LIST_HINT = "a merge patch (RFC 7396) replaces a list whole"


@pytest.mark.parametrize(("body", "hinted"), [
    ({"tasks": [{"params": {"keep": 3}}]}, ["tasks"]),
    ({"tasks": []}, ["tasks"]),
    ({"tasks": [[1]]}, ["tasks"]),
    ({"exclude": [{"from": "23:00"}], "overlap": "maybe"}, ["exclude"]),  # errors in and outside the list
    ({"exclude": [{"from": "23:00"}], "tasks": [{"task": "calculate_days", "params": {"x": 1}}]}, ["exclude", "tasks"]),
    ({"exclude": None, "tasks": [{"task": "calculate_days", "timeout": "nope"}]}, ["tasks"]),
    ({"exclude": [{"from": "23:00", "to": "23:30"}], "overlap": "maybe"}, []),  # a valid list, the error outside
    ({"tasks": None}, []),  # null removes the key: no list was sent
    ({"tasks": "calculate_days"}, []),
    ({"timing": {"at": "99:00"}, "tasks": [{"task": "calculate_days"}]}, []),
])
def test_the_list_hint_names_exactly_the_lists_with_errors(env, client, body, hinted):  # noqa: F811
    path = _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    r = _patch(client, "nightly", body)
    assert r.status_code == 422, r.text
    detail = r.json()["detail"]
    assert (LIST_HINT in detail) == bool(hinted), detail
    if hinted:
        assert detail.endswith("as it should be, or PUT the whole spec")
        assert "send every item of " + ", ".join(f"'{k}'" for k in hinted) + " as it" in detail
    assert path.read_text() == SPEC_EXAMPLE


def test_a_nested_list_a_valid_list_and_pause_resume_get_no_list_hint(env, client):  # noqa: F811
    _put_file(env, "weekly.yaml", WEEKLY)
    r = _patch(client, "weekly", {"timing": {"days": ["mon", "xyz"]}})
    assert r.status_code == 422 and r.json()["errors"][0]["path"] == "timing.days[1]"
    assert LIST_HINT not in r.json()["detail"]  # nested lists: no hint (the patch's top-level keys only)
    r = _patch(client, "weekly", {"tasks": [{"task": "calculate_days"}, {"task": "calculate_months"}]})
    assert r.status_code == 200  # a whole, valid list is simply written
    assert r.json()["spec"]["tasks"] == [{"task": "calculate_days"}, {"task": "calculate_months"}]
    broken = WEEKLY.replace("at: '06:00'", "at: '99:00'")
    _put_file(env, "weekly.yaml", broken)
    for action in ("pause", "resume"):
        r = client.post(f"/api/v1/schedules/weekly/{action}", headers={**WRITE, "If-Match": _etag(client, "weekly")})
        assert r.status_code == 422 and LIST_HINT not in r.json()["detail"]
        assert r.json()["detail"].startswith(f"{action} not applied")


def test_a_degraded_file_and_a_list_that_lost_fields_get_both_explanations(env, client):  # noqa: F811
    _put_file(env, "never.yaml", "name: x\ntiming: {type: daily, at: '99:00'}\ntasks: [{task: calculate_days}]\n")
    r = _patch(client, "never", {"tasks": [{"params": {"keep": 3}}]})
    assert r.status_code == 422
    assert [(e["path"], e["code"]) for e in r.json()["errors"]] == [("timing.at", "E020"), ("tasks[0].task", "E022")]
    detail = r.json()["detail"]
    assert detail.startswith("PATCH not applied, nothing was written: never.yaml has 1 error(s) on disk")
    assert LIST_HINT in detail and "'tasks'" in detail


def test_the_list_hint_after_a_degraded_files_explanation_reads_as_a_sentence(env, client):  # noqa: F811
    _put_file(env, "never.yaml", "name: x\ntiming: {type: daily, at: '99:00'}\ntasks: [{task: calculate_days}]\n")
    detail = _patch(client, "never", {"tasks": [{"params": {"keep": 3}}]}).json()["detail"]
    assert ".;" not in detail, detail


@pytest.mark.parametrize("body", [{"name": ["Nightly"]}, {"timing": [{"type": "manual"}]}])
def test_a_list_for_a_field_that_is_no_list_gets_no_list_hint(env, client, body):  # noqa: F811
    _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    r = _patch(client, "nightly", body)
    assert r.status_code == 422
    assert LIST_HINT not in r.json()["detail"], r.json()["detail"]


# =============================================================================================== 4. problem titles
TITLES = {400: {"Bad request"}, 401: {"Missing or unknown token"}, 403: {"Token lacks the write role"},
          404: {"Not found"}, 405: {"Method not allowed"}, 409: {"Conflict", "A run of this schedule is active"},
          412: {"If-Match does not match the file"}, 413: {"Request body too large"},
          415: {"Unsupported media type"}, 422: {"The schedule is not valid", "The request is not valid"},
          428: {"If-Match is required"}, 503: {"Not ready"}}


def _problems(env, c) -> list:
    """One response per way to get a problem, from both layers (Litestar's and ours)."""
    _put_file(env, "nightly.yaml", SPEC_EXAMPLE)
    etag = _etag(c, "nightly")
    yaml_ct = {"Content-Type": "application/yaml"}
    return [
        c.get("/api/v1/schedules/nightly/preview", params={"count": "many"}, headers=READ),  # 400 Litestar
        c.get("/api/v1/schedules/nightly/runs", params={"page": "0"}, headers=READ),  # 400 Litestar
        c.post("/api/v1/schedules", content=b"{", headers={**WRITE, "Content-Type": "application/json"}),  # 400 us
        c.get("/api/v1/schedules"), c.get("/api/v1/metrics", headers={"Authorization": "Bearer x"}),  # 401
        c.request("OPTIONS", "/api/v1/tasks"),  # 401 on Litestar's own OPTIONS handler
        c.post("/api/v1/schedules", json={"id": "x", "spec": NIGHTLY}, headers=READ),  # 403
        c.get("/api/v1/nothing-here", headers=READ), c.get("/nothing"),  # 404 Litestar
        c.get("/api/v1/schedules/nope", headers=READ), c.get("/api/v1/runs/none", headers=READ),  # 404 us
        c.delete("/api/v1/tasks", headers=WRITE), c.get("/api/v1/validate", headers=READ),  # 405 Litestar
        c.head("/api/v1/validate", headers=READ),  # 405 for HEAD (no body to check)
        c.post("/api/v1/schedules", json={"id": "nightly", "spec": NIGHTLY}, headers=WRITE),  # 409
        c.post("/api/v1/schedules/nightly/pause", headers={**WRITE, "If-Match": '"x"'}),  # 412
        c.post("/api/v1/validate", content="x" * 5000, headers={**READ, **yaml_ct}),  # 413 Litestar
        c.post("/api/v1/validate", content="x", headers={**READ, "Content-Type": "text/csv"}),  # 415
        c.post("/api/v1/schedules", json={"id": "../x", "spec": NIGHTLY}, headers=WRITE),  # 422
        c.get("/api/v1/daily-values", params={"date": "2026-02-30"}, headers=READ),  # 422 request
        c.post("/api/v1/schedules/nightly/pause", headers=WRITE),  # 428
        c.patch("/api/v1/schedules/nightly", json={"tasks": []}, headers={**WRITE, "If-Match": etag}),  # 422 hint
    ]


def test_every_problem_has_its_statuss_title_and_validates_against_the_openapi_document(tmp_path):
    env = make_env(tmp_path, max_request_bytes=1024)
    try:
        with TestClient(HeadAsGet(env.app)) as c:
            doc = c.get("/schema/openapi.json").json()
            validator = jsonschema.Draft202012Validator({"$ref": "#/components/schemas/Problem",
                                                         "components": doc["components"]})
            responses = _problems(env, c)
            statuses = set()
            for r in responses:
                statuses.add(r.status_code)
                assert r.headers["content-type"] == "application/problem+json", (r.request.url, r.text)
                if r.request.method == "HEAD":
                    assert r.content == b""
                    continue
                body = r.json()
                validator.validate(body)
                assert body["status"] == r.status_code and body["title"] in TITLES[r.status_code], body
                assert body["type"].startswith("https://zmi-reconciler.invalid/problems/")
                assert body["instance"] == r.request.url.path
            assert set(TITLES) - statuses == {503}
            # every error response the document declares is problem+json with that schema
            for path_item in doc["paths"].values():
                for operation in path_item.values():
                    for code, response in operation["responses"].items():
                        if int(code) >= 400:
                            assert response["content"] == {"application/problem+json": {
                                "schema": {"$ref": "#/components/schemas/Problem"}}}
    finally:
        close_env(env)


def test_the_503_of_readyz_is_a_sentence_case_problem(env):  # noqa: F811
    from zmi_reconciler.api.app import create_app
    from zmi_reconciler.api.auth import TokenStore
    from zmi_reconciler.reconcile import Reconciler

    app = create_app(env.settings, env.runner, Reconciler(env.settings, env.runner, env.journal), env.journal,
                     tokens=TokenStore([]))
    with TestClient(HeadAsGet(app)) as c:
        r = c.get("/api/v1/readyz")
        assert r.status_code == 503 and r.json()["title"] == "Not ready"
        _same_but_body(r, c.head("/api/v1/readyz"))


@pytest.mark.parametrize(("method", "target"), [("GET", "/api/v1/nothing-here"), ("DELETE", "/api/v1/tasks")])
def test_a_litestar_problem_does_not_repeat_its_title_as_detail(client, method, target):  # noqa: F811
    body = client.request(method, target, headers=WRITE).json()
    assert (body.get("detail") or "").lower() != body["title"].lower(), body


# =============================================================================================== 5. /metrics
def test_metrics_media_type_no_created_series_and_parseable_after_every_kind_of_event(env, head):  # noqa: F811
    from prometheus_client.parser import text_string_to_metric_families

    spec = {"name": "Every minute", "timing": {"type": "minutes", "every": 1}, "tasks": [{"task": "calculate_days"}]}
    assert head.post("/api/v1/schedules", json={"id": "min_ute-1", "spec": spec}, headers=WRITE).status_code == 201
    head.post("/api/v1/schedules", json={"id": "nightly", "spec": NIGHTLY}, headers=WRITE)
    head.post("/api/v1/schedules/nightly/runs", params={"wait": 10}, headers=WRITE)  # partial, 4 task durations
    base = env.clock.now
    for seconds in (60, 120):
        env.clock.now = base + timedelta(seconds=seconds, milliseconds=5)
        env.runner.tick(env.clock.now)
        env.wait_idle("min_ute-1")
    _put_file(env, "broken.yaml", "name: [\n")
    response = head.get("/api/v1/metrics", headers=READ)
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
    text = response.text
    families = {f.name: f for f in text_string_to_metric_families(text)}
    samples = [s for f in families.values() for s in f.samples]
    assert not [s.name for s in samples if s.name.endswith("_created")] and "_created" not in text
    assert {"zmi_runs", "zmi_task_duration_seconds", "zmi_fire_lag_seconds", "zmi_schedule_degraded",
            "zmi_next_fire_timestamp_seconds", "zmi_active_runs"} <= set(families)
    runs = {(s.labels["schedule"], s.labels["status"]): s.value for s in families["zmi_runs"].samples}
    assert runs == {("nightly", "partial"): 1.0, ("min_ute-1", "succeeded"): 2.0}
    assert [s.value for s in families["zmi_fire_lag_seconds"].samples if s.name.endswith("_count")] == [2.0]
    degraded = {s.labels["schedule"]: s.value for s in families["zmi_schedule_degraded"].samples}
    assert degraded == {"broken": 1.0, "min_ute-1": 0.0, "nightly": 0.0}
    again = head.get("/api/v1/metrics", headers=READ)  # a second scrape: still no _created, same content type
    assert "_created" not in again.text and again.headers["content-type"] == response.headers["content-type"]
    denied = head.get("/api/v1/metrics")
    assert denied.status_code == 401 and denied.headers["content-type"] == "application/problem+json"


def test_a_second_app_in_the_process_has_no_created_series_either(tmp_path):
    from prometheus_client import CollectorRegistry, Counter, generate_latest

    e = make_env(tmp_path)
    try:
        with TestClient(e.app) as c:
            assert "_created" not in c.get("/api/v1/metrics", headers=READ).text
    finally:
        close_env(e)
    registry = CollectorRegistry()
    Counter("qa_things", "things", registry=registry).inc()
    assert b"qa_things_total 1.0" in generate_latest(registry)


# =============================================================================================== 6. backups
STAMPS = ["20260101T000000Z", "20260102T000000Z", "20260103T000000Z"]


def test_prune_touches_only_the_schedules_own_timestamped_files(tmp_path):
    from zmi_reconciler.tasks.backup_database import prune

    ids = ["a", "a-b", "a_b", "a-1", "a1", "backup-2026", "mon", "x-20260101"]
    others = ["zmi-20250101T000000Z.zip", "zmi-20250102T000000Z.zip", "zmi-mon.zip", "zmi-sun.zip",
              "zmi-a-20260101T000000Z.zip.part", "zmi-a-20260101T000000z.zip", "zmi-a-2026010T000000Z.zip",
              "zmi-a--20260101T000000Z.zip", "notes.txt", "zmi-A-20260101T000000Z.zip"]
    for sid in ids:
        for stamp in STAMPS:
            (tmp_path / f"zmi-{sid}-{stamp}.zip").write_bytes(sid.encode())
    for name in others:
        (tmp_path / name).write_bytes(b"other")
    (tmp_path / "zmi-a-20250101T000000Z.zip").mkdir()  # a directory with a backup's name is never removed
    for i, sid in enumerate(ids):
        deleted = prune(tmp_path, 1, sid)
        assert sorted(p.name for p in deleted) == [f"zmi-{sid}-{s}.zip" for s in STAMPS[:2]], sid
        left = {p.name for p in tmp_path.iterdir()}
        for later in ids[i + 1:]:  # schedules not yet pruned still have all three
            assert {f"zmi-{later}-{s}.zip" for s in STAMPS} <= left, (sid, later)
    left = sorted(p.name for p in tmp_path.iterdir())
    assert left == sorted([f"zmi-{sid}-{STAMPS[-1]}.zip" for sid in ids] + others + ["zmi-a-20250101T000000Z.zip"])
    assert prune(tmp_path, 1, "a") == []  # nothing more to do


def test_two_schedules_with_prefix_ids_rotate_apart_and_restore_takes_the_new_name(tmp_path, monkeypatch, capsys):
    from test_task_helpers import Clock, dump_tables, make_ctx, make_settings, seed_small_store
    from zmi_reconciler.cli import main
    from zmi_reconciler.tasks import backup_database as task

    settings = make_settings(tmp_path)
    seed_small_store(settings.database_path)
    start = datetime(2026, 4, 20, 3, 0, tzinfo=timezone.utc)
    params = task.Params(naming="timestamp", keep=1, verify=False)
    names = {}
    for minute, sid in enumerate(["a", "a-b", "a", "a-b", "mon"]):
        result = task.run(make_ctx(settings, "backup_database", Clock(start + timedelta(minutes=minute)),
                                   schedule_id=sid), params)
        names.setdefault(sid, []).append(Path(result.file).name)
    weekday = task.run(make_ctx(settings, "backup_database", Clock(start), schedule_id="mon"), task.Params())
    assert Path(weekday.file).name == "zmi-mon.zip"
    left = sorted(p.name for p in settings.backup_path.iterdir())
    assert left == sorted([names["a"][-1], names["a-b"][-1], names["mon"][0], "zmi-mon.zip"])
    assert names["a-b"][-1] == "zmi-a-b-20260420T030300Z.zip"
    before = dump_tables(settings.database_path)
    import sqlite3

    with sqlite3.connect(settings.database_path) as db:
        db.execute("DELETE FROM bookings")
    monkeypatch.chdir(tmp_path)
    assert main(["restore", "--data-dir", str(settings.data_dir), names["a-b"][-1], "--yes"]) == 0
    assert dump_tables(settings.database_path) == before
    assert names["a-b"][-1] in capsys.readouterr().out


def test_cli_run_with_task_rotates_only_its_schedules_backups(tmp_path, monkeypatch, capsys):
    from test_task_helpers import seed_small_store
    from zmi_reconciler.cli import main

    for var in ("ZMI_DATA_DIR", "ZMI_SCHEDULES_DIR", "ZMI_CONFIG", "ZMI_BACKUP_DIR"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.chdir(tmp_path)
    schedules, data = tmp_path / "schedules.d", tmp_path / "var"
    schedules.mkdir()
    (schedules / "backup-now.yaml").write_text(
        (REPO / "schedules.d" / "backup-now.yaml").read_text().replace("keep: 10", "keep: 1"))
    data.mkdir()
    seed_small_store(data / "tna.sqlite3")
    backups = data / "backups"
    backups.mkdir()
    keep = ["zmi-backup-now-x-20200101T000000Z.zip", "zmi-backup-20200101T000000Z.zip",
            "zmi-20200101T000000Z.zip", "zmi-mon.zip", "zmi-nightly-20200101T000000Z.zip"]
    for name in keep + ["zmi-backup-now-20200101T000000Z.zip"]:
        (backups / name).write_bytes(b"older")
    base = ["--data-dir", str(data), "--schedules-dir", str(schedules)]
    assert main(["run", "backup-now", "--task", "backup_database", "--format", "json", *base]) == 0
    outcome = json.loads(capsys.readouterr().out)
    made = Path(outcome["tasks"][0]["result"]["file"]).name
    assert made.startswith("zmi-backup-now-") and outcome["tasks"][0]["result"]["deleted"] == 1
    assert sorted(p.name for p in backups.iterdir()) == sorted(keep + [made])


# =============================================================================================== 7. pre-commit hook
def _hook() -> dict:
    (hook,) = YAML(typ="safe").load((REPO / ".pre-commit-hooks.yaml").read_text(encoding="utf-8"))
    return hook


def _run_hook(root: Path, changed: list[str], args: list[str] | None = None) -> subprocess.CompletedProcess:
    """The command pre-commit builds from the hook (entry + args [+ file names]), run from a schedules repo's root
    (``args`` as a user's .pre-commit-config.yaml would override them)."""
    hook = _hook()
    entry = shlex.split(hook["entry"])
    assert entry[0] == "zmi-reconciler"
    command = [sys.executable, "-m", "zmi_reconciler", *entry[1:], *(args if args is not None else hook["args"]),
               *(changed if hook.get("pass_filenames", True) else [])]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("ZMI_", "GITHUB_ACTIONS"))}
    return subprocess.run(command, cwd=root, capture_output=True, text=True, timeout=60, env=env)


def _schedules_repo(tmp_path: Path) -> Path:
    folder = tmp_path / "schedules.d"
    folder.mkdir()
    for name in ("alive", "backup-now", "nightly", "payroll-export", "terminal-import"):
        shutil.copy(REPO / "schedules.d" / f"{name}.yaml", folder)
    (tmp_path / "README.md").write_text("schedules of the site\n")
    return tmp_path


def test_the_hook_passes_a_clean_folder_and_fails_cross_file_problems(tmp_path):
    hook = _hook()
    assert hook["pass_filenames"] is False and hook["args"] == ["schedules.d/"]
    assert hook["require_serial"] is True
    root = _schedules_repo(tmp_path)
    clean = _run_hook(root, ["schedules.d/nightly.yaml"])
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert _run_hook(root, ["schedules.d/nightly.yaml"], ["--strict", "schedules.d/"]).returncode == 0
    assert _run_hook(root, ["schedules.d/nightly.yaml"], ["--strict"]).returncode == 0  # args overridden: default dir

    # W002: a copy with the same name; only --strict (added through args) fails it
    text = (root / "schedules.d" / "backup-now.yaml").read_text()
    (root / "schedules.d" / "my-backup.yaml").write_text(text)
    plain = _run_hook(root, ["schedules.d/my-backup.yaml"])
    assert plain.returncode == 0 and "W002" in plain.stdout
    strict = _run_hook(root, ["schedules.d/my-backup.yaml"], ["--strict", "schedules.d/"])
    assert strict.returncode == 1 and "W002" in strict.stdout
    assert "backup-now.yaml" in strict.stdout  # the unchanged file is part of the finding
    (root / "schedules.d" / "my-backup.yaml").unlink()

    # E030: the same id as .yaml and .yml, the .yml being the change; fails without --strict
    (root / "schedules.d" / "alive.yml").write_text((root / "schedules.d" / "alive.yaml").read_text()
                                                    .replace("name: ", "name: Copy of ", 1))
    dup = _run_hook(root, ["schedules.d/alive.yml"])
    assert dup.returncode == 1 and "E030" in dup.stdout, dup.stdout + dup.stderr
    # an unchanged file's own error fails a commit that touches another file too
    (root / "schedules.d" / "alive.yml").unlink()
    (root / "schedules.d" / "payroll-export.yaml").write_text("name: [\n")
    broken = _run_hook(root, ["schedules.d/nightly.yaml"])
    assert broken.returncode == 1 and "payroll-export.yaml" in broken.stdout
    pattern = __import__("re").compile(hook["files"])
    assert pattern.search("schedules.d/alive.yml") and not pattern.search("other/schedules.d/alive.yml")
