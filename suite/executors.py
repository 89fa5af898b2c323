"""Where a sweep's runs execute: in this process, in local worker processes, or as Ray tasks.

``run_all(configs, db, device, force, executor=Executor(...))`` trains a list of RunConfigs into the
store at ``db`` and returns their Outcomes; ``suite run`` calls it, and so can any command that trains
a list of configs. Every executor runs the one training loop, ``suite.runner.execute``.

- ``local``: one run after another in this process (``workers=1``), or a pool of spawned processes.
  Each worker opens the store itself (one SQLite file, safe to share on one machine).
- ``ray``: each run is a Ray task (``cpus_per_run``, ``gpus_per_run``: fractional GPUs let several runs
  share one). The store stays one SQLite file next to the driver and workers never open it (SQLite over
  a network filesystem is unsafe): a worker's runner gets a ``RemoteStore`` whose calls travel through a
  small actor to the driver, which performs them on the real Store. Checkpoints travel the same way,
  so metrics are still committed only together with their checkpoint. A worker or node that dies: Ray
  retries the task, which resumes from the last checkpoint the driver holds.

Results do not depend on the executor: batches are pure functions of (seed, step), and every run gets
the same number of torch threads (``threads``; results are bit-exact only for equal thread counts).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import ctypes
import dataclasses
import functools
import io
import multiprocessing as mp
import os
import signal
import sqlite3
import sys
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from suite.errors import ConfigError, SuiteError, check_choice, check_range
from suite.recorder import METHODS as RECORDER_METHODS
from suite.recorder import Recorder

if TYPE_CHECKING:
    from suite.store import Records

EXECUTORS = ("local", "ray")
# The distribution is installed from its source folder (it is not on PyPI): name what works anywhere.
RAY_EXTRA = "pip install 'ray[client]>=2.10', or `pip install '.[ray]'` in the suite's source folder"


@dataclass(frozen=True)
class Executor:
    kind: str = "local"  # local | ray
    workers: int = 1  # local: runs in parallel processes (1: in this process)
    threads: int | None = None  # torch threads per run; None: cores // workers locally, cpus_per_run on Ray
    address: str | None = None  # ray: None starts (or joins) a Ray on this machine; "auto"; "ray://HOST:PORT"
    cpus_per_run: float = 1.0  # ray: CPUs reserved per run
    gpus_per_run: float = 0.0  # ray: GPUs reserved per run; 0.25 puts four runs on one GPU
    max_retries: int = 3  # ray: retries of a run whose worker or node died

    def __post_init__(self):
        check_choice("executor", self.kind, EXECUTORS)
        check_range("workers", self.workers, low=1)
        if self.threads is not None:
            check_range("threads", self.threads, low=1)
        check_range("cpus_per_run", self.cpus_per_run, low=0, integer=False)
        check_range("gpus_per_run", self.gpus_per_run, low=0, high=1, integer=False)  # a run uses one device
        check_range("max_retries", self.max_retries, low=0)
        if self.cpus_per_run == 0 and self.gpus_per_run == 0:
            raise ConfigError("invalid cpus_per_run=0 with gpus_per_run=0: a run must reserve something")

    def torch_threads(self) -> int | None:
        """Threads each run gets; None: leave torch's default (one local run in this process)."""
        if self.threads is not None:
            return self.threads
        if self.kind == "ray":
            return max(1, int(self.cpus_per_run))
        return max(1, (os.cpu_count() or 1) // self.workers) if self.workers > 1 else None

    def describe(self) -> str:
        if self.kind == "local":
            return f"{self.workers} worker(s)"
        return (f"Ray at {self.address or 'a local instance'}, {self.cpus_per_run:g} CPU"
                f"{f' + {self.gpus_per_run:g} GPU' if self.gpus_per_run else ''} per run")

    def run_device(self, device: str) -> str:
        """The device string each run resolves where it runs (a Ray worker sees only its own GPU)."""
        if self.kind == "local":
            return device
        valid = ("auto", "cpu", "cuda")
        check_choice("device", device, valid, where="--executor ray (Ray assigns each run its GPU)")
        if device == "auto":
            return "cuda" if self.gpus_per_run else "cpu"
        if device == "cuda" and not self.gpus_per_run:
            raise ConfigError("invalid --device cuda with --gpus-per-run 0: reserve a GPU share, e.g. "
                              "--gpus-per-run 0.25")
        if device == "cpu" and self.gpus_per_run:
            raise ConfigError(f"invalid --gpus-per-run {self.gpus_per_run:g} with --device cpu: the runs "
                              "would reserve GPUs they do not use")
        return device


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The executor options of ``suite run`` (and of any command that trains a list of configs)."""
    p.add_argument("--executor", default="local", choices=EXECUTORS,
                   help=f"local processes (default) or Ray tasks on a cluster (needs {RAY_EXTRA})")
    p.add_argument("--threads", type=int, help="torch threads per run (default: cores / workers locally, "
                   "--cpus-per-run on Ray); results are bit-identical only for equal thread counts")
    p.add_argument("--address", help="ray: 'auto' (a running cluster), ray://HOST:PORT (Ray Client), or "
                   "HOST:PORT; default: the cluster of RAY_ADDRESS or on this machine, else a new local one")
    p.add_argument("--cpus-per-run", type=float, default=1.0, help="ray: CPUs reserved per run (default 1)")
    p.add_argument("--gpus-per-run", type=float, default=0.0,
                   help="ray: GPU share per run, e.g. 0.25 runs four on one GPU (default 0: CPU runs)")
    p.add_argument("--max-retries", type=int, default=3,
                   help="ray: retries of a run whose worker or node died (default 3)")


def from_args(args, n_runs: int) -> Executor:
    """The Executor of parsed ``add_arguments`` options plus ``--workers``; checks Ray is importable."""
    workers = args.workers
    if workers is None:
        workers = 1 if (args.device.startswith("cuda") or n_runs <= 1) else min(2, os.cpu_count() or 1)
    if args.executor == "local":
        # never more processes than runs: each worker is a whole Python process with torch loaded
        ex = Executor("local", workers=max(1, min(workers, n_runs)), threads=args.threads)
        if args.address or args.gpus_per_run or args.cpus_per_run != 1.0:
            raise ConfigError("--address, --cpus-per-run and --gpus-per-run need --executor ray")
        return ex
    if args.workers is not None:
        raise ConfigError("--workers applies to --executor local; Ray runs as many runs at once as the cluster's "
                          "resources allow (--cpus-per-run, --gpus-per-run)")
    ex = Executor("ray", threads=args.threads, address=args.address, cpus_per_run=args.cpus_per_run,
                  gpus_per_run=args.gpus_per_run, max_retries=args.max_retries)
    ex.run_device(args.device)
    import_ray()
    return ex


def import_ray():
    try:
        import ray
    except ImportError:
        raise SuiteError(f"--executor ray needs Ray, which is not installed here: {RAY_EXTRA}") from None
    return ray


def cost(config) -> float:
    """A rough relative cost, to start long runs first."""
    from suite.registry import MODELS, create_task

    task = create_task(config.task, **config.task_kwargs())
    try:
        length = task.length
    except Exception:
        length = 100
    factor = MODELS.entry(config.model).info.cost
    return config.steps * config.batch_size * length * factor


def run_all(configs, db: str, device: str = "auto", force: bool = False, workers: int | None = None,
            stop=None, executor: Executor | None = None, tracking=None, progress=None) -> list:
    """Train every config into the store at ``db``; the Outcomes in the order runs end. ``stop`` is passed
    to ``execute`` (a tuning search's pruning hook). ``tracking``: a ``suite.tracking.Tracking`` whose
    trackers every run streams its committed metrics to, from whichever process trains it. ``progress``:
    the ``suite.progress.Progress`` that shows the sweep (default: a new one at the process's verbosity);
    every executor forwards its runs' steps and evaluations to it. Ctrl-C: every running run commits its
    checkpoint and is marked ``interrupted``, then KeyboardInterrupt propagates; a second Ctrl-C stops at
    once."""
    from suite.progress import Progress

    executor = executor or Executor(workers=workers or 1)
    if executor.kind == "local" and executor.workers > max(1, len(configs)):
        executor = dataclasses.replace(executor, workers=max(1, len(configs)))
    device = executor.run_device(device)
    configs = sorted(configs, key=cost, reverse=True)
    kw = {} if stop is None else {"stop": stop}
    if tracking is not None and tracking.kinds:
        kw["tracking"] = tracking
    outcomes = []
    progress = progress or Progress(configs)

    def done(o) -> None:
        outcomes.append(o)
        progress.ended(o)

    try:
        if executor.kind == "ray":
            _run_ray(configs, db, device, force, executor, kw, done, progress)
        elif executor.workers <= 1:
            _run_here(configs, db, device, force, executor, kw, done, progress)
        else:
            _run_pool(configs, db, device, force, executor, kw, done, progress)
    finally:
        progress.close()
    return outcomes


def _execute(config, store, device: str, force: bool, progress, kw: dict):
    """``suite.runner.execute``, its commits streamed to the trackers of ``kw["tracking"]`` if any."""
    from suite.runner import execute

    kw = dict(kw)
    tracking = kw.pop("tracking", None)
    if tracking is None:
        return execute(config, store, device=device, force=force, progress=progress, **kw)
    with tracking.session(store, config) as tracked:
        return execute(config, tracked, device=device, force=force, progress=progress, **kw)


# ---- local: this process -------------------------------------------------------------------------
def _run_here(configs, db, device, force, executor, kw, done, progress) -> None:
    import torch

    from suite.store import Store

    threads, before = executor.torch_threads(), torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    store = Store(db)
    try:
        for c in configs:
            note = functools.partial(progress.event, c.run_id)
            done(_execute(c, store, device, force, note, kw))
    finally:
        store.close()
        torch.set_num_threads(before)


# ---- local: a pool of processes ------------------------------------------------------------------
# Workers live in their own process group, so a terminal's Ctrl-C reaches the parent only; the parent
# then sets ``_STOP`` and each worker's watcher thread interrupts its main thread once: the runner
# finishes the step, commits its checkpoint and marks the run `interrupted` before the pool goes away.
# SIGTERM, to the parent or to a worker (a scheduler may signal every process of a job), does the
# same. A worker whose parent died (kill -9, the OOM killer) notices within a second (Linux's parent-
# death signal, and a check of its parent pid everywhere): it stops its run the same way and exits,
# or exits at once after ORPHAN_GRACE seconds (its last commit holds, as after any kill).
_STOP = None  # the sweep's stop event, shared by the parent and its workers
_HARD = None  # set by the parent once it ends the pool: a worker then exits at once on SIGTERM
_PARENT = 0  # the parent's pid
_IN_RUN = False  # a run is in progress in this worker
_EVENTS = None  # the queue that carries this worker's progress notes to the parent
_LEVEL = 0  # the parent's verbosity (suite.progress)
ORPHAN_GRACE = 5.0
PR_SET_PDEATHSIG = 1


def _orphaned() -> bool:
    return os.getppid() != _PARENT


def _worker_init(threads: int, stop, hard, parent: int, events=None, level: int = 0) -> None:
    import torch

    from suite.progress import configure

    global _STOP, _HARD, _PARENT, _EVENTS
    _STOP, _HARD, _PARENT, _EVENTS = stop, hard, parent, events
    configure(level)
    os.setpgrp()
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # idle between runs: nothing to interrupt
    term = threading.Event()

    def on_sigterm(signum, frame):
        if _HARD.is_set():  # the pool is being ended (after every result, or a second Ctrl-C)
            os._exit(128 + signum)
        term.set()  # the monitor thread stops the sweep (no locks taken in a signal handler)

    signal.signal(signal.SIGTERM, on_sigterm)
    if sys.platform.startswith("linux"):  # SIGTERM when the parent dies; the pid check below covers the rest
        with contextlib.suppress(Exception):
            ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, int(signal.SIGTERM), 0, 0, 0)
    torch.set_num_threads(threads)

    def watch():
        stop.wait()
        import _thread

        _thread.interrupt_main(signal.SIGINT)  # runs the Python SIGINT handler in force, if any

    def monitor():
        while True:
            term.wait(0.5)
            if _orphaned():
                if not _IN_RUN:
                    os._exit(0)
                stop.set()  # the run checkpoints and stops; _worker then exits without answering
                time.sleep(ORPHAN_GRACE)
                os._exit(1)
            if term.is_set():
                term.clear()
                stop.set()

    threading.Thread(target=watch, daemon=True).start()
    threading.Thread(target=monitor, daemon=True).start()


def _worker(job):
    from suite.runner import Outcome

    global _IN_RUN
    _IN_RUN = True
    try:
        out = _job(job)
    except KeyboardInterrupt:  # the one interrupt came while _job was leaving: the store is already right
        out = Outcome(job[0].run_id, "interrupted")
    _IN_RUN = False
    if _orphaned():  # nobody to answer: leave quietly (the store holds everything committed)
        os._exit(0)
    return out


def _job(job):
    from suite.progress import sender
    from suite.runner import Outcome
    from suite.store import Store

    config, db, device, force, kw = job
    note = sender(_EVENTS.put, config.run_id) if _EVENTS is not None else None
    signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        if _STOP.is_set():  # checked after the handler is in place: a stop set earlier is seen here
            return Outcome(config.run_id, "interrupted")
        store = Store(db)
        try:
            return _execute(config, store, device, force, note, kw)
        finally:
            store.close()
    except KeyboardInterrupt:  # execute has committed the checkpoint and marked the run interrupted
        return Outcome(config.run_id, "interrupted")
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)


def _drain(events, progress) -> None:
    """Show every progress note the workers have sent so far."""
    while not events.empty():
        progress.event(*events.get())


def _run_pool(configs, db, device, force, executor, kw, done, progress) -> None:
    from suite.progress import verbosity
    from suite.runner import _Interrupt, note_stop

    ctx = mp.get_context("spawn")
    stop, hard = ctx.Event(), ctx.Event()
    # a SimpleQueue writes each note before put() returns: the notes of a run are in the pipe before
    # its outcome, so the parent shows them in order
    events = ctx.SimpleQueue()
    pool = ctx.Pool(executor.workers, initializer=_worker_init,
                    initargs=(executor.torch_threads(), stop, hard, os.getpid(), events, verbosity()))
    try:
        results = pool.imap_unordered(_worker, [(c, db, device, force, kw) for c in configs])
        interrupted = False
        # a first Ctrl-C (or SIGTERM) only sets a flag, so that it never lands in the middle of reading a
        # note or an outcome; the loop then stops the workers. A second one raises at once.
        with _Interrupt() as sigint:
            while True:
                if sigint.requested and not interrupted:
                    interrupted = True
                    stop.set()
                _drain(events, progress)
                try:
                    o = results.next(timeout=0.1)
                except mp.TimeoutError:
                    continue
                except StopIteration:
                    break
                _drain(events, progress)
                done(o)
        if interrupted or stop.is_set():
            if not interrupted:  # not stopped here: a worker was sent SIGTERM
                note_stop(signal.SIGTERM)
            raise KeyboardInterrupt
    finally:
        hard.set()
        pool.terminate()  # every result is in (each worker has committed and closed its store), or a second Ctrl-C


# ---- ray ------------------------------------------------------------------------------------------
# The Store methods the runner calls (suite.recorder.Recorder), each with the run id first.
_FORWARDED = RECORDER_METHODS
_READS = ("run", "series", "load_checkpoint", "holder")


class _Mailbox:
    """A Ray actor between workers and the driver: a worker's ``call`` waits until the driver, which
    collects calls with ``take``, answers it with ``reply``. It keeps no state worth saving."""

    def __init__(self):
        self._pending: list = []
        self._futures: dict = {}
        self._wake = None
        self._next = 0

    def _event(self) -> asyncio.Event:
        if self._wake is None:
            self._wake = asyncio.Event()
        return self._wake

    async def post(self, note) -> None:
        """A progress note (suite.progress): delivered to the driver with the next calls, never answered."""
        self._pending.append((None, note))
        self._event().set()

    async def call(self, request):
        self._next += 1
        key, fut = self._next, asyncio.get_running_loop().create_future()
        self._futures[key] = fut
        self._pending.append((key, request))
        self._event().set()
        return await fut

    async def take(self, timeout: float):
        if not self._pending:
            self._event().clear()
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._event().wait(), timeout)
        out, self._pending = self._pending, []
        return out

    async def reply(self, replies) -> None:
        for key, answer in replies:
            fut = self._futures.pop(key, None)
            if fut is not None and not fut.done():
                fut.set_result(answer)


class RemoteStore(Recorder):
    """What a Ray worker's runner gets instead of a Store: the Recorder's methods, each performed by the
    driver on the real Store.

    ``owner`` names the Ray task, so a retry of the task (same task id) takes over its own run; each
    attempt also carries a fresh token, and the driver refuses calls from an attempt that a newer one
    has replaced."""

    def __init__(self, mailbox, owner: str):
        self._mailbox, self.owner, self._attempt = mailbox, owner, uuid.uuid4().hex

    def _call(self, method: str, *args, **kwargs):
        # wait on a future, not in ray.get: a task blocked in ray.get lends its CPU back to Ray, which
        # would then start another run beside this one (a new worker process each time)
        ref = self._mailbox.call.remote((self._attempt, method, args, kwargs))
        status, value = ref.future().result()
        if status == "error":
            raise value
        return value

    def claim(self, run_id: str, config_hash: str, seed: int, model: str, task: str, config: dict,
              total_steps: int, force: bool = False) -> tuple[str, int]:
        return self._call("claim", run_id, config_hash, seed, model, task, config, total_steps, force=force,
                          owner=self.owner)

    def holder(self, run_id: str) -> str | None:
        return self._call("holder", run_id)

    def update(self, run_id: str, **fields) -> None:
        self._call("update", run_id, **fields)

    def heartbeat(self, run_id: str) -> None:
        self._call("heartbeat", run_id)

    def commit(self, run_id: str, step: int, records: Records, **fields) -> None:
        self._call("commit", run_id, step, records, **fields)
        records.clear()

    def reset(self, run_id: str, step: int = 0) -> None:
        self._call("reset", run_id, step)

    def run(self, run_id: str) -> dict | None:
        return self._call("run", run_id)

    def series(self, run_id: str, name: str) -> tuple[list[int], list[float | None]]:
        return self._call("series", run_id, name)

    def save_checkpoint(self, run_id: str, step: int, payload: dict) -> None:
        import ray

        # by reference: the driver fetches the tensors straight from this node's object store
        self._call("save_checkpoint", run_id, step, [ray.put(_to_cpu(payload))])

    def load_checkpoint(self, run_id: str, step: int, map_location=None) -> dict | None:
        import torch

        ckpt = self._call("load_checkpoint", run_id, step)
        if ckpt is None or map_location is None:
            return ckpt
        buf = io.BytesIO()  # torch's own map_location rules, exactly as a local load applies them
        torch.save(ckpt, buf)
        buf.seek(0)
        return torch.load(buf, map_location=map_location, weights_only=True)

    def prune_checkpoints(self, run_id: str, keep: int, best: int | None = None) -> None:
        self._call("prune_checkpoints", run_id, keep, best)


def _to_cpu(obj):
    import torch

    if isinstance(obj, torch.Tensor):
        return obj.detach().cpu()
    if isinstance(obj, dict):
        return {k: _to_cpu(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v) for v in obj)
    return obj


class _Server:
    """The driver's side: performs workers' store calls on the one real Store."""

    def __init__(self, store):
        self.store = store
        self.attempts: dict[str, str] = {}
        self.fatal: BaseException | None = None

    def serve(self, request):
        import ray

        attempt, method, args, kwargs = request
        try:
            if method not in _FORWARDED:
                raise SuiteError(f"unknown store call {method!r}")
            run_id = args[0]
            if method == "claim":
                self.attempts[run_id] = attempt
            elif self.attempts.get(run_id, attempt) != attempt:
                raise SuiteError(f"{run_id}: this attempt was replaced by a newer one; its call is refused")
            if method == "save_checkpoint":
                args = (*args[:2], ray.get(args[2][0]))
            elif method == "load_checkpoint":
                kwargs = {"map_location": "cpu"}
            value = getattr(self.store, method)(*args, **kwargs)
            return ("ok", None if method == "commit" else value)
        except Exception as e:
            from ray.exceptions import RayError  # e.g. the payload of a worker that died meanwhile

            from suite.store import StoreWriteError

            if method not in _READS and (isinstance(e, StoreWriteError) or not isinstance(
                    e, (SuiteError, sqlite3.IntegrityError, RayError))):
                self.fatal = e  # the store cannot be written (disk full, I/O error): no run can progress
            return ("error", _portable(e))


def _portable(e: Exception) -> Exception:
    import pickle

    try:
        pickle.loads(pickle.dumps(e))
        return e
    except Exception:
        return RuntimeError(f"{type(e).__name__}: {e}")


def _ray_run(config, device: str, force: bool, threads: int, mailbox, driver: str, kw: dict, level: int = 0):
    """One run, as a Ray task."""
    import ray
    import torch

    from suite.progress import configure, sender

    torch.set_num_threads(threads)
    configure(level)
    store = RemoteStore(mailbox, owner=f"{driver}/ray:{ray.get_runtime_context().get_task_id()}")
    note = sender(mailbox.post.remote, config.run_id)
    return _execute(config, store, device, force, note, kw)


def _run_ray(configs, db, device, force, executor: Executor, kw, done: Callable, progress) -> None:
    ray = import_ray()
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    from suite.runner import Outcome, _Interrupt
    from suite.store import Store, me

    started = not ray.is_initialized()
    if started:
        import logging

        before = signal.getsignal(signal.SIGTERM)
        ray.init(address=executor.address, logging_level=logging.WARNING)
        if threading.current_thread() is threading.main_thread() and before is not None:
            # ray.init makes SIGTERM exit the driver at once; here it stops the sweep as Ctrl-C does
            signal.signal(signal.SIGTERM, before)
    store = Store(db)
    server = _Server(store)
    # on the driver's node (a soft affinity may land elsewhere): the mailbox must outlive any worker node
    try:
        place = {"scheduling_strategy": NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(),
                                                                       soft=False)}
    except Exception:
        place = {}
    mailbox = ray.remote(_Mailbox).options(num_cpus=0, **place).remote()
    task = ray.remote(_ray_run).options(num_cpus=executor.cpus_per_run, num_gpus=executor.gpus_per_run,
                                        max_retries=executor.max_retries, retry_exceptions=False)
    driver = me()
    from suite.progress import verbosity

    refs = {task.remote(c, device, force, executor.torch_threads(), mailbox, driver, kw, verbosity()): c
            for c in configs}
    take = mailbox.take.remote(0.5)
    interrupted = False
    # A first Ctrl-C only sets a flag (a KeyboardInterrupt in the middle of serving would leave workers
    # waiting for answers); the loop then cancels the runs gracefully. A second one raises at once.
    try:
        with _Interrupt() as sigint:
            while refs:
                ready, _ = ray.wait([take, *refs], num_returns=1, timeout=1.0)
                if take in ready:
                    calls = ray.get(take)
                    for key, note in calls:
                        if key is None:
                            progress.event(*note)
                    mailbox.reply.remote([(key, server.serve(request)) for key, request in calls if key is not None])
                    take = mailbox.take.remote(0.5)
                for ref in ready:
                    if ref in refs:
                        done(_ray_outcome(ray, ref, refs.pop(ref), store, driver, Outcome))
                if sigint.requested and not interrupted:
                    interrupted = True  # each running run checkpoints and commits `interrupted` (through us)
                    for ref in refs:
                        ray.cancel(ref, recursive=False)  # not its store calls in flight: they must finish
                if server.fatal is not None and not interrupted:
                    for ref in refs:
                        ray.cancel(ref, force=True)
                    raise SuiteError(f"the store {db} could not be written ({type(server.fatal).__name__}: "
                                     f"{server.fatal}); every earlier commit is intact: fix the cause and rerun "
                                     "the same command to resume")
        if interrupted:
            raise KeyboardInterrupt
    except KeyboardInterrupt:
        for ref in refs:  # a second Ctrl-C: stop at once (every run keeps its last commit)
            ray.cancel(ref, force=True)
        raise
    finally:
        store.close()
        ray.kill(mailbox)
        if started:
            ray.shutdown()


def _ray_outcome(ray, ref, config, store, driver: str, Outcome):
    from ray.exceptions import RayError, TaskCancelledError

    try:
        return ray.get(ref)
    except TaskCancelledError:
        return Outcome(config.run_id, "interrupted")
    except RayError as e:  # retries exhausted, or an error outside the runner's own handling
        from suite.store import ClaimLost

        run = store.run(config.run_id)
        if run is not None and run["status"] == "running" and str(run["owner"]).startswith(driver + "/"):
            with contextlib.suppress(ClaimLost):
                store.update(config.run_id, status="failed", owner=None, error=str(e))
        return Outcome(config.run_id, "failed", error=f"{type(e).__name__}: {str(e).splitlines()[0]}")
