"""The results store: one SQLite file (default results/suite.db), schema-versioned, safe to share.

Durability rule: metrics reach the database only together with the checkpoint they belong to. The
runner writes ``<store>-checkpoints/<run_id>/step-<s>.pt`` atomically first (every store owns its
checkpoints: ``results/suite.db`` keeps them in ``results/suite.db-checkpoints/``), then commits, in one transaction,
every buffered metric up to step s and ``runs.step = s``. A process killed at any point (kill -9
included) leaves the database at its last commit and the matching checkpoint on disk, so a resume
recomputes the uncommitted steps exactly (batches are pure functions of (seed, step)) and inserts each
(run, step, name) once; the primary keys refuse duplicates.

Concurrency: WAL journal, a busy timeout, and BEGIN IMMEDIATE for every write, so several processes
(parallel workers, or several ``suite run`` commands) can share one store. A run has one owner at a
time (host:pid, or host:pid/ray:TASK for a Ray task whose driver is host:pid): ``claim`` takes it, and
every later write of the run (records, checkpoints, status) checks, inside its transaction, that the
owner is still this Store's claim, else raises ClaimLost and writes nothing. A claim held by a live
process is never taken, not even by ``force``; one held by a dead process on this host, or not
refreshed within the lease, is taken over and resumed.

Faults: a store that cannot be opened, is not a results store, fails ``PRAGMA quick_check`` or has a
schema version this suite does not know is refused (StoreError) before anything is written to it.
Read-only opens (show, export, report) also work on read-only media, WAL files included, and on
stores of every older schema version; a row whose JSON fields are damaged is read without them and
named. A write that fails (a full disk) raises StoreWriteError: its transaction rolled back, every
earlier commit holds. Checkpoints (suite.checkpoints) are recorded in the store with their SHA-256
before they are written; one that cannot be loaded or is not what the suite wrote is set aside
(renamed, kept) and the newest good one before it is used instead. Pruning deletes only checkpoint
files the store recorded, and keeps the one of the run's best validation step.

What the runner needs of a store is ``suite.recorder.Recorder``; this Store implements it.
"""

from __future__ import annotations

import contextlib
import functools
import json
import math
import os
import shutil
import socket
import sqlite3
import tempfile
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from suite.checkpoints import Checkpoints, folder_of
from suite.crash import fault as _fault
from suite.errors import ClaimLost, StoreError, StoreWriteError, say
from suite.errors import first_line as _first_line
from suite.recorder import Recorder

SCHEMA_VERSION = 3
# pending: a tuning trial registered but not started; pruned: a trial its search stopped early
STATUSES = ("pending", "running", "finished", "diverged", "pruned", "failed", "interrupted")
DONE = ("finished", "diverged", "pruned")  # never resumed unless forced
LEASE_SECONDS = 900.0

# The checkpoint files a store wrote (recorded before each is written), with their SHA-256.
_CHECKPOINTS = """CREATE TABLE IF NOT EXISTS checkpoints (
    run_id TEXT NOT NULL, step INTEGER NOT NULL, file TEXT NOT NULL, sha256 TEXT NOT NULL,
    PRIMARY KEY (run_id, file))"""
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
    _CHECKPOINTS,
]
# Migrations from version v to v+1, run in order on open; a newer file than this code is refused.
_MIGRATIONS: dict[int, list[str]] = {
    1: ["ALTER TABLE runs ADD COLUMN kind TEXT NOT NULL DEFAULT 'run'",  # version 2: tuning trials
        "ALTER TABLE runs ADD COLUMN study TEXT"],
    2: [_CHECKPOINTS],  # version 3: the checkpoint files the store wrote, with their SHA-256
}
# Columns a store of an older version lacks, read as the value the migration gives them.
_ADDED_COLUMNS = {"kind": "run", "study": None}
_JSON_FIELDS = ("config", "env", "summary", "task_info")


def me() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _pid_of(owner: str) -> tuple[str, str]:
    host, _, pid = owner.partition("/")[0].rpartition(":")
    return host, pid


