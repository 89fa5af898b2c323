"""suite.models.skew.expm, the Pade exponential expRNN, dtriv and nnRNN use: values, orthogonality and
gradients against torch.linalg.matrix_exp and finite differences."""

import pytest
import torch

from suite.models.skew import expm, henaff_init, skew

N = 12


def _skew(norm: float, dtype=torch.float64, n: int = N, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    A = skew(torch.randn(n * (n - 1) // 2, generator=g, dtype=torch.float64), n)
    if norm:
        A = A * (norm / torch.linalg.matrix_norm(A, 1))
    else:
        A = A * 0
    return A.to(dtype)


# 0: no terms; 1e-3 and 5: no scaling; 6, 50, 400: 1, 4 and 7 squarings
@pytest.mark.parametrize("norm", [0.0, 1e-3, 1.0, 5.0, 6.0, 50.0, 400.0])
def test_matches_matrix_exp_in_float64(norm):
    A = _skew(norm)
    torch.testing.assert_close(expm(A), torch.linalg.matrix_exp(A), rtol=0, atol=1e-12 * max(1.0, norm))


def test_general_matrix_in_float64():
    g = torch.Generator().manual_seed(1)
    A = torch.randn(N, N, generator=g, dtype=torch.float64) * 3
    E = torch.linalg.matrix_exp(A)
    torch.testing.assert_close(expm(A), E, rtol=1e-12, atol=1e-12 * E.abs().max().item())


@pytest.mark.parametrize("norm", [1.0, 5.0, 50.0])
def test_float32_orthogonality_no_worse_than_matrix_exp(norm):
    A = _skew(norm, torch.float32, n=190)
    eye = torch.eye(190)
    ours = (expm(A).mT @ expm(A) - eye).abs().max().item()
    theirs = (torch.linalg.matrix_exp(A).mT @ torch.linalg.matrix_exp(A) - eye).abs().max().item()
    exact = torch.linalg.matrix_exp(A.double())
    assert ours <= max(theirs, 2e-6)
    assert (expm(A).double() - exact).abs().max().item() <= max(
        (torch.linalg.matrix_exp(A).double() - exact).abs().max().item(), 2e-6)


@pytest.mark.parametrize("norm", [0.5, 8.0])
def test_gradient_against_finite_differences(norm):
    a = (_skew(norm)[torch.triu_indices(N, N, 1).unbind()]).requires_grad_()
    assert torch.autograd.gradcheck(lambda v: expm(skew(v, N)), (a,))


def test_gradient_matches_matrix_exp_at_henaff_init():
    a = henaff_init(N, torch.Generator().manual_seed(0)).requires_grad_()
    G = torch.randn(N, N, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    (ours,) = torch.autograd.grad((expm(skew(a, N)) * G).sum(), a)
    (theirs,) = torch.autograd.grad((torch.linalg.matrix_exp(skew(a, N)) * G).sum(), a)
    torch.testing.assert_close(ours, theirs, rtol=0, atol=1e-12)


def test_one_square_matrix_only():
    with pytest.raises(ValueError, match=r"shape \(2, 3, 3\)"):
        expm(torch.zeros(2, 3, 3))


def test_non_finite_input_propagates():
    A = _skew(1.0)
    A[0, 1] = float("nan")
    assert torch.isnan(expm(A)).any()


def _exact_adjoint(A: torch.Tensor, G: torch.Tensor) -> torch.Tensor:
    """dL/dA of L = <G, exp(A)> for skew A, in closed form (Daleckii-Krein): A = V diag(l) V^H,
    dL/dA = Re V ((V^H G V) o conj(F)) V^H, F_ij = (e^l_i - e^l_j) / (l_i - l_j), e^l_i on ties."""
    w, V = torch.linalg.eigh(A.to(torch.complex128) * -1j)
    lam = 1j * w
    d = lam[:, None] - lam[None, :]
    el = torch.exp(lam)
    close = d.abs() < 1e-9
    F = torch.where(close, el[:, None].expand_as(d), (el[:, None] - el[None, :]) / torch.where(close, 1, d))
    return (V @ ((V.mH @ G.to(V.dtype) @ V) * F.conj()) @ V.mH).real


def test_gradient_against_the_closed_form_adjoint():
    """At n=60 and ||A||_1 = 10 (one squaring) the gradient is exact to ~1e-13 in float64; matrix_exp's
    own backward (the exponential of a 2n x 2n block matrix) is measured ~100x further off at n=190."""
    n = 60
    a = henaff_init(n, torch.Generator().manual_seed(0))
    a = (a + 0.05 * torch.randn(a.shape, dtype=a.dtype, generator=torch.Generator().manual_seed(3)))
    a = (a * (10 / torch.linalg.matrix_norm(skew(a, n), 1))).requires_grad_()
    G = torch.randn(n, n, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    (ours,) = torch.autograd.grad((expm(skew(a, n)) * G).sum(), a)
    exact = _exact_adjoint(skew(a.detach(), n), G)
    iu = torch.triu_indices(n, n, 1)
    torch.testing.assert_close(ours, exact[iu[0], iu[1]] - exact[iu[1], iu[0]], rtol=0, atol=1e-12)
