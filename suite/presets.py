"""Model-side settings per (scale, task, model): hidden size, optimizers, learning rates, model options.

What every model on a task shares (the task's options and the training budget) is a *protocol*
(suite/protocols.py); a preset holds only what may differ between models inside one protocol.

A model's own presets (its paper's settings, the rates the quick scale's search chose for it) are
written in its registration (``@register_model(presets=...)``, in the model's file). This module keeps
only the rows that are not any one model's: the suite's defaults for every model at a scale and task.
For a (scale, task, model) the suite's rows apply first, in the order below, then the model's own, in
the order its registration lists them; later values win, and ``--set`` wins over every preset.

Presets always name their scope: run settings bare (``hidden``, ``lr``), model options as
``model.<option>``, group settings as ``<setting>.<group>``; they never hold ``task.*`` keys or budget
fields, and they are applied strictly (a value that does not land is an error). Each names its source;
where a value is unverified against the paper, the source says so.
"""

from __future__ import annotations

import fnmatch

from suite.papers import QUICK, QUICK_TUNED, SUITE_DEFAULT
from suite.registry import MODELS, Preset

SCALES = ("quick", "paper")

SUITE_PRESETS: list[Preset] = [
    # ---- quick: the main job ------------------------------------------------------------------
    Preset("quick", "*", {"hidden": 64, "lr": 1e-3, "orth_lr": 1e-4}, QUICK),
    # Rates from `suite tune --trials 4 --lr 1e-3:1e-2 --orth-lr 1e-5:1e-3` (grid, seed 1000, the quick
    # protocols' steps) on scornn, exprnn and lstm (copying also eurnn and eurnn_fft); the models the
    # search did not try take the rates of their kind (their registrations say which). README: "The main job".
    Preset("quick", "copying", {"lr": 1e-2, "orth_lr": 1e-5}, QUICK_TUNED),
    Preset("quick", "adding", {"optimizer": "adam", "lr": 1e-2, "orth_lr": 1e-3},
           QUICK_TUNED + " (Adam for the non-orthogonal group, as scoRNN on this task)"),
    Preset("quick", "mnist1d", {"lr": 1e-2, "orth_lr": 1e-3}, QUICK_TUNED),

    # ---- paper: defaults for models a paper did not run on a task -------------------------------
    Preset("paper", "*", {"optimizer": "rmsprop", "lr": 1e-3, "orth_optimizer": "rmsprop", "orth_lr": 1e-4,
                          "rmsprop_alpha": 0.9}, SUITE_DEFAULT),
    Preset("paper", "copying", {"hidden": 190}, SUITE_DEFAULT + " (n of scoRNN and expRNN on copying)"),
    Preset("paper", "adding", {"hidden": 170}, SUITE_DEFAULT + " (n of scoRNN on adding)"),
    Preset("paper", "*mnist", {"hidden": 170}, SUITE_DEFAULT + " (n of scoRNN and expRNN on MNIST)"),
    Preset("paper", "timit", {"hidden": 224}, SUITE_DEFAULT + " (n of scoRNN and expRNN on TIMIT)"),
    Preset("paper", "mnist1d", {"hidden": 64}, SUITE_DEFAULT + " (no paper runs MNIST-1D: the quick scale's n)"),
]


def _model_matches(model: str, pattern: str) -> bool:
    kind, _, family = pattern.partition(":")
    if kind == "family" and family:
        return model in MODELS.names() and MODELS.entry(model).info.family == family
    return fnmatch.fnmatchcase(model, pattern)


def scoped_presets(model: str, task: str, scale: str) -> list[tuple[str, Preset]]:
    """(scope, preset) for the presets that apply to (model, task) at ``scale``, in order of application:
    the suite's rows (scope: their model patterns), then the model's own (scope: its name); a model not
    registered here has only the suite's."""
    rows = [(p.models, p) for p in SUITE_PRESETS if p.matches_task(scale, task)
            and any(_model_matches(model, q) for q in p.models.split("|"))]
    if model in MODELS.names():
        rows += [(model, p) for p in MODELS.entry(model).info.presets if p.matches_task(scale, task)]
    return rows


def presets_for(model: str, task: str, scale: str) -> list[Preset]:
    """The presets that apply to (model, task) at ``scale``, in order of application."""
    return [p for _, p in scoped_presets(model, task, scale)]


def listing() -> list[tuple[str, Preset]]:
    """(scope, preset) for every preset the suite knows: its own rows ("*" or their model patterns),
    then each registered model's rows, scoped by the model's name."""
    out = [(p.models, p) for p in SUITE_PRESETS]
    for entry in MODELS.entries():
        out += [(entry.name, p) for p in entry.info.presets]
    return out
