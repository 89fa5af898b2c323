"""The SQLite store, for real: schema version, claims, atomic commits, concurrent writers, export."""

import importlib.util
import multiprocessing as mp
import sqlite3

import pandas as pd
import pytest
import torch

from suite.store import SCHEMA_VERSION, Records, Store, StoreError


def _claim(store, run_id="r1", force=False, steps=10):
    return store.claim(run_id, "h" + run_id, 0, "scornn", "copying", {"steps": steps}, steps, force=force)


def test_schema_version_and_refusal_of_newer(tmp_path):
    db = tmp_path / "s.db"
    Store(db).close()
    con = sqlite3.connect(db)
    assert con.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
    con.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),))
    con.commit()
    con.close()
    with pytest.raises(StoreError, match="schema version"):
        Store(db)


def test_claim_lifecycle(tmp_path):
    s = Store(tmp_path / "s.db")
    assert _claim(s) == ("start", 0)
    assert _claim(s) == ("busy", 0)  # this very process holds it and is alive
    s.commit("r1", 5, Records([(1, "train/loss", 1.0)], [], []))
    s.update("r1", status="interrupted", owner=None)
    assert _claim(s) == ("resume", 5)
    s.update("r1", status="finished", owner=None)
    assert _claim(s) == ("done", 5)
    assert _claim(s, force=True) == ("start", 0)
    assert s.metrics("r1") == []  # forced rerun starts clean


def test_dead_owner_is_taken_over(tmp_path):
    s = Store(tmp_path / "s.db")
    _claim(s)
    import socket

    s.update("r1", owner=f"{socket.gethostname()}:999999999")  # no such pid
    assert _claim(s)[0] == "start"


def test_commit_is_atomic_and_refuses_duplicates(tmp_path):
    s = Store(tmp_path / "s.db")
    _claim(s)
    s.commit("r1", 2, Records([(1, "train/loss", 0.5), (2, "train/loss", float("nan"))],
                              [(0, [[1.0, 0.0]])], [(0, [0.1, 0.2])]))
    with pytest.raises(sqlite3.IntegrityError):
        s.commit("r1", 3, Records([(3, "train/loss", 0.4), (2, "train/loss", 0.3)], [], []))
    # the failed commit added nothing and did not move the run
    assert s.metrics("r1") == [("r1", 1, "train/loss", 0.5), ("r1", 2, "train/loss", None)]
    assert s.run("r1")["step"] == 2
    assert s.spectra("r1") == [(0, [[1.0, 0.0]])] and s.profiles("r1") == [(0, [0.1, 0.2])]


def _writer(db, k, n_runs, n_steps):
    s = Store(db)
    for r in range(n_runs):
        rid = f"w{k}-r{r}"
        s.claim(rid, rid, 0, "m", "t", {}, n_steps)
        for step in range(0, n_steps, 10):
            s.commit(rid, step + 9, Records([(step + i, "train/loss", float(step + i)) for i in range(10)],
                                            [], []))
        s.update(rid, status="finished", owner=None)
    # everybody also races for one shared run: exactly one may start it
    action, _ = s.claim("shared", "shared", 0, "m", "t", {}, 1)
    s.close()
    return action


def test_concurrent_writers_lose_nothing(tmp_path):
    db = str(tmp_path / "s.db")
    Store(db).close()
    with mp.get_context("spawn").Pool(4) as pool:
        actions = pool.starmap(_writer, [(db, k, 3, 200) for k in range(4)])
    s = Store(db)
    assert sorted(actions).count("start") == 1 and len(actions) == 4
    for k in range(4):
        for r in range(3):
            steps, values = s.series(f"w{k}-r{r}", "train/loss")
            assert steps == list(range(200)) and values == [float(i) for i in range(200)]
    assert len(s.metrics()) == 4 * 3 * 200


