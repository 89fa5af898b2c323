"""The suite as a library: a user's own training loop with the suite's models and optimizers."""

import re
import subprocess
import sys

import pytest
import torch

import suite
from suite.config import RunConfig
from suite.contract import UpdateRuleError, orthogonality_error
from suite.errors import ConfigError
from suite.optim import OptimizerSettings
from suite.registry import create_model, create_task
from suite.runner import build
from tests.helpers import ROOT


def test_the_library_api_is_exported_from_suite():
    from suite import create_model, make_optimizers, train_step  # noqa: F401  (the documented import)

    assert {"create_model", "make_optimizers", "train_step", "OptimizerSettings"} <= set(suite.__all__)
    assert suite.make_optimizers is __import__("suite.optim").optim.make_optimizers
    assert suite.train_step is __import__("suite.runner").runner.train_step


def _state(opts):
    return [(type(o).__name__, [{k: v for k, v in g.items() if k != "params"} for g in o.param_groups],
             [[id(p) for p in g["params"]] for g in o.param_groups]) for o in opts]


@pytest.mark.parametrize("model,settings", [
    ("scornn", dict(lr=1e-3, orth_lr=1e-4, optimizer="adam", orth_optimizer="rmsprop", rmsprop_alpha=0.9)),
    ("fcurnn", dict(lr=2e-3, orth_lr=1e-3, optimizer="rmsprop", orth_optimizer="sgd", rmsprop_alpha=0.95)),
    ("nnrnn", dict(lr=1e-3, orth_lr=1e-4, optimizer="rmsprop", orth_optimizer="adam", rmsprop_alpha=0.9,
                   group_options=(("lr.upper", 3e-4), ("optimizer.upper", "sgd")))),
])
def test_keywords_build_the_optimizers_a_config_builds(model, settings):
    config = RunConfig(model=model, task="adding", hidden=8, **settings)
    _, net = build(config)
    from_config = suite.make_optimizers(net, config)
    groups = dict(settings.pop("group_options", ()))
    keywords = suite.make_optimizers(net, **settings, groups=groups)
    assert _state(keywords) == _state(from_config)
    assert _state(suite.make_optimizers(net, OptimizerSettings.from_config(config))) == _state(from_config)


def test_keyword_defaults_are_the_run_configs():
    _, net = build(RunConfig(model="scornn", task="adding", hidden=8))
    assert _state(suite.make_optimizers(net)) == _state(suite.make_optimizers(net, RunConfig("scornn", "adding")))


def test_bad_keywords_name_the_valid_choices():
    net = create_model("nnrnn", d_in=2, d_out=1, hidden=8)
    with pytest.raises(ConfigError, match="invalid optimizer='adamm'; valid choices: 'rmsprop'"):
        suite.make_optimizers(net, optimizer="adamm")
    with pytest.raises(ConfigError, match="no parameter group 'uper'.*upper"):
        suite.make_optimizers(net, groups={"lr.uper": 1e-4})
    with pytest.raises(ConfigError, match="either a config or keyword settings"):
        suite.make_optimizers(net, RunConfig("nnrnn", "adding"), lr=1e-3)


def _plain_loop(model, opt, task, steps=20):
    for step in range(1, steps + 1):
        x, y = task.train_batch(step, 16, 0)
        loss = task.loss(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()


def test_fcurnn_refuses_a_plain_optimizer():
    """torch.optim.RMSprop over every parameter would move W off U(n) (max|W^H W - I| = 0.06 after 20
    steps at this size, where W's own Cayley step keeps it at 1e-8): it is refused at its first step,
    before it changes anything."""
    task = create_task("adding", T=10)
    model = create_model("fcurnn", d_in=task.d_in, d_out=task.d_out, output=task.output, hidden=16)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    opt = torch.optim.RMSprop(model.parameters(), lr=1e-3)
    with pytest.raises(UpdateRuleError, match=r"suite\.make_optimizers.*CayleyUnitary"):
        _plain_loop(model, opt, task)
    assert all(torch.equal(p, before[n]) for n, p in model.named_parameters())  # nothing was changed
    # a copy of the model (fresh parameter objects) is guarded as well
    import copy

    twin = copy.deepcopy(model)
    with pytest.raises(UpdateRuleError):
        _plain_loop(twin, torch.optim.Adam(twin.parameters(), lr=1e-3), task, steps=1)
    # a plain optimizer over the other parameters only is the user's choice, and allowed
    rest = [p for p in model.parameters() if p is not model.recurrent_matrix()]
    assert len(rest) == len(list(model.parameters())) - 1
    _plain_loop(model, torch.optim.SGD(rest, lr=1e-3), task, steps=1)


def test_fcurnn_stays_unitary_under_the_suites_optimizers():
    task = create_task("adding", T=10)
    model = create_model("fcurnn", d_in=task.d_in, d_out=task.d_out, output=task.output, hidden=16)
    opts = suite.make_optimizers(model, lr=1e-3, orth_lr=1e-2, orth_optimizer="rmsprop")
    W0 = model.recurrent_matrix().detach().clone()
    for step in range(1, 21):
        x, y = task.train_batch(step, 16, 0)
        suite.train_step(model, opts, task, x, y, step)
    W = model.recurrent_matrix().detach()
    assert (W - W0).abs().max() > 1e-3  # it trained
    assert orthogonality_error(W) < 1e-5


def _readme_example() -> str:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Use it as a library", 1)[1].split("\n## ", 1)[0]
    return re.search(r"```python\n(.*?)```", section, re.S)[1]


def test_the_readme_library_example_runs_as_written(tmp_path):
    code = _readme_example()
    assert "make_optimizers" in code and "from suite import" in code
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=600)
    assert res.returncode == 0, res.stderr
    m = re.search(r"\|\|W\^T W - I\|\| = ([0-9.e+-]+)", res.stdout)
    assert m and float(m[1]) < 1e-5, res.stdout


RC_CHECK = """
import matplotlib, matplotlib.colors as colors, sys
state = lambda: {**matplotlib.rcParams, **{"code " + c: colors.to_rgb(c) for c in "bgrmyck"}}
before = state()
from suite.reports import figures
after_import = state()
figures._nothing(__import__("pathlib").Path(sys.argv[1]), "nothing to draw")
after_drawing = state()
changed = lambda d: sorted(k for k in before if before[k] != d[k])
print(changed(after_import), changed(after_drawing))
"""


def test_importing_and_drawing_figures_leaves_the_users_rcparams(tmp_path):
    res = subprocess.run([sys.executable, "-c", RC_CHECK, str(tmp_path / "x.png")], capture_output=True,
                         text=True, cwd=ROOT)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == ["[]", "[]"]
    assert (tmp_path / "x.png").stat().st_size > 0


def test_figures_are_drawn_in_the_suites_theme(tmp_path):
    import matplotlib

    from suite.reports import figures

    seen = {}

    @figures.themed
    def probe():
        seen.update(matplotlib.rcParams, k=matplotlib.colors.to_rgb("k"))

    with matplotlib.rc_context({"axes.facecolor": "black", "axes.titley": 0.5}):
        probe()
        assert matplotlib.rcParams["axes.facecolor"] == "black"  # the user's, back after drawing
    assert seen["axes.facecolor"] == "white" and seen["axes.grid"] and seen["axes.titley"] == 1.0
    assert seen["font.size"] == pytest.approx(12 * 0.9)  # seaborn's notebook context at font_scale 0.9
    assert seen["k"] == pytest.approx((0.1, 0.1, 0.1)) and matplotlib.colors.to_rgb("k") == (0, 0, 0)
