"""Device correctness without a GPU: every registered model, the evaluation code and every task's
batches run on a device that is not the CPU (torch's meta device, made as strict as CUDA by
``tests/devices.py``), so a tensor made on the wrong device, a ``.numpy()`` of a device tensor or a
CPU-only op fails here, in CI, before a first run on a GPU meets it. What meta cannot show (values,
the Triton kernel, cuDNN) is listed per model in docs/performance.md."""

import pytest
import torch
from torch import nn

from suite.config import RunConfig
from suite.contract import RecurrentModel, orthogonality_error
from suite.errors import ConfigError
from suite.registry import MODELS, TASKS, create_model, create_task
from suite.runner import _train, evaluate, gradient_profile, make_optimizers, spectrum, train_step
from suite.seeding import seeded
from suite.store import Store
from tests.devices import META, DeviceMismatch, foreach_on_meta, strict_meta, tensors_of
from tests.helpers import tiny, write_mnist, write_timit

HIDDEN = 8


def _build(name: str, task, **options) -> RecurrentModel:
    with seeded(0):  # built on the CPU under the run's seed, then moved, as suite.runner.build does
        model = create_model(name, d_in=task.d_in, d_out=task.d_out, output=task.output, hidden=HIDDEN, **options)
    return model.to(META)


def _off_device(tensors: dict[str, torch.Tensor]) -> dict[str, str]:
    """Tensors not on meta, other than 0-dim CPU ones (torch's optimizers keep their step counts so on
    CUDA too)."""
    return {k: str(v.device) for k, v in tensors.items()
            if v.device != META and not (v.device.type == "cpu" and v.dim() == 0)}


def _variants() -> list[tuple[str, dict]]:
    """Every model with its defaults, every engine each model takes besides "auto" (the Triton engines
    need Triton's own device: tests/test_triton.py), and the options that switch code paths on."""
    copying = create_task("copying", T=4, K=2, eval_size=4)
    out = [(name, {}) for name in MODELS.names()]
    for name in MODELS.names():
        if "engine" not in MODELS.options(name):
            continue
        for engine in ("fused", "reference", "torch"):
            try:
                _build(name, copying, engine=engine)
            except ConfigError:  # not an engine of this model
                continue
            out.append((name, {"engine": engine}))
    out += [("dtriv", {"K": 1, "project_every": 1}),  # a base change, with its SVD projection, every step
            ("lru", {"depth": 2, "dropout": 0.1}), ("lstm", {"forget_bias": 1.0})]
    return out


@pytest.mark.parametrize("task_name", ["copying", "adding"])  # per-step outputs, and the last step's
@pytest.mark.parametrize(("name", "options"), _variants(), ids=lambda v: v if isinstance(v, str) else
                         ",".join(f"{k}={x}" for k, x in v.items()) or "defaults")
def test_training_steps_and_evaluation_stay_on_the_device(name, options, task_name):
    """Three runner training steps (forward, loss + regularizer, backward, clipping, every group's
    optimizer on its multi-tensor CUDA path, the after-step hook), then the evaluation, the spectrum,
    the gradient profile and the orthogonality check, all on meta under CUDA's device rules."""
    task = create_task(task_name, T=6, K=2, eval_size=8) if task_name == "copying" else \
        create_task(task_name, T=6, eval_size=8)
    config = RunConfig(model=name, task=task_name, hidden=HIDDEN)
    model = _build(name, task, **options)
    with strict_meta(), foreach_on_meta():
        opts = make_optimizers(model, config)
        for step in (1, 2, 3):
            x, y = task.train_batch(step, 4, 0)
            loss = train_step(model, opts, task, x.to(META), y.to(META), step, clip=1.0)
            assert loss.device == META and loss.dim() == 0
        assert not _off_device(tensors_of(model, opts))
        assert all(opt.state for opt in opts)  # every optimizer stepped
        trained = [n for n, p in model.named_parameters() if p.grad is not None]
        assert trained
        scores = evaluate(model, task, "val", 4, META)
        assert set(scores) >= {task.metric, "loss"}
        W = model.recurrent_matrix()
        assert W.device == META
        assert len(spectrum(model)) == W.shape[-1]
        assert len(gradient_profile(model, task, META)) == task.length
        if model.tracks_orthogonality:
            orthogonality_error(W)
        out, states = model.trajectory(x.to(META))
        assert out.device == META and all(h.device == META for h in states)


