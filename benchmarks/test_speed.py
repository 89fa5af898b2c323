"""Speed targets, measured side by side (pytest-benchmark; CI does not run this folder).

    .venv/bin/python -m pytest benchmarks --benchmark-enable -s

Issue #2 target: a training step of any orthogonal model at n=190, T=1000, B=32 costs at most 1.2x
torch.nn.RNN of the same size on CPU. Issue #5 target: the fused engine at most 0.9x nn.RNN(tanh).
The ratio table printed at the end comes from one interleaved run (suite.speed.measure).
"""

import pytest
import torch

from suite.registry import create_model
from suite.speed import SpeedCase, build, format_table, speed_table, step_fn

CASE = SpeedCase(device="cuda" if torch.cuda.is_available() else "cpu")
ORTHOGONAL = [m for m in ["scornn", "scornn_autograd", "exprnn", "exprnn_cayley", "dtriv",
                          "geotorch_expm", "geotorch_cayley", "torch_cayley", "torch_matrix_exp",
                          "torch_householder"]]
OTHERS = ["eurnn", "eurnn_fft", "rnn", "lstm", "gru"]


@pytest.mark.parametrize("name", ["nn.RNN(tanh)"] + ORTHOGONAL + OTHERS)
def test_train_step(benchmark, name):
    step = step_fn(build(name, CASE), CASE)
    benchmark.group = f"train step n={CASE.n} T={CASE.T} B={CASE.B} {CASE.device}"
    benchmark.pedantic(step, rounds=3, warmup_rounds=1)


def test_ratio_table():
    """Interleaved side-by-side ratios; asserts the issue's targets on CPU."""
    rows = speed_table(ORTHOGONAL + OTHERS, CASE, rounds=3)
    print("\n" + format_table(rows, CASE, "nn.RNN(tanh)"))
    ratios = {r["model"]: r["ratio"] for r in rows}
    assert create_model("scornn", d_in=1, d_out=1).engine == "auto"
    slow = {m: round(ratios[m], 2) for m in ORTHOGONAL if ratios[m] > 1.2}
    assert not slow, f"orthogonal models over 1.2x nn.RNN: {slow}"
