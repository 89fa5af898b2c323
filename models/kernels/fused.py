"""A fused recurrence with a hand-written backward, for any device torch runs on.

    h_t = act(h_{t-1} W^T + u_t),  act in {modrelu (with bias b), tanh, relu}; complex modrelu too

Why it is faster than autograd through the time loop: the forward writes into one preallocated
(T+1, B, n) buffer with ``out=`` ops and records no graph; the backward needs only one matmul and one
multiply per step, because the activation derivative is computed for all steps at once from the saved
outputs (tanh: 1 - h^2; relu: h > 0; modrelu: h != 0), and dW, db are one large reduction each after
the loop instead of T small ones.

modReLU facts used by the backward (real case): h = sign(z) relu(|z| + b) is nonzero exactly where
z != 0 and |z| + b > 0; there dh/dz = 1 and dh/db = sign(z) = sign(h).

Complex modReLU, h = z relu(r + b) / r with r = |z|, seen as a map of R^2: where r + b > 0 its
Jacobian is m I - (m - 1) u u^T with m = (r + b) / r, u = z / r = h / |h|, and dh/db = u; where
r + b <= 0 (and where z = 0) it is 0. The forward saves r per step (hypot writes it into its row); the
backward makes m, m - 1 and u for a block of steps at once from r and the outputs, and per step needs
p = Re(conj(u) g) and dz = m g - (m - 1) u p besides the adjoint matmul. No whole (T, B, n) buffer is
precomputed: on CPU one pass over such a buffer costs more than a few ops on cache-warm rows. The
complex recurrence runs in real form, [Re z, Im z] = [Re h, Im h] M with M = [[Re W^T, Im W^T],
[-Im W^T, Re W^T]], so gradients are plain real ones (torch's complex convention, dL/dRe + i dL/dIm,
is the same pair).
"""

from __future__ import annotations

import functools
import os

import torch

KINDS = ("modrelu", "tanh", "relu")


def supports(kind: str, xu: torch.Tensor) -> bool:
    if xu.is_complex():
        return kind == "modrelu" and xu.dtype in (torch.complex64, torch.complex128)
    return kind in KINDS and xu.dtype in (torch.float32, torch.float64)


def triton_interpreted() -> bool:
    """True under TRITON_INTERPRET=1 (CPU tensors through Triton's interpreter)."""
    return os.environ.get("TRITON_INTERPRET", "0") not in ("", "0")


@functools.cache
def triton_available() -> bool:
    """Triton can run: on a CUDA device, or on CPU tensors under TRITON_INTERPRET=1."""
    try:
        import triton  # noqa: F401
    except ImportError:
        return False
    return torch.cuda.is_available() or triton_interpreted()


def triton_supports(kind: str, xu: torch.Tensor) -> bool:
    """The Triton kernel: real states, float32 (inputs in lower precision are upcast)."""
    return kind in KINDS and xu.dtype in (torch.float32, torch.float16, torch.bfloat16)


def _derivative(kind: str, H: torch.Tensor) -> torch.Tensor:
    """d act / d z for every step at once, from the outputs, in one pass over the buffer."""
    D = torch.empty_like(H)
    if kind == "tanh":  # 1 - h^2 (an addcmul with a broadcast 1 is several times slower on CPU)
        return torch.mul(H, H, out=D).neg_().add_(1)
    return torch.ne(H, 0, out=D)  # relu and modrelu: active exactly where the output is nonzero


