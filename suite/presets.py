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

from suite.registry import MODELS

SCALES = ("quick", "paper")
EXP_FAMILY = "family:expRNN"  # expRNN's optimizer conventions (the registry's family data)
EXP_SKEW = "exprnn|dtriv"  # the expRNN-family models that take an ``init`` option


@dataclass(frozen=True)
class Preset:
    scale: str
    task: str  # fnmatch patterns joined by "|"
    models: str  # fnmatch patterns or "family:<name>" (the registry entry's family) joined by "|"
    values: dict = field(default_factory=dict)
    source: str = ""

    def matches(self, scale: str, model: str, task: str) -> bool:
        return (scale == self.scale and any(fnmatch.fnmatchcase(task, p) for p in self.task.split("|"))
                and any(_model_matches(model, p) for p in self.models.split("|")))


def _model_matches(model: str, pattern: str) -> bool:
    kind, _, family = pattern.partition(":")
    if kind == "family" and family:
        info = MODELS.entry(model).info if model in MODELS.names() else None
        return info is not None and info.family == family
    return fnmatch.fnmatchcase(model, pattern)


SCORNN = "Helfrich, Willmott & Ye, scoRNN, ICML 2018, arXiv:1707.09520v3, section 5 and the authors' code"
EXPRNN = "Lezcano-Casado & Martinez-Rubio, expRNN, ICML 2019, arXiv:1901.08428v3, section 5 and its code"
DTRIV = "Lezcano-Casado, dynamic trivializations, NeurIPS 2019, arXiv:1909.09501v2, and its code"
EURNN = "Jing et al., EURNN, ICML 2017, arXiv:1612.05231v3, section 4.1"
SUITE = "suite default for a model its paper did not run here (docs/models.md)"

QUICK_TUNED = "suite quick scale, rates chosen on validation by a small grid search (suite tune)"