def stop_hint(owner: str) -> str:
    """How to stop the process holding a claim."""
    host, pid = _pid_of(owner)
    where = "" if host == socket.gethostname() else f" on {host}"
    return (f"stop it with `kill -INT {pid}`{where} (it checkpoints, marks the run interrupted and exits), "
            "or wait for it to finish")


def _owner_alive(owner: str | None, heartbeat: float | None, now: float) -> bool:
    """A claim holds while its heartbeat is fresh, unless its process is known dead (same host).
    An owner "host:pid/TASK" is a task run for the process host:pid (a Ray driver, which performs its
    workers' store calls): it lives as long as that process does."""
    if not owner or heartbeat is None or now - heartbeat >= LEASE_SECONDS:
        return False
    host, pid = _pid_of(owner)
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


def _json_object(text) -> tuple[dict | None, str | None]:
    """A JSON field of a runs row: (the object, None), or (None, what is wrong with it)."""
    if text is None or text == "":
        return None, None
    try:
        value = json.loads(text)
    except (TypeError, ValueError) as e:
        return None, f"not valid JSON ({_first_line(e)})"
    if not isinstance(value, dict):
        return None, f"a JSON {type(value).__name__} where an object belongs"
    return value, None


def _json_list(text):
    try:
        value = json.loads(text)
    except (TypeError, ValueError):
        return None
    return value if isinstance(value, list) else None


def _schema_version(path: Path, text) -> int:
    """The schema version a store's meta table states; anything but a version a suite wrote is refused."""
    if not isinstance(text, str) or not text.isdigit() or str(int(text)) != text or int(text) < 1:
        raise StoreError(f"{path} has schema version {text!r}, which no version of the suite writes (this one "
                         f"reads 1 to {SCHEMA_VERSION}); it was not changed. Pass --db with a store written by "
                         "`suite run`, or a new path")
    if int(text) > SCHEMA_VERSION:
        raise StoreError(f"{path} has schema version {text}; this suite reads up to {SCHEMA_VERSION}: upgrade the "
                         "suite (the store was not changed)")
    return int(text)


