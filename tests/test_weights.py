"""The best validation step's checkpoint is kept: real runs through the CLI, a real kill -9 and resume."""

from __future__ import annotations

import sqlite3

import pytest

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
