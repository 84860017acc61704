"""Image and mask augmented together (segmentation), XLA-safe, with `keras.ops` only.

One random draw per image moves the image and its mask alike: a horizontal flip, and a
scale-crop (a window of 1/s of the side, s uniform in [1, 1 + zoom], at a random place,
resized back to the full size). Both read their pixels through one gather on computed
indices (nearest neighbour: a mask's class indices must not be blended, and the image
takes the same grid so that they stay aligned), so every shape is static and the layer
compiles with XLA on TensorFlow and JAX, inside the train step.
"""

import keras
from keras import ops

from kerasclf.layers.sampling import gather_pixels, static_hwc


@keras.saving.register_keras_serializable(package="kerasclf")
class JointFlipScaleCrop(keras.layers.Layer):
    """(images (B, H, W, C), masks (B, H, W)) -> the same, flipped / scale-cropped alike.

    flip: mirror each pair with probability 0.5; zoom: the largest scale s - 1 (0 = no crop).
    Identity outside training."""

    def __init__(self, flip=True, zoom=0.0, seed=None, **kwargs):
        super().__init__(**kwargs)
        if zoom < 0:
            raise ValueError(f"zoom must be >= 0, got {zoom}.")
        self.flip, self.zoom, self.seed = bool(flip), float(zoom), seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.supports_jit = True

    def call(self, images, masks, training=None):
        if not training or not (self.flip or self.zoom):
            return images, masks
        height, width, _ = static_hwc(images.shape, "JointFlipScaleCrop")
        batch = ops.shape(images)[0]
        scale = 1.0 + self.zoom * keras.random.uniform((batch,), seed=self.seed_generator)
        crop_h, crop_w = height / scale, width / scale  # (B,) window sides in pixels
        top = keras.random.uniform((batch,), seed=self.seed_generator) * (height - crop_h)
        left = keras.random.uniform((batch,), seed=self.seed_generator) * (width - crop_w)
        step_y = ops.arange(height, dtype="float32")[None, :] + 0.5
        step_x = ops.arange(width, dtype="float32")[None, :] + 0.5
        rows = top[:, None] + step_y * (crop_h / height)[:, None]  # (B, H) pixel centres in the source
        cols = left[:, None] + step_x * (crop_w / width)[:, None]  # (B, W)
        if self.flip:
            mirrored = keras.random.uniform((batch,), seed=self.seed_generator) < 0.5
            cols = ops.where(mirrored[:, None], width - cols, cols)
        rows = ops.clip(ops.cast(ops.floor(rows), "int32"), 0, height - 1)
        cols = ops.clip(ops.cast(ops.floor(cols), "int32"), 0, width - 1)
        rows3 = ops.broadcast_to(rows[:, :, None], (batch, height, width))
        cols3 = ops.broadcast_to(cols[:, None, :], (batch, height, width))
        out_images = gather_pixels(images, rows3, cols3)
        out_masks = gather_pixels(masks[..., None], rows3, cols3)[..., 0]
        return out_images, out_masks

    def compute_output_shape(self, images_shape, masks_shape):
        return images_shape, masks_shape

    def get_config(self):
        return {**super().get_config(), "flip": self.flip, "zoom": self.zoom, "seed": self.seed}
