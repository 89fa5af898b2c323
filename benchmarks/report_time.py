"""Time `suite report` on a store: a cold render into an empty folder, then a re-render of the same folder.

    .venv/bin/python benchmarks/report_time.py [--db results/suite.db] [--target 10]

Each render is the real command in a fresh process (`python -m suite report --db DB --out DIR`), as a
user runs it; the script prints its wall-clock time and the CPU time it and its figure workers used
(user + system). On a shared machine the wall-clock time depends on the load; the CPU time much less.
The re-render draws only the figures whose data changed (none here), so it shows the fixed cost:
imports, reading the store, statistics and the page. Exits 1 when the cold render's wall-clock time is
over ``--target`` seconds.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def render(db: Path, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the command and its children) of one `suite report`."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "suite", "report", "--db", str(db), "--out", str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--db", type=Path, default=Path("results/suite.db"))
    parser.add_argument("--target", type=float, default=10.0, help="seconds the cold render may take")
    args = parser.parse_args()
    if not args.db.is_file():
        print(f"no store at {args.db}: run `suite run` first, or pass --db", file=sys.stderr)
        return 2
    load = os.getloadavg()[0]
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report"
        cold = render(args.db, out)
        warm = render(args.db, out)
    print(f"store {args.db}, {os.cpu_count()} cores, load average {load:.1f}")
    print(f"cold render (empty folder): {cold[0]:.1f} s wall, {cold[1]:.1f} s CPU")
    print(f"re-render (nothing changed): {warm[0]:.1f} s wall, {warm[1]:.1f} s CPU")
    return 0 if cold[0] <= args.target else 1


if __name__ == "__main__":
    sys.exit(main())
