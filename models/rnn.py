"""Vanilla RNN with an unconstrained W, orthogonal at init (Saxe et al.'s init), tanh by default.

It runs on the same engine as the orthogonal models, so it shows what the constraint buys.
"""

from __future__ import annotations

import torch
from torch import nn

from suite.errors import check_range
from suite.models.engine import RecurrentNet, Transition
from suite.models.gated import QUICK_RATES
from suite.registry import SpeedRow, register_model


class Unconstrained(Transition):
    constraint = None

    def __init__(self, n: int):
        super().__init__(n)
        self.weight = nn.Parameter(nn.init.orthogonal_(torch.empty(n, n)))

    def matrix(self) -> torch.Tensor:
        return self.weight


@register_model(family="rnn", params=lambda n, d_in, d_out: n * n + n * d_in + n + n * d_out + d_out,
                presets=QUICK_RATES,  # lstm's rates (the search did not try this model)
                speed=(SpeedRow("cpu", "fused", limit=0.9), SpeedRow("gpu", "triton", limit=1.5),
                       SpeedRow("gpu", "triton-bf16")))
def rnn(d_in: int, d_out: int, output: str = "last", hidden: int = 128,
        activation: str = "tanh", engine: str = "auto") -> RecurrentNet:
    """Vanilla RNN, W free and orthogonally initialized."""
    check_range("hidden", hidden, low=1, where="rnn")
    return RecurrentNet(Unconstrained(hidden), d_in, d_out, output=output,
                        activation=activation, engine=engine)
