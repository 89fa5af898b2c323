"""The engine: the fused kernel against the reference loop (values and gradients, float64), and the
engine's own rules (W once per forward, dispatch)."""

import pytest
import torch

from suite.errors import ConfigError
from suite.models.engine import ACTIVATIONS, RecurrentNet, recurrence, reference_recurrence, resolve_engine
from suite.models.kernels import fused
from suite.registry import MODELS, create_model


def _case(kind, T=30, B=3, n=7, seed=0, dtype=torch.float64):
    g = torch.Generator().manual_seed(seed)
    act = ACTIVATIONS[kind](n).to(dtype)
    with torch.no_grad():
        act.bias.copy_(torch.randn(n, generator=g, dtype=dtype) * 0.3)
    W = (torch.linalg.qr(torch.randn(n, n, generator=g, dtype=dtype))[0] * 1.1).requires_grad_()
    xu = torch.randn(T, B, n, generator=g, dtype=dtype).requires_grad_()
    h0 = torch.randn(B, n, generator=g, dtype=dtype).requires_grad_()
    return act, W, xu, h0


@pytest.mark.parametrize("kind", ["modrelu", "tanh", "relu"])
def test_fused_matches_reference_float64(kind):
    act, W, xu, h0 = _case(kind)
    gout = torch.randn(xu.shape, dtype=xu.dtype, generator=torch.Generator().manual_seed(9))
    leaves = [xu, W, h0, act.bias]

    ref = torch.stack(reference_recurrence(xu, W, act, h0))
    ref_grads = torch.autograd.grad((ref * gout).sum(), leaves, allow_unused=True)
    out = recurrence(xu, W, act, h0, engine="fused")
    grads = torch.autograd.grad((out * gout).sum(), leaves, allow_unused=True)

    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for g, r, name in zip(grads, ref_grads, ["xu", "W", "h0", "b"]):
        if kind != "modrelu" and name == "b":
            assert g is None and r is None  # tanh/relu fold b into xu
            continue
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10, msg=f"d/d{name}")


def test_fused_gradcheck_modrelu():
    act, W, xu, h0 = _case("modrelu", T=6, B=2, n=4, seed=1)
    b = act.bias.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(
        lambda xu, W, b, h0: fused.recurrence(xu, W, b, h0, "modrelu"), (xu, W, b, h0))


def test_fused_float32_close_to_reference_over_long_sequences():
    act, W, xu, h0 = _case("modrelu", T=500, B=4, n=16, seed=2, dtype=torch.float32)
    with torch.no_grad():
        ref = torch.stack(reference_recurrence(xu, W, act, h0))
        out = recurrence(xu, W, act, h0, engine="fused")
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-5)


def _complex_case(T=12, B=3, n=6, seed=0):
    g = torch.Generator().manual_seed(seed)
    act = ACTIVATIONS["modrelu"](n, complex=True).double()
    with torch.no_grad():
        act.bias.copy_(torch.randn(n, generator=g, dtype=torch.float64) * 0.5)
    W = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.complex128))[0].requires_grad_()
    xu = torch.randn(T, B, n, generator=g, dtype=torch.complex128).requires_grad_()
    h0 = torch.randn(B, n, generator=g, dtype=torch.complex128).requires_grad_()
    return act, W, xu, h0


def test_fused_complex_modrelu_matches_reference():
    act, W, xu, h0 = _complex_case()
    gout = torch.randn(xu.shape, dtype=xu.dtype, generator=torch.Generator().manual_seed(1))
    leaves = [xu, W, h0, act.bias]
    ref = torch.stack(reference_recurrence(xu, W, act, h0))
    ref_grads = torch.autograd.grad((ref * gout.conj()).real.sum(), leaves)
    out = fused.recurrence(xu, W, act.bias, h0, "modrelu")
    grads = torch.autograd.grad((out * gout.conj()).real.sum(), leaves)
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for g, r, name in zip(grads, ref_grads, ["xu", "W", "h0", "b"]):
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10, msg=f"d/d{name}")


def test_fused_complex_gradcheck():
    act, W, xu, h0 = _complex_case(T=4, B=2, n=4, seed=2)
    b = act.bias.detach().clone().requires_grad_()
    assert torch.autograd.gradcheck(lambda xu, W, b, h0: fused.recurrence(xu, W, b, h0, "modrelu"), (xu, W, b, h0))


def _complex_inactive_case(seed=3, T=10, B=4, n=8):
    """Units that are inactive (relu(r + b) = 0), a bias exactly 0, and z = 0 at the first step (zero
    input, h_0 = 0), where the output is 0 whatever b is and the reference's gradient is 0."""
    act, W, xu, _ = _complex_case(T=T, B=B, n=n, seed=seed)
    with torch.no_grad():
        act.bias.copy_(torch.tensor([1.5, -1.0, 0.0, 0.3, -3.0, 0.8, -0.5, 2.0], dtype=torch.float64)[:n])
        xu[0] = 0
        xu[3, 1] = 0  # z != 0 there (h_2 W^T), but the input row is 0
    return act, W, xu


def test_fused_complex_inactive_units_and_zero_state_match_reference():
    act, W, xu = _complex_inactive_case()
    gout = torch.randn(xu.shape, dtype=xu.dtype, generator=torch.Generator().manual_seed(4))
    leaves = [xu, W, act.bias]
    ref = torch.stack(reference_recurrence(xu, W, act))
    ref_grads = torch.autograd.grad((ref * gout.conj()).real.sum(), leaves)
    out = fused.recurrence(xu, W, act.bias, None, "modrelu")
    grads = torch.autograd.grad((out * gout.conj()).real.sum(), leaves)
    assert (out[0] == 0).all() and (out.abs() == 0).sum() > out[0].numel()  # inactive units beyond step 1
    torch.testing.assert_close(out, ref, rtol=1e-12, atol=1e-12)
    for g, r, name in zip(grads, ref_grads, ["xu", "W", "b"]):
        assert torch.isfinite(g).all()
        torch.testing.assert_close(g, r, rtol=1e-10, atol=1e-10, msg=f"d/d{name}")


