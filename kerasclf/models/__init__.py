"""Model assembly: uint8 images -> preprocessing -> augmentation -> network -> LabelInfo.

Everything a checkpoint needs to be evaluated (scaling, resize, class names) is a layer of
the model, so `best.keras` is self-contained.
"""

import importlib
import inspect

from kerasclf.errors import ConfigError, did_you_mean
from kerasclf.models.registry import MODELS, register_model  # noqa: F401

# Modules whose import registers builders.
_BUILTIN_MODULES = (
    "kerasclf.models.scratch",
    "kerasclf.models.applications",
    "kerasclf.models.hub",
    "kerasclf.models.vit",
    "kerasclf.models.airbench",
)


# Modules defining the other classes a saved model refers to (layers, LR schedules).
_SERIALIZABLE_MODULES = (
    "kerasclf.layers.preprocessing",
    "kerasclf.layers.augment",
    "kerasclf.training.schedules",
    "kerasclf.training.aux_loss",  # KeepCenters: the centres saved with a center-loss run
)


def register_serializables():
    """Import every module with a registered Keras class, so any kerasclf .keras file loads."""
    load_builtin_models()
    for module in _SERIALIZABLE_MODULES:
        importlib.import_module(module)


def load_builtin_models():
    for module in _BUILTIN_MODULES:
        try:
            importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name != module:  # a missing dependency is a real error
                raise
    return MODELS


def builder_kwargs(model_cfg):
    """The builder's keyword arguments from the `model` section, checked against its signature."""
    entry = load_builtin_models().get(model_cfg.name)
    params = inspect.signature(entry.factory).parameters
    accepted = [p for p in params if p not in ("x", "num_classes")]
    for key in model_cfg.kwargs:
        if key not in accepted:
            raise ConfigError(
                f"Unknown config key '{key}' in section 'model' for model '{model_cfg.name}'."
                f"{did_you_mean(key, accepted + ['name', 'weights', 'trainable', 'head_dropout'])} "
                f"Valid keys there: name, weights, trainable, head_dropout, {', '.join(k for k in accepted if k not in ('weights', 'head_dropout'))}."
            )
    kwargs = dict(model_cfg.kwargs)
    if "head_dropout" in params:
        kwargs["head_dropout"] = model_cfg.head_dropout
    if "weights" in params:
        kwargs["weights"] = model_cfg.weights
    return entry, kwargs


def build_model(cfg, info):
    """Build the full model for `info` (a kerasclf.data.DatasetInfo) from the config."""
    import keras

    from kerasclf.layers.augment import build_augmentation
    from kerasclf.layers.preprocessing import ImagePreprocess, LabelInfo

    entry, kwargs = builder_kwargs(cfg.model)
    meta = entry.meta
    from_checkpoint = _is_checkpoint(cfg.model.weights)
    if from_checkpoint and "weights" in kwargs:
        kwargs["weights"] = None  # the checkpoint's weights replace any pretrained ones
    height, width = info.image_size
    inputs = keras.Input(shape=(height, width, info.channels), dtype="uint8", name="image")
    mode = meta.get("preprocessing", "unit")
    x = ImagePreprocess(
        mode=mode,
        mean=info.mean if mode == "standardize" else None,
        std=info.std if mode == "standardize" else None,
        name="preprocess",
    )(inputs)
    for layer in build_augmentation(cfg.augment, (height, width), seed=cfg.seed):
        x = layer(x)
    target = _network_input_size(meta, (height, width), kwargs.get("image_size"))
    if target != (height, width):
        x = keras.layers.Resizing(*target, interpolation="bilinear", name="resize")(x)
    probs = _call_builder(entry, x, info.num_classes, kwargs)
    outputs = LabelInfo(
        class_names=info.class_names, source=info.source, image_size=[height, width], name="labels"
    )(probs)
    model = keras.Model(inputs, outputs, name=cfg.model.name)
    if from_checkpoint or (cfg.model.weights not in (None, "none", "imagenet") and not meta.get("pretrained")):
        from kerasclf.models.weights import load_full_weights

        load_full_weights(model, cfg.model.weights)
    from kerasclf.models.freeze import apply_trainable

    apply_trainable(model, cfg.model.trainable)  # idempotent; callers may re-apply for the summary
    return model


def _is_checkpoint(weights):
    """A .keras file as model.weights: transfer from one of your own runs (see weights.py)."""
    return isinstance(weights, str) and weights.endswith(".keras")


def _call_builder(entry, x, num_classes, kwargs):
    """Run the builder; a TypeError/ValueError there comes from a model key of the wrong kind."""
    try:
        return entry.factory(x, num_classes, **kwargs)
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
