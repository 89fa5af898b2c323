"""``suite run --dry-run``: the plan (protocol x model x seed), where each setting came from, and the
estimated training time. Nothing is trained and nothing is written.

The time per step comes from finished runs of the same config in the store where there are some, else
from the registry's cost model (``modelled_ms_per_step``: instant, rough), or, with ``--measure``, from
two real training steps per (model, protocol) (``measured_ms_per_step``: minutes at the paper scale)."""

from __future__ import annotations

import statistics
import time
from pathlib import Path

import torch

from suite.protocols import PROTOCOL_FIELDS, Resolved

ESTIMATES = ("model", "store", "measure", "none")
# The cost model's unit: ms per (batch x length x (n^2 + n (d_in + d_out))) multiply-adds of a step of a
# model of registry cost 1, from the CPU table of docs/performance.md: the fused tanh RNN, n=190,
# T=1000, B=32, d_in=10, d_out=9, took 248.8 ms per training step on 2 cores (torch 2.13.0+cpu).
CPU_MS_PER_UNIT = 248.8 / (32 * 1000 * (190 ** 2 + 190 * 19))


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


def modelled_ms_per_step(config, device: str = "cpu") -> tuple[float, str] | None:
    """The registry's cost model: the step's multiply-adds (batch x length x (n^2 + n (d_in + d_out)))
    times the model's relative ``cost`` (its ModelInfo) times CPU_MS_PER_UNIT. Instant and rough (a
    factor of 2-3 either way: it knows nothing of a model's kernels); calibrated on CPU only, so on
    another device it gives no estimate (use --measure there)."""
    from suite.registry import MODELS, create_task

    if not str(device).startswith("cpu"):
        return None
    task = create_task(config.task, **config.task_kwargs())
    n = config.hidden or MODELS.options(config.model).get("hidden") or 64
    units = config.batch_size * task.length * (n * n + n * (task.d_in + task.d_out))
    return CPU_MS_PER_UNIT * units * MODELS.entry(config.model).info.cost, "cost model, rough"


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
    """'preset (paper copying family:EURNN)': its source after ': ' becomes a numbered note (a model
    pattern may hold a colon of its own)."""
    return source.split(": ", 1)[0]


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
    width = max([len(k + "=" + repr(v)) for r in resolved for k, v, _ in r.settings()] + [33]) + 1
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
            lines.append(f"    {k + '=' + repr(v):<{width}} {cite(s)}")
        shown = set()
        for r in group:
            c = r.config
            if c.config_hash in shown:
                continue  # one block per config (a model, or one point of a sweep); its seeds differ in nothing else
            shown.add(c.config_hash)
            est = estimates.get(c.config_hash, (None, "no estimate"))
            n_seeds = sum(1 for q in group if q.config.config_hash == c.config_hash)
            when = (f"~{est[0]:.4g} ms/step x {c.steps} steps = {_hours(est[0] * c.steps / 1e3)} per seed "
                    f"({est[1]})" if est[0] is not None else est[1])
            left = f" LEAVES THE PROTOCOL (--set {', '.join(r.modified)})" if r.modified else ""
            lines.append(f"  {c.model} x {n_seeds} seed(s): {when}{left}")
            for k, v, s in r.settings():
                if k in PROTOCOL_FIELDS or k.startswith("task."):
                    if k in r.modified:
                        lines.append(f"    {k + '=' + repr(v):<{width}} {cite(s)}")
                    continue
                lines.append(f"    {k + '=' + repr(v):<{width}} {cite(s)}")
    if notes:
        lines.append("")
        lines.append("sources:")
        lines += [f"  [{n}] {text}" for text, n in notes.items()]
    return "\n".join(lines)


def estimate(resolved: list[Resolved], how: str, db: str, device: str, log=None) -> dict:
    """config_hash -> (ms per step or None, where the number comes from). ``how``: model (the store,
    else the cost model), store (the store only), measure (the store, else 2 real steps), none."""
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
        elif found is None and how == "model":
            found = modelled_ms_per_step(c, device) or (None, f"no cost model for {device}: use --measure")
        out[c.config_hash] = found or (None, "no run in the store (use --measure)")
    return out
