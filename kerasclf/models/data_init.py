"""Initialising layers from training data, after the model is built.

A builder sees symbolic tensors only, so layers whose weights come from the data (airbench's
`PatchWhitening`) are set afterwards: a model registered with `needs_data=True` makes the
training run call `init_from_data(model, train_x)` once after `build_model`, unless
`model.weights` named a weights file (build_model loaded it, data-derived weights included).
`init_from_data` is generic: it runs the model up to each layer that has an
`init_from_data(features)` method (inference mode, so augmentation is off) on a seeded
sample of the training images and hands that layer its input.
"""

import keras
import numpy as np
from keras import layers


def init_from_data(model, train_x, max_images=5000, seed=0, batch_size=500):
    """Initialise every layer of `model` that has an `init_from_data(features)` method.

    `train_x`: the training images as the model takes them (uint8 NHWC). A seeded sample
    of at most `max_images` is run through the model up to each such layer (inference
    mode: augmentation off, BatchNorm on its moving statistics), recursively into nested
    models and wrappers (FlipTTA). Layers with `data_init = False` are skipped.
    Returns the names of the layers it initialised.
    """
    if len(train_x) > max_images:
        index = np.sort(np.random.default_rng(seed).choice(len(train_x), max_images, replace=False))
        train_x = train_x[index]
    train_x = np.asarray(train_x)  # after sampling: images still on disk (data.stream) decode only the sample
    return _init_layers(model, train_x, batch_size)


def _init_layers(model, x, batch_size):
    done = []
    for layer in model.layers:
        if isinstance(layer, layers.InputLayer):
            continue
        inner = layer.layer if isinstance(layer, layers.Wrapper) else layer
        wants = _wants_data(layer)
        nested = isinstance(inner, keras.Model) and any(_wants_data(sub) for sub in _all_layers(inner))
        if not (wants or nested):
            continue
        features = keras.Model(model.inputs, layer.input).predict(x, batch_size=batch_size, verbose=0)
        if wants:
            layer.init_from_data(features)
            done.append(layer.name)
        else:
            done += [f"{layer.name}/{name}" for name in _init_layers(inner, features, batch_size)]
    return done


def _wants_data(layer):
    return callable(getattr(layer, "init_from_data", None)) and getattr(layer, "data_init", True)


def _all_layers(model):
    """Every layer under `model`, through nested models and wrappers."""
    out = []
    for layer in model.layers:
        out.append(layer)
        inner = layer.layer if isinstance(layer, layers.Wrapper) else layer
        if isinstance(inner, keras.Model):
            out += [inner] + _all_layers(inner)
    return out
