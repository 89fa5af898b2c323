"""One registry shape for models and tasks (timm-style), fed by decorators and entry points.

A registered name is the public vocabulary of the CLI, the nox sessions and the reports. Variants are
small registered functions over one builder. Third-party packages register through the entry-point
groups ``ortho_rnn_suite.models`` and ``ortho_rnn_suite.tasks`` (see README).
"""

from __future__ import annotations

import fnmatch
import importlib
import inspect
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib.metadata import entry_points

from suite.errors import ConfigError, UnknownNameError


@dataclass(frozen=True)
class Entry:
    name: str
    factory: Callable
    mission: bool  # part of the main job (built-ins are; plug-ins choose)
    tags: tuple[str, ...] = ()
    source: str = "builtin"

    @property
    def doc(self) -> str:
        return (inspect.getdoc(self.factory) or "").split("\n")[0]


@dataclass
class Registry:
    kind: str  # "model" or "task": used in messages
    group: str  # entry-point group
    builtin: str  # module whose import registers the built-ins
    _entries: dict[str, Entry] = field(default_factory=dict)
    _loaded: bool = False

    def register(self, fn: Callable | None = None, *, name: str | None = None,
                 mission: bool = True, tags: tuple[str, ...] = ()):
        """Decorator: ``@register_model`` or ``@register_model(name=..., mission=False)``."""

        def deco(f: Callable) -> Callable:
            key = name or f.__name__
            if key in self._entries and self._entries[key].factory is not f:
                raise ConfigError(f"{self.kind} {key!r} is registered twice")
            source = "builtin" if f.__module__.split(".")[0] == self.builtin else f.__module__
            self._entries[key] = Entry(key, f, mission, tuple(tags), source)
            return f

        return deco(fn) if fn is not None else deco

    def _load(self) -> None:
        if self._loaded:
            return
        self._loaded = True
        importlib.import_module(self.builtin)
        for ep in entry_points(group=self.group):
            obj = ep.load()  # a module registers on import; a bare callable is registered here
            if callable(obj) and not inspect.ismodule(obj) and ep.name not in self._entries:
                self.register(obj, name=ep.name, mission=False)

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


MODELS = Registry("model", "ortho_rnn_suite.models", "models")
TASKS = Registry("task", "ortho_rnn_suite.tasks", "tasks")

register_model = MODELS.register
list_models = MODELS.names
create_model = MODELS.create
register_task = TASKS.register
list_tasks = TASKS.names
create_task = TASKS.create
