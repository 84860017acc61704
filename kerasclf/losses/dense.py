"""Losses and training metrics of the multi-label and segmentation tasks.

Segmentation targets are class-index masks (B, H, W) in which 255 marks "void" pixels
(object borders in Pascal VOC): the loss and the metrics leave them out entirely.
"""

import keras
from keras import ops

from kerasclf.losses import register_loss

IGNORE = 255


@register_loss("binary_crossentropy", description="binary cross-entropy per class (multi-label)",
               labels=("multi_hot",), task="multilabel")
def binary_crossentropy(loss_cfg, labels):
    return keras.losses.BinaryCrossentropy()


@keras.saving.register_keras_serializable(package="kerasclf")
class MaskedSparseCrossentropy(keras.losses.Loss):
    """Per-pixel cross-entropy of probabilities (B, H, W, C) against masks (B, H, W), averaged
    over the pixels whose label is not `ignore_index` (the batch's mean over valid pixels)."""

    def __init__(self, ignore_index=IGNORE, name="masked_sparse_crossentropy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_index = int(ignore_index)

    def call(self, y_true, y_pred):
        y_true = ops.cast(y_true, "int32")
        valid = ops.cast(ops.not_equal(y_true, self.ignore_index), y_pred.dtype)
        safe = ops.where(ops.not_equal(y_true, self.ignore_index), y_true, 0)
        ce = keras.losses.sparse_categorical_crossentropy(safe, y_pred)
        # mean over valid pixels: Keras then averages this (B, H, W) tensor over its size
        scale = ops.cast(ops.size(valid), y_pred.dtype) / ops.maximum(ops.sum(valid), 1.0)
        return ce * valid * scale

    def get_config(self):
        return {**super().get_config(), "ignore_index": self.ignore_index}


@register_loss("segmentation_crossentropy", description="per-pixel cross-entropy, 255 (void) pixels ignored",
               labels=("mask",), task="segmentation")
def segmentation_crossentropy(loss_cfg, labels):
    return MaskedSparseCrossentropy()


@keras.saving.register_keras_serializable(package="kerasclf")
class MaskedPixelAccuracy(keras.metrics.Mean):
    """Share of the non-void pixels whose most probable class is the true one."""

    def __init__(self, ignore_index=IGNORE, name="accuracy", **kwargs):
        super().__init__(name=name, **kwargs)
        self.ignore_index = int(ignore_index)

    def update_state(self, y_true, y_pred, sample_weight=None):
        y_true = ops.cast(y_true, "int32")
        valid = ops.cast(ops.not_equal(y_true, self.ignore_index), "float32")
        right = ops.cast(ops.equal(ops.cast(ops.argmax(y_pred, axis=-1), "int32"), y_true), "float32")
        return super().update_state(right, sample_weight=valid)

    def get_config(self):
        return {**super().get_config(), "ignore_index": self.ignore_index}


def task_metrics(task, num_classes, threshold=0.5):
    """The metrics `fit` logs for a task other than multiclass (named so that val_accuracy exists)."""
    if task == "multilabel":
        return [keras.metrics.BinaryAccuracy(name="accuracy", threshold=threshold)]
    if task == "segmentation":
        return [MaskedPixelAccuracy(), keras.metrics.MeanIoU(num_classes, name="mean_iou", ignore_class=IGNORE,
                                                            sparse_y_true=True, sparse_y_pred=False)]
    raise ValueError(f"no metrics for task {task!r}")
