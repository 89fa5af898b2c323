"""``suite tune`` for real: equal budgets, trials kept apart, kill -9, SIGTERM and resume, ``run --tuned``;
concurrent searches sharing one budget, ranges checked before anything is written, one study per store."""

import hashlib
import os
import re
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from suite.reports.data import load
from suite.reports.render import render_report
from suite.store import SCHEMA_VERSION, Store
from suite.tune import TUNE_SEED, VOID, Space, grid_points, optuna_storage_url, study_name, study_path
from tests.helpers import ROOT, children, cli, wait_gone, wait_running

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
    (["--lr", "1e-3:inf", "--search", "optuna"], "invalid --lr '1e-3:inf': LOW and HIGH must be finite numbers"),
    (["--orth-lr", "1e-3:inf", "--search", "optuna"], "invalid --orth-lr '1e-3:inf': LOW and HIGH must be finite"),
    (["--orth-lr", "1e-3:1e999"], "invalid --orth-lr '1e-3:1e999': LOW and HIGH must be finite"),
    (["--lr", "nan:1e-2", "--search", "optuna"], "invalid --lr 'nan:1e-2'"),
])
def test_bad_tune_input_stops_before_any_work(tmp_path, args, message):
    db = tmp_path / "s.db"
    res = cli("tune", "--tasks", "copying", "--models", "scornn,lstm", *args, "--db", str(db))
    assert res.returncode == 2 and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert list(tmp_path.iterdir()) == []  # no store, no study, no trial registered


def _study_trials(db):
    """(number, state, params, user attributes) of every trial of the store's one study."""
    import optuna

    [summary] = optuna.get_all_study_summaries(optuna_storage_url(db))
    study = optuna.load_study(study_name=summary.study_name, storage=optuna_storage_url(db))
    return [(t.number, t.state.name, t.params, t.user_attrs) for t in study.trials]


