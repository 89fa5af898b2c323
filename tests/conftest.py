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


def pytest_collection_modifyitems(config, items):
    """With pytest-xdist (`-n 2 --dist loadgroup`): a test file runs in one process, so its module
    fixtures are made once; the two files that start a local Ray run in the same process, one after
    the other, never two Ray clusters at once."""
    for item in items:
        name = item.path.name
        item.add_marker(pytest.mark.xdist_group("ray" if name.startswith("test_ray") else name))


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
