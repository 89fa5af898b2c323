"""The adding problem (Hochreiter & Schmidhuber 1997; Arjovsky et al. 2016 conventions).

Two channels over T steps: values ~ U(0, 1) and a marker channel with one mark in
[0, floor((T-1)/2)) and one in [floor((T-1)/2), T). Target: the sum of the two marked values, predicted
at the last step; loss and metric MSE. Memoryless baseline: always predict 1, MSE = Var(U1 + U2) = 1/6.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from suite.errors import check_range
from suite.registry import register_task
from suite.tasks.base import SyntheticTask


def adding_batch(gen: torch.Generator, batch_size: int, T: int):
    """(x (B, T, 2) float32, y (B, 1) float32)."""
    values = torch.rand(batch_size, T, generator=gen)
    half = (T - 1) // 2
    first = torch.randint(0, half, (batch_size,), generator=gen)
    second = torch.randint(half, T, (batch_size,), generator=gen)
    marks = torch.zeros(batch_size, T)
    rows = torch.arange(batch_size)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    y = (values * marks).sum(1, keepdim=True)
    return torch.stack([values, marks], dim=-1), y


@dataclass(frozen=True)
class Adding(SyntheticTask):
    T: int = 200

    name = "adding"
    output = "last"
    metric = "mse"
    higher_is_better = False
    d_in = 2
    d_out = 1

    def __post_init__(self):
        check_range("T", self.T, low=3, where="adding (two marks need T >= 3)")
        check_range("eval_size", self.eval_size, low=1, where="adding")

    @property
    def length(self):
        return self.T

    def sample(self, gen, batch_size):
        return adding_batch(gen, batch_size, self.T)

    def loss(self, out, y):
        return torch.nn.functional.mse_loss(out, y)

    def scores(self, out, y):
        se = torch.nn.functional.mse_loss(out, y, reduction="sum").item()
        return {"loss": (se, y.numel()), "mse": (se, y.numel())}

    def baseline(self):
        return {"loss": 1 / 6, "mse": 1 / 6}


@register_task
def adding(T: int = 200, eval_size: int = 1000):
    """Adding problem: sum the two marked values of a length-T sequence."""
    return Adding(T=T, eval_size=eval_size)
