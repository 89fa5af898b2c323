"""nox sessions: tests, lint, bench(model) per registered model, report, speed, gpu.

All sessions share one environment, the project's .venv (torch is ~900 MB: no session builds its
own). Create it once with `sh .ci/setup`, then run `.venv/bin/nox -l` / `.venv/bin/nox -s tests`.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import nox

nox.options.default_venv_backend = "none"  # every session runs in the shared project environment
nox.options.sessions = ["lint", "tests"]

ROOT = Path(__file__).parent
VENV_PY = ROOT / ".venv" / "bin" / "python"
PYTHON = str(VENV_PY) if VENV_PY.exists() else sys.executable

# The registered models, read from the registry itself (tests/test_nox.py checks they agree).
sys.path.insert(0, str(ROOT))
from suite.registry import list_models  # noqa: E402

MODELS = list_models()


def _suite(session: nox.Session, *args: str) -> None:
    session.run(PYTHON, "-m", "suite", *args, external=True)


@nox.session
def tests(session: nox.Session) -> None:
    """Run the test suite (the README's test command, inside the shared environment)."""
    session.run(PYTHON, "-m", "pytest", *session.posargs, external=True)


@nox.session
def faults(session: nox.Session) -> None:
    """kill -9 at every crash point of a run, resume, compare with the uninterrupted run; then 24 rounds
    of two processes racing for one run with --force (slow)."""
    session.run(PYTHON, "-m", "pytest", "tests/test_crash_points.py", "tests/test_faults_race.py", "-v", "-s",
                *session.posargs, external=True, env={"SUITE_CRASH_POINTS": "all", "SUITE_RACE_ROUNDS": "24"})


@nox.session
def lint(session: nox.Session) -> None:
    """ruff over the whole project."""
    session.run(PYTHON, "-m", "ruff", "check", ".", external=True)


@nox.session
@nox.parametrize("model", MODELS, ids=MODELS)
def bench(session: nox.Session, model: str) -> None:
    """The main job's quick benchmark for one model (offline tasks) into results/suite.db."""
    _suite(session, "run", "--models", model, "--no-report", *session.posargs)


@nox.session(requires=["bench"] if os.environ.get("SUITE_REPORT_AFTER_BENCH") else [])
def report(session: nox.Session) -> None:
    """Render results/suite-report from the store (SUITE_REPORT_AFTER_BENCH=1 runs every bench first)."""
    _suite(session, "report", *session.posargs)


@nox.session
def speed(session: nox.Session) -> None:
    """Training-step time against nn.RNN and each model's floor, side by side."""
    _suite(session, "speed", *session.posargs)


@nox.session
def gpu(session: nox.Session) -> None:
    """The one-command GPU check (benchmarks/gpu_check.py): Triton tests compiled, a short run of every
    mission model, suite speed against cuDNN, a slice of the T=1000 copying protocol; one markdown table,
    in under 8 minutes. Without a CUDA device: a dry run (every step skipped, its command checked)."""
    session.run(PYTHON, str(ROOT / "benchmarks" / "gpu_check.py"), *session.posargs, external=True)


@nox.session(venv_backend="venv", reuse_venv=True)
def triton36(session: nox.Session) -> None:
    """The Triton kernel's tests under Triton 3.6.0 (PyTorch 2.11's release), interpreted, in its own venv."""
    session.install("torch==2.13.0")
    session.install("-e", ".")
    # Triton 3.6's interpreter predates NumPy 2.3 (it converts 1-element arrays to scalars)
    session.install("triton==3.6.0", "numpy<2.3", "pytest")
    session.run("python", "-m", "pytest", "-o", "addopts=", "tests/test_triton.py", *session.posargs,
                env={"TRITON_INTERPRET": "1"})
