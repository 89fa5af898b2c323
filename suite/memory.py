"""Keep the memory a training step frees inside the process, so the next step reuses it.

A training step allocates and frees the same large buffers every time (the (T, B, n) states, gate
pre-activations and their gradients: 25-100 MB each at T=1000). glibc's malloc serves blocks that
large with a fresh ``mmap`` and returns them to the system on ``free``, so every step touches every
page of them anew: one page fault per 4 KiB, which on a 2-core machine cost 15-40% of a step (measured
with ``suite speed``, the same rows with and without this setting, in docs/performance.md). Turning
``mmap`` off for ordinary allocations and the heap's automatic trimming off keeps those pages mapped
for the rest of the run. Between runs, ``release_freed_memory`` hands the freed heap back to the
system, so one run's peak memory is not carried into the next run of the same worker process.

``SUITE_MALLOC=system`` leaves the C library's defaults alone. Outside glibc (macOS, musl) nothing is
changed.
"""

from __future__ import annotations

import ctypes
import os

from suite.errors import ConfigError

MALLOC_SETTINGS = ("keep", "system")
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc's mallopt parameter numbers (malloc.h)
_LIBC: list = []  # once per process: the glibc handle when the setting is in force, else None


def malloc_setting() -> str:
    """SUITE_MALLOC, checked: "keep" (the default) or "system"."""
    value = os.environ.get("SUITE_MALLOC", "keep")
    if value not in MALLOC_SETTINGS:
        raise ConfigError(f"invalid SUITE_MALLOC={value!r}; valid: {', '.join(MALLOC_SETTINGS)}")
    return value


def _glibc():
    """The C library this process allocates with, when it is glibc (it has ``mallopt``)."""
    try:
        libc = ctypes.CDLL(None)
        mallopt, trim = libc.mallopt, libc.malloc_trim
    except (OSError, AttributeError):  # not glibc: nothing to tune
        return None
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    trim.argtypes = [ctypes.c_size_t]
    return libc


def keep_freed_memory() -> bool:
    """Apply the setting once per process (every process that trains or times steps calls this);
    True when it is in force."""
    if not _LIBC:
        libc = _glibc() if malloc_setting() == "keep" else None
        if libc is not None and not (libc.mallopt(_M_MMAP_MAX, 0) and libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1)):
            libc = None
        _LIBC.append(libc)
    return _LIBC[0] is not None


def release_freed_memory() -> None:
    """Return the freed heap to the system (between runs: a run's peak memory is its own)."""
    if _LIBC and _LIBC[0] is not None:
        _LIBC[0].malloc_trim(0)
