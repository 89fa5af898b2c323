"""The checkpoint files of one results store: ``<store>-checkpoints/<run_id>/step-<s>.pt``.

Every store owns its checkpoints (``results/suite.db`` keeps them in ``results/suite.db-checkpoints/``),
so two stores in one folder never share them. Each file is recorded in the store's ``checkpoints``
table with its SHA-256 before it is written, inside a transaction of the run's claim, then written
aside, flushed and renamed into place: ``step-<s>.pt`` is either absent or complete. A file that cannot
be loaded or is not what the suite wrote is set aside (renamed ``corrupt-step-<s>.pt``, kept), never
loaded as pickled code. Pruning deletes only files the store recorded.

Kept per run: the checkpoint of the last commit, the newest one before it (a fallback should the last
prove unreadable), and the one of the step with the best validation metric so far (the weights behind
the run's headline number, ``suite export --weights``).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import pickle
import re
import sqlite3
from collections.abc import Callable
from contextlib import AbstractContextManager
from pathlib import Path

from suite.crash import fault
from suite.errors import StoreWriteError, first_line, say

NAME = re.compile(r"step-(0|[1-9][0-9]*)\.pt")
TEMP = re.compile(r"step-(0|[1-9][0-9]*)\.pt\.tmp[0-9]+")  # a killed writer's leftover


def folder_of(store_path: Path) -> Path:
    """The folder of a store's checkpoints, named after the store."""
    return store_path.with_name(store_path.name + "-checkpoints")


class Unusable(Exception):
    """A checkpoint file that cannot be used; the message says why."""


