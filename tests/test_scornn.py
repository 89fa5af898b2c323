"""scoRNN's mathematics: Theorem 3.1 against autograd and float64 finite differences, det W, and
the reachability of eigenvalue -1 that motivates the scaling D."""

import math

import pytest
import torch

from suite.models.scornn import ScaledCayley, scaled_cayley, scornn_gradient
from suite.models.skew import skew, upper
from suite.registry import create_model
from suite.seeding import seeded


def _loss(W, C):
    """A nonlinear scalar function of W, so G = dL/dW is a generic matrix."""
    return (torch.sin(W @ C) * C.mT).sum() + (W ** 3).sum()


@pytest.mark.parametrize(("n", "rho"), [(6, 0), (7, 3), (10, 5), (12, 12)])
def test_closed_form_gradient_matches_autograd_and_finite_differences(n, rho):
    gen = torch.Generator().manual_seed(n * 100 + rho)
    C = torch.randn(n, n, generator=gen, dtype=torch.float64)
    t = ScaledCayley(n, rho, init="cayley", generator=gen).double()
    with torch.no_grad():
        t.a.add_(0.3 * torch.randn(t.a.shape, generator=gen, dtype=torch.float64))

    t.grad = "closed_form"
    _loss(t.matrix(), C).backward()
    closed = t.a.grad.clone()
    t.a.grad = None

    t.grad = "autograd"
    _loss(t.matrix(), C).backward()
    auto = t.a.grad.clone()

    # finite differences along E_ij - E_ji, the free entry a_ij (i < j), central, float64
    eps = 1e-6
    fd = torch.empty_like(closed)
    with torch.no_grad():
        for k in range(t.a.numel()):
            a0 = t.a[k].item()
            t.a[k] = a0 + eps
            up = _loss(t.matrix(), C).item()
            t.a[k] = a0 - eps
            down = _loss(t.matrix(), C).item()
            t.a[k] = a0
            fd[k] = (up - down) / (2 * eps)

    torch.testing.assert_close(closed, auto, rtol=1e-10, atol=1e-10)
    torch.testing.assert_close(closed, fd, rtol=1e-6, atol=1e-6)


def test_theorem_matrix_form_is_skew_and_projects_the_unconstrained_gradient():
    """dL/dA = V^T - V equals M - M^T, with M the gradient w.r.t. an unconstrained A."""
    n = 8
    gen = torch.Generator().manual_seed(1)
    A = skew(torch.randn(n * (n - 1) // 2, generator=gen, dtype=torch.float64), n).requires_grad_()
    d = torch.tensor([1.0] * 5 + [-1.0] * 3, dtype=torch.float64)
    C = torch.randn(n, n, generator=gen, dtype=torch.float64)
    W = scaled_cayley(A, d)
    G, = torch.autograd.grad(_loss(W, C), W, retain_graph=True)
    M, = torch.autograd.grad(_loss(W, C), A)
    dA = scornn_gradient(A.detach(), d, G)
    torch.testing.assert_close(dA, -dA.mT, rtol=0, atol=0)  # exactly skew
    torch.testing.assert_close(dA, M - M.mT, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize("rho", [0, 1, 4, 7])
def test_determinant_is_fixed_by_rho(rho):
    with seeded(rho):
        model = create_model("scornn", d_in=2, d_out=2, hidden=8, rho=rho)
    opt = torch.optim.RMSprop(model.parameter_groups()["orthogonal"], lr=0.05)
    for _ in range(20):
        opt.zero_grad()
        model(torch.randn(4, 5, 2)).square().sum().backward()
        opt.step()
    det = torch.linalg.det(model.recurrent_matrix().detach().double()).item()
    assert det == pytest.approx((-1) ** rho, abs=1e-5)


def test_authors_init_gives_eigenvalues_on_the_quarter_circle():
    """Cayley(A) of the init has eigenvalues exp(+-i theta), theta in (0, pi/2)."""
    with seeded(0):
        t = ScaledCayley(20, rho=0)
    angles = torch.linalg.eigvals(t.matrix().detach().double()).angle().abs()
    assert ((angles > 0) & (angles < math.pi / 2 + 1e-9)).all()


def _random_orthogonal_with_minus_one(n, gen):
    """Q orthogonal, det +1, with the eigenvalue -1 (twice: a rotation by pi in one plane)."""
    Q0, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.float64))
    R = torch.eye(n, dtype=torch.float64)
    R[0, 0] = R[1, 1] = -1.0
    return Q0 @ R @ Q0.mT


def test_eigenvalue_minus_one_is_reachable_with_a_suitable_D():
    n = 8
    gen = torch.Generator().manual_seed(3)
    Q = _random_orthogonal_with_minus_one(n, gen)
    assert torch.isclose(torch.linalg.eigvals(Q).real.min(), torch.tensor(-1.0, dtype=torch.float64))
    eye = torch.eye(n, dtype=torch.float64)

    # plain Cayley (rho = 0): I + Q is singular, so no finite A gives W = Q
    assert torch.linalg.matrix_rank(eye + Q) < n

    # with rho = 2 (det D = +1 = det Q) find A = (I - Q D)(I + Q D)^-1 and check W = Q exactly
    for rho in (2, 4, 6):
        d = torch.tensor([1.0] * (n - rho) + [-1.0] * rho, dtype=torch.float64)
        QD = Q * d  # Q D^-1 = Q D
        if torch.linalg.matrix_rank(eye + QD) < n:
            continue
        A = torch.linalg.solve((eye + QD).mT, (eye - QD).mT).mT
        t = ScaledCayley(n, rho, init="zero").double()
        with torch.no_grad():
            t.a.copy_(upper(A))
        torch.testing.assert_close(skew(t.a, n), A, rtol=1e-10, atol=1e-10)  # A is skew
        W = t.matrix().detach()
        torch.testing.assert_close(W, Q, rtol=1e-9, atol=1e-9)
        assert (torch.linalg.eigvals(W) + 1).abs().min() < 1e-9
        return
    pytest.fail("no D with rho in (2, 4, 6) made I + QD invertible")
