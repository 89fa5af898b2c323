import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from suite.errors import ConfigError, UnknownNameError
from suite.registry import MODELS, TASKS, create_model, create_task, list_models, list_tasks
from tests.helpers import ROOT


def test_list_with_patterns():
    assert list_models("scornn*") == ["scornn", "scornn_autograd"]
    assert "lstm" in list_models() and list_models() == sorted(list_models())
    assert list_tasks("*mnist*") == ["mnist", "mnist1d", "pmnist"]
    assert "scornn_autograd" not in MODELS.names(mission=True)


@pytest.mark.parametrize(("registry", "bad", "hint"), [
    (MODELS, "scorn", "'scornn'"), (MODELS, "exp_rnn", "'exprnn'"), (TASKS, "copy", "'copying'")])
def test_unknown_name_names_close_matches_and_valid_names(registry, bad, hint):
    with pytest.raises(UnknownNameError) as e:
        registry.create(bad)
    msg = str(e.value)
    assert f"Did you mean {hint}" in msg or hint in msg.split("Did you mean")[1]
    for valid in registry.names():
        assert valid in msg


def test_unknown_option_lists_valid_options():
    with pytest.raises(ConfigError, match=r"no option 'capacity'.*valid options: hidden, rho"):
        create_model("scornn", d_in=1, d_out=1, capacity=3)


def test_none_overrides_do_not_mask_defaults():
    m = create_model("scornn", d_in=1, d_out=1, hidden=None, rho=None)
    assert m.hidden == 190 and m.transition.rho == 95
    assert create_task("copying", T=None).T == 1000


