"""scoRNN: W = (I + A)^-1 (I - A) D (Helfrich, Willmott, Ye, ICML 2018, arXiv:1707.09520v3).

Convention: the suite uses the paper's column form, h_t = sigma(W h_{t-1} + U x_t + b) with
W = Cayley(A) D, so D acts first on h_{t-1}. The authors' TF code multiplies row vectors
(h @ W), which in column form is D Cayley(A)^T = D Cayley(-A): D acts last. The two are similar
matrices (D (C D) D = D C with C = Cayley(-A)), so they reach the same set of orthogonal matrices
with the same spectra; the suite keeps the paper's form because Theorem 3.1 is stated for it and the
closed-form gradient below is then the paper's formula verbatim.

D is fixed: n - rho entries +1 then rho entries -1 (the authors put the -1 entries last), so
det W = (-1)^rho for the whole run.

The default gradient is Theorem 3.1: with G = dL/dW, V = (I + A)^-T G (D + W^T) and dL/dA = V^T - V,
whose (i, j) entry (i < j) is the derivative along E_ij - E_ji, i.e. with respect to the stored free
entry a_ij. A is then updated by its own (elementwise) optimizer, which keeps it exactly skew.
"""

from __future__ import annotations

import torch
from torch import nn

from suite import papers
from suite.errors import check_choice, check_range
from suite.models.engine import RecurrentNet, Transition, init_readout
from suite.models.skew import SKEW_INITS, skew, upper
from suite.registry import Preset, Published, SpeedRow, register_model


def scaled_cayley(A: torch.Tensor, d: torch.Tensor) -> torch.Tensor:
    """(I + A)^-1 (I - A) diag(d), by one solve; differentiable by autograd."""
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    return torch.linalg.solve(eye + A, eye - A) * d


class _ScaledCayleyClosedForm(torch.autograd.Function):
    """W from the free entries a of A, with the backward of Theorem 3.1."""

    @staticmethod
    def forward(ctx, a, d):
        n = d.numel()
        A = skew(a.detach(), n)
        eye = torch.eye(n, dtype=a.dtype, device=a.device)
        M = eye + A
        W = torch.linalg.solve(M, eye - A) * d
        ctx.save_for_backward(M, W, d)
        return W

    @staticmethod
    def backward(ctx, G):
        M, W, d = ctx.saved_tensors
        V = torch.linalg.solve(M.mT, G * d + G @ W.mT)  # (I + A)^-T G (D + W^T)
        return upper(V.mT - V), None


