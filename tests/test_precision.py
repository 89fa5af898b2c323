"""Mixed precision (``precision="bf16"``): a bfloat16 autocast over the forward pass, the recurrent matrix
and the recurrence kept in float32, orthogonality recorded as before; run on the CPU's bf16 autocast."""

import hashlib
import json

import pytest
import torch
from torch import nn

from suite.config import RunConfig
from suite.contract import orthogonality_error
from suite.errors import ConfigError
from suite.registry import create_model
from suite.runner import autocast, check_precision, execute
from suite.seeding import seeded
from suite.store import Store
from tests.helpers import cli, tiny


def test_existing_configs_keep_their_run_ids():
    """The field is left out of the hash at its default: run ids recorded before it existed stand."""
    known = {  # computed before the precision setting existed
        "scornn-copying-6578501502-s0": RunConfig(model="scornn", task="copying"),
        "scornn-copying-852130c70a-s0": tiny(),
        "lstm-mnist-2893ceed11-s3": RunConfig(model="lstm", task="mnist", seed=3, hidden=128, lr=1e-3, clip=1.0),
    }
    for run_id, config in known.items():
        assert config.run_id == run_id
    c = RunConfig(model="scornn", task="copying")
    old_dict = {k: v for k, v in c.to_dict().items() if k != "precision"}  # a config stored before it
    assert RunConfig.from_dict(old_dict) == c and RunConfig.from_dict(old_dict).precision == "fp32"
    before = {k: v for k, v in old_dict.items() if k not in ("seed", "checkpoint_every", "group_options")}
    assert c.config_hash == hashlib.sha256(json.dumps(before, sort_keys=True).encode()).hexdigest()
    bf16 = RunConfig(model="scornn", task="copying", precision="bf16")
    assert bf16.config_hash != c.config_hash and RunConfig.from_dict(bf16.to_dict()) == bf16


def test_bad_precision_is_refused_with_the_choices():
    with pytest.raises(ConfigError, match=r"invalid precision='fp16'; valid choices: 'fp32', 'bf16'"):
        RunConfig(model="scornn", task="copying", precision="fp16")
    with pytest.raises(ConfigError, match=r"precision='bf16' on device 'meta'.*valid here: 'fp32'"):
        check_precision("bf16", torch.device("meta"))
    check_precision("bf16", torch.device("cpu"))
    r = cli("run", "--models", "rnn", "--tasks", "copying", "--seeds", "0", "--set", "precision=fp16",
            "--dry-run", "--estimate", "none")
    assert r.returncode == 2 and "invalid precision='fp16'" in r.stderr and "Traceback" not in r.stderr
    r = cli("run", "--models", "rnn", "--tasks", "copying", "--seeds", "0", "--set", "precision=bf16",
            "--dry-run", "--estimate", "none")
    assert r.returncode == 0, r.stderr
    assert "precision='bf16'" in r.stdout


