"""The package's layers: a module imports only from its own layer or below (architecture.md).

(1) errors, registry, config, backend, console, keras_private, catalogue; (2) data, layers; (3) models; (4) checkpoint, losses, runs;
(5) training, evaluation, features; (6) studies; (7) cli. Registries load their built-in modules
by name (kerasclf.registry), which is how a lower layer can list what a higher one registers.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kerasclf"
LAYERS = {
    "errors": 1, "registry": 1, "config": 1, "backend": 1, "console": 1, "keras_private": 1, "catalogue": 1, "__init__": 1,
    "data": 2, "layers": 2,
    "models": 3,
    "checkpoint": 4, "safe_load": 4, "losses": 4, "runs": 4, "plotting": 4,
    "training": 5, "evaluation": 5, "features": 5,
    "studies": 6,
    "cli": 7, "__main__": 7,
}


def layer_of(module):
    """'kerasclf.models.freeze' -> 3."""
    parts = module.split(".")
    top = parts[1] if len(parts) > 1 else "__init__"
    if top not in LAYERS:
        pytest.fail(f"kerasclf.{top} has no layer: add it to LAYERS here and to architecture.md")
    return LAYERS[top]


def imports_of(path):
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module, node.lineno
        elif isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name, node.lineno


def modules():
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        yield ".".join(rel.parts).removesuffix(".__init__") or "kerasclf", path


def test_no_module_imports_from_a_higher_layer():
    violations = []
    for module, path in modules():
        mine = layer_of(module)
        for imported, line in imports_of(path):
            if imported.split(".")[0] == "kerasclf" and layer_of(imported) > mine:
                violations.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {imported}")
    assert not violations, "imports against the layer order:\n" + "\n".join(violations)


def test_the_rule_catches_an_upward_import(tmp_path):
    bad = tmp_path / "bad.py"
    bad.write_text("from kerasclf.training.run import train\n")
    assert [m for m, _ in imports_of(bad)] == ["kerasclf.training.run"]
    assert layer_of("kerasclf.training.run") > layer_of("kerasclf.models.freeze")


def package_of(module):
    """'kerasclf.models.freeze' -> 'models'; 'kerasclf.errors' -> 'errors'."""
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def cycles(graph):
    """The strongly connected components with more than one node (Tarjan), each sorted."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for other in graph.get(node, ()):
            if other not in index:
                visit(other)
                low[node] = min(low[node], low[other])
            elif other in on_stack:
                low[node] = min(low[node], index[other])
        if low[node] == index[node]:
            component = []
            while True:
                other = stack.pop()
                on_stack.discard(other)
                component.append(other)
                if other == node:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for node in list(graph):
        if node not in index:
            visit(node)
    return found


def package_graph():
    """Package -> the packages its modules import (anywhere in the file, lazy imports too)."""
    graph = {}
    for module, path in modules():
        for imported, _ in imports_of(path):
            if imported.split(".")[0] == "kerasclf" and package_of(imported) != package_of(module):
                graph.setdefault(package_of(module), set()).add(package_of(imported))
    return graph


def module_graph():
    """Module -> the kerasclf modules its top-level imports load (a cycle here can fail at import time)."""
    known = {module for module, _ in modules()}
    graph = {}
    for module, path in modules():
        targets = set()
        for node in ast.parse(path.read_text()).body:
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            for name in names:
                parts = name.split(".")
                for i in range(2, len(parts) + 1):  # importing a.b.c runs a.b too
                    target = ".".join(parts[:i])
                    if target in known and target != module and not module.startswith(target + "."):
                        targets.add(target)
        graph[module] = targets
    return graph


def test_no_import_cycle_between_packages():
    assert not cycles(package_graph()), "packages that import each other (move the shared piece down a layer)"


def test_no_import_cycle_between_modules():
    assert not cycles(module_graph()), "modules whose top-level imports form a cycle"


def test_the_cycle_finder_finds_a_cycle():
    """Its oracle: a hand-drawn graph with one cycle of three, a self-free chain and a tail."""
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a", "d"}, "d": {"e"}, "e": set()}
    assert cycles(graph) == [["a", "b", "c"]]
    assert cycles({"a": {"b"}, "b": set()}) == []


def foreign_private_attributes(trees):
    """(file, line, name) for each `obj._name` whose `_name` kerasclf does not define itself
    (a def, a class, or an assignment to `something._name`): another library's private API.
    `self._name` is left out: a subclass using its base class's protected hooks (listed in
    kerasclf/keras_private.py's docstring)."""
    defined, uses = set(), []
    for path, tree in trees.items():
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                defined.add(node.name)
            elif isinstance(node, (ast.Assign, ast.AnnAssign, ast.AugAssign)):
                for target in getattr(node, "targets", None) or [node.target]:
                    for sub in ast.walk(target):
                        if isinstance(sub, ast.Attribute):
                            defined.add(sub.attr)
                        elif isinstance(sub, ast.Name):
                            defined.add(sub.id)
            elif (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                  and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                uses.append((path, node.lineno, node.attr))
    return [use for use in uses if use[2] not in defined]


def test_other_libraries_private_api_is_used_in_keras_private_only():
    trees = {path.relative_to(PACKAGE.parent): ast.parse(path.read_text()) for path in PACKAGE.rglob("*.py")}
    outside = [f"{path}:{line} .{name}" for path, line, name in foreign_private_attributes(trees)
               if path.name != "keras_private.py"]
    assert not outside, "private API of another library (wrap it in kerasclf/keras_private.py):\n" + "\n".join(outside)


def test_the_private_api_finder_tells_own_names_from_foreign_ones():
    tree = ast.parse("class A:\n    def __init__(self):\n        self._own = 1\n        self._hook()\n\n"
                     "def f(model, a):\n    a._own\n    model.__class__\n    return model._flatten_layers()\n")
    assert [name for _, _, name in foreign_private_attributes({"x.py": tree})] == ["_flatten_layers"]
