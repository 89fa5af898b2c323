"""The best validation step's checkpoint is kept, and `suite export --weights` gives back the model
behind each run's headline number: real runs through the CLI, a real kill -9 and resume."""

from __future__ import annotations

import json
import shutil
import sqlite3

import pytest
import torch

from suite.registry import create_model, create_task
from suite.runner import evaluate
from suite.store import Store
from tests.helpers import cli

# A tiny real run whose validation accuracy peaks at step 40 of 60 (evaluations every 10 steps).
RUN = ["run", "--models", "scornn", "--tasks", "copying", "--steps", "60", "--set", "T=8", "--set", "K=3",
       "--set", "hidden=12", "--set", "eval_every=10", "--set", "eval_size=64", "--set", "batch_size=8",
       "--set", "eval_batch_size=64", "--set", "lr=0.001", "--set", "orth_lr=0.0001", "--seeds", "0",
       "--workers", "1", "--threads", "1", "--no-report"]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def _checkpoints(db) -> list[str]:
    store = Store(db, read_only=True)
    run = store.runs()[0]
    names = sorted(p.name for p in store.checkpoint_dir(run["run_id"]).iterdir())
    store.close()
    return names


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    db = tmp_path_factory.mktemp("weights") / "s.db"
    res = cli(*RUN, "--db", str(db), env=ONE_THREAD)
    assert res.returncode == 0, res.stderr
    return db


def test_the_best_validation_checkpoint_is_kept_beside_the_last_two(trained):
    run = Store(trained, read_only=True).runs()[0]
    con = sqlite3.connect(trained)
    evals = con.execute("SELECT step FROM metrics WHERE name = 'val/recall_accuracy' ORDER BY step").fetchall()
    con.close()
    best = run["summary"]["best_step"]
    last_two = [s for (s,) in evals][-2:]
    assert last_two == [50, 60] and best not in last_two, (best, evals)  # what this case is about
    assert _checkpoints(trained) == sorted(f"step-{s}.pt" for s in (best, 50, 60))  # the older ones pruned


def test_a_run_killed_and_resumed_keeps_the_same_best_checkpoint(tmp_path, trained):
    """Killed (SIGKILL) after its sixth commit (step 50), before that commit's pruning: the resumed run
    recomputes its best step from the store, so the best checkpoint still outlives the last two."""
    db = tmp_path / "s.db"
    res = cli(*RUN, "--db", str(db), env={**ONE_THREAD, "SUITE_FAULT": "commit-done:6"})
    assert res.returncode != 0 and Store(db).runs()[0]["step"] == 50
    res = cli(*RUN, "--db", str(db), env=ONE_THREAD)
    assert res.returncode == 0, res.stderr
    assert _checkpoints(db) == _checkpoints(trained)
    assert Store(db).runs()[0]["summary"]["best_step"] == Store(trained).runs()[0]["summary"]["best_step"]


def test_exported_weights_reproduce_the_stored_headline_number(tmp_path, trained):
    out = tmp_path / "weights"
    res = cli("export", "--db", str(trained), "--out", str(tmp_path / "tables"), "--weights", str(out))
    assert res.returncode == 0, res.stderr
    run = Store(trained, read_only=True).runs()[0]
    run_id = run["run_id"]
    assert sorted(p.name for p in out.iterdir()) == [".suite-weights.json", f"{run_id}.json", f"{run_id}.pt"]
    assert str(out / f"{run_id}.pt") in res.stdout.splitlines()
    info = json.loads((out / f"{run_id}.json").read_text())
    assert info["step"] == run["summary"]["best_step"] == 40
    assert info["test_at_best_val"] == run["summary"]["test_at_best_val"]
    assert info["config"] == run["config"] and info["model"] == "scornn" and info["hidden"] == 12

    # rebuilt from the JSON alone, evaluated on the test split exactly as the runner evaluates it
    model = create_model(info["model"], **info["create_model"])
    model.load_state_dict(torch.load(out / f"{run_id}.pt", weights_only=True))
    task = create_task(info["task"], **info["config"]["task_options"])
    scores = evaluate(model, task, "test", info["config"]["eval_batch_size"], "cpu", info["config"]["precision"])
    assert scores[info["metric"]] == pytest.approx(info["test_at_best_val"], rel=1e-9, abs=1e-12)
    # the final weights would not: the number is the best step's
    final = Store(trained, read_only=True).load_checkpoint(run_id, 60)["model"]
    model.load_state_dict(final)
    assert evaluate(model, task, "test", 64, "cpu")[info["metric"]] != pytest.approx(info["test_at_best_val"])


@pytest.mark.parametrize("fault", ["missing", "changed"])
def test_a_run_without_its_best_checkpoint_is_named(tmp_path, trained, fault):
    """An older store pruned the best step's checkpoint, or the file was changed since the store wrote
    it: the run is named on stderr, with why; nothing is written for it, and the export succeeds."""
    db = tmp_path / "s.db"
    shutil.copy(trained, db)
    shutil.copytree(trained.with_name(trained.name + "-checkpoints"), tmp_path / "s.db-checkpoints")
    run_id = Store(db).runs()[0]["run_id"]
    best = tmp_path / "s.db-checkpoints" / run_id / "step-40.pt"
    if fault == "missing":
        best.unlink()
    else:
        torch.save({"step": 40, "model": {}}, best)
    out = tmp_path / "weights"
    res = cli("export", "--db", str(db), "--out", str(tmp_path / "tables"), "--weights", str(out))
    assert res.returncode == 0, res.stderr
    assert f"run {run_id}: no weights exported: the checkpoint of its best validation step, {best}, " in res.stderr
    assert ("is not there" if fault == "missing" else "SHA-256 differs") in res.stderr
    assert not (out / f"{run_id}.pt").exists() and not (out / f"{run_id}.json").exists()
    assert best.exists() == (fault == "changed")  # a read never sets anything aside


def test_weights_never_overwrite_a_file_the_suite_did_not_write(tmp_path, trained):
    run_id = Store(trained, read_only=True).runs()[0]["run_id"]
    out = tmp_path / "weights"
    out.mkdir()
    (out / f"{run_id}.pt").write_bytes(b"mine")
    res = cli("export", "--db", str(trained), "--out", str(tmp_path / "tables"), "--weights", str(out))
    assert res.returncode == 2 and f"{run_id}.pt" in res.stderr and "Traceback" not in res.stderr
    assert (out / f"{run_id}.pt").read_bytes() == b"mine" and not (out / f"{run_id}.json").exists()
    (out / f"{run_id}.pt").unlink()  # gone: the export writes, and a second one replaces its own files
    for _ in range(2):
        assert cli("export", "--db", str(trained), "--out", str(tmp_path / "tables"), "--weights",
                   str(out)).returncode == 0
    assert (out / f"{run_id}.json").is_file()
