"""coRNN, coupled oscillatory RNN (Rusch & Mishra, ICLR 2021, arXiv:2010.00951v3).

A second-order ODE y'' = tanh(W y + W_z y' + V u + b) - gamma y - eps y', discretized as the
authors' code does (explicit in the damping):

    z_n = z_{n-1} + dt [tanh(W y_{n-1} + W_z z_{n-1} + V u_n + b) - gamma y_{n-1} - eps z_{n-1}]
    y_n = y_{n-1} + dt z_n,      y_0 = z_0 = 0,   readout on y

W, W_z, V, b are one linear map of (u, z, y) (torch's default init), so the parameter count is the
paper's n(d_in + 2n) + n + n d_out + d_out (psMNIST n=256: 134,154). It has no constraint: it is
the non-orthogonal long-memory baseline. The input term V u + b is computed for all steps at once.

``recurrent_matrix()`` is the 2n x 2n Jacobian of one step (y, z) -> (y', z') at the origin, where
tanh' = 1: [[I + dt^2 (W - gamma I), dt((1 - dt eps) I + dt W_z)], [dt (W - gamma I),
(1 - dt eps) I + dt W_z]]; its spectrum is what the report draws. The hidden state h = [y, z].
"""

from __future__ import annotations

import torch
from torch import nn

from suite import papers
from suite.contract import GroupSpec, RecurrentModel, full_precision
from suite.errors import check_range
from suite.registry import Preset, Published, SpeedRow, register_model

CODE = f"{papers.CORNN}, the authors' code (defaults of its scripts)"
# Adam, no clipping; the code's lr / 10 after epoch 100 is not reproduced
PRESETS = (
    Preset("quick", "*", {"optimizer": "adam"}, CODE + " (Adam)"),
    Preset("paper", "mnist", {"hidden": 256, "optimizer": "adam", "lr": 0.0021, "model.dt": 0.042, "model.gamma": 2.7,
                              "model.epsilon": 4.7}, CODE + " (sMNIST, n=256)"),
    Preset("paper", "pmnist", {"hidden": 256, "optimizer": "adam", "lr": 0.0054, "model.dt": 0.076,
                               "model.gamma": 0.4, "model.epsilon": 8.0}, CODE + " (psMNIST, n=256)"),
    Preset("paper", "adding", {"hidden": 128, "optimizer": "adam", "lr": 0.02, "model.dt": 0.06, "model.gamma": 66.0,
                               "model.epsilon": 15.0}, CODE + " (adding T=100, n=128)"),
)
_README = f"{papers.CORNN}, as stated in the authors' code README"
PUBLISHED = (Published("mnist", "coRNN", 256, "accuracy", 0.994, _README, False, "paper table unverified"),
             Published("pmnist", "coRNN", 256, "accuracy", 0.973, _README, False, "paper table unverified"))


class CoRNN(RecurrentModel):
    GROUPS = {"default": GroupSpec()}

    def __init__(self, d_in: int, d_out: int, hidden: int, output: str, dt: float, gamma: float,
                 epsilon: float):
        super().__init__(d_in, d_out, hidden, output)
        self.dt, self.gamma, self.epsilon = dt, gamma, epsilon
        self.cell = nn.Linear(d_in + 2 * hidden, hidden)  # acts on cat(u, z, y), as in the paper's code
        self.readout = nn.Linear(hidden, d_out)

    def parameter_groups(self):
        return {"default": list(self.parameters())}

    def _blocks(self):
        n, d = self.hidden, self.d_in
        w = self.cell.weight
        return w[:, :d], w[:, d: d + n], w[:, d + n:]  # V, W_z, W

    def recurrent_matrix(self) -> torch.Tensor:
        n, dt = self.hidden, self.dt
        _, Wz, Wy = self._blocks()
        eye = torch.eye(n, dtype=Wy.dtype, device=Wy.device)
        dz_dy = dt * (Wy - self.gamma * eye)
        dz_dz = (1 - dt * self.epsilon) * eye + dt * Wz
        return torch.cat([torch.cat([eye + dt * dz_dy, dt * dz_dz], 1), torch.cat([dz_dy, dz_dz], 1)], 0)

    def _inputs(self, x: torch.Tensor) -> torch.Tensor:
        V, _, _ = self._blocks()
        return (x @ V.mT + self.cell.bias).transpose(0, 1)  # (T, B, n): V u + b hoisted out of the loop

    def _positions(self, x: torch.Tensor) -> list[torch.Tensor]:
        """y_1..y_T, the fast path: two matmuls and a few fused elementwise ops per step."""
        dt, keep = self.dt, 1 - self.dt * self.epsilon
        _, Wz, Wy = self._blocks()
        Wzt, Wyt = Wz.mT, Wy.mT
        y = z = x.new_zeros(x.shape[0], self.hidden)
        ys = []
        for u in self._inputs(x).unbind(0):
            pre = torch.addmm(torch.addmm(u, z, Wzt), y, Wyt)
            z = torch.add(z * keep, torch.tanh(pre) - self.gamma * y, alpha=dt)
            y = torch.add(y, z, alpha=dt)
            ys.append(y)
        return ys

    def _states(self, x: torch.Tensor) -> list[torch.Tensor]:
        """h_t = [y_t, z_t], each h_t the input of the next step, so dL/dh_t is the total derivative."""
        n, dt = self.hidden, self.dt
        _, Wz, Wy = self._blocks()
        Wzy = torch.cat([Wz, Wy], 1).mT
        h = x.new_zeros(x.shape[0], 2 * n)
        hs = []
        for u in self._inputs(x).unbind(0):
            y, z = h[:, :n], h[:, n:]
            pre = torch.addmm(u, torch.cat([z, y], 1), Wzy)
            z = z + dt * (torch.tanh(pre) - self.gamma * y - self.epsilon * z)
            h = torch.cat([y + dt * z, z], 1)
            hs.append(h)
        return hs

    def _readout(self, ys: list[torch.Tensor]) -> torch.Tensor:
        n = self.hidden
        if self.output == "last":
            return self.readout(ys[-1][:, :n])
        return self.readout(torch.stack(ys, 1)[..., :n])

    def forward(self, x):
        with full_precision(x):  # under a bf16 autocast only the readout runs in bfloat16
            ys = self._positions(x)
        return self._readout(ys)

    def trajectory(self, x):
        with full_precision(x):
            hs = self._states(x)
        return self._readout(hs), hs


def cornn_params(n: int, d_in: int, d_out: int) -> int:
    return n * (d_in + 2 * n) + n + n * d_out + d_out


@register_model(mission=False, family="coRNN", published_as="coRNN", paper=papers.CORNN, params=cornn_params, cost=2.0,
                presets=PRESETS, published=PUBLISHED, speed=(SpeedRow("cpu"), SpeedRow("gpu")))
def cornn(d_in: int, d_out: int, output: str = "last", hidden: int = 128, dt: float = 0.042,
          gamma: float = 2.7, epsilon: float = 4.7) -> CoRNN:
    """coRNN: coupled oscillators y'' = tanh(W y + W_z y' + V u + b) - gamma y - eps y' (sMNIST dt, gamma, eps)."""
    check_range("hidden", hidden, low=1, where="cornn")
    for name, v in (("dt", dt), ("gamma", gamma), ("epsilon", epsilon)):
        check_range(name, v, low=0, integer=False, where="cornn")
    return CoRNN(d_in, d_out, hidden, output, dt, gamma, epsilon)
