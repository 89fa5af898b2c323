"""Gated baselines: LSTM and GRU, on torch.nn.LSTM / nn.GRU's parameters.

``engine``: "torch" runs torch's module (cuDNN on GPU); "fused" runs the hand-written kernel of
``models.kernels.fused_gated`` (same equations, same parameters; faster than torch's on CPU); "auto" picks the
fused kernel on CPU and torch's module elsewhere.

They have no single recurrent matrix; ``recurrent_matrix`` returns the candidate block
(LSTM: the cell-input "g" block of weight_hh; GRU: the "n" block) for the spectrum pictures, with
``constraint = None`` so no orthogonality is asserted of it.
"""

from __future__ import annotations

import torch
from torch import nn

from suite import papers
from suite.contract import RecurrentModel, full_precision
from suite.errors import check_choice, check_range
from suite.papers import QUICK_TUNED
from suite.registry import Preset, Published, SpeedRow, register_model

ENGINES = {"lstm": ("auto", "torch"), "gru": ("auto", "fused", "torch")}


class Gated(RecurrentModel):
    def __init__(self, cell: str, d_in: int, d_out: int, hidden: int, output: str, forget_bias: float = 0.0,
                 engine: str = "auto"):
        super().__init__(d_in, d_out, hidden, output)
        check_range("hidden", hidden, low=1, where=cell)
        check_choice("engine", engine, ENGINES[cell], where=cell)
        self.cell = cell
        self.engine = engine
        self.rnn = {"lstm": nn.LSTM, "gru": nn.GRU}[cell](d_in, hidden, batch_first=True)
        self.readout = nn.Linear(hidden, d_out)
        if forget_bias:  # TF's BasicLSTMCell adds a constant 1 to the forget gate; here: its initial value
            with torch.no_grad():
                self.rnn.bias_ih_l0[hidden: 2 * hidden] += forget_bias

    def recurrent_matrix(self) -> torch.Tensor:
        n = self.hidden
        return self.rnn.weight_hh_l0[2 * n: 3 * n]

    def recurrent_parameter_count(self) -> int:
        return self.rnn.weight_hh_l0.numel()

    def step_product(self) -> tuple[int, int]:
        rows, n = self.rnn.weight_hh_l0.shape
        return n, rows // n  # 4n (LSTM) or 3n (GRU) gate rows

    def _readout(self, H: torch.Tensor) -> torch.Tensor:
        return self.readout(H[:, -1] if self.output == "last" else H)

    def _fused(self, x: torch.Tensor) -> bool:
        if self.engine == "auto":
            return x.device.type == "cpu" and "fused" in ENGINES[self.cell]
        return self.engine == "fused"

    def forward(self, x):
        # under a bf16 autocast (precision="bf16") only the readout runs in bfloat16: the recurrence, and the
        # input projection inside torch's layer, stay float32
        if not self._fused(x):
            with full_precision(x):
                H = self.rnn(x)[0]
            return self._readout(H)
        from suite.models.kernels import fused_gated

        r = self.rnn  # time-major inside (x is transposed while it is narrow); only (T, B, d_out) goes back
        with full_precision(x):
            H = fused_gated.gru(x.transpose(0, 1).contiguous(), r.weight_ih_l0, r.weight_hh_l0, r.bias_ih_l0,
                                r.bias_hh_l0)
        if self.output == "last":
            return self.readout(H[-1])
        return self.readout(H).transpose(0, 1)

    def trajectory(self, x):
        # One step at a time, feeding h_t itself to the next step, so that dL/dh_t is the total
        # derivative (through later steps), not only the readout's share.
        B, n = x.shape[0], self.hidden
        h = x.new_zeros(B, n)
        c = x.new_zeros(B, n)
        hs = []
        with full_precision(x):
            for xt in x.unbind(1):
                if self.cell == "lstm":
                    _, (h_n, c_n) = self.rnn(xt[:, None], (h[None], c[None]))
                    c = c_n[0]
                else:
                    _, h_n = self.rnn(xt[:, None], h[None])
                h = h_n[0]
                hs.append(h)
        return self._readout(torch.stack(hs, 1)), hs


