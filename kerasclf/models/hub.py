"""KerasHub backbones: the ResNet-18 builder and the preset plumbing the ViT shares.

Presets come through kagglehub (cached under ~/.cache/kagglehub); `weights` as described
in kerasclf.models.pretrained, where a path may also be a preset directory. keras-hub is
an optional dependency, imported only when a KerasHub model is built.
"""

import importlib.util
import os
from pathlib import Path

import keras

from kerasclf.errors import ModelError, first_line
from kerasclf.models.pretrained import existing_file, pool, strict_load, weights_source
from kerasclf.models.registry import register_model

# The KerasHub preset and the constructor arguments that rebuild its architecture offline
# (checked against the preset's published parameter count: 11,186,112).
RESNET18_PRESET = "resnet_18_imagenet"
RESNET18_ARCH = {
    "input_conv_filters": [64],
    "input_conv_kernel_sizes": [7],
    "stackwise_num_filters": [64, 128, 256, 512],
    "stackwise_num_blocks": [2, 2, 2, 2],
    "stackwise_num_strides": [1, 2, 2, 2],
    "block_type": "basic_block",
    "use_pre_activation": False,
}


@register_model(
    "resnet18",
    description="ResNet-18 (KerasHub resnet_18_imagenet); CIFAR-10 ref full 82.9% SGD, head-only 42.6%",
    preprocessing="torch",
    min_size=32,
    pretrained=True,
)
def resnet18(x, weights=None, pooling="avg"):
    """ImageNet preprocessing of the preset's image converter: RGB / 255, ImageNet mean/std."""
    source = weights_source(weights)
    cls = import_keras_hub("resnet18").models.ResNetBackbone
    if source is None:
        hub = cls(**RESNET18_ARCH, image_shape=tuple(x.shape[1:]))
        backbone = _plain_functional(hub)
    elif source == "imagenet" or Path(source).expanduser().is_dir():
        hub = from_preset("resnet18", cls, RESNET18_PRESET if source == "imagenet" else source)
        backbone = _plain_functional(hub)
    else:
        path = existing_file(source, "resnet18", preset_dir=True)
        backbone = _plain_functional(cls(**RESNET18_ARCH, image_shape=tuple(x.shape[1:])))
        load_backbone_file(backbone, path, "resnet18")
    return pool(backbone(x), pooling)


def import_keras_hub(key):
    """The keras_hub module, or a ModelError saying how to install it (for model `key`)."""
    try:
        import keras_hub  # lazy: keras-hub is optional (hub extra)
    except ImportError as error:
        if importlib.util.find_spec("keras_hub") is not None:  # installed, but one of its own imports failed
            raise ModelError(
                f"Model '{key}' comes from KerasHub, which is installed but failed to import: {error} "
                "Install what it names, or reinstall with pip install --upgrade 'kerasclf[hub]'."
            ) from None
        raise ModelError(
            f"Model '{key}' comes from KerasHub, which is not installed: pip install 'kerasclf[hub]' "
            "(or pip install keras-hub)."
        ) from None
    return keras_hub


def from_preset(key, cls, preset, **kwargs):
    """cls.from_preset, turning a failed download into a ModelError with the way out."""
    if Path(str(preset)).expanduser().is_dir():
        try:
            return cls.from_preset(str(Path(preset).expanduser()), **kwargs)
        except Exception as exc:
            raise ModelError(
                f"Could not load the KerasHub preset directory {str(preset)!r} for {key}: {first_line(exc)}. "
                f"It must hold config.json and model.weights.h5 of a {cls.__name__} preset."
            ) from None
    handle = cls.presets.get(preset, {}).get("kaggle_handle", preset)
    created = _kaggle_cache_dirs(handle)
    try:
        return cls.from_preset(preset, **kwargs)
    except Exception as exc:  # requests/kagglehub errors when offline; the message says which
        _remove_new_empty_dirs(created)
        raise ModelError(
            f"Model '{key}' needs the KerasHub preset '{preset}' ({handle}, downloaded and cached by "
            f"kagglehub under {_kaggle_cache_root()}), and loading it "
            f"failed ({first_line(exc)}). Run once with network access (the preset is then cached), or "
            "download the preset directory (config.json + model.weights.h5) on another machine, e.g. "
            f"kagglehub.model_download('{handle.removeprefix('kaggle://')}'), and pass it with "
            f"`--set model.weights=/path/to/{preset}`; a backbone .weights.h5 file works too, and "
            "`--set model.weights=none` starts from random weights."
        ) from None


def _kaggle_cache_root():
    try:
        from kagglehub.config import get_cache_folder  # lazy: comes with keras-hub (hub extra)

        return get_cache_folder()
    except ImportError:
        return os.environ.get("KAGGLEHUB_CACHE", "~/.cache/kagglehub")


def _kaggle_cache_dirs(handle):
    """The kagglehub cache directories a download of `handle` would create, and which exist."""
    try:
        from kagglehub.config import get_cache_folder  # lazy: comes with keras-hub (hub extra)
    except ImportError:
        return []
    parts = str(handle).removeprefix("kaggle://").split("/")
    root = Path(get_cache_folder()).expanduser()
    path = root / "models"
    dirs = [root, path]
    for part in parts:
        path = path / part
        dirs.append(path)
    return [(d, d.exists()) for d in dirs]


def _remove_new_empty_dirs(dirs):
    """A failed kagglehub download leaves empty cache folders; remove those it created."""
    for path, existed in reversed(dirs):
        if not existed:
            try:
                path.rmdir()  # only succeeds on an empty directory
            except OSError:
                pass


def _plain_functional(hub):
    """A KerasHub backbone as a plain functional model over the same layers.

    KerasHub backbones serialize by constructor arguments, which drops the `trainable`
    flags of their inner layers on reload; a plain functional model saves each layer's config.
    """
    return keras.Model(hub.input, hub.output, name="backbone")


def load_backbone_file(backbone, path, key, hub_factory=None, copy_weights=None):
    """Load a .weights.h5 saved from our `backbone` sub-model, or from the KerasHub backbone.

    The second route is for a `backbone` that is not the KerasHub model's own layers (the
    ViT): `hub_factory()` builds that model, the file loads into it, and
    `copy_weights(hub, backbone)` moves the weights over.
    """
    errors = []
    try:
        strict_load(lambda: backbone.load_weights(path))
        return
    except Exception as exc:  # Keras raises ValueError/KeyError/OSError for a mismatch
        errors.append(exc)
    if hub_factory is not None:
        try:
            hub = hub_factory()
            strict_load(lambda: hub.load_weights(path))
            copy_weights(hub, backbone)
            return
        except Exception as exc:
            errors.append(exc)
    raise ModelError(
        f"Could not load backbone weights from {path!r} into {key}: {first_line(errors[0])}. Pass a "
        ".weights.h5 file saved from this model's 'backbone' layer (or from the KerasHub backbone with the "
        "same architecture), a KerasHub preset directory, 'imagenet', or 'none'."
    ) from None
