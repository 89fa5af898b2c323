"""LRU, the linear recurrent unit (Orvieto, Smith, Gu, Fernando, Gulcehre, Pascanu & De, ICML 2023,
arXiv:2303.06349v1).

One layer (eq. (7), App. A), with a complex diagonal state of size N = ``hidden``:

    x_k = Lambda x_{k-1} + exp(gamma_log) * (B u_k),     y_k = Re(C x_k) + D * u_k
    Lambda = diag(exp(-exp(nu_log) + i exp(theta_log)))

so |lambda_j| = exp(-exp(nu_log_j)) < 1 for every parameter value (the "stable" constraint).
Init (Lemma 2, the ring init): |lambda| uniform on the ring [r_min, r_max] by area,
nu = -log(u1 (r_max^2 - r_min^2) + r_min^2) / 2, phases theta = max_phase u2; gamma normalization
gamma = sqrt(1 - |lambda|^2) (Prop. 3). B, C complex with real and imaginary parts ~ N(0, 1/(2H)),
N(0, 1/N), D ~ N(0, 1) (the minimal-LRU reimplementation's choice of the paper's "Glorot, halved").

Because the recurrence is linear and diagonal it runs as a parallel associative scan over time with
(a_i, b_i) . (a_j, b_j) = (a_j a_i, a_j b_i + b_j): log2(T) levels, not a T-step loop.

The model (section 2.2, simplified for these tasks): a linear encoder to width H, ``depth`` residual
blocks [LayerNorm -> LRU -> GLU (Linear(H, 2H), a * sigmoid(b)) -> dropout] + skip, a linear decoder.
``depth=1`` is one layer; the paper stacks 6. Parameters per block: 3N + 4NH + H (LRU) + 2(H^2 + H)
(GLU) + 2H (norm); plus the encoder d_in H + H and the decoder H d_out + d_out.

The paper trains the recurrent parameters (nu, theta, gamma, B) at a reduced rate without weight
decay: they form the group "recurrent" (``lr.recurrent``), the rest "default".
``recurrent_matrix()`` is diag(Lambda) of all blocks (N depth x N depth).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from suite import papers
from suite.contract import GroupSpec, RecurrentModel
from suite.errors import ConfigError, check_range
from suite.registry import Preset, SpeedRow, register_model

SETTINGS = (f"{papers.LRU} (no copying/adding/MNIST runs there: the settings are the minimal-LRU "
            "reimplementation's defaults, AdamW and the recurrent lr factor 0.5)")
PRESETS = (
    Preset("quick", "*", {"optimizer": "adam", "lr.recurrent": 5e-4}, SETTINGS),
    Preset("paper", "*", {"model.depth": 4, "model.width": 256, "hidden": 128, "model.r_min": 0.0, "model.r_max": 0.999,
                          "model.dropout": 0.1, "optimizer": "adamw", "lr": 1e-3, "lr.recurrent": 5e-4,
                          "weight_decay.default": 0.05}, SETTINGS + " (r_max 0.999: the suite keeps |lambda| < 1)"),
)


def associative_scan(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """x_k = a_k x_{k-1} + b_k with x_0 = 0 along dim 0, by Hillis-Steele doubling (log2 T levels);
    ``a`` broadcasts against ``b``. Out of place, so autograd sees it."""
    T = b.shape[0]
    a = a.expand(T, *a.shape[1:]) if a.shape[0] == 1 else a
    shift = 1
    while shift < T:
        b = torch.cat([b[:shift], a[shift:] * b[:-shift] + b[shift:]], 0)
        a = torch.cat([a[:shift], a[shift:] * a[:-shift]], 0)
        shift *= 2
    return b


class LRULayer(nn.Module):
    def __init__(self, width: int, state: int, r_min: float, r_max: float, max_phase: float):
        super().__init__()
        H, N = width, state
        u1, u2 = torch.rand(N), torch.rand(N)
        nu = -0.5 * torch.log(u1 * (r_max ** 2 - r_min ** 2) + r_min ** 2)
        theta = max_phase * u2.clamp_min(1e-4)  # log(0) = -inf (the paper's pitfall at u = 0)
        self.nu_log = nn.Parameter(torch.log(nu))
        self.theta_log = nn.Parameter(torch.log(theta))
        self.gamma_log = nn.Parameter(0.5 * torch.log(1 - torch.exp(-2 * nu)))  # sqrt(1 - |lambda|^2)
        self.B = nn.Parameter(torch.randn(2, N, H) / math.sqrt(2 * H))  # (Re, Im)
        self.C = nn.Parameter(torch.randn(2, H, N) / math.sqrt(N))
        self.D = nn.Parameter(torch.randn(H))

    def eigenvalues(self) -> torch.Tensor:
        # |lambda| = exp(-nu) < 1 needs nu above the precision's epsilon: a smaller nu rounds |lambda| to
        # exactly 1 (in float32 once nu_log < -17); nu is floored there, where its gradient stops
        nu = torch.exp(self.nu_log).clamp_min(torch.finfo(self.nu_log.dtype).eps)
        return torch.polar(torch.exp(-nu), torch.exp(self.theta_log))

    def _inputs(self, u: torch.Tensor) -> torch.Tensor:
        """exp(gamma_log) * (B u_k): (T, B, N) complex, for u (T, B, H)."""
        Bc = torch.complex(self.B[0], self.B[1]) * torch.exp(self.gamma_log)[:, None]
        return u.to(Bc.dtype) @ Bc.mT

    def _outputs(self, x: torch.Tensor, u: torch.Tensor) -> torch.Tensor:
        Cc = torch.complex(self.C[0], self.C[1])
        return (x @ Cc.mT).real + self.D * u

    def forward(self, u: torch.Tensor) -> torch.Tensor:
        """u: (T, B, H) -> y: (T, B, H)."""
        x = associative_scan(self.eigenvalues()[None, None], self._inputs(u))
        return self._outputs(x, u)

    def sequential(self, u: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """The same map by the plain loop, keeping each x_k in the graph (for the gradient profile)."""
        lam, bu = self.eigenvalues(), self._inputs(u)
        x = bu.new_zeros(bu.shape[1:])
        xs = []
        for b in bu.unbind(0):
            x = lam * x + b
            xs.append(x)
        return self._outputs(torch.stack(xs), u), xs


class Block(nn.Module):
    def __init__(self, width, state, r_min, r_max, max_phase, dropout):
        super().__init__()
        self.norm = nn.LayerNorm(width)
        self.lru = LRULayer(width, state, r_min, r_max, max_phase)
        self.glu = nn.Linear(width, 2 * width)
        self.drop = nn.Dropout(dropout)

    def mix(self, y: torch.Tensor) -> torch.Tensor:
        a, b = self.glu(y).chunk(2, -1)
        return self.drop(a * torch.sigmoid(b))


class LRUNet(RecurrentModel):
    constraint = "stable"
    GROUPS = {"default": GroupSpec(), "recurrent": GroupSpec()}

    def __init__(self, d_in, d_out, hidden, output, width, depth, r_min, r_max, max_phase, dropout):
        super().__init__(d_in, d_out, hidden, output)
        self.encoder = nn.Linear(d_in, width)
        self.blocks = nn.ModuleList(Block(width, hidden, r_min, r_max, max_phase, dropout) for _ in range(depth))
        self.decoder = nn.Linear(width, d_out)

    def parameter_groups(self):
        rec = [p for b in self.blocks for p in (b.lru.nu_log, b.lru.theta_log, b.lru.gamma_log, b.lru.B)]
        ids = {id(p) for p in rec}
        return {"recurrent": rec, "default": [p for p in self.parameters() if id(p) not in ids]}

    def recurrent_parameter_count(self) -> int:
        return sum(p.numel() for b in self.blocks for p in b.lru.parameters())

    def recurrent_matrix(self) -> torch.Tensor:
        return torch.diag(torch.cat([b.lru.eigenvalues() for b in self.blocks]))

    def _run(self, x: torch.Tensor, keep: bool):
        h = self.encoder(x).transpose(0, 1)  # (T, B, H)
        states = None
        for block in self.blocks:
            if keep and states is None:
                y, states = block.lru.sequential(block.norm(h))
            else:
                y = block.lru(block.norm(h))
            h = h + block.mix(y)
        out = self.decoder(h[-1] if self.output == "last" else h.transpose(0, 1))
        return out, states

    def forward(self, x):
        return self._run(x, keep=False)[0]

    def trajectory(self, x):
        """The first block's states x_k (complex), each in the graph."""
        return self._run(x, keep=True)


