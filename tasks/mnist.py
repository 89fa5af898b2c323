"""Pixel-by-pixel MNIST and permuted MNIST (Le et al. 2015; the scoRNN/expRNN benchmark).

784 steps of one pixel each, scaled to [0, 1]; classify from the last state; chance 0.1.
Data: the standard IDX files, gzipped or raw, in ``<data_dir>/mnist/``:
train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte, t10k-labels-idx1-ubyte.
When absent they are downloaded if the network allows; otherwise the task stops before any training
and says which files to put where. ``data_dir`` defaults to $SUITE_DATA, else ./data.

Validation: ``val_size`` (5000) training images, chosen by a fixed permutation, are held out; the
suite selects the evaluation with the best validation accuracy and reports test accuracy there
(not the best test accuracy over training, which some papers report).
Permuted MNIST uses numpy.random.RandomState(92916).permutation(784), as scoRNN, expRNN and later
papers do.
"""

from __future__ import annotations

import functools
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from suite.errors import DataError, DataMissingError, check_range
from suite.registry import register_task
from suite.tasks.base import TenClassTask, hold_out
from suite.tasks.data import atomic_write_bytes, data_root, read_idx

FILES = {
    "train_x": "train-images-idx3-ubyte",
    "train_y": "train-labels-idx1-ubyte",
    "test_x": "t10k-images-idx3-ubyte",
    "test_y": "t10k-labels-idx1-ubyte",
}
MIRRORS = (
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
)
PERMUTATION_SEED = 92916


def find_files(folder: Path) -> dict[str, Path] | list[str]:
    """The four files (raw preferred over .gz), or the list of names missing."""
    found, missing = {}, []
    for key, name in FILES.items():
        for candidate in (folder / name, folder / f"{name}.gz"):
            if candidate.is_file():
                found[key] = candidate
                break
        else:
            missing.append(name)
    return missing or found


DOWNLOAD_TIMEOUT = 10.0  # seconds without an answer before a mirror counts as unreachable
# Why downloading failed in this process, per folder: tried once, never again (every model of a
# sweep would otherwise wait for the same unresponsive network).
_DOWNLOAD_FAILED: dict[Path, str] = {}


def mirrors() -> tuple[str, ...]:
    """Where MNIST is downloaded from: $SUITE_MNIST_MIRRORS (comma-separated base URLs) or the defaults."""
    env = os.environ.get("SUITE_MNIST_MIRRORS", "").strip()
    return tuple(m.strip().rstrip("/") + "/" for m in env.split(",") if m.strip()) if env else MIRRORS


def download(folder: Path, names: list[str]) -> None:
    """One attempt per file per process; the first file no mirror serves stops the download, and a
    mirror that does not answer within DOWNLOAD_TIMEOUT ends it (the network is likely down)."""
    if folder in _DOWNLOAD_FAILED:
        raise DataMissingError(_DOWNLOAD_FAILED[folder] + "; not retried in this process")
    for name in names:
        errors = []
        for mirror in mirrors():
            try:
                with urllib.request.urlopen(mirror + name + ".gz", timeout=DOWNLOAD_TIMEOUT) as r:
                    atomic_write_bytes(folder / f"{name}.gz", r.read())
                break
            except (OSError, ValueError) as e:  # URLError, timeouts, refused, a malformed mirror URL
                reason = getattr(e, "reason", None) or e
                errors.append(f"{mirror}{name}.gz: {reason}")
                if isinstance(reason, TimeoutError):
                    break  # an unresponsive network will not answer the next mirror either
        else:
            _DOWNLOAD_FAILED[folder] = "; ".join(errors)
            raise DataMissingError(_DOWNLOAD_FAILED[folder])
        if errors and not (folder / f"{name}.gz").is_file():
            _DOWNLOAD_FAILED[folder] = "; ".join(errors)
            raise DataMissingError(_DOWNLOAD_FAILED[folder])