PRESETS: list[Preset] = [
    # ---- quick: the main job ------------------------------------------------------------------
    Preset("quick", "*", "*", {"hidden": 64, "lr": 1e-3, "orth_lr": 1e-4}, "suite quick scale"),
    Preset("quick", "*", "family:EURNN", {"orth_lr": 1e-3}, "EURNN trains all weights at one rate"),
    # Rates from `suite tune --trials 4 --lr 1e-3:1e-2 --orth-lr 1e-5:1e-3` (grid, seed 1000, the quick
    # protocols' steps) on scornn, exprnn, lstm (and eurnn, eurnn_fft); untried models take their family's
    # choice: orthogonal/unitary ones scornn's and exprnn's, the unconstrained rnn and gru lstm's.
    # README: "The main job".
    Preset("quick", "copying", "*", {"lr": 1e-2, "orth_lr": 1e-5}, QUICK_TUNED),
    Preset("quick", "adding", "*", {"optimizer": "adam", "lr": 1e-2, "orth_lr": 1e-3},
           QUICK_TUNED + " (Adam for the non-orthogonal group, as scoRNN on this task)"),
    Preset("quick", "adding", "family:LSTM|family:GRU|family:rnn", {"lr": 1e-3}, QUICK_TUNED),
    Preset("quick", "mnist1d", "*", {"lr": 1e-2, "orth_lr": 1e-3}, QUICK_TUNED),
    Preset("quick", "mnist1d", "family:LSTM|family:GRU|family:rnn", {"lr": 4.64e-3}, QUICK_TUNED),

    # ---- paper: defaults for models a paper did not run on a task -------------------------------
    Preset("paper", "*", "*", {"optimizer": "rmsprop", "lr": 1e-3, "orth_optimizer": "rmsprop",
                               "orth_lr": 1e-4, "rmsprop_alpha": 0.9}, SUITE),
    Preset("paper", "copying", "*", {"hidden": 190}, SUITE + " (n of scoRNN and expRNN on copying)"),
    Preset("paper", "adding", "*", {"hidden": 170}, SUITE + " (n of scoRNN on adding)"),
    Preset("paper", "*mnist", "*", {"hidden": 170}, SUITE + " (n of scoRNN and expRNN on MNIST)"),
    Preset("paper", "timit", "*", {"hidden": 224}, SUITE + " (n of scoRNN and expRNN on TIMIT)"),
    Preset("paper", "mnist1d", "*", {"hidden": 64}, SUITE + " (no paper runs MNIST-1D: the quick scale's n)"),
    Preset("paper", "*", "family:EURNN", {"orth_lr": 1e-3}, EURNN + " (one rate for every weight)"),

    # ---- paper: scoRNN ------------------------------------------------------------------------
    Preset("paper", "copying", "family:scoRNN", {"hidden": 190, "model.rho": 95, "optimizer": "rmsprop", "lr": 1e-3,
                                          "orth_optimizer": "rmsprop", "orth_lr": 1e-4, "rmsprop_alpha": 0.9,
                                          "model.readout_init": "glorot_bias"},
           SCORNN + " (TF RMSprop decay 0.9; copying script: readout weight and bias by TF's default Glorot init)"),
    Preset("paper", "adding", "family:scoRNN", {"hidden": 170, "model.rho": 85, "optimizer": "adam", "lr": 1e-3,
                                         "orth_optimizer": "rmsprop", "orth_lr": 1e-4, "rmsprop_alpha": 0.9},
           SCORNN),
    Preset("paper", "mnist", "family:scoRNN", {"hidden": 170, "model.rho": 17, "optimizer": "rmsprop", "lr": 1e-3,
                                        "orth_optimizer": "rmsprop", "orth_lr": 1e-4, "rmsprop_alpha": 0.9},
           SCORNN + " (n=170, rho=n/10)"),
    Preset("paper", "pmnist", "family:scoRNN", {"hidden": 170, "model.rho": 85, "optimizer": "rmsprop", "lr": 1e-3,
                                         "orth_optimizer": "rmsprop", "orth_lr": 1e-4, "rmsprop_alpha": 0.9},
           SCORNN + " (n=170, rho=n/2)"),
    Preset("paper", "timit", "family:scoRNN", {"hidden": 224, "model.rho": 112},
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
    Preset("paper", "copying", "family:EURNN", {"hidden": 128, "lr": 1e-3, "orth_lr": 1e-3}, EURNN),
    Preset("paper", "copying", "eurnn", {"model.capacity": 4}, EURNN + " (capacity 4)"),
    Preset("paper", "copying|adding", "lstm", {"model.forget_bias": 1.0, "rmsprop_alpha": 0.9},
           SCORNN + " (its LSTM baseline: TF BasicLSTMCell, forget bias 1)"),
    Preset("paper", "copying", "lstm", {"hidden": 68, "lr": 1e-3}, SCORNN + " (its LSTM baseline, n=68)"),
    Preset("paper", "*mnist", "lstm", {"hidden": 128, "lr": 1e-3, "rmsprop_alpha": 0.99},
           EXPRNN + " (LSTM baseline: torch RMSprop, no clipping)"),
]

# ---- the models beyond the mission set, and the offline digits task --------------------------------
# Model options are written with their explicit scope (model.K), group settings as <setting>.<group>.
URNN = "Arjovsky, Shah & Bengio, uRNN, ICML 2016, arXiv:1511.06464v4"
FCURNN = "Wisdom et al., full-capacity uRNN, NeurIPS 2016, arXiv:1611.00035v1, and the authors' code"
SCURNN = "Maduranga, Helfrich & Ye, scuRNN, AAAI 2019, arXiv:1811.04142v2, the authors' code (scuRNN_*.py)"
NNRNN = "Kerg et al., nnRNN, NeurIPS 2019, arXiv:1905.12080v2, supplement Tables 2-3"
CORNN = "Rusch & Mishra, coRNN, ICLR 2021, arXiv:2010.00951v3, the authors' code (defaults of its scripts)"
LRU = ("Orvieto et al., LRU, ICML 2023, arXiv:2303.06349v1 (no copying/adding/MNIST runs there: the "
       "settings are the minimal-LRU reimplementation's defaults, AdamW and the recurrent lr factor 0.5)")

PRESETS += [
    Preset("quick", "*", "family:uRNN", {"orth_lr": 1e-3}, URNN + " (one RMSprop rate for every weight, section 5)"),
    Preset("quick", "*", "family:full-capacity uRNN", {"orth_optimizer": "sgd", "orth_lr": 1e-3},
           FCURNN + " (copying: Cayley step lambda = lr = 1e-3 on the raw gradient)"),
    Preset("quick", "*", "family:scuRNN", {"optimizer": "adam", "lr.phases": 1e-3}, SCURNN),
    Preset("quick", "*", "family:coRNN", {"optimizer": "adam"}, CORNN + " (Adam)"),
    Preset("quick", "*", "family:LRU", {"optimizer": "adam", "lr.recurrent": 5e-4}, LRU),

    # uRNN: RMSprop (decay 0.9) at 1e-3 for every weight, no clipping (section 5)
    Preset("paper", "*", "family:uRNN", {"optimizer": "rmsprop", "lr": 1e-3, "orth_optimizer": "rmsprop",
                                         "orth_lr": 1e-3, "rmsprop_alpha": 0.9}, URNN + ", section 5"),
    Preset("paper", "copying", "family:uRNN", {"hidden": 128}, URNN + ", section 5.1 (n=128)"),
    Preset("paper", "adding|*mnist", "family:uRNN", {"hidden": 512}, URNN + ", sections 5.2-5.3 (n=512)"),
    # full-capacity uRNN: Cayley step on U(n) for W, RMSprop for the rest
    Preset("paper", "copying", "family:full-capacity uRNN",
           {"hidden": 128, "optimizer": "rmsprop", "lr": 1e-3, "orth_optimizer": "sgd", "orth_lr": 1e-3},
           FCURNN + " (run_memory_problem.sh: n=128, raw G)"),
    Preset("paper", "*mnist", "family:full-capacity uRNN",
           {"hidden": 116, "optimizer": "rmsprop", "lr": 1e-3, "orth_optimizer": "rmsprop", "orth_lr": 1e-6},
           FCURNN + " (config_mnist: n=116, lr 1e-3, lambda 1e-6 with natGradRMS)"),
    # scuRNN: A with RMSprop, the phases with Adagrad, the rest with Adam
    Preset("paper", "*", "family:scuRNN",
           {"optimizer": "adam", "lr": 1e-3, "orth_optimizer": "rmsprop", "orth_lr": 1e-4, "rmsprop_alpha": 0.9,
            "optimizer.phases": "adagrad", "lr.phases": 1e-3}, SCURNN + " (adding and MNIST scripts)"),
    Preset("paper", "copying", "family:scuRNN", {"hidden": 130, "lr.phases": 1e-4},
           SCURNN + " (scuRNN_copying.py: n=130)"),
    Preset("paper", "adding|*mnist", "family:scuRNN", {"hidden": 116}, SCURNN + " (n=116)"),
    # nnRNN: RMSprop for both rates; T decays; delta penalizes |gamma - 1|
    Preset("paper", "copying", "family:nnRNN",
           {"hidden": 128, "optimizer": "rmsprop", "lr": 5e-4, "orth_optimizer": "rmsprop", "orth_lr": 1e-6,
            "rmsprop_alpha": 0.99, "model.delta": 1e-4, "weight_decay.upper": 1e-6, "model.init": "henaff"},
           NNRNN + " (copy, n=128)"),
    Preset("paper", "pmnist", "family:nnRNN",
           {"hidden": 512, "optimizer": "rmsprop", "lr": 1.5e-4, "orth_optimizer": "rmsprop", "orth_lr": 1.5e-5,
            "rmsprop_alpha": 0.99, "model.delta": 0.15, "weight_decay.upper": 1e-4, "model.init": "cayley"},
           NNRNN + " (psMNIST, n=512)"),
    # coRNN: Adam, no clipping; the code's lr / 10 after epoch 100 is not reproduced
    Preset("paper", "mnist", "family:coRNN",
           {"hidden": 256, "optimizer": "adam", "lr": 0.0021, "model.dt": 0.042, "model.gamma": 2.7,
            "model.epsilon": 4.7}, CORNN + " (sMNIST, n=256)"),
    Preset("paper", "pmnist", "family:coRNN",
           {"hidden": 256, "optimizer": "adam", "lr": 0.0054, "model.dt": 0.076, "model.gamma": 0.4,
            "model.epsilon": 8.0}, CORNN + " (psMNIST, n=256)"),
    Preset("paper", "adding", "family:coRNN",
           {"hidden": 128, "optimizer": "adam", "lr": 0.02, "model.dt": 0.06, "model.gamma": 66.0,
            "model.epsilon": 15.0}, CORNN + " (adding T=100, n=128)"),
    # LRU
    Preset("paper", "*", "family:LRU",
           {"model.depth": 4, "model.width": 256, "hidden": 128, "model.r_min": 0.0, "model.r_max": 0.999,
            "model.dropout": 0.1, "optimizer": "adamw", "lr": 1e-3, "lr.recurrent": 5e-4,
            "weight_decay.default": 0.05}, LRU + " (r_max 0.999: the suite keeps |lambda| < 1)"),
]


def presets_for(model: str, task: str, scale: str) -> list[Preset]:
    return [p for p in PRESETS if p.matches(scale, model, task)]


def resolve(model: str, task: str, scale: str, seed: int = 0, overrides: dict | None = None,
            strict: bool = True):
    """The config for (model, task) under the task's first protocol at ``scale`` (see
    ``suite.protocols.protocols_for`` for all of them)."""
    from suite.protocols import protocols_for, resolve_protocol

    return resolve_protocol(protocols_for(scale, task)[0], model, seed, overrides, strict=strict, scale=scale).config
