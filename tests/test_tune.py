"""``suite tune`` for real: equal budgets, trials kept apart, kill -9 and resume, ``run --tuned``."""

import re
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from suite.reports.data import load
from suite.reports.render import render_report
from suite.store import SCHEMA_VERSION, Store
from suite.tune import TUNE_SEED, Space, grid_points, optuna_storage_url
from tests.helpers import ROOT, cli

TINY = ["--tasks", "copying", "--set", "T=8", "--set", "K=3", "--set", "hidden=8", "--set", "eval_size=64",
        "--set", "eval_batch_size=64", "--set", "batch_size=8", "--set", "eval_every=10"]


def test_grid_gives_every_model_the_same_number_of_points():
    space = Space(lr=(1e-4, 1e-2), orth_lr=(1e-5, 1e-3))
    orth, plain = grid_points(4, space, True), grid_points(4, space, False)
    assert len(orth) == len(plain) == 4
    assert sorted({p["lr"] for p in orth}) == [1e-4, 1e-2] and sorted({p["orth_lr"] for p in orth}) == [1e-5, 1e-3]
    assert [p["lr"] for p in plain] == [1e-4, 0.000464, 0.00215, 1e-2]
    assert len(grid_points(5, space, True)) == 5  # a prime: one orth_lr level, five lr levels


def test_grid_tune_then_run_tuned(tmp_path):
    db = str(tmp_path / "s.db")
    res = tuned = cli("tune", "--models", "scornn,lstm", *TINY, "--steps", "20", "--trials", "4", "--workers", "2",
                      "--db", db)
    assert res.returncode == 0, res.stderr
    assert "2 (model, protocol) pairs x 4 trials x 20 steps" in res.stderr
    store = Store(db)
    trials = store.runs(kind="trial")
    assert len(trials) == 8 and {r["seed"] for r in trials} == {TUNE_SEED}
    assert all(r["status"] == "finished" and r["total_steps"] == 20 for r in trials)  # the same budget
    assert store.runs(kind="run") == []
    # the choice: the best validation metric among each model's trials
    top = {m: max(r["summary"]["best_val"] for r in trials if r["model"] == m) for m in ("scornn", "lstm")}
    again = cli("tune", "--models", "scornn,lstm", *TINY, "--steps", "20", "--trials", "4", "--db", db)
    assert again.returncode == 0 and len(Store(db).runs(kind="trial")) == 8  # finished trials are not rerun

    res = cli("run", "--tuned", "--models", "scornn,lstm", *TINY, "--steps", "20", "--seeds", "0,1", "--db", db,
              "--no-report")
    assert res.returncode == 0, res.stderr
    runs = Store(db).runs(kind="run")
    assert len(runs) == 4 and {r["seed"] for r in runs} == {0, 1}
    for r in runs:  # the chosen setting is one with the model's best validation metric
        same = [t for t in trials if t["model"] == r["model"]
                and all(t["config"][k] == r["config"][k] for k in ("lr", "orth_lr", "optimizer"))]
        assert len(same) == 1 and same[0]["summary"]["best_val"] == top[r["model"]]
        assert f"{r['config']['lr']:.3g}" in tuned.stdout
    # trials stay out of the headline tables and show in the tuning section
    html = render_report(db, tmp_path / "report").read_text()
    assert {r.seed for r in load(db)} == {0, 1} and len(load(db, kind="trial")) == 8
    figure = re.search(r'src="(tuning-copying[-\w]*\.png)"', html)  # one search figure for the protocol
    assert 'id="tuning"' in html and figure and (tmp_path / "report" / figure[1]).is_file()

    bad = cli("run", "--tuned", "--models", "exprnn", *TINY, "--steps", "20", "--seeds", "0", "--db", db)
    assert bad.returncode == 2 and "no finished tuning trial for exprnn on copying" in bad.stderr
    bad = cli("run", "--tuned", "--models", "lstm", *TINY, "--steps", "20", "--seeds", str(TUNE_SEED), "--db", db)
    assert bad.returncode == 2 and "fresh seeds" in bad.stderr


def _study_states(db):
    import optuna

    summaries = optuna.get_all_study_summaries(optuna_storage_url(db))
    out = {}
    for s in summaries:
        study = optuna.load_study(study_name=s.study_name, storage=optuna_storage_url(db))
        out[s.study_name] = [t.state.name for t in study.trials]
    return out


@pytest.mark.slow
def test_optuna_tune_survives_kill_9(tmp_path):
    db = str(tmp_path / "s.db")
    args = ["-m", "suite", "tune", "--models", "scornn", *TINY, "--steps", "150", "--trials", "3",
            "--search", "optuna", "--workers", "1", "--db", db]
    proc = subprocess.Popen([sys.executable, *args], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    t0 = time.time()
    while time.time() - t0 < 180:  # wait until the first trial has committed some steps
        assert proc.poll() is None
        try:
            con = sqlite3.connect(db, timeout=1)
            row = con.execute("SELECT step FROM runs WHERE kind = 'trial' AND step >= 30").fetchone()
            con.close()
        except sqlite3.OperationalError:
            row = None
        if row:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = Store(db).runs(kind="trial")
    assert len(killed) == 1 and killed[0]["status"] == "running" and 30 <= killed[0]["step"] < 150
    assert list(_study_states(db).values()) == [["RUNNING"]]  # the study survived, its trial unfinished

    res = subprocess.run([sys.executable, *args], cwd=ROOT, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    states = list(_study_states(db).values())[0]
    assert len(states) == 3 and all(s in ("COMPLETE", "PRUNED") for s in states)
    trials = Store(db).runs(kind="trial")
    assert len(trials) == 3 and all(r["status"] in ("finished", "pruned") for r in trials)
    resumed = next(r for r in trials if r["run_id"] == killed[0]["run_id"])
    assert resumed["created"] == killed[0]["created"]  # the adopted trial resumed its run, not restarted it
    con = sqlite3.connect(db)
    steps = [s for (s,) in con.execute("SELECT step FROM metrics WHERE run_id = ? AND name = 'train/loss'",
                                        (resumed["run_id"],))]
    assert steps == list(range(1, resumed["step"] + 1))  # nothing lost, nothing twice


def test_version_1_store_is_migrated_and_readable(tmp_path):
    db = tmp_path / "old.db"
    shutil.copy(Path(__file__).parent / "fixtures" / "report.db", db)
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == "1"
    con.close()
    assert len(load(db)) > 0 and load(db, kind="trial") == []  # read-only: an old store reads as it is
    store = Store(db)  # opening for writing migrates
    assert store.runs()[0]["kind"] == "run" and store.runs()[0]["study"] is None
    store.close()
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)


@pytest.mark.parametrize(("args", "message"), [
    (["--lr", "1e-2:1e-4"], "invalid --lr '1e-2:1e-4': need 0 < LOW <= HIGH"),
    (["--orth-lr", "fast"], "invalid --orth-lr 'fast': use LOW:HIGH"),
    (["--trials", "0"], "invalid --trials 0"),
    (["--models", "scorn"], "unknown model 'scorn'"),
])
def test_bad_tune_input_stops_before_any_work(tmp_path, args, message):
    db = tmp_path / "s.db"
    res = cli("tune", "--tasks", "copying", *args, "--db", str(db))
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert not db.exists()
