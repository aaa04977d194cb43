"""Imports go one way (shared/DESIGN.md): no module cycles, no stage importing one above it in the data flow.

The graph is read from the source with ``ast`` (imports inside functions count: a lazy import hides a
dependency, it does not remove it), so the test needs no TensorFlow and fails on the first new cycle or
wrong-way import, naming it.
"""

import ast
import os
from collections import defaultdict

import pytest

import twotower

PACKAGE_DIR = os.path.dirname(twotower.__file__)
# Bottom first: a package may import only packages at its own level or below (DESIGN.md's layers, plus
# ``evaluation``, which reads exported models and sits between export and serving).
LAYERS = [
    {"__init__", "errors", "config"},
    {"data"},
    {"ingest", "schema"},
    {"transform"},
    {"vocab"},
    {"trainer"},
    {"export"},
    {"evaluation"},
    {"serving"},
    {"components"},
    {"pipeline"},
    {"cli"},
]
LEVEL = {name: i for i, layer in enumerate(LAYERS) for name in layer}


def module_files() -> dict:
    """Returns {dotted module name: path} for every module of the package."""
    out = {}
    for directory, _, files in os.walk(PACKAGE_DIR):
        for name in files:
            if name.endswith(".py"):
                path = os.path.join(directory, name)
                rel = os.path.relpath(path, os.path.dirname(PACKAGE_DIR))[:-3].replace(os.sep, ".")
                out[rel.removesuffix(".__init__")] = path
    return out


def import_graph() -> dict:
    """Returns {module: set of twotower modules it imports, anywhere in the file}."""
    files = module_files()
    graph = {}
    for module, path in files.items():
        found = set()
        with open(path, encoding="utf-8") as f:
            tree = ast.parse(f.read())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                while name and name not in files:
                    name = name.rpartition(".")[0]
                if name and name != "twotower" and name != module:
                    found.add(name)
        graph[module] = found
    return graph


def package_of(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def reachable(graph: dict, start: str) -> set:
    seen, todo = set(), [start]
    while todo:
        for dep in graph.get(todo.pop(), ()):
            if dep not in seen:
                seen.add(dep)
                todo.append(dep)
    return seen


def test_every_package_has_a_layer():
    packages = {package_of(m) for m in module_files()}
    assert packages <= set(LEVEL), f"add {sorted(packages - set(LEVEL))} to LAYERS (and DESIGN.md)"


def test_no_module_imports_a_package_above_its_own():
    wrong = [
        f"{module} imports {dep}"
        for module, deps in sorted(import_graph().items())
        for dep in sorted(deps)
        if LEVEL[package_of(dep)] > LEVEL[package_of(module)]
    ]
    assert not wrong, "imports that point up the data flow:\n" + "\n".join(wrong)


def test_no_import_cycles():
    graph = import_graph()
    cycles = sorted(
        f"{module} <-> {dep}"
        for module in graph
        for dep in graph[module]
        if dep != module and module in reachable(graph, dep)
    )
    assert not cycles, "modules that import each other (directly or through others):\n" + "\n".join(cycles)


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [("trainer", {"serving", "export"}), ("serving", {"trainer"}), ("export", {"serving"})],
)
def test_trainer_and_serving_never_reach_each_other(package, forbidden):
    graph = import_graph()
    for module in (m for m in graph if package_of(m) == package):
        reached = {package_of(m) for m in reachable(graph, module)}
        assert not reached & forbidden, f"{module} reaches {sorted(reached & forbidden)} through its imports"


def test_the_checks_see_a_planted_cycle_and_a_wrong_way_import():
    graph = defaultdict(
        set, {"twotower.trainer.a": {"twotower.serving.b"}, "twotower.serving.b": {"twotower.trainer.a"}}
    )
    assert "twotower.trainer.a" in reachable(graph, "twotower.serving.b")
    assert LEVEL[package_of("twotower.serving.b")] > LEVEL[package_of("twotower.trainer.a")]
