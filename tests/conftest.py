import os

import torch

# Triton's kernels run on CPU tensors through its interpreter when there is no GPU. The variable must
# be set before anything imports triton, hence here, at conftest import.
if not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")

import pytest

from suite.registry import MODELS


def pytest_configure(config):
    # Two cores: intra-op threading of tiny tensors costs more than it gains in unit tests.
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_ray_at_a_time():
    """Held while a test file runs its local Ray cluster: with the test command's two processes
    (pytest-xdist, one file each at a time) the two Ray files never start their clusters at once."""
    import fcntl
    import tempfile
    from pathlib import Path

    with open(Path(tempfile.gettempdir()) / "ortho-rnn-suite-tests-ray.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def model_names():
    return MODELS.names()


def constrained_models(*constraints: str) -> list[str]:
    """Models whose registry entry claims one of ``constraints`` (default: orthogonal or unitary)."""
    wanted = constraints or ("orthogonal", "unitary")
    return [e.name for e in MODELS.entries() if e.info.constraint in wanted]


@pytest.fixture
def isolated_cache(tmp_path, monkeypatch):
    """A fresh cache folder, so data-generation code paths run for real."""
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


REQUIRE_BROWSER = os.environ.get("SUITE_REQUIRE_BROWSER") == "1"