@pytest.mark.parametrize("name", MODELS.names(mission=True))
def test_a_whole_run_on_the_device(tmp_path, name):
    """The runner's own loop end to end: batches moved to the device, evaluations, spectra, profiles,
    checkpoints of device tensors, the summary."""
    store = Store(tmp_path / "s.db")
    config = tiny(model=name, steps=4, eval_every=2, hidden=HIDDEN)
    store.claim(config.run_id, config.config_hash, config.seed, config.model, config.task, config.to_dict(),
                config.steps)
    with strict_meta(), foreach_on_meta():
        outcome = _train(config, store, META, 0, False)
    assert outcome.status == "finished"
    run = store.run(config.run_id)
    assert run["step"] == 4 and run["env"]["device"] == "meta"
    assert [s for s, _ in store.spectra(config.run_id)] == [0, 2, 4]


def _task_cases():
    return TASKS.names()


@pytest.mark.parametrize("task_name", _task_cases())
def test_every_task_feeds_a_model_on_the_device(tmp_path, task_name):
    """Every registered task's training and evaluation batches: made on the CPU (a CPU generator keeps
    them identical on every device), moved to the device, through a model, its loss and its scores."""
    options = {}
    if task_name in ("mnist", "pmnist"):
        write_mnist(tmp_path / "mnist")
        options = {"data_dir": str(tmp_path), "download": False, "val_size": 8}
    elif task_name == "timit":
        write_timit(tmp_path / "timit")
        options = {"data_dir": str(tmp_path)}
    elif "T" in TASKS.options(task_name):
        options = {"T": 5}
    task = create_task(task_name, **options)
    task.check()
    model = _build("rnn", task)
    with strict_meta():
        x, y = task.train_batch(1, 3, 0)
        assert x.device.type == y.device.type == "cpu"
        loss = task.loss(model(x.to(META)), y.to(META))
        loss.backward()
        assert loss.device == META and model.readout.weight.grad.device == META
        for split in ("val", "test"):
            xe, ye = next(iter(task.eval_batches(split, 3)))
            assert set(task.scores(model(xe.to(META)), ye.to(META))) >= {task.metric, "loss"}


# ---- the harness itself: it refuses what CUDA refuses -------------------------------------------------
class _CpuStateNet(RecurrentModel):
    """A model with the classic device bug: its initial state is made on the CPU inside forward."""

    def __init__(self, where: str):
        super().__init__(2, 1, 3, "last")
        self.W = nn.Parameter(torch.eye(3))
        self.readout = nn.Linear(3, 1)
        self.where = where

    def forward(self, x):
        h = torch.zeros(x.shape[0], 3) if self.where == "forward" else x.new_zeros(x.shape[0], 3)
        for xt in x.unbind(1):
            h = torch.tanh(h @ self.W.mT + xt.sum(-1, keepdim=True))
        return self.readout(h)

    def recurrent_matrix(self):
        return self.W

    def trajectory(self, x):
        return self.forward(x), []


def test_the_harness_refuses_what_cuda_refuses():
    a, cpu = torch.ones(3, 3, device=META), torch.ones(3, 3)
    # bare meta lets these through; CUDA does not, and neither does strict_meta
    assert (a @ cpu).device == META and torch.linalg.solve(a, cpu).device.type == "cpu"
    for op in (lambda: a @ cpu, lambda: a.clone().mul_(cpu), lambda: torch.linalg.solve(a, cpu),
               lambda: torch.cat([a, cpu]), lambda: a.index_select(0, torch.tensor([0]))):
        with strict_meta(), pytest.raises(DeviceMismatch):
            op()
    with strict_meta():  # what CUDA allows: CPU scalars, CPU indices, copies; host reads give placeholders
        assert (a * torch.tensor(2.0)).device == META
        assert a[torch.tensor([0, 2])].shape == (2, 3)
        assert cpu.clone().copy_(a).device.type == "cpu" and a.sum().item() == 0.0
        assert a.tolist() == [[0.0] * 3] * 3
        with pytest.raises(TypeError, match="numpy"):
            a.numpy()


@pytest.mark.parametrize("where", ["forward", "backward"])
def test_a_tensor_made_on_the_cpu_inside_a_step_fails_it(where):
    task = create_task("adding", T=5, eval_size=4)

    class Backward(torch.autograd.Function):  # the same bug in a hand-written backward
        @staticmethod
        def forward(ctx, W):
            return W.clone()

        @staticmethod
        def backward(ctx, g):
            return g + torch.eye(3)

    model = _CpuStateNet(where).to(META)
    if where == "backward":
        model.recurrent_matrix = lambda: Backward.apply(model.W)
        model.forward = lambda x: model.readout(torch.tanh(x.new_ones(x.shape[0], 3) @ model.recurrent_matrix()))
    opts = make_optimizers(model, RunConfig(model="rnn", task="adding"))
    x, y = task.train_batch(1, 2, 0)
    with strict_meta(), pytest.raises(DeviceMismatch):
        train_step(model, opts, task, x.to(META), y.to(META), 1)
    fixed = _CpuStateNet("nowhere").to(META)
    with strict_meta():
        train_step(fixed, make_optimizers(fixed, RunConfig(model="rnn", task="adding")), task, x.to(META),
                   y.to(META), 1)


