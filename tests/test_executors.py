"""The local executor's process pool under Ctrl-C, SIGTERM (as a scheduler sends it) and kill -9 of its
parent, as a user or a cluster does it; the executor options' checks; and `--executor ray` where Ray is
not installed."""

import contextlib
import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from suite.cli import main
from suite.store import Store
from tests.helpers import ROOT, children, cli, wait_gone, wait_running

POOL_ARGS = ["run", "--models", "scornn", "--tasks", "copying", "--seeds", "0,1", "--steps", "500",
             "--set", "T=40", "--set", "hidden=24", "--set", "eval_every=20", "--set", "eval_size=64",
             "--set", "batch_size=16", "--no-report", "--workers", "2", "--threads", "1"]


def _records(db):
    con = sqlite3.connect(db)
    out = {}
    for (run_id,) in con.execute("SELECT run_id FROM runs"):
        out[run_id] = (
            con.execute("SELECT step, name, value FROM metrics WHERE run_id = ? AND name != 'train/time' "
                        "ORDER BY step, name", (run_id,)).fetchall(),
            con.execute("SELECT step, eigenvalues FROM spectra WHERE run_id = ? ORDER BY step", (run_id,)).fetchall(),
            con.execute("SELECT step, grad_norms FROM profiles WHERE run_id = ? ORDER BY step", (run_id,)).fetchall(),
            [r[0] for r in con.execute("SELECT step FROM metrics WHERE run_id = ? AND name = 'train/time' "
                                       "ORDER BY step", (run_id,))])
    con.close()
    return out


@pytest.fixture(scope="module")
def pool_reference(tmp_path_factory):
    ref = str(tmp_path_factory.mktemp("pool-reference") / "ref.db")
    res = cli(*POOL_ARGS, "--db", ref)
    assert res.returncode == 0, res.stderr
    return _records(ref)


def _resumes_exactly(db, reference) -> None:
    """The same command again: both runs resume from their last commits (none is left `busy`) and end
    bit-identical to the uninterrupted sweep."""
    res = cli(*POOL_ARGS, "--db", db)
    assert res.returncode == 0 and "finished 2" in res.stderr, res.stderr
    assert "busy" not in res.stderr and "restarting" not in res.stderr, res.stderr
    got = _records(db)
    assert got.keys() == reference.keys() and len(got) == 2
    for run_id in reference:
        assert got[run_id] == reference[run_id]  # bit-identical, every step once
        assert got[run_id][3] == list(range(1, 501))


def test_ctrl_c_with_two_workers_commits_interrupted_and_resumes_exactly(tmp_path, pool_reference):
    db = str(tmp_path / "s.db")
    # a shell job: its own process group, and Ctrl-C at the terminal signals that whole group
    proc = subprocess.Popen([sys.executable, "-m", "suite", *POOL_ARGS, "--db", db], cwd=ROOT, process_group=0,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    wait_running(db, proc, 2, 40)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert "run the same command to resume" in err
    store = Store(db)
    runs = store.runs()
    assert [r["status"] for r in runs] == ["interrupted", "interrupted"], err
    for r in runs:
        assert 40 <= r["step"] < 500 and r["owner"] is None
        # the step it stopped at was committed with its checkpoint
        assert store.series(r["run_id"], "train/loss")[0] == list(range(1, r["step"] + 1))
        assert store.load_checkpoint(r["run_id"], r["step"])["step"] == r["step"]
    store.close()

    _resumes_exactly(db, pool_reference)


@pytest.mark.parametrize("to", ["parent", "every-process"])
def test_sigterm_stops_a_pool_like_ctrl_c_and_leaves_no_worker(tmp_path, pool_reference, to):
    """`kill PID`, `timeout`, a batch scheduler: SIGTERM to the command (or, as SLURM does, to each of its
    processes) checkpoints every running run, marks it interrupted, ends the workers and exits 143."""
    db = str(tmp_path / "s.db")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "suite", *POOL_ARGS, "--db", db], cwd=ROOT, process_group=0,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_running(db, proc, 2, 40)
        workers = children(proc.pid)
        assert len(workers) >= 2, workers
        for pid in [proc.pid] + (workers if to == "every-process" else []):
            os.kill(pid, signal.SIGTERM)
        _, err = proc.communicate(timeout=180)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 143, err
    assert "stopped by SIGTERM" in err and "run the same command to resume" in err
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    wait_gone(workers, 10)  # ended before their parent exited: nothing keeps training
    store = Store(db)
    for r in store.runs():
        assert r["status"] == "interrupted" and r["owner"] is None and 40 <= r["step"] < 500
        assert store.load_checkpoint(r["run_id"], r["step"])["step"] == r["step"]
    store.close()
    _resumes_exactly(db, pool_reference)


