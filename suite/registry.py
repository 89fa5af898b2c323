"""One registry shape for models and tasks (timm-style), fed by decorators and entry points.

A registered name is the public vocabulary of the CLI, the nox sessions and the reports. Variants are
small registered functions over one builder. Third-party packages register through the entry-point
groups ``ortho_rnn_suite.models`` and ``ortho_rnn_suite.tasks`` (see README).
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from suite.errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class Preset:
    """Model-side settings (hidden size, optimizers, rates, ``model.<option>``, ``<setting>.<group>``)
    for the tasks matching ``task`` at ``scale``, with their source. In a model's registration it
    applies to that model; in ``suite.presets.SUITE_PRESETS`` to the models matching ``models``
    (fnmatch patterns or ``family:<name>``, joined by "|")."""

    scale: str
    task: str  # fnmatch patterns joined by "|"
    values: Mapping[str, object] = field(default_factory=dict)
    source: str = ""
    models: str = "*"

    def matches_task(self, scale: str, task: str) -> bool:
        return scale == self.scale and any(fnmatch.fnmatchcase(task, p) for p in self.task.split("|"))


@dataclass(frozen=True)
class Published:
    """A published number, comparable with runs of the suite's ``protocol`` (None: a protocol the
    suite does not define; listed, never matched) by a model published as ``model`` at ``hidden``
    whose options include ``options`` (the init, dtriv's K, ...: whatever changes the number)."""

    task: str
    model: str  # the paper's name for the model (a registry entry's ``published_as``)
    hidden: int
    metric: str
    value: float
    source: str
    verified: bool = True  # False: not checked against the paper itself
    note: str = ""
    protocol: str | None = None
    options: Mapping[str, object] = field(default_factory=dict)


@dataclass(frozen=True)
class SpeedRow:
    """A row of ``suite speed``'s default table on ``device`` ("cpu" or "gpu"): the model with
    ``engine`` (None: its default), and optionally a target ratio to the baseline it must meet."""

    device: str
    engine: str | None = None
    limit: float | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What the suite knows of a model, as data written beside it in its own file: presets, published
    numbers, the speed table, the run order and the tests read it from here, never from its name."""

    family: str = ""  # whose training conventions it follows (colours, ``family:<name>`` patterns)
    published_as: str = ""  # the model's name in published tables (``Published.model``)
    constraint: str | None = None  # what recurrent_matrix() satisfies: orthogonal, unitary, stable, None
    paper: str = ""  # the paper it implements (authors, venue, arXiv id and version)
    params: Callable[..., int] | None = None  # the paper's parameter count (n, d_in, d_out, **options)
    cost: float = 1.0  # relative cost of a training step at equal size, to start long runs first
    presets: tuple[Preset, ...] = ()  # its papers' settings per (scale, task), in order of application
    published: tuple[Published, ...] = ()  # published numbers for it (matched by published_as)
    defines: Mapping[str, object] = field(default_factory=dict)  # options its factory fixes (init="cayley")
    speed: tuple[SpeedRow, ...] = ()  # its rows in `suite speed`'s default tables


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable
    mission: bool  # part of the main job (built-ins are; plug-ins choose)
    info: ModelInfo | None = None  # models only
    source: str = "builtin"
    cls: type | None = None  # the factory's annotated return class (models: checked at registration)

    @property
    def groups(self) -> tuple[str, ...]:
        """The parameter-group names the model's class declares (models only)."""
        return tuple(getattr(self.cls, "GROUPS", {}) or ())

    def paper_parameter_count(self, n: int, d_in: int, d_out: int, **options) -> int | None:
        """The paper's parameter count at hidden size ``n`` with the model's ``options`` (those the
        formula takes: LRU's width and depth, ...); None without a formula."""
        formula = self.info.params if self.info else None
        if formula is None:
            return None
        takes = inspect.signature(formula).parameters
        return formula(n, d_in, d_out, **{k: v for k, v in options.items() if k in takes})

    @property
    def doc(self) -> str:
        return (inspect.getdoc(self.factory) or "").split("\n")[0]


@dataclass
class Registry:
    kind: str  # "model" or "task": used in messages
    group: str  # entry-point group
    builtin: str  # module whose import registers the built-ins
    contract: str | None = None  # "module:Class" every factory must return a concrete subclass of
    _entries: dict[str, Entry] = field(default_factory=dict)
    _loaded: bool = False

    def register(self, fn: Callable | None = None, *, name: str | None = None,
                 mission: bool = True, **info):
        """Decorator: ``@register_model`` or ``@register_model(name=..., mission=False, family=...)``;
        keyword ``info`` fills the entry's ``ModelInfo`` (models only)."""

        def deco(f: Callable) -> Callable:
            key = name or f.__name__
            if key in self._entries and self._entries[key].factory is not f:
                raise ConfigError(f"{self.kind} {key!r} is registered twice")
            builtin = f.__module__ == self.builtin or f.__module__.startswith(self.builtin + ".")
            source = "builtin" if builtin else f.__module__
            cls = self._check_contract(key, f)
            facts = None
            if self.contract:
                try:
                    facts = ModelInfo(**info)
                except TypeError:
                    raise ConfigError(f"{self.kind} {key!r}: unknown registration data {sorted(info)}; valid: "
                                      f"{', '.join(ModelInfo.__dataclass_fields__)}") from None
            elif info:
                raise ConfigError(f"{self.kind} {key!r}: registration takes no data ({sorted(info)})")
            self._entries[key] = Entry(key, f, mission, facts, source, cls)
            return f

        return deco(fn) if fn is not None else deco

    def _check_contract(self, key: str, f: Callable) -> type | None:
        """The factory's return annotation must name a concrete subclass of the contract class."""
        if not self.contract:
            return None
        module, _, clsname = self.contract.partition(":")
        base = getattr(importlib.import_module(module), clsname)
        try:
            ret = typing.get_type_hints(f).get("return")
        except Exception as e:  # an annotation that does not resolve
            raise ConfigError(f"{self.kind} {key!r}: its return annotation does not resolve ({e})") from None
        if not (inspect.isclass(ret) and issubclass(ret, base)):
            raise ConfigError(f"{self.kind} {key!r}: annotate the factory's return type with a subclass of "
                              f"{base.__module__}.{clsname} (got {ret!r}), e.g. `def {f.__name__}(...) -> "
                              f"RecurrentNet:`")
        if inspect.isabstract(ret):
            missing = ", ".join(sorted(ret.__abstractmethods__))
            raise ConfigError(f"{self.kind} {key!r}: {ret.__name__} does not implement {missing}, which "
                              f"every {clsname} must provide")
        return ret

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        importlib.import_module(self.builtin)
        for ep in entry_points(group=self.group):
            obj = ep.load()  # a module registers on import; a bare callable is registered here
            if callable(obj) and not inspect.ismodule(obj) and ep.name not in self._entries:
                self.register(obj, name=ep.name, mission=False)

    def entries(self, *, mission: bool | None = None) -> list[Entry]:
        return [self.entry(n) for n in self.names(mission=mission)]

    def names(self, pattern: str = "*", *, mission: bool | None = None) -> list[str]:
        self._load()
        return sorted(
            n for n, e in self._entries.items()
            if fnmatch.fnmatchcase(n, pattern) and (mission is None or e.mission == mission)
        )

    def entry(self, name: str) -> Entry:
        self._load()
        if name not in self._entries:
            raise UnknownNameError(self.kind, name, self._entries)
        return self._entries[name]

    def create(self, name: str, **overrides):
        """Build ``name``; ``None`` overrides are dropped so CLI defaults never mask factory defaults."""
        factory = self.entry(name).factory
        kwargs = {k: v for k, v in overrides.items() if v is not None}
        params = inspect.signature(factory).parameters
        if not any(p.kind is p.VAR_KEYWORD for p in params.values()):
            unknown = sorted(set(kwargs) - set(params))
            if unknown:
                valid = [p for p in params if p not in ("d_in", "d_out", "output")]
                raise ConfigError(
                    f"{self.kind} {name!r} has no option {', '.join(map(repr, unknown))}; "
                    f"valid options: {', '.join(valid) or '(none)'}"
                )
        return factory(**kwargs)

    def options(self, name: str) -> dict[str, object]:
        """The factory's keyword options and their defaults (for ``suite list``)."""
        params = inspect.signature(self.entry(name).factory).parameters
        return {k: (None if p.default is p.empty else p.default) for k, p in params.items()}


MODELS = Registry("model", "ortho_rnn_suite.models", "suite.models", "suite.contract:RecurrentModel")
TASKS = Registry("task", "ortho_rnn_suite.tasks", "suite.tasks")

register_model = MODELS.register
list_models = MODELS.names
create_model = MODELS.create
register_task = TASKS.register
list_tasks = TASKS.names
create_task = TASKS.create