def test_concurrent_optuna_searches_share_the_budget_exactly(tmp_path):
    db = str(tmp_path / "s.db")
    args = [sys.executable, "-m", "suite", "tune", "--models", "scornn", *TINY, "--steps", "40", "--trials", "3",
            "--search", "optuna", "--workers", "1", "--db", db]
    procs = [subprocess.Popen(args, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    try:
        errs = [p.communicate(timeout=600)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, err in zip(procs, errs):
        assert p.returncode == 0 and "Traceback" not in err, err
    trials = _study_trials(db)
    counted = [t for t in trials if not t[3].get(VOID)]
    assert len(counted) == 3 and all(state in ("COMPLETE", "PRUNED") for _, state, _, _ in counted), trials
    assert all(state == "FAIL" for _, state, _, attrs in trials if attrs.get(VOID))  # asked past it, never run
    runs = Store(db).runs(kind="trial")
    assert len(runs) == 3 and {r["run_id"] for r in runs} == {t[3]["run_id"] for t in counted}
    for r in runs:
        assert 1e-4 <= r["config"]["lr"] <= 1e-2 and 1e-5 <= r["config"]["orth_lr"] <= 1e-2


def test_the_study_budget_holds_under_concurrent_asks(tmp_path):
    """Eight searches ask and tell trials of one study at once, as fast as they can (no training): the
    study ends with exactly its budget of trials; the others were asked past it, closed, never run."""
    import threading

    from suite.tune import _plan_round, _study

    db = tmp_path / "s.db"
    base, url, budget = _base(db, "--steps", "20"), optuna_storage_url(db), 6
    name = study_name(base, "optuna")
    _study(url, name, True, 0, 1)  # the file and the study, made once as `suite tune` does
    counted, errors = [], []

    def search(k: int) -> None:
        try:
            st = {"base": base, "name": name, "study": _study(url, name, True, 0, 1), "orthogonal": True,
                  "pending": {}, "seed": 0}
            while True:
                _plan_round(st, budget, 2, Space())
                if not st["pending"]:
                    return
                for number, (_, config) in list(st["pending"].items()):
                    counted.append(config.run_id)
                    st["study"].tell(number, 0.5, skip_if_finished=True)
                    del st["pending"][number]
        except Exception as e:  # surfaced below
            errors.append(e)

    threads = [threading.Thread(target=search, args=(k,)) for k in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not errors, errors
    trials = _study_trials(db)
    real = [t for t in trials if not t[3].get(VOID)]
    assert len(counted) == len(real) == budget and all(t[1] == "COMPLETE" for t in real), trials
    assert len(set(counted)) == budget  # eight searches with one seed: still a different point each
    assert all(t[1] == "FAIL" and t[2] == {} for t in trials if t[3].get(VOID))
    print(f" [{len(trials) - budget} trials asked past the budget by racing searches, none run]", end="")


def _base(db, *extra):
    from suite.cli import parser, plan

    args = parser().parse_args(["tune", "--models", "scornn", *TINY, *extra, "--db", str(db)])
    args.seeds = str(TUNE_SEED)
    return plan(args)[0]


def test_a_trial_left_without_settings_trains_only_with_settings_from_the_ranges(tmp_path):
    """A search killed between Optuna's ask and its first draw left a running trial with no settings:
    the next search adopts it and draws its settings from the ranges; the budget stays exact."""
    import optuna

    db = tmp_path / "s.db"
    name = study_name(_base(db, "--steps", "20"), "optuna")
    study = optuna.create_study(storage=optuna_storage_url(db), study_name=name, direction="maximize")
    orphan = study.ask()
    study._storage.set_trial_user_attr(orphan._trial_id, "owner", f"{socket.gethostname()}:999999999")  # dead
    assert study.trials[0].params == {} and study.trials[0].state.name == "RUNNING"
    res = cli("tune", "--models", "scornn", *TINY, "--steps", "20", "--trials", "2", "--search", "optuna",
              "--lr", "2e-3:3e-3", "--orth-lr", "1e-4:2e-4", "--workers", "1", "--db", str(db))
    assert res.returncode == 0, res.stderr
    trials = _study_trials(db)
    assert len(trials) == 2 and [t[1] for t in trials] in (["COMPLETE"] * 2, ["COMPLETE", "PRUNED"],
                                                            ["PRUNED", "COMPLETE"]), trials
    assert set(trials[0][2]) == {"lr", "orth_lr", "optimizer"}  # the adopted trial got every setting
    runs = Store(db).runs(kind="trial")
    assert len(runs) == 2
    for r in runs:
        assert 2e-3 <= r["config"]["lr"] <= 3e-3 and 1e-4 <= r["config"]["orth_lr"] <= 2e-4, r["config"]


def test_each_store_has_its_own_study(tmp_path):
    for name in ("x.db", "x.sqlite"):
        res = cli("tune", "--models", "lstm", *TINY, "--steps", "10", "--trials", "2", "--search", "optuna",
                  "--workers", "1", "--db", str(tmp_path / name))
        assert res.returncode == 0, res.stderr
        assert len(Store(tmp_path / name).runs(kind="trial")) == 2  # the second store's search trained too
    assert study_path(tmp_path / "x.db") == tmp_path / "x.db-optuna.db"
    assert study_path(tmp_path / "x.sqlite") == tmp_path / "x.sqlite-optuna.db"
    assert (tmp_path / "x.db-optuna.db").is_file() and (tmp_path / "x.sqlite-optuna.db").is_file()
    assert not (tmp_path / "x.optuna.db").exists()


@pytest.mark.parametrize("kind", ["garbage", "foreign-sqlite", "results-store"])
def test_a_study_path_that_is_not_an_optuna_study_is_refused(tmp_path, kind):
    db, study = tmp_path / "s.db", tmp_path / "s.db-optuna.db"
    if kind == "garbage":
        study.write_bytes(b"my notes\n" * 500)
    elif kind == "foreign-sqlite":
        con = sqlite3.connect(study)
        con.execute("CREATE TABLE samples (id INTEGER)")
        con.commit()
        con.close()
    else:
        Store(study).close()
    before = hashlib.sha256(study.read_bytes()).hexdigest()
    res = cli("tune", "--models", "lstm", *TINY, "--steps", "10", "--trials", "2", "--search", "optuna",
              "--db", str(db))
    assert res.returncode == 2 and "Traceback" not in res.stderr, res.stderr
    assert f"{study} is " in res.stderr and "not an Optuna study" in res.stderr, res.stderr
    assert hashlib.sha256(study.read_bytes()).hexdigest() == before and not db.exists()


def test_sigterm_stops_a_search_and_its_workers_and_it_resumes(tmp_path):
    db = str(tmp_path / "s.db")
    args = ["tune", "--models", "scornn", *TINY, "--steps", "400", "--trials", "2", "--workers", "2", "--db", db]
    proc = subprocess.Popen([sys.executable, "-m", "suite", *args], cwd=ROOT, process_group=0,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    try:
        wait_running(db, proc, 2, 20)
        workers = children(proc.pid)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143 and "stopped by SIGTERM" in err, err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    wait_gone(workers, 10)
    assert [r["status"] for r in Store(db).runs(kind="trial")] == ["interrupted", "interrupted"]
    res = cli(*args)
    assert res.returncode == 0 and "busy" not in res.stderr, res.stderr
    trials = Store(db).runs(kind="trial")
    assert [(r["status"], r["step"]) for r in trials] == [("finished", 400)] * 2
    con = sqlite3.connect(db)
    for r in trials:  # resumed, not restarted: every step once
        steps = [s for (s,) in con.execute("SELECT step FROM metrics WHERE run_id = ? AND name = 'train/loss'",
                                            (r["run_id"],))]
        assert steps == list(range(1, 401))
