"""Side-by-side speed of a training step (forward + backward) against torch's fused nn.RNN.

Every timing in one table comes from one process, with the candidates interleaved round by round, so a
noisy machine slows them all alike; the ratio to nn.RNN is the number to quote, not the milliseconds.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from suite.contract import RecurrentModel
from suite.memory import keep_freed_memory
from suite.registry import MODELS, create_model, create_task
from suite.seeding import seeded

# Against each model's own floor (``floor_fn``): the floor target holds at the default case and at the
# copying case (T=120: length 100 + 20, B=128), ``suite speed --T 120 --B 128``.
FLOOR_LIMIT = 1.5
DEVICES = {"cpu": dict(case=dict(n=190, T=1000, B=32), baseline="nn.RNN(tanh)"),
           "gpu": dict(case=dict(n=190, T=1000, B=128), baseline="nn.RNN(relu)")}
K = 10  # the copying task's symbols: a sequence of length T is the copying task with delay T - 2K


def targets(device: str) -> dict:
    """The default table for ``device`` ("cpu" or "gpu"), from the registry: each model's speed rows
    (``name@engine``) and their target ratios against the baseline."""
    rows, limits = [], {}
    for entry in MODELS.entries():
        for r in entry.info.speed:
            if r.device == device:
                name = entry.name + (f"@{r.engine}" if r.engine else "")
                rows.append(name)
                if r.limit is not None:
                    limits[name] = r.limit
    return {**DEVICES[device], "models": rows, "limit": limits}


@dataclass(frozen=True)
class SpeedCase:
    n: int = 190  # hidden size
    T: int = 1000  # sequence length: the copying task with delay T - 20
    B: int = 32
    device: str = "cpu"

    def __post_init__(self):
        if self.T <= 2 * K:
            from suite.errors import ConfigError

            raise ConfigError(f"invalid T={self.T}: the speed case is the copying task, whose sequences are "
                              f"longer than {2 * K} (its delay is T - {2 * K})")

    def task(self):
        return create_task("copying", T=self.T - 2 * K, K=K, eval_size=1)


class TorchRNN(RecurrentModel):
    """torch.nn.RNN (cuDNN on GPU) with the same readout: the reference point."""

    def __init__(self, d_in: int, d_out: int, n: int, nonlinearity: str):
        super().__init__(d_in, d_out, n, "sequence")
        self.rnn = nn.RNN(d_in, n, nonlinearity=nonlinearity, batch_first=True)
        self.readout = nn.Linear(n, d_out)

    def forward(self, x):
        return self.readout(self.rnn(x)[0])

    def recurrent_matrix(self):
        return self.rnn.weight_hh_l0

    def trajectory(self, x):
        raise NotImplementedError("the speed baseline records no gradient profile")

    def step_product(self):
        return self.hidden, 1


def _config(name: str, case: SpeedCase):
    """The run settings a model's step uses: the paper scale's on copying (its optimizers and rates;
    ``build`` gives the model its default options), at the case's size."""
    from suite.protocols import resolve

    if name not in MODELS.names():  # the nn.RNN reference rows: the suite's defaults
        from suite.config import RunConfig

        return RunConfig(model=name, task="copying", batch_size=case.B, hidden=case.n)
    return resolve(name, "copying", "paper", overrides={"hidden": case.n, "batch_size": case.B,
                                                        "task.T": case.T - 2 * K})


def step_fn(model: RecurrentModel, case: SpeedCase, config=None) -> Callable[[], None]:
    """One training step as runs take it (``suite.runner.train_step``: the model's own optimizers, its
    regularizer and after-step hook) on one fixed copying batch."""
    from suite.runner import make_optimizers, train_step

    config = config or _config(getattr(model, "speed_name", ""), case)
    task = case.task()
    x, y = task.train_batch(1, case.B, 0)
    x, y = x.to(case.device), y.to(case.device)
    opts = make_optimizers(model, config)
    count = iter(range(1, 1 << 62))

    def step():
        loss = train_step(model, opts, task, x, y, next(count), config.clip)
        if case.device.startswith("cuda"):
            torch.cuda.synchronize()
        return loss

    return step


def floor_fn(model: RecurrentModel, case: SpeedCase) -> Callable[[], None] | None:
    """The work a training step of ``model`` cannot avoid, as one callable: every GEMM of the step on
    contiguous, preallocated operands (T step products forward, T - 1 adjoint products backward, the
    one dW product, the input projection and readout with their gradients), plus the map that makes W
    from its parameters, forward and backward, as torch computes it. Timed beside the model, it is the
    floor the step's time is quoted against."""
    shape = model.step_product()
    if shape is None:
        return None
    width, gates = shape
    T, B, dev = case.T, case.B, case.device
    task = case.task()
    d_in, d_out = task.d_in, task.d_out
    gen = torch.Generator().manual_seed(1)

    def rand(*size):
        return torch.randn(*size, generator=gen).to(dev)

    W, Wt = rand(gates * width, width), rand(width, gates * width)
    h, g, tmp = rand(B, width), rand(B, gates * width), torch.empty(B, gates * width, device=dev)
    back = torch.empty(B, width, device=dev)
    H, dZ = rand(T * B, width), rand(T * B, gates * width)
    X, U = rand(T * B, d_in), rand(d_in, gates * width)
    R, gY = rand(width, d_out), rand(T * B, d_out)
    big = torch.empty(T * B, gates * width, device=dev)
    dH = torch.empty(T * B, width, device=dev)
    out_y = torch.empty(T * B, d_out, device=dev)
    # the map from parameters to W (none where W is itself a parameter)
    mapped = model.recurrent_matrix().grad_fn is not None

    def step():
        torch.mm(X, U, out=big)  # input projection
        for _ in range(T):
            torch.mm(h, Wt, out=tmp)
        torch.mm(H, R, out=out_y)  # readout, its input and weight gradients
        torch.mm(gY, R.t(), out=dH)
        _ = gY.t() @ H
        for _ in range(T - 1):
            torch.mm(g, W, out=back)
        _ = dZ.t() @ H  # dW
        _ = dZ.t() @ X  # dU
        if mapped:  # the map from parameters to W, forward and backward
            Wm = model.recurrent_matrix()
            (Wm.real if Wm.is_complex() else Wm).sum().backward()
            model.zero_grad(set_to_none=True)
        if dev.startswith("cuda"):
            torch.cuda.synchronize()

    return step


