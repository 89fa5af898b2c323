"""expRNN and dynamic trivialization (Lezcano-Casado & Martinez-Rubio, ICML 2019, arXiv:1901.08428;
NeurIPS 2019, arXiv:1909.09501).

W = B exp(A), A skew from its free entries, B a fixed orthogonal base (identity for expRNN).
dtriv moves the base every K optimizer steps: B <- B exp(A), A <- 0 (K = infinity is expRNN, K = 1 is
Riemannian gradient descent). The optimizer state of A is kept across base changes, as upstream does.
"""

from __future__ import annotations

import torch
from torch import nn

from models.engine import RecurrentNet, Transition
from models.skew import SKEW_INITS, skew
from suite.errors import check_choice, check_range
from suite.registry import register_model


class Exponential(Transition):
    constraint = "orthogonal"

    def __init__(self, n: int, init: str = "henaff", base_every: int | None = None,
                 generator: torch.Generator | None = None):
        super().__init__(n)
        check_choice("init", init, SKEW_INITS)
        if base_every is not None:
            check_range("K", base_every, low=1, where="dtriv")
        self.base_every = base_every
        self.a = nn.Parameter(SKEW_INITS[init](n, generator).to(torch.get_default_dtype()))
        self.register_buffer("base", torch.eye(n))

    def matrix(self) -> torch.Tensor:
        return self.base.to(self.a.dtype) @ torch.linalg.matrix_exp(skew(self.a, self.n))

    @torch.no_grad()
    def after_step(self, step: int) -> None:
        if self.base_every and step % self.base_every == 0:
            self.base.copy_(self.matrix())
            self.a.zero_()

    def extra_repr(self) -> str:
        return f"n={self.n}, base_every={self.base_every}"


def _exprnn(d_in, d_out, output, hidden, init, base_every, activation, engine):
    check_range("hidden", hidden, low=1, where="exprnn")
    net = RecurrentNet(Exponential(hidden, init, base_every), d_in, d_out, output=output,
                       activation=activation, engine=engine)
    _exprnn_inits(net)
    return net


def _exprnn_inits(net: RecurrentNet) -> None:
    """expRNN's code: Kaiming-normal input kernel (no bias), modReLU bias ~ U(-0.01, 0.01)."""
    nn.init.kaiming_normal_(net.input.weight, nonlinearity="relu")
    nn.init.uniform_(net.act.bias, -0.01, 0.01)


@register_model
def exprnn(d_in: int, d_out: int, output: str = "last", hidden: int = 190, init: str = "henaff",
           activation: str = "modrelu", engine: str = "auto"):
    """expRNN, W = exp(A), Henaff init (its copying-task setting)."""
    return _exprnn(d_in, d_out, output, hidden, init, None, activation, engine)


@register_model
def exprnn_cayley(d_in: int, d_out: int, output: str = "last", hidden: int = 190,
                  activation: str = "modrelu", engine: str = "auto"):
    """expRNN with the Cayley init (its MNIST setting)."""
    return _exprnn(d_in, d_out, output, hidden, "cayley", None, activation, engine)


@register_model
def dtriv(d_in: int, d_out: int, output: str = "last", hidden: int = 190, K: int = 100,
          init: str = "henaff", activation: str = "modrelu", engine: str = "auto"):
    """Dynamic trivialization: W = B exp(A), base moved every K steps (dtriv-K, K=100)."""
    return _exprnn(d_in, d_out, output, hidden, init, K, activation, engine)