class Checkpoints:
    """The checkpoint files of the store at ``store_path``. ``conn`` is the store's connection (to read
    the ``checkpoints`` table); ``holding(run_id)`` is its write transaction that goes ahead only while
    the store's claim owns the run, ``holds(run_id)`` whether it does."""

    def __init__(self, store_path: Path, conn: sqlite3.Connection,
                 holding: Callable[[str], AbstractContextManager[sqlite3.Connection]],
                 holds: Callable[[str], bool]):
        self.store_path = Path(store_path)
        self.folder = folder_of(self.store_path)
        self._conn, self._holding, self._holds = conn, holding, holds

    def run_dir(self, run_id: str) -> Path:
        return self.folder / run_id

    def path(self, run_id: str, step: int) -> Path:
        return self.run_dir(run_id) / f"step-{step}.pt"

    def _legacy(self, run_id: str, step: int) -> Path:
        """Where stores of suite 0.1.0 kept checkpoints (shared by a folder): read, never pruned."""
        return self.store_path.parent / "checkpoints" / run_id / f"step-{step}.pt"

    def steps(self, run_id: str) -> list[int]:
        """Steps with a checkpoint file (named exactly ``step-<s>.pt``) on disk, newest first."""
        folder = self.run_dir(run_id)
        if not folder.is_dir():
            return []
        found = (NAME.fullmatch(p.name) for p in folder.iterdir())
        return sorted((int(m[1]) for m in found if m), reverse=True)

    def recorded(self, run_id: str) -> dict[str, tuple[int, str]]:
        """The checkpoint files the store recorded for ``run_id``: name -> (step, SHA-256)."""
        try:
            rows = self._conn.execute("SELECT file, step, sha256 FROM checkpoints WHERE run_id = ?", (run_id,))
            return {r[0]: (r[1], r[2]) for r in rows}
        except sqlite3.OperationalError:  # a read-only store of an older schema: none recorded
            return {}

    def save(self, run_id: str, step: int, payload: dict) -> None:
        """Write ``payload`` (tensors and plain data) atomically: recorded in the store with its SHA-256
        first (so the file is the store's to prune, whatever happens next), then written to a temp
        file, flushed to disk and renamed, so ``step-<s>.pt`` is either absent or complete."""
        import torch

        path = self.path(run_id, step)
        buf = io.BytesIO()
        torch.save(payload, buf)
        data = buf.getbuffer()
        with self._holding(run_id) as c:
            c.execute("INSERT OR REPLACE INTO checkpoints (run_id, step, file, sha256) VALUES (?, ?, ?, ?)",
                      (run_id, step, path.name, hashlib.sha256(data).hexdigest()))
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp.unlink(missing_ok=True)  # a leftover of an earlier process with this pid
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0), 0o644)
            with os.fdopen(fd, "wb") as f:
                f.write(data[: len(data) // 2])
                fault("checkpoint-write")
                f.write(data[len(data) // 2:])
                f.flush()
                os.fsync(f.fileno())
            fault("checkpoint-rename")
            os.replace(tmp, path)
        except OSError as e:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            raise StoreWriteError(f"cannot write the checkpoint {path} ({e.strerror or e}); every earlier "
                                  f"commit and its checkpoint are intact: fix the cause (e.g. free disk space) "
                                  "and rerun the same command to resume") from None
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def _read(self, run_id: str, path: Path, step: int, recorded: dict, map_location=None) -> dict:
        """The payload of ``path`` (the checkpoint of ``step``), or Unusable saying why not."""
        import torch

        try:
            data = path.read_bytes()
            known = recorded.get(path.name) if path.parent == self.run_dir(run_id) else None
            if known is not None and hashlib.sha256(data).hexdigest() != known[1]:
                raise Unusable("does not hold what the suite wrote there (its SHA-256 differs from the one "
                               "recorded)")
            payload = torch.load(io.BytesIO(data), map_location=map_location, weights_only=True)
            if not isinstance(payload, dict) or payload.setdefault("step", step) != step:
                raise ValueError(f"holds {type(payload).__name__} for step "
                                 f"{payload.get('step') if isinstance(payload, dict) else '?'}")
        except Unusable:
            raise
        except pickle.UnpicklingError:
            # torch's message advises weights_only=False, i.e. running whatever the file holds: not here
            raise Unusable("was refused: it holds Python objects, not only tensors and plain data as the "
                           "suite writes") from None
        except Exception as e:  # truncated, garbage, unreadable: all the same to a resume
            reason = f"cannot be read ({first_line(e)})"
            if "weights_only" in reason:
                reason = "was refused: it is not a checkpoint of tensors and plain data"
            raise Unusable(reason) from None
        return payload

    def read(self, run_id: str, step: int, map_location=None) -> dict:
        """The checkpoint of exactly ``step``, checked against the SHA-256 the store recorded; nothing is
        renamed (read-only stores included). Unusable (saying why) when it is missing or unusable."""
        path = self.path(run_id, step)
        if not path.is_file():
            raise Unusable("is not there")
        return self._read(run_id, path, step, self.recorded(run_id), map_location)

    def load(self, run_id: str, step: int, map_location=None) -> dict | None:
        """The checkpoint of ``step``; if it is missing or unusable, the newest good one before it (its
        payload's "step" says which); None when there is none. A file whose content is not what the
        store recorded writing, or that cannot be loaded, is set aside (renamed ``corrupt-step-<s>.pt``,
        kept) and said so; it is never loaded as pickled code."""
        recorded = self.recorded(run_id)
        older = [s for s in self.steps(run_id) if s < step]
        for s in [step, *older]:
            path = self.path(run_id, s)
            if not path.is_file():
                legacy = self._legacy(run_id, s)
                if s != step or not legacy.is_file():
                    continue
                path = legacy
            try:
                payload = self._read(run_id, path, s, recorded, map_location)
            except Unusable as e:
                reason = str(e)
            else:
                if s != step:
                    say(f"run {run_id}: resuming from the checkpoint of step {s}, the newest usable one "
                        f"(the store had reached step {step}; steps after {s} are recomputed)")
                return payload
            if path.parent.parent != self.folder or not self._holds(run_id):
                say(f"checkpoint {path} {reason}; left in place")  # a shared legacy folder, or not our run
                continue
            aside = self._set_aside(run_id, path)
            say(f"checkpoint {path} {reason}; set aside as {aside.name}")
        return None

    def _set_aside(self, run_id: str, path: Path) -> Path:
        n, aside = 1, path.with_name("corrupt-" + path.name)
        while aside.exists():
            n += 1
            aside = path.with_name(f"corrupt-{path.stem}-{n}.pt")
        with self._holding(run_id) as c:  # no longer a checkpoint of the store's: never pruned
            c.execute("DELETE FROM checkpoints WHERE run_id = ? AND file = ?", (run_id, path.name))
            os.replace(path, aside)
        return aside

    def prune(self, run_id: str, keep: int, best: int | None = None) -> None:
        """Delete the checkpoint files the store recorded for ``run_id`` but step ``keep``, the newest
        one before it (a fallback should ``keep``'s file prove unreadable) and step ``best`` (the best
        validation metric so far), and temp files a killed writer left. Nothing else in the folder is
        touched: the user's copies (``step-30.pt.bak``), set-aside files, files of stores older than
        these records, and other stores' checkpoints stay."""
        folder = self.run_dir(run_id)
        with self._holding(run_id) as c:
            recorded = self.recorded(run_id)
            before = [s for s in self.steps(run_id) if s < keep][:1]
            kept = (keep, *before) if best is None else (keep, *before, best)
            keep_names = {f"step-{s}.pt" for s in kept}
            doomed = [name for name in recorded if name not in keep_names]
            if folder.is_dir():
                doomed += [p.name for p in folder.iterdir() if TEMP.fullmatch(p.name)]
            for name in doomed:
                fault("prune")
                (folder / name).unlink(missing_ok=True)
            c.executemany("DELETE FROM checkpoints WHERE run_id = ? AND file = ?", [(run_id, n) for n in doomed])