def lru_params(n: int, d_in: int, d_out: int, width: int = 64, depth: int = 1) -> int:
    """The paper's count: encoder, ``depth`` blocks (LayerNorm, the LRU's nu, theta, gamma, complex B and
    C, D, the GLU's linear map), decoder."""
    H = width
    block = 2 * H + (3 * n + 4 * n * H + H) + 2 * (H * H + H)
    return d_in * H + H + depth * block + H * d_out + d_out


DEFAULT_WIDTH = 64


@register_model(mission=False, family="LRU", published_as="LRU", constraint="stable", paper=papers.LRU,
                params=lru_params, presets=PRESETS, speed=(SpeedRow("cpu"), SpeedRow("gpu")))
def lru(d_in: int, d_out: int, output: str = "last", hidden: int = 128, width: int = DEFAULT_WIDTH,
        depth: int = 1, r_min: float = 0.9, r_max: float = 0.999, max_phase: float = 2 * math.pi,
        dropout: float = 0.0) -> LRUNet:
    """LRU: complex diagonal linear recurrence (ring init, gamma normalization), parallel scan; depth blocks."""
    check_range("hidden", hidden, low=1, where="lru")
    check_range("width", width, low=1, where="lru")
    check_range("depth", depth, low=1, where="lru")
    check_range("r_max", r_max, low=0, high=1, integer=False, where="lru")
    check_range("r_min", r_min, low=0, high=r_max, integer=False, where="lru")
    if r_max >= 1:
        raise ConfigError(f"invalid r_max={r_max!r} for lru: must be below 1 (|lambda| < 1)")
    check_range("max_phase", max_phase, low=0, high=2 * math.pi, integer=False, where="lru")
    check_range("dropout", dropout, low=0, high=1, integer=False, where="lru")
    return LRUNet(d_in, d_out, hidden, output, width, depth, r_min, r_max, max_phase, dropout)
