"""The Triton recurrence against the reference loop, values and gradients, and torch.autograd.gradcheck in
float64. On a CUDA machine the kernels are compiled and run on CUDA tensors (``nox -s gpu`` runs this file
so); without one they run on CPU tensors under Triton's interpreter (tests/conftest.py sets
TRITON_INTERPRET=1 before anything imports Triton)."""

import pytest
import torch

triton = pytest.importorskip("triton")

from suite.errors import ConfigError  # noqa: E402
from suite.models.engine import ACTIVATIONS, reference_recurrence  # noqa: E402
from suite.models.kernels import triton_rnn  # noqa: E402
from suite.models.kernels.fused import triton_interpreted  # noqa: E402
from suite.registry import create_model  # noqa: E402
from suite.seeding import seeded  # noqa: E402

COMPILED = torch.cuda.is_available() and not triton_interpreted()
DEVICE = "cuda" if COMPILED else "cpu"
if not COMPILED and not triton_interpreted():
    pytest.skip("no GPU and TRITON_INTERPRET is not set", allow_module_level=True)


def _case(kind, T, B, n, seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    act = ACTIVATIONS[kind](n)
    with torch.no_grad():
        act.bias.copy_(torch.randn(n, generator=g) * 0.3)
    W = torch.linalg.qr(torch.randn(n, n, generator=g, dtype=torch.float64))[0].float() * 1.05
    xu = torch.randn(T, B, n, generator=g)
    h0 = torch.randn(B, n, generator=g)
    return [t.to(DEVICE, dtype) for t in (xu, W, h0)] + [act.to(DEVICE, dtype)]


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


# tf32 rounds the dot's operands to 10 mantissa bits (relative 2^-11) on a GPU; the interpreter computes
# in float32 whatever the precision, so there the bound is the float32 one
TOLERANCE = {"triton": 1e-4, "triton-tf32": 1e-2 if COMPILED else 1e-4}


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
    assert _rel(b, a) < TOLERANCE[engine]
    for (name, p), q in zip(ref.named_parameters(), tri.parameters()):
        assert _rel(q.grad, p.grad) < TOLERANCE[engine], name


def test_triton_engine_refuses_complex_states():
    """At construction, not at the first forward pass."""
    with pytest.raises(ConfigError, match="engine='triton' runs real hidden states only"):
        create_model("eurnn", d_in=2, d_out=2, hidden=8, engine="triton")


@pytest.mark.parametrize("kind", ["modrelu", "tanh", "relu"])
@pytest.mark.parametrize(("mode", "n", "block_k"), [("resident", 5, None), ("streamed", 20, 16)])
def test_gradcheck_in_float64(kind, mode, n, block_k):
    """torch.autograd.gradcheck in float64 (Triton's tl.dot takes float64 operands at "ieee" precision):
    the kernel's backward for every input against central finite differences. Compiled, the whole
    Jacobian; under the interpreter, gradcheck's fast mode (random projections of it: seconds, not
    minutes per case)."""
    xu, W, h0, act = _case(kind, T=4, B=3, n=n, seed=7, dtype=torch.float64)
    inputs = [t.requires_grad_() for t in (xu, W, h0)]
    bias = None if act.fold_bias else act.bias.detach().requires_grad_()
    if bias is not None:
        inputs.append(bias)

    def f(xu, W, h0, b=None):
        return triton_rnn.recurrence(xu, W, b, h0, kind, mode=mode, block_k=block_k)

    assert f(*inputs).dtype == torch.float64
    assert torch.autograd.gradcheck(f, inputs, fast_mode=not COMPILED)


def test_float64_takes_ieee_precision_only():
    xu, W, h0, act = _case("tanh", T=2, B=2, n=4, dtype=torch.float64)
    with pytest.raises(ValueError, match="float64 runs with 'ieee' only"):
        triton_rnn.recurrence(xu, W, None, h0, "tanh", precision="tf32")


@pytest.mark.skipif(not COMPILED, reason="the compiled kernel needs a CUDA device (here: Triton's interpreter)")
def test_the_kernel_runs_compiled_on_the_gpu():
    """On a GPU nothing is interpreted: the states come back on the device from a compiled kernel."""
    xu, W, h0, act = _case("relu", T=3, B=4, n=8)
    out = triton_rnn.recurrence(xu, W, None, h0, "relu")
    assert out.is_cuda and not triton_interpreted()
    kernel = triton_rnn._forward_kernel
    assert getattr(kernel, "device_caches", None) or getattr(kernel, "cache", None)  # what Triton compiled
