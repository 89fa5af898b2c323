"""Skew-symmetric matrices from their strictly-upper-triangular entries, and the inits built on them.

Storing only the n(n-1)/2 free entries makes the module's parameter count the papers' count.
"""

from __future__ import annotations

import math

import torch


def skew(a: torch.Tensor, n: int) -> torch.Tensor:
    """A with A[i, j] = a_k, A[j, i] = -a_k over the row-major pairs i < j (differentiable)."""
    rows, cols = torch.triu_indices(n, n, 1, device=a.device)
    A = a.new_zeros(n, n).index_put((rows, cols), a)
    return A - A.mT


# Pade [13/13] coefficients and the 1-norm bound below which it is exact to double precision after
# scaling (Higham, "The scaling and squaring method for the matrix exponential revisited", SIAM J.
# Matrix Anal. Appl. 26(4), 2005, Table 2.3 and eq. 2.3; also Al-Mohy & Higham 2009).
_PADE13 = (64764752532480000.0, 32382376266240000.0, 7771770303897600.0, 1187353796428800.0,
           129060195264000.0, 10559470521600.0, 670442572800.0, 33522128640.0, 1323241920.0, 40840800.0,
           960960.0, 16380.0, 182.0, 1.0)
_THETA13 = 5.371920351148152


def expm(A: torch.Tensor) -> torch.Tensor:
    """exp(A) of a square real matrix by scaling and squaring with the [13/13] Pade approximant, written
    in differentiable torch ops so that autograd gives its exact derivative.

    Why not ``torch.linalg.matrix_exp``: its backward is the exponential of a 2n x 2n block matrix, about
    seven times the cost of its forward; here the backward is the adjoint of six products, one LU solve
    and the squarings, about twice the forward (at n=190 the pair is ~3x cheaper on CPU). For skew A the
    diagonal Pade approximant is itself orthogonal (q(A) = p(-A) = p(A)^T), so the result is orthogonal
    to float rounding at every degree, and the squarings keep it so. Values agree with matrix_exp to
    ~1e-14 in float64 and are closer to the exact exponential in float32 (tests/test_expm.py).
    """
    if A.dim() != 2 or A.shape[0] != A.shape[1]:
        raise ValueError(f"expm takes one square matrix; got shape {tuple(A.shape)}")
    norm = float(torch.linalg.matrix_norm(A.detach(), 1))
    if not math.isfinite(norm):  # a diverged run: let the non-finite values through, as matrix_exp does
        return torch.linalg.matrix_exp(A)
    s = max(0, math.ceil(math.log2(norm / _THETA13))) if norm > _THETA13 else 0
    if s:
        A = A * 2.0**-s
    b = _PADE13
    eye = torch.eye(A.shape[-1], dtype=A.dtype, device=A.device)
    A2 = A @ A
    A4 = A2 @ A2
    A6 = A4 @ A2
    # U = A (A6 (b13 A6 + b11 A4 + b9 A2) + b7 A6 + b5 A4 + b3 A2 + b1 I): odd part; V: even part
    u_hi = torch.add(A4, A6, alpha=b[13] / b[11]).mul_(b[11]).add_(A2, alpha=b[9])
    u_lo = (eye * b[1]).add_(A2, alpha=b[3]).add_(A4, alpha=b[5]).add_(A6, alpha=b[7])
    U = A @ torch.addmm(u_lo, A6, u_hi)
    v_hi = torch.add(A4, A6, alpha=b[12] / b[10]).mul_(b[10]).add_(A2, alpha=b[8])
    v_lo = (eye * b[0]).add_(A2, alpha=b[2]).add_(A4, alpha=b[4]).add_(A6, alpha=b[6])
    V = torch.addmm(v_lo, A6, v_hi)
    X = torch.linalg.solve(V - U, V + U)
    for _ in range(s):
        X = X @ X
    return X


def upper(A: torch.Tensor) -> torch.Tensor:
    """The free entries of a skew-symmetric A: inverse of ``skew``."""
    n = A.shape[-1]
    rows, cols = torch.triu_indices(n, n, 1, device=A.device)
    return A[rows, cols]


def block_entries(n: int, values: torch.Tensor) -> torch.Tensor:
    """The free-entry vector of A with values on the 2x2 diagonal blocks: A[2k, 2k+1] = values[k]."""
    a = values.new_zeros(n * (n - 1) // 2)
    k = torch.arange(n // 2)
    i, j = 2 * k, 2 * k + 1
    # row-major index of pair (i, j), i < j, among the n(n-1)/2 strictly-upper entries
    idx = i * n - i * (i + 1) // 2 + (j - i - 1)
    a[idx] = values
    return a


def cayley_init(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """scoRNN's init: A[2k, 2k+1] = -tan(theta_k / 2), theta_k ~ U(0, pi/2).

    Cayley(A) then has eigenvalues exp(+-i theta_k) (the scoRNN authors' code).
    """
    theta = torch.rand(n // 2, generator=generator, dtype=torch.float64) * (math.pi / 2)
    return block_entries(n, -torch.tan(theta / 2))


def henaff_init(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """Henaff et al.'s init as used by expRNN: 2x2 block values ~ U(-pi, pi)."""
    s = (torch.rand(n // 2, generator=generator, dtype=torch.float64) * 2 - 1) * math.pi
    return block_entries(n, s)


def zero_init(n: int, generator: torch.Generator | None = None) -> torch.Tensor:
    """A = 0: W starts at the base (identity, or D for scoRNN)."""
    return torch.zeros(n * (n - 1) // 2, dtype=torch.float64)


SKEW_INITS = {"cayley": cayley_init, "henaff": henaff_init, "zero": zero_init}
