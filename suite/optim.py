"""The optimizers of a model: one per parameter group, as the runner trains it and as a user's own
loop can (``from suite import create_model, make_optimizers, train_step``; README, "Use it as a
library").

``make_optimizers(model, lr=..., orth_lr=...)`` takes keyword settings; ``make_optimizers(model,
config)`` takes them from a ``RunConfig`` (what ``suite run`` does). Both build through
``OptimizerSettings``, so the optimizers of a config are the same either way. A group with an update
rule of its own (the full-capacity uRNN's Cayley step on U(n), ``GroupSpec.update``) gets that rule,
never a generic optimizer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from suite.config import OPTIMIZERS, RunConfig, check_group_value
from suite.contract import RecurrentModel
from suite.errors import ConfigError, check_choice, check_range


@dataclass(frozen=True)
class OptimizerSettings:
    """The run settings that choose a model's optimizers; the defaults are ``RunConfig``'s.

    ``optimizer``/``lr``: the "default" group (and every group based on it); ``orth_optimizer``/
    ``orth_lr``: the "orthogonal" group (and groups based on it); ``rmsprop_alpha``: RMSprop's decay
    (TF's 0.9, scoRNN's code; torch's default is 0.99); ``group_options``: other groups' settings as
    ``(("lr.upper", 1e-4), ...)``, the spelling of ``--set``."""

    optimizer: str = "rmsprop"
    lr: float = 1e-3
    orth_optimizer: str = "rmsprop"
    orth_lr: float = 1e-4
    rmsprop_alpha: float = 0.9
    group_options: tuple[tuple[str, object], ...] = ()
    model: str = "the model"  # named in error messages

    def __post_init__(self):
        check_choice("optimizer", self.optimizer, OPTIMIZERS)
        check_choice("orth_optimizer", self.orth_optimizer, OPTIMIZERS)
        check_range("lr", self.lr, low=0, integer=False)
        check_range("orth_lr", self.orth_lr, low=0, integer=False)
        check_range("rmsprop_alpha", self.rmsprop_alpha, low=0, high=1, integer=False)
        for key, value in self.group_options:
            check_group_value(key, value)

    @classmethod
    def from_config(cls, config: RunConfig) -> OptimizerSettings:
        return cls(config.optimizer, config.lr, config.orth_optimizer, config.orth_lr, config.rmsprop_alpha,
                   config.group_options, config.model)

    def group_setting(self, setting: str, group: str):
        """The value of ``setting`` for a parameter group, or None where the model decides (as
        ``RunConfig.group_setting``)."""
        return RunConfig.group_setting(self, setting, group)


def group_settings(model: RecurrentModel, settings: OptimizerSettings | RunConfig, group: str) -> dict:
    """A group's optimizer, lr and weight decay: ``<setting>.<group>`` from presets or --set, else the
    model's own default for the group (its paper's), else the run settings of the group's base."""
    if isinstance(settings, RunConfig):
        settings = OptimizerSettings.from_config(settings)
    spec = model.group_spec(group)
    out = {}
    for setting in ("optimizer", "lr", "weight_decay"):
        value = settings.group_setting(setting, group)
        if value is None:
            value = getattr(spec, setting)
        if value is None:
            value = settings.group_setting(setting, spec.base)
        out[setting] = value
    if spec.optimizers is not None and out["optimizer"] not in spec.optimizers:
        raise ConfigError(f"invalid optimizer {out['optimizer']!r} for {settings.model}'s parameter group "
                          f"{group!r}; valid: {', '.join(map(repr, spec.optimizers))}")
    return out


def make_optimizers(model: RecurrentModel, config: RunConfig | OptimizerSettings | None = None, /, *,
                    lr: float | None = None, orth_lr: float | None = None, optimizer: str | None = None,
                    orth_optimizer: str | None = None, rmsprop_alpha: float | None = None,
                    groups: dict[str, object] | None = None) -> list[torch.optim.Optimizer]:
    """One optimizer per non-empty parameter group: "default" first, then the others in
    ``parameter_groups()`` order (the order checkpoints store them in).

    Settings: a ``RunConfig`` (or ``OptimizerSettings``), or keywords over ``OptimizerSettings``'
    defaults; ``groups`` sets other groups' settings, e.g. ``{"lr.upper": 1e-4}``. Each optimizer's
    ``step()`` is the whole update of its group; step every one of them after each backward pass
    (``train_step`` does)."""
    keywords = {k: v for k, v in dict(lr=lr, orth_lr=orth_lr, optimizer=optimizer, orth_optimizer=orth_optimizer,
                                      rmsprop_alpha=rmsprop_alpha).items() if v is not None}
    if config is None:
        settings = OptimizerSettings(**keywords, group_options=tuple(sorted((groups or {}).items())),
                                     model=type(model).__name__)
    else:
        if keywords or groups:
            raise ConfigError(f"make_optimizers: give either a config or keyword settings, not both (got a "
                              f"{type(config).__name__} and {', '.join([*keywords, *(['groups'] if groups else [])])})")
        settings = config if isinstance(config, OptimizerSettings) else OptimizerSettings.from_config(config)
    names = model.parameter_groups()
    for key, _ in settings.group_options:
        group = key.partition(".")[2]
        if group not in names:
            raise ConfigError(f"{settings.model} has no parameter group {group!r} (in {key!r}); its groups: "
                              f"{', '.join(names)}")
    return _build(model, settings)


def _build(model: RecurrentModel, settings: OptimizerSettings) -> list[torch.optim.Optimizer]:
    def make(kind, params, lr, weight_decay):
        if kind == "rmsprop":
            return torch.optim.RMSprop(params, lr=lr, alpha=settings.rmsprop_alpha, weight_decay=weight_decay)
        if kind == "adam":
            return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay)
        if kind == "adamw":  # decoupled weight decay (the LRU paper's optimizer)
            return torch.optim.AdamW(params, lr=lr, weight_decay=weight_decay)
        if kind == "adagrad":
            return torch.optim.Adagrad(params, lr=lr, weight_decay=weight_decay)
        if kind == "sgd":
            return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay)
        raise ConfigError(f"invalid optimizer {kind!r}; valid: {', '.join(OPTIMIZERS)}")

    opts = []
    groups = model.parameter_groups()
    for group in sorted(groups, key=lambda g: g != "default"):
        params = groups[group]
        if not params:
            continue
        s = group_settings(model, settings, group)
        update = model.group_spec(group).update
        if update is not None:
            opts.append(update(params, lr=s["lr"], precondition=s["optimizer"], alpha=settings.rmsprop_alpha))
        else:
            opts.append(make(s["optimizer"], params, s["lr"], s["weight_decay"]))
    return opts


__all__ = ["OptimizerSettings", "group_settings", "make_optimizers"]
