"""Read a store into plain arrays for the report (read-only: a report never trains)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from suite.store import Store


@dataclass
class Run:
    run_id: str
    model: str
    task: str
    seed: int
    status: str
    step: int
    total_steps: int
    config: dict
    config_hash: str
    env: dict | None
    summary: dict | None
    task_info: dict | None
    params_total: int | None
    params_recurrent: int | None
    series: dict[str, tuple[np.ndarray, np.ndarray]] = field(default_factory=dict)
    spectra: list[tuple[int, np.ndarray]] = field(default_factory=list)
    profiles: list[tuple[int, np.ndarray]] = field(default_factory=list)

    def get(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.series.get(name, (np.zeros(0, int), np.zeros(0)))


@dataclass
class Group:
    """The seeds of one configuration of one model on one task."""

    label: str
    model: str
    task: str
    config_hash: str
    runs: list[Run]

    @property
    def hidden(self) -> int | None:
        return self.runs[0].config.get("hidden")

    def finished(self) -> list[Run]:
        return [r for r in self.runs if r.status == "finished"]

    def values(self, key: str) -> list[float]:
        return [r.summary[key] for r in self.finished() if r.summary and r.summary.get(key) is not None]

    def stat(self, key: str) -> tuple[float | None, float | None, int]:
        v = self.values(key)
        if not v:
            return None, None, 0
        return statistics.fmean(v), (statistics.stdev(v) if len(v) > 1 else 0.0), len(v)

    def statuses(self) -> dict[str, int]:
        out: dict[str, int] = defaultdict(int)
        for r in self.runs:
            out[r.status] += 1
        return dict(out)


def load(db: str | Path) -> list[Run]:
    store = Store(db, read_only=True)
    try:
        runs = []
        for row in store.runs():
            run = Run(row["run_id"], row["model"], row["task"], row["seed"], row["status"], row["step"],
                      row["total_steps"], row["config"] or {}, row["config_hash"], row["env"], row["summary"],
                      row["task_info"], row["params_total"], row["params_recurrent"])
            by_name: dict[str, list[tuple[int, float]]] = defaultdict(list)
            for _, step, name, value in store.metrics(run.run_id):
                by_name[name].append((step, np.nan if value is None else value))
            run.series = {k: (np.array([s for s, _ in v]), np.array([x for _, x in v], dtype=float))
                          for k, v in by_name.items()}
            run.spectra = [(s, np.array([complex(re, im) for re, im in ev])) for s, ev in store.spectra(run.run_id)]
            run.profiles = [(s, np.array(p, dtype=float)) for s, p in store.profiles(run.run_id)]
            runs.append(run)
        return runs
    finally:
        store.close()


def group(runs: list[Run]) -> dict[str, list[Group]]:
    """Task -> groups (one per model configuration), models in a stable order."""
    by_key: dict[tuple[str, str], list[Run]] = defaultdict(list)
    for r in runs:
        by_key[(r.task, r.config_hash)].append(r)
    per_task_model: dict[tuple[str, str], int] = defaultdict(int)
    for task, h in by_key:
        per_task_model[(task, by_key[(task, h)][0].model)] += 1
    out: dict[str, list[Group]] = defaultdict(list)
    for (task, h), rs in sorted(by_key.items(), key=lambda kv: (kv[0][0], kv[1][0].model, kv[0][1])):
        model = rs[0].model
        label = model
        if per_task_model[(task, model)] > 1:  # the same model in several configurations
            label = f"{model} (n={rs[0].config.get('hidden')}, {h[:6]})"
        out[task].append(Group(label, model, task, h, sorted(rs, key=lambda r: r.seed)))
    return dict(sorted(out.items()))


def task_info(groups: list[Group]) -> dict:
    for g in groups:
        for r in g.runs:
            if r.task_info:
                return r.task_info
    return {}
