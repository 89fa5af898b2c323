"""The comparison models through the one runner: recorded runs, and checkpoints that resume exactly
(complex W, the Cayley update's state, three parameter groups)."""

import io

import pytest
import torch

from suite.config import RunConfig
from suite.protocols import resolve
from suite.registry import MODELS, create_task
from suite.runner import build, execute, make_optimizers, train_step
from suite.store import Store
from tests.helpers import tiny

# the comparison models: built-ins outside the main job with a paper of their own (not a variant of a
# main-job model, such as scoRNN with autograd)
MISSION_PAPERS = {e.info.paper for e in MODELS.entries(mission=True)}
NEW = [e.name for e in MODELS.entries(mission=False) if e.source == "builtin" and e.info.paper
       and e.info.paper not in MISSION_PAPERS]


def test_the_comparison_models_are_outside_the_main_job():
    assert len(NEW) >= 6  # uRNN, its full-capacity form, scuRNN, nnRNN, coRNN, LRU at least
    assert not set(NEW) & set(MODELS.names(mission=True))


@pytest.mark.parametrize("name", NEW)
def test_a_quick_run_records_and_tracks_what_the_contract_says(tmp_path, name):
    store = Store(tmp_path / "s.db")
    quick = resolve(name, "copying", "quick")  # the model's quick-scale optimizer settings
    config = tiny(model=name, steps=20, optimizer=quick.optimizer, orth_optimizer=quick.orth_optimizer,
                  group_options=quick.group_options)
    out = execute(config, store)
    assert out.status == "finished", out.error
    _, model = build(config)
    _, orth = store.series(out.run_id, "orth_error")
    assert bool(orth) == model.tracks_orthogonality
    if model.constraint in ("orthogonal", "unitary"):
        assert max(orth) < 1e-5
    options = {k: v for k, v in MODELS.options(name).items() if k not in ("d_in", "d_out", "output", "hidden")}
    assert store.run(out.run_id)["params_total"] == MODELS.entry(name).paper_parameter_count(12, 10, 9, **options)


@pytest.mark.parametrize("name", NEW)
def test_checkpoint_resumes_exactly(name):
    task = create_task("copying", T=6, K=2)
    config = RunConfig(model=name, task="copying", hidden=8, optimizer="adam", lr=1e-2, orth_lr=1e-3)

    def make():
        torch.manual_seed(0)
        _, model = build(config)
        return model, make_optimizers(model, config)

    def steps(model, opts, a, b):
        for s in range(a, b):
            x, y = task.train_batch(s, 4, 0)
            train_step(model, opts, task, x, y, s)

    model, opts = make()
    steps(model, opts, 1, 6)
    buf = io.BytesIO()
    torch.save({"model": model.state_dict(), "optimizers": [o.state_dict() for o in opts]}, buf)
    steps(model, opts, 6, 11)

    buf.seek(0)
    ckpt = torch.load(buf, weights_only=True)
    resumed, ropts = make()
    resumed.load_state_dict(ckpt["model"])
    for o, s in zip(ropts, ckpt["optimizers"]):
        o.load_state_dict(s)
    steps(resumed, ropts, 6, 11)
    for (k, a), b in zip(model.state_dict().items(), resumed.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0, msg=k)


def test_speed_table_has_a_row_for_each_comparison_model():
    from suite.speed import SpeedCase, speed_table, targets

    assert set(NEW) <= set(targets("cpu")["models"]) and set(NEW) <= set(targets("gpu")["models"])
    rows = speed_table(NEW, SpeedCase(n=8, T=25, B=2), rounds=1)
    assert [r["model"] for r in rows[1:]] == NEW and all(r["ms"] > 0 for r in rows)
