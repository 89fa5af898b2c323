"""Scheduling overhead: one sweep of tiny runs through the local process pool and through Ray, side by side.

    .venv/bin/python benchmarks/executors.py [RUNS] [ROUNDS]      # default 40 runs, 3 rounds

Both executors get two parallel slots with one torch thread each (workers=2; a local Ray with
num_cpus=2, one CPU per run), and the same RUNS runs (vanilla RNN on copying T=8, hidden 12, 20 steps,
an evaluation and a checkpoint every 10): each run's own work is small, so the time is mostly what
an executor adds. Rounds alternate which executor goes first, each into a fresh store; Ray is started
once before the rounds (its start-up is printed apart). docs/performance.md quotes the output.
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
    configs = sweep(n)
    t0 = time.perf_counter()
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    print(f"ray.init(num_cpus=2): {time.perf_counter() - t0:.2f} s")
    executors = {"local pool": Executor(workers=2, threads=1), "ray": Executor("ray", cpus_per_run=1)}
    times: dict[str, list[float]] = {k: [] for k in executors}
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(rounds):
            order = list(executors) if r % 2 == 0 else list(reversed(executors))
            for name in order:
                times[name].append(timed(configs, str(Path(tmp) / f"{name}-{r}" / "s.db"), executors[name]))
            print(f"round {r + 1}: " + ", ".join(f"{k} {times[k][-1]:.2f} s" for k in executors), flush=True)
    ray.shutdown()
    local, remote = statistics.median(times["local pool"]), statistics.median(times["ray"])
    print(f"median of {rounds} rounds, {n} runs, 2 slots: local pool {local:.2f} s, ray {remote:.2f} s, "
          f"ray / local = {remote / local:.2f}")
    print(f"per run: local pool {2 * local / n * 1e3:.0f} ms, ray {2 * remote / n * 1e3:.0f} ms of a slot; "
          f"ray adds {2 * (remote - local) / n * 1e3:.0f} ms per run")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 40, int(sys.argv[2]) if len(sys.argv) > 2 else 3)
