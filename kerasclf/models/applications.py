"""Pretrained backbones from keras.applications: VGG16 and ResNet-50.

`weights` as described in kerasclf.models.pretrained; "imagenet" is keras.applications'
own "notop" file, downloaded with keras.utils.get_file into ~/.keras/models.
"""

import os

import keras

from kerasclf.errors import ModelError, first_line
from kerasclf.models.batchnorm import BN_MOMENTUM, set_momentum
from kerasclf.models.pretrained import existing_file, pool, strict_load, weights_source
from kerasclf.models.registry import register_model

# keras.applications "notop" weights: the URLs and md5 hashes keras.applications uses, so the
# file lands in (and is found in) the same cache.
_APPS_BASE = "https://storage.googleapis.com/tensorflow/keras-applications/"
_APPS_WEIGHTS = {
    "vgg16": ("vgg16/vgg16_weights_tf_dim_ordering_tf_kernels_notop.h5", "6d6bbae143d832006294945121d1f1fc"),
    "resnet50": ("resnet/resnet50_weights_tf_dim_ordering_tf_kernels_notop.h5", "4d473c1dd8becc155b73f8504c6f6626"),
}


@register_model(
    "vgg16",
    description="VGG16 (keras.applications), ImageNet weights; CIFAR-10 last:2/3/5 ref 62/69/78%",
    preprocessing="caffe",
    min_size=32,
    pretrained=True,
)
def vgg16(x, weights=None, pooling="avg"):
    """pooling: avg | max | flatten of the last conv block's features."""
    backbone = _application("vgg16", keras.applications.VGG16, x, weights)
    return pool(backbone(x), pooling)


@register_model(
    "resnet50",
    description="ResNet-50 (keras.applications), ImageNet weights; STL-10 fine-tune ref 91.6%",
    preprocessing="caffe",
    min_size=32,
    pretrained=True,
)
def resnet50(x, weights=None, pooling="avg", bn_momentum=BN_MOMENTUM):
    """pooling: avg | max | flatten of the last stage's features.

    bn_momentum: kerasclf's default (kerasclf.models.batchnorm; torchvision's ResNet-50 uses
    the same rate) in place of keras.applications' 0.99. Epsilon stays the pretrained
    weights' own (1.001e-5)."""
    backbone = set_momentum(_application("resnet50", keras.applications.ResNet50, x, weights), bn_momentum)
    return pool(backbone(x), pooling)


def _application(key, factory, x, weights):
    source = weights_source(weights)
    path = _application_weights_file(key, source) if source else None
    try:
        return strict_load(
            lambda: factory(include_top=False, weights=path, input_shape=tuple(x.shape[1:]), name="backbone")
        )
    except (ValueError, OSError, KeyError, TypeError) as exc:
        if path is None:
            raise
        raise ModelError(
            f"Could not load backbone weights from {path!r} into {key}: {first_line(exc)}. The file must "
            f"hold {key} weights without the classifier (keras.applications' "
            f"{_APPS_WEIGHTS[key][0].rsplit('/', 1)[1]}), or be a .weights.h5 file saved from this "
            "model's 'backbone' layer."
        ) from None


def _application_weights_file(key, source):
    if source != "imagenet":
        return existing_file(source, key)
    rel, md5 = _APPS_WEIGHTS[key]
    fname = rel.rsplit("/", 1)[1]
    url = _APPS_BASE + rel
    try:
        return keras.utils.get_file(fname, url, cache_subdir="models", file_hash=md5)
    except Exception as exc:  # keras raises a bare Exception("URL fetch failure ...") offline
        cache = os.path.join(os.environ.get("KERAS_HOME", "~/.keras"), "models")
        raise ModelError(
            f"Model '{key}' needs its ImageNet weights file {fname}, and downloading it from {url} failed "
            f"({first_line(exc)}). Run once with network access (the file is then cached in {cache}/), "
            f"or download that file on another machine and pass it with "
            f"`--set model.weights=/path/to/{fname}` (or put it in {cache}/); "
            "`--set model.weights=none` starts from random weights."
        ) from None
