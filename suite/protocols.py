"""Protocols: the unit of comparison.

A protocol is a task with all its options plus the training budget (steps, batch size, evaluation
schedule and evaluation-set sizes): everything every model on it must share for their numbers to be
comparable. Model-side settings (hidden size, optimizers, learning rates, model options) come from
``suite.presets`` and may differ inside a protocol.

Each published experiment the suite knows is a named protocol with its source. Every model can run
every protocol: a model the paper did not run gets the protocol's shared settings plus the model-side
presets for the task (its own paper's settings on that task where there are any, else documented
suite defaults). The report groups runs by ``protocol_key`` (computed from a run's config alone, so a
run made with ``--set`` that changes a shared setting is its own, unnamed protocol).
"""

from __future__ import annotations

import fnmatch
import functools
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field

from suite.config import RunConfig, apply_values, canonical, scope_of
from suite.errors import ConfigError, UnknownNameError, check_choice
from suite.papers import DTRIV, EXPRNN, QUICK, SCORNN
from suite.presets import SCALES, scoped_presets

# RunConfig fields that belong to the protocol; every other field is model-side or bookkeeping.
PROTOCOL_FIELDS = ("steps", "batch_size", "eval_every", "eval_batch_size")
MODEL_FIELDS = ("hidden", "optimizer", "lr", "orth_optimizer", "orth_lr", "rmsprop_alpha", "clip", "precision")
# Task options that say where data live, not what is computed: not part of a protocol.
LOCATION_OPTIONS = ("data_dir", "download")


@dataclass(frozen=True)
class Protocol:
    name: str
    scales: tuple[str, ...]
    task: str
    values: Mapping[str, object]  # task.<option> and PROTOCOL_FIELDS only
    source: str
    note: str = ""

    def shared(self) -> dict:
        return dict(self.values)


def _p(name, scales, task, source, note="", **values) -> Protocol:
    vals = {(k if k in PROTOCOL_FIELDS else f"task.{k}"): v for k, v in values.items()}
    return Protocol(name, tuple(scales), task, vals, source, note)


_QUICK = QUICK + " (the main job: about five minutes on two CPU cores)"
SCORNN_CODE = f"{SCORNN}, section 5 and the authors' code"
EXPRNN_CODE = f"{EXPRNN}, section 5 and its code"
DTRIV_CODE = f"{DTRIV}, and its code"
_EVAL = dict(eval_every=100, eval_batch_size=500)
_EVAL_NOTE = "evaluation schedule and set sizes are the suite's (the paper shows training curves)"

