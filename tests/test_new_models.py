"""The mathematics of the models beyond scoRNN/expRNN: scuRNN's closed-form gradients (autograd and
float64 finite differences), uRNN's factors, the full-capacity uRNN's Cayley update, nnRNN's Schur
form, LRU's scan and ring init, coRNN's recurrence."""

import math

import pytest
import torch

from suite.config import RunConfig
from suite.contract import orthogonality_error
from suite.errors import ConfigError
from suite.models.fcurnn import CayleyUnitary
from suite.models.lru import LRULayer, associative_scan
from suite.models.scurnn import ScaledUnitaryCayley, scaled_unitary_cayley, scurnn_gradients, skew_hermitian
from suite.models.urnn import RestrictedUnitary
from suite.registry import create_model, create_task
from suite.runner import make_optimizers, train_step
from suite.seeding import seeded


def _loss(W, C):
    """A nonlinear real function of complex W, so G = dL/dW is a generic complex matrix."""
    return (torch.sin((W @ C).real) * C.imag).sum() + (W ** 3).real.sum() + (W.abs() ** 2 * C.real).sum()


@pytest.mark.parametrize("n", [5, 8])
def test_scurnn_closed_form_gradients_match_autograd_and_finite_differences(n):
    gen = torch.Generator().manual_seed(n)
    C = torch.randn(n, n, generator=gen, dtype=torch.complex128)
    with seeded(n):
        t = ScaledUnitaryCayley(n).double()
    with torch.no_grad():  # move off the init, Im A included
        t.x.add_(0.3 * torch.randn(t.x.shape, generator=gen, dtype=torch.float64))
        t.y.add_(0.3 * torch.randn(t.y.shape, generator=gen, dtype=torch.float64))
    params = (t.x, t.y, t.theta)

    t.grad = "closed_form"
    _loss(t.matrix(), C).backward()
    closed = [p.grad.clone() for p in params]
    for p in params:
        p.grad = None
    t.grad = "autograd"
    _loss(t.matrix(), C).backward()
    auto = [p.grad.clone() for p in params]

    eps = 1e-6
    with torch.no_grad():
        for p, g in zip(params, closed):
            fd = torch.empty_like(g)
            for k in range(p.numel()):
                p0 = p[k].item()
                p[k] = p0 + eps
                up = _loss(t.matrix(), C).item()
                p[k] = p0 - eps
                down = _loss(t.matrix(), C).item()
                p[k] = p0
                fd[k] = (up - down) / (2 * eps)
            torch.testing.assert_close(g, fd, rtol=1e-6, atol=1e-6)
    for c, a in zip(closed, auto):
        torch.testing.assert_close(c, a, rtol=1e-10, atol=1e-10)


