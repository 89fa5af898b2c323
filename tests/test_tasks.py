"""Tasks: data layouts, baselines, purity in (seed, step), and the file loaders on tiny real files."""

import gzip
import math
import random

import numpy as np
import pytest
import torch

from suite.errors import ConfigError, DataError, DataMissingError
from suite.registry import create_task
from suite.tasks.adding import adding_batch
from suite.tasks.copying import copying_batch
from suite.tasks.data import read_idx, write_idx
from tests.helpers import write_mnist, write_timit


@pytest.mark.parametrize("layout", ["A", "B"])
def test_copying_layouts(layout):
    T, K = 7, 4
    x, y = copying_batch(torch.Generator().manual_seed(0), 3, T, K, layout)
    tokens = x.argmax(-1)
    assert x.shape == (3, T + 2 * K, 10) and y.shape == (3, T + 2 * K)
    s = tokens[:, :K]
    assert ((s >= 1) & (s <= 8)).all()
    marker = K + T - 1 if layout == "A" else K + T
    expected = torch.zeros_like(tokens)
    expected[:, :K] = s
    expected[:, marker] = 9
    assert torch.equal(tokens, expected)
    assert torch.equal(y[:, : T + K], torch.zeros(3, T + K, dtype=torch.long))
    assert torch.equal(y[:, T + K:], s)


@pytest.mark.parametrize(("T", "published"), [(100, 0.1733), (200, 0.0945), (1000, 0.02039), (2000, 0.01029)])
def test_copying_baseline_matches_reference(T, published):
    """The copying baseline: K log 8 / (T + 2K) (Arjovsky et al., arXiv:1511.06464)."""
    assert create_task("copying", T=T).baseline()["loss"] == pytest.approx(published, abs=5e-5)


def test_copying_baseline_is_what_the_memoryless_strategy_scores():
    task = create_task("copying", T=20, K=10, eval_size=2000)
    x, y = next(task.eval_batches("test", 2000))
    logits = torch.full((*y.shape, 9), -1e9)
    logits[:, : 20 + 10, 0] = 0.0  # certain blank ...
    logits[:, 30:, 1:] = 0.0  # ... then uniform over the 8 symbols
    assert task.loss(logits, y).item() == pytest.approx(task.baseline()["loss"], rel=1e-6)


def test_adding_marks_and_target():
    T = 11
    x, y = adding_batch(torch.Generator().manual_seed(1), 500, T)
    marks = x[..., 1]
    assert torch.equal(marks.sum(1), torch.full((500,), 2.0))
    half = (T - 1) // 2
    first = marks[:, :half].argmax(1)
    assert (marks[:, :half].sum(1) == 1).all() and (marks[:, half:].sum(1) == 1).all()
    assert torch.allclose(y[:, 0], (x[..., 0] * marks).sum(1))
    assert (first < half).all()


def test_adding_baseline_is_one_sixth():
    task = create_task("adding", T=50, eval_size=20000)
    _, y = next(task.eval_batches("test", 20000))
    assert task.loss(torch.ones_like(y), y).item() == pytest.approx(1 / 6, abs=0.01)
    assert task.baseline()["mse"] == pytest.approx(1 / 6)


@pytest.mark.parametrize("name", ["copying", "adding", "mnist1d"])
def test_batches_are_pure_in_seed_and_step_and_leave_global_rng_alone(name, isolated_cache):
    task = create_task(name)
    torch.manual_seed(0)
    before = torch.random.get_rng_state()
    np_before, py_before = np.random.get_state()[1].copy(), random.getstate()
    a = task.train_batch(5, 8, seed=1)
    b = task.train_batch(5, 8, seed=1)
    c = task.train_batch(6, 8, seed=1)
    d = task.train_batch(5, 8, seed=2)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])
    assert not torch.equal(a[0], c[0]) and not torch.equal(a[0], d[0])
    assert torch.equal(torch.random.get_rng_state(), before)
    assert np.array_equal(np.random.get_state()[1], np_before) and random.getstate() == py_before


def test_eval_sets_are_fixed_and_distinct():
    task = create_task("copying", T=5, eval_size=64)
    v1 = next(task.eval_batches("val", 64))[0]
    v2 = next(create_task("copying", T=5, eval_size=64).eval_batches("val", 64))[0]
    t = next(task.eval_batches("test", 64))[0]
    assert torch.equal(v1, v2) and not torch.equal(v1, t)
    with pytest.raises(ConfigError, match="split"):
        next(task.eval_batches("train", 4))


def test_mnist1d_isolates_global_rngs_and_splits(isolated_cache):
    from suite.tasks import mnist1d

    mnist1d.generate.cache_clear()  # generate for real, into the fresh cache folder
    mnist1d._split.cache_clear()
    random.seed(7)
    np.random.seed(7)
    py, npst = random.getstate(), np.random.get_state()[1].copy()
    task = create_task("mnist1d", val_size=500)
    xtr, ytr = task.arrays("train")
    xva, _ = task.arrays("val")
    xte, _ = task.arrays("test")
    assert random.getstate() == py and np.array_equal(np.random.get_state()[1], npst)
    assert (len(xtr), len(xva), len(xte)) == (3500, 500, 1000)
    assert xtr.shape[1:] == (40, 1) and set(ytr.unique().tolist()) == set(range(10))
    assert any(p.name.startswith("mnist1d") for p in isolated_cache.rglob("*.npz"))
    # train and val are disjoint rows of the generated training set
    rows = {tuple(r.flatten().tolist()) for r in xva}
    assert not any(tuple(r.flatten().tolist()) in rows for r in xtr[:500])


