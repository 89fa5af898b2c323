"""Scheduling overhead: one sweep of tiny runs through the local process pool and through Ray, side by side.

    .venv/bin/python benchmarks/executors.py [RUNS] [ROUNDS]      # default 40 runs, 3 rounds

Both executors get two parallel slots with one torch thread each (workers=2; a local Ray with
num_cpus=2, one CPU per run), and the same RUNS runs (vanilla RNN on copying T=8, hidden 12, 20 steps,
an evaluation and a checkpoint every 10): each run's own work is small, so the time is mostly what
an executor adds. Each executor runs the sweep at two sizes (RUNS and RUNS/5), so that the per-run
cost (the slope) and the fixed cost (starting processes) come apart. Rounds alternate which executor
goes first, each call into a fresh store; Ray is started once before the rounds (its start-up is
printed apart). docs/performance.md quotes the output.
"""

import logging
import statistics
import sys
import tempfile
import time
from pathlib import Path

import ray

from suite.config import RunConfig
from suite.executors import Executor, run_all


def sweep(n: int) -> list[RunConfig]:
    return [RunConfig(model="rnn", task="copying", seed=s, steps=20, batch_size=8, hidden=12, eval_every=10,
                      eval_batch_size=64, task_options=(("K", 3), ("T", 8), ("eval_size", 64)))
            for s in range(n)]


def timed(configs, db, executor) -> float:
    t0 = time.perf_counter()
    outcomes = run_all(configs, db, "cpu", executor=executor)
    elapsed = time.perf_counter() - t0
    assert [o.status for o in outcomes] == ["finished"] * len(configs), outcomes
    return elapsed


def main(n: int, rounds: int) -> None:
    small = max(2, n // 5)
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    print(f"ray.init(num_cpus=2): {time.perf_counter() - t0:.2f} s")
    executors = {"local pool": Executor(workers=2, threads=1), "ray": Executor("ray", cpus_per_run=1)}
    times = {(k, m): [] for k in executors for m in (small, n)}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            order = list(executors) if r % 2 == 0 else list(reversed(executors))
            for name in order:
                for m in (n, small):
                    db = str(Path(tmp) / f"{name}-{m}-{r}" / "s.db")
                    times[name, m].append(timed(sweep(m), db, executors[name]))
            print(f"round {r + 1}: " + ", ".join(f"{k} x{m} {v[-1]:.2f} s" for (k, m), v in times.items()),
                  flush=True)
    ray.shutdown()
    med = {key: statistics.median(v) for key, v in times.items()}
    print(f"median of {rounds} rounds, 2 slots; the first round's Ray starts its worker processes, the pool "
          "starts its processes in every call")
    for name in executors:
        per_run = 2 * (med[name, n] - med[name, small]) / (n - small)  # slot-seconds per extra run
        fixed = med[name, n] - per_run * n / 2
        print(f"  {name:<10} {n} runs {med[name, n]:6.2f} s, {small} runs {med[name, small]:6.2f} s: "
              f"{per_run * 1e3:4.0f} ms of a slot per run, {fixed:5.2f} s fixed")
    print(f"ray / local pool, {n} runs: {med['ray', n] / med['local pool', n]:.2f}; per run: "
          f"{(med['ray', n] - med['ray', small]) / (med['local pool', n] - med['local pool', small]):.2f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
