"""Every registered model, parametrized over the registry: a new model is tested for free."""

import pytest
import torch

from suite.registry import MODELS, create_model
from suite.seeding import seeded

ALL = MODELS.names()


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("output", ["last", "sequence"])
def test_shapes_backward_no_nan(name, output):
    with seeded(0):
        model = create_model(name, d_in=3, d_out=5, output=output, hidden=12)
    x = torch.randn(4, 7, 3)
    out = model(x)
    assert out.shape == ((4, 5) if output == "last" else (4, 7, 5))
    assert torch.isfinite(out).all()
    out.square().mean().backward()
    grads = [p.grad for p in model.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


@pytest.mark.parametrize("name", ALL)
def test_same_seed_same_model(name):
    x = torch.randn(2, 6, 3)
    outs = []
    for _ in range(2):
        with seeded(123):
            outs.append(create_model(name, d_in=3, d_out=2, hidden=10)(x))
    with seeded(124):
        other = create_model(name, d_in=3, d_out=2, hidden=10)(x)
    assert torch.equal(outs[0], outs[1])
    assert not torch.equal(outs[0], other)


@pytest.mark.parametrize("name", ALL)
def test_contract(name):
    model = create_model(name, d_in=3, d_out=2, hidden=10)
    W = model.recurrent_matrix()
    assert W.shape == (10, 10)
    groups = model.parameter_groups()
    assert set(groups) == {"orthogonal", "default"}
    ids = [id(p) for g in groups.values() for p in g]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # a partition
    assert bool(groups["orthogonal"]) == (model.constraint is not None)
    x = torch.randn(2, 6, 3)
    out, hs = model.trajectory(x)  # the reference loop: must agree with forward's engine
    assert len(hs) == 6 and hs[0].shape == (2, 10)
    torch.testing.assert_close(out, model(x), rtol=1e-5, atol=1e-6)


def formula(name, n, d_in, d_out):
    """Parameter counts from the papers' formulas (reference.md section 7 where given)."""
    io = n * d_in + n + n * d_out + d_out  # U, b, readout
    skew = n * (n - 1) // 2
    if name in ("scornn", "scornn_autograd", "exprnn", "exprnn_cayley", "dtriv"):
        return skew + io
    if name in ("geotorch_expm", "geotorch_cayley", "torch_cayley", "torch_matrix_exp",
                "torch_householder", "rnn"):
        return n * n + io  # the full n x n matrix is stored
    if name == "lstm":  # 4(n(d_in + n) + n) + n d_out + d_out, plus torch's second bias set
        return 4 * (n * (d_in + n) + n) + n * d_out + d_out + 4 * n
    if name == "gru":
        return 3 * (n * (d_in + n) + n) + n * d_out + d_out + 3 * n
    if name == "eurnn":  # 2 angles per rotation, n phases, complex U, bias, readout from [Re, Im]
        pairs = sum(len(range(layer % 2, n - 1, 2)) for layer in range(4))
        return 2 * pairs + n + 2 * n * d_in + n + 2 * n * d_out + d_out
    if name == "eurnn_fft":
        import math

        pairs = sum(sum(1 for i in range(n) if (i // 2**k) % 2 == 0 and i + 2**k < n)
                    for k in range(math.ceil(math.log2(n))))
        return 2 * pairs + n + 2 * n * d_in + n + 2 * n * d_out + d_out
    return None


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("n", [9, 16])
def test_parameter_count_formula(name, n):
    expected = formula(name, n, 3, 4)
    if expected is None:
        pytest.skip(f"no published formula for {name}")
    assert create_model(name, d_in=3, d_out=4, hidden=n).parameter_count() == expected


@pytest.mark.parametrize(("d_in", "d_out", "n", "published"), [
    (1, 10, 170, 16_415), (1, 10, 360, 68_950), (1, 10, 512, 136_970),  # MNIST
    (10, 9, 190, 21_764),  # copying
    (2, 1, 170, 15_046),  # adding
])
def test_scornn_published_parameter_counts(d_in, d_out, n, published):
    """reference.md section 7 (scoRNN paper, arXiv:1707.09520v3, parameter counts in its tables)."""
    assert create_model("scornn", d_in=d_in, d_out=d_out, hidden=n).parameter_count() == published


def test_all_builtin_models_have_a_formula():
    missing = [n for n in ALL if MODELS.entry(n).source == "builtin" and formula(n, 8, 2, 2) is None]
    assert missing == [], f"add a parameter-count formula for {missing}"


@pytest.mark.parametrize("name", ALL)
def test_trajectory_gradients_are_total_derivatives(name):
    """dL/dh_t from trajectory() includes the path through later steps (the gradient profile relies on it)."""
    with seeded(0):
        model = create_model(name, d_in=2, d_out=1, output="last", hidden=6).double()
    x = torch.randn(3, 5, 2, dtype=torch.float64)
    out, hs = model.trajectory(x)
    grads = torch.autograd.grad(out.sum(), hs)
    assert all(g is not None for g in grads)
    assert grads[0].abs().sum() > 0  # h_1 reaches the last-step output only through the recurrence
