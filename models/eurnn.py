"""EURNN-style unitary RNN (Jing et al., ICML 2017, arXiv:1612.05231).

W = diag(exp(i omega)) L_m ... L_1, each L a layer of 2x2 unitary rotations on disjoint coordinate
pairs (p, q):  [x_p, x_q] <- [e^{i phi} (cos t x_p - sin t x_q),  sin t x_p + cos t x_q].
"tunable" style: m = capacity layers, alternating pairs (0,1),(2,3),... and (1,2),(3,4),...
"fft" style: ceil(log2 n) layers, layer k pairing i with i + 2^k (butterfly); any n is allowed.

The hidden state is complex with complex modReLU. The unitary matrix is materialized once per batch
by applying the layers to the identity (O(m n^2)), never applied layer by layer per time step, which
is exact to float rounding and several times faster than per-step rotation layers.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from suite import papers
from suite.errors import check_choice, check_range
from suite.models.engine import RecurrentNet, Transition
from suite.papers import QUICK_TUNED
from suite.registry import Preset, SpeedRow, register_model


def layer_pairs(n: int, style: str, capacity: int) -> list[tuple[list[int], list[int]]]:
    """(p indices, q indices) of each rotation layer."""
    layers = []
    if style == "tunable":
        for layer in range(capacity):
            p = list(range(layer % 2, n - 1, 2))
            layers.append((p, [i + 1 for i in p]))
    else:
        for k in range(max(1, math.ceil(math.log2(n)))):
            s = 2**k
            p = [i for i in range(n) if (i // s) % 2 == 0 and i + s < n]
            layers.append((p, [i + s for i in p]))
    return [(p, q) for p, q in layers if p]


class EUNN(Transition):
    constraint = "unitary"
    is_complex = True

    def __init__(self, n: int, style: str = "tunable", capacity: int = 4):
        super().__init__(n)
        check_choice("style", style, ("tunable", "fft"))
        check_range("capacity", capacity, low=1, where="eurnn")
        self.style, self.capacity = style, capacity
        pairs = layer_pairs(n, style, capacity)
        self.theta = nn.ParameterList()
        self.phi = nn.ParameterList()
        for i, (p, q) in enumerate(pairs):
            self.register_buffer(f"p{i}", torch.tensor(p), persistent=False)
            self.register_buffer(f"q{i}", torch.tensor(q), persistent=False)
            self.theta.append(nn.Parameter(torch.empty(len(p)).uniform_(-math.pi, math.pi)))
            self.phi.append(nn.Parameter(torch.empty(len(p)).uniform_(-math.pi, math.pi)))
        self.omega = nn.Parameter(torch.empty(n).uniform_(-math.pi, math.pi))

    def matrix(self) -> torch.Tensor:
        dtype = torch.complex128 if self.omega.dtype == torch.float64 else torch.complex64
        X = torch.eye(self.n, dtype=dtype, device=self.omega.device)
        for i, (theta, phi) in enumerate(zip(self.theta, self.phi)):
            p, q = getattr(self, f"p{i}"), getattr(self, f"q{i}")
            c, s = torch.cos(theta)[:, None], torch.sin(theta)[:, None]
            e = torch.polar(torch.ones_like(phi), phi)[:, None]
            Xp, Xq = X[p], X[q]
            X = X.index_copy(0, p, e * (c * Xp - s * Xq)).index_copy(0, q, s * Xp + c * Xq)
        return torch.polar(torch.ones_like(self.omega), self.omega)[:, None] * X

    def extra_repr(self) -> str:
        return f"n={self.n}, style={self.style}, layers={len(self.theta)}"


PAPER = f"{papers.EURNN}, section 4.1"
PRESETS = (
    Preset("quick", "*", {"orth_lr": 1e-3}, "EURNN trains all weights at one rate"),
    # the quick scale's search ran eurnn and eurnn_fft on copying: every point of {1e-3, 1e-2} x
    # {1e-5, 1e-3} recalled 99-100%; they take the rates chosen for copying (README: "The main job")
    Preset("quick", "copying", {"orth_lr": 1e-5}, QUICK_TUNED),
    Preset("paper", "*", {"orth_lr": 1e-3}, PAPER + " (one rate for every weight)"),
    Preset("paper", "copying", {"hidden": 128, "lr": 1e-3, "orth_lr": 1e-3}, PAPER),
)
SPEED = (SpeedRow("cpu"), SpeedRow("gpu"))


def _rotation_params(n: int, d_in: int, d_out: int, pairs: int) -> int:
    """2 angles per rotation, n phases, complex U, modReLU bias, readout from [Re h, Im h]."""
    return 2 * pairs + n + 2 * n * d_in + n + 2 * n * d_out + d_out


def _tunable_params(n: int, d_in: int, d_out: int) -> int:  # capacity 4, the default
    return _rotation_params(n, d_in, d_out, sum(len(p) for p, _ in layer_pairs(n, "tunable", 4)))


def _fft_params(n: int, d_in: int, d_out: int) -> int:
    return _rotation_params(n, d_in, d_out, sum(len(p) for p, _ in layer_pairs(n, "fft", 1)))


def _eurnn(d_in, d_out, output, hidden, style, capacity, engine):
    check_range("hidden", hidden, low=2, where="eurnn")
    net = RecurrentNet(EUNN(hidden, style, capacity), d_in, d_out, output=output,
                       activation="modrelu", engine=engine)
    nn.init.xavier_uniform_(net.input.weight)
    nn.init.uniform_(net.act.bias, -0.01, 0.01)
    nn.init.xavier_uniform_(net.readout.weight)
    nn.init.zeros_(net.readout.bias)
    return net


@register_model(family="EURNN", constraint="unitary", paper=papers.EURNN, params=_tunable_params, cost=4.0,
                presets=(*PRESETS, Preset("paper", "copying", {"model.capacity": 4}, PAPER + " (capacity 4)")),
                speed=SPEED)
def eurnn(d_in: int, d_out: int, output: str = "last", hidden: int = 128, capacity: int = 4,
          engine: str = "auto") -> RecurrentNet:
    """EURNN, tunable style (capacity layers of rotations), complex state, complex modReLU."""
    return _eurnn(d_in, d_out, output, hidden, "tunable", capacity, engine)


@register_model(family="EURNN", constraint="unitary", paper=papers.EURNN, params=_fft_params, cost=4.0,
                presets=PRESETS)
def eurnn_fft(d_in: int, d_out: int, output: str = "last", hidden: int = 128,
              engine: str = "auto") -> RecurrentNet:
    """EURNN, FFT style (log2 n butterfly layers), complex state, complex modReLU."""
    return _eurnn(d_in, d_out, output, hidden, "fft", 1, engine)
