"""A persistent Triton recurrence for h_t = act(h_{t-1} W^T + u_t), forward and backward.

One program owns BLOCK_B batch rows for all T steps (the time loop runs inside the kernel, so there is
one launch per pass instead of several per step). Two layouts, chosen by the padded width BLOCK_N:

- resident (BLOCK_N <= 128): W and h_t live in registers for the whole sequence; each step is one
  tl.dot plus the activation, with nothing read from memory but u_t.
- streamed (larger n): h_{t-1} is read back from the output buffer this program has just written
  (L1/L2-hot) and W in BLOCK_K-row panels from L2, accumulating the step's tl.dot panel by panel.

The backward runs the adjoint recurrence dh_{t-1} = g_{t-1} + (dh_t * act'(h_t)) W in the same two
layouts and writes dZ; dW = dZ^T H and db are then one large GEMM/reduction each in torch.
``precision``: "ieee" (exact float32), "tf32" or "bf16" (operands of tl.dot rounded; accumulation in
float32). Correctness is tested on CPU under TRITON_INTERPRET=1 against the reference loop.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from suite.models.kernels.fused import triton_interpreted

KIND = {"modrelu": 0, "tanh": 1, "relu": 2}
PRECISION = {"ieee": 0, "tf32": 1, "bf16": 2}
RESIDENT_MAX = 128


@triton.jit
def _round_bf16(x):
    """float32 -> nearest bfloat16 (ties to even), kept in float32, by integer arithmetic on the bits."""
    bits = x.to(tl.uint32, bitcast=True)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.to(tl.float32, bitcast=True)


@triton.jit
def _dot(a, b, PREC: tl.constexpr, EMULATE: tl.constexpr):
    if PREC == 2 and EMULATE:
        # Triton's interpreter multiplies bf16 wrongly and truncates on conversion; emulate the GPU:
        # operands rounded to nearest bfloat16, products accumulated in float32.
        out = tl.dot(_round_bf16(a), _round_bf16(b), input_precision="ieee")
    elif PREC == 2:
        out = tl.dot(a.to(tl.bfloat16), b.to(tl.bfloat16), out_dtype=tl.float32)
    elif PREC == 1:
        out = tl.dot(a, b, input_precision="tf32")
    else:
        out = tl.dot(a, b, input_precision="ieee")
    return out


@triton.jit
def _act(z, b, KIND: tl.constexpr):
    if KIND == 0:  # modReLU: sign(z) relu(|z| + b)
        sign = tl.where(z > 0, 1.0, tl.where(z < 0, -1.0, 0.0))
        out = sign * tl.maximum(tl.abs(z) + b[None, :], 0.0)
    elif KIND == 1:  # tanh, from exp (portable); a series near 0 avoids 1 - e^-2|z| cancelling
        a = tl.abs(z)
        e = tl.exp(-2.0 * a)
        big = (1.0 - e) / (1.0 + e)
        small = a * (1.0 - a * a / 3.0)
        out = tl.where(z < 0, -1.0, 1.0) * tl.where(a < 1e-2, small, big)
    else:
        out = tl.maximum(z, 0.0)
    return out


@triton.jit
def _act_derivative(h, KIND: tl.constexpr):
    if KIND == 0:
        d = tl.where(h != 0, 1.0, 0.0)
    elif KIND == 1:
        d = 1.0 - h * h
    else:
        d = tl.where(h > 0, 1.0, 0.0)
    return d


@triton.jit
def _tile(B, N, BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr):
    """This program's batch rows, all (padded) hidden columns, their masks and offsets in a (B, N) slab."""
    rows = tl.program_id(0) * BLOCK_B + tl.arange(0, BLOCK_B)
    cols = tl.arange(0, BLOCK_N)
    rmask, cmask = rows < B, cols < N
    return rows, cols, rmask, cmask, rmask[:, None] & cmask[None, :], rows[:, None] * N + cols[None, :]


