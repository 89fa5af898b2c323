"""One owner per run, always: two real `suite run` processes race for one run, one of them with
`--force`, over many rounds and timings (the second starting before, during and after the first; the
first killed with SIGKILL before the second starts). The two train with different thread counts, so
their values differ (float32 reductions split differently): a store holding values of both would show.

Each round ends with the run finished and every value equal to the uninterrupted run of the process
that trained it (its thread count is in the run's env): 0 spliced values. `--force` against a live
holder is refused, naming it (exit 2); after the holder is gone it restarts the run.

SUITE_RACE_ROUNDS sets the number of rounds (default 4; `nox -s faults` runs 24).
"""

from __future__ import annotations

import json
import os
import random
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest

from tests.helpers import ROOT, committed_step, store_values

ARGS = ["run", "--models", "scornn", "--tasks", "copying", "--steps", "1500", "--set", "T=10", "--set", "K=4",
        "--set", "hidden=48", "--set", "eval_every=20", "--set", "checkpoint_every=5", "--set", "eval_size=64",
        "--set", "batch_size=8", "--no-report", "--workers", "1", "--seeds", "0"]
# Two threads on a loaded machine: without a passive wait policy OpenMP's spinning threads crawl.
ENV = {"PYTHONUNBUFFERED": "1", "OMP_WAIT_POLICY": "PASSIVE"}
ROUNDS = int(os.environ.get("SUITE_RACE_ROUNDS", "4"))
# when the challenger starts: once the holder has committed some steps; 0-2 s after it; after it was
# killed with SIGKILL; before it (holding the run when the other one starts)
SCENARIOS = ("during", "together", "after-kill", "challenger-first")


def _start(db, threads: int, *extra: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "suite", *ARGS, "--threads", str(threads), *extra, "--db", str(db)],
                            cwd=ROOT, env={**os.environ, **ENV}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                            text=True)


def _run(db) -> dict:
    con = sqlite3.connect(db)
    status, step, env = con.execute("SELECT status, step, env FROM runs").fetchone()
    con.close()
    return {"status": status, "step": step, "threads": json.loads(env)["threads"]}


@pytest.fixture(scope="module")
def references(tmp_path_factory) -> dict[int, list[tuple]]:
    out = {}
    for threads in (1, 2):
        db = tmp_path_factory.mktemp("race-reference") / "s.db"
        proc = _start(db, threads)
        _, err = proc.communicate(timeout=600)
        assert proc.returncode == 0, err
        out[threads] = store_values(db)
    # the test can see a splice: the two processes' values differ
    differ = sum(a != b for a, b in zip(out[1], out[2]))
    assert len(out[1]) == len(out[2]) and differ > len(out[1]) // 4, differ
    return out


def _wait_step(db, proc, at_least: int) -> None:
    t0 = time.time()
    while committed_step(db) < at_least and proc.poll() is None:
        assert time.time() - t0 < 300, "the run did not progress"
        time.sleep(0.02)


@pytest.mark.slow
def test_force_never_takes_a_run_from_a_live_process(tmp_path, references):
    rng = random.Random(0)
    spliced_total, refused, outcomes = 0, 0, []
    for k in range(ROUNDS):
        scenario = SCENARIOS[k % len(SCENARIOS)]
        db = tmp_path / f"round-{k}.db"
        procs = []
        try:
            if scenario == "challenger-first":  # it holds the run before the other one starts
                b = _start(db, 2, "--force")
                procs.append(b)
                _wait_step(db, b, rng.choice([0, 20, 40]))
            a = _start(db, 1)  # the first holder: one thread, no --force
            procs.append(a)
            if scenario == "together":
                time.sleep(rng.uniform(0.0, 2.0))
            elif scenario != "challenger-first":
                _wait_step(db, a, rng.choice([0, 20, 40, 60]))
            if scenario == "after-kill":
                a.send_signal(signal.SIGKILL)
                a.wait(timeout=60)
            if scenario != "challenger-first":
                b = _start(db, 2, "--force")  # the challenger: two threads, --force
                procs.append(b)
            _, b_err = b.communicate(timeout=600)
            _, a_err = a.communicate(timeout=600)
        finally:
            for p in procs:
                if p.poll() is None:
                    p.kill()
                    p.wait()
        for err in (a_err, b_err):
            assert "Traceback" not in err and "IntegrityError" not in err, err
        if scenario == "after-kill":
            assert a.returncode == -signal.SIGKILL and b.returncode == 0, b_err  # the holder was gone: taken over
        elif scenario == "challenger-first":  # the other one, without --force, leaves it to its holder
            assert b.returncode == 0 and a.returncode == 0 and f"held by {socket.gethostname()}:{b.pid}" in a_err, a_err
        else:
            assert a.returncode == 0, a_err
            assert b.returncode in (0, 2), b_err
            if b.returncode == 2:  # refused, naming the live holder and how to stop it
                refused += 1
                assert "--force" in b_err and f":{a.pid}" in b_err and f"kill -INT {a.pid}" in b_err, b_err
        run = _run(db)
        outcomes.append(f"{scenario}: {'refused' if b.returncode == 2 else 'trained by ' + str(run['threads'])}")
        assert run["status"] == "finished" and run["step"] == 1500, run
        got, want = store_values(db), references[run["threads"]]
        assert len(got) == len(want)
        spliced = sum(x != y for x, y in zip(got, want))
        spliced_total += spliced
        assert spliced == 0, (scenario, k, spliced)
    print(f" [{ROUNDS} rounds ({'; '.join(outcomes)}): --force refused {refused} times, {spliced_total} spliced "
          "values]", end="")
    assert refused >= 1 or ROUNDS < 2  # the live-holder case did happen
