"""Print pip constraints pinning every direct dependency of pyproject.toml at its declared floor
(``name>=X`` becomes ``name==X``), so the floors that .ci/floors installs are the ones declared, never a
second list. torch is left out: .ci/floors installs the CPU wheel first, as .ci/setup does."""

import re
import sys
from pathlib import Path

import tomllib

project = tomllib.loads(Path(sys.argv[1] if len(sys.argv) > 1 else "pyproject.toml").read_text())["project"]
for requirement in project["dependencies"]:
    m = re.fullmatch(r"\s*([A-Za-z0-9_.-]+)(\[[^]]*\])?\s*>=\s*([0-9][^,;\s]*)\s*", requirement)
    if m is None:
        sys.exit(f"floors: {requirement!r} has no lower bound of the form name>=X; give it one")
    if m[1].lower() != "torch":
        print(f"{m[1]}=={m[3]}")
