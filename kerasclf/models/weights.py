"""Loading a local weights file into a whole model, with a clear message when it does not fit.

Two kinds of file:
- `.weights.h5` (model.save_weights): the same architecture, loaded exactly;
- `.keras` (a kerasclf checkpoint, e.g. another run's best.keras): transfer learning from
  your own pretraining. Weights are copied layer by layer where name and shapes match. The
  classification head (layers named head_*) is copied only when both models have the same
  class names: a head trained for other classes is no start for these.
"""

from pathlib import Path

from kerasclf.errors import ModelError


def load_full_weights(model, path):
    path = Path(path).expanduser()
    if not path.is_file():
        raise ModelError(
            f"model.weights points to {str(path)!r}, which does not exist. Pass an existing "
            "'.weights.h5' or '.keras' file, 'imagenet' for a pretrained backbone, or 'none'."
        )
    if path.suffix == ".keras":
        return transfer_from_checkpoint(model, path)
    try:
        model.load_weights(str(path))
    except Exception as exc:  # Keras raises ValueError/KeyError/OSError with deep detail
        raise ModelError(
            f"Could not load weights from {str(path)!r} into model '{model.name}': "
            f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}. The file must "
            "come from the same model with the same number of classes and input size."
        ) from None
    return {"loaded": "all"}


def _leaf_layers(model):
    import keras

    for layer in model.layers:
        if isinstance(layer, keras.Model):
            yield from _leaf_layers(layer)
        else:
            yield layer


def transfer_from_checkpoint(model, path):
    """Copy weights from a .keras checkpoint by layer name where every shape matches."""
    from kerasclf.evaluation.evaluate import load_checkpoint

    source, source_labels = load_checkpoint(path)
    source_layers = {layer.name: layer for layer in _leaf_layers(source)}
    same_classes = list(source_labels.class_names) == list(model.get_layer("labels").class_names)
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
            layer.set_weights(theirs)
            copied.append(layer.name)
        else:
            skipped.append(layer.name)
    if not copied:
        raise ModelError(
            f"No layer of checkpoint {str(path)!r} (model '{source.name}') matches a layer of model "
            f"'{model.name}' by name and shape, so nothing could be transferred. Use a checkpoint "
            "trained with the same model name and architecture."
        )
    return {"copied_layers": copied, "skipped_layers": skipped}
