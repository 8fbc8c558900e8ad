"""End to end through ``zmi-reconciler serve``: the API runs in the same process as runner and reconciler.

First start without tokens writes the admin token (0600); with it a schedule is created through the API, the
reconciler loads it, a manual run (``run_command`` from the server's allowlist) is triggered and waited for,
its logs come back from the journal, an edit from outside (a git pull) makes a stale write fail with 412,
and SIGTERM stops the process cleanly (exit 0).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def server(tmp_path: Path):
    (tmp_path / "schedules.d").mkdir()
    (tmp_path / "zmi.toml").write_text(
        "shutdown_grace_seconds = 1\n[commands]\n"
        f"hello = [{json.dumps(sys.executable)}, \"-c\", \"print('hello from the runner')\"]\n")
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZMI_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "zmi_reconciler", "serve", "--config", str(tmp_path / "zmi.toml"),
         "--data-dir", str(tmp_path / "var"), "--schedules-dir", str(tmp_path / "schedules.d"),
         "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")
            try:
                if httpx.get(f"{base}/api/v1/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.05)
        else:
            pytest.fail("serve did not become ready in 30 s")
        yield tmp_path, base, proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_serve_api_end_to_end(server):
    root, base, proc = server
    token_file = root / "var" / "admin.token"
    assert stat.S_IMODE(token_file.stat().st_mode) == 0o600
    token = token_file.read_text().strip()
    assert token not in (root / "var" / "tokens.json").read_text()
    auth = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=auth, timeout=30) as client:
        assert httpx.get(f"{base}/api/v1/schedules").status_code == 401
        spec = {"name": "Hello", "timing": {"type": "daily", "at": "04:00"},
                "tasks": [{"task": "run_command", "params": {"command": "hello"}}]}
        r = client.post("/api/v1/schedules", json={"id": "hello", "spec": spec})
        assert r.status_code == 201, r.text
        etag = r.headers["etag"]
        assert r.json()["status"]["loaded"] is True and r.json()["status"]["next_fire"] is not None

        r = client.post("/api/v1/schedules/hello/runs", params={"wait": 20})
        assert r.status_code == 200, r.text
        run = r.json()
        assert run["status"] == "succeeded" and run["tasks"][0]["status"] == "succeeded"
        assert any("hello from the runner" in line["message"] for line in run["logs"])

        path = root / "schedules.d" / "hello.yaml"
        path.write_text(path.read_text().replace('"04:00"', '"04:30"'))  # a git pull
        assert client.post("/api/v1/schedules/hello/pause", headers={"If-Match": etag}).status_code == 412
        assert 'at: "04:30"' in path.read_text() and "enabled" not in path.read_text()

    # the journal's index cache is written at INDEX_SAVE_DELAY after start or (here) at stop
    index = root / "var" / "journal" / ".index"
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(20) == 0
    written = {p.name.replace(".idx", ".jsonl") for p in index.glob("*.idx")}
    assert written and written <= {p.name for p in (root / "var" / "journal").glob("*.jsonl")}
