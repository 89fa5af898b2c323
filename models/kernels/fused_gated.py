"""A fused GRU layer with a hand-written backward (CPU, or any device torch runs on): torch's equations

    r = σ(W_ir x + b_ir + W_hr h + b_hr),   z = σ(W_iz x + b_iz + W_hz h + b_hz)
    n = tanh(W_in x + b_in + r ∘ (W_hn h + b_hn)),   h' = (1 − z) ∘ n + z ∘ h

with torch.nn.GRU's parameters (gate rows r, z, n). Built like ``models.kernels.fused``: the input projection
is one batched GEMM before the loop (both bias sets folded in through a ones column, except b_hn, which
sits inside r ∘ (·) and is laid down as the start of the recurrent product instead); per step one
``addmm`` and four elementwise ops forward, one ``addmm`` and nine elementwise ops backward, no autograd
graph; the weight and bias gradients are one GEMM per weight after the loop.

Layout: inside the loops every per-step quantity is feature-major, (features, B), so each gate block
is one contiguous (n, B) piece. Elementwise ops on contiguous blocks cost a fraction of the same ops on
column slices of a (B, 3n) row (those iterate row by row), and the GEMMs take either orientation. The
gate blocks are reordered in a private copy of the small weights: forward Q[t] = [ẑ; r̂; ĥn; n̂] (hats:
pre-activations, ĥn = W_hn h + b_hn), so that one sigmoid covers z and r and one addmm fills the first
three; backward E[t] = [dn̂; dẑ; dr̂; dĥn], whose first three blocks are the input-side gradient and last
three the recurrent-side one, each a single operand of one GEMM.

Backward per step, from the saved z, r, ĥn, n and h_t (h_t − n = z (h_{t−1} − n)):
q = g (1 − z), dẑ = q (h_t − n), dn̂ = q (1 − n²), dĥn = dn̂ r, dr̂ = dĥn ĥn (1 − r),
and dL/dh_{t−1} = its own share + g z + W_hh^T [dẑ; dr̂; dĥn].
"""

from __future__ import annotations

import torch

_AT = {"r": 0, "z": 1, "n": 2}  # torch's gate rows


def _blocks(w: torch.Tensor, n: int, order: str) -> torch.Tensor:
    """Gate blocks of ``w`` (rows r, z, n) in ``order``, e.g. "zrn"."""
    return torch.cat([w[_AT[k] * n:(_AT[k] + 1) * n] for k in order])


def _to_torch(w: torch.Tensor, n: int, order: str) -> torch.Tensor:
    """Blocks of ``w`` in ``order`` back into torch's r, z, n."""
    return torch.cat([w[order.index(k) * n:(order.index(k) + 1) * n] for k in "rzn"])


