"""Estimate the main job's duration from CPU time per training step and per evaluation.

    .venv/bin/python benchmarks/main_job.py [--steps 20] [--models scornn,lstm] [--tasks copying]

For every (model, task) of the main job (``suite run`` with no arguments) this times a few training
steps and one evaluation (val + test, orthogonality, spectrum, gradient profile) of the real config,
in CPU seconds of this thread (``time.thread_time``), so the estimate holds on a busy machine too,
then adds them up as the main job runs them: every seed, spread over its worker processes, one thread
each. Wall-clock time on an idle machine is close to this CPU time; on a shared one it is longer.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch

from suite.cli import DEFAULT_SEEDS, _seeds, plan
from suite.memory import keep_freed_memory
from suite.runner import build, evaluate, gradient_profile, make_optimizers, spectrum, train_step


def cost(config, steps: int) -> tuple[float, float]:
    """(CPU seconds per training step, CPU seconds per evaluation)."""
    keep_freed_memory()  # as the runs themselves (suite.memory)
    task, model = build(config)
    opts = make_optimizers(model, config)

    def step(i):
        x, y = task.train_batch(i, config.batch_size, config.seed)
        train_step(model, opts, task, x, y, i, config.clip)

    for i in range(1, 4):  # warm-up
        step(i)
    t0 = time.thread_time()
    for i in range(4, 4 + steps):
        step(i)
    per_step = (time.thread_time() - t0) / steps
    t0 = time.thread_time()
    for split in ("val", "test"):
        evaluate(model, task, split, config.eval_batch_size, "cpu")
    spectrum(model)
    gradient_profile(model, task, "cpu")
    return per_step, time.thread_time() - t0


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=20, help="timed training steps per (model, task)")
    p.add_argument("--models")
    p.add_argument("--tasks")
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--startup", type=float, default=1.5, help="seconds per run outside training (build, data, store)")
    args = p.parse_args()
    torch.set_num_threads(1)  # as each of the main job's two workers on two cores
    ns = argparse.Namespace(models=args.models, tasks=args.tasks, set=None, steps=None, seeds="0", scale="quick")
    seeds = len(_seeds(DEFAULT_SEEDS))
    total = 0.0
    print(f"{'task':<9}{'model':<18}{'steps':>6}{'ms/step':>9}{'s/eval':>8}{'run s':>8}")
    for c in plan(ns):
        per_step, per_eval = cost(c, args.steps)
        evals = math.ceil(c.steps / c.eval_every) + 1
        run = c.steps * per_step + evals * per_eval + args.startup
        total += run * seeds
        print(f"{c.task:<9}{c.model:<18}{c.steps:>6}{per_step * 1e3:>9.1f}{per_eval:>8.2f}{run:>8.1f}")
    print(f"{seeds} seeds: {total:.0f} CPU s of runs; on {args.workers} workers about "
          f"{total / args.workers / 60:.1f} min, plus the report")


if __name__ == "__main__":
    main()