# ---- static: no tensor is made without a device where one is needed -------------------------------------
FACTORIES = {"zeros", "ones", "empty", "full", "eye", "arange", "range", "linspace", "logspace", "rand", "randn",
             "randint", "randperm", "normal", "tensor", "as_tensor", "scalar_tensor", "empty_strided",
             "triu_indices", "tril_indices", "from_numpy", "frombuffer", "complex32"}
SCANNED = ["models", "tasks", "suite/runner.py", "suite/contract.py"]
# Where a CPU tensor is intended (file, function). Besides these, every ``__init__`` in models/: modules
# are constructed on the CPU under the run's seed (the same initial values whatever the device) and
# moved with their parameters and buffers by ``model.to(device)`` (suite.runner.build).
CPU_BY_DESIGN = {
    # initial values of parameters, called at construction only
    ("models/orthogonal_maps.py", "torus_matrix"),
    ("models/skew.py", "block_entries"),
    ("models/skew.py", "cayley_init"),
    ("models/skew.py", "henaff_init"),
    ("models/skew.py", "zero_init"),
    # data: made on the CPU from an explicit CPU torch.Generator or read from files, so a batch is the same
    # on every device; the runner moves each batch to the run's device
    ("tasks/adding.py", "adding_batch"),
    ("tasks/copying.py", "copying_batch"),
    ("tasks/base.py", "hold_out"),
    ("tasks/base.py", "_epoch_order"),
    ("tasks/digits.py", "_split"),
    ("tasks/mnist.py", "_split"),
    ("tasks/mnist1d.py", "_split"),
    ("tasks/timit.py", "load_split"),
}
# `.numpy()` of a tensor that is on the CPU by construction (an index permutation of the data; nnRNN's
# checkpoint conversion, which moves its inputs to the host for scipy's matrix logarithm)
NUMPY_ON_CPU = {("tasks/digits.py", "_split"), ("tasks/mnist.py", "_split"), ("tasks/mnist1d.py", "_split"),
                ("models/nnrnn.py", "from_authors")}


def _calls(path):
    """(function qualname, node) for every call in a file."""
    import ast

    found = []

    def walk(node, names):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                walk(child, [*names, child.name])
            else:
                if isinstance(child, ast.Call):
                    found.append((".".join(names), child))
                walk(child, names)

    walk(ast.parse(path.read_text()), [])
    return found


def _scanned_files():
    from tests.helpers import ROOT

    for entry in SCANNED:
        p = ROOT / entry
        yield from (sorted(p.rglob("*.py")) if p.is_dir() else [p])


def test_no_tensor_is_made_without_a_device():
    """Every torch factory in the models, the tasks and the runner names its device (``device=``; ``x.new_*``
    and ``torch.*_like`` take their tensor's), except where a CPU tensor is intended (CPU_BY_DESIGN)."""
    import ast

    from tests.helpers import ROOT

    bad, used = [], set()
    for path in _scanned_files():
        rel = path.relative_to(ROOT).as_posix()
        for where, call in _calls(path):
            f = call.func
            if not (isinstance(f, ast.Attribute) and isinstance(f.value, ast.Name) and f.value.id == "torch"
                    and f.attr in FACTORIES):
                continue
            if any(k.arg == "device" for k in call.keywords):
                continue
            function = where.rpartition(".")[2] if where else "<module>"
            if rel.startswith("models/") and function == "__init__":
                continue
            key = (rel, where.split(".")[-1] if where else "<module>")
            if key in CPU_BY_DESIGN:
                used.add(key)
                continue
            bad.append(f"{rel}:{call.lineno} in {where or '<module>'}: torch.{f.attr}(...) without device=")
    assert not bad, "tensors made on the CPU where the run's device is meant (pass device=x.device, or use " \
                    "x.new_zeros(...) / torch.zeros_like(x)):\n  " + "\n  ".join(bad)
    assert used == CPU_BY_DESIGN, f"allow-list entries that no longer match any code: {CPU_BY_DESIGN - used}"


def test_no_numpy_of_a_device_tensor():
    import ast

    from tests.helpers import ROOT

    bad, used = [], set()
    for path in _scanned_files():
        rel = path.relative_to(ROOT).as_posix()
        for where, call in _calls(path):
            if isinstance(call.func, ast.Attribute) and call.func.attr == "numpy" and not call.args:
                key = (rel, where.split(".")[-1])
                if key in NUMPY_ON_CPU:
                    used.add(key)
                else:
                    bad.append(f"{rel}:{call.lineno} in {where}: .numpy() (fails on a CUDA tensor; use .cpu() first)")
    assert not bad, "\n".join(bad)
    assert used == NUMPY_ON_CPU
