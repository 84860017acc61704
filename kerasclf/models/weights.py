"""Loading a local weights file into a whole model, with a clear message when it does not fit.

Two kinds of file:
- `.weights.h5` (model.save_weights): the same architecture, loaded exactly;
- `.keras` (a kerasclf checkpoint, e.g. another run's best.keras): transfer learning from
  your own pretraining. Weights are copied layer by layer where name and shapes match. The
  classification head (layers named head_*) is copied only when both models have the same
  class names: a head trained for other classes is no start for these.
"""

from pathlib import Path

from kerasclf.errors import ModelError, first_line


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
            f"{first_line(exc)}. The file must "
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
