"""The runner with real training steps: records, no-op reruns, divergence, kill -9 and Ctrl-C resumes."""

import signal
import sqlite3
import subprocess
import sys
import time

import pytest
import torch

from suite.cli import run_all
from suite.runner import execute
from suite.store import Store
from tests.helpers import ROOT, cli, tiny


def test_a_run_records_everything(tmp_path):
    store = Store(tmp_path / "s.db")
    out = execute(tiny(steps=30), store)
    assert out.status == "finished"
    run = store.run(out.run_id)
    assert run["status"] == "finished" and run["step"] == 30
    assert run["params_total"] == 12 * 11 // 2 + 12 * 10 + 12 + 12 * 9 + 9
    assert run["params_recurrent"] == 66
    assert run["env"]["torch"] == torch.__version__ and run["env"]["device"] == "cpu"
    assert run["config"]["seed"] == 0 and run["config"]["model"] == "scornn"
    steps, losses = store.series(out.run_id, "train/loss")
    assert steps == list(range(1, 31)) and all(v > 0 for v in losses)
    tsteps, times = store.series(out.run_id, "train/time")
    assert tsteps == steps and all(b > a for a, b in zip(times, times[1:]))
    assert store.series(out.run_id, "val/recall_accuracy")[0] == [0, 10, 20, 30]
    assert store.series(out.run_id, "test/loss")[0] == [0, 10, 20, 30]
    _, orth = store.series(out.run_id, "orth_error")
    assert max(orth) < 1e-5
    spectra = store.spectra(out.run_id)
    assert spectra[0][0] == 0 and spectra[-1][0] == 30 and len(spectra[0][1]) == 12
    assert all(abs(complex(*e)) == pytest.approx(1, abs=1e-5) for e in spectra[-1][1])
    profiles = store.profiles(out.run_id)
    assert [p[0] for p in profiles] == [0, 10, 20, 30] and len(profiles[0][1]) == 8 + 6
    assert [s[0] for s in spectra] == [0, 10, 20, 30]
    s = run["summary"]
    for key in ("time_per_step", "samples_per_sec", "train_time", "wall_time", "peak_memory",
                "best_val", "test_at_best_val", "final_orth_error"):
        assert s[key] is not None and s[key] >= 0, key
    assert s["peak_memory"] > 10 * 2**20


def test_rerun_is_a_noop_unless_forced(tmp_path):
    store = Store(tmp_path / "s.db")
    cfg = tiny(steps=10)
    assert execute(cfg, store).status == "finished"
    n = len(store.metrics())
    assert execute(cfg, store).status == "skipped"
    assert len(store.metrics()) == n
    assert execute(cfg, store, force=True).status == "finished"
    assert len(store.metrics()) == n
    assert execute(tiny(steps=10, seed=1), store).status == "finished"  # another seed is another run


def test_diverging_run_is_recorded_and_the_sweep_goes_on(tmp_path):
    bad = tiny("rnn", steps=50, lr=1e6, model_options=(("activation", "relu"),))
    good = tiny("scornn", steps=10)
    outcomes = run_all([bad, good], str(tmp_path / "s.db"), "cpu", False, workers=1)
    status = {o.run_id: o.status for o in outcomes}
    assert status == {bad.run_id: "diverged", good.run_id: "finished"}
    store = Store(tmp_path / "s.db")
    run = store.run(bad.run_id)
    assert run["status"] == "diverged" and run["summary"]["diverged_at"] == run["step"] < 50
    steps, losses = store.series(bad.run_id, "train/loss")
    assert steps == list(range(1, run["step"] + 1)) and losses[-1] is None  # the non-finite loss


def _all_records(db, run_id):
    con = sqlite3.connect(db)
    metrics = con.execute("SELECT step, name, value FROM metrics WHERE run_id = ? AND name != 'train/time' "
                          "ORDER BY step, name", (run_id,)).fetchall()
    spectra = con.execute("SELECT step, eigenvalues FROM spectra WHERE run_id = ? ORDER BY step", (run_id,)).fetchall()
    profiles = con.execute("SELECT step, grad_norms FROM profiles WHERE run_id = ? ORDER BY step",
                           (run_id,)).fetchall()
    con.close()
    return metrics, spectra, profiles


RUN_ARGS = ["run", "--models", "scornn", "--tasks", "copying", "--steps", "400", "--set", "T=60",
            "--set", "hidden=32", "--set", "eval_every=20", "--set", "eval_size=64", "--set", "batch_size=16",
            "--no-report", "--workers", "1", "--seeds", "0"]


def _wait_for_step(db, at_least, proc, timeout=120):
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, proc.communicate()
        try:
            con = sqlite3.connect(db, timeout=1)
            row = con.execute("SELECT step FROM runs").fetchone()
            con.close()
        except sqlite3.OperationalError:
            row = None
        if row and row[0] >= at_least:
            return row[0]
        time.sleep(0.01)
    raise AssertionError("the run did not progress")


@pytest.fixture(scope="module")
def reference_run(tmp_path_factory):
    db = tmp_path_factory.mktemp("ref") / "s.db"
    assert cli(*RUN_ARGS, "--db", str(db)).returncode == 0
    run_id = Store(db).runs()[0]["run_id"]
    return run_id, _all_records(db, run_id)


