"""The one training loop every model runs through, with durable, resumable recording.

``execute(config, store)`` claims the run in the store, builds task and model from the registries,
gives the orthogonal/unitary parameters their own optimizer, trains, evaluates every ``eval_every``
steps and commits metrics together with a checkpoint (see suite.store for the durability rule).
What it records is listed in docs/results.md.
"""

from __future__ import annotations

import contextlib
import math
import platform
import resource
import signal
import statistics
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch

from suite.config import PRECISIONS, RunConfig
from suite.contract import RecurrentModel, orthogonality_error
from suite.errors import ConfigError, SuiteError
from suite.memory import keep_freed_memory, release_freed_memory
from suite.optim import group_settings, make_optimizers  # noqa: F401  (group_settings: re-exported)
from suite.recorder import Recorder
from suite.registry import TASKS, create_model, create_task
from suite.seeding import seeded
from suite.store import ClaimLost, Records, StoreWriteError, stop_hint

PROFILE_BATCH = 32


@dataclass(frozen=True)
class Outcome:
    run_id: str
    status: str  # finished | diverged | pruned | failed | interrupted | skipped | busy
    # (busy: another live process holds the run, or took it over meanwhile; ``error`` says which)
    summary: dict | None = None
    error: str | None = None


def resolve_device(device: str) -> torch.device:
    n_gpu = torch.cuda.device_count() if torch.cuda.is_available() else 0
    valid = ["auto", "cpu"] + (["cuda"] + [f"cuda:{i}" for i in range(n_gpu)] if n_gpu else [])
    if device == "auto":
        return torch.device("cuda" if n_gpu else "cpu")
    if device not in valid:
        seen = f"sees {n_gpu} CUDA device(s)" if n_gpu else "sees no CUDA device"
        raise SuiteError(f"invalid device={device!r}: torch {torch.__version__} {seen}; valid here: "
                         f"{', '.join(valid)}")
    return torch.device(device)


def check_precision(precision: str, device: torch.device) -> None:
    """bf16 runs a bfloat16 autocast: on the CPU, or on a CUDA device that computes in bfloat16."""
    if precision == "fp32":
        return
    if device.type == "cpu":
        return
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported(including_emulation=False):
            return
        major, minor = torch.cuda.get_device_capability(device)
        raise ConfigError(f"invalid precision={precision!r} on {torch.cuda.get_device_name(device)} (compute "
                          f"capability {major}.{minor}): bfloat16 needs compute capability 8.0 or newer; valid "
                          "here: 'fp32'")
    raise ConfigError(f"invalid precision={precision!r} on device {str(device)!r}: bfloat16 autocast runs on "
                      f"'cpu' and 'cuda'; valid here: 'fp32' (choices: {', '.join(map(repr, PRECISIONS))})")


def autocast(precision: str, device: torch.device | str) -> contextlib.AbstractContextManager:
    """The forward pass's context: a bfloat16 autocast for ``precision="bf16"`` (the models keep their
    recurrent matrix and recurrence in float32: ``suite.contract.full_precision``), else nothing."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)


def _widened(out: torch.Tensor) -> torch.Tensor:
    """Outputs an autocast left in bfloat16 (or float16), as float32 for the loss; others as they are."""
    return out.float() if out.dtype in (torch.bfloat16, torch.float16) else out


def build(config: RunConfig, device: torch.device | str = "cpu"):
    """(task, model) for a config; the model is initialized under the run's seed."""
    task = create_task(config.task, **config.task_kwargs())
    with seeded(config.seed):
        model = create_model(config.model, d_in=task.d_in, d_out=task.d_out, output=task.output,
                             **config.model_kwargs())
    return task, model.to(device)


def validate(config: RunConfig, device: torch.device | None = None) -> None:
    """Everything that can be wrong before training: names, options, values, data files, and (given
    the ``device`` the run will use) whether the model can run there."""
    task, model = build(config)
    task.check()
    make_optimizers(model, config)  # group names and per-group optimizer choices
    if device is not None:
        model.check(device)


def train_step(model: RecurrentModel, opts: list[torch.optim.Optimizer], task, x: torch.Tensor,
               y: torch.Tensor, step: int, clip: float | None = None, precision: str = "fp32") -> torch.Tensor:
    """The one training step (runner, invariant tests, benchmarks): loss + the model's regularizer,
    backward, optional gradient-norm clipping, every group's optimizer, the model's after-step hook.
    ``precision="bf16"``: the forward pass under a bfloat16 autocast; the loss and the backward pass
    outside it, the loss on float32 outputs. Returns the task loss (detached)."""
    with autocast(precision, x.device):
        out = model(x)
    loss = task.loss(_widened(out), y)
    for o in opts:
        o.zero_grad(set_to_none=True)
    (loss + model.regularizer()).backward()
    if clip is not None:
        torch.nn.utils.clip_grad_norm_(model.parameters(), clip)
    for o in opts:
        o.step()
    model.after_step(step)
    return loss.detach()