class FusedRecurrence(torch.autograd.Function):
    """The real recurrence. With ``inplace`` the states are written over ``xu`` (which the caller
    hands over: it is marked dirty), so the forward touches no (T, B, n) buffer besides its output."""

    @staticmethod
    def forward(ctx, xu, W, b, h0, kind, inplace):
        T, B, n = xu.shape
        if inplace:
            ctx.mark_dirty(xu)
            H = xu
        else:
            H = xu.clone(memory_format=torch.contiguous_format)
        Hs = H.unbind(0)
        Wt = W.detach().t().contiguous()  # a contiguous right operand is ~20% faster here
        h_prev = None if h0 is None else h0.detach()
        S = None
        if kind == "modrelu":
            S, tmp, bd = torch.empty_like(H), xu.new_empty(B, n), b.detach()
            Ss = S.unbind(0)
        for t in range(T):
            z = Hs[t]
            if h_prev is not None:  # h_0 = 0 adds nothing
                z.addmm_(h_prev, Wt)
            if kind == "tanh":
                z.tanh_()
            elif kind == "relu":
                z.relu_()
            else:  # sign(z) relu(|z| + b), with |z| = z sign(z): four ops, sign kept for the backward
                s = torch.sign(z, out=Ss[t])
                torch.addcmul(bd, z, s, out=tmp).relu_()
                torch.mul(s, tmp, out=z)
            h_prev = z
        ctx.kind = kind
        ctx.save_for_backward(W, H, h0, S)
        return H

    @staticmethod
    @torch.autograd.function.once_differentiable  # out= ops: a second derivative is refused clearly
    def backward(ctx, gH):
        W, H, h0, S = ctx.saved_tensors
        T, B, n = gH.shape
        D = _derivative(ctx.kind, H)
        gs = gH.contiguous().unbind(0)
        dZ = torch.empty_like(H)
        dZs, Ds = dZ.unbind(0), D.unbind(0)
        Wc = W.contiguous()
        torch.mul(gs[T - 1], Ds[T - 1], out=dZs[T - 1])
        for t in range(T - 1, 0, -1):  # dL/dz_{t-1} = (g_{t-1} + dL/dz_t W) act'(z_{t-1})
            torch.addmm(gs[t - 1], dZs[t], Wc, out=dZs[t - 1]).mul_(Ds[t - 1])
        need_xu, need_W, need_b, need_h0, _, _ = ctx.needs_input_grad
        dW = db = dh0 = None
        if need_W:
            dW = dZ[1:].reshape(-1, n).t() @ H[:-1].reshape(-1, n)
            if h0 is not None:
                dW.addmm_(dZs[0].t(), h0)
        if need_b:  # dh/db = sign(z) where the unit is active; dZ is 0 elsewhere
            db = torch.linalg.vecdot(dZ.reshape(-1, n), S.reshape(-1, n), dim=0)
        if need_h0:
            dh0 = dZs[0] @ Wc
        return (dZ if need_xu else None), dW, db, dh0, None, None


def _writable(x: torch.Tensor) -> bool:
    """A handed-over input the kernels may write the states over: contiguous, not a view of another
    tensor, not a leaf that autograd must keep."""
    return x.is_contiguous() and not x._is_view() and not (x.is_leaf and x.requires_grad)


def realify(W: torch.Tensor) -> torch.Tensor:
    """M (2n x 2n, real) with [Re h, Im h] @ M = [Re z, Im z] for z = h W^T (differentiable)."""
    Wr, Wi = W.real.t(), W.imag.t()
    return torch.cat([torch.cat([Wr, Wi], 1), torch.cat([-Wi, Wr], 1)], 0)


