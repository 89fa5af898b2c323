"""The run configuration: one frozen dataclass, hashed to key runs in the store."""

from __future__ import annotations

import ast
import cmath
import dataclasses
import hashlib
import json
from dataclasses import dataclass, field

from suite.errors import ConfigError, check_choice, check_range
from suite.registry import MODELS, TASKS

OPTIMIZERS = ("rmsprop", "adam", "adamw", "adagrad", "sgd")
# fp32: everything in float32. bf16: the forward pass under torch.autocast(bfloat16) on CPU or CUDA, the
# recurrent matrix and the recurrence kept in float32 by the models (docs/performance.md, "Mixed precision").
PRECISIONS = ("fp32", "bf16")
# Per-parameter-group settings, addressed as ``<setting>.<group>`` (``lr.upper``, ``optimizer.phases``).
# The groups "default" and "orthogonal" keep their run fields: lr.default is ``lr``, lr.orthogonal is
# ``orth_lr``, optimizer.default is ``optimizer``, optimizer.orthogonal is ``orth_optimizer``.
GROUP_SETTINGS = ("lr", "optimizer", "weight_decay")
_GROUP_FIELDS = {("lr", "default"): "lr", ("lr", "orthogonal"): "orth_lr",
                 ("optimizer", "default"): "optimizer", ("optimizer", "orthogonal"): "orth_optimizer"}
OFFLINE_TASKS = ("copying", "adding", "mnist1d")  # the main job's tasks: no data files needed
# Fields that change nothing a run computes, so they stay out of its identity.
_NOT_HASHED = ("seed", "checkpoint_every")


@dataclass(frozen=True)
class RunConfig:
    model: str
    task: str
    seed: int = 0
    steps: int = 1000  # optimizer steps
    batch_size: int = 32
    hidden: int | None = None  # None: the model's default
    optimizer: str = "rmsprop"  # for the non-orthogonal parameters
    lr: float = 1e-3
    orth_optimizer: str = "rmsprop"  # for the orthogonal/unitary parameters
    orth_lr: float = 1e-4
    rmsprop_alpha: float = 0.9  # TF's RMSprop decay (scoRNN's code); torch's default is 0.99
    clip: float | None = None  # gradient-norm clipping
    eval_every: int = 100  # steps between evaluations (val + test, orthogonality, checkpoint)
    eval_batch_size: int = 500
    eigen_every: int = 1  # spectrum every k evaluations (and always at init and at the end)
    profile_every: int = 1  # ||dL/dh_t|| every k evaluations (and always at init and at the end)
    checkpoint_every: int | None = None  # extra checkpoints between evaluations (None: none)
    model_options: tuple[tuple[str, object], ...] = ()
    task_options: tuple[tuple[str, object], ...] = field(default=())
    group_options: tuple[tuple[str, object], ...] = ()  # (("lr.upper", 1e-4), ...): see GROUP_SETTINGS
    precision: str = "fp32"  # see PRECISIONS

    def __post_init__(self):
        check_range("steps", self.steps, low=1)
        check_range("batch_size", self.batch_size, low=1)
        check_range("eval_every", self.eval_every, low=1)
        check_range("eval_batch_size", self.eval_batch_size, low=1)
        check_range("lr", self.lr, low=0, integer=False)
        check_range("orth_lr", self.orth_lr, low=0, integer=False)
        check_range("rmsprop_alpha", self.rmsprop_alpha, low=0, high=1, integer=False)
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("orth_optimizer", self.orth_optimizer, OPTIMIZERS)
        check_choice("precision", self.precision, PRECISIONS)
        check_range("eigen_every", self.eigen_every, low=1)
        check_range("profile_every", self.profile_every, low=1)
        for name in ("hidden", "checkpoint_every"):
            if getattr(self, name) is not None:
                check_range(name, getattr(self, name), low=1)
        if self.clip is not None:
            check_range("clip", self.clip, low=0, integer=False)
        for key, value in self.group_options:
            check_group_value(key, value)

    def task_kwargs(self) -> dict:
        return dict(self.task_options)

    def model_kwargs(self) -> dict:
        return {"hidden": self.hidden, **dict(self.model_options)}

    def group_setting(self, setting: str, group: str):
        """The run's value of ``setting`` for a parameter group, or None where the model decides."""
        field_name = _GROUP_FIELDS.get((setting, group))
        if field_name:
            return getattr(self, field_name)
        return dict(self.group_options).get(f"{setting}.{group}")

    def to_dict(self) -> dict:
        d = dataclasses.asdict(self)
        d["model_options"] = dict(self.model_options)
        d["task_options"] = dict(self.task_options)
        d["group_options"] = dict(self.group_options)
        return d

    @classmethod
    def from_dict(cls, d: dict) -> RunConfig:
        d = dict(d)
        d["model_options"] = tuple(sorted(d.get("model_options", {}).items()))
        d["task_options"] = tuple(sorted(d.get("task_options", {}).items()))
        d["group_options"] = tuple(sorted(d.get("group_options", {}).items()))
        return cls(**d)

    @property
    def config_hash(self) -> str:
        d = {k: v for k, v in self.to_dict().items() if k not in _NOT_HASHED}
        if not d["group_options"]:  # runs recorded before groups had settings keep their identity
            del d["group_options"]
        if d["precision"] == "fp32":  # likewise runs recorded before the precision setting
            del d["precision"]
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()

    @property
    def run_id(self) -> str:
        return f"{self.model}-{self.task}-{self.config_hash[:10]}-s{self.seed}"


