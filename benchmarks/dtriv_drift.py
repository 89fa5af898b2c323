"""Drift of dtriv's base from O(n) as base changes accumulate, with and without the projection.

    python benchmarks/dtriv_drift.py

float32, n=170, K=1 (a base change after every step), A moved by 1e-3 N(0, 1) per entry between base
changes; prints max|B^T B - I| after 300 and 2000 base changes.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suite.contract import orthogonality_error
from suite.registry import create_model
from suite.seeding import seeded

torch.set_num_threads(1)
for project_every in (None, 30):
    g = torch.Generator().manual_seed(0)
    with seeded(0):
        model = create_model("dtriv", d_in=1, d_out=10, hidden=170, K=1, project_every=project_every)
    t = model.transition
    seen = {}
    for step in range(1, 2001):
        with torch.no_grad():
            t.a.add_(1e-3 * torch.randn(t.a.shape, generator=g))
        model.after_step(step)
        if step in (300, 2000):
            seen[step] = orthogonality_error(t.base)
    print(f"project_every={project_every}: " + ", ".join(f"{k} base changes {v:.1e}" for k, v in seen.items()))
