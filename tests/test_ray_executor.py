"""The Ray executor on a local Ray (ray.init(num_cpus=2)): bit-identical to the local executor, and a
`suite run --executor ray --address ...` driver stopped with Ctrl-C or SIGTERM leaves every run
`interrupted` and resumable, with the same records as an uninterrupted local run."""

import logging
import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from suite.config import RunConfig
from suite.executors import Executor, run_all
from suite.store import Store
from tests.helpers import ROOT, cli, tiny, wait_running

ray = pytest.importorskip("ray", reason="the Ray executor needs Ray: pip install '.[ray]'")


@pytest.fixture(scope="module")
def local_ray(one_ray_at_a_time):
    ray.init(num_cpus=2, include_dashboard=False, logging_level=logging.WARNING)
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


def records(db, run_id):
    """Everything a run recorded except wall-clock times, in a comparable form."""
    con = sqlite3.connect(db)
    out = [con.execute("SELECT step, name, value FROM metrics WHERE run_id = ? AND name != 'train/time' "
                       "ORDER BY step, name", (run_id,)).fetchall()]
    for table, col in (("spectra", "eigenvalues"), ("profiles", "grad_norms")):
        out.append(con.execute(f"SELECT step, {col} FROM {table} WHERE run_id = ? ORDER BY step",
                               (run_id,)).fetchall())
    times = [r[0] for r in con.execute("SELECT step FROM metrics WHERE run_id = ? AND name = 'train/time' "
                                       "ORDER BY step", (run_id,))]
    con.close()
    return out, times


TIMING = ("time_per_step", "samples_per_sec", "train_time", "wall_time", "peak_memory")


def assert_same_runs(db, ref_db, configs):
    store, ref = Store(db), Store(ref_db)
    for c in configs:
        run, want = store.run(c.run_id), ref.run(c.run_id)
        assert run["status"] == want["status"] == "finished" and run["step"] == want["step"] == c.steps
        assert run["owner"] is None
        got, times = records(db, c.run_id)
        assert got == records(ref_db, c.run_id)[0]  # bit-identical values, every step exactly once
        assert times == list(range(1, c.steps + 1))
        assert run["env"]["threads"] == want["env"]["threads"]
        for key in set(want["summary"]) - set(TIMING):
            assert run["summary"][key] == want["summary"][key], key
    store.close()
    ref.close()


SWEEP = [tiny(m, seed=s, steps=20) for m in ("scornn", "rnn") for s in (0, 1)]


@pytest.fixture(scope="module")
def local_reference(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("local") / "s.db")
    outcomes = run_all(SWEEP, db, "cpu", executor=Executor(workers=2, threads=1))
    assert sorted(o.status for o in outcomes) == ["finished"] * len(SWEEP)
    return db


def test_ray_sweep_is_bit_identical_to_the_local_executor(tmp_path, local_ray, local_reference):
    db = str(tmp_path / "s.db")
    outcomes = run_all(SWEEP, db, "cpu", executor=Executor("ray", cpus_per_run=1))
    assert sorted(o.status for o in outcomes) == ["finished"] * len(SWEEP)
    assert_same_runs(db, local_reference, SWEEP)
    assert not (tmp_path / "checkpoints").exists() or all(
        len(list(d.iterdir())) == 1 for d in (tmp_path / "checkpoints").iterdir())  # the last one only
    # a second pass is a no-op, as locally
    assert {o.status for o in run_all(SWEEP, db, "cpu", executor=Executor("ray"))} == {"skipped"}


CLI_ARGS = ["run", "--models", "scornn,rnn", "--tasks", "copying", "--seeds", "0,1", "--steps", "20",
            "--set", "T=8", "--set", "task.K=3", "--set", "eval_size=64", "--set", "hidden=12", "--set", "batch_size=8",
            "--set", "eval_every=10", "--no-report"]


def assert_same_as_local(db, tmp_path):
    """The store's runs, rerun by the local executor in this process (one thread), record the same."""
    configs = [RunConfig.from_dict(r["config"]) for r in Store(db).runs()]
    assert [c.run_id for c in configs] == [r["run_id"] for r in Store(db).runs()]
    ref = str(tmp_path / "local.db")
    run_all(configs, ref, "cpu", executor=Executor(workers=1, threads=1))
    assert_same_runs(db, ref, configs)


def test_ray_driver_ctrl_c_then_kill_9_then_resume(tmp_path, local_ray):
    db = str(tmp_path / "s.db")
    args = ["run", "--models", "scornn", "--tasks", "copying", "--seeds", "0,1", "--steps", "300",
            "--set", "T=8", "--set", "task.K=3", "--set", "eval_size=64", "--set", "hidden=12", "--set", "batch_size=8",
            "--set", "eval_every=10", "--no-report", "--executor", "ray", "--address", local_ray, "--db", db]

    def start():
        return subprocess.Popen([sys.executable, "-m", "suite", *args], cwd=ROOT, process_group=0,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    # Ctrl-C at the terminal: every run commits its checkpoint and `interrupted`
    proc = start()
    wait_running(db, proc, 2, 20)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "run the same command to resume" in err, err
    runs = Store(db).runs()
    assert [r["status"] for r in runs] == ["interrupted"] * 2, err
    for r in runs:
        assert 20 <= r["step"] < 300 and r["owner"] is None
        assert Store(db).series(r["run_id"], "train/loss")[0] == list(range(1, r["step"] + 1))

    # SIGTERM to the driver (a scheduler's stop): the same, exit 143
    proc = start()
    wait_running(db, proc, 2, max(r["step"] for r in runs) + 20)
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143 and "stopped by SIGTERM" in err and "Traceback" not in err, err
    runs = Store(db).runs()
    assert [r["status"] for r in runs] == ["interrupted"] * 2, err
    for r in runs:
        assert r["owner"] is None and Store(db).series(r["run_id"], "train/loss")[0] == list(range(1, r["step"] + 1))

    # the driver killed outright: its runs stay `running`, owned by its Ray tasks
    proc = start()
    wait_running(db, proc, 2, max(r["step"] for r in runs) + 20)
    proc.kill()
    proc.wait()
    runs = Store(db).runs()
    assert [r["status"] for r in runs] == ["running"] * 2
    assert all(r["owner"].split("/")[0].endswith(f":{proc.pid}") and "/ray:" in r["owner"] for r in runs)

    # the same command takes them over and finishes them, with the records of an uninterrupted run
    res = cli(*args)
    assert res.returncode == 0 and "finished 2" in res.stderr, res.stderr
    assert_same_as_local(db, tmp_path)
