"""Drift of the full-capacity uRNN's W (complex64) off U(n) over Cayley steps, with and without the
float64 master copy its optimizer keeps.

    python benchmarks/fcurnn_drift.py

n=128 (the copying setting), the Cayley step at lr 1e-3 on random gradients; prints max|W^H W - I|
after 100, 1,000 and 5,000 steps. "without" is the same step computed from W as stored (complex64),
rounded back to complex64 after every step.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from suite.contract import orthogonality_error
from suite.models.fcurnn import CayleyUnitary
from suite.registry import create_model
from suite.seeding import seeded

torch.set_num_threads(1)


@torch.no_grad()
def stored_step(W: torch.Tensor, lr: float) -> None:
    """The Cayley step from W as stored, in float64, rounded back into W."""
    W64, G64 = W.to(torch.complex128), W.grad.to(torch.complex128)
    A = G64 @ W64.mH - W64 @ G64.mH
    eye = torch.eye(W.shape[-1], dtype=torch.complex128)
    W.copy_(torch.linalg.solve(eye + lr / 2 * A, W64 - lr / 2 * (A @ W64)))


for master in (False, True):
    with seeded(0):
        W = create_model("fcurnn", d_in=10, d_out=9, hidden=128).transition.weight
    opt = CayleyUnitary([W], lr=1e-3)
    g = torch.Generator().manual_seed(1)
    seen = {0: orthogonality_error(W)}
    for step in range(1, 5001):
        W.grad = torch.randn(W.shape, dtype=W.dtype, generator=g)
        if master:
            opt.step()
        else:
            stored_step(W, 1e-3)
        if step in (100, 1000, 5000):
            seen[step] = orthogonality_error(W)
    print(f"{'with' if master else 'without'} the float64 master copy: "
          + ", ".join(f"{k} steps {v:.1e}" for k, v in seen.items()))
