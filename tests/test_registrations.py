"""Every module of the package that registers entries is loaded by its registry.

A registry imports its `builtin_modules` (kerasclf.registry) on first use; a module that
registers entries but is missing from that list would have its entries silently absent.
The registrations are found in the source (decorators and calls of `REGISTRY.register` or
of an alias such as `register_model = MODELS.register`), not from a hand-kept list.
"""

import ast
from pathlib import Path

import kerasclf.registry as registries

PACKAGE = Path(__file__).resolve().parents[1] / "kerasclf"


def module_name(path):
    return ".".join(path.relative_to(PACKAGE.parent).with_suffix("").parts).removesuffix(".__init__")


def register_aliases(trees):
    """{'register_model': 'MODELS', ...} from `alias = REGISTRY.register` assignments anywhere."""
    aliases = {}
    for tree in trees:
        for node in ast.walk(tree):
            if (isinstance(node, ast.Assign) and isinstance(node.value, ast.Attribute)
                    and node.value.attr == "register" and isinstance(node.value.value, ast.Name)):
                for target in node.targets:
                    if isinstance(target, ast.Name):
                        aliases[target.id] = node.value.value.id
    return aliases


def registries_used(tree, aliases):
    """The registries (attribute names of kerasclf.registry) a module registers entries in."""
    used = set()
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call):
            continue
        func = node.func
        if isinstance(func, ast.Attribute) and func.attr == "register" and isinstance(func.value, ast.Name):
            if isinstance(getattr(registries, func.value.id, None), registries.Registry):
                used.add(func.value.id)
        elif isinstance(func, ast.Name) and func.id in aliases:
            used.add(aliases[func.id])
    return used


def registering_modules(sources):
    """{module: {registry names}} for sources {module: text}."""
    trees = {name: ast.parse(text) for name, text in sources.items()}
    aliases = register_aliases(trees.values())
    return {name: used for name, tree in trees.items() if (used := registries_used(tree, aliases))}


def package_sources():
    return {module_name(p): p.read_text() for p in sorted(PACKAGE.rglob("*.py"))}


def test_every_registering_module_is_a_builtin_module_of_its_registry():
    found = registering_modules(package_sources())
    assert "kerasclf.models.scratch" in found and "kerasclf.losses.composite" in found  # the finder works here
    missing = [f"{module} registers in {name} but is not in registry.{name}.builtin_modules"
               for module, names in sorted(found.items()) for name in sorted(names)
               if module not in getattr(registries, name).builtin_modules]
    assert not missing, "\n".join(missing)


def test_every_builtin_module_registers_something():
    found = registering_modules(package_sources())
    for name in dir(registries):
        registry = getattr(registries, name)
        if isinstance(registry, registries.Registry):
            for module in registry.builtin_modules:
                assert name in found.get(module, set()), f"registry.{name} loads {module}, which registers nothing there"


def test_the_finder_sees_decorators_aliases_and_calls():
    sources = {
        "pkg.aliases": "from kerasclf.registry import LOSSES\nregister_loss = LOSSES.register\n",
        "pkg.decorated": "@register_loss('x')\ndef x(cfg, labels): ...\n",
        "pkg.direct": "from kerasclf.registry import SCHEDULES\n@SCHEDULES.register('s')\ndef s(o, steps): ...\n",
        "pkg.called": "from kerasclf.registry import MODELS\nMODELS.register('m')(lambda x: x)\n",
        "pkg.plain": "def register(x): ...\nregister('not a registry')\n",
    }
    assert registering_modules(sources) == {
        "pkg.decorated": {"LOSSES"}, "pkg.direct": {"SCHEDULES"}, "pkg.called": {"MODELS"},
    }
