"""Issue 7's end-to-end test: ``zmi-reconciler serve`` as a subprocess on a temporary data dir, master data
for the PINs of the real-world export ``../shared/data/attlog-sample.dat``, that file in the inbox; the API
triggers the import and then ``calculate_days`` (task subsets of one manual schedule) and serves the daily
values; MISSING_GO sits exactly on the days with a lone come; the journal holds both runs.

Expected numbers come from the independent parser of the integration test (debounce 60 s, directions
alternate per employee and day, an odd number of kept taps on a past day ends in a lone come).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import httpx
import pytest

from test_integration_import_calculate import SAMPLE, expected_from_file

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(not SAMPLE.exists(), reason=f"sample terminal export {SAMPLE} is absent "
                                                   "(the repo's sibling 'shared' data dir)"),
]

SCHEDULE = """\
# yaml-language-server: $schema=../openapi/schedule.schema.json
name: Import and calculate
timing: {type: manual}
tasks:
  - task: import_bookings
    params: {pattern: "*.dat"}
  - task: calculate_days
"""


def _masterdata(pins: list[str]) -> str:
    lines = ["day_plans:", "  - code: STD", "    name: Standard", '    target: "8:00"', "    breaks:",
             '      - {kind: minimum, after: "6:00", minutes: 30}',
             '      - {kind: minimum, after: "9:00", minutes: 15}',
             "week_plans:", "  - code: W5", "    name: Mon-Fri",
             "    days: {mon: STD, tue: STD, wed: STD, thu: STD, fri: STD}", "employees:"]
    for pin in pins:
        lines += [f"  - personnel_number: '{pin}'", f"    pin: '{pin}'", "    first_name: Emp",
                  f"    last_name: No{pin}", f"    email: e{pin}@example.org", "    entry_date: 2026-01-01",
                  "    week_plan: W5"]
    return "\n".join(lines) + "\n"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(root: Path, port: int) -> subprocess.Popen:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ZMI_")}
    return subprocess.Popen(
        [sys.executable, "-m", "zmi_reconciler", "serve", "--config", str(root / "zmi.toml"),
         "--data-dir", str(root / "var"), "--schedules-dir", str(root / "schedules.d"), "--port", str(port)],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_serve_imports_the_sample_and_calculates_its_days(tmp_path):
    kept = expected_from_file(SAMPLE)
    pins = sorted({pin for pin, _ in kept})
    today = datetime.now(ZoneInfo("Europe/Berlin")).date()
    lone_come_days = {k for k, n in kept.items() if n % 2 == 1 and k[1] < today}
    assert lone_come_days and max(d for _, d in kept) < today  # the sample lies in the past: every day final

    (tmp_path / "schedules.d").mkdir()
    (tmp_path / "schedules.d" / "import-and-calculate.yaml").write_text(SCHEDULE)
    (tmp_path / "zmi.toml").write_text("shutdown_grace_seconds = 2\n")
    var = tmp_path / "var"
    (var / "inbox").mkdir(parents=True)
    (var / "masterdata.yaml").write_text(_masterdata(pins))
    dropped = var / "inbox" / "attlog-sample.dat"
    shutil.copyfile(SAMPLE, dropped)
    os.utime(dropped, (time.time() - 60, time.time() - 60))  # the terminal finished writing a minute ago

    port = _free_port()
    base = f"http://127.0.0.1:{port}/api/v1"
    proc = _start(tmp_path, port)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, proc.stderr.read().decode(errors="replace")
            try:
                if httpx.get(f"{base}/readyz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "serve did not become ready in 60 s"
            time.sleep(0.1)

        # a second server on the same data dir would fire every schedule twice: it refuses to start
        second = _start(tmp_path, _free_port())
        assert second.wait(60) == 2
        assert "holds the store" in second.stderr.read().decode(errors="replace")

        auth = {"Authorization": f"Bearer {(var / 'admin.token').read_text().strip()}"}
        with httpx.Client(base_url=base, headers=auth, timeout=150) as api:
            employees = api.get("/employees").json()
            assert sorted(e["personnel_number"] for e in employees["items"]) == pins

            imported = api.post("/schedules/import-and-calculate/runs?wait=120", json={"tasks": [0]})
            assert imported.status_code == 200, imported.text
            run = imported.json()
            assert run["status"] == "succeeded", run
            result = run["tasks"][0]["result"]
            assert result["files"] == 1 and result["bookings_unassigned"] == 0
            assert result["bookings_new"] == sum(kept.values())
            assert result["bookings_collapsed"] == len(SAMPLE.read_text().splitlines()) - sum(kept.values())
            assert [(t["index"], t["task"]) for t in run["tasks"]] == [(0, "import_bookings")]  # the subset only
            assert (var / "inbox" / "processed" / "attlog-sample.dat").exists() and not dropped.exists()

            calculated = api.post("/schedules/import-and-calculate/runs?wait=120", json={"tasks": [1]}).json()
            assert calculated["status"] == "succeeded", calculated
            assert [(t["index"], t["task"]) for t in calculated["tasks"]] == [(1, "calculate_days")]
            assert calculated["tasks"][0]["result"]["error_days"] == len(lone_come_days)

            first = min(d for _, d in kept)
            last = max(d for _, d in kept)
            seen_errors = set()
            for pin in pins:
                r = api.get(f"/employees/{pin}/daily-values", params={"from": first.isoformat(),
                                                                      "to": last.isoformat()})
                assert r.status_code == 200, r.text
                by_day = {date.fromisoformat(v["date"]): v for v in r.json()["items"]}
                for (p, day), taps in kept.items():
                    if p != pin:
                        continue
                    value = by_day[day]
                    assert len(value["bookings"]) == taps, (pin, day)
                    assert value["provisional"] is False
                    if "MISSING_GO" in value["errors"]:
                        seen_errors.add((pin, day))
            assert seen_errors == lone_come_days

            one_day = sorted(d for _, d in lone_come_days)[0]
            listed = api.get("/daily-values", params={"date": one_day.isoformat(), "errors": "true"}).json()
            assert sorted(v["personnel_number"] for v in listed["items"]) == sorted(
                p for p, d in lone_come_days if d == one_day)

        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)

    events = [json.loads(line) for f in sorted((var / "journal").glob("*.jsonl"))
              for line in f.read_text().splitlines() if line.strip()]
    runs = [e for e in events if e["event"] == "run_finished" and e["schedule"] == "import-and-calculate"]
    assert [e["status"] for e in runs] == ["succeeded", "succeeded"]
    finished = [e for e in events if e["event"] == "task_finished" and e["status"] == "succeeded"]
    assert [(e["index"], e["task"]) for e in finished] == [(0, "import_bookings"), (1, "calculate_days")]
    assert finished[0]["result"]["bookings_new"] == sum(kept.values())
    assert not [e for e in events if e["event"] == "run_interrupted"]