PROTOCOLS: list[Protocol] = [
    # ---- quick: one protocol per task -----------------------------------------------------------
    # three seeds of every mission model fit the main job's ten minutes at these step counts: copying
    # and MNIST-1D curves have flattened by then at the quick presets' rates (README: "The main job")
    _p("quick-copying", ("quick",), "copying", _QUICK, T=100, eval_size=500, steps=300, batch_size=32,
       eval_every=50, eval_batch_size=500),
    _p("quick-adding", ("quick",), "adding", _QUICK, T=50, eval_size=500, steps=1000, batch_size=32, **_EVAL),
    _p("quick-mnist1d", ("quick",), "mnist1d", _QUICK + "; no paper runs MNIST-1D", steps=800, batch_size=32,
       **_EVAL),
    _p("mnist1d", ("paper",), "mnist1d", "suite default; no paper runs MNIST-1D", steps=1500, batch_size=32,
       **_EVAL),
    _p("quick-mnist", ("quick",), "mnist", _QUICK, steps=2000, batch_size=64, **_EVAL),
    _p("quick-pmnist", ("quick",), "pmnist", _QUICK, steps=2000, batch_size=64, **_EVAL),
    _p("quick-timit", ("quick",), "timit", _QUICK, steps=1000, batch_size=16, **_EVAL),

    # ---- paper ----------------------------------------------------------------------------------
    _p("scornn-copying-T1000", ("paper",), "copying",
       SCORNN_CODE + " (copying, T=1000: 10,000 iterations at batch 20)", _EVAL_NOTE,
       T=1000, K=10, layout="A", eval_size=1000, steps=10_000, batch_size=20, **_EVAL),
    _p("scornn-copying-T2000", ("paper",), "copying",
       SCORNN_CODE + " (copying, T=2000: 10,000 iterations at batch 20)", _EVAL_NOTE,
       T=2000, K=10, layout="A", eval_size=1000, steps=10_000, batch_size=20, **_EVAL),
    _p("exprnn-copying-T1000", ("paper",), "copying",
       EXPRNN_CODE + " (copying script: L=1000, 4000 iterations at batch 128, marker on the first recall step); "
       + DTRIV_CODE, _EVAL_NOTE, T=1000, K=10, layout="B", eval_size=1000, steps=4000, batch_size=128, **_EVAL),
    _p("scornn-adding-T200", ("paper",), "adding",
       SCORNN_CODE + " (adding, T=200: 10 epochs of 100k samples at batch 50)", _EVAL_NOTE,
       T=200, eval_size=1000, steps=20_000, batch_size=50, **_EVAL),
    _p("scornn-adding-T750", ("paper",), "adding",
       SCORNN_CODE + " (adding, T=750: 10 epochs of 100k samples at batch 50)", _EVAL_NOTE,
       T=750, eval_size=1000, steps=20_000, batch_size=50, **_EVAL),
    _p("scornn-mnist", ("paper",), "mnist", SCORNN_CODE + " (MNIST: 70 epochs of 55k at batch 50)",
       "model selection on a 5000-image validation split", val_size=5000, steps=77_000, batch_size=50,
       eval_every=1100, eval_batch_size=500),
    _p("scornn-pmnist", ("paper",), "pmnist", SCORNN_CODE + " (permuted MNIST: 70 epochs of 55k at batch 50)",
       "model selection on a 5000-image validation split", val_size=5000, steps=77_000,
       batch_size=50, eval_every=1100, eval_batch_size=500),
    _p("exprnn-mnist", ("paper",), "mnist", EXPRNN_CODE + " (MNIST script: 70 epochs at batch 128); " + DTRIV_CODE,
       "model selection on a 5000-image validation split (the script reports the best "
       "test accuracy over epochs)", val_size=5000, steps=30_000, batch_size=128, eval_every=430,
       eval_batch_size=500),
    _p("exprnn-pmnist", ("paper",), "pmnist", EXPRNN_CODE + " (MNIST script --permute: 70 epochs at batch 128); "
       + DTRIV_CODE, "model selection on a 5000-image validation split", val_size=5000,
       steps=30_000, batch_size=128, eval_every=430, eval_batch_size=500),
    _p("exprnn-timit", ("paper",), "timit", EXPRNN_CODE + " (TIMIT script: batch 128, 1200 epochs of 3640 utterances)",
       "steps = 1200 epochs x 28 batches", steps=33_600, batch_size=128, eval_every=280,
       eval_batch_size=128),

    # ---- offline real data: scikit-learn's 8x8 digits (no paper runs it) --------------------------
    _p("digits", ("quick", "paper"), "digits", "suite scale; no paper runs the 8x8 digits (1,257 training "
       "images: 1500 steps at batch 32 is about 38 epochs)", steps=1500, batch_size=32, **_EVAL),
    _p("pdigits", ("quick", "paper"), "pdigits", "suite scale; no paper runs the permuted 8x8 digits",
       steps=1500, batch_size=32, **_EVAL),
]


def protocol(name: str) -> Protocol:
    for p in PROTOCOLS:
        if p.name == name:
            return p
    raise UnknownNameError("protocol", name, [p.name for p in PROTOCOLS])


def protocols_for(scale: str, task: str, pattern: str | None = None) -> list[Protocol]:
    """The protocols of ``task`` at ``scale`` (optionally only names matching fnmatch ``pattern``s)."""
    check_choice("preset scale", scale, SCALES)
    found = [p for p in PROTOCOLS if scale in p.scales and p.task == task]
    if pattern:
        pats = [s.strip() for s in pattern.split(",") if s.strip()]
        found = [p for p in found if any(fnmatch.fnmatchcase(p.name, q) for q in pats)]
    if not found and not pattern:  # a plug-in task without a protocol: the suite's defaults
        found = [Protocol(f"{task}-defaults", (scale,), task, {}, "task and run defaults (no protocol known)")]
    return found


@dataclass(frozen=True)
class Resolved:
    """A config, the protocol it was made for, and where each explicitly set value came from."""

    config: RunConfig
    protocol: Protocol
    sources: Mapping[str, str] = field(default_factory=dict)
    modified: tuple[str, ...] = ()  # shared settings changed by overrides: the run leaves the protocol

    def settings(self) -> list[tuple[str, object, str]]:
        """Every setting of the run (run fields, task options, model options) with its source."""
        from suite.config import CONFIG_FIELDS
        from suite.registry import MODELS, TASKS

        c, out = self.config, []
        for f in CONFIG_FIELDS:
            out.append((f, getattr(c, f), self.sources.get(f, "RunConfig default")))
        task_opts = dict(c.task_options)
        for k, default in TASKS.options(c.task).items():
            key = f"task.{k}"
            out.append((key, task_opts.get(k, default), self.sources.get(key, f"task default ({c.task})")))
        model_opts = dict(c.model_options)
        for k, default in MODELS.options(c.model).items():
            if k in ("d_in", "d_out", "output", "hidden"):
                continue
            key = f"model.{k}"
            out.append((key, model_opts.get(k, default), self.sources.get(key, f"model default ({c.model})")))
        for key, value in c.group_options:  # parameter-group settings (lr.upper, optimizer.phases, ...)
            out.append((key, value, self.sources.get(key, "run setting")))
        return out


