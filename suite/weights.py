"""``suite export --weights DIR``: the trained weights behind each run's headline number.

A run's headline number is its test metric at its best validation step (``best_step`` in its
summary), and the runner keeps that step's checkpoint (suite.checkpoints). For each finished run this
writes ``<run_id>.pt``, the model's ``state_dict`` at that step, and ``<run_id>.json``, what rebuilds
the model: ``suite.create_model(j["model"], **j["create_model"])`` (the registry name, the task's
input and output sizes, the hidden size and the model's options), the step, the stored validation
and test metrics there, and the run's config. The files are written like every export: aside, then
moved into place, never over a file or through a symlink the suite did not write (suite.outputs).
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from suite import outputs
from suite.checkpoints import Unusable
from suite.errors import StoreError
from suite.store import Store

MANIFEST = ".suite-weights.json"


@dataclass(frozen=True)
class Weights:
    """One run's exported weights: the state_dict and the description written beside it."""

    run_id: str
    state_dict: dict
    info: dict


def run_weights(store: Store, run: dict) -> Weights:
    """The weights of ``run`` (a row of ``store.runs()``) at its best validation step; Unusable (saying
    why) when the store has no usable checkpoint of that step, e.g. a store written before the suite
    kept it."""
    run_id, summary, config = run["run_id"], run["summary"] or {}, run["config"] or {}
    if Path(run_id).name != run_id or run_id in (".", ".."):
        raise Unusable(f"its id {run_id!r} is not a plain file name")
    step = summary.get("best_step")
    if step is None:
        raise Unusable("its summary names no best validation step")
    try:
        payload = store.checkpoint_files.read(run_id, step, map_location="cpu")
    except Unusable as e:
        why = f"the checkpoint of its best validation step, {store.checkpoint_path(run_id, step)}, {e}"
        if str(e) == "is not there":
            why += " (a store written before the suite kept it, or a file deleted since)"
        raise Unusable(why) from None
    state_dict = payload.get("model")
    if not isinstance(state_dict, dict):
        raise Unusable(f"the checkpoint of step {step} holds no model state")
    shapes = {k: run["task_info"].get(k) if run["task_info"] else None for k in ("d_in", "d_out", "output")}
    if None in shapes.values():
        from suite.registry import create_task  # the row lacks the task's sizes: the task knows them

        task = create_task(run["task"], **(config.get("task_options") or {}))
        shapes = {"d_in": task.d_in, "d_out": task.d_out, "output": task.output}
    options = dict(config.get("model_options") or {})
    info = {
        "run_id": run_id, "model": run["model"], "task": run["task"], "seed": run["seed"], "kind": run["kind"],
        "create_model": {**shapes, "hidden": config.get("hidden"), **options},
        **shapes, "hidden": config.get("hidden"), "model_options": options,
        "step": step, "metric": summary.get("metric"), "higher_is_better": summary.get("higher_is_better"),
        "best_val": summary.get("best_val"), "test_at_best_val": summary.get("test_at_best_val"),
        "config_hash": run["config_hash"], "config": config, "weights": f"{run_id}.pt",
    }
    return Weights(run_id, state_dict, info)


def export_weights(store: Store, out_dir: str | os.PathLike, runs: list[dict] | None = None
                   ) -> tuple[list[Path], list[tuple[str, str]]]:
    """Write ``<run_id>.pt`` and ``<run_id>.json`` into ``out_dir`` for every finished run of the store
    (or of ``runs``, rows of ``store.runs()``). Returns (the paths written, (run_id, why) of each
    finished run whose weights could not be exported)."""
    import torch

    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise StoreError(f"weights folder {out} is a file; pass --weights with a folder")
    found, missing = [], []
    for run in store.runs() if runs is None else runs:
        if run["status"] != "finished":
            continue
        try:
            found.append(run_weights(store, run))
        except Unusable as e:
            missing.append((run["run_id"], str(e)))
    names = [f"{w.run_id}{ext}" for w in found for ext in (".pt", ".json")]

    def refuse(clash: list[str]) -> StoreError:
        return StoreError(f"{out} holds {', '.join(clash)}, not written by `suite export --weights`; it never "
                          "overwrites them: pass another --weights folder")

    out.mkdir(parents=True, exist_ok=True)
    mine = outputs.owned(out, MANIFEST)
    clash = outputs.clashes(out, names, mine)
    if clash:
        raise refuse(clash)
    staging = outputs.stage(out)
    try:
        for w in found:
            torch.save(w.state_dict, staging / f"{w.run_id}.pt")
            info = {**w.info, "sha256": outputs.sha256_file(staging / f"{w.run_id}.pt")}
            (staging / f"{w.run_id}.json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n",
                                                      encoding="utf-8")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    written = outputs.publish(staging, out, MANIFEST, mine, refuse=refuse)
    return [p for n in names for p in written if p.name == n], missing
