"""TIMIT next-frame prediction (as in uRNN/scoRNN/expRNN), from user-provided preprocessed arrays.

TIMIT is LDC-licensed: the suite never ships or downloads it. Preprocess it yourself (8 kHz audio,
STFT, log-magnitude 10 log10(1e-5 + |X|^2), 129 bins; splits: 3640 train utterances without SA
sentences, 400 dev, 192 core test) and save three files in ``<data_dir>/timit/``:

    train.npz, val.npz, test.npz, each with
      x        float32 (N, T_max, 129)  frames, zero-padded after each utterance's end
      lengths  int     (N,)             valid frames per utterance (>= 2)

The model reads frames 0..T_max-2 and predicts frames 1..T_max-1 at every step. Loss and metric: MSE
per element over valid target frames (masked by length), averaged over the 129 bins. Papers differ
on this normalization (some sum over bins): compare with their tables only after checking.
Memoryless baseline: predict the next frame to be the current one (its test MSE).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import torch

from suite.errors import DataError, DataMissingError
from suite.registry import register_task
from suite.tasks.base import DatasetTask
from suite.tasks.data import data_root

BINS = 129
SPLIT_FILES = {"train": "train.npz", "val": "val.npz", "test": "test.npz"}


@functools.lru_cache(maxsize=6)
def load_split(folder: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    from pathlib import Path

    path = Path(folder) / SPLIT_FILES[split]
    if not path.is_file():
        raise DataMissingError(
            f"TIMIT file {path} not found. The suite needs {', '.join(SPLIT_FILES.values())} in "
            f"{folder}, each with 'x' float32 (N, T_max, {BINS}) and 'lengths' int (N,); see "
            "docs/tasks.md. Point --set data_dir=... (or $SUITE_DATA) at the folder holding timit/."
        )
    fix = (f"Rewrite {path} with 'x' float32 (N, T_max, {BINS}) and 'lengths' int (N,), as described in "
           "docs/tasks.md")
    try:
        with np.load(path, allow_pickle=False) as f:
            if not hasattr(f, "files"):
                raise DataError(f"TIMIT file {path} is a single array, not an .npz archive. {fix}")
            if "x" not in f or "lengths" not in f:
                raise DataError(f"TIMIT file {path} must hold arrays 'x' and 'lengths'; it has {list(f)}. {fix}")
            x, lengths = f["x"], f["lengths"]
    except DataError:
        raise
    except Exception as e:  # garbage, truncated, pickled objects: all unreadable as data
        text = str(e).strip().splitlines()
        raise DataError(f"TIMIT file {path} cannot be read as an .npz archive of numeric arrays "
                        f"({type(e).__name__}: {text[0] if text else ''}). {fix}") from None
    if x.dtype.kind not in "fiu" or lengths.dtype.kind not in "iu":
        raise DataError(f"TIMIT file {path}: 'x' has dtype {x.dtype} and 'lengths' {lengths.dtype}; expected "
                        f"numbers (float32 frames, integer lengths). {fix}")
    x, lengths = x.astype(np.float32), lengths.astype(np.int64)
    if x.ndim != 3 or x.shape[2] != BINS or lengths.shape != (len(x),):
        raise DataError(f"TIMIT file {path}: 'x' has shape {x.shape} and 'lengths' {lengths.shape}; "
                        f"expected (N, T_max, {BINS}) and (N,). {fix}")
    if len(x) == 0 or x.shape[1] < 2:
        raise DataError(f"TIMIT file {path} holds no utterances of two frames or more (x: {x.shape}). {fix}")
    if lengths.min() < 2 or lengths.max() > x.shape[1]:
        raise DataError(f"TIMIT file {path}: lengths must lie in [2, {x.shape[1]}]; they span "
                        f"[{lengths.min()}, {lengths.max()}]")
    finite = np.isfinite(x)
    if not finite.all():
        n, t, b = np.argwhere(~finite)[0]
        raise DataError(f"TIMIT file {path}: 'x' holds {int((~finite).sum())} non-finite values (NaN or inf), "
                        f"the first at utterance {n}, frame {t}, bin {b}; the suite trains on finite data only")
    x = torch.from_numpy(x)
    target = x[:, 1:].clone()
    valid = torch.arange(x.shape[1] - 1)[None, :] < torch.from_numpy(lengths - 1)[:, None]
    target[~valid] = float("nan")  # the mask travels with the target
    return x[:, :-1].contiguous(), target


def masked_se(out: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, int]:
    valid = ~torch.isnan(target)
    diff = torch.where(valid, out - torch.nan_to_num(target), torch.zeros_like(out))
    return (diff * diff).sum(), int(valid.sum())


@dataclass(frozen=True)
class TIMIT(DatasetTask):
    data_dir: str | None = None

    name = "timit"
    output = "sequence"
    metric = "mse"
    higher_is_better = False
    d_in = BINS
    d_out = BINS

    @property
    def length(self):
        return self.arrays("train")[0].shape[1]

    def check(self):
        for split in SPLIT_FILES:
            self.arrays(split)

    def arrays(self, split):
        return load_split(str(data_root(self.data_dir) / "timit"), split)

    def loss(self, out, y):
        se, n = masked_se(out, y)
        return se / max(n, 1)

    def scores(self, out, y):
        se, n = masked_se(out, y)
        return {"loss": (se.item(), n), "mse": (se.item(), n)}

    def baseline(self):
        x, y = self.arrays("test")
        se, n = masked_se(x, y)
        return {"loss": se.item() / n, "mse": se.item() / n}


@register_task
def timit(data_dir: str | None = None):
    """TIMIT next-frame prediction from preprocessed arrays in data_dir/timit (masked MSE)."""
    return TIMIT(data_dir=data_dir)