def test_kill_9_of_the_parent_ends_its_workers_within_seconds(tmp_path, pool_reference):
    db = str(tmp_path / "s.db")
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "suite", *POOL_ARGS, "--db", db], cwd=ROOT, process_group=0,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env)
    try:
        wait_running(db, proc, 2, 40)
        kids = children(proc.pid)  # the two workers (and multiprocessing's resource tracker)
        assert len(kids) >= 2, kids
        proc.kill()
        proc.wait(timeout=60)
        took = wait_gone(kids, 60)
        _, err = proc.communicate(timeout=60)  # the workers wrote to the same pipe: read once they are gone
    finally:
        if proc.poll() is None:
            proc.kill()
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
    print(f" [workers gone {took:.1f} s after their parent's kill -9]", end="")
    assert took < 15, took  # each notices within a second, checkpoints or gives up after 5 s
    assert "Traceback" not in err and "BrokenPipeError" not in err, err
    store = Store(db)
    assert [store.holder(r["run_id"]) for r in store.runs()] == [None, None]  # nobody holds them any more
    store.close()
    _resumes_exactly(db, pool_reference)


@pytest.mark.parametrize(("args", "message"), [
    (["--gpus-per-run", "0.5"], "need --executor ray"),
    (["--address", "auto"], "need --executor ray"),
    (["--executor", "dask"], "invalid choice: 'dask'"),
    (["--executor", "ray", "--gpus-per-run", "2"], "invalid gpus_per_run=2.0"),
    (["--executor", "ray", "--device", "cuda:1"], "invalid device='cuda:1' for --executor ray"),
    (["--executor", "ray", "--device", "cuda"], "invalid --device cuda with --gpus-per-run 0"),
    (["--executor", "ray", "--cpus-per-run", "0"], "invalid cpus_per_run=0"),
    (["--threads", "0"], "invalid threads=0"),
    (["--executor", "ray", "--workers", "3"], "--workers applies to --executor local"),
])
def test_bad_executor_options_stop_before_any_work(tmp_path, capsys, args, message):
    db = tmp_path / "s.db"
    argv = ["run", "--models", "rnn", "--tasks", "adding", "--steps", "5", *args, "--db", str(db), "--no-report"]
    try:
        code = main(argv)
    except SystemExit as e:  # argparse's own refusals
        code = e.code
    err = capsys.readouterr().err
    assert code == 2, err
    assert message in err
    assert not db.exists()


def test_ray_executor_without_ray_names_the_extra(tmp_path):
    db = tmp_path / "s.db"
    # None in sys.modules makes `import ray` fail exactly as when Ray is not installed
    code = "import sys; sys.modules['ray'] = None; from suite.cli import main; sys.exit(main(sys.argv[1:]))"
    res = subprocess.run([sys.executable, "-c", code, "run", "--models", "rnn", "--tasks", "adding", "--steps",
                          "5", "--executor", "ray", "--db", str(db), "--no-report"],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2, res.stderr
    assert "--executor ray needs Ray" in res.stderr and "pip install 'ray[client]>=2.10'" in res.stderr \
        and "pip install '.[ray]'" in res.stderr and "ortho-rnn-suite[" not in res.stderr
    assert "Traceback" not in res.stderr
    assert not db.exists()
