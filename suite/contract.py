"""The model contract: every registered model is a ``RecurrentModel``.

A model maps inputs ``(B, T, d_in)`` to per-step outputs ``(B, T, d_out)`` (``output="sequence"``) or
last-step outputs ``(B, d_out)`` (``output="last"``), as the task asks. What it must provide is
abstract (``forward``, ``recurrent_matrix``, ``trajectory``); the registry refuses a factory whose
annotated return class leaves any of them unimplemented, so a broken model fails at import, not in a
sweep. Besides ``forward`` it exposes:

- ``recurrent_matrix()``: the recurrent matrix (real, or complex for unitary models), freshly
  computed, for spectra and orthogonality checks; ``constraint`` says what it satisfies
  (``"orthogonal"``, ``"unitary"``, ``"stable"`` = every eigenvalue inside the unit disk, or ``None``).
- ``parameter_groups()``: a partition of the parameters into named groups, e.g.
  ``{"orthogonal": [...], "default": [...]}``; nnRNN adds ``"upper"``, scuRNN ``"phases"``. Each group
  gets its own optimizer; ``GROUPS`` (a class attribute of ``GroupSpec``s) says which run settings a
  group falls back to and may give it an update rule of its own (the full-capacity uRNN's Cayley
  retraction). Presets and ``--set`` address a group's settings as ``lr.<group>``,
  ``optimizer.<group>``, ``weight_decay.<group>``.
- ``regularizer()``: a term added to the task loss (nnRNN's penalty on its blocks' scale factors); default 0.
- ``after_step(step)``: a hook run after every optimizer step (dynamic trivialization moves its base
  here); the default does nothing.
- ``trajectory(x)``: ``(output, [h_1, ..., h_T])`` with every hidden state in the autograd graph, for
  the gradient-norm profile ||dL/dh_t||. Slower than ``forward``; used at evaluation only.
- ``tracks_orthogonality``: whether the runner records ||W^H W - I|| (constrained models, and free
  square recurrences started orthogonal, whose drift is worth seeing).
- Mixed precision: a run with ``precision="bf16"`` calls ``forward`` (and ``trajectory``) under a
  bfloat16 autocast; a model keeps what must stay float32 (its recurrent matrix, its recurrence) inside
  ``full_precision(x)``.
- ``step_product()``: the shape of the product each time step cannot avoid, h_{t-1} W^T, as (state
  width, gate rows per state unit), or None for a model without one (a parallel scan); ``suite speed``
  times a step against the floor this implies.
- ``check(device)``: refuse, with a ConfigError saying why, a model that cannot run on ``device`` as
  configured (a Triton engine without a CUDA device); called when a sweep is planned.

Parameter counts come from the module (``sum(p.numel())``, the stored numbers); the recurrent count is
what the recurrent part stores. ``degrees_of_freedom()`` is the dimension of what is learned: the same
for most models, smaller for a parametrization that stores a full n x n matrix for the n(n-1)/2
dimensions of O(n) (geotorch's and torch's).

Factories are registered with ``@register_model`` and take ``d_in``, ``d_out``, ``output`` and
keyword options (``hidden`` first); unsupported settings raise ``ConfigError`` at construction.
"""

from __future__ import annotations

import abc
import contextlib
from dataclasses import dataclass

import torch
from torch import nn

from suite.errors import SuiteError, check_choice

OUTPUTS = ("last", "sequence")
CONSTRAINTS = ("orthogonal", "unitary", "stable", None)
BASE_GROUPS = ("default", "orthogonal")  # the groups whose settings are the run's lr/optimizer, orth_*


@dataclass(frozen=True)
class GroupSpec:
    """How a parameter group is optimized, as the model's paper does it.

    ``base``: the run settings the group falls back to, "default" (``optimizer``, ``lr``) or
    "orthogonal" (``orth_optimizer``, ``orth_lr``). ``optimizer``/``lr``/``weight_decay``: the
    model's own defaults for the group (a preset or ``--set lr.<group>=...`` still wins).
    ``update``: an optimizer class of the model's own that replaces the generic one, built as
    ``update(params, lr=..., precondition=<optimizer name>, alpha=<rmsprop_alpha>)``; it must keep
    the group on its manifold (the full-capacity uRNN's multiplicative Cayley step).
    ``optimizers``: the optimizer names valid for this group (None: all)."""

    base: str = "default"
    optimizer: str | None = None
    lr: float | None = None
    weight_decay: float = 0.0
    update: type | None = None
    optimizers: tuple[str, ...] | None = None


class UpdateRuleError(SuiteError, TypeError):
    """A parameter with an update rule of its own was about to be stepped by another optimizer."""


_RULE = "_suite_update"  # on a guarded parameter: (the optimizer class that must step it, whose it is)
_guard: list = []  # the handle of the process-wide optimizer step pre-hook, once installed


