"""suite.memory: a freed step-sized buffer is reused without page faults, the process's memory stays
bounded over many real training steps, and SUITE_MALLOC=system opts out. Each case runs in a fresh
interpreter (the setting is per process and cannot be undone)."""

import json
import os
import subprocess
import sys

import pytest

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
from suite.runner import build, make_optimizers, train_step
config = RunConfig(model="gru", task="copying", hidden=190, batch_size=32, task_options={"T": 300})
task, model = build(config)  # build() applies the setting
opts = make_optimizers(model, config)
rss = []
for step in range(1, 61):
    train_step(model, opts, task, *task.train_batch(step, 32, 0), step)
    if step in (20, 60):
        rss.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
print(json.dumps({"rss": rss}))
"""

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc's malloc")


def probe(code: str, **env) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                         env={**os.environ, "OMP_NUM_THREADS": "1", **env})
    return json.loads(out.stdout)


def test_freed_buffers_are_reused_without_page_faults():
    kept, system = probe(FAULTS), probe(FAULTS, SUITE_MALLOC="system")
    assert kept["on"] and not system["on"]
    pages = 64 * 2**20 / 4096
    assert system["faults"] > 0.5 * pages  # glibc's default: every step faults the buffer in again
    assert kept["faults"] < 0.05 * pages


def test_memory_stays_bounded_over_real_training_steps():
    early, late = probe(GROWTH)["rss"]
    assert late <= 1.1 * early, f"peak RSS grew from {early} to {late} KiB between steps 20 and 60"