def test_scurnn_matrix_gradient_is_skew_hermitian_projection():
    """K = M - M^H, M the gradient for an unconstrained complex A (torch's convention)."""
    n = 6
    gen = torch.Generator().manual_seed(2)
    A = skew_hermitian(torch.randn(n * (n - 1) // 2, generator=gen, dtype=torch.float64),
                       torch.randn(n * (n + 1) // 2, generator=gen, dtype=torch.float64), n).requires_grad_()
    theta = torch.rand(n, generator=gen, dtype=torch.float64) * 2 * math.pi
    C = torch.randn(n, n, generator=gen, dtype=torch.complex128)
    W = scaled_unitary_cayley(A, theta)
    G, = torch.autograd.grad(_loss(W, C), W, retain_graph=True)
    M, = torch.autograd.grad(_loss(W, C), A)
    K, _ = scurnn_gradients(A.detach(), theta, G)
    torch.testing.assert_close(K, -K.mH, rtol=0, atol=1e-14)
    torch.testing.assert_close(K, M - M.mH, rtol=1e-10, atol=1e-10)
    assert orthogonality_error(W) < 1e-12


def test_scurnn_reaches_eigenvalue_minus_one_through_its_phases():
    """Plain Cayley never gives -1; with D = diag(e^{i theta}), A = 0 and theta_0 = pi it is exact."""
    t = ScaledUnitaryCayley(4).double()
    with torch.no_grad():
        t.x.zero_()
        t.theta.copy_(torch.tensor([math.pi, 0.3, 1.0, 2.0], dtype=torch.float64))
    ev = torch.linalg.eigvals(t.matrix().detach())
    assert (ev + 1).abs().min() < 1e-12


def test_urnn_factors_are_unitary_and_w_is_unitary_for_any_parameters():
    with seeded(0):
        t = RestrictedUnitary(16).double()
    with torch.no_grad():
        t.v.mul_(7.3)  # reflections do not care about the scale of v
        t.w.add_(1.0)
    assert orthogonality_error(t.matrix()) < 1e-12
    # the matrix is the product, applied to a vector factor by factor
    h = torch.randn(16, dtype=torch.complex128)
    v = torch.complex(t.v[:, 0], t.v[:, 1]).detach()
    D = torch.polar(torch.ones_like(t.w), t.w).detach()
    x = D[0] * h
    x = torch.fft.fft(x, norm="ortho")
    x = x - 2 * v[0] * (v[0].conj() @ x) / v[0].abs().square().sum()
    x = D[1] * x[t.perm]
    x = torch.fft.ifft(x, norm="ortho")
    x = D[2] * (x - 2 * v[1] * (v[1].conj() @ x) / v[1].abs().square().sum())
    torch.testing.assert_close(t.matrix().detach() @ h, x, rtol=1e-12, atol=1e-12)


def test_cayley_update_stays_unitary_and_descends():
    """One multiplicative step: W stays on U(n) to rounding, and a small step lowers the loss."""
    n = 10
    gen = torch.Generator().manual_seed(0)
    Q, _ = torch.linalg.qr(torch.randn(n, n, generator=gen, dtype=torch.complex128))
    W = torch.nn.Parameter(Q.clone())
    C = torch.randn(n, n, generator=gen, dtype=torch.complex128)
    opt = CayleyUnitary([W], lr=1e-3)
    losses = []
    for _ in range(20):
        opt.zero_grad()
        loss = _loss(W, C)
        loss.backward()
        losses.append(loss.item())
        opt.step()
    assert orthogonality_error(W) < 1e-12
    assert all(b < a for a, b in zip(losses, losses[1:]))


def test_fcurnn_uses_its_own_update_and_rejects_adam_for_w():
    with seeded(0):
        model = create_model("fcurnn", d_in=2, d_out=2, hidden=6)
    config = RunConfig(model="fcurnn", task="copying")
    kinds = [type(o).__name__ for o in make_optimizers(model, config)]
    assert kinds == ["RMSprop", "CayleyUnitary"]
    with pytest.raises(Exception, match=r"invalid optimizer 'adam' for fcurnn's parameter group 'orthogonal'"):
        make_optimizers(model, RunConfig(model="fcurnn", task="copying", orth_optimizer="adam"))


def test_nnrnn_keeps_p_orthogonal_and_w_eigenvalues_those_of_lambda():
    """W = P (Lambda + T) P^T is similar to the block-upper-triangular Lambda + T: its eigenvalues are
    those of the 2x2 diagonal blocks, whatever T holds above them, after real training steps."""
    task = create_task("copying", T=10, K=3)
    with seeded(0):
        model = create_model("nnrnn", d_in=task.d_in, d_out=task.d_out, output="sequence", hidden=12,
                             delta=0.1)
    config = RunConfig(model="nnrnn", task="copying", lr=1e-2, orth_lr=1e-3)
    opts = make_optimizers(model, config)
    assert [o.defaults["weight_decay"] for o in opts] == [0, 0, 1e-6]  # default, orthogonal, upper (paper)
    for step in range(1, 51):
        x, y = task.train_batch(step, 16, seed=0)
        train_step(model, opts, task, x, y, step)
    t = model.transition
    assert t.upper.abs().max() > 1e-3, "T should have moved from 0"
    assert orthogonality_error(t.orthogonal_factor()) < 1e-5
    W = model.recurrent_matrix().detach().double()
    S = t.schur_factor().detach().double()
    blocks = [S[k:k + 2, k:k + 2] for k in range(0, 12, 2)]
    expected = torch.cat([torch.linalg.eigvals(b) for b in blocks])
    got = torch.linalg.eigvals(W)
    dist = (got[:, None] - expected[None, :]).abs().min(1).values
    assert dist.max() < 1e-4
    W_normal = (t.orthogonal_factor() @ (t.schur_factor() - torch.triu(t.schur_factor(), 2)) @ t.orthogonal_factor().mT)
    assert (W - W_normal.double()).abs().max() > 1e-4  # non-normal: T matters


def test_nnrnn_regularizer_pulls_gamma_to_one():
    with seeded(0):
        model = create_model("nnrnn", d_in=2, d_out=2, hidden=6, delta=0.5)
    with torch.no_grad():
        model.transition.gamma.fill_(1.2)
    assert model.regularizer().item() == pytest.approx(0.5 * 3 * 0.04, rel=1e-5)


def test_lru_scan_equals_the_loop_and_ring_init():
    gen = torch.Generator().manual_seed(0)
    T, B, N = 37, 3, 5
    r, phase = torch.rand(2, N, generator=gen, dtype=torch.float64)
    a = torch.polar(r, phase)
    b = torch.randn(T, B, N, generator=gen, dtype=torch.complex128)
    x, xs = torch.zeros(B, N, dtype=torch.complex128), []
    for t in range(T):
        x = a * x + b[t]
        xs.append(x)
    torch.testing.assert_close(associative_scan(a[None, None], b), torch.stack(xs), rtol=1e-12, atol=1e-12)
    with seeded(1):
        layer = LRULayer(width=4, state=2000, r_min=0.4, r_max=0.9, max_phase=math.pi / 10)
    lam = layer.eigenvalues().detach()
    assert lam.abs().min() >= 0.4 - 1e-6 and lam.abs().max() <= 0.9 + 1e-6
    assert lam.angle().min() >= 0 and lam.angle().max() <= math.pi / 10 + 1e-6
    # uniform on the ring by area: E|lambda|^2 = (r_min^2 + r_max^2) / 2
    assert lam.abs().square().mean().item() == pytest.approx((0.16 + 0.81) / 2, abs=0.01)
    # gamma normalization: exp(gamma_log) = sqrt(1 - |lambda|^2)
    torch.testing.assert_close(torch.exp(layer.gamma_log).detach(), (1 - lam.abs().square()).sqrt(),
                               rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("depth", [1, 3])
def test_lru_depth_option(depth):
    with seeded(0):
        m = create_model("lru", d_in=2, d_out=3, hidden=8, width=6, depth=depth)
    assert len(m.blocks) == depth and m.recurrent_matrix().shape == (8 * depth, 8 * depth)
    per_block = 3 * 8 + 4 * 8 * 6 + 6 + 2 * (36 + 6) + 12
    assert m.parameter_count() == 2 * 6 + 6 + depth * per_block + 6 * 3 + 3


def test_cornn_matches_the_papers_update_written_out():
    with seeded(0):
        m = create_model("cornn", d_in=2, d_out=3, hidden=4, output="sequence").double()
    x = torch.randn(2, 5, 2, dtype=torch.float64)
    y = z = torch.zeros(2, 4, dtype=torch.float64)
    ys = []
    for t in range(5):
        pre = m.cell(torch.cat([x[:, t], z, y], 1))
        z = z + m.dt * (torch.tanh(pre) - m.gamma * y - m.epsilon * z)
        y = y + m.dt * z
        ys.append(y)
    torch.testing.assert_close(m(x), m.readout(torch.stack(ys, 1)), rtol=1e-12, atol=1e-12)
    # recurrent_matrix is the one-step Jacobian at the origin
    h0 = torch.zeros(8, dtype=torch.float64)

    def one_step(h):
        yy, zz = h[:4], h[4:]
        pre = m.cell(torch.cat([torch.zeros(2, dtype=torch.float64), zz, yy])) - m.cell.bias
        zn = zz + m.dt * (torch.tanh(pre) - m.gamma * yy - m.epsilon * zz)
        return torch.cat([yy + m.dt * zn, zn])

    J = torch.autograd.functional.jacobian(one_step, h0)
    torch.testing.assert_close(m.recurrent_matrix().detach(), J, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("n", [6, 8])  # det of the reversal: -1 at n=6 (the sign flip), +1 at n=8
def test_nnrnn_from_authors_runs_the_authors_recurrence(n):
    """The authors' cell computes h_{t-1} M, M = P (Lambda + T) P^T; converted, this model's W = M^T."""
    from suite.models.nnrnn import NonNormal, from_authors

    g = torch.Generator().manual_seed(n)
    L, T = torch.randn(n, n, generator=g, dtype=torch.float64), torch.randn(n, n, generator=g, dtype=torch.float64)
    theta, gamma = 6.28 * torch.rand(n, generator=g, dtype=torch.float64), 0.5 + torch.rand(n // 2, generator=g,
                                                                                          dtype=torch.float64)
    # the authors' matrix, from their definitions
    S = torch.triu(L, 1) - torch.triu(L, 1).mT
    P = torch.linalg.matrix_exp(S)
    c, s = torch.cos(theta[: n // 2]), torch.sin(theta[: n // 2])
    Lam = torch.block_diag(*[gamma[i] * torch.tensor([[c[i], -s[i]], [s[i], c[i]]]) for i in range(n // 2)])
    M = P @ (torch.triu(T, 1) + Lam) @ P.mT
    t = NonNormal(n).double()
    t.load_state_dict(from_authors(L, T, theta, gamma))
    torch.testing.assert_close(t.matrix(), M.mT, rtol=0, atol=1e-10)
    # loaded as they are, the same numbers give M itself: the transposed recurrence
    same = NonNormal(n).double()
    with torch.no_grad():
        rows, cols = torch.triu_indices(n, n, 1)
        same.log_p.copy_(S[rows, cols]), same.upper.copy_(T[rows, cols])
        same.theta.copy_(theta[: n // 2]), same.gamma.copy_(gamma)
    torch.testing.assert_close(same.matrix(), M, rtol=0, atol=1e-10)


def test_nnrnn_from_authors_refuses_an_odd_size():
    from suite.models.nnrnn import from_authors

    with pytest.raises(ConfigError, match="hidden=5"):
        from_authors(torch.zeros(5, 5), torch.zeros(5, 5), torch.zeros(5), torch.ones(2))


def test_lru_eigenvalues_stay_inside_the_unit_circle_in_float32():
    """nu = exp(nu_log) below float32's epsilon would round |lambda| = exp(-nu) to exactly 1."""
    model = create_model("lru", d_in=2, d_out=3, hidden=8)
    with torch.no_grad():
        for b in model.blocks:
            b.lru.nu_log.fill_(-20.0)
    assert model.recurrent_matrix().dtype == torch.complex64
    assert model.recurrent_matrix().diagonal().abs().max() < 1


def test_lru_parameter_formula_follows_width_and_depth():
    """At the paper scale's preset (width 256, depth 4) the registry's formula equals the module's count."""
    from suite.registry import MODELS

    model = create_model("lru", d_in=1, d_out=10, hidden=128, width=256, depth=4)
    assert model.parameter_count() == 1_058_314
    assert MODELS.entry("lru").paper_parameter_count(128, 1, 10, width=256, depth=4) == 1_058_314


def test_fcurnn_stays_unitary_over_thousands_of_cayley_steps():
    """W (complex64) is the float64 master copy rounded: no random walk off U(n) as steps add up."""

    torch.manual_seed(0)
    model = create_model("fcurnn", d_in=2, d_out=3, hidden=16)
    W = model.transition.weight
    opt = CayleyUnitary([W], lr=1e-3)
    g = torch.Generator().manual_seed(1)
    for _ in range(3000):
        W.grad = torch.randn(W.shape, dtype=W.dtype, generator=g)
        opt.step()
    assert orthogonality_error(W) < 3e-7  # one rounding of a unitary matrix, not 3,000 of them
    master = opt.state[W]["master"]
    assert master.dtype == torch.complex128 and orthogonality_error(master) < 1e-12
