"""The registered models' names, descriptions and meta, read without importing the builders.

`kerasclf models` only lists; importing the builder modules imports Keras, which imports
TensorFlow (4-7 s and TensorFlow's start-up lines on the console). The `@register_model(...)`
decorators hold their facts as literals, so they are read from the modules' source with
`ast` instead (kerasclf.registry.read_entries, which config validation uses too). A decorator
whose arguments are not literals makes `catalogue()` fall back to importing the modules (the
registry then builds the listing), so the listing is never wrong; tests check that both give
the same entries.
"""

from kerasclf.registry import NotLiteral, read_entries


def catalogue(modules=None, decorators=("register_model",), load=None):
    """[Entry(name, factory=None, description, meta)] sorted by name, read from the source of
    `modules` (default: the built-in model modules) without importing them; `load()` (default:
    the model registry's entries) is the fallback when a decorator is not literal."""
    if modules is None:
        from kerasclf.registry import MODELS

        modules, decorators, load = MODELS.builtin_modules, MODELS.decorators, MODELS.entries
    try:
        entries = [entry for entry, _ in read_entries(modules, set(decorators)).values()]
    except (NotLiteral, OSError, SyntaxError):
        return load()
    return sorted(entries, key=lambda e: e.name)
