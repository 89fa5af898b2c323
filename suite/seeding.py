"""Seeding without touching the caller's global RNG state."""

from __future__ import annotations

import contextlib

import torch


@contextlib.contextmanager
def seeded(seed: int):
    """Run a block (typically model construction, whose nn.init calls use torch's global RNG) under
    ``torch.manual_seed(seed)``, restoring the previous CPU and CUDA RNG states afterwards."""
    devices = list(range(torch.cuda.device_count())) if torch.cuda.is_available() else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(seed)
        yield
