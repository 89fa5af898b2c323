"""The one recurrent engine every orthogonal/unitary model runs on.

    h_t = sigma(W h_{t-1} + U x_t + b)

Models differ only in the ``Transition`` that makes W (and in sigma), so comparisons are fair:
W is computed once per forward pass, never per time step; the input projection U x_t is hoisted out of
the loop; the loop iterates with ``unbind`` (indexing ``xu[t]`` is ~6x slower on CPU). Row-vector form
is used inside: ``h_t = sigma(h_{t-1} W^T + u_t)``, so W keeps the papers' column convention.

``recurrence`` dispatches to a fused autograd kernel (``models.kernels.fused``; Triton on CUDA) where the
activation allows, and keeps ``reference_recurrence`` as the readable reference implementation.
"""

from __future__ import annotations

import torch
from torch import nn

from suite.contract import RecurrentModel, full_precision
from suite.errors import ConfigError, check_choice

ENGINES = ("auto", "fused", "triton", "triton-tf32", "triton-bf16", "reference")


class Activation(nn.Module):
    """sigma with its per-unit bias b. ``fold_bias``: b is added to U x_t before the loop."""

    kind = ""
    fold_bias = True

    def __init__(self, n: int, complex: bool = False):
        super().__init__()
        self.complex = complex
        self.bias = nn.Parameter(torch.zeros(n))

    def step(self, z: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class ModReLU(Activation):
    """sigma(z) = sign(z) relu(|z| + b); for complex z, sign(z) = z/|z| (0 at 0)."""

    kind = "modrelu"
    fold_bias = False

    def step(self, z):
        return torch.sgn(z) * torch.relu(z.abs() + self.bias)


class Tanh(Activation):
    kind = "tanh"

    def step(self, z):
        return torch.tanh(z)


class ReLU(Activation):
    kind = "relu"

    def step(self, z):
        return torch.relu(z)


ACTIVATIONS = {"modrelu": ModReLU, "tanh": Tanh, "relu": ReLU}


def make_activation(name: str, n: int, complex: bool = False) -> Activation:
    check_choice("activation", name, ACTIVATIONS)
    if complex and name != "modrelu":
        raise ConfigError(f"invalid activation={name!r} for a complex hidden state; valid: 'modrelu'")
    return ACTIVATIONS[name](n, complex)


class Transition(nn.Module):
    """Makes the recurrent matrix W (n x n). Subclasses set ``constraint`` and implement ``matrix``."""

    constraint: str | None = None  # "orthogonal", "unitary" or None
    is_complex = False

    def __init__(self, n: int):
        super().__init__()
        self.n = n

    def matrix(self) -> torch.Tensor:
        raise NotImplementedError

    def after_step(self, step: int) -> None:
        """Run after each optimizer step."""

    def degrees_of_freedom(self) -> int:
        return sum(p.numel() for p in self.parameters())


def reference_recurrence(xu: torch.Tensor, W: torch.Tensor, act: Activation,
                         h0: torch.Tensor | None = None) -> list[torch.Tensor]:
    """The plain time loop: ``[h_1, ..., h_T]`` for ``xu`` of shape (T, B, n)."""
    h = xu.new_zeros(xu.shape[1:]) if h0 is None else h0
    Wt = W.mT
    hs = []
    for u in xu.unbind(0):
        h = act.step(torch.addmm(u, h, Wt))
        hs.append(h)
    return hs


_TRITON_BROKEN: list[str] = []  # the auto-chosen Triton kernel failed here once: do not retry


def resolve_engine(engine: str, xu: torch.Tensor, act: Activation) -> str:
    """The engine ``auto`` picks: Triton on CUDA (real float32 states), the fused kernel where the
    activation allows, else the reference loop."""
    from suite.models.kernels import fused

    if engine != "auto":
        return engine
    if xu.is_cuda and not _TRITON_BROKEN and fused.triton_supports(act.kind, xu) and fused.triton_available():
        return "triton"
    return "fused" if fused.supports(act.kind, xu) else "reference"


def recurrence(xu: torch.Tensor, W: torch.Tensor, act: Activation,
               h0: torch.Tensor | None = None, engine: str = "auto", inplace: bool = False) -> torch.Tensor:
    """All hidden states, shape (T, B, n), by the engine asked for (see ``ENGINES``). ``inplace``: the
    caller hands ``xu`` over, and the fused kernel may write the states over it."""
    chosen = resolve_engine(engine, xu, act)
    if engine == "auto" and chosen == "triton":
        try:
            return _run(chosen, xu, W, act, h0, inplace)
        except Exception as e:  # a Triton/driver mismatch must not stop a sweep: fall back, loudly
            import warnings

            _TRITON_BROKEN.append(f"{type(e).__name__}: {e}")
            warnings.warn(f"the Triton recurrence failed ({_TRITON_BROKEN[0]}); using the fused torch path "
                          "for the rest of this process", RuntimeWarning, stacklevel=2)
            chosen = resolve_engine(engine, xu, act)
    return _run(chosen, xu, W, act, h0, inplace)


def _run(engine: str, xu, W, act, h0, inplace: bool = False) -> torch.Tensor:
    from suite.models.kernels import fused

    if engine == "reference":
        return torch.stack(reference_recurrence(xu, W, act, h0))
    ok = fused.triton_supports(act.kind, xu) if engine.startswith("triton") else fused.supports(act.kind, xu)
    if not ok:
        raise ConfigError(
            f"engine={engine!r} has no kernel for activation {act.kind!r} with "
            f"{'complex' if xu.is_complex() else 'real'} {xu.dtype}; use engine='reference' or 'auto'"
        )
    bias = None if act.fold_bias else act.bias
    if engine.startswith("triton"):
        from suite.models.kernels import triton_rnn

        precision = engine.partition("-")[2] or "ieee"
        return triton_rnn.recurrence(xu, W, bias, h0, act.kind, precision=precision)
    return fused.recurrence(xu, W, bias, h0, act.kind, inplace=inplace)


READOUT_INITS = ("default", "kaiming", "glorot", "glorot_bias")


def init_readout(readout: nn.Linear, kind: str) -> None:
    """"default" keeps torch's init; "kaiming": Kaiming-normal weight (relu gain), zero bias
    (expRNN's copying script); "glorot": Glorot-uniform weight, zero bias (scoRNN's MNIST and adding
    code, ``tf.layers.dense``); "glorot_bias": Glorot-uniform weight and bias, the bias as TF's
    default initializer treats a 1-D shape, U(-sqrt(3/d), sqrt(3/d)) (scoRNN's copying code,
    ``tf.get_variable``)."""
    import math

    check_choice("readout_init", kind, READOUT_INITS)
    if kind == "kaiming":
        nn.init.kaiming_normal_(readout.weight, nonlinearity="relu")
    elif kind.startswith("glorot"):
        nn.init.xavier_uniform_(readout.weight)
    if kind == "glorot_bias":
        bound = math.sqrt(3 / readout.bias.numel())
        nn.init.uniform_(readout.bias, -bound, bound)
    elif kind != "default":
        nn.init.zeros_(readout.bias)


def check_engine(engine: str, activation: str, is_complex: bool) -> None:
    """Engine/state compatibility, at construction (not at the first forward pass)."""
    from suite.models.kernels import fused

    check_choice("engine", engine, ENGINES)
    if engine.startswith("triton") and is_complex:
        raise ConfigError(f"engine={engine!r} runs real hidden states only; this model's state is complex: "
                          "use engine='auto', 'fused' or 'reference'")
    if engine != "reference" and engine != "auto" and activation not in fused.KINDS:
        raise ConfigError(f"engine={engine!r} has no kernel for activation {activation!r}; valid activations: "
                          f"{', '.join(fused.KINDS)}; or use engine='reference'")


class RecurrentNet(RecurrentModel):
    """U (no bias) -> the recurrence -> a linear readout; complex hidden states for unitary W.

    A complex state is read out from [Re h, Im h]; its input projection maps x to Re and Im parts.
    ``h0=True`` learns the initial state (uRNN, scuRNN; stored as [Re h0, Im h0] when complex);
    otherwise h_0 = 0.
    """

    def __init__(self, transition: Transition, d_in: int, d_out: int, *, output: str = "last",
                 activation: str = "modrelu", engine: str = "auto", h0: bool = False):
        super().__init__(d_in, d_out, transition.n, output)
        check_engine(engine, activation, transition.is_complex)
        n = transition.n
        width = 2 * n if transition.is_complex else n
        self.transition = transition
        self.constraint = transition.constraint
        self.engine = engine
        self.input = nn.Linear(d_in, width, bias=False)
        self.act = make_activation(activation, n, transition.is_complex)
        self.readout = nn.Linear(width, d_out)
        self.h0 = nn.Parameter(torch.zeros(width)) if h0 else None

    @property
    def tracks_orthogonality(self) -> bool:
        return True  # constrained, or a free W started orthogonal: its drift is worth seeing

    def _h0(self, batch: int, complex_form: bool = True) -> torch.Tensor | None:
        if self.h0 is None:
            return None
        h = self.h0
        if self.transition.is_complex and complex_form:
            h = torch.complex(h[: self.hidden], h[self.hidden:])
        return h.expand(batch, *h.shape)

    def recurrent_matrix(self) -> torch.Tensor:
        with full_precision(self.act.bias):  # float32 under a bf16 autocast too
            return self.transition.matrix()

    def step_product(self) -> tuple[int, int]:
        # a complex state of size n is a real 2n-wide one: four real n x n products per step
        return (2 * self.transition.n if self.transition.is_complex else self.transition.n), 1

    def check(self, device: torch.device) -> None:
        if not self.engine.startswith("triton"):
            return
        from suite.models.kernels.fused import triton_available, triton_interpreted

        if triton_available() and (device.type == "cuda" or triton_interpreted()):
            return
        why = ("Triton is not installed" if device.type == "cuda" else
               f"device {str(device)!r} runs on the CPU (torch sees no CUDA device)")
        raise ConfigError(f"engine={self.engine!r} needs a CUDA GPU with Triton, and {why}; use engine='auto', "
                          "'fused' or 'reference' here")

    def parameter_groups(self):
        if self.constraint is None:
            return super().parameter_groups()
        orth = list(self.transition.parameters())
        ids = {id(p) for p in orth}
        return {"orthogonal": orth, "default": [p for p in self.parameters() if id(p) not in ids]}

    def recurrent_parameter_count(self) -> int:
        return sum(p.numel() for p in self.transition.parameters())

    def degrees_of_freedom(self) -> int:
        return self.parameter_count() - self.recurrent_parameter_count() + self.transition.degrees_of_freedom()

    def after_step(self, step: int) -> None:
        self.transition.after_step(step)

    def _inputs(self, x: torch.Tensor, complex_form: bool = True) -> torch.Tensor:
        """U x_t (+ b where it folds) for every step, time-major and contiguous: (T, B, n). x is
        transposed before the projection (d_in is small), so no (T, B, n) buffer is ever copied."""
        bias = self.act.bias if self.act.fold_bias else None
        xu = nn.functional.linear(x.transpose(0, 1), self.input.weight, bias)
        if xu.dtype != self.input.weight.dtype:  # a bf16 autocast ran the projection; the recurrence is float32
            xu = xu.to(self.input.weight.dtype)
        if self.transition.is_complex and complex_form:
            xu = torch.complex(xu[..., : self.hidden], xu[..., self.hidden:])
        return xu

    def _readout(self, H: torch.Tensor) -> torch.Tensor:
        """H: (T, B, n) real, (T, B, n) complex, or (T, B, 2n) = [Re | Im] from the fused complex path.
        The readout runs time-major (a contiguous GEMM); only its small (T, B, d_out) result is
        transposed."""
        if self.output == "last":
            H = H[-1]
        if H.is_complex():
            H = torch.cat([H.real, H.imag], dim=-1)
        Y = self.readout(H)
        return Y if self.output == "last" else Y.transpose(0, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Under a bf16 autocast (precision="bf16") the input projection and the readout run in bfloat16;
        # W and the recurrence stay float32 (full_precision), so W stays orthogonal to float32 rounding.
        with full_precision(x):
            W = self.transition.matrix()
        if self.transition.is_complex and self.engine in ("auto", "fused"):
            from suite.models.kernels import fused  # real form end to end: no complex tensors in the hot path

            X = self._inputs(x, complex_form=False)  # complex states always use modReLU
            if fused.supports(self.act.kind, X):
                with full_precision(x):
                    H = fused.complex_recurrence(X, W, self.act.bias, self._h0(len(x), False), inplace=True)
                return self._readout(H)
        xu = self._inputs(x)
        with full_precision(x):
            H = recurrence(xu, W, self.act, self._h0(len(x)), engine=self.engine, inplace=True)
        return self._readout(H)

    def trajectory(self, x):
        xu = self._inputs(x)
        with full_precision(x):
            hs = reference_recurrence(xu, self.transition.matrix(), self.act, self._h0(len(x)))
        return self._readout(torch.stack(hs)), hs
