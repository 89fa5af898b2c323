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

from suite.store import Store
from suite.tasks.data import write_idx
from tests.helpers import ROOT, cli, committed_step, store_values

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


@pytest.fixture(scope="module")
def reference(tmp_path_factory) -> list[tuple]:
    db = tmp_path_factory.mktemp("reference") / "s.db"
    res = cli(*RUN, "--db", str(db), env=ONE_THREAD)
    assert res.returncode == 0, res.stderr
    return store_values(db)


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
    assert store_values(a) == reference


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
    assert Store(db).run(run_id)["status"] == "finished" and store_values(db) == reference


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
    assert store_values(db) == reference


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


# ---- SIGTERM, as a scheduler sends it: the same as Ctrl-C, exit 143 -------------------------------------
def test_sigterm_checkpoints_marks_interrupted_and_the_run_resumes_exactly(tmp_path, reference):
    db = tmp_path / "s.db"
    res = _interrupted_run(db, 40, sig=signal.SIGTERM)
    assert res.returncode == 143, res.stderr
    assert "stopped by SIGTERM" in res.stderr and "Traceback" not in res.stderr
    run = Store(db).runs()[0]
    assert run["status"] == "interrupted" and run["owner"] is None and 40 <= run["step"] < 120
    res = cli(*RUN, "--db", str(db), env=ONE_THREAD)
    assert res.returncode == 0 and "finished 1" in res.stderr and "busy" not in res.stderr, res.stderr
    assert store_values(db) == reference


# ---- outputs: never written through a symlink, the manifest trusted only for what the suite hashed -------
def _mine(tmp_path: Path) -> Path:
    precious = tmp_path / "precious.html"
    precious.write_text("<p>my thesis, the only copy</p>")
    return precious


@pytest.mark.parametrize("name", ["index.html", "adding-spectra.png"])
def test_the_report_never_writes_through_a_symlink(tmp_path, small, name):
    db, out = tmp_path / "s.db", tmp_path / "r"
    _small_store(small, db)
    assert cli("report", "--db", str(db), "--out", str(out)).returncode == 0
    precious, nowhere = _mine(tmp_path), tmp_path / "nowhere.png"
    (out / name).unlink()
    (out / name).symlink_to(precious)
    res = cli("report", "--db", str(db), "--out", str(out))
    assert res.returncode == 2 and f"did not write ({name})" in res.stderr and "Traceback" not in res.stderr
    assert precious.read_text() == "<p>my thesis, the only copy</p>" and (out / name).is_symlink()
    (out / name).unlink()
    (out / name).symlink_to(nowhere)  # dangling: following it would create a file outside --out
    res = cli("report", "--db", str(db), "--out", str(out))
    assert res.returncode == 2 and f"did not write ({name})" in res.stderr
    assert not nowhere.exists() and not any(p.name.startswith(".suite-staging") for p in out.iterdir())


def test_the_report_manifest_is_trusted_only_for_files_whose_content_it_recorded(tmp_path, small):
    db, out = tmp_path / "s.db", tmp_path / "r"
    _small_store(small, db)
    assert cli("report", "--db", str(db), "--out", str(out)).returncode == 0
    manifest = json.loads((out / ".suite-report.json").read_text())
    assert manifest["files"]["index.html"] == [_sha(out / "index.html")]  # recorded as written
    # names slipped into the manifest by hand, a figure the user has since annotated
    (out / "thesis.tex").write_text("\\documentclass{article}")
    manifest["files"].update({"thesis.tex": ["0" * 64], "": ["0" * 64], "../s.db": [_sha(db)], "sub/x": ["0"]})
    (out / ".suite-report.json").write_text(json.dumps(manifest))
    (out / "adding-spectra.png").write_bytes((out / "adding-spectra.png").read_bytes() + b"my annotation")
    annotated = _sha(out / "adding-spectra.png")
    db_before = _sha(db)
    other = tmp_path / "other.db"  # a store without the adding task: every adding-* figure is stale
    res = cli("run", "--seeds", "0", "--models", "rnn", "--tasks", "copying", "--steps", "4", "--set", "T=4",
              "--set", "K=2", "--set", "eval_size=16", "--db", str(other), "--no-report", "--workers", "1")
    assert res.returncode == 0, res.stderr
    res = cli("report", "--db", str(other), "--out", str(out))
    assert res.returncode == 0 and "Traceback" not in res.stderr, res.stderr
    names = {p.name for p in out.iterdir()}
    assert "thesis.tex" in names and _sha(out / "adding-spectra.png") == annotated  # not the suite's: kept
    assert not any(n.startswith("adding-") and n != "adding-spectra.png" for n in names)  # its own stale ones: gone
    assert _sha(db) == db_before and "copying-spectra.png" in names
    # recorded: exactly what this report wrote (its figures, the one-protocol IQM aggregate, the page)
    assert set(json.loads((out / ".suite-report.json").read_text())["files"]) == {
        n for n in names if n.startswith(("copying-", "aggregate-")) or n == "index.html"}


