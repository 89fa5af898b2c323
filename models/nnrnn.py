"""nnRNN, the non-normal RNN (Kerg, Goyette, Puelma Touzel, Gidel, Vorontsov, Bengio & Lajoie,
NeurIPS 2019, arXiv:1905.12080v2).

W is trained in its real Schur form:

    W = P (Lambda + T) P^T,   h_t = modReLU(W h_{t-1} + U x_t + b)

P = exp(S) orthogonal with S skew from its free entries L (expRNN's parametrization; P is rebuilt
from L every forward pass, so it never drifts); Lambda = blockdiag(gamma_i R(theta_i)) 2x2 rotations
scaled by gamma_i (eigenvalues gamma_i e^{+-i theta_i}; a 1x1 block gamma when n is odd); T strictly
upper triangular, the non-normal part. W is similar to the block-upper-triangular Lambda + T, so its
eigenvalues are those of the 2x2 diagonal blocks: T's entries above the blocks add transient,
non-normal dynamics without moving them (tests/test_new_models.py checks this). As in the authors'
code, T covers every strictly-upper entry, the one inside each 2x2 block included.
Column form, T strictly upper; the authors' code multiplies row vectors with M = P (T + Lambda) P^T,
which is this W transposed (T lower there).

Training as in the paper's supplement (Tables 2-3): RMSprop; L with its own rate (group "orthogonal",
``orth_lr``); T with the default rate and its own L2 decay (group "upper", ``weight_decay.upper``,
default 1e-6: the copying setting); the loss adds delta sum_i (gamma_i - 1)^2 (option ``delta``).
Inits: S_0 Henaff (copying) or Cayley (psMNIST) as option ``init``, with L = S_0 (the authors' code
leaves L uninitialised); T = 0; gamma = 1; theta ~ U(0, 2 pi); U Xavier normal, no bias; modReLU bias
~ U(+-0.01); Xavier-normal readout. Parameters: n(n-1) + n + n d_in + n + n d_out + d_out;
copying n=128: 18,953; psMNIST n=512: 268,298.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from suite.contract import GroupSpec
from suite.errors import check_choice, check_range
from suite.models.engine import RecurrentNet, Transition
from suite.models.skew import SKEW_INITS, expm, skew
from suite.registry import register_model

NNRNN = "Kerg et al., non-normal RNNs, NeurIPS 2019, arXiv:1905.12080v2"


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


def nnrnn_params(n: int, d_in: int, d_out: int) -> int:
    return n * (n - 1) + n + n * d_in + n + n * d_out + d_out


@register_model(mission=False, family="nnRNN", published_as="nnRNN", paper=NNRNN, params=nnrnn_params, cost=1.5)
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
