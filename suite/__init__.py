"""Benchmark suite for orthogonal and unitary RNNs: registry, configs, runner, store, CLI.

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
    "ConfigError", "DataMissingError", "SuiteError", "UnknownNameError", "create_model",
    "create_task", "list_models", "list_tasks", "register_model", "register_task",
]
__version__ = "0.1.0"
