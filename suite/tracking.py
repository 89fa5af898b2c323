"""Experiment tracking: stream what the store records to TensorBoard and/or MLflow (``suite run --log``).

The store stays the record; a tracker is a live view of it. Each run's metrics (train loss and time at
every step, val/test metrics and ||W^H W - I|| at every evaluation) go to the trackers right after the
store committed them, with the same names and steps, so a tracker never shows a value the store does
not hold. A resumed run goes on in the same TensorBoard folder and the same MLflow run. Runs are tagged
with run id, model, task, protocol and seed. Non-finite values (a diverged run's last loss, stored as
NULL) are not sent. Pool workers and Ray tasks stream their own runs.

- ``tensorboard`` (extra ``[tensorboard]``): one folder per run, ``<dir>/tensorboard/<run_id>``, written
  with ``torch.utils.tensorboard.SummaryWriter``; the tags are its text entry ``suite/run``.
- ``mlflow`` (extra ``[mlflow]``: mlflow-skinny, with SQLAlchemy and Alembic for its SQLite store): one
  MLflow run per suite run, named by the run id, in the experiment ``$MLFLOW_EXPERIMENT_NAME`` (default
  "suite") at ``$MLFLOW_TRACKING_URI`` (default ``sqlite:///<dir>/mlflow.db``: MLflow 3 keeps its file
  store in maintenance mode); the run's config as MLflow params, the tags as MLflow tags
  (``suite.run_id``, ``suite.model``, ...), the status as its end state.

A tracker that is not installed, or cannot be reached, stops ``suite run`` before any training (exit
2). One that fails while a run trains is named on stderr and left for the rest of that run; the run goes
on, and the store keeps everything.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from suite.errors import ConfigError, SuiteError

TRACKERS = ("tensorboard", "mlflow")
_EXTRA = "pip install '.[{}]' in the suite's source folder"


@dataclass(frozen=True)
class Tracking:
    """Which trackers to stream to (``kinds``), and where their files go (``dir``)."""

    kinds: tuple[str, ...] = ()
    dir: str = "results/tracking"

    def __post_init__(self):
        for kind in self.kinds:
            if kind not in TRACKERS:
                raise ConfigError(f"invalid --log {kind!r}; valid: {', '.join(TRACKERS)} (comma-separated for "
                                  "both)")

    @classmethod
    def parse(cls, spec: str | None, dir: str) -> Tracking | None:
        """``--log tensorboard,mlflow`` (None or '' for none); checks each tracker's package is here."""
        if spec is None:
            return None
        kinds = tuple(dict.fromkeys(k.strip() for k in spec.split(",") if k.strip()))
        if not kinds:
            raise ConfigError(f"invalid --log {spec!r}: name a tracker ({', '.join(TRACKERS)})")
        tracking = cls(kinds, dir)
        tracking.check()
        return tracking

    def check(self) -> None:
        """Every tracker's package importable, else a SuiteError naming the extra to install."""
        for kind in self.kinds:
            try:
                if kind == "tensorboard":
                    import tensorboard  # noqa: F401  (torch.utils.tensorboard needs it)
                    from torch.utils.tensorboard import SummaryWriter  # noqa: F401
                else:
                    import mlflow  # noqa: F401
            except ImportError as e:
                raise SuiteError(f"--log {kind} needs the {kind} package, which is not installed here "
                                 f"({e.name or e}): {_EXTRA.format(kind)}; nothing was run") from None

    def prepare(self) -> None:
        """Open every tracker once here, before any run trains (and before pool workers share it): the
        MLflow database and experiment are created now, and a tracker that cannot be reached stops the
        command here."""
        if "mlflow" in self.kinds:
            try:
                MlflowSink.experiment(self.dir)
            except Exception as e:
                raise SuiteError(f"--log mlflow: cannot use the MLflow tracking store at {mlflow_uri(self.dir)} "
                                 f"({type(e).__name__}: {str(e).strip().splitlines()[0] if str(e).strip() else ''}); "
                                 "nothing was run. Set MLFLOW_TRACKING_URI, or pass --log-dir with a writable "
                                 "folder") from None

    @contextlib.contextmanager
    def session(self, store, config):
        """``store`` as the runner sees it while ``config`` trains: every commit is also streamed."""
        tracked = TrackedStore(store, self, config)
        try:
            yield tracked
        finally:
            tracked.close()


def tags(config) -> dict[str, str]:
    from suite.protocols import protocol_of

    try:
        protocol = protocol_of(config.to_dict()).label
    except Exception:  # a task this process cannot resolve: the key's hash label still identifies it
        protocol = "?"
    return {"run_id": config.run_id, "model": config.model, "task": config.task, "protocol": protocol,
            "seed": str(config.seed)}