def scornn_gradient(A: torch.Tensor, d: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """Theorem 3.1 as a function: dL/dA (skew) for W = Cayley(A) diag(d) and G = dL/dW."""
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    W = torch.linalg.solve(eye + A, eye - A) * d
    V = torch.linalg.solve((eye + A).mT, G * d + G @ W.mT)
    return V.mT - V


class ScaledCayley(Transition):
    constraint = "orthogonal"

    def __init__(self, n: int, rho: int, init: str = "cayley", grad: str = "closed_form",
                 generator: torch.Generator | None = None):
        super().__init__(n)
        check_range("rho", rho, low=0, high=n, where=f"scornn with hidden={n}")
        check_choice("grad", grad, ("closed_form", "autograd"))
        check_choice("init", init, SKEW_INITS)
        self.rho, self.grad = rho, grad
        self.a = nn.Parameter(SKEW_INITS[init](n, generator).to(torch.get_default_dtype()))
        d = torch.ones(n)
        if rho:
            d[n - rho:] = -1.0
        self.register_buffer("d", d)

    def matrix(self) -> torch.Tensor:
        d = self.d.to(self.a.dtype)
        if self.grad == "closed_form":
            return _ScaledCayleyClosedForm.apply(self.a, d)
        return scaled_cayley(skew(self.a, self.n), d)

    def extra_repr(self) -> str:
        return f"n={self.n}, rho={self.rho}, grad={self.grad}"


def _scornn(d_in, d_out, output, hidden, rho, activation, init, grad, engine, readout_init="glorot"):
    check_range("hidden", hidden, low=1, where="scornn")
    rho = hidden // 2 if rho is None else rho
    net = RecurrentNet(ScaledCayley(hidden, rho, init, grad), d_in, d_out, output=output,
                       activation=activation, engine=engine)
    # authors' code: U ~ U(-0.01, 0.01), modReLU bias 0, Glorot-uniform readout (its copying script
    # also draws the readout bias Glorot-uniform: readout_init="glorot_bias")
    nn.init.uniform_(net.input.weight, -0.01, 0.01)
    init_readout(net.readout, readout_init)
    return net


CODE = f"{papers.SCORNN}, section 5 and the authors' code"
_TF_RMSPROP = {"optimizer": "rmsprop", "lr": 1e-3, "orth_optimizer": "rmsprop", "orth_lr": 1e-4, "rmsprop_alpha": 0.9}
PRESETS = (
    Preset("paper", "copying", {"hidden": 190, "model.rho": 95, **_TF_RMSPROP, "model.readout_init": "glorot_bias"},
           CODE + " (TF RMSprop decay 0.9; copying script: readout weight and bias by TF's default Glorot init)"),
    Preset("paper", "adding", {"hidden": 170, "model.rho": 85, **_TF_RMSPROP, "optimizer": "adam"}, CODE),
    Preset("paper", "mnist", {"hidden": 170, "model.rho": 17, **_TF_RMSPROP}, CODE + " (n=170, rho=n/10)"),
    Preset("paper", "pmnist", {"hidden": 170, "model.rho": 85, **_TF_RMSPROP}, CODE + " (n=170, rho=n/2)"),
    Preset("paper", "timit", {"hidden": 224, "model.rho": 112},
           CODE + " (n=224; rho and optimizer settings unverified: rho=n/2 assumed)"),
)

_QUOTED = f"{papers.EXPRNN}, MNIST / P-MNIST test-accuracy table (table number unverified)"
_OWN = f"{papers.SCORNN}, MNIST results table"
_CAYLEY = {"init": "cayley"}


def _accuracy(task, sizes, values, source, protocol, verified=True, note=""):
    return tuple(Published(task, "scoRNN", n, "accuracy", v, source, verified, note, protocol, _CAYLEY)
                 for n, v in zip(sizes, values))


PUBLISHED = (
    *_accuracy("mnist", (170, 360, 512), (0.972, 0.981, 0.982), _QUOTED, "scornn-mnist",
               note="the scoRNN protocol, as the expRNN paper quotes it"),
    *_accuracy("pmnist", (170, 360, 512), (0.948, 0.959, 0.965), _QUOTED, "scornn-pmnist",
               note="the scoRNN protocol, as the expRNN paper quotes it"),
    *_accuracy("mnist", (512,), (0.985,), _OWN + ", as quoted by a later paper", "scornn-mnist"),
    *_accuracy("pmnist", (512,), (0.966,), _OWN + ", as quoted by a later paper", "scornn-pmnist"),
    *_accuracy("mnist", (170, 360), (0.973, 0.983), _OWN, "scornn-mnist", verified=False),
    *_accuracy("pmnist", (170, 360), (0.943, 0.962), _OWN, "scornn-pmnist", verified=False),
    *(Published("timit", "scoRNN", n, "mse", v, "scoRNN and expRNN papers' TIMIT tables", False,
                "test MSE; normalization may differ from the suite's (see docs/tasks.md); protocol not "
                "defined in the suite") for n, v in zip((224, 322, 425), (8.50, 7.82, 7.36))),
)


def _skew_params(n: int, d_in: int, d_out: int) -> int:
    """n(n-1)/2 free entries of A, U (no bias), modReLU bias, readout: the papers' count."""
    return n * (n - 1) // 2 + n * d_in + n + n * d_out + d_out


@register_model(family="scoRNN", published_as="scoRNN", constraint="orthogonal", paper=papers.SCORNN,
                params=_skew_params, presets=PRESETS, published=PUBLISHED,
                speed=(SpeedRow("cpu", "fused", limit=0.9), SpeedRow("cpu", "reference"),
                       SpeedRow("gpu", "triton", limit=1.5), SpeedRow("gpu", "triton-tf32"),
                       SpeedRow("gpu", "triton-bf16"), SpeedRow("gpu", "fused"), SpeedRow("gpu", "reference")))
def scornn(d_in: int, d_out: int, output: str = "last", hidden: int = 190, rho: int | None = None,
           activation: str = "modrelu", init: str = "cayley", engine: str = "auto",
           readout_init: str = "glorot") -> RecurrentNet:
    """scoRNN, scaled Cayley transform; A trained with the closed-form gradient (Theorem 3.1)."""
    return _scornn(d_in, d_out, output, hidden, rho, activation, init, "closed_form", engine, readout_init)


@register_model(mission=False, family="scoRNN", published_as="scoRNN", constraint="orthogonal",
                paper=papers.SCORNN, params=_skew_params, presets=PRESETS)
def scornn_autograd(d_in: int, d_out: int, output: str = "last", hidden: int = 190,
                    rho: int | None = None, activation: str = "modrelu", init: str = "cayley",
                    engine: str = "auto", readout_init: str = "glorot") -> RecurrentNet:
    """scoRNN with autograd through the solve instead of Theorem 3.1 (same maths, for checking)."""
    return _scornn(d_in, d_out, output, hidden, rho, activation, init, "autograd", engine, readout_init)
