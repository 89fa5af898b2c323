"""Names of the report's files."""

from __future__ import annotations

import re


def slug(text: str) -> str:
    """A file-name-safe form of a name that may come from a plug-in or a hand-edited store."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-") or "x"
