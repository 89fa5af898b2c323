"""nnRNN, the non-normal RNN (Kerg, Goyette, Puelma Touzel, Gidel, Vorontsov, Bengio & Lajoie,
NeurIPS 2019, arXiv:1905.12080v2).

W is trained in its real Schur form:

    W = P (Lambda + T) P^T,   h_t = modReLU(W h_{t-1} + U x_t + b)

P = exp(S) orthogonal with S skew from its free entries L (expRNN's parametrization; P is rebuilt
from L every forward pass, so it never drifts); Lambda = blockdiag(gamma_i R(theta_i)) 2x2 rotations
scaled by gamma_i (a 1x1 block gamma when n is odd); T strictly upper triangular, the non-normal part.
W is similar to the block-upper-triangular Lambda + T, so its eigenvalues are those of the diagonal
blocks of Lambda + T. As in the authors' code, T covers every strictly-upper entry, the one inside
each 2x2 block included: that entry changes its block, so the eigenvalues are gamma_i e^{+-i theta_i}
only while the in-block entries are 0 (at init); T's entries above the blocks add transient,
non-normal dynamics without moving them (tests/test_new_models.py checks both).

Orientation: with the same parameters the authors' matrix M = P (Lambda + T) P^T equals this W, but
their cell multiplies row vectors, h_{t-1} M, while this one computes W h_{t-1}: their recurrence in
column form is M^T, whose non-normal part is lower triangular. So the authors' parameters loaded as
they are run the transposed recurrence; ``from_authors`` converts them into parameters of this model
whose W equals M^T (the authors' recurrence, exactly).

Training as in the paper's supplement (Tables 2-3): RMSprop; L with its own rate (group "orthogonal",
``orth_lr``); T with the default rate and its own L2 decay (group "upper", ``weight_decay.upper``,
default 1e-6: the copying setting); the loss adds delta sum_i (gamma_i - 1)^2 (option ``delta``): a
penalty on the blocks' scale factors, which equal the eigenvalue moduli only while T's in-block entries
are 0. Inits: S_0 Henaff (copying) or Cayley (psMNIST) as option ``init``, with L = S_0 (the authors'
code leaves L uninitialised); T = 0; gamma = 1; theta ~ U(0, 2 pi); U Xavier normal, no bias; modReLU
bias ~ U(+-0.01); Xavier-normal readout. Parameters: n(n-1) + n + n d_in + n + n d_out + d_out; copying
n=128: 18,953; psMNIST n=512: 268,298."""

from __future__ import annotations

import math

import torch
from torch import nn

from suite import papers
from suite.contract import GroupSpec
from suite.errors import ConfigError, check_choice, check_range
from suite.models.engine import RecurrentNet, Transition
from suite.models.skew import SKEW_INITS, expm, skew
from suite.models.skew import upper as upper_entries
from suite.registry import Preset, SpeedRow, register_model

SUPPLEMENT = f"{papers.NNRNN}, supplement Tables 2-3"
# RMSprop for both rates; T decays; delta penalizes (gamma - 1)^2
PRESETS = (
    Preset("paper", "copying", {"hidden": 128, "optimizer": "rmsprop", "lr": 5e-4, "orth_optimizer": "rmsprop",
                                "orth_lr": 1e-6, "rmsprop_alpha": 0.99, "model.delta": 1e-4,
                                "weight_decay.upper": 1e-6, "model.init": "henaff"}, SUPPLEMENT + " (copy, n=128)"),
    Preset("paper", "pmnist", {"hidden": 512, "optimizer": "rmsprop", "lr": 1.5e-4, "orth_optimizer": "rmsprop",
                               "orth_lr": 1.5e-5, "rmsprop_alpha": 0.99, "model.delta": 0.15,
                               "weight_decay.upper": 1e-4, "model.init": "cayley"}, SUPPLEMENT + " (psMNIST, n=512)"),
)


