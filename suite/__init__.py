"""Benchmark suite for orthogonal and unitary RNNs: registry, configs, runner, store, CLI."""

from suite.errors import ConfigError, DataMissingError, SuiteError, UnknownNameError
from suite.layout import check_packages
from suite.registry import (
    create_model,
    create_task,
    list_models,
    list_tasks,
    register_model,
    register_task,
)

__all__ = [
    "ConfigError", "DataMissingError", "SuiteError", "UnknownNameError", "create_model",
    "create_task", "list_models", "list_tasks", "register_model", "register_task",
]
__version__ = "0.1.0"

check_packages()
