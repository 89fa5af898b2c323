"""Full-capacity uRNN (Wisdom, Powers, Hershey, Le Roux & Atlas, NeurIPS 2016, arXiv:1611.00035v1).

W is a free point of U(n), not a parametrization: it is stored as the n x n complex matrix and moved
by a multiplicative update that never leaves the manifold (the Cayley retraction of the Riemannian
gradient, the paper's eqs. (8)-(9)):

    G = dL/dW,   A = G W^H - W G^H  (skew-Hermitian),   W <- (I + lr/2 A)^-1 (I - lr/2 A) W

Being an update rule, it is this model's own optimizer (``CayleyUnitary``), declared on its "orthogonal"
parameter group; the group's ``optimizer`` setting chooses how G is preconditioned: ``sgd`` uses G as it
is (the copying runs), ``rmsprop`` divides G elementwise by sqrt(RMS(G)) + 1e-8 first (the authors'
natGradRMS, used for (p)MNIST). The retraction is computed in float64 on a float64 master copy of W kept
in the optimizer's state (and in its checkpoints), started at the point of U(n) nearest W; W itself is
that copy rounded to its own precision after every step. Stepping from W as stored instead, each step's
rounding to complex64 adds up as a random walk off U(n): at n=128, max|W^H W - I| goes from 2.5e-7 (the
complex64 start) to 4.9e-7 after 1,000 steps and 1.0e-6 after 5,000; with the master copy it is 1.4e-8
after the first step and 1.6e-8 after 5,000 (``python benchmarks/fcurnn_drift.py``; the runner records
||W^H W - I|| in every run).

G is torch's complex gradient dL/dRe W + i dL/dIm W, the real-composite gradient of the paper. The
first-order change of the update is -lr (G - W G^H W), a descent direction: Re<G, G - W G^H W> >= 0.

The cell is the uRNN's (complex modReLU, learned h_0, readout from [Re h, Im h]); W starts at one
evaluated restricted-uRNN product, as the authors' code does. Parameters: the paper counts the
manifold dimension n^2, which is also the ``numel`` of the stored complex matrix;
n^2 + 2n(d_in + d_out) + 3n + d_out, MNIST n=116: 16,366.
"""

from __future__ import annotations

import torch
from torch import nn

from suite import papers
from suite.contract import GroupSpec, require_update
from suite.errors import check_choice, check_range
from suite.models.engine import RecurrentNet, Transition
from suite.models.urnn import RestrictedUnitary, uniform_inits
from suite.registry import Preset, SpeedRow, register_model

CODE = f"{papers.FCURNN}, and the authors' code"
PRESETS = (
    Preset("quick", "*", {"orth_optimizer": "sgd", "orth_lr": 1e-3},
           CODE + " (copying: Cayley step lambda = lr = 1e-3 on the raw gradient)"),
    # the Cayley step on U(n) for W, RMSprop for the rest
    Preset("paper", "copying", {"hidden": 128, "optimizer": "rmsprop", "lr": 1e-3, "orth_optimizer": "sgd",
                                "orth_lr": 1e-3}, CODE + " (run_memory_problem.sh: n=128, raw G)"),
    Preset("paper", "*mnist", {"hidden": 116, "optimizer": "rmsprop", "lr": 1e-3, "orth_optimizer": "rmsprop",
                               "orth_lr": 1e-6}, CODE + " (config_mnist: n=116, lr 1e-3, lambda 1e-6 with natGradRMS)"),
)


class CayleyUnitary(torch.optim.Optimizer):
    """W <- (I + lr/2 A)^-1 (I - lr/2 A) W with A = G W^H - W G^H, for square (complex or real) W:
    stays on U(n) (O(n) for real W) up to one rounding. ``precondition``: "sgd" (raw G) or "rmsprop".
    The update moves a float64 master copy of W (state "master"); W is that copy in W's precision."""

    def __init__(self, params, lr: float, precondition: str = "sgd", alpha: float = 0.9, eps: float = 1e-8):
        check_choice("precondition", precondition, ("sgd", "rmsprop"), where="the Cayley update")
        super().__init__(params, dict(lr=lr, precondition=precondition, alpha=alpha, eps=eps))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            for W in group["params"]:
                if W.grad is None:
                    continue
                G = W.grad
                if group["precondition"] == "rmsprop":  # per real component, as on the real composite
                    g = torch.view_as_real(G) if G.is_complex() else G
                    ms = self.state[W].setdefault("square_avg", torch.zeros_like(g))
                    ms.mul_(group["alpha"]).addcmul_(g, g, value=1 - group["alpha"])
                    g = g / (ms.sqrt() + group["eps"])
                    G = torch.view_as_complex(g) if W.is_complex() else g
                wide = torch.complex128 if W.is_complex() else torch.float64
                state = self.state[W]
                if "master" not in state or (state["master"].to(W.dtype) != W).any().item():
                    # first step, or W set from outside: the nearest point of U(n) (O(n)), U V^H
                    U, _, Vh = torch.linalg.svd(W.to(wide))
                    state["master"] = U @ Vh
                W64, G64 = state["master"], G.to(wide)
                A = G64 @ W64.mH - W64 @ G64.mH
                eye = torch.eye(W.shape[-1], dtype=wide, device=W.device)
                half = group["lr"] / 2
                W64 = torch.linalg.solve(eye + half * A, W64 - half * (A @ W64))
                state["master"] = W64
                W.copy_(W64)
        return loss


class FullUnitary(Transition):
    constraint = "unitary"
    is_complex = True

    def __init__(self, n: int):
        super().__init__(n)
        with torch.no_grad():
            start = RestrictedUnitary(n).matrix()
        self.weight = nn.Parameter(start.clone())

    def matrix(self) -> torch.Tensor:
        return self.weight


class FullCapacityNet(RecurrentNet):
    GROUPS = {"default": GroupSpec(),
              "orthogonal": GroupSpec(base="orthogonal", update=CayleyUnitary, optimizers=("sgd", "rmsprop"))}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._guard()

    def _guard(self) -> None:
        """Only CayleyUnitary may step W: any other optimizer would move it off U(n) silently."""
        for W in self.parameter_groups()["orthogonal"]:
            require_update(W, CayleyUnitary, "fcurnn")

    def forward(self, x):
        self._guard()  # again: a deep copy or an unpickled model has fresh parameter objects
        return super().forward(x)

    def double(self):  # nn.Module.double() leaves complex parameters (W) at complex64
        return self._apply(lambda t: t.to(torch.complex128) if t.is_complex() else
                           (t.double() if t.is_floating_point() else t))


def fcurnn_params(n: int, d_in: int, d_out: int) -> int:
    return n * n + 2 * n * (d_in + d_out) + 3 * n + d_out


@register_model(mission=False, family="full-capacity uRNN", published_as="full-capacity uRNN",
                constraint="unitary", paper=papers.FCURNN, params=fcurnn_params, presets=PRESETS,
                speed=(SpeedRow("cpu"), SpeedRow("gpu")))
def fcurnn(d_in: int, d_out: int, output: str = "last", hidden: int = 128,
           engine: str = "auto") -> FullCapacityNet:
    """Full-capacity uRNN: W free on U(n), moved by its own multiplicative Cayley update."""
    check_range("hidden", hidden, low=1, where="fcurnn")
    net = FullCapacityNet(FullUnitary(hidden), d_in, d_out, output=output, activation="modrelu",
                          engine=engine, h0=True)
    uniform_inits(net)
    return net