@pytest.mark.parametrize("link", ["to-a-file", "dangling"])
def test_export_never_writes_through_a_symlink(tmp_path, small, link):
    out = tmp_path / "e"
    out.mkdir()
    target = _mine(tmp_path) if link == "to-a-file" else tmp_path / "outside.csv"
    (out / "runs.csv").symlink_to(target)
    res = cli("export", "--db", str(small), "--out", str(out))
    assert res.returncode == 2 and "runs.csv, not written by `suite export`" in res.stderr, res.stderr
    if link == "dangling":
        assert not target.exists()  # not created outside --out
    else:
        assert target.read_text() == "<p>my thesis, the only copy</p>"
    assert sorted(p.name for p in out.iterdir()) == ["runs.csv"]


def test_a_killed_export_leaves_no_partial_table(tmp_path, small):
    out = tmp_path / "e"
    assert cli("export", "--db", str(small), "--out", str(out)).returncode == 0
    before = {p.name: _sha(p) for p in out.iterdir()}
    for n in (1, 4):  # killed after writing the first table, and after all four (before they are moved into place)
        res = cli("export", "--db", str(small), "--out", str(out), env={"SUITE_FAULT": f"export:{n}"})
        assert res.returncode == -signal.SIGKILL
        assert {p.name: _sha(p) for p in out.iterdir() if p.is_file()} == before  # the last export, whole
    fresh = tmp_path / "fresh"
    res = cli("export", "--db", str(small), "--out", str(fresh), env={"SUITE_FAULT": "export:1"})
    assert res.returncode == -signal.SIGKILL and not [p for p in fresh.iterdir() if p.is_file()]  # no runs.csv
    res = cli("export", "--db", str(small), "--out", str(fresh))
    assert res.returncode == 0, res.stderr
    # the killed export's staging folder is gone too
    assert sorted(p.name for p in fresh.iterdir()) == [".suite-export.json", "metrics.csv", "profiles.csv",
                                                        "runs.csv", "spectra.csv"]
    con = sqlite3.connect(small)
    n = con.execute("SELECT count(*) FROM metrics").fetchone()[0]
    con.close()
    assert len((fresh / "metrics.csv").read_text().splitlines()) == n + 1


# ---- checkpoint pruning deletes only the files the store recorded --------------------------------------
@pytest.mark.parametrize("folder", ["plain", "symlinked"])
def test_pruning_leaves_the_users_copies_of_checkpoints_alone(tmp_path, interrupted, reference, folder):
    db = _copy_store(interrupted, tmp_path / "store")
    store = Store(db)
    run_id = store.runs()[0]["run_id"]
    run_dir = store.checkpoint_dir(run_id)
    step = store.run(run_id)["step"]
    if folder == "symlinked":  # the run's folder moved to another disk and linked back
        elsewhere = tmp_path / "elsewhere"
        shutil.move(run_dir, elsewhere)
        run_dir.symlink_to(elsewhere, target_is_directory=True)
    mine = {f"step-{step}.pt.bak": b"backup", f"step-{step}.pt.orig": b"orig", f"step-{step} (copy).pt": b"copy",
            f"step-0{step}.pt": b"zero-padded", "step-20.pt.tmpX": b"not a suite temp name", "notes.txt": b"n"}
    for name, data in mine.items():
        (run_dir / name).write_bytes(data)
    res = cli(*RUN, "--db", str(db), env=ONE_THREAD)
    assert res.returncode == 0, res.stderr
    assert all((run_dir / n).read_bytes() == d for n, d in mine.items())
    assert Store(db).run(run_id)["status"] == "finished" and store_values(db) == reference
    left = sorted(p.name for p in run_dir.iterdir() if p.name not in mine)
    assert left == ["step-100.pt", "step-120.pt"], left  # the suite's own: the last two
    if folder == "symlinked":
        assert run_dir.is_symlink() and (tmp_path / "elsewhere" / "notes.txt").is_file()


