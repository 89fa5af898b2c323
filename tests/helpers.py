"""Small real configurations and a CLI runner for the store/runner tests."""

import os
import subprocess
import sys
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
