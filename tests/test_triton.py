"""The Triton recurrence against the reference loop, values and gradients. On a machine without a GPU
it runs under Triton's interpreter (tests/conftest.py sets TRITON_INTERPRET=1 before anything imports
Triton); on a GPU the same tests run the compiled kernels on CUDA tensors."""

import pytest
import torch

triton = pytest.importorskip("triton")

from suite.errors import ConfigError  # noqa: E402
from suite.models.engine import ACTIVATIONS, reference_recurrence  # noqa: E402
from suite.models.kernels import triton_rnn  # noqa: E402
from suite.models.kernels.fused import triton_interpreted  # noqa: E402
from suite.registry import create_model  # noqa: E402
from suite.seeding import seeded  # noqa: E402

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
if DEVICE == "cpu" and not triton_interpreted():
    pytest.skip("no GPU and TRITON_INTERPRET is not set", allow_module_level=True)


def _case(kind, T, B, n, seed=0):
    g = torch.Generator().manual_seed(seed)
    act = ACTIVATIONS[kind](n)
    with torch.no_grad():
        act.bias.copy_(torch.randn(n, generator=g) * 0.3)
    W = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0].float() * 1.05
    xu = torch.randn(T, B, n, generator=g)
    h0 = torch.randn(B, n, generator=g)
    return [t.to(DEVICE) for t in (xu, W, h0)] + [act.to(DEVICE)]


def _rel(a, b):
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-12)).item()


@pytest.mark.parametrize("kind", ["modrelu", "tanh", "relu"])
@pytest.mark.parametrize(("mode", "n", "block_k"), [("resident", 7, None), ("resident", 33, None),
                                                    ("streamed", 40, 16), ("streamed", 70, 32)])
def test_kernel_matches_reference_with_gradients(kind, mode, n, block_k):
    xu, W, h0, act = _case(kind, T=11, B=19, n=n)  # B=19: a partial batch block; n not a power of 2
    leaves = [t.requires_grad_() for t in (xu, W, h0)] + [act.bias]
    gout = torch.randn(xu.shape, generator=torch.Generator().manual_seed(5)).to(DEVICE)
    ref = torch.stack(reference_recurrence(xu, W, act, h0))
    ref_grads = torch.autograd.grad((ref * gout).sum(), leaves, allow_unused=True)
    out = triton_rnn.recurrence(xu, W, None if act.fold_bias else act.bias, h0, kind, mode=mode, block_k=block_k)
    grads = torch.autograd.grad((out * gout).sum(), leaves, allow_unused=True)
    assert _rel(out, ref) < 1e-5
    for name, g, r in zip(["xu", "W", "h0", "b"], grads, ref_grads):
        if r is None:
            assert g is None, name
            continue
        assert _rel(g, r) < 1e-5, name


def test_bf16_rounds_the_matmul_operands_and_nothing_else():
    """precision='bf16': h and W enter tl.dot rounded to bfloat16, accumulate in float32."""
    xu, W, h0, act = _case("modrelu", T=8, B=16, n=24, seed=3)
    with torch.no_grad():
        out = triton_rnn.recurrence(xu, W, act.bias, h0, "modrelu", precision="bf16")
        h, hs = h0, []
        Wt = W.t().bfloat16().float()
        for u in xu.unbind(0):
            h = act.step(u + h.bfloat16().float() @ Wt)
            hs.append(h)
        emulated = torch.stack(hs)
        exact = torch.stack(reference_recurrence(xu, W, act, h0))
    assert _rel(out, emulated) < 1e-5
    assert _rel(out, exact) > 1e-4  # it really is lower precision


@pytest.mark.parametrize("engine", ["triton", "triton-tf32"])
def test_models_run_on_the_triton_engine(engine):
    with seeded(0):
        ref = create_model("scornn", d_in=3, d_out=2, output="sequence", hidden=20, engine="reference").to(DEVICE)
    with seeded(0):
        tri = create_model("scornn", d_in=3, d_out=2, output="sequence", hidden=20, engine=engine).to(DEVICE)
    x = torch.randn(4, 9, 3).to(DEVICE)
    a, b = ref(x), tri(x)
    a.square().sum().backward()
    b.square().sum().backward()
    assert _rel(b, a) < 1e-4
    for (name, p), q in zip(ref.named_parameters(), tri.parameters()):
        assert _rel(q.grad, p.grad) < 1e-4, name


def test_triton_engine_refuses_complex_states():
    """At construction, not at the first forward pass."""
    with pytest.raises(ConfigError, match="engine='triton' runs real hidden states only"):
        create_model("eurnn", d_in=2, d_out=2, hidden=8, engine="triton")