# ---- schemas: every older version is readable, any other value refused ----------------------------------
# The tables as version 1 of the store wrote them: no runs.kind or runs.study (added by version 2), no
# checkpoints table (version 3).
V1_SCHEMA = [
    "CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)",
    """CREATE TABLE runs (run_id TEXT PRIMARY KEY, config_hash TEXT NOT NULL, seed INTEGER NOT NULL,
        model TEXT NOT NULL, task TEXT NOT NULL, config TEXT NOT NULL, status TEXT NOT NULL,
        step INTEGER NOT NULL DEFAULT 0, total_steps INTEGER NOT NULL, owner TEXT, heartbeat REAL,
        created REAL NOT NULL, updated REAL NOT NULL, env TEXT, task_info TEXT, params_total INTEGER,
        params_recurrent INTEGER, summary TEXT, error TEXT, UNIQUE (config_hash, seed))""",
    """CREATE TABLE metrics (run_id TEXT NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL, value REAL,
        PRIMARY KEY (run_id, step, name)) WITHOUT ROWID""",
    "CREATE TABLE spectra (run_id TEXT NOT NULL, step INTEGER NOT NULL, eigenvalues TEXT NOT NULL, "
    "PRIMARY KEY (run_id, step))",
    "CREATE TABLE profiles (run_id TEXT NOT NULL, step INTEGER NOT NULL, grad_norms TEXT NOT NULL, "
    "PRIMARY KEY (run_id, step))",
]


def _version_1_store(small: Path, db: Path) -> str:
    """A version-1 store holding the real run of ``small``; returns its run id."""
    con = sqlite3.connect(db)
    for stmt in V1_SCHEMA:
        con.execute(stmt)
    con.execute("INSERT INTO meta VALUES ('schema_version', '1')")
    con.execute("ATTACH DATABASE ? AS src", (str(small),))
    cols = [r[1] for r in con.execute("PRAGMA main.table_info(runs)")]
    con.execute(f"INSERT INTO runs SELECT {', '.join(cols)} FROM src.runs")
    for table in ("metrics", "spectra", "profiles"):
        con.execute(f"INSERT INTO {table} SELECT * FROM src.{table}")
    con.commit()
    con.execute("DETACH DATABASE src")
    run_id = con.execute("SELECT run_id FROM runs").fetchone()[0]
    con.execute("PRAGMA journal_mode = DELETE")
    con.close()
    return run_id


def test_a_version_1_store_is_readable_by_every_read_only_command(tmp_path, small):
    db = tmp_path / "v1.db"
    run_id = _version_1_store(small, db)
    # the same columns as a store the released version 1 wrote (the checked-in report fixture)
    fixture = sqlite3.connect(ROOT / "tests" / "fixtures" / "report.db")
    assert [r[1] for r in sqlite3.connect(db).execute("PRAGMA table_info(runs)")] == \
        [r[1] for r in fixture.execute("PRAGMA table_info(runs)")]
    fixture.close()
    before = _sha(db)
    res = cli("show", "--db", str(db))
    assert res.returncode == 0 and run_id in res.stdout and "1 runs in" in res.stdout, res.stderr
    res = cli("show", "--trials", "--db", str(db))
    assert res.returncode == 0 and "0 tuning trials" in res.stdout, res.stderr
    res = cli("show", run_id, "--db", str(db))
    assert res.returncode == 0 and json.loads(res.stdout)["kind"] == "run", res.stderr
    res = cli("export", "--db", str(db), "--out", str(tmp_path / "e"))
    assert res.returncode == 0 and run_id in (tmp_path / "e" / "runs.csv").read_text(), res.stderr
    res = cli("report", "--db", str(db), "--out", str(tmp_path / "r"))
    assert res.returncode == 0 and run_id.split("-")[0] in (tmp_path / "r" / "index.html").read_text(), res.stderr
    assert _sha(db) == before  # read as it is: never migrated by a read
    res = cli("run", "--seeds", "0", "--models", "rnn", "--tasks", "adding", "--steps", "6", "--set", "T=5",
              "--set", "eval_size=16", "--set", "eval_every=3", "--db", str(db), "--no-report", "--workers", "1")
    assert res.returncode == 0 and "skipped 1" in res.stderr, res.stderr  # migrated on the first write open
    assert Store(db).runs()[0]["kind"] == "run"