def test_fused_complex_gradcheck_with_inactive_units():
    act, W, xu = _complex_inactive_case(T=4, B=2, n=6)
    with torch.no_grad():
        xu[0] = torch.randn(xu.shape[1:], dtype=xu.dtype, generator=torch.Generator().manual_seed(5))
    b = act.bias.detach().clone().requires_grad_()
    with torch.no_grad():  # away from the kink |z| + b = 0, where finite differences do not hold
        r = fused.recurrence(xu, W, b, None, "modrelu")
    assert (r.abs() == 0).any()
    assert torch.autograd.gradcheck(lambda xu, W, b: fused.recurrence(xu, W, b, None, "modrelu"), (xu, W, b))


def test_complex_recurrence_inplace_matches_and_spares_a_leaf():
    act, W, xu, h0 = _complex_case(T=15, B=3, n=5, seed=6)
    X = torch.cat([xu.real, xu.imag], -1).detach().requires_grad_()
    h02 = torch.cat([h0.real, h0.imag], -1).detach().requires_grad_()
    b = act.bias.detach().clone().requires_grad_()
    gout = torch.randn(X.shape, dtype=X.dtype, generator=torch.Generator().manual_seed(7))
    kept = X.detach().clone()
    plain = fused.complex_recurrence(X, W, b, h02, inplace=True)  # a leaf: copied, not written
    assert torch.equal(X.detach(), kept)
    g_plain = torch.autograd.grad((plain * gout).sum(), [X, W, b, h02])
    handed = X * 1.0
    out = fused.complex_recurrence(handed, W, b, h02, inplace=True)
    assert out.data_ptr() == handed.data_ptr()
    g_handed = torch.autograd.grad((out * gout).sum(), [X, W, b, h02])
    torch.testing.assert_close(out, plain, rtol=0, atol=0)
    for a, g in zip(g_handed, g_plain):
        torch.testing.assert_close(a, g, rtol=1e-12, atol=1e-12)


def test_auto_engine_choice():
    act, W, xu, _ = _case("tanh")
    assert resolve_engine("auto", xu, act) == "fused"
    cact = ACTIVATIONS["modrelu"](7, complex=True)
    cxu = torch.randn(3, 2, 7, dtype=torch.complex64)
    assert resolve_engine("auto", cxu, cact) == "fused"
    with pytest.raises(ConfigError, match="engine"):
        create_model("scornn", d_in=1, d_out=1, hidden=4, engine="warp")


# every registered model on the engine (a Transition making W), from the registry's data
ENGINE_MODELS = [e.name for e in MODELS.entries() if e.cls is not None and issubclass(e.cls, RecurrentNet)]


@pytest.mark.parametrize("name", ENGINE_MODELS)
def test_recurrent_matrix_computed_once_per_forward(name, monkeypatch):
    model = create_model(name, d_in=2, d_out=2, hidden=6)
    calls = []
    original = type(model.transition).matrix
    monkeypatch.setattr(type(model.transition), "matrix",
                        lambda self: calls.append(1) or original(self))
    model(torch.randn(3, 50, 2)).sum().backward()
    assert len(calls) == 1


@pytest.mark.parametrize("kind", ["modrelu", "tanh", "relu"])
def test_inplace_recurrence_matches_and_spares_what_it_was_not_handed(kind):
    """``inplace=True`` writes the states over a handed-over intermediate, and equals the copying path in
    values and gradients; a leaf (a user's tensor) is never written over."""
    act, W, xu, h0 = _case(kind, T=20, B=3, n=6, seed=5)
    gout = torch.randn(xu.shape, dtype=xu.dtype, generator=torch.Generator().manual_seed(3))
    leaves = [xu, W, h0] + ([act.bias] if kind == "modrelu" else [])
    kept = xu.detach().clone()
    plain = recurrence(xu, W, act, h0, engine="fused", inplace=True)  # a leaf: copied, not written
    assert torch.equal(xu.detach(), kept)
    g_plain = torch.autograd.grad((plain * gout).sum(), leaves)
    handed = xu * 1.0  # an intermediate, as the engine's input projection makes
    out = recurrence(handed, W, act, h0, engine="fused", inplace=True)
    assert out.data_ptr() == handed.data_ptr()  # the states live where the inputs were
    g_handed = torch.autograd.grad((out * gout).sum(), leaves)
    torch.testing.assert_close(out, plain, rtol=0, atol=0)
    for a, b in zip(g_handed, g_plain):
        torch.testing.assert_close(a, b, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("name", ENGINE_MODELS)
def test_model_forward_and_gradients_match_the_reference_loop(name):
    """The whole model on the fused path (time-major layout, states written over U x_t) against the
    same model on the plain loop, float64."""
    torch.manual_seed(0)
    fused_net = create_model(name, d_in=3, d_out=4, output="sequence", hidden=6).double()
    ref_net = create_model(name, d_in=3, d_out=4, output="sequence", hidden=6, engine="reference").double()
    ref_net.load_state_dict(fused_net.state_dict())
    x = torch.randn(5, 9, 3, dtype=torch.float64)
    outs, grads = [], []
    for net in (fused_net, ref_net):
        y = net(x)
        outs.append(y)
        grads.append(torch.autograd.grad(y.square().sum(), list(net.parameters())))
    torch.testing.assert_close(outs[0], outs[1], rtol=1e-12, atol=1e-12)
    for a, b in zip(*grads):
        torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)
