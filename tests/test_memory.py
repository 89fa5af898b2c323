"""suite.memory: a freed step-sized buffer is reused without page faults, freed memory goes back to the
system between runs, memory stays bounded over many real training steps, and SUITE_MALLOC=system
opts out (a bad value is refused). Each case runs in a fresh interpreter (the setting
is per process and cannot be undone)."""

import json
import os
import platform
import subprocess
import sys

import pytest

from tests.helpers import cli

FAULTS = """
import json, resource, torch
from suite.memory import keep_freed_memory
on = keep_freed_memory()
def step():  # a 64 MiB buffer, written in full, then freed: what every training step does
    torch.empty(16 * 2**20).fill_(1.0)
for _ in range(10):  # glibc settles its free lists over the first few rounds
    step()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(5):
    step()
print(json.dumps({"on": on, "faults": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 5}))
"""

GROWTH = """
import json, resource, torch
from suite.config import RunConfig
from suite.memory import keep_freed_memory
from suite.runner import build, make_optimizers, train_step
keep_freed_memory()
config = RunConfig(model="gru", task="copying", hidden=190, batch_size=32, task_options={"T": 300})
task, model = build(config)
opts = make_optimizers(model, config)
rss = []
for step in range(1, 61):
    train_step(model, opts, task, *task.train_batch(step, 32, 0), step)
    if step in (20, 60):
        rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print(json.dumps({"rss": rss}))
"""

RELEASE = """
import json, torch
from suite.memory import keep_freed_memory, release_freed_memory
def rss():
    return next(int(l.split()[1]) for l in open("/proc/self/status") if l.startswith("VmRSS:")) // 1024
keep_freed_memory()
base = rss()
torch.empty(64 * 2**20).fill_(1.0)  # 256 MiB, written, freed: kept by the process
kept = rss()
release_freed_memory()  # what the runner does before each run
print(json.dumps({"base": base, "kept": kept, "released": rss()}))
"""

pytestmark = pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the setting tunes glibc's malloc")


def probe(code: str, *args, **env) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_freed_buffers_are_reused_without_page_faults():
    kept, system = probe(FAULTS), probe(FAULTS, SUITE_MALLOC="system")
    assert kept["on"] and not system["on"]
    pages = 64 * 2**20 / 4096
    assert system["faults"] > 0.5 * pages  # glibc's default: every step faults the buffer in again
    assert kept["faults"] < 0.05 * pages


def test_memory_stays_bounded_over_real_training_steps():
    early, late = probe(GROWTH)["rss"]
    assert late <= 1.1 * early, f"peak RSS grew from {early} to {late} KiB between steps 20 and 60"


def test_freed_memory_is_released_between_runs():
    """So that a run's recorded peak memory is its own, not an earlier run's of the same worker."""
    m = probe(RELEASE)
    assert m["kept"] > m["base"] + 200, m  # MiB: the freed buffer stays resident within a run
    assert m["released"] < m["base"] + 50, m


def test_a_bad_setting_is_refused_before_anything_runs(tmp_path):
    res = cli("run", "--models", "rnn", "--tasks", "copying", "--steps", "2", "--db", str(tmp_path / "s.db"),
              env={"SUITE_MALLOC": "off"})
    assert res.returncode == 2 and "SUITE_MALLOC='off'" in res.stderr and "keep, system" in res.stderr
    assert not (tmp_path / "s.db").exists()