@pytest.mark.parametrize("value", ["abc", "2.0", "", "0", "-1", " 2", "99"])
def test_a_schema_version_this_suite_does_not_know_is_refused(tmp_path, small, value):
    db = tmp_path / "s.db"
    _small_store(small, db)
    con = sqlite3.connect(db)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (value,))
    con.commit()
    con.close()
    before = _sha(db)
    commands = [["show"], ["run", "--seeds", "0", "--models", "rnn", "--tasks", "adding", "--steps", "2", "--set",
                           "T=5", "--no-report"]]
    if value in ("abc", "0"):
        commands += [["export", "--out", str(tmp_path / "e")], ["report", "--out", str(tmp_path / "r")]]
    for args in commands:
        res = cli(*args, "--db", str(db))
        assert res.returncode == 2 and "Traceback" not in res.stderr, (args, res.stderr)
        assert f"has schema version {value!r}" in res.stderr or f"schema version {value};" in res.stderr, res.stderr
    assert _sha(db) == before and not (tmp_path / "e").exists() and not (tmp_path / "r").exists()


def test_a_row_with_damaged_json_fields_is_named_not_fatal(tmp_path, small):
    db = tmp_path / "s.db"
    _small_store(small, db)
    con = sqlite3.connect(db)
    run_id = con.execute("SELECT run_id FROM runs").fetchone()[0]
    con.execute("UPDATE runs SET summary = '{\"best_val\": 0.9', env = 'not json'")
    con.commit()
    con.close()
    damaged = f"run {run_id} in {db} has damaged fields (env: not valid JSON"
    for args in (["show"], ["show", run_id], ["export", "--out", str(tmp_path / "e")],
                 ["report", "--out", str(tmp_path / "r")]):
        res = cli(*args, "--db", str(db))
        assert res.returncode == 0 and "Traceback" not in res.stderr, (args, res.stderr)
        assert damaged in res.stderr and "summary: not valid JSON" in res.stderr, res.stderr
    import pandas as pd

    runs = pd.read_csv(tmp_path / "e" / "runs.csv")
    assert runs.loc[0, "run_id"] == run_id and runs.loc[0, "damaged"].startswith("env: not valid JSON")


# ---- bad input: a clear error before any work, never a traceback -----------------------------------------
TINY_RUN = ["--seeds", "0", "--models", "scornn", "--tasks", "copying", "--no-report"]


@pytest.mark.parametrize(("args", "message"), [
    (["run", *TINY_RUN, "--db", ""], "invalid --db '': give a path, e.g. --db results/suite.db"),
    (["tune", "--models", "scornn", "--tasks", "copying", "--db", " "], "invalid --db ' '"),
    (["show", "--db", ""], "invalid --db ''"),
    (["export", "--db", ""], "invalid --db ''"),
    (["export", "--out", ""], "invalid --out ''"),
    (["report", "--db", ""], "invalid --db ''"),
    (["report", "--out", ""], "invalid --out ''"),
    (["run", *TINY_RUN, "--report-dir", ""], "invalid --report-dir ''"),
    (["run", *TINY_RUN, "--set", "hidden=1000000"], "hidden=1000000 does not fit in this machine's memory"),
    (["run", *TINY_RUN, "--dry-run", "--set", "hidden=1000000"], "does not fit in this machine's memory"),
    (["run", *TINY_RUN, "--steps", "30", "--set", "steps=20"], "--steps 30 and --set steps=20 disagree"),
    (["run", "--models", "", "--tasks", "copying"], "invalid --models '': it names no model"),
    (["run", "--models", ",", "--tasks", "copying"], "invalid --models ',': it names no model"),
    (["run", "--models", "scornn", "--tasks", " , "], "invalid --tasks ' , ': it names no task"),
    (["run", "--models", "scornn", "--tasks", "copying", "--protocols", ","], "invalid --protocols ','"),
    (["tune", "--models", "", "--tasks", "copying"], "invalid --models ''"),
])
def test_bad_input_is_refused_before_any_work(tmp_path, args, message):
    if "--db" not in args and args[0] != "show":
        args = [*args, "--db", str(tmp_path / "s.db")]
    res = cli(*args, cwd=tmp_path)
    assert res.returncode == 2, res.stderr
    assert message in res.stderr and "Traceback" not in res.stderr, res.stderr
    assert list(tmp_path.iterdir()) == []  # nothing written, in --db's folder or the working one


def test_equal_steps_given_twice_are_fine_and_more_workers_than_runs_start_no_extra_process(tmp_path):
    db = tmp_path / "s.db"
    res = cli("run", "--seeds", "0", "--models", "rnn", "--tasks", "adding", "--steps", "6", "--set", "steps=6",
              "--set", "T=5", "--set", "eval_size=16", "--db", str(db), "--no-report", "--workers", "8")
    assert res.returncode == 0, res.stderr
    assert "1 runs (1 models x 1 tasks x 1 seeds), scale quick, 1 worker(s)" in res.stderr
    assert Store(db).runs()[0]["total_steps"] == 6


