"""A fused recurrence with a hand-written backward, for any device torch runs on.

    h_t = act(h_{t-1} W^T + u_t),  act in {modrelu (with bias b), tanh, relu}

Why it is faster than autograd through the time loop: the forward writes into one preallocated
(T+1, B, n) buffer with ``out=`` ops and records no graph; the backward needs only one matmul and one
multiply per step, because the activation derivative is computed for all steps at once from the saved
outputs (tanh: 1 - h^2; relu: h > 0; modrelu: h != 0), and dW, db are one large reduction each after
the loop instead of T small ones.

modReLU facts used by the backward (real case): h = sign(z) relu(|z| + b) is nonzero exactly where
z != 0 and |z| + b > 0; there dh/dz = 1 and dh/db = sign(z) = sign(h).
"""

from __future__ import annotations

import functools

import torch

KINDS = ("modrelu", "tanh", "relu")


def supports(kind: str, xu: torch.Tensor) -> bool:
    return kind in KINDS and not xu.is_complex() and xu.dtype in (torch.float32, torch.float64)


@functools.cache
def triton_available() -> bool:
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available()


def _activate(kind: str, h: torch.Tensor, b: torch.Tensor | None, tmp: torch.Tensor) -> None:
    """Apply the activation to the pre-activation held in ``h``, in place."""
    if kind == "tanh":
        h.tanh_()
    elif kind == "relu":
        h.relu_()
    else:
        torch.abs(h, out=tmp)
        tmp.add_(b).relu_()
        h.sign_().mul_(tmp)


def _derivative(kind: str, H: torch.Tensor) -> torch.Tensor:
    """d act / d z for every step at once, from the outputs."""
    if kind == "tanh":
        return torch.addcmul(torch.ones_like(H), H, H, value=-1)
    if kind == "relu":
        return (H > 0).to(H.dtype)
    return (H != 0).to(H.dtype)


class FusedRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xu, W, b, h0, kind):
        T, B, n = xu.shape
        H = xu.new_empty(T + 1, B, n)
        H[0] = 0 if h0 is None else h0
        Hs, us = H.unbind(0), xu.unbind(0)
        Wt = W.detach().t().contiguous()  # a contiguous right operand is ~20% faster here
        tmp = xu.new_empty(B, n)
        bd = None if b is None else b.detach()
        for t in range(T):
            torch.addmm(us[t], Hs[t], Wt, out=Hs[t + 1])
            _activate(kind, Hs[t + 1], bd, tmp)
        ctx.kind = kind
        ctx.save_for_backward(W, H)
        return H[1:]

    @staticmethod
    def backward(ctx, gH):
        W, H = ctx.saved_tensors
        kind = ctx.kind
        T, B, n = gH.shape
        Hout = H[1:]
        D = _derivative(kind, Hout)
        gs = gH.contiguous().unbind(0)
        dZ = torch.empty_like(D)
        dZs, Ds = dZ.unbind(0), D.unbind(0)
        Wc = W.contiguous()
        dh = gs[T - 1].clone()
        for t in range(T - 1, 0, -1):
            torch.mul(dh, Ds[t], out=dZs[t])
            torch.addmm(gs[t - 1], dZs[t], Wc, out=dh)  # dL/dh_{t-1}: direct + through W
        torch.mul(dh, Ds[0], out=dZs[0])
        need_xu, need_W, need_b, need_h0, _ = ctx.needs_input_grad
        dW = dZ.reshape(-1, n).t() @ H[:-1].reshape(-1, n) if need_W else None
        db = (dZ * Hout.sign()).sum((0, 1)) if need_b else None
        dh0 = dZs[0] @ Wc if need_h0 else None
        return (dZ if need_xu else None), dW, db, dh0, None


def recurrence(xu: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None,
               h0: torch.Tensor | None, kind: str) -> torch.Tensor:
    """All hidden states (T, B, n); ``b`` is the modReLU bias (None for tanh and relu)."""
    if kind not in KINDS:
        raise ValueError(f"unknown activation {kind!r}; valid: {', '.join(KINDS)}")
    if kind == "modrelu" and b is None:
        raise ValueError("modrelu needs its bias b")
    W = W.to(xu.dtype)
    return FusedRecurrence.apply(xu, W, b, h0, kind)
