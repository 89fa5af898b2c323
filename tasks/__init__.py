"""Tasks, one file each; importing this package registers every built-in task (modules are
discovered: every module of this folder is imported)."""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.ispkg and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

from suite.tasks.base import Task  # noqa: E402

__all__ = ["Task"]
