"""uRNN: the restricted unitary RNN (Arjovsky, Shah & Bengio, ICML 2016, arXiv:1511.06464v4).

    h_t = modReLU(W h_{t-1} + V x_t),   W = D3 R2 F^-1 D2 Pi R1 F D1        (section 3)

D_k = diag(exp(i w_k)), R_k = I - 2 v_k v_k^* / ||v_k||^2 with v_k in C^n (a complex reflection),
Pi a fixed random permutation, F the unitary DFT (``torch.fft`` with ``norm="ortho"``). Every factor
is unitary, so W is unitary for any parameter values; W is materialized once per forward pass by
applying the factors to the identity (O(n^2 log n)), never per time step.

Column form: D1 acts first on h_{t-1}. The permutation is ``numpy.random.RandomState(1234)
.permutation(n)``, the seed of the authors' code. Inits (section 4.3): V and the readout Glorot
uniform, modReLU bias 0, reflection vectors U[-1, 1] (real and imaginary parts), phases U[-pi, pi],
learned h_0 ~ U[+-sqrt(3 / (2n))] (so E||h_0||^2 = 1). Parameters: 7n (three phase vectors, two
complex reflections) + 2n d_in + n + 2n + 2n d_out + d_out; copying n=128: 6,153.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from suite import papers
from suite.errors import check_range
from suite.models.engine import RecurrentNet, Transition
from suite.registry import Preset, Published, SpeedRow, register_model

PRESETS = (
    Preset("quick", "*", {"orth_lr": 1e-3}, f"{papers.URNN} (one RMSprop rate for every weight, section 5)"),
    # RMSprop (decay 0.9) at 1e-3 for every weight, no clipping (section 5)
    Preset("paper", "*", {"optimizer": "rmsprop", "lr": 1e-3, "orth_optimizer": "rmsprop", "orth_lr": 1e-3,
                          "rmsprop_alpha": 0.9}, f"{papers.URNN}, section 5"),
    Preset("paper", "copying", {"hidden": 128}, f"{papers.URNN}, section 5.1 (n=128)"),
    Preset("paper", "adding|*mnist", {"hidden": 512}, f"{papers.URNN}, sections 5.2-5.3 (n=512)"),
)
_TABLE = f"{papers.URNN}, section 5.3 (read in the December 2015 draft; the final text unverified)"
PUBLISHED = (Published("mnist", "uRNN", 512, "accuracy", 0.951, _TABLE, verified=False),
             Published("pmnist", "uRNN", 512, "accuracy", 0.914, _TABLE, verified=False))
PERMUTATION_SEED = 1234


def reflect(X: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """(I - 2 v v^* / ||v||^2) X for the columns of X."""
    return X - (2 / v.abs().square().sum()) * v[:, None] * (v.conj() @ X)[None, :]


class RestrictedUnitary(Transition):
    constraint = "unitary"
    is_complex = True

    def __init__(self, n: int):
        super().__init__(n)
        self.w = nn.Parameter(torch.empty(3, n).uniform_(-math.pi, math.pi))  # D1, D2, D3 phases
        self.v = nn.Parameter(torch.empty(2, 2, n).uniform_(-1, 1))  # R1, R2: (Re, Im) each
        self.register_buffer("perm", torch.from_numpy(np.random.RandomState(PERMUTATION_SEED).permutation(n)),
                             persistent=False)

    def matrix(self) -> torch.Tensor:
        dtype = torch.complex128 if self.w.dtype == torch.float64 else torch.complex64
        X = torch.eye(self.n, dtype=dtype, device=self.w.device)
        D = torch.polar(torch.ones_like(self.w), self.w).to(dtype)
        v = torch.complex(self.v[:, 0], self.v[:, 1]).to(dtype)
        X = D[0][:, None] * X
        X = torch.fft.fft(X, dim=0, norm="ortho")
        X = reflect(X, v[0])
        X = X[self.perm]
        X = D[1][:, None] * X
        X = torch.fft.ifft(X, dim=0, norm="ortho")
        X = reflect(X, v[1])
        return D[2][:, None] * X


def urnn_params(n: int, d_in: int, d_out: int) -> int:
    """The paper's count: 7n + 2n d_in (complex V) + n (bias) + 2n (h_0) + 2n d_out + d_out."""
    return 7 * n + 2 * n * d_in + n + 2 * n + 2 * n * d_out + d_out


@register_model(mission=False, family="uRNN", published_as="uRNN", constraint="unitary", paper=papers.URNN,
                params=urnn_params, cost=2.0, presets=PRESETS, published=PUBLISHED,
                speed=(SpeedRow("cpu"), SpeedRow("gpu")))
def urnn(d_in: int, d_out: int, output: str = "last", hidden: int = 128, engine: str = "auto") -> RecurrentNet:
    """uRNN, W = D3 R2 F^-1 D2 Pi R1 F D1 (restricted unitary), complex modReLU, learned h_0."""
    check_range("hidden", hidden, low=1, where="urnn")
    net = RecurrentNet(RestrictedUnitary(hidden), d_in, d_out, output=output, activation="modrelu",
                       engine=engine, h0=True)
    uniform_inits(net)
    return net


def uniform_inits(net: RecurrentNet) -> None:
    """Section 4.3: Glorot-uniform V and readout, zero biases, h_0 ~ U[+-sqrt(3/(2n))]."""
    nn.init.xavier_uniform_(net.input.weight)
    nn.init.xavier_uniform_(net.readout.weight)
    nn.init.zeros_(net.readout.bias)
    nn.init.zeros_(net.act.bias)
    bound = math.sqrt(3 / (2 * net.hidden))
    nn.init.uniform_(net.h0, -bound, bound)
