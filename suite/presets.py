"""Hyperparameter presets per (scale, model, task), applied in order: general first, specific last.

Scale "quick" is the main job (``suite run`` with no arguments): small enough for well under ten minutes on
two CPU cores, large enough that the orthogonal models clearly beat the copying baseline.
Scale "paper" carries the papers' hyperparameters; each preset names its source. Where the reference
notes a value as unverified, the preset says so. CLI ``--set`` overrides win over every preset.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field

from suite.config import RunConfig, apply_values
from suite.errors import check_choice

SCALES = ("quick", "paper")
EXP_FAMILY = "exprnn*|dtriv|geotorch_*|torch_*"  # expRNN's optimizer conventions


@dataclass(frozen=True)
class Preset:
    scale: str
    task: str  # fnmatch pattern
    models: str  # fnmatch patterns joined by "|"
    values: dict = field(default_factory=dict)
    source: str = ""

    def matches(self, scale: str, model: str, task: str) -> bool:
        return (scale == self.scale and fnmatch.fnmatchcase(task, self.task)
                and any(fnmatch.fnmatchcase(model, p) for p in self.models.split("|")))


SCORNN = "Helfrich, Willmott & Ye, scoRNN, ICML 2018, arXiv:1707.09520v3, section 5 and the authors' code"
EXPRNN = "Lezcano-Casado & Martinez-Rubio, expRNN, ICML 2019, arXiv:1901.08428v3, section 5 and its code"
DTRIV = "Lezcano-Casado, dynamic trivializations, NeurIPS 2019, arXiv:1909.09501v2"
EURNN = "Jing et al., EURNN, ICML 2017, arXiv:1612.05231v3, section 4.1"

PRESETS: list[Preset] = [
    # ---- quick: the main job ------------------------------------------------------------------
    Preset("quick", "*", "*", {"batch_size": 32, "eval_every": 100, "eval_batch_size": 500,
                               "lr": 1e-3, "orth_lr": 1e-4}, "suite quick scale"),
    Preset("quick", "*", "eurnn*", {"orth_lr": 1e-3}, "EURNN trains all weights at one rate"),
    Preset("quick", "copying", "*", {"steps": 600, "hidden": 64, "T": 100, "eval_size": 500},
           "suite quick scale"),
    Preset("quick", "adding", "*", {"steps": 2000, "hidden": 64, "T": 50, "eval_size": 500,
                                    "optimizer": "adam", "orth_lr": 1e-3},
           "suite quick scale (scoRNN uses Adam here; a 10x orthogonal rate leaves the plateau in 2000 steps)"),
    Preset("quick", "mnist1d", "*", {"steps": 1500, "hidden": 64}, "suite quick scale"),
    Preset("quick", "mnist", "*", {"steps": 2000, "hidden": 64, "batch_size": 64},
           "suite quick scale"),
    Preset("quick", "pmnist", "*", {"steps": 2000, "hidden": 64, "batch_size": 64},
           "suite quick scale"),
    Preset("quick", "timit", "*", {"steps": 1000, "hidden": 64, "batch_size": 16},
           "suite quick scale"),

    # ---- paper: scoRNN ------------------------------------------------------------------------
    Preset("paper", "copying", "scornn*", {"T": 1000, "hidden": 190, "rho": 95, "batch_size": 20,
                                          "steps": 10_000, "optimizer": "rmsprop", "lr": 1e-3,
                                          "orth_optimizer": "rmsprop", "orth_lr": 1e-4}, SCORNN),
    Preset("paper", "adding", "scornn*", {"T": 750, "hidden": 170, "rho": 85, "batch_size": 50,
                                         "steps": 20_000, "optimizer": "adam", "lr": 1e-3,
                                         "orth_optimizer": "rmsprop", "orth_lr": 1e-4},
           SCORNN + " (10 epochs x 100k samples at batch 50; also T=200)"),
    Preset("paper", "mnist", "scornn*", {"hidden": 170, "rho": 17, "batch_size": 50,
                                        "steps": 77_000, "optimizer": "rmsprop", "lr": 1e-3,
                                        "orth_optimizer": "rmsprop", "orth_lr": 1e-4,
                                        "eval_every": 1100},
           SCORNN + " (n=170, rho=n/10, 70 epochs of 55k at batch 50)"),
    Preset("paper", "pmnist", "scornn*", {"hidden": 170, "rho": 85, "batch_size": 50,
                                         "steps": 77_000, "optimizer": "rmsprop", "lr": 1e-3,
                                         "orth_optimizer": "rmsprop", "orth_lr": 1e-4,
                                         "eval_every": 1100},
           SCORNN + " (n=170, rho=n/2, 70 epochs)"),
    Preset("paper", "timit", "scornn*", {"hidden": 224, "rho": 112, "batch_size": 32},
           SCORNN + " (n=224; rho and optimizer settings unverified: rho=n/2 assumed)"),

    # ---- paper: expRNN / dtriv / parametrization baselines --------------------------------------
    Preset("paper", "*", EXP_FAMILY, {"rmsprop_alpha": 0.99}, EXPRNN + " (torch RMSprop defaults)"),
    Preset("paper", "copying", EXP_FAMILY, {"T": 1000, "layout": "B", "hidden": 190,
                                           "batch_size": 128, "steps": 4000, "lr": 2e-4,
                                           "orth_lr": 2e-5}, EXPRNN + " (Henaff init, layout B)"),
    Preset("paper", "mnist", EXP_FAMILY, {"hidden": 170, "batch_size": 128, "steps": 30_000,
                                         "lr": 7e-4, "orth_lr": 7e-5, "eval_every": 430},
           EXPRNN + " (n=170, Cayley init: use exprnn_cayley)"),
    Preset("paper", "pmnist", EXP_FAMILY, {"hidden": 170, "batch_size": 128, "steps": 30_000,
                                          "lr": 1e-3, "orth_lr": 1e-4, "eval_every": 430},
           EXPRNN + " (n=170)"),
    Preset("paper", "timit", EXP_FAMILY, {"hidden": 224, "optimizer": "adam", "lr": 1e-3,
                                         "orth_lr": 1e-4, "batch_size": 32},
           EXPRNN + " (Adam for the non-orthogonal group; lr unverified)"),
    Preset("paper", "*", "dtriv", {"K": 100}, DTRIV + " (dtriv-100)"),

    # ---- paper: EURNN and LSTM baselines --------------------------------------------------------
    Preset("paper", "copying", "eurnn*", {"T": 1000, "hidden": 128, "batch_size": 128,
                                         "steps": 4000, "lr": 1e-3, "orth_lr": 1e-3}, EURNN),
    Preset("paper", "copying", "eurnn", {"capacity": 4}, EURNN + " (capacity 4)"),
    Preset("paper", "copying", "lstm", {"T": 1000, "hidden": 68, "batch_size": 20, "steps": 10_000,
                                       "lr": 1e-3}, SCORNN + " (its LSTM baseline, n=68)"),
    Preset("paper", "mnist", "lstm", {"hidden": 128, "batch_size": 128, "steps": 30_000, "lr": 1e-3,
                                     "eval_every": 430}, EXPRNN + " (LSTM baseline, RMSprop, no clipping)"),
    Preset("paper", "pmnist", "lstm", {"hidden": 128, "batch_size": 128, "steps": 30_000, "lr": 1e-3,
                                      "eval_every": 430}, EXPRNN + " (LSTM baseline)"),
]


def resolve(model: str, task: str, scale: str, seed: int = 0,
            overrides: dict | None = None, strict: bool = True) -> RunConfig:
    """The config for (model, task): defaults, then matching presets in order, then ``overrides``."""
    check_choice("preset scale", scale, SCALES)
    config = RunConfig(model=model, task=task, seed=seed)
    for p in PRESETS:
        if p.matches(scale, model, task):
            config = apply_values(config, p.values, strict=False)
    return apply_values(config, overrides or {}, strict=strict)


def presets_for(model: str, task: str, scale: str) -> list[Preset]:
    return [p for p in PRESETS if p.matches(scale, model, task)]
