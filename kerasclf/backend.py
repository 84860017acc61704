"""Which Keras backend runs, and whether TensorFlow is installed: asked here, in one place.

Nothing here imports Keras or TensorFlow at module import time (the CLI must start fast).
"""

import importlib.util


def have_tensorflow():
    """TensorFlow is installed (tf.data input, TensorBoard summaries)."""
    return importlib.util.find_spec("tensorflow") is not None


def have_tensorboard():
    """keras.callbacks.TensorBoard writes through tf.summary: both packages are needed."""
    return have_tensorflow() and importlib.util.find_spec("tensorboard") is not None