class TrackedStore:
    """A Store (or a Ray worker's RemoteStore) whose commits are streamed to trackers once committed;
    everything else is the store's own."""

    def __init__(self, store, tracking: Tracking, config):
        self._store, self._tracking, self._config = store, tracking, config
        self._sinks: list | None = None  # opened at the first commit: a skipped run streams nothing

    def __getattr__(self, name):
        return getattr(self._store, name)

    def commit(self, run_id, step, records, **fields) -> None:
        metrics = [(s, n, v) for s, n, v in records.metrics if v is not None and math.isfinite(v)]
        self._store.commit(run_id, step, records, **fields)
        self._stream(metrics, fields.get("status"))

    def _stream(self, metrics, status) -> None:
        if self._sinks is None:
            self._sinks = []
            for kind in self._tracking.kinds:
                sink = self._guarded(kind, _open, kind, self._tracking.dir, self._config)
                if sink is not None:
                    self._sinks.append(sink)
        for sink in list(self._sinks):
            self._guarded(sink, sink.log, metrics)
            if status and sink in self._sinks:
                self._guarded(sink, sink.status, status)

    def _guarded(self, who, fn, *args):
        """``fn(*args)``; a tracker's failure is said once and ends its streaming, never the run."""
        try:
            return fn(*args)
        except Exception as e:
            kind = who if isinstance(who, str) else who.kind
            if not isinstance(who, str) and who in self._sinks:
                self._sinks.remove(who)
            print(f"suite: --log {kind}: run {self._config.run_id} is no longer streamed there ({type(e).__name__}: "
                  f"{str(e).strip().splitlines()[0] if str(e).strip() else ''}); the store has every metric",
                  file=sys.stderr, flush=True)
            return None

    def update(self, run_id, **fields) -> None:
        self._store.update(run_id, **fields)
        if "status" in fields:
            for sink in list(self._sinks or []):
                self._guarded(sink, sink.status, fields["status"])

    def close(self) -> None:
        for sink in list(self._sinks or []):
            self._guarded(sink, sink.close)


def _open(kind: str, dir: str, config):
    return TensorBoardSink(dir, config) if kind == "tensorboard" else MlflowSink(dir, config)


class TensorBoardSink:
    kind = "tensorboard"

    def __init__(self, dir: str, config):
        from torch.utils.tensorboard import SummaryWriter

        self.writer = SummaryWriter(log_dir=str(Path(dir) / "tensorboard" / config.run_id))
        t = tags(config)
        self.writer.add_text("suite/run", "  \n".join(f"{k}: {v}" for k, v in t.items()), 0)

    def log(self, metrics) -> None:
        for step, name, value in metrics:
            self.writer.add_scalar(name, value, step)
        self.writer.flush()

    def status(self, status: str) -> None:
        self.writer.add_text("suite/status", status)
        self.writer.flush()

    def close(self) -> None:
        self.writer.close()


_MLFLOW_END = {"finished": "FINISHED", "diverged": "FINISHED", "pruned": "FINISHED", "failed": "FAILED",
               "interrupted": "KILLED"}


def mlflow_uri(dir: str) -> str:
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{Path(dir).resolve() / 'mlflow.db'}"


class MlflowSink:
    kind = "mlflow"

    def __init__(self, dir: str, config):
        from mlflow.entities import Param

        self.client, experiment = self.experiment(dir)
        t = {f"suite.{k}": v for k, v in tags(config).items()}
        found = self.client.search_runs([experiment], filter_string=f"tags.`suite.run_id` = '{config.run_id}'",
                                        max_results=1)
        if found:  # a resumed run goes on where it was
            self.run = found[0].info.run_id
            self.client.update_run(self.run, status="RUNNING")
        else:
            self.run = self.client.create_run(experiment, run_name=config.run_id, tags=t).info.run_id
            params = [Param(k, str(v)[:6000]) for k, v in _flat_config(config).items()]
            for i in range(0, len(params), 100):  # MLflow takes at most 100 params a batch
                self.client.log_batch(self.run, params=params[i:i + 100])

    @staticmethod
    def experiment(dir: str):
        """(an MlflowClient, the experiment's id), the experiment created if it is not there yet."""
        from mlflow.tracking import MlflowClient

        logging.getLogger("mlflow").setLevel(logging.WARNING)  # not its notes on creating the database
        uri = mlflow_uri(dir)
        if uri.startswith("sqlite:///"):
            Path(uri[len("sqlite:///"):]).parent.mkdir(parents=True, exist_ok=True)
        client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME") or "suite"
        found = client.get_experiment_by_name(name)
        if found is not None:
            return client, found.experiment_id
        # artifacts (the suite logs none) beside the database, not in whatever folder the command ran in
        where = (Path(dir).resolve() / "mlartifacts").as_uri() if "MLFLOW_TRACKING_URI" not in os.environ else None
        try:
            return client, client.create_experiment(name, artifact_location=where)
        except Exception:  # another process created it meanwhile
            found = client.get_experiment_by_name(name)
            if found is None:
                raise
            return client, found.experiment_id

    def log(self, metrics) -> None:
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        batch = [Metric(name, float(value), now, step) for step, name, value in metrics]
        for i in range(0, len(batch), 1000):  # MLflow takes at most 1000 metrics a batch
            self.client.log_batch(self.run, metrics=batch[i:i + 1000])

    def status(self, status: str) -> None:
        self.client.set_tag(self.run, "suite.status", status)
        if status in _MLFLOW_END:
            self.client.set_terminated(self.run, status=_MLFLOW_END[status])

    def close(self) -> None:
        pass  # every call above is written when it returns


def _flat_config(config) -> dict:
    d = config.to_dict()
    out = {k: v for k, v in d.items() if not isinstance(v, dict)}
    for scope, key in (("model", "model_options"), ("task", "task_options"), ("config", "group_options")):
        out.update({f"{scope}.{k}": v for k, v in d[key].items()})
    return out
