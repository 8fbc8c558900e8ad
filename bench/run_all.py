"""Run every benchmark in bench/ in turn and print its figures (``make bench``).

Each benchmark is a standalone script that prints its own figures and targets; they are not asserted in
tests (DEVELOPERS guide: speed targets live here, not in timed tests). Extra arguments are passed to every
script, e.g. ``python bench/run_all.py --quick`` where the scripts support it.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    failures = 0
    for script in sorted(HERE.glob("*.py")):
        if script.name == Path(__file__).name or script.name.startswith("_"):
            continue
        print(f"=== {script.name}", flush=True)
        started = time.perf_counter()
        code = subprocess.call([sys.executable, str(script), *sys.argv[1:]])
        print(f"=== {script.name}: exit {code} in {time.perf_counter() - started:.1f} s\n", flush=True)
        failures += code != 0
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
