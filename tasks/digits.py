"""8x8 handwritten digits read pixel by pixel: a small real-data task that works offline.

The data are scikit-learn's bundled copy of the UCI optical-recognition digits test set
(``sklearn.datasets.load_digits``: 1,797 images of 8x8 pixels with values 0-16, 10 classes; Alpaydin &
Kaynak 1998), shipped inside the scikit-learn wheel, so nothing is downloaded. Each image is a
sequence of T = 64 steps of one pixel (row by row), scaled to [0, 1]; classify from the last state;
chance 0.1.

Splits (fixed, identical for every model and seed): ``test_size`` (360) images form the test set and
``val_size`` (180) more the validation set, both drawn by one fixed permutation of the 1,797 indices
(``tasks.base.generator(6)``); the rest (1,257) train. ``pdigits`` reads the pixels in the fixed order
``numpy.random.RandomState(92916).permutation(64)``, the seed permuted MNIST uses in the suite.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from suite.errors import ConfigError, check_range
from suite.registry import register_task
from suite.tasks.base import TenClassTask, generator

PERMUTATION_SEED = 92916
N_IMAGES = 1797


@functools.cache
def load() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.data.astype(np.float32) / 16.0, d.target.astype(np.int64)


def permutation() -> np.ndarray:
    """The fixed pixel order of ``pdigits``."""
    return np.random.RandomState(PERMUTATION_SEED).permutation(64)


@dataclass(frozen=True)
class PixelDigits(TenClassTask):
    permuted: bool = False
    val_size: int = 180
    test_size: int = 360

    d_in = 1
    length = 64

    @property
    def name(self):
        return "pdigits" if self.permuted else "digits"

    def __post_init__(self):
        check_range("val_size", self.val_size, low=1, where=self.name)
        check_range("test_size", self.test_size, low=1, where=self.name)
        if self.val_size + self.test_size >= N_IMAGES:
            raise ConfigError(f"invalid val_size={self.val_size} with test_size={self.test_size} for {self.name}: "
                              f"together they must leave training images of the {N_IMAGES}")

    def arrays(self, split):
        return _split(self, split)


@functools.lru_cache(maxsize=6)
def _split(task: PixelDigits, split: str):
    x, y = load()
    order = torch.randperm(len(x), generator=generator(6)).numpy()
    test, val = order[: task.test_size], order[task.test_size: task.test_size + task.val_size]
    rows = {"test": test, "val": val, "train": np.sort(order[task.test_size + task.val_size:])}[split]
    seq = x[rows]
    if task.permuted:
        seq = seq[:, permutation()]
    return torch.from_numpy(np.ascontiguousarray(seq)).unsqueeze(-1), torch.from_numpy(y[rows])


@register_task
def digits(val_size: int = 180, test_size: int = 360):
    """8x8 digits (scikit-learn's bundled set) pixel by pixel: 64 steps, classify at the end; offline."""
    return PixelDigits(permuted=False, val_size=val_size, test_size=test_size)


@register_task
def pdigits(val_size: int = 180, test_size: int = 360):
    """Permuted 8x8 digits, pixel order RandomState(92916).permutation(64); offline."""
    return PixelDigits(permuted=True, val_size=val_size, test_size=test_size)
