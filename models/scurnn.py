"""scuRNN: W = (I + A)^-1 (I - A) D, A skew-Hermitian, D = diag(exp(i theta)) with trainable phases
(Maduranga, Helfrich & Ye, AAAI 2019, arXiv:1811.04142v2).

The complex counterpart of scoRNN: every W of this form is unitary, and the trainable D lets W reach
the eigenvalue -1 that the plain Cayley transform cannot. Convention: the paper's column form,
h_t = modReLU(W h_{t-1} + U x_t + b), D acting first; the authors' TF code multiplies row vectors.

A = X + iY with X real skew-symmetric (n(n-1)/2 free entries) and Y real symmetric (n(n+1)/2 free
entries, the diagonal of A being purely imaginary): n^2 real numbers, plus n phases.

Closed-form gradients (the default; ``grad="autograd"`` differentiates the solve instead). With
G = dL/dRe W + i dL/dIm W (torch's complex gradient) and Z = (I + A)^-1 (I - A):

    M = -(I + A)^-H G (D^H + W^H),   K = M - M^H (skew-Hermitian)
    dL/dX_ij = Re K_ij,   dL/dY_ij = Im K_ij (i < j),   dL/dY_ii = Im K_ii / 2
    dL/dtheta_j = Re(i (G^H W)_jj) = -Im (G^H W)_jj

M is the gradient for an unconstrained complex A, K its projection onto skew-Hermitian matrices.
In the Wirtinger notation of the authors' code (G_c = conj(G)/2, V = (I + A)^-T G_c (D + W^T)),
K = 2(V^T - conj V) and dL/dtheta_j = 2 Re(i (G_c^T Z)_jj e^{i theta_j}): the same quantities up to
the factor 2 of the convention. tests/test_scurnn.py checks both against autograd and float64 finite differences.

Optimizers (the authors' code): A with RMSprop (the "orthogonal" group, ``orth_lr``), the phases with
Adagrad (group "phases", ``lr.phases``), everything else with Adam. Inits: Re A on 2x2 blocks
-tan(s/2), s ~ U(0, pi/2) (scoRNN's), Im A = 0, theta ~ U(0, 2 pi), modReLU bias and h_0 ~ U(+-0.01),
U and the readout Glorot uniform. Parameters: n^2 + n + 2n d_in + n + 2n + 2n d_out + d_out;
MNIST n=116: 16,482.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from suite import papers
from suite.contract import GroupSpec
from suite.errors import check_choice, check_range
from suite.models.engine import RecurrentNet, Transition
from suite.models.skew import SKEW_INITS
from suite.registry import Preset, SpeedRow, register_model

CODE = f"{papers.SCURNN}, the authors' code (scuRNN_*.py)"
# A with RMSprop, the phases with Adagrad, the rest with Adam
PRESETS = (
    Preset("quick", "*", {"optimizer": "adam", "lr.phases": 1e-3}, CODE),
    Preset("paper", "*", {"optimizer": "adam", "lr": 1e-3, "orth_optimizer": "rmsprop", "orth_lr": 1e-4,
                          "rmsprop_alpha": 0.9, "optimizer.phases": "adagrad", "lr.phases": 1e-3},
           CODE + " (adding and MNIST scripts)"),
    Preset("paper", "copying", {"hidden": 130, "lr.phases": 1e-4}, CODE + " (scuRNN_copying.py: n=130)"),
    Preset("paper", "adding|*mnist", {"hidden": 116}, CODE + " (n=116)"),
)


def skew_hermitian(x: torch.Tensor, y: torch.Tensor, n: int) -> torch.Tensor:
    """A = X + iY from X's strictly-upper entries x and Y's upper entries (diagonal included) y."""
    r, c = torch.triu_indices(n, n, 1, device=x.device)
    X = x.new_zeros(n, n).index_put((r, c), x)
    ry, cy = torch.triu_indices(n, n, 0, device=y.device)
    Y = y.new_zeros(n, n).index_put((ry, cy), y)
    return torch.complex(X - X.mT, Y + Y.mT - torch.diag(Y.diagonal()))


def scaled_unitary_cayley(A: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
    """(I + A)^-1 (I - A) diag(exp(i theta)), by one solve; differentiable by autograd."""
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    return torch.linalg.solve(eye + A, eye - A) * torch.polar(torch.ones_like(theta), theta)


def scurnn_gradients(A: torch.Tensor, theta: torch.Tensor, G: torch.Tensor):
    """The closed form: (K = dL/dA as a skew-Hermitian matrix, dL/dtheta) for G = dL/dW."""
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    W = scaled_unitary_cayley(A, theta)
    d = torch.polar(torch.ones_like(theta), theta)
    M = -torch.linalg.solve((eye + A).mH, G * d.conj() + G @ W.mH)
    return M - M.mH, -(G.conj() * W).sum(0).imag


class _ClosedForm(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, y, theta):
        n = theta.numel()
        A = skew_hermitian(x.detach(), y.detach(), n)
        ctx.save_for_backward(A, theta.detach())
        return scaled_unitary_cayley(A, theta.detach())

    @staticmethod
    def backward(ctx, G):
        A, theta = ctx.saved_tensors
        n = theta.numel()
        K, dtheta = scurnn_gradients(A, theta, G)
        r, c = torch.triu_indices(n, n, 1, device=G.device)
        ry, cy = torch.triu_indices(n, n, 0, device=G.device)
        dy = K.imag[ry, cy] * torch.where(ry == cy, 0.5, 1.0).to(K.real.dtype)
        return K.real[r, c], dy, dtheta


class ScaledUnitaryCayley(Transition):
    constraint = "unitary"
    is_complex = True

    def __init__(self, n: int, grad: str = "closed_form"):
        super().__init__(n)
        check_choice("grad", grad, ("closed_form", "autograd"))
        self.grad = grad
        dtype = torch.get_default_dtype()
        self.x = nn.Parameter(SKEW_INITS["cayley"](n).to(dtype))  # Re A, scoRNN's init
        self.y = nn.Parameter(torch.zeros(n * (n + 1) // 2))  # Im A = 0
        self.theta = nn.Parameter(torch.empty(n).uniform_(0, 2 * math.pi))

    def matrix(self) -> torch.Tensor:
        if self.grad == "closed_form":
            return _ClosedForm.apply(self.x, self.y, self.theta)
        return scaled_unitary_cayley(skew_hermitian(self.x, self.y, self.n), self.theta)


class ScuNet(RecurrentNet):
    GROUPS = {"default": GroupSpec(optimizer="adam"),
              "orthogonal": GroupSpec(base="orthogonal"),
              "phases": GroupSpec(optimizer="adagrad")}

    def parameter_groups(self):
        t = self.transition
        ids = {id(t.x), id(t.y), id(t.theta)}
        return {"orthogonal": [t.x, t.y], "phases": [t.theta],
                "default": [p for p in self.parameters() if id(p) not in ids]}


def scurnn_params(n: int, d_in: int, d_out: int) -> int:
    return n * n + n + 2 * n * d_in + n + 2 * n + 2 * n * d_out + d_out


@register_model(mission=False, family="scuRNN", published_as="scuRNN", constraint="unitary", paper=papers.SCURNN,
                params=scurnn_params, presets=PRESETS, speed=(SpeedRow("cpu"), SpeedRow("gpu")))
def scurnn(d_in: int, d_out: int, output: str = "last", hidden: int = 116, grad: str = "closed_form",
           engine: str = "auto") -> ScuNet:
    """scuRNN, W = (I+A)^-1 (I-A) D, A skew-Hermitian, trainable phases D; closed-form gradients."""
    check_range("hidden", hidden, low=1, where="scurnn")
    net = ScuNet(ScaledUnitaryCayley(hidden, grad), d_in, d_out, output=output, activation="modrelu",
                 engine=engine, h0=True)
    nn.init.xavier_uniform_(net.input.weight)
    nn.init.xavier_uniform_(net.readout.weight)
    nn.init.zeros_(net.readout.bias)
    nn.init.uniform_(net.act.bias, -0.01, 0.01)
    nn.init.uniform_(net.h0, -0.01, 0.01)
    return net
