"""Faults and bad input, as a user meets them: real stores and files, real `suite` processes, real
signals. Each case ends in a clear message naming the file or value (exit 2 where it is the user's
input), and nothing is lost, deleted or overwritten that the suite did not write."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from suite.tasks.data import write_idx

from suite.store import Store
from tests.helpers import ROOT, cli, committed_step

# A small real run: 120 steps, evaluations (with checkpoints) every 20.
RUN = ["run", "--models", "scornn", "--tasks", "copying", "--steps", "120", "--set", "T=30", "--set", "K=4",
       "--set", "hidden=24", "--set", "eval_every=20", "--set", "eval_size=64", "--set", "batch_size=16",
       "--no-report", "--workers", "1", "--seeds", "0"]
ONE_THREAD = {"OMP_NUM_THREADS": "1"}  # the same thread count everywhere: bit-exact comparisons


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _interrupted_run(db: Path, at_least: int, sig=signal.SIGINT) -> subprocess.CompletedProcess:
    """Start RUN into ``db``, stop it with ``sig`` once ``at_least`` steps are committed."""
    env = {**os.environ, **ONE_THREAD, "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "suite", *RUN, "--db", str(db)], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    t0 = time.time()
    while committed_step(db) < at_least:
        assert proc.poll() is None, proc.communicate()
        assert time.time() - t0 < 120, "the run did not progress"
        time.sleep(0.01)
    proc.send_signal(sig)
    out, err = proc.communicate(timeout=120)
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _values(db: Path) -> list[tuple]:
    """Every record but the wall-clock ones, in key order."""
    con = sqlite3.connect(db)
    rows = con.execute("SELECT 'm', step, name, value FROM metrics WHERE name != 'train/time' UNION ALL "
                       "SELECT 's', step, '', eigenvalues FROM spectra UNION ALL "
                       "SELECT 'p', step, '', grad_norms FROM profiles ORDER BY 1, 2, 3").fetchall()
    con.close()
    return rows


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[tuple]:
    db = tmp_path_factory.mktemp("reference") / "s.db"
    res = cli(*RUN, "--db", str(db), env=ONE_THREAD)
    assert res.returncode == 0, res.stderr
    return _values(db)


@pytest.fixture(scope="module")
def interrupted(tmp_path_factory) -> Path:
    """A store whose run was stopped by Ctrl-C after step 60 (checkpoints of its last two commits kept)."""
    db = tmp_path_factory.mktemp("interrupted") / "s.db"
    res = _interrupted_run(db, 60)
    assert res.returncode == 130, res.stderr
    return db


def _copy_store(db: Path, dest: Path) -> Path:
    dest.mkdir(parents=True, exist_ok=True)
    for suffix in ("", "-wal"):  # the store is its file and its write-ahead log
        if Path(f"{db}{suffix}").is_file():
            shutil.copy(f"{db}{suffix}", dest / f"{db.name}{suffix}")
    shutil.copytree(db.with_name(db.name + "-checkpoints"), dest / f"{db.name}-checkpoints")
    return dest / db.name


# ---- 1. every store owns its checkpoints --------------------------------------------------------
def test_a_second_store_in_the_same_folder_leaves_the_first_ones_checkpoints_alone(tmp_path, interrupted,
                                                                                    reference):
    a = _copy_store(interrupted, tmp_path)
    run_id = Store(a).runs()[0]["run_id"]
    step = Store(a).run(run_id)["step"]
    times_before = Store(a).series(run_id, "train/time")
    b = tmp_path / "b.db"  # same folder, same configuration, run to the end
    assert cli(*RUN, "--db", str(b), env=ONE_THREAD).returncode == 0
    assert (tmp_path / "b.db-checkpoints" / run_id).is_dir()
    assert step in Store(a).checkpoint_steps(run_id)  # B did not touch A's checkpoints
    res = cli(*RUN, "--db", str(a), env=ONE_THREAD)
    assert res.returncode == 0, res.stderr
    assert "restarting" not in res.stderr and "resuming from the checkpoint" not in res.stderr
    steps, times = Store(a).series(run_id, "train/time")
    assert (steps[:step], times[:step]) == times_before  # resumed: the committed steps were kept as they were
    assert _values(a) == reference


# ---- 2. and 3. the report deletes nothing of the user's, renders what it can ----------------------
@pytest.fixture(scope="module")
def small(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("small") / "s.db"
    res = cli("run", "--seeds", "0", "--models", "rnn", "--tasks", "adding", "--steps", "6", "--set", "T=5", "--set",
              "eval_size=16", "--set", "eval_every=3", "--db", str(db), "--no-report", "--workers", "1")
    assert res.returncode == 0, res.stderr
    return db


def _small_store(small: Path, db: Path) -> None:
    _copy_store(small, db.parent)
    if db.name != small.name:
        for suffix in ("", "-wal"):
            if Path(f"{db.parent / small.name}{suffix}").is_file():
                Path(f"{db.parent / small.name}{suffix}").rename(f"{db}{suffix}")


def test_the_report_never_deletes_or_overwrites_files_it_did_not_write(tmp_path, small):
    db, out = tmp_path / "s.db", tmp_path / "out"
    _small_store(small, db)
    out.mkdir()
    mine = {"holiday.png": b"\x89PNG not the suite's", "adding-spectra-old.png": b"x", "notes.txt": b"keep"}
    for name, data in mine.items():
        (out / name).write_bytes(data)
    res = cli("report", "--db", str(db), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert all((out / n).read_bytes() == d for n, d in mine.items())
    assert (out / "adding-spectra.png").is_file() and (out / "index.html").is_file()
    # a report that fails (the store is a folder) deletes nothing either
    assert cli("report", "--db", str(tmp_path), "--out", str(out)).returncode == 2
    assert all((out / n).read_bytes() == d for n, d in mine.items()) and (out / "adding-spectra.png").is_file()
    # a folder holding somebody else's index.html: refused, untouched
    other = tmp_path / "site"
    other.mkdir()
    (other / "index.html").write_text("<p>my site</p>")
    res = cli("report", "--db", str(db), "--out", str(other))
    assert res.returncode == 2 and "did not write (index.html)" in res.stderr and "Traceback" not in res.stderr
    assert (other / "index.html").read_text() == "<p>my site</p>" and list(other.iterdir()) == [other / "index.html"]


def test_the_report_replaces_its_own_stale_figures_only(tmp_path, small):
    db, out = tmp_path / "s.db", tmp_path / "out"
    _small_store(small, db)
    assert cli("report", "--db", str(db), "--out", str(out)).returncode == 0
    (out / "mine.png").write_bytes(b"user")
    other = tmp_path / "other.db"  # a store without the adding task: its figures are stale here
    res = cli("run", "--seeds", "0",
              "--models", "rnn", "--tasks", "copying", "--steps", "4", "--set", "T=4", "--set", "K=2",
              "--set", "eval_size=16", "--db", str(other), "--no-report", "--workers", "1")
    assert res.returncode == 0, res.stderr
    assert cli("report", "--db", str(other), "--out", str(out)).returncode == 0
    names = {p.name for p in out.iterdir()}
    assert "mine.png" in names and "copying-spectra.png" in names and not any(n.startswith("adding-") for n in names)


def _broken_store(small: Path, db: Path) -> None:
    """One good task, one whose run is claimed but never committed (no spectra, no metrics), one whose
    losses are all non-finite, and one whose hand-edited row has a summary that is not an object (a
    damaged field: read without it) and a parameter count that is text (its task cannot be drawn)."""
    _small_store(small, db)
    con = sqlite3.connect(db)
    row = con.execute("SELECT * FROM runs").fetchone()
    cols = [d[0] for d in con.execute("SELECT * FROM runs").description]
    base = dict(zip(cols, row))
    for rid, task, status in (("claimed", "copying", "running"), ("nan", "mnist1d", "diverged"),
                              ("odd", "timit", "finished")):
        config = json.dumps({**json.loads(base["config"]), "task": task, "task_options": {}})
        r = {**base, "run_id": rid, "task": task, "config": config, "config_hash": rid, "status": status,
             "step": 0 if rid == "claimed" else 2, "summary": '"not an object"' if rid == "odd" else None,
             "params_total": "many" if rid == "odd" else base["params_total"],
             "task_info": None if rid == "claimed" else
             '{"metric": "accuracy", "higher_is_better": true, "baseline": {"loss": 2.3, "accuracy": 0.1}}'}
        con.execute(f"INSERT INTO runs ({', '.join(r)}) VALUES ({', '.join('?' * len(r))})", tuple(r.values()))
    con.executemany("INSERT INTO metrics VALUES ('nan', ?, ?, NULL)",
                    [(1, "train/loss"), (2, "train/loss"), (0, "val/accuracy"), (0, "val/loss"), (1, "train/time")])
    con.commit()
    con.close()


def test_the_report_renders_every_task_it_can_and_names_the_others(tmp_path, small):
    db, out = tmp_path / "s.db", tmp_path / "out"
    _broken_store(small, db)
    res = cli("report", "--db", str(db), "--out", str(out))
    assert res.returncode == 0, res.stderr
    html = (out / "index.html").read_text()
    assert "Traceback" not in res.stderr
    for task in ("adding", "copying", "mnist1d", "timit"):
        assert f'id="task-{task}"' in html
    assert html.count("could not be rendered") == 1 and "ValueError" in html  # timit, and why
    assert "run odd in" in res.stderr and "damaged fields (summary: a JSON str where an object belongs)" in res.stderr
    assert (out / "copying-spectra.png").is_file() and (out / "mnist1d-curves-step.png").is_file()
    assert (out / "adding-curves-step.png").stat().st_size > 10_000  # the good task is drawn in full


def test_suite_run_is_not_taken_down_by_its_report(tmp_path):
    out = tmp_path / "site"
    out.mkdir()
    (out / "index.html").write_text("mine")
    db = tmp_path / "s.db"
    res = cli("run", "--seeds", "0", "--models", "rnn", "--tasks", "adding", "--steps", "4", "--set", "T=5", "--set",
              "eval_size=16", "--db", str(db), "--report-dir", str(out), "--workers", "1")
    assert res.returncode == 2 and "report not written" in res.stderr and "Traceback" not in res.stderr
    assert "outcomes: finished 1" in res.stderr and Store(db).runs()[0]["status"] == "finished"
    assert (out / "index.html").read_text() == "mine"


# ---- 5. damaged, foreign and misplaced stores are refused, never written to ----------------------
def _damage(db: Path) -> None:
    data = bytearray(db.read_bytes())
    page = 4096
    assert len(data) >= 4 * page
    data[page + 100: 3 * page] = os.urandom(2 * page - 100)  # overwrite pages 2 and 3, keep the header
    db.write_bytes(bytes(data))


@pytest.mark.parametrize("kind", ["damaged", "not-sqlite", "foreign-sqlite", "directory"])
def test_a_store_that_is_not_a_sound_results_store_is_refused_by_every_command(tmp_path, small, kind):
    db = tmp_path / "s.db"
    if kind == "damaged":
        _small_store(small, db)
        _damage(db)
    elif kind == "not-sqlite":
        db.write_bytes(b"these are my lab notes, not a database\n" * 200)
    elif kind == "foreign-sqlite":
        con = sqlite3.connect(db)
        con.execute("CREATE TABLE samples (id INTEGER, value REAL)")
        con.commit()
        con.close()
    else:
        db.mkdir()
    before = None if db.is_dir() else _sha(db)
    expected = {"damaged": "fails SQLite's integrity check", "not-sqlite": "not an SQLite database",
                "foreign-sqlite": "not a results store (tables: samples)", "directory": "is a directory"}[kind]
    for args in (["run", "--seeds", "0",
                  "--models", "rnn", "--tasks", "adding", "--steps", "2", "--set", "T=5", "--no-report"],
                 ["show"], ["export", "--out", str(tmp_path / "x")], ["report", "--out", str(tmp_path / "r")]):
        res = cli(*args, "--db", str(db))
        assert res.returncode == 2, (args, res.stderr)
        assert "Traceback" not in res.stderr and str(db) in res.stderr, res.stderr
        assert expected in res.stderr or (kind == "damaged" and "damaged" in res.stderr), res.stderr
    if before is not None:
        assert _sha(db) == before  # never written to
    assert not (tmp_path / "s.db-checkpoints").exists() or kind == "damaged"
    assert not (tmp_path / "r").exists()


# ---- 6. corrupt or refused checkpoints are set aside; the run resumes from the one before ---------
class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


@pytest.mark.parametrize("fault", ["garbage", "truncated", "unsafe-pickle"])
def test_a_bad_checkpoint_is_set_aside_and_the_run_resumes_from_the_previous_one(tmp_path, interrupted,
                                                                                  reference, fault):
    db = _copy_store(interrupted, tmp_path)
    store = Store(db)
    run = store.runs()[0]
    step, run_id = run["step"], run["run_id"]
    previous = store.checkpoint_steps(run_id)[1]
    path = store.checkpoint_path(run_id, step)
    marker = tmp_path / "PWNED"
    if fault == "garbage":
        path.write_bytes(os.urandom(3000))
    elif fault == "truncated":
        path.write_bytes(path.read_bytes()[:500])
    else:
        evil = _Evil()
        evil.marker = marker
        torch.save({"step": step, "model": evil}, path)
    bad = path.read_bytes()
    res = cli(*RUN, "--db", str(db), env=ONE_THREAD)
    assert res.returncode == 0, res.stderr
    assert f"checkpoint {path}" in res.stderr and "set aside as corrupt-step-" in res.stderr
    assert f"resuming from the checkpoint of step {previous}" in res.stderr
    assert "weights_only" not in res.stderr and "Traceback" not in res.stderr
    assert not marker.exists()  # the pickle's code never ran
    assert (path.parent / f"corrupt-step-{step}.pt").read_bytes() == bad  # kept as it was
    assert Store(db).run(run_id)["status"] == "finished" and _values(db) == reference


def test_without_any_good_checkpoint_the_run_restarts_and_says_so(tmp_path, interrupted, reference):
    db = _copy_store(interrupted, tmp_path)
    store = Store(db)
    run_id = store.runs()[0]["run_id"]
    for s in store.checkpoint_steps(run_id):
        store.checkpoint_path(run_id, s).write_bytes(b"\0" * 64)
    res = cli(*RUN, "--db", str(db), env=ONE_THREAD)
    assert res.returncode == 0, res.stderr
    assert "no usable checkpoint" in res.stderr and "restarting from step 0" in res.stderr
    assert len(list(store.checkpoint_dir(run_id).glob("corrupt-*"))) == 2
    assert _values(db) == reference


# ---- 7. read-only media ----------------------------------------------------------------------------
def _read_only(folder: Path, *args: str) -> subprocess.CompletedProcess:
    """`suite ARGS` with ``folder`` on read-only media: a read-only bind mount when root (root ignores
    file modes), file modes otherwise."""
    cmd = [sys.executable, "-m", "suite", *args]
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    if os.geteuid() == 0:
        if not shutil.which("unshare"):
            pytest.skip("needs unshare(1) to mount a folder read-only")
        script = f'mount --bind "{folder}" "{folder}" && mount -o remount,ro,bind "{folder}" && exec "$@"'
        res = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", *cmd], capture_output=True, text=True,
                             cwd=ROOT, env=env)
        if res.returncode != 0 and "mount" in res.stderr and "suite" not in res.stderr:
            pytest.skip(f"cannot mount read-only here: {res.stderr.strip()}")
        return res
    modes = {p: p.stat().st_mode for p in [folder, *folder.rglob("*")]}
    try:
        for p in sorted(modes, reverse=True):
            p.chmod(0o555 if p.is_dir() else 0o444)
        return subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT, env=env)
    finally:
        for p, m in modes.items():
            p.chmod(m)


def test_a_store_on_read_only_media_can_be_read_but_not_trained_into(tmp_path):
    media = tmp_path / "media"
    media.mkdir()
    db = media / "s.db"
    res = _interrupted_run(db, 40, sig=signal.SIGKILL)  # killed: the last commits live in the WAL file
    assert res.returncode == -signal.SIGKILL
    wal = media / "s.db-wal"
    assert wal.is_file() and wal.stat().st_size > 0
    step = committed_step(db)
    before = {p.name: _sha(p) for p in media.iterdir() if p.is_file()}

    res = _read_only(media, "show", "--db", str(db))
    assert res.returncode == 0, res.stderr
    assert f"{step}/120" in res.stdout  # what the WAL holds is read too
    res = _read_only(media, "export", "--db", str(db), "--out", str(tmp_path / "export"))
    assert res.returncode == 0, res.stderr
    assert len((tmp_path / "export" / "metrics.csv").read_text().splitlines()) > 2 * step
    res = _read_only(media, "report", "--db", str(db), "--out", str(tmp_path / "report"))
    assert res.returncode == 0, res.stderr
    assert (tmp_path / "report" / "copying-curves-step.png").is_file()
    res = _read_only(media, *RUN, "--db", str(db))
    assert res.returncode == 2 and "read-only" in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert {p.name: _sha(p) for p in media.iterdir() if p.is_file()} == before


# ---- 8. malformed data files ------------------------------------------------------------------------
def _timit_arrays(n=4, t=6):
    rng = np.random.default_rng(0)
    return rng.standard_normal((n, t, 129)).astype(np.float32), np.full(n, t, dtype=np.int64)


def _write_timit(folder: Path, fault: str) -> Path:
    timit = folder / "timit"
    timit.mkdir(parents=True)
    for split in ("train", "val", "test"):
        x, lengths = _timit_arrays()
        np.savez(timit / f"{split}.npz", x=x, lengths=lengths)
    bad = timit / "train.npz"
    x, lengths = _timit_arrays()
    if fault == "garbage":
        bad.write_bytes(os.urandom(5000))
    elif fault == "truncated":
        bad.write_bytes(bad.read_bytes()[:3000])
    elif fault == "zero-bytes":
        bad.write_bytes(b"")
    elif fault == "object-array":
        np.savez(bad, x=np.array([x[0], x[1, :3]], dtype=object), lengths=lengths[:2])
    elif fault == "string-array":
        np.savez(bad, x=np.full((2, 6, 129), "frame"), lengths=lengths[:2])
    elif fault == "no-utterances":
        np.savez(bad, x=np.zeros((0, 6, 129), np.float32), lengths=np.zeros(0, np.int64))
    elif fault == "nan":
        x[2, 3, 7] = np.nan
        np.savez(bad, x=x, lengths=lengths)
    return bad


@pytest.mark.parametrize(("fault", "message"), [
    ("garbage", "cannot be read as an .npz archive"), ("truncated", "cannot be read as an .npz archive"),
    ("zero-bytes", "cannot be read as an .npz archive"), ("object-array", "cannot be read as an .npz archive"),
    ("string-array", "expected numbers"), ("no-utterances", "holds no utterances"),
    ("nan", "1 non-finite values (NaN or inf), the first at utterance 2, frame 3, bin 7"),
])
def test_a_malformed_timit_file_is_a_data_error_before_training(tmp_path, fault, message):
    bad = _write_timit(tmp_path / "data", fault)
    db = tmp_path / "s.db"
    res = cli("run", "--seeds", "0", "--models", "rnn", "--tasks", "timit", "--set", f"data_dir='{tmp_path / 'data'}'",
              "--steps", "2", "--db", str(db), "--no-report")
    assert res.returncode == 2, res.stderr
    assert f"TIMIT file {bad}" in res.stderr and message in res.stderr, res.stderr
    assert "Traceback" not in res.stderr and not db.exists()


@pytest.mark.parametrize("fault", ["garbage", "truncated-gzip", "wrong-shape"])
def test_a_malformed_mnist_file_is_a_data_error_naming_it(tmp_path, fault):
    folder = tmp_path / "data" / "mnist"
    rng = np.random.default_rng(0)
    write_idx(folder / "train-images-idx3-ubyte.gz", rng.integers(0, 256, (20, 28, 28)))
    write_idx(folder / "train-labels-idx1-ubyte.gz", rng.integers(0, 10, 20))
    write_idx(folder / "t10k-images-idx3-ubyte.gz", rng.integers(0, 256, (10, 28, 28)))
    write_idx(folder / "t10k-labels-idx1-ubyte.gz", rng.integers(0, 10, 10))
    bad = folder / "t10k-images-idx3-ubyte.gz"
    if fault == "garbage":
        bad.write_bytes(os.urandom(2000))
    elif fault == "truncated-gzip":
        bad.write_bytes(bad.read_bytes()[:300])
    else:
        write_idx(bad, rng.integers(0, 256, (10, 20, 20)))
    res = cli("run", "--seeds", "0", "--models", "rnn", "--tasks", "mnist", "--set", f"data_dir='{tmp_path / 'data'}'",
              "--set", "val_size=5", "--set", "download=False", "--steps", "2", "--db", str(tmp_path / "s.db"),
              "--no-report")
    assert res.returncode == 2, res.stderr
    assert str(bad) in res.stderr and "Traceback" not in res.stderr, res.stderr


# ---- 9. up-front checks -------------------------------------------------------------------------------
@pytest.mark.parametrize(("args", "message"), [
    (["--seeds", "3-1"], "invalid --seeds '3-1'"),
    (["--set", "lr=1e999"], "invalid --set 'lr=1e999': 1e999 is not a finite number"),
    (["--set", "lr=inf"], "invalid lr='inf'"),
    (["--set", "orth_lr=-1e999"], "is not a finite number"),
    (["--workers", "0"], "invalid --workers 0: must be 1 or more"),
    (["--workers", "-3"], "invalid --workers -3: must be 1 or more"),
    (["--set", "engine='triton'"], "engine='triton' needs a CUDA GPU"),
])
def test_bad_settings_stop_before_any_work(tmp_path, args, message):
    if "engine='triton'" in args and torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    db = tmp_path / "s.db"
    res = cli("run", "--seeds", "0", "--models", "scornn", "--tasks", "copying", *args, "--db", str(db), "--no-report",
              env={"TRITON_INTERPRET": "0"})
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert not db.exists()


# ---- 10. an unresponsive network fails fast ----------------------------------------------------------
def test_an_unresponsive_network_fails_fast_once_and_says_where_to_put_the_files(tmp_path):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(16)
    port = server.getsockname()[1]
    accepted = []

    def accept():  # accept connections, never answer
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            accepted.append(conn)

    threading.Thread(target=accept, daemon=True).start()
    mirrors = f"http://127.0.0.1:{port}/a/,http://127.0.0.1:{port}/b/"
    t0 = time.time()
    try:
        res = cli("run", "--seeds", "0", "--models", "scornn,rnn", "--tasks", "mnist,pmnist", "--set",
                  f"data_dir='{tmp_path}'", "--db", str(tmp_path / "s.db"), "--no-report",
                  env={"SUITE_MNIST_MIRRORS": mirrors})
    finally:
        server.close()
    took = time.time() - t0
    assert res.returncode == 2, res.stderr
    assert f"MNIST files missing in {tmp_path / 'mnist'}" in res.stderr and "Put the four standard IDX" in res.stderr
    assert "timed out" in res.stderr and "Traceback" not in res.stderr
    assert len(accepted) == 1  # one attempt in all: not per file, mirror, model or task
    assert took < 40, took  # one 10 s timeout, plus starting the process


# ---- the thread count is recorded with every run ------------------------------------------------------
def test_the_thread_count_is_recorded_with_each_run(tmp_path):
    db = tmp_path / "s.db"
    res = cli("run", "--seeds", "0",
              "--models", "rnn", "--tasks", "adding", "--steps", "2", "--set", "T=5", "--set", "eval_size=16",
              "--db", str(db), "--no-report", "--workers", "1", env=ONE_THREAD)
    assert res.returncode == 0, res.stderr
    assert Store(db).runs()[0]["env"]["threads"] == 1
    assert '"threads": 1' in cli("show", Store(db).runs()[0]["run_id"], "--db", str(db)).stdout


def test_export_never_overwrites_files_it_did_not_write(tmp_path, small):
    out = tmp_path / "out"
    assert cli("export", "--db", str(small), "--out", str(out)).returncode == 0
    assert cli("export", "--db", str(small), "--out", str(out)).returncode == 0  # its own files: replaced
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "runs.csv").write_text("my,own\n")
    res = cli("export", "--db", str(small), "--out", str(mine))
    assert res.returncode == 2 and "runs.csv, not written by `suite export`" in res.stderr
    assert (mine / "runs.csv").read_text() == "my,own\n" and not (mine / "metrics.csv").exists()
