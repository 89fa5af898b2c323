"""The results store: one SQLite file (default results/suite.db), schema-versioned, safe to share.

Durability rule: metrics reach the database only together with the checkpoint they belong to. The
runner writes ``<store>-checkpoints/<run_id>/step-<s>.pt`` atomically first (every store owns its
checkpoints: ``results/suite.db`` keeps them in ``results/suite.db-checkpoints/``), then commits, in one transaction,
every buffered metric up to step s and ``runs.step = s``. A process killed at any point (kill -9
included) leaves the database at its last commit and the matching checkpoint on disk, so a resume
recomputes the uncommitted steps exactly (batches are pure functions of (seed, step)) and inserts each
(run, step, name) once; the primary keys refuse duplicates.

Concurrency: WAL journal, a busy timeout, and BEGIN IMMEDIATE for every write, so several processes
(parallel workers, or several ``suite run`` commands) can share one store. A run is claimed by one
owner (host:pid, or host:pid/ray:TASK for a Ray task whose driver is host:pid); a claim held by a dead
process on this host, or not refreshed within the lease, is taken over and resumed.

Faults: a store that cannot be opened, is not a results store, or fails ``PRAGMA quick_check`` is
refused (StoreError) before anything is written to it. Read-only opens (show, export, report) also work
on read-only media, WAL files included. A checkpoint that cannot be loaded is set aside (renamed, kept)
and the newest good one before it is used instead. The suite deletes only files it wrote.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import pickle
import shutil
import signal
import socket
import sqlite3
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from suite.errors import SuiteError

SCHEMA_VERSION = 2
# pending: a tuning trial registered but not started; pruned: a trial its search stopped early
STATUSES = ("pending", "running", "finished", "diverged", "pruned", "failed", "interrupted")
DONE = ("finished", "diverged", "pruned")  # never resumed unless forced
LEASE_SECONDS = 900.0

_SCHEMA = [
    """CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY,
        config_hash TEXT NOT NULL,
        seed INTEGER NOT NULL,
        model TEXT NOT NULL,
        task TEXT NOT NULL,
        config TEXT NOT NULL,
        status TEXT NOT NULL,
        step INTEGER NOT NULL DEFAULT 0,
        total_steps INTEGER NOT NULL,
        owner TEXT,
        heartbeat REAL,
        created REAL NOT NULL,
        updated REAL NOT NULL,
        env TEXT,
        task_info TEXT,
        params_total INTEGER,
        params_recurrent INTEGER,
        summary TEXT,
        error TEXT,
        kind TEXT NOT NULL DEFAULT 'run',
        study TEXT,
        UNIQUE (config_hash, seed))""",
    """CREATE TABLE IF NOT EXISTS metrics (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, name TEXT NOT NULL, value REAL,
        PRIMARY KEY (run_id, step, name)) WITHOUT ROWID""",
    """CREATE TABLE IF NOT EXISTS spectra (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, eigenvalues TEXT NOT NULL,
        PRIMARY KEY (run_id, step))""",
    """CREATE TABLE IF NOT EXISTS profiles (
        run_id TEXT NOT NULL, step INTEGER NOT NULL, grad_norms TEXT NOT NULL,
        PRIMARY KEY (run_id, step))""",
]
# Migrations from version v to v+1, run in order on open; a newer file than this code is refused.
_MIGRATIONS: dict[int, list[str]] = {
    1: ["ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'run'",  # version 2: tuning trials
        "ALTER TABLE runs ADD COLUMN study TEXT"],
}


class StoreError(SuiteError):
    pass


# Fault injection for the crash tests (docs/results.md): SUITE_FAULT="<point>:<n>" kills this process
# with SIGKILL the n-th time it reaches <point> (points: checkpoint-write, checkpoint-rename, commit,
# commit-done, prune). Unset, it costs one comparison.
_FAULT = os.environ.get("SUITE_FAULT") or None
_FAULT_HITS: dict[str, int] = {}


def _fault(point: str) -> None:
    if _FAULT is None:
        return
    name, _, n = _FAULT.partition(":")
    if name == point:
        _FAULT_HITS[point] = _FAULT_HITS.get(point, 0) + 1
        if _FAULT_HITS[point] == int(n or 1):
            os.kill(os.getpid(), signal.SIGKILL)


def say(message: str) -> None:
    """A notice to the user (stderr): what the suite did on its own, e.g. set a checkpoint aside."""
    print(f"suite: {message}", file=sys.stderr, flush=True)


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return f"{type(e).__name__}: {text[0] if text else ''}".rstrip(": ")


def me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _owner_alive(owner: str | None, heartbeat: float | None, now: float) -> bool:
    """A claim holds while its heartbeat is fresh, unless its process is known dead (same host).
    An owner "host:pid/TASK" is a task run for the process host:pid (a Ray driver, which performs its
    workers' store calls): it lives as long as that process does."""
    if not owner or heartbeat is None or now - heartbeat >= LEASE_SECONDS:
        return False
    host, _, pid = owner.partition("/")[0].rpartition(":")
    if host == socket.gethostname():
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return False
        except (PermissionError, ValueError):
            pass  # exists under another user, or not a pid: trust the heartbeat
    return True


@dataclass
class Records:
    """What one commit adds: metrics (step, name, value), spectra and gradient profiles."""

    metrics: list[tuple[int, str, float]]
    spectra: list[tuple[int, list[list[float]]]]
    profiles: list[tuple[int, list[float]]]

    @classmethod
    def empty(cls) -> Records:
        return cls([], [], [])

    def clear(self) -> None:
        self.metrics.clear()
        self.spectra.clear()
        self.profiles.clear()


def _finite(v: float) -> float | None:
    return v if math.isfinite(v) else None  # SQLite would turn NaN into NULL anyway; be explicit


class Store:
    def __init__(self, path: str | os.PathLike = "results/suite.db", read_only: bool = False):
        self.path = Path(path)
        # Every store owns its checkpoints, named after it: two stores in one folder never share them.
        self.checkpoints = self.path.with_name(self.path.name + "-checkpoints")
        self._tmp: str | None = None  # a private copy of a WAL store on read-only media
        if self.path.is_dir():
            raise StoreError(f"{self.path} is a directory, not a results store; pass --db with a file, "
                             f"e.g. --db {self.path / 'suite.db'}")
        if read_only:  # show, export, report: never create, migrate or write
            if not self.path.is_file():
                raise StoreError(f"no results store at {self.path}; run `suite run` first or pass --db")
            self._conn = self._open_read_only()
            self._check(writing=False)
            self._check_version()
            return
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._conn = sqlite3.connect(self.path, timeout=120, isolation_level=None)
        except (OSError, sqlite3.Error) as e:
            raise StoreError(f"cannot create or open the results store {self.path} ({_first_line(e)}); "
                             "pass --db with a writable path") from None
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA busy_timeout = 120000")
        self._check(writing=True)  # before the first write: a damaged or foreign file is never touched
        try:
            self._conn.execute("PRAGMA journal_mode = WAL")
            self._conn.execute("PRAGMA synchronous = NORMAL")
            self._migrate()
        except sqlite3.OperationalError as e:
            self._conn.close()
            if "readonly" in str(e) or "read-only" in str(e):
                raise StoreError(f"cannot write to the results store {self.path}: it is read-only "
                                 f"({_first_line(e)}). `suite show`, `suite export` and `suite report` read "
                                 "it as it is; to train, copy it somewhere writable and pass --db") from None
            raise

    def _open_read_only(self) -> sqlite3.Connection:
        uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro"
        try:
            conn = sqlite3.connect(uri, uri=True, timeout=120, isolation_level=None)
            conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
        except sqlite3.OperationalError as e:
            if "unable to open" not in str(e) and "readonly" not in str(e):
                raise StoreError(f"cannot open the results store {self.path} ({_first_line(e)})") from None
            # Read-only media: SQLite cannot create the -shm file a WAL store needs. With no pending
            # WAL, the file alone is the store (immutable=1); with one, read a private copy of both.
            wal = self.path.with_name(self.path.name + "-wal")
            if wal.is_file() and wal.stat().st_size > 0:
                self._tmp = tempfile.mkdtemp(prefix="suite-store-")
                copy = Path(self._tmp) / self.path.name
                shutil.copyfile(self.path, copy)
                shutil.copyfile(wal, copy.with_name(copy.name + "-wal"))
                uri = "file:" + urllib.parse.quote(str(copy))  # private: SQLite may build its -shm there
            else:
                uri = "file:" + urllib.parse.quote(str(self.path.resolve())) + "?mode=ro&immutable=1"
            conn = sqlite3.connect(uri, uri=True, timeout=120, isolation_level=None)
        except sqlite3.DatabaseError:
            pass  # not a database, or damaged: _check says which
        conn.row_factory = sqlite3.Row
        return conn

    def _check(self, writing: bool) -> None:
        """Refuse a file that is not a results store or that SQLite finds damaged, before any write."""
        what = "it was not written to" if writing else "nothing was read from it"
        try:
            tables = {r[0] for r in self._conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
            problems = [r[0] for r in self._conn.execute("PRAGMA quick_check(5)")]
        except sqlite3.DatabaseError as e:
            self.close()
            if "not a database" in str(e):
                raise StoreError(f"{self.path} is not a results store (not an SQLite database); {what}. "
                                 "Pass --db with a store written by `suite run`, or a new path") from None
            if "malformed" in str(e) or "corrupt" in str(e):
                raise StoreError(f"the results store {self.path} is damaged ({_first_line(e)}); {what}. "
                                 f"{self._recover_hint()}") from None
            ro = (" If it is on read-only media, `suite show`, `suite export` and `suite report` still read "
                  "it; to train, copy it somewhere writable and pass --db." if writing else "")
            raise StoreError(f"cannot open the results store {self.path} ({_first_line(e)}); {what}.{ro}") from None
        if problems != ["ok"]:
            self.close()
            raise StoreError(f"the results store {self.path} fails SQLite's integrity check "
                             f"({'; '.join(problems[:3])}); {what}. {self._recover_hint()}")
        if tables and "meta" not in tables:
            self.close()
            raise StoreError(f"{self.path} is an SQLite database but not a results store (tables: "
                             f"{', '.join(sorted(tables))}); {what}. Pass --db with another path")

    def _recover_hint(self) -> str:
        return (f"Keep it as it is and start a new store (--db), or salvage what SQLite can read: "
                f"`sqlite3 {self.path} .recover | sqlite3 recovered.db`")

    def _check_version(self) -> None:
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        # an older store is readable as it is (a missing column reads as its default); a newer one is not
        if row is None or not 1 <= int(row[0]) <= SCHEMA_VERSION:
            found = "none" if row is None else row[0]
            raise StoreError(f"{self.path} has schema version {found}; this suite reads {SCHEMA_VERSION} "
                             "(open it once for writing with `suite run` to migrate an older store)")

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE takes the write lock up front: no upgrade deadlocks)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    def _migrate(self) -> None:
        with self.write() as c:
            for stmt in _SCHEMA[:1]:
                c.execute(stmt)
            row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                for stmt in _SCHEMA[1:]:
                    c.execute(stmt)
                c.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                return
            version = int(row[0])
            if version > SCHEMA_VERSION:
                raise StoreError(f"{self.path} has schema version {version}; this suite reads up to "
                                 f"{SCHEMA_VERSION}: upgrade the suite")
            for v in range(version, SCHEMA_VERSION):
                for stmt in _MIGRATIONS[v]:
                    c.execute(stmt)
            c.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    # ---- runs ------------------------------------------------------------------------------------
    def claim(self, run_id: str, config_hash: str, seed: int, model: str, task: str, config: dict,
              total_steps: int, force: bool = False, owner: str | None = None) -> tuple[str, int]:
        """Take a run for this process, or for ``owner`` (a task this process runs remotely; a retry of
        that task takes over its own claim). Returns (action, step): action is "start", "resume",
        "done" (finished, diverged or pruned, not forced) or "busy" (a live process holds it)."""
        now = time.time()
        mine = owner is not None
        owner = owner or me()
        with self.write() as c:
            row = c.execute("SELECT status, step, owner, heartbeat FROM runs WHERE run_id = ?",
                            (run_id,)).fetchone()
            if row is not None and not force:
                if row["status"] in DONE:
                    return "done", row["step"]
                if (row["status"] == "running" and not (mine and row["owner"] == owner)
                        and _owner_alive(row["owner"], row["heartbeat"], now)):
                    return "busy", row["step"]
            if row is None or force:
                if row is not None:
                    self._delete_records(c, run_id)
                    c.execute("DELETE FROM runs WHERE run_id = ?", (run_id,))
                c.execute(
                    "INSERT INTO runs (run_id, config_hash, seed, model, task, config, status, step,"
                    " total_steps, owner, heartbeat, created, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'running', 0, ?, ?, ?, ?, ?)",
                    (run_id, config_hash, seed, model, task, json.dumps(config, sort_keys=True),
                     total_steps, owner, now, now, now))
                return "start", 0
            if row["step"] == 0:  # step 0's records may be committed; the restart records them again
                self._delete_records(c, run_id)
            c.execute("UPDATE runs SET status = 'running', owner = ?, heartbeat = ?, updated = ?,"
                      " error = NULL WHERE run_id = ?", (owner, now, now, run_id))
            return ("resume" if row["step"] > 0 else "start"), row["step"]

    def register_trials(self, trials: list[tuple[str, str, int, str, str, dict, int]], study: str) -> None:
        """Mark runs (run_id, config_hash, seed, model, task, config, total_steps) as trials of ``study``
        before they start, so a kill at any moment never leaves a trial looking like a headline run."""
        now = time.time()
        with self.write() as c:
            for run_id, config_hash, seed, model, task, config, total_steps in trials:
                c.execute(
                    "INSERT OR IGNORE INTO runs (run_id, config_hash, seed, model, task, config, status, step,"
                    " total_steps, created, updated, kind, study) "
                    "VALUES (?, ?, ?, ?, ?, ?, 'pending', 0, ?, ?, ?, 'trial', ?)",
                    (run_id, config_hash, seed, model, task, json.dumps(config, sort_keys=True), total_steps,
                     now, now, study))

    @staticmethod
    def _delete_records(c: sqlite3.Connection, run_id: str) -> None:
        for table in ("metrics", "spectra", "profiles"):
            c.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,))

    def reset(self, run_id: str, step: int = 0) -> None:
        """Take a run back to ``step``: forget its records after it (every record when 0). Used when the
        checkpoint of its committed step is unusable and it resumes from an older one, or restarts; the
        steps forgotten are recomputed exactly."""
        with self.write() as c:
            if step == 0:
                self._delete_records(c, run_id)
            else:
                for table in ("metrics", "spectra", "profiles"):
                    c.execute(f"DELETE FROM {table} WHERE run_id = ? AND step > ?", (run_id, step))
            c.execute("UPDATE runs SET step = ?, summary = NULL WHERE run_id = ?", (step, run_id))

    def commit(self, run_id: str, step: int, records: Records, **fields) -> None:
        """Insert the buffered records and move the run to ``step``, atomically."""
        now = time.time()
        with self.write() as c:
            c.executemany("INSERT INTO metrics VALUES (?, ?, ?, ?)",
                          [(run_id, s, n, _finite(v)) for s, n, v in records.metrics])
            c.executemany("INSERT INTO spectra VALUES (?, ?, ?)",
                          [(run_id, s, json.dumps(e)) for s, e in records.spectra])
            c.executemany("INSERT INTO profiles VALUES (?, ?, ?)",
                          [(run_id, s, json.dumps(p)) for s, p in records.profiles])
            sets = ", ".join(f"{k} = ?" for k in fields)
            c.execute(f"UPDATE runs SET step = ?, heartbeat = ?, updated = ?{', ' + sets if sets else ''}"
                      " WHERE run_id = ?", (step, now, now, *self._encode(fields).values(), run_id))
            _fault("commit")
        _fault("commit-done")
        records.clear()

    def update(self, run_id: str, **fields) -> None:
        now = time.time()
        with self.write() as c:
            sets = ", ".join(f"{k} = ?" for k in fields)
            c.execute(f"UPDATE runs SET updated = ?, {sets} WHERE run_id = ?",
                      (now, *self._encode(fields).values(), run_id))

    def heartbeat(self, run_id: str) -> None:
        self.update(run_id, heartbeat=time.time())

    @staticmethod
    def _encode(fields: dict) -> dict:
        return {k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
                for k, v in fields.items()}

    # ---- reading ---------------------------------------------------------------------------------
    def runs(self, **where) -> list[dict]:
        cond = " AND ".join(f"{k} = ?" for k in where)
        rows = self._conn.execute(f"SELECT * FROM runs{' WHERE ' + cond if cond else ''} "
                                  "ORDER BY task, model, seed, run_id", tuple(where.values())).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            for k in ("config", "env", "summary", "task_info"):
                d[k] = json.loads(d[k]) if d[k] else None
            out.append(d)
        return out

    def run(self, run_id: str) -> dict | None:
        rows = self.runs(run_id=run_id)
        return rows[0] if rows else None

    def metrics(self, run_id: str | None = None, name: str | None = None) -> list[tuple]:
        q, args = "SELECT run_id, step, name, value FROM metrics", []
        conds = []
        if run_id is not None:
            conds.append("run_id = ?")
            args.append(run_id)
        if name is not None:
            conds.append("name = ?")
            args.append(name)
        if conds:
            q += " WHERE " + " AND ".join(conds)
        return [tuple(r) for r in self._conn.execute(q + " ORDER BY run_id, step, name", args)]

    def series(self, run_id: str, name: str) -> tuple[list[int], list[float | None]]:
        rows = self._conn.execute("SELECT step, value FROM metrics WHERE run_id = ? AND name = ? "
                                  "ORDER BY step", (run_id, name)).fetchall()
        return [r[0] for r in rows], [r[1] for r in rows]

    def spectra(self, run_id: str) -> list[tuple[int, list[list[float]]]]:
        rows = self._conn.execute("SELECT step, eigenvalues FROM spectra WHERE run_id = ? ORDER BY step",
                                  (run_id,)).fetchall()
        return [(r[0], json.loads(r[1])) for r in rows]

    def profiles(self, run_id: str) -> list[tuple[int, list[float]]]:
        rows = self._conn.execute("SELECT step, grad_norms FROM profiles WHERE run_id = ? ORDER BY step",
                                  (run_id,)).fetchall()
        return [(r[0], json.loads(r[1])) for r in rows]

    # ---- checkpoints: the runner reads and writes them only through these -------------------------
    def checkpoint_dir(self, run_id: str) -> Path:
        return self.checkpoints / run_id

    def checkpoint_path(self, run_id: str, step: int) -> Path:
        return self.checkpoint_dir(run_id) / f"step-{step}.pt"

    def _legacy_checkpoint(self, run_id: str, step: int) -> Path:
        """Where stores of suite 0.1.0 kept checkpoints (shared by a folder): read, never pruned."""
        return self.path.parent / "checkpoints" / run_id / f"step-{step}.pt"

    def checkpoint_steps(self, run_id: str) -> list[int]:
        """Steps with a checkpoint on disk, newest first."""
        steps = []
        for p in self.checkpoint_dir(run_id).glob("step-*.pt"):
            with contextlib.suppress(ValueError):
                steps.append(int(p.name[5:-3]))
        return sorted(steps, reverse=True)

    def save_checkpoint(self, run_id: str, step: int, payload: dict) -> None:
        """Write ``payload`` (tensors and plain data) atomically: a temp file, flushed to disk, then a
        rename, so ``step-<s>.pt`` is either absent or complete."""
        import torch

        path = self.checkpoint_path(run_id, step)
        path.parent.mkdir(parents=True, exist_ok=True)
        buf = io.BytesIO()
        torch.save(payload, buf)
        data = buf.getbuffer()
        tmp = path.with_name(f"{path.name}.tmp{os.getpid()}")
        try:
            with open(tmp, "wb") as f:
                f.write(data[: len(data) // 2])
                _fault("checkpoint-write")
                f.write(data[len(data) // 2:])
                f.flush()
                os.fsync(f.fileno())
            _fault("checkpoint-rename")
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

    def load_checkpoint(self, run_id: str, step: int, map_location=None) -> dict | None:
        """The checkpoint of ``step``; if it is missing or unusable, the newest good one before it (its
        payload's "step" says which); None when there is none. An unusable file is set aside (renamed
        ``corrupt-step-<s>.pt``, kept) and said so; it is never loaded as pickled code."""
        import torch

        older = [s for s in self.checkpoint_steps(run_id) if s < step]
        for s in [step, *older]:
            path = self.checkpoint_path(run_id, s)
            if not path.is_file():
                legacy = self._legacy_checkpoint(run_id, s)
                if s != step or not legacy.is_file():
                    continue
                path = legacy
            try:
                payload = torch.load(path, map_location=map_location, weights_only=True)
                if not isinstance(payload, dict) or payload.setdefault("step", s) != s:
                    raise ValueError(f"holds {type(payload).__name__} for step "
                                     f"{payload.get('step') if isinstance(payload, dict) else '?'}")
            except pickle.UnpicklingError:
                # torch's message advises weights_only=False, i.e. running whatever the file holds: not here
                reason = "was refused: it holds Python objects, not only tensors and plain data as the suite writes"
            except Exception as e:  # truncated, garbage, unreadable: all the same to a resume
                reason = f"cannot be read ({_first_line(e)})"
                if "weights_only" in reason:
                    reason = "was refused: it is not a checkpoint of tensors and plain data"
            else:
                if s != step:
                    say(f"run {run_id}: resuming from the checkpoint of step {s}, the newest usable one "
                        f"(the store had reached step {step}; steps after {s} are recomputed)")
                return payload
            if path.parent.parent != self.checkpoints:  # a shared legacy folder: not ours to rename
                say(f"checkpoint {path} {reason}; left in place")
                continue
            aside = self._set_aside(path)
            say(f"checkpoint {path} {reason}; set aside as {aside.name}")
        return None

    def _set_aside(self, path: Path) -> Path:
        n, aside = 1, path.with_name("corrupt-" + path.name)
        while aside.exists():
            n += 1
            aside = path.with_name(f"corrupt-{path.stem}-{n}.pt")
        os.replace(path, aside)
        return aside

    def prune_checkpoints(self, run_id: str, keep: int) -> None:
        """Delete this store's checkpoints of ``run_id`` but step ``keep`` and the newest one before it
        (a fallback should ``keep``'s file prove unreadable), and stale temp files. Only files this
        store wrote are touched: set-aside files and other stores' checkpoints stay."""
        before = [s for s in self.checkpoint_steps(run_id) if s < keep][:1]
        keep_names = {f"step-{s}.pt" for s in (keep, *before)}
        for p in self.checkpoint_dir(run_id).glob("step-*.pt*"):
            if p.name not in keep_names:
                _fault("prune")
                p.unlink(missing_ok=True)

    # ---- export ----------------------------------------------------------------------------------
    def dataframes(self):
        """(runs, metrics) as pandas DataFrames; config and summary fields flattened into columns."""
        import pandas as pd

        runs = self.runs()
        flat = []
        for r in runs:
            row = {k: v for k, v in r.items() if k not in ("config", "env", "summary", "task_info")}
            row.update({f"config.{k}": json.dumps(v) if isinstance(v, (dict, list)) else v
                        for k, v in (r["config"] or {}).items()})
            row.update({f"summary.{k}": v for k, v in (r["summary"] or {}).items()
                        if not isinstance(v, (dict, list))})
            row["env"] = json.dumps(r["env"]) if r["env"] else None
            flat.append(row)
        metrics = pd.DataFrame(self.metrics(), columns=["run_id", "step", "name", "value"])
        return pd.DataFrame(flat), metrics

    def export(self, out_dir: str | os.PathLike, fmt: str) -> list[Path]:
        from suite.errors import check_choice

        check_choice("format", fmt, ("csv", "parquet"))
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        # Replace only files an earlier export wrote (listed in its manifest), never the user's.
        manifest = out / ".suite-export.json"
        try:
            owned = set(json.loads(manifest.read_text())["files"]) if manifest.is_file() else set()
        except (ValueError, KeyError, TypeError):
            owned = set()
        names = [f"{name}.{fmt}" for name in ("runs", "metrics")]
        clash = [n for n in names if (out / n).exists() and n not in owned]
        if clash:
            raise StoreError(f"{out} holds {', '.join(clash)}, not written by `suite export`; it never "
                             "overwrites them: pass another --out")
        manifest.write_text(json.dumps({"files": sorted(owned | set(names))}))
        runs, metrics = self.dataframes()
        paths = []
        for name, df in (("runs", runs), ("metrics", metrics)):
            p = out / f"{name}.{fmt}"
            if fmt == "csv":
                df.to_csv(p, index=False)
            else:
                df.to_parquet(p, index=False)
            paths.append(p)
        return paths