def _gated_params(gates: int):
    """gates x (n(d_in + n) + n) plus torch's second bias set (gates x n), and the readout."""
    return lambda n, d_in, d_out: gates * (n * (d_in + n) + n) + gates * n + n * d_out + d_out


# Rates the quick scale's search chose for lstm; gru and the vanilla rnn (models/rnn.py), which it did
# not try, take them too (README: "The main job").
QUICK_RATES = (
    Preset("quick", "adding", {"lr": 1e-3}, QUICK_TUNED),
    Preset("quick", "mnist1d", {"lr": 4.64e-3}, QUICK_TUNED),
)
_SCORNN = f"{papers.SCORNN}, section 5 and the authors' code"
_EXPRNN = f"{papers.EXPRNN}, section 5 and its code"
LSTM_PRESETS = QUICK_RATES + (
    Preset("paper", "copying|adding", {"model.forget_bias": 1.0, "rmsprop_alpha": 0.9},
           _SCORNN + " (its LSTM baseline: TF BasicLSTMCell, forget bias 1)"),
    Preset("paper", "copying", {"hidden": 68, "lr": 1e-3}, _SCORNN + " (its LSTM baseline, n=68)"),
    Preset("paper", "*mnist", {"hidden": 128, "lr": 1e-3, "rmsprop_alpha": 0.99},
           _EXPRNN + " (LSTM baseline: torch RMSprop, no clipping)"),
)
_TABLE = f"{papers.EXPRNN}, MNIST / P-MNIST test-accuracy table (table number unverified)"
_SCORNN_TABLE = f"{papers.SCORNN}, MNIST results table"
_SIZES = (128, 256, 512)


def _lstm(task, values, source, protocol, verified=True, note=""):
    return tuple(Published(task, "LSTM", n, "accuracy", v, source, verified, note, protocol)
                 for n, v in zip(_SIZES, values))


LSTM_PUBLISHED = (
    *_lstm("mnist", (0.819, 0.888, 0.919), _TABLE, "exprnn-mnist", note="RMSprop, no gradient clipping"),
    *_lstm("pmnist", (0.795, 0.888, 0.918), _TABLE, "exprnn-pmnist", note="RMSprop, no gradient clipping"),
    *_lstm("mnist", (0.987, 0.989, 0.985), _SCORNN_TABLE, "scornn-mnist", verified=False),
    *_lstm("pmnist", (0.920, 0.929, 0.920), _SCORNN_TABLE, "scornn-pmnist", verified=False),
    *(Published("timit", "LSTM", n, "mse", v, "scoRNN and expRNN papers' TIMIT tables", False,
                "test MSE; protocol not defined in the suite") for n, v in zip((84, 120, 158), (14.30, 12.95, 12.62))),
)


@register_model(family="LSTM", published_as="LSTM", params=_gated_params(4), presets=LSTM_PRESETS,
                published=LSTM_PUBLISHED, speed=(SpeedRow("cpu"), SpeedRow("gpu")))
def lstm(d_in: int, d_out: int, output: str = "last", hidden: int = 128, forget_bias: float = 0.0,
         engine: str = "auto") -> Gated:
    """torch.nn.LSTM with a linear readout (torch's default init, two bias sets)."""
    return Gated("lstm", d_in, d_out, hidden, output, forget_bias, engine)


@register_model(family="GRU", params=_gated_params(3), presets=QUICK_RATES)
def gru(d_in: int, d_out: int, output: str = "last", hidden: int = 128, engine: str = "auto") -> Gated:
    """torch.nn.GRU with a linear readout (engine "auto": a fused kernel on CPU, cuDNN on GPU)."""
    return Gated("gru", d_in, d_out, hidden, output, engine=engine)
