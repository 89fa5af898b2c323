"""Fault injection for the crash tests (docs/results.md).

``SUITE_FAULT="<point>:<n>"`` kills this process with SIGKILL the n-th time it reaches ``<point>``
(points: checkpoint-write, checkpoint-rename, commit, commit-done, prune, export: after each table an
export writes). Unset, a point costs one comparison.
"""

from __future__ import annotations

import os
import signal

_FAULT = os.environ.get("SUITE_FAULT") or None
_HITS: dict[str, int] = {}


def fault(point: str) -> None:
    if _FAULT is None:
        return
    name, _, n = _FAULT.partition(":")
    if name == point:
        _HITS[point] = _HITS.get(point, 0) + 1
        if _HITS[point] == int(n or 1):
            os.kill(os.getpid(), signal.SIGKILL)
