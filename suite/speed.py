"""Side-by-side speed of a training step (forward + backward) against torch's fused nn.RNN.

Every timing in one table comes from one process, with the candidates interleaved round by round, so a
noisy machine slows them all alike; the ratio to nn.RNN is the number to quote, not the milliseconds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from suite.registry import create_model
from suite.seeding import seeded

# The issues' targets: model rows and the baseline each is measured against.
TARGETS = {
    "cpu": {"case": dict(n=190, T=1000, B=32), "baseline": "nn.RNN(tanh)",
            "models": ["rnn@fused", "scornn@fused", "scornn@reference", "exprnn", "torch_cayley", "eurnn", "lstm"],
            "limit": {"rnn@fused": 0.9, "scornn@fused": 0.9}},
    "gpu": {"case": dict(n=190, T=1000, B=128), "baseline": "nn.RNN(relu)",
            "models": ["rnn@triton", "scornn@triton", "scornn@triton-tf32", "scornn@triton-bf16",
                       "rnn@triton-bf16", "scornn@fused", "scornn@reference", "eurnn", "lstm"],
            "limit": {"scornn@triton": 1.5, "rnn@triton": 1.5}},
}


@dataclass(frozen=True)
class SpeedCase:
    n: int = 190
    T: int = 1000
    B: int = 32
    d_in: int = 10
    d_out: int = 9
    device: str = "cpu"


class TorchRNN(nn.Module):
    """torch.nn.RNN (cuDNN on GPU) with the same readout: the reference point."""

    def __init__(self, case: SpeedCase, nonlinearity: str):
        super().__init__()
        self.rnn = nn.RNN(case.d_in, case.n, nonlinearity=nonlinearity, batch_first=True)
        self.readout = nn.Linear(case.n, case.d_out)

    def forward(self, x):
        return self.readout(self.rnn(x)[0])


def step_fn(model: nn.Module, case: SpeedCase) -> Callable[[], None]:
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(case.B, case.T, case.d_in, generator=gen).to(case.device)
    y = torch.randint(0, case.d_out, (case.B, case.T), generator=gen).to(case.device)

    def step():
        model.zero_grad(set_to_none=True)
        out = model(x)
        nn.functional.cross_entropy(out.reshape(-1, case.d_out), y.reshape(-1)).backward()
        if case.device.startswith("cuda"):
            torch.cuda.synchronize()

    return step


def build(name: str, case: SpeedCase, **options) -> nn.Module:
    """A model by registry name; ``name@engine`` picks the recurrence engine (e.g. scornn@triton-bf16)."""
    name, _, engine = name.partition("@")
    if engine:
        options = {**options, "engine": engine}
    with seeded(0):
        if name.startswith("nn.RNN"):
            model = TorchRNN(case, name.split("(")[1].rstrip(")"))
        else:
            model = create_model(name, d_in=case.d_in, d_out=case.d_out, output="sequence",
                                 hidden=case.n, **options)
    return model.to(case.device)


def measure(candidates: dict[str, Callable[[], None]], rounds: int = 5,
            warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each candidate, interleaving candidates every round."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in candidates}
    for _ in range(rounds):
        for k, fn in candidates.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def speed_table(models: list[str], case: SpeedCase, baseline: str = "nn.RNN(tanh)",
                rounds: int = 5, options: dict[str, dict] | None = None) -> list[dict]:
    """Rows of {name, ms, ratio} with ratio = time / time of ``baseline`` (measured in the same run)."""
    options = options or {}
    names = [baseline] + [m for m in models if m != baseline]
    steps = {m: step_fn(build(m, case, **options.get(m, {})), case) for m in names}
    med = measure(steps, rounds=rounds)
    return [{"model": m, "ms": med[m] * 1e3, "ratio": med[m] / med[baseline]} for m in names]


def format_table(rows: list[dict], case: SpeedCase, baseline: str) -> str:
    head = (f"training step (forward + backward), n={case.n}, T={case.T}, B={case.B}, "
            f"device={case.device}, torch {torch.__version__}, {torch.get_num_threads()} threads\n")
    lines = [f"{'model':<28}{'ms':>10}{'x ' + baseline:>22}"]
    lines += [f"{r['model']:<28}{r['ms']:>10.1f}{r['ratio']:>22.2f}" for r in rows]
    return head + "\n".join(lines)
