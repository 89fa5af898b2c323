"""`suite export`: every table the store holds, each column documented, Parquet an optional extra."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch

from suite.runner import execute
from suite.store import EXPORT_TABLES, Store
from tests.helpers import ROOT, cli, tiny

DOCS = ROOT / "docs" / "results.md"


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    """Real runs: one task under two protocols (T=10 and T=12), one run with a model option."""
    db = tmp_path_factory.mktemp("export") / "s.db"
    s = Store(db)
    for config in (tiny("scornn", "adding", steps=4, eval_every=2, model_options=(("rho", 3),)),
                   tiny("lstm", "adding", steps=4, eval_every=2),
                   tiny("lstm", "adding", steps=4, eval_every=2, task_options={"T": 12})):
        assert execute(config, s, device="cpu").status == "finished"
    s.close()
    return db


def test_protocols_of_one_task_are_told_apart(store):
    runs = Store(store, read_only=True).dataframes()["runs"]
    by_t = runs.groupby("task.T")["protocol"].unique()
    assert sorted(by_t.index) == [10, 12]
    assert all(len(labels) == 1 for labels in by_t)  # one protocol per T, whatever the model
    assert by_t[10][0] != by_t[12][0] and all(label.startswith("adding-") for label in runs["protocol"])
    assert list(runs.columns[:2]) == ["run_id", "protocol"]


def test_options_env_and_task_info_are_flat_columns(store):
    s = Store(store, read_only=True)
    runs = s.dataframes()["runs"].set_index("run_id")
    scornn = next(r for r in s.runs() if r["model"] == "scornn")
    row = runs.loc[scornn["run_id"]]
    assert row["model.rho"] == 3 and row["task.T"] == 10 and row["task.eval_size"] == 64
    assert row["config.lr"] == scornn["config"]["lr"] and row["config.hidden"] == 12
    assert row["env.torch"] == torch.__version__ and row["env.threads"] == scornn["env"]["threads"]
    assert row["task_info.metric"] == "mse"
    # nested values stay one column of JSON text, which reads back as the stored value
    assert json.loads(row["task_info.baseline"]) == scornn["task_info"]["baseline"]
    assert row["summary.test_at_best_val"] == scornn["summary"]["test_at_best_val"]
    assert pd.isna(runs.loc[runs["model"] == "lstm", "model.rho"]).all()  # an option a run lacks: empty
    assert not [c for c in runs.columns if c in ("config", "env", "summary", "task_info", "config.model_options")]


def test_spectra_and_profiles_tables_hold_every_stored_value(store):
    s = Store(store, read_only=True)
    tables = s.dataframes()
    spectra, profiles = tables["spectra"], tables["profiles"]
    assert list(spectra.columns) == ["run_id", "step", "index", "real", "imag"]
    assert list(profiles.columns) == ["run_id", "step", "t", "grad_norm"]
    for r in s.runs():
        stored = s.spectra(r["run_id"])
        assert [step for step, _ in stored] == [0, 2, 4]
        mine = spectra[spectra["run_id"] == r["run_id"]].sort_values(["step", "index"])
        rebuilt = [(step, [[re_, im] for re_, im in zip(g["real"], g["imag"])]) for step, g in mine.groupby("step")]
        assert rebuilt == stored  # every eigenvalue, in order, exactly
        mine = profiles[profiles["run_id"] == r["run_id"]].sort_values(["step", "t"])
        rebuilt = [(step, list(g["grad_norm"])) for step, g in mine.groupby("step")]
        assert rebuilt == s.profiles(r["run_id"])
        assert mine["t"].max() == r["config"]["task_options"].get("T", 10)  # t = 1..T


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_exported_files_read_back_as_the_tables(store, tmp_path, fmt):
    if fmt == "parquet":
        pytest.importorskip("pyarrow")  # the [parquet] extra
    res = cli("export", "--db", str(store), "--out", str(tmp_path), "--format", fmt)
    assert res.returncode == 0, res.stderr
    assert res.stdout.split() == [str(tmp_path / f"{t}.{fmt}") for t in EXPORT_TABLES]
    tables = Store(store, read_only=True).dataframes()
    read = pd.read_csv if fmt == "csv" else pd.read_parquet
    for name in EXPORT_TABLES:
        back = read(tmp_path / f"{name}.{fmt}")
        assert list(back.columns) == list(tables[name].columns)
        assert len(back) == len(tables[name]) > 0
    spectra = read(tmp_path / f"spectra.{fmt}")
    assert spectra["real"].tolist() == tables["spectra"]["real"].tolist()


def _documented() -> list[re.Pattern]:
    """The runs columns docs/results.md's "Exports" table names, as patterns (`config.<field>` ...)."""
    text = DOCS.read_text().split("## Exports", 1)[1].split("\n## ", 1)[0]
    table = text.split("| column | what |", 1)[1]
    patterns = []
    for line in table.splitlines()[2:]:
        if not line.startswith("|"):
            break
        for name in re.findall(r"`([^`]+)`", line.split("|")[1]):
            patterns.append(re.compile(re.sub(r"<[a-z]+>", r"[^.]+", re.escape(name).replace(r"\<", "<")
                                              .replace(r"\>", ">")) + "$"))
    return patterns


def test_every_exported_column_is_documented(store):
    tables = Store(store, read_only=True).dataframes()
    patterns = _documented()
    assert len(patterns) > 15
    missing = [c for c in tables["runs"].columns if not any(p.match(c) for p in patterns)]
    assert not missing, f"columns of runs.csv not in docs/results.md: {missing}"
    text = DOCS.read_text().split("## Exports", 1)[1].split("\n## ", 1)[0]
    for name in ("metrics", "spectra", "profiles"):
        row = next(line for line in text.splitlines() if line.startswith(f"| `{name}.csv`"))
        assert set(tables[name].columns) <= set(re.findall(r"`([a-z_]+)`", row.split("|")[3])), name


BLOCK_PYARROW = "import sys; sys.modules['pyarrow'] = None; from suite.cli import main; sys.exit(main(sys.argv[1:]))"


def test_parquet_without_pyarrow_names_the_extra_and_csv(store, tmp_path):
    """Python's documented way to make an import fail (a None in sys.modules) stands in for an install
    without pyarrow; the floors check (.ci/floors) runs the same command where it is really absent."""
    out = tmp_path / "out"
    res = subprocess.run([sys.executable, "-c", BLOCK_PYARROW, "export", "--db", str(store), "--out", str(out),
                          "--format", "parquet"], capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2, res.stderr
    assert "'.[parquet]'" in res.stderr and "--format csv" in res.stderr
    assert "Traceback" not in res.stderr and not out.exists()


@pytest.mark.skipif(__import__("importlib").util.find_spec("pyarrow") is not None, reason="pyarrow is installed")
def test_parquet_without_pyarrow_installed(store, tmp_path):
    res = cli("export", "--db", str(store), "--out", str(tmp_path / "out"), "--format", "parquet")
    assert res.returncode == 2 and "'.[parquet]'" in res.stderr, res.stderr
    assert not Path(tmp_path / "out").exists()
