"""Reconcile latency: 1,000 schedule files, one edited; time until the runner holds the new version
(SPEC 10; target p95 <= 500 ms).

Real pieces: the watchfiles-based :class:`~zmi_reconciler.reconcile.Reconciler` watching a folder of 1,000
files and the :class:`~zmi_reconciler.runner.Runner` (loop running). One file at a time is rewritten (its
``at`` time changes); the clock starts just before the write and stops when ``runner.status(id)`` reports the
new file's content hash. Repeated ``--edits`` times on different files.

Usage: ``python bench/reconcile.py [--files 1000] [--edits 30] [--quick]`` (``--quick``: 10 edits).
"""

from __future__ import annotations

import argparse
import hashlib
import math
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zmi_reconciler.config import Settings  # noqa: E402
from zmi_reconciler.journal import Journal  # noqa: E402
from zmi_reconciler.reconcile import Reconciler  # noqa: E402
from zmi_reconciler.runner import Runner  # noqa: E402


def schedule_text(i: int, minute: int) -> str:
    return (f"name: Bench {i}\n"
            f"timing: {{type: daily, at: \"{i % 24:02d}:{minute:02d}\"}}\n"
            "tasks:\n"
            "  - task: alive_check\n")


def percentile(values: list[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--edits", type=int, default=30)
    parser.add_argument("--quick", action="store_true", help="10 edits")
    args = parser.parse_args(argv)
    edits = 10 if args.quick else args.edits
    root = Path(tempfile.mkdtemp(prefix="bench-reconcile-"))
    stop = threading.Event()
    try:
        folder = root / "schedules.d"
        folder.mkdir()
        for i in range(args.files):
            (folder / f"s{i:04d}.yaml").write_text(schedule_text(i, 0))
        settings = Settings(data_dir=root / "var", schedules_dir=folder)
        journal = Journal(settings.journal_path)
        runner = Runner(settings, journal)
        reconciler = Reconciler(settings, runner, journal)
        started = time.perf_counter()
        reconciler.reconcile_all()
        print(f"reconcile: {args.files} files loaded in {time.perf_counter() - started:.2f} s", flush=True)
        runner.start()
        watcher = threading.Thread(target=reconciler.watch, args=(stop,), daemon=True)
        watcher.start()
        time.sleep(1.0)  # let the watcher install itself
        latencies = []
        for k in range(edits):
            sid = f"s{(k * 37) % args.files:04d}"
            data = schedule_text(int(sid[1:]), 1 + k % 58).encode()
            want = hashlib.sha256(data).hexdigest()
            began = time.perf_counter()
            (folder / f"{sid}.yaml").write_bytes(data)
            deadline = began + 10
            while runner.status(sid)["content_hash"] != want:
                if time.perf_counter() > deadline:
                    print(f"  {sid}: not picked up within 10 s", flush=True)
                    break
                time.sleep(0.001)
            latencies.append((time.perf_counter() - began) * 1000)
            time.sleep(0.2)
        print(f"reconcile: {edits} edits of 1 file among {args.files}: p50 {percentile(latencies, 50):.0f} ms, "
              f"p95 {percentile(latencies, 95):.0f} ms, max {max(latencies):.0f} ms "
              f"(target p95 <= 500 ms: {'met' if percentile(latencies, 95) <= 500 else 'NOT met'})", flush=True)
        runner.stop(1)
    finally:
        stop.set()
        shutil.rmtree(root, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
