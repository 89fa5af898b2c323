"""Benchmark suite for orthogonal and unitary RNNs: registry, configs, runner, store, CLI.

As a library, in a training loop of one's own (README, "Use it as a library")::

    from suite import create_model, create_task, make_optimizers, train_step

One import namespace: the model families, the tasks and the report are ``suite.models``,
``suite.tasks`` and ``suite.reports``, so a user's own ``models/`` folder, or another distribution's
``models`` package, never meets the suite's.
"""

from pathlib import Path as _Path

from suite.errors import ConfigError, DataMissingError, SuiteError, UnknownNameError
from suite.registry import (
    create_model,
    create_task,
    list_models,
    list_tasks,
    register_model,
    register_task,
)

# In a source checkout models/, tasks/ and reports/ sit beside suite/ (the repository's layout); an
# installed wheel has them inside it (pyproject's package-dir). Let the checkout import them too, with
# or without an install.
_HOME = _Path(__file__).resolve().parent
if not (_HOME / "models").is_dir() and (_HOME.parent / "models" / "__init__.py").is_file():
    __path__.append(str(_HOME.parent))

__all__ = [
    "ConfigError", "DataMissingError", "OptimizerSettings", "SuiteError", "UnknownNameError", "create_model",
    "create_task", "list_models", "list_tasks", "make_optimizers", "register_model", "register_task", "train_step",
]
# Imported on first use: they bring torch's optimizers and the runner, which ``suite list`` never needs.
_LAZY = {"make_optimizers": "suite.optim", "OptimizerSettings": "suite.optim", "train_step": "suite.runner"}


def __getattr__(name: str):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'suite' has no attribute {name!r}")

__version__ = "0.1.0"