@triton.jit
def _load_square(M, cols, cmask, N):
    """An N x N row-major matrix, zero-padded to BLOCK_N x BLOCK_N."""
    return tl.load(M + cols[:, None] * N + cols[None, :], mask=cmask[:, None] & cmask[None, :], other=0.0)


@triton.jit
def _panel_product(acc, A, rows, rmask, M, cols, cmask, N, PREC: tl.constexpr, EMULATE: tl.constexpr,
                   BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """acc + A[rows, :] @ M, reading A's rows and M in BLOCK_K-wide panels (the streamed layout)."""
    for k0 in tl.static_range(0, BLOCK_N, BLOCK_K):
        kk = k0 + tl.arange(0, BLOCK_K)
        kmask = kk < N
        a = tl.load(A + rows[:, None] * N + kk[None, :], mask=rmask[:, None] & kmask[None, :], other=0.0)
        m = tl.load(M + kk[:, None] * N + cols[None, :], mask=kmask[:, None] & cmask[None, :], other=0.0)
        acc += _dot(a, m, PREC, EMULATE)
    return acc


@triton.jit
def _forward_kernel(XU, WT, BIAS, H, B, N, T,
                    KIND: tl.constexpr, PREC: tl.constexpr, RESIDENT: tl.constexpr, EMULATE: tl.constexpr,
                    BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """H[0] holds h_0 on entry; H[t+1] = act(H[t] W^T + XU[t]) for t < T. WT = W^T, contiguous."""
    rows, cols, rmask, cmask, mask, off = _tile(B, N, BLOCK_B, BLOCK_N)
    b = tl.load(BIAS + cols, mask=cmask, other=0.0)
    step = B * N
    h = tl.load(H + off, mask=mask, other=0.0)
    if RESIDENT:
        wt = _load_square(WT, cols, cmask, N)
    for _ in range(T):
        z = tl.load(XU + off, mask=mask, other=0.0)
        if RESIDENT:
            z += _dot(h, wt, PREC, EMULATE)
        else:
            z = _panel_product(z, H, rows, rmask, WT, cols, cmask, N, PREC, EMULATE, BLOCK_N, BLOCK_K)
        h = _act(z, b, KIND)
        XU += step
        H += step
        tl.store(H + off, h, mask=mask)
        if not RESIDENT:
            tl.debug_barrier()  # h_t must be visible to the whole program before step t+1 reads it


@triton.jit
def _backward_kernel(G, H, W, DZ, DH0, B, N, T,
                     KIND: tl.constexpr, PREC: tl.constexpr, RESIDENT: tl.constexpr, EMULATE: tl.constexpr,
                     BLOCK_B: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):
    """Adjoint: dh = G[T-1]; for t = T-1..0: DZ[t] = dh * act'(H[t+1]); dh = G[t-1] + DZ[t] W.
    The last dh (t = 0) is dL/dh_0, written to DH0."""
    rows, cols, rmask, cmask, mask, off = _tile(B, N, BLOCK_B, BLOCK_N)
    step = B * N
    if RESIDENT:
        w = _load_square(W, cols, cmask, N)
    G += (T - 1) * step
    H += T * step
    DZ += (T - 1) * step
    dh = tl.load(G + off, mask=mask, other=0.0)
    for s in range(T):
        h = tl.load(H + off, mask=mask, other=0.0)
        dz = dh * _act_derivative(h, KIND)
        tl.store(DZ + off, dz, mask=mask)
        G -= step
        prev_rows = rows < tl.where(s < T - 1, B, 0)  # G[t-1] exists for t > 0
        acc = tl.load(G + off, mask=prev_rows[:, None] & cmask[None, :], other=0.0)
        if RESIDENT:
            acc += _dot(dz, w, PREC, EMULATE)
        else:
            tl.debug_barrier()  # dz must be visible to the whole program before it is re-read by panels
            acc = _panel_product(acc, DZ, rows, rmask, W, cols, cmask, N, PREC, EMULATE, BLOCK_N, BLOCK_K)
        dh = acc
        H -= step
        DZ -= step
    tl.store(DH0 + off, dh, mask=mask)


def _config(n: int, mode: str | None, block_k: int | None):
    block_n = max(16, triton.next_power_of_2(n))
    resident = block_n <= RESIDENT_MAX if mode is None else mode == "resident"
    block_k = block_k or min(block_n, 32)
    num_warps = 8 if block_n >= 128 else 4
    return block_n, resident, block_k, num_warps


class TritonRecurrence(torch.autograd.Function):
    @staticmethod
    def forward(ctx, xu, W, b, h0, kind, precision, mode, block_b, block_k):
        T, B, n = xu.shape
        block_n, resident, block_k, warps = _config(n, mode, block_k)
        dtype = torch.float64 if xu.dtype == torch.float64 else torch.float32  # float64: for gradcheck
        xu = xu.contiguous().to(dtype)
        W = W.detach().to(dtype).contiguous()
        H = xu.new_empty(T + 1, B, n)
        H[0] = 0 if h0 is None else h0.detach()
        bias = xu.new_zeros(n) if b is None else b.detach().to(dtype).contiguous()
        grid = (triton.cdiv(B, block_b),)
        _forward_kernel[grid](xu, W.t().contiguous(), bias, H, B, n, T, KIND=KIND[kind],
                              PREC=PRECISION[precision], RESIDENT=resident, EMULATE=triton_interpreted(),
                              BLOCK_B=block_b, BLOCK_N=block_n, BLOCK_K=block_k, num_warps=warps)
        ctx.save_for_backward(W, H)
        ctx.cfg = (kind, precision, resident, block_b, block_n, block_k, warps)
        return H[1:]

    @staticmethod
    def backward(ctx, gH):
        W, H = ctx.saved_tensors
        kind, precision, resident, block_b, block_n, block_k, warps = ctx.cfg
        T, B, n = gH.shape
        dZ = gH.new_empty(gH.shape, dtype=H.dtype)  # contiguous: gH may be a transposed view
        dh0 = gH.new_empty(B, n, dtype=H.dtype)
        _backward_kernel[(triton.cdiv(B, block_b),)](
            gH.contiguous().to(H.dtype), H, W, dZ, dh0, B, n, T, KIND=KIND[kind], PREC=PRECISION[precision],
            RESIDENT=resident, EMULATE=triton_interpreted(), BLOCK_B=block_b, BLOCK_N=block_n, BLOCK_K=block_k,
            num_warps=warps)
        need_xu, need_W, need_b, need_h0 = ctx.needs_input_grad[:4]
        dW = dZ.reshape(-1, n).t() @ H[:-1].reshape(-1, n) if need_W else None
        db = (dZ * H[1:].sign()).sum((0, 1)) if need_b else None
        return (dZ if need_xu else None), dW, db, (dh0 if need_h0 else None), None, None, None, None, None


def recurrence(xu: torch.Tensor, W: torch.Tensor, b: torch.Tensor | None, h0: torch.Tensor | None,
               kind: str, precision: str = "ieee", mode: str | None = None, block_b: int = 16,
               block_k: int | None = None) -> torch.Tensor:
    """All hidden states (T, B, n) in float32 (float64 for float64 ``xu``, with ``precision="ieee"``: a
    check of the kernel against finite differences, not a training path). ``mode``: None (by size),
    "resident" or "streamed"."""
    if kind not in KIND:
        raise ValueError(f"unknown activation {kind!r}; valid: {', '.join(KIND)}")
    if precision not in PRECISION:
        raise ValueError(f"unknown precision {precision!r}; valid: {', '.join(PRECISION)}")
    if xu.dtype == torch.float64 and precision != "ieee":
        raise ValueError(f"precision {precision!r} rounds float32 operands; float64 runs with 'ieee' only")
    if kind == "modrelu" and b is None:
        raise ValueError("modrelu needs its bias b")
    return TritonRecurrence.apply(xu, W, b, h0, kind, precision, mode, block_b, block_k)
