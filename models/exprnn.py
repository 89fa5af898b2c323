"""expRNN and dynamic trivialization (Lezcano-Casado & Martinez-Rubio, ICML 2019, arXiv:1901.08428;
NeurIPS 2019, arXiv:1909.09501).

The orthogonal matrix is Q = B exp(A) (exp: ``models.skew.expm``): A skew from its free entries,
B a fixed orthogonal base (identity for expRNN). As in the authors' code, Q multiplies row vectors,
h_t = sigma(h_{t-1} Q + U x_t), so the suite's column-form recurrent matrix is W = Q^T. With the same
free entries both sides then compute the same numbers, and an elementwise optimizer (RMSprop) follows
the same path; Q and Q^T have the same (conjugate) spectrum, so nothing measured changes.

dtriv (K finite), as the authors' ``Parametrization``: the base moves once before the first step
(B <- B exp(A_0), A <- 0; their code does it at the first forward, with nothing computed in between),
then after every K optimizer steps; every ``project_every`` base changes (counting the first) B is
projected back onto O(n) by the polar factor U V^T of its SVD, which removes the float drift that
repeated products accumulate. The optimizer state of A is kept across base changes, as upstream does.
K = infinity is expRNN, K = 1 is Riemannian gradient descent.
"""

from __future__ import annotations

import torch
from torch import nn

from suite import papers
from suite.errors import check_choice, check_range
from suite.models.engine import RecurrentNet, Transition, init_readout
from suite.models.scornn import _skew_params
from suite.models.skew import SKEW_INITS, expm, skew
from suite.registry import Preset, Published, SpeedRow, register_model


class Exponential(Transition):
    constraint = "orthogonal"

    def __init__(self, n: int, init: str = "henaff", base_every: int | None = None,
                 project_every: int | None = None, generator: torch.Generator | None = None):
        super().__init__(n)
        check_choice("init", init, SKEW_INITS)
        if base_every is not None:
            check_range("K", base_every, low=1, where="dtriv")
        if project_every is not None:
            check_range("project_every", project_every, low=1, where="dtriv")
        self.base_every, self.project_every = base_every, project_every
        self.a = nn.Parameter(SKEW_INITS[init](n, generator).to(torch.get_default_dtype()))
        self.register_buffer("base", torch.eye(n))
        self.base_changes = 0  # counted as the authors' code counts them (the first one included)
        if base_every is not None:
            self.rebase()

    def rotation(self) -> torch.Tensor:
        """Q = B exp(A), the matrix the authors' code multiplies row vectors by."""
        return self.base.to(self.a.dtype) @ expm(skew(self.a, self.n))

    def matrix(self) -> torch.Tensor:
        return self.rotation().mT

    @torch.no_grad()
    def rebase(self) -> None:
        """B <- B exp(A), A <- 0; every ``project_every``-th time, B <- polar factor of B."""
        self.base.copy_(self.rotation())
        self.a.zero_()
        self.base_changes += 1
        if self.project_every and self.base_changes % self.project_every == 0:
            U, _, Vh = torch.linalg.svd(self.base.double())
            self.base.copy_(U @ Vh)

    def after_step(self, step: int) -> None:
        if self.base_every and step % self.base_every == 0:
            self.rebase()

    def get_extra_state(self):
        return {"base_changes": self.base_changes}

    def set_extra_state(self, state):
        self.base_changes = int(state["base_changes"])

    def extra_repr(self) -> str:
        return f"n={self.n}, base_every={self.base_every}, project_every={self.project_every}"


def _exprnn(d_in, d_out, output, hidden, init, base_every, activation, engine, readout_init,
            project_every=None):
    check_range("hidden", hidden, low=1, where="exprnn")
    net = RecurrentNet(Exponential(hidden, init, base_every, project_every), d_in, d_out, output=output,
                       activation=activation, engine=engine)
    _exprnn_inits(net, readout_init)
    return net


def _exprnn_inits(net: RecurrentNet, readout_init: str = "default") -> None:
    """expRNN's code: Kaiming-normal input kernel (no bias), modReLU bias ~ U(-0.01, 0.01); the readout
    as the protocol asks (its copying script: Kaiming normal, zero bias; MNIST and TIMIT: torch's)."""
    nn.init.kaiming_normal_(net.input.weight, nonlinearity="relu")
    nn.init.uniform_(net.act.bias, -0.01, 0.01)
    init_readout(net.readout, readout_init)


