"""The device-resident path: the whole uint8 data set lives on the accelerator.

`fit` is fed only int32 *indices*; a `TakeRows` layer holding the images as a
non-trainable uint8 variable gathers each batch inside the compiled step, and the model's
own augmentation layers run right after. So no images cross from host to device after the
first copy, and the same code runs on JAX and TensorFlow (no tf.data needed; PyTorch untested).

Train, validation and test images share one table (concatenated) so Keras's validation
and evaluation loops use the same index model; checkpoints save the inner model only.
"""

import keras
import numpy as np
from keras import ops

from kerasclf.data.order import epoch_batches
from kerasclf.data.sampler import sampled_batches
from kerasclf.runs.artefacts import AtomicModelCheckpoint


@keras.saving.register_keras_serializable(package="kerasclf")
class TakeRows(keras.layers.Layer):
    """indices (batch,) -> rows of a fixed uint8 table held as a non-trainable variable."""

    def __init__(self, table_shape, parts=None, **kwargs):
        super().__init__(**kwargs)
        self.table_shape = tuple(int(s) for s in table_shape)
        # `parts`: arrays whose concatenation is the table, concatenated by the backend straight
        # into the variable's initial value: no zeros table first, no assign, no NumPy copy of
        # the whole table (on a CPU backend each of those is another copy of the data set in host memory)
        initializer = "zeros" if parts is None else (lambda shape, dtype=None: ops.concatenate(parts))
        self.table = self.add_weight(
            shape=self.table_shape, dtype="uint8", initializer=initializer, trainable=False, name="table"
        )

    def call(self, indices):
        return ops.take(self.table, ops.cast(indices, "int32"), axis=0)

    def compute_output_shape(self, input_shape):
        return (input_shape[0], *self.table_shape[1:])

    def get_config(self):
        return {**super().get_config(), "table_shape": list(self.table_shape)}


class ResidentData:
    """One table for all splits; `inputs(split)` gives fit/evaluate kwargs of indices + labels."""

    def __init__(self, dataset, labels_fn):
        splits = [(name, dataset.split(name)) for name in ("train", "val", "test")]
        splits = [(name, s) for name, s in splits if s is not None and len(s)]
        self.offsets, start = {}, 0
        for name, split in splits:
            self.offsets[name] = (start, len(split))
            start += len(split)
        self.splits = splits
        self.labels = {name: labels_fn(s) for name, s in splits}

    @property
    def table(self):
        """The splits' images as one NumPy array (a copy, made when asked; wrap builds the
        device variable without it)."""
        return np.concatenate([s.x for _, s in self.splits])

    def inputs(self, split, batch_size, training, sampler=None, order=None):
        """`sampler` (training only): a kerasclf.data.sampler.PKSampler over this split's labels;
        `order` (training): a data.order.EpochOrder whose per-epoch order a resumed run replays."""
        start, n = self.offsets[split]
        if training and sampler is not None:
            labels = self.labels[split]
            return {"x": sampled_batches(sampler, lambda i: ((start + i).astype(np.int32), labels[i])), "shuffle": False}
        index = np.arange(start, start + n, dtype=np.int32)
        if training and order is not None:
            return {"x": epoch_batches(index, self.labels[split], batch_size, order), "shuffle": False}
        inputs = {"x": index, "y": self.labels[split], "batch_size": batch_size}
        return {**inputs, "shuffle": True} if training else inputs  # evaluate() takes no shuffle

    def wrap(self, model):
        """A training model: indices -> TakeRows -> `model` (shares `model`'s weights)."""
        index = keras.Input(shape=(), dtype="int32", name="index")
        parts = [s.x for _, s in self.splits]
        shape = (sum(len(x) for x in parts), *parts[0].shape[1:])
        take = TakeRows(shape, parts=parts, name="resident_images")
        outputs = model(take(index))
        return keras.Model(index, outputs, name=f"{model.name}_resident")


def device_is_host():
    """True when the backend's device is the CPU: the "device-resident" table is then host memory."""
    backend = keras.backend.backend()
    if backend == "jax":
        import jax  # lazy: only on the JAX backend

        return jax.devices()[0].platform == "cpu"
    if backend == "tensorflow":
        import tensorflow as tf  # lazy: only on the TensorFlow backend

        return not tf.config.list_logical_devices("GPU")
    if backend == "torch":
        import torch  # lazy: only on the PyTorch backend

        return not torch.cuda.is_available()
    return True


def table_bytes(dataset):
    return sum(s.x.nbytes for s in (dataset.train, dataset.val, dataset.test) if s is not None)


def inner_model(model):
    """The model `wrap` nested inside a resident training model (or `model` itself)."""
    if not isinstance(model.get_layer(index=1), TakeRows):
        return model
    return [layer for layer in model.layers if isinstance(layer, keras.Model)][-1]


class InnerModelCheckpoint(AtomicModelCheckpoint):
    """ModelCheckpoint (atomic) that saves the inner model: checkpoints hold no data table.

    Variables are shared with the training model and synced (JAX) before epoch-end
    callbacks run, so the inner model saves the current weights.
    """

    def set_model(self, model):
        super().set_model(inner_model(model))
