"""What the training loop needs of a results store: the ``Recorder`` protocol.

``suite.runner`` calls nothing else on the store it is given. Two classes implement it: the SQLite
``suite.store.Store``, and ``suite.executors.RemoteStore``, through which a Ray worker's runner has the
driver perform every call on the one real Store. A third recorder (another database, a service) needs
these methods and nothing more; their contracts are ``suite.store.Store``'s.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol, runtime_checkable

if TYPE_CHECKING:
    from suite.store import Records


@runtime_checkable
class Recorder(Protocol):
    # ---- the run's claim and status
    def claim(self, run_id: str, config_hash: str, seed: int, model: str, task: str, config: dict,
              total_steps: int, force: bool = False) -> tuple[str, int]:
        """Take the run: ("start" | "resume" | "done" | "busy", the committed step)."""

    def holder(self, run_id: str) -> str | None:
        """The owner of a run a live process is training, else None."""

    def update(self, run_id: str, **fields) -> None:
        """Set fields of a run this recorder holds (``owner=None`` releases it)."""

    def heartbeat(self, run_id: str) -> None:
        """Refresh the claim of a run this recorder holds."""

    # ---- records
    def commit(self, run_id: str, step: int, records: Records, **fields) -> None:
        """Insert the buffered records and move the run to ``step``, atomically; clears ``records``."""

    def reset(self, run_id: str, step: int = 0) -> None:
        """Forget the run's records after ``step`` (every record when 0)."""

    def run(self, run_id: str) -> dict | None:
        """The run's row, JSON fields decoded."""

    def series(self, run_id: str, name: str) -> tuple[list[int], list[float | None]]:
        """(steps, values) of one metric of the run, by step."""

    # ---- checkpoints
    def save_checkpoint(self, run_id: str, step: int, payload: dict) -> None:
        """Write the checkpoint of ``step`` atomically, before the commit of its records."""

    def load_checkpoint(self, run_id: str, step: int, map_location=None) -> dict | None:
        """The checkpoint of ``step``, else the newest good one before it, else None."""

    def prune_checkpoints(self, run_id: str, keep: int, best: int | None = None) -> None:
        """Delete the run's checkpoints but ``keep``, the newest one before it and ``best``."""


# The protocol's methods, in the order above (the Ray executor forwards exactly these).
METHODS: tuple[str, ...] = tuple(name for name, value in vars(Recorder).items()
                                 if callable(value) and not name.startswith("_"))
