"""Orthogonal W through parametrization libraries: geotorch and torch's own maps.

- ``geotorch.orthogonal(layer, "weight", triv="expm" | "cayley")``: W = base @ triv(skew(X)).
  geotorch's Cayley is (I - X/2)^-1 (I + X/2), i.e. X = -2A relative to scoRNN's A, so its learning
  rates and inits do not transfer 1:1.
- ``torch.nn.utils.parametrizations.orthogonal(layer, "weight", orthogonal_map=...)`` with
  "cayley", "matrix_exp" or "householder": zero-dependency baselines.

Both store the full n x n matrix as their parameter (n^2 stored numbers, n(n-1)/2 degrees of
freedom), so their module parameter count is larger than scoRNN's for the same n. All start from the
Henaff torus init (2x2 rotation blocks with angles ~ U(-pi, pi)), as expRNN does on copying. W is
read once per forward pass, so the parametrization is evaluated once per batch.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn.utils import parametrizations

from suite.errors import check_choice, check_range
from suite.models.engine import RecurrentNet, Transition
from suite.models.exprnn import FAMILY_PRESETS, _exprnn_inits
from suite.registry import SpeedRow, register_model


def torus_matrix(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A block-diagonal rotation with angles ~ U(-pi, pi) (the last unit is 1 when n is odd)."""
    angles = (torch.rand(n // 2, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
    Q = torch.eye(n, dtype=torch.float64)
    k = torch.arange(n // 2) * 2
    c, s = torch.cos(angles), torch.sin(angles)
    Q[k, k], Q[k, k + 1], Q[k + 1, k], Q[k + 1, k + 1] = c, -s, s, c
    return Q.to(torch.get_default_dtype())


class ParametrizedOrthogonal(Transition):
    """W = holder.weight, where ``holder`` carries an orthogonal parametrization."""

    constraint = "orthogonal"

    def __init__(self, n: int, library: str, method: str):
        super().__init__(n)
        self.library, self.method = library, method
        self.holder = nn.Linear(n, n, bias=False)
        if library == "geotorch":
            import geotorch

            check_choice("triv", method, ("expm", "cayley"))
            geotorch.orthogonal(self.holder, "weight", triv=method)
        else:
            check_choice("orthogonal_map", method, ("cayley", "matrix_exp", "householder"))
            parametrizations.orthogonal(self.holder, "weight", orthogonal_map=method)
        self.holder.weight = torus_matrix(n)

    def matrix(self) -> torch.Tensor:
        return self.holder.weight

    def degrees_of_freedom(self) -> int:
        return self.n * (self.n - 1) // 2  # dim O(n); the parametrization stores n^2 numbers

    def extra_repr(self) -> str:
        return f"n={self.n}, {self.library}={self.method}"


def _full_params(n: int, d_in: int, d_out: int) -> int:
    """The full n x n matrix is stored, then U, modReLU bias, readout."""
    return n * n + n * d_in + n + n * d_out + d_out


def _build(d_in, d_out, output, hidden, library, method, activation, engine, readout_init="default"):
    check_range("hidden", hidden, low=2, where=f"{library} {method}")
    net = RecurrentNet(ParametrizedOrthogonal(hidden, library, method), d_in, d_out,
                       output=output, activation=activation, engine=engine)
    _exprnn_inits(net, readout_init)
    return net


@register_model(family="expRNN", constraint="orthogonal", params=_full_params, presets=FAMILY_PRESETS)
def geotorch_expm(d_in: int, d_out: int, output: str = "last", hidden: int = 190,
                  activation: str = "modrelu", engine: str = "auto",
                  readout_init: str = "default") -> RecurrentNet:
    """geotorch's orthogonal constraint, matrix-exponential trivialization."""
    return _build(d_in, d_out, output, hidden, "geotorch", "expm", activation, engine, readout_init)


@register_model(family="expRNN", constraint="orthogonal", params=_full_params, presets=FAMILY_PRESETS)
def geotorch_cayley(d_in: int, d_out: int, output: str = "last", hidden: int = 190,
                    activation: str = "modrelu", engine: str = "auto",
                  readout_init: str = "default") -> RecurrentNet:
    """geotorch's orthogonal constraint, Cayley trivialization."""
    return _build(d_in, d_out, output, hidden, "geotorch", "cayley", activation, engine, readout_init)


@register_model(family="expRNN", constraint="orthogonal", params=_full_params, presets=FAMILY_PRESETS,
                speed=(SpeedRow("cpu"),))
def torch_cayley(d_in: int, d_out: int, output: str = "last", hidden: int = 190,
                 activation: str = "modrelu", engine: str = "auto",
                  readout_init: str = "default") -> RecurrentNet:
    """torch.nn.utils.parametrizations.orthogonal, Cayley map."""
    return _build(d_in, d_out, output, hidden, "torch", "cayley", activation, engine, readout_init)


@register_model(family="expRNN", constraint="orthogonal", params=_full_params, presets=FAMILY_PRESETS)
def torch_matrix_exp(d_in: int, d_out: int, output: str = "last", hidden: int = 190,
                     activation: str = "modrelu", engine: str = "auto",
                  readout_init: str = "default") -> RecurrentNet:
    """torch.nn.utils.parametrizations.orthogonal, matrix-exponential map."""
    return _build(d_in, d_out, output, hidden, "torch", "matrix_exp", activation, engine, readout_init)


@register_model(family="expRNN", constraint="orthogonal", params=_full_params, presets=FAMILY_PRESETS)
def torch_householder(d_in: int, d_out: int, output: str = "last", hidden: int = 190,
                      activation: str = "modrelu", engine: str = "auto",
                  readout_init: str = "default") -> RecurrentNet:
    """torch.nn.utils.parametrizations.orthogonal, product of Householder reflections."""
    return _build(d_in, d_out, output, hidden, "torch", "householder", activation, engine, readout_init)
