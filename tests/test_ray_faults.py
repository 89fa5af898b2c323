"""Faults on a simulated two-node Ray cluster (ray.cluster_utils.Cluster): a worker process killed with
SIGKILL mid-run, then a whole node removed mid-sweep. Ray retries the task, which resumes from the last
checkpoint the driver holds: every run finishes with the records of an uninterrupted run, none twice."""

import logging
import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest

from suite.executors import Executor, run_all
from tests.helpers import tiny
from tests.test_ray_executor import assert_same_runs

ray = pytest.importorskip("ray", reason="the Ray executor needs Ray: pip install '.[ray]'")
from ray.cluster_utils import Cluster  # noqa: E402

STEPS = 400
# long enough (a few seconds) to be struck mid-run, with a commit every 20 steps
SWEEP = [tiny("scornn", seed=s, steps=STEPS, eval_every=20, hidden=32, task_options={"T": 30}) for s in (0, 1)]


@pytest.fixture(scope="module")
def cluster(one_ray_at_a_time):
    # the head schedules no runs (it holds the driver's mailbox); each node takes one run at a time.
    # Fast health checks, so a killed node is noticed within about two seconds.
    c = Cluster(initialize_head=True, head_node_args={"num_cpus": 0, "_system_config": {
        "health_check_initial_delay_ms": 0, "health_check_period_ms": 500, "health_check_failure_threshold": 4}})
    nodes = [c.add_node(num_cpus=1) for _ in range(2)]
    ray.init(address=c.address, logging_level=logging.WARNING)
    c.wait_for_nodes()
    yield c, nodes
    ray.shutdown()
    c.shutdown()


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    db = str(tmp_path_factory.mktemp("ref") / "s.db")
    run_all(SWEEP, db, "cpu", executor=Executor(workers=1, threads=1))
    return db


def _sweep_in_background(db):
    """The driver, in a thread of this process, so the test can strike while it runs."""
    result = {}

    def drive():
        try:
            result["outcomes"] = run_all(SWEEP, db, "cpu", executor=Executor("ray", max_retries=3))
        except BaseException as e:  # reported by the test
            result["error"] = e

    t = threading.Thread(target=drive, daemon=True)
    t.start()
    return t, result


def _wait_mid_run(db, thread, n=2, at_least=60, timeout=180):
    """Both runs running, past their first few commits: returns {run_id: committed step}."""
    t0 = time.time()
    while time.time() - t0 < timeout:
        assert thread.is_alive(), "the sweep ended before it could be struck mid-run"
        try:
            con = sqlite3.connect(db, timeout=1)
            rows = dict(con.execute("SELECT run_id, step FROM runs WHERE status = 'running'").fetchall())
            con.close()
        except sqlite3.OperationalError:
            rows = {}
        if len(rows) >= n and min(rows.values()) >= at_least:
            return rows
        time.sleep(0.05)
    raise AssertionError("the runs did not progress")


def _run_workers(node=None) -> list[int]:
    """Ray workers executing a run (Ray titles a worker process after the task it runs), on ``node`` only
    when given (a node's workers are children of its raylet)."""
    raylet = None if node is None else next(p.pid for kind, p in node.live_processes() if kind == "raylet")
    pids = []
    for p in Path("/proc").iterdir():
        if p.name.isdigit():
            try:
                title = (p / "cmdline").read_bytes()
                ppid = int((p / "stat").read_text().rpartition(")")[2].split()[1])
            except (OSError, ValueError, IndexError):
                continue
            if title.startswith(b"ray::_ray_run") and raylet in (None, ppid):
                pids.append(int(p.name))
    return pids


def _finish(thread, result, db, reference):
    thread.join(timeout=300)
    assert not thread.is_alive(), "the sweep did not finish"
    assert "error" not in result, result.get("error")
    assert sorted(o.status for o in result["outcomes"]) == ["finished", "finished"]
    assert_same_runs(db, reference, SWEEP)  # same values, every step exactly once


def test_worker_killed_mid_run(tmp_path, cluster, reference):
    db = str(tmp_path / "s.db")
    thread, result = _sweep_in_background(db)
    at_kill = _wait_mid_run(db, thread)
    pids = _run_workers()
    assert pids, "no Ray worker is running a run"
    os.kill(pids[0], signal.SIGKILL)
    assert all(0 < s < STEPS for s in at_kill.values())
    _finish(thread, result, db, reference)


def test_node_removed_mid_sweep(tmp_path, cluster, reference):
    c, nodes = cluster
    db = str(tmp_path / "s.db")
    thread, result = _sweep_in_background(db)
    at_removal = _wait_mid_run(db, thread)
    assert _run_workers(nodes[0]), "the node to remove runs no run"
    c.remove_node(nodes[0], allow_graceful=False)  # its raylet and workers die at once
    assert all(0 < s < STEPS for s in at_removal.values())
    _finish(thread, result, db, reference)  # the lost run is retried on the node that is left
