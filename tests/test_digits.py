"""The offline real-data task: scikit-learn's 8x8 digits, pixel by pixel, plain and permuted."""

import numpy as np
import pytest
import torch

from suite.config import RunConfig
from suite.errors import ConfigError
from suite.registry import create_task
from suite.runner import execute
from suite.store import Store
from suite.tasks.digits import load, permutation


def test_splits_are_fixed_disjoint_and_cover_the_data():
    task = create_task("digits")
    xs = {s: task.arrays(s)[0] for s in ("train", "val", "test")}
    assert {s: tuple(x.shape) for s, x in xs.items()} == {
        "train": (1257, 64, 1), "val": (180, 64, 1), "test": (360, 64, 1)}
    assert all(x.dtype == torch.float32 and x.min() >= 0 and x.max() <= 1 for x in xs.values())
    rows = {tuple(r.flatten().tolist()) for x in xs.values() for r in x}
    pixels, _ = load()
    assert len(rows) == len({tuple(r) for r in pixels})  # every distinct image, each in one split
    # the same split in a fresh task object (a pure function of the options)
    torch.testing.assert_close(create_task("digits").arrays("val")[0], xs["val"], rtol=0, atol=0)
    labels = task.arrays("test")[1]
    assert set(labels.tolist()) == set(range(10))


def test_permuted_reads_pixels_in_the_documented_fixed_order():
    perm = permutation()
    assert sorted(perm.tolist()) == list(range(64))
    np.testing.assert_array_equal(perm, np.random.RandomState(92916).permutation(64))
    plain, permuted = create_task("digits"), create_task("pdigits")
    x, y = plain.arrays("test")
    xp, yp = permuted.arrays("test")
    torch.testing.assert_close(xp, x[:, torch.from_numpy(perm)], rtol=0, atol=0)
    assert torch.equal(y, yp)


def test_bad_split_sizes_name_the_value():
    with pytest.raises(ConfigError, match=r"invalid val_size=1500 with test_size=360 for digits"):
        create_task("digits", val_size=1500)
    with pytest.raises(ConfigError, match=r"invalid test_size=0"):
        create_task("pdigits", test_size=0)


def test_a_short_real_run_learns_digits_well_above_chance(tmp_path):
    store = Store(tmp_path / "s.db")
    config = RunConfig(model="gru", task="digits", steps=150, batch_size=32, hidden=32, lr=1e-2,
                       optimizer="adam", eval_every=150, eval_batch_size=500)
    out = execute(config, store, device="cpu")
    assert out.status == "finished"
    assert out.summary["best_val"] > 0.5  # chance is 0.1
