"""Copying memory (Hochreiter & Schmidhuber 1997; the uRNN/EURNN/scoRNN/expRNN benchmark).

Inputs: 10 classes (0 blank, 1-8 data, 9 marker), one-hot; outputs: 9 classes (0-8) at every step.
K data symbols ~ U{1..8}; total length T + 2K.
Layout A (Arjovsky, Wisdom, EURNN, scoRNN; default): x = [s, 0 x (T-1), 9, 0 x K],
    y = [0 x (T+K), s]: the marker comes one step before the first recall step.
Layout B (expRNN, geotorch): x = [s, 0 x T, 9, 0 x (K-1)], y = [0 x (K+T), s]: marker on the first
    recall step.
Loss: mean cross-entropy over all steps. Memoryless baseline: output blank, then uniform over the 8
symbols on the K recall steps: K log 8 / (T + 2K) (T=1000: 0.02039). Accuracy is reported over all
steps ("accuracy") and over the K recall steps ("recall_accuracy", the headline; baseline 1/8).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from suite.errors import check_choice, check_range
from suite.registry import register_task
from suite.tasks.base import SyntheticTask, classification_scores


def copying_batch(gen: torch.Generator, batch_size: int, T: int, K: int = 10, layout: str = "A"):
    """(x one-hot (B, T+2K, 10) float32, y (B, T+2K) int64)."""
    L = T + 2 * K
    s = torch.randint(1, 9, (batch_size, K), generator=gen)
    tokens = torch.zeros(batch_size, L, dtype=torch.long)
    tokens[:, :K] = s
    tokens[:, K + T - 1 if layout == "A" else K + T] = 9
    y = torch.zeros(batch_size, L, dtype=torch.long)
    y[:, T + K:] = s
    return torch.nn.functional.one_hot(tokens, 10).float(), y


@dataclass(frozen=True)
class Copying(SyntheticTask):
    T: int = 1000
    K: int = 10
    layout: str = "A"

    name = "copying"
    output = "sequence"
    metric = "recall_accuracy"
    higher_is_better = True
    d_in = 10
    d_out = 9

    def __post_init__(self):
        check_range("T", self.T, low=1, where="copying")
        check_range("K", self.K, low=1, where="copying")
        check_choice("layout", self.layout, ("A", "B"), where="copying")
        check_range("eval_size", self.eval_size, low=1, where="copying")

    @property
    def length(self):
        return self.T + 2 * self.K

    def sample(self, gen, batch_size):
        return copying_batch(gen, batch_size, self.T, self.K, self.layout)

    def loss(self, out, y):
        return torch.nn.functional.cross_entropy(out.reshape(-1, 9), y.reshape(-1))

    def scores(self, out, y):
        s = classification_scores(out, y)
        recall = (out[:, -self.K:].argmax(-1) == y[:, -self.K:]).sum().item()
        s["recall_accuracy"] = (recall, y[:, -self.K:].numel())
        return s

    def baseline(self):
        L = self.T + 2 * self.K
        return {"loss": self.K * math.log(8) / L, "recall_accuracy": 1 / 8,
                "accuracy": (L - self.K + self.K / 8) / L}


@register_task
def copying(T: int = 1000, K: int = 10, layout: str = "A", eval_size: int = 1000):
    """Copying memory: recall K symbols after a delay T (layout A or B)."""
    return Copying(T=T, K=K, layout=layout, eval_size=eval_size)
