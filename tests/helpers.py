"""Small real configurations and a CLI runner for the store/runner tests."""

import contextlib
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

from suite.config import RunConfig

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
