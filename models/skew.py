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