def test_readme_third_party_model_through_entry_point(tmp_path):
    """The README's example package, installed beside the suite, registers through the entry point."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Adding a model from outside this repository")[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    group, entry = re.search(r'\[project\.entry-points\."([^"]+)"\]\n(\S+ = "\S+")', section).groups()
    pkg = tmp_path / "my_rnns"
    pkg.mkdir()
    (pkg / "__init__.py").write_text(code)
    dist = tmp_path / "my_rnns-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: my-rnns\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(f"[{group}]\n{entry.replace(chr(34), '')}\n")
    probe = ("import torch; from suite import list_models, create_model; "
             "from suite.contract import orthogonality_error; "
             "print(list_models('rotation*')); m = create_model('rotation_rnn', d_in=2, d_out=3); "
             "print(m(torch.randn(4, 5, 2)).shape, orthogonality_error(m.recurrent_matrix()) < 1e-6); "
             "from suite.registry import MODELS; print(MODELS.entry('rotation_rnn').info.params(64, 2, 3) == "
             "m.parameter_count())")
    env = {"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": ""}  # this checkout's suite, beside the plug-in
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env,
                         check=True).stdout
    assert out.splitlines() == ["['rotation_rnn']", "torch.Size([4, 3]) True", "True"]
    res = subprocess.run([sys.executable, "-m", "suite", "list", "models"], capture_output=True, text=True,
                         env=env, check=True).stdout
    assert "rotation_rnn: Block-rotation RNN." in res


def test_other_models_tasks_reports_packages_and_a_users_models_folder_leave_the_suite_alone(tmp_path):
    """The suite's packages are suite.models, suite.tasks and suite.reports: another distribution's
    top-level ``models``/``tasks``/``reports`` (here on the path, each failing on import) and the user's
    own ``models/`` folder in the working directory are never imported, by ``python -m suite`` or the
    ``suite`` command alike, and a run trains."""
    other = tmp_path / "site"
    for name in ("models", "tasks", "reports"):
        (other / name).mkdir(parents=True)
        (other / name / "__init__.py").write_text(f"raise ImportError('another project\'s {name}')\n")
    work = tmp_path / "work"
    (work / "models").mkdir(parents=True)
    (work / "models" / "__init__.py").write_text("raise ImportError('the user\'s own models folder')\n")
    env = {**os.environ, "PYTHONPATH": str(other)}
    suite_cmd = Path(sys.executable).with_name("suite")
    for cmd in ([sys.executable, "-m", "suite"], [str(suite_cmd)]):
        res = subprocess.run([*cmd, "list", "models"], capture_output=True, text=True, cwd=work, env=env)
        assert res.returncode == 0, res.stderr
        assert "scornn*: scoRNN" in res.stdout and "lstm*" in res.stdout
        run = subprocess.run([*cmd, "run", "--models", "scornn", "--tasks", "copying", "--seeds", "0",
                              "--steps", "4", "--set", "task.T=5", "--set", "hidden=6", "--set", "eval_every=2",
                              "--workers", "1", "--no-report", "--db", str(work / "s.db")],
                             capture_output=True, text=True, cwd=work, env=env)
        assert run.returncode == 0, run.stderr
        assert "finished 1" in run.stderr or "skipped 1" in run.stderr


def test_registration_checks_the_contract():
    """A factory must name its class; the class must implement every abstract method."""
    import torch

    from suite.contract import RecurrentModel
    from suite.registry import Registry

    reg = Registry("model", "ortho_rnn_suite.none", "suite.models", "suite.contract:RecurrentModel")

    class Half(RecurrentModel):
        def forward(self, x):
            return x

    class Full(Half):
        def recurrent_matrix(self):
            return torch.eye(2)

        def trajectory(self, x):
            return x, []

    def half(d_in, d_out, output="last", hidden=4) -> Half:
        return Half(d_in, d_out, hidden, output)

    def bare(d_in, d_out, output="last", hidden=4):
        return Full(d_in, d_out, hidden, output)

    def full(d_in, d_out, output="last", hidden=4) -> Full:
        return Full(d_in, d_out, hidden, output)

    with pytest.raises(ConfigError, match=r"Half does not implement recurrent_matrix, trajectory"):
        reg.register(half)
    with pytest.raises(ConfigError, match=r"annotate the factory's return type with a subclass of "
                                          r"suite.contract.RecurrentModel"):
        reg.register(bare)
    reg.register(full, family="toy")
    assert reg.entry("full").cls is Full and reg.entry("full").info.family == "toy"
    assert reg.create("full", d_in=2, d_out=2).recurrent_matrix().shape == (2, 2)
    with pytest.raises(ConfigError, match=r"unknown registration data \['colour'\]"):
        reg.register(full, name="other", colour="red")


def test_engine_and_complex_state_are_checked_at_construction():
    with pytest.raises(ConfigError, match=r"engine='triton' runs real hidden states only"):
        create_model("eurnn", d_in=2, d_out=2, hidden=4, engine="triton")
    with pytest.raises(ConfigError, match=r"invalid engine='cuda'"):
        create_model("scurnn", d_in=2, d_out=2, hidden=4, engine="cuda")


def test_registry_data_agree_with_the_models():
    for e in MODELS.entries():
        m = create_model(e.name, d_in=2, d_out=2, hidden=6)
        assert m.constraint == e.info.constraint, e.name
        assert set(m.parameter_groups()) <= set(e.groups), e.name
        assert e.info.family, f"{e.name}: no family"


def test_docs_lru_example_trains_as_a_plug_in(tmp_path):
    """docs/models.md's second example (a model that is not a RecurrentNet), run as written."""
    doc = (ROOT / "docs" / "models.md").read_text()
    code = re.search(r"```python\n# tiny_lru.py\n(.*?)```", doc, re.S).group(1)
    (tmp_path / "tiny_lru.py").write_text(code)
    probe = """
import torch
import tiny_lru
from suite.contract import spectral_radius
from suite.config import RunConfig
from suite.registry import MODELS, create_model, create_task
from suite.runner import make_optimizers, train_step
task = create_task("copying", T=10, K=3)
m = create_model("tiny_lru", d_in=task.d_in, d_out=task.d_out, output="sequence", hidden=8)
e = MODELS.entry("tiny_lru")
assert m.parameter_count() == e.info.params(8, task.d_in, task.d_out) and e.groups == ("default", "recurrent")
config = RunConfig(model="tiny_lru", task="copying", lr=1e-2, group_options=(("lr.recurrent", 1e-2),))
opts = make_optimizers(m, config)
lam0 = m.eigenvalues().detach().clone()
for step in range(1, 31):
    x, y = task.train_batch(step, 8, 0)
    loss = train_step(m, opts, task, x, y, step)
x, _ = task.train_batch(99, 4, 0)
out, hs = m.trajectory(x)
torch.testing.assert_close(out, m(x), rtol=1e-4, atol=1e-5)
print(len(opts), (m.eigenvalues().detach() - lam0).abs().max().item() > 1e-4, spectral_radius(m.recurrent_matrix()) < 1)
"""
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, cwd=tmp_path,
                         env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": ""})
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "True", "True"]
