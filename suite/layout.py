"""The project's top-level packages, and the guard against a user's folder shadowing one."""

from __future__ import annotations

import importlib.util as util
from pathlib import Path


def check_packages() -> None:
    """The suite's packages are top-level ``models``, ``tasks`` and ``reports`` beside ``suite``. A
    user's own folder of that name earlier on sys.path (a research repository's models/, the working
    directory) would be imported instead and fail in confusing ways: stop here and say so."""
    home = Path(__file__).resolve().parent.parent
    for name in ("models", "tasks", "reports"):
        spec = util.find_spec(name)
        where = list(spec.submodule_search_locations or []) if spec else []
        if not where:
            continue  # not found at all: the import that needs it will say so
        found = Path(where[0]).resolve()
        if found != home / name:
            raise ImportError(
                f"the package {name!r} resolves to {found}, not to the suite's own {home / name}: a folder "
                f"named {name!r} earlier on sys.path (the working directory or PYTHONPATH) shadows it. Run "
                f"from another directory, rename that folder, or remove it from PYTHONPATH.", name=name)