@torch.no_grad()
def evaluate(model, task, split: str, batch_size: int, device, precision: str = "fp32") -> dict[str, float]:
    model.eval()
    sums: dict[str, list[float]] = {}
    for x, y in task.eval_batches(split, batch_size):
        with autocast(precision, device):
            out = model(x.to(device))
        for k, (s, n) in task.scores(_widened(out), y.to(device)).items():
            acc = sums.setdefault(k, [0.0, 0])
            acc[0] += s
            acc[1] += n
    model.train()
    return {k: s / max(n, 1) for k, (s, n) in sums.items()}


def spectrum(model: RecurrentModel) -> list[list[float]]:
    with torch.no_grad():
        W = model.recurrent_matrix().detach().cpu()
    ev = torch.linalg.eigvals(W.to(torch.complex128 if W.is_complex() else torch.float64))
    return [[round(v.real, 12), round(v.imag, 12)] for v in ev.tolist()]


def gradient_profile(model: RecurrentModel, task, device, precision: str = "fp32") -> list[float]:
    """||dL/dh_t|| for t = 1..T on the first validation samples (the vanishing-gradient picture)."""
    x, y = next(iter(task.eval_batches("val", PROFILE_BATCH)))
    with torch.enable_grad():
        with autocast(precision, device):
            out, hs = model.trajectory(x.to(device))
        grads = torch.autograd.grad(task.loss(_widened(out), y.to(device)), hs, allow_unused=True)
    model.zero_grad(set_to_none=True)
    norms = [g.norm() for g in grads if g is not None]
    values = iter(torch.stack(norms).tolist() if norms else [])  # one copy to the host, not one per step
    return [0.0 if g is None else next(values) for g in grads]


def task_info(name: str, task) -> dict:
    """What reports need to know of the task, so they never need the registry or the data."""
    return {"metric": task.metric, "higher_is_better": task.higher_is_better, "baseline": task.baseline(),
            "length": task.length, "d_in": task.d_in, "d_out": task.d_out, "output": task.output,
            "description": TASKS.entry(name).doc}


def measures_orthogonality(model: RecurrentModel) -> bool:
    return model.tracks_orthogonality  # constrained, or a free square W started orthogonal (drift shows)