@pytest.mark.parametrize("name", ["scornn", "exprnn", "dtriv", "torch_householder", "eurnn", "urnn", "rnn"])
def test_bf16_rounds_the_projections_and_not_the_recurrence(name):
    """Under the autocast the input projection and the readout compute in bfloat16; W is the float32 W bit
    for bit, and the hidden states are the float32 recurrence of the bfloat16 projection."""
    with seeded(0):
        model = create_model(name, d_in=10, d_out=9, output="sequence", hidden=12)
    x = torch.randn(4, 7, 10, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        W32 = model.recurrent_matrix()
        with autocast("bf16", "cpu"):
            W = model.recurrent_matrix()
            xu = model._inputs(x, complex_form=False)
            out = model(x)
            _, hs = model.trajectory(x)
        assert W.dtype == W32.dtype and torch.equal(W, W32)
        bias = model.act.bias if model.act.fold_bias else None
        exact_bf16 = nn.functional.linear(x.transpose(0, 1).bfloat16(), model.input.weight.bfloat16(),
                                          None if bias is None else bias.bfloat16())
        assert xu.dtype == torch.float32 and torch.equal(xu, exact_bf16.float())
        assert out.dtype == torch.bfloat16  # the readout
        assert all(h.dtype in (torch.float32, torch.complex64) for h in hs)
        # the states: float32 recurrence (the reference loop) of the rounded projection
        from suite.models.engine import reference_recurrence

        u = model._inputs(x)  # float32 path, then the projection rounded as the autocast rounds it
        if u.is_complex():
            n = model.hidden
            u = torch.complex(exact_bf16.float()[..., :n], exact_bf16.float()[..., n:])
        else:
            u = exact_bf16.float()
        ref = reference_recurrence(u, W32, model.act, model._h0(len(x)))
        assert max((a - b).abs().max().item() for a, b in zip(hs, ref)) == 0.0
        assert orthogonality_error(W) < 1e-5


@pytest.mark.parametrize("name", ["lstm", "gru", "cornn", "lru"])
def test_bf16_runs_the_other_models_with_a_bf16_readout(name):
    with seeded(0):
        model = create_model(name, d_in=10, d_out=9, output="sequence", hidden=12)
    x = torch.randn(4, 7, 10, generator=torch.Generator().manual_seed(1))
    with autocast("bf16", "cpu"):
        out = model(x)
        _, hs = model.trajectory(x)
    assert out.dtype == torch.bfloat16 and torch.isfinite(out.float()).all()
    assert all(h.dtype in (torch.float32, torch.complex64) for h in hs)  # the recurrence: float32
    out.float().square().mean().backward()
    assert all(p.grad is None or p.grad.dtype == p.dtype for p in model.parameters())


@pytest.mark.parametrize("name", ["scornn", "exprnn", "eurnn", "lstm"])
def test_a_bf16_run_records_orthogonality_as_an_fp32_run(tmp_path, name):
    store = Store(tmp_path / "s.db")
    runs = {p: execute(tiny(model=name, steps=30, precision=p), store, device="cpu") for p in ("fp32", "bf16")}
    assert all(o.status == "finished" for o in runs.values())
    assert runs["bf16"].run_id != runs["fp32"].run_id
    losses = {p: store.series(o.run_id, "train/loss")[1] for p, o in runs.items()}
    assert losses["bf16"] != losses["fp32"]  # it really ran in lower precision
    assert abs(losses["bf16"][-1] - losses["fp32"][-1]) < 0.05 * losses["fp32"][-1]
    orth = {p: store.series(o.run_id, "orth_error")[1] for p, o in runs.items()}
    if name == "lstm":
        assert orth == {"fp32": [], "bf16": []}
    else:
        assert len(orth["bf16"]) == 4 and max(orth["bf16"]) < 1e-5 and max(orth["fp32"]) < 1e-5
    assert store.run(runs["bf16"].run_id)["config"]["precision"] == "bf16"
    assert len(store.profiles(runs["bf16"].run_id)) == 4


def test_only_autocast_outputs_are_widened_for_the_loss():
    """The loss is computed on float32 outputs under bf16, and on the model's own dtype otherwise (a
    float64 model keeps a float64 loss)."""
    from suite.registry import create_task
    from suite.runner import make_optimizers, train_step

    task = create_task("adding", T=5, eval_size=4)
    x, y = task.train_batch(1, 3, 0)
    for dtype, precision, expected in ((torch.float64, "fp32", torch.float64), (torch.float32, "bf16", torch.float32)):
        with seeded(0):
            model = create_model("scornn", d_in=2, d_out=1, hidden=6).to(dtype)
        opts = make_optimizers(model, RunConfig(model="scornn", task="adding", precision=precision))
        loss = train_step(model, opts, task, x.to(dtype), y.to(dtype), 1, precision=precision)
        assert loss.dtype == expected
