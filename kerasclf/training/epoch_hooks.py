"""Layers whose behaviour depends on the epoch number (alternating flip, whitening-bias schedule).

Such a layer keeps what it needs in non-trainable variables and has a `set_epoch(epoch)`
method; the `EpochHooks` callback calls it at the start of every epoch. Variables (not
Python attributes) because the compiled train step reads them: under JAX the step's state
is re-read from the variables after `on_epoch_begin`, under TensorFlow they are read at
run time.
"""

import keras

from kerasclf.keras_private import sublayers


def epoch_layers(model):
    """Every layer under `model` (nested models and wrappers included) with a `set_epoch` method."""
    return [layer for layer in sublayers(model) if callable(getattr(layer, "set_epoch", None))]


class EpochHooks(keras.callbacks.Callback):
    def on_epoch_begin(self, epoch, logs=None):
        for layer in epoch_layers(self.model):
            layer.set_epoch(epoch)
