"""Orthogonality error after 200 optimizer steps, per constrained model.

    .venv/bin/python benchmarks/orthogonality.py N

The loop of tests/test_invariants.py at hidden size N; docs/models.md quotes its output for N=24 and 190.
"""

import sys

import torch

from models.base import orthogonality_error
from suite.registry import create_model, create_task, list_models
from suite.seeding import seeded


def main(n: int) -> None:
    task = create_task("copying", T=10, K=3)
    for name in list_models():
        with seeded(0):
            model = create_model(name, d_in=10, d_out=9, output="sequence", hidden=n)
        if not model.constraint:
            continue
        groups = model.parameter_groups()
        opts = [torch.optim.RMSprop(groups["default"], lr=1e-3), torch.optim.RMSprop(groups["orthogonal"], lr=1e-3)]
        for step in range(1, 201):
            x, y = task.train_batch(step, 16, 0)
            loss = task.loss(model(x), y)
            for o in opts:
                o.zero_grad()
            loss.backward()
            for o in opts:
                o.step()
            model.after_step(step)
        print(f"{name:<18} n={n}: {orthogonality_error(model.recurrent_matrix()):.1e}", flush=True)


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 24)
