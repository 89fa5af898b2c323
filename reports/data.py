"""Read a store into plain arrays for the report (read-only: a report never trains)."""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from suite.protocols import ProtocolId, protocol_of
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
    kind: str = "run"  # "trial": a tuning trial, kept out of the headline tables
    study: str | None = None

    def get(self, name: str) -> tuple[np.ndarray, np.ndarray]:
        return self.series.get(name, (np.zeros(0, int), np.zeros(0)))

    @property
    def params_dof(self) -> int | None:
        """Degrees of freedom (free real parameters); stores written before it was recorded have
        only the stored count."""
        return (self.summary or {}).get("params_dof")


@dataclass
class Group:
    """The seeds of one configuration of one model under one protocol."""

    label: str
    model: str
    task: str
    config_hash: str
    runs: list[Run]
    protocol: ProtocolId | None = None

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


def load(db: str | Path, kind: str = "run") -> list[Run]:
    """The runs of ``kind`` ("run": headline runs; "trial": tuning trials)."""
    store = Store(db, read_only=True)
    try:
        runs = []
        for row in store.runs():
            if row.get("kind", "run") != kind:  # a store older than tuning has runs only
                continue
            config = row["config"] if isinstance(row["config"], dict) else {}  # a hand-edited store
            run = Run(row["run_id"], row["model"], row["task"], row["seed"], row["status"], row["step"],
                      row["total_steps"], config, row["config_hash"], row["env"], row["summary"],
                      row["task_info"], row["params_total"], row["params_recurrent"],
                      kind=row.get("kind", "run"), study=row.get("study"))
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


def group(runs: list[Run]) -> dict[ProtocolId, list[Group]]:
    """Protocol -> groups (one per model configuration), protocols by task then name, models in a
    stable order. Only runs of one protocol are ever compared with each other."""
    by_key: dict[tuple[ProtocolId, str], list[Run]] = defaultdict(list)
    for r in runs:
        by_key[(protocol_of(r), r.config_hash)].append(r)
    per_model: dict[tuple[ProtocolId, str], int] = defaultdict(int)
    for proto, h in by_key:
        per_model[(proto, by_key[(proto, h)][0].model)] += 1
    out: dict[ProtocolId, list[Group]] = defaultdict(list)
    order = sorted(by_key.items(), key=lambda kv: (kv[0][0].task, kv[0][0].label, kv[1][0].model, kv[0][1]))
    for (proto, h), rs in order:
        model = rs[0].model
        label = model
        if per_model[(proto, model)] > 1:  # the same model in several configurations
            label = f"{model} (n={rs[0].config.get('hidden')}, {h[:6]})"
        out[proto].append(Group(label, model, rs[0].task, h, sorted(rs, key=lambda r: r.seed), proto))
    return dict(out)


def differences(protocols: list[ProtocolId]) -> dict[ProtocolId, dict[str, object]]:
    """For protocols of one task: the shared settings in which each differs from the others."""
    keys = set()
    for p in protocols:
        keys |= {k for k, _ in p.settings}
    varying = sorted(k for k in keys if len({repr(dict(p.settings).get(k)) for p in protocols}) > 1)
    return {p: {k: dict(p.settings).get(k) for k in varying} for p in protocols}


def task_info(groups: list[Group]) -> dict:
    for g in groups:
        for r in g.runs:
            if r.task_info:
                return r.task_info
    return {}
