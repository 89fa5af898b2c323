"""The fused GRU kernel against torch.nn.GRU: values and every parameter gradient (float64 to 1e-10,
float32 to the tolerance documented in docs/performance.md), gradcheck, and the engine option."""

import pytest
import torch

from suite.errors import ConfigError
from suite.models.kernels import fused_gated
from suite.registry import create_model


def _pair(output, dtype, seed=0, n=7, d_in=3, d_out=4, **options):
    with torch.random.fork_rng():
        torch.manual_seed(seed)
        fused = create_model("gru", d_in=d_in, d_out=d_out, output=output, hidden=n, engine="fused", **options)
    ref = create_model("gru", d_in=d_in, d_out=d_out, output=output, hidden=n, engine="torch", **options)
    ref.load_state_dict(fused.state_dict())
    return fused.to(dtype), ref.to(dtype)


def _grads(model, x, gout):
    model.zero_grad(set_to_none=True)
    out = model(x)
    (out * gout).sum().backward()
    return out.detach(), {k: p.grad.clone() for k, p in model.named_parameters()}


@pytest.mark.parametrize("output", ["sequence", "last"])
def test_fused_gru_matches_torch_float64(output):
    fused, ref = _pair(output, torch.float64)
    g = torch.Generator().manual_seed(1)
    x = torch.randn(5, 13, 3, generator=g, dtype=torch.float64)
    gout = torch.randn(fused(x).shape, generator=g, dtype=torch.float64)
    out, grads = _grads(fused, x, gout)
    ref_out, ref_grads = _grads(ref, x, gout)
    torch.testing.assert_close(out, ref_out, rtol=1e-10, atol=1e-10)
    assert grads.keys() == ref_grads.keys() and len(grads) == 6
    for k in grads:
        torch.testing.assert_close(grads[k], ref_grads[k], rtol=1e-10, atol=1e-10, msg=f"d/d{k}")


def test_fused_gru_gradcheck_with_initial_state_and_input_gradient():
    g = torch.Generator().manual_seed(2)
    T, B, d, n = 6, 3, 2, 4
    args = [torch.randn(*s, generator=g, dtype=torch.float64).requires_grad_()
            for s in [(T, B, d), (3 * n, d), (3 * n, n), (3 * n,), (3 * n,), (B, n)]]
    assert torch.autograd.gradcheck(fused_gated.gru, args)
    assert torch.autograd.gradcheck(lambda *a: fused_gated.gru(*a, None), args[:-1])


def test_fused_gru_float32_close_to_torch():
    # measured: outputs agree to ~1e-6, parameter gradients to ~1e-5 relative (T=200, n=32)
    fused, ref = _pair("sequence", torch.float32, n=32, d_in=5)
    g = torch.Generator().manual_seed(3)
    x = torch.randn(8, 200, 5, generator=g)
    gout = torch.randn(8, 200, 4, generator=g)
    out, grads = _grads(fused, x, gout)
    ref_out, ref_grads = _grads(ref, x, gout)
    torch.testing.assert_close(out, ref_out, rtol=1e-5, atol=1e-5)
    for k in grads:
        torch.testing.assert_close(grads[k], ref_grads[k], rtol=1e-4, atol=1e-4, msg=f"d/d{k}")


def test_gru_auto_engine_is_fused_on_cpu_and_trajectory_agrees():
    model = create_model("gru", d_in=3, d_out=2, output="sequence", hidden=6).double()
    x = torch.randn(2, 9, 3, dtype=torch.float64)
    assert model.engine == "auto" and model._fused(x)
    out, hs = model.trajectory(x)
    torch.testing.assert_close(model(x), out, rtol=1e-10, atol=1e-10)
    assert len(hs) == 9


def test_engine_choice_is_checked():
    with pytest.raises(ConfigError, match=r"invalid engine='cuda' for gru; valid choices: 'auto', 'fused', 'torch'"):
        create_model("gru", d_in=2, d_out=2, hidden=4, engine="cuda")
    with pytest.raises(ConfigError, match=r"invalid engine='fused' for lstm; valid choices: 'auto', 'torch'"):
        create_model("lstm", d_in=2, d_out=2, hidden=4, engine="fused")
    assert create_model("lstm", d_in=2, d_out=2, hidden=4, engine="torch").engine == "torch"


def test_auto_engine_keeps_torch_kernel_off_cpu():
    """On any other device (cuDNN on CUDA) "auto" runs torch's module; a meta tensor stands in for one."""
    model = create_model("gru", d_in=3, d_out=2, hidden=6)
    assert not model._fused(torch.empty(1, 1, 3, device="meta"))
    assert create_model("gru", d_in=3, d_out=2, hidden=6, engine="fused")._fused(torch.empty(1, 1, 3, device="meta"))