def test_export_csv_and_parquet(tmp_path):
    s = Store(tmp_path / "s.db")
    _claim(s)
    s.commit("r1", 1, Records([(1, "train/loss", 0.25)], [], []), summary={"best_val": 0.9})
    parquet = importlib.util.find_spec("pyarrow") is not None  # the [parquet] extra
    for fmt in ("csv", "parquet") if parquet else ("csv",):
        runs_path, metrics_path, spectra_path, profiles_path = s.export(tmp_path / fmt, fmt)
        read = pd.read_csv if fmt == "csv" else pd.read_parquet
        runs, metrics = read(runs_path), read(metrics_path)
        assert runs.loc[0, "run_id"] == "r1" and runs.loc[0, "summary.best_val"] == 0.9
        assert runs.loc[0, "config.steps"] == 10
        assert metrics.to_dict("records") == [{"run_id": "r1", "step": 1, "name": "train/loss", "value": 0.25}]


def test_remote_task_owners(tmp_path):
    import os
    import socket

    s = Store(tmp_path / "s.db")
    task = f"{socket.gethostname()}:{os.getpid()}/ray:abc"
    assert _claim_as(s, task) == ("start", 0)
    assert _claim_as(s, task) == ("start", 0)  # a retry of the same task takes over its own claim
    assert _claim_as(s, f"{socket.gethostname()}:{os.getpid()}/ray:other") == ("busy", 0)  # its driver lives
    assert s.run("r1")["owner"] == task
    s.update("r1", owner=f"{socket.gethostname()}:999999999/ray:abc")  # a driver that died
    assert _claim_as(s, task) == ("start", 0)


def test_restart_at_step_0_drops_step_0_records(tmp_path):
    s = Store(tmp_path / "s.db")
    _claim(s)
    s.commit("r1", 0, Records([(0, "val/loss", 1.0)], [(0, [[1.0, 0.0]])], [(0, [0.1])]))
    s.update("r1", status="interrupted", owner=None)
    assert _claim(s) == ("start", 0)
    assert s.metrics("r1") == [] and s.spectra("r1") == [] and s.profiles("r1") == []
    s.commit("r1", 0, Records([(0, "val/loss", 1.0)], [], []))  # recorded again, no duplicate
    assert s.metrics("r1") == [("r1", 0, "val/loss", 1.0)]


def _claim_as(store, owner, run_id="r1"):
    return store.claim(run_id, "h" + run_id, 0, "scornn", "copying", {"steps": 10}, 10, owner=owner)


def test_checkpoints_belong_to_their_store_and_the_last_two_are_kept(tmp_path):
    a, b = Store(tmp_path / "a.db"), Store(tmp_path / "b.db")
    assert a.checkpoints == tmp_path / "a.db-checkpoints" and b.checkpoints == tmp_path / "b.db-checkpoints"
    _claim(a, "r")
    _claim(b, "r")
    for step in (0, 10, 20):
        a.save_checkpoint("r", step, {"step": step, "w": torch.full((3,), float(step))})
        a.prune_checkpoints("r", keep=step)
    b.save_checkpoint("r", 5, {"step": 5})
    b.prune_checkpoints("r", keep=5)
    assert a.checkpoint_steps("r") == [20, 10] and b.checkpoint_steps("r") == [5]
    assert sorted(p.name for p in a.checkpoint_dir("r").iterdir()) == ["step-10.pt", "step-20.pt"]  # no temp files
    assert a.load_checkpoint("r", 20)["w"].tolist() == [20.0] * 3


def test_a_legacy_shared_checkpoint_is_read_but_never_pruned(tmp_path, capfd):
    legacy = tmp_path / "checkpoints" / "r"
    legacy.mkdir(parents=True)
    torch.save({"step": 7, "w": torch.ones(2)}, legacy / "step-7.pt")
    (legacy / "step-3.pt").write_bytes(b"another store's file")
    s = Store(tmp_path / "s.db")
    _claim(s, "r")
    assert s.load_checkpoint("r", 7)["w"].tolist() == [1.0, 1.0]
    s.prune_checkpoints("r", keep=7)
    (legacy / "step-7.pt").write_bytes(b"garbage")
    assert s.load_checkpoint("r", 7) is None and "left in place" in capfd.readouterr().err
    assert sorted(p.name for p in legacy.iterdir()) == ["step-3.pt", "step-7.pt"]