def test_kill_9_then_resume_loses_and_duplicates_nothing(tmp_path, reference_run):
    db = str(tmp_path / "s.db")
    proc = subprocess.Popen([sys.executable, "-m", "suite", *RUN_ARGS, "--db", db], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_step(db, 100, proc)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    store = Store(db)
    run = store.runs()[0]
    assert run["status"] == "running" and 100 <= run["step"] < 400  # killed mid-run
    committed = _all_records(db, run["run_id"])[0]
    assert run["step"] in store.checkpoint_steps(run["run_id"])  # the committed step's checkpoint is on disk
    ckpt = torch.load(store.checkpoint_dir(run["run_id"]) / f"step-{run['step']}.pt", weights_only=True)
    assert ckpt["step"] == run["step"]

    res = cli(*RUN_ARGS, "--db", db)
    assert res.returncode == 0, res.stderr
    run_id, (ref_metrics, ref_spectra, ref_profiles) = reference_run
    metrics, spectra, profiles = _all_records(db, run_id)
    assert committed == metrics[: len(committed)]  # what was recorded before the kill is intact
    assert [m[:2] for m in metrics] == [m[:2] for m in ref_metrics]  # no step lost, none duplicated
    torch.testing.assert_close([m[2] for m in metrics], [m[2] for m in ref_metrics], rtol=1e-6, atol=1e-7)
    assert [s[0] for s in spectra] == [s[0] for s in ref_spectra]
    assert [p[0] for p in profiles] == [p[0] for p in ref_profiles]
    steps = Store(db).series(run_id, "train/time")[0]
    assert steps == list(range(1, 401))


def test_ctrl_c_checkpoints_and_resumes(tmp_path, reference_run):
    db = str(tmp_path / "s.db")
    proc = subprocess.Popen([sys.executable, "-m", "suite", *RUN_ARGS, "--db", db], cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    _wait_for_step(db, 60, proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "resume" in err
    run = Store(db).runs()[0]
    assert run["status"] == "interrupted" and run["step"] < 400
    steps = Store(db).series(run["run_id"], "train/loss")[0]
    assert steps == list(range(1, run["step"] + 1))  # everything up to the interrupt is recorded
    assert cli(*RUN_ARGS, "--db", db).returncode == 0
    metrics = _all_records(db, run["run_id"])[0]
    ref = reference_run[1][0]
    assert [m[:2] for m in metrics] == [m[:2] for m in ref]
    torch.testing.assert_close([m[2] for m in metrics], [m[2] for m in ref], rtol=1e-6, atol=1e-7)


def test_cli_rerun_is_noop(tmp_path):
    args = ["run", "--models", "rnn", "--tasks", "adding", "--steps", "5", "--set", "T=5", "--seeds", "0",
            "--set", "eval_size=16", "--db", str(tmp_path / "s.db"), "--no-report"]
    assert cli(*args).returncode == 0
    res = cli(*args)
    assert res.returncode == 0 and "skipped 1" in res.stderr


@pytest.mark.parametrize(("args", "message"), [
    (["--models", "scorn"], "unknown model 'scorn'. Did you mean 'scornn'"),
    (["--tasks", "copy"], "unknown task 'copy'"),
    (["--models", "scornn", "--tasks", "copying", "--set", "T=0"], "invalid T=0 for copying"),
    (["--models", "scornn", "--tasks", "copying", "--set", "hidden=8", "--set", "rho=9"],
     "invalid rho=9 for scornn with hidden=8: must be in [0, 8]"),
    (["--models", "lstm", "--tasks", "copying", "--set", "rho=2"], "unknown setting 'rho'"),
    (["--models", "scornn", "--set", "optimizer=lbfgs"], "valid choices: 'rmsprop', 'adam'"),
    (["--seeds", "x"], "invalid --seeds 'x'"),
    (["--models", "scornn", "--tasks", "mnist", "--set", "download=False", "--set", "data_dir='/nonexistent'"],
     "MNIST files missing in /nonexistent/mnist"),
])
def test_bad_input_stops_before_any_work(tmp_path, args, message):
    db = tmp_path / "s.db"
    res = cli("run", *args, "--db", str(db), "--no-report")
    assert res.returncode == 2
    assert message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    assert not db.exists()  # nothing was started


def test_show_and_export(tmp_path):
    db = str(tmp_path / "s.db")
    assert cli("run", "--models", "scornn", "--tasks", "adding", "--steps", "5", "--set", "T=5", "--seeds", "0",
               "--set", "eval_size=16", "--db", db, "--no-report").returncode == 0
    res = cli("show", "--db", db)
    assert res.returncode == 0 and "scornn" in res.stdout and "finished" in res.stdout
    run_id = Store(db).runs()[0]["run_id"]
    assert '"status": "finished"' in cli("show", run_id, "--db", db).stdout
    bad = cli("show", "nope", "--db", db)
    assert bad.returncode == 2 and "unknown run 'nope'" in bad.stderr
    res = cli("export", "--format", "parquet", "--out", str(tmp_path / "x"), "--db", db)
    assert res.returncode == 0 and (tmp_path / "x" / "metrics.parquet").is_file()


def test_list(tmp_path):
    out = cli("list").stdout
    assert "scornn*" in out and "copying*" in out and "paper" in out and "arXiv:1707.09520v3" in out
    assert "scornn_autograd:" in out  # not a mission model: no star
