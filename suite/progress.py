"""What ``suite run`` and ``suite tune`` print while they train, on stderr.

The runner reports each run's progress through a callback, ``note(event, step, values)``: ``start``
(values: ``total`` steps), ``step`` (``loss``) and ``eval`` (``loss`` and the ``val/<metric>`` scores).
In a pool worker or a Ray task the executor forwards these to the parent (``sender``), which shows
them with one ``Progress``:

- on a terminal: an overall bar of finished runs and a live line per running run (step/total, loss,
  ETA), one line per finished run above them;
- elsewhere (a log file, a pipe, a batch job): no bars, no carriage returns and no cursor codes, but
  one line per finished run (``[3/18] scornn-copying-...-s1 finished in 12m03s, test accuracy 0.998``)
  and one line per evaluation of a running run;
- ``-q``: nothing until the summary; ``-v``: also a line per training step.

After Ctrl-C the overall count shows what finished; the summary counts the runs that were stopped in
the middle (their last checkpoint is in the store) apart from those that never started.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

QUIET, NORMAL, VERBOSE = -1, 0, 1
_verbosity = NORMAL
STEP_EVERY = 0.25  # seconds between the step events a worker forwards (every step with -v)


def configure(verbosity: int) -> None:
    """The command's -q/-v, for every Progress this process shows (like a logging level)."""
    global _verbosity
    _verbosity = verbosity


def verbosity() -> int:
    return _verbosity


def sender(put: Callable[[tuple], object], run_id: str, every: float | None = None) -> Callable:
    """A runner callback that hands ``(run_id, event, step, values)`` to ``put`` (a queue's, or a Ray
    call), step events at most every ``every`` seconds (default: every step with -v, else STEP_EVERY)."""
    every = (0.0 if _verbosity >= VERBOSE else STEP_EVERY) if every is None else every
    last = [0.0]

    def note(event: str, step: int, values: dict) -> None:
        if event == "step" and every:
            now = time.monotonic()
            if now - last[0] < every:
                return
            last[0] = now
        put((run_id, event, step, values))

    return note


def duration(seconds: float) -> str:
    """12m03s, 45s, 2h05m."""
    s = int(round(seconds))
    if s < 60:
        return f"{s}s"
    if s < 3600:
        return f"{s // 60}m{s % 60:02d}s"
    return f"{s // 3600}h{s % 3600 // 60:02d}m"


def _num(v) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


class _Run:
    def __init__(self, total: int, start: int):
        self.total, self.first, self.step, self.loss = total, start, start, None
        self.t0 = time.monotonic()
        self.bar = None
        self.position = 0

    def eta(self) -> str:
        done = self.step - self.first
        if done <= 0:
            return "?"
        return duration((time.monotonic() - self.t0) / done * (self.total - self.step))


