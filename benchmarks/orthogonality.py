"""Orthogonality error after 200 optimizer steps, per constrained model.

    .venv/bin/python benchmarks/orthogonality.py N

The loop of tests/test_invariants.py (the runner's optimizers and training step, RMSprop at 1e-3 for
every group) at hidden size N; docs/models.md quotes its output for N=24 and 190.
"""

import sys

from suite.config import RunConfig
from suite.contract import orthogonality_error
from suite.registry import MODELS, create_model, create_task
from suite.runner import make_optimizers, train_step
from suite.seeding import seeded

SETTINGS = dict(optimizer="rmsprop", lr=1e-3, orth_optimizer="rmsprop", orth_lr=1e-3)


def main(n: int) -> None:
    task = create_task("copying", T=10, K=3)
    for entry in MODELS.entries():
        if entry.info.constraint not in ("orthogonal", "unitary"):
            continue
        with seeded(0):
            model = create_model(entry.name, d_in=10, d_out=9, output="sequence", hidden=n)
        opts = make_optimizers(model, RunConfig(model=entry.name, task="copying", **SETTINGS))
        for step in range(1, 201):
            x, y = task.train_batch(step, 16, 0)
            train_step(model, opts, task, x, y, step)
        print(f"{entry.name:<18} n={n}: {orthogonality_error(model.recurrent_matrix()):.1e}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 24)
