"""Kill -9 at many points of a run, resume each, compare with the uninterrupted run (SQLite-style crash
testing). Each kill is a real SIGKILL of a real `suite run` process: either at a named point inside the
store (SUITE_FAULT, see suite/store.py: half-written checkpoint, checkpoint written but not renamed,
commit rows inserted but not committed, committed but old checkpoints not pruned, mid-prune), or from
outside at a random moment. After each resume: 0 records lost, 0 duplicated, every value identical
(same thread count: bit for bit).

Slow (about 5 s a point on two cores): `nox -s faults` runs every point; a plain `pytest` runs
CRASH_POINTS_QUICK (two) of them. SUITE_CRASH_POINTS=all (what the nox session sets) selects every one.
Figures are in docs/results.md.
"""

from __future__ import annotations

import os
import random
import signal
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, committed_step

ARGS = ["run", "--models", "scornn", "--tasks", "copying", "--steps", "60", "--set", "T=20", "--set", "K=4",
        "--set", "hidden=24", "--set", "eval_every=10", "--set", "checkpoint_every=5", "--set", "eval_size=64",
        "--set", "batch_size=16", "--no-report", "--workers", "1", "--seeds", "0"]
# 13 evaluations+checkpoints (steps 0, 5, ..., 60): occurrences 1..13 of each point exist
NAMED = [(point, n) for point in ("checkpoint-write", "checkpoint-rename", "commit", "commit-done", "prune")
         for n in (1, 2, 5, 9)]  # prune's first occurrence is at the second checkpoint
EXTERNAL = [("random", k) for k in range(6)]
POINTS = NAMED + EXTERNAL
CRASH_POINTS_QUICK = [("checkpoint-write", 2), ("random", 0)]
SELECTED = POINTS if os.environ.get("SUITE_CRASH_POINTS") == "all" else CRASH_POINTS_QUICK
ENV = {"OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}  # one thread everywhere: bit-exact comparisons


def _suite(db, env=None, **kw):
    e = {**os.environ, **ENV}
    e.pop("SUITE_FAULT", None)
    e.update(env or {})
    return subprocess.Popen([sys.executable, "-m", "suite", *ARGS, "--db", str(db)], cwd=ROOT, env=e,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **kw)


def _records(db) -> dict:
    con = sqlite3.connect(db)
    out = {
        "metrics": con.execute("SELECT step, name, value FROM metrics WHERE name != 'train/time' "
                               "ORDER BY step, name").fetchall(),
        "times": con.execute("SELECT step FROM metrics WHERE name = 'train/time' ORDER BY step").fetchall(),
        "spectra": con.execute("SELECT step, eigenvalues FROM spectra ORDER BY step").fetchall(),
        "profiles": con.execute("SELECT step, grad_norms FROM profiles ORDER BY step").fetchall(),
        "runs": con.execute("SELECT status, step FROM runs").fetchall(),
    }
    con.close()
    return out


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    db = tmp_path_factory.mktemp("reference") / "s.db"
    proc = _suite(db)
    _, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, err
    return _records(db)


def crash_and_resume(point: str, n: int, db) -> tuple[int, dict]:
    """Kill a run at (point, n), resume it; return the step committed at the kill and the final records."""
    if point == "random":
        rng = random.Random(n)
        target = rng.randrange(0, 40, 5)  # a commit to reach, then a moment after it
        proc = _suite(db)
        while committed_step(db) < target and proc.poll() is None:
            time.sleep(0.005)
        time.sleep(rng.uniform(0.0, 0.1))
        proc.send_signal(signal.SIGKILL)
    else:
        proc = _suite(db, env={"SUITE_FAULT": f"{point}:{n}"})
    proc.communicate(timeout=300)
    assert proc.returncode == -signal.SIGKILL, f"{point}:{n} was not killed (rc {proc.returncode})"
    at_kill = committed_step(db)
    resume = _suite(db)
    _, err = resume.communicate(timeout=300)
    assert resume.returncode == 0, err
    assert "restarting" not in err and "set aside" not in err, err  # a kill never damages a checkpoint
    return at_kill, _records(db)


def check_same(records: dict, reference: dict) -> tuple[int, int]:
    """(lost, duplicated) records against the uninterrupted run; values must be identical."""
    lost = dup = 0
    for key in ("metrics", "spectra", "profiles", "times"):
        got, ref = records[key], reference[key]
        keys_got = [r[:2] if key == "metrics" else r[:1] for r in got]
        keys_ref = [r[:2] if key == "metrics" else r[:1] for r in ref]
        dup += len(keys_got) - len(set(keys_got))  # the primary keys make this 0; counted anyway
        lost += len(set(keys_ref) - set(keys_got))
        if key != "times":
            assert got == ref, f"{key} differ from the uninterrupted run"
    assert records["runs"] == reference["runs"] == [("finished", 60)]
    return lost, dup


@pytest.mark.slow
@pytest.mark.parametrize(("point", "n"), SELECTED, ids=[f"{p}-{n}" for p, n in SELECTED])
def test_kill_9_at_a_crash_point_then_resume(tmp_path, reference, point, n):
    at_kill, records = crash_and_resume(point, n, tmp_path / "s.db")
    assert at_kill <= 60  # killed (rc -9) before the run was marked finished
    lost, duplicated = check_same(records, reference)
    print(f" [{point}:{n}: killed with step {at_kill} committed; resumed: lost {lost}, duplicated {duplicated}, "
          "values identical]", end="")
    assert (lost, duplicated) == (0, 0)
