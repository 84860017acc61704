"""Training a segmentation model: image and mask augmented together inside the train step.

The checkpointed model maps images to per-pixel probabilities; its augmentation cannot
live inside it (the mask never enters the model). `SegmentationTrainer` wraps it for
`fit`: it takes (image, mask) pairs, moves both through one `JointFlipScaleCrop` draw when
training, and hands the *augmented* mask to the loss and the metrics through overridden
`compute_loss` / `compute_metrics` (Keras's documented extension points, the same on
TensorFlow and JAX), so the train step stays one compiled (XLA) function. Batches come from
the host feeder as ((images, masks), masks); checkpoints save the inner model only.
"""

import keras

from kerasclf.layers.joint import JointFlipScaleCrop
from kerasclf.runs.artefacts import AtomicModelCheckpoint
from kerasclf.training.feeding import HostFeeder


class SegmentationTrainer(keras.Model):
    """(images, masks) -> (probabilities, the masks as augmented); `inner` holds every weight."""

    def __init__(self, inner, augment=None, **kwargs):
        super().__init__(name=f"{inner.name}_segmentation_fit", **kwargs)
        self.inner = inner
        self.augment = augment

    def build(self, input_shape=None):
        self.built = True  # `inner` is built; the joint augmentation has no weights

    def call(self, inputs, training=False):
        images, masks = inputs
        if training and self.augment is not None:
            images, masks = self.augment(images, masks, training=True)
        return self.inner(images, training=training), masks

    def compute_loss(self, x=None, y=None, y_pred=None, sample_weight=None, training=True):
        probabilities, masks = y_pred
        return super().compute_loss(x, masks, probabilities, sample_weight, training=training)

    def compute_metrics(self, x, y, y_pred, sample_weight=None):
        probabilities, masks = y_pred
        return super().compute_metrics(x, masks, probabilities, sample_weight)


def joint_augmentation(augment_cfg, seed=None):
    """The config's flip / zoom as one joint layer, or None when both are off."""
    if not (augment_cfg.flip or augment_cfg.zoom):
        return None
    return JointFlipScaleCrop(flip=augment_cfg.flip, zoom=augment_cfg.zoom, seed=seed, name="joint_augment")


class InnerCheckpoint(AtomicModelCheckpoint):
    """Saves the model the trainer wraps (no trainer, no augmentation in the checkpoint)."""

    def set_model(self, model):
        super().set_model(getattr(model, "inner", model))


def _pairs(inputs):
    """fit/evaluate kwargs of (images, masks) -> of ((images, masks), masks)."""
    x = inputs["x"]
    if "y" in inputs:  # numpy arrays
        return {**inputs, "x": (x, inputs["y"])}
    if hasattr(x, "map") and hasattr(x, "element_spec"):  # tf.data
        return {**inputs, "x": x.map(lambda images, masks: ((images, masks), masks))}

    class Pairs(keras.utils.PyDataset):  # a PyDataset of (images, masks) batches
        def __init__(self):
            super().__init__()

        def __len__(self):
            return len(x)

        def __getitem__(self, index):
            images, masks = x[index]
            return (images, masks), masks

        def on_epoch_end(self):
            if hasattr(x, "on_epoch_end"):
                x.on_epoch_end()

    return {**inputs, "x": Pairs()}


class SegmentationFeeder(HostFeeder):
    """The host feeder, batches paired for `SegmentationTrainer` (masks are labels as they are)."""

    checkpoint = InnerCheckpoint

    def __init__(self, data, batch_size, seed, shuffle_buffer, augment_cfg, deterministic=False):
        super().__init__(data, batch_size, False, seed, None, shuffle_buffer, None, deterministic=deterministic)
        self.augment = joint_augmentation(augment_cfg, seed)

    def model_to_fit(self, model):
        return SegmentationTrainer(model, self.augment)

    def inputs(self, split_name, training=False):
        return _pairs(super().inputs(split_name, training))

    def seed_generators(self):
        return [] if self.augment is None else [self.augment.seed_generator]
