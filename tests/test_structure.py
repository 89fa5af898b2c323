"""The code's structure, read statically: the import graph has no cycles and keeps its layers, and the
runner asks of a store only what the Recorder protocol names, which both recorders implement."""

from __future__ import annotations

import ast
import graphlib
import inspect
from pathlib import Path

import pytest

from suite.executors import RemoteStore
from suite.recorder import METHODS, Recorder
from suite.store import Store
from tests.helpers import ROOT

# source folder -> the name it is imported as (pyproject's package-dir)
PACKAGES = {"suite": "suite", "models": "suite.models", "tasks": "suite.tasks", "reports": "suite.reports"}
# suite's core may import these parts of the plug-in layers (everything else it reaches by registry)
ALLOWED_UPWARD = {("suite.cli", "suite.reports.render")}  # `suite report` and `suite run` render the report


def modules(root: Path) -> dict[str, Path]:
    """Dotted module name -> source file, for every .py file of the four packages under ``root``."""
    out = {}
    for folder, package in PACKAGES.items():
        for path in sorted((root / folder).rglob("*.py")):
            parts = [p for p in path.relative_to(root / folder).with_suffix("").parts if p != "__init__"]
            out[".".join([package, *parts])] = path
    return out


def _type_checking_only(node: ast.AST) -> bool:
    test = getattr(node, "test", None)
    return isinstance(node, ast.If) and (
        (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING")
        or (isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"))


def _statements(tree: ast.AST):
    """Every node, at module level or inside functions and classes, but those under ``if TYPE_CHECKING:``."""
    stack = [tree]
    while stack:
        node = stack.pop()
        yield node
        for child in ast.iter_child_nodes(node):
            if _type_checking_only(child):
                stack.extend(child.orelse)  # the else branch runs
            else:
                stack.append(child)


def imports(name: str, path: Path, known: dict[str, Path]) -> set[str]:
    """The modules of ``known`` that ``name`` imports (absolute and relative imports, at any depth)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in _statements(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                base = ".".join(anchor + ([node.module] if node.module else []))
            targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in known else base for a in node.names]
        else:
            continue
        for target in targets:
            while target and target not in known:  # `import suite.reports.render.x`: the module part
                target = target.rpartition(".")[0]
            if target and target != name:
                found.add(target)
    return found


def import_graph(root: Path) -> dict[str, set[str]]:
    known = modules(root)
    return {name: imports(name, path, known) for name, path in known.items()}


def cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as e:
        return e.args[1]
    return None


def _core(name: str) -> bool:
    return not name.startswith(("suite.models", "suite.tasks", "suite.reports"))


def test_the_import_graph_has_no_cycle_and_keeps_its_layers():
    graph = import_graph(ROOT)
    # what the scan must see, or it proves nothing: a function-level import, a module-level one, and
    # none from an `if TYPE_CHECKING:` block
    assert "suite.reports.render" in graph["suite.cli"]
    assert "suite.store" in graph["suite.runner"] and "suite.contract" in graph["suite.models"]
    assert "suite.store" not in graph["suite.recorder"]
    assert cycle(graph) is None, " -> ".join(cycle(graph))
    upward = sorted((a, b) for a, deps in graph.items() for b in deps
                    if _core(a) and b.startswith(("suite.models", "suite.reports")) and (a, b) not in ALLOWED_UPWARD)
    assert upward == []


def test_the_scan_finds_cycles_through_function_and_relative_imports(tmp_path):
    """The checker itself, on a small tree: a cycle closed by a function-level relative import is
    found; the same edge inside `if TYPE_CHECKING:` is not one."""
    for folder in PACKAGES:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "reports" / "a.py").write_text("from suite.reports import b\n")
    (tmp_path / "reports" / "b.py").write_text("def f():\n    from .a import g\n")
    graph = import_graph(tmp_path)
    assert graph["suite.reports.b"] == {"suite.reports.a"}
    assert set(cycle(graph)) == {"suite.reports.a", "suite.reports.b"}
    (tmp_path / "reports" / "b.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
                                               "    from .a import g\nelse:\n    import suite.tasks\n")
    graph = import_graph(tmp_path)
    assert graph["suite.reports.b"] == {"suite.tasks"} and cycle(graph) is None


# ---- the Recorder protocol -------------------------------------------------------------------------
def _mismatches(protocol_fn, impl_fn) -> list[str]:
    """How ``impl_fn``'s signature fails to accept every call ``protocol_fn``'s allows: each protocol
    parameter in the same place, with the same name, kind and default; anything more optional."""
    proto = list(inspect.signature(protocol_fn).parameters.values())
    impl = list(inspect.signature(impl_fn).parameters.values())
    out = []
    for i, p in enumerate(proto):
        if p.kind is p.VAR_KEYWORD:
            if not any(q.kind is q.VAR_KEYWORD for q in impl):
                out.append(f"no **{p.name}")
            continue
        q = impl[i] if i < len(impl) else None
        if q is None or (q.name, q.kind, q.default) != (p.name, p.kind, p.default):
            out.append(f"parameter {i}: {p} in the protocol, {q} here")
    matched = {p.name for p in proto}
    out += [f"extra required parameter {q}" for q in impl if q.name not in matched
            and q.default is q.empty and q.kind not in (q.VAR_POSITIONAL, q.VAR_KEYWORD)]
    return out


def test_the_protocol_names_the_runners_methods():
    assert set(METHODS) == {"claim", "holder", "update", "heartbeat", "commit", "reset", "run", "series",
                            "save_checkpoint", "load_checkpoint", "prune_checkpoints"}


@pytest.mark.parametrize("cls", [Store, RemoteStore])
def test_each_recorder_spells_out_every_method_of_the_protocol(cls):
    assert issubclass(cls, Recorder)
    assert not hasattr(cls, "__getattr__")  # no pass-through: a call outside the protocol fails
    for name in METHODS:
        impl = cls.__dict__.get(name)  # its own, not the protocol's empty stub
        assert inspect.isfunction(impl), f"{cls.__name__}.{name} is not defined in {cls.__name__}"
        assert _mismatches(getattr(Recorder, name), impl) == [], f"{cls.__name__}.{name}"


def test_a_store_is_a_recorder(tmp_path):
    store = Store(tmp_path / "s.db")
    assert isinstance(store, Recorder)
    store.close()


def _store_expr(node: ast.AST) -> bool:
    return (isinstance(node, ast.Name) and node.id == "store") or (
        isinstance(node, ast.Attribute) and node.attr == "store")


def test_the_runner_calls_nothing_on_a_store_outside_the_protocol():
    tree = ast.parse((ROOT / "suite" / "runner.py").read_text(encoding="utf-8"))
    used = {n.attr for n in ast.walk(tree) if isinstance(n, ast.Attribute) and _store_expr(n.value)}
    assert {"claim", "commit", "save_checkpoint", "load_checkpoint", "prune_checkpoints"} <= used  # it sees them
    assert used <= set(METHODS), sorted(used - set(METHODS))
    for fn in ast.walk(tree):  # the store travels only as `store`, typed as the protocol
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for arg in fn.args.args + fn.args.kwonlyargs:
                if arg.arg == "store":
                    assert ast.unparse(arg.annotation) == "Recorder", fn.name
        if isinstance(fn, ast.AnnAssign) and _store_expr(fn.target):
            assert ast.unparse(fn.annotation) == "Recorder"
        if isinstance(fn, ast.Assign):
            for target in fn.targets:
                pairs = (zip(target.elts, fn.value.elts) if isinstance(target, ast.Tuple)
                         and isinstance(fn.value, ast.Tuple) else [(target, fn.value)])
                for t, v in pairs:
                    assert not _store_expr(v) or _store_expr(t), ast.unparse(fn)
        if isinstance(fn, ast.Call) and isinstance(fn.func, ast.Name) and fn.func.id in ("getattr", "setattr"):
            assert not (fn.args and _store_expr(fn.args[0])), ast.unparse(fn)