def resolve_protocol(proto: Protocol, model: str, seed: int = 0, overrides: dict | None = None,
                     strict: bool = True, scale: str | None = None) -> Resolved:
    """Defaults, then the model-side presets for (scale, task, model), then the protocol's shared
    settings, then ``overrides``. Presets and protocols are applied strictly: a value that does not
    land is an error, never skipped. ``scale``: which scale's presets (default: the protocol's first)."""
    scale = scale or proto.scales[0]
    if scale not in proto.scales:
        raise ConfigError(f"protocol {proto.name!r} is not part of scale {scale!r}; its scales: "
                          f"{', '.join(proto.scales)}")
    config = RunConfig(model=model, task=proto.task, seed=seed)
    sources: dict[str, str] = {}
    for who, p in scoped_presets(model, proto.task, scale):
        for key, value in p.values.items():
            scope, name = scope_of(config, key)
            if scope == "task" or name in PROTOCOL_FIELDS:
                raise ConfigError(f"preset {who} on {p.task} sets {key!r}, a protocol setting; "
                                  "protocol settings belong in suite/protocols.py")
            config = apply_values(config, {key: value}, strict=True)
            sources[canonical(scope, name)] = f"preset ({p.scale} {p.task} {who}): {p.source}"
    for key, value in proto.values.items():
        scope, name = scope_of(config, key)
        config = apply_values(config, {key: value}, strict=True)
        sources[canonical(scope, name)] = f"protocol {proto.name}: {proto.source}"
    modified = []
    for key, value in (overrides or {}).items():
        where = scope_of(config, key, strict=strict)
        if where is None:
            continue
        config = apply_values(config, {key: value}, strict=True)
        ckey = canonical(*where)
        sources[ckey] = "--set"
        if where[0] == "task" and where[1] not in LOCATION_OPTIONS or ckey in PROTOCOL_FIELDS:
            modified.append(ckey)
    return Resolved(config, proto, sources, tuple(modified))


# ---- a run's protocol, from its config alone -------------------------------------------------------
def protocol_settings(config: Mapping) -> dict:
    """The shared settings of a stored run config (a ``RunConfig.to_dict()``), task defaults filled
    in where the task is registered, so that spelling out a default changes nothing."""
    from suite.registry import TASKS

    task = config.get("task")
    opts = dict(config.get("task_options") or {})
    try:
        defaults = TASKS.options(task)
    except Exception:  # a task no longer installed: its stored options are all there is
        defaults = {}
    opts = {**defaults, **opts}
    out = {f"task.{k}": v for k, v in sorted(opts.items()) if k not in LOCATION_OPTIONS}
    out.update({k: config.get(k) for k in PROTOCOL_FIELDS})
    return out


def protocol_key(config: Mapping) -> str:
    return json.dumps({"task": config.get("task"), **protocol_settings(config)}, sort_keys=True, default=str)


def named_protocols() -> dict[str, Protocol]:
    """protocol_key -> the named protocol with those shared settings."""
    out = {}
    for p in PROTOCOLS:
        r = resolve_protocol(p, _any_model(), strict=True)
        out.setdefault(protocol_key(r.config.to_dict()), p)
    return out


def _any_model() -> str:
    from suite.registry import MODELS

    return MODELS.names()[0]  # model-side settings do not enter a protocol key; any registered model will do


def resolve(model: str, task: str, scale: str, seed: int = 0, overrides: dict | None = None,
            strict: bool = True) -> RunConfig:
    """The config for (model, task) under the task's first protocol at ``scale`` (``protocols_for``
    lists all of them)."""
    return resolve_protocol(protocols_for(scale, task)[0], model, seed, overrides, strict=strict, scale=scale).config


# ---- the protocol of a stored run (the report's grouping, the export's column) -------------------------
@dataclass(frozen=True)
class ProtocolId:
    """The protocol of a run: its task with all task options and its training budget."""

    key: str  # suite.protocols.protocol_key of the run's config
    task: str
    name: str | None  # the named protocol with exactly these shared settings, if any
    settings: tuple[tuple[str, object], ...]  # task.<option> and budget fields, sorted
    source: str = ""

    @property
    def label(self) -> str:
        """The protocol's name, or ``<task>-<6 hex digits of its key>`` for one the suite does not name."""
        return self.name or f"{self.task}-{hashlib.sha256(self.key.encode()).hexdigest()[:6]}"


@functools.lru_cache(maxsize=1)
def _named():
    try:
        return named_protocols()
    except Exception:  # the registry cannot resolve the protocols here: runs stay unnamed
        return {}


def protocol_of(run) -> ProtocolId:
    """The protocol of a run (a ``Run`` or a stored config dict), from its config alone: runs with
    the same ``ProtocolId`` may be compared; runs with different ones may not."""
    config = run if isinstance(run, Mapping) else run.config
    if not isinstance(run, Mapping) and not config.get("task"):
        config = {**config, "task": run.task}
    key = protocol_key(config)
    named = _named().get(key)
    settings = tuple(sorted(protocol_settings(config).items()))
    return ProtocolId(key, config.get("task"), named.name if named else None, settings,
                      named.source if named else "")
