"""The suite's exceptions: each builds its own message and names the valid choices."""

from __future__ import annotations

import difflib
import math
import sys
from collections.abc import Iterable


class SuiteError(Exception):
    """Base class of every error the suite raises on purpose (the CLI prints these without a trace)."""


class UnknownNameError(SuiteError, KeyError):
    """A model, task or preset name that is not registered."""

    def __init__(self, kind: str, name: str, valid: Iterable[str]):
        self.kind, self.name, self.valid = kind, name, sorted(valid)
        close = difflib.get_close_matches(name, self.valid, n=3, cutoff=0.5)
        hint = f" Did you mean {', '.join(repr(c) for c in close)}?" if close else ""
        super().__init__(
            f"unknown {kind} {name!r}.{hint} Valid {kind}s: {', '.join(self.valid) or '(none)'}"
        )

    def __str__(self) -> str:  # KeyError would quote the whole message
        return self.args[0]


class ConfigError(SuiteError, ValueError):
    """An invalid hyperparameter or option value."""


class DataMissingError(SuiteError, FileNotFoundError):
    """A data set the suite cannot generate and could not find or download."""


class DataError(SuiteError, ValueError):
    """A data file that is there but unusable (malformed, empty, non-finite values)."""


class StoreError(SuiteError):
    """A results store (or a checkpoint of one) that cannot be opened, read or written as asked."""


class ClaimLost(StoreError):
    """This process does not, or no longer, hold the run it tried to write."""


class StoreWriteError(StoreError):
    """A write to the store or its checkpoints failed (a full disk, an I/O error); nothing of it was
    committed and every earlier commit holds."""


def say(message: str) -> None:
    """A notice to the user (stderr): what the suite did on its own, e.g. set a checkpoint aside."""
    print(f"suite: {message}", file=sys.stderr, flush=True)


def first_line(e: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def check_range(name: str, value, *, low=None, high=None, where: str = "",
                integer: bool | None = None) -> None:
    """Raise ConfigError unless low <= value <= high (either bound optional). Integer bounds imply
    an integer value unless ``integer=False``."""
    at = f" for {where}" if where else ""
    if integer is None:
        integer = isinstance(low, int) and not isinstance(low, bool) and (high is None or isinstance(high, int))
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise ConfigError(f"invalid {name}={value!r}{at}: must be {'an integer' if integer else 'a number'}")
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"invalid {name}={value!r}{at}: must be a finite number")
    if (low is not None and value < low) or (high is not None and value > high):
        lo = "-inf" if low is None else low
        hi = "inf" if high is None else high
        raise ConfigError(f"invalid {name}={value!r}{at}: must be in [{lo}, {hi}]")


def check_choice(name: str, value, choices: Iterable, *, where: str = "") -> None:
    choices = list(choices)
    if value not in choices:
        at = f" for {where}" if where else ""
        raise ConfigError(
            f"invalid {name}={value!r}{at}; valid choices: {', '.join(map(repr, choices))}"
        )
