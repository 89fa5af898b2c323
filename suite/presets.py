"""Model-side settings per (scale, task, model): hidden size, optimizers, learning rates, model options.

What every model on a task shares (the task's options and the training budget) is a *protocol*
(suite/protocols.py); a preset here holds only what may differ between models inside one protocol.
Presets always name their scope: run settings bare (``hidden``, ``lr``), model options as
``model.<option>``; they never hold ``task.*`` keys or budget fields, and they are applied strictly
(a value that does not land is an error). They apply in order, general first, specific last; CLI
``--set`` overrides win over every preset. Each names its source; where the reference marks a value
unverified, the source says so.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

SCALES = ("quick", "paper")
EXP_FAMILY = "exprnn*|dtriv|geotorch_*|torch_*"  # expRNN's optimizer conventions
EXP_SKEW = "exprnn|dtriv"  # the expRNN-family models that take an ``init`` option


@dataclass(frozen=True)
class Preset:
    scale: str
    task: str  # fnmatch patterns joined by "|"
    models: str  # fnmatch patterns joined by "|"
    values: dict = field(default_factory=dict)
    source: str = ""

    def matches(self, scale: str, model: str, task: str) -> bool:
        return (scale == self.scale and any(fnmatch.fnmatchcase(task, p) for p in self.task.split("|"))
                and any(fnmatch.fnmatchcase(model, p) for p in self.models.split("|")))


SCORNN = "Helfrich, Willmott & Ye, scoRNN, ICML 2018, arXiv:1707.09520v3, section 5 and the authors' code"
EXPRNN = "Lezcano-Casado & Martinez-Rubio, expRNN, ICML 2019, arXiv:1901.08428v3, section 5 and its code"
DTRIV = "Lezcano-Casado, dynamic trivializations, NeurIPS 2019, arXiv:1909.09501v2, and its code"
EURNN = "Jing et al., EURNN, ICML 2017, arXiv:1612.05231v3, section 4.1"
SUITE = "suite default for a model its paper did not run here (docs/models.md)"

PRESETS: list[Preset] = [
    # ---- quick: the main job ------------------------------------------------------------------
    Preset("quick", "*", "*", {"hidden": 64, "lr": 1e-3, "orth_lr": 1e-4}, "suite quick scale"),
    Preset("quick", "*", "eurnn*", {"orth_lr": 1e-3}, "EURNN trains all weights at one rate"),
    Preset("quick", "adding", "*", {"optimizer": "adam", "orth_lr": 1e-3},
           "suite quick scale (scoRNN uses Adam here; a 10x orthogonal rate leaves the plateau in 2000 steps)"),

    # ---- paper: defaults for models a paper did not run on a task -------------------------------
    Preset("paper", "*", "*", {"optimizer": "rmsprop", "lr": 1e-3, "orth_optimizer": "rmsprop",
                               "orth_lr": 1e-4, "rmsprop_alpha": 0.9}, SUITE),
    Preset("paper", "copying", "*", {"hidden": 190}, SUITE + " (n of scoRNN and expRNN on copying)"),
    Preset("paper", "adding", "*", {"hidden": 170}, SUITE + " (n of scoRNN on adding)"),
    Preset("paper", "*mnist", "*", {"hidden": 170}, SUITE + " (n of scoRNN and expRNN on MNIST)"),
    Preset("paper", "timit", "*", {"hidden": 224}, SUITE + " (n of scoRNN and expRNN on TIMIT)"),
    Preset("paper", "mnist1d", "*", {"hidden": 64}, SUITE + " (no paper runs MNIST-1D: the quick scale's n)"),
    Preset("paper", "*", "eurnn*", {"orth_lr": 1e-3}, EURNN + " (one rate for every weight)"),

    # ---- paper: scoRNN ------------------------------------------------------------------------
    Preset("paper", "copying", "scornn*", {"hidden": 190, "model.rho": 95, "optimizer": "rmsprop", "lr": 1e-3,
                                          "orth_optimizer": "rmsprop", "orth_lr": 1e-4, "rmsprop_alpha": 0.9,
                                          "model.readout_init": "glorot_bias"},
           SCORNN + " (TF RMSprop decay 0.9; copying script: readout weight and bias by TF's default Glorot init)"),
    Preset("paper", "adding", "scornn*", {"hidden": 170, "model.rho": 85, "optimizer": "adam", "lr": 1e-3,
                                         "orth_optimizer": "rmsprop", "orth_lr": 1e-4, "rmsprop_alpha": 0.9},
           SCORNN),
    Preset("paper", "mnist", "scornn*", {"hidden": 170, "model.rho": 17, "optimizer": "rmsprop", "lr": 1e-3,
                                        "orth_optimizer": "rmsprop", "orth_lr": 1e-4, "rmsprop_alpha": 0.9},
           SCORNN + " (n=170, rho=n/10)"),
    Preset("paper", "pmnist", "scornn*", {"hidden": 170, "model.rho": 85, "optimizer": "rmsprop", "lr": 1e-3,
                                         "orth_optimizer": "rmsprop", "orth_lr": 1e-4, "rmsprop_alpha": 0.9},
           SCORNN + " (n=170, rho=n/2)"),
    Preset("paper", "timit", "scornn*", {"hidden": 224, "model.rho": 112},
           SCORNN + " (n=224; rho and optimizer settings unverified: rho=n/2 assumed)"),

    # ---- paper: expRNN / dtriv / parametrization baselines --------------------------------------
    Preset("paper", "*", EXP_FAMILY, {"optimizer": "rmsprop", "orth_optimizer": "rmsprop", "rmsprop_alpha": 0.99},
           EXPRNN + " (RMSprop for both groups, torch defaults)"),
    Preset("paper", "copying", EXP_FAMILY, {"hidden": 190, "lr": 2e-4, "orth_lr": 2e-5,
                                           "model.readout_init": "kaiming"},
           EXPRNN + " (copying script: Kaiming-normal readout, zero bias)"),
    Preset("paper", "copying", EXP_SKEW, {"model.init": "henaff"}, EXPRNN + " (copying script: Henaff init)"),
    Preset("paper", "mnist", EXP_FAMILY, {"hidden": 170, "lr": 7e-4, "orth_lr": 7e-5},
           EXPRNN + " (MNIST script, n=170)"),
    Preset("paper", "pmnist", EXP_FAMILY, {"hidden": 170, "lr": 1e-3, "orth_lr": 1e-4},
           EXPRNN + " (MNIST script --permute, n=170)"),
    Preset("paper", "*mnist", EXP_SKEW, {"model.init": "cayley"}, EXPRNN + " (MNIST script: Cayley init)"),
    Preset("paper", "timit", EXP_FAMILY, {"hidden": 224, "optimizer": "adam", "lr": 1e-3, "orth_lr": 1e-4},
           EXPRNN + " (TIMIT script: Adam for the non-orthogonal group)"),
    Preset("paper", "timit", EXP_SKEW, {"model.init": "henaff"}, EXPRNN + " (TIMIT script: Henaff init)"),
    Preset("paper", "*", "dtriv", {"model.K": 100, "model.project_every": 100},
           DTRIV + " (dtriv-100; base projected back onto O(n) every 100 base changes)"),
    Preset("paper", "copying", "dtriv", {"model.project_every": 30},
           DTRIV + " (copying script: projection every 30 base changes)"),

    # ---- paper: EURNN and LSTM baselines --------------------------------------------------------
    Preset("paper", "copying", "eurnn*", {"hidden": 128, "lr": 1e-3, "orth_lr": 1e-3}, EURNN),
    Preset("paper", "copying", "eurnn", {"model.capacity": 4}, EURNN + " (capacity 4)"),
    Preset("paper", "copying|adding", "lstm", {"model.forget_bias": 1.0, "rmsprop_alpha": 0.9},
           SCORNN + " (its LSTM baseline: TF BasicLSTMCell, forget bias 1)"),
    Preset("paper", "copying", "lstm", {"hidden": 68, "lr": 1e-3}, SCORNN + " (its LSTM baseline, n=68)"),
    Preset("paper", "*mnist", "lstm", {"hidden": 128, "lr": 1e-3, "rmsprop_alpha": 0.99},
           EXPRNN + " (LSTM baseline: torch RMSprop, no clipping)"),
]


def presets_for(model: str, task: str, scale: str) -> list[Preset]:
    return [p for p in PRESETS if p.matches(scale, model, task)]


def resolve(model: str, task: str, scale: str, seed: int = 0, overrides: dict | None = None,
            strict: bool = True):
    """The config for (model, task) under the task's first protocol at ``scale`` (see
    ``suite.protocols.protocols_for`` for all of them)."""
    from suite.protocols import protocols_for, resolve_protocol

    return resolve_protocol(protocols_for(scale, task)[0], model, seed, overrides, strict=strict, scale=scale).config
