"""Patch whitening (airbench94's first layer): the numpy statistics, the kernel, the layer.

`whitening_kernel(images)` holds the eigenvectors of the images' 2x2-patch covariance,
scaled by 1/sqrt(eigenvalue + eps), each filter also negated (so a GELU after it passes
both signs). `PatchWhitening` is the conv that carries it: kernel frozen, bias trained, set
from training images by kerasclf.models.data_init.init_from_data once the model is built.
"""

import keras
import numpy as np
from keras import layers, ops


def _patches(images, size):
    """All size x size patches of NHWC images, flattened in (row, col, channel) order."""
    x = np.asarray(images, dtype=np.float64)
    _, height, width, _ = x.shape
    views = [x[:, i : height - size + 1 + i, j : width - size + 1 + j] for i in range(size) for j in range(size)]
    return np.concatenate(views, axis=-1).reshape(-1, size * size * x.shape[-1])


def patch_statistics(images, patch_size=2, chunk=500):
    """(mean, covariance) of all patch_size x patch_size patches of NHWC `images`, in float64."""
    images = np.asarray(images)
    if images.ndim != 4:
        raise ValueError(f"images must be NHWC, got shape {images.shape}.")
    dim = patch_size * patch_size * images.shape[-1]
    total, outer, count = np.zeros(dim), np.zeros((dim, dim)), 0
    for start in range(0, len(images), chunk):  # chunks keep the patch matrix small
        p = _patches(images[start : start + chunk], patch_size)
        total += p.sum(axis=0)
        outer += p.T @ p
        count += len(p)
    if not count:
        raise ValueError("no patches: give at least one image larger than the patch size.")
    mean = total / count
    return mean, outer / count - np.outer(mean, mean)


def whitening_kernel(images, eps=5e-4, patch_size=2, return_bias=False):
    """Conv kernel (patch_size, patch_size, C, 2 * patch_size**2 * C) whitening the patches.

    `images`: NHWC array (uint8 0..255 or floats); the kernel applies to inputs in the same
    units, and `eps` is in those units squared. Filter k < d (d = patch_size**2 * C) is the
    k-th eigenvector of the patch covariance (largest eigenvalue first) over
    sqrt(eigenvalue + eps), signed so its largest component is positive; filter d + k is
    its negation. So on centred patches the first d
    outputs have covariance diag(eigenvalue / (eigenvalue + eps)), about the identity.
    With `return_bias`, also the bias (2d,) that centres the outputs.
    """
    mean, cov = patch_statistics(images, patch_size)
    values, vectors = np.linalg.eigh(cov)  # ascending
    values, vectors = values[::-1], vectors[:, ::-1]
    # Canonical signs (eigh's are arbitrary): each vector's largest component is positive.
    peaks = vectors[np.argmax(np.abs(vectors), axis=0), np.arange(vectors.shape[1])]
    vectors = vectors * np.where(peaks < 0, -1.0, 1.0)
    scaled = vectors / np.sqrt(np.clip(values, 0.0, None) + eps)  # column k: one filter
    channels = np.asarray(images).shape[-1]
    half = scaled.reshape(patch_size, patch_size, channels, -1)
    kernel = np.concatenate([half, -half], axis=-1).astype(np.float32)
    if not return_bias:
        return kernel
    bias = -(mean @ scaled)
    return kernel, np.concatenate([bias, -bias]).astype(np.float32)


@keras.saving.register_keras_serializable(package="kerasclf")
class PatchWhitening(layers.Layer):
    """Valid patch_size x patch_size conv, 2 * patch_size**2 * C filters, kernel frozen.

    The kernel is a non-trainable weight (no freeze policy or `trainable=True` makes it
    train); until `init_from_data` sets it from data it holds the identity basis and its
    negation (the whitening of already-white data). The bias is trainable.
    `data_init=False` tells kerasclf.models.data_init.init_from_data to leave the layer alone.
    `bias_epochs` (airbench94: 3): the bias trains during the first N epochs only; from
    epoch N on (`set_epoch`, called by kerasclf.training.epoch_hooks.EpochHooks) the layer
    uses a frozen copy of it. A copy rather than `trainable=False`, which would need a
    recompile mid-run, and rather than a zero gradient, under which decoupled weight decay
    and momentum would still move it. None: the bias trains throughout.
    """

    def __init__(self, patch_size=2, eps=5e-4, data_init=True, bias_epochs=None, **kwargs):
        super().__init__(**kwargs)
        self.patch_size = int(patch_size)
        self.eps = float(eps)
        self.data_init = bool(data_init)
        if bias_epochs is not None and int(bias_epochs) < 0:
            raise ValueError(f"whitening bias_epochs must be >= 0 or None, got {bias_epochs}.")
        self.bias_epochs = None if bias_epochs is None else int(bias_epochs)

    def build(self, input_shape):
        channels = int(input_shape[-1])
        dim = self.patch_size * self.patch_size * channels
        identity = np.eye(dim, dtype=np.float32).reshape(self.patch_size, self.patch_size, channels, dim)
        start = np.concatenate([identity, -identity], axis=-1)
        self.kernel = self.add_weight(
            shape=start.shape, initializer=keras.initializers.Constant(start), trainable=False, name="kernel"
        )
        self.bias = self.add_weight(shape=(2 * dim,), initializer="zeros", trainable=True, name="bias")
        if self.bias_epochs is not None:
            self.frozen_bias = self.add_weight(shape=(2 * dim,), initializer="zeros", trainable=False, name="frozen_bias")
            self.bias_live = self.add_weight(shape=(), initializer="ones", trainable=False, name="bias_live")

    def current_bias(self):
        if self.bias_epochs is None:
            return self.bias
        # .value: tensors, as JAX's where takes no Variables
        return ops.where(self.bias_live.value > 0.5, self.bias.value, self.frozen_bias.value)

    def call(self, x):
        return ops.conv(x, self.kernel, strides=1, padding="valid") + self.current_bias()

    def set_epoch(self, epoch):
        """Epochs < bias_epochs: the bias trains; at epoch bias_epochs it is copied and frozen."""
        if self.bias_epochs is None:
            return
        live = float(ops.convert_to_numpy(self.bias_live)) > 0.5
        if epoch < self.bias_epochs:
            self.bias_live.assign(1.0)
        elif live:
            # a host copy: under JAX, assigning the variable itself shares its buffer, which the
            # compiled step then donates twice
            self.frozen_bias.assign(np.array(ops.convert_to_numpy(self.bias)))
            self.bias_live.assign(0.0)

    def init_from_data(self, features):
        """Set kernel and bias from `features`: this layer's input on training images."""
        kernel, bias = whitening_kernel(features, self.eps, self.patch_size, return_bias=True)
        self.kernel.assign(kernel)
        self.bias.assign(bias)
        if self.bias_epochs is not None:
            self.frozen_bias.assign(bias.copy())

    def compute_output_shape(self, input_shape):
        n, h, w, c = input_shape
        size = lambda s: None if s is None else s - self.patch_size + 1  # noqa: E731
        return (n, size(h), size(w), 2 * self.patch_size * self.patch_size * c)

    def get_config(self):
        return {**super().get_config(), "patch_size": self.patch_size, "eps": self.eps, "data_init": self.data_init,
                "bias_epochs": self.bias_epochs}
