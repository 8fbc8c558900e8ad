"""API hardening regressions (QA findings): symlinked/special schedule files never leak outside content, ids
with a trailing newline are illegal, YAML bodies go through the loader's alias/nesting guards, an empty task
list is 422, deeply nested JSON is 400, and the API uses the loader's finding codes."""

from __future__ import annotations

from pathlib import Path

import pytest
from litestar.testing import TestClient

from test_api_support import READ, WRITE, close_env, make_env

NIGHTLY = {
    "name": "Nightly processing",
    "timing": {"type": "manual"},
    "tasks": [{"task": "calculate_days"}, {"task": "calculate_months", "params": {"month": "previous"}}],
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


# ---------------------------------------------------------------------------------------------- ids
def test_id_with_trailing_newline_is_422_and_writes_nothing(env, client):
    r = client.post("/api/v1/schedules", json={"id": "abc\n", "spec": NIGHTLY}, headers=WRITE)
    assert r.status_code == 422, r.text
    assert r.json()["errors"][0]["path"] == "id"
    assert list(env.schedules.iterdir()) == []


def test_get_id_with_trailing_newline_is_404(env, client):
    assert client.post("/api/v1/schedules", json={"id": "abc", "spec": NIGHTLY}, headers=WRITE).status_code == 201
    assert client.get("/api/v1/schedules/abc", headers=READ).status_code == 200
    r = client.get("/api/v1/schedules/abc%0A", headers=READ)
    assert r.status_code == 404, r.text


def test_loader_and_schema_reject_trailing_newline_ids():
    from zmi_reconciler import loader
    from zmi_reconciler.schema import is_valid_id

    assert is_valid_id("abc") and not is_valid_id("abc\n")
    codes = [f.code for f in loader.load_schedule_text("name: x\ntiming: {type: manual}\ntasks: [{task: calculate_days}]\n",
                                                       "abc\n.yaml").findings]
    assert "E003" in codes


# ---------------------------------------------------------------------------------------------- reads
SECRET = "root:x:0:0:SECRET-OUTSIDE-CONTENT:/root:/bin/bash\n"


def _assert_refused(client, schedule_id: str, code: str) -> None:
    r = client.get(f"/api/v1/schedules/{schedule_id}", headers=READ)
    assert r.status_code == 200, r.text
    body = r.json()
    assert "SECRET" not in r.text and body["source"] == "" and body["spec"] is None
    assert body["status"]["degraded"] is True
    assert [e["code"] for e in body["status"]["errors"]] == [code]


def test_symlink_outside_the_folder_is_not_served(env, client, tmp_path):
    outside = tmp_path / "outside-secret.txt"
    outside.write_text(SECRET)
    (env.schedules / "passwd.yaml").symlink_to(outside)
    _assert_refused(client, "passwd", "E004")
    r = client.get("/api/v1/schedules/passwd/preview", headers=READ)
    assert "SECRET" not in r.text and r.status_code == 422


def test_symlink_inside_the_folder_is_served(env, client):
    assert client.post("/api/v1/schedules", json={"id": "real", "spec": NIGHTLY}, headers=WRITE).status_code == 201
    (env.schedules / "alias.yaml").symlink_to(env.schedules / "real.yaml")
    r = client.get("/api/v1/schedules/alias", headers=READ)
    assert r.status_code == 200 and "Nightly processing" in r.json()["source"]


@pytest.mark.skipif(not hasattr(__import__("os"), "mkfifo"), reason="no FIFOs on this platform")
def test_fifo_is_refused_without_blocking(env, client):
    import os

    os.mkfifo(env.schedules / "pipe.yaml")
    _assert_refused(client, "pipe", "E015")


def test_file_over_the_loader_limit_is_refused(env, client):
    from zmi_reconciler.loader import MAX_FILE_BYTES

    (env.schedules / "huge.yaml").write_text("# SECRET\n" * (MAX_FILE_BYTES // 9 + 10))
    _assert_refused(client, "huge", "E002")


def _create(client, schedule_id: str = "nightly") -> str:
    r = client.post("/api/v1/schedules", json={"id": schedule_id, "spec": NIGHTLY}, headers=WRITE)
    assert r.status_code == 201, r.text
    return r.headers["etag"]


# ---------------------------------------------------------------------------------------------- YAML bodies
def _billion_laughs() -> str:
    lines = ["a0: &a0 [" + ", ".join(['"lol"'] * 9) + "]"]
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, 8)]
    lines += ["name: bomb", "description: *a7", "timing: {type: manual}", "tasks: [{task: calculate_days}]"]
    return "\n".join(lines) + "\n"


def test_yaml_alias_bomb_body_is_422_quickly(env, client):
    import time

    etag = _create(client)
    before = (env.schedules / "nightly.yaml").read_bytes()
    body = _billion_laughs()
    started = time.monotonic()
    r = client.put("/api/v1/schedules/nightly", content=body,
                   headers={**WRITE, "If-Match": etag, "Content-Type": "application/yaml"})
    elapsed = time.monotonic() - started
    assert r.status_code == 422, r.text
    assert [e["code"] for e in r.json()["errors"]] == ["E010"]
    assert elapsed < 5
    assert (env.schedules / "nightly.yaml").read_bytes() == before


def test_yaml_body_syntax_error_uses_the_loaders_code(env, client):
    etag = _create(client)
    r = client.put("/api/v1/schedules/nightly", content="name: [unclosed\n",
                   headers={**WRITE, "If-Match": etag, "Content-Type": "application/yaml"})
    assert r.status_code == 422
    assert [e["code"] for e in r.json()["errors"]] == ["E007"]


# ---------------------------------------------------------------------------------------------- runs
def test_trigger_with_empty_task_list_is_422(env, client):
    _create(client)
    r = client.post("/api/v1/schedules/nightly/runs", json={"tasks": []}, headers=WRITE)
    assert r.status_code == 422, r.text
    assert r.headers["content-type"] == "application/problem+json"
    error = r.json()["errors"][0]
    assert error["path"] == "tasks" and "at least one index 0..1" in error["message"]


# ---------------------------------------------------------------------------------------------- nesting
DEEP = "[" * 100_000 + "]" * 100_000


@pytest.mark.parametrize("method, url", [("POST", "/api/v1/schedules"), ("PUT", "/api/v1/schedules/nightly"),
                                         ("PATCH", "/api/v1/schedules/nightly"), ("POST", "/api/v1/validate")])
def test_deeply_nested_json_is_400(env, client, method, url):
    etag = _create(client)
    for body in (DEEP, '{"name": ' + "[" * 65 + "]" * 65 + "}"):
        r = client.request(method, url, content=body,
                           headers={**WRITE, "If-Match": etag, "Content-Type": "application/json"})
        assert r.status_code == 400, (body[:20], r.text)
        assert r.headers["content-type"] == "application/problem+json"
        assert "deeper than 64" in r.json()["detail"]


# ---------------------------------------------------------------------------------------------- codes
def test_api_error_codes_are_the_loaders(env, client):
    from zmi_reconciler import loader

    etag = _create(client)
    (env.schedules / "nightly.yaml").write_bytes(b"name: caf\xe9\n")
    etag = client.get("/api/v1/schedules/nightly", headers=READ).headers["etag"]
    r = client.patch("/api/v1/schedules/nightly", json={"enabled": False}, headers={**WRITE, "If-Match": etag})
    assert r.status_code == 422 and [e["code"] for e in r.json()["errors"]] == ["E005"]
    assert loader.CODES["E005"] == "not UTF-8"
    (env.schedules / "nightly.yaml").write_text("name: [unclosed\n")
    etag = client.get("/api/v1/schedules/nightly", headers=READ).headers["etag"]
    r = client.patch("/api/v1/schedules/nightly", json={"enabled": False}, headers={**WRITE, "If-Match": etag})
    assert r.status_code == 422 and [e["code"] for e in r.json()["errors"]] == ["E007"]
    assert loader.CODES["E007"] == "YAML syntax error"


def test_request_errors_use_the_codes_the_readme_lists_for_them(env, client):
    """The README's code list is the API's too: an unknown key in a body is E021 (not E006, "tab in
    indentation"), an id that is no file name E003, a body that is no object E012, a task index out of range
    E020 (found by a QA trial)."""
    from zmi_reconciler import loader

    def codes(r):
        assert r.status_code == 422, r.text
        return [(e["path"], e["code"]) for e in r.json()["errors"]]

    r = client.post("/api/v1/schedules", json={"id": "x", "spec": NIGHTLY, "enabled": False}, headers=WRITE)
    assert codes(r) == [("enabled", "E021")] and loader.CODES["E021"] == "unknown key"
    assert "unknown key 'enabled' (allowed: id, spec)" in r.text
    assert codes(client.post("/api/v1/schedules", json={"id": "X!", "spec": NIGHTLY}, headers=WRITE)) == [
        ("id", "E003")]
    assert codes(client.post("/api/v1/schedules", json={"id": "x", "spec": [1]}, headers=WRITE)) == [
        ("spec", "E012")]
    _create(client)
    runs = "/api/v1/schedules/nightly/runs"
    assert codes(client.post(runs, json={"tasks": [5]}, headers=WRITE)) == [("tasks[0]", "E020")]
    assert codes(client.post(runs, json={"tasks": [0], "wait": 1}, headers=WRITE)) == [("wait", "E021")]
    assert codes(client.post(runs, json={"tasks": "all"}, headers=WRITE)) == [("tasks", "E020")]
    assert list(env.schedules.iterdir()) == [env.schedules / "nightly.yaml"]