# ---- MNIST from tiny IDX files written in the real format ----------------------------------------
def test_idx_header_is_the_real_format(tmp_path):
    arr = np.arange(2 * 3 * 4, dtype=np.uint8).reshape(2, 3, 4)
    write_idx(tmp_path / "a-idx3-ubyte.gz", arr)
    raw = gzip.decompress((tmp_path / "a-idx3-ubyte.gz").read_bytes())
    assert raw[:4] == bytes([0, 0, 8, 3]) and int.from_bytes(raw[4:8], "big") == 2
    assert np.array_equal(read_idx(tmp_path / "a-idx3-ubyte.gz"), arr)
    (tmp_path / "bad").write_bytes(b"\x01\x02\x03\x04")
    with pytest.raises(ValueError, match="not an IDX"):
        read_idx(tmp_path / "bad")


@pytest.mark.parametrize("gz", [True, False])
def test_mnist_and_pmnist_from_idx_files(tmp_path, gz):
    imgs = write_mnist(tmp_path / "mnist", gz=gz)
    m = create_task("mnist", data_dir=str(tmp_path), val_size=8, download=False)
    p = create_task("pmnist", data_dir=str(tmp_path), val_size=8, download=False)
    m.check()
    xtr, ytr = m.arrays("train")
    xva, _ = m.arrays("val")
    xte, yte = m.arrays("test")
    assert (len(xtr), len(xva), len(xte)) == (32, 8, 12)
    assert xtr.shape[1:] == (784, 1) and xtr.min() >= 0 and xtr.max() <= 1
    # rows come from the file, scaled to [0, 1]
    all_rows = torch.from_numpy(imgs.reshape(40, 784).astype(np.float32) / 255)
    assert all(any(torch.equal(r, a) for a in all_rows) for r in xtr[:, :, 0])
    perm = torch.from_numpy(np.random.RandomState(92916).permutation(784))
    assert torch.equal(p.arrays("train")[0][:, :, 0], xtr[:, perm, 0])
    x, y = m.train_batch(1, 4, seed=0)
    assert x.shape == (4, 784, 1) and y.dtype == torch.int64


def test_mnist_missing_files_error_names_files_and_folder(tmp_path):
    task = create_task("mnist", data_dir=str(tmp_path), download=False)
    with pytest.raises(DataMissingError) as e:
        task.check()
    msg = str(e.value)
    assert str(tmp_path / "mnist") in msg
    for f in ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte",
              "t10k-labels-idx1-ubyte"):
        assert f in msg


def test_mnist_download_failure_explains_itself(tmp_path, monkeypatch):
    # no network to the mirrors here: the real download attempt must fail cleanly
    monkeypatch.setattr("suite.tasks.mnist.MIRRORS", ("http://127.0.0.1:9/",))
    with pytest.raises(DataMissingError, match="Download failed"):
        create_task("mnist", data_dir=str(tmp_path)).check()


def test_mnist_val_size_too_large(tmp_path):
    write_mnist(tmp_path / "mnist")
    with pytest.raises(ConfigError, match="val_size=40"):
        create_task("mnist", data_dir=str(tmp_path), val_size=40, download=False).arrays("train")


# ---- TIMIT from tiny arrays in the documented format -----------------------------------------------
def test_timit_masked_mse_ignores_padding(tmp_path):
    write_timit(tmp_path / "timit")
    task = create_task("timit", data_dir=str(tmp_path))
    task.check()
    x, y = task.arrays("test")
    assert x.shape == (3, 7, 129) and y.shape == (3, 7, 129)
    valid = ~torch.isnan(y[..., 0])
    assert valid.sum(1).tolist() == [4, 2, 7]
    perfect = torch.nan_to_num(y)
    assert task.loss(perfect, y).item() == 0.0
    garbage = perfect.clone()
    garbage[~valid] = 1e6  # predictions on padded frames do not count
    assert task.loss(garbage, y).item() == 0.0
    off = perfect + 2.0
    assert task.loss(off, y).item() == pytest.approx(4.0)
    expected = float(((x - torch.nan_to_num(y))[valid] ** 2).mean())
    assert task.baseline()["mse"] == pytest.approx(expected, rel=1e-5)


def test_timit_missing_and_malformed(tmp_path):
    with pytest.raises(DataMissingError, match="train.npz"):
        create_task("timit", data_dir=str(tmp_path)).check()
    (tmp_path / "timit").mkdir()
    for split in ("train", "val", "test"):
        np.savez(tmp_path / "timit" / f"{split}.npz", x=np.zeros((2, 5, 64), np.float32),
                 lengths=np.array([5, 5]))
    with pytest.raises(DataError, match=r"expected \(N, T_max, 129\)"):
        create_task("timit", data_dir=str(tmp_path)).check()


@pytest.mark.parametrize(("name", "kwargs", "match"), [
    ("copying", {"T": 0}, "T=0"), ("copying", {"layout": "C"}, "layout='C'"),
    ("adding", {"T": 2}, "T=2"), ("mnist1d", {"val_size": 4000}, "val_size=4000"),
    ("copying", {"T": "long"}, "T='long'"),
])
def test_bad_task_options(name, kwargs, match):
    with pytest.raises(ConfigError, match=match):
        create_task(name, **kwargs)


def test_task_lengths():
    assert create_task("copying", T=100).length == 120
    assert create_task("mnist1d").length == 40
    assert math.isclose(create_task("copying", T=100).baseline()["recall_accuracy"], 1 / 8)
