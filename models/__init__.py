"""Model families, one module each; importing this package registers every built-in model.

Modules are discovered, not listed: every module of this folder is imported (sub-packages, such as
the kernels, are not), and each registers its models with ``@register_model``.
"""

import importlib
import pkgutil

for _module in pkgutil.iter_modules(__path__):
    if not _module.ispkg and not _module.name.startswith("_"):
        importlib.import_module(f"{__name__}.{_module.name}")

from suite.contract import RecurrentModel, orthogonality_error  # noqa: E402

__all__ = ["RecurrentModel", "orthogonality_error"]
