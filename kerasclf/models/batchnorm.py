"""kerasclf's BatchNorm default, shared by every registered model with BatchNorm.

BN_MOMENTUM is in Keras's convention (the weight of the old moving statistics): 0.9 moves
them 10% of the way to each batch's statistics, PyTorch's momentum 0.1, which the reference
course reports trained with. Keras's own default, 0.99, moves them 1% a step: on short runs
(the Dogs vs Cats study has about 25 steps an epoch) the moving statistics used at inference
lag the weights so far that validation accuracy sits tens of points under training accuracy,
or at 50% (every image one class) on two classes.

A builder with BatchNorm takes `bn_momentum` (and, where it builds the layers itself,
`bn_epsilon`) with these defaults. A model whose source says otherwise registers the reason
(`bn_momentum_reason`, e.g. airbench94's 0.6); tests/test_batchnorm.py checks every registry
entry against this.
"""

import keras
from keras import layers

from kerasclf.errors import ConfigError
from kerasclf.keras_private import sublayers

BN_MOMENTUM = 0.9
BN_EPSILON = 1e-5  # PyTorch's default, as in the reference reports


def bn_factory(momentum=BN_MOMENTUM, epsilon=BN_EPSILON):
    """name -> a BatchNormalization layer with the model's momentum and epsilon (checked once)."""

    momentum, epsilon = check_momentum(momentum), float(epsilon)
    if epsilon <= 0.0:
        raise ValueError(f"bn_epsilon must be > 0, got {epsilon}.")
    return lambda name: layers.BatchNormalization(momentum=momentum, epsilon=epsilon, name=name)


def check_momentum(momentum):
    momentum = float(momentum)
    if not 0.0 <= momentum < 1.0:
        raise ValueError(f"bn_momentum must be in [0, 1) (Keras convention: 0.9 = PyTorch's 0.1), got {momentum}.")
    return momentum


def batchnorm_layers(model):
    """Every BatchNormalization layer in `model`, nested models included."""

    return [layer for layer in [model, *sublayers(model)] if isinstance(layer, keras.layers.BatchNormalization)]


def set_momentum(model, momentum):
    """Set the momentum of every BatchNorm layer of a model built elsewhere (keras.applications
    builds them with Keras's 0.99); the pretrained weights are unchanged."""
    momentum = check_momentum(momentum)
    for layer in batchnorm_layers(model):
        layer.momentum = momentum
    return model


def check_batch_of_one(model, batch_size, devices=1):
    """Refuse training with one image per batch (per device) where a trainable BatchNorm sits on
    features without spatial axes (after a dense layer): it normalises each feature over that one
    value, so it outputs its beta whatever the input and no gradient reaches the layers below it.
    PyTorch refuses the same ("Expected more than 1 value per channel when training"); Keras
    trains on silently. BatchNorm after a convolution averages over the image's positions too,
    so it still learns (noisily) from one image."""
    devices = max(devices or 1, 1)  # None: the engine counts them later; one image each is what matters
    if batch_size // devices != 1:
        return
    flat = [layer.name for layer in batchnorm_layers(model)
            if layer.trainable and getattr(layer.input_spec, "ndim", None) == 2]
    if flat:
        given = f"data.batch_size={batch_size}" + (f" on {devices} devices" if devices > 1 else "")
        raise ConfigError(
            f"{given} trains on 1 image per batch, and the model has BatchNorm after dense layers "
            f"({', '.join(flat)}): each of those normalises every feature over a single value, so it outputs a "
            "constant and nothing below it can learn. Use at least 2 images per batch (per device), or a model "
            "without BatchNorm on its dense layers (for `cnn`: model.batch_norm=false; `catsdogs_cnn` has it "
            "on convolutions only)."
        )
