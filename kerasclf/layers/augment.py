"""XLA-safe training augmentation layers, written with `keras.ops` / `keras.random` only.

Keras's own RandomTranslation, RandomCrop, RandomRotation, RandomZoom, RandomShear and
RandomPerspective set `supports_jit = False`, and one such layer silently turns XLA off for
the whole model (`jit_compile="auto"` checks every layer), which made the train step about
700x slower on an H100. The layers here keep `supports_jit = True` and run on TensorFlow
and JAX (the tested backends; PyTorch is not tested).

Common behaviour:
- inputs are float NHWC images of a static height, width and channel count (already scaled:
  any value range; they sit after `ImagePreprocess` in the model);
- identity when `training` is false or None (evaluation, predict, a saved model's serving);
- one random draw per image in the batch, from a `keras.random.SeedGenerator` seeded with
  the optional `seed` argument, so they also work in JAX's stateless compiled train step;
- per-image offsets and transforms are applied with gathers on computed indices
  (kerasclf.layers.sampling), so every shape is static and nothing depends on Python
  values of tensors.

`build_augmentation(cfg, image_size)` turns an `AugmentConfig` into the list of layers that
`kerasclf.models.build_model` inserts between `ImagePreprocess` and the network.
kerasclf.layers.jit reports layers that would turn XLA off.
"""

import math

import keras
from keras import ops

from kerasclf.errors import ConfigError
from kerasclf.layers.alternating_flip import AlternatingFlip
from kerasclf.layers.sampling import PAD_MODES, affine_resample, gather_pixels, pad_index, static_hwc

# ---------------------------------------------------------------------------------------
# Layers
# ---------------------------------------------------------------------------------------


def _batch_size(images):
    return ops.shape(images)[0]