CODE = f"{papers.EXPRNN}, section 5 and its code"
DTRIV_CODE = f"{papers.DTRIV}, and its code"
# expRNN's training conventions, which the parametrization baselines (models/orthogonal_maps.py) follow too
FAMILY_PRESETS = (
    Preset("paper", "*", {"optimizer": "rmsprop", "orth_optimizer": "rmsprop", "rmsprop_alpha": 0.99},
           CODE + " (RMSprop for both groups, torch defaults)"),
    Preset("paper", "copying", {"hidden": 190, "lr": 2e-4, "orth_lr": 2e-5, "model.readout_init": "kaiming"},
           CODE + " (copying script: Kaiming-normal readout, zero bias)"),
    Preset("paper", "mnist", {"hidden": 170, "lr": 7e-4, "orth_lr": 7e-5}, CODE + " (MNIST script, n=170)"),
    Preset("paper", "pmnist", {"hidden": 170, "lr": 1e-3, "orth_lr": 1e-4}, CODE + " (MNIST script --permute, n=170)"),
    Preset("paper", "timit", {"hidden": 224, "optimizer": "adam", "lr": 1e-3, "orth_lr": 1e-4},
           CODE + " (TIMIT script: Adam for the non-orthogonal group)"),
)
# the init of A each script uses, for the models that take an ``init`` option
INIT_PRESETS = (
    Preset("paper", "copying", {"model.init": "henaff"}, CODE + " (copying script: Henaff init)"),
    Preset("paper", "*mnist", {"model.init": "cayley"}, CODE + " (MNIST script: Cayley init)"),
    Preset("paper", "timit", {"model.init": "henaff"}, CODE + " (TIMIT script: Henaff init)"),
)
DTRIV_PRESETS = (
    Preset("paper", "*", {"model.K": 100, "model.project_every": 100},
           DTRIV_CODE + " (dtriv-100; base projected back onto O(n) every 100 base changes)"),
    Preset("paper", "copying", {"model.project_every": 30},
           DTRIV_CODE + " (copying script: projection every 30 base changes)"),
)

_TABLE = f"{papers.EXPRNN}, MNIST / P-MNIST test-accuracy table (table number unverified)"
_SCRIPT = "Cayley init (the MNIST script's)"
PUBLISHED = (
    *(Published("mnist", "expRNN", n, "accuracy", v, _TABLE, note=_SCRIPT, protocol="exprnn-mnist",
                options={"init": "cayley"}) for n, v in zip((170, 360, 512), (0.980, 0.984, 0.987))),
    *(Published("pmnist", "expRNN", n, "accuracy", v, _TABLE, note=_SCRIPT, protocol="exprnn-pmnist",
                options={"init": "cayley"}) for n, v in zip((170, 360, 512), (0.949, 0.962, 0.966))),
    *(Published("timit", "expRNN", n, "mse", v, "scoRNN and expRNN papers' TIMIT tables", False,
                "test MSE; Henaff init (the TIMIT script's)", "exprnn-timit", {"init": "henaff"})
      for n, v in zip((224, 322, 425), (5.30, 4.38, 5.48))),
)
DTRIV_PUBLISHED = (
    Published("pmnist", "dtriv-100", 170, "accuracy", 0.951,
              f"{papers.DTRIV}, P-MNIST table, as quoted by {papers.PROJUNN}", note=_SCRIPT,
              protocol="exprnn-pmnist", options={"init": "cayley", "K": 100}),
)


@register_model(family="expRNN", published_as="expRNN", constraint="orthogonal", paper=papers.EXPRNN,
                params=_skew_params, presets=FAMILY_PRESETS + INIT_PRESETS, published=PUBLISHED,
                speed=(SpeedRow("cpu"),))
def exprnn(d_in: int, d_out: int, output: str = "last", hidden: int = 190, init: str = "henaff",
           activation: str = "modrelu", engine: str = "auto", readout_init: str = "default") -> RecurrentNet:
    """expRNN, W = exp(A), Henaff init (its copying-task setting)."""
    return _exprnn(d_in, d_out, output, hidden, init, None, activation, engine, readout_init)


@register_model(family="expRNN", published_as="expRNN", constraint="orthogonal", paper=papers.EXPRNN,
                params=_skew_params, presets=FAMILY_PRESETS, defines={"init": "cayley"})
def exprnn_cayley(d_in: int, d_out: int, output: str = "last", hidden: int = 190,
                  activation: str = "modrelu", engine: str = "auto", readout_init: str = "default") -> RecurrentNet:
    """expRNN with the Cayley init (its MNIST setting)."""
    return _exprnn(d_in, d_out, output, hidden, "cayley", None, activation, engine, readout_init)


@register_model(family="expRNN", published_as="dtriv-100", constraint="orthogonal", paper=papers.DTRIV,
                params=_skew_params, presets=FAMILY_PRESETS + INIT_PRESETS + DTRIV_PRESETS,
                published=DTRIV_PUBLISHED)
def dtriv(d_in: int, d_out: int, output: str = "last", hidden: int = 190, K: int = 100,
          init: str = "henaff", activation: str = "modrelu", engine: str = "auto",
          readout_init: str = "default", project_every: int = 100) -> RecurrentNet:
    """Dynamic trivialization: W = B exp(A), base moved every K steps (dtriv-K, K=100)."""
    return _exprnn(d_in, d_out, output, hidden, init, K, activation, engine, readout_init, project_every)