def build(name: str, case: SpeedCase, **options) -> RecurrentModel:
    """A model by registry name; ``name@engine`` picks the recurrence engine (e.g. scornn@triton-bf16)."""
    name, _, engine = name.partition("@")
    task = case.task()
    with seeded(0):
        if name.startswith("nn.RNN"):
            model = TorchRNN(task.d_in, task.d_out, case.n, name.split("(")[1].rstrip(")"))
        else:  # the model's default options (some presets' options, scoRNN's rho, depend on the size)
            opts = {**options, **({"engine": engine} if engine else {})}
            model = create_model(name, d_in=task.d_in, d_out=task.d_out, output=task.output, hidden=case.n, **opts)
    model.speed_name = name
    return model.to(case.device)


def measure(candidates: dict[str, Callable[[], None]], rounds: int = 5,
            warmup: int = 1) -> dict[str, float]:
    """Median seconds per call of each candidate, interleaving candidates every round."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    times: dict[str, list[float]] = {k: [] for k in candidates}
    for _ in range(rounds):
        for k, fn in candidates.items():
            t0 = time.perf_counter()
            fn()
            times[k].append(time.perf_counter() - t0)
    return {k: statistics.median(v) for k, v in times.items()}


def speed_table(models: list[str], case: SpeedCase, baseline: str = "nn.RNN(tanh)",
                rounds: int = 5, options: dict[str, dict] | None = None) -> list[dict]:
    """Rows of {model, ms, ratio, floor_ms, floor_ratio}: ratio = time / time of ``baseline``, and
    floor_ratio = time / the model's own floor (``floor_fn``), all measured interleaved in one run."""
    options = options or {}
    keep_freed_memory()  # as training processes do (suite.memory); the floor's buffers are preallocated
    names = [baseline] + [m for m in models if m != baseline]
    built = {m: build(m, case, **options.get(m, {})) for m in names}
    steps = {m: step_fn(built[m], case) for m in names}
    floors = {m: f for m in names if (f := floor_fn(built[m], case)) is not None}
    # three warm-up rounds: the first steps of each model grow the process's heap (page faults) until
    # its buffers fit; thousands of training steps run in that steady state, so it is what is timed
    med = measure({**steps, **{("floor", m): f for m, f in floors.items()}}, rounds=rounds, warmup=3)
    rows = []
    for m in names:
        floor = med.get(("floor", m))
        rows.append({"model": m, "ms": med[m] * 1e3, "ratio": med[m] / med[baseline],
                     "floor_ms": None if floor is None else floor * 1e3,
                     "floor_ratio": None if floor is None else med[m] / floor})
    return rows


def format_table(rows: list[dict], case: SpeedCase, baseline: str) -> str:
    head = (f"training step (forward + backward + optimizer step), n={case.n}, T={case.T}, B={case.B}, "
            f"device={case.device}, torch {torch.__version__}, {torch.get_num_threads()} threads; floor: the "
            "step's unavoidable GEMMs and W's map, timed in the same run\n")
    lines = [f"{'model':<28}{'ms':>10}{'x ' + baseline:>22}{'floor ms':>10}{'x floor':>9}"]
    for r in rows:
        floor = "—" if r["floor_ms"] is None else f"{r['floor_ms']:.1f}"
        ratio = "—" if r["floor_ratio"] is None else f"{r['floor_ratio']:.2f}"
        lines.append(f"{r['model']:<28}{r['ms']:>10.1f}{r['ratio']:>22.2f}{floor:>10}{ratio:>9}")
    return head + "\n".join(lines)


def write_rows(path, rows: list[dict], case: SpeedCase, baseline: str, limits: dict[str, float]) -> str:
    """The table's rows in a file: CSV (``.csv``: one line per row) or JSON (the rows with the case, the
    baseline, the device's name, torch's version and the targets)."""
    import csv
    import json
    from dataclasses import asdict
    from pathlib import Path

    from suite.errors import ConfigError

    out = Path(path)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        if out.suffix == ".csv":
            with out.open("w", newline="") as f:
                writer = csv.DictWriter(f, fieldnames=["model", "ms", "ratio", "floor_ms", "floor_ratio"])
                writer.writeheader()
                writer.writerows(rows)
        else:
            from suite.runner import _cpu_name

            dev = torch.device(case.device)
            name = torch.cuda.get_device_name(dev) if dev.type == "cuda" else _cpu_name()
            out.write_text(json.dumps({"case": asdict(case), "baseline": baseline, "device_name": name,
                                       "torch": torch.__version__, "threads": torch.get_num_threads(),
                                       "limits": limits, "floor_limit": FLOOR_LIMIT, "rows": rows}, indent=2))
    except OSError as e:
        raise ConfigError(f"cannot write the speed rows to {out} ({e.strerror or e}); pass --out with a "
                          "writable path") from None
    return str(out)
