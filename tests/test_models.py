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
    entry = MODELS.entry(name)
    model = create_model(name, d_in=3, d_out=2, hidden=10)
    assert isinstance(model, entry.cls)
    assert model.constraint == entry.info.constraint  # the registry's data say what the model does
    W = model.recurrent_matrix()
    assert W.ndim == 2 and W.shape[0] == W.shape[1] >= 10
    groups = model.parameter_groups()
    assert set(groups) <= set(entry.groups), f"undeclared groups {set(groups) - set(entry.groups)}"
    ids = [id(p) for g in groups.values() for p in g]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())  # a partition
    if model.constraint in ("orthogonal", "unitary"):
        assert groups["orthogonal"]
    x = torch.randn(2, 6, 3)
    out, hs = model.trajectory(x)  # the reference loop: must agree with forward's engine
    assert len(hs) == 6 and hs[0].shape[0] == 2
    torch.testing.assert_close(out, model(x), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("n", [9, 16])
def test_parameter_count_formula(name, n):
    """The paper's formula, carried by the registry entry, against the module's count."""
    formula = MODELS.entry(name).info.params
    if formula is None:
        pytest.skip(f"no published formula for {name}")
    assert create_model(name, d_in=3, d_out=4, hidden=n).parameter_count() == formula(n, 3, 4)


@pytest.mark.parametrize(("d_in", "d_out", "n", "published"), [
    (1, 10, 170, 16_415), (1, 10, 360, 68_950), (1, 10, 512, 136_970),  # MNIST
    (10, 9, 190, 21_764),  # copying
    (2, 1, 170, 15_046),  # adding
])
def test_scornn_published_parameter_counts(d_in, d_out, n, published):
    """The scoRNN paper (arXiv:1707.09520v3): parameter counts in its tables."""
    assert create_model("scornn", d_in=d_in, d_out=d_out, hidden=n).parameter_count() == published


@pytest.mark.parametrize(("name", "d_in", "d_out", "n", "published"), [
    ("urnn", 10, 9, 128, 6_153), ("urnn", 2, 1, 512, 8_193),  # Arjovsky et al. 2016: copying, adding
    ("fcurnn", 1, 10, 116, 16_366), ("fcurnn", 1, 10, 512, 274_954),  # Wisdom et al. 2016: (p)MNIST
    ("scurnn", 1, 10, 116, 16_482),  # Maduranga et al. 2019: MNIST
    ("nnrnn", 10, 9, 128, 18_953), ("nnrnn", 1, 10, 512, 268_298),  # Kerg et al. 2019: copy, psMNIST
    ("cornn", 1, 10, 256, 134_154),  # Rusch & Mishra 2021: psMNIST
])
def test_new_models_published_parameter_counts(name, d_in, d_out, n, published):
    """The counts of the papers' settings (their tables and code; see each model file's docstring)."""
    assert create_model(name, d_in=d_in, d_out=d_out, hidden=n).parameter_count() == published


def test_all_builtin_models_have_a_formula():
    missing = [n for n in ALL if MODELS.entry(n).source == "builtin" and MODELS.entry(n).info.params is None]
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
