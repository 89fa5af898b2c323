"""The task contract, and the seeding that makes every batch a pure function of (seed, step).

A task is a frozen dataclass (its fields are the task's options) with:
- ``train_batch(step, batch_size, seed)``: the training batch at ``step`` (1-based), the same batch for
  the same arguments in any process, so a resumed run sees exactly the data it would have seen;
- ``eval_batches(split, batch_size)`` over fixed "val" and "test" sets, identical for every model and
  seed (model selection uses "val"; the suite reports "test" at the best "val" evaluation);
- ``loss(out, y)`` (a scalar to minimize) and ``scores(out, y)`` (sums and counts, so evaluation can
  run in chunks), ``metric`` (the headline score) with ``higher_is_better``;
- ``baseline()``: the memoryless baseline's loss and metric;
- ``check()``: raises ``DataMissingError`` before any training if the data are not there.
Synthetic tasks are built on pure data functions that take an explicit ``torch.Generator``.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar

import torch

from suite.errors import ConfigError, check_choice

SPLITS = ("val", "test")
_GOLDEN = 0x9E3779B97F4A7C15


def generator(*keys: int) -> torch.Generator:
    """A CPU generator seeded from integer keys (seed, step, ...) by a fixed mixing rule."""
    state = 0x2545F4914F6CDD1D
    for k in keys:
        state = ((state ^ (k & 0xFFFFFFFFFFFFFFFF)) * _GOLDEN + 0x632BE59BD9B4E019) % (1 << 64)
        state ^= state >> 29
    return torch.Generator().manual_seed(state % (1 << 63))


@dataclass(frozen=True)
class Task:
    name: ClassVar[str]
    output: ClassVar[str]  # "sequence" (per-step outputs) or "last"
    metric: ClassVar[str]
    higher_is_better: ClassVar[bool]

    @property
    def d_in(self) -> int:
        raise NotImplementedError

    @property
    def d_out(self) -> int:
        raise NotImplementedError

    @property
    def length(self) -> int:
        """Sequence length fed to the model."""
        raise NotImplementedError

    def check(self) -> None:
        """Raise DataMissingError if the data cannot be had; synthetic tasks always pass."""

    def train_batch(self, step: int, batch_size: int, seed: int):
        raise NotImplementedError

    def eval_batches(self, split: str, batch_size: int) -> Iterator:
        raise NotImplementedError

    def loss(self, out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def scores(self, out: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[float, int]]:
        raise NotImplementedError

    def baseline(self) -> dict[str, float]:
        raise NotImplementedError


@dataclass(frozen=True)
class SyntheticTask(Task):
    """Fresh samples every step; fixed val/test sets drawn from seeds no training batch uses."""

    eval_size: int = 1000

    def sample(self, gen: torch.Generator, batch_size: int):
        raise NotImplementedError

    def train_batch(self, step, batch_size, seed):
        return self.sample(generator(1, seed, step), batch_size)

    def eval_batches(self, split, batch_size):
        check_choice("split", split, SPLITS)
        x, y = _eval_set(self, split)
        for i in range(0, len(x), batch_size):
            yield x[i: i + batch_size], y[i: i + batch_size]


@functools.lru_cache(maxsize=8)
def _eval_set(task: SyntheticTask, split: str):
    return task.sample(generator(2, SPLITS.index(split)), task.eval_size)


@dataclass(frozen=True)
class DatasetTask(Task):
    """A fixed training set visited in epochs; each epoch's order is a pure function of (seed, epoch)."""

    def arrays(self, split: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(inputs (N, T, d_in) float32, targets) for split in train/val/test."""
        raise NotImplementedError

    def train_batch(self, step, batch_size, seed):
        x, y = self.arrays("train")
        per_epoch = max(1, len(x) // batch_size)
        epoch, i = divmod(step - 1, per_epoch)
        idx = _epoch_order(len(x), seed, epoch)[i * batch_size: (i + 1) * batch_size]
        return x[idx], y[idx]

    def eval_batches(self, split, batch_size):
        check_choice("split", split, SPLITS)
        x, y = self.arrays(split)
        for i in range(0, len(x), batch_size):
            yield x[i: i + batch_size], y[i: i + batch_size]


@dataclass(frozen=True)
class TenClassTask(DatasetTask):
    """Classify a sequence into 10 classes from its last step; chance (and memoryless) accuracy 0.1."""

    output = "last"
    metric = "accuracy"
    higher_is_better = True
    d_out = 10

    def loss(self, out, y):
        return torch.nn.functional.cross_entropy(out, y)

    def scores(self, out, y):
        return classification_scores(out, y)

    def baseline(self):
        return {"loss": math.log(10), "accuracy": 0.1}


def hold_out(n: int, val_size: int, split: str, key: int, where: str) -> torch.Tensor:
    """Row indices of ``split`` ("train" or "val") when ``val_size`` of ``n`` training rows, chosen by
    a fixed permutation, are held out for validation."""
    if val_size >= n:
        raise ConfigError(f"invalid val_size={val_size} for {where}: must be below the {n} training rows")
    order = torch.randperm(n, generator=generator(key))
    return order[:val_size] if split == "val" else order[val_size:].sort().values


@functools.lru_cache(maxsize=4)
def _epoch_order(n: int, seed: int, epoch: int) -> torch.Tensor:
    return torch.randperm(n, generator=generator(3, seed, epoch))


def classification_scores(logits: torch.Tensor, y: torch.Tensor) -> dict[str, tuple[float, int]]:
    n = y.numel()
    loss = torch.nn.functional.cross_entropy(logits.reshape(n, -1), y.reshape(n), reduction="sum")
    correct = (logits.argmax(-1) == y).sum()
    return {"loss": (loss.item(), n), "accuracy": (correct.item(), n)}
