"""The package's layers: a module imports only from its own layer or below (architecture.md).

(1) errors, registry, config, backend, console; (2) data, layers; (3) models; (4) checkpoint, losses, runs;
(5) training, evaluation, features; (6) studies; (7) cli. Registries load their built-in modules
by name (kerasclf.registry), which is how a lower layer can list what a higher one registers.
"""

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1] / "kerasclf"
LAYERS = {
    "errors": 1, "registry": 1, "config": 1, "backend": 1, "console": 1, "__init__": 1,
    "data": 2, "layers": 2,
    "models": 3,
    "checkpoint": 4, "safe_load": 4, "losses": 4, "runs": 4,
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