def require_update(param: nn.Parameter, update: type, owner: str) -> None:
    """Let only an optimizer of class ``update`` step ``param``: any other optimizer's ``step()``
    raises UpdateRuleError before it changes anything. For a parameter that a generic optimizer would
    silently move off its manifold (the full-capacity uRNN's W on U(n)): a user's own loop with
    ``torch.optim.RMSprop(model.parameters())`` fails at its first step instead of training a model that
    is no longer unitary. Checked by one process-wide step pre-hook (installed on first use; a loop over
    each stepped optimizer's parameters, nothing else)."""
    setattr(param, _RULE, (update, owner))
    if not _guard:
        from torch.optim.optimizer import register_optimizer_step_pre_hook

        _guard.append(register_optimizer_step_pre_hook(_check_update))


def _check_update(optimizer: torch.optim.Optimizer, args, kwargs) -> None:
    for group in optimizer.param_groups:
        for p in group["params"]:
            rule = getattr(p, _RULE, None)
            if rule is not None and not isinstance(optimizer, rule[0]):
                update, owner = rule
                raise UpdateRuleError(
                    f"{type(optimizer).__module__}.{type(optimizer).__name__} was about to step {owner}'s "
                    f"parameter of shape {tuple(p.shape)}, which only its own update {update.__name__} keeps on "
                    f"its manifold (a generic step leaves it); nothing was changed. Build the optimizers with "
                    f"suite.make_optimizers(model, lr=..., orth_lr=...): it gives that parameter its "
                    f"{update.__name__} and every other parameter a generic optimizer")


class RecurrentModel(nn.Module, abc.ABC):
    constraint: str | None = None
    GROUPS: dict[str, GroupSpec] = {"default": GroupSpec(), "orthogonal": GroupSpec(base="orthogonal")}

    def __init__(self, d_in: int, d_out: int, hidden: int, output: str):
        super().__init__()
        check_choice("output", output, OUTPUTS)
        self.d_in, self.d_out, self.hidden, self.output = d_in, d_out, hidden, output

    @abc.abstractmethod
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, T, d_in) -> (B, d_out) or (B, T, d_out)."""

    @abc.abstractmethod
    def recurrent_matrix(self) -> torch.Tensor:
        """The recurrent matrix, freshly computed (square)."""

    @abc.abstractmethod
    def trajectory(self, x: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        """(output, [h_1, ..., h_T]) with every h_t in the autograd graph."""

    @property
    def tracks_orthogonality(self) -> bool:
        return self.constraint in ("orthogonal", "unitary")

    def parameter_groups(self) -> dict[str, list[nn.Parameter]]:
        return {"orthogonal": [], "default": list(self.parameters())}

    def group_spec(self, name: str) -> GroupSpec:
        return self.GROUPS.get(name) or GroupSpec(base="orthogonal" if name == "orthogonal" else "default")

    def regularizer(self) -> torch.Tensor | float:
        """Added to the task loss in training; 0 unless the paper's objective has a penalty."""
        return 0.0

    def after_step(self, step: int) -> None:
        """Run after each optimizer step."""

    def step_product(self) -> tuple[int, int] | None:
        """(state width, gate rows per unit) of the per-step product h_{t-1} W^T; None: no such product."""
        return None

    def check(self, device: torch.device) -> None:
        """Raise ConfigError if the model, as configured, cannot run on ``device``."""

    def recurrent_parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameter_groups().get("orthogonal", []))

    def parameter_count(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def degrees_of_freedom(self) -> int:
        """Free real parameters: the stored count, less what a parametrization stores beyond the
        dimension of its manifold (an n x n matrix constrained to O(n) has n(n-1)/2)."""
        return self.parameter_count()


def full_precision(x: torch.Tensor) -> contextlib.AbstractContextManager:
    """Autocast off on ``x``'s device while the context lasts, where a bf16 autocast is on (a run with
    ``precision="bf16"``): what a model keeps in float32 runs inside it (the recurrent matrix, so that it
    stays orthogonal to float32 rounding, and the recurrence); elsewhere a context that does nothing."""
    kind = x.device.type
    if kind in ("cpu", "cuda") and torch.is_autocast_enabled(kind):
        return torch.autocast(kind, enabled=False)
    return contextlib.nullcontext()


def orthogonality_error(W: torch.Tensor) -> float:
    """max |W^H W - I| (W^T W for real W), computed in float64."""
    W = W.detach().to(torch.complex128 if W.is_complex() else torch.float64)
    eye = torch.eye(W.shape[-1], dtype=W.dtype, device=W.device)
    return (W.mH @ W - eye).abs().max().item()


def spectral_radius(W: torch.Tensor) -> float:
    """max |lambda(W)|, in float64 (diagonal W: max |W_ii|)."""
    W = W.detach().to(torch.complex128 if W.is_complex() else torch.float64)
    return torch.linalg.eigvals(W).abs().max().item()
