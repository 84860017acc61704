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

from kerasclf.registry import Entry


class _NotLiteral(Exception):
    pass


def _module_source(module):
    spec = importlib.util.find_spec(module)
    if spec is None or spec.origin is None:
        raise _NotLiteral(module)
    return Path(spec.origin).read_text(encoding="utf-8")


def _literal(node):
    try:
        return ast.literal_eval(node)
    except ValueError:
        raise _NotLiteral(ast.dump(node)) from None


def _entries_in(module):
    tree = ast.parse(_module_source(module))
    entries = []
    for node in ast.walk(tree):
        if not isinstance(node, (ast.FunctionDef, ast.ClassDef)):
            continue
        for decorator in node.decorator_list:
            if not (isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) == "register_model"):
                continue
            args = [_literal(a) for a in decorator.args]
            kwargs = {k.arg: _literal(k.value) for k in decorator.keywords if k.arg is not None}
            if len(args) != 1 or len(kwargs) != len(decorator.keywords):
                raise _NotLiteral(node.name)
            description = kwargs.pop("description", "") or (ast.get_docstring(node) or "").splitlines()[:1]
            if isinstance(description, list):
                description = description[0] if description else ""
            entries.append(Entry(args[0], None, description, kwargs))
        # register_model(...)(fn) calls outside decorators cannot be read: fall back
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Call):
            if getattr(node.func.func, "id", None) == "register_model":
                raise _NotLiteral(module)
    return entries


def catalogue():
    """[Entry(name, factory=None, description, meta)] sorted by name, without importing Keras."""
    from kerasclf.registry import MODELS

    try:
        entries = [e for module in MODELS.builtin_modules for e in _entries_in(module)]
    except (_NotLiteral, OSError, SyntaxError):
        return MODELS.entries()
    return sorted(entries, key=lambda e: e.name)
