"""`suite run --log tensorboard,mlflow`: the trackers receive what the store holds, from pool workers too."""

import subprocess
import sys

import numpy as np
import pytest

from suite.store import Store
from tests.helpers import ROOT, cli

RUN = ("run", "--models", "rnn,scornn", "--tasks", "adding", "--steps", "6", "--set", "T=5", "--set", "eval_size=16",
       "--set", "eval_every=3", "--seeds", "0", "--workers", "2", "--threads", "1", "--no-report")


@pytest.fixture(scope="module")
def tracked(tmp_path_factory):
    pytest.importorskip("tensorboard")
    pytest.importorskip("mlflow")
    folder = tmp_path_factory.mktemp("tracked")
    db = folder / "s.db"
    res = cli(*RUN, "--db", str(db), "--log", "tensorboard,mlflow", env={"MLFLOW_TRACKING_URI": "",
                                                                          "MLFLOW_EXPERIMENT_NAME": ""})
    assert res.returncode == 0, res.stderr
    return db, folder / "tracking"


def _stored(db):
    s = Store(db, read_only=True)
    out = {}
    for r in s.runs():
        series = {}
        for _, step, name, value in s.metrics(r["run_id"]):
            series.setdefault(name, []).append((step, value))
        out[r["run_id"]] = (r, series)
    return out


def test_tensorboard_holds_every_committed_metric_of_every_run(tracked):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    db, folder = tracked
    stored = _stored(db)
    assert len(stored) == 2 and {r["model"] for r, _ in stored.values()} == {"rnn", "scornn"}
    for run_id, (run, series) in stored.items():
        acc = EventAccumulator(str(folder / "tensorboard" / run_id), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        assert set(acc.Tags()["scalars"]) == set(series)  # train/loss, train/time, val/*, test/*, orth_error
        for name, points in series.items():
            events = acc.Scalars(name)
            assert [e.step for e in events] == [s for s, _ in points]
            # TensorBoard keeps float32
            assert np.array_equal(np.float32([e.value for e in events]), np.float32([v for _, v in points]))
        assert [s for s, _ in series["train/loss"]] == list(range(1, 7)) and len(series["val/mse"]) == 3
        text = acc.Tensors("suite/run/text_summary")[0].tensor_proto.string_val[0].decode()
        from suite.reports.data import protocol_of

        for key, value in (("run_id", run_id), ("model", run["model"]), ("task", "adding"), ("seed", "0"),
                           ("protocol", protocol_of({"task": "adding", **run["config"]}).label)):
            assert f"{key}: {value}" in text


def test_mlflow_holds_every_committed_metric_tagged(tracked):
    import mlflow
    from mlflow.tracking import MlflowClient

    db, folder = tracked
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    mlflow.set_tracking_uri(uri)
    found = mlflow.search_runs(experiment_names=["suite"])
    stored = _stored(db)
    assert sorted(found["tags.suite.run_id"]) == sorted(stored)
    client = MlflowClient(tracking_uri=uri)
    for _, row in found.iterrows():
        run, series = stored[row["tags.suite.run_id"]]
        assert row["status"] == "FINISHED" and row["tags.suite.status"] == "finished"
        assert row["tags.suite.model"] == run["model"] and row["tags.suite.seed"] == "0"
        assert row["tags.suite.protocol"].startswith("adding-")
        assert row["params.lr"] == str(run["config"]["lr"]) and row["params.task.T"] == "5"
        for name, points in series.items():
            history = sorted((m.step, m.value) for m in client.get_metric_history(row["run_id"], name))
            assert history == points, name


BLOCK = "import sys; sys.modules[{!r}] = None; from suite.cli import main; sys.exit(main(sys.argv[1:]))"


@pytest.mark.parametrize("tracker", ["tensorboard", "mlflow"])
def test_a_missing_tracker_stops_before_any_training(tmp_path, tracker):
    """A None in sys.modules is Python's documented way to make an import fail: an install without it."""
    db = tmp_path / "s.db"
    res = subprocess.run([sys.executable, "-c", BLOCK.format(tracker), *RUN, "--db", str(db), "--log", tracker],
                         capture_output=True, text=True, cwd=ROOT)
    assert res.returncode == 2, res.stderr
    assert f".[{tracker}]" in res.stderr and "nothing was run" in res.stderr
    assert "Traceback" not in res.stderr and not db.exists()


def test_bad_log_values_name_the_choices(tmp_path):
    res = cli(*RUN, "--db", str(tmp_path / "s.db"), "--log", "wandb")
    assert res.returncode == 2 and "invalid --log 'wandb'; valid: tensorboard, mlflow" in res.stderr
    res = cli(*RUN, "--db", str(tmp_path / "s.db"), "--log-dir", str(tmp_path))
    assert res.returncode == 2 and "--log-dir needs --log" in res.stderr
    assert not (tmp_path / "s.db").exists()