CONFIG_FIELDS = [f.name for f in dataclasses.fields(RunConfig)
                 if f.name not in ("model", "task", "seed", "model_options", "task_options", "group_options")]


def check_group_value(key: str, value) -> None:
    setting = key.partition(".")[0]
    if setting == "optimizer":
        check_choice(key, value, OPTIMIZERS)
    else:
        check_range(key, value, low=0, integer=False)


def parse_value(text: str):
    """CLI values: Python literals (3, 1e-3, None, True, 'A') or bare strings."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def parse_assignments(items: list[str]) -> dict[str, object]:
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"invalid --set {item!r}: expected key=value, e.g. --set lr=1e-3")
        parsed = parse_value(value.strip())
        if _non_finite(parsed):  # 1e999 parses as inf: refused like any non-finite number
            raise ConfigError(f"invalid --set {item!r}: {value.strip()} is not a finite number")
        out[key.strip()] = parsed
    return out


def _non_finite(v) -> bool:
    if isinstance(v, (float, complex)):
        return not cmath.isfinite(v)
    if isinstance(v, (tuple, list)):
        return any(_non_finite(x) for x in v)
    return False


def scope_of(config: RunConfig, key: str, *, strict: bool = True) -> tuple[str, str] | None:
    """Where ``key`` lands for ``config``: ("run", field), ("task", option) or ("model", option).

    ``task.<opt>`` and ``model.<opt>`` name their scope; a bare name is a run setting (``hidden`` is
    one) or an option of exactly one of task and model. A bare name that both the task and the model
    take is always an error, so a value never lands on the wrong side silently. A name that fits
    nothing is an error with ``strict``, else None (a sweep option such as ``model.rho`` that applies
    to some models only)."""
    task_valid = set(TASKS.options(config.task))
    model_valid = set(MODELS.options(config.model)) - {"d_in", "d_out", "output"}
    scope, _, name = key.rpartition(".")
    if scope == "task":
        if name not in task_valid:
            if not strict:
                return None
            raise ConfigError(f"task {config.task!r} has no option {name!r}; valid: "
                              f"{', '.join(sorted(task_valid)) or '(none)'}")
        return "task", name
    if scope == "model":
        if name not in model_valid:
            if not strict:
                return None
            raise ConfigError(f"model {config.model!r} has no option {name!r}; valid: "
                              f"{', '.join(sorted(model_valid)) or '(none)'}")
        return ("run", name) if name == "hidden" else ("model", name)
    if scope in GROUP_SETTINGS:  # a parameter group's setting: lr.upper, optimizer.phases, ...
        groups = MODELS.entry(config.model).groups
        if name not in groups:
            if not strict:
                return None
            raise ConfigError(f"model {config.model!r} has no parameter group {name!r} (in {key!r}); "
                              f"its groups: {', '.join(groups)}")
        field_name = _GROUP_FIELDS.get((scope, name))
        return ("run", field_name) if field_name else ("group", key)
    if scope:
        raise ConfigError(f"invalid setting {key!r}: the scope must be 'task' or 'model' "
                          f"(e.g. task.{name} or model.{name}), a parameter-group setting "
                          f"({'|'.join(GROUP_SETTINGS)}.<group>), or no scope for a run setting")
    if name in CONFIG_FIELDS:
        return "run", name
    if name in task_valid and name in model_valid:
        raise ConfigError(f"ambiguous setting {key!r}: both task {config.task!r} and model "
                          f"{config.model!r} take {name!r}; write task.{name} or model.{name}")
    if name in task_valid:
        return "task", name
    if name in model_valid:
        return "model", name
    if strict:
        raise ConfigError(
            f"unknown setting {key!r} for {config.model} on {config.task}. Valid: run settings "
            f"{', '.join(CONFIG_FIELDS)}; task options {', '.join(sorted(task_valid)) or '-'}; "
            f"model options {', '.join(sorted(model_valid)) or '-'}"
        )
    return None


def canonical(scope: str, name: str) -> str:
    """The scoped spelling of a setting: ``steps``, ``task.T``, ``model.K``, ``lr.upper`` (a group's)."""
    return name if scope in ("run", "group") else f"{scope}.{name}"


def apply_values(config: RunConfig, values: dict[str, object], *, strict: bool) -> RunConfig:
    """Apply ``values`` to a config: a RunConfig field, ``task.<opt>``/``model.<opt>``, or a bare
    option name that exactly one of the config's task and model takes (see ``scope_of``)."""
    fields, task_opts, model_opts = {}, dict(config.task_options), dict(config.model_options)
    group_opts = dict(config.group_options)
    for key, value in values.items():
        where = scope_of(config, key, strict=strict)
        if where is None:
            continue
        scope, name = where
        if scope == "group":  # <setting>.<group>
            check_group_value(name, value)
            group_opts[name] = value
        elif scope == "task":
            task_opts[name] = value
        elif scope == "model":
            model_opts[name] = value
        else:
            fields[name] = value
    return dataclasses.replace(config, **fields, task_options=tuple(sorted(task_opts.items())),
                               model_options=tuple(sorted(model_opts.items())),
                               group_options=tuple(sorted(group_opts.items())))