class _RandomImageLayer(keras.layers.Layer):
    """Base: seed generator, jit flag, identity outside training, shape-preserving."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_jit = True

    def build(self, input_shape):
        static_hwc(input_shape, self.__class__.__name__)
        self.built = True

    def call(self, images, training=None):
        if not training:
            return images
        return self._augment(images)

    def _augment(self, images):
        raise NotImplementedError

    def _uniform(self, images, low, high):
        return keras.random.uniform(
            (_batch_size(images),), minval=low, maxval=high, dtype="float32", seed=self.seed_generator
        )

    def _randint(self, images, low, high):
        """Integers uniform over low..high-1, one per image."""
        return keras.random.randint(
            (_batch_size(images),), minval=low, maxval=high, dtype="int32", seed=self.seed_generator
        )

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}


@keras.saving.register_keras_serializable(package="kerasclf")
class RandomFlipXLA(_RandomImageLayer):
    """Horizontal flip of each image with probability `rate` (default 0.5)."""

    def __init__(self, rate=0.5, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if not 0.0 <= rate <= 1.0:
            raise ValueError(f"rate must be within [0, 1], got {rate}.")
        self.rate = float(rate)

    def _augment(self, images):
        flip = self._uniform(images, 0.0, 1.0) < self.rate
        return ops.where(flip[:, None, None, None], ops.flip(images, axis=2), images)

    def get_config(self):
        return {**super().get_config(), "rate": self.rate}


@keras.saving.register_keras_serializable(package="kerasclf")
class RandomPadCrop(_RandomImageLayer):
    """Pad by `padding` pixels on every side, then crop a random HxW window per image.

    Offsets are uniform over 0..2*padding (inclusive) on each axis, independently per image.
    `mode`: reflect (default, as numpy.pad: no edge repeat), symmetric, edge, or constant
    (zeros). The padded image is never materialised: each output pixel reads its source
    through one gather.
    """

    def __init__(self, padding, mode="reflect", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        padding = int(padding)
        if padding < 0:
            raise ValueError(f"padding must be >= 0, got {padding}.")
        if mode not in PAD_MODES:
            raise ValueError(f"mode must be one of {PAD_MODES}, got {mode!r}.")
        self.padding = padding
        self.mode = mode

    def build(self, input_shape):
        super().build(input_shape)
        height, width = input_shape[1], input_shape[2]
        limit = min(height, width) - (1 if self.mode == "reflect" else 0)
        if self.mode in ("reflect", "symmetric") and self.padding > limit:
            raise ValueError(
                f"RandomPadCrop(padding={self.padding}, mode={self.mode!r}) needs padding <= "
                f"{limit} for {height}x{width} images."
            )

    def _augment(self, images):
        height, width, _ = static_hwc(images.shape, "RandomPadCrop")
        n = self.padding
        offset_y = self._randint(images, 0, 2 * n + 1)
        offset_x = self._randint(images, 0, 2 * n + 1)
        rows = offset_y[:, None] - n + ops.arange(height, dtype="int32")[None, :]  # (B, H)
        cols = offset_x[:, None] - n + ops.arange(width, dtype="int32")[None, :]  # (B, W)
        rows3 = ops.broadcast_to(rows[:, :, None], ops.shape(rows)[:1] + (height, width))
        cols3 = ops.broadcast_to(cols[:, None, :], ops.shape(cols)[:1] + (height, width))
        out = gather_pixels(images, pad_index(rows3, height, self.mode), pad_index(cols3, width, self.mode))
        if self.mode == "constant":
            inside = (rows3 >= 0) & (rows3 < height) & (cols3 >= 0) & (cols3 < width)
            out = ops.where(inside[..., None], out, ops.zeros_like(out))
        return out

    def get_config(self):
        return {**super().get_config(), "padding": self.padding, "mode": self.mode}


class _RandomAffine(_RandomImageLayer):
    """One affine map per image (see `affine_resample`), zero fill outside the image."""

    def __init__(self, interpolation="bilinear", seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if interpolation not in ("bilinear", "nearest"):
            raise ValueError(f"interpolation must be 'bilinear' or 'nearest', got {interpolation!r}.")
        self.interpolation = interpolation

    def _transform(self, images, height, width):
        """-> (matrix (B, 2, 2), shift (B, 2)) mapping output pixels to source pixels."""
        raise NotImplementedError

    def _augment(self, images):
        height, width, _ = static_hwc(images.shape, self.__class__.__name__)
        matrix, shift = self._transform(images, height, width)
        return affine_resample(images, matrix, shift, self.interpolation, 0.0)

    @staticmethod
    def _matrix(a, b, c, d):
        return ops.stack([ops.stack([a, b], axis=-1), ops.stack([c, d], axis=-1)], axis=-2)

    def get_config(self):
        return {**super().get_config(), "interpolation": self.interpolation}


def _pair(factor, name):
    if isinstance(factor, (list, tuple)):
        if len(factor) != 2:
            raise ValueError(f"{name} must be a number or a (height, width) pair, got {factor!r}.")
        pair = (float(factor[0]), float(factor[1]))
    else:
        pair = (float(factor), float(factor))
    if min(pair) < 0:
        raise ValueError(f"{name} must be >= 0, got {factor!r}.")
    return pair


@keras.saving.register_keras_serializable(package="kerasclf")
class RandomTranslateXLA(_RandomAffine):
    """Shift each image by up to `factor` of its height/width (uniform in [-f, f]), zero fill.

    `factor`: a fraction, or a (height_fraction, width_fraction) pair.
    """

    def __init__(self, factor, interpolation="bilinear", seed=None, **kwargs):
        super().__init__(interpolation=interpolation, seed=seed, **kwargs)
        self.factor = _pair(factor, "factor")

    def _transform(self, images, height, width):
        fy, fx = self.factor
        ty = self._uniform(images, -fy, fy) * height
        tx = self._uniform(images, -fx, fx) * width
        one, zero = ops.ones_like(ty), ops.zeros_like(ty)
        return self._matrix(one, zero, zero, one), ops.stack([-ty, -tx], axis=-1)

    def get_config(self):
        return {**super().get_config(), "factor": list(self.factor)}


@keras.saving.register_keras_serializable(package="kerasclf")
class RandomRotationXLA(_RandomAffine):
    """Rotate each image about its centre by an angle uniform in [-degrees, degrees], zero fill."""

    def __init__(self, degrees, interpolation="bilinear", seed=None, **kwargs):
        super().__init__(interpolation=interpolation, seed=seed, **kwargs)
        if degrees < 0:
            raise ValueError(f"degrees must be >= 0, got {degrees}.")
        self.degrees = float(degrees)

    def _transform(self, images, height, width):
        limit = self.degrees * math.pi / 180.0
        angle = self._uniform(images, -limit, limit)
        cos, sin = ops.cos(angle), ops.sin(angle)
        # The image content turns counter-clockwise (as displayed, y down) by `angle`.
        return self._matrix(cos, sin, -sin, cos), ops.zeros_like(ops.stack([angle, angle], axis=-1))

    def get_config(self):
        return {**super().get_config(), "degrees": self.degrees}


@keras.saving.register_keras_serializable(package="kerasclf")
class RandomZoomXLA(_RandomAffine):
    """Zoom each image about its centre by a scale uniform in [1 - factor, 1 + factor].

    Scale > 1 magnifies (zoom in); < 1 shrinks with a zero border (zoom out). The aspect
    ratio is kept. `factor` must be < 1.
    """

    def __init__(self, factor, interpolation="bilinear", seed=None, **kwargs):
        super().__init__(interpolation=interpolation, seed=seed, **kwargs)
        if not 0.0 <= factor < 1.0:
            raise ValueError(f"factor must be within [0, 1), got {factor}.")
        self.factor = float(factor)

    def _transform(self, images, height, width):
        inverse = 1.0 / self._uniform(images, 1.0 - self.factor, 1.0 + self.factor)
        zero = ops.zeros_like(inverse)
        return self._matrix(inverse, zero, zero, inverse), ops.stack([zero, zero], axis=-1)

    def get_config(self):
        return {**super().get_config(), "factor": self.factor}


@keras.saving.register_keras_serializable(package="kerasclf")
class RandomErasing(_RandomImageLayer):
    """Cutout: zero a `size` x `size` square centred on a uniform random pixel of each image.

    The centre can be any pixel, so squares near an edge are clipped (DeVries & Taylor 2017).
    Zero is in the input's units: the mean for standardised inputs.
    """

    def __init__(self, size, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        size = int(size)
        if size < 1:
            raise ValueError(f"size must be >= 1, got {size}.")
        self.size = size

    def _augment(self, images):
        height, width, _ = static_hwc(images.shape, "RandomErasing")
        top = self._randint(images, 0, height) - self.size // 2
        left = self._randint(images, 0, width) - self.size // 2
        rows = ops.arange(height, dtype="int32")[None, :]
        cols = ops.arange(width, dtype="int32")[None, :]
        in_rows = (rows >= top[:, None]) & (rows < top[:, None] + self.size)  # (B, H)
        in_cols = (cols >= left[:, None]) & (cols < left[:, None] + self.size)  # (B, W)
        erase = in_rows[:, :, None, None] & in_cols[:, None, :, None]
        return ops.where(erase, ops.zeros_like(images), images)

    def get_config(self):
        return {**super().get_config(), "size": self.size}


@keras.saving.register_keras_serializable(package="kerasclf")
class RandomColorJitter(_RandomImageLayer):
    """Per-image brightness, contrast and saturation factors, uniform in [1 - s, 1 + s].

    Defined to be independent of the input's value range (0..1, 0..255 or standardised give
    the same augmentation): brightness shifts the image by (b - 1) of its own standard
    deviation, contrast scales deviations from the image mean by c, saturation scales each
    pixel's deviation from its channel mean (grey) by s. No clipping: the range is unknown.
    Single-channel images only get brightness and contrast.
    """

    def __init__(self, strength, seed=None, **kwargs):
        super().__init__(seed=seed, **kwargs)
        if strength < 0:
            raise ValueError(f"strength must be >= 0, got {strength}.")
        self.strength = float(strength)

    def _augment(self, images):
        _, _, channels = static_hwc(images.shape, "RandomColorJitter")
        low, high = max(0.0, 1.0 - self.strength), 1.0 + self.strength
        brightness = self._uniform(images, low, high)[:, None, None, None]
        contrast = self._uniform(images, low, high)[:, None, None, None]
        saturation = self._uniform(images, low, high)[:, None, None, None]
        x = ops.cast(images, "float32")
        mean = ops.mean(x, axis=(1, 2, 3), keepdims=True)
        std = ops.std(x, axis=(1, 2, 3), keepdims=True)
        shift = (brightness - 1.0) * std
        x = x + shift
        mean = mean + shift
        x = (x - mean) * contrast + mean
        if channels > 1:
            grey = ops.mean(x, axis=-1, keepdims=True)
            x = grey + (x - grey) * saturation
        return ops.cast(x, images.dtype)

    def get_config(self):
        return {**super().get_config(), "strength": self.strength}


# ---------------------------------------------------------------------------------------
# Config -> layers
# ---------------------------------------------------------------------------------------

# (config key, layer name) in application order: geometry, then colour, then erasing.
LAYER_NAMES = {
    "flip": "aug_flip",
    "crop_padding": "aug_crop",
    "translate": "aug_translate",
    "rotation": "aug_rotation",
    "zoom": "aug_zoom",
    "color_jitter": "aug_color_jitter",
    "cutout": "aug_cutout",
}


def build_augmentation(cfg, image_size, seed=None):
    """The augmentation layers for an `AugmentConfig`, in order; [] when all are off.

    Order: flip, pad-crop, translate, rotation, zoom (geometry), colour jitter, cutout.
    `mixup` / `cutmix` are batch-level (kerasclf.layers.mixing) and ignored here.
    `seed`: optional int; layer i is seeded with seed + i (None: Keras's global seeding).
    """
    if cfg is None:
        return []
    height, width = (int(s) for s in image_size)

    def check(key, ok, expected):
        value = getattr(cfg, key)
        if not ok(value):
            raise ConfigError(f"augment.{key} must be {expected}, got {value!r}.")

    check("crop_padding", lambda v: v >= 0, ">= 0")
    check("translate", lambda v: 0 <= v <= 1, "within [0, 1] (a fraction of height/width)")
    check("rotation", lambda v: 0 <= v <= 180, "within [0, 180] (degrees)")
    check("zoom", lambda v: 0 <= v < 1, "within [0, 1) (a fraction)")
    check("cutout", lambda v: v >= 0, ">= 0 (pixels)")
    check("color_jitter", lambda v: v >= 0, ">= 0")
    if cfg.crop_padding >= min(height, width):
        raise ConfigError(
            f"augment.crop_padding={cfg.crop_padding} is too large for {height}x{width} images: "
            f"reflect padding needs it below {min(height, width)} (4 is usual for 32x32)."
        )

    makers = []
    flip_mode = getattr(cfg, "flip_mode", "random")
    if flip_mode not in ("random", "alternate"):
        raise ConfigError(f"augment.flip_mode must be 'random' or 'alternate', got {flip_mode!r}.")
    if cfg.flip and flip_mode == "alternate":
        makers.append(("flip", lambda **kw: AlternatingFlip(**kw)))
    elif cfg.flip:
        makers.append(("flip", lambda **kw: RandomFlipXLA(**kw)))
    if cfg.crop_padding:
        makers.append(("crop_padding", lambda **kw: RandomPadCrop(cfg.crop_padding, mode="reflect", **kw)))
    if cfg.translate:
        makers.append(("translate", lambda **kw: RandomTranslateXLA(cfg.translate, **kw)))
    if cfg.rotation:
        makers.append(("rotation", lambda **kw: RandomRotationXLA(cfg.rotation, **kw)))
    if cfg.zoom:
        makers.append(("zoom", lambda **kw: RandomZoomXLA(cfg.zoom, **kw)))
    if cfg.color_jitter:
        makers.append(("color_jitter", lambda **kw: RandomColorJitter(cfg.color_jitter, **kw)))
    if cfg.cutout:
        makers.append(("cutout", lambda **kw: RandomErasing(cfg.cutout, **kw)))
    return [
        make(name=LAYER_NAMES[key], seed=None if seed is None else int(seed) + i)
        for i, (key, make) in enumerate(makers)
    ]
