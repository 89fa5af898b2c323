"""Keep the memory a training step frees inside the process, so the next step reuses it.

A training step allocates and frees the same large buffers every time (the (T, B, n) states, gate
pre-activations and their gradients: 25-100 MB each at T=1000). glibc's malloc serves blocks that
large with a fresh ``mmap`` and returns them to the system on ``free``, so every step touches every
page of them anew: one page fault per 4 KiB, which on a 2-core machine cost 15-40% of a step (measured
with ``suite speed``, the same rows with and without this setting, in docs/performance.md). Turning
``mmap`` off for ordinary allocations and never trimming the heap keeps those pages mapped: the
process's resident memory then stays at its peak instead of following each step's rise and fall.

``SUITE_MALLOC=system`` leaves the C library's defaults alone. Outside glibc (macOS, musl) nothing is
changed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameter numbers (malloc.h)
_STATE: list[bool] = []


def keep_freed_memory() -> bool:
    """Apply the setting once per process; True when it is in force."""
    if _STATE:
        return _STATE[0]
    ok = False
    if os.environ.get("SUITE_MALLOC", "keep") != "system":
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
            mallopt = libc.mallopt
        except (OSError, AttributeError):  # not glibc: nothing to tune
            mallopt = None
        if mallopt is not None:
            mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
            ok = bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
    _STATE.append(ok)
    return ok