# ---- a full disk: the failing write is refused whole, the message says so, the rerun resumes -------------
FULL_DISK_RUN = ["run", "--models", "scornn", "--tasks", "copying", "--steps", "120", "--set", "T=10", "--set", "K=4",
                 "--set", "hidden=128", "--set", "eval_every=20", "--set", "eval_size=64", "--set", "batch_size=8",
                 "--no-report", "--workers", "1", "--seeds", "0"]
# Runs inside a private mount namespace, on a 4 MiB tmpfs: once step 20 is committed it fills the disk,
# leaving room for the store's small writes but not for the next checkpoint (~90 KiB); then it frees the
# space and runs the same command again. Prints what it saw as JSON.
_FULL_DISK = r"""
import json, os, sqlite3, subprocess, sys, time
folder, args = sys.argv[1], json.loads(sys.argv[2])
db = os.path.join(folder, "s.db")
env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
def row():
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        r = con.execute("SELECT step, status, owner FROM runs").fetchone()
        con.close()
        return r or (-1, None, None)
    except sqlite3.Error:
        return (-1, None, None)
proc = subprocess.Popen([sys.executable, "-m", "suite", *args, "--db", db], env=env, text=True,
                        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
t0 = time.time()
while row()[0] < 20 and proc.poll() is None and time.time() - t0 < 300:
    time.sleep(0.01)
st = os.statvfs(folder)
with open(os.path.join(folder, "filler"), "wb") as f:
    f.write(b"\0" * max(0, st.f_bavail * st.f_frsize - 48 * 1024))
err1 = proc.communicate(timeout=300)[1]
after = row()
os.remove(os.path.join(folder, "filler"))
res = subprocess.run([sys.executable, "-m", "suite", *args, "--db", db], env=env, capture_output=True, text=True)
con = sqlite3.connect(db)
values = con.execute("SELECT step, name, value FROM metrics WHERE name != 'train/time' ORDER BY 1, 2").fetchall()
final = con.execute("SELECT step, status FROM runs").fetchone()
con.close()
print(json.dumps({"rc1": proc.returncode, "err1": err1, "after": after, "rc2": res.returncode, "err2": res.stderr,
                  "final": final, "values": values}))
"""


def test_a_full_disk_is_named_as_such_loses_nothing_and_the_rerun_resumes(tmp_path):
    if os.geteuid() != 0 or not shutil.which("unshare"):
        pytest.skip("needs root and unshare(1) to mount a small tmpfs")
    ref = tmp_path / "ref.db"
    res = cli(*FULL_DISK_RUN, "--db", str(ref), env=ONE_THREAD)
    assert res.returncode == 0, res.stderr
    con = sqlite3.connect(ref)
    reference = con.execute("SELECT step, name, value FROM metrics WHERE name != 'train/time' ORDER BY 1, 2").fetchall()
    con.close()
    disk = tmp_path / "disk"
    disk.mkdir()
    script = f'mount -t tmpfs -o size=4m tmpfs "{disk}" && exec "$@"'
    res = subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", sys.executable, "-c", _FULL_DISK, str(disk),
                          json.dumps(FULL_DISK_RUN)], capture_output=True, text=True, cwd=ROOT, timeout=900)
    if res.returncode != 0 and "mount" in res.stderr and "suite" not in res.stderr:
        pytest.skip(f"cannot mount a tmpfs here: {res.stderr.strip()}")
    assert res.returncode == 0, res.stderr
    seen = json.loads(res.stdout)
    assert seen["rc1"] == 2, seen["err1"]
    assert "cannot write the checkpoint" in seen["err1"] and "No space left on device" in seen["err1"], seen["err1"]
    assert "every earlier commit and its checkpoint are intact" in seen["err1"]
    assert "cannot be read" not in seen["err1"] and "Traceback" not in seen["err1"], seen["err1"]
    step, status, owner = seen["after"]
    assert step >= 20 and status == "interrupted" and owner is None  # its last commit, released
    assert seen["rc2"] == 0 and "finished 1" in seen["err2"], seen["err2"]
    assert "restarting" not in seen["err2"] and "set aside" not in seen["err2"], seen["err2"]
    assert seen["final"] == [120, "finished"] and [tuple(v) for v in seen["values"]] == reference
