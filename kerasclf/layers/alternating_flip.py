"""airbench's derandomised ("alternating") horizontal flip, as an in-model layer.

Epoch 0 flips a pseudo-random half of the images; every later epoch flips exactly the
images the previous epoch did not, so each image is seen mirrored every other epoch
(Jordan 2024, arXiv 2404.00498, section 3.6: fewer repeated views than a fresh coin per
epoch). The layer cannot know an image's index (batches are shuffled, and the host and
device-resident feeders differ), so its epoch-0 coin is a function of the image itself:
the parity of a seeded sum of its pixels quantised to integers. Integer sums are exact in
any order, so the coin is the same every epoch on every backend and device.
The epoch comes from `set_epoch` (kerasclf.training.epoch_hooks.EpochHooks).
"""

import keras
import numpy as np
from keras import ops

from kerasclf.layers.sampling import static_hwc


@keras.saving.register_keras_serializable(package="kerasclf")
class AlternatingFlip(keras.layers.Layer):
    """Mirror an image when coin(image) XOR (epoch is odd); identity outside training."""

    def __init__(self, seed=None, **kwargs):
        super().__init__(**kwargs)
        self.seed = seed
        self.supports_jit = True
        self.epoch_parity = self.add_weight(
            shape=(), dtype="int32", initializer="zeros", trainable=False, name="epoch_parity"
        )

    def build(self, input_shape):
        height, width, channels = static_hwc(input_shape, "AlternatingFlip")
        pattern = np.random.default_rng(self.seed or 0).integers(0, 2, size=(height, width, channels))
        self._pattern = pattern.astype("int32")  # a constant of the layer, rebuilt from the seed

    def set_epoch(self, epoch):
        self.epoch_parity.assign(int(epoch) % 2)

    def coin(self, images):
        """0/1 per image: whether epoch 0 mirrors it."""
        # 16 levels per unit of the (standardised) input: integers, then an exact integer sum.
        levels = ops.cast(ops.round(ops.cast(images, "float32") * 16.0), "int32")
        total = ops.sum(levels * ops.convert_to_tensor(self._pattern), axis=(1, 2, 3))
        return ops.mod(total, 2)

    def call(self, images, training=None):
        if not training:
            return images
        flip = ops.not_equal(self.coin(images), ops.cast(self.epoch_parity, "int32"))
        return ops.where(flip[:, None, None, None], ops.flip(images, axis=2), images)

    def compute_output_shape(self, input_shape):
        return input_shape

    def get_config(self):
        return {**super().get_config(), "seed": self.seed}