class Store(Recorder):
    def __init__(self, path: str | os.PathLike = "results/suite.db", read_only: bool = False):
        self.path = Path(path)
        # Every store owns its checkpoints, named after it: two stores in one folder never share them.
        self.checkpoints = folder_of(self.path)
        self._tmp: str | None = None  # a private copy of a WAL store on read-only media
        self._held: dict[str, str] = {}  # run_id -> the owner this Store claimed it as
        self._said: set[str] = set()  # runs whose damaged fields were already named
        self._columns: set[str] | None = None
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
            raise StoreWriteError(f"cannot write to the results store {self.path} ({_first_line(e)}); it was "
                                  "not changed. Fix the cause (e.g. free disk space) and rerun") from None
        except StoreError:
            self._conn.close()
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
        # an older store is readable as it is (a missing column reads as its migration default); a newer
        # one, or a version no suite wrote, is not
        if row is None:
            self.close()
            raise StoreError(f"{self.path} states no schema version; it is not a store this suite can read "
                             "(nothing was read from it)")
        try:
            _schema_version(self.path, row[0])
        except StoreError:
            self.close()
            raise

    def close(self) -> None:
        with contextlib.suppress(sqlite3.Error):
            self._conn.close()
        if self._tmp:
            shutil.rmtree(self._tmp, ignore_errors=True)
            self._tmp = None

    @contextlib.contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (BEGIN IMMEDIATE takes the write lock up front: no upgrade deadlocks)."""
        self._conn.execute("BEGIN IMMEDIATE")
        try:
            yield self._conn
        except BaseException:
            with contextlib.suppress(sqlite3.Error):
                self._conn.execute("ROLLBACK")
            raise
        else:
            self._conn.execute("COMMIT")

    @contextlib.contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction; a write SQLite cannot make (a full disk, an I/O error, a lock held past
        the busy timeout) is a StoreWriteError, and rolls back whole."""
        try:
            with self._transaction() as c:
                yield c
        except sqlite3.OperationalError as e:
            raise StoreWriteError(f"cannot write to the results store {self.path} ({_first_line(e)}); every "
                                  "earlier commit and its checkpoint are intact: fix the cause (e.g. free disk "
                                  "space) and rerun the same command to resume") from None

    @contextlib.contextmanager
    def _holding(self, run_id: str) -> Iterator[sqlite3.Connection]:
        """A write transaction of ``run_id`` that goes ahead only while this Store's claim still owns it."""
        owner = self._held.get(run_id)
        with self.write() as c:
            row = c.execute("SELECT owner FROM runs WHERE run_id = ?", (run_id,)).fetchone()
            if owner is None or row is None or row[0] != owner:
                self._held.pop(run_id, None)
                if owner is None:
                    why = "this process does not hold it (claim it first)"
                elif row is None:
                    why = "it is no longer in the store"
                else:
                    why = f"it is now held by {row[0] or 'nobody'}"
                raise ClaimLost(f"run {run_id} was not written: {why}")
            yield c

    def holds(self, run_id: str) -> bool:
        return run_id in self._held

    def holder(self, run_id: str) -> str | None:
        """The owner of a run a live process is training, else None."""
        row = self._conn.execute("SELECT status, owner, heartbeat FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        if row is None or row["status"] != "running" or not _owner_alive(row["owner"], row["heartbeat"], time.time()):
            return None
        return row["owner"]

    def _migrate(self) -> None:
        with self._transaction() as c:
            for stmt in _SCHEMA[:1]:
                c.execute(stmt)
            row = c.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
            if row is None:
                for stmt in _SCHEMA[1:]:
                    c.execute(stmt)
                c.execute("INSERT INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
                return
            version = _schema_version(self.path, row[0])
            for v in range(version, SCHEMA_VERSION):
                for stmt in _MIGRATIONS[v]:
                    c.execute(stmt)
            c.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION),))

    # ---- runs ------------------------------------------------------------------------------------
    def claim(self, run_id: str, config_hash: str, seed: int, model: str, task: str, config: dict,
              total_steps: int, force: bool = False, owner: str | None = None) -> tuple[str, int]:
        """Take a run for this process, or for ``owner`` (a task this process runs remotely; a retry of
        that task takes over its own claim). Returns (action, step): action is "start", "resume",
        "done" (finished, diverged or pruned, not forced) or "busy" (a live process holds it: never
        taken, not even with ``force``; ``holder`` names it)."""
        now = time.time()
        mine = owner is not None
        owner = owner or me()
        with self.write() as c:
            row = c.execute("SELECT status, step, owner, heartbeat FROM runs WHERE run_id = ?",
                            (run_id,)).fetchone()
            if row is not None:
                if (row["status"] == "running" and not (mine and row["owner"] == owner)
                        and _owner_alive(row["owner"], row["heartbeat"], now)):
                    return "busy", row["step"]
                if row["status"] in DONE and not force:
                    return "done", row["step"]
            self._held[run_id] = owner  # the transaction below makes it so (or raises)
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
        with self._holding(run_id) as c:
            if step == 0:
                self._delete_records(c, run_id)
            else:
                for table in ("metrics", "spectra", "profiles"):
                    c.execute(f"DELETE FROM {table} WHERE run_id = ? AND step > ?", (run_id, step))
            c.execute("UPDATE runs SET step = ?, summary = NULL WHERE run_id = ?", (step, run_id))

    def commit(self, run_id: str, step: int, records: Records, **fields) -> None:
        """Insert the buffered records and move the run to ``step``, atomically (only while this Store
        holds the run: else ClaimLost, and nothing is written)."""
        now = time.time()
        with self._holding(run_id) as c:
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
        self._released(run_id, fields)
        _fault("commit-done")
        records.clear()

    def update(self, run_id: str, **fields) -> None:
        """Set fields of a run this Store holds (``owner=None`` releases it)."""
        now = time.time()
        with self._holding(run_id) as c:
            sets = ", ".join(f"{k} = ?" for k in fields)
            c.execute(f"UPDATE runs SET updated = ?, {sets} WHERE run_id = ?",
                      (now, *self._encode(fields).values(), run_id))
        self._released(run_id, fields)

    def _released(self, run_id: str, fields: dict) -> None:
        if "owner" in fields:
            if fields["owner"] is None:
                self._held.pop(run_id, None)
            else:
                self._held[run_id] = fields["owner"]

    def heartbeat(self, run_id: str) -> None:
        self.update(run_id, heartbeat=time.time())

    @staticmethod
    def _encode(fields: dict) -> dict:
        return {k: json.dumps(v, sort_keys=True) if isinstance(v, (dict, list)) else v
                for k, v in fields.items()}

    # ---- reading ---------------------------------------------------------------------------------
    def _run_columns(self) -> set[str]:
        if self._columns is None:
            self._columns = {r[1] for r in self._conn.execute("PRAGMA table_info(runs)")}
        return self._columns

    def runs(self, **where) -> list[dict]:
        """The runs matching ``where`` (column = value), JSON fields decoded. A store of an older schema
        reads with the columns it lacks at their migration defaults. A JSON field that is damaged
        (not JSON, or not an object) reads as None; the row then lists it under "damaged", and the
        store says so once on stderr."""
        cols = self._run_columns()
        in_sql = {k: v for k, v in where.items() if k in cols}
        cond = " AND ".join(f"{k} = ?" for k in in_sql)
        rows = self._conn.execute(f"SELECT * FROM runs{' WHERE ' + cond if cond else ''} "
                                  "ORDER BY task, model, seed, run_id", tuple(in_sql.values())).fetchall()
        out = []
        for r in rows:
            d = dict(r)
            for k, default in _ADDED_COLUMNS.items():
                d.setdefault(k, default)
            if any(d.get(k) != v for k, v in where.items() if k not in cols):
                continue
            damaged = []
            for k in _JSON_FIELDS:
                d[k], why = _json_object(d[k])
                if why:
                    damaged.append(f"{k}: {why}")
            if damaged:
                d["damaged"] = damaged
                if d["run_id"] not in self._said:
                    self._said.add(d["run_id"])
                    say(f"run {d['run_id']} in {self.path} has damaged fields ({'; '.join(damaged)}); "
                        "it is read without them")
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
        """Eigenvalues by step; a record that is not a JSON list is left out (and said)."""
        return self._json_records("spectra", "eigenvalues", run_id)

    def profiles(self, run_id: str) -> list[tuple[int, list[float]]]:
        return self._json_records("profiles", "grad_norms", run_id)

    def _json_records(self, table: str, column: str, run_id: str) -> list:
        out, bad = [], []
        for step, text in self._conn.execute(f"SELECT step, {column} FROM {table} WHERE run_id = ? ORDER BY step",
                                             (run_id,)):
            value = _json_list(text)
            if value is None:
                bad.append(step)
            else:
                out.append((step, value))
        if bad and f"{table}:{run_id}" not in self._said:
            self._said.add(f"{table}:{run_id}")
            say(f"run {run_id} in {self.path}: {table} at step(s) {', '.join(map(str, bad[:5]))} are damaged "
                "(not a JSON list); they are left out")
        return out

    # ---- checkpoints (suite.checkpoints): the runner reads and writes them only through these -------
    @functools.cached_property
    def checkpoint_files(self) -> Checkpoints:
        """This store's checkpoint files, recorded in its ``checkpoints`` table."""
        return Checkpoints(self.path, self._conn, self._holding, self.holds)

    def checkpoint_dir(self, run_id: str) -> Path:
        return self.checkpoint_files.run_dir(run_id)

    def checkpoint_path(self, run_id: str, step: int) -> Path:
        return self.checkpoint_files.path(run_id, step)

    def checkpoint_steps(self, run_id: str) -> list[int]:
        """Steps with a checkpoint file (named exactly ``step-<s>.pt``) on disk, newest first."""
        return self.checkpoint_files.steps(run_id)

    def save_checkpoint(self, run_id: str, step: int, payload: dict) -> None:
        """Write the checkpoint of ``step`` atomically (``Checkpoints.save``)."""
        self.checkpoint_files.save(run_id, step, payload)

    def load_checkpoint(self, run_id: str, step: int, map_location=None) -> dict | None:
        """The checkpoint of ``step``, else the newest good one before it, else None; unusable files
        are set aside (``Checkpoints.load``)."""
        return self.checkpoint_files.load(run_id, step, map_location)

    def prune_checkpoints(self, run_id: str, keep: int, best: int | None = None) -> None:
        """Delete the run's recorded checkpoints but ``keep``, the newest before it and ``best``
        (``Checkpoints.prune``)."""
        self.checkpoint_files.prune(run_id, keep, best)

    # ---- export ----------------------------------------------------------------------------------
    def dataframes(self) -> dict:
        """The store as pandas DataFrames, one per exported table (docs/results.md, "Exports"):

        - ``runs``: one row per run; its protocol's label; config, options, environment, task info and
          summary flattened into columns (``config.lr``, ``model.rho``, ``task.T``, ``env.torch``,
          ``summary.best_val``), a nested value kept as a JSON string;
        - ``metrics``: run_id, step, name, value (long format);
        - ``spectra``: run_id, step, index, real, imag (one eigenvalue of W a row);
        - ``profiles``: run_id, step, t, grad_norm (||dL/dh_t||, one time step a row)."""
        import pandas as pd

        runs = self.runs()
        flat = [_flat_run(r) for r in runs]
        ids = [r["run_id"] for r in runs]
        metrics = pd.DataFrame(self.metrics(), columns=["run_id", "step", "name", "value"])
        spectra = pd.DataFrame(
            [(run_id, step, i, ev[0], ev[1]) for run_id in ids for step, evs in self.spectra(run_id)
             for i, ev in enumerate(evs)], columns=["run_id", "step", "index", "real", "imag"])
        profiles = pd.DataFrame(
            [(run_id, step, t, g) for run_id in ids for step, norms in self.profiles(run_id)
             for t, g in enumerate(norms, start=1)], columns=["run_id", "step", "t", "grad_norm"])
        return {"runs": _uniform(pd.DataFrame(flat)), "metrics": metrics, "spectra": spectra, "profiles": profiles}

    def export(self, out_dir: str | os.PathLike, fmt: str) -> list[Path]:
        """Write every table of ``dataframes`` as ``fmt`` into ``out_dir``: each file complete or not
        there (written aside, then renamed into place), never over a file or through a symlink the
        suite did not write (suite.outputs). Parquet needs pyarrow (the ``parquet`` extra): without it
        this raises before the store is read or anything is written."""
        from suite import outputs
        from suite.errors import check_choice

        check_choice("format", fmt, EXPORT_FORMATS)
        if fmt == "parquet":
            require_parquet()
        out = Path(out_dir)
        if out.exists() and not out.is_dir():
            raise StoreError(f"export folder {out} is a file; pass --out with a folder")
        tables = self.dataframes()  # the store first: a store that cannot be read changes nothing on disk
        names = [f"{name}.{fmt}" for name in EXPORT_TABLES]

        def refuse(clash: list[str]) -> StoreError:
            return StoreError(f"{out} holds {', '.join(clash)}, not written by `suite export`; it never "
                              "overwrites them: pass another --out")

        out.mkdir(parents=True, exist_ok=True)
        mine = outputs.owned(out, EXPORT_MANIFEST, _recognised_export)
        clash = outputs.clashes(out, names, mine)
        if clash:
            raise refuse(clash)
        staging = outputs.stage(out)
        try:
            for name, table in zip(names, EXPORT_TABLES):
                df = tables[table]
                if fmt == "csv":
                    df.to_csv(staging / name, index=False)
                else:
                    df.to_parquet(staging / name, index=False)
                _fault("export")
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        written = outputs.publish(staging, out, EXPORT_MANIFEST, mine, refuse=refuse)
        return [p for n in names for p in written if p.name == n]


