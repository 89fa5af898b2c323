"""MNIST-1D (Greydanus 2020, arXiv:2011.14439; PyPI ``mnist1d``), generated offline.

``mnist1d.data.make_dataset()`` with its default arguments gives 4000 training and 1000 test sequences
of length 40 (one channel, 10 classes), deterministically. It reseeds Python's and NumPy's global
RNGs, so it runs with both states saved and restored; the result is cached on disk
(``~/.cache/ortho-rnn-suite``). ``get_dataset(download=True)`` would download: never used.
``val_size`` (500) training sequences are held out for model selection. Chance 0.1.
"""

from __future__ import annotations

import contextlib
import functools
import io
import random
from dataclasses import dataclass

import numpy as np
import torch

from suite.errors import check_range
from suite.registry import register_task
from suite.tasks.base import TenClassTask, hold_out
from suite.tasks.data import atomic_write_bytes, cache_root


@contextlib.contextmanager
def isolated_global_rngs():
    """Run code that reseeds Python's and NumPy's global RNGs without leaking that to the caller."""
    py, np_state = random.getstate(), np.random.get_state()
    try:
        yield
    finally:
        random.setstate(py)
        np.random.set_state(np_state)


@functools.cache
def generate() -> dict[str, np.ndarray]:
    from importlib.metadata import version

    path = cache_root() / f"mnist1d-{version('mnist1d')}-default.npz"
    if path.is_file():
        with np.load(path) as f:
            return dict(f)
    from mnist1d.data import get_dataset_args, make_dataset

    with isolated_global_rngs(), contextlib.redirect_stdout(io.StringIO()):
        d = make_dataset(get_dataset_args())
    arrays = {k: np.asarray(d[k]) for k in ("x", "y", "x_test", "y_test")}
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    atomic_write_bytes(path, buf.getvalue())
    return arrays


@dataclass(frozen=True)
class MNIST1D(TenClassTask):
    val_size: int = 500

    name = "mnist1d"
    d_in = 1
    length = 40

    def __post_init__(self):
        check_range("val_size", self.val_size, low=1, high=3999, where="mnist1d")

    def arrays(self, split):
        return _split(self.val_size, split)


@functools.lru_cache(maxsize=6)
def _split(val_size: int, split: str):
    d = generate()
    x, y = (d["x_test"], d["y_test"]) if split == "test" else (d["x"], d["y"])
    if split != "test":
        keep = hold_out(len(x), val_size, split, key=5, where="mnist1d").numpy()
        x, y = x[keep], y[keep]
    return (torch.from_numpy(x.astype(np.float32)).unsqueeze(-1).contiguous(),
            torch.from_numpy(y.astype(np.int64)))


@register_task
def mnist1d(val_size: int = 500):
    """MNIST-1D: 40-step 1-D digit sequences, generated offline by the mnist1d package."""
    return MNIST1D(val_size=val_size)
