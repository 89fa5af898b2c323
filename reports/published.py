"""Published numbers the report sets beside ours where task and hidden size match.

Each entry names its source. The values come from ../shared/reference.md (sections 1 and 2); where
that file marks a value unverified against the paper itself, ``verified`` is False and the report
says so. Table numbers are given where the reference names them; "table number unverified"
otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

EXPRNN_PAPER = ("Lezcano-Casado & Martinez-Rubio, expRNN, ICML 2019, arXiv:1901.08428, "
                "MNIST / P-MNIST test-accuracy table (table number unverified)")
SCORNN_PAPER = "Helfrich, Willmott & Ye, scoRNN, ICML 2018, arXiv:1707.09520v3, MNIST results table"
DTRIV_QUOTED = ("Lezcano-Casado, dynamic trivializations, NeurIPS 2019, arXiv:1909.09501, P-MNIST table, "
                "as quoted by projUNN (Kiani et al., NeurIPS 2022)")
TIMIT_SOURCES = "scoRNN and expRNN papers' TIMIT tables"

# our model names that implement each paper's model
MODEL_MAP = {"scoRNN": ("scornn", "scornn_autograd"), "expRNN": ("exprnn", "exprnn_cayley"),
             "dtriv-100": ("dtriv",), "LSTM": ("lstm",)}


@dataclass(frozen=True)
class Published:
    task: str
    model: str  # the paper's name
    hidden: int
    metric: str
    value: float
    source: str
    verified: bool = True
    note: str = ""

    def matches(self, task: str, model: str, hidden: int | None) -> bool:
        return task == self.task and model in MODEL_MAP.get(self.model, ()) and hidden == self.hidden


def _rows(task, model, sizes, values, source, verified=True, note=""):
    return [Published(task, model, n, "accuracy" if task != "timit" else "mse", v, source, verified, note)
            for n, v in zip(sizes, values)]


PUBLISHED: list[Published] = [
    *_rows("mnist", "scoRNN", (170, 360, 512), (0.972, 0.981, 0.982), EXPRNN_PAPER),
    *_rows("pmnist", "scoRNN", (170, 360, 512), (0.948, 0.959, 0.965), EXPRNN_PAPER),
    *_rows("mnist", "expRNN", (170, 360, 512), (0.980, 0.984, 0.987), EXPRNN_PAPER),
    *_rows("pmnist", "expRNN", (170, 360, 512), (0.949, 0.962, 0.966), EXPRNN_PAPER),
    *_rows("mnist", "LSTM", (128, 256, 512), (0.819, 0.888, 0.919), EXPRNN_PAPER,
           note="RMSprop, no gradient clipping"),
    *_rows("pmnist", "LSTM", (128, 256, 512), (0.795, 0.888, 0.918), EXPRNN_PAPER,
           note="RMSprop, no gradient clipping"),
    *_rows("mnist", "scoRNN", (512,), (0.985,), SCORNN_PAPER + ", as quoted by a later paper"),
    *_rows("pmnist", "scoRNN", (512,), (0.966,), SCORNN_PAPER + ", as quoted by a later paper"),
    *_rows("mnist", "scoRNN", (170, 360), (0.973, 0.983), SCORNN_PAPER, verified=False),
    *_rows("pmnist", "scoRNN", (170, 360), (0.943, 0.962), SCORNN_PAPER, verified=False),
    *_rows("mnist", "LSTM", (128, 256, 512), (0.987, 0.989, 0.985), SCORNN_PAPER, verified=False),
    *_rows("pmnist", "LSTM", (128, 256, 512), (0.920, 0.929, 0.920), SCORNN_PAPER, verified=False),
    *_rows("pmnist", "dtriv-100", (170,), (0.951,), DTRIV_QUOTED),
    *_rows("timit", "scoRNN", (224, 322, 425), (8.50, 7.82, 7.36), TIMIT_SOURCES, verified=False,
           note="test MSE; normalization may differ from the suite's (see docs/tasks.md)"),
    *_rows("timit", "LSTM", (84, 120, 158), (14.30, 12.95, 12.62), TIMIT_SOURCES, verified=False,
           note="test MSE"),
    *_rows("timit", "expRNN", (224, 322, 425), (5.30, 4.38, 5.48), TIMIT_SOURCES, verified=False,
           note="test MSE"),
]


def matching(task: str, model: str, hidden: int | None) -> list[Published]:
    return [p for p in PUBLISHED if p.matches(task, model, hidden)]
