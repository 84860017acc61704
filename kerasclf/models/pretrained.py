"""Pieces the pretrained backbones share: the `weights` argument, strict loading, pooling + head.

The builders (kerasclf.models.applications: VGG16, ResNet-50; kerasclf.models.hub:
ResNet-18; kerasclf.models.vit: ViT-B/16) each nest the network as a plain functional
sub-model named `backbone` (so the freeze flags of its layers are saved in the checkpoint,
see kerasclf.models.freeze) and pool its features: the embedding that the task head takes.

`model.weights` (the builders' `weights` argument):
  "imagenet"   the ecosystem's own download, cached where that ecosystem caches it:
               keras.utils.get_file (~/.keras/models) for keras.applications, kagglehub
               (~/.cache/kagglehub) for KerasHub presets. A failed download (no network)
               raises a ModelError that names the file, its source, and how to pass a local
               copy; nothing is left half-written.
  None/"none"  random initialisation; the architecture is built from its constructor
               arguments, nothing is downloaded.
  a path       keras.applications: the "notop" .h5 file (or a backbone .weights.h5);
               KerasHub: a preset directory (config.json + model.weights.h5) or a backbone
               .weights.h5 file.
"""

import warnings
from pathlib import Path

from keras import layers

from kerasclf.errors import ModelError

_POOLING = ("avg", "max", "flatten")


def weights_source(weights):
    """None for random init, "imagenet", or the local path as given."""
    if weights is None:
        return None
    text = str(weights).strip()
    if text.lower() in ("", "none", "null", "random"):
        return None
    if text.lower() == "imagenet":
        return "imagenet"
    return text


def existing_file(path, key, preset_dir=False):
    """`path` resolved, or a ModelError when it is a folder (kerasclf.config checked that it exists);
    `preset_dir`: a KerasHub preset directory would do too."""
    resolved = Path(path).expanduser()
    if not resolved.is_file():
        raise ModelError(
            f"model.weights points to {path!r}, which is a folder, not a file (model '{key}'). Pass 'imagenet' "
            "(downloaded and cached), 'none' (random initialisation), or the path of an existing weights "
            "file" + (" or KerasHub preset directory." if preset_dir else ".")
        )
    return str(resolved)


def strict_load(load):
    """Run a Keras weights load; a file that only partly matches is an error, not a warning.

    Keras warns ("Skipping ... retain their freshly-initialized weights") and carries on
    when parts of the model are missing from a .weights.h5 file.
    """
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = load()
    partial = [w for w in caught if "freshly-initialized" in str(w.message) or "Skipping" in str(w.message)]
    if partial:
        raise ValueError(f"the file does not match this architecture ({str(partial[0].message).splitlines()[0]})")
    for w in caught:
        warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)
    return result


def pool(features, pooling):
    """pooling: avg | max | flatten of a conv backbone's features (the model's embedding)."""
    if pooling == "avg":
        return layers.GlobalAveragePooling2D(name="pool")(features)
    if pooling == "max":
        return layers.GlobalMaxPooling2D(name="pool")(features)
    if pooling == "flatten":
        return layers.Flatten(name="flatten")(features)
    raise ModelError(f"pooling must be one of {', '.join(_POOLING)}; got {pooling!r}.")