class NonNormal(Transition):
    constraint = None  # W is not orthogonal; P is (checked in the tests)

    def __init__(self, n: int, init: str = "henaff"):
        super().__init__(n)
        check_choice("init", init, SKEW_INITS)
        dtype = torch.get_default_dtype()
        self.log_p = nn.Parameter(SKEW_INITS[init](n).to(dtype))  # L, with S_0 = skew(L)
        self.upper = nn.Parameter(torch.zeros(n * (n - 1) // 2))  # T's strictly-upper entries
        self.theta = nn.Parameter(torch.empty(n // 2).uniform_(0, 2 * math.pi))
        self.gamma = nn.Parameter(torch.ones(n - n // 2))  # one per 2x2 block (+1 for odd n)

    def orthogonal_factor(self) -> torch.Tensor:
        return expm(skew(self.log_p, self.n))

    def schur_factor(self) -> torch.Tensor:
        """Lambda + T (block upper triangular)."""
        n, k = self.n, self.n // 2
        c, s = torch.cos(self.theta), torch.sin(self.theta)
        g = self.gamma[:k]
        blocks = torch.stack([torch.stack([g * c, -g * s], -1), torch.stack([g * s, g * c], -1)], -2)
        Lam = torch.block_diag(*blocks.unbind(0), *([self.gamma[k:].reshape(1, 1)] if n % 2 else []))
        r, col = torch.triu_indices(n, n, 1, device=self.upper.device)
        return Lam + self.upper.new_zeros(n, n).index_put((r, col), self.upper)

    def matrix(self) -> torch.Tensor:
        P = self.orthogonal_factor()
        return P @ self.schur_factor() @ P.mT


class NonNormalNet(RecurrentNet):
    GROUPS = {"default": GroupSpec(), "orthogonal": GroupSpec(base="orthogonal"),
              "upper": GroupSpec(weight_decay=1e-6)}

    def __init__(self, transition: NonNormal, *args, delta: float = 1e-4, **kw):
        super().__init__(transition, *args, **kw)
        self.delta = delta

    def parameter_groups(self):
        t = self.transition
        ids = {id(t.log_p), id(t.upper)}
        return {"orthogonal": [t.log_p], "upper": [t.upper],
                "default": [p for p in self.parameters() if id(p) not in ids]}

    def regularizer(self):
        return self.delta * (self.transition.gamma - 1).square().sum()


def from_authors(log_p: torch.Tensor, upper: torch.Tensor, theta: torch.Tensor, gamma: torch.Tensor) -> dict:
    """Parameters of ``NonNormal`` whose W is the authors' recurrence in column form, M^T.

    The authors' cell holds an n x n ``log_p`` (S = triu(L, 1) - triu(L, 1)^T, P = exp(S)), an n x n T
    (used through its strictly upper mask), n angles of which the first n/2 are used, and n/2 scale
    factors, and computes h_{t-1} M with M = P (Lambda + T) P^T. With J the reversal permutation,
    M^T = (P J) J (Lambda^T + T^T) J (P J)^T, and J (Lambda^T + T^T) J is again 2x2 rotation blocks
    (in reverse order, same angles) plus a strictly upper part; if det(P J) = -1, flipping the last
    coordinate keeps the new P in SO(n) (the last block's angle and T's last column change sign).
    Even n only (an odd n's 1x1 block would move to the front). Returns the state-dict entries
    ``log_p``, ``upper``, ``theta``, ``gamma`` of ``NonNormal`` (float64, on the CPU)."""
    import scipy.linalg

    cpu = torch.device("cpu")  # a host-side conversion (scipy computes the logarithm)
    L = log_p.detach().to(cpu, torch.float64)
    n = L.shape[-1]
    if n % 2:
        raise ConfigError(f"invalid hidden={n} for from_authors: the conversion needs an even hidden size")
    S = torch.triu(L, 1) - torch.triu(L, 1).mT
    P = torch.linalg.matrix_exp(S)
    k = n // 2
    th, g = theta.detach().to(cpu, torch.float64)[:k], gamma.detach().to(cpu, torch.float64)[:k]
    c, s = torch.cos(th), torch.sin(th)
    blocks = torch.stack([torch.stack([g * c, -g * s], -1), torch.stack([g * s, g * c], -1)], -2)
    schur = torch.block_diag(*blocks.unbind(0)) + torch.triu(upper.detach().to(cpu, torch.float64), 1)
    J = torch.eye(n, dtype=torch.float64, device=cpu).flip(0)
    Pn, X = P @ J, J @ schur.mT @ J  # M^T = Pn X Pn^T
    if torch.linalg.det(Pn) < 0:
        D = torch.ones(n, dtype=torch.float64, device=cpu)
        D[-1] = -1
        Pn, X = Pn * D, D[:, None] * X * D
    Sn = torch.as_tensor(scipy.linalg.logm(Pn.numpy()).real, device=cpu)
    Sn = (Sn - Sn.mT) / 2
    if (torch.linalg.matrix_exp(Sn) - Pn).abs().max() > 1e-8:
        raise ConfigError("from_authors: the new orthogonal factor has an eigenvalue at -1 (no real "
                          "logarithm); perturb the authors' log_P slightly and convert again")
    blocks_n = X.reshape(k, 2, k, 2).diagonal(dim1=0, dim2=2).permute(2, 0, 1)  # the k diagonal 2x2 blocks
    gamma_n = torch.linalg.norm(blocks_n[:, :, 0], dim=-1)
    theta_n = torch.atan2(blocks_n[:, 1, 0], blocks_n[:, 0, 0])
    rot = torch.block_diag(*(gamma_n[:, None, None] * torch.stack(
        [torch.stack([torch.cos(theta_n), -torch.sin(theta_n)], -1),
         torch.stack([torch.sin(theta_n), torch.cos(theta_n)], -1)], -2)).unbind(0))
    T_n = X - rot  # what is left is strictly upper (in-block entries included)
    rows, cols = torch.triu_indices(n, n, 1, device=cpu)
    return {"log_p": upper_entries(Sn), "upper": T_n[rows, cols], "theta": theta_n, "gamma": gamma_n}


def nnrnn_params(n: int, d_in: int, d_out: int) -> int:
    return n * (n - 1) + n + n * d_in + n + n * d_out + d_out


@register_model(mission=False, family="nnRNN", published_as="nnRNN", paper=papers.NNRNN, params=nnrnn_params, cost=1.5,
                presets=PRESETS, speed=(SpeedRow("cpu"), SpeedRow("gpu")))
def nnrnn(d_in: int, d_out: int, output: str = "last", hidden: int = 128, init: str = "henaff",
          delta: float = 1e-4, engine: str = "auto") -> NonNormalNet:
    """nnRNN, W = P (Lambda + T) P^T: orthogonal P, 2x2 rotation blocks, strictly upper T."""
    check_range("hidden", hidden, low=2, where="nnrnn")
    check_range("delta", delta, low=0, integer=False, where="nnrnn")
    net = NonNormalNet(NonNormal(hidden, init), d_in, d_out, output=output, activation="modrelu",
                       engine=engine, delta=delta)
    nn.init.xavier_normal_(net.input.weight)
    nn.init.uniform_(net.act.bias, -0.01, 0.01)
    nn.init.xavier_normal_(net.readout.weight)
    return net
