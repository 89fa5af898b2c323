"""A model with its paper's presets, a published number and a speed row is one file: a module installed
beside the suite (through the entry point, no other file edited) shows up in every place that lists
models: `suite list presets`, the dry run's plan, `suite speed`'s default table, the nox sessions and
the report's published column."""

import os
import subprocess
import sys

import pytest

from tests.helpers import ROOT

TOY = '''
"""A toy orthogonal RNN: W = block-diagonal rotations by learned angles (Doe & Roe, Toy RNNs, 2026)."""
import torch

from suite.models.engine import RecurrentNet, Transition
from suite.registry import Preset, Published, SpeedRow, register_model

PAPER = "Doe & Roe, Toy RNNs, 2026"


class Rotations(Transition):
    constraint = "orthogonal"

    def __init__(self, n, turns):
        super().__init__(n)
        self.theta = torch.nn.Parameter(torch.full((n // 2,), float(turns)))

    def matrix(self):
        c, s = torch.cos(self.theta), torch.sin(self.theta)
        blocks = torch.stack([torch.stack([c, -s], -1), torch.stack([s, c], -1)], -2)
        return torch.block_diag(*blocks.unbind(0))


@register_model(mission=False, family="toy", published_as="ToyRNN", constraint="orthogonal", paper=PAPER,
                params=lambda n, d_in, d_out: n // 2 + n * d_in + n + n * d_out + d_out,
                presets=(Preset("quick", "copying", {"hidden": 6, "lr": 3e-3, "model.turns": 2},
                                PAPER + ", section 4 (copying)"),),
                published=(Published("copying", "ToyRNN", 6, "recall_accuracy", 0.4321, PAPER + ", Table 2",
                                     protocol="quick-copying", options={"turns": 2}),),
                speed=(SpeedRow("cpu"),))
def toy_rnn(d_in, d_out, output="last", hidden=4, turns=1) -> RecurrentNet:
    """Toy rotation RNN."""
    return RecurrentNet(Rotations(hidden, turns), d_in, d_out, output=output)
'''


@pytest.fixture(scope="module")
def plugin(tmp_path_factory):
    """The module and its entry point, on PYTHONPATH for the commands below."""
    where = tmp_path_factory.mktemp("plugin")
    (where / "toy_rnns.py").write_text(TOY)
    dist = where / "toy_rnns-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-rnns\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[ortho_rnn_suite.models]\ntoy_rnns = toy_rnns\n")
    return {**os.environ, "PYTHONPATH": str(where), "PYTHONUNBUFFERED": "1"}


def suite(env, *args, cwd=ROOT):
    res = subprocess.run([sys.executable, "-m", "suite", *args], capture_output=True, text=True, env=env, cwd=cwd)
    assert res.returncode == 0, res.stderr
    return res


def test_its_presets_are_listed_and_planned(plugin, tmp_path):
    listed = suite(plugin, "list", "presets", "--pattern", "toy_rnn").stdout
    assert "quick  copying  toy_rnn" in listed and "model.turns=2" in listed and "Doe & Roe, Toy RNNs" in listed
    plan = suite(plugin, "run", "--models", "toy_rnn", "--tasks", "copying", "--dry-run", "--estimate", "none",
                 "--db", str(tmp_path / "none.db")).stdout
    assert "hidden=6" in plan and "model.turns=2" in plan and "preset (quick copying toy_rnn) [" in plan
    assert "Doe & Roe, Toy RNNs, 2026, section 4 (copying)" in plan


def test_its_speed_row_is_in_the_default_table(plugin):
    table = suite(plugin, "speed", "--n", "6", "--T", "24", "--B", "2", "--rounds", "1").stdout
    assert any(line.startswith("toy_rnn ") for line in table.splitlines())


def test_it_gets_a_nox_session(plugin):
    out = subprocess.run([sys.executable, "-m", "nox", "-l", "-f", str(ROOT / "noxfile.py")], capture_output=True,
                         text=True, cwd=ROOT, env=plugin, check=True).stdout
    assert "bench(toy_rnn)" in out


@pytest.mark.slow
def test_its_published_number_stands_beside_its_runs(plugin, tmp_path):
    db = tmp_path / "s.db"
    suite(plugin, "run", "--models", "toy_rnn", "--tasks", "copying", "--seeds", "0", "--workers", "1",
          "--threads", "1", "--db", str(db), "--report-dir", str(tmp_path / "report"))
    html = (tmp_path / "report" / "index.html").read_text()
    row = next(line for line in html.split("<tr") if 'class="name">toy_rnn<' in line)
    assert "0.4321" in row and "Doe &amp; Roe, Toy RNNs, 2026, Table 2" in row
    # and in the published-numbers section, matched to this run
    assert html.count("0.4321") >= 2
    # a run with another turns value is another model: nothing is set beside it
    suite(plugin, "run", "--models", "toy_rnn", "--tasks", "copying", "--seeds", "0", "--workers", "1",
          "--threads", "1", "--set", "model.turns=3", "--db", str(tmp_path / "t.db"),
          "--report-dir", str(tmp_path / "report3"))
    html3 = (tmp_path / "report3" / "index.html").read_text()
    row3 = next(line for line in html3.split("<tr") if 'class="name">toy_rnn<' in line)
    assert "0.4321" not in row3
