"""XLA checks: the layers of a model that would turn XLA compilation off.

Keras's own RandomTranslation, RandomCrop, RandomRotation, RandomZoom, RandomShear and
RandomPerspective set `supports_jit = False`, and one such layer silently turns XLA off for
the whole model (`jit_compile="auto"` checks every layer). `jit_blockers(model)` names
them; `warn_if_not_jit(model)` (called by the training run after compile) warns and points
at the XLA-safe layers of kerasclf.layers.augment.
"""

import warnings

from kerasclf.keras_private import sublayers

# Keras layers known to set supports_jit = False -> the kerasclf config key to use instead.
_REPLACEMENTS = {
    "RandomTranslation": "augment.translate",
    "RandomCrop": "augment.crop_padding",
    "RandomRotation": "augment.rotation",
    "RandomZoom": "augment.zoom",
    "RandomShear": "augment.rotation / augment.zoom (no shear equivalent)",
    "RandomPerspective": "augment.rotation / augment.zoom (no perspective equivalent)",
}


def _blocking_layers(model, prefix=""):
    """(path, layer) for each layer under `model` with supports_jit False, nested models too."""
    found = []
    for layer in sublayers(model, recursive=False):  # what keras's model_supports_jit walks
        path = f"{prefix}{layer.name}"
        if not getattr(layer, "supports_jit", True):
            found.append((path, layer))
        found.extend(_blocking_layers(layer, prefix=f"{path}/"))
    return found


def jit_blockers(model):
    """Names of the layers (nested ones as 'outer/inner') whose supports_jit is False.

    Any one of them makes Keras run the whole model without XLA under jit_compile="auto".
    """
    return [path for path, _ in _blocking_layers(model)]


def warn_if_not_jit(model):
    """warnings.warn naming the layers that turn XLA off; returns their names ([] if none)."""
    blockers = _blocking_layers(model)
    if not blockers:
        return []
    parts = []
    for path, layer in blockers:
        cls = type(layer).__name__
        hint = _REPLACEMENTS.get(cls)
        parts.append(f"{path} ({cls}" + (f"; use kerasclf config key {hint} instead)" if hint else ")"))
    warnings.warn(
        f"Model {model.name!r} has layers that do not support XLA: {', '.join(parts)}. "
        "Keras turns XLA compilation off for the whole model when any layer sets "
        "supports_jit=False (jit_compile='auto' resolves to False, True is refused), which can "
        "make training many times slower. Use the XLA-safe layers of kerasclf.layers.augment "
        "through the `augment` config section instead.",
        stacklevel=2,
    )
    return [path for path, _ in blockers]
