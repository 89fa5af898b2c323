"""``suite run --dry-run``: the plan (protocol x model x seed), where each setting came from, and the
estimated training time from a measured time per step. Nothing is trained and nothing is written."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from suite.protocols import PROTOCOL_FIELDS, Resolved

ESTIMATES = ("measure", "store", "none")


def stored_ms_per_step(db: str | Path, config) -> tuple[float, str] | None:
    """Median ms/step of finished runs in the store: same config (any seed) first, else the same
    model, task options, hidden size and batch size."""
    from suite.store import Store

    if not Path(db).is_file():
        return None
    store = Store(db, read_only=True)
    try:
        rows = [r for r in store.runs(task=config.task, model=config.model)
                if r["summary"] and r["summary"].get("time_per_step")]
    finally:
        store.close()
    same = [r for r in rows if r["config_hash"] == config.config_hash]
    if same:
        return 1e3 * statistics.median(r["summary"]["time_per_step"] for r in same), f"store, {len(same)} run(s)"
    d = config.to_dict()
    alike = [r for r in rows if all((r["config"] or {}).get(k) == d[k]
                                    for k in ("hidden", "batch_size", "task_options", "model_options"))]
    if alike:
        return (1e3 * statistics.median(r["summary"]["time_per_step"] for r in alike),
                f"store, {len(alike)} similar run(s)")
    return None


def measured_ms_per_step(config, device: str = "cpu", steps: int = 2) -> float:
    """Time real training steps of ``config`` (after one warm-up step) on ``device``."""
    from suite.memory import keep_freed_memory
    from suite.runner import build, make_optimizers, train_step

    keep_freed_memory()  # as the runs themselves (suite.memory)
    task, model = build(config, device)
    opts = make_optimizers(model, config)
    times = []
    for step in range(1, steps + 2):
        x, y = task.train_batch(step, config.batch_size, config.seed)
        t0 = time.perf_counter()
        train_step(model, opts, task, x.to(device), y.to(device), step, config.clip, config.precision).item()
        times.append(time.perf_counter() - t0)
    return 1e3 * statistics.median(times[1:])


def _hours(seconds: float) -> str:
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


def _short(source: str) -> str:
    return source.split(":", 1)[0]


def format_plan(resolved: list[Resolved], estimates: dict, scale: str, device: str) -> str:
    """One block per protocol: its shared settings with their source, then one block per model with
    every other setting and its source; each distinct source once, as a numbered note at the end."""
    notes: dict[str, int] = {}

    def cite(source: str) -> str:
        if source.startswith(("protocol ", "preset ")):
            n = notes.setdefault(source.split(": ", 1)[1] if ": " in source else source, len(notes) + 1)
            return f"{_short(source)} [{n}]"
        return source

    lines = []
    protocols = list(dict.fromkeys(r.protocol.name for r in resolved))
    models = list(dict.fromkeys(r.config.model for r in resolved))
    seeds = sorted({r.config.seed for r in resolved})
    total = sum((estimates.get(r.config.config_hash, (None,))[0] or 0) * r.config.steps / 1e3 for r in resolved)
    unknown = sum(1 for r in resolved if estimates.get(r.config.config_hash, (None,))[0] is None)
    lines.append(f"plan, scale {scale}: {len(protocols)} protocol(s) x {len(models)} model(s) x "
                 f"{len(seeds)} seed(s) = {len(resolved)} runs; estimated training time "
                 f"{_hours(total)} run one after another on {device}"
                 + (f" ({unknown} run(s) without an estimate)" if unknown else ""))
    for name in protocols:
        group = [r for r in resolved if r.protocol.name == name]
        first = group[0]
        lines.append("")
        note = f": {first.protocol.note}" if first.protocol.note else ""
        lines.append(f"protocol {name} (task {first.protocol.task}){note}")
        shared = [(k, v, s) for k, v, s in first.settings() if k in PROTOCOL_FIELDS or k.startswith("task.")]
        for k, v, s in shared:
            lines.append(f"    {k + '=' + repr(v):<34} {cite(s)}")
        for r in group:
            if r.config.seed != group[0].config.seed and any(
                    q.config.model == r.config.model and q.config.seed < r.config.seed for q in group):
                continue  # one block per model; seeds differ in nothing else
            c = r.config
            est = estimates.get(c.config_hash, (None, "no estimate"))
            n_seeds = sum(1 for q in group if q.config.model == c.model)
            when = (f"~{est[0]:.4g} ms/step x {c.steps} steps = {_hours(est[0] * c.steps / 1e3)} per seed "
                    f"({est[1]})" if est[0] is not None else est[1])
            left = f" LEAVES THE PROTOCOL (--set {', '.join(r.modified)})" if r.modified else ""
            lines.append(f"  {c.model} x {n_seeds} seed(s): {when}{left}")
            for k, v, s in r.settings():
                if k in PROTOCOL_FIELDS or k.startswith("task."):
                    if k in r.modified:
                        lines.append(f"    {k + '=' + repr(v):<34} {cite(s)}")
                    continue
                lines.append(f"    {k + '=' + repr(v):<34} {cite(s)}")
    if notes:
        lines.append("")
        lines.append("sources:")
        lines += [f"  [{n}] {text}" for text, n in notes.items()]
    return "\n".join(lines)


def estimate(resolved: list[Resolved], how: str, db: str, device: str, log=None) -> dict:
    """config_hash -> (ms per step or None, where the number comes from)."""
    out: dict = {}
    for r in resolved:
        c = r.config
        if c.config_hash in out or how == "none":
            out.setdefault(c.config_hash, (None, "not estimated (--estimate none)"))
            continue
        found = stored_ms_per_step(db, c)
        if found is None and how == "measure":
            if log:
                log(f"measuring {c.model} on {r.protocol.name} ...")
            with torch.random.fork_rng(devices=[]):
                found = (measured_ms_per_step(c, device), f"measured now on {device}, 2 steps")
        out[c.config_hash] = found or (None, "no run in the store (use --estimate measure)")
    return out
