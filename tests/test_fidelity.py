"""The authors' settings inside the models: dtriv's base changes and projection, readout inits, the
row-vector convention of expRNN, degrees of freedom."""

import math

import pytest
import torch

from suite.contract import orthogonality_error
from suite.models.skew import skew
from suite.registry import create_model
from suite.seeding import seeded


def _dtriv(**kw):
    with seeded(0):
        return create_model("dtriv", d_in=3, d_out=2, output="last", hidden=kw.pop("hidden", 8), **kw)


def test_dtriv_changes_base_before_the_first_step():
    with seeded(0):
        exprnn = create_model("exprnn", d_in=3, d_out=2, hidden=8)
    model = _dtriv(K=5)
    t = model.transition
    assert t.base_changes == 1 and torch.count_nonzero(t.a) == 0
    # the same initial weights: the Henaff A folded into the base, W unchanged
    torch.testing.assert_close(model.recurrent_matrix(), exprnn.recurrent_matrix(), atol=1e-6, rtol=0)
    assert orthogonality_error(t.base) < 1e-5


def test_dtriv_moves_its_base_every_K_steps_and_keeps_W():
    model = _dtriv(K=3, project_every=1000)
    t = model.transition
    with torch.no_grad():
        t.a.add_(0.1)
    W = model.recurrent_matrix().detach().clone()
    for step in (1, 2):
        model.after_step(step)
        assert t.base_changes == 1 and torch.count_nonzero(t.a) > 0
    model.after_step(3)
    assert t.base_changes == 2 and torch.count_nonzero(t.a) == 0
    torch.testing.assert_close(model.recurrent_matrix(), W, atol=1e-6, rtol=0)


def test_dtriv_projects_its_base_back_onto_the_orthogonal_group():
    model = _dtriv(K=1, project_every=4, hidden=16)
    t = model.transition
    with torch.no_grad():
        t.base.add_(1e-3 * torch.randn(16, 16, generator=torch.Generator().manual_seed(0)))
    drift = orthogonality_error(t.base)
    assert drift > 1e-4
    for step in (1, 2):  # base changes 2 and 3: no projection, the drift stays
        model.after_step(step)
        assert orthogonality_error(t.base) > drift / 2
    model.after_step(3)  # the 4th base change (the first counts): projected
    assert t.base_changes == 4 and orthogonality_error(t.base) < 1e-6


def test_dtriv_base_change_count_survives_a_checkpoint():
    model = _dtriv(K=1, project_every=5)
    for step in range(1, 4):
        model.after_step(step)
    clone = _dtriv(K=1, project_every=5)
    clone.load_state_dict(model.state_dict())
    assert clone.transition.base_changes == model.transition.base_changes == 4


def test_exprnn_multiplies_row_vectors_by_B_exp_A():
    """The authors' layer computes h @ (B exp(A)): the suite's column-form W is its transpose."""
    with seeded(0):
        model = create_model("exprnn", d_in=3, d_out=2, hidden=6)
    t = model.transition
    Q = torch.linalg.matrix_exp(skew(t.a, 6))
    torch.testing.assert_close(model.recurrent_matrix(), Q.mT)
    h = torch.randn(4, 6)
    torch.testing.assert_close(h @ model.recurrent_matrix().mT, h @ Q)


@pytest.mark.parametrize("model", ["exprnn", "dtriv", "geotorch_expm", "torch_cayley"])
def test_readout_init_options(model):
    with seeded(0):
        default = create_model(model, d_in=10, d_out=9, hidden=190)
        kaiming = create_model(model, d_in=10, d_out=9, hidden=190, readout_init="kaiming")
    assert torch.count_nonzero(kaiming.readout.bias) == 0 and torch.count_nonzero(default.readout.bias) > 0
    # Kaiming normal (relu gain): std sqrt(2 / fan_in); torch's default: U(-1/sqrt(fan_in), 1/sqrt(fan_in))
    assert kaiming.readout.weight.std().item() == pytest.approx(math.sqrt(2 / 190), rel=0.1)
    assert default.readout.weight.abs().max().item() <= 1 / math.sqrt(190)
    with pytest.raises(Exception, match="readout_init"):
        create_model(model, d_in=10, d_out=9, hidden=8, readout_init="zeros")


def test_degrees_of_freedom():
    n = 10
    for name, stored_recurrent in (("torch_cayley", n * n), ("geotorch_expm", n * n), ("scornn", n * (n - 1) // 2),
                                   ("exprnn", n * (n - 1) // 2), ("rnn", n * n)):
        with seeded(0):
            m = create_model(name, d_in=3, d_out=2, hidden=n)
        assert m.recurrent_parameter_count() == stored_recurrent
        free = n * (n - 1) // 2 if m.constraint == "orthogonal" else n * n
        assert m.degrees_of_freedom() == m.parameter_count() - stored_recurrent + free


def test_scornn_copying_readout_bias_as_tf_get_variable():
    with seeded(0):
        tf_like = create_model("scornn", d_in=10, d_out=9, hidden=32, readout_init="glorot_bias")
        dense = create_model("scornn", d_in=10, d_out=9, hidden=32)
    bound = math.sqrt(3 / 9)  # TF's Glorot on a 1-D shape [9]: fan_in = fan_out = 9
    b = tf_like.readout.bias
    assert b.abs().max().item() <= bound and b.abs().max().item() > bound / 4
    assert torch.count_nonzero(dense.readout.bias) == 0  # tf.layers.dense: zero bias


def test_lstm_forget_bias_starts_at_one_like_tf_basic_lstm_cell():
    with seeded(0):
        plain = create_model("lstm", d_in=3, d_out=2, hidden=5)
    with seeded(0):
        tf_like = create_model("lstm", d_in=3, d_out=2, hidden=5, forget_bias=1.0)
    diff = tf_like.rnn.bias_ih_l0 - plain.rnn.bias_ih_l0
    torch.testing.assert_close(diff[5:10], torch.ones(5))
    assert torch.count_nonzero(diff[:5]) == 0 and torch.count_nonzero(diff[10:]) == 0
