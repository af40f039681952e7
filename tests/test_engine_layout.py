"""The package's layout: a pure-torch engine, and no import cycles anywhere."""

import ast
import subprocess
import sys
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "sklearn_deepnet"
ENGINE_MODULES = sorted(p.stem for p in (PACKAGE / "_engine").glob("*.py")
                        if p.stem != "__init__")


def test_the_engine_modules_are_the_documented_ones():
    # docs/architecture.md describes each of them: a new one needs a row there
    text = (PACKAGE.parent / "docs" / "architecture.md").read_text()
    missing = [m for m in ENGINE_MODULES if f"`_engine/{m}.py`" not in text]
    assert not missing, f"not described in docs/architecture.md: {missing}"


# Modules whose tests live in a file of another name, and why.
SHARED_TEST_FILES = {
    "sklearn_deepnet._engine.init": "test_init.py",  # (the engine's; _init is its alias)
    "sklearn_deepnet._init": "test_persistence.py",  # an alias old pickles load through
    "sklearn_deepnet._persist": "test_persistence.py",
    # the estimators' ensemble parameters and the engine's member layers, one file
    "sklearn_deepnet._ensemble": "test_ensemble.py",
    "sklearn_deepnet._engine.ensemble": "test_ensemble.py",
    **{f"sklearn_deepnet._engine.{m}": "test_kernels.py"  # the kernels family, one file
       for m in ENGINE_MODULES if m.startswith("kernels_")},
}


def test_every_module_has_its_own_test_file():
    tests = PACKAGE.parent / "tests"
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "__init__.py":
            continue
        name = ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        wanted = SHARED_TEST_FILES.get(name, f"test_{path.stem.lstrip('_')}.py")
        if not (tests / wanted).is_file():
            missing.append(f"{name} -> tests/{wanted}")
    assert not missing, f"modules without their test file: {missing}"


@pytest.mark.parametrize("module", ENGINE_MODULES)
def test_the_engine_imports_neither_scikit_learn_nor_skorch(module):
    # Imported without the package's __init__ (which imports the estimators):
    # a stand-in package object, then the engine module alone, in a new process.
    code = f"""
import sys, types
pkg = types.ModuleType("sklearn_deepnet")
pkg.__path__ = [{str(PACKAGE)!r}]
sys.modules["sklearn_deepnet"] = pkg
import sklearn_deepnet._engine.{module}
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("sklearn", "skorch"))
assert not bad, bad
"""
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def _import_graph():
    """module -> the package modules it imports (at any level, lazily too)."""
    modules = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        modules[name] = path
    graph = {}
    for name, path in modules.items():
        is_package = path.name == "__init__.py"
        here = name.split(".") if is_package else name.split(".")[:-1]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                base = here[:len(here) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            elif (node.module or "").startswith("sklearn_deepnet"):
                target = node.module
            else:
                continue
            deps.update(t for t in [target] + [f"{target}.{a.name}" for a in node.names]
                        if t in modules and t != name and t != "sklearn_deepnet")
        graph[name] = deps
    return graph


def _cycles(graph):
    """The strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(v):
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in graph[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for v in sorted(graph):
        if v not in index:
            visit(v)
    return found


def test_no_import_cycles():
    # Lazy imports inside functions count too: they only hide a cycle.
    assert _cycles(_import_graph()) == []


def test_the_cycle_finder_finds_a_cycle():
    assert _cycles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