EXPORT_FORMATS = ("csv", "parquet")
EXPORT_TABLES = ("runs", "metrics", "spectra", "profiles")
PARQUET_EXTRA = "pip install '.[parquet]' in the suite's source folder"
# The runs table's columns before the flattened ones, in this order (docs/results.md lists them all).
_RUN_COLUMNS = ("run_id", "protocol", "model", "task", "seed", "kind", "study", "status", "step", "total_steps",
                "config_hash", "params_total", "params_recurrent", "owner", "heartbeat", "created", "updated",
                "error")


def require_parquet() -> None:
    """pyarrow, or a clear error naming the extra and the CSV alternative."""
    try:
        import pyarrow  # noqa: F401
    except ImportError:
        raise StoreError(f"--format parquet needs pyarrow, which is not installed here: {PARQUET_EXTRA}; "
                         "or export CSV (--format csv, the default), which needs nothing more") from None


def _flat(prefix: str, d: dict | None) -> dict:
    """``{prefix}.{key}`` columns; a nested value (a list, a dict) as a JSON string."""
    return {f"{prefix}.{k}": json.dumps(v, sort_keys=True) if isinstance(v, (dict, list, tuple)) else v
            for k, v in (d or {}).items()}


def _flat_run(r: dict) -> dict:
    """One runs row with its JSON fields flattened into columns (docs/results.md, "Exports")."""
    config = dict(r["config"] or {})
    row = {k: r.get(k) for k in _RUN_COLUMNS if k != "protocol"}
    row["protocol"] = _protocol_label(r) if config else None
    options = {name: config.pop(name, None) or {} for name in ("model_options", "task_options", "group_options")}
    row.update(_flat("config", {k: v for k, v in config.items() if k not in ("model", "task", "seed")}))
    row.update(_flat("config", options["group_options"]))  # config.lr.upper: a parameter group's setting
    row.update(_flat("model", options["model_options"]))
    row.update(_flat("task", options["task_options"]))
    row.update(_flat("env", r["env"]))
    row.update(_flat("task_info", r["task_info"]))
    row.update(_flat("summary", r["summary"]))
    if r.get("damaged"):
        row["damaged"] = "; ".join(r["damaged"])
    return {k: row[k] for k in ("run_id", "protocol", *row) if k in row}


def _uniform(df):
    """A column whose values are of mixed kinds (a number for one run, text for another) as text, so
    every column has one type (Parquet needs it; CSV reads back the same)."""
    for col in [c for c in df.columns if df[c].dtype == "object"]:
        kinds = {type(v) for v in df[col] if v is not None and v == v}
        if len(kinds) > 1 and kinds != {int, float}:
            df[col] = [v if v is None or v != v or isinstance(v, str) else json.dumps(v) for v in df[col]]
    return df


def _protocol_label(r: dict) -> str | None:
    """The run's protocol: its name, or ``<task>-<6 hex digits>`` for one the suite does not name (the
    report's labels, computed from the stored config alone)."""
    from suite.protocols import protocol_of

    try:
        return protocol_of({"task": r["task"], **r["config"]}).label
    except Exception:  # a config this suite cannot read as a protocol: the column stays empty
        return None


EXPORT_MANIFEST = ".suite-export.json"


def _recognised_export(path: Path) -> bool:
    """A file an export wrote before its manifest recorded hashes: a CSV or Parquet table of ours."""
    with open(path, "rb") as f:
        head = f.read(64)
    return head.startswith(b"PAR1") if path.suffix == ".parquet" else head.startswith(b"run_id,")