class FusedGRU(torch.autograd.Function):
    """x (T, B, d) time-major, torch's GRU parameters, h0 (B, n) or None (zeros); returns H (T, B, n)."""

    @staticmethod
    def forward(ctx, x, w_ih, w_hh, b_ih, b_hh, h0):
        T, B, d = x.shape
        n = w_hh.shape[1]
        w_ih, w_hh, b_ih, b_hh = (p.detach() for p in (w_ih, w_hh, b_ih, b_hh))
        X1 = torch.cat([x.detach(), x.new_ones(T, B, 1)], -1)  # the ones column carries the biases
        # rows of Q[t] before the step's addmm: ẑ, r̂ input sides (with both bias sets), b_hn, n̂'s input side
        zr = _blocks(torch.cat([w_ih, (b_ih + b_hh)[:, None]], 1), n, "zr")
        hn = torch.cat([w_ih.new_zeros(n, d), b_hh[2 * n:, None]], 1)
        nn_ = torch.cat([w_ih[2 * n:], b_ih[2 * n:, None]], 1)
        Q = torch.matmul(torch.cat([zr, hn, nn_]), X1.transpose(1, 2))  # (T, 4n, B)
        HT = x.new_empty(T, n, B)
        W = _blocks(w_hh, n, "zrn").contiguous()
        Qs, HTs = Q.unbind(0), HT.unbind(0)
        h = x.new_zeros(n, B) if h0 is None else h0.detach().t().contiguous()
        for t in range(T):
            q = Qs[t]
            if t or h0 is not None:  # h_0 = 0 adds nothing
                q[:3 * n].addmm_(W, h)
            q[:2 * n].sigmoid_()
            z, r, hn, nt = q[:n], q[n:2 * n], q[2 * n:3 * n], q[3 * n:]
            nt.addcmul_(r, hn).tanh_()
            h = torch.lerp(nt, h, z, out=HTs[t])  # n + z (h - n)
        H = HT.transpose(1, 2).contiguous()  # batch-major for the readout, and the dW_hh GEMM
        ctx.save_for_backward(X1, w_ih, W, h0, Q, HT, H)
        return H

    @staticmethod
    @torch.autograd.function.once_differentiable  # out= ops: a second derivative is refused clearly
    def backward(ctx, gH):
        X1, w_ih, W, h0, Q, HT, H = ctx.saved_tensors
        T, n, B = HT.shape
        d = X1.shape[-1] - 1
        gT = gH.transpose(1, 2).contiguous()
        E = HT.new_empty(T, 4 * n, B)  # per step [dn̂; dẑ; dr̂; dĥn]
        Qs, HTs, Es, gs = Q.unbind(0), HT.unbind(0), E.unbind(0), gT.unbind(0)
        Wt = W.t().contiguous()
        q, bufs = HT.new_empty(n, B), (HT.new_empty(n, B), HT.new_empty(n, B))
        g = gs[T - 1]
        for t in range(T - 1, -1, -1):
            z, r, hn, nt = Qs[t][:n], Qs[t][n:2 * n], Qs[t][2 * n:3 * n], Qs[t][3 * n:]
            e = Es[t]
            dn, dz, dr, dhn = e[:n], e[n:2 * n], e[2 * n:3 * n], e[3 * n:]
            torch.addcmul(g, g, z, value=-1, out=q)  # g (1 - z)
            torch.sub(HTs[t], nt, out=dz).mul_(q)
            torch.mul(q, nt, out=dn)
            torch.addcmul(q, dn, nt, value=-1, out=dn)  # q (1 - n²)
            torch.mul(dn, r, out=dhn)
            torch.mul(dhn, hn, out=dr)
            dr.addcmul_(dr, r, value=-1)  # dĥn ĥn (1 - r)
            if t:
                g = torch.addcmul(gs[t - 1], g, z, out=bufs[t % 2]).addmm_(Wt, e[n:])
        need_x, need_wih, need_whh, need_bih, need_bhh, need_h0 = ctx.needs_input_grad
        Ec = E.transpose(0, 1).reshape(4 * n, T * B)  # one copy: the GEMMs below contract over (t, b)
        dU = Ec[:3 * n] @ X1.reshape(T * B, d + 1)  # rows n, z, r: [dW_ih | db_ih]
        dx = dwih = dwhh = dbih = dbhh = dh0 = None
        if need_x:
            dx = (Ec[:3 * n].t() @ _blocks(w_ih, n, "nzr")).view(T, B, d)
        if need_wih:
            dwih = _to_torch(dU[:, :d], n, "nzr")
        if need_bih:
            dbih = _to_torch(dU[:, d], n, "nzr")
        if need_whh:
            dW = Ec[n:, B:] @ H[:-1].reshape(-1, n)
            if h0 is not None:
                dW.addmm_(Ec[n:, :B], h0)
            dwhh = _to_torch(dW, n, "zrn")
        if need_bhh:
            dbhh = torch.cat([dU[2 * n:, d], dU[n:2 * n, d], Ec[3 * n:].sum(1)])
        if need_h0:
            dh0 = torch.addcmul(Wt @ Es[0][n:], g, Qs[0][:n]).t()
        return dx, dwih, dwhh, dbih, dbhh, dh0


def gru(x: torch.Tensor, w_ih: torch.Tensor, w_hh: torch.Tensor, b_ih: torch.Tensor, b_hh: torch.Tensor,
        h0: torch.Tensor | None = None) -> torch.Tensor:
    """All hidden states (T, B, n) of a one-layer GRU over time-major ``x`` (T, B, d)."""
    return FusedGRU.apply(x, w_ih, w_hh, b_ih, b_hh, h0)
