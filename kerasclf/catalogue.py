"""The registered models' names, descriptions and meta, read without importing the builders.

`kerasclf models` only lists; importing the builder modules imports Keras, which imports
TensorFlow (4-7 s and TensorFlow's start-up lines on the console). The `@register_model(...)`
decorators hold their facts as literals, so they are read from the modules' source with
`ast` instead. A decorator whose arguments are not literals makes `catalogue()` fall back to
importing the modules (the registry then builds the listing), so the listing is never wrong;
tests check that both give the same entries.
"""

import ast
import importlib.util
from pathlib import Path

from kerasclf.registry import MODELS, Entry


class _NotLiteral(Exception):
    pass


def _module_source(module):
    """The source of a module, found without importing its parent packages (find_spec would run
    kerasclf.models's __init__, which imports Keras)."""
    top, *rest = module.split(".")
    spec = importlib.util.find_spec(top)
    if spec is not None and not rest and spec.origin and spec.origin.endswith(".py"):
        return Path(spec.origin).read_text(encoding="utf-8")
    if spec is None or not spec.submodule_search_locations:
        raise _NotLiteral(module)
    base = Path(next(iter(spec.submodule_search_locations))).joinpath(*rest)
    for path in (base.with_suffix(".py"), base / "__init__.py"):
        if path.is_file():
            return path.read_text(encoding="utf-8")
    raise _NotLiteral(module)


def _literal(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise _NotLiteral(ast.dump(node)) from None


def _dotted(node):
    """'register_model' or 'MODELS.register' for a decorator's callee, else None."""
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        return f"{node.value.id}.{node.attr}"
    return None


def _entries_in(module, decorators):
    tree = ast.parse(_module_source(module))
    entries = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Call) and _dotted(node.func.func) in decorators:
            raise _NotLiteral(module)  # register(...)(fn) outside a decorator: not read here
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            continue
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Call) and _dotted(decorator.func) in decorators):
                continue
            args = [_literal(a) for a in decorator.args]
            if len(args) != 1 or any(k.arg is None for k in decorator.keywords):
                raise _NotLiteral(node.name)
            meta = {k.arg: _literal(k.value) for k in decorator.keywords}
            doc = (ast.get_docstring(node) or "").strip().splitlines()
            description = meta.pop("description", "") or (doc[0] if doc else "")
            entries.append(Entry(args[0], None, description, meta))
    return entries


def catalogue(modules=None, decorators=("register_model",), load=None):
    """[Entry(name, factory=None, description, meta)] sorted by name, read from the source of
    `modules` (default: the built-in model modules) without importing them; `load()` (default:
    the model registry's entries) is the fallback when a decorator is not literal."""
    if modules is None:
        modules, decorators, load = MODELS.builtin_modules, ("register_model", "MODELS.register"), MODELS.entries
    try:
        entries = [e for module in modules for e in _entries_in(module, set(decorators))]
    except (_NotLiteral, OSError, SyntaxError):
        return load()
    return sorted(entries, key=lambda e: e.name)