class Progress:
    """The parent's display of a sweep; ``event`` takes the runner's notes, ``ended`` each Outcome."""

    def __init__(self, configs, stream=None, level: int | None = None, tty: bool | None = None):
        self.stream = stream or sys.stderr
        self.level = _verbosity if level is None else level
        self.tty = self.stream.isatty() if tty is None else tty
        self.order = [c.run_id for c in configs]
        self.total = len(self.order)
        self.live: dict[str, _Run] = {}
        self.started: set[str] = set()
        self.status: dict[str, str] = {}  # run_id -> how it ended
        self.finished = 0  # runs that ended for good (the overall count: never an interrupted run)
        self._free = []
        self._next = 1
        self.bar = None
        if self.tty and self.level > QUIET:
            from tqdm.auto import tqdm

            self.bar = tqdm(total=self.total, desc="runs", unit="run", position=0, dynamic_ncols=True,
                            file=self.stream)

    # ---- output ---------------------------------------------------------------------------------------
    def _line(self, text: str) -> None:
        if self.bar is not None:
            self.bar.write(text, file=self.stream)
        else:
            print(text, file=self.stream, flush=True)

    # ---- the runner's notes ---------------------------------------------------------------------------
    def event(self, run_id: str, event: str, step: int, values: dict) -> None:
        if run_id in self.status:  # a note that travelled slower than its run's outcome
            return
        if event == "start":
            self.started.add(run_id)
            run = self.live[run_id] = _Run(int(values.get("total", 0)), step)
            if self.bar is not None:
                from tqdm.auto import tqdm

                run.position = self._free.pop(0) if self._free else self._next
                self._next = max(self._next, run.position + 1)
                run.bar = tqdm(total=run.total, initial=step, desc=run_id, unit="step", position=run.position,
                               leave=False, dynamic_ncols=True, file=self.stream)
            return
        run = self.live.get(run_id)
        if run is None:
            return
        run.step = max(run.step, step)
        run.loss = values.get("loss", run.loss)
        if run.bar is not None:
            run.bar.update(run.step - run.bar.n)
            if run.loss is not None:
                run.bar.set_postfix_str(f"loss {_num(run.loss)}", refresh=False)
        if event == "step" and self.level >= VERBOSE:
            self._line(f"{run_id} step {step}/{run.total} loss {_num(run.loss)}")
        elif event == "eval" and self.level > QUIET and (self.bar is None or self.level >= VERBOSE):
            scores = ", ".join(f"{k.replace('/', ' ')} {_num(v)}" for k, v in values.items() if k != "loss")
            self._line(f"{run_id} step {step}/{run.total} loss {_num(run.loss)}" + (f", {scores}" if scores else "")
                       + (f", ETA {run.eta()}" if step < run.total else ""))

    # ---- outcomes -------------------------------------------------------------------------------------
    def ended(self, outcome) -> None:
        run = self.live.pop(outcome.run_id, None)
        if run is not None and run.bar is not None:
            run.bar.close()
            self._free.append(run.position)
            self._free.sort()
        status = outcome.status
        if status == "interrupted" and outcome.run_id not in self.started:
            status = "not started"
        self.status[outcome.run_id] = status
        if status in ("interrupted", "not started"):
            if status == "interrupted" and self.level > QUIET:
                self._line(f"{outcome.run_id} interrupted at step {run.step if run else '?'}; its last checkpoint "
                           "is in the store")
            return
        self.finished += 1
        if self.bar is not None:
            self.bar.update(1)
        if self.level > QUIET:
            self._line(f"[{self.finished}/{self.total}] {outcome.run_id} {self._how(outcome, run)}")

    @staticmethod
    def _how(o, run: _Run | None) -> str:
        s = o.summary or {}
        took = f" in {duration(time.monotonic() - run.t0)}" if run else (
            f" in {duration(s['wall_time'])}" if s.get("wall_time") else "")
        if o.status == "finished":
            score = s.get("test_at_best_val")
            return f"finished{took}" + ("" if score is None else f", test {s.get('metric', 'metric')} {_num(score)}")
        if o.status == "diverged":
            return f"diverged at step {s.get('diverged_at', '?')}{took}"
        if o.status == "pruned":
            return f"pruned{took}"
        if o.status == "skipped":
            return "already finished in the store (skipped)"
        if o.status == "failed":
            return f"FAILED{took}: {(o.error or '').strip().splitlines()[0] if o.error else ''}"
        if o.status == "busy":
            return f"left to its holder: {o.error or 'held by another process'}"
        return o.status

    # ---- the end --------------------------------------------------------------------------------------
    def close(self) -> None:
        for run in self.live.values():
            if run.bar is not None:
                run.bar.close()
                run.bar = None
        if self.bar is not None:
            self.bar.close()
            self.bar = None

    def counts(self) -> dict[str, int]:
        """How each run of the sweep ended; a run that started and has no outcome (the command was
        stopped while it trained) is interrupted, one that never started is 'not started'."""
        out: dict[str, int] = {}
        for run_id in self.order:
            status = self.status.get(run_id) or ("interrupted" if run_id in self.started else "not started")
            out[status] = out.get(status, 0) + 1
        return out

    def summary(self) -> str:
        counts = self.counts()
        order = ["finished", "skipped", "diverged", "pruned", "failed", "busy", "interrupted", "not started"]
        keys = [k for k in order if k in counts] + sorted(k for k in counts if k not in order)
        return "outcomes: " + ", ".join(f"{k} {counts[k]}" for k in keys)