def _read(path: Path) -> np.ndarray:
    try:
        return read_idx(path)
    except (ValueError, OSError, EOFError) as e:  # garbage, truncated, bad gzip
        raise DataError(f"MNIST file {path} is not a readable IDX file ({e}). Replace it with the standard "
                        f"file of that name (gzipped or raw), or delete it to download it again") from None


@functools.lru_cache(maxsize=2)
def load_mnist(folder: Path, download_ok: bool) -> dict[str, np.ndarray]:
    files = find_files(folder)
    if isinstance(files, list) and download_ok:
        try:
            download(folder, files)
        except DataMissingError as e:
            reason = f" Download failed ({e})."
        else:
            reason = ""
        files = find_files(folder)
    else:
        reason = " Download is off."
    if isinstance(files, list):
        raise DataMissingError(
            f"MNIST files missing in {folder}: {', '.join(files)}.{reason} Put the four standard IDX "
            f"files ({', '.join(FILES.values())}; gzipped '.gz' or raw) in {folder}, or point "
            f"--set data_dir=... (or $SUITE_DATA) at a folder whose mnist/ subfolder holds them."
        )
    arrays = {k: _read(p) for k, p in files.items()}
    for split in ("train", "test"):
        x, y = arrays[f"{split}_x"], arrays[f"{split}_y"]
        where = f"MNIST files {files[f'{split}_x']} and {files[f'{split}_y']}"
        if x.ndim != 3 or x.shape[1:] != (28, 28) or y.shape != (len(x),) or len(x) == 0:
            raise DataError(f"{where} have shapes {x.shape}, {y.shape}; expected (N, 28, 28) images and "
                            "(N,) labels, N >= 1")
        if x.dtype != np.uint8 or y.dtype != np.uint8 or y.max() > 9:
            raise DataError(f"{where} hold {x.dtype} images and {y.dtype} labels up to {y.max()}; expected "
                            "uint8 images and uint8 labels 0-9 (the standard files)")
    return arrays


@dataclass(frozen=True)
class PixelMNIST(TenClassTask):
    permuted: bool = False
    val_size: int = 5000
    data_dir: str | None = None
    download: bool = True

    d_in = 1
    length = 784

    @property
    def name(self):
        return "pmnist" if self.permuted else "mnist"

    def __post_init__(self):
        check_range("val_size", self.val_size, low=1, where=self.name)

    def check(self):
        self.arrays("train")

    def arrays(self, split):
        return _split(self, split)


@functools.lru_cache(maxsize=6)
def _split(task: PixelMNIST, split: str):
    raw = load_mnist(data_root(task.data_dir) / "mnist", task.download)
    x = raw["test_x" if split == "test" else "train_x"]
    y = raw["test_y" if split == "test" else "train_y"]
    if split != "test":
        keep = hold_out(len(x), task.val_size, split, key=4, where=task.name).numpy()
        x, y = x[keep], y[keep]
    seq = torch.from_numpy(x.reshape(len(x), 784).astype(np.float32) / 255.0)
    if task.permuted:
        seq = seq[:, torch.from_numpy(np.random.RandomState(PERMUTATION_SEED).permutation(784))]
    return seq.unsqueeze(-1).contiguous(), torch.from_numpy(y.astype(np.int64))


@register_task
def mnist(val_size: int = 5000, data_dir: str | None = None, download: bool = True):
    """Pixel MNIST: 784 steps, classify at the end (IDX files from data_dir/mnist)."""
    return PixelMNIST(permuted=False, val_size=val_size, data_dir=data_dir, download=download)


@register_task
def pmnist(val_size: int = 5000, data_dir: str | None = None, download: bool = True):
    """Permuted pixel MNIST, permutation RandomState(92916) (IDX files from data_dir/mnist)."""
    return PixelMNIST(permuted=True, val_size=val_size, data_dir=data_dir, download=download)