# ---- environment and memory --------------------------------------------------------------------
def git_revision() -> str | None:
    root = Path(__file__).resolve().parent.parent
    try:
        rev = subprocess.run(["git", "-C", str(root), "rev-parse", "HEAD"], capture_output=True,
                             text=True, timeout=10)
        if rev.returncode != 0:
            return None
        dirty = subprocess.run(["git", "-C", str(root), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev.stdout.strip() + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None


def environment(device: torch.device) -> dict:
    from suite import __version__

    env = {"suite": __version__, "torch": torch.__version__, "python": sys.version.split()[0],
           "platform": platform.platform(), "device": str(device), "threads": torch.get_num_threads(),
           "git": git_revision(), "host": platform.node()}
    if device.type == "cuda":
        env["device_name"] = torch.cuda.get_device_name(device)
        env["cuda"] = torch.version.cuda
    else:
        env["device_name"] = _cpu_name()
    return env


def _cpu_name() -> str:
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return platform.processor() or "cpu"


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    else:  # Linux: writing 5 to clear_refs resets the process's peak RSS (VmHWM)
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")


def peak_memory(device: torch.device) -> int:
    """Bytes: peak CUDA allocation, or the process's peak resident set size on CPU."""
    if device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


# ---- Ctrl-C and SIGTERM: finish the current step, checkpoint, then stop -------------------------
# A scheduler (SLURM, Kubernetes, `timeout`, `kill PID`) stops a job with SIGTERM: it is treated
# exactly like Ctrl-C. The signal that stopped the command decides its exit code (130 or 143).
STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)
_stopped_by: list[int] = []


def note_stop(signum: int) -> None:
    if not _stopped_by:
        _stopped_by.append(signum)


def stop_exit_code() -> int:
    """128 + the first stop signal received (SIGINT when none was noted: a KeyboardInterrupt)."""
    return 128 + (_stopped_by[0] if _stopped_by else signal.SIGINT)


def raise_interrupt(signum, frame):
    """The handler of ``suite run``/``suite tune`` outside a training step: stop now (whatever was
    committed holds; a run in progress is marked interrupted by ``execute``)."""
    note_stop(signum)
    raise KeyboardInterrupt


class _Interrupt:
    """While a run trains: the first SIGINT or SIGTERM asks it to stop after the current step (with
    a checkpoint and a commit); a second one stops at once. SIGTERM is taken only where the process
    has not given it a handler of its own (a pool worker has: it stops the whole sweep)."""

    def __init__(self):
        self.requested = False
        self._old: dict[int, object] = {}

    def __enter__(self):
        if threading_main():
            for sig in STOP_SIGNALS:
                current = signal.getsignal(sig)
                if sig == signal.SIGINT or current in (signal.SIG_DFL, raise_interrupt):
                    self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        note_stop(signum)
        if self.requested:  # a second signal stops at once
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def threading_main() -> bool:
    import threading

    return threading.current_thread() is threading.main_thread()


# ---- one run ------------------------------------------------------------------------------------
def execute(config: RunConfig, store: Recorder, device: str = "auto", force: bool = False,
            progress: Callable[[str, int, dict], None] | None = None, stop=None) -> Outcome:
    """Train ``config`` into ``store``. ``stop(config, step, val)``, called after every evaluation
    with the validation scores, may end the run early: it is then recorded as ``pruned`` (a tuning
    search's pruner uses this). ``progress(event, step, values)`` hears of the run's start, steps and
    evaluations (``suite.progress``)."""
    run_id = config.run_id
    dev = resolve_device(device)
    check_precision(config.precision, dev)  # refused before the run is claimed
    action, step = store.claim(run_id, config.config_hash, config.seed, config.model, config.task,
                               config.to_dict(), config.steps, force=force)
    if action == "done":
        return Outcome(run_id, "skipped")
    if action == "busy":
        holder = store.holder(run_id)
        return Outcome(run_id, "busy", error=f"held by {holder}: {stop_hint(holder)}" if holder else
                       "held by another process")
    try:
        return _train(config, store, dev, step, progress, stop)
    except ClaimLost as e:  # taken over meanwhile (its claim had lapsed): the new holder goes on, we stop
        return Outcome(run_id, "busy", error=str(e))
    except KeyboardInterrupt:
        with contextlib.suppress(ClaimLost, StoreWriteError):  # already released, or nothing can be written
            store.update(run_id, status="interrupted", owner=None)
        raise
    except StoreWriteError:  # the store's disk, not the run: no other run could go on either
        with contextlib.suppress(ClaimLost, StoreWriteError):
            store.update(run_id, status="interrupted", owner=None)
        raise
    except Exception as e:  # recorded as data; the sweep goes on
        store.update(run_id, status="failed", owner=None, error=traceback.format_exc())
        return Outcome(run_id, "failed", error=f"{type(e).__name__}: {e}")


def _train(config: RunConfig, store: Recorder, dev: torch.device, start: int, progress, stop=None) -> Outcome:
    run = _prepare(config, store, dev)
    start = _resume(run, start)
    store.prune_checkpoints(config.run_id, keep=start, best=run.best_step)
    run.session_start = time.perf_counter()
    if start == 0:
        _record_start(run)
    note = progress or _silent
    note("start", start, {"total": config.steps})
    ended = _train_steps(run, start, note, stop)
    if ended is not None:
        return ended
    summary = summarize(store, config.run_id, config, run.state)
    store.update(config.run_id, status="finished", owner=None, summary=summary)
    return Outcome(config.run_id, "finished", summary)


@dataclass
class _Training:
    """One run while it trains: what it built, the records buffered since its last commit, and the
    step of its best validation metric so far (whose checkpoint pruning keeps)."""

    config: RunConfig
    store: Recorder
    dev: torch.device
    task: object
    model: RecurrentModel
    opts: list[torch.optim.Optimizer]
    state: dict  # train_time, wall_time, peak_memory, evals, params_dof: saved with every checkpoint
    records: Records = field(default_factory=Records.empty)
    val: dict[str, float] = field(default_factory=dict)  # the last evaluation's validation scores
    best: tuple[float, int] | None = None  # (validation metric, step), as ``summarize`` picks it
    session_start: float = 0.0

    @property
    def best_step(self) -> int | None:
        return None if self.best is None else self.best[1]

    def clock(self) -> None:
        """Add the wall-clock time since the last call (or the session's start) to ``wall_time``."""
        now = time.perf_counter()
        self.state["wall_time"] += now - self.session_start
        self.session_start = now

    def record_eval(self, step: int) -> None:
        """Buffer the validation and test scores, the orthogonality error, and (when due) the spectrum
        and the gradient profile of ``step``; note a new best validation metric."""
        config, model, task, k = self.config, self.model, self.task, self.state["evals"]
        scores = {split: evaluate(model, task, split, config.eval_batch_size, self.dev, config.precision)
                  for split in ("val", "test")}
        for split, values in scores.items():
            for name, value in values.items():
                self.records.metrics.append((step, f"{split}/{name}", value))
        self.val.update(scores["val"])
        if measures_orthogonality(model):
            self.records.metrics.append((step, "orth_error", orthogonality_error(model.recurrent_matrix())))
        if step == 0 or step == config.steps or k % config.eigen_every == 0:
            self.records.spectra.append((step, spectrum(model)))
        if step == 0 or step == config.steps or k % config.profile_every == 0:
            self.records.profiles.append((step, gradient_profile(model, task, self.dev, config.precision)))
        if step > 0:
            self.best = best_validation([step], [scores["val"].get(task.metric)], task.higher_is_better, self.best)

    def commit(self, step: int, release: bool = False, **fields) -> None:
        """Checkpoint ``step`` (every evaluation commits, so a new best always has its checkpoint),
        commit the buffered records, prune the checkpoints no longer kept."""
        self.state["peak_memory"] = max(self.state["peak_memory"], peak_memory(self.dev))
        run_id = self.config.run_id
        self.store.save_checkpoint(run_id, step, {"step": step, "model": self.model.state_dict(),
                                                  "optimizers": [o.state_dict() for o in self.opts],
                                                  "state": self.state})
        self.store.commit(run_id, step, self.records, **fields)
        self.store.prune_checkpoints(run_id, keep=step, best=self.best_step)
        if release:  # only now: pruning is a write of the run, done while holding it
            self.store.update(run_id, owner=None)


def _prepare(config: RunConfig, store: Recorder, dev: torch.device) -> _Training:
    """Task, model (under the run's seed) and optimizers of a run about to train on ``dev``."""
    keep_freed_memory()  # the steps reuse their buffers' pages (suite.memory)
    release_freed_memory()  # what earlier runs of this process freed: this run's peak memory is its own
    task, model = build(config, dev)
    task.check()
    opts = make_optimizers(model, config)
    state = {"train_time": 0.0, "wall_time": 0.0, "peak_memory": 0, "evals": 0,
             "params_dof": model.degrees_of_freedom()}
    reset_peak_memory(dev)
    return _Training(config, store, dev, task, model, opts, state)


def _resume(run: _Training, start: int) -> int:
    """Load the checkpoint of the committed step ``start`` (or, it missing or unusable: set aside by
    the store, an older one); the step the run goes on from (0: it starts over)."""
    if start == 0:
        return 0
    store, run_id = run.store, run.config.run_id
    ckpt = store.load_checkpoint(run_id, start, map_location=run.dev)
    if ckpt is None:  # records without their checkpoint cannot be continued consistently: start over
        print(f"suite: run {run_id}: no usable checkpoint for step {start}; restarting from step 0",
              file=sys.stderr, flush=True)
        store.reset(run_id)
        return 0
    run.model.load_state_dict(ckpt["model"])
    for o, s in zip(run.opts, ckpt["optimizers"]):
        o.load_state_dict(s)
    run.state.update(ckpt["state"])
    if ckpt["step"] < start:  # the records after it are recomputed, bit for bit
        store.reset(run_id, ckpt["step"])
        start = ckpt["step"]
    steps, values = store.series(run_id, f"val/{run.task.metric}")
    run.best = best_validation(steps, values, run.task.higher_is_better)
    return start


def _record_start(run: _Training) -> None:
    """Evaluate and commit step 0, with what the store keeps of the run's environment and model."""
    config, model = run.config, run.model
    run.store.reset(config.run_id)  # a run killed after its step-0 commit left records to redo
    run.record_eval(0)
    run.commit(0, env=environment(run.dev), task_info=task_info(config.task, run.task),
               params_total=model.parameter_count(), params_recurrent=model.recurrent_parameter_count())


def _silent(event: str, step: int, values: dict) -> None:
    """No one listens to this run's progress."""


def _train_steps(run: _Training, start: int, note, stop) -> Outcome | None:
    """Train steps ``start + 1`` to the last, committing at every evaluation (and ``checkpoint_every``
    steps); an Outcome if the run ends early (diverged, or pruned by ``stop``), else None. A stop
    signal (``_Interrupt``) commits the current step, marks the run interrupted and raises
    KeyboardInterrupt."""
    config, store, run_id = run.config, run.store, run.config.run_id
    last_beat = time.time()
    with _Interrupt() as interrupt:
        for step in range(start + 1, config.steps + 1):
            value = _train_one(run, step)
            note("step", step, {"loss": value})
            if not math.isfinite(value):
                run.clock()
                store.commit(run_id, step, run.records, status="diverged", owner=None,
                             summary=summarize(store, run_id, config, run.state, diverged_at=step))
                return Outcome(run_id, "diverged", store.run(run_id)["summary"])
            if step % config.eval_every == 0 or step == config.steps:
                pruned = _evaluate_and_commit(run, step, stop, note, value)
                if pruned is not None:
                    return pruned
            elif config.checkpoint_every and step % config.checkpoint_every == 0:
                run.clock()
                run.commit(step)
            elif time.time() - last_beat > 60:
                store.heartbeat(run_id)
                last_beat = time.time()
            if interrupt.requested and step < config.steps:
                run.clock()
                run.commit(step, release=True, status="interrupted")
                raise KeyboardInterrupt
    return None


def _train_one(run: _Training, step: int) -> float:
    """One training step on the step's batch, timed and buffered; its loss."""
    config, dev = run.config, run.dev
    x, y = run.task.train_batch(step, config.batch_size, config.seed)
    t0 = time.perf_counter()
    loss = train_step(run.model, run.opts, run.task, x.to(dev, non_blocking=True), y.to(dev, non_blocking=True),
                      step, config.clip, config.precision)
    value = loss.item()  # synchronizes a GPU, so the time below is the step's
    run.state["train_time"] += time.perf_counter() - t0
    run.records.metrics.append((step, "train/loss", value))
    run.records.metrics.append((step, "train/time", run.state["train_time"]))
    return value


def _evaluate_and_commit(run: _Training, step: int, stop, note, loss: float) -> Outcome | None:
    """Evaluate ``step`` and commit it; the Outcome "pruned" when ``stop`` ends the run here."""
    config, run_id = run.config, run.config.run_id
    run.state["evals"] += 1
    run.record_eval(step)
    note("eval", step, {"loss": loss, **{f"val/{k}": v for k, v in run.val.items()}})
    run.clock()
    run.commit(step)
    if stop is not None and step < config.steps and stop(config, step, dict(run.val)):
        summary = summarize(run.store, run_id, config, run.state)
        run.store.update(run_id, status="pruned", owner=None, summary=summary)
        return Outcome(run_id, "pruned", summary)
    return None


def best_validation(steps, values, higher: bool,
                    best: tuple[float, int] | None = None) -> tuple[float, int] | None:
    """(value, step) of the best validation metric among ``values`` at ``steps`` (and ``best``, the
    best of earlier steps): the first step to reach the best value, step 0 (the untrained model) and
    missing values left out. The run's headline number is the test metric at this step."""
    for step, value in zip(steps, values):
        if step > 0 and value is not None and math.isfinite(value) and (
                best is None or (value > best[0] if higher else value < best[0])):
            best = (value, step)
    return best


def summarize(store: Recorder, run_id: str, config: RunConfig, state: dict,
              diverged_at: int | None = None) -> dict:
    """Headline numbers of a run, from what the store holds."""
    task = create_task(config.task, **config.task_kwargs())
    metric, higher = task.metric, task.higher_is_better
    s: dict = {"metric": metric, "higher_is_better": higher, "diverged_at": diverged_at,
               "train_time": state["train_time"], "wall_time": state["wall_time"],
               "peak_memory": state["peak_memory"], "params_dof": state.get("params_dof")}
    steps, times = store.series(run_id, "train/time")
    if len(times) > 1:
        per_step = statistics.median(b - a for a, b in zip(times, times[1:]))
        s["time_per_step"] = per_step
        s["samples_per_sec"] = config.batch_size / per_step if per_step > 0 else None
    _, losses = store.series(run_id, "train/loss")
    tail = [v for v in losses[-max(1, len(losses) // 20):] if v is not None]
    s["final_train_loss"] = statistics.fmean(tail) if tail else None
    vsteps, vals = store.series(run_id, f"val/{metric}")
    tsteps, tests = store.series(run_id, f"test/{metric}")
    test_at = dict(zip(tsteps, tests))
    best = best_validation(vsteps, vals, higher)
    if best is not None:
        best_val, best_step = best
        s.update(best_val=best_val, best_step=best_step, test_at_best_val=test_at.get(best_step))
    if vals:
        s["final_val"], s["final_test"], s["final_step"] = vals[-1], tests[-1] if tests else None, vsteps[-1]
    _, orth = store.series(run_id, "orth_error")
    if orth:
        s["final_orth_error"] = orth[-1]
    return s
