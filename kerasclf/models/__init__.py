"""Model assembly: uint8 images -> preprocessing -> augmentation -> network -> LabelInfo.

Everything a checkpoint needs to be evaluated (scaling, resize, class names) is a layer of
the model, so `best.keras` is self-contained.
"""

import inspect

import keras

from kerasclf.config import Config
from kerasclf.data.info import DatasetInfo
from kerasclf.errors import CheckpointError, ConfigError
from kerasclf.keras_private import producing_inputs
from kerasclf.layers.augment import build_augmentation
from kerasclf.layers.preprocessing import ImagePreprocess, LabelInfo
from kerasclf.models.freeze import apply_trainable
from kerasclf.models.heads import EMBEDDING
from kerasclf.models.registry import MODELS, register_model  # noqa: F401
from kerasclf.models.weights import load_full_weights
from kerasclf.registry import HEADS


def load_builtin_models():
    return MODELS.load()


def builder_kwargs(model_cfg):
    """(registry entry, the builder's keyword arguments) from the `model` section."""
    entry = MODELS.get(model_cfg.name)  # the keys were checked against the builder when the config loaded
    kwargs = dict(model_cfg.kwargs)
    if entry.meta.get("pretrained"):
        # a .keras checkpoint replaces any pretrained weights (kerasclf.checkpoint transfers it)
        kwargs["weights"] = None if is_checkpoint(model_cfg.weights) else model_cfg.weights
    return entry, kwargs


def build_model(cfg: Config, info: DatasetInfo) -> keras.Model:
    """Build the full model for `info` (a kerasclf.data.DatasetInfo) from the config.

    uint8 images -> preprocessing -> augmentation -> [resize] -> builder -> `embedding`
    -> task head -> `probabilities` -> LabelInfo. A `.weights.h5` file in model.weights is
    loaded here; a `.keras` checkpoint is transferred by the caller (kerasclf.checkpoint).
    """

    entry, kwargs = builder_kwargs(cfg.model)
    meta = entry.meta
    height, width = info.image_size
    inputs = keras.Input(shape=(height, width, info.channels), dtype="uint8", name="image")
    mode = meta.get("preprocessing", "unit")
    x = ImagePreprocess(
        mode=mode,
        mean=info.mean if mode == "standardize" else None,
        std=info.std if mode == "standardize" else None,
        name="preprocess",
    )(inputs)
    image = x
    if info.task != "segmentation":  # segmentation moves image and mask together, in the fit model (layers/joint.py)
        for layer in build_augmentation(cfg.augment, (height, width), seed=cfg.seed):
            x = layer(x)
    target = _network_input_size(meta, (height, width), kwargs.get("image_size"))
    if target != (height, width):
        x = keras.layers.Resizing(*target, interpolation="bilinear", name="resize")(x)
    head = HEADS.get(info.task)
    features = _call_builder(entry, x, kwargs)
    if head.meta.get("spatial"):  # segmentation: the encoder's last feature map, not its pooled vector
        features = last_feature_map(features, entry.name)
    embedding = keras.layers.Identity(name=EMBEDDING)(features)
    extra = {"image": image} if head.meta.get("spatial") else {}
    outputs = head.factory(embedding, info.num_classes, dropout=cfg.model.head_dropout,
                           use_bias=meta.get("head_bias", True), **extra)
    # float32 like the head's softmax: a layer under a mixed policy would cast the probabilities
    # back to 16 bits (Keras casts a layer's floating inputs to its compute dtype).
    outputs = LabelInfo(
        class_names=info.class_names, source=info.source, image_size=[height, width], task=info.task, name="labels",
        dtype="float32",
    )(outputs)
    model = keras.Model(inputs, outputs, name=cfg.model.name)
    if _is_weights_file(cfg.model.weights) and not meta.get("pretrained"):
        load_full_weights(model, cfg.model.weights)
    apply_trainable(model, cfg.model.trainable)  # idempotent; callers may re-apply for the summary
    return model


def last_feature_map(tensor, model_name):
    """The last (B, h, w, F) tensor on the way to a builder's output: the input of its pooling
    or flattening, found by walking the functional graph back (any registered backbone)."""
    seen = tensor
    while len(tensor.shape) != 4:
        inputs = producing_inputs(tensor)
        if len(inputs) != 1:
            break
        tensor = inputs[0]
    if len(tensor.shape) != 4:
        raise ConfigError(
            f"Model '{model_name}' cannot be a segmentation encoder: no single path leads from its output "
            f"{tuple(seen.shape)} back to a (batch, height, width, channels) feature map."
        )
    return tensor


def embedding_tensor(model: keras.Model) -> keras.KerasTensor:
    """The symbolic embedding of a kerasclf classifier: the input of its classification head.

    The `embedding` layer where the model has one (every model build_model makes); in older
    checkpoints without it, the input of `head_dropout` or `head_dense`.
    """
    for name, take in ((EMBEDDING, "output"), ("head_dropout", "input"), ("head_dense", "input")):
        try:
            layer = model.get_layer(name)
        except ValueError:
            continue
        return getattr(layer, take)
    raise CheckpointError(
        f"Model '{model.name}' has no layer named '{EMBEDDING}', 'head_dropout' or 'head_dense', so its "
        "embedding (the input of the classification head) cannot be found. Train it with `kerasclf train`."
    )


def embedding_model(model: keras.Model) -> keras.Model:
    """images -> the model's embedding, sharing the classifier's layers (a feature extractor)."""
    return keras.Model(model.input, embedding_tensor(model), name=f"{model.name}_embedding")


def is_checkpoint(weights):
    """A .keras file as model.weights: transfer from one of your own runs (kerasclf.checkpoint)."""
    return isinstance(weights, str) and weights.endswith(".keras")


def _is_weights_file(weights):
    return isinstance(weights, str) and weights not in ("imagenet",) and not is_checkpoint(weights)


def _call_builder(entry, x, kwargs):
    """Run the builder; a TypeError/ValueError there comes from a model key of the wrong kind."""
    try:
        return entry.factory(x, **kwargs)
    except (TypeError, ValueError) as exc:
        defaults = {
            name: p.default
            for name, p in inspect.signature(entry.factory).parameters.items()
            if p.default is not inspect.Parameter.empty and name in kwargs
        }
        raise ConfigError(
            f"Model '{entry.name}' could not be built from the model keys {kwargs} "
            f"({type(exc).__name__}: {exc}). Check their types against the defaults {defaults}."
        ) from None


def _network_input_size(meta, size, override=None):
    """Backbones with a fixed input (ViT) or a minimum side get their input resized in-model.

    `override` is a builder's `image_size` argument (a side or [height, width]): the network
    input it was configured for, replacing the registered `input_size`.
    """
    if override:
        if isinstance(override, (int, float)):
            return (int(override), int(override))
        return tuple(int(s) for s in override)
    if meta.get("input_size"):
        return tuple(meta["input_size"])
    min_size = meta.get("min_size")
    if min_size and min(size) < min_size:
        scale = min_size / min(size)
        return (round(size[0] * scale), round(size[1] * scale))
    return tuple(size)
