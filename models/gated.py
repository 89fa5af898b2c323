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

from suite.contract import RecurrentModel, full_precision
from suite.errors import check_choice, check_range
from suite.registry import register_model

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


@register_model(family="LSTM", published_as="LSTM", params=_gated_params(4))
def lstm(d_in: int, d_out: int, output: str = "last", hidden: int = 128, forget_bias: float = 0.0,
         engine: str = "auto") -> Gated:
    """torch.nn.LSTM with a linear readout (torch's default init, two bias sets)."""
    return Gated("lstm", d_in, d_out, hidden, output, forget_bias, engine)


@register_model(family="GRU", params=_gated_params(3))
def gru(d_in: int, d_out: int, output: str = "last", hidden: int = 128, engine: str = "auto") -> Gated:
    """torch.nn.GRU with a linear readout (engine "auto": a fused kernel on CPU, cuDNN on GPU)."""
    return Gated("gru", d_in, d_out, hidden, output, engine=engine)
