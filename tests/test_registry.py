import re
import subprocess
import sys

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
    probe = ("import torch; from suite import list_models, create_model; from models import orthogonality_error; "
             "print(list_models('rotation*')); m = create_model('rotation_rnn', d_in=2, d_out=3); "
             "print(m(torch.randn(4, 5, 2)).shape, orthogonality_error(m.recurrent_matrix()) < 1e-6)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path), "PATH": ""}, check=True).stdout
    assert out.splitlines() == ["['rotation_rnn']", "torch.Size([4, 3]) True"]
    res = subprocess.run([sys.executable, "-m", "suite", "list", "models"], capture_output=True, text=True,
                         env={"PYTHONPATH": str(tmp_path), "PATH": ""}, check=True).stdout
    assert "rotation_rnn: Block-rotation RNN." in res
