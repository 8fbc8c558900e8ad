"""Benchmark: ``zmi-reconciler validate`` on 1,000 schedule files (SPEC section 10: <= 2 s wall, process start
included).

Generates N varied, valid schedule files (every timing type, several tasks each, exclusions, zones, times
that fall into DST gaps so the lint walk runs) into a temp dir, then times the whole command as CI runs it:
a fresh process each time. Prints the best and median wall time of the repeats and the target.

Usage: ``python bench/validate.py [--files N] [--repeat R] [--quick]``
"""

from __future__ import annotations

import argparse
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET_SECONDS = 2.0
ZONES = ["Europe/Berlin", "Europe/Vienna", "Europe/Zurich", "America/New_York", "UTC", None]
TASKS = [
    "  - task: backup_database\n    params: {keep: %d, naming: timestamp}\n    timeout: 30m\n",
    "  - task: calculate_days\n",
    "  - task: calculate_months\n    params: {month: previous, through: month_end}\n",
    "  - task: send_notifications\n    on_error: continue\n",
    "  - task: export_data\n    params: {format: csv, month: previous}\n",
    "  - task: alive_check\n    timeout: 1m\n",
    "  - task: gdpr_retention\n    params: {left_years: %d}\n",
]


def timing_block(rng: random.Random, i: int) -> str:
    kind = i % 7
    hhmm = f'"{rng.randrange(24):02d}:{rng.randrange(60):02d}"'
    if kind == 0:
        return f"  type: minutes\n  every: {rng.choice([1, 2, 5, 10, 15, 30])}\n"
    if kind == 1:
        return f"  type: seconds\n  every: {rng.randrange(1, 3600)}\n"
    if kind == 2:
        return f"  type: hours\n  every: {rng.choice([1, 2, 3, 4, 6, 8, 12])}\n  minute: {rng.randrange(60)}\n"
    if kind == 3:
        return f"  type: daily\n  at: [{hhmm}, \"{rng.randrange(24):02d}:{rng.randrange(60):02d}\"]\n"
    if kind == 4:
        days = ", ".join(sorted(rng.sample(["mon", "tue", "wed", "thu", "fri", "sat", "sun"], rng.randrange(1, 6))))
        return f"  type: weekly\n  days: [{days}]\n  at: {hhmm}\n"
    if kind == 5:
        return f"  type: monthly\n  day: {rng.choice([1, 2, 15, 28, 'last'])}\n  at: {hhmm}\n"
    return "  type: manual\n"


def schedule_text(rng: random.Random, i: int) -> str:
    zone = rng.choice(ZONES)
    lines = ["# yaml-language-server: $schema=../openapi/schedule.schema.json\n",
             f"name: Schedule {i:04d}\n",
             f"description: generated schedule number {i} for the validate benchmark\n"]
    if zone:
        lines.append(f"timezone: {zone}\n")
    lines.append("timing:\n" + timing_block(rng, i))
    if rng.random() < 0.3:
        lines.append('exclude:\n  - {from: "04:55", to: "05:15"}\n')
    lines.append(f"overlap: {rng.choice(['skip', 'queue'])}\ncatch_up: {rng.choice(['0', '10m', '12h', 3600])}\n")
    lines.append("tasks:\n")
    for template in rng.sample(TASKS, rng.randrange(1, 5)):
        lines.append(template % rng.randrange(1, 30) if "%d" in template else template)
    return "".join(lines)


def generate(folder: Path, count: int, seed: int = 7) -> None:
    rng = random.Random(seed)
    for i in range(count):
        (folder / f"schedule-{i:04d}.yaml").write_text(schedule_text(rng, i), encoding="utf-8")


def command() -> list[str]:
    script = Path(sys.executable).with_name("zmi-reconciler")
    return [str(script)] if script.exists() else [sys.executable, "-m", "zmi_reconciler"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--files", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="3 repeats")
    args, _ = parser.parse_known_args()
    repeat = 3 if args.quick else args.repeat
    folder = Path(tempfile.mkdtemp(prefix="zmi-bench-validate-"))
    try:
        generate(folder, args.files)
        argv = command() + ["validate", str(folder), "--format", "json"]
        walls, cpus = [], []
        for _ in range(repeat):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            proc = subprocess.run(argv, capture_output=True, text=True)
            walls.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpus.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
            if proc.returncode not in (0, 1):
                print(f"validate failed with exit {proc.returncode}: {proc.stderr.strip()}", file=sys.stderr)
                return 1
        findings = proc.stdout.count('"code"')
        errors = proc.stdout.count('"severity": "error"')
        print(f"validate {args.files} files ({findings} findings, {errors} errors), {repeat} runs, process start "
              f"included: best {min(walls):.2f} s, median {statistics.median(walls):.2f} s "
              f"(target <= {TARGET_SECONDS:.1f} s: {'met' if statistics.median(walls) <= TARGET_SECONDS else 'MISSED'}); "
              f"CPU time median {statistics.median(cpus):.2f} s (wall exceeds it only when the machine is busy)")
        return 0 if errors == 0 else 1
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
