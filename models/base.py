"""The model contract: every registered model is a ``RecurrentModel``.

A model maps inputs ``(B, T, d_in)`` to per-step outputs ``(B, T, d_out)`` (``output="sequence"``) or
last-step outputs ``(B, d_out)`` (``output="last"``), as the task asks. Besides ``forward`` it exposes:

- ``recurrent_matrix()``: the n x n recurrent matrix (real, or complex for unitary models), freshly
  computed, for spectra and orthogonality checks; ``constraint`` says what it should satisfy
  (``"orthogonal"``, ``"unitary"`` or ``None``).
- ``parameter_groups()``: ``{"orthogonal": [...], "default": [...]}``. The runner gives the
  orthogonal/unitary group its own optimizer and learning rate, as the papers do.
- ``after_step(step)``: a hook run after every optimizer step (dynamic trivialization moves its base
  here); the default does nothing.
- ``trajectory(x)``: ``(output, [h_1, ..., h_T])`` with every hidden state in the autograd graph, for
  the gradient-norm profile ||dL/dh_t||. Slower than ``forward``; used at evaluation only.

Parameter counts come from the module (``sum(p.numel())``, the stored numbers); the recurrent count is
what the recurrent part stores. ``degrees_of_freedom()`` is the dimension of what is learned: the same
for most models, smaller for a parametrization that stores a full n x n matrix for the n(n-1)/2
dimensions of O(n) (geotorch's and torch's).

Factories are registered with ``@register_model`` and take ``d_in``, ``d_out``, ``output`` and
keyword options (``hidden`` first); unsupported settings raise ``ConfigError`` at construction.
"""

from __future__ import annotations

import torch
from torch import nn

from suite.errors import check_choice

OUTPUTS = ("last", "sequence")


class RecurrentModel(nn.Module):
    constraint: str | None = None

    def __init__(self, d_in: int, d_out: int, hidden: int, output: str):
        super().__init__()
        check_choice("output", output, OUTPUTS)
        self.d_in, self.d_out, self.hidden, self.output = d_in, d_out, hidden, output

    def recurrent_matrix(self) -> torch.Tensor:
        raise NotImplementedError

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"orthogonal": [], "default": list(self.parameters())}

    def after_step(self, step: int) -> None:
        """Run after each optimizer step."""

    def trajectory(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        raise NotImplementedError

    def recurrent_parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameter_groups()["orthogonal"])

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def degrees_of_freedom(self) -> int:
        """Free real parameters: the stored count, less what a parametrization stores beyond the
        dimension of its manifold (an n x n matrix constrained to O(n) has n(n-1)/2)."""
        return self.parameter_count()


def orthogonality_error(W: torch.Tensor) -> float:
    """max |W^H W - I| (W^T W for real W), computed in float64."""
    W = W.detach().to(torch.complex128 if W.is_complex() else torch.float64)
    eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device)
    return (W.mH @ W - eye).abs().max().item()
