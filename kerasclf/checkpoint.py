"""Checkpoints: loading `.keras` files, the classes they may contain, and what they promise.

The contract of a kerasclf checkpoint (written by `kerasclf train`):
- input: uint8 images (N, H, W, C) at `labels.image_size`; preprocessing, resizing and
  augmentation (identity at inference) are layers of the model;
- output: class probabilities (N, classes), float32, through a `LabelInfo` layer named
  `labels` that records class_names, the data source spec and the task;
- a layer named `embedding` whose output is the input of the task head.

Loading is always in Keras safe mode (no `Lambda` layers, no arbitrary code) and every
kerasclf class a file may name is registered first. Transfer learning from one of your own
checkpoints (`model.weights: run/best.keras`) lives here too: it needs a loaded checkpoint.
"""

import importlib
from pathlib import Path

import keras

from kerasclf.errors import CheckpointError, ModelError
from kerasclf.registry import HEADS, LOSSES, MODELS, OPTIMIZERS, SCHEDULES
from kerasclf.safe_load import explain_load_failure, refuse_lambda

# Modules with serialisable Keras classes that no registry imports.
_LAYER_MODULES = (
    "kerasclf.layers.preprocessing",
    "kerasclf.layers.augment",
    "kerasclf.layers.alternating_flip",
    "kerasclf.layers.joint",
    "kerasclf.losses.metric",
    "kerasclf.losses.composite",  # KeepCenters: the centres saved with a center-loss run (loaded by name)
)
LABELS_LAYER = "labels"


def register_serializables():
    """Import every module with a registered Keras class, so any kerasclf .keras file loads."""
    for registry in (MODELS, HEADS, LOSSES, OPTIMIZERS, SCHEDULES):
        registry.load()
    for module in _LAYER_MODULES:
        importlib.import_module(module)


def load_checkpoint(path):
    """(model, labels) from a .keras file, in safe mode, or a CheckpointError that says what to do."""

    register_serializables()
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(
            f"Checkpoint {str(path)!r} does not exist. Runs write logs/<run>/best.keras and last.keras; "
            "pass one of those with --checkpoint."
        )
    refuse_lambda(path)  # before Keras reads it: say why, in kerasclf's terms
    try:
        model = keras.saving.load_model(str(path), safe_mode=True)
    except Exception as exc:  # zip/JSON/HDF5 errors all mean "not a usable checkpoint"
        raise explain_load_failure(path, exc) from None
    return model, labels_of(model, path)


def labels_of(model, path="the model"):
    """The model's LabelInfo layer (class names, data source, input size, task)."""
    try:
        return model.get_layer(LABELS_LAYER)
    except ValueError:
        raise CheckpointError(
            f"Checkpoint {str(path)!r} is a Keras model but not a kerasclf one (no 'labels' layer with class "
            "names); train it with `kerasclf train`."
        ) from None


def _leaf_layers(model):
    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def transfer_from_checkpoint(model, path):
    """Copy weights from a .keras checkpoint by layer name where every shape matches.

    The classification head (layers named head_*) is copied only when both models have the
    same class names: a head trained for other classes is no start for these.
    """
    path = Path(path).expanduser()  # exists: kerasclf.config checked model.weights
    source, source_labels = load_checkpoint(path)
    source_layers = {layer.name: layer for layer in _leaf_layers(source)}
    same_classes = list(source_labels.class_names) == list(labels_of(model).class_names)
    copied, skipped = [], []
    for layer in _leaf_layers(model):
        other = source_layers.get(layer.name)
        if other is None or not layer.weights:
            continue
        if layer.name.startswith("head_") and not same_classes:
            skipped.append(layer.name)
            continue
        mine, theirs = layer.get_weights(), other.get_weights()
        if len(mine) == len(theirs) and all(a.shape == b.shape for a, b in zip(mine, theirs)):
            copied.append((layer, theirs))
        else:
            skipped.append(layer.name)
    # A head alone is no transfer: it reads features the new network does not compute
    # (an mlp's head and a cnn's head can share name and shape).
    if not any(not layer.name.startswith("head_") for layer, _ in copied):
        raise ModelError(
            f"No layer of checkpoint {str(path)!r} (model '{source.name}') outside the head matches a layer "
            f"of model '{model.name}' by name and shape, so nothing could be transferred. Use a checkpoint "
            "trained with the same model name and architecture."
        )
    for layer, theirs in copied:
        layer.set_weights(theirs)
    return {"copied_layers": [layer.name for layer, _ in copied], "skipped_layers": skipped}
