"""Speed targets, measured side by side (pytest-benchmark; CI does not run this folder).

    .venv/bin/python -m pytest benchmarks --benchmark-enable -s

A training step of any orthogonal model at n=190, T=1000, B=32 costs at most 1.2x torch.nn.RNN of
the same size on CPU; the fused engine at most 0.9x nn.RNN(tanh) on CPU; on a GPU, the Triton engine
within 1.5x of cuDNN nn.RNN(relu) at B=128; every mission model within 1.5x of its own floor. The ratio tables come from
one interleaved run each (suite.speed.measure); `suite speed` prints the same tables.
"""

import pytest
import torch

from suite.registry import MODELS, list_models
from suite.speed import FLOOR_LIMIT, SpeedCase, build, format_table, speed_table, step_fn, targets

DEVICE = "cuda" if torch.cuda.is_available() else "cpu"
TARGET = targets("gpu" if DEVICE == "cuda" else "cpu")
CASE = SpeedCase(**TARGET["case"], device=DEVICE)
# from the registry's data: the 1.2x target is for the orthogonal models; the others are reference rows
ORTHOGONAL = [e.name for e in MODELS.entries() if e.info.constraint == "orthogonal"]
OTHERS = [e.name for e in MODELS.entries() if e.info.constraint != "orthogonal"]


@pytest.mark.parametrize("name", [TARGET["baseline"]] + ORTHOGONAL + OTHERS)
def test_train_step(benchmark, name):
    step = step_fn(build(name, CASE), CASE)
    benchmark.group = f"train step n={CASE.n} T={CASE.T} B={CASE.B} {CASE.device}"
    benchmark.pedantic(step, rounds=3, warmup_rounds=1)


def test_orthogonal_models_within_1_2x_of_nn_rnn():
    rows = speed_table(ORTHOGONAL + OTHERS, CASE, TARGET["baseline"], rounds=3)
    print("\n" + format_table(rows, CASE, TARGET["baseline"]))
    slow = {r["model"]: round(r["ratio"], 2) for r in rows if r["model"] in ORTHOGONAL and r["ratio"] > 1.2}
    assert not slow, f"orthogonal models over 1.2x {TARGET['baseline']}: {slow}"


def test_fused_recurrence_targets():
    rows = speed_table(TARGET["models"], CASE, TARGET["baseline"], rounds=3)
    print("\n" + format_table(rows, CASE, TARGET["baseline"]))
    ratios = {r["model"]: r["ratio"] for r in rows}
    missed = {m: round(ratios[m], 2) for m, limit in TARGET["limit"].items() if ratios[m] > limit}
    assert not missed, f"over target: {missed} (limits {TARGET['limit']})"


@pytest.mark.parametrize("case", [CASE, SpeedCase(n=190, T=120, B=128, device=DEVICE)], ids=["T1000-B32", "copying"])
def test_every_mission_model_within_its_floor(case):
    """Every mission model's training step within FLOOR_LIMIT x its own floor (the GEMMs it cannot avoid
    and W's map), at the default case and at the copying setting (length 100 + 20, batch 128)."""
    rows = speed_table(list_models(mission=True), case, TARGET["baseline"], rounds=3)
    print("\n" + format_table(rows, case, TARGET["baseline"]))
    over = {r["model"]: round(r["floor_ratio"], 2) for r in rows  # the baseline row is a reference only
            if r["model"] != TARGET["baseline"] and r["floor_ratio"] is not None and r["floor_ratio"] > FLOOR_LIMIT}
    assert not over, f"over {FLOOR_LIMIT}x the floor: {over}"
