"""Small real configurations, a CLI runner and tiny data files in the real formats, for the tests."""

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from suite.config import RunConfig
from suite.tasks.data import write_idx

ROOT = Path(__file__).resolve().parent.parent


def tiny(model="scornn", task="copying", seed=0, steps=40, **kw) -> RunConfig:
    task_opts = {"copying": {"T": 8, "K": 3, "eval_size": 64}, "adding": {"T": 10, "eval_size": 64},
                 "mnist1d": {}}.get(task, {})
    task_opts.update(kw.pop("task_options", {}))
    return RunConfig(model=model, task=task, seed=seed, steps=steps, batch_size=8, hidden=kw.pop("hidden", 12),
                     eval_every=kw.pop("eval_every", 10), eval_batch_size=64,
                     task_options=tuple(sorted(task_opts.items())), **kw)


def cli(*args, env=None, **kw) -> subprocess.CompletedProcess:
    e = dict(os.environ, PYTHONUNBUFFERED="1", **(env or {}))
    return subprocess.run([sys.executable, "-m", "suite", *args], capture_output=True, text=True,
                          cwd=kw.pop("cwd", ROOT), env=e, **kw)


def committed_step(db) -> int:
    """The one run's committed step, read without taking a lock (-1: no run, or the store is busy)."""
    try:
        con = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1)
        row = con.execute("SELECT step FROM runs").fetchone()
        con.close()
        return row[0] if row else -1
    except sqlite3.Error:
        return -1


def wait_running(db, proc, n, at_least, timeout=180) -> None:
    """Wait until ``n`` runs of the store are `running` at step ``at_least`` or later."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert proc.poll() is None, proc.communicate()
        try:
            con = sqlite3.connect(db, timeout=1)
            steps = [r[0] for r in con.execute("SELECT step FROM runs WHERE status = 'running'")]
            con.close()
        except sqlite3.OperationalError:
            steps = []
        if len(steps) >= n and min(steps) >= at_least:
            return
        time.sleep(0.05)
    raise AssertionError("the runs did not progress")


def children(pid: int) -> list[int]:
    """The live child processes of ``pid`` (Linux /proc)."""
    out = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[1]) == pid and fields[0] not in "ZX":
                out.append(int(d.name))
    return out


def running(pid: int) -> bool:
    """Whether ``pid`` is a process that has not ended (a zombie has ended)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in "ZX"


def wait_gone(pids, timeout: float) -> float:
    """Seconds until every process of ``pids`` has ended; AssertionError (after killing the rest, so no
    test leaves a process behind) if some still run after ``timeout``."""
    import signal

    t0 = time.time()
    while time.time() - t0 < timeout:
        if not any(running(p) for p in pids):
            return time.time() - t0
        time.sleep(0.05)
    left = [p for p in pids if running(p)]
    for p in left:
        with contextlib.suppress(ProcessLookupError):
            os.kill(p, signal.SIGKILL)
    raise AssertionError(f"processes {left} still ran {timeout} s later")


# ---- tiny data files in the real formats (MNIST's IDX, the documented TIMIT arrays) ---------------------
def write_mnist(folder, n_train=40, n_test=12, gz=True):
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True, exist_ok=True)
    sfx = ".gz" if gz else ""
    imgs = rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8)
    write_idx(folder / f"train-images-idx3-ubyte{sfx}", imgs)
    write_idx(folder / f"train-labels-idx1-ubyte{sfx}", rng.integers(0, 10, n_train, dtype=np.uint8))
    write_idx(folder / f"t10k-images-idx3-ubyte{sfx}", rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8))
    write_idx(folder / f"t10k-labels-idx1-ubyte{sfx}", rng.integers(0, 10, n_test, dtype=np.uint8))
    return imgs


def write_timit(folder, lengths=(5, 3, 8), T_max=8):
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(1)
    for split in ("train", "val", "test"):
        x = rng.normal(size=(len(lengths), T_max, 129)).astype(np.float32)
        for i, n in enumerate(lengths):
            x[i, n:] = 0.0
        np.savez(folder / f"{split}.npz", x=x, lengths=np.array(lengths))


def store_values(db) -> list[tuple]:
    """Every record of a store but the wall-clock ones, in key order (to compare two stores' contents)."""
    con = sqlite3.connect(db)
    rows = con.execute("SELECT 'm', step, name, value FROM metrics WHERE name != 'train/time' UNION ALL "
                       "SELECT 's', step, '', eigenvalues FROM spectra UNION ALL "
                       "SELECT 'p', step, '', grad_norms FROM profiles ORDER BY 1, 2, 3").fetchall()
    con.close()
    return rows
