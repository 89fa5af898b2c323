"""The local executor's process pool under Ctrl-C, as a user does it; the executor options' checks; and
`--executor ray` where Ray is not installed."""

import os
import signal
import sqlite3
import subprocess
import sys

import pytest

from suite.cli import main
from suite.store import Store
from tests.helpers import ROOT, cli, wait_running

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


def test_ctrl_c_with_two_workers_commits_interrupted_and_resumes_exactly(tmp_path):
    ref = str(tmp_path / "ref.db")
    assert cli(*POOL_ARGS, "--db", ref).returncode == 0
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

    res = cli(*POOL_ARGS, "--db", db)
    assert res.returncode == 0 and "finished 2" in res.stderr, res.stderr
    got, want = _records(db), _records(ref)
    assert got.keys() == want.keys() and len(got) == 2
    for run_id in want:
        assert got[run_id] == want[run_id]  # bit-identical, every step once
        assert got[run_id][3] == list(range(1, 501))


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
    assert "--executor ray needs Ray" in res.stderr and "pip install 'ortho-rnn-suite[ray]'" in res.stderr
    assert "Traceback" not in res.stderr
    assert not db.exists()