class FusedComplexModReLU(torch.autograd.Function):
    """The complex recurrence in real form: states are [Re h | Im h] rows of a real (T, B, 2n) buffer,
    one real GEMM per step, and only real elementwise ops (mixed complex/real ops on CPU convert and
    copy). Inputs X (T, B, 2n) and M = realify(W); returns H (T, B, 2n). With ``inplace`` the states
    are written over ``X`` (handed over by the caller, marked dirty)."""

    @staticmethod
    def forward(ctx, X, M, b, h0, inplace):
        T, B, n2 = X.shape
        n = n2 // 2
        if inplace:
            ctx.mark_dirty(X)
            H = X
        else:
            H = X.clone(memory_format=torch.contiguous_format)
        H4 = H.view(T, B, 2, n)
        Hs, Hv, Hr, Hi = H.unbind(0), H4.unbind(0), H4[:, :, 0].unbind(0), H4[:, :, 1].unbind(0)  # made once
        Md, bd = M.detach().contiguous(), b.detach()
        # r = |z| is all the backward needs besides the states (from h alone it would cost a
        # cancellation); hypot writes it straight into its row
        R = H.new_empty(T, B, n)
        rs = R.unbind(0)
        s, m = bd.new_empty(B, n), bd.new_empty(B, 1, n)
        m0 = m[:, 0]
        h_prev = None if h0 is None else h0.detach()
        for t in range(T):
            z, zv = Hs[t], Hv[t]
            if h_prev is not None:  # h_0 = 0 adds nothing
                z.addmm_(h_prev, Md)
            r = torch.hypot(Hr[t], Hi[t], out=rs[t])
            torch.add(r, bd, out=s).relu_()
            # m = 0 where z = 0 (r = 0: s / 0 is inf or nan), as the reference's sgn(0) = 0 gives
            torch.div(s, r, out=m0).nan_to_num_(0.0, 0.0, 0.0)
            zv.mul_(m)  # both halves in one op
            h_prev = z
        ctx.save_for_backward(Md, bd, H, h0, R)
        return H

    @staticmethod
    @torch.autograd.function.once_differentiable  # out= ops: a second derivative is refused clearly
    def backward(ctx, gH):
        M, b, H, h0, R = ctx.saved_tensors
        T, B, n2 = gH.shape
        n = n2 // 2
        tiny = torch.finfo(H.dtype).tiny
        Hv, gs = H.view(T, B, 2, n), gH.contiguous().unbind(0)
        # dZ[t] first receives g = dL/dh_t (one real GEMM per step on the [Re | Im] row), then is turned
        # in place into dL/dz_t = m g - (m - 1) u (u . g) through modReLU's Jacobian, u = h / s with
        # s = relu(r + b) = |h|; where the unit is inactive h = 0 and m = 0 give 0. The sum of u . g =
        # Re(conj(u) g) is the bias gradient. m, m - 1 and u do not depend on g: they are made for a
        # block of K steps at once (few ops, and the block stays in cache until its steps use it).
        K = max(1, 256 // B)
        Ub, Mb, M1b, Pb, Sb = (H.new_empty(K, B, *shape) for shape in ((2, n), (1, n), (n,), (n,), (n,)))
        prod, q = H.new_empty(B, 2, n), H.new_empty(B, 1, n)
        prod0, prod1, q0 = prod[:, 0], prod[:, 1], q[:, 0]
        dX = torch.empty_like(gH)
        dZs, dZv = dX.unbind(0), dX.view(T, B, 2, n).unbind(0)
        db = H.new_zeros(n)
        Mt = M.t().contiguous()
        dZs[T - 1].copy_(gs[T - 1])
        for end in range(T, 0, -K):
            start = max(0, end - K)
            k = end - start
            Sk, Mk, M1k, Uk, Pk = Sb[:k], Mb[:k, :, 0], M1b[:k], Ub[:k], Pb[:k]
            Rk = R[start:end]
            torch.add(Rk, b, out=Sk).relu_()
            torch.div(Sk, Rk, out=Mk).nan_to_num_(0.0, 0.0, 0.0)
            torch.sub(Mk, 1, out=M1k)
            torch.div(Hv[start:end], Sk.clamp_min_(tiny).unsqueeze(2), out=Uk)  # h = 0 where inactive
            us, ms, m1s, ps = Uk.unbind(0), Mb[:k].unbind(0), M1k.unbind(0), Pk.unbind(0)
            for j in range(k - 1, -1, -1):
                t = start + j
                if t < T - 1:
                    torch.addmm(gs[t], dZs[t + 1], Mt, out=dZs[t])
                u, dzv = us[j], dZv[t]
                torch.mul(u, dzv, out=prod)
                p = torch.add(prod0, prod1, out=ps[j])  # u . g
                torch.mul(p, m1s[j], out=q0)
                dzv.mul_(ms[j]).addcmul_(u, q, value=-1)
            db.add_(Pk.sum((0, 1)))
        need_X, need_M, need_b, need_h0, _ = ctx.needs_input_grad
        dM = dh0 = None
        if need_M:  # h_{t-1} for t >= 1 are H[:-1]; h_0 is h0 (or 0)
            dM = H[:-1].reshape(-1, n2).t() @ dX[1:].reshape(-1, n2)
            if h0 is not None:
                dM.addmm_(h0.t(), dZs[0])
        if not need_b:
            db = None
        if need_h0:
            dh0 = dZs[0] @ Mt
        return (dX if need_X else None), dM, db, dh0, None


def complex_recurrence(X: torch.Tensor, W: torch.Tensor, b: torch.Tensor,
                       h0: torch.Tensor | None = None, inplace: bool = False) -> torch.Tensor:
    """Complex modReLU recurrence in real form: X (T, B, 2n) = [Re u | Im u], W complex (n, n);
    returns [Re h_t | Im h_t] for every step, (T, B, 2n). ``inplace``: the caller hands ``X`` over (a
    contiguous intermediate it will not read again) and the states are written over it."""
    return FusedComplexModReLU.apply(X, realify(W).to(X.dtype), b.to(X.dtype), h0, inplace and _writable(X))


def recurrence(xu: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None,
               h0: torch.Tensor | None, kind: str, inplace: bool = False) -> torch.Tensor:
    """All hidden states (T, B, n); ``b`` is the modReLU bias (None for tanh and relu). ``inplace``:
    the caller hands ``xu`` over (a contiguous intermediate it will not read again) and the states are
    written over it."""
    if not supports(kind, xu):
        raise ValueError(f"no fused kernel for activation {kind!r} on {xu.dtype}; valid: "
                         f"{', '.join(KINDS)} (real), modrelu (complex)")
    if kind == "modrelu" and b is None:
        raise ValueError("modrelu needs its bias b")
    if xu.is_complex():  # complex in, complex out (the engine calls complex_recurrence directly)
        n = xu.shape[-1]
        h02 = None if h0 is None else torch.cat([h0.real, h0.imag], -1)
        H = complex_recurrence(torch.cat([xu.real, xu.imag], -1), W, b, h02, inplace=True)
        return torch.complex(H[..., :n], H[..., n:])
    return FusedRecurrence.apply(xu, W.to(xu.dtype), b, h0, kind, inplace and _writable(xu))
