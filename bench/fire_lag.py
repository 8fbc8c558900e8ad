"""Fire lag: 500 schedules firing every second (SPEC 10; target p99 <= 50 ms, aim <= 5 ms).

Lag = ``run_started.ts - scheduled_for`` from the journal (the due time on the schedule's grid to the run's
first journal line), for our runner with the real journal, worker pool and a trivial task. For comparison the
same 500 every-second jobs in a plain ``schedule`` loop (``run_pending()`` + ``sleep(1)``, trivial jobs that
record their start time), measured against the true grid (whole seconds): each grid second of the window is
matched with the job's first start in ``[s, s + 1)``; a second without one is a lost run.

The journal lives on tmpfs (``/dev/shm``) when available, so the figures show the scheduler rather than the
disk's fsync latency (``run_finished`` is fsynced); ``--journal-dir`` puts it elsewhere.

Usage: ``python bench/fire_lag.py [--schedules 500] [--seconds 60] [--quick]`` (``--quick``: 10 s).
"""

from __future__ import annotations

import argparse
import json
import math
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from zmi_reconciler.config import Settings  # noqa: E402
from zmi_reconciler.journal import Journal  # noqa: E402
from zmi_reconciler.runner import Runner  # noqa: E402
from zmi_reconciler.schema import Schedule  # noqa: E402
from zmi_reconciler.tasks.base import TaskSpec  # noqa: E402


VERBOSE = False


def percentile(values: list[float], p: float) -> float:
    if not values:
        return math.nan
    ordered = sorted(values)
    k = max(0, min(len(ordered) - 1, math.ceil(p / 100 * len(ordered)) - 1))
    return ordered[k]


def figures(name: str, lags_ms: list[float], expected: int, lost: int) -> str:
    return (f"{name:<28} runs {len(lags_ms):>6}/{expected:<6} lost {lost:>5}   "
            f"p50 {percentile(lags_ms, 50):8.2f} ms   p99 {percentile(lags_ms, 99):8.2f} ms   "
            f"max {max(lags_ms, default=math.nan):8.2f} ms")


def _parse(ts: str) -> float:
    return datetime.fromisoformat(ts.replace("Z", "+00:00")).timestamp()


def bench_runner(n: int, seconds: float, journal_root: Path) -> tuple[list[float], int, int, dict[str, int]]:
    journal_dir = Path(tempfile.mkdtemp(prefix="fire-lag-", dir=journal_root))
    try:
        settings = Settings(data_dir=journal_dir, worker_threads=8)
        journal = Journal(journal_dir / "journal")
        registry = {"noop": TaskSpec(name="noop", zmi_name="noop", description="does nothing",
                                     run=lambda ctx, params: {})}
        runner = Runner(settings, journal, registry=registry)
        sched = Schedule.model_validate({"name": "lag", "timing": {"type": "seconds", "every": 1},
                                         "tasks": [{"task": "alive_check"}]})
        sched.tasks = [type("Entry", (), {"task": "noop", "params": None, "timeout": 60, "on_error": "stop",
                                          "enabled": True})()]
        for i in range(n):
            runner.apply(f"s{i:04d}", sched, "h")
        runner.start()
        begin = time.time()
        window_start = math.floor(begin) + 1
        time.sleep(seconds + 0.5)
        runner.stop(10)
        window_end = window_start + int(seconds)
        lags, counts = [], {"run_started": 0, "run_skipped": 0, "run_missed": 0}
        worst: dict[float, float] = {}
        skipped_at: dict[float, int] = {}
        for line in (journal_dir / "journal").glob("*.jsonl"):
            for raw in line.read_bytes().splitlines():
                e = json.loads(raw)
                if e["event"] not in counts:
                    continue
                slot = _parse(e["scheduled_for"])
                if not window_start <= slot < window_end:
                    continue
                counts[e["event"]] += 1
                if e["event"] == "run_skipped":
                    skipped_at[slot] = skipped_at.get(slot, 0) + 1
                if e["event"] == "run_started":
                    lags.append((_parse(e["ts"]) - slot) * 1000)
                    worst[slot] = max(worst.get(slot, 0.0), lags[-1])
        if VERBOSE:
            print("  worst lag per second (ms):", " ".join(f"{worst[k]:.0f}" for k in sorted(worst)))
            if skipped_at:
                print("  skipped (overlap) per second:",
                      " ".join(f"+{k - window_start:.0f}s:{v}" for k, v in sorted(skipped_at.items())))
        expected = n * int(seconds)
        return lags, expected, expected - counts["run_started"], counts
    finally:
        shutil.rmtree(journal_dir, ignore_errors=True)


def bench_plain_schedule(n: int, seconds: float) -> tuple[list[float], int, int]:
    import schedule

    sched = schedule.Scheduler()
    starts: list[list[float]] = [[] for _ in range(n)]
    for i in range(n):
        sched.every(1).seconds.do(lambda i=i: starts[i].append(time.time()))
    stop_at = time.time() + seconds + 1.5
    begin = time.time()
    while time.time() < stop_at:
        sched.run_pending()
        time.sleep(1)
    window_start = math.floor(begin) + 1
    window_end = window_start + int(seconds)
    lags, lost = [], 0
    for times in starts:
        for s in range(window_start, window_end):
            hit = next((t for t in times if s <= t < s + 1), None)
            if hit is None:
                lost += 1
            else:
                lags.append((hit - s) * 1000)
    return lags, n * int(seconds), lost


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--schedules", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=60)
    parser.add_argument("--quick", action="store_true", help="10 seconds")
    parser.add_argument("--journal-dir", type=Path, default=None)
    parser.add_argument("--skip-plain", action="store_true", help="only our runner")
    parser.add_argument("--verbose", action="store_true", help="print the worst lag of every second")
    args = parser.parse_args(argv)
    global VERBOSE
    VERBOSE = args.verbose
    seconds = 10 if args.quick else args.seconds
    root = args.journal_dir or (Path("/dev/shm") if Path("/dev/shm").is_dir() else Path(tempfile.gettempdir()))
    print(f"fire lag: {args.schedules} schedules every 1 s for {seconds:g} s (journal on {root})", flush=True)
    lags, expected, lost, counts = bench_runner(args.schedules, seconds, root)
    print(figures("zmi-reconciler runner", lags, expected, lost), flush=True)
    print(f"{'':<28} (skipped {counts['run_skipped']}, missed {counts['run_missed']})", flush=True)
    if not args.skip_plain:
        plain, expected, lost = bench_plain_schedule(args.schedules, seconds)
        print(figures("plain schedule + sleep(1)", plain, expected, lost), flush=True)
    p99 = percentile(lags, 99)
    print(f"target p99 <= 50 ms (aim 5 ms): {'met' if p99 <= 50 else 'NOT met'} ({p99:.2f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
